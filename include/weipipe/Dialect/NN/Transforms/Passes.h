//===- Passes.h - the nn dialect's passes and pipelines ---------*- C++ -*-===//
//
// Part of weipipe. The passes that turn an imported model into training
// functions (Passes.td), and the training pipeline that chains them.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_DIALECT_NN_TRANSFORMS_PASSES_H
#define WEIPIPE_DIALECT_NN_TRANSFORMS_PASSES_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassOptions.h"
#include "weipipe/Dialect/NN/NNDialect.h"

namespace mlir {
class RewritePatternSet;
namespace weipipe {

#define GEN_PASS_DECL
#include "weipipe/Dialect/NN/Transforms/Passes.h.inc"

/// The function `name` of `module` with a body, or null after an error
/// "PASS: no function 'NAME' with a body" on the module.
func::FuncOp lookupFunctionWithBody(ModuleOp module, StringRef name,
                                    StringRef pass);

/// Reverse-mode autodiff of one function that returns an f32 scalar loss
/// (the model, or one pipeline chunk), as -nn-autodiff does it: replaces
/// `fn` by its forward, backward, backward_input and backward_weight
/// functions (roles in nn.autodiff / nn.autodiff_of). Errors are emitted at
/// `fn`.
LogicalResult differentiate(func::FuncOp fn, bool recompute);

/// The repeated blocks of a model function (nn-discover-layers): its
/// non-leaf ops (no nn.param, nn.constant) in order, split into a prologue
/// [0, prologueEnd), layers starting at `layerBegins` (each as long as the
/// first), and an epilogue [epilogueBegin, end). No layers when nothing
/// repeats.
struct LayerStructure {
  static constexpr int64_t kPrologue = -1, kEpilogue = -2; ///< nn.layer
  std::vector<Operation *> ops;
  size_t prologueEnd = 0;
  std::vector<size_t> layerBegins;
  size_t epilogueBegin = 0;
  size_t layerEnd(size_t l) const {
    return l + 1 < layerBegins.size() ? layerBegins[l + 1] : epilogueBegin;
  }
};
FailureOr<LayerStructure> discoverLayers(func::FuncOp fn);
/// "L x layer of N ops (ops; P parameter(s), V values each); prologue: ...;
/// epilogue: ...[; shared by prologue and epilogue: NAMES]".
std::string describeLayers(const LayerStructure &layers);

/// Adds the fusion patterns named in `which` (all when empty) to `patterns`.
void populateNNFusionPatterns(RewritePatternSet &patterns,
                              llvm::ArrayRef<std::string> which = {});

/// The training compilation, as `weipipe-opt --emit=artifact` runs it before
/// writing the artifact and as `-weipipe-train` (or
/// `-pass-pipeline='builtin.module(weipipe-train{...})'`) runs it alone.
struct TrainingPipelineOptions
    : public PassPipelineOptions<TrainingPipelineOptions> {
  Option<bool> keepTiesSeparate{
      *this, "keep-ties-separate",
      llvm::cl::desc("Train parameters with equal stored values (a tied "
                     "embedding and head) as separate parameters"),
      llvm::cl::init(false)};
  Option<bool> fuse{*this, "fuse",
                    llvm::cl::desc("Fuse primitive ops into nn's fused ops "
                                   "(off: train the primitives as imported)"),
                    llvm::cl::init(true)};
  Option<bool> recompute{
      *this, "recompute",
      llvm::cl::desc("Activation checkpointing: the backward recomputes the "
                     "forward instead of keeping its activations"),
      llvm::cl::init(false)};
};

/// Ties parameters, fuses, appends the loss, differentiates, and cleans up.
void buildTrainingPipeline(OpPassManager &pm,
                           const TrainingPipelineOptions &options);
/// Its first half, shared with the pipeline compilation: ties parameters,
/// fuses and appends the loss (the loss function, not yet differentiated).
void buildLossPipeline(OpPassManager &pm, bool keepTiesSeparate, bool fuse);

#define GEN_PASS_REGISTRATION
#include "weipipe/Dialect/NN/Transforms/Passes.h.inc"

/// Registers the nn passes and the `weipipe-train` pipeline.
void registerNNPassesAndPipelines();

} // namespace weipipe
} // namespace mlir

#endif // WEIPIPE_DIALECT_NN_TRANSFORMS_PASSES_H
