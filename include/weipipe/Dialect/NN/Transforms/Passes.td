//===- Passes.td - weipipe compiler passes -----------------*- tablegen -*-===//
//
// Part of weipipe.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_DIALECT_NN_TRANSFORMS_PASSES_TD
#define WEIPIPE_DIALECT_NN_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def NNFusePass : Pass<"nn-fuse"> {
  let summary = "Raise nn primitives to fused transformer ops";
  let description = [{
    Rewrites the primitive forms that ONNX exporters emit into the fused `nn`
    ops the runtime has fast kernels for:

    - `linear`: matmul by a rank-2 weight (or its transpose), plus a bias add;
    - `embedding`: gather of rows of a rank-2 table;
    - `layer_norm`: mean, centre, variance, eps, sqrt, divide, scale, shift;
    - `rms_norm`: mean of squares, eps, sqrt, reciprocal or divide, scale;
    - `gelu`: the erf form and the tanh form;
    - `silu` and `swiglu`: `x * sigmoid(x)` and `silu(gate) * up`;
    - `attention`: `softmax(q kᵀ · scale + mask) v`, with the mask recognised
      as causal when it is the causal pattern, and repeated key/value heads
      recognised as grouped-query attention (`nn.attention`'s canonicalizer);
    - `rotary`: `x · cos + rotate_half(x) · sin` with duplicated-half tables.

    A pattern that does not match leaves the primitives as they are: they
    still train, only slower. `-nn-fuse=patterns=linear,gelu` limits the
    rewrite to the named patterns.

    Example:

    ```mlir
    %y = nn.matmul %x, %w : (tensor<2x8x32xf32>, tensor<32x96xf32>) -> tensor<2x8x96xf32>
    %z = nn.add %y, %b : (tensor<2x8x96xf32>, tensor<96xf32>) -> tensor<2x8x96xf32>
    // becomes
    %z = nn.linear %x, %w, %b {transpose_weight = false} : ...
    ```
  }];
  let dependentDialects = ["::mlir::weipipe::nn::NNDialect"];
  let options = [
    ListOption<"patterns", "patterns", "std::string",
               "Fusions to apply (default: all): linear, embedding, "
               "layer_norm, rms_norm, gelu, silu, attention, rotary">,
  ];
}

def NNTieParametersPass : Pass<"nn-tie-parameters", "::mlir::ModuleOp"> {
  let summary = "Train parameters that hold the same values as one";
  let description = [{
    Exporters write a tied embedding and LM head as two initializers (the
    embedding and a transposed copy under an exporter-made name) and nothing
    in the file marks the tie. Training the copies separately silently
    diverges from the model that was exported. This pass reads the stored
    bytes of the parameters whose shapes could match (equal, or transposed
    for rank 2), compares a sample of elements and then all of them, and
    merges each set of bitwise-equal parameters into one: uses of a copy read
    the kept parameter (through `nn.transpose` when transposed), and the
    kept parameter lists the copies as `aliases` so that saved weights carry
    every name. Each tie is reported as a remark. The kept parameter is the
    one whose name the exporter did not make up (`val_N`, `onnx::*`), else
    the first declared. A parameter that holds one value everywhere (a fresh
    initialization: norm scales of ones, zero biases) is never tied: PyTorch
    keeps such parameters separate.

    `keep-separate` reports ties as warnings and leaves the parameters
    separate.
  }];
  let dependentDialects = ["::mlir::weipipe::nn::NNDialect"];
  let options = [
    Option<"keepSeparate", "keep-separate", "bool", /*default=*/"false",
           "Report ties but train the copies as separate parameters">,
  ];
}

def NNAppendLossPass : Pass<"nn-append-loss", "::mlir::ModuleOp"> {
  let summary = "End a logits model in the next-token cross-entropy loss";
  let description = [{
    Training needs a scalar loss. When the imported function returns logits
    `[B, S, V]` and takes token ids `[B, S]`, this pass adds an argument
    `targets : tensor<BxSxi64>` (named `targets`; the data loader shifts the
    ids by one, so position `s` holds the token after `s`) and makes the
    function return `nn.cross_entropy(logits, targets)`: the mean over every
    position whose target is not `ignore-index`. A function that already
    returns an f32 scalar keeps it as its loss. Anything else is an error
    that says what the outputs are.
  }];
  let dependentDialects = ["::mlir::weipipe::nn::NNDialect"];
  let options = [
    Option<"function", "function", "std::string", /*default=*/"\"main\"",
           "The function to append the loss to">,
    Option<"ignoreIndex", "ignore-index", "int64_t", /*default=*/"-100",
           "Targets with this value do not count in the loss">,
    Option<"keepLogits", "keep-logits", "bool", /*default=*/"false",
           "Also return the logits, after the loss">,
  ];
}

def NNAutodiffPass : Pass<"nn-autodiff", "::mlir::ModuleOp"> {
  let summary = "Reverse-mode autodiff: forward, backward-input, backward-weight";
  let description = [{
    Differentiates a function that returns one f32 scalar loss (run
    `-nn-append-loss` first) with respect to every parameter it reads, with
    the gradient of each op written once (`lib/Dialect/NN/NNGradients.cpp`).
    The function `@F` is replaced by four:

    - `@F_forward(args) -> (loss, saved...)`: the forward, also returning
      the values the backward needs (`nn.saved = N` of them);
    - `@F_backward(saved..., dloss) -> (dargs...)`: the fused backward B+W,
      seeded with the loss gradient `dloss` (1 / micro-batches for a step
      mean); weight gradients go to `nn.accumulate_grad`;
    - `@F_backward_input(saved..., dloss) -> (dargs..., transfer...)`: B,
      every op not needed only by weight gradients, returning the values W
      needs (`nn.transfer = T` of them);
    - `@F_backward_weight(saved..., transfer...)`: W, the weight gradients.

    `dargs` are the gradients of the function's floating-point arguments
    (none for a whole model, whose inputs are token ids). A parameter read
    in several places (a tied embedding and head) accumulates the gradient
    of every use.

    With `recompute` (activation checkpointing) the forward returns only the
    loss and the backward functions take the function's arguments instead of
    saved values, recomputing the forward ops they need.
  }];
  let dependentDialects = ["::mlir::weipipe::nn::NNDialect",
                           "::mlir::func::FuncDialect"];
  let options = [
    Option<"function", "function", "std::string", /*default=*/"\"main\"",
           "The function to differentiate">,
    Option<"recompute", "recompute", "bool", /*default=*/"false",
           "Recompute the forward inside the backward from the function's "
           "arguments instead of saving activations">,
  ];
}

def NNDiscoverLayersPass : Pass<"nn-discover-layers", "::mlir::ModuleOp"> {
  let summary = "Find the repeated blocks (layers) of a model function";
  let description = [{
    Splits the function's ops into a prologue (embedding, positions), L
    repeated layers and an epilogue (final norm, head, loss), comparing ops
    by structure (op, attributes, types, where operands come from) and never
    by parameter names, which exporters change. Layer boundaries sit where
    the fewest values cross (the residual stream). Marks every op with
    `nn.layer` (the layer index; -1 prologue, -2 epilogue) and reports
    "L x layer of N ops (...; P parameter(s), V values each); prologue: ...;
    epilogue: ..." as a remark; a function without a repeated block gets a
    remark that it trains on one rank only.
  }];
  let dependentDialects = ["::mlir::weipipe::nn::NNDialect"];
  let options = [
    Option<"function", "function", "std::string", /*default=*/"\"main\"",
           "The model function">,
  ];
}

#endif // WEIPIPE_DIALECT_NN_TRANSFORMS_PASSES_TD
