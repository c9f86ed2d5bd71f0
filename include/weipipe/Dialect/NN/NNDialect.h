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

#endif // WEIPIPE_DIALECT_NN_NNDIALECT_H
