//===- Tcp.cpp - ranks as processes, over TCP
//------------------------------===//
//
// Part of weipipe's runtime. The `tcp` transport: one rank per process,
// started as torchrun starts them (RANK, WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT). Bootstrap: rank 0 listens at MASTER_ADDR:MASTER_PORT; every
// other rank opens a listening socket of its own, connects to rank 0 and
// says who it is and where it listens; rank 0 answers everyone with the
// table; then each rank connects to every lower rank > 0. One connection per
// pair of ranks carries both directions.
//
// Data: a send copies its bytes into the peer's outgoing queue and returns
// (buffered, as the contract says); one I/O thread per process writes the
// queues and reads every connection all the time into (peer, tag)
// mailboxes, so two ranks sending to each other never block each other; a
// receive's wait sleeps until its message is there. Framing: a 24-byte
// header (kind, tag, bytes) and the payload. Kinds: data; fin (the rank
// finished: no more messages from it); abort (the rank failed, the payload
// says why).
//
// Nothing hangs: a peer's abort fails every later operation with "rank R
// failed: WHY"; a connection that ends without a fin (the process died)
// with "rank R disconnected"; a wait for a peer that has finished, or that
// sends nothing for the timeout, names it. Closing sends fin to everybody
// and waits (bounded by the timeout) until every peer has finished too, so
// that no rank closes a connection its peer is still reading.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/transport/Transport.h"

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace weipipe::rt::transport {

namespace {

using Clock = std::chrono::steady_clock;

std::string sysError(const std::string &what) {
  return what + ": " + std::strerror(errno);
}

enum Kind : uint32_t { Data = 0, Fin = 1, Abort = 2 };
struct Header {
  uint32_t kind = Data;
  uint32_t pad = 0;
  uint64_t tag = 0;
  uint64_t bytes = 0;
};
static_assert(sizeof(Header) == 24, "the wire header is 24 bytes");

/// Blocking exact I/O for the bootstrap (before the I/O thread runs).
bool writeAll(int fd, const void *p, size_t n) {
  const char *c = static_cast<const char *>(p);
  while (n) {
    const ssize_t k = ::send(fd, c, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return false;
    c += k;
    n -= size_t(k);
  }
  return true;
}

/// Reads n bytes, waiting at most until `deadline`.
bool readAll(int fd, void *p, size_t n, Clock::time_point deadline) {
  char *c = static_cast<char *>(p);
  while (n) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - Clock::now());
    if (left.count() <= 0)
      return false;
    pollfd pf{fd, POLLIN, 0};
    const int r = ::poll(&pf, 1, int(std::min<int64_t>(left.count(), 1000)));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      continue;
    const ssize_t k = ::recv(fd, c, n, 0);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return false;
    c += k;
    n -= size_t(k);
  }
  return true;
}

/// A listening socket on `port` (0: any free one) of every interface.
int listenOn(int port, std::string *error, int *boundPort) {
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int v6only = 0, one = 1;
  int fd4 = -1;
  int s = fd;
  if (s >= 0) {
    ::setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_any;
    a.sin6_port = htons(uint16_t(port));
    if (::bind(s, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
      ::close(s);
      s = -1;
    }
  }
  if (s < 0) { // no IPv6 here: IPv4 only
    fd4 = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    s = fd4;
    if (s < 0) {
      *error = sysError("socket");
      return -1;
    }
    ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = htons(uint16_t(port));
    if (::bind(s, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
      *error = sysError("cannot listen on port " + std::to_string(port));
      ::close(s);
      return -1;
    }
  }
  if (::listen(s, 128) != 0) {
    *error = sysError("listen");
    ::close(s);
    return -1;
  }
  sockaddr_storage got{};
  socklen_t len = sizeof got;
  ::getsockname(s, reinterpret_cast<sockaddr *>(&got), &len);
  *boundPort = got.ss_family == AF_INET6
                   ? ntohs(reinterpret_cast<sockaddr_in6 *>(&got)->sin6_port)
                   : ntohs(reinterpret_cast<sockaddr_in *>(&got)->sin_port);
  return s;
}

/// connect(2) giving up at `deadline`: a peer whose SYNs go unanswered (a
/// full accept queue, a filtered port, a host that is down) holds a
/// blocking connect for the kernel's SYN retries, about two minutes,
/// whatever --timeout says. errno says why on failure.
bool connectBy(int fd, const sockaddr *addr, socklen_t len,
               Clock::time_point deadline) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
    return false;
  if (::connect(fd, addr, len) != 0) {
    if (errno != EINPROGRESS)
      return false;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - Clock::now());
      if (left.count() <= 0) {
        errno = ETIMEDOUT;
        return false;
      }
      pollfd pf{fd, POLLOUT, 0};
      const int r = ::poll(&pf, 1, int(std::min<int64_t>(left.count(), 1000)));
      if (r < 0 && errno != EINTR)
        return false;
      if (r <= 0)
        continue;
      int err = 0;
      socklen_t el = sizeof err;
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
        return false;
      if (err != 0) {
        errno = err;
        return false;
      }
      break;
    }
  }
  return ::fcntl(fd, F_SETFL, flags) == 0;
}

