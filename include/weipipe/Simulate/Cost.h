//===- Cost.h - the time of compiled programs on a machine model -*- C++
//-*-===//
//
// Part of weipipe. Turns an artifact's instructions into times on a machine
// model: a product (linear, matmul and their gradients) costs its FLOPs at
// the machine's GEMM rate times its efficiency at that size, attention its
// FLOPs at the attention efficiency for its key length, every other
// instruction the bytes it reads and writes at the memory bandwidth; each
// adds the launch overhead. A stage's function is the sum of its
// instructions (the runtime runs them one after the other); a pipeline's
// chunk times, message sizes and closing collectives make the simulator's
// CostModel.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_SIMULATE_COST_H
#define WEIPIPE_SIMULATE_COST_H

#include "weipipe/Schedule/Simulate.h"
#include "weipipe/Simulate/Machine.h"
#include "weipipe/runtime/Artifact.h"

namespace weipipe::simulate {

struct OpCost {
  enum Kind { Gemm, Attention, Memory } kind = Memory;
  double flops = 0;          ///< products and attention: multiply-adds x 2
  double attentionFlops = 0; ///< the part of `flops` in attention
  double bytes = 0;          ///< operands read and results written
  double seconds = 0;        ///< on the machine, launch overhead included
};

OpCost instructionCost(const rt::Instruction &I, const Machine &m, Precision p);

/// An attention (or attention-gradient) instruction's key length, the size
/// its efficiency is looked up at; 0 for any other instruction.
double attentionKeyLength(const rt::Instruction &I);

/// What instruction i of `f` costs as the executor runs it: a norm-gradient
/// instruction fused with the next (Instruction::kFusedWithNext) is one
/// kernel for both (bytes of both, one launch), the partner then nothing.
/// Sets *skipped for the partner (the executor runs no kernel for it).
OpCost stepCost(const rt::Function &f, size_t i, const Machine &m, Precision p,
                bool *skipped = nullptr);

/// The sum over a function's instructions.
OpCost functionCost(const rt::Function &f, const Machine &m, Precision p);

/// Time split by what bounds it, on one machine: the features calibration
/// fits (Calibrate.h). `seconds()` is what the cost model charges.
struct Work {
  double gemm = 0, attention = 0, memory = 0; ///< seconds, overhead apart
  double instructions = 0;                    ///< launches
  double flops = 0, gemmFlops = 0, attentionFlops = 0;
  double seconds(const Machine &m) const {
    return gemm + attention + memory + instructions * m.launchOverhead;
  }
  Work &operator+=(const Work &o);
};
Work functionWork(const rt::Function &f, const Machine &m, Precision p);

/// What each pipeline action of chunk c runs, where the runtime runs it
/// (train/Pipeline.cpp): the replicated prologue's forward with chunk 0's
/// forward and its backward with chunk 0's B; the epilogue's forward and
/// backward with the last chunk's forward. OptimizerStep copies the
/// chunk's gradient out of its slot (AdamW itself runs after the program,
/// in the tail).
struct ChunkWork {
  Work forward, backwardInput, backwardWeight, backward, optimizerStep;
};
std::vector<ChunkWork> chunkWork(const rt::Artifact &a, const Machine &m,
                                 Precision p);

/// How a run stores and sends its tensors. Fp32: what weipipe's runtime
/// allocates and sends today (fp32 activations, slots and messages, also
/// when it multiplies in bf16). Mixed: as Megatron-LM, DeepSpeed and the
/// WeiPipe paper's code train in mixed precision: 16-bit activations and
/// 16-bit weights and gradients in slots and on the wire, next to fp32
/// master weights, gradients and AdamW moments and a 16-bit working copy.
/// An approximation at the level of whole plans: every slot (gradient
/// accumulators too) and the kernels' row statistics count at 16 bits, and
/// the slot passes (LoadMaster, Zero, AddInto) move 16-bit bytes.
enum class Storage { Fp32, Mixed };
const char *storageName(Storage s); ///< "fp32", "mixed"
/// A stored activation's or a message's bytes per fp32 byte.
inline double storageScale(Storage s) {
  return s == Storage::Mixed ? 0.5 : 1.0;
}

/// What an iteration of a pipeline artifact costs, per chunk.
struct PipelineCost {
  schedule::CostModel model;
  /// FLOPs of one iteration, all ranks (forward and backward of every
  /// micro-batch; the optimizer's element-wise work not counted).
  double flops = 0;
  double gemmFlops = 0, attentionFlops = 0; ///< the parts of `flops`
  /// The replicated ends' gradient bytes each rank sums over the ranks
  /// after the program (a parameter the prologue and epilogue share,
  /// counted once, as the runtime does).
  double endsGradientBytes = 0;
};

/// The cost model of `a` (a pipeline artifact) on `m`: every action's time
/// from chunkWork, weight and activation bytes as the runtime's slots hold
/// them, the links of `m`, and as the tail what the runtime's finishStep
/// does after the program: the replicated ends' gradients summed by a
/// reduce-scatter and an all-gather of direct messages (each rank sends
/// every other a 1/P block, adds its block on the host, sends the sum to
/// every other), three small exchanges (figures, the norm's sums of
/// squares, the losses), and AdamW over what the busiest rank owns.
/// Returns "" or what does not fit (more ranks than one node of `m` holds
/// when it has no inter-node link).
/// Messages (and the ends' gradients) are as `storage` sends them.
std::string pipelineCost(const rt::Artifact &a, const Machine &m, Precision p,
                         Storage storage, PipelineCost *out);

} // namespace weipipe::simulate

#endif // WEIPIPE_SIMULATE_COST_H
