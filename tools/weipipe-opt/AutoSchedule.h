//===- AutoSchedule.h - --schedule=auto: the best simulated plan -*- C++
//-*-===//
//
// Part of weipipe. `weipipe-opt --schedule=auto --machine=M` compiles every
// plan of a search space, simulates each on the machine model and keeps the
// fastest that fits in memory: schedule, chunks per rank, micro-batch
// count and size (their product, the rows per step, fixed), recompute and
// embedding placement. The chosen plan is then compiled as if its flags had
// been given.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_OPT_AUTOSCHEDULE_H
#define WEIPIPE_OPT_AUTOSCHEDULE_H

#include "weipipe/Simulate/Cost.h"
#include "weipipe/Target/PipelineWriter.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace weipipe::opt {

struct AutoSearch {
  /// Flags the search keeps (ranks, keep-ties-separate, fuse, producer).
  mlir::weipipe::PipelineOptions base;
  /// Schedules to try (empty: every one but single; single alone at P = 1).
  std::vector<std::string> schedules;
  /// The micro-batch size of the input (its first dimension) and the count
  /// asked for: their product, the rows of one step, stays.
  int64_t batch = 1;
  int microbatches = 1;
  /// The model imported at another micro-batch size; null: the size stays.
  std::function<mlir::OwningOpRef<mlir::ModuleOp>(int64_t batch)> reimport;
  const simulate::Machine *machine = nullptr;
  simulate::Precision precision = simulate::Precision::Bf16;
  std::optional<uint64_t> memoryLimit; ///< else the machine's memory
};

struct AutoChoice {
  mlir::weipipe::PipelineOptions options;
  int64_t batch = 1;
  std::string flags; ///< the weipipe-opt flags that compile it
};

/// Runs the search; prints the five best plans to `report` and returns
/// "" with the best in *best, or why there is none (no plan compiles; none
/// fits, naming the smallest).
std::string searchSchedules(mlir::ModuleOp module, const AutoSearch &search,
                            std::string *report, AutoChoice *best);

} // namespace weipipe::opt

#endif // WEIPIPE_OPT_AUTOSCHEDULE_H