/// Connects to host:port, retrying until `deadline` (the peer may not
/// listen yet).
int connectTo(const std::string &host, int port, Clock::time_point deadline,
              std::string *error) {
  for (;;) {
    addrinfo hints{}, *res = nullptr;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    const int g =
        ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
    if (g != 0) {
      *error = "cannot resolve '" + host + "': " + ::gai_strerror(g);
      return -1;
    }
    int fd = -1;
    for (addrinfo *p = res; p && fd < 0; p = p->ai_next) {
      fd =
          ::socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol);
      if (fd >= 0 && !connectBy(fd, p->ai_addr, p->ai_addrlen, deadline)) {
        *error =
            sysError("cannot connect to " + host + ":" + std::to_string(port));
        ::close(fd);
        fd = -1;
      }
    }
    ::freeaddrinfo(res);
    if (fd >= 0) {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return fd;
    }
    if (Clock::now() >= deadline)
      return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

/// Accepts one connection, waiting at most until `deadline`; the peer's
/// address into *host.
int acceptBy(int lfd, Clock::time_point deadline, std::string *host) {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - Clock::now());
    if (left.count() <= 0)
      return -1;
    pollfd pf{lfd, POLLIN, 0};
    if (::poll(&pf, 1, int(std::min<int64_t>(left.count(), 1000))) <= 0)
      continue;
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    const int fd =
        ::accept4(lfd, reinterpret_cast<sockaddr *>(&a), &len, SOCK_CLOEXEC);
    if (fd < 0)
      continue;
    char buf[INET6_ADDRSTRLEN] = {0};
    if (a.ss_family == AF_INET6) {
      const auto *s6 = reinterpret_cast<sockaddr_in6 *>(&a);
      if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
        ::inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], buf, sizeof buf);
      else
        ::inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof buf);
    } else {
      ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in *>(&a)->sin_addr, buf,
                  sizeof buf);
    }
    *host = buf;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
  }
}

/// What a rank tells rank 0, and rank 0 everybody: fixed-size records.
struct Hello {
  uint32_t magic = 0x77707470; // "wptp"
  int32_t rank = -1, size = 0, port = 0;
  char host[64] = {0};
};

