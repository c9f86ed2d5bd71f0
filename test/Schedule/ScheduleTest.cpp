//===- ScheduleTest.cpp - tests of the schedule library -------------------===//
//
// Part of weipipe. Every schedule generates and verifies over a grid of
// ranks and micro-batches; the WeiPipe timelines equal weipipe-spec.md's
// tables; turn counts and message counts follow the spec's formulas; each
// verifier rule rejects a schedule broken on purpose, naming the rank and the
// reason; the option checks reject every bad input.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Schedule/Schedule.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <regex>
#include <sstream>

using namespace weipipe::schedule;

namespace {

Options opts(const std::string &name, int p, int n, int v = 1, int ns = 1) {
  Options o;
  o.name = name;
  o.ranks = p;
  o.microbatches = n;
  o.chunksPerRank = v;
  o.nodeSize = ns;
  return o;
}

Schedule make(const std::string &name, int p, int n, int v = 1, int ns = 1) {
  Schedule s;
  std::string error;
  EXPECT_TRUE(generateSchedule(opts(name, p, n, v, ns), &s, &error))
      << name << ": " << error;
  return s;
}

/// The compute steps per (turn, rank), as the spec writes them: "B3.0+F0.4".
/// Micro-batches at or above `below` are left out.
std::map<std::pair<int, int>, std::string> cells(const Schedule &s,
                                                 int below = 1 << 30) {
  std::map<std::pair<int, int>, std::string> out;
  for (int r = 0; r < s.ranks; ++r)
    for (const Action &a : s.programs[r].actions) {
      char letter;
      if (a.op == Op::Forward)
        letter = 'F';
      else if (a.op == Op::BackwardWeight)
        letter = 'W';
      else if (a.op == Op::Backward || a.op == Op::BackwardInput)
        letter = 'B';
      else
        continue;
      if (a.microbatch >= below)
        continue;
      std::string &c = out[{a.turn, r}];
      c += (c.empty() ? "" : "+") + std::string(1, letter) +
           std::to_string(a.chunk) + "." + std::to_string(a.microbatch);
    }
  return out;
}

/// Parses a spec table ("turn | w0 w1 ..." then "  4 | B3.0+F0.4  F3.1 ...";
/// "." is idle; lines that do not start with a turn number are skipped).
std::map<std::pair<int, int>, std::string> specCells(const std::string &text,
                                                     int below = 1 << 30) {
  std::map<std::pair<int, int>, std::string> out;
  std::istringstream lines(text);
  std::string line;
  std::regex item("([FBW])(\\d+)\\.(\\d+)");
  while (std::getline(lines, line)) {
    size_t bar = line.find('|');
    if (bar == std::string::npos)
      continue;
    std::string head = line.substr(0, bar);
    head.erase(std::remove(head.begin(), head.end(), ' '), head.end());
    if (head.empty() || !std::all_of(head.begin(), head.end(), ::isdigit))
      continue;
    int turn = std::stoi(head);
    std::istringstream words(line.substr(bar + 1));
    std::string w;
    for (int r = 0; words >> w; ++r) {
      if (w[0] == '(')
        break; // a comment
      if (w == ".")
        continue;
      std::string kept;
      std::istringstream parts(w);
      std::string part;
      while (std::getline(parts, part, '+')) {
        std::smatch m;
        EXPECT_TRUE(std::regex_match(part, m, item)) << part;
        if (std::stoi(m[3]) < below)
          kept += (kept.empty() ? "" : "+") + part;
      }
      if (!kept.empty())
        out[{turn, r}] = kept;
    }
  }
  return out;
}

int lastTurn(const Schedule &s) {
  int t = 0;
  for (const RankProgram &p : s.programs)
    for (const Action &a : p.actions)
      t = std::max(t, a.turn);
  return t;
}

int slotOf(const RankProgram &p, const std::string &label) {
  for (size_t i = 0; i < p.slots.size(); ++i)
    if (p.slots[i].label == label)
      return int(i);
  ADD_FAILURE() << "no slot " << label;
  return -1;
}

int find(const RankProgram &p, const std::function<bool(const Action &)> &pred,
         int from = 0) {
  for (size_t k = from; k < p.actions.size(); ++k)
    if (pred(p.actions[k]))
      return int(k);
  ADD_FAILURE() << "no such action";
  return -1;
}

bool isOp(const Action &a, Op op) { return a.op == op; }

/// Removes `token` from the Wait that lists it (and the Wait if it empties).
void unwait(RankProgram &p, int token) {
  for (size_t k = 0; k < p.actions.size(); ++k) {
    Action &a = p.actions[k];
    if (a.op != Op::Wait)
      continue;
    auto it = std::find(a.tokens.begin(), a.tokens.end(), token);
    if (it == a.tokens.end())
      continue;
    a.tokens.erase(it);
    if (a.tokens.empty())
      p.actions.erase(p.actions.begin() + k);
    return;
  }
  ADD_FAILURE() << "token " << token << " is not waited";
}

void expectContains(const std::string &text,
                    const std::vector<std::string> &parts) {
  EXPECT_FALSE(text.empty());
  for (const std::string &part : parts)
    EXPECT_NE(text.find(part), std::string::npos)
        << "missing \"" << part << "\" in: " << text;
}

//===----------------------------------------------------------------------===//
// Names, chunks, option errors
//===----------------------------------------------------------------------===//

TEST(ScheduleOptions, Names) {
  std::vector<std::string> expected = {
      "single",      "gpipe",       "1f1b",          "interleaved-1f1b",
      "zb-h1",       "fsdp",        "weipipe-naive", "weipipe-interleave",
      "weipipe-zb1", "weipipe-zb2", "tawpipe"};
  EXPECT_EQ(scheduleNames(), expected);
  EXPECT_STREQ(opName(Op::Forward), "forward");
  EXPECT_STREQ(opName(Op::BackwardInput), "backward_input");
  EXPECT_STREQ(opName(Op::OptimizerStep), "optimizer_step");
  EXPECT_STREQ(opName(Op::Send), "send");
}

TEST(ScheduleOptions, Chunks) {
  std::string error;
  EXPECT_EQ(chunksFor(opts("single", 1, 3), &error), 1);
  EXPECT_EQ(chunksFor(opts("interleaved-1f1b", 4, 8, 3), &error), 12);
  EXPECT_EQ(chunksFor(opts("1f1b", 4, 7), &error), 4);
  EXPECT_EQ(chunksFor(opts("tawpipe", 8, 16, 1, 4), &error), 8);
  EXPECT_EQ(chunksFor(opts("weipipe-zb2", 4, 4), &error), 4);
}

TEST(ScheduleOptions, Errors) {
  struct Case {
    Options o;
    std::vector<std::string> says;
  };
  std::vector<Case> cases = {
      {opts("pipedream", 2, 2),
       {"unknown schedule 'pipedream'", "weipipe-zb2", "single, gpipe, 1f1b"}},
      {opts("1f1b", 0, 2), {"--ranks must be at least 1"}},
      {opts("gpipe", 2, 0), {"--microbatches must be at least 1"}},
      {opts("single", 2, 2), {"single", "--ranks=1"}},
      {opts("weipipe-naive", 4, 6),
       {"needs --microbatches divisible by --ranks"}},
      {opts("weipipe-interleave", 3, 4),
       {"needs --microbatches divisible by --ranks"}},
      {opts("weipipe-zb1", 4, 6),
       {"needs --microbatches divisible by --ranks"}},
      {opts("fsdp", 4, 5), {"needs --microbatches divisible by --ranks"}},
      {opts("tawpipe", 4, 5), {"needs --microbatches divisible by --ranks"}},
      {opts("interleaved-1f1b", 4, 6, 2),
       {"needs --microbatches divisible by --ranks"}},
      {opts("interleaved-1f1b", 4, 8, 0),
       {"--chunks-per-rank must be at least 1"}},
      {opts("tawpipe", 6, 6, 1, 4), {"--node-size", "divide --ranks"}},
      {opts("tawpipe", 6, 6, 1, 0), {"--node-size must be at least 1"}},
      {opts("weipipe-zb1", 3, 3), {"needs an even --ranks"}},
      {opts("weipipe-zb2", 4, 8),
       {"needs --microbatches equal to --ranks", "one round"}},
      {opts("1f1b", 4, 8, 2),
       {"--chunks-per-rank=2 is only for "
        "interleaved-1f1b"}},
      {opts("weipipe-interleave", 4, 8, 1, 2),
       {"--node-size=2 is only for "
        "tawpipe and fsdp"}},
      {opts("fsdp", 6, 6, 1, 4), {"--node-size", "divide --ranks"}},
  };
  for (const Case &c : cases) {
    std::string error;
    EXPECT_EQ(chunksFor(c.o, &error), -1) << c.o.name;
    expectContains(error, c.says);
    Schedule s;
    std::string error2;
    EXPECT_FALSE(generateSchedule(c.o, &s, &error2));
    EXPECT_EQ(error, error2);
  }
}

//===----------------------------------------------------------------------===//
// Every schedule verifies
//===----------------------------------------------------------------------===//

class EverySchedule : public ::testing::TestWithParam<std::string> {};

TEST_P(EverySchedule, GeneratesAndVerifies) {
  const std::string name = GetParam();
  int verified = 0;
  for (int p : {1, 2, 3, 4, 8}) {
    std::vector<int> ns = {p, 2 * p, 3 * p};
    for (int extra : {1, p + 1, 2 * p - 1})
      if (std::find(ns.begin(), ns.end(), extra) == ns.end())
        ns.push_back(extra);
    for (int n : ns)
      for (int v : {1, 2, 3})
        for (int node : {1, 2, 4, 8}) {
          if ((v != 1 && name != "interleaved-1f1b") ||
              (node != 1 && name != "tawpipe" && name != "fsdp"))
            continue;
          Options o = opts(name, p, n, v, node);
          std::string error;
          if (chunksFor(o, &error) < 0) {
            // Only the documented restrictions refuse.
            bool expected =
                (name == "single" && p != 1) ||
                (n % p != 0 && name != "gpipe" && name != "1f1b" &&
                 name != "zb-h1" && name != "single") ||
                ((name == "tawpipe" || name == "fsdp") && p % node != 0) ||
                (name == "weipipe-zb1" && p % 2 != 0) ||
                (name == "weipipe-zb2" && n != p);
            EXPECT_TRUE(expected)
                << name << " P=" << p << " N=" << n << ": " << error;
            continue;
          }
          Schedule s;
          ASSERT_TRUE(generateSchedule(o, &s, &error)) << error;
          std::string result = verifySchedule(s);
          EXPECT_EQ(result, "") << name << " P=" << p << " N=" << n
                                << " v=" << v << " node=" << node;
          if (!result.empty())
            continue;
          ++verified;
          for (const RankProgram &prog : s.programs)
            for (const Action &a : prog.actions)
              if (a.op == Op::Send || a.op == Op::Recv) {
                ASSERT_EQ(a.contents.size(), a.slots.size());
                for (const Content &c : a.contents)
                  EXPECT_NE(c.kind, Content::Undefined);
              }
        }
  }
  EXPECT_GT(verified, 0);
}

INSTANTIATE_TEST_SUITE_P(Schedules, EverySchedule,
                         ::testing::ValuesIn(scheduleNames()),
                         [](const auto &info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

TEST(ScheduleVerify, LargerGrid) {
  for (const std::string &name : scheduleNames()) {
    if (name == "single")
      continue;
    int n = name == "weipipe-zb2" ? 16 : 64;
    Schedule s = make(name, 16, n, name == "interleaved-1f1b" ? 2 : 1,
                      name == "tawpipe" || name == "fsdp" ? 4 : 1);
    EXPECT_EQ(verifySchedule(s), "") << name;
  }
}

// fsdp with --node-size: each chunk's weights cross to another node once
// (to its relay), not once per rank there; the schedule still verifies.
TEST(ScheduleVerify, FsdpRelaysAcrossNodes) {
  auto crossings = [](Schedule s, int ns) {
    EXPECT_EQ(verifySchedule(s), "");
    int weights = 0;
    for (int r = 0; r < s.ranks; ++r)
      for (const Action &a : s.programs[size_t(r)].actions)
        if (a.op == Op::Send && r / ns != a.peer / ns)
          for (const Content &c : a.contents)
            weights += c.kind == Content::Weights;
    return weights;
  };
  // 8 ranks in 2 nodes of 4; 8 chunks, 16 micro-batches: 2 x 2 x 8 = 32
  // gathers, each to the 4 ranks of the other node directly, or to 1 relay.
  const int gathers = 16 / 8 * 2 * 8;
  EXPECT_EQ(crossings(make("fsdp", 8, 16, 1, 1), 4), gathers * 4);
  EXPECT_EQ(crossings(make("fsdp", 8, 16, 1, 4), 4), gathers * 1);
}

TEST(ScheduleVerify, Owners) {
  Schedule wei = make("weipipe-interleave", 4, 4);
  EXPECT_EQ(wei.owner, (std::vector<int>{1, 2, 3, 0}));
  Schedule act = make("interleaved-1f1b", 3, 3, 2);
  EXPECT_EQ(act.owner, (std::vector<int>{0, 1, 2, 0, 1, 2}));
  Schedule fsdp = make("fsdp", 3, 3);
  EXPECT_EQ(fsdp.owner, (std::vector<int>{0, 1, 2}));
  // Two nodes of two ranks: chunk i on (i mod 2) * 2 + i / 2.
  Schedule taw = make("tawpipe", 4, 4, 1, 2);
  EXPECT_EQ(taw.owner, (std::vector<int>{0, 2, 1, 3}));
}

//===----------------------------------------------------------------------===//
// The spec's timelines (weipipe-spec.md section 2, P = 4, N_w = 2)
//===----------------------------------------------------------------------===//

const char *kNaive = R"(
turn | w0   w1   w2   w3
   0 | F0.0 .    .    .
   1 | F1.0 F0.1 .    .
   2 | F2.0 F1.1 F0.2 .
   3 | F3.0 F2.1 F1.2 F0.3
   4 | B3.0 F3.1 F2.2 F1.3
   5 | B2.0 B3.1 F3.2 F2.3
   6 | B1.0 B2.1 B3.2 F3.3
   7 | B0.0 B1.1 B2.2 B3.3
   8 | F0.4 B0.1 B1.2 B2.3
   9 | F1.4 F0.5 B0.2 B1.3
  10 | F2.4 F1.5 F0.6 B0.3
  11 | F3.4 F2.5 F1.6 F0.7
  12 | B3.4 F3.5 F2.6 F1.7
  13 | B2.4 B3.5 F3.6 F2.7
  14 | B1.4 B2.5 B3.6 F3.7
  15 | B0.4 B1.5 B2.6 B3.7
  16 | .    B0.5 B1.6 B2.7
  17 | .    .    B0.6 B1.7
  18 | .    .    .    B0.7
)";

const char *kInterleave = R"(
turn | w0         w1         w2         w3
   0 | F0.0       .          .          .
   1 | F1.0       F0.1       .          .
   2 | F2.0       F1.1       F0.2       .
   3 | F3.0       F2.1       F1.2       F0.3
   4 | B3.0+F0.4  F3.1       F2.2       F1.3
   5 | B2.0+F1.4  B3.1+F0.5  F3.2       F2.3
   6 | B1.0+F2.4  B2.1+F1.5  B3.2+F0.6  F3.3
   7 | B0.0+F3.4  B1.1+F2.5  B2.2+F1.6  B3.3+F0.7
   8 | B3.4       B0.1+F3.5  B1.2+F2.6  B2.3+F1.7
   9 | B2.4       B3.5       B0.2+F3.6  B1.3+F2.7
  10 | B1.4       B2.5       B3.6       B0.3+F3.7
  11 | B0.4       B1.5       B2.6       B3.7
  12 | .          B0.5       B1.6       B2.7
  13 | .          .          B0.6       B1.7
  14 | .          .          .          B0.7
  15 | (ring-only turn: each D-slot makes its last hop to its owner; then optimizer step)
)";

const char *kZB1 = R"(
turn | w0          w1          w2          w3            (P=4, N_w=2)
   0 | F0.0        .           .           .
   1 | F1.0        F0.1        .           .
   2 | F2.0        F1.1        F0.2        .
   3 | F3.0        F2.1        F1.2        F0.3
   4 | F0.4+B3.0   F3.1        F2.2        F1.3
   5 | F1.4+W3.0   F0.5+B3.1   F3.2        F2.3
   6 | F2.4+B2.0   F1.5+W3.1   F0.6+B3.2   F3.3
   7 | F3.4+W2.0   F2.5+B2.1   F1.6+W3.2   F0.7+B3.3
   8 | B1.0+B3.4   F3.5+W2.1   F2.6+B2.2   F1.7+W3.3
   9 | W1.0+W3.4   B1.1+B3.5   F3.6+W2.2   F2.7+B2.3
  10 | B0.0+B2.4   W1.1+W3.5   B1.2+B3.6   F3.7+W2.3
  11 | W0.0+W2.4   B0.1+B2.5   W1.2+W3.6   B1.3+B3.7
  12 | B1.4        W0.1+W2.5   B0.2+B2.6   W1.3+W3.7
  13 | W1.4        B1.5        W0.2+W2.6   B0.3+B2.7
  14 | B0.4        W1.5        B1.6        W0.3+W2.7
  15 | W0.4        B0.5        W1.6        B1.7
  16 | .           W0.5        B0.6        W1.7
  17 | .           .           W0.6        B0.7
  18 | .           .           .           W0.7
)";

