//===- NNDialect.h - the nn dialect -----------------------------*- C++ -*-===//
//
// Part of weipipe.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_DIALECT_NN_NNDIALECT_H
#define WEIPIPE_DIALECT_NN_NNDIALECT_H

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/Operation.h"

#include "weipipe/Dialect/NN/NNDialect.h.inc"

#include <optional>

namespace mlir::weipipe::nn {

/// The role of a function nn-autodiff makes (`nn.autodiff`).
enum class AutodiffRole { Forward, Backward, BackwardInput, BackwardWeight };
/// "forward", "backward", "backward_input", "backward_weight".
llvm::StringRef autodiffRoleName(AutodiffRole role);
std::optional<AutodiffRole> parseAutodiffRole(llvm::StringRef name);

/// The role of `op` (a function), if nn-autodiff made it.
std::optional<AutodiffRole> autodiffRole(Operation *op);
/// Marks `op` as the `role` function of the differentiated function `of`.
void setAutodiffRole(Operation *op, AutodiffRole role, llvm::StringRef of);
/// The function of `module` with `role` that differentiates `of`, or null.
Operation *lookupAutodiffFunction(Operation *module, llvm::StringRef of,
                                  AutodiffRole role);

} // namespace mlir::weipipe::nn

#endif // WEIPIPE_DIALECT_NN_NNDIALECT_H