class TcpTransport : public Transport {
public:
  TcpTransport(int rank, int size, double timeout)
      : rank_(rank), size_(size), timeout_(timeout), peers_(size_t(size)) {}
  ~TcpTransport() override { close(); }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  Status start(std::vector<int> fds) {
    for (int p = 0; p < size_; ++p) {
      peers_[size_t(p)].fd = fds[size_t(p)];
      if (fds[size_t(p)] >= 0)
        ::fcntl(fds[size_t(p)], F_SETFL,
                ::fcntl(fds[size_t(p)], F_GETFL) | O_NONBLOCK);
    }
    if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0)
      return Status::error(sysError("pipe"));
    for (int p = 0; p < size_; ++p)
      lastHeard_[p] = Clock::now();
    io_ = std::thread([this] { loop(); });
    return {};
  }

  Status send(int peer, uint64_t tag, const void *data, size_t bytes,
              Request *req) override {
    if (Status st = checkPeer(peer); !st.ok())
      return st;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!failure_.empty())
        return Status::error(failure_);
      queue(peer, Data, tag, data, bytes);
    }
    poke();
    *req = Request{peer, tag, nullptr, bytes, true};
    return {};
  }

  Status wait(Request &req) override {
    if (req.done)
      return {};
    if (Status st = checkPeer(req.peer); !st.ok()) // never posted
      return st;
    const auto key = std::make_pair(req.peer, req.tag);
    const auto started = Clock::now();
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      if (!failure_.empty())
        return Status::error(failure_);
      auto it = boxes_.find(key);
      if (it != boxes_.end() && !it->second.empty()) {
        std::vector<uint8_t> msg = std::move(it->second.front());
        it->second.pop_front();
        return complete(req, msg);
      }
      const Peer &p = peers_[size_t(req.peer)];
      if (p.gotFin)
        return Status::error("rank " + std::to_string(rank_) +
                             " waits for rank " + std::to_string(req.peer) +
                             " (tag " + std::to_string(req.tag) +
                             "), which finished without sending it");
      // Silence since this wait began or the peer's last bytes, whichever
      // is later (a rank that was busy itself does not blame its peer).
      const auto heard = std::max(lastHeard_[req.peer], started);
      if (Clock::now() - heard > std::chrono::duration<double>(timeout_))
        return Status::error(
            "rank " + std::to_string(rank_) + " waited " +
            std::to_string(int(timeout_)) + " s for rank " +
            std::to_string(req.peer) + " (tag " + std::to_string(req.tag) +
            ") and heard nothing: a hang, or a rank much slower than the "
            "others (--timeout sets the limit in seconds)");
      cv_.wait_for(lock, std::chrono::milliseconds(500));
    }
  }

  Status check() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return failure_.empty() ? Status() : Status::error(failure_);
  }

  void abort(const std::string &why) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (failure_.empty())
        failure_ = "rank " + std::to_string(rank_) + " failed: " + why;
      for (int p = 0; p < size_; ++p)
        if (p != rank_)
          queue(p, Abort, 0, why.data(), why.size());
      aborted_ = true;
    }
    poke();
  }

  /// Sends fin to everybody, waits (at most the timeout) for the queues to
  /// drain and every peer to finish too, then closes.
  void close() {
    if (!io_.joinable())
      return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int p = 0; p < size_; ++p)
        if (p != rank_ && !aborted_)
          queue(p, Fin, 0, nullptr, 0);
      closing_ = true;
    }
    poke();
    io_.join();
    for (Peer &p : peers_)
      if (p.fd >= 0)
        ::close(p.fd);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

