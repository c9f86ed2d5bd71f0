//===- Passes.h - the pipe dialect's passes ---------------------*- C++ -*-===//
//
// Part of weipipe. Passes that build and schedule pipelines (Passes.td).
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_DIALECT_PIPE_TRANSFORMS_PASSES_H
#define WEIPIPE_DIALECT_PIPE_TRANSFORMS_PASSES_H

#include "weipipe/Dialect/NN/NNDialect.h"
#include "weipipe/Dialect/Pipe/PipeDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::weipipe {

namespace pipe {
class ModelOp;
class ChunkOp;
} // namespace pipe

/// The function `pipe-autodiff` writes for `chunk` of `model` (and the
/// `nn.autodiff_of` of its differentiated functions): "<model>_<chunk>".
std::string chunkFunctionName(pipe::ModelOp model, pipe::ChunkOp chunk);

#define GEN_PASS_DECL
#include "weipipe/Dialect/Pipe/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "weipipe/Dialect/Pipe/Transforms/Passes.h.inc"

} // namespace mlir::weipipe

#endif // WEIPIPE_DIALECT_PIPE_TRANSFORMS_PASSES_H
