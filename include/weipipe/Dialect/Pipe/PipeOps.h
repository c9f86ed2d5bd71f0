//===- PipeOps.h - pipe dialect ops, types and attributes -------*- C++ -*-===//
//
// Part of weipipe. Declares the enums (SlotKind, ChunkKind), the chunk-kind
// attribute, the types (!pipe.slot<kind>, !pipe.token) and the ops of the
// `pipe` dialect.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_DIALECT_PIPE_PIPEOPS_H
#define WEIPIPE_DIALECT_PIPE_PIPEOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/CallInterfaces.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "weipipe/Dialect/Pipe/PipeDialect.h"

#include "weipipe/Dialect/Pipe/PipeEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "weipipe/Dialect/Pipe/PipeAttrs.h.inc"

#define GET_TYPEDEF_CLASSES
#include "weipipe/Dialect/Pipe/PipeTypes.h.inc"

#define GET_OP_CLASSES
#include "weipipe/Dialect/Pipe/PipeOps.h.inc"

#endif // WEIPIPE_DIALECT_PIPE_PIPEOPS_H
