//===- PipeOps.cpp - pipe dialect ops -------------------------------------===//
//
// Part of weipipe.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Dialect/Pipe/PipeOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace mlir::weipipe::pipe;

#define GET_OP_CLASSES
#include "weipipe/Dialect/Pipe/PipeOps.cpp.inc"
