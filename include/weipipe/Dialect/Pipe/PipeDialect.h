//===- PipeDialect.h - the pipe dialect -------------------------*- C++ -*-===//
//
// Part of weipipe.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_DIALECT_PIPE_PIPEDIALECT_H
#define WEIPIPE_DIALECT_PIPE_PIPEDIALECT_H

#include "mlir/IR/Dialect.h"

#include "weipipe/Dialect/Pipe/PipeDialect.h.inc"

#endif // WEIPIPE_DIALECT_PIPE_PIPEDIALECT_H
