//===- NNGradients.h - the gradient of every nn op --------------*- C++ -*-===//
//
// Part of weipipe. The one place where each `nn` op's backward is defined;
// -nn-autodiff applies it. The rules emit `nn` ops (forward ops where they
// are their own adjoint, such as reshape and transpose, and the backward ops
// of NNOps.td otherwise).
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_DIALECT_NN_NNGRADIENTS_H
#define WEIPIPE_DIALECT_NN_NNGRADIENTS_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/Operation.h"

namespace mlir::weipipe::nn {

/// True for ops whose operands never receive a gradient (comparisons, casts
/// to integers, constants, parameter reads).
bool hasNoGradient(Operation *op);

/// Emits at `b`'s insertion point the gradients of `op`'s operands given the
/// gradient `dResult` of its (single) result. `needed` has one entry per
/// operand: whether its gradient is wanted (an operand that does not depend
/// on a trained parameter, such as a frozen norm scale or a rotary table,
/// needs none, and no op is built for it). `dOperands` gets one entry per
/// operand: the gradient, or a null Value where none is needed or none flows
/// (integer operands, masks). Fails with an error on `op` for an op that has
/// no rule.
LogicalResult buildGradient(OpBuilder &b, Operation *op, Value dResult,
                            ArrayRef<bool> needed,
                            SmallVectorImpl<Value> &dOperands);

} // namespace mlir::weipipe::nn

#endif // WEIPIPE_DIALECT_NN_NNGRADIENTS_H
