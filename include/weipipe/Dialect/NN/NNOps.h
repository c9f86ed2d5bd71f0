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

} // namespace mlir::weipipe::nn

#endif // WEIPIPE_DIALECT_NN_NNOPS_H
