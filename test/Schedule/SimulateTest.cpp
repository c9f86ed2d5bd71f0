//===- SimulateTest.cpp - the timing simulator against the formulas -------===//
//
// Part of weipipe. With unit costs (whole-model pass times T_F, T_B, T_W
// split evenly over the chunks, transfers free) the simulated bubble ratio of
// every generated and verified schedule equals weipipe-spec.md §3.1's
// formula exactly: GPipe and 1F1B (P-1)/(N+P-1), interleaved 1F1B
// (P-1)/(vN+P-1), ZB-H1 with T_F = T_B = T_W (P-1)/(3N+P-1) (bubble time
// (P-1)(T_F+T_B-T_W)/P over N(T_F+T_B+T_W)/P of work), WeiPipe-Interleave
// (P-1)/(N+P-1) with N = P N_w and N_w >= 2, and the reconstructed WZB1
// (P-1)/(1.5N+P-1) (N_w >= 2) and WZB2 (P-1)/(3N+P-1). B and W are costed
// apart: without a weight gradient (W = 0, attention's case at long
// context) ZB-H1 has nothing to fill its bubbles with and falls back to
// 1F1B's. Then transfers on links with latency and bandwidth, link FIFO
// order, and the errors.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Schedule/Simulate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

using namespace weipipe::schedule;

namespace {

Schedule verified(const std::string &name, int p, int n, int v = 1) {
  Options o;
  o.name = name;
  o.ranks = p;
  o.microbatches = n;
  o.chunksPerRank = v;
  Schedule s;
  std::string error;
  EXPECT_TRUE(generateSchedule(o, &s, &error)) << name << ": " << error;
  EXPECT_EQ(verifySchedule(s), "") << name;
  return s;
}

double bubble(const Schedule &s, double tf, double tb, double tw) {
  Simulation sim;
  const std::string error =
      simulateSchedule(s, CostModel::uniform(s.chunks, tf, tb, tw), &sim);
  EXPECT_EQ(error, "") << s.name;
  return sim.bubbleRatio;
}

double formula(int p, double n) { return (p - 1) / (n + p - 1); }

#define EXPECT_FORMULA(got, want, what)                                        \
  EXPECT_NEAR(got, want, 1e-12) << (what)

std::string tag(const std::string &name, int p, int n, int v = 1) {
  return name + " P=" + std::to_string(p) + " N=" + std::to_string(n) +
         (v > 1 ? " v=" + std::to_string(v) : "");
}

} // namespace

TEST(SimulateFormulas, GPipeAnd1F1B) {
  for (const char *name : {"gpipe", "1f1b"})
    for (int p : {2, 3, 4, 8})
      for (int n : {1, p, 2 * p, 3 * p + 1}) {
        const Schedule s = verified(name, p, n);
        EXPECT_FORMULA(bubble(s, 1, 2, 0), formula(p, n), tag(name, p, n));
        EXPECT_FORMULA(bubble(s, 1, 1, 1), formula(p, n), tag(name, p, n));
      }
}

TEST(SimulateFormulas, Interleaved1F1B) {
  for (int p : {2, 4})
    for (int v : {2, 3})
      for (int n : {p, 2 * p, 4 * p}) {
        const Schedule s = verified("interleaved-1f1b", p, n, v);
        EXPECT_FORMULA(bubble(s, 1, 2, 0), formula(p, double(v) * n),
                       tag("interleaved-1f1b", p, n, v));
      }
}

TEST(SimulateFormulas, ZeroBubbleH1CostsBAndWApart) {
  for (int p : {2, 4, 8})
    for (int n : {p, 2 * p, 4 * p}) {
      const Schedule s = verified("zb-h1", p, n);
      EXPECT_FORMULA(bubble(s, 1, 1, 1), formula(p, 3.0 * n), tag("zb-h1", p, n));
      // No weight gradient to defer: 1F1B's bubble.
      EXPECT_FORMULA(bubble(s, 1, 2, 0), formula(p, n), tag("zb-h1", p, n));
    }
}

TEST(SimulateFormulas, WeiPipeInterleave) {
  for (int p : {2, 3, 4, 8})
    for (int nw : {2, 3, 4}) {
      const Schedule s = verified("weipipe-interleave", p, p * nw);
      EXPECT_FORMULA(bubble(s, 1, 2, 0), formula(p, p * nw),
                     tag("weipipe-interleave", p, p * nw));
      EXPECT_FORMULA(bubble(s, 1, 1, 1), formula(p, p * nw),
                     tag("weipipe-interleave", p, p * nw));
    }
}

TEST(SimulateFormulas, WeiPipeZeroBubble) {
  for (int p : {2, 4, 8}) {
    for (int nw : {2, 3, 4}) {
      const Schedule s = verified("weipipe-zb1", p, p * nw);
      EXPECT_FORMULA(bubble(s, 1, 1, 1), formula(p, 1.5 * p * nw),
                     tag("weipipe-zb1", p, p * nw));
    }
    const Schedule s = verified("weipipe-zb2", p, p);
    EXPECT_FORMULA(bubble(s, 1, 1, 1), formula(p, 3.0 * p),
                   tag("weipipe-zb2", p, p));
  }
}

