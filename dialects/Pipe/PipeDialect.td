//===- PipeDialect.td - the pipe dialect -------------------*- tablegen -*-===//
//
// Part of weipipe. The `pipe` dialect: pipeline structure and schedules.
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
    The `pipe` dialect describes a model as prologue, repeated layers and
    epilogue, groups layers into chunks, and holds one program per rank: the
    compute steps (forward, backward-input, backward-weight, fused backward,
    loss, optimizer step) and the ring transfers of weights and gradients.
  }];
  let cppNamespace = "::mlir::weipipe::pipe";
  let useDefaultTypePrinterParser = 1;
}

class Pipe_Op<string mnemonic, list<Trait> traits = []>
    : Op<Pipe_Dialect, mnemonic, traits>;

#endif // WEIPIPE_DIALECT_PIPE_PIPEDIALECT_TD