// The spec's two-round WZB2 table, one block; our WZB2 runs one round
// (N == P), so only micro-batches 0..3 are compared.
const char *kZB2 = R"(
turn | w0   w1   w2   w3
   0 | F0.0 .    .    .
   1 | F1.0 F0.1 .    .
   2 | F2.0 F1.1 F0.2 .
   3 | F3.0 F2.1 F1.2 F0.3
   4 | B3.0 F3.1 F2.2 F1.3
   5 | B2.0 B3.1 F3.2 F2.3
   6 | B1.0 B2.1 B3.2 F3.3
   7 | B0.0 B1.1 B2.2 B3.3
   8 | W0.0 B0.1 B1.2 B2.3
   9 | W1.0 W0.1 B0.2 B1.3
  10 | W2.0 W1.1 W0.2 B0.3
  11 | W3.0 W2.1 W1.2 W0.3
  12 | F0.4 W3.1 W2.2 W1.3
  13 | F1.4 F0.5 W3.2 W2.3
  14 | F2.4 F1.5 F0.6 W3.3
  15 | F3.4 F2.5 F1.6 F0.7
  16 | B3.4 F3.5 F2.6 F1.7
  17 | B2.4 B3.5 F3.6 F2.7
  18 | B1.4 B2.5 B3.6 F3.7
  19 | B0.4 B1.5 B2.6 B3.7
  20 | W0.4 B0.5 B1.6 B2.7
  21 | W1.4 W0.5 B0.6 B1.7
  22 | W2.4 W1.5 W0.6 B0.7
  23 | W3.4 W2.5 W1.6 W0.7
  24 | .    W3.5 W2.6 W1.7
  25 | .    .    W3.6 W2.7
  26 | .    .    .    W3.7
)";