// 1F1B on 2 ranks, one micro-batch: F0, the activation over the link, F1,
// B1, its gradient back, B0. Each message takes latency + bytes/bandwidth.
TEST(SimulateTransfers, LatencyAndBandwidth) {
  const Schedule s = verified("1f1b", 2, 1);
  CostModel m = CostModel::uniform(2, 2, 4, 0); // F 1, B 2 per chunk
  m.activationBytes = {300, 0};
  m.intraNode.latency = 0.5;
  m.intraNode.bandwidth = 100;
  Simulation sim;
  ASSERT_EQ(simulateSchedule(s, m, &sim), "");
  // F0 [0,1], send [1,4.5], F1+B1 [4.5,7.5], send [7.5,11], B0 [11,13].
  EXPECT_DOUBLE_EQ(sim.iterationTime, 13.0);
  EXPECT_DOUBLE_EQ(sim.busy[0], 3.0);
  EXPECT_DOUBLE_EQ(sim.busy[1], 3.0);
  EXPECT_DOUBLE_EQ(sim.linkBytes[0 * 2 + 1], 300.0);
  EXPECT_DOUBLE_EQ(sim.linkBytes[1 * 2 + 0], 300.0);
  ASSERT_EQ(sim.transfers.size(), 2u);
  EXPECT_DOUBLE_EQ(sim.transfers[0].start, 1.0);
  EXPECT_DOUBLE_EQ(sim.transfers[0].end, 4.5);
  EXPECT_DOUBLE_EQ(sim.transfers[1].end, 11.0);
  EXPECT_NEAR(sim.bubbleRatio, 1.0 - 6.0 / 26.0, 1e-12);
}

// Messages on one link go one after the other: GPipe's forwards on 2 ranks
// post one activation per micro-batch faster than a slow link carries them.
TEST(SimulateTransfers, ALinkCarriesOneMessageAtATime) {
  const Schedule s = verified("gpipe", 2, 3);
  CostModel m = CostModel::uniform(2, 2, 4, 0);
  m.activationBytes = {10, 0};
  m.intraNode.bandwidth = 2; // 5 per message, F takes 1
  Simulation sim;
  ASSERT_EQ(simulateSchedule(s, m, &sim), "");
  std::vector<double> ends;
  for (const TimedAction &t : sim.transfers)
    if (t.rank == 0)
      ends.push_back(t.end);
  ASSERT_EQ(ends.size(), 3u);
  EXPECT_DOUBLE_EQ(ends[0], 6.0);  // posted at 1
  EXPECT_DOUBLE_EQ(ends[1], 11.0); // posted at 2, waits for the link
  EXPECT_DOUBLE_EQ(ends[2], 16.0);
}

// Ranks 0-1 and 2-3 are two nodes: GPipe's activations 1 -> 2 and the
// gradients 2 -> 1 take the inter-node link, the others the intra-node one.
TEST(SimulateTransfers, NodesPickTheLink) {
  const Schedule s = verified("gpipe", 4, 1);
  CostModel m = CostModel::uniform(4, 4, 4, 0);
  m.activationBytes = {10, 10, 10, 0};
  m.ranksPerNode = 2;
  m.intraNode.bandwidth = 10; // 1 per message
  m.interNode.bandwidth = 1;  // 10 per message
  m.interNode.latency = 0.5;
  Simulation sim;
  ASSERT_EQ(simulateSchedule(s, m, &sim), "");
  ASSERT_EQ(sim.transfers.size(), 6u);
  for (const TimedAction &t : sim.transfers) {
    const bool crosses = t.rank / 2 != t.peer / 2;
    EXPECT_DOUBLE_EQ(t.end - t.start, crosses ? 10.5 : 1.0)
        << t.rank << " -> " << t.peer;
  }
}