private:
  struct Peer {
    int fd = -1;
    std::deque<std::vector<uint8_t>> out; // whole frames
    size_t outAt = 0;                     // bytes of out.front() written
    Header in;                            // the frame being read
    size_t inAt = 0;                      // its bytes read so far
    std::vector<uint8_t> payload;
    bool gotFin = false, eof = false, sentFin = false;
  };

  /// With mu_ held.
  void queue(int peer, Kind kind, uint64_t tag, const void *data,
             size_t bytes) {
    Header h;
    h.kind = kind;
    h.tag = tag;
    h.bytes = bytes;
    std::vector<uint8_t> f(sizeof h + bytes);
    std::memcpy(f.data(), &h, sizeof h);
    if (bytes)
      std::memcpy(f.data() + sizeof h, data, bytes);
    peers_[size_t(peer)].out.push_back(std::move(f));
  }

  void poke() {
    const char c = 1;
    (void)!::write(wake_[1], &c, 1);
  }

  /// With mu_ held: the first failure, every waiter woken.
  void fail(const std::string &why) {
    if (failure_.empty())
      failure_ = why;
    cv_.notify_all();
  }

  /// With mu_ held: a whole frame arrived from `p`.
  void deliver(int p, Peer &peer) {
    lastHeard_[p] = Clock::now();
    switch (Kind(peer.in.kind)) {
    case Data:
      boxes_[{p, peer.in.tag}].push_back(std::move(peer.payload));
      break;
    case Fin:
      peer.gotFin = true;
      break;
    case Abort:
      fail("rank " + std::to_string(p) +
           " failed: " + std::string(peer.payload.begin(), peer.payload.end()));
      break;
    default:
      fail("rank " + std::to_string(rank_) +
           ": a malformed message from rank " + std::to_string(p) + " (kind " +
           std::to_string(peer.in.kind) + ")");
    }
    peer.payload = {};
    peer.inAt = 0;
    cv_.notify_all();
  }

  void loop() {
    Clock::time_point closingSince{};
    for (;;) {
      std::vector<pollfd> fds;
      std::vector<int> who;
      {
        std::unique_lock<std::mutex> lock(mu_);
        bool written = true, finished = true;
        for (int p = 0; p < size_; ++p) {
          Peer &peer = peers_[size_t(p)];
          if (p == rank_ || peer.fd < 0)
            continue;
          short ev = 0;
          if (!peer.eof)
            ev |= POLLIN;
          if (!peer.out.empty())
            ev |= POLLOUT;
          written = written && peer.out.empty();
          finished = finished && (peer.gotFin || peer.eof);
          if (ev) {
            fds.push_back({peer.fd, ev, 0});
            who.push_back(p);
          }
        }
        // Closing ends once everything is written and every peer has
        // finished (or is gone); aborting once the aborts are written.
        if (closing_ || aborted_) {
          if (closingSince == Clock::time_point{})
            closingSince = Clock::now();
          const bool late = Clock::now() - closingSince >
                            std::chrono::duration<double>(
                                aborted_ ? std::min(timeout_, 5.0) : timeout_);
          if (late || (written && (aborted_ || finished)))
            return;
        }
      }
      fds.push_back({wake_[0], POLLIN, 0});
      const int n = ::poll(fds.data(), fds.size(), 200);
      if (n < 0 && errno != EINTR) {
        std::lock_guard<std::mutex> lock(mu_);
        fail(sysError("rank " + std::to_string(rank_) +
                      ": the transport's poll failed"));
        return;
      }
      if (fds.back().revents & POLLIN) {
        char buf[64];
        while (::read(wake_[0], buf, sizeof buf) > 0) {
        }
      }
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i + 1 < fds.size(); ++i) {
        const int p = who[i];
        Peer &peer = peers_[size_t(p)];
        if (fds[i].revents & (POLLIN | POLLHUP | POLLERR))
          readFrom(p, peer);
        if ((fds[i].revents & POLLOUT) && peer.fd >= 0)
          writeTo(p, peer);
      }
    }
  }

  void readFrom(int p, Peer &peer) {
    for (;;) {
      ssize_t k;
      if (peer.inAt < sizeof(Header)) {
        k = ::recv(peer.fd, reinterpret_cast<char *>(&peer.in) + peer.inAt,
                   sizeof(Header) - peer.inAt, 0);
      } else {
        const size_t got = peer.inAt - sizeof(Header);
        k = ::recv(peer.fd, peer.payload.data() + got, peer.in.bytes - got, 0);
      }
      if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
      if (k < 0 && errno == EINTR)
        continue;
      if (k <= 0) {
        peer.eof = true;
        if (!peer.gotFin && !closing_)
          fail("rank " + std::to_string(p) +
               " disconnected (its process ended or its connection broke "
               "before it finished; see its own output)");
        cv_.notify_all();
        return;
      }
      peer.inAt += size_t(k);
      lastHeard_[p] = Clock::now(); // bytes of a long message count too
      if (peer.inAt == sizeof(Header)) {
        if (peer.in.bytes > (uint64_t(1) << 40)) {
          fail("rank " + std::to_string(rank_) +
               ": a malformed message header from rank " + std::to_string(p));
          peer.eof = true;
          return;
        }
        peer.payload.resize(size_t(peer.in.bytes));
      }
      if (peer.inAt >= sizeof(Header) &&
          peer.inAt - sizeof(Header) == peer.in.bytes)
        deliver(p, peer);
    }
  }

  void writeTo(int p, Peer &peer) {
    while (!peer.out.empty()) {
      std::vector<uint8_t> &f = peer.out.front();
      const ssize_t k = ::send(peer.fd, f.data() + peer.outAt,
                               f.size() - peer.outAt, MSG_NOSIGNAL);
      if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
      if (k < 0 && errno == EINTR)
        continue;
      if (k <= 0) {
        // The peer is gone: what we still had for it cannot matter unless
        // we are still running, which its reading side reports.
        peer.out.clear();
        peer.outAt = 0;
        if (!closing_ && !aborted_)
          fail("rank " + std::to_string(p) +
               " disconnected (sending to it failed: " + std::strerror(errno) +
               ")");
        return;
      }
      peer.outAt += size_t(k);
      if (peer.outAt == f.size()) {
        peer.out.pop_front();
        peer.outAt = 0;
      }
    }
  }

  const int rank_, size_;
  const double timeout_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Peer> peers_;
  std::map<std::pair<int, uint64_t>, std::deque<std::vector<uint8_t>>> boxes_;
  std::map<int, Clock::time_point> lastHeard_;
  std::string failure_;
  bool closing_ = false, aborted_ = false;
  int wake_[2] = {-1, -1};
  std::thread io_;
};

