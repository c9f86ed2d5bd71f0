//===- Fuse.cpp - the nn-fuse pass ----------------------------------------===//
//
// Part of weipipe. Applies the fusion patterns (FusionPatterns.cpp) and the
// nn canonicalizations greedily until nothing changes.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Dialect/NN/NNOps.h"
#include "weipipe/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::weipipe {
#define GEN_PASS_DEF_NNFUSEPASS
#include "weipipe/Transforms/Passes.h.inc"
} // namespace mlir::weipipe

using namespace mlir;
using namespace mlir::weipipe;

namespace {
const char *const kKnownPatterns[] = {"linear",    "embedding", "layer_norm",
                                      "rms_norm",  "gelu",      "silu",
                                      "attention", "rotary"};

struct NNFusePass : weipipe::impl::NNFusePassBase<NNFusePass> {
  using Base::Base;

  void runOnOperation() override {
    for (const std::string &p : patterns)
      if (!llvm::is_contained(kKnownPatterns, StringRef(p))) {
        getOperation()->emitError()
            << "nn-fuse: unknown pattern '" << p
            << "' (known: linear, embedding, layer_norm, rms_norm, gelu, "
               "silu, attention, rotary)";
        return signalPassFailure();
      }
    RewritePatternSet set(&getContext());
    populateNNFusionPatterns(set, patterns);
    for (RegisteredOperationName op : getContext().getRegisteredOperations())
      if (op.getDialect().getNamespace() ==
          nn::NNDialect::getDialectNamespace())
        op.getCanonicalizationPatterns(set, &getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(set))))
      getOperation()->emitWarning()
          << "nn-fuse did not converge; the IR is valid but may be only "
             "partly fused";
  }
};
} // namespace
