//===- RankMemory.h - what one rank of a pipeline holds ---------*- C++ -*-===//
//
// Part of weipipe's runtime. The lifetime of a stage's arena instance (one
// micro-batch of the stage, from its forward to its last backward step) as
// one definition that the runtime follows (train/Pipeline.cpp) and the
// compiler's memory plan replays, so that the plan the compiler prints is
// what each rank allocates.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_RANKMEMORY_H
#define WEIPIPE_RUNTIME_RANKMEMORY_H

#include "weipipe/runtime/Artifact.h"

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace weipipe::rt {

/// What an action does to arena instances: the ones it needs live before it
/// runs (acquired if new), and afterwards the facts it establishes. An
/// instance is freed once its backward ran whole and its input gradient was
/// taken. Boundary values never wait in the instance that made them: an
/// action hands its outputs and input gradients on before anything else
/// runs (to a slot, to the next or previous chunk on this rank, to the
/// prologue), so a stage's outputs and input gradients can live in the
/// shared scratch and an instance keeps only its input and what its
/// backward saved (and its output's gradient when a split W reads it). An
/// output gradient that only the stage's (fused or B) backward reads is
/// scratch too: handed over by the next stage's backward (or the epilogue)
/// on this rank, it waits in a buffer of its size (`hold`) until that
/// backward copies it in (`take`), so a micro-batch keeps one such gradient
/// in flight, not one per chunk.
struct InstanceEffects {
  std::vector<size_t> acquire; ///< stages, in order (micro-batch: the action's)
  struct Settle {
    size_t stage;
    bool backwardDone, inputGradTaken;
  };
  std::vector<Settle> settle; ///< after the action
  /// Stages whose waiting output gradient the action takes before it runs,
  /// and whose output gradient it leaves waiting when it ends; and the
  /// prologue's when chunk 0 passes it its gradient through a waiting
  /// buffer (a copy between two scratch values, which may overlap).
  std::vector<size_t> take, hold, pass;
};
InstanceEffects instanceEffects(const Artifact &a, const Action &ac);
/// Whether the output gradient of `st` lies in the scratch, and so waits
/// apart from its instance when handed over on the rank.
bool outputGradWaitsApart(const Stage &st);

/// Instances alive on a rank, by (stage, micro-batch); what `settle` frees.
class InstanceLifetimes {
public:
  /// Marks the facts; returns true when the instance is to be freed now.
  bool settle(size_t stage, int microbatch, bool backwardDone,
              bool inputGradTaken);
  void clear() { life_.clear(); }

private:
  struct Life {
    bool backwardDone = false, inputGradTaken = false;
  };
  std::map<std::pair<size_t, int>, Life> life_;
};

/// One rank's memory, as the runtime allocates it.
struct RankMemoryPlan {
  uint64_t parameterBytes = 0; ///< values of what the rank holds: the chunks
                               ///< it steps and the replicated ends
  uint64_t gradientBytes = 0;  ///< their gradient buffers
  uint64_t optimizerBytes = 0; ///< AdamW's two moments of the same
  uint64_t constantBytes = 0;
  uint64_t slotBytes = 0; ///< ring and transfer buffers
  /// Arena instances: per stage, as many as the program ever holds at once.
  uint64_t activationBytes = 0;
  /// The stages' temporaries: one scratch arena, the largest stage's.
  uint64_t scratchBytes = 0;
  /// The kernels' row statistics (norm and cross-entropy gradients).
  uint64_t kernelScratchBytes = 0;
  std::vector<uint32_t> instances; ///< per stage: that count
  /// Output gradients waiting apart at once at most, by size (a stage's
  /// boundaryLayout(dout) bytes: buffers go to whichever stage needs one of
  /// that size), counted in activationBytes.
  std::map<uint64_t, uint32_t> waiting;
  /// Saturating: an absurd artifact must fail a memory check, not wrap.
  uint64_t total() const;
};

/// The floats of the kernels' two row-statistics arrays: the largest need
/// of any instruction of the artifact (the executor allocates them so).
std::array<int64_t, 2> kernelScratchFloats(const Artifact &a);

/// What the executor allocates for an artifact: the arena, the values and
/// gradients of the parameters `holds` marks (all of them when null), the
/// constants, the kernels' and the stages' scratch; and the AdamW state of
/// those parameters, which the trainer allocates. A single-rank run holds
/// exactly this; a pipeline rank adds its slots and arena instances
/// (planRankMemory).
RankMemoryPlan planExecutorMemory(const Artifact &a,
                                  const std::vector<bool> *holds);

/// A byte count as users write it (--memory-limit): "8G", "512M", "1.5G",
/// "1073741824" (K, M, G, T: powers of 1024); nullopt when it is not one.
std::optional<uint64_t> parseByteCount(const std::string &text);

/// The parameters rank `rank` holds (steps or replicates).
std::vector<bool> rankParameters(const Artifact &a, size_t rank);
/// Everything rank `rank` allocates, the number the compiler prints as its
/// peak and the runtime checks at load: planExecutorMemory for its
/// parameters, and for a pipeline its slots and the arena instances of its
/// program replayed.
RankMemoryPlan planRankMemory(const Artifact &a, size_t rank);

} // namespace weipipe::rt

#endif // WEIPIPE_RUNTIME_RANKMEMORY_H
