//===- Passes.td - weipipe compiler passes -----------------*- tablegen -*-===//
//
// Part of weipipe.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_TRANSFORMS_PASSES_TD
#define WEIPIPE_TRANSFORMS_PASSES_TD

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

#endif // WEIPIPE_TRANSFORMS_PASSES_TD
