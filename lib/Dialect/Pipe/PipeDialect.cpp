//===- PipeDialect.cpp - the pipe dialect ---------------------------------===//
//
// Part of weipipe. Registers the ops, types and attributes of the `pipe`
// dialect; their printers and parsers are generated from ODS.
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

#define GET_ATTRDEF_CLASSES
#include "weipipe/Dialect/Pipe/PipeAttrs.cpp.inc"

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
  addAttributes<
#define GET_ATTRDEF_LIST
#include "weipipe/Dialect/Pipe/PipeAttrs.cpp.inc"
      >();
}
