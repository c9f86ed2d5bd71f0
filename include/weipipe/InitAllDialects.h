//===- InitAllDialects.h - dialects weipipe tools parse ---------*- C++ -*-===//
//
// Part of weipipe.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_INITALLDIALECTS_H
#define WEIPIPE_INITALLDIALECTS_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "weipipe/Dialect/NN/NNDialect.h"
#include "weipipe/Dialect/Pipe/PipeDialect.h"

namespace mlir::weipipe {

/// Registers the dialects that weipipe IR is written in.
inline void registerAllDialects(DialectRegistry &registry) {
  registry.insert<func::FuncDialect, nn::NNDialect, pipe::PipeDialect>();
}

} // namespace mlir::weipipe

#endif // WEIPIPE_INITALLDIALECTS_H