// A shared link is one channel per sending node: WeiPipe-Interleave's two
// rings between the 2 ranks of one node take turns on it, so no two of
// its messages overlap, and the iteration is no shorter than with a
// channel per direction.
TEST(SimulateTransfers, ASharedLinkCarriesOneMessageAtATime) {
  const Schedule s = verified("weipipe-interleave", 2, 4);
  CostModel m = CostModel::uniform(2, 2, 4, 0);
  m.weightBytes = {8, 8};
  m.intraNode.bandwidth = 4; // 2 per chunk, as long as a forward
  Simulation apart, shared;
  ASSERT_EQ(simulateSchedule(s, m, &apart), "");
  m.intraNode.shared = true;
  ASSERT_EQ(simulateSchedule(s, m, &shared), "");
  std::vector<std::pair<double, double>> spans;
  bool overlapApart = false;
  for (size_t i = 0; i < apart.transfers.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      overlapApart |= apart.transfers[i].start < apart.transfers[j].end &&
                      apart.transfers[j].start < apart.transfers[i].end;
  EXPECT_TRUE(overlapApart); // else the test shows nothing
  for (size_t i = 0; i < shared.transfers.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      EXPECT_FALSE(shared.transfers[i].start < shared.transfers[j].end &&
                   shared.transfers[j].start < shared.transfers[i].end)
          << "transfers " << j << " and " << i << " overlap";
  EXPECT_GE(shared.iterationTime, apart.iterationTime);
}

// A shared channel takes messages in the order they are posted, whichever
// rank posts them: rank 1 sends at once, rank 0 after a forward of 10, both
// on their node's one channel (10 per message). Rank 1's goes first.
TEST(SimulateTransfers, ASharedChannelGoesByPostingTime) {
  Schedule s;
  s.name = "hand-made";
  s.ranks = 2;
  s.chunks = 1;
  s.owner = {0};
  Content act{Content::Activation, 0, 0};
  // A send from slot 0 (token 0) or a receive into slot 1 (token 1).
  auto transfer = [&](Op op, int peer) {
    Action a;
    a.op = op;
    const int k = op == Op::Send ? 0 : 1;
    a.slots = {k};
    a.peer = peer;
    a.token = k;
    if (op == Op::Send)
      a.contents = {act};
    return a;
  };
  Action wait;
  wait.op = Op::Wait;
  wait.tokens = {0, 1};
  Action forward;
  forward.op = Op::Forward;
  forward.chunk = 0;
  forward.microbatch = 0;
  const std::vector<Slot> slots = {{SlotKind::Activations, "A"},
                                   {SlotKind::Activations, "B"}};
  s.programs = {
      {slots, {forward, transfer(Op::Send, 1), transfer(Op::Recv, 1), wait}},
      {slots, {transfer(Op::Send, 0), transfer(Op::Recv, 0), wait}}};
  CostModel m = CostModel::uniform(1, 10, 0, 0);
  m.activationBytes = {10};
  m.intraNode.bandwidth = 1;
  m.intraNode.shared = true;
  Simulation sim;
  ASSERT_EQ(simulateSchedule(s, m, &sim), "");
  ASSERT_EQ(sim.transfers.size(), 2u);
  for (const TimedAction &t : sim.transfers) {
    EXPECT_DOUBLE_EQ(t.start, t.rank == 1 ? 0.0 : 10.0) << "rank " << t.rank;
    EXPECT_DOUBLE_EQ(t.end, t.rank == 1 ? 10.0 : 20.0) << "rank " << t.rank;
  }
  EXPECT_DOUBLE_EQ(sim.iterationTime, 20.0);
}

// The tail (the collectives that close an iteration) adds to its time.
TEST(SimulateTransfers, TheTailEndsTheIteration) {
  const Schedule s = verified("1f1b", 2, 2);
  CostModel m = CostModel::uniform(2, 2, 4, 0);
  Simulation without, with;
  ASSERT_EQ(simulateSchedule(s, m, &without), "");
  m.tail = 3;
  ASSERT_EQ(simulateSchedule(s, m, &with), "");
  EXPECT_DOUBLE_EQ(with.iterationTime, without.iterationTime + 3);
}

TEST(SimulateErrors, NamesWhatStopsIt) {
  Schedule s = verified("1f1b", 2, 2);
  Simulation sim;
  EXPECT_NE(simulateSchedule(s, CostModel::uniform(3, 1, 2, 0), &sim)
                .find("the cost model has 3 entries where the schedule has 2 "
                      "chunks"),
            std::string::npos);

  Schedule unverified;
  Options o;
  o.name = "1f1b";
  o.ranks = 2;
  o.microbatches = 2;
  std::string error;
  ASSERT_TRUE(generateSchedule(o, &unverified, &error)) << error;
  EXPECT_NE(simulateSchedule(unverified, CostModel::uniform(2, 1, 2, 0), &sim)
                .find("verify the schedule first"),
            std::string::npos);

  // Rank 0's first send is gone (and its wait for it): rank 1's receive
  // never completes.
  std::vector<Action> &acts = s.programs[0].actions;
  for (size_t k = 0; k < acts.size(); ++k)
    if (acts[k].op == Op::Send) {
      const int token = acts[k].token;
      acts.erase(acts.begin() + long(k));
      for (Action &a : acts)
        if (a.op == Op::Wait)
          a.tokens.erase(std::remove(a.tokens.begin(), a.tokens.end(), token),
                         a.tokens.end());
      break;
    }
  const std::string e =
      simulateSchedule(s, CostModel::uniform(2, 1, 2, 0), &sim);
  EXPECT_NE(e.find("rank 1, step"), std::string::npos) << e;
  EXPECT_NE(e.find("deadlock"), std::string::npos) << e;
}
