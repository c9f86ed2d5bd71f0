//===- RankMemory.cpp - what one rank of a pipeline holds -----------------===//
//
// Part of weipipe's runtime. See RankMemory.h.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/RankMemory.h"

#include <algorithm>
#include <cstdlib>

namespace weipipe::rt {

std::optional<uint64_t> parseByteCount(const std::string &text) {
  size_t b = text.find_first_not_of(" \t"), e = text.find_last_not_of(" \t");
  if (b == std::string::npos)
    return std::nullopt;
  std::string t = text.substr(b, e - b + 1);
  double scale = 1;
  switch (t.back()) {
  case 'K':
  case 'k':
    scale = 1024.0;
    break;
  case 'M':
  case 'm':
    scale = 1024.0 * 1024;
    break;
  case 'G':
  case 'g':
    scale = 1024.0 * 1024 * 1024;
    break;
  case 'T':
  case 't':
    scale = 1024.0 * 1024 * 1024 * 1024;
    break;
  default:
    break;
  }
  if (scale != 1)
    t.pop_back();
  if (t.empty() || t.find_first_not_of("0123456789.") != std::string::npos)
    return std::nullopt;
  char *end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (!end || *end || !(v >= 0) || v * scale > 1.8e19)
    return std::nullopt;
  return uint64_t(v * scale);
}

InstanceEffects instanceEffects(const Artifact &a, const Action &ac) {
  InstanceEffects e;
  if (ac.chunk < 0)
    return e;
  const size_t c = size_t(ac.chunk), C = a.numChunks();
  const size_t s = a.chunkStage(c);
  const int pro = a.prologueStage(), epi = a.epilogueStage();
  switch (ac.op) {
  case ActionOp::Forward:
    // The replicated prologue runs next to chunk 0 of the rank's own
    // micro-batches. A chunk's output goes on at once: into a slot, or into
    // the input of the next chunk's instance, acquired here (so a chunk
    // whose input came from here finds its instance made), or into the
    // epilogue, whose forward and backward (the loss and its gradient) run
    // in this action and hand the gradient to this chunk's instance: the
    // epilogue lives within the action.
    if (c == 0 && pro >= 0 && ac.in < 0)
      e.acquire.push_back(size_t(pro));
    if (!(c > 0 && ac.in < 0))
      e.acquire.push_back(s);
    if (c + 1 < C && ac.out < 0)
      e.acquire.push_back(s + 1);
    if (c + 1 == C && epi >= 0) {
      e.acquire.push_back(size_t(epi));
      e.settle.push_back({size_t(epi), true, true});
      if (outputGradWaitsApart(a.stages[s]))
        e.hold.push_back(s);
    }
    break;
  case ActionOp::BackwardInput:
  case ActionOp::BackwardWeight:
  case ActionOp::Backward: {
    // The input gradient goes on at once too (a slot, the previous chunk's
    // instance, the prologue), so B settles its own.
    const bool input = ac.op != ActionOp::BackwardWeight;
    const bool weight = ac.op != ActionOp::BackwardInput;
    if (input && ac.in < 0 && (c + 1 < C || epi >= 0) &&
        outputGradWaitsApart(a.stages[s]))
      e.take.push_back(s);
    if (input && c > 0 && ac.out < 0 && outputGradWaitsApart(a.stages[s - 1]))
      e.hold.push_back(s - 1);
    if (input && c == 0 && pro >= 0) {
      if (outputGradWaitsApart(a.stages[size_t(pro)]))
        e.pass.push_back(size_t(pro));
      e.settle.push_back({size_t(pro), true, true});
    }
    e.settle.push_back({s, weight, input});
    break;
  }
  default:
    break;
  }
  return e;
}

bool outputGradWaitsApart(const Stage &st) {
  for (const TensorRef &r : st.dout)
    if (r.present() && r.space == Space::Scratch)
      return true;
  return false;
}

bool InstanceLifetimes::settle(size_t stage, int microbatch, bool backwardDone,
                               bool inputGradTaken) {
  Life &l = life_[{stage, microbatch}];
  l.backwardDone |= backwardDone;
  l.inputGradTaken |= inputGradTaken;
  if (!(l.backwardDone && l.inputGradTaken))
    return false;
  life_.erase({stage, microbatch});
  return true;
}

std::vector<bool> rankParameters(const Artifact &a, size_t rank) {
  std::vector<bool> holds(a.params.size(), false);
  auto hold = [&](size_t s) {
    for (uint32_t p : a.stages[s].params)
      if (p < holds.size())
        holds[p] = true;
  };
  if (rank < a.programs.size())
    for (const Action &ac : a.programs[rank].actions)
      if (ac.op == ActionOp::OptimizerStep && ac.chunk >= 0 &&
          size_t(ac.chunk) < a.numChunks())
        hold(a.chunkStage(size_t(ac.chunk)));
  for (int s : {a.prologueStage(), a.epilogueStage()})
    if (s >= 0)
      hold(size_t(s));
  return holds;
}

namespace {
uint64_t add(uint64_t x, uint64_t y) {
  return x > UINT64_MAX - y ? UINT64_MAX : x + y;
}
uint64_t mul(uint64_t x, uint64_t y) {
  return y && x > UINT64_MAX / y ? UINT64_MAX : x * y;
}
} // namespace

uint64_t RankMemoryPlan::total() const {
  uint64_t t = 0;
  for (uint64_t b : {parameterBytes, gradientBytes, optimizerBytes,
                     constantBytes, slotBytes, activationBytes, scratchBytes,
                     kernelScratchBytes})
    t = add(t, b);
  return t;
}

namespace {
std::array<int64_t, 2> kernelScratchFloats(const Instruction &I) {
  switch (I.op) {
  case Opcode::LayerNormGradInput:
  case Opcode::LayerNormGradParams:
  case Opcode::RMSNormGradInput:
  case Opcode::RMSNormGradScale: {
    // One mean and one reciprocal deviation per normalized row.
    int64_t rows = 1;
    const std::vector<int64_t> &xs = I.operands[0].shape;
    for (size_t i = 0; i < size_t(I.ints[0]) && i < xs.size(); ++i)
      rows *= xs[i];
    return {rows, rows};
  }
  case Opcode::CrossEntropyGrad:
    return {I.operands[1].numel(), 0};
  default:
    return {0, 0};
  }
}
} // namespace

std::array<int64_t, 2> kernelScratchFloats(const Artifact &a) {
  std::array<int64_t, 2> need = {0, 0};
  for (const Function &f : a.functions)
    for (const Instruction &I : f.body) {
      const std::array<int64_t, 2> n = kernelScratchFloats(I);
      for (size_t k = 0; k < need.size(); ++k)
        need[k] = std::max(need[k], n[k]);
    }
  return need;
}

RankMemoryPlan planExecutorMemory(const Artifact &a,
                                  const std::vector<bool> *holds) {
  RankMemoryPlan plan;
  for (size_t i = 0; i < a.params.size(); ++i)
    if (!holds || (i < holds->size() && (*holds)[i])) {
      const uint64_t n = uint64_t(a.params[i].numel());
      const uint64_t b = alignedBytes(mul(n, sizeof(float)));
      plan.parameterBytes = add(plan.parameterBytes, b);
      plan.gradientBytes = add(plan.gradientBytes, b);
      // Two moments, each a vector of n floats.
      plan.optimizerBytes =
          add(plan.optimizerBytes, mul(2 * sizeof(float), n));
    }
  for (const Constant &c : a.constants)
    plan.constantBytes = add(plan.constantBytes, alignedBytes(c.bytes.size()));
  plan.activationBytes = alignedBytes(a.arenaBytes);
  for (const Stage &st : a.stages)
    plan.scratchBytes =
        std::max(plan.scratchBytes, alignedBytes(st.scratchBytes));
  for (int64_t n : kernelScratchFloats(a))
    plan.kernelScratchBytes =
        add(plan.kernelScratchBytes, mul(uint64_t(n), sizeof(float)));
  return plan;
}

RankMemoryPlan planRankMemory(const Artifact &a, size_t rank) {
  if (!a.isPipeline())
    return planExecutorMemory(a, nullptr);
  const std::vector<bool> holds = rankParameters(a, rank);
  RankMemoryPlan plan = planExecutorMemory(a, &holds);
  plan.instances.assign(a.stages.size(), 0);
  if (rank >= a.programs.size())
    return plan;
  const RankProgram &p = a.programs[rank];
  for (const Slot &s : p.slots)
    plan.slotBytes = add(plan.slotBytes, s.bytes);
  std::vector<uint32_t> live(a.stages.size(), 0);
  std::map<uint64_t, uint32_t> waiting; // by size
  auto waitSize = [&](size_t s) {
    return boundaryLayout(a.stages[s].dout, nullptr);
  };
  InstanceLifetimes lifetimes;
  for (const Action &ac : p.actions) {
    InstanceEffects e = instanceEffects(a, ac);
    for (size_t s : e.take)
      if (waiting[waitSize(s)] > 0)
        --waiting[waitSize(s)];
    for (size_t s : e.pass) {
      uint32_t &most = plan.waiting[waitSize(s)];
      most = std::max(most, waiting[waitSize(s)] + 1);
    }
    for (size_t s : e.hold) {
      uint32_t &most = plan.waiting[waitSize(s)];
      most = std::max(most, ++waiting[waitSize(s)]);
    }
    for (size_t s : e.acquire)
      plan.instances[s] = std::max(plan.instances[s], ++live[s]);
    for (const InstanceEffects::Settle &st : e.settle)
      if (lifetimes.settle(st.stage, ac.microbatch, st.backwardDone,
                           st.inputGradTaken) &&
          live[st.stage] > 0)
        --live[st.stage];
  }
  for (size_t s = 0; s < a.stages.size(); ++s)
    plan.activationBytes = add(plan.activationBytes,
                               mul(plan.instances[s], a.stages[s].arenaBytes));
  for (auto [bytes, count] : plan.waiting)
    plan.activationBytes = add(plan.activationBytes, mul(count, bytes));
  return plan;
}

} // namespace weipipe::rt
