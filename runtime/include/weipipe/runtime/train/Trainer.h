//===- Trainer.h - one rank's optimizer steps -------------------*- C++ -*-===//
//
// Part of weipipe's runtime. The step loop of the reference trainer's
// contract (python/weipipe/reference/README.md) as a library that each rank
// runs: the micro-batches of one optimizer step in the data order, the loss
// weighted by counted targets, the global gradient norm, clipping, and AdamW
// with its state. `weipipe-run` is a command line around it.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_TRAIN_TRAINER_H
#define WEIPIPE_RUNTIME_TRAIN_TRAINER_H

#include "weipipe/runtime/Executor.h"
#include "weipipe/runtime/train/Data.h"
#include "weipipe/runtime/train/LrSchedule.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace weipipe::rt::train {

/// The optimizer's settings (torch.optim.AdamW's, plus clipping).
struct OptimizerConfig {
  LrSchedule schedule;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weightDecay = 0.01; ///< for parameters whose `decay` is set
  double gradClip = 0.0;     ///< max global norm; 0 = off
};

/// What one step did, as the JSONL log records it.
struct StepRecord {
  int64_t step = 0;
  double loss = 0; ///< mean over the step's counted targets
  double lr = 0;
  double gradNorm = 0;           ///< before clipping
  int64_t tokens = 0;            ///< counted (non-ignored) targets
  std::vector<uint64_t> windows; ///< the data windows, in order
  /// Pipelines: per rank, the bytes its program sent this step and the
  /// seconds it waited for transfers (empty for single-rank training).
  std::vector<uint64_t> rankBytesSent;
  std::vector<double> rankWaitSeconds;
};

class Trainer {
public:
  /// Trains `ex`'s parameters on `windows` (whose sequence length is the
  /// artifact's). Both must outlive the trainer. Allocates nothing: call
  /// init() (or use create()) before step().
  Trainer(Executor &ex, const Artifact &a, Windows &windows,
          OptimizerConfig config);
  /// Allocates the AdamW state and the micro-batch buffers; an error names
  /// which and how many bytes.
  cpu::Status init();
  /// A trainer after init(), or nullptr with *error set.
  static std::unique_ptr<Trainer> create(Executor &ex, const Artifact &a,
                                         Windows &windows,
                                         OptimizerConfig config,
                                         std::string *error);

  /// Runs 0-based step `step`: every micro-batch's forward and backward, then
  /// the optimizer. A failing kernel or a non-finite loss (with the first
  /// non-finite instruction result found on a rerun) is an error naming the
  /// step and micro-batch; the parameters are then left as they were after
  /// the failing micro-batch's backward.
  cpu::Status step(int64_t step, StepRecord *out);

  /// The AdamW state's bytes (m and v, f32 per parameter value).
  uint64_t optimizerBytes() const { return optimizerBytes_; }

private:
  Executor &ex_;
  const Artifact &a_;
  Windows &windows_;
  OptimizerConfig config_;
  std::vector<std::vector<float>> m_, v_;
  std::vector<const float *> gradPtrs_;
  std::vector<int64_t> gradSizes_;
  std::vector<int64_t> ids_, targets_;
  std::vector<uint64_t> win_;
  uint64_t optimizerBytes_ = 0;
};

} // namespace weipipe::rt::train

#endif // WEIPIPE_RUNTIME_TRAIN_TRAINER_H
