//===- ArtifactWriter.h - lowers a differentiated module to .wpp -*- C++
//-*-===//
//
// Part of weipipe. Turns the functions written by -nn-autodiff into the
// runtime's Artifact (runtime/include/weipipe/runtime/Artifact.h): one
// instruction per op, a static buffer plan over the micro-batch program,
// parameter storage references and constants.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_TARGET_ARTIFACTWRITER_H
#define WEIPIPE_TARGET_ARTIFACTWRITER_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/DenseMap.h"
#include "mlir/Pass/Pass.h"

#include <string>

namespace weipipe::rt {
struct Artifact;
struct Stage;
} // namespace weipipe::rt

namespace mlir::weipipe {

struct ArtifactOptions {
  /// Micro-batches per optimizer step (gradient accumulation).
  unsigned microbatches = 1;
  /// Run the backward as B then W (`@F_backward_input`, `@F_backward_weight`)
  /// instead of the fused `@F_backward`.
  bool splitBackward = false;
  /// The function that was differentiated (`@F_forward` etc.).
  std::string function = "main";
  std::string producer = "weipipe-opt";
  std::string sourceModel;
};

/// Builds the artifact. Errors are emitted as diagnostics on the module.
LogicalResult buildArtifact(ModuleOp module, const ArtifactOptions &options,
                            ::weipipe::rt::Artifact &out);

/// Writes one pipeline stage: the functions that differentiate
/// `options.function` (a pipe-autodiff chunk function) go into
/// `out.functions` with a buffer plan of their own, and `stage` describes
/// them. The stages of one artifact share its parameters and `constants`
/// (constant value -> index in `out.constants`).
LogicalResult buildStage(ModuleOp module, const ArtifactOptions &options,
                         ::weipipe::rt::Artifact &out,
                         llvm::DenseMap<Attribute, uint32_t> &constants,
                         ::weipipe::rt::Stage &stage);

/// Computes the buffer plan `buildArtifact` would write and records it in the
/// IR, for people and lit tests to read: every op of the micro-batch program
/// gets `nn.arena`, the arena byte offset of each result (-1 for a result
/// that lives elsewhere: a gradient buffer it accumulates into), and the
/// forward function `nn.arena_bytes`.
LogicalResult annotateMemoryPlan(ModuleOp module,
                                 const ArtifactOptions &options);

#define GEN_PASS_DECL
#include "weipipe/Target/Passes.h.inc"
#define GEN_PASS_REGISTRATION
#include "weipipe/Target/Passes.h.inc"

} // namespace mlir::weipipe

#endif // WEIPIPE_TARGET_ARTIFACTWRITER_H