TEST(ScheduleSpec, NaiveTimeline) {
  Schedule s = make("weipipe-naive", 4, 8);
  EXPECT_EQ(cells(s), specCells(kNaive));
  // The ring-only turn after the last backward delivers every D.
  EXPECT_EQ(lastTurn(s), 19);
}

TEST(ScheduleSpec, InterleaveTimeline) {
  Schedule s = make("weipipe-interleave", 4, 8);
  EXPECT_EQ(cells(s), specCells(kInterleave));
  EXPECT_EQ(lastTurn(s), 15);
}

TEST(ScheduleSpec, ZB1Timeline) {
  Schedule s = make("weipipe-zb1", 4, 8);
  EXPECT_EQ(cells(s), specCells(kZB1));
  EXPECT_EQ(verifySchedule(s), "");
}

TEST(ScheduleSpec, ZB1ThirdMicroBatch) {
  // Spec: with N_w = 3 worker 0 goes on with t=12 F0.8+B1.4, t=13
  // F1.8+W1.4, t=14 F2.8+B0.4, t=15 F3.8+W0.4.
  auto c = cells(make("weipipe-zb1", 4, 12));
  EXPECT_EQ((c[{12, 0}]), "F0.8+B1.4");
  EXPECT_EQ((c[{13, 0}]), "F1.8+W1.4");
  EXPECT_EQ((c[{14, 0}]), "F2.8+B0.4");
  EXPECT_EQ((c[{15, 0}]), "F3.8+W0.4");
}

