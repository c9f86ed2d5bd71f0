//===- TcpTransportTest.cpp - ranks as processes, over TCP
//-----------------===//
//
// Part of weipipe's runtime tests. The `tcp` transport keeps the contract of
// transport/Transport.h, tested with its ranks as threads of this process
// (each its own transport, connected through localhost exactly as separate
// processes are): the torchrun-style bootstrap, rings of every size, FIFO
// order per link and tag, and no hang: a failing rank, a rank that ends
// without sending, a silent rank, a size mismatch, a rank that never
// starts and a missing or malformed environment each end with a message
// that names them.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/transport/Transport.h"

#include "TransportTestBodies.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <chrono>
#include <cstdlib>
#include <netinet/in.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace weipipe::rt::transport;

#define EXPECT_HAS(haystack, needle)                                           \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos)             \
      << "'" << (haystack) << "' lacks '" << (needle) << "'"

namespace {

/// A port nobody listens on now (the kernel's choice).
int freePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

/// Runs `body` as ranks `which` (default: all) of a world of P on threads,
/// each connected over TCP on localhost; a failing body aborts its
/// transport, as weipipe-run does. Returns each rank's status.
std::vector<Status> runTcpRanks(int P,
                                const std::function<Status(Transport &)> &body,
                                double timeout = 20,
                                std::vector<int> which = {}) {
  if (which.empty())
    for (int r = 0; r < P; ++r)
      which.push_back(r);
  const int port = freePort();
  std::vector<Status> results(static_cast<size_t>(P));
  std::vector<std::thread> threads;
  for (int r : which)
    threads.emplace_back([&, r] {
      WorldEnv w;
      w.rank = r;
      w.size = P;
      w.masterAddr = "127.0.0.1";
      w.masterPort = port;
      std::unique_ptr<Transport> t;
      Status st = connectTcp(w, timeout, &t);
      if (st.ok()) {
        st = body(*t);
        if (!st.ok())
          t->abort(st.message());
      }
      results[size_t(r)] = st;
    });
  for (std::thread &t : threads)
    t.join();
  return results;
}

} // namespace

TEST(TcpTransport, RingsOfEverySize) {
  for (int P : {1, 2, 3, 4}) {
    std::vector<Status> st = runTcpRanks(P, test::ring);
    for (int r = 0; r < P; ++r)
      EXPECT_TRUE(st[size_t(r)].ok())
          << "P = " << P << ", rank " << r << ": " << st[size_t(r)].message();
  }
}

TEST(TcpTransport, LargeMessagesBothWaysAtOnce) {
  // Both ranks send 8 MiB to each other before either receives: buffered
  // sends must not block on a full socket.
  std::vector<Status> st = runTcpRanks(2, [](Transport &t) -> Status {
    const int peer = 1 - t.rank();
    std::vector<float> out(size_t(2) << 20, float(t.rank() + 1)),
        in(out.size(), 0.0f);
    Request s, q;
    if (Status e = t.send(peer, 0, out.data(), out.size() * 4, &s); !e.ok())
      return e;
    if (Status e = t.recv(peer, 0, in.data(), in.size() * 4, &q); !e.ok())
      return e;
    if (Status e = t.wait(q); !e.ok())
      return e;
    for (float v : in)
      if (v != float(peer + 1))
        return Status::error("wrong payload");
    return t.wait(s);
  });
  EXPECT_TRUE(st[0].ok()) << st[0].message();
  EXPECT_TRUE(st[1].ok()) << st[1].message();
}

TEST(TcpTransport, MessagesKeepTheirOrderPerLinkAndTag) {
  std::vector<Status> st = runTcpRanks(2, test::fifo);
  EXPECT_TRUE(st[0].ok()) << st[0].message();
  EXPECT_TRUE(st[1].ok()) << st[1].message();
}

TEST(TcpTransport, AFailingRankStopsTheOthers) {
  std::vector<Status> st = runTcpRanks(3, [](Transport &t) -> Status {
    if (t.rank() == 1)
      return Status::error("out of memory in the forward");
    Request q;
    int x = 0;
    if (Status e = t.recv(1, 0, &x, sizeof x, &q); !e.ok())
      return e;
    return t.wait(q);
  });
  for (int r : {0, 2}) {
    ASSERT_FALSE(st[size_t(r)].ok()) << "rank " << r;
    EXPECT_HAS(st[size_t(r)].message(),
               "rank 1 failed: out of memory in the forward");
  }
}

TEST(TcpTransport, ARankThatEndsWithoutSendingIsNamed) {
  std::vector<Status> st = runTcpRanks(2, [](Transport &t) -> Status {
    if (t.rank() == 1)
      return {};
    Request q;
    int x = 0;
    if (Status e = t.recv(1, 5, &x, sizeof x, &q); !e.ok())
      return e;
    return t.wait(q);
  });
  EXPECT_TRUE(st[1].ok()) << st[1].message();
  ASSERT_FALSE(st[0].ok());
  EXPECT_HAS(st[0].message(),
             "rank 0 waits for rank 1 (tag 5), which finished without "
             "sending it");
}

