//===- Simulate.cpp - timing simulation of per-rank programs --------------===//
//
// Part of weipipe. See include/weipipe/Schedule/Simulate.h for the timing
// semantics. One action at a time, always of the rank with the earliest
// clock among those not waiting for a receive whose matching send is not
// posted yet, so that a channel several ranks share takes their messages in
// the order they are posted. No rank able to go on is a deadlock (which
// verifySchedule rules out, so it means a schedule that was not
// verified).
//
//===----------------------------------------------------------------------===//

#include "weipipe/Schedule/Simulate.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

namespace weipipe::schedule {

CostModel CostModel::uniform(int chunks, double tf, double tb, double tw) {
  CostModel m;
  const size_t c = size_t(std::max(chunks, 0));
  m.forward.assign(c, chunks > 0 ? tf / chunks : 0.0);
  m.backwardInput.assign(c, chunks > 0 ? tb / chunks : 0.0);
  m.backwardWeight.assign(c, chunks > 0 ? tw / chunks : 0.0);
  m.optimizerStep.assign(c, 0.0);
  m.weightBytes.assign(c, 0.0);
  m.activationBytes.assign(c, 0.0);
  return m;
}

namespace {

std::string where(const Schedule &s, int r, size_t k) {
  const Action &a = s.programs[size_t(r)].actions[k];
  return "rank " + std::to_string(r) + ", step " + std::to_string(k) + " (" +
         opName(a.op) + " at turn " + std::to_string(a.turn) + ")";
}

/// The compute cost of `a`, or -1 for an action that is not computation.
double computeCost(const Action &a, const CostModel &m) {
  const size_t c = size_t(a.chunk);
  switch (a.op) {
  case Op::Forward:
    return m.forward[c];
  case Op::BackwardInput:
    return m.backwardInput[c];
  case Op::BackwardWeight:
    return m.backwardWeight[c];
  case Op::Backward:
    return m.backward.empty() ? m.backwardInput[c] + m.backwardWeight[c]
                              : m.backward[c];
  case Op::OptimizerStep:
    return m.optimizerStep[c];
  default:
    return -1;
  }
}

double contentBytes(const Content &c, const CostModel &m) {
  switch (c.kind) {
  case Content::Weights:
  case Content::Grads:
    return m.weightBytes[size_t(c.chunk)];
  case Content::Activation: // chunk's output
    return m.activationBytes[size_t(c.chunk)];
  case Content::ActivationGrad: // of chunk's input: chunk - 1's output
    return c.chunk > 0 ? m.activationBytes[size_t(c.chunk - 1)] : 0;
  default:
    return 0;
  }
}

struct RankState {
  size_t pc = 0;
  double clock = 0;
  /// Receive token -> (peer, index among the receives from that peer); the
  /// send tokens posted (complete at once).
  std::map<int, std::pair<int, size_t>> recvs;
  std::set<int> sends;
  std::vector<size_t> recvCount; ///< per peer
};

} // namespace

std::string simulateSchedule(const Schedule &s, const CostModel &m,
                             Simulation *out) {
  const int P = s.ranks;
  const size_t C = size_t(std::max(s.chunks, 0));
  if (P < 1 || s.programs.size() != size_t(P))
    return "the schedule has " + std::to_string(s.programs.size()) +
           " programs for " + std::to_string(P) + " ranks";
  for (const std::vector<double> *v :
       {&m.forward, &m.backwardInput, &m.backwardWeight, &m.optimizerStep,
        &m.weightBytes, &m.activationBytes, &m.backward})
    if (v->size() != C && !(v == &m.backward && v->empty()))
      return "the cost model has " + std::to_string(v->size()) +
             " entries where the schedule has " + std::to_string(C) + " chunks";
  for (int r = 0; r < P; ++r)
    for (size_t k = 0; k < s.programs[size_t(r)].actions.size(); ++k) {
      const Action &a = s.programs[size_t(r)].actions[k];
      const bool chunked = computeCost(a, m) >= 0;
      if (chunked && (a.chunk < 0 || size_t(a.chunk) >= C))
        return where(s, r, k) + ": chunk " + std::to_string(a.chunk) +
               " is out of range";
      if ((a.op == Op::Send || a.op == Op::Recv) &&
          (a.peer < 0 || a.peer >= P || a.peer == r))
        return where(s, r, k) + ": bad peer " + std::to_string(a.peer);
      if (a.op == Op::Send && a.contents.size() != a.slots.size())
        return where(s, r, k) +
               ": what the message carries is unknown (verify the schedule "
               "first)";
    }

  Simulation sim;
  sim.busy.assign(size_t(P), 0);
  sim.finish.assign(size_t(P), 0);
  sim.linkBytes.assign(size_t(P) * size_t(P), 0);
  // Channels: one per ordered pair, then one per node for a shared
  // intra-node link, then one per node for a shared inter-node link.
  const int perNode = m.ranksPerNode > 0 ? m.ranksPerNode : P;
  const size_t nodes = size_t((P + perNode - 1) / perNode);
  std::vector<double> channelFree(size_t(P) * size_t(P) + 2 * nodes, 0);
  auto route = [&](int from,
                   int to) -> std::pair<size_t, const CostModel::Link *> {
    const size_t node = size_t(from / perNode);
    const bool inside = node == size_t(to / perNode);
    const CostModel::Link &l = inside ? m.intraNode : m.interNode;
    if (!l.shared)
      return {size_t(from) * size_t(P) + size_t(to), &l};
    return {size_t(P) * size_t(P) + (inside ? 0 : nodes) + node, &l};
  };
  // Arrival times of the messages on each directed link, in order.
  std::vector<std::vector<double>> arrivals(size_t(P) * size_t(P));
  std::vector<RankState> ranks(static_cast<size_t>(P));
  for (RankState &st : ranks)
    st.recvCount.assign(size_t(P), 0);

  // Whether rank r's next action is a Wait for a receive whose matching
  // send is not posted yet; an error for a token never posted.
  std::string error;
  auto blocked = [&](int r) {
    const RankState &st = ranks[size_t(r)];
    const Action &a = s.programs[size_t(r)].actions[st.pc];
    if (a.op != Op::Wait)
      return false;
    for (int t : a.tokens) {
      if (st.sends.count(t))
        continue; // buffered: complete when posted
      auto it = st.recvs.find(t);
      if (it == st.recvs.end()) {
        error = where(s, r, st.pc) + ": token " + std::to_string(t) +
                " was never posted";
        return true;
      }
      const auto &[peer, index] = it->second;
      if (index >= arrivals[size_t(peer) * size_t(P) + size_t(r)].size())
        return true;
    }
    return false;
  };
  // One action of rank r (not blocked).
  auto advance = [&](int r) {
    RankState &st = ranks[size_t(r)];
    const Action &a = s.programs[size_t(r)].actions[st.pc];
    if (double cost = computeCost(a, m); cost >= 0) {
      sim.compute.push_back({r, st.pc, -1, 0, st.clock, st.clock + cost});
      st.clock += cost;
      sim.busy[size_t(r)] += cost;
    } else if (a.op == Op::Send) {
      double bytes = 0;
      for (const Content &c : a.contents)
        bytes += contentBytes(c, m);
      const size_t link = size_t(r) * size_t(P) + size_t(a.peer);
      const auto [channel, l] = route(r, a.peer);
      const double start = std::max(st.clock, channelFree[channel]);
      const double end =
          start + l->latency + (l->bandwidth > 0 ? bytes / l->bandwidth : 0);
      channelFree[channel] = end;
      if (l->synchronous)
        st.clock = end;
      arrivals[link].push_back(end);
      sim.linkBytes[link] += bytes;
      sim.transfers.push_back({r, st.pc, a.peer, bytes, start, end});
      st.sends.insert(a.token);
    } else if (a.op == Op::LoadMaster || a.op == Op::Zero ||
               a.op == Op::AddInto) {
      if (m.memoryBandwidth > 0 && a.chunk >= 0 && size_t(a.chunk) < C)
        st.clock += (a.op == Op::Zero         ? 1
                     : a.op == Op::LoadMaster ? 2
                                              : 3) *
                    m.weightBytes[size_t(a.chunk)] / m.memoryBandwidth;
    } else if (a.op == Op::Recv) {
      st.recvs[a.token] = {a.peer, st.recvCount[size_t(a.peer)]++};
    } else if (a.op == Op::Wait) {
      double ready = st.clock;
      for (int t : a.tokens)
        if (auto it = st.recvs.find(t); it != st.recvs.end())
          ready =
              std::max(ready, arrivals[size_t(it->second.first) * size_t(P) +
                                       size_t(r)][it->second.second]);
      st.clock = ready;
    }
    ++st.pc;
  };
  // Always the rank with the earliest clock among those that can go on:
  // shared channels then take messages in the order they are posted. Ranks
  // that can go on wait in `ready` by clock; a rank blocked on a receive
  // leaves it until a message to it is posted.
  std::set<std::pair<double, int>> ready;
  std::vector<bool> waiting(size_t(P), false);
  for (int r = 0; r < P; ++r)
    if (!s.programs[size_t(r)].actions.empty())
      ready.insert({0.0, r});
  while (!ready.empty()) {
    const int r = ready.begin()->second;
    ready.erase(ready.begin());
    RankState &st = ranks[size_t(r)];
    if (blocked(r)) {
      if (!error.empty())
        return error;
      waiting[size_t(r)] = true;
      continue;
    }
    const Action &a = s.programs[size_t(r)].actions[st.pc];
    advance(r);
    if (a.op == Op::Send && waiting[size_t(a.peer)]) {
      waiting[size_t(a.peer)] = false;
      ready.insert({ranks[size_t(a.peer)].clock, a.peer});
    }
    if (st.pc < s.programs[size_t(r)].actions.size())
      ready.insert({st.clock, r});
  }
  std::string stuck;
  for (int r = 0; r < P; ++r)
    if (ranks[size_t(r)].pc < s.programs[size_t(r)].actions.size())
      stuck += (stuck.empty() ? "" : "; ") + where(s, r, ranks[size_t(r)].pc) +
               ": waits for a receive that no send matches";
  if (!stuck.empty()) // every rank still running waits
    return "deadlock: " + stuck;
  for (int r = 0; r < P; ++r)
    sim.finish[size_t(r)] = ranks[size_t(r)].clock;
  double total = 0;
  for (int r = 0; r < P; ++r) {
    sim.iterationTime = std::max(sim.iterationTime, sim.finish[size_t(r)]);
    total += sim.busy[size_t(r)];
  }
  sim.iterationTime += m.tail;
  sim.bubbleRatio =
      sim.iterationTime > 0 ? 1.0 - total / (P * sim.iterationTime) : 0.0;
  *out = std::move(sim);
  return "";
}

} // namespace weipipe::schedule
