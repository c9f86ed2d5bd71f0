//===- LocalTransportTest.cpp - ranks as threads ------------------------===//
//
// Part of weipipe's runtime tests. The `local` transport keeps the
// contract of transport/Transport.h: rings of every size (P = 2, where next
// and previous are the same peer, included), FIFO order per link and tag,
// and no hang: a failing rank, a rank that ends early, a cycle of receives
// and a size mismatch each end every rank with a message that names them.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/transport/Transport.h"

#include "TransportTestBodies.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

using namespace weipipe::rt::transport;

#define EXPECT_HAS(haystack, needle)                                           \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos)             \
      << "'" << (haystack) << "' lacks '" << (needle) << "'"

TEST(LocalTransport, RingsOfEverySize) {
  for (int P : {1, 2, 3, 4, 8}) {
    Status st = runLocalRanks(P, test::ring);
    EXPECT_TRUE(st.ok()) << "P = " << P << ": " << st.message();
  }
}

TEST(LocalTransport, MessagesKeepTheirOrderPerLinkAndTag) {
  Status st = runLocalRanks(2, test::fifo);
  EXPECT_TRUE(st.ok()) << st.message();
}

TEST(LocalTransport, AFailingRankStopsTheOthers) {
  std::atomic<int> othersFailed{0};
  Status st = runLocalRanks(3, [&](Transport &t) -> Status {
    if (t.rank() == 1)
      return Status::error("out of memory loading layer 7");
    Request q;
    int64_t x;
    if (Status e = t.recv(1, 0, &x, sizeof x, &q); !e.ok())
      return e;
    Status e = t.wait(q);
    if (!e.ok()) {
      ++othersFailed;
      if (e.message() != "rank 1 failed: out of memory loading layer 7")
        return Status::error("unexpected: " + e.message());
    }
    return e;
  });
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), "rank 1: out of memory loading layer 7");
  EXPECT_EQ(othersFailed.load(), 2);
}

TEST(LocalTransport, AnExceptionIsAFailure) {
  Status st = runLocalRanks(2, [](Transport &t) -> Status {
    if (t.rank() == 0)
      throw std::runtime_error("bad_alloc of the ring buffer");
    Request q;
    int64_t x;
    if (Status e = t.recv(0, 0, &x, sizeof x, &q); !e.ok())
      return e;
    return t.wait(q);
  });
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), "rank 0: exception: bad_alloc of the ring buffer");
}

TEST(LocalTransport, DeadlocksAreReportedNotHung) {
  // Both ranks receive first: nobody will ever send.
  Status st = runLocalRanks(2, [](Transport &t) -> Status {
    Request q;
    int64_t x;
    if (Status e = t.recv(1 - t.rank(), 3, &x, sizeof x, &q); !e.ok())
      return e;
    return t.wait(q);
  });
  ASSERT_FALSE(st.ok());
  EXPECT_HAS(st.message(), "deadlock: every running rank waits for a message "
                           "that no rank will send");
  EXPECT_HAS(st.message(), "rank 0 waits for rank 1 (tag 3)");
  EXPECT_HAS(st.message(), "rank 1 waits for rank 0 (tag 3)");

  // A rank that ends without sending what another waits for.
  st = runLocalRanks(2, [](Transport &t) -> Status {
    if (t.rank() == 1)
      return {};
    Request q;
    int64_t x;
    if (Status e = t.recv(1, 9, &x, sizeof x, &q); !e.ok())
      return e;
    return t.wait(q);
  });
  ASSERT_FALSE(st.ok());
  EXPECT_HAS(st.message(), "rank 0 waits for rank 1 (tag 9)");
}

TEST(LocalTransport, SizeMismatchAndBadPeersAreErrors) {
  Status st = runLocalRanks(2, [](Transport &t) -> Status {
    if (t.rank() == 0) {
      int64_t x = 5;
      Request s;
      return t.send(1, 0, &x, sizeof x, &s);
    }
    int32_t y;
    Request q;
    if (Status e = t.recv(0, 0, &y, sizeof y, &q); !e.ok())
      return e;
    return t.wait(q);
  });
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(),
            "rank 1: rank 1 received 8 bytes from rank 0 (tag 0), expected 4");

  st = runLocalRanks(2, [](Transport &t) -> Status {
    Request q;
    int x;
    return t.recv(t.rank() == 0 ? 2 : 1, 0, &x, sizeof x, &q);
  });
  ASSERT_FALSE(st.ok());
  EXPECT_HAS(st.message(), "no peer rank");
  EXPECT_FALSE(runLocalRanks(0, [](Transport &) { return Status(); }).ok());
}
