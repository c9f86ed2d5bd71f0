//===- PipeOps.h - pipe dialect ops and types -------------------*- C++ -*-===//
//
// Part of weipipe.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_DIALECT_PIPE_PIPEOPS_H
#define WEIPIPE_DIALECT_PIPE_PIPEOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "weipipe/Dialect/Pipe/PipeDialect.h"

#include "weipipe/Dialect/Pipe/PipeEnums.h.inc"

#define GET_TYPEDEF_CLASSES
#include "weipipe/Dialect/Pipe/PipeTypes.h.inc"

#define GET_OP_CLASSES
#include "weipipe/Dialect/Pipe/PipeOps.h.inc"

#endif // WEIPIPE_DIALECT_PIPE_PIPEOPS_H
