//===- Pipelines.cpp - the training pipeline ------------------------------===//
//
// Part of weipipe. One definition of the training compilation, shared by
// `weipipe-opt --emit=artifact` and the registered `weipipe-train` pipeline.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Dialect/NN/Transforms/Passes.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

namespace mlir::weipipe {

void buildLossPipeline(OpPassManager &pm, bool keepTiesSeparate, bool fuse) {
  NNTieParametersPassOptions tie;
  tie.keepSeparate = keepTiesSeparate;
  pm.addPass(createNNTieParametersPass(tie));
  if (fuse)
    pm.addPass(createNNFusePass());
  pm.addPass(createNNAppendLossPass());
}

void buildTrainingPipeline(OpPassManager &pm,
                           const TrainingPipelineOptions &options) {
  buildLossPipeline(pm, options.keepTiesSeparate, options.fuse);
  NNAutodiffPassOptions ad;
  ad.recompute = options.recompute;
  pm.addPass(createNNAutodiffPass(ad));
  pm.addPass(createCSEPass());
}

func::FuncOp lookupFunctionWithBody(ModuleOp module, StringRef name,
                                    StringRef pass) {
  auto fn = module.lookupSymbol<func::FuncOp>(name);
  if (fn && !fn.isExternal())
    return fn;
  module.emitError() << pass << ": no function '" << name << "' with a body";
  return nullptr;
}

void registerNNPassesAndPipelines() {
  registerNNPasses();
  PassPipelineRegistration<TrainingPipelineOptions>(
      "weipipe-train",
      "The training compilation: ties parameters, fuses, appends the loss, "
      "differentiates (what --emit=artifact runs before writing)",
      buildTrainingPipeline);
}

} // namespace mlir::weipipe