TEST(ScheduleSpec, ZB2Timeline) {
  Schedule s = make("weipipe-zb2", 4, 4);
  EXPECT_EQ(cells(s), specCells(kZB2, 4));
  // Rank 3 completes D_c with W(c) at turn 11 + c and steps it (c = 2, its
  // own chunk) or sends it to its owner, which steps it in the same turn.
  for (int c = 0; c < 4; ++c) {
    int owner = (c + 1) % 4;
    int k = find(s.programs[owner], [&](const Action &a) {
      return a.op == Op::OptimizerStep && a.chunk == c;
    });
    EXPECT_EQ(s.programs[owner].actions[k].turn, 11 + c);
  }
}

TEST(ScheduleSpec, TawPipeWithOneRankPerNodeIsNaive) {
  // One rank per node: the chunk passes r -> r+1 one tick apart, every rank
  // runs F of all chunks then B of all chunks: WeiPipe-Naive's timeline.
  for (int p : {2, 3, 4})
    for (int n : {p, 2 * p})
      EXPECT_EQ(cells(make("tawpipe", p, n)),
                cells(make("weipipe-naive", p, n)));
  // Within a node every rank runs the same chunk in the same tick.
  auto c = cells(make("tawpipe", 4, 8, 1, 2));
  EXPECT_EQ((c[{0, 0}]), "F0.0");
  EXPECT_EQ((c[{0, 1}]), "F0.1");
  EXPECT_EQ((c[{1, 2}]), "F0.2");
  EXPECT_EQ((c[{1, 3}]), "F0.3");
}

