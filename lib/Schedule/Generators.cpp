//===- Generators.cpp - one program generator per schedule ----------------===//
//
// Part of weipipe. Writes the per-rank programs of every schedule that
// scheduleNames() lists, for options that chunksFor() accepted:
//
//   * Activation passing (gpipe, 1f1b, interleaved-1f1b, zb-h1): a compute
//     order per rank, turns by unit-cost list scheduling, then the transfers
//     of activations and activation gradients between consecutive chunks.
//   * fsdp and tawpipe: weights fetched from their owners per use, gradients
//     reduced to the owners; every action of every rank is written in one
//     global order, so that links stay FIFO-matched and no wait comes before
//     the send it waits for (hence no deadlock).
//   * WeiPipe (naive, interleave, zb1, zb2): the turn-synchronous rings of
//     weipipe-spec.md section 2, written in the same global order per turn:
//     post the receives of the next turn, compute, send, wait, swap.
//
// Micro-batch i of the data-parallel style schedules (WeiPipe, fsdp, tawpipe)
// runs on rank i mod P; its local index there is i / P.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Schedule/Schedule.h"

#include <algorithm>
#include <unordered_map>

namespace weipipe::schedule {

bool generatePrograms(const Options &o, Schedule *s, std::string *error);

namespace {

int mod(int a, int p) {
  int r = a % p;
  return r < 0 ? r + p : r;
}

bool internalError(std::string *error, const std::string &what) {
  if (error)
    *error = "internal error in the schedule generator: " + what;
  return false;
}

//===----------------------------------------------------------------------===//
// Builder
//===----------------------------------------------------------------------===//

/// Appends actions to the programs of a schedule, rank by rank or
/// interleaved. It remembers which sends still read a slot, so that a write
/// into the slot first waits for them (a write under an unwaited send is
/// invalid), and waits for the remaining sends when a rank finishes.
class Builder {
public:
  explicit Builder(Schedule &s) : sched(s), state(s.ranks) {}

  int slot(int r, SlotKind kind, const std::string &label) {
    RankProgram &p = sched.programs[r];
    p.slots.push_back({kind, label});
    state[r].sendsOn.emplace_back();
    return static_cast<int>(p.slots.size()) - 1;
  }

  void loadMaster(int r, int t, int slot, int chunk) {
    waitSends(r, t, slot);
    Action a = make(Op::LoadMaster, t);
    a.chunk = chunk;
    a.slots = {slot};
    push(r, std::move(a));
  }
  void zero(int r, int t, int slot, int chunk) {
    waitSends(r, t, slot);
    Action a = make(Op::Zero, t);
    a.chunk = chunk;
    a.slots = {slot};
    push(r, std::move(a));
  }
  void swap(int r, int t, int x, int y) {
    waitSends(r, t, x);
    waitSends(r, t, y);
    Action a = make(Op::Swap, t);
    a.slots = {x, y};
    push(r, std::move(a));
  }
  void addInto(int r, int t, int dst, int src, int chunk) {
    waitSends(r, t, dst);
    Action a = make(Op::AddInto, t);
    a.chunk = chunk;
    a.slots = {dst, src};
    push(r, std::move(a));
  }
  void forward(int r, int t, int c, int m, int w, int in = -1, int out = -1) {
    push(r, compute(r, Op::Forward, t, c, m, w, -1, in, out));
  }
  void backwardInput(int r, int t, int c, int m, int w, int in = -1,
                     int out = -1) {
    push(r, compute(r, Op::BackwardInput, t, c, m, w, -1, in, out));
  }
  void backwardWeight(int r, int t, int c, int m, int g) {
    push(r, compute(r, Op::BackwardWeight, t, c, m, -1, g, -1, -1));
  }
  void backward(int r, int t, int c, int m, int w, int g, int in = -1,
                int out = -1) {
    push(r, compute(r, Op::Backward, t, c, m, w, g, in, out));
  }
  void optimizerStep(int r, int t, int c, int g) {
    Action a = make(Op::OptimizerStep, t);
    a.chunk = c;
    a.grads = g;
    push(r, std::move(a));
  }
  int send(int r, int t, int peer, std::vector<int> slots) {
    RankState &st = state[r];
    Action a = make(Op::Send, t);
    a.peer = peer;
    a.token = st.nextToken++;
    for (int x : slots)
      st.sendsOn[x].push_back(a.token);
    st.tokenSlots.push_back(slots);
    st.pendingSends.push_back(a.token);
    a.slots = std::move(slots);
    int token = a.token;
    push(r, std::move(a));
    return token;
  }
  int recv(int r, int t, int peer, std::vector<int> slots) {
    RankState &st = state[r];
    for (int x : slots)
      waitSends(r, t, x);
    Action a = make(Op::Recv, t);
    a.peer = peer;
    a.token = st.nextToken++;
    st.tokenSlots.emplace_back();
    a.slots = std::move(slots);
    int token = a.token;
    push(r, std::move(a));
    return token;
  }
  void wait(int r, int t, std::vector<int> tokens) {
    if (tokens.empty())
      return;
    RankState &st = state[r];
    for (int tok : tokens) {
      for (int x : st.tokenSlots[tok]) {
        auto &v = st.sendsOn[x];
        v.erase(std::remove(v.begin(), v.end(), tok), v.end());
      }
      auto &p = st.pendingSends;
      p.erase(std::remove(p.begin(), p.end(), tok), p.end());
    }
    Action a = make(Op::Wait, t);
    a.tokens = std::move(tokens);
    push(r, std::move(a));
  }
  /// Waits for the sends that still read `slot`, before it is written.
  void waitSends(int r, int t, int slot) {
    if (!state[r].sendsOn[slot].empty())
      wait(r, t, state[r].sendsOn[slot]);
  }
  /// Waits for every send of `r` not waited yet.
  void finish(int r, int t) { wait(r, t, state[r].pendingSends); }

private:
  struct RankState {
    int nextToken = 0;
    std::vector<std::vector<int>> sendsOn;    // per slot: unwaited sends
    std::vector<std::vector<int>> tokenSlots; // per token: a send's slots
    std::vector<int> pendingSends;
  };

