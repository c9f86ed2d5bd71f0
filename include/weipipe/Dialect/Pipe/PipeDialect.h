//===- PipeDialect.h - the pipe dialect -------------------------*- C++ -*-===//
//
// Part of weipipe. The `pipe` dialect: the model as chunks, per-rank
// programs, ring slots and transfers. Ops and types are in PipeOps.h.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_DIALECT_PIPE_PIPEDIALECT_H
#define WEIPIPE_DIALECT_PIPE_PIPEDIALECT_H

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/Operation.h"

#include "weipipe/Dialect/Pipe/PipeDialect.h.inc"

#endif // WEIPIPE_DIALECT_PIPE_PIPEDIALECT_H