/// Messages a rank sends from slots with `label`.
int sendsFrom(const Schedule &s, int r, const std::string &label) {
  int count = 0;
  const RankProgram &p = s.programs[r];
  for (const Action &a : p.actions)
    if (a.op == Op::Send && p.slots[a.slots[0]].label == label)
      ++count;
  return count;
}

TEST(ScheduleSpec, InterleaveMessages) {
  // Each ring moves only while some rank needs it: the F-ring until the last
  // forward (N_w P + P - 2 hops), the B-ring from turn P to the last
  // backward (N_w P + P - 2), the D-ring from turn P through the ring-only
  // turn (N_w P + P, as in the paper-era code, spec section 5.3), plus the
  // seed swap with rank (1 - r) mod P. The paper-era code sends N_w P + P - 1
  // F and N_w P + P B hops.
  for (int p : {2, 3, 4, 8})
    for (int nw : {1, 2, 3}) {
      Schedule s = make("weipipe-interleave", p, nw * p);
      for (int r = 0; r < p; ++r) {
        int swap = (1 - r + p) % p != r ? 1 : 0;
        EXPECT_EQ(sendsFrom(s, r, "F"), nw * p + p - 2);
        EXPECT_EQ(sendsFrom(s, r, "B"), nw * p + p - 2 + swap);
        EXPECT_EQ(sendsFrom(s, r, "D"), nw * p + p);
        for (const Action &a : s.programs[r].actions) {
          if (a.op == Op::Send && a.turn > 0) {
            EXPECT_EQ(a.peer, (r + 1) % p);
          }
        }
      }
    }
}

TEST(ScheduleSpec, TurnCounts) {
  for (int p : {2, 3, 4, 8})
    for (int nw : {1, 2, 3}) {
      const int n = nw * p;
      // Interleave: N_w P + 2P - 1 compute turns and the ring-only turn;
      // every rank computes in N_w P + P of them: the bubble is P - 1 turns
      // per rank, (P-1)/(N+P-1) of the iteration as for 1F1B.
      Schedule s = make("weipipe-interleave", p, n);
      EXPECT_EQ(lastTurn(s), n + 2 * p - 1);
      auto c = cells(s);
      for (int r = 0; r < p; ++r) {
        int busy = 0;
        for (int t = 0; t <= n + 2 * p - 2; ++t)
          busy += c.count({t, r});
        EXPECT_EQ(busy, n + p) << "rank " << r;
      }
      // Naive: one op per turn, 2 N_w P + P - 1 turns plus the ring-only one.
      EXPECT_EQ(lastTurn(make("weipipe-naive", p, n)), 2 * n + p - 1);
      // GPipe and 1F1B at unit costs: 2(N + P - 1) turns.
      EXPECT_EQ(lastTurn(make("gpipe", p, n)), 2 * (n + p - 1) - 1);
      EXPECT_EQ(lastTurn(make("1f1b", p, n)), 2 * (n + p - 1) - 1);
      // ZB-H1 with F, B, W of one unit each: 3N + P - 1 turns; 1F1B with
      // the same units would need 3N + 3(P - 1).
      EXPECT_EQ(lastTurn(make("zb-h1", p, n)), 3 * n + p - 2);
    }
}