Status envInt(const char *name, int lo, int hi, bool required, int *out) {
  const char *v = std::getenv(name);
  if (!v || !*v) {
    if (required)
      return Status::error(std::string(name) +
                           " is not set (torchrun sets RANK, WORLD_SIZE, "
                           "MASTER_ADDR and MASTER_PORT for every process)");
    return {};
  }
  char *end = nullptr;
  errno = 0;
  const long x = std::strtol(v, &end, 10);
  if (errno || end == v || *end || x < lo || x > hi)
    return Status::error(std::string(name) + "=" + v +
                         ": expected an integer in [" + std::to_string(lo) +
                         ", " + std::to_string(hi) + "]");
  *out = int(x);
  return {};
}

} // namespace

Status worldFromEnv(WorldEnv *w) {
  WorldEnv e;
  if (Status st = envInt("WORLD_SIZE", 1, 1 << 20, true, &e.size); !st.ok())
    return st;
  if (Status st = envInt("RANK", 0, e.size - 1, true, &e.rank); !st.ok())
    return st;
  if (Status st = envInt("LOCAL_RANK", 0, 1 << 20, false, &e.localRank);
      !st.ok())
    return st;
  if (Status st = envInt("MASTER_PORT", 1, 65535, e.size > 1, &e.masterPort);
      !st.ok())
    return st;
  // torchrun's agent keeps its own store listening at MASTER_PORT
  // (TORCHELASTIC_USE_AGENT_STORE=True): rank 0 listens at the next port
  // then. WEIPIPE_MASTER_PORT chooses one outright.
  if (const char *u = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
      u && std::string(u) == "True" && e.masterPort > 0 && e.masterPort < 65535)
    e.masterPort += 1;
  if (Status st = envInt("WEIPIPE_MASTER_PORT", 1, 65535, false, &e.masterPort);
      !st.ok())
    return st;
  const char *addr = std::getenv("MASTER_ADDR");
  if (e.size > 1 && (!addr || !*addr))
    return Status::error("MASTER_ADDR is not set (torchrun sets RANK, "
                         "WORLD_SIZE, MASTER_ADDR and MASTER_PORT for every "
                         "process)");
  e.masterAddr = addr ? addr : "";
  *w = e;
  return {};
}

