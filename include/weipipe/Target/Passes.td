//===- Passes.td - passes of the artifact target -----------*- tablegen -*-===//
//
// Part of weipipe.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_TARGET_PASSES_TD
#define WEIPIPE_TARGET_PASSES_TD

include "mlir/Pass/PassBase.td"

def TargetPlanMemoryPass : Pass<"weipipe-plan-memory", "::mlir::ModuleOp"> {
  let summary = "Record the artifact's buffer plan in the IR";
  let description = [{
    Runs the artifact writer's buffer plan over the micro-batch program of a
    differentiated module (forward, then the fused backward or backward-input
    and backward-weight) and records it: every op gets `nn.arena`, the arena
    byte offset of each result (-1 where the result lives in a gradient
    buffer), and the forward function gets `nn.arena_bytes`. The plan is the
    one `--emit=artifact` writes, computed by the same code.
  }];
  let dependentDialects = ["::mlir::weipipe::nn::NNDialect"];
  let options = [
    Option<"function", "function", "std::string", /*default=*/"\"main\"",
           "The function that was differentiated">,
    Option<"splitBackward", "split-backward", "bool", /*default=*/"false",
           "Plan backward-input then backward-weight instead of the fused "
           "backward">,
  ];
}

#endif // WEIPIPE_TARGET_PASSES_TD
