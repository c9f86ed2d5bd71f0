//===- PipeTypes.td - pipe dialect types and attributes ----*- tablegen -*-===//
//
// Part of weipipe. Types of the `pipe` dialect (ring slots, transfer tokens),
// its enum attribute, and the type constraints its ops use.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_DIALECT_PIPE_PIPETYPES_TD
#define WEIPIPE_DIALECT_PIPE_PIPETYPES_TD

include "PipeDialect.td"

//===----------------------------------------------------------------------===//
// Attributes
//===----------------------------------------------------------------------===//

def Pipe_ChunkKindAttr : EnumAttr<Pipe_Dialect, Pipe_ChunkKind, "chunk_kind">;

//===----------------------------------------------------------------------===//
// Types
//===----------------------------------------------------------------------===//

class Pipe_Type<string name, string typeMnemonic, list<Trait> traits = []>
    : TypeDef<Pipe_Dialect, name, traits> {
  let mnemonic = typeMnemonic;
}

def Pipe_SlotType : Pipe_Type<"Slot", "slot"> {
  let summary = "a ring slot or buffer of one kind";
  let description = [{
    A buffer in one rank's program that holds one chunk's worth of one kind
    of data: `weights` (a chunk's weights in compute precision), `grads` (a
    chunk's accumulated weight gradient) or `activations` (an activation or
    activation gradient at a stage boundary, for activation-passing
    baselines). The slot does not say which chunk it holds: that changes from
    turn to turn as the ring rotates.

    Example:

    ```mlir
    !pipe.slot<weights>
    !pipe.slot<grads>
    !pipe.slot<activations>
    ```
  }];
  let parameters = (ins EnumParameter<Pipe_SlotKind>:$kind);
  let assemblyFormat = "`<` $kind `>`";
}

def Pipe_TokenType : Pipe_Type<"Token", "token"> {
  let summary = "an in-flight transfer";
  let description = [{
    Returned by `pipe.send` and `pipe.recv`; `pipe.wait` on it completes the
    transfer.

    Example:

    ```mlir
    !pipe.token
    ```
  }];
}

//===----------------------------------------------------------------------===//
// Type constraints
//===----------------------------------------------------------------------===//

// A slot of one given kind. Buildable, so that ops whose operand must be of
// one kind need not spell its type in their assembly.
class Pipe_SlotOf<string kind>
    : Type<And<[CPred<"::llvm::isa<::mlir::weipipe::pipe::SlotType>($_self)">,
                CPred<"::llvm::cast<::mlir::weipipe::pipe::SlotType>($_self)"
                      ".getKind() == ::mlir::weipipe::pipe::SlotKind::" # kind>]>,
           "!pipe.slot<" # kind # ">", "::mlir::weipipe::pipe::SlotType">,
      BuildableType<"::mlir::weipipe::pipe::SlotType::get($_builder.getContext(), "
                    "::mlir::weipipe::pipe::SlotKind::" # kind # ")">;

def Pipe_WeightsSlot : Pipe_SlotOf<"weights">;
def Pipe_GradsSlot : Pipe_SlotOf<"grads">;
def Pipe_ActivationsSlot : Pipe_SlotOf<"activations">;

#endif // WEIPIPE_DIALECT_PIPE_PIPETYPES_TD
