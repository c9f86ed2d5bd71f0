//===- PipeOps.td - pipe dialect ops -----------------------*- tablegen -*-===//
//
// Part of weipipe. Ops of the `pipe` dialect: the model as chunks, per-rank
// programs, their buffers, compute steps and ring transfers.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_DIALECT_PIPE_PIPEOPS_TD
#define WEIPIPE_DIALECT_PIPE_PIPEOPS_TD

include "PipeDialect.td"
include "PipeTypes.td"
include "mlir/IR/OpAsmInterface.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"
include "mlir/Interfaces/FunctionInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

//===----------------------------------------------------------------------===//
// Model structure
//===----------------------------------------------------------------------===//

def Pipe_ModelOp : Pipe_Op<"model", [Symbol, SymbolTable, IsolatedFromAbove,
    NoTerminator, SingleBlock, NoRegionArguments]> {
  let summary = "a model cut into chunks";
  let description = [{
    Holds the chunks of one model and is their symbol table. `num_layers` is
    the number of repeated layers `L`. The chunks are at most one `prologue`,
    at most one `epilogue`, and `layers` chunks whose layer ranges cover
    `[0, L)` exactly once: no gap, no overlap, nothing past `L`. The chunks
    may appear in any order. The body may hold other ops too; the verifier
    looks only at chunks.

    Chunk bodies should take their weights as arguments: `nn.param` looks its
    parameter up in the nearest symbol table, which inside a chunk is the
    model, not the module that holds the `nn.parameter`s.

    Example:

    ```mlir
    pipe.model @gpt layers 4 {
      pipe.chunk prologue @embed(%ids: tensor<2x8xi64>, %wte: tensor<64x32xf32>) -> tensor<2x8x32xf32> {
        %h = nn.embedding %wte, %ids : (tensor<64x32xf32>, tensor<2x8xi64>) -> tensor<2x8x32xf32>
        pipe.yield %h : tensor<2x8x32xf32>
      }
      pipe.chunk layers [0, 2) @c0(%x: tensor<2x8x32xf32>) -> tensor<2x8x32xf32> { ... }
      pipe.chunk layers [2, 4) @c1(%x: tensor<2x8x32xf32>) -> tensor<2x8x32xf32> { ... }
      pipe.chunk epilogue @head(%x: tensor<2x8x32xf32>) -> tensor<2x8x64xf32> { ... }
    }
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name, SI64Attr:$num_layers);
  let regions = (region SizedRegion<1>:$bodyRegion);
  let assemblyFormat = [{
    $sym_name `layers` $num_layers attr-dict-with-keyword $bodyRegion
  }];
  let builders = [
    OpBuilder<(ins "::llvm::StringRef":$name, "int64_t":$numLayers)>
  ];
  let hasVerifier = 1;
  let hasRegionVerifier = 1;
}

def Pipe_ChunkOp : Pipe_Op<"chunk", [FunctionOpInterface, IsolatedFromAbove,
    HasParent<"ModelOp">]> {
  let summary = "a chunk of the model: a function of weights and activations";
  let description = [{
    A contiguous piece of the model that travels on the ring as one unit and
    that compute steps name. `kind` says which part of the model it is:
    `prologue` (before the repeated layers: embedding), `layers` (the
    repeated layers `[first_layer, first_layer + num_layers)`) or `epilogue`
    (after them: final norm, head). Only a `layers` chunk has a layer range,
    and it is not empty and starts at layer 0 or later.

    The chunk is a function: its arguments are the chunk's weights and its
    input activation, its results what it yields. The body holds ops of any
    dialect (in practice `nn`) and ends in `pipe.yield`; a chunk always has a
    body. The layer range is printed as a half-open interval before the name.

    Example:

    ```mlir
    pipe.chunk layers [0, 1) @c0(%x: tensor<2x8x32xf32>, %w: tensor<32x32xf32>) -> tensor<2x8x32xf32> {
      %y = nn.matmul %x, %w : (tensor<2x8x32xf32>, tensor<32x32xf32>) -> tensor<2x8x32xf32>
      pipe.yield %y : tensor<2x8x32xf32>
    }
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name,
                       TypeAttrOf<FunctionType>:$function_type,
                       Pipe_ChunkKindAttr:$kind,
                       OptionalAttr<SI64Attr>:$first_layer,
                       OptionalAttr<SI64Attr>:$num_layers,
                       OptionalAttr<StrAttr>:$sym_visibility,
                       OptionalAttr<DictArrayAttr>:$arg_attrs,
                       OptionalAttr<DictArrayAttr>:$res_attrs);
  let regions = (region AnyRegion:$body);
  let builders = [
    OpBuilder<(ins "::llvm::StringRef":$name, "ChunkKind":$kind,
                   "::mlir::FunctionType":$type,
                   CArg<"std::optional<int64_t>", "std::nullopt">:$firstLayer,
                   CArg<"std::optional<int64_t>", "std::nullopt">:$numLayers)>
  ];
  let extraClassDeclaration = [{
    /// One past the last layer of a `layers` chunk.
    std::optional<int64_t> getEndLayer() {
      if (!getFirstLayer() || !getNumLayers())
        return std::nullopt;
      return *getFirstLayer() + *getNumLayers();
    }

    //===------------------------------------------------------------------===//
    // FunctionOpInterface
    //===------------------------------------------------------------------===//

    ::mlir::Region *getCallableRegion() {
      return getBody().empty() ? nullptr : &getBody();
    }
    ::llvm::ArrayRef<::mlir::Type> getArgumentTypes() {
      return getFunctionType().getInputs();
    }
    ::llvm::ArrayRef<::mlir::Type> getResultTypes() {
      return getFunctionType().getResults();
    }
  }];
  let hasCustomAssemblyFormat = 1;
  let hasVerifier = 1;
}

def Pipe_YieldOp : Pipe_Op<"yield", [Pure, ReturnLike, Terminator,
    HasParent<"ChunkOp">]> {
  let summary = "returns the results of a chunk";
  let description = [{
    Ends a chunk body. The operands match the chunk's result types.

    Example:

    ```mlir
    pipe.yield %y : tensor<2x8x32xf32>
    ```
  }];
  let arguments = (ins Variadic<AnyType>:$operands);
  let builders = [OpBuilder<(ins), [{ build($_builder, $_state, {}); }]>];
  let assemblyFormat = "attr-dict ($operands^ `:` type($operands))?";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Per-rank programs
//===----------------------------------------------------------------------===//

def Pipe_ProgramOp : Pipe_Op<"program", [Symbol, IsolatedFromAbove,
    NoTerminator, SingleBlock, NoRegionArguments,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "the program of one rank";
  let description = [{
    The straight-line program that rank `rank` of `ranks` runs in one
    training iteration of schedule `schedule` (for example `weipipe-naive`,
    `weipipe-interleave`, `wzb1`, `wzb2`, `1f1b`). `model` names the
    `pipe.model` it runs; the chunks that its steps name are looked up in
    that model. The body holds slots, compute steps and transfers in program
    order; slot labels are unique within a program.

    A program that a schedule wrote (`pipe-schedule`) also says what the
    schedule needs beyond its steps, the same on every rank: `microbatches`,
    the micro-batches `N` of one iteration; `owners`, the rank that holds the
    master weights (and the optimizer state) of each `layers` chunk of the
    model, in layer order; `node_size`, the ranks per node (TawPipe and FSDP, 1
    when absent). `pipe-verify-schedule` needs the first two.

    Every step belongs to a `turn` (the ring step, or time step, of the
    schedule), non-decreasing through the program. `pipe.send` and
    `pipe.recv` always say theirs; any other step may, and a step that does
    not is in the turn of the step before it (0 at the start).

    Example (WeiPipe-Interleave, rank 1 of 4, first turns):

    ```mlir
    pipe.program @rank1 for @gpt rank 1 of 4 schedule "weipipe-interleave" microbatches 4 owners [1, 2, 3, 0] {
      %F = pipe.slot "F" : !pipe.slot<weights>
      %t0 = pipe.recv %F from 0 turn(1) : !pipe.slot<weights>
      pipe.wait %t0
      pipe.forward @c0 weights(%F) microbatch(1)
      %t1 = pipe.send %F to 2 turn(2) : !pipe.slot<weights>
      pipe.wait %t1 turn(2)
    }
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name, FlatSymbolRefAttr:$model,
                       SI64Attr:$rank, SI64Attr:$ranks, StrAttr:$schedule,
                       OptionalAttr<SI64Attr>:$microbatches,
                       OptionalAttr<DenseI64ArrayAttr>:$owners,
                       OptionalAttr<SI64Attr>:$node_size);
  let regions = (region SizedRegion<1>:$bodyRegion);
  let assemblyFormat = [{
    $sym_name `for` $model `rank` $rank `of` $ranks `schedule` $schedule
    (`microbatches` $microbatches^)? (`owners` $owners^)?
    (`node_size` $node_size^)? attr-dict-with-keyword $bodyRegion
  }];
  let builders = [
    OpBuilder<(ins "::llvm::StringRef":$name, "::llvm::StringRef":$model,
                   "int64_t":$rank, "int64_t":$ranks,
                   "::llvm::StringRef":$schedule)>
  ];
  let extraClassDeclaration = [{
    /// The model this program runs, or null if `model` names none.
    ModelOp lookupModel(::mlir::SymbolTableCollection &symbolTable);
    /// The chunk `name` of this program's model, or null.
    ChunkOp lookupChunk(::mlir::SymbolTableCollection &symbolTable,
                        ::mlir::FlatSymbolRefAttr name);
  }];
  let hasVerifier = 1;
  let hasRegionVerifier = 1;
}

// An op that only appears directly inside a pipe.program.
class Pipe_ProgramStepOp<string mnemonic, list<Trait> traits = []>
    : Pipe_Op<mnemonic, !listconcat([HasParent<"ProgramOp">], traits)>;

// A program step that names a chunk of the program's model in `chunk`.
class Pipe_ChunkStepOp<string mnemonic, list<Trait> traits = []>
    : Pipe_ProgramStepOp<mnemonic, !listconcat(
        [DeclareOpInterfaceMethods<SymbolUserOpInterface>], traits)>;

//===----------------------------------------------------------------------===//
// Buffers
//===----------------------------------------------------------------------===//

def Pipe_SlotOp : Pipe_ProgramStepOp<"slot", [
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>]> {
  let summary = "declares a ring slot or buffer";
  let description = [{
    Declares a buffer of the result's kind for the rest of the program. The
    label names the buffer in the artifact, in traces and in the printed IR
    (the result prints as `%<label>`); it is not empty and unique within the
    program. Its contents are undefined until a step writes it (a
    `pipe.load_master`, `pipe.zero`, `pipe.recv` or compute step).

    Example:

    ```mlir
    %F = pipe.slot "F" : !pipe.slot<weights>
    %D = pipe.slot "D" : !pipe.slot<grads>
    ```
  }];
  let arguments = (ins StrAttr:$label);
  let results = (outs Pipe_SlotType:$result);
  let builders = [
    OpBuilder<(ins "SlotKind":$kind, "::llvm::StringRef":$label), [{
      build($_builder, $_state, SlotType::get($_builder.getContext(), kind),
            label);
    }]>
  ];
  let assemblyFormat = "$label attr-dict `:` qualified(type($result))";
  let hasVerifier = 1;
}

def Pipe_LoadMasterOp : Pipe_ChunkStepOp<"load_master"> {
  let summary = "copies the rank's master weights of a chunk into a slot";
  let description = [{
    Fills a weights slot with the compute-precision copy of the master
    weights of `chunk` that this rank owns (and updates with
    `pipe.optimizer_step`). This is how a WeiPipe iteration seeds its ring.

    Example:

    ```mlir
    pipe.load_master @c1 into(%B)
    pipe.load_master @c2 into(%M) turn(3)
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$chunk, Pipe_WeightsSlot:$slot,
                       OptionalAttr<SI64Attr>:$turn);
  let assemblyFormat = [{
    $chunk `into` `(` $slot `)` (`turn` `(` $turn^ `)`)? attr-dict
  }];
  let hasVerifier = 1;
}

def Pipe_ZeroOp : Pipe_ChunkStepOp<"zero"> {
  let summary = "clears a gradient accumulator";
  let description = [{
    Sets every element of a grads slot to zero, before the first gradient is
    accumulated into it. With `chunk`, the slot is from then on the
    (empty) accumulator of that chunk, as a schedule needs to say; without,
    it only says that the bytes are zero.

    Example:

    ```mlir
    pipe.zero %D
    pipe.zero @c1 %D turn(2)
    ```
  }];
  let arguments = (ins OptionalAttr<FlatSymbolRefAttr>:$chunk,
                       Pipe_GradsSlot:$slot, OptionalAttr<SI64Attr>:$turn);
  let assemblyFormat = [{
    ($chunk^)? $slot (`turn` `(` $turn^ `)`)? attr-dict
  }];
  let hasVerifier = 1;
}

def Pipe_SwapOp : Pipe_ProgramStepOp<"swap", [AllTypesMatch<["lhs", "rhs"]>]> {
  let summary = "exchanges the contents of two slots of one kind";
  let description = [{
    After the swap, `lhs` holds what `rhs` held and the other way round. With
    it a program double-buffers: it receives the next turn's chunk into a
    spare slot while computing with the current one, then swaps. The runtime
    exchanges the buffers' addresses, not their bytes. The two slots differ.

    Example:

    ```mlir
    pipe.swap %F, %F_next : !pipe.slot<weights>
    pipe.swap %B, %B_next turn(4) : !pipe.slot<weights>
    ```
  }];
  let arguments = (ins Pipe_SlotType:$lhs, Pipe_SlotType:$rhs,
                       OptionalAttr<SI64Attr>:$turn);
  let assemblyFormat = [{
    $lhs `,` $rhs (`turn` `(` $turn^ `)`)? attr-dict `:` qualified(type($lhs))
  }];
  let hasVerifier = 1;
}

def Pipe_AddIntoOp : Pipe_ChunkStepOp<"add_into"> {
  let summary = "adds one gradient accumulator of a chunk into another";
  let description = [{
    Adds the partial gradient of `chunk` in the `source` grads slot into the
    accumulator of the same chunk in the `into` grads slot, element by
    element. A schedule that reduces gradients to a chunk's owner receives
    each rank's partial sum into a spare slot and adds it in. The two slots
    differ; `source` is unchanged.

    Example:

    ```mlir
    pipe.add_into @c0 %R0 into(%D)
    pipe.add_into @c0 %R1 into(%D) turn(5)
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$chunk, Pipe_GradsSlot:$source,
                       Pipe_GradsSlot:$accumulator,
                       OptionalAttr<SI64Attr>:$turn);
  let assemblyFormat = [{
    $chunk $source `into` `(` $accumulator `)` (`turn` `(` $turn^ `)`)?
    attr-dict
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Compute steps
//===----------------------------------------------------------------------===//

def Pipe_ForwardOp : Pipe_ChunkStepOp<"forward", [AttrSizedOperandSegments]> {
  let summary = "forward of a chunk for one micro-batch (F)";
  let description = [{
    Runs `chunk` forward on micro-batch `microbatch` (the global index) with
    the weights in the `weights` slot, and keeps the activations that the
    chunk's backward needs on this rank. In WeiPipe the chunk's input is the
    previous chunk's output on this same rank. An activation-passing schedule
    names the slot that holds the input activation (`in`) and the slot that
    receives the output activation (`out`); the two differ.

    Example:

    ```mlir
    pipe.forward @c0 weights(%F) microbatch(1)
    pipe.forward @c1 weights(%W) microbatch(0) in(%A) out(%A_next)
    pipe.forward @c0 weights(%F) microbatch(3) turn(4)
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$chunk, Pipe_WeightsSlot:$weights,
                       SI64Attr:$microbatch,
                       Optional<Pipe_ActivationsSlot>:$in,
                       Optional<Pipe_ActivationsSlot>:$out,
                       OptionalAttr<SI64Attr>:$turn);
  let assemblyFormat = [{
    $chunk `weights` `(` $weights `)` `microbatch` `(` $microbatch `)`
    (`in` `(` $in^ `)`)? (`out` `(` $out^ `)`)? (`turn` `(` $turn^ `)`)?
    attr-dict
  }];
  let hasVerifier = 1;
}

def Pipe_BackwardInputOp : Pipe_ChunkStepOp<"backward_input",
    [AttrSizedOperandSegments]> {
  let summary = "activation-gradient backward of a chunk (B)";
  let description = [{
    Computes the gradient of the loss with respect to the input of `chunk`
    for micro-batch `microbatch`, from the gradient with respect to its
    output, with the weights in the `weights` slot. It keeps what the
    matching `pipe.backward_weight` needs; it does not compute the weight
    gradient. An activation-passing schedule names the slot holding the
    output gradient (`in`) and the slot that receives the input gradient
    (`out`); the two differ.

    Example:

    ```mlir
    pipe.backward_input @c3 weights(%B) microbatch(1)
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$chunk, Pipe_WeightsSlot:$weights,
                       SI64Attr:$microbatch,
                       Optional<Pipe_ActivationsSlot>:$in,
                       Optional<Pipe_ActivationsSlot>:$out,
                       OptionalAttr<SI64Attr>:$turn);
  let assemblyFormat = [{
    $chunk `weights` `(` $weights `)` `microbatch` `(` $microbatch `)`
    (`in` `(` $in^ `)`)? (`out` `(` $out^ `)`)? (`turn` `(` $turn^ `)`)?
    attr-dict
  }];
  let hasVerifier = 1;
}

def Pipe_BackwardWeightOp : Pipe_ChunkStepOp<"backward_weight"> {
  let summary = "weight-gradient backward of a chunk (W)";
  let description = [{
    Computes the gradient of the loss with respect to the weights of `chunk`
    for micro-batch `microbatch`, from what the matching
    `pipe.backward_input` kept, and adds it into the `accumulate` grads slot.
    It needs no weights.

    Example:

    ```mlir
    pipe.backward_weight @c3 microbatch(1) accumulate(%D)
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$chunk, SI64Attr:$microbatch,
                       Pipe_GradsSlot:$accumulate,
                       OptionalAttr<SI64Attr>:$turn);
  let assemblyFormat = [{
    $chunk `microbatch` `(` $microbatch `)` `accumulate` `(` $accumulate `)`
    (`turn` `(` $turn^ `)`)? attr-dict
  }];
  let hasVerifier = 1;
}

def Pipe_BackwardOp : Pipe_ChunkStepOp<"backward", [AttrSizedOperandSegments]> {
  let summary = "fused backward of a chunk (B and W)";
  let description = [{
    `pipe.backward_input` and `pipe.backward_weight` of one chunk and
    micro-batch in one step: computes the input gradient with the weights in
    `weights` and adds the weight gradient into the `accumulate` grads slot.
    `in` and `out` are as for `pipe.backward_input`.

    Example:

    ```mlir
    pipe.backward @c3 weights(%B) microbatch(1) accumulate(%D)
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$chunk, Pipe_WeightsSlot:$weights,
                       SI64Attr:$microbatch, Pipe_GradsSlot:$accumulate,
                       Optional<Pipe_ActivationsSlot>:$in,
                       Optional<Pipe_ActivationsSlot>:$out,
                       OptionalAttr<SI64Attr>:$turn);
  let assemblyFormat = [{
    $chunk `weights` `(` $weights `)` `microbatch` `(` $microbatch `)`
    `accumulate` `(` $accumulate `)` (`in` `(` $in^ `)`)?
    (`out` `(` $out^ `)`)? (`turn` `(` $turn^ `)`)? attr-dict
  }];
  let hasVerifier = 1;
}

def Pipe_LossOp : Pipe_ProgramStepOp<"loss"> {
  let summary = "loss of one micro-batch";
  let description = [{
    Computes the loss of micro-batch `microbatch` from the output of the
    model's last chunk, adds it to the iteration's loss, and seeds the
    backward with its gradient. It comes after the micro-batch's last
    forward and before its first backward.

    Example:

    ```mlir
    pipe.loss microbatch(1)
    ```
  }];
  let arguments = (ins SI64Attr:$microbatch);
  let assemblyFormat = "`microbatch` `(` $microbatch `)` attr-dict";
  let hasVerifier = 1;
}

def Pipe_OptimizerStepOp : Pipe_ChunkStepOp<"optimizer_step"> {
  let summary = "updates the master weights of a chunk this rank owns";
  let description = [{
    Applies the optimizer (AdamW, with the iteration's gradient scaling and
    clipping) to this rank's master weights of `chunk` and their optimizer
    state, with the complete gradient in the `grads` slot. A rank owns the
    chunks it steps; the optimizer state never leaves it.

    Example:

    ```mlir
    pipe.optimizer_step @c0 grads(%D)
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$chunk, Pipe_GradsSlot:$grads,
                       OptionalAttr<SI64Attr>:$turn);
  let assemblyFormat = [{
    $chunk `grads` `(` $grads `)` (`turn` `(` $turn^ `)`)? attr-dict
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Transfers
//===----------------------------------------------------------------------===//

def Pipe_SendOp : Pipe_ProgramStepOp<"send", [
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>]> {
  let summary = "starts sending slots to a peer rank";
  let description = [{
    Starts sending the contents of one or more distinct slots to rank
    `peer`, another rank of the program's ring, and returns a token. The
    slots must not be written until the token has been waited on. `turn` is
    the turn the send belongs to on this rank. Sends between two ranks match
    receives in order: the k-th send to `peer` is the k-th `pipe.recv` from
    this rank there, with slots of the same kinds in the same order.

    Example:

    ```mlir
    %t = pipe.send %F, %B, %D to 2 turn(5) : !pipe.slot<weights>, !pipe.slot<weights>, !pipe.slot<grads>
    ```
  }];
  let arguments = (ins Variadic<Pipe_SlotType>:$slots, SI64Attr:$peer,
                       SI64Attr:$turn);
  let results = (outs Pipe_TokenType:$token);
  let builders = [
    OpBuilder<(ins "::mlir::ValueRange":$slots, "int64_t":$peer,
                   "int64_t":$turn), [{
      build($_builder, $_state, TokenType::get($_builder.getContext()), slots,
            peer, turn);
    }]>
  ];
  let assemblyFormat = [{
    $slots `to` $peer `turn` `(` $turn `)` attr-dict `:` qualified(type($slots))
  }];
  let hasVerifier = 1;
}

def Pipe_RecvOp : Pipe_ProgramStepOp<"recv", [
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>]> {
  let summary = "starts receiving slots from a peer rank";
  let description = [{
    Starts receiving into one or more distinct slots from rank `peer`,
    another rank of the program's ring, and returns a token. The slots must
    not be read or written until the token has been waited on. `turn` is the
    turn the receive belongs to on this rank. The k-th receive from `peer`
    gets what the k-th `pipe.send` to this rank there sent.

    Example:

    ```mlir
    %t = pipe.recv %F_next, %B_next, %D_next from 0 turn(5) : !pipe.slot<weights>, !pipe.slot<weights>, !pipe.slot<grads>
    ```
  }];
  let arguments = (ins Variadic<Pipe_SlotType>:$slots, SI64Attr:$peer,
                       SI64Attr:$turn);
  let results = (outs Pipe_TokenType:$token);
  let builders = [
    OpBuilder<(ins "::mlir::ValueRange":$slots, "int64_t":$peer,
                   "int64_t":$turn), [{
      build($_builder, $_state, TokenType::get($_builder.getContext()), slots,
            peer, turn);
    }]>
  ];
  let assemblyFormat = [{
    $slots `from` $peer `turn` `(` $turn `)` attr-dict `:` qualified(type($slots))
  }];
  let hasVerifier = 1;
}

def Pipe_WaitOp : Pipe_ProgramStepOp<"wait"> {
  let summary = "waits until transfers complete";
  let description = [{
    Blocks until every transfer whose token is an operand has completed.
    Takes at least one token.

    Example:

    ```mlir
    pipe.wait %t0, %t1
    pipe.wait %t2 turn(3)
    ```
  }];
  let arguments = (ins Variadic<Pipe_TokenType>:$tokens,
                       OptionalAttr<SI64Attr>:$turn);
  let assemblyFormat = "$tokens (`turn` `(` $turn^ `)`)? attr-dict";
  let hasVerifier = 1;
}

#endif // WEIPIPE_DIALECT_PIPE_PIPEOPS_TD