TEST(TcpTransport, ASilentRankTimesOut) {
  std::vector<Status> st = runTcpRanks(
      2,
      [](Transport &t) -> Status {
        Request q;
        int x = 0;
        if (t.rank() == 1) { // alive, but never sends
          std::this_thread::sleep_for(std::chrono::milliseconds(2500));
          return {};
        }
        if (Status e = t.recv(1, 0, &x, sizeof x, &q); !e.ok())
          return e;
        return t.wait(q);
      },
      /*timeout=*/1);
  ASSERT_FALSE(st[0].ok());
  EXPECT_HAS(st[0].message(),
             "waited 1 s for rank 1 (tag 0) and heard nothing");
}

TEST(TcpTransport, SizeMismatchIsNamed) {
  std::vector<Status> st = runTcpRanks(2, [](Transport &t) -> Status {
    int64_t v = 1;
    int32_t w = 0;
    Request r;
    if (t.rank() == 0)
      return t.send(1, 3, &v, sizeof v, &r);
    if (Status e = t.recv(0, 3, &w, sizeof w, &r); !e.ok())
      return e;
    return t.wait(r);
  });
  ASSERT_FALSE(st[1].ok());
  EXPECT_HAS(st[1].message(),
             "rank 1 received 8 bytes from rank 0 (tag 3), expected 4");
}

TEST(TcpTransport, ARankThatNeverStartsIsNamed) {
  // Rank 2 of 3 never runs: rank 0 names it; rank 1 hears nothing back.
  std::vector<Status> st = runTcpRanks(3, [](Transport &) { return Status(); },
                                       /*timeout=*/1, {0, 1});
  ASSERT_FALSE(st[0].ok());
  EXPECT_HAS(st[0].message(), "rank(s) 2 did not connect to 127.0.0.1:");
  ASSERT_FALSE(st[1].ok());
  EXPECT_HAS(st[1].message(), "rank 1 of 3");
}

TEST(TcpTransport, NoRankZeroIsNamed) {
  std::vector<Status> st =
      runTcpRanks(2, [](Transport &) { return Status(); }, /*timeout=*/1, {1});
  ASSERT_FALSE(st[1].ok());
  EXPECT_HAS(st[1].message(), "rank 1 of 2: cannot reach rank 0 at 127.0.0.1:");
}

// Rank 0's address answers no SYN (a listener with a full accept queue
// drops them, as a filtered port or a dead host does): the connect gives up
// at the timeout instead of waiting out the kernel's retries (~2 minutes).
TEST(TcpTransport, AnUnansweredConnectEndsAtTheTimeout) {
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(lfd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(lfd, reinterpret_cast<sockaddr *>(&a), &len);
  ASSERT_EQ(::listen(lfd, 0), 0);
  // Fill the accept queue (never accepted): later SYNs are dropped.
  std::vector<int> fillers;
  for (int i = 0; i < 3; ++i) {
    const int f = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ::connect(f, reinterpret_cast<sockaddr *>(&a), sizeof a);
    fillers.push_back(f);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  WorldEnv w;
  w.rank = 1;
  w.size = 2;
  w.masterAddr = "127.0.0.1";
  w.masterPort = ntohs(a.sin_port);
  std::unique_ptr<Transport> t;
  const auto start = std::chrono::steady_clock::now();
  Status st = connectTcp(w, /*timeout=*/1.5, &t);
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  for (int f : fillers)
    ::close(f);
  ::close(lfd);
  ASSERT_FALSE(st.ok());
  EXPECT_HAS(st.message(), "rank 1 of 2: cannot reach rank 0 at 127.0.0.1:");
  EXPECT_LT(took, 6.0) << st.message();
}

TEST(TcpTransport, TheEnvironmentIsCheckedVariableByVariable) {
  const char *names[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                         "MASTER_PORT"};
  for (const char *n : names)
    ::unsetenv(n);
  WorldEnv w;
  Status st = worldFromEnv(&w);
  ASSERT_FALSE(st.ok());
  EXPECT_HAS(st.message(), "WORLD_SIZE is not set");
  ::setenv("WORLD_SIZE", "4", 1);
  ::setenv("RANK", "4", 1);
  st = worldFromEnv(&w);
  ASSERT_FALSE(st.ok());
  EXPECT_HAS(st.message(), "RANK=4: expected an integer in [0, 3]");
  ::setenv("RANK", "2", 1);
  st = worldFromEnv(&w);
  ASSERT_FALSE(st.ok());
  EXPECT_HAS(st.message(), "MASTER_PORT is not set");
  ::setenv("MASTER_PORT", "http", 1);
  st = worldFromEnv(&w);
  ASSERT_FALSE(st.ok());
  EXPECT_HAS(st.message(), "MASTER_PORT=http");
  ::setenv("MASTER_PORT", "29500", 1);
  st = worldFromEnv(&w);
  ASSERT_FALSE(st.ok());
  EXPECT_HAS(st.message(), "MASTER_ADDR is not set");
  ::setenv("MASTER_ADDR", "node0", 1);
  ::setenv("LOCAL_RANK", "1", 1);
  st = worldFromEnv(&w);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(w.rank, 2);
  EXPECT_EQ(w.size, 4);
  EXPECT_EQ(w.localRank, 1);
  EXPECT_EQ(w.masterAddr, "node0");
  EXPECT_EQ(w.masterPort, 29500);
  for (const char *n : names)
    ::unsetenv(n);
}