//===----------------------------------------------------------------------===//
// The verifier rejects broken schedules
//===----------------------------------------------------------------------===//

TEST(ScheduleVerifyErrors, DroppedRecv) {
  Schedule s = make("1f1b", 2, 2);
  RankProgram &p = s.programs[1];
  int k = find(p, [](const Action &a) { return isOp(a, Op::Recv); });
  int token = p.actions[k].token;
  p.actions.erase(p.actions.begin() + k);
  unwait(p, token);
  expectContains(verifySchedule(s),
                 {"rank 1, step", "forward 1.0", "holds nothing",
                  "not the activation 0.0"});
}

TEST(ScheduleVerifyErrors, UnmatchedSend) {
  Schedule s = make("gpipe", 2, 1);
  RankProgram &p = s.programs[0];
  Action send;
  send.op = Op::Send;
  send.turn = p.actions.back().turn;
  send.slots = {slotOf(p, "W0")};
  send.peer = 1;
  send.token = 999;
  p.actions.push_back(send);
  Action wait;
  wait.op = Op::Wait;
  wait.turn = send.turn;
  wait.tokens = {999};
  p.actions.push_back(wait);
  expectContains(verifySchedule(s),
                 {"rank 0, step", "send to 1", "no recv matches it"});
}

TEST(ScheduleVerifyErrors, SendsSwappedOnALink) {
  Schedule s = make("gpipe", 2, 4);
  RankProgram &p = s.programs[0];
  int i = find(p, [](const Action &a) { return isOp(a, Op::Send); });
  int j = find(
      p, [](const Action &a) { return isOp(a, Op::Send); }, i + 1);
  Action first = p.actions[i];
  first.turn = p.actions[j].turn;
  p.actions.erase(p.actions.begin() + i);
  p.actions.insert(p.actions.begin() + j, first);
  expectContains(verifySchedule(s),
                 {"rank 1, step", "forward 1.0",
                  "holds the activation 0.1, not the activation 0.0"});
}

TEST(ScheduleVerifyErrors, WrongWeightsSlot) {
  Schedule s = make("weipipe-interleave", 4, 4);
  RankProgram &p = s.programs[2];
  int k = find(p, [](const Action &a) { return isOp(a, Op::Backward); });
  p.actions[k].weights = slotOf(p, "F");
  expectContains(verifySchedule(s), {"rank 2, step", "backward 3.2",
                                     "weights slot 'F' holds the "
                                     "weights of chunk",
                                     "not the weights of chunk 3"});
}

TEST(ScheduleVerifyErrors, DroppedAccumulation) {
  Schedule s = make("fsdp", 4, 4);
  RankProgram &p = s.programs[0];
  int k = find(p, [](const Action &a) { return isOp(a, Op::AddInto); });
  p.actions.erase(p.actions.begin() + k);
  expectContains(verifySchedule(s),
                 {"rank 0, step", "optimizer_step 0",
                  "holds 3 of 4 micro-batches (micro-batch 1 is missing)"});
}

TEST(ScheduleVerifyErrors, AccumulatedTwice) {
  Schedule s = make("fsdp", 4, 4);
  RankProgram &p = s.programs[0];
  int k = find(p, [](const Action &a) { return isOp(a, Op::AddInto); });
  p.actions.insert(p.actions.begin() + k, p.actions[k]);
  expectContains(verifySchedule(s), {"rank 0, step", "add_into",
                                     "micro-batch 1 of chunk 0 is in "
                                     "both",
                                     "count twice"});
}

TEST(ScheduleVerifyErrors, AccumulatorOfAnotherChunk) {
  Schedule t = make("interleaved-1f1b", 1, 1, 2);
  RankProgram &q = t.programs[0];
  int b = find(
      q, [](const Action &a) { return a.op == Op::Backward && a.chunk == 1; });
  q.actions[b].grads = slotOf(q, "D0");
  expectContains(verifySchedule(t),
                 {"rank 0, step", "backward 1.0",
                  "accumulates the gradient of chunk 1 into slot 'D0'"});
}

TEST(ScheduleVerifyErrors, OptimizerOnNonOwner) {
  Schedule s = make("1f1b", 2, 2);
  RankProgram &p = s.programs[0];
  int k = find(p, [](const Action &a) { return isOp(a, Op::OptimizerStep); });
  p.actions[k].chunk = 1;
  expectContains(verifySchedule(s),
                 {"rank 0, step", "optimizer_step 1", "only the owner steps"});
}

TEST(ScheduleVerifyErrors, OptimizerTwice) {
  Schedule s = make("1f1b", 2, 2);
  RankProgram &p = s.programs[1];
  int k = find(p, [](const Action &a) { return isOp(a, Op::OptimizerStep); });
  p.actions.push_back(p.actions[k]);
  expectContains(verifySchedule(s), {"rank 1, step", "a second time"});
}

TEST(ScheduleVerifyErrors, LoadMasterOfAnotherRank) {
  Schedule s = make("1f1b", 2, 2);
  RankProgram &p = s.programs[0];
  int k = find(p, [](const Action &a) { return isOp(a, Op::LoadMaster); });
  p.actions[k].chunk = 1;
  expectContains(verifySchedule(s),
                 {"rank 0, step 0", "loads the master of chunk 1, which rank 1 "
                                    "owns"});
}

