//===- Verify.cpp - symbolic execution of a schedule ----------------------===//
//
// Part of weipipe. verifySchedule runs every rank's program together on
// symbolic slot contents (which chunk's weights, which chunk's accumulator
// with which micro-batches, which activation) and checks the semantics of
// Schedule.h: transfers match FIFO per link and nothing touches a slot in
// flight; every compute step finds its chunk's starting weights and its
// inputs on the rank; every F, B and W of every (chunk, micro-batch) runs
// once; every chunk's accumulator collects all N micro-batches exactly once
// and reaches its owner, which steps it once.
//
// Sends are buffered: a send captures its slots' contents when it is posted
// and never blocks; a Wait blocks until the sends matching its receives are
// posted. Ranks run round-robin, each until it blocks; a round in which no
// rank moves while some are unfinished is a deadlock.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Schedule/Schedule.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

namespace weipipe::schedule {
namespace {

using Bits = std::vector<uint64_t>;

/// What a slot holds, with what Content cannot say.
struct Value {
  Content c;
  int version = 0; ///< weights: optimizer steps of the chunk before loading
  Bits mbs;        ///< grads: the micro-batches accumulated
  int count = 0;   ///< grads: how many
};

struct SlotState {
  Value v;
  int sends = 0; ///< unwaited sends reading the slot
  int lastSendStep = -1;
  int recvToken = -1; ///< the unwaited receive writing it
  int recvStep = -1;
};

struct Message {
  int step; ///< the sender's step
  std::vector<SlotKind> kinds;
  std::vector<Value> values; ///< captured when posted
};

struct Link {
  std::vector<Message> msgs;  ///< sends posted, in order
  std::vector<int> recvSteps; ///< receives posted (their steps), in order
};

struct Token {
  bool send = false;
  int step = -1;
  int peer = -1;
  int index = -1; ///< on the link
};

struct RankState {
  std::vector<SlotState> slots;
  std::unordered_map<int, Token> tokens; ///< posted, not waited
  size_t pc = 0;
  int blockedPeer = -1, blockedIndex = -1;
};

const char *kindName(SlotKind k) {
  switch (k) {
  case SlotKind::Weights:
    return "weights";
  case SlotKind::Grads:
    return "grads";
  case SlotKind::Activations:
    return "activations";
  }
  return "?";
}

std::string ordinal(int k) {
  int n = k + 1;
  const char *suffix = "th";
  if (n % 100 < 11 || n % 100 > 13) {
    if (n % 10 == 1)
      suffix = "st";
    else if (n % 10 == 2)
      suffix = "nd";
    else if (n % 10 == 3)
      suffix = "rd";
  }
  return std::to_string(n) + suffix;
}

std::string cm(int c, int m) {
  return std::to_string(c) + "." + std::to_string(m);
}

std::string describe(const Action &a) {
  std::string s = opName(a.op);
  switch (a.op) {
  case Op::Forward:
  case Op::BackwardInput:
  case Op::BackwardWeight:
  case Op::Backward:
    return s + " " + cm(a.chunk, a.microbatch);
  case Op::LoadMaster:
  case Op::Zero:
  case Op::AddInto:
  case Op::OptimizerStep:
    return s + " " + std::to_string(a.chunk);
  case Op::Send:
    return s + " to " + std::to_string(a.peer);
  case Op::Recv:
    return s + " from " + std::to_string(a.peer);
  default:
    return s;
  }
}

std::string describe(const Value &v) {
  switch (v.c.kind) {
  case Content::Undefined:
    return "nothing";
  case Content::Weights:
    return "the weights of chunk " + std::to_string(v.c.chunk) +
           (v.version ? " after its optimizer step" : "");
  case Content::Grads:
    return "the accumulator of chunk " + std::to_string(v.c.chunk) + " (" +
           std::to_string(v.count) + " micro-batch(es))";
  case Content::Activation:
    return "the activation " + cm(v.c.chunk, v.c.microbatch);
  case Content::ActivationGrad:
    return "the activation gradient " + cm(v.c.chunk, v.c.microbatch);
  }
  return "?";
}

class Verifier {
public:
  explicit Verifier(Schedule &sched)
      : s(sched), p(sched.ranks), c(sched.chunks), n(sched.microbatches),
        words((sched.microbatches + 63) / 64), ranks(std::max(sched.ranks, 0)),
        links(size_t(std::max(sched.ranks, 0)) * std::max(sched.ranks, 0)) {}

