//===- PipeDialect.td - the pipe dialect -------------------*- tablegen -*-===//
//
// Part of weipipe. The `pipe` dialect: pipeline structure and per-rank
// schedules.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_DIALECT_PIPE_PIPEDIALECT_TD
#define WEIPIPE_DIALECT_PIPE_PIPEDIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def Pipe_Dialect : Dialect {
  let name = "pipe";
  let summary = "Pipeline structure and per-rank schedules";
  let description = [{
    The `pipe` dialect sits between the tensor compute of the `nn` dialect and
    the runtime artifact. It has two halves.

    **Model structure.** A `pipe.model` holds the model cut into chunks: at
    most one `prologue` chunk (embedding), `layers` chunks that together cover
    the repeated layers `[0, num_layers)` exactly once, and at most one
    `epilogue` chunk (final norm, head). A `pipe.chunk` is a function, usually
    of the chunk's weights and its input activation, whose body holds ops of
    any dialect (in practice `nn`) and ends in `pipe.yield`. A chunk is the
    unit that travels on the ring and that compute steps name.

    **Per-rank programs.** A `pipe.program` is the straight-line program of
    one rank of one schedule (WeiPipe-Naive, -Interleave, WZB1, WZB2, or an
    activation-passing baseline). It names its model, and every chunk it
    names (`@c0`) is looked up in that model's symbol table. Its body has:

    - buffers: `pipe.slot` declares a buffer of one kind, `!pipe.slot<weights>`
      (one chunk's weights in compute precision), `!pipe.slot<grads>` (one
      chunk's accumulated weight gradient) or `!pipe.slot<activations>` (an
      activation or activation gradient at a stage boundary, for
      activation-passing baselines). A slot holds whatever chunk the schedule
      puts in it; the same slot holds different chunks at different turns.
    - buffer set-up: `pipe.load_master` (a copy of the rank's own master
      weights), `pipe.zero` (clear a gradient accumulator), `pipe.swap`
      (exchange two buffers, for double buffering), `pipe.add_into` (add a
      partial gradient of a chunk into its accumulator).
    - compute steps: `pipe.forward` (F), `pipe.backward_input` (B, the
      activation gradient), `pipe.backward_weight` (W, the weight gradient,
      accumulated into a grads slot), `pipe.backward` (fused B and W),
      `pipe.loss`, `pipe.optimizer_step`. Each names a chunk, and F/B/W name a
      micro-batch (the global micro-batch index, `rank + P * m` in WeiPipe).
    - transfers: `pipe.send` and `pipe.recv` move one or more slots to or from
      one peer rank and return a `!pipe.token`; `pipe.wait` blocks on tokens.
      A slot being sent must not be written, and a slot being received must
      not be read, until the token has been waited on. Between two ranks the
      k-th send matches the k-th recv, which has slots of the same kinds in
      the same order.

    Every step belongs to a `turn` (a ring step or time step): transfers
    always say theirs, any other step when it starts a new turn. A program
    that `pipe-schedule` wrote also says the schedule's micro-batches and
    the owner of each layers chunk.

    Verifiers check what one op, or one op and its parents, can show: layer
    ranges, chunk coverage, rank and peer ranges, slot kinds by role, symbol
    references. Whether the programs of all ranks fit together (every send
    has its recv, no deadlock, every gradient reaches its owner once) is the
    job of `pipe-verify-schedule`, which executes them together.
  }];
  let cppNamespace = "::mlir::weipipe::pipe";
  // On a chunk's weight argument: the parameter it is (pipe-build-model).
  // On a chunk: its forward FLOPs per micro-batch (pipe-build-model).
  let discardableAttrs = (ins "::mlir::FlatSymbolRefAttr":$param,
                              "::mlir::IntegerAttr":$cost);
  let useDefaultTypePrinterParser = 1;
  let useDefaultAttributePrinterParser = 1;
}

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def Pipe_SlotKind : I32EnumAttr<"SlotKind", "what a ring slot or buffer holds", [
      I32EnumAttrCase<"weights", 0>,
      I32EnumAttrCase<"grads", 1>,
      I32EnumAttrCase<"activations", 2>
    ]> {
  let cppNamespace = "::mlir::weipipe::pipe";
  let genSpecializedAttr = 0;
}

def Pipe_ChunkKind : I32EnumAttr<"ChunkKind", "the part of the model a chunk is", [
      I32EnumAttrCase<"prologue", 0>,
      I32EnumAttrCase<"layers", 1>,
      I32EnumAttrCase<"epilogue", 2>
    ]> {
  let cppNamespace = "::mlir::weipipe::pipe";
  let genSpecializedAttr = 0;
}

//===----------------------------------------------------------------------===//
// Base op
//===----------------------------------------------------------------------===//

class Pipe_Op<string mnemonic, list<Trait> traits = []>
    : Op<Pipe_Dialect, mnemonic, traits>;

#endif // WEIPIPE_DIALECT_PIPE_PIPEDIALECT_TD
