//===- Passes.h - weipipe compiler passes -----------------------*- C++ -*-===//
//
// Part of weipipe.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_TRANSFORMS_PASSES_H
#define WEIPIPE_TRANSFORMS_PASSES_H

#include "mlir/Pass/Pass.h"
#include "weipipe/Dialect/NN/NNDialect.h"

namespace mlir {
class RewritePatternSet;
namespace weipipe {

#define GEN_PASS_DECL
#include "weipipe/Transforms/Passes.h.inc"

/// Adds the fusion patterns named in `which` (all when empty) to `patterns`.
void populateNNFusionPatterns(RewritePatternSet &patterns,
                              llvm::ArrayRef<std::string> which = {});

#define GEN_PASS_REGISTRATION
#include "weipipe/Transforms/Passes.h.inc"

} // namespace weipipe
} // namespace mlir

#endif // WEIPIPE_TRANSFORMS_PASSES_H
