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
  /// Compile B and W apart whatever the schedule (the schedules that split
  /// them always do): a layer probe for a split schedule.
  bool splitBackward = false;
  std::string producer = "weipipe-opt";
  std::string sourceModel;
};

/// Compiles the imported model function `main` of `module` for the pipeline
/// and fills `out`, with `schedule` the generated and verified programs.
/// `options.schedule.ranks` 0 with the schedule 1f1b compiles a layer probe:
/// one chunk per layer of the model, on as many ranks (scaleArtifact's
/// input).
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

/// An artifact of the model `probe` stands for, grown to `layers` layers and
/// laid out by `target` (a verified schedule of any name, ranks and chunk
/// count that divides `layers`). `probe` is the model's layer probe (one
/// chunk per layer, n >= 2 alike layers), `whole` the same model compiled
/// as one chunk. Each chunk stage runs layers / C copies of the probe's
/// first layer stage (its functions' instructions repeated, its parameters
/// repeated as parameters without storage); its stored activations and
/// scratch grow per layer by what `whole` holds over one layer, / (n - 1)
/// (boundaries, and a recomputing chunk's saved input, count once). The
/// replicated ends stay as compiled; every rank's program is lowered from
/// `target` as buildPipelineArtifact lowers it. For pricing and memory plans
/// only (the simulator, RankMemory.h): it has no weights to train. Returns
/// "" or why it cannot (ends not replicated, fewer than two layers, layers
/// that differ, layers that do not split evenly).
std::string scaleArtifact(const ::weipipe::rt::Artifact &probe,
                          const ::weipipe::rt::Artifact &whole,
                          const ::weipipe::schedule::Schedule &target,
                          int layers, ::weipipe::rt::Artifact *out);

} // namespace mlir::weipipe

#endif // WEIPIPE_TARGET_PIPELINEWRITER_H
