//===- Fuse.cpp - the nn-fuse pass ----------------------------------------===//
//
// Part of weipipe. Applies the fusion patterns (FusionPatterns.cpp) and the
// nn canonicalizations greedily until nothing changes.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Dialect/NN/NNOps.h"
#include "weipipe/Dialect/NN/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::weipipe {
#define GEN_PASS_DEF_NNFUSEPASS
#include "weipipe/Dialect/NN/Transforms/Passes.h.inc"
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
    warnEpsilonFreeNorms();
  }

  /// A norm without epsilon is rare in a model and common in its export:
  /// torch.onnx's optimizer drops `+ eps` for eps <= 1e-8 (it tests the
  /// constant for zero with an absolute tolerance of 1e-8), which moves the
  /// result by about eps / mean(x^2), 1e-5 for small activations.
  void warnEpsilonFreeNorms() {
    SmallVector<Operation *> norms;
    getOperation()->walk([&](Operation *op) {
      if (auto n = dyn_cast<nn::RMSNormOp>(op); n && n.getEpsilon().isZero())
        norms.push_back(op);
      if (auto n = dyn_cast<nn::LayerNormOp>(op); n && n.getEpsilon().isZero())
        norms.push_back(op);
    });
    if (norms.empty())
      return;
    norms.front()->emitWarning()
        << norms.size()
        << " norm(s) have no epsilon (this one first); torch.onnx's "
           "optimizer removes an epsilon of 1e-8 or less as if it were zero. "
           "That changes the result by about epsilon / mean(x^2): if the "
           "model adds one, export with optimize=False";
  }
};
} // namespace