/// Reverses the B-ring (r -> r-1), leaving the seed swap alone.
void reverseBRing(Schedule &s) {
  const int p = s.ranks;
  for (int r = 0; r < p; ++r) {
    RankProgram &prog = s.programs[r];
    int zero = find(prog, [](const Action &a) { return isOp(a, Op::Zero); });
    for (size_t k = zero; k < prog.actions.size(); ++k) {
      Action &a = prog.actions[k];
      const std::string &label =
          a.slots.empty() ? std::string() : prog.slots[a.slots[0]].label;
      if (a.op == Op::Send && label == "B")
        a.peer = (r - 1 + p) % p;
      if (a.op == Op::Recv && label == "Bn")
        a.peer = (r + 1) % p;
    }
  }
}

TEST(ScheduleVerifyErrors, DirectionInvisibleWithTwoRanks) {
  // With P = 2, r + 1 == r - 1: a reversed ring is the same program (spec
  // section 2.5), so the check needs P >= 3.
  Schedule two = make("weipipe-interleave", 2, 4);
  reverseBRing(two);
  EXPECT_EQ(verifySchedule(two), "");
  Schedule four = make("weipipe-interleave", 4, 8);
  reverseBRing(four);
  expectContains(verifySchedule(four), {"rank", "backward",
                                        "weights slot 'B' holds the weights of "
                                        "chunk"});
}

TEST(ScheduleVerifyErrors, TwoRingsOnOneLinkReordered) {
  // With P = 2 the F- and B-rings share the link 0 -> 1; the k-th send
  // matches the k-th recv, so sending B before F swaps what rank 1 gets.
  Schedule s = make("weipipe-interleave", 2, 4);
  RankProgram &p = s.programs[0];
  const int f = slotOf(p, "F"), b = slotOf(p, "B");
  int sf = find(p, [&](const Action &a) {
    return a.op == Op::Send && a.slots[0] == f && a.turn >= 2;
  });
  ASSERT_EQ(p.actions[sf + 1].op, Op::Send);
  ASSERT_EQ(p.actions[sf + 1].slots[0], b);
  std::swap(p.actions[sf], p.actions[sf + 1]);
  expectContains(verifySchedule(s), {"rank 1, step", "weights slot '",
                                     "holds the weights of chunk"});
}

TEST(ScheduleVerifyErrors, DeadlockedReceives) {
  Schedule s = make("gpipe", 2, 1);
  for (int r = 0; r < 2; ++r) {
    RankProgram &p = s.programs[r];
    p.slots.push_back({SlotKind::Activations, "X"});
    Action recv;
    recv.op = Op::Recv;
    recv.slots = {int(p.slots.size()) - 1};
    recv.peer = 1 - r;
    recv.token = 1000;
    Action wait;
    wait.op = Op::Wait;
    wait.tokens = {1000};
    p.actions.insert(p.actions.begin(), {recv, wait});
  }
  expectContains(verifySchedule(s),
                 {"rank 0, step 1 (wait at turn 0)", "deadlock",
                  "waits for the 1st message from rank 1",
                  "rank 1 at step 1 (turn 0) waits for the 1st message from "
                  "rank 0"});
}

TEST(ScheduleVerifyErrors, WriteUnderUnwaitedSend) {
  Schedule s = make("weipipe-interleave", 4, 8);
  RankProgram &p = s.programs[1];
  const int f = slotOf(p, "F");
  int swap = find(
      p, [&](const Action &a) { return a.op == Op::Swap && a.slots[0] == f; });
  int send = find(p, [&](const Action &a) {
    return a.op == Op::Send && a.slots[0] == f &&
           a.turn == p.actions[swap].turn;
  });
  int token = p.actions[send].token;
  unwait(p, token);
  swap = find(
      p, [&](const Action &a) { return a.op == Op::Swap && a.slots[0] == f; });
  Action wait;
  wait.op = Op::Wait;
  wait.turn = p.actions[swap].turn;
  wait.tokens = {token};
  p.actions.insert(p.actions.begin() + swap + 1, wait);
  expectContains(verifySchedule(s),
                 {"rank 1, step", "swap",
                  "writes slot 'F' while a send from "
                  "it (step " +
                      std::to_string(send) + ") is not waited"});
}

TEST(ScheduleVerifyErrors, ReadUnderUnwaitedRecv) {
  Schedule s = make("1f1b", 2, 2);
  RankProgram &p = s.programs[1];
  int fwd = find(p, [](const Action &a) { return isOp(a, Op::Forward); });
  ASSERT_EQ(p.actions[fwd - 1].op, Op::Wait);
  std::swap(p.actions[fwd - 1], p.actions[fwd]);
  expectContains(verifySchedule(s),
                 {"rank 1, step", "forward 1.0",
                  "reads slot 'Ain0' while the recv into it"});
}

