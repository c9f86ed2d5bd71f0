//===- PipelineWriter.h - compiles a model for a pipeline -------*- C++ -*-===//
//
// Part of weipipe. `weipipe-opt --emit=artifact --ranks=P --schedule=S`: cuts
// the model into the chunks the schedule places, differentiates each chunk
// on its own, writes every chunk as a stage with its own buffer plan, and
// lowers the schedule's verified per-rank programs into the artifact.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_TARGET_PIPELINEWRITER_H
#define WEIPIPE_TARGET_PIPELINEWRITER_H

#include "weipipe/Schedule/Schedule.h"

#include "mlir/IR/BuiltinOps.h"

#include <string>

namespace weipipe::rt {
struct Artifact;
} // namespace weipipe::rt

namespace mlir::weipipe {

struct PipelineOptions {
  ::weipipe::schedule::Options schedule;
  /// Embedding, final norm and head: "replicated" (a prologue and an
  /// epilogue stage every rank runs for its own micro-batches, gradients
  /// reduced over ranks) or "owned" (inside the first and last chunk).
  std::string ends = "replicated";
  bool keepTiesSeparate = false;
  bool fuse = true;
  bool recompute = false;
  std::string producer = "weipipe-opt";
  std::string sourceModel;
};

/// Compiles the imported model function `main` of `module` for the pipeline
/// and fills `out`, with `schedule` the generated and verified programs.
/// Errors are emitted as diagnostics (or, for schedule problems, returned
/// in *error).
LogicalResult buildPipelineArtifact(ModuleOp module,
                                    const PipelineOptions &options,
                                    ::weipipe::schedule::Schedule &schedule,
                                    ::weipipe::rt::Artifact &out);

/// Lowers verified per-rank programs into `a.programs` (slots sized by what
/// they carry, transfers by their contents). `a.stages` must be written.
bool lowerSchedule(const ::weipipe::schedule::Schedule &s,
                   ::weipipe::rt::Artifact &a, std::string *error);

} // namespace mlir::weipipe

#endif // WEIPIPE_TARGET_PIPELINEWRITER_H
