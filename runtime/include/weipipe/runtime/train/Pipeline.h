//===- Pipeline.h - training a pipeline artifact on several ranks -*- C++
//-*-===//
//
// Part of weipipe's runtime. Runs every rank of a pipeline artifact (one
// compiled with --ranks/--schedule): each rank executes its program of the
// artifact (`Artifact::programs`), moving weights, gradients and activations
// through a transport, and the optimizer step of the trainer's contract
// (train/Trainer.h) over what it owns. With the `local` transport the ranks
// are threads of this process; the OpenMP threads are divided among them.
// On a GPU (ExecutorOptions::device) every rank's executor, slots and arena
// instances live on the one device, each rank with its own compute stream and
// transfer stream; the transfers are device-to-device copies ordered by
// events (train/Pipeline.cpp, detail::DeviceBackend), and the host waits only
// where the schedule waits for a message to be posted and at the end of the
// step (the losses, the norm, the replicated ends' gradients).
//
// One optimizer step, on every rank:
//   1. the rank's program: compute steps on arena instances of its stages
//      (one per micro-batch in flight), the replicated prologue and epilogue
//      next to chunk 0 and chunk C-1 of its micro-batches, transfers;
//   2. the replicated ends' gradients summed over ranks in rank order;
//   3. the global gradient norm from per-parameter sums of squares, each from
//      the parameter's owner, added in parameter order (as single-rank
//      training adds them, so the norm is the same number when the gradients
//      are the same);
//   4. AdamW on what the rank owns (its chunks, and its copy of the ends).
// The loss of the step is the targets-weighted mean over all micro-batches,
// added in micro-batch order on every rank.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_TRAIN_PIPELINE_H
#define WEIPIPE_RUNTIME_TRAIN_PIPELINE_H

#include "weipipe/runtime/Executor.h"
#include "weipipe/runtime/RankMemory.h"
#include "weipipe/runtime/Status.h"
#include "weipipe/runtime/train/Trace.h"
#include "weipipe/runtime/train/Trainer.h"
#include "weipipe/runtime/transport/Transport.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace weipipe::rt::train {

/// What one rank did over the run, and what it allocated (by the kinds of
/// the compiler's memory plan, RankMemory.h, which it equals).
struct RankStats {
  uint64_t bytesSent = 0;
  uint64_t messagesSent = 0;
  double waitSeconds = 0; ///< blocked in transfers
  RankMemoryPlan allocated;
};

/// How the ranks of a world of processes move device memory.
struct WorldOptions {
  /// GPU slots over NCCL (cuda/Channels.h: a communicator per link the
  /// program uses, one of the world for the step's sums), the host messages
  /// over the world's transport; else through host memory over it.
  bool nccl = false;
  /// How long the end of a step waits for the GPU before it gives up on
  /// the NCCL transfers (a peer that never came).
  double timeoutSeconds = 600;
};

class PipelineTrainer {
public:
  /// Loads one executor per rank (each with the parameters it needs) for
  /// `a`, a pipeline artifact. `threads`: the CPU threads to divide among
  /// the ranks (at least one each). `options`: where the ranks run (all on
  /// the CPU, or all on the current GPU). `localRanks`: the ranks this
  /// process runs (default: all, as threads); one rank when the others are
  /// processes of a `tcp` world.
  static std::unique_ptr<PipelineTrainer>
  create(const Artifact &a, const std::string &artifactDir, Windows &windows,
         OptimizerConfig config, int threads, std::string *error,
         uint64_t memoryLimit = 0, const ExecutorOptions &options = {},
         const std::vector<uint32_t> *localRanks = nullptr);
  ~PipelineTrainer();

  /// Runs steps [first, first + count) on all ranks; after each step rank
  /// 0 calls `onStep` with the step's record (an error it returns stops
  /// every rank). A failing rank stops all of them; the error names the
  /// rank and the step. `world`: null runs every rank here as threads of a
  /// `local` world; otherwise this process's one rank (create's
  /// localRanks) over it, aborting it when the rank fails.
  Status train(int64_t first, int64_t count,
               const std::function<Status(const StepRecord &)> &onStep,
               transport::Transport *world = nullptr,
               const WorldOptions &worldOptions = {});
  /// The ranks this process runs, ascending.
  const std::vector<uint32_t> &localRanks() const;
  /// Over a world of processes, after training: every rank sends rank 0 the
  /// parameters it owns, and rank 0 fills `values` (numel floats per
  /// parameter); the other ranks' `values` stay empty.
  Status gatherParameters(transport::Transport &world,
                          std::vector<std::vector<float>> *values);

  /// Copies the current value of parameter `index` (from the rank that
  /// owns it, which must be local; its numel floats) into host memory at
  /// `dst`.
  Status readParameter(size_t index, float *dst) const;
  /// Whether train() records each step's timeline on the local ranks
  /// (every compute action, every send's posting, the closing reductions
  /// and optimizer) and times every instruction (host clock, so on the CPU
  /// backend only).
  void recordTimeline(bool on);
  /// The last step's timeline of the local ranks, times from the earliest
  /// rank's start of that step.
  std::vector<TraceEvent> timeline() const;
  /// The time of every instruction run while recording, summed over the
  /// local ranks and over the steps after the first traced one (all of
  /// them when only one was).
  std::vector<InstructionSample> instructionTimes() const;
  /// What each local rank did (localRanks()'s order).
  std::vector<RankStats> stats() const;
  /// Where the ranks run: "cpu", or the GPU's description.
  std::string deviceDescription() const;
  /// Bytes the ranks allocated together (executors, arena instances, slots,
  /// optimizer state).
  uint64_t bytesAllocated() const;

private:
  PipelineTrainer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace weipipe::rt::train

#endif // WEIPIPE_RUNTIME_TRAIN_PIPELINE_H