TEST(ScheduleVerifyErrors, MismatchedSlotKinds) {
  Schedule s = make("gpipe", 2, 1);
  RankProgram &p = s.programs[1];
  p.slots.push_back({SlotKind::Weights, "X"});
  int k = find(p, [](const Action &a) { return isOp(a, Op::Recv); });
  p.actions[k].slots = {int(p.slots.size()) - 1};
  expectContains(verifySchedule(s),
                 {"rank 1, step", "recv from 0",
                  "the 1st message from rank 0 to rank 1 carries activations",
                  "this recv expects weights"});
}

TEST(ScheduleVerifyErrors, TokenNeverWaited) {
  Schedule s = make("1f1b", 2, 2);
  RankProgram &p = s.programs[0];
  int k = find(p, [](const Action &a) { return isOp(a, Op::Send); });
  unwait(p, p.actions[k].token);
  expectContains(verifySchedule(s),
                 {"rank 0, step " + std::to_string(k), "is never waited"});
}

TEST(ScheduleVerifyErrors, TokenWaitedTwice) {
  Schedule s = make("1f1b", 2, 2);
  RankProgram &p = s.programs[1];
  int k = find(p, [](const Action &a) { return isOp(a, Op::Wait); });
  p.actions.insert(p.actions.begin() + k, p.actions[k]);
  expectContains(verifySchedule(s),
                 {"rank 1, step " + std::to_string(k + 1), "again"});
}

TEST(ScheduleVerifyErrors, ForwardOutOfOrder) {
  Schedule s = make("interleaved-1f1b", 1, 1, 2);
  RankProgram &p = s.programs[0];
  int a = find(p, [](const Action &x) { return isOp(x, Op::Forward); });
  ASSERT_EQ(p.actions[a + 1].op, Op::Forward);
  std::swap(p.actions[a], p.actions[a + 1]);
  std::swap(p.actions[a].turn, p.actions[a + 1].turn);
  expectContains(verifySchedule(s),
                 {"rank 0, step", "forward 1.0", "needs F 0.0 on this rank",
                  "it has not run"});
}

TEST(ScheduleVerifyErrors, BackwardAwayFromItsForward) {
  Schedule s = make("fsdp", 2, 2);
  RankProgram &p = s.programs[1];
  int k = find(p, [](const Action &a) { return isOp(a, Op::Backward); });
  p.actions[k].microbatch = 0;
  expectContains(verifySchedule(s), {"rank 1, step", "backward 1.0",
                                     "must run where its forward ran"});
}

TEST(ScheduleVerifyErrors, WeightGradientBeforeItsBackward) {
  Schedule s = make("zb-h1", 2, 2);
  RankProgram &p = s.programs[1];
  int w = find(p, [](const Action &a) { return isOp(a, Op::BackwardWeight); });
  int b = find(p, [&](const Action &a) {
    return a.op == Op::BackwardInput && a.microbatch == p.actions[w].microbatch;
  });
  Action moved = p.actions[w];
  moved.turn = p.actions[b].turn;
  p.actions.erase(p.actions.begin() + w);
  p.actions.insert(p.actions.begin() + b, moved);
  expectContains(verifySchedule(s), {"rank 1, step", "backward_weight 1.0",
                                     "needs B 1.0 on this rank first"});
}

TEST(ScheduleVerifyErrors, MissingWork) {
  Schedule s = make("single", 1, 2);
  RankProgram &p = s.programs[0];
  int k = find(p, [](const Action &a) { return a.op == Op::OptimizerStep; });
  p.actions.erase(p.actions.begin() + k);
  expectContains(verifySchedule(s), {"chunk 0 is never stepped"});
}

//===----------------------------------------------------------------------===//
// Formats
//===----------------------------------------------------------------------===//

TEST(ScheduleFormat, Csv) {
  EXPECT_EQ(formatCsv(make("single", 1, 2)), "0F0,0B0,0F1,0B1\n");
  EXPECT_EQ(formatCsv(make("zb-h1", 2, 2)), "0F0,0F1,0I0,0W0,0I1,0W1\n"
                                            "1F0,1I0,1F1,1I1,1W0,1W1\n");
  // Every cell is torch's _Action form [stage][type][micro-batch].
  std::regex cell("\\d+[FIWB]\\d+");
  for (const std::string &name : scheduleNames()) {
    int p = name == "single" ? 1 : 4;
    std::istringstream rows(formatCsv(make(name, p, p)));
    std::string row, c;
    int n = 0;
    for (; std::getline(rows, row); ++n) {
      std::istringstream cells(row);
      while (std::getline(cells, c, ','))
        EXPECT_TRUE(std::regex_match(c, cell)) << name << ": " << c;
    }
    EXPECT_EQ(n, p);
  }
}

TEST(ScheduleFormat, Table) {
  EXPECT_EQ(formatTable(make("single", 1, 1)), " turn | r0\n"
                                               "    0 | F0.0\n"
                                               "    1 | B0.0\n"
                                               "sends | 0\n"
                                               "recvs | 0\n");
  std::string t = formatTable(make("weipipe-interleave", 4, 8));
  EXPECT_NE(t.find("    4 | B3.0+F0.4 | F3.1      | F2.2      | F1.3\n"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("   15 | .         | .         | .         | .\n"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("sends | 33        | 33        | 33        | 33\n"),
            std::string::npos)
      << t;
}

} // namespace