Status connectTcp(const WorldEnv &w, double timeoutSeconds,
                  std::unique_ptr<Transport> *out) {
  const std::string me =
      "rank " + std::to_string(w.rank) + " of " + std::to_string(w.size);
  if (w.size < 1 || w.rank < 0 || w.rank >= w.size)
    return Status::error(me + ": not a rank of the world");
  const auto deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(timeoutSeconds));
  std::vector<int> fds(size_t(w.size), -1);
  auto closeAll = [&] {
    for (int &fd : fds)
      if (fd >= 0)
        ::close(fd);
  };
  std::string error;
  const std::string master = w.masterAddr + ":" + std::to_string(w.masterPort);
  std::vector<Hello> table(size_t(w.size));
  int lfd = -1;
  if (w.size > 1) {
    int port = 0;
    lfd = listenOn(w.rank == 0 ? w.masterPort : 0, &error, &port);
    if (lfd < 0)
      return Status::error(
          me + ": " + error +
          (w.rank == 0 ? " (another program, or a run still ending, holds "
                         "it: set WEIPIPE_MASTER_PORT to a free port)"
                       : ""));
    if (w.rank == 0) {
      // Everybody says hello; then the table goes back to everybody.
      for (int k = 1; k < w.size; ++k) {
        std::string host;
        const int fd = acceptBy(lfd, deadline, &host);
        Hello h;
        if (fd < 0 || !readAll(fd, &h, sizeof h, deadline)) {
          std::string missing;
          for (int r = 1; r < w.size; ++r)
            if (fds[size_t(r)] < 0)
              missing += (missing.empty() ? "" : ", ") + std::to_string(r);
          if (fd >= 0)
            ::close(fd);
          ::close(lfd);
          closeAll();
          return Status::error(
              me + ": rank(s) " + missing + " did not connect to " + master +
              " within " + std::to_string(int(timeoutSeconds)) +
              " s (started? the same MASTER_ADDR/MASTER_PORT and "
              "WORLD_SIZE?)");
        }
        if (h.magic != Hello().magic || h.size != w.size || h.rank < 1 ||
            h.rank >= w.size || fds[size_t(h.rank)] >= 0) {
          ::close(fd);
          ::close(lfd);
          closeAll();
          return Status::error(
              me + ": a process at " + host + " says it is rank " +
              std::to_string(h.rank) + " of " + std::to_string(h.size) +
              (h.magic != Hello().magic
                   ? " (not a weipipe process)"
                   : "; WORLD_SIZE here is " + std::to_string(w.size) +
                         " (each rank once)"));
        }
        std::snprintf(h.host, sizeof h.host, "%s", host.c_str());
        table[size_t(h.rank)] = h;
        fds[size_t(h.rank)] = fd;
      }
      for (int r = 1; r < w.size; ++r)
        if (!writeAll(fds[size_t(r)], table.data(),
                      table.size() * sizeof(Hello))) {
          ::close(lfd);
          closeAll();
          return Status::error(me + ": rank " + std::to_string(r) +
                               " left during the bootstrap");
        }
    } else {
      const int fd = connectTo(w.masterAddr, w.masterPort, deadline, &error);
      if (fd < 0) {
        ::close(lfd);
        return Status::error(me + ": cannot reach rank 0 at " + master +
                             " within " + std::to_string(int(timeoutSeconds)) +
                             " s (" + error + ")");
      }
      fds[0] = fd;
      Hello h;
      h.rank = w.rank;
      h.size = w.size;
      h.port = port;
      if (!writeAll(fd, &h, sizeof h) ||
          !readAll(fd, table.data(), table.size() * sizeof(Hello), deadline)) {
        ::close(lfd);
        closeAll();
        return Status::error(me + ": rank 0 at " + master +
                             " did not answer (another WORLD_SIZE there, or "
                             "another program at that port?)");
      }
      // Connect to every lower rank > 0; accept every higher one.
      for (int r = 1; r < w.rank; ++r) {
        const Hello &t = table[size_t(r)];
        const int c = connectTo(t.host, t.port, deadline, &error);
        Hello mine = h;
        if (c < 0 || !writeAll(c, &mine, sizeof mine)) {
          ::close(lfd);
          closeAll();
          return Status::error(me + ": cannot connect to rank " +
                               std::to_string(r) + " at " + t.host + ":" +
                               std::to_string(t.port) + " (" + error + ")");
        }
        fds[size_t(r)] = c;
      }
      for (int k = w.rank + 1; k < w.size; ++k) {
        std::string host;
        const int c = acceptBy(lfd, deadline, &host);
        Hello theirs;
        if (c < 0 || !readAll(c, &theirs, sizeof theirs, deadline) ||
            theirs.magic != Hello().magic || theirs.rank <= w.rank ||
            theirs.rank >= w.size || fds[size_t(theirs.rank)] >= 0) {
          if (c >= 0)
            ::close(c);
          ::close(lfd);
          closeAll();
          return Status::error(me + ": the higher ranks did not all connect "
                                    "within the timeout");
        }
        fds[size_t(theirs.rank)] = c;
      }
    }
    ::close(lfd);
  }
  auto t = std::make_unique<TcpTransport>(w.rank, w.size, timeoutSeconds);
  if (Status st = t->start(fds); !st.ok()) {
    closeAll();
    return Status::error(me + ": " + st.message());
  }
  *out = std::move(t);
  return {};
}

} // namespace weipipe::rt::transport
