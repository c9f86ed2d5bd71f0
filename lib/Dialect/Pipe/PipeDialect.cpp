//===- PipeDialect.cpp - the pipe dialect ---------------------------------===//
//
// Part of weipipe.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Dialect/Pipe/PipeDialect.h"
#include "weipipe/Dialect/Pipe/PipeOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::weipipe::pipe;

#include "weipipe/Dialect/Pipe/PipeDialect.cpp.inc"
#include "weipipe/Dialect/Pipe/PipeEnums.cpp.inc"

#define GET_TYPEDEF_CLASSES
#include "weipipe/Dialect/Pipe/PipeTypes.cpp.inc"

void PipeDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "weipipe/Dialect/Pipe/PipeOps.cpp.inc"
      >();
  addTypes<
#define GET_TYPEDEF_LIST
#include "weipipe/Dialect/Pipe/PipeTypes.cpp.inc"
      >();
}
