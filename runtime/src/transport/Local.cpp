//===- Local.cpp - ranks as threads of one process ------------------------===//
//
// Part of weipipe's runtime. The `local` transport: a world of P ranks in one
// process, one thread each. A send copies its bytes into the (source,
// destination, tag) mailbox at once; a receive's wait takes the oldest
// message there, sleeping on a condition variable until one arrives (no
// spinning: a waiting rank leaves its core to the others). One mutex guards
// the world; transfers are memcpy, so it is never held for long.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/transport/Transport.h"

#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>
#include <vector>

namespace weipipe::rt::transport {

Transport::~Transport() = default;

Status Transport::checkPeer(int peer) const {
  if (peer < 0 || peer >= size() || peer == rank())
    return Status::error("rank " + std::to_string(rank()) + ": no peer rank " +
                         std::to_string(peer) + " in a world of " +
                         std::to_string(size()));
  return {};
}

Status Transport::recv(int peer, uint64_t tag, void *data, size_t bytes,
                       Request *req) {
  if (Status st = checkPeer(peer); !st.ok())
    return st;
  *req = Request{peer, tag, data, bytes, false};
  return {};
}

Status Transport::complete(Request &req,
                           const std::vector<uint8_t> &msg) const {
  if (msg.size() != req.bytes)
    return Status::error("rank " + std::to_string(rank()) + " received " +
                         std::to_string(msg.size()) + " bytes from rank " +
                         std::to_string(req.peer) + " (tag " +
                         std::to_string(req.tag) + "), expected " +
                         std::to_string(req.bytes));
  if (!msg.empty())
    std::memcpy(req.recvData, msg.data(), msg.size());
  req.done = true;
  return {};
}

namespace {

using Key = std::tuple<int, int, uint64_t>; // source, destination, tag

struct World {
  explicit World(int n) : size(n), live(n), awaiting(size_t(n)) {}

  const int size;
  std::mutex mu;
  std::condition_variable cv;
  std::map<Key, std::deque<std::vector<uint8_t>>> boxes;
  int live;                                 // ranks whose body has not ended
  std::vector<std::optional<Key>> awaiting; // per rank, while it sleeps
  std::string failure; // set once: the first failure, or the deadlock
  int origin = -1;     // the rank that failed first (-1: none, or deadlock)

  static std::string describe(const Key &k) {
    return "rank " + std::to_string(std::get<1>(k)) + " waits for rank " +
           std::to_string(std::get<0>(k)) + " (tag " +
           std::to_string(std::get<2>(k)) + ")";
  }

  /// With the lock held: every live rank asleep on an empty mailbox can
  /// never be woken. Records the deadlock and wakes everybody.
  bool detectDeadlock() {
    if (!failure.empty() || live == 0)
      return !failure.empty();
    int stuck = 0;
    std::string waits;
    for (const std::optional<Key> &k : awaiting) {
      if (!k)
        continue;
      auto it = boxes.find(*k);
      if (it != boxes.end() && !it->second.empty())
        return false; // a message is there: that rank will run
      ++stuck;
      waits += (waits.empty() ? "" : "; ") + describe(*k);
    }
    if (stuck < live)
      return false;
    failure = "deadlock: every running rank waits for a message that no "
              "rank will send (" +
              waits + ")";
    cv.notify_all();
    return true;
  }

  void fail(int rank, const std::string &why) {
    std::lock_guard<std::mutex> lock(mu);
    if (failure.empty()) {
      failure = "rank " + std::to_string(rank) + " failed: " + why;
      origin = rank;
    }
    cv.notify_all();
  }

  void finished() {
    std::lock_guard<std::mutex> lock(mu);
    --live;
    detectDeadlock();
  }
};

class LocalTransport : public Transport {
public:
  LocalTransport(World &w, int rank) : w_(w), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return w_.size; }
  bool sharesAddressSpace() const override { return true; }

  Status send(int peer, uint64_t tag, const void *data, size_t bytes,
              Request *req) override {
    if (Status st = checkPeer(peer); !st.ok())
      return st;
    std::vector<uint8_t> msg(bytes);
    if (bytes)
      std::memcpy(msg.data(), data, bytes);
    std::lock_guard<std::mutex> lock(w_.mu);
    if (!w_.failure.empty())
      return Status::error(w_.failure);
    w_.boxes[Key{rank_, peer, tag}].push_back(std::move(msg));
    w_.cv.notify_all();
    *req = Request{peer, tag, nullptr, bytes, true};
    return {};
  }

  Status wait(Request &req) override {
    if (req.done)
      return {};
    const Key key{req.peer, rank_, req.tag};
    std::unique_lock<std::mutex> lock(w_.mu);
    for (;;) {
      if (!w_.failure.empty())
        return Status::error(w_.failure);
      auto &box = w_.boxes[key];
      if (!box.empty()) {
        std::vector<uint8_t> msg = std::move(box.front());
        box.pop_front();
        return complete(req, msg);
      }
      w_.awaiting[size_t(rank_)] = key;
      if (w_.detectDeadlock()) {
        w_.awaiting[size_t(rank_)].reset();
        return Status::error(w_.failure);
      }
      w_.cv.wait(lock);
      w_.awaiting[size_t(rank_)].reset();
    }
  }

  void abort(const std::string &why) override { w_.fail(rank_, why); }

private:
  World &w_;
  const int rank_;
};

} // namespace

Status runLocalRanks(int ranks,
                     const std::function<Status(Transport &)> &body) {
  if (ranks < 1)
    return Status::error("a world needs at least one rank, got " +
                         std::to_string(ranks));
  World world(ranks);
  std::vector<Status> results(static_cast<size_t>(ranks));
  std::vector<std::thread> threads;
  threads.reserve(size_t(ranks));
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&world, &results, &body, r] {
      LocalTransport t(world, r);
      Status st;
      try {
        st = body(t);
      } catch (const std::exception &e) {
        st = Status::error(std::string("exception: ") + e.what());
      } catch (...) {
        st = Status::error("unknown exception");
      }
      if (st.ok())
        world.finished();
      else
        world.fail(r, st.message());
      results[size_t(r)] = std::move(st);
    });
  for (std::thread &t : threads)
    t.join();
  if (world.origin >= 0)
    return Status::error("rank " + std::to_string(world.origin) + ": " +
                         results[size_t(world.origin)].message());
  if (!world.failure.empty())
    return Status::error(world.failure);
  return {};
}

} // namespace weipipe::rt::transport
