//===- TrainingSummary.h - what is trained, and why -------------*- C++ -*-===//
//
// Part of weipipe. The part of the compile summary that lists every trained
// tensor with the evidence that made it trainable, and every floating-point
// initializer that is not trained with the reason (docs/architecture.md,
// "What is trained"). Names that differ only in numbers are printed as one
// line (`model.layers.{0..31}.mlp.up_proj.weight`).
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_TARGET_TRAININGSUMMARY_H
#define WEIPIPE_TARGET_TRAININGSUMMARY_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

namespace mlir::weipipe {

/// Prints the trained `nn.parameter`s of `module` (with their `evidence` and
/// aliases) and its `nn.frozen_initializers`, indented by two spaces.
void printTrainingSummary(ModuleOp module, llvm::raw_ostream &os);

} // namespace mlir::weipipe

#endif // WEIPIPE_TARGET_TRAININGSUMMARY_H
