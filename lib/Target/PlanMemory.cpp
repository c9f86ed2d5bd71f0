//===- PlanMemory.cpp - the weipipe-plan-memory pass ----------------------===//
//
// Part of weipipe. The artifact writer's buffer plan, recorded in the IR
// (annotateMemoryPlan) so that lit can check it.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Dialect/NN/NNDialect.h"
#include "weipipe/Target/ArtifactWriter.h"

namespace mlir::weipipe {
#define GEN_PASS_DEF_TARGETPLANMEMORYPASS
#include "weipipe/Target/Passes.h.inc"
} // namespace mlir::weipipe

using namespace mlir;
using namespace mlir::weipipe;

namespace {
struct PlanMemoryPass
    : mlir::weipipe::impl::TargetPlanMemoryPassBase<PlanMemoryPass> {
  using Base::Base;
  void runOnOperation() override {
    ArtifactOptions options;
    options.function = function;
    options.splitBackward = splitBackward;
    if (failed(annotateMemoryPlan(getOperation(), options)))
      signalPassFailure();
  }
};
} // namespace
