//===- Passes.td - the pipe dialect's passes ---------------*- tablegen -*-===//
//
// Part of weipipe.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_DIALECT_PIPE_TRANSFORMS_PASSES_TD
#define WEIPIPE_DIALECT_PIPE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def PipeBuildModelPass : Pass<"pipe-build-model", "::mlir::ModuleOp"> {
  let summary = "Cut a model function into a pipe.model of chunks";
  let description = [{
    Finds the model's layers (`nn-discover-layers`) and writes a
    `pipe.model` beside the function: a `prologue` chunk, `layers` chunks
    (one per layer, or `chunks` contiguous groups balanced by their forward
    FLOPs, the first groups taking the extra layers) and an `epilogue`
    chunk; each chunk's `pipe.cost` is its forward FLOPs per micro-batch. Each chunk is a
    function of its input activations (first) and its weights (then, each
    argument marked `pipe.param = @name`); it yields the values later
    chunks or the function's result read. Constants, and values computed
    from constants alone (a mask, a table), are cloned into every chunk that
    reads them: never a transfer between stages. The function itself stays,
    for single-rank training and as the reference.
  }];
  let dependentDialects = ["::mlir::weipipe::nn::NNDialect",
                           "::mlir::weipipe::pipe::PipeDialect"];
  let options = [
    Option<"function", "function", "std::string", /*default=*/"\"main\"",
           "The model function">,
    Option<"chunks", "chunks", "unsigned", /*default=*/"0",
           "Layers chunks to cut the layers into, contiguous and balanced by "
           "their forward FLOPs (0: one per layer)">,
    Option<"ends", "ends", "std::string", /*default=*/"\"chunks\"",
           "Where the embedding, final norm and head go: chunks (a prologue "
           "and an epilogue chunk of their own, which a schedule may "
           "replicate on every rank) or owned (inside the first and the last "
           "layers chunk, whose cost they add to)">,
  ];
}

def PipeAutodiffPass : Pass<"pipe-autodiff", "::mlir::ModuleOp"> {
  let summary = "Differentiate every chunk of a pipe.model";
  let description = [{
    For each chunk of the `pipe.model` named `model`, writes a function
    `@<model>_<chunk>` of the chunk's activations (its weights read with
    `nn.param` again) and differentiates it as `-nn-autodiff` does:
    `_forward`, `_backward`, `_backward_input` and `_backward_weight`, each
    marked with its role and `nn.autodiff_of = "<model>_<chunk>"`. A chunk
    that returns activations gets one seed argument per float output (the
    gradient the next chunk sends back); the epilogue, which returns the
    loss, is seeded by `dloss`. With `recompute` each chunk's backward
    recomputes its forward from the chunk's inputs, so a rank keeps only
    the chunk boundaries of a micro-batch in flight.
  }];
  let dependentDialects = ["::mlir::weipipe::nn::NNDialect",
                           "::mlir::weipipe::pipe::PipeDialect",
                           "::mlir::func::FuncDialect"];
  let options = [
    Option<"model", "model", "std::string", /*default=*/"\"main_model\"",
           "The pipe.model">,
    Option<"recompute", "recompute", "bool", /*default=*/"false",
           "Recompute each chunk's forward in its backward">,
  ];
}

#endif // WEIPIPE_DIALECT_PIPE_TRANSFORMS_PASSES_TD
