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

def PipeSchedulePass : Pass<"pipe-schedule", "::mlir::ModuleOp"> {
  let summary = "Write the per-rank programs of a pipeline schedule";
  let description = [{
    Generates the schedule `schedule` for `ranks` ranks and `microbatches`
    micro-batches per iteration (the generators of lib/Schedule) and writes
    it after the `pipe.model` named `model`: one `pipe.program @rank<R>` per
    rank, with the schedule's `microbatches` and chunk `owners` (the rank
    that steps each `layers` chunk, in layer order), its slots as
    `pipe.slot`s and every action as its op. Chunk `c` of the schedule is
    the model's `c`-th `layers` chunk in layer order; the prologue and
    epilogue are not scheduled (the runtime runs replicated ends next to the
    first and last chunk). The model must have as many `layers` chunks as
    the schedule places (`ranks`, or `chunks-per-rank` times `ranks` for
    interleaved-1f1b, or 1 for single): cut it with
    `pipe-build-model{chunks=...}`. A model that already has programs is
    refused.
  }];
  let dependentDialects = ["::mlir::weipipe::pipe::PipeDialect"];
  let options = [
    Option<"model", "model", "std::string", /*default=*/"\"main_model\"",
           "The pipe.model">,
    Option<"schedule", "schedule", "std::string",
           /*default=*/"\"weipipe-interleave\"",
           "The schedule: single, gpipe, 1f1b, interleaved-1f1b, zb-h1, fsdp, "
           "weipipe-naive, weipipe-interleave, weipipe-zb1, weipipe-zb2, "
           "tawpipe">,
    Option<"ranks", "ranks", "int", /*default=*/"1", "Ranks (P)">,
    Option<"microbatches", "microbatches", "int", /*default=*/"1",
           "Micro-batches per iteration, all ranks together (N)">,
    Option<"chunksPerRank", "chunks-per-rank", "int", /*default=*/"1",
           "Chunks per rank (interleaved-1f1b only)">,
    Option<"nodeSize", "node-size", "int", /*default=*/"1",
           "Ranks per node (tawpipe, fsdp)">,
  ];
}

def PipeVerifySchedulePass : Pass<"pipe-verify-schedule", "::mlir::ModuleOp"> {
  let summary = "Check that the programs of a schedule fit together";
  let description = [{
    Reads the `pipe.program`s that run the `pipe.model` named `model` (one
    per rank) and executes them together, symbolically: every send has its
    receive, in order on each link, and no rank waits forever; a slot in
    flight is not touched; every forward and backward finds its chunk's
    starting weights and its inputs on its rank; every chunk's gradient
    collects each micro-batch once and reaches the chunk's owner, which
    steps it once. The first violation is an error on the step that
    commits it ("rank R, step K (ACTION at turn T): REASON", K counting the
    program's steps from 0, slots not counted), or on the program of rank 0
    when it concerns the schedule as a whole; the pass then fails. The IR is
    not changed.
  }];
  let options = [
    Option<"model", "model", "std::string", /*default=*/"\"main_model\"",
           "The pipe.model">,
  ];
}

#endif // WEIPIPE_DIALECT_PIPE_TRANSFORMS_PASSES_TD
