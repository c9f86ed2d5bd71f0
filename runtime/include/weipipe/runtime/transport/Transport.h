//===- Transport.h - moving bytes between ranks -----------------*- C++ -*-===//
//
// Part of weipipe's runtime. The one interface through which pipeline ranks
// exchange weights, gradients and activations; `local` (ranks as threads of
// one process) and `tcp` (ranks as processes) implement it here, NCCL next.
// Kept small: post a send or a receive, wait for it, abort.
//
// The contract every implementation keeps:
//   * messages between two ranks with the same tag arrive in the order they
//     were sent;
//   * a wait blocks without spinning;
//   * nothing hangs: when a rank fails (abort, or its thread ends with an
//     error) every other rank's pending and later operations fail with a
//     message naming it; a local world where every live rank waits on a
//     receive nobody will send is a deadlock, reported to each rank (a tcp
//     world, whose ranks cannot see each other's waits, reports a wait
//     that hears nothing from its peer for the timeout, and a peer that
//     finished or whose process ended).
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_TRANSPORT_TRANSPORT_H
#define WEIPIPE_RUNTIME_TRANSPORT_TRANSPORT_H

#include "weipipe/runtime/Status.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace weipipe::rt::transport {

using rt::Status;

/// A posted operation; complete after a successful wait.
struct Request {
  int peer = -1;
  uint64_t tag = 0;
  void *recvData = nullptr; ///< a receive's destination (null for a send)
  size_t bytes = 0;
  bool done = false;
};

class Transport {
public:
  virtual ~Transport();
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// Whether every rank is in this process (so a message may carry a
  /// pointer to this process's memory, a device's included).
  virtual bool sharesAddressSpace() const { return false; }
  /// Posts a send of `bytes` bytes at `data` to `peer`. The bytes are
  /// captured before this returns (the buffer may be reused at once).
  virtual Status send(int peer, uint64_t tag, const void *data, size_t bytes,
                      Request *req) = 0;
  /// Posts a receive of exactly `bytes` bytes from `peer` into `data`, which
  /// must stay valid until the wait returns. (The request is all there is
  /// to post where the wait finds the message: the default.)
  virtual Status recv(int peer, uint64_t tag, void *data, size_t bytes,
                      Request *req);
  /// Blocks until `req` completes. Errors: a failed rank (named), a
  /// deadlock, a message of another size than the receive expects.
  virtual Status wait(Request &req) = 0;
  /// This rank failed: every rank's operations fail from now on with
  /// "rank R failed: WHY".
  virtual void abort(const std::string &why) = 0;
  /// The world's failure if one is known already (without waiting), else
  /// ok: for a rank that waits on something else (a GPU) to look up.
  virtual Status check() const { return {}; }

protected:
  /// What every implementation does alike: `peer` must be another rank of
  /// the world; a message completes a receive (the error of another size
  /// names both ends).
  Status checkPeer(int peer) const;
  Status complete(Request &req, const std::vector<uint8_t> &msg) const;
};

/// This process's place in a world of processes, as torchrun describes it
/// (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).
struct WorldEnv {
  int rank = 0, size = 1, localRank = 0;
  std::string masterAddr;
  int masterPort = 0;
};
/// Reads the variables; an error names the one missing or malformed. Rank 0
/// listens at MASTER_PORT, or the next port where torchrun's agent holds
/// that one (TORCHELASTIC_USE_AGENT_STORE=True), or WEIPIPE_MASTER_PORT.
Status worldFromEnv(WorldEnv *w);

/// The `tcp` transport (one rank per process, any hosts): connects this
/// process to the others of `w` (rank 0 listens at MASTER_ADDR:MASTER_PORT,
/// the others find each other through it; see Tcp.cpp) and returns it.
/// Fails naming the ranks that could not be reached within `timeoutSeconds`,
/// which also bounds how long a wait hears nothing from its peer. The
/// transport sends its peers "finished" when destroyed, after waiting for
/// them to finish too.
Status connectTcp(const WorldEnv &w, double timeoutSeconds,
                  std::unique_ptr<Transport> *out);

/// Runs `body` on `ranks` ranks of one process, each on its own thread with
/// a `local` transport, and returns the first failure ("rank R: MESSAGE"),
/// or success when every rank succeeds. A rank whose body fails aborts the
/// world, so the others stop instead of waiting for it.
Status runLocalRanks(int ranks, const std::function<Status(Transport &)> &body);

} // namespace weipipe::rt::transport

#endif // WEIPIPE_RUNTIME_TRANSPORT_TRANSPORT_H
