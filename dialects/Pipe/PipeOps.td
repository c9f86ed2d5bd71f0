//===- PipeOps.td - pipe dialect ops -----------------------*- tablegen -*-===//
//
// Part of weipipe.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_DIALECT_PIPE_PIPEOPS_TD
#define WEIPIPE_DIALECT_PIPE_PIPEOPS_TD

include "PipeDialect.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Pipe_PlaceholderSlotType : TypeDef<Pipe_Dialect, "Slot"> {
  let mnemonic = "slot";
  let summary = "a ring slot";
}

#endif // WEIPIPE_DIALECT_PIPE_PIPEOPS_TD
