//===- Cost.cpp - the time of compiled programs on a machine model --------===//
//
// Part of weipipe. See include/weipipe/Simulate/Cost.h.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Simulate/Cost.h"

#include <algorithm>

namespace weipipe::simulate {

using rt::Instruction;
using rt::Opcode;

namespace {

double numel(const rt::TensorRef &t) {
  return t.present() ? double(t.numel()) : 0;
}

double lastDim(const rt::TensorRef &t) {
  return t.shape.empty() ? 1 : double(t.shape.back());
}

/// Multiply-adds x 2 of one attention forward: Q K^T and P V over every
/// query head (ints: heads, key/value heads, causal). Q is [B, H, S, D] or
/// [B, S, H*D], K and V alike with their own heads.
double attentionFlops(const Instruction &I) {
  const rt::TensorRef &q = I.operands[0], &k = I.operands[1],
                      &v = I.operands[2];
  const double heads = double(I.ints[0]), kvHeads = double(I.ints[1]);
  const bool bhsd = q.shape.size() == 4;
  const double sq = double(q.shape[bhsd ? 2 : 1]);
  const double sk = double(k.shape[bhsd ? 2 : 1]);
  const double d = bhsd ? lastDim(q) : lastDim(q) / heads;
  const double dv = bhsd ? lastDim(v) : lastDim(v) / kvHeads;
  double f = 2.0 * double(q.shape[0]) * heads * sq * sk * (d + dv);
  if (I.ints[2] != 0 && sq == sk) // causal: the lower triangle
    f *= (sq + 1) / (2 * sq);
  return f;
}

} // namespace

double attentionKeyLength(const Instruction &I) {
  if (I.op != Opcode::Attention && I.op != Opcode::AttentionGrad)
    return 0;
  const rt::TensorRef &k = I.operands[1];
  return double(k.shape[k.shape.size() == 4 ? 2 : 1]);
}

OpCost instructionCost(const Instruction &I, const Machine &m, Precision p) {
  OpCost c;
  for (const rt::TensorRef &t : I.operands)
    c.bytes += t.present() ? double(t.bytes()) : 0;
  for (const rt::TensorRef &t : I.results)
    c.bytes += t.present() ? double(t.bytes()) : 0;
  const double peak = m.peakFlops[int(p)];
  // Each product separately: its efficiency depends on its own size.
  double gemmSeconds = 0;
  auto product = [&](double flops) {
    c.flops += flops;
    gemmSeconds += flops / (peak * m.gemmEfficiency.at(flops));
  };
  switch (I.op) {
  case Opcode::Matmul: // [.., M, K] x [.., K, N]
  case Opcode::Linear: // [.., K] x W -> [.., N]
    c.kind = OpCost::Gemm;
    product(2 * numel(I.results[0]) * lastDim(I.operands[0]));
    break;
  case Opcode::MatmulGrad: // (A, B, dY) -> dA, dB, each one product
    c.kind = OpCost::Gemm;
    for (const rt::TensorRef &r : I.results)
      if (r.present())
        product(2 * numel(I.operands[2]) * lastDim(I.operands[0]));
    break;
  case Opcode::LinearGradWeight: // (x [R, K], dy [R, N]) -> dW
    c.kind = OpCost::Gemm;
    product(2 * numel(I.operands[0]) * lastDim(I.operands[1]));
    break;
  case Opcode::Attention:
  case Opcode::AttentionGrad: {
    c.kind = OpCost::Attention;
    const double f = attentionFlops(I);
    // The backward: S again, dV, dP, dQ, dK (2.5 forwards), plus the
    // log-sum-exp recomputed when the forward's is not an operand.
    c.flops = I.op == Opcode::Attention
                  ? f
                  : f * 2.5 + (I.operands.size() > 6 ? 0 : f / 2);
    c.attentionFlops = c.flops;
    c.seconds =
        c.flops / (peak * m.attentionEfficiency.at(attentionKeyLength(I)));
    break;
  }
  default:
    c.seconds = c.bytes / (m.memoryBandwidth * m.elementwiseEfficiency);
    break;
  }
  if (c.kind == OpCost::Gemm)
    c.seconds = gemmSeconds;
  c.seconds += m.launchOverhead;
  return c;
}

OpCost stepCost(const rt::Function &f, size_t i, const Machine &m, Precision p,
                bool *skipped) {
  const bool partner =
      i > 0 && (f.body[i - 1].flags & Instruction::kFusedWithNext);
  if (skipped)
    *skipped = partner;
  if (partner)
    return OpCost{};
  OpCost c = instructionCost(f.body[i], m, p);
  if ((f.body[i].flags & Instruction::kFusedWithNext) &&
      i + 1 < f.body.size()) {
    // One pass over the rows for both gradients: the partner's results are
    // the only bytes it adds (it reads the same x and dy).
    for (const rt::TensorRef &t : f.body[i + 1].results)
      c.bytes += t.present() ? double(t.bytes()) : 0;
    c.seconds = c.bytes / (m.memoryBandwidth * m.elementwiseEfficiency) +
                m.launchOverhead;
  }
  return c;
}

OpCost functionCost(const rt::Function &f, const Machine &m, Precision p) {
  const Work w = functionWork(f, m, p);
  OpCost c;
  c.flops = w.flops;
  c.attentionFlops = w.attentionFlops;
  c.seconds = w.seconds(m);
  for (size_t i = 0; i < f.body.size(); ++i)
    c.bytes += stepCost(f, i, m, p).bytes;
  return c;
}

Work &Work::operator+=(const Work &o) {
  gemm += o.gemm;
  attention += o.attention;
  memory += o.memory;
  instructions += o.instructions;
  flops += o.flops;
  gemmFlops += o.gemmFlops;
  attentionFlops += o.attentionFlops;
  return *this;
}

Work functionWork(const rt::Function &f, const Machine &m, Precision p) {
  Work w;
  for (size_t i = 0; i < f.body.size(); ++i) {
    bool skipped = false;
    const OpCost c = stepCost(f, i, m, p, &skipped);
    if (skipped)
      continue;
    const double t = c.seconds - m.launchOverhead;
    w.instructions += 1;
    w.flops += c.flops;
    switch (c.kind) {
    case OpCost::Gemm:
      w.gemm += t;
      w.gemmFlops += c.flops;
      break;
    case OpCost::Attention:
      w.attention += t;
      w.attentionFlops += c.flops;
      break;
    case OpCost::Memory:
      w.memory += t;
      break;
    }
  }
  return w;
}

namespace {

double paramBytes(const rt::Artifact &a, const std::vector<uint32_t> &params) {
  double n = 0;
  for (uint32_t i : params)
    n += double(a.params[i].numel()) * 4;
  return n;
}

double paramBytes(const rt::Artifact &a, const rt::Stage &st) {
  return paramBytes(a, st.params);
}

/// The replicated ends' parameters, each once (a tied embedding and head
/// is one parameter of both), as finishStep sums them.
std::vector<uint32_t> endParams(const rt::Artifact &a) {
  std::vector<uint32_t> ends;
  for (int s : {a.prologueStage(), a.epilogueStage()})
    if (s >= 0)
      for (uint32_t p : a.stages[size_t(s)].params)
        if (std::find(ends.begin(), ends.end(), p) == ends.end())
          ends.push_back(p);
  return ends;
}

/// A memory-bound pass over `bytes` as one instruction.
Work memoryPass(double bytes, const Machine &m) {
  Work w;
  w.memory = bytes / (m.memoryBandwidth * m.elementwiseEfficiency);
  w.instructions = 1;
  return w;
}

} // namespace

std::vector<ChunkWork> chunkWork(const rt::Artifact &a, const Machine &m,
                                 Precision p) {
  auto work = [&](int32_t fn) {
    return fn >= 0 ? functionWork(a.functions[size_t(fn)], m, p) : Work{};
  };
  // A stage's forward, B, W and fused backward (B + W when it has no fused
  // function; B the fused one when it has no split).
  auto stageWork = [&](const rt::Stage &st) {
    ChunkWork w{work(st.forward),
                work(st.backwardInput),
                work(st.backwardWeight),
                work(st.backward),
                {}};
    if (st.backwardInput < 0 && st.backwardWeight < 0)
      w.backwardInput = w.backward;
    if (st.backward < 0) {
      w.backward = w.backwardInput;
      w.backward += w.backwardWeight;
    }
    return w;
  };
  const size_t C = a.numChunks();
  std::vector<ChunkWork> chunks;
  for (size_t c = 0; c < C; ++c) {
    const rt::Stage &st = a.stages[a.chunkStage(c)];
    chunks.push_back(stageWork(st));
    // A copy out of the slot: read and write the chunk's gradient.
    chunks.back().optimizerStep = memoryPass(2 * paramBytes(a, st), m);
  }
  if (C == 0)
    return chunks;
  if (int s = a.prologueStage(); s >= 0) {
    const ChunkWork pro = stageWork(a.stages[size_t(s)]);
    chunks[0].forward += pro.forward;
    chunks[0].backwardInput += pro.backward;
    chunks[0].backward += pro.backward;
  }
  if (int s = a.epilogueStage(); s >= 0) {
    const ChunkWork epi = stageWork(a.stages[size_t(s)]);
    chunks[C - 1].forward += epi.forward;
    chunks[C - 1].forward += epi.backward;
  }
  return chunks;
}

const char *storageName(Storage s) {
  return s == Storage::Mixed ? "mixed" : "fp32";
}

std::string pipelineCost(const rt::Artifact &a, const Machine &m, Precision p,
                         Storage storage, PipelineCost *out) {
  const size_t C = a.numChunks(), P = a.ranks;
  if (P > size_t(m.ranksPerNode) && !m.hasInterNode)
    return "the machine '" + m.name + "' is one node of " +
           std::to_string(m.ranksPerNode) + " ranks (no inter_node link), " +
           "not " + std::to_string(P);
  PipelineCost pc;
  schedule::CostModel &cm = pc.model;
  const std::vector<ChunkWork> work = chunkWork(a, m, p);
  const double microbatches = double(a.microbatches);
  for (size_t c = 0; c < C; ++c) {
    const ChunkWork &w = work[c];
    cm.forward.push_back(w.forward.seconds(m));
    cm.backwardInput.push_back(w.backwardInput.seconds(m));
    cm.backwardWeight.push_back(w.backwardWeight.seconds(m));
    cm.backward.push_back(w.backward.seconds(m));
    cm.optimizerStep.push_back(w.optimizerStep.seconds(m));
    // Every micro-batch runs each chunk's forward and backward once (the
    // ends are folded into chunk 0's B and the last chunk's forward).
    Work iteration = w.forward;
    iteration += w.backward;
    pc.flops += microbatches * iteration.flops;
    pc.gemmFlops += microbatches * iteration.gemmFlops;
    pc.attentionFlops += microbatches * iteration.attentionFlops;
    const rt::Stage &st = a.stages[a.chunkStage(c)];
    const double scale = storageScale(storage);
    cm.weightBytes.push_back(scale *
                             double(rt::stageSlotLayout(a, st, nullptr)));
    cm.activationBytes.push_back(scale *
                                 double(rt::boundaryLayout(st.out, nullptr)));
  }
  pc.endsGradientBytes = storageScale(storage) * paramBytes(a, endParams(a));
  const size_t perNode = size_t(std::max(m.ranksPerNode, 1));
  cm.ranksPerNode = int(perNode);
  auto link = [](const LinkModel &l) {
    schedule::CostModel::Link k;
    k.latency = l.latency;
    k.bandwidth = l.bandwidth;
    k.shared = l.shared;
    k.synchronous = l.synchronous;
    return k;
  };
  cm.memoryBandwidth = m.memoryBandwidth * m.elementwiseEfficiency;
  cm.intraNode = link(m.intraNode);
  cm.interNode = link(m.hasInterNode ? m.interNode : m.intraNode);
  // The tail, as finishStep runs it. The ends' gradients are summed by a
  // reduce-scatter and an all-gather of direct messages: every rank sends
  // each other rank a 1/P block (its messages one after the other; on a
  // shared link behind those of the other ranks of its node), adds its own
  // block over P ranks on the host, and sends the sum to each other rank;
  // then three exchanges of a few bytes.
  if (P > 1) {
    const LinkModel &slow =
        P > perNode && m.hasInterNode ? m.interNode : m.intraNode;
    const double senders = slow.shared ? double(std::min(perNode, P)) : 1.0;
    const double block = pc.endsGradientBytes / double(P);
    const double message =
        slow.latency + (slow.bandwidth > 0 ? block / slow.bandwidth : 0);
    cm.tail = 3 * double(P - 1) * senders * slow.latency;
    if (pc.endsGradientBytes > 0) // owned ends: no replicated gradient
      cm.tail += 2 * double(P - 1) * senders * message +
                 memoryPass(double(P + 1) * block, m).seconds(m);
  }
  // AdamW reads value, gradient and both moments and writes three of them,
  // over what each rank owns (its chunks' masters and the ends); the
  // busiest rank ends the iteration.
  std::vector<double> owned(P, paramBytes(a, endParams(a))); // fp32 masters
  for (size_t c = 0; c < C && c < a.owner.size(); ++c)
    if (a.owner[c] >= 0 && size_t(a.owner[c]) < P)
      owned[size_t(a.owner[c])] += paramBytes(a, a.stages[a.chunkStage(c)]);
  cm.tail += memoryPass(7 * *std::max_element(owned.begin(), owned.end()), m)
                 .seconds(m);
  *out = std::move(pc);
  return "";
}

} // namespace weipipe::simulate
