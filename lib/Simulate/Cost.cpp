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

double keyLength(const Instruction &I) {
  const rt::TensorRef &k = I.operands[1];
  return double(k.shape[k.shape.size() == 4 ? 2 : 1]);
}

} // namespace

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
    c.seconds = c.flops / (peak * m.attentionEfficiency.at(keyLength(I)));
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

OpCost functionCost(const rt::Function &f, const Machine &m, Precision p) {
  OpCost total;
  for (const Instruction &I : f.body) {
    const OpCost c = instructionCost(I, m, p);
    (c.kind == OpCost::Attention ? total.attentionFlops : total.flops) +=
        c.flops;
    total.bytes += c.bytes;
    total.seconds += c.seconds;
  }
  total.flops += total.attentionFlops;
  return total;
}

std::string pipelineCost(const rt::Artifact &a, const Machine &m, Precision p,
                         PipelineCost *out) {
  const size_t C = a.numChunks(), P = a.ranks;
  if (P > size_t(m.ranksPerNode) && !m.hasInterNode)
    return "the machine '" + m.name + "' is one node of " +
           std::to_string(m.ranksPerNode) + " ranks (no inter_node link), " +
           "not " + std::to_string(P);
  PipelineCost pc;
  schedule::CostModel &cm = pc.model;
  for (std::vector<double> *v :
       {&cm.forward, &cm.backwardInput, &cm.backwardWeight, &cm.backward,
        &cm.optimizerStep, &cm.weightBytes, &cm.activationBytes})
    v->assign(C, 0.0);
  auto time = [&](int32_t fn) -> OpCost {
    return fn >= 0 ? functionCost(a.functions[size_t(fn)], m, p) : OpCost{};
  };
  // Forward and fused backward of stage s, and its B and W (the fused one
  // when the stage has no split).
  struct StageTimes {
    OpCost f, bw, b, w;
  };
  auto stageTimes = [&](const rt::Stage &st) {
    StageTimes t{time(st.forward), time(st.backward), time(st.backwardInput),
                 time(st.backwardWeight)};
    if (st.backwardInput < 0 && st.backwardWeight < 0)
      t.b = t.bw;
    if (st.backward < 0) {
      t.bw.seconds = t.b.seconds + t.w.seconds;
      t.bw.flops = t.b.flops + t.w.flops;
      t.bw.attentionFlops = t.b.attentionFlops + t.w.attentionFlops;
    }
    return t;
  };
  const double microbatches = double(a.microbatches);
  // Every micro-batch runs each stage's forward and backward once.
  auto count = [&](const StageTimes &t) {
    const double attention = t.f.attentionFlops + t.bw.attentionFlops;
    pc.flops += microbatches * (t.f.flops + t.bw.flops);
    pc.attentionFlops += microbatches * attention;
    pc.gemmFlops += microbatches * (t.f.flops + t.bw.flops - attention);
  };
  auto paramBytes = [&](const rt::Stage &st) {
    double n = 0;
    for (uint32_t i : st.params)
      n += double(a.params[i].numel()) * 4;
    return n;
  };
  for (size_t c = 0; c < C; ++c) {
    const rt::Stage &st = a.stages[a.chunkStage(c)];
    const StageTimes t = stageTimes(st);
    cm.forward[c] = t.f.seconds;
    cm.backwardInput[c] = t.b.seconds;
    cm.backwardWeight[c] = t.w.seconds;
    cm.backward[c] = t.bw.seconds;
    count(t);
    // AdamW reads value, gradient and both moments and writes three of them.
    cm.optimizerStep[c] =
        7 * paramBytes(st) / (m.memoryBandwidth * m.elementwiseEfficiency) +
        m.launchOverhead;
    cm.weightBytes[c] = double(rt::stageSlotLayout(a, st, nullptr));
    cm.activationBytes[c] = double(rt::boundaryLayout(st.out, nullptr));
  }
  // The replicated ends run next to the first and the last chunk.
  if (int s = a.prologueStage(); s >= 0 && C > 0) {
    const StageTimes t = stageTimes(a.stages[size_t(s)]);
    cm.forward[0] += t.f.seconds;
    cm.backwardInput[0] += t.bw.seconds;
    cm.backward[0] += t.bw.seconds;
    count(t);
    pc.allReduceBytes += paramBytes(a.stages[size_t(s)]);
  }
  if (int s = a.epilogueStage(); s >= 0 && C > 0) {
    const StageTimes t = stageTimes(a.stages[size_t(s)]);
    cm.forward[C - 1] += t.f.seconds + t.bw.seconds;
    count(t);
    pc.allReduceBytes += paramBytes(a.stages[size_t(s)]);
  }
  const size_t perNode = size_t(std::max(m.ranksPerNode, 1));
  cm.ranksPerNode = int(perNode);
  auto link = [](const LinkModel &l) {
    schedule::CostModel::Link k;
    k.latency = l.latency;
    k.bandwidth = l.bandwidth;
    k.shared = l.shared;
    return k;
  };
  cm.intraNode = link(m.intraNode);
  cm.interNode = link(m.hasInterNode ? m.interNode : m.intraNode);
  // A ring all-reduce moves 2 (P-1)/P of the bytes over its slowest hop in
  // 2 (P-1) steps; then the global gradient norm's scalar (latency alone).
  if (P > 1) {
    const LinkModel &slow = P > perNode ? m.interNode : m.intraNode;
    const double steps = 2.0 * double(P - 1);
    cm.tail = steps * slow.latency +
              (slow.bandwidth > 0
                   ? steps / double(P) * pc.allReduceBytes / slow.bandwidth
                   : 0) +
              steps * slow.latency;
  }
  // Every rank then steps the ends' replicated AdamW.
  if (pc.allReduceBytes > 0)
    cm.tail +=
        7 * pc.allReduceBytes / (m.memoryBandwidth * m.elementwiseEfficiency) +
        m.launchOverhead;
  *out = std::move(pc);
  return "";
}

} // namespace weipipe::simulate