  static Action make(Op op, int t) {
    Action a;
    a.op = op;
    a.turn = t;
    return a;
  }
  Action compute(int r, Op op, int t, int c, int m, int w, int g, int in,
                 int out) {
    if (out >= 0)
      waitSends(r, t, out);
    if (g >= 0)
      waitSends(r, t, g);
    Action a = make(op, t);
    a.chunk = c;
    a.microbatch = m;
    a.weights = w;
    a.grads = g;
    a.in = in;
    a.out = out;
    return a;
  }
  void push(int r, Action a) {
    sched.programs[r].actions.push_back(std::move(a));
  }

  Schedule &sched;
  std::vector<RankState> state;
};

/// A weights slot that must hold `chunk` at the start of the iteration.
struct SeedNeed {
  int rank, slot, chunk;
};

/// Fills every seed slot: a LoadMaster where the rank owns the chunk, else a
/// transfer from the owner (from a slot the owner loaded with it, or from a
/// slot "M" loaded for the purpose). Sends first, then receives, then waits,
/// so every link sees the transfers in one order on both ends.
void seedWeights(Builder &b, const Schedule &s,
                 const std::vector<SeedNeed> &needs, int t) {
  std::vector<std::unordered_map<int, int>> loaded(s.ranks); // chunk -> slot
  for (const SeedNeed &n : needs)
    if (s.owner[n.chunk] == n.rank) {
      b.loadMaster(n.rank, t, n.slot, n.chunk);
      loaded[n.rank].emplace(n.chunk, n.slot);
    }
  std::vector<int> masterSlot(s.ranks, -1);
  std::vector<std::vector<int>> tokens(s.ranks);
  for (const SeedNeed &n : needs) {
    int o = s.owner[n.chunk];
    if (o == n.rank)
      continue;
    auto it = loaded[o].find(n.chunk);
    int from;
    if (it != loaded[o].end()) {
      from = it->second;
    } else {
      if (masterSlot[o] < 0) {
        masterSlot[o] = b.slot(o, SlotKind::Weights, "M");
        b.loadMaster(o, t, masterSlot[o], n.chunk);
      }
      from = masterSlot[o];
    }
    tokens[o].push_back(b.send(o, t, n.rank, {from}));
  }
  for (const SeedNeed &n : needs)
    if (s.owner[n.chunk] != n.rank)
      tokens[n.rank].push_back(b.recv(n.rank, t, s.owner[n.chunk], {n.slot}));
  for (int r = 0; r < s.ranks; ++r)
    b.wait(r, t, tokens[r]);
}

//===----------------------------------------------------------------------===//
// single
//===----------------------------------------------------------------------===//

bool genSingle(Schedule &s) {
  s.owner = {0};
  Builder b(s);
  int w = b.slot(0, SlotKind::Weights, "W");
  int d = b.slot(0, SlotKind::Grads, "D");
  b.loadMaster(0, 0, w, 0);
  b.zero(0, 0, d, 0);
  for (int m = 0; m < s.microbatches; ++m) {
    b.forward(0, 2 * m, 0, m, w);
    b.backward(0, 2 * m + 1, 0, m, w, d);
  }
  b.optimizerStep(0, 2 * s.microbatches - 1, 0, d);
  return true;
}

//===----------------------------------------------------------------------===//
// Activation passing: gpipe, 1f1b, interleaved-1f1b, zb-h1
//===----------------------------------------------------------------------===//

struct Comp {
  Op op;
  int chunk, mb;
  int turn = 0;
};
using Orders = std::vector<std::vector<Comp>>;

/// Unit-cost list scheduling of each rank's order: an op starts one turn
/// after the op it depends on (on any rank) and after the rank's previous op.
bool assignTurns(const Schedule &s, Orders &ops, std::string *error) {
  const int p = s.ranks, c = s.chunks, n = s.microbatches;
  std::vector<int> tF(size_t(c) * n, -1), tB(size_t(c) * n, -1);
  std::vector<size_t> pc(p, 0);
  std::vector<int> last(p, -1);
  size_t remaining = 0;
  for (const auto &v : ops)
    remaining += v.size();
  while (remaining) {
    bool progress = false;
    for (int r = 0; r < p; ++r) {
      while (pc[r] < ops[r].size()) {
        Comp &op = ops[r][pc[r]];
        size_t idx = size_t(op.chunk) * n + op.mb;
        int dep = -1;
        bool ready = true;
        if (op.op == Op::Forward) {
          if (op.chunk > 0)
            ready = (dep = tF[idx - n]) >= 0;
        } else if (op.op == Op::BackwardWeight) {
          ready = (dep = tB[idx]) >= 0;
        } else {
          dep = op.chunk == c - 1 ? tF[idx] : tB[idx + n];
          ready = dep >= 0 && tF[idx] >= 0;
        }
        if (!ready)
          break;
        op.turn = std::max(last[r] + 1, dep + 1);
        last[r] = op.turn;
        if (op.op == Op::Forward)
          tF[idx] = op.turn;
        else if (op.op != Op::BackwardWeight)
          tB[idx] = op.turn;
        ++pc[r];
        --remaining;
        progress = true;
      }
    }
    if (!progress) {
      for (int r = 0; r < p; ++r)
        if (pc[r] < ops[r].size()) {
          const Comp &op = ops[r][pc[r]];
          return internalError(error, "the compute order of rank " +
                                          std::to_string(r) +
                                          " waits forever at " + opName(op.op) +
                                          " " + std::to_string(op.chunk) + "." +
                                          std::to_string(op.mb));
        }
    }
  }
  return true;
}

/// Writes the programs of an activation-passing schedule from each rank's
/// compute order. Chunk c lives on rank c mod P. Activations go forward and
/// activation gradients backward in single-slot messages; a receiver posts
/// its receives from a peer in the order the peer sends them (FIFO per
/// link), early if it consumes them in another order, and one op ahead so
/// that the transfer overlaps the current compute.
bool emitActivationPassing(Schedule &s, Orders &ops, std::string *error) {
  const int p = s.ranks, c = s.chunks, n = s.microbatches;
  s.owner.resize(c);
  for (int x = 0; x < c; ++x)
    s.owner[x] = x % p;
  if (!assignTurns(s, ops, error))
    return false;
  int end = 0; // the last turn; the optimizer steps belong to it
  for (const auto &v : ops)
    for (const Comp &op : v)
      end = std::max(end, op.turn);

  auto isB = [](Op op) {
    return op == Op::BackwardInput || op == Op::Backward;
  };
  // Where an op's result goes (-1: stays on the rank or is not passed on).
  auto destOf = [&](int r, const Comp &op) {
    if (op.op == Op::Forward && op.chunk + 1 < c && s.owner[op.chunk + 1] != r)
      return s.owner[op.chunk + 1];
    if (isB(op.op) && op.chunk > 0 && s.owner[op.chunk - 1] != r)
      return s.owner[op.chunk - 1];
    return -1;
  };
  // Index of each message on its link, in the sender's order.
  std::vector<int> actIdx(size_t(c) * n, -1), gradIdx(size_t(c) * n, -1);
  std::vector<int> linkCount(size_t(p) * p, 0);
  for (int q = 0; q < p; ++q)
    for (const Comp &op : ops[q]) {
      int d = destOf(q, op);
      if (d < 0)
        continue;
      int idx = linkCount[size_t(q) * p + d]++;
      (op.op == Op::Forward ? actIdx : gradIdx)[size_t(op.chunk) * n + op.mb] =
          idx;
    }
  // The message an op consumes: (peer, index on the link), or peer -1.
  auto inputOf = [&](int r, const Comp &op) -> std::pair<int, int> {
    if (op.op == Op::Forward && op.chunk > 0 && s.owner[op.chunk - 1] != r)
      return {s.owner[op.chunk - 1], actIdx[size_t(op.chunk - 1) * n + op.mb]};
    if (isB(op.op) && op.chunk + 1 < c && s.owner[op.chunk + 1] != r)
      return {s.owner[op.chunk + 1], gradIdx[size_t(op.chunk + 1) * n + op.mb]};
    return {-1, -1};
  };

  Builder b(s);
  for (int r = 0; r < p; ++r) {
    std::vector<int> wSlot(c, -1), gSlot(c, -1);
    for (int x = r; x < c; x += p) {
      wSlot[x] = b.slot(r, SlotKind::Weights, "W" + std::to_string(x));
      gSlot[x] = b.slot(r, SlotKind::Grads, "D" + std::to_string(x));
    }
    for (int x = r; x < c; x += p) {
      b.loadMaster(r, 0, wSlot[x], x);
      b.zero(r, 0, gSlot[x], x);
    }
    struct Posted {
      int slot, token;
    };
    std::vector<int> posted(p, 0);
    std::unordered_map<long long, Posted> inbox;
    std::vector<int> freeIn;
    int numIn = 0;
    int outSlots[2] = {-1, -1};
    int numOut = 0;
    auto key = [&](int peer, int idx) { return (long long)idx * p + peer; };
    auto ensurePosted = [&](std::pair<int, int> in, int t) {
      if (in.first < 0)
        return;
      while (posted[in.first] <= in.second) {
        int x;
        if (freeIn.empty()) {
          x = b.slot(r, SlotKind::Activations, "Ain" + std::to_string(numIn++));
        } else {
          x = freeIn.back();
          freeIn.pop_back();
        }
        int tok = b.recv(r, t, in.first, {x});
        inbox[key(in.first, posted[in.first]++)] = {x, tok};
      }
    };
    const auto &v = ops[r];
    for (size_t k = 0; k < v.size(); ++k) {
      const Comp &op = v[k];
      const int t = op.turn;
      std::pair<int, int> need = inputOf(r, op);
      ensurePosted(need, t);
      if (k + 1 < v.size())
        ensurePosted(inputOf(r, v[k + 1]), t);
      int in = -1;
      if (need.first >= 0) {
        auto it = inbox.find(key(need.first, need.second));
        Posted got = it->second;
        inbox.erase(it);
        b.wait(r, t, {got.token});
        in = got.slot;
      }
      int dest = destOf(r, op), out = -1;
      if (dest >= 0) {
        int &x = outSlots[numOut++ % 2];
        if (x < 0)
          x = b.slot(r, SlotKind::Activations,
                     "Aout" + std::to_string((numOut - 1) % 2));
        out = x;
      }
      switch (op.op) {
      case Op::Forward:
        b.forward(r, t, op.chunk, op.mb, wSlot[op.chunk], in, out);
        break;
      case Op::BackwardInput:
        b.backwardInput(r, t, op.chunk, op.mb, wSlot[op.chunk], in, out);
        break;
      case Op::BackwardWeight:
        b.backwardWeight(r, t, op.chunk, op.mb, gSlot[op.chunk]);
        break;
      default:
        b.backward(r, t, op.chunk, op.mb, wSlot[op.chunk], gSlot[op.chunk], in,
                   out);
        break;
      }
      if (in >= 0)
        freeIn.push_back(in);
      if (out >= 0)
        b.send(r, t, dest, {out});
    }
    b.finish(r, end);
    for (int x = r; x < c; x += p)
      b.optimizerStep(r, end, x, gSlot[x]);
  }
  return true;
}

bool genGPipe(Schedule &s, std::string *error) {
  Orders ops(s.ranks);
  for (int r = 0; r < s.ranks; ++r) {
    for (int m = 0; m < s.microbatches; ++m)
      ops[r].push_back({Op::Forward, r, m});
    for (int m = 0; m < s.microbatches; ++m)
      ops[r].push_back({Op::Backward, r, m});
  }
  return emitActivationPassing(s, ops, error);
}

bool gen1F1B(Schedule &s, std::string *error) {
  const int p = s.ranks, n = s.microbatches;
  Orders ops(p);
  for (int r = 0; r < p; ++r) {
    int warmup = std::min(p - 1 - r, n);
    for (int m = 0; m < warmup; ++m)
      ops[r].push_back({Op::Forward, r, m});
    for (int i = 0; i < n - warmup; ++i) {
      ops[r].push_back({Op::Forward, r, warmup + i});
      ops[r].push_back({Op::Backward, r, i});
    }
    for (int m = n - warmup; m < n; ++m)
      ops[r].push_back({Op::Backward, r, m});
  }
  return emitActivationPassing(s, ops, error);
}

/// Megatron-LM's interleaved 1F1B: rank r holds chunks r, r+P, ...; micro-
/// batches go through in groups of P per model chunk.
bool genInterleaved1F1B(Schedule &s, std::string *error) {
  const int p = s.ranks, n = s.microbatches, v = s.chunks / p;
  const int total = n * v;
  Orders ops(p);
  for (int r = 0; r < p; ++r) {
    auto fwdChunk = [&](int k) { return (k % (p * v)) / p * p + r; };
    auto bwdChunk = [&](int k) { return (v - 1 - (k % (p * v)) / p) * p + r; };
    auto mbOf = [&](int k) { return k / (p * v) * p + k % p; };
    int warmup =
        n == p ? total : std::min((p - r - 1) * 2 + (v - 1) * p, total);
    for (int k = 0; k < warmup; ++k)
      ops[r].push_back({Op::Forward, fwdChunk(k), mbOf(k)});
    for (int k = 0; k < total - warmup; ++k) {
      ops[r].push_back({Op::Forward, fwdChunk(warmup + k), mbOf(warmup + k)});
      ops[r].push_back({Op::Backward, bwdChunk(k), mbOf(k)});
    }
    for (int k = total - warmup; k < total; ++k)
      ops[r].push_back({Op::Backward, bwdChunk(k), mbOf(k)});
  }
  return emitActivationPassing(s, ops, error);
}

/// ZB-H1 (Zero Bubble, Qi et al.; torch's ZB1P with one stage per rank):
/// 1F1B's warmup of P-1-r forwards, then per micro-batch F and B (the
/// activation-gradient pass), with rank r deferring its W passes by r
/// micro-batches; the deferred W fill the cooldown, where 1F1B idles. At unit
/// costs the iteration takes 3N + P - 1 turns (1F1B's bubble of 3(P-1)
/// units shrinks to P-1) with 1F1B's peak of P micro-batches in flight.
bool genZBH1(Schedule &s, std::string *error) {
  const int p = s.ranks, n = s.microbatches;
  Orders ops(p);
  for (int r = 0; r < p; ++r) {
    auto &o = ops[r];
    const int warmup = std::min(p - 1 - r, n);
    int nb = 0, nw = 0;
    auto backward = [&]() {
      o.push_back({Op::BackwardInput, r, nb++});
      if (nb > r)
        o.push_back({Op::BackwardWeight, r, nw++});
    };
    for (int m = 0; m < warmup; ++m)
      o.push_back({Op::Forward, r, m});
    for (int m = warmup; m < n; ++m) {
      o.push_back({Op::Forward, r, m});
      backward();
    }
    while (nb < n)
      backward();
    while (nw < n)
      o.push_back({Op::BackwardWeight, r, nw++});
  }
  return emitActivationPassing(s, ops, error);
}

//===----------------------------------------------------------------------===//
// fsdp
//===----------------------------------------------------------------------===//

/// FSDP / ZeRO-3 style data parallelism: chunk c's master lives on rank c.
/// All ranks walk the same steps (per local micro-batch: F of chunks 0..C-1,
/// then B of C-1..0), each on its own micro-batch. The weights of step s+1
/// are gathered during step s into the weights slot of the other parity:
/// the owner loads them and sends them to every rank of its node and to
/// one relay in each other node (nodes of nodeSize consecutive ranks; the
/// relay has the owner's place in its node), which passes them on to the
/// rest of its node when it takes them at step s+1 — one copy per node
/// crosses the slow link between nodes, not one per rank. Every rank
/// accumulates its gradient of every chunk locally and sends it to the
/// owner at the end; the owner adds them in rank order and steps.
bool genFSDP(Schedule &s) {
  const int p = s.ranks, c = s.chunks, nw = s.microbatches / p;
  const int ns = std::max(s.nodeSize, 1);
  s.owner.resize(c);
  for (int x = 0; x < c; ++x)
    s.owner[x] = x;
  const int steps = nw * 2 * c;
  // Who sends rank q the weights owner o gathers: o itself inside o's node
  // and to the relays, else q's node's relay.
  auto relayOf = [&](int q, int o) { return q / ns * ns + o % ns; };
  auto sourceOf = [&](int q, int o) {
    return q / ns == o / ns || q == relayOf(q, o) ? o : relayOf(q, o);
  };
  auto chunkOf = [&](int st) {
    int k = st % (2 * c);
    return k < c ? k : 2 * c - 1 - k;
  };
  Builder b(s);
  std::vector<std::vector<int>> w(p), g(p);
  for (int r = 0; r < p; ++r) {
    w[r] = {b.slot(r, SlotKind::Weights, "W0"),
            b.slot(r, SlotKind::Weights, "W1")};
    for (int x = 0; x < c; ++x)
      g[r].push_back(b.slot(r, SlotKind::Grads, "D" + std::to_string(x)));
    for (int x = 0; x < c; ++x)
      b.zero(r, 0, g[r][x], x);
  }
  // pending[r][parity]: the receive of the weights of the next step.
  std::vector<std::vector<int>> pending(p, std::vector<int>(2, -1));
  auto gather = [&](int st, int t) {
    int x = chunkOf(st), o = s.owner[x], par = st % 2;
    b.loadMaster(o, t, w[o][par], x);
    for (int q = 0; q < p; ++q)
      if (q != o && sourceOf(q, o) == o)
        b.send(o, t, q, {w[o][par]});
    for (int q = 0; q < p; ++q)
      if (q != o)
        pending[q][par] = b.recv(q, t, sourceOf(q, o), {w[q][par]});
  };
  gather(0, 0);
  for (int st = 0; st < steps; ++st) {
    if (st + 1 < steps)
      gather(st + 1, st);
    const int x = chunkOf(st), m = st / (2 * c), par = st % 2;
    const bool fwd = st % (2 * c) < c;
    for (int r = 0; r < p; ++r) {
      if (pending[r][par] >= 0) {
        b.wait(r, st, {pending[r][par]});
        pending[r][par] = -1;
      }
      const int o = s.owner[x];
      for (int q = 0; q < p && r != o; ++q) // a relay passes the weights on
        if (q != r && q != o && sourceOf(q, o) == r)
          b.send(r, st, q, {w[r][par]});
      if (fwd)
        b.forward(r, st, x, r + p * m, w[r][par]);
      else
        b.backward(r, st, x, r + p * m, w[r][par], g[r][x]);
    }
  }
  // Reduce to the owners: every send first, then each owner's receives.
  const int t = steps;
  for (int r = 0; r < p; ++r)
    for (int x = 0; x < c; ++x)
      if (x != r)
        b.send(r, t, x, {g[r][x]});
  for (int r = 0; r < p; ++r) {
    std::vector<int> from;
    for (int q = 0; q < p; ++q)
      if (q != r)
        from.push_back(q);
    int rs[2] = {-1, -1};
    std::vector<int> tok(from.size(), -1);
    auto post = [&](size_t k) {
      int &x = rs[k % 2];
      if (x < 0)
        x = b.slot(r, SlotKind::Grads, "R" + std::to_string(k % 2));
      tok[k] = b.recv(r, t, from[k], {x});
    };
    for (size_t k = 0; k < from.size() && k < 2; ++k)
      post(k);
    for (size_t k = 0; k < from.size(); ++k) {
      b.wait(r, t, {tok[k]});
      b.addInto(r, t, g[r][r], rs[k % 2], r);
      if (k + 2 < from.size())
        post(k + 2);
    }
    b.finish(r, t);
    b.optimizerStep(r, t, r, g[r][r]);
  }
  return true;
}

//===----------------------------------------------------------------------===//
// tawpipe
//===----------------------------------------------------------------------===//

/// TawPipe (spec section 6): P/nodeSize nodes of nodeSize consecutive ranks;
/// chunk i's master on rank (i mod G) * nodeSize + i / G (G nodes). Node g
/// runs visit u (per local micro-batch: F of chunks 0..C-1, then B of
/// C-1..0) at tick u + g, every rank of the node on its own micro-batch with
/// the same chunk. The node's root for a visit (the owner if the chunk lives
/// in the node, else the node leader) fetches the chunk during the previous
/// tick: LoadMaster, or one inter-node message from the previous node's root
/// (node 0: from the owner), then sends it to the other ranks of the node.
/// After a B visit the ranks send their gradient to the root, which adds
/// them in rank order; a leader then sends the node's sum to the owner,
/// which adds it into its accumulator one tick later.
bool genTawPipe(Schedule &s) {
  const int p = s.ranks, c = s.chunks, ns = s.nodeSize, groups = p / ns;
  const int nw = s.microbatches / p, visits = nw * 2 * c;
  s.owner.resize(c);
  std::vector<int> ownChunk(p);
  for (int x = 0; x < c; ++x) {
    s.owner[x] = (x % groups) * ns + x / groups;
    ownChunk[s.owner[x]] = x;
  }
  auto chunkOf = [&](int u) {
    int k = u % (2 * c);
    return k < c ? k : 2 * c - 1 - k;
  };
  auto isFwd = [&](int u) { return u % (2 * c) < c; };
  auto root = [&](int g, int u) {
    int o = s.owner[chunkOf(u)];
    return o / ns == g ? o : g * ns;
  };
  Builder b(s);
  std::vector<std::unordered_map<std::string, int>> named(p);
  auto slotOf = [&](int r, SlotKind kind, const std::string &label) {
    auto it = named[r].find(label);
    if (it != named[r].end())
      return it->second;
    int x = b.slot(r, kind, label);
    named[r].emplace(label, x);
    return x;
  };
  auto W = [&](int r, int par) {
    return slotOf(r, SlotKind::Weights, "W" + std::to_string(par));
  };
  auto G = [&](int r, int par) {
    return slotOf(r, SlotKind::Grads, "G" + std::to_string(par));
  };
  auto D = [&](int r) { return slotOf(r, SlotKind::Grads, "D"); };
  for (int r = 0; r < p; ++r) {
    W(r, 0);
    W(r, 1);
    b.zero(r, 0, D(r), ownChunk[r]);
  }
  std::vector<std::vector<int>> memberTok(p, std::vector<int>(2, -1));
  struct PendingSum {
    int owner, token, slot, chunk;
  };
  std::vector<PendingSum> sums;

  // The weights of the visits of tick `tu`, fetched during turn t.
  auto fetch = [&](int tu, int t) {
    const int par = tu % 2;
    for (int g = 0; g < groups; ++g) {
      int u = tu - g;
      if (u < 0 || u >= visits)
        continue;
      int x = chunkOf(u), rt = root(g, u);
      if (rt == s.owner[x]) {
        b.loadMaster(rt, t, W(rt, par), x);
      } else {
        int src, from;
        if (g > 0) {
          // Node g-1 runs the same visit one tick earlier.
          src = root(g - 1, u);
          from = W(src, (tu - 1) % 2);
        } else {
          src = s.owner[x];
          from = slotOf(src, SlotKind::Weights, "S");
          b.loadMaster(src, t, from, x);
        }
        b.send(src, t, rt, {from});
        b.wait(rt, t, {b.recv(rt, t, src, {W(rt, par)})});
      }
      for (int r = g * ns; r < (g + 1) * ns; ++r)
        if (r != rt)
          b.send(rt, t, r, {W(rt, par)});
      for (int r = g * ns; r < (g + 1) * ns; ++r)
        if (r != rt)
          memberTok[r][par] = b.recv(r, t, rt, {W(r, par)});
    }
  };
  auto reduce = [&](int t) {
    for (const PendingSum &ps : sums) {
      b.wait(ps.owner, t, {ps.token});
      b.addInto(ps.owner, t, D(ps.owner), ps.slot, ps.chunk);
    }
    sums.clear();
    const int par = t % 2;
    for (int g = 0; g < groups; ++g) {
      int u = t - g;
      if (u < 0 || u >= visits || isFwd(u))
        continue;
      int x = chunkOf(u), red = root(g, u), o = s.owner[x];
      int acc = red == o ? D(red) : G(red, par);
      std::vector<int> members;
      for (int r = g * ns; r < (g + 1) * ns; ++r)
        if (r != red)
          members.push_back(r);
      for (int r : members)
        b.send(r, t, red, {G(r, par)});
      std::vector<int> tok(members.size());
      auto post = [&](size_t k) {
        tok[k] =
            b.recv(red, t, members[k],
                   {slotOf(red, SlotKind::Grads, "R" + std::to_string(k % 2))});
      };
      for (size_t k = 0; k < members.size() && k < 2; ++k)
        post(k);
      for (size_t k = 0; k < members.size(); ++k) {
        b.wait(red, t, {tok[k]});
        b.addInto(red, t, acc,
                  slotOf(red, SlotKind::Grads, "R" + std::to_string(k % 2)), x);
        if (k + 2 < members.size())
          post(k + 2);
      }
      if (red != o) {
        b.send(red, t, o, {acc});
        int q = slotOf(o, SlotKind::Grads, "Q" + std::to_string(par));
        sums.push_back({o, b.recv(o, t, red, {q}), q, x});
      }
    }
  };

  fetch(0, 0);
  const int ticks = visits + groups - 1;
  for (int t = 0; t < ticks; ++t) {
    fetch(t + 1, t);
    const int par = t % 2;
    for (int g = 0; g < groups; ++g) {
      int u = t - g;
      if (u < 0 || u >= visits)
        continue;
      int x = chunkOf(u), m = u / (2 * c);
      for (int r = g * ns; r < (g + 1) * ns; ++r) {
        if (memberTok[r][par] >= 0) {
          b.wait(r, t, {memberTok[r][par]});
          memberTok[r][par] = -1;
        }
        int mb = r + p * m;
        if (isFwd(u)) {
          b.forward(r, t, x, mb, W(r, par));
        } else if (r == s.owner[x]) {
          b.backward(r, t, x, mb, W(r, par), D(r));
        } else {
          b.zero(r, t, G(r, par), x);
          b.backward(r, t, x, mb, W(r, par), G(r, par));
        }
      }
    }
    reduce(t);
  }
  reduce(ticks);
  for (int r = 0; r < p; ++r) {
    b.finish(r, ticks);
    b.optimizerStep(r, ticks, ownChunk[r], D(r));
  }
  return true;
}

//===----------------------------------------------------------------------===//
// WeiPipe: naive, interleave, zb2
//===----------------------------------------------------------------------===//

enum class Wei { Naive, Interleave, ZB2 };

/// One compute step of a WeiPipe turn; `use` says which held slot it reads
/// or accumulates into (the rings' current slots, or WZB1's pair slots).
struct WeiStep {
  Op op;
  int chunk, mb;
  int use = 0;
};
using WeiPlan = std::vector<std::vector<std::vector<WeiStep>>>; // [r][t]

void addStep(WeiPlan &plan, int r, int t, WeiStep st) {
  if (int(plan[r].size()) <= t)
    plan[r].resize(t + 1);
  plan[r][t].push_back(st);
}

/// Naive, Interleave and WZB2 (spec sections 2.1, 2.2, 2.4): three rings
/// moving r -> r+1, double-buffered (receive into the spare slot, then wait
/// and swap). At turn t rank r holds, with f = (t - r) mod P:
///   F-ring W_f, B-ring W_{P-1-f}, D-ring D_{P-1-f} (WZB2: D_f).
/// The owner of chunk c is rank (c+1) mod P, so the B-ring starts from each
/// rank's own master and the F-ring from the partner's, exchanged with rank
/// (1-r) mod P. A ring moves after the turns in [begin, end), the same for
/// every rank; it stays still before `begin` (a multiple of P, and P hops
/// return every slot to where it was) and stops once no rank needs it.
///
/// Naive and Interleave: the D-ring keeps moving until the first turn T
/// after the last compute with T a multiple of P; then every rank holds the
/// complete D of its own chunk (the ring-only turns) and steps it.
///
/// WZB2 (N == P, one round): D_c rides with the F-ring and is complete on
/// rank P-1 after its W(c). Design decision (the paper leaves it open): the
/// master and optimizer state of every chunk stay with its owner; rank P-1
/// sends the complete D_c straight to the owner, which steps it. With one
/// round per iteration no weights change in the middle of an iteration.
bool genWeiPipe(Schedule &s, Wei v) {
  const int p = s.ranks, nw = s.microbatches / p;
  s.owner.resize(p);
  for (int x = 0; x < p; ++x)
    s.owner[x] = (x + 1) % p;
  WeiPlan plan(p);
  int lastF = -1, lastB = -1, last = -1;
  auto add = [&](int r, int t, WeiStep st) {
    addStep(plan, r, t, st);
    if (st.op == Op::Forward)
      lastF = std::max(lastF, t);
    if (st.op == Op::Backward || st.op == Op::BackwardInput)
      lastB = std::max(lastB, t);
    last = std::max(last, t);
  };
  for (int r = 0; r < p; ++r)
    for (int m = 0; m < nw; ++m) {
      const int mb = r + p * m;
      for (int l = 0; l < p; ++l) {
        if (v == Wei::Naive) {
          add(r, r + 2 * p * m + l, {Op::Forward, l, mb});
          add(r, r + 2 * p * m + p + l, {Op::Backward, p - 1 - l, mb});
        } else if (v == Wei::Interleave) {
          add(r, r + p * m + l, {Op::Forward, l, mb});
          add(r, r + p * (m + 1) + l, {Op::Backward, p - 1 - l, mb});
        } else {
          add(r, r + l, {Op::Forward, l, mb});
          add(r, r + p + l, {Op::BackwardInput, p - 1 - l, mb});
          add(r, r + 2 * p + l, {Op::BackwardWeight, l, mb});
        }
      }
    }
  // The paper's order inside an Interleave turn: the backward, then the
  // forward of the next micro-batch.
  for (auto &turns : plan)
    for (auto &cell : turns)
      std::stable_sort(cell.begin(), cell.end(),
                       [](const WeiStep &a, const WeiStep &b) {
                         return a.op != Op::Forward && b.op == Op::Forward;
                       });

  enum { FR, BR, DR, NumRings };
  auto chunkAt = [&](int ring, int r, int t) {
    int f = mod(t - r, p);
    if (ring == FR || (ring == DR && v == Wei::ZB2))
      return f;
    return p - 1 - f;
  };
  int begin[NumRings] = {0, p, p}, end[NumRings] = {lastF, lastB, 0};
  int turns;
  if (v == Wei::ZB2) {
    begin[DR] = 2 * p;
    end[DR] = last;
    turns = last + 1;
  } else {
    turns = (last / p + 1) * p;
    end[DR] = turns;
  }
  auto moves = [&](int ring, int t) {
    return p > 1 && t >= begin[ring] && t < end[ring];
  };

  Builder b(s);
  const char *labels[NumRings] = {"F", "B", "D"};
  std::vector<std::vector<int>> cur(NumRings), next(NumRings);
  for (int r = 0; r < p; ++r)
    for (int ring = 0; ring < NumRings; ++ring) {
      SlotKind k = ring == DR ? SlotKind::Grads : SlotKind::Weights;
      cur[ring].push_back(b.slot(r, k, labels[ring]));
      next[ring].push_back(b.slot(r, k, std::string(labels[ring]) + "n"));
    }
  std::vector<SeedNeed> needs;
  for (int r = 0; r < p; ++r)
    needs.push_back({r, cur[BR][r], chunkAt(BR, r, 0)});
  for (int r = 0; r < p; ++r)
    needs.push_back({r, cur[FR][r], chunkAt(FR, r, 0)});
  seedWeights(b, s, needs, 0);
  for (int r = 0; r < p; ++r)
    b.zero(r, 0, cur[DR][r], chunkAt(DR, r, 0));

  std::vector<int> dr(p, -1); // WZB2: where an owner receives its D
  for (int t = 0; t < turns; ++t) {
    std::vector<std::vector<int>> toks(p);
    for (int r = 0; r < p; ++r)
      for (int ring = 0; ring < NumRings; ++ring)
        if (moves(ring, t))
          toks[r].push_back(b.recv(r, t, mod(r - 1, p), {next[ring][r]}));
    std::vector<int> deliver;
    for (int r = 0; r < p; ++r) {
      if (t >= int(plan[r].size()))
        continue;
      for (const WeiStep &st : plan[r][t]) {
        switch (st.op) {
        case Op::Forward:
          b.forward(r, t, st.chunk, st.mb, cur[FR][r]);
          break;
        case Op::Backward:
          b.backward(r, t, st.chunk, st.mb, cur[BR][r], cur[DR][r]);
          break;
        case Op::BackwardInput:
          b.backwardInput(r, t, st.chunk, st.mb, cur[BR][r]);
          break;
        default:
          b.backwardWeight(r, t, st.chunk, st.mb, cur[DR][r]);
          if (v == Wei::ZB2 && r == p - 1) {
            // D of st.chunk is complete.
            if (s.owner[st.chunk] == r)
              b.optimizerStep(r, t, st.chunk, cur[DR][r]);
            else
              deliver.push_back(st.chunk);
          }
          break;
        }
      }
    }
    for (int r = 0; r < p; ++r)
      for (int ring = 0; ring < NumRings; ++ring)
        if (moves(ring, t))
          toks[r].push_back(b.send(r, t, mod(r + 1, p), {cur[ring][r]}));
    std::vector<std::pair<int, int>> got; // (owner, token)
    for (int x : deliver) {
      int o = s.owner[x];
      toks[p - 1].push_back(b.send(p - 1, t, o, {cur[DR][p - 1]}));
      if (dr[o] < 0)
        dr[o] = b.slot(o, SlotKind::Grads, "Dr");
      got.push_back({o, b.recv(o, t, p - 1, {dr[o]})});
    }
    for (int r = 0; r < p; ++r) {
      b.wait(r, t, toks[r]);
      for (int ring = 0; ring < NumRings; ++ring)
        if (moves(ring, t))
          b.swap(r, t, cur[ring][r], next[ring][r]);
    }
    for (size_t k = 0; k < got.size(); ++k) {
      int o = got[k].first;
      b.wait(o, t, {got[k].second});
      b.optimizerStep(o, t, deliver[k], dr[o]);
    }
  }
  for (int r = 0; r < p; ++r) {
    if (v != Wei::ZB2)
      b.optimizerStep(r, turns - 1, mod(r - 1, p), cur[DR][r]);
    b.finish(r, turns - 1);
  }
  return true;
}

//===----------------------------------------------------------------------===//
// WeiPipe: zb1
//===----------------------------------------------------------------------===//

/// WZB1 as spec section 2.3's reconstruction (P even). The backward is split
/// into B and W. Besides the F-ring (W_f, as in Interleave) one pair ring
/// moves r -> r+1; position f = (t - r) mod P holds, for even f, the weights
/// pair (W_{P-1-f/2}, W_{P/2-1-f/2}) and, for odd f, the gradient pair
/// (D_{P-1-(f-1)/2}, D_{P/2-1-(f-1)/2}). A rank holds one pair per turn, of
/// alternating kind, so it receives the next turn's pair into the slots of
/// the other kind (no swap). After the first P turns, phases of P turns
/// cycle X, Y, X' (two micro-batches per period):
///   X:  F(a+1) + BW_top(a);  Y: BW_bottom(a) + BW_top(a+1);
///   X': F(a+2) + BW_bottom(a+1);
/// BW_top(m) at offset o: even o: B of chunk P-1-o/2, odd o: W of chunk
/// P-1-(o-1)/2 (BW_bottom: P/2-1 for P-1). The pair ring stops after the
/// last compute; a rank then holding a gradient pair sends each chunk's D
/// to its owner ((c+1) mod P), which steps it.
bool genWZB1(Schedule &s) {
  const int p = s.ranks, nw = s.microbatches / p, h = p / 2;
  s.owner.resize(p);
  for (int x = 0; x < p; ++x)
    s.owner[x] = (x + 1) % p;
  enum { UseF, UseWTop, UseWBot, UseDTop, UseDBot };
  WeiPlan plan(p);
  int lastF = -1, last = -1;
  for (int r = 0; r < p; ++r) {
    auto at = [&](int u, WeiStep st) {
      addStep(plan, r, r + u, st);
      if (st.op == Op::Forward)
        lastF = std::max(lastF, r + u);
      last = std::max(last, r + u);
    };
    auto mbOf = [&](int m) { return r + p * m; };
    auto bw = [&](int u, int m, int o, bool top) {
      int base = top ? p - 1 : h - 1;
      if (o % 2 == 0)
        at(u,
           {Op::BackwardInput, base - o / 2, mbOf(m), top ? UseWTop : UseWBot});
      else
        at(u, {Op::BackwardWeight, base - (o - 1) / 2, mbOf(m),
               top ? UseDTop : UseDBot});
    };
    for (int o = 0; o < p; ++o)
      at(o, {Op::Forward, o, mbOf(0), UseF});
    for (int k = 0; 2 * (k / 3) < nw; ++k) {
      const int a = 2 * (k / 3), type = k % 3;
      for (int o = 0; o < p; ++o) {
        const int u = p + k * p + o;
        if (type == 0) {
          if (a + 1 < nw)
            at(u, {Op::Forward, o, mbOf(a + 1), UseF});
          bw(u, a, o, true);
        } else if (type == 1) {
          bw(u, a, o, false);
          if (a + 1 < nw)
            bw(u, a + 1, o, true);
        } else {
          if (a + 2 < nw)
            at(u, {Op::Forward, o, mbOf(a + 2), UseF});
          if (a + 1 < nw)
            bw(u, a + 1, o, false);
        }
      }
    }
  }

  Builder b(s);
  std::vector<int> f(p), fn(p), wTop(p), wBot(p), dTop(p), dBot(p), dr(p, -1);
  for (int r = 0; r < p; ++r) {
    f[r] = b.slot(r, SlotKind::Weights, "F");
    fn[r] = b.slot(r, SlotKind::Weights, "Fn");
    wTop[r] = b.slot(r, SlotKind::Weights, "Wtop");
    wBot[r] = b.slot(r, SlotKind::Weights, "Wbot");
    dTop[r] = b.slot(r, SlotKind::Grads, "Dtop");
    dBot[r] = b.slot(r, SlotKind::Grads, "Dbot");
  }
  std::vector<SeedNeed> needs;
  for (int r = 0; r < p; ++r) {
    needs.push_back({r, f[r], mod(-r, p)});
    int f0 = mod(-r, p);
    if (f0 % 2 == 0) {
      needs.push_back({r, wTop[r], p - 1 - f0 / 2});
      needs.push_back({r, wBot[r], h - 1 - f0 / 2});
    }
  }
  seedWeights(b, s, needs, 0);
  for (int r = 0; r < p; ++r) {
    int f0 = mod(-r, p);
    if (f0 % 2 == 1) {
      b.zero(r, 0, dTop[r], p - 1 - (f0 - 1) / 2);
      b.zero(r, 0, dBot[r], h - 1 - (f0 - 1) / 2);
    }
  }
  auto fMoves = [&](int t) { return p > 1 && t < lastF; };
  auto pairMoves = [&](int t) { return p > 1 && t >= p && t < last; };
  for (int t = 0; t <= last; ++t) {
    std::vector<std::vector<int>> toks(p);
    for (int r = 0; r < p; ++r) {
      if (fMoves(t))
        toks[r].push_back(b.recv(r, t, mod(r - 1, p), {fn[r]}));
      if (pairMoves(t)) {
        bool holdsWeights = mod(t - r, p) % 2 == 0;
        toks[r].push_back(b.recv(r, t, mod(r - 1, p),
                                 holdsWeights
                                     ? std::vector<int>{dTop[r], dBot[r]}
                                     : std::vector<int>{wTop[r], wBot[r]}));
      }
    }
    for (int r = 0; r < p; ++r) {
      if (t >= int(plan[r].size()))
        continue;
      for (const WeiStep &st : plan[r][t]) {
        switch (st.use) {
        case UseF:
          b.forward(r, t, st.chunk, st.mb, f[r]);
          break;
        case UseWTop:
        case UseWBot:
          b.backwardInput(r, t, st.chunk, st.mb,
                          st.use == UseWTop ? wTop[r] : wBot[r]);
          break;
        default:
          b.backwardWeight(r, t, st.chunk, st.mb,
                           st.use == UseDTop ? dTop[r] : dBot[r]);
          break;
        }
      }
    }
    for (int r = 0; r < p; ++r) {
      if (fMoves(t))
        toks[r].push_back(b.send(r, t, mod(r + 1, p), {f[r]}));
      if (pairMoves(t)) {
        bool holdsWeights = mod(t - r, p) % 2 == 0;
        toks[r].push_back(b.send(r, t, mod(r + 1, p),
                                 holdsWeights
                                     ? std::vector<int>{wTop[r], wBot[r]}
                                     : std::vector<int>{dTop[r], dBot[r]}));
      }
    }
    // After the last compute: every gradient pair goes to the owners.
    struct Delivery {
      int from, owner, chunk, token;
    };
    std::vector<Delivery> deliveries;
    if (t == last) {
      for (int r = 0; r < p; ++r) {
        int fr = mod(last - r, p);
        if (fr % 2 == 0)
          continue;
        std::pair<int, int> held[2] = {{dTop[r], p - 1 - (fr - 1) / 2},
                                       {dBot[r], h - 1 - (fr - 1) / 2}};
        for (auto [slot, x] : held) {
          if (s.owner[x] == r) {
            b.optimizerStep(r, t, x, slot);
          } else {
            toks[r].push_back(b.send(r, t, s.owner[x], {slot}));
            deliveries.push_back({r, s.owner[x], x, -1});
          }
        }
      }
      for (Delivery &d : deliveries) {
        if (dr[d.owner] < 0)
          dr[d.owner] = b.slot(d.owner, SlotKind::Grads, "Dr");
        d.token = b.recv(d.owner, t, d.from, {dr[d.owner]});
      }
    }
    for (int r = 0; r < p; ++r) {
      b.wait(r, t, toks[r]);
      if (fMoves(t))
        b.swap(r, t, f[r], fn[r]);
    }
    for (const Delivery &d : deliveries) {
      b.wait(d.owner, t, {d.token});
      b.optimizerStep(d.owner, t, d.chunk, dr[d.owner]);
    }
  }
  for (int r = 0; r < p; ++r)
    b.finish(r, last);
  return true;
}

} // namespace

bool generatePrograms(const Options &o, Schedule *s, std::string *error) {
  const std::string &n = o.name;
  if (n == "single")
    return genSingle(*s);
  if (n == "gpipe")
    return genGPipe(*s, error);
  if (n == "1f1b")
    return gen1F1B(*s, error);
  if (n == "interleaved-1f1b")
    return genInterleaved1F1B(*s, error);
  if (n == "zb-h1")
    return genZBH1(*s, error);
  if (n == "fsdp")
    return genFSDP(*s);
  if (n == "weipipe-naive")
    return genWeiPipe(*s, Wei::Naive);
  if (n == "weipipe-interleave")
    return genWeiPipe(*s, Wei::Interleave);
  if (n == "weipipe-zb1")
    return genWZB1(*s);
  if (n == "weipipe-zb2")
    return genWeiPipe(*s, Wei::ZB2);
  if (n == "tawpipe")
    return genTawPipe(*s);
  return internalError(error, "no generator for schedule '" + n + "'");
}

} // namespace weipipe::schedule
