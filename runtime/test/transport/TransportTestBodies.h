//===- TransportTestBodies.h - one rank's part of a transport test -*- C++
//-*-===//
//
// Part of weipipe's runtime tests. What each rank runs in the tests every
// transport passes (LocalTransportTest, TcpTransportTest): a failure comes
// back as the rank's Status, naming what arrived wrong.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_TEST_TRANSPORT_TRANSPORTTESTBODIES_H
#define WEIPIPE_RUNTIME_TEST_TRANSPORT_TRANSPORTTESTBODIES_H

#include "weipipe/runtime/transport/Transport.h"

#include <cstdint>
#include <string>

namespace weipipe::rt::transport::test {

/// P - 1 turns of a ring: each rank passes on what it last received, as
/// weights travel in WeiPipe; at turn t rank r receives rank r - 1 - t's
/// starting value (100 + rank).
inline Status ring(Transport &t) {
  const int P = t.size(), r = t.rank(), next = (r + 1) % P,
            prev = (r + P - 1) % P;
  int64_t value = 100 + r;
  for (int turn = 0; turn + 1 < P; ++turn) {
    Request s, q;
    int64_t in = -1;
    if (Status e = t.recv(prev, uint64_t(turn), &in, sizeof in, &q); !e.ok())
      return e;
    if (Status e = t.send(next, uint64_t(turn), &value, sizeof value, &s);
        !e.ok())
      return e;
    value = -2; // the send captured the bytes already
    if (Status e = t.wait(q); !e.ok())
      return e;
    if (Status e = t.wait(s); !e.ok())
      return e;
    if (in != 100 + (r - 1 - turn + 2 * P) % P)
      return Status::error(
          "P = " + std::to_string(P) + ", rank " + std::to_string(r) +
          ", turn " + std::to_string(turn) + ": got " + std::to_string(in));
    value = in;
  }
  return {};
}

/// Rank 0 sends 0..99 to rank 1 with one tag; they arrive in order.
inline Status fifo(Transport &t) {
  if (t.rank() == 0) {
    for (int64_t i = 0; i < 100; ++i) {
      Request s;
      if (Status e = t.send(1, 7, &i, sizeof i, &s); !e.ok())
        return e;
    }
    return {};
  }
  for (int64_t i = 0; i < 100; ++i) {
    Request q;
    int64_t x = -1;
    if (Status e = t.recv(0, 7, &x, sizeof x, &q); !e.ok())
      return e;
    if (Status e = t.wait(q); !e.ok())
      return e;
    if (x != i)
      return Status::error("message " + std::to_string(i) + " arrived as " +
                           std::to_string(x));
  }
  return {};
}

} // namespace weipipe::rt::transport::test

#endif // WEIPIPE_RUNTIME_TEST_TRANSPORT_TRANSPORTTESTBODIES_H
