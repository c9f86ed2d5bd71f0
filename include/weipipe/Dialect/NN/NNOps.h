//===- NNOps.h - nn dialect ops ---------------------------------*- C++ -*-===//
//
// Part of weipipe.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_DIALECT_NN_NNOPS_H
#define WEIPIPE_DIALECT_NN_NNOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "weipipe/Dialect/NN/NNDialect.h"

#include "weipipe/Dialect/NN/NNEnums.h.inc"

#define GET_OP_CLASSES
#include "weipipe/Dialect/NN/NNOps.h.inc"

namespace mlir::weipipe::nn {

/// Shape of NumPy/ONNX multidirectional broadcasting of `shapes`, or
/// std::nullopt when they do not broadcast.
std::optional<llvm::SmallVector<int64_t>>
broadcastShapes(llvm::ArrayRef<llvm::ArrayRef<int64_t>> shapes);

/// Shape of ONNX MatMul of `lhs` and `rhs`, or std::nullopt with `why` set.
std::optional<llvm::SmallVector<int64_t>>
matmulShape(llvm::ArrayRef<int64_t> lhs, llvm::ArrayRef<int64_t> rhs,
            std::string *why = nullptr);

/// Number of elements taken by a slice of a dimension, given clamped bounds.
int64_t sliceLength(int64_t start, int64_t end, int64_t step);

/// What a constant attention mask keeps over its last two axes [rows, cols]:
/// a keep-mask's true, an additive mask's 0 (-1e30 or below is masked; any
/// other additive value keeps the key but makes the mask no pattern).
struct MaskPattern {
  int64_t rows = 0, cols = 0;
  bool pattern = true;       ///< only kept and masked values
  bool allKept = true;       ///< nothing is masked (with `pattern`)
  bool causal = true;        ///< the same causal pattern at every leading
                             ///< index, j <= i kept (with `pattern`)
  bool everyRowKeeps = true; ///< no query row masks every key
};
/// The pattern of `mask` if it is a dense `nn.constant` or an `nn.band` of
/// one (the importer's form of big masks); none for run-time masks.
std::optional<MaskPattern> constantMaskPattern(Value mask);

/// A matrix for weight decay: two or more axes longer than one.
bool isMatrixShape(ArrayRef<int64_t> shape);

} // namespace mlir::weipipe::nn

#endif // WEIPIPE_DIALECT_NN_NNOPS_H