  std::string run();

private:
  enum Status { Ok, Blocked, Failed };

  std::string at(int r, size_t k) const {
    const Action &a = s.programs[r].actions[k];
    return "rank " + std::to_string(r) + ", step " + std::to_string(k) + " (" +
           describe(a) + " at turn " + std::to_string(a.turn) + "): ";
  }
  Status fail(int r, size_t k, const std::string &reason) {
    error = at(r, k) + reason;
    return Failed;
  }
  const std::string &label(int r, int x) const {
    return s.programs[r].slots[x].label;
  }
  std::string slotName(int r, int x) const {
    return "slot '" + label(r, x) + "'";
  }

  bool checkStatic();
  Status step(int r);
  Status exec(int r, size_t k, Action &a);
  bool readable(int r, size_t k, int x);
  bool writable(int r, size_t k, int x);
  bool accumulate(int r, size_t k, int g, int chunk, int m);
  bool weightsOk(int r, size_t k, const Action &a);
  std::string finalChecks();
  std::string deadlock();

  Schedule &s;
  const int p, c, n, words;
  std::vector<RankState> ranks;
  std::vector<Link> links;
  // Which rank ran F, B, W of (chunk, micro-batch), plus one; 0: not run.
  std::vector<int> doneF, doneB, doneW;
  std::vector<int> steps; ///< optimizer steps per chunk
  std::string error;
};

bool Verifier::checkStatic() {
  if (p < 1 || c < 1 || n < 1) {
    error = "schedule: needs at least one rank, chunk and micro-batch (got " +
            std::to_string(p) + ", " + std::to_string(c) + ", " +
            std::to_string(n) + ")";
    return false;
  }
  if (int(s.programs.size()) != p) {
    error = "schedule: " + std::to_string(s.programs.size()) +
            " programs for " + std::to_string(p) + " ranks";
    return false;
  }
  if (int(s.owner.size()) != c) {
    error = "schedule: owner lists " + std::to_string(s.owner.size()) +
            " chunks, the schedule has " + std::to_string(c);
    return false;
  }
  for (int x = 0; x < c; ++x)
    if (s.owner[x] < 0 || s.owner[x] >= p) {
      error = "schedule: chunk " + std::to_string(x) + " has owner " +
              std::to_string(s.owner[x]) + ", not a rank";
      return false;
    }
  for (int r = 0; r < p; ++r) {
    const RankProgram &prog = s.programs[r];
    const int nslots = int(prog.slots.size());
    std::unordered_set<std::string> labels;
    for (const Slot &sl : prog.slots)
      if (!labels.insert(sl.label).second) {
        error = "rank " + std::to_string(r) + ": two slots are labelled '" +
                sl.label + "'";
        return false;
      }
    // token -> step of its Send/Recv; then of its Wait.
    std::unordered_map<int, int> defined, waited;
    int prevTurn = 0;
    for (size_t k = 0; k < prog.actions.size(); ++k) {
      const Action &a = prog.actions[k];
      auto bad = [&](const std::string &why) {
        error = at(r, k) + why;
        return false;
      };
      auto slotOk = [&](int x, SlotKind kind, const char *what) {
        if (x < 0 || x >= nslots)
          return bad(std::string(what) + " names slot " + std::to_string(x) +
                     ", the rank declares " + std::to_string(nslots));
        if (prog.slots[x].kind != kind)
          return bad(std::string(what) + " " + slotName(r, x) + " is a " +
                     kindName(prog.slots[x].kind) + " slot, expected " +
                     kindName(kind));
        return true;
      };
      auto chunkOk = [&]() {
        if (a.chunk < 0 || a.chunk >= c)
          return bad("chunk " + std::to_string(a.chunk) + " is not in [0, " +
                     std::to_string(c) + ")");
        return true;
      };
      if (a.turn < prevTurn)
        return bad("turn goes back from " + std::to_string(prevTurn));
      prevTurn = a.turn;
      switch (a.op) {
      case Op::LoadMaster:
      case Op::Zero:
        if (!chunkOk())
          return false;
        if (a.slots.size() != 1)
          return bad("expects 1 slot, got " + std::to_string(a.slots.size()));
        if (!slotOk(a.slots[0],
                    a.op == Op::Zero ? SlotKind::Grads : SlotKind::Weights,
                    "its"))
          return false;
        break;
      case Op::Swap:
      case Op::AddInto:
        if (a.op == Op::AddInto && !chunkOk())
          return false;
        if (a.slots.size() != 2)
          return bad("expects 2 slots, got " + std::to_string(a.slots.size()));
        if (a.slots[0] == a.slots[1])
          return bad("names the same slot twice");
        for (int x : a.slots)
          if (x < 0 || x >= nslots)
            return bad("names slot " + std::to_string(x) +
                       ", the rank declares " + std::to_string(nslots));
        if (a.op == Op::AddInto) {
          if (!slotOk(a.slots[0], SlotKind::Grads, "destination") ||
              !slotOk(a.slots[1], SlotKind::Grads, "source"))
            return false;
        } else if (prog.slots[a.slots[0]].kind != prog.slots[a.slots[1]].kind) {
          return bad("swaps slots of different kinds");
        }
        break;
      case Op::Forward:
      case Op::BackwardInput:
      case Op::BackwardWeight:
      case Op::Backward: {
        if (!chunkOk())
          return false;
        if (a.microbatch < 0 || a.microbatch >= n)
          return bad("micro-batch " + std::to_string(a.microbatch) +
                     " is not in [0, " + std::to_string(n) + ")");
        if (a.op != Op::BackwardWeight &&
            !slotOk(a.weights, SlotKind::Weights, "weights"))
          return false;
        if ((a.op == Op::BackwardWeight || a.op == Op::Backward) &&
            !slotOk(a.grads, SlotKind::Grads, "grads"))
          return false;
        if (a.op == Op::BackwardWeight && (a.in >= 0 || a.out >= 0))
          return bad("a weight-gradient step takes no activation slots");
        if (a.in >= 0 && !slotOk(a.in, SlotKind::Activations, "in"))
          return false;
        if (a.out >= 0 && !slotOk(a.out, SlotKind::Activations, "out"))
          return false;
        if (a.in >= 0 && a.in == a.out)
          return bad("in and out are the same slot");
        break;
      }
      case Op::OptimizerStep:
        if (!chunkOk() || !slotOk(a.grads, SlotKind::Grads, "grads"))
          return false;
        break;
      case Op::Send:
      case Op::Recv: {
        if (a.peer < 0 || a.peer >= p)
          return bad("peer " + std::to_string(a.peer) + " is not a rank");
        if (a.peer == r)
          return bad("the peer is the rank itself");
        if (a.slots.empty())
          return bad("transfers no slot");
        std::unordered_set<int> seen;
        for (int x : a.slots) {
          if (x < 0 || x >= nslots)
            return bad("names slot " + std::to_string(x) +
                       ", the rank declares " + std::to_string(nslots));
          if (!seen.insert(x).second)
            return bad("names " + slotName(r, x) + " twice");
        }
        if (a.token < 0)
          return bad("has no token");
        auto [it, fresh] = defined.emplace(a.token, int(k));
        if (!fresh)
          return bad("token " + std::to_string(a.token) +
                     " is already the token of step " +
                     std::to_string(it->second));
        break;
      }
      case Op::Wait:
        if (a.tokens.empty())
          return bad("waits for no token");
        for (int tok : a.tokens) {
          if (!defined.count(tok))
            return bad("waits for token " + std::to_string(tok) +
                       ", which no earlier send or recv yields");
          auto [it, fresh] = waited.emplace(tok, int(k));
          if (!fresh)
            return bad("waits for token " + std::to_string(tok) +
                       " again (first waited at step " +
                       std::to_string(it->second) + ")");
        }
        break;
      }
    }
    for (auto [tok, k] : defined)
      if (!waited.count(tok)) {
        error =
            at(r, k) + "its token " + std::to_string(tok) + " is never waited";
        return false;
      }
  }
  return true;
}

bool Verifier::readable(int r, size_t k, int x) {
  const SlotState &st = ranks[r].slots[x];
  if (st.recvToken >= 0) {
    fail(r, k,
         "reads " + slotName(r, x) + " while the recv into it (step " +
             std::to_string(st.recvStep) + ") is not waited");
    return false;
  }
  return true;
}

bool Verifier::writable(int r, size_t k, int x) {
  const SlotState &st = ranks[r].slots[x];
  if (st.sends > 0) {
    fail(r, k,
         "writes " + slotName(r, x) + " while a send from it (step " +
             std::to_string(st.lastSendStep) + ") is not waited");
    return false;
  }
  if (st.recvToken >= 0) {
    fail(r, k,
         "writes " + slotName(r, x) + " while the recv into it (step " +
             std::to_string(st.recvStep) + ") is not waited");
    return false;
  }
  return true;
}

bool Verifier::weightsOk(int r, size_t k, const Action &a) {
  if (!readable(r, k, a.weights))
    return false;
  const Value &v = ranks[r].slots[a.weights].v;
  if (v.c.kind != Content::Weights || v.c.chunk != a.chunk) {
    fail(r, k,
         "weights " + slotName(r, a.weights) + " holds " + describe(v) +
             ", not the weights of chunk " + std::to_string(a.chunk));
    return false;
  }
  if (v.version != 0) {
    fail(r, k,
         "weights " + slotName(r, a.weights) +
             " were loaded after the optimizer step of chunk " +
             std::to_string(a.chunk) +
             "; the iteration must use its starting weights");
    return false;
  }
  return true;
}

bool Verifier::accumulate(int r, size_t k, int g, int chunk, int m) {
  if (!readable(r, k, g) || !writable(r, k, g))
    return false;
  Value &v = ranks[r].slots[g].v;
  if (v.c.kind != Content::Grads) {
    fail(r, k,
         "accumulates into " + slotName(r, g) + ", which holds " + describe(v) +
             " (zero it first)");
    return false;
  }
  if (v.c.chunk != chunk) {
    fail(r, k,
         "accumulates the gradient of chunk " + std::to_string(chunk) +
             " into " + slotName(r, g) + ", which holds " + describe(v));
    return false;
  }
  uint64_t bit = uint64_t(1) << (m % 64);
  if (v.mbs[m / 64] & bit) {
    fail(r, k,
         slotName(r, g) + " already holds micro-batch " + std::to_string(m) +
             " of chunk " + std::to_string(chunk));
    return false;
  }
  v.mbs[m / 64] |= bit;
  ++v.count;
  return true;
}

Verifier::Status Verifier::exec(int r, size_t k, Action &a) {
  RankState &rs = ranks[r];
  auto idx = [&](int chunk, int m) { return size_t(chunk) * n + m; };
  auto where = [&](int who) {
    return who == r + 1 ? std::string("on this rank")
                        : "on rank " + std::to_string(who - 1);
  };
  switch (a.op) {
  case Op::LoadMaster: {
    int x = a.slots[0];
    if (s.owner[a.chunk] != r)
      return fail(r, k,
                  "loads the master of chunk " + std::to_string(a.chunk) +
                      ", which rank " + std::to_string(s.owner[a.chunk]) +
                      " owns (a rank loads only its own chunks)");
    if (!writable(r, k, x))
      return Failed;
    Value &v = rs.slots[x].v;
    v = Value();
    v.c = {Content::Weights, a.chunk, -1};
    v.version = steps[a.chunk];
    return Ok;
  }
  case Op::Zero: {
    int x = a.slots[0];
    if (!writable(r, k, x))
      return Failed;
    Value &v = rs.slots[x].v;
    v.c = {Content::Grads, a.chunk, -1};
    v.version = 0;
    v.mbs.assign(words, 0);
    v.count = 0;
    return Ok;
  }
  case Op::Swap:
    if (!writable(r, k, a.slots[0]) || !writable(r, k, a.slots[1]))
      return Failed;
    std::swap(rs.slots[a.slots[0]].v, rs.slots[a.slots[1]].v);
    return Ok;
  case Op::AddInto: {
    int d = a.slots[0], src = a.slots[1];
    if (!readable(r, k, src) || !readable(r, k, d) || !writable(r, k, d))
      return Failed;
    Value &dv = rs.slots[d].v;
    const Value &sv = rs.slots[src].v;
    if (dv.c.kind != Content::Grads || sv.c.kind != Content::Grads ||
        dv.c.chunk != a.chunk || sv.c.chunk != a.chunk)
      return fail(r, k,
                  "adds " + slotName(r, src) + " (" + describe(sv) + ") into " +
                      slotName(r, d) + " (" + describe(dv) +
                      "); both must hold accumulators of chunk " +
                      std::to_string(a.chunk));
    for (int w = 0; w < words; ++w)
      if (uint64_t both = dv.mbs[w] & sv.mbs[w]) {
        int m = w * 64 + __builtin_ctzll(both);
        return fail(r, k,
                    "micro-batch " + std::to_string(m) + " of chunk " +
                        std::to_string(dv.c.chunk) + " is in both " +
                        slotName(r, d) + " and " + slotName(r, src) +
                        " (its gradient would count twice)");
      }
    for (int w = 0; w < words; ++w)
      dv.mbs[w] |= sv.mbs[w];
    dv.count += sv.count;
    return Ok;
  }
  case Op::Forward: {
    if (!weightsOk(r, k, a))
      return Failed;
    size_t i = idx(a.chunk, a.microbatch);
    if (doneF[i])
      return fail(r, k,
                  "F " + cm(a.chunk, a.microbatch) +
                      " runs a second time (first " + where(doneF[i]) + ")");
    if (a.chunk == 0) {
      if (a.in >= 0)
        return fail(r, k,
                    "chunk 0 reads the micro-batch, not an activation "
                    "slot");
    } else if (a.in < 0) {
      if (doneF[i - n] != r + 1)
        return fail(r, k,
                    "needs F " + cm(a.chunk - 1, a.microbatch) +
                        " on this rank (in = -1), but " +
                        (doneF[i - n] ? "it ran " + where(doneF[i - n])
                                      : std::string("it has not run")));
    } else {
      if (!readable(r, k, a.in))
        return Failed;
      const Value &v = rs.slots[a.in].v;
      if (v.c.kind != Content::Activation || v.c.chunk != a.chunk - 1 ||
          v.c.microbatch != a.microbatch)
        return fail(r, k,
                    "in " + slotName(r, a.in) + " holds " + describe(v) +
                        ", not the activation " +
                        cm(a.chunk - 1, a.microbatch));
    }
    if (a.out >= 0) {
      if (!writable(r, k, a.out))
        return Failed;
      Value &v = rs.slots[a.out].v;
      v = Value();
      v.c = {Content::Activation, a.chunk, a.microbatch};
    }
    doneF[i] = r + 1;
    return Ok;
  }
  case Op::BackwardInput:
  case Op::Backward: {
    if (!weightsOk(r, k, a))
      return Failed;
    size_t i = idx(a.chunk, a.microbatch);
    if (doneF[i] != r + 1)
      return fail(r, k,
                  "the backward of " + cm(a.chunk, a.microbatch) +
                      " must run where its forward ran, but F " +
                      cm(a.chunk, a.microbatch) +
                      (doneF[i] ? " ran " + where(doneF[i])
                                : std::string(" has not run before it")));
    if (doneB[i])
      return fail(r, k,
                  "B " + cm(a.chunk, a.microbatch) +
                      " runs a second time (first " + where(doneB[i]) + ")");
    if (a.chunk == c - 1) {
      if (a.in >= 0)
        return fail(r, k,
                    "the last chunk's backward starts from the loss, "
                    "not from an activation slot");
    } else if (a.in < 0) {
      if (doneB[i + n] != r + 1)
        return fail(r, k,
                    "needs B " + cm(a.chunk + 1, a.microbatch) +
                        " on this rank (in = -1), but " +
                        (doneB[i + n] ? "it ran " + where(doneB[i + n])
                                      : std::string("it has not run")));
    } else {
      if (!readable(r, k, a.in))
        return Failed;
      const Value &v = rs.slots[a.in].v;
      if (v.c.kind != Content::ActivationGrad || v.c.chunk != a.chunk + 1 ||
          v.c.microbatch != a.microbatch)
        return fail(r, k,
                    "in " + slotName(r, a.in) + " holds " + describe(v) +
                        ", not the activation gradient " +
                        cm(a.chunk + 1, a.microbatch));
    }
    if (a.op == Op::Backward) {
      if (doneW[i])
        return fail(r, k,
                    "W " + cm(a.chunk, a.microbatch) + " runs a second time");
      if (!accumulate(r, k, a.grads, a.chunk, a.microbatch))
        return Failed;
      doneW[i] = r + 1;
    }
    if (a.out >= 0) {
      if (!writable(r, k, a.out))
        return Failed;
      Value &v = rs.slots[a.out].v;
      v = Value();
      v.c = {Content::ActivationGrad, a.chunk, a.microbatch};
    }
    doneB[i] = r + 1;
    return Ok;
  }
  case Op::BackwardWeight: {
    size_t i = idx(a.chunk, a.microbatch);
    if (doneB[i] != r + 1)
      return fail(r, k,
                  "W " + cm(a.chunk, a.microbatch) + " needs B " +
                      cm(a.chunk, a.microbatch) + " on this rank first, but " +
                      (doneB[i] ? "it ran " + where(doneB[i])
                                : std::string("it has not run")));
    if (doneW[i])
      return fail(r, k,
                  "W " + cm(a.chunk, a.microbatch) +
                      " runs a second time (first " + where(doneW[i]) + ")");
    if (!accumulate(r, k, a.grads, a.chunk, a.microbatch))
      return Failed;
    doneW[i] = r + 1;
    return Ok;
  }
  case Op::OptimizerStep: {
    if (s.owner[a.chunk] != r)
      return fail(r, k,
                  "steps chunk " + std::to_string(a.chunk) +
                      ", whose master rank " +
                      std::to_string(s.owner[a.chunk]) +
                      " owns (only the owner steps a chunk)");
    if (steps[a.chunk])
      return fail(r, k,
                  "steps chunk " + std::to_string(a.chunk) + " a second time");
    if (!readable(r, k, a.grads))
      return Failed;
    const Value &v = rs.slots[a.grads].v;
    if (v.c.kind != Content::Grads || v.c.chunk != a.chunk)
      return fail(r, k,
                  "grads " + slotName(r, a.grads) + " holds " + describe(v) +
                      ", not the accumulator of chunk " +
                      std::to_string(a.chunk));
    if (v.count != n) {
      int missing = 0;
      while (v.mbs[missing / 64] >> (missing % 64) & 1)
        ++missing;
      return fail(r, k,
                  "the accumulator of chunk " + std::to_string(a.chunk) +
                      " in " + slotName(r, a.grads) + " holds " +
                      std::to_string(v.count) + " of " + std::to_string(n) +
                      " micro-batches (micro-batch " + std::to_string(missing) +
                      " is missing)");
    }
    ++steps[a.chunk];
    return Ok;
  }
  case Op::Send: {
    Message msg;
    msg.step = int(k);
    for (int x : a.slots) {
      if (!readable(r, k, x))
        return Failed;
      msg.kinds.push_back(s.programs[r].slots[x].kind);
      msg.values.push_back(rs.slots[x].v);
    }
    Link &l = links[size_t(r) * p + a.peer];
    int index = int(l.msgs.size());
    if (index < int(l.recvSteps.size())) {
      const Action &rv = s.programs[a.peer].actions[l.recvSteps[index]];
      std::vector<SlotKind> kinds;
      for (int x : rv.slots)
        kinds.push_back(s.programs[a.peer].slots[x].kind);
      if (kinds != msg.kinds) {
        std::string mine, theirs;
        for (SlotKind kd : msg.kinds)
          mine += std::string(mine.empty() ? "" : ", ") + kindName(kd);
        for (SlotKind kd : kinds)
          theirs += std::string(theirs.empty() ? "" : ", ") + kindName(kd);
        return fail(
            r, k,
            "the " + ordinal(index) + " message from rank " +
                std::to_string(r) + " to rank " + std::to_string(a.peer) +
                " carries " + mine + ", but its matching recv (rank " +
                std::to_string(a.peer) + ", step " +
                std::to_string(l.recvSteps[index]) + ") expects " + theirs);
      }
    }
    a.contents.clear();
    for (const Value &v : msg.values)
      a.contents.push_back(v.c);
    for (int x : a.slots) {
      ++rs.slots[x].sends;
      rs.slots[x].lastSendStep = int(k);
    }
    l.msgs.push_back(std::move(msg));
    rs.tokens[a.token] = {true, int(k), a.peer, index};
    return Ok;
  }
  case Op::Recv: {
    for (int x : a.slots)
      if (!writable(r, k, x))
        return Failed;
    Link &l = links[size_t(a.peer) * p + r];
    int index = int(l.recvSteps.size());
    if (index < int(l.msgs.size())) {
      std::vector<SlotKind> kinds;
      for (int x : a.slots)
        kinds.push_back(s.programs[r].slots[x].kind);
      const Message &msg = l.msgs[index];
      if (kinds != msg.kinds) {
        std::string mine, theirs;
        for (SlotKind kd : kinds)
          mine += std::string(mine.empty() ? "" : ", ") + kindName(kd);
        for (SlotKind kd : msg.kinds)
          theirs += std::string(theirs.empty() ? "" : ", ") + kindName(kd);
        return fail(r, k,
                    "the " + ordinal(index) + " message from rank " +
                        std::to_string(a.peer) + " to rank " +
                        std::to_string(r) + " carries " + theirs +
                        " (its send is rank " + std::to_string(a.peer) +
                        ", step " + std::to_string(msg.step) +
                        "), but this recv expects " + mine);
      }
    }
    l.recvSteps.push_back(int(k));
    for (int x : a.slots) {
      rs.slots[x].recvToken = a.token;
      rs.slots[x].recvStep = int(k);
    }
    rs.tokens[a.token] = {false, int(k), a.peer, index};
    return Ok;
  }
  case Op::Wait: {
    // Block, changing nothing, until every receive's send is posted.
    for (int tok : a.tokens) {
      const Token &t = rs.tokens.at(tok);
      if (!t.send &&
          t.index >= int(links[size_t(t.peer) * p + r].msgs.size())) {
        rs.blockedPeer = t.peer;
        rs.blockedIndex = t.index;
        return Blocked;
      }
    }
    rs.blockedPeer = -1;
    for (int tok : a.tokens) {
      Token t = rs.tokens.at(tok);
      rs.tokens.erase(tok);
      Action &posted = s.programs[r].actions[t.step];
      if (t.send) {
        for (int x : posted.slots)
          --rs.slots[x].sends;
        continue;
      }
      Message &msg = links[size_t(t.peer) * p + r].msgs[t.index];
      posted.contents.clear();
      for (size_t j = 0; j < posted.slots.size(); ++j) {
        SlotState &st = rs.slots[posted.slots[j]];
        st.v = std::move(msg.values[j]);
        st.recvToken = -1;
        posted.contents.push_back(st.v.c);
      }
      msg.values.clear();
      msg.values.shrink_to_fit();
    }
    return Ok;
  }
  }
  return Ok;
}

Verifier::Status Verifier::step(int r) {
  RankState &rs = ranks[r];
  auto &actions = s.programs[r].actions;
  while (rs.pc < actions.size()) {
    Status st = exec(r, rs.pc, actions[rs.pc]);
    if (st != Ok)
      return st;
    ++rs.pc;
  }
  return Ok;
}

std::string Verifier::deadlock() {
  std::string out;
  for (int r = 0; r < p; ++r) {
    const RankState &rs = ranks[r];
    if (rs.pc >= s.programs[r].actions.size())
      continue;
    const Link &l = links[size_t(rs.blockedPeer) * p + r];
    std::string why = "waits for the " + ordinal(rs.blockedIndex) +
                      " message from rank " + std::to_string(rs.blockedPeer) +
                      ", which has sent " + std::to_string(l.msgs.size()) +
                      " to it";
    if (out.empty())
      out = at(r, rs.pc) +
            "deadlock, every unfinished rank is blocked: this "
            "rank " +
            why;
    else
      out += "; rank " + std::to_string(r) + " at step " +
             std::to_string(rs.pc) + " (turn " +
             std::to_string(s.programs[r].actions[rs.pc].turn) + ") " + why;
  }
  return out;
}

std::string Verifier::finalChecks() {
  for (int src = 0; src < p; ++src)
    for (int dst = 0; dst < p; ++dst) {
      const Link &l = links[size_t(src) * p + dst];
      if (l.msgs.size() > l.recvSteps.size())
        return at(src, l.msgs[l.recvSteps.size()].step) +
               "no recv matches it: rank " + std::to_string(dst) + " posts " +
               std::to_string(l.recvSteps.size()) + " recv(s) from rank " +
               std::to_string(src) + " for " + std::to_string(l.msgs.size()) +
               " send(s)";
      if (l.recvSteps.size() > l.msgs.size())
        return at(dst, l.recvSteps[l.msgs.size()]) +
               "no send matches it: rank " + std::to_string(src) + " posts " +
               std::to_string(l.msgs.size()) + " send(s) to rank " +
               std::to_string(dst) + " for " +
               std::to_string(l.recvSteps.size()) + " recv(s)";
    }
  for (int x = 0; x < c; ++x)
    for (int m = 0; m < n; ++m) {
      size_t i = size_t(x) * n + m;
      const char *missing = !doneF[i]   ? "forward (F)"
                            : !doneB[i] ? "backward (B)"
                            : !doneW[i] ? "weight gradient (W)"
                                        : nullptr;
      if (missing)
        return "schedule: chunk " + std::to_string(x) + ", micro-batch " +
               std::to_string(m) + ": no rank runs its " + missing;
    }
  for (int x = 0; x < c; ++x)
    if (!steps[x])
      return "schedule: chunk " + std::to_string(x) +
             " is never stepped (its owner is rank " +
             std::to_string(s.owner[x]) + ")";
  return "";
}

std::string Verifier::run() {
  for (RankProgram &prog : s.programs)
    for (Action &a : prog.actions)
      a.contents.clear();
  if (!checkStatic())
    return error;
  size_t cells = size_t(c) * n;
  doneF.assign(cells, 0);
  doneB.assign(cells, 0);
  doneW.assign(cells, 0);
  steps.assign(c, 0);
  for (int r = 0; r < p; ++r)
    ranks[r].slots.resize(s.programs[r].slots.size());
  for (;;) {
    bool progress = false, finished = true;
    for (int r = 0; r < p; ++r) {
      size_t before = ranks[r].pc;
      Status st = step(r);
      if (st == Failed)
        return error;
      progress |= ranks[r].pc != before;
      finished &= st == Ok;
    }
    if (finished)
      break;
    if (!progress)
      return deadlock();
  }
  return finalChecks();
}

} // namespace

std::string verifySchedule(Schedule &s) {
  std::string result = Verifier(s).run();
  if (!result.empty())
    for (RankProgram &prog : s.programs)
      for (Action &a : prog.actions)
        a.contents.clear();
  return result;
}

} // namespace weipipe::schedule
