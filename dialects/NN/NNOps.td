//===- NNOps.td - nn dialect ops ---------------------------*- tablegen -*-===//
//
// Part of weipipe. Ops of the `nn` dialect: parameters and constants,
// primitive tensor ops that ONNX maps onto, and fused transformer ops.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_DIALECT_NN_NNOPS_TD
#define WEIPIPE_DIALECT_NN_NNOPS_TD

include "NNDialect.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"

//===----------------------------------------------------------------------===//
// Parameters and constants
//===----------------------------------------------------------------------===//

def NN_ParameterOp : NN_Op<"parameter", [Symbol, HasParent<"ModuleOp">]> {
  let summary = "a trainable parameter and where its bytes are stored";
  let description = [{
    Declares a parameter: a named tensor whose initial value lives in a file,
    at a byte offset, as `length` little-endian bytes of the tensor's element
    type in row-major order. The IR never holds the bytes, so importing a large
    model costs what importing its graph costs. `file` is the ONNX model (for
    inline initializers), an ONNX external-data file, or a safetensors file.

    A parameter without storage has an initial value that is not stored as
    raw bytes anywhere (an initializer written with typed fields in the ONNX
    text format); it can be compiled but not loaded.

    `aliases` names the other initializers of the source model that hold the
    same values (a tied embedding and LM head, which exporters write twice);
    `aliases_transposed` says, per alias, whether it holds the transpose.
    Saved weights are written under every name.

    `evidence` says why the tensor is trained (the importer's decision:
    metadata, structure or a flag; `docs/architecture.md` has the rules), for
    the compile summary.

    `decay` says whether AdamW's weight decay applies. Absent, it does for a
    matrix: two or more axes longer than one (a bias the exporter reshaped to
    `[1, 1, N]` is a vector). The importer sets it for a parameter that is a
    slice of the stored tensor (a table row repeated over the batch), whose
    stored shape is the evidence.

    Example:

    ```mlir
    nn.parameter @"wte.weight" : tensor<64x32xf32> at "model.onnx"[1024, 8192]
    nn.parameter @scale : tensor<32xf32>
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name,
                       TypeAttrOf<NN_FloatTensor>:$param_type,
                       OptionalAttr<StrAttr>:$file,
                       OptionalAttr<ConfinedAttr<I64Attr, [IntNonNegative]>>:$offset,
                       OptionalAttr<ConfinedAttr<I64Attr, [IntNonNegative]>>:$length,
                       OptionalAttr<StrArrayAttr>:$aliases,
                       OptionalAttr<DenseBoolArrayAttr>:$aliases_transposed,
                       OptionalAttr<StrAttr>:$evidence,
                       OptionalAttr<BoolAttr>:$decay);
  let assemblyFormat = [{
    $sym_name `:` $param_type (`at` $file^ `[` $offset `,` $length `]`)? attr-dict
  }];
  let extraClassDeclaration = [{
    /// Whether AdamW decays this parameter (`decay`, else the matrix rule).
    bool decays();
  }];
  let hasVerifier = 1;
}

def NN_ParamOp : NN_Op<"param", [Pure,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "reads a parameter";
  let description = [{
    Yields the current value of the `nn.parameter` named by `name`. The result
    type must equal the parameter's type. One parameter read in several places
    (a tied embedding and LM head) is one parameter.

    Example:

    ```mlir
    %w = nn.param @"wte.weight" : tensor<64x32xf32>
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$name);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = "$name attr-dict `:` type($result)";
}

def NN_ConstantOp : NN_Op<"constant", [ConstantLike, Pure,
    AllTypesMatch<["value", "result"]>]> {
  let summary = "a constant tensor";
  let description = [{
    A constant that is not a parameter: a mask, a rotary table, a scalar.

    Example:

    ```mlir
    %c = nn.constant dense<1.0> : tensor<f32>
    ```
  }];
  let arguments = (ins TypedAttrInterface:$value);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = "attr-dict $value";
  let hasFolder = 1;
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Elementwise ops
//===----------------------------------------------------------------------===//

// Binary op with ONNX multidirectional (numpy) broadcasting.
class NN_BroadcastBinaryOp<string mnemonic, string what, TypeConstraint operandT,
                           TypeConstraint resultT, list<Trait> traits = []>
    : NN_Op<mnemonic, !listconcat([Pure], traits)> {
  let summary = "elementwise " # what # " with broadcasting";
  let description = [{
    Computes `}] # what # [{` elementwise. The operands broadcast against each
    other as in NumPy (and ONNX): shapes are aligned at the trailing
    dimension, and a dimension of 1 stretches to the other's size. The result
    has the broadcast shape. Both operands have the same element type.

    Example:

    ```mlir
    %r = nn.}] # mnemonic # [{ %a, %b : (tensor<2x1x8xf32>, tensor<8xf32>) -> tensor<2x1x8xf32>
    ```
  }];
  let arguments = (ins operandT:$lhs, operandT:$rhs);
  let results = (outs resultT:$result);
  let assemblyFormat = [{
    $lhs `,` $rhs attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def NN_AddOp : NN_BroadcastBinaryOp<"add", "lhs + rhs", NN_NumericTensor, NN_NumericTensor, [Commutative]>;
def NN_SubOp : NN_BroadcastBinaryOp<"sub", "lhs - rhs", NN_NumericTensor, NN_NumericTensor>;
def NN_MulOp : NN_BroadcastBinaryOp<"mul", "lhs * rhs", NN_NumericTensor, NN_NumericTensor, [Commutative]>;
def NN_DivOp : NN_BroadcastBinaryOp<"div", "lhs / rhs", NN_NumericTensor, NN_NumericTensor>;
def NN_PowOp : NN_BroadcastBinaryOp<"pow", "lhs ^ rhs", NN_FloatTensor, NN_FloatTensor>;
def NN_MaxOp : NN_BroadcastBinaryOp<"max", "max(lhs, rhs)", NN_NumericTensor, NN_NumericTensor, [Commutative]>;
def NN_MinOp : NN_BroadcastBinaryOp<"min", "min(lhs, rhs)", NN_NumericTensor, NN_NumericTensor, [Commutative]>;
def NN_EqualOp : NN_BroadcastBinaryOp<"equal", "lhs == rhs", NN_AnyTensor, NN_BoolTensor, [Commutative]>;
def NN_LessOp : NN_BroadcastBinaryOp<"less", "lhs < rhs", NN_NumericTensor, NN_BoolTensor>;
def NN_GreaterOp : NN_BroadcastBinaryOp<"greater", "lhs > rhs", NN_NumericTensor, NN_BoolTensor>;
def NN_AndOp : NN_BroadcastBinaryOp<"and", "lhs and rhs", NN_BoolTensor, NN_BoolTensor, [Commutative]>;
def NN_OrOp : NN_BroadcastBinaryOp<"or", "lhs or rhs", NN_BoolTensor, NN_BoolTensor, [Commutative]>;
// On integers computed at run time (CPM-Ant combines int masks this way);
// on bool the importer uses nn.and / nn.or.
def NN_BitwiseAndOp : NN_BroadcastBinaryOp<"bitwise_and", "lhs & rhs", NN_IndexTensor, NN_IndexTensor, [Commutative]>;
def NN_BitwiseOrOp : NN_BroadcastBinaryOp<"bitwise_or", "lhs | rhs", NN_IndexTensor, NN_IndexTensor, [Commutative]>;
def NN_BitwiseXorOp : NN_BroadcastBinaryOp<"bitwise_xor", "lhs ^ rhs", NN_IndexTensor, NN_IndexTensor, [Commutative]>;

// Unary op: result type equals operand type.
class NN_UnaryOp<string mnemonic, string what, TypeConstraint t = NN_FloatTensor>
    : NN_Op<mnemonic, [Pure, SameOperandsAndResultType]> {
  let summary = "elementwise " # what;
  let description = [{
    Computes `}] # what # [{` elementwise; the result has the operand's type.

    Example:

    ```mlir
    %r = nn.}] # mnemonic # [{ %x : tensor<2x8xf32>
    ```
  }];
  let arguments = (ins t:$input);
  let results = (outs t:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
}

def NN_NegOp : NN_UnaryOp<"neg", "-x", NN_NumericTensor>;
def NN_AbsOp : NN_UnaryOp<"abs", "|x|", NN_NumericTensor>;
def NN_SqrtOp : NN_UnaryOp<"sqrt", "sqrt(x)">;
def NN_ReciprocalOp : NN_UnaryOp<"reciprocal", "1 / x">;
def NN_ExpOp : NN_UnaryOp<"exp", "exp(x)">;
def NN_LogOp : NN_UnaryOp<"log", "log(x)">;
def NN_ErfOp : NN_UnaryOp<"erf", "erf(x)">;
def NN_TanhOp : NN_UnaryOp<"tanh", "tanh(x)">;
def NN_SigmoidOp : NN_UnaryOp<"sigmoid", "1 / (1 + exp(-x))">;
def NN_ReluOp : NN_UnaryOp<"relu", "max(x, 0)">;
def NN_SinOp : NN_UnaryOp<"sin", "sin(x)">;
// Piecewise constant: no gradient (PyTorch's is zero). JetMoE's integer
// division `i // k` exports as sign(i / k) * floor(|i / k|).
def NN_FloorOp : NN_UnaryOp<"floor", "floor(x)">;
def NN_CeilOp : NN_UnaryOp<"ceil", "ceil(x)">;
def NN_SignOp : NN_UnaryOp<"sign", "sign(x): -1, 0 or 1 (NaN stays NaN)">;
def NN_CosOp : NN_UnaryOp<"cos", "cos(x)">;
def NN_NotOp : NN_UnaryOp<"not", "not x", NN_BoolTensor>;

def NN_IsNanOp : NN_Op<"is_nan", [Pure, SameOperandsAndResultShape]> {
  let summary = "tests for NaN elementwise";
  let description = [{
    `result = isnan(input)`. Exporters guard fully masked softmax rows with
    it.

    Example:

    ```mlir
    %m = nn.is_nan %p : tensor<2x4x8x8xf32> to tensor<2x4x8x8xi1>
    ```
  }];
  let arguments = (ins NN_FloatTensor:$input);
  let results = (outs NN_BoolTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `to` type($result)";
}

def NN_CastOp : NN_Op<"cast", [Pure, SameOperandsAndResultShape]> {
  let summary = "converts the element type";
  let description = [{
    Converts each element to the result's element type (round to nearest even
    for narrowing float casts, truncation toward zero for float to integer,
    `x != 0` for casts to i1).

    Example:

    ```mlir
    %h = nn.cast %x : tensor<2x8xf32> to tensor<2x8xbf16>
    ```
  }];
  let arguments = (ins NN_AnyTensor:$input);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `to` type($result)";
}

def NN_WhereOp : NN_Op<"where", [Pure]> {
  let summary = "selects elementwise with broadcasting";
  let description = [{
    `result = condition ? lhs : rhs`, elementwise, with all three operands
    broadcast to the result shape as in NumPy. `lhs` and `rhs` have the
    result's element type.

    Example:

    ```mlir
    %r = nn.where %m, %a, %b : (tensor<8x8xi1>, tensor<2x4x8x8xf32>, tensor<f32>) -> tensor<2x4x8x8xf32>
    ```
  }];
  let arguments = (ins NN_BoolTensor:$condition, NN_AnyTensor:$lhs,
                       NN_AnyTensor:$rhs);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = [{
    $condition `,` $lhs `,` $rhs attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Shape and data movement
//===----------------------------------------------------------------------===//

def NN_ReshapeOp : NN_Op<"reshape", [Pure]> {
  let summary = "reinterprets a tensor with another static shape";
  let description = [{
    Same elements in row-major order, new shape; the element counts must be
    equal. ONNX Reshape, Squeeze, Unsqueeze and Flatten import as this op.

    Example:

    ```mlir
    %r = nn.reshape %x : tensor<2x8x32xf32> to tensor<2x8x4x8xf32>
    ```
  }];
  let arguments = (ins NN_AnyTensor:$input);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `to` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
  let hasCanonicalizer = 1;
}

def NN_TransposeOp : NN_Op<"transpose", [Pure]> {
  let summary = "permutes dimensions";
  let description = [{
    Result dimension `i` is input dimension `perm[i]`. `perm` is a permutation
    of `[0, rank)`.

    Example:

    ```mlir
    %r = nn.transpose %x [0, 2, 1, 3] : tensor<2x8x4x8xf32> to tensor<2x4x8x8xf32>
    ```
  }];
  let arguments = (ins NN_AnyTensor:$input, DenseI64ArrayAttr:$perm);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = "$input $perm attr-dict `:` type($input) `to` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def NN_BroadcastOp : NN_Op<"broadcast", [Pure]> {
  let summary = "broadcasts to a larger shape";
  let description = [{
    Stretches the input to the result shape with NumPy rules: the input's
    shape, aligned at the trailing dimension, must broadcast to exactly the
    result's shape. ONNX Expand imports as this op.

    Example:

    ```mlir
    %r = nn.broadcast %x : tensor<1x8xi64> to tensor<2x8xi64>
    ```
  }];
  let arguments = (ins NN_AnyTensor:$input);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `to` type($result)";
  let hasVerifier = 1;
}

def NN_ConcatOp : NN_Op<"concat", [Pure]> {
  let summary = "concatenates along one axis";
  let description = [{
    Joins the operands along `axis` (in `[0, rank)`); all other dimensions
    must agree, and the result's `axis` dimension is the sum.

    Example:

    ```mlir
    %r = nn.concat %a, %b {axis = 1 : i64} : (tensor<2x3xf32>, tensor<2x5xf32>) -> tensor<2x8xf32>
    ```
  }];
  let arguments = (ins Variadic<NN_AnyTensor>:$inputs,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$axis);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = "$inputs attr-dict `:` functional-type($inputs, results)";
  let hasVerifier = 1;
}

def NN_SliceOp : NN_Op<"slice", [Pure]> {
  let summary = "takes a strided slice";
  let description = [{
    For every dimension `d`, takes indices `starts[d], starts[d] + steps[d],
    ...` up to but excluding `ends[d]`. Starts and ends are already clamped:
    for a positive step `0 <= start <= end <= size`; for a negative step
    `-1 <= end <= start < size` (an end of -1 means "through index 0"). The
    result dimension is the number of indices taken. Steps are nonzero.

    Example:

    ```mlir
    %r = nn.slice %x [0, 0] [2, 4] [1, 1] : tensor<2x8xf32> to tensor<2x4xf32>
    ```
  }];
  let arguments = (ins NN_AnyTensor:$input, DenseI64ArrayAttr:$starts,
                       DenseI64ArrayAttr:$ends, DenseI64ArrayAttr:$steps);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = [{
    $input $starts $ends $steps attr-dict `:` type($input) `to` type($result)
  }];
  let hasVerifier = 1;
}

def NN_GatherOp : NN_Op<"gather", [Pure]> {
  let summary = "gathers slices along one axis";
  let description = [{
    ONNX Gather: `result[i..., j..., k...] = input[i..., indices[j...], k...]`
    where `axis` selects the gathered dimension. The result shape is
    `input.shape[:axis] ++ indices.shape ++ input.shape[axis+1:]`. Negative
    indices count from the end.

    Example:

    ```mlir
    %r = nn.gather %table, %ids {axis = 0 : i64} : (tensor<64x32xf32>, tensor<2x8xi64>) -> tensor<2x8x32xf32>
    ```
  }];
  let arguments = (ins NN_AnyTensor:$input, NN_IndexTensor:$indices,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$axis);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = [{
    $input `,` $indices attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def NN_CumSumOp : NN_Op<"cumsum", [Pure, SameOperandsAndResultType]> {
  let summary = "cumulative sum along one axis";
  let description = [{
    ONNX CumSum with a static axis (in `[0, rank)`): element `i` along `axis`
    is the sum of the elements `j <= i` (`j < i` with `exclusive`; `j >= i`
    and `j > i` with `reverse`). Exporters use it for position ids that skip
    padding (`cumsum(input_ids != pad)`); its gradient is the cumulative sum
    the other way.

    Example:

    ```mlir
    %p = nn.cumsum %m {axis = 1 : i64, exclusive = false, reverse = false} : tensor<2x8xi64>
    ```
  }];
  let arguments = (ins NN_NumericTensor:$input,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$axis,
                       BoolAttr:$exclusive, BoolAttr:$reverse);
  let results = (outs NN_NumericTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
  let hasVerifier = 1;
}

def NN_BandOp : NN_Op<"band", [Pure]> {
  let summary = "a matrix constant along its diagonals, from one value per diagonal";
  let description = [{
    `result[..., i, j] = diagonals[j - i + M - 1]` for every leading index,
    where `[M, N]` are the result's last two dimensions and `diagonals` holds
    the `M + N - 1` values from the lowest diagonal (`j - i = 1 - M`) to the
    highest (`j - i = N - 1`). The causal and sliding-window masks that
    exporters compute from position aranges are such matrices: the importer
    keeps them in this form, O(S) instead of O(S^2), and the attention
    canonicalization reads their pattern without expanding them.

    Example:

    ```mlir
    %m = nn.band %diag : tensor<8191xi1> to tensor<1x1x4096x4096xi1>
    ```
  }];
  let arguments = (ins NN_AnyTensor:$diagonals);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = "$diagonals attr-dict `:` type($diagonals) `to` type($result)";
  let hasVerifier = 1;
}

def NN_TopKIndicesOp : NN_Op<"topk_indices", [Pure]> {
  let summary = "the indices of the k largest (or smallest) along the last axis";
  let description = [{
    ONNX TopK's indices output along the last axis: per row, the positions of
    the `k` largest values (`largest`, else smallest) in order, ties broken
    by the lower index (so the result is deterministic). The values are a
    gather of the input at these indices, whose gradient autodiff already
    has; the indices themselves carry none (mixture-of-experts routing).

    Example:

    ```mlir
    %i = nn.topk_indices %logits {k = 2 : i64, largest = true} : tensor<32x8xf32> to tensor<32x2xi64>
    ```
  }];
  let arguments = (ins NN_FloatTensor:$input,
                       ConfinedAttr<I64Attr, [IntPositive]>:$k,
                       BoolAttr:$largest);
  let results = (outs StaticShapeTensorOf<[I64]>:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `to` type($result)";
  let hasVerifier = 1;
}

def NN_ScatterElementsOp : NN_Op<"scatter_elements", [Pure]> {
  let summary = "a copy of data with elements replaced at run-time indices";
  let description = [{
    ONNX ScatterElements without reduction, for indices computed at run time:
    the result is `data` with `result[.., indices[p], ..] = updates[p]`
    (the index replacing position `p`'s coordinate along `axis`; negative
    indices count from the end; of repeated targets the last update wins).
    DeepSeek's group-limited routing builds its expert mask this way, and
    ScatterND at run-time indices becomes one along axis 0 of a flattened
    view. The gradient of `data` is the result's gradient with the replaced
    elements zeroed (a scatter of zeros); that of `updates` the result's
    gradient at the indices (a gather; repeated targets each get it, as in
    PyTorch). Known indices are imported as a gather.

    Example:

    ```mlir
    %m = nn.scatter_elements %zeros, %idx, %ones {axis = 1 : i64} : (tensor<32x8xf32>, tensor<32x2xi64>, tensor<32x2xf32>) -> tensor<32x8xf32>
    ```
  }];
  let arguments = (ins NN_AnyTensor:$data, NN_IndexTensor:$indices,
                       NN_AnyTensor:$updates,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$axis);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = [{
    $data `,` $indices `,` $updates attr-dict `:` `(` type($data) `,`
    type($indices) `,` type($updates) `)` `->` type($result)
  }];
  let hasVerifier = 1;
}

def NN_TriluOp : NN_Op<"trilu", [Pure, SameOperandsAndResultType]> {
  let summary = "keeps the upper or lower triangle of the last two dims";
  let description = [{
    ONNX Trilu with a static diagonal offset `k`: elements outside the kept
    triangle become zero.

    Example:

    ```mlir
    %r = nn.trilu %x {upper = false, k = 0 : i64} : tensor<8x8xf32>
    ```
  }];
  let arguments = (ins NN_AnyTensor:$input, BoolAttr:$upper, I64Attr:$k);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Reductions, softmax, matmul
//===----------------------------------------------------------------------===//

class NN_ReduceOp<string mnemonic, string what>
    : NN_Op<mnemonic, [Pure]> {
  let summary = what # " over axes";
  let description = [{
    Reduces with }] # what # [{ over `axes` (sorted, unique, in `[0, rank)`).
    With `keepdims` the reduced dimensions stay as size 1, else they are
    removed.

    Example:

    ```mlir
    %r = nn.}] # mnemonic # [{ %x {axes = array<i64: 2>, keepdims = true} : tensor<2x8x32xf32> to tensor<2x8x1xf32>
    ```
  }];
  let arguments = (ins NN_NumericTensor:$input, DenseI64ArrayAttr:$axes,
                       BoolAttr:$keepdims);
  let results = (outs NN_NumericTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `to` type($result)";
  let hasVerifier = 1;
}

def NN_ReduceMeanOp : NN_ReduceOp<"reduce_mean", "the mean">;
def NN_ReduceSumOp : NN_ReduceOp<"reduce_sum", "the sum">;
def NN_ReduceMaxOp : NN_ReduceOp<"reduce_max", "the maximum">;

class NN_SoftmaxLikeOp<string mnemonic, string what>
    : NN_Op<mnemonic, [Pure, SameOperandsAndResultType]> {
  let summary = what # " along one axis";
  let description = [{
    Computes }] # what # [{ along `axis` (in `[0, rank)`).

    Example:

    ```mlir
    %p = nn.}] # mnemonic # [{ %x {axis = 3 : i64} : tensor<2x4x8x8xf32>
    ```
  }];
  let arguments = (ins NN_FloatTensor:$input,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$axis);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
  let hasVerifier = 1;
}

def NN_SoftmaxOp : NN_SoftmaxLikeOp<"softmax", "softmax">;
def NN_LogSoftmaxOp : NN_SoftmaxLikeOp<"log_softmax", "log-softmax">;

def NN_MatmulOp : NN_Op<"matmul", [Pure]> {
  let summary = "matrix product with batch broadcasting";
  let description = [{
    ONNX/NumPy matmul: the last two dimensions multiply (`[M, K] x [K, N]`),
    leading dimensions broadcast. A rank-1 lhs is promoted to `[1, K]` and a
    rank-1 rhs to `[K, 1]`, and the promoted dimension is removed from the
    result.

    Example:

    ```mlir
    %r = nn.matmul %a, %b : (tensor<2x8x32xf32>, tensor<32x96xf32>) -> tensor<2x8x96xf32>
    ```
  }];
  let arguments = (ins NN_FloatTensor:$lhs, NN_FloatTensor:$rhs);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = [{
    $lhs `,` $rhs attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Fused transformer ops
//===----------------------------------------------------------------------===//

def NN_LinearOp : NN_Op<"linear", [Pure]> {
  let summary = "affine map over the last dimension";
  let description = [{
    `result = input x W (+ bias)` over the last dimension. With
    `transpose_weight` the weight is stored `[N, K]` (PyTorch's layout) and
    used transposed; otherwise it is `[K, N]` (ONNX MatMul's layout). The bias,
    if present, is `[N]`.

    Example:

    ```mlir
    %y = nn.linear %x, %w, %b {transpose_weight = false} : (tensor<2x8x32xf32>, tensor<32x96xf32>, tensor<96xf32>) -> tensor<2x8x96xf32>
    ```
  }];
  let arguments = (ins NN_FloatTensor:$input, NN_FloatTensor:$weight,
                       Optional<NN_FloatTensor>:$bias,
                       BoolAttr:$transpose_weight);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`,` $bias^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def NN_LayerNormOp : NN_Op<"layer_norm", [Pure]> {
  let summary = "layer normalization";
  let description = [{
    Normalizes over dimensions `[axis, rank)` to zero mean and unit variance
    (biased variance, `epsilon` added before the square root), then scales by
    `scale` and adds `bias`. Scale and bias have the normalized shape
    `input.shape[axis:]`.

    Example:

    ```mlir
    %y = nn.layer_norm %x, %g, %b {axis = 2 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x8x32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<2x8x32xf32>
    ```
  }];
  let arguments = (ins NN_FloatTensor:$input, NN_FloatTensor:$scale,
                       Optional<NN_FloatTensor>:$bias,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$axis,
                       F32Attr:$epsilon);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $scale (`,` $bias^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def NN_RMSNormOp : NN_Op<"rms_norm", [Pure]> {
  let summary = "root-mean-square normalization";
  let description = [{
    `result = input / sqrt(mean(input^2 over [axis, rank)) + epsilon) * scale`.
    The scale has the normalized shape `input.shape[axis:]`.

    Example:

    ```mlir
    %y = nn.rms_norm %x, %g {axis = 2 : i64, epsilon = 1.0e-06 : f32} : (tensor<2x8x32xf32>, tensor<32xf32>) -> tensor<2x8x32xf32>
    ```
  }];
  let arguments = (ins NN_FloatTensor:$input, NN_FloatTensor:$scale,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$axis,
                       F32Attr:$epsilon);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $scale attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def NN_AttentionOp : NN_Op<"attention", [Pure]> {
  let summary = "scaled dot-product attention, optionally causal, with GQA";
  let description = [{
    `softmax(q kᵀ · scale + mask) v` per head. Two layouts:
    - rank 4, heads explicit: q `[B, H, Sq, D]`, k and v `[B, Hkv, Sk, D]`
      (v may have its own head size `Dv`), result `[B, H, Sq, Dv]`;
    - rank 3, heads folded into the hidden dimension: q `[B, Sq, H·D]`, k and
      v `[B, Sk, Hkv·D]`, result `[B, Sq, H·Dv]`; the hidden sizes must be
      divisible by the head counts.
    Grouped-query attention: `num_heads` must be a multiple of
    `num_kv_heads`; query head `h` uses key/value head `h / (H / Hkv)`.
    `causal` masks key positions after the query position (top-left aligned).
    The optional `mask` is additive (float) or a keep-mask (i1) that
    broadcasts to `[B, H, Sq, Sk]`.

    Example:

    ```mlir
    %o = nn.attention %q, %k, %v {causal = true, num_heads = 4 : i64, num_kv_heads = 2 : i64, scale = 0.353553385 : f32} : (tensor<2x4x8x8xf32>, tensor<2x2x8x8xf32>, tensor<2x2x8x8xf32>) -> tensor<2x4x8x8xf32>
    ```
  }];
  let arguments = (ins NN_FloatTensor:$query, NN_FloatTensor:$key,
                       NN_FloatTensor:$value,
                       Optional<StaticShapeTensorOf<[F32, BF16, F16, I1]>>:$mask,
                       ConfinedAttr<I64Attr, [IntPositive]>:$num_heads,
                       ConfinedAttr<I64Attr, [IntPositive]>:$num_kv_heads,
                       BoolAttr:$causal, F32Attr:$scale);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = [{
    $query `,` $key `,` $value (`,` $mask^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
}

def NN_RotaryOp : NN_Op<"rotary", [Pure]> {
  let summary = "rotary position embedding";
  let description = [{
    Rotates the first `rotary_dim` features of each head by position-dependent
    angles; the rest pass through. `input` is `[B, H, S, D]`; `cos` and `sin`
    are `[S, rotary_dim / 2]` or `[B, S, rotary_dim / 2]`, already gathered
    for the positions in use. With `interleaved` the rotated pairs are
    `(2i, 2i+1)`; otherwise they are `(i, i + rotary_dim/2)` (the rotate-half
    form of GPT-NeoX and Llama).

    Example:

    ```mlir
    %r = nn.rotary %x, %cos, %sin {interleaved = false, rotary_dim = 8 : i64} : (tensor<2x4x8x8xf32>, tensor<8x4xf32>, tensor<8x4xf32>) -> tensor<2x4x8x8xf32>
    ```
  }];
  let arguments = (ins NN_FloatTensor:$input, NN_FloatTensor:$cos,
                       NN_FloatTensor:$sin, BoolAttr:$interleaved,
                       ConfinedAttr<I64Attr, [IntPositive]>:$rotary_dim);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $cos `,` $sin attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
}

def NN_GeluOp : NN_Op<"gelu", [Pure, SameOperandsAndResultType]> {
  let summary = "Gaussian error linear unit";
  let description = [{
    `x · Φ(x)`, exactly (`approximate = none`, via erf) or with the tanh
    approximation (`approximate = tanh`, GPT-2's "gelu_new").

    Example:

    ```mlir
    %y = nn.gelu %x {approximate = 1 : i32} : tensor<2x8x128xf32>
    ```
  }];
  let arguments = (ins NN_FloatTensor:$input,
                       NN_GeluApproximationAttr:$approximate);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
}

def NN_SiluOp : NN_Op<"silu", [Pure, SameOperandsAndResultType]> {
  let summary = "sigmoid linear unit";
  let description = [{
    `x · sigmoid(x)`.

    Example:

    ```mlir
    %y = nn.silu %x : tensor<2x8x128xf32>
    ```
  }];
  let arguments = (ins NN_FloatTensor:$input);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
}

def NN_SwigluOp : NN_Op<"swiglu", [Pure, SameOperandsAndResultType]> {
  let summary = "gated SiLU: silu(gate) * up";
  let description = [{
    The SwiGLU feed-forward gate: `silu(gate) · up`, elementwise.

    Example:

    ```mlir
    %y = nn.swiglu %gate, %up : tensor<2x8x128xf32>
    ```
  }];
  let arguments = (ins NN_FloatTensor:$gate, NN_FloatTensor:$up);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = "$gate `,` $up attr-dict `:` type($result)";
}

def NN_EmbeddingOp : NN_Op<"embedding", [Pure]> {
  let summary = "looks up rows of a table";
  let description = [{
    `result[i...] = table[ids[i...]]`: `table` is `[V, H]`, the result is
    `ids.shape ++ [H]`. With `padding_idx` (PyTorch's `nn.Embedding`
    argument, as the exporter records it) the lookups of that row pass no
    gradient to the table; the forward reads it like any other.

    Example:

    ```mlir
    %e = nn.embedding %table, %ids {padding_idx = 0 : i64} : (tensor<64x32xf32>, tensor<2x8xi64>) -> tensor<2x8x32xf32>
    ```
  }];
  let arguments = (ins NN_FloatTensor:$table, NN_IndexTensor:$ids,
                       OptionalAttr<ConfinedAttr<I64Attr, [IntNonNegative]>>:$padding_idx);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = [{
    $table `,` $ids attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def NN_CrossEntropyOp : NN_Op<"cross_entropy", [Pure]> {
  let summary = "mean cross-entropy of logits against target ids";
  let description = [{
    `mean over positions with target != ignore_index of
    (logsumexp(logits[p, :]) - logits[p, target[p]])`. `logits` is
    `T ++ [V]` and `targets` is `T` for any leading shape `T`. The result is
    an f32 scalar.

    Example:

    ```mlir
    %l = nn.cross_entropy %logits, %t {ignore_index = -100 : i64} : (tensor<2x8x64xf32>, tensor<2x8xi64>) -> tensor<f32>
    ```
  }];
  let arguments = (ins NN_FloatTensor:$logits, NN_IndexTensor:$targets,
                       I64Attr:$ignore_index);
  let results = (outs NN_ScalarFloatTensor:$result);
  let assemblyFormat = [{
    $logits `,` $targets attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Backward ops (written by -nn-autodiff)
//
// The gradient of every `nn` op is written with these ops and the forward
// ops themselves (a reshape's gradient is a reshape). Ops whose name ends in
// `_grad_weight`, `_grad_params`, `_grad_scale` and `embedding_grad` give
// the gradient of a weight; the runtime accumulates them into gradient
// buffers. None of them carries saved statistics: a norm's backward
// recomputes its mean and variance from the input, attention's backward its
// log-sum-exp, so the forward stays the same op with one result.
//===----------------------------------------------------------------------===//

def NN_UnaryFunctionAttr : I32EnumAttr<"UnaryFunction",
    "a differentiable elementwise function", [
      I32EnumAttrCase<"neg", 0>, I32EnumAttrCase<"abs", 1>,
      I32EnumAttrCase<"sqrt", 2>, I32EnumAttrCase<"reciprocal", 3>,
      I32EnumAttrCase<"exp", 4>, I32EnumAttrCase<"log", 5>,
      I32EnumAttrCase<"erf", 6>, I32EnumAttrCase<"tanh", 7>,
      I32EnumAttrCase<"sigmoid", 8>, I32EnumAttrCase<"relu", 9>,
      I32EnumAttrCase<"sin", 10>, I32EnumAttrCase<"cos", 11>
    ]> {
  let cppNamespace = "::mlir::weipipe::nn";
}

def NN_BinaryFunctionAttr : I32EnumAttr<"BinaryFunction",
    "a differentiable broadcasting binary function", [
      I32EnumAttrCase<"add", 0>, I32EnumAttrCase<"sub", 1>,
      I32EnumAttrCase<"mul", 2>, I32EnumAttrCase<"div", 3>,
      I32EnumAttrCase<"pow", 4>, I32EnumAttrCase<"max", 5>,
      I32EnumAttrCase<"min", 6>
    ]> {
  let cppNamespace = "::mlir::weipipe::nn";
}

def NN_ReduceFunctionAttr : I32EnumAttr<"ReduceFunction",
    "a reduction", [
      I32EnumAttrCase<"sum", 0>, I32EnumAttrCase<"mean", 1>,
      I32EnumAttrCase<"max", 2>
    ]> {
  let cppNamespace = "::mlir::weipipe::nn";
}

def NN_UnaryGradOp : NN_Op<"unary_grad", [Pure,
    AllTypesMatch<["input", "output", "grad_output", "result"]>]> {
  let summary = "gradient of an elementwise function";
  let description = [{
    `result = grad_output · f'(input)` for the function `fn`; `output` is the
    forward result `f(input)` (the derivative of exp, sqrt, tanh, sigmoid and
    reciprocal is cheapest from it). At kinks PyTorch's convention holds:
    `abs'(0) = relu'(0) = 0`.
  }];
  let arguments = (ins NN_FloatTensor:$input, NN_FloatTensor:$output,
                       NN_FloatTensor:$grad_output,
                       NN_UnaryFunctionAttr:$fn);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $output `,` $grad_output attr-dict `:` type($result)
  }];
}

def NN_BinaryGradOp : NN_Op<"binary_grad", [Pure,
    AllTypesMatch<["lhs", "grad_lhs"]>, AllTypesMatch<["rhs", "grad_rhs"]>]> {
  let summary = "gradients of a broadcasting binary function";
  let description = [{
    The gradients of `fn(lhs, rhs)` given the gradient of its (broadcast)
    result: each is summed over the dimensions its operand was broadcast
    along, so it has its operand's type. Ties of max/min split the gradient
    evenly; pow follows PyTorch at zero.
  }];
  let arguments = (ins NN_FloatTensor:$lhs, NN_FloatTensor:$rhs,
                       NN_FloatTensor:$grad_output,
                       NN_BinaryFunctionAttr:$fn);
  let results = (outs NN_FloatTensor:$grad_lhs, NN_FloatTensor:$grad_rhs);
  let assemblyFormat = [{
    $lhs `,` $rhs `,` $grad_output attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def NN_ReduceGradOp : NN_Op<"reduce_grad", [Pure,
    AllTypesMatch<["input", "result"]>, AllTypesMatch<["output", "grad_output"]>]> {
  let summary = "gradient of a reduction";
  let description = [{
    Sum: `grad_output` broadcast back over `axes`; mean: the same divided by
    the count; max: to the maximal elements, split evenly among ties.
    `output` is the forward result (used by max).
  }];
  let arguments = (ins NN_FloatTensor:$input, NN_FloatTensor:$output,
                       NN_FloatTensor:$grad_output,
                       NN_ReduceFunctionAttr:$fn, DenseI64ArrayAttr:$axes);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $output `,` $grad_output attr-dict `:` functional-type(operands, results)
  }];
}

def NN_WhereGradOp : NN_Op<"where_grad", [Pure]> {
  let summary = "gradients of a select";
  let description = [{
    `grad_lhs = sum_to(condition ? grad_output : 0)` and
    `grad_rhs = sum_to(condition ? 0 : grad_output)`, each summed down to the
    shape of its forward operand (the result types).
  }];
  let arguments = (ins NN_BoolTensor:$condition, NN_FloatTensor:$grad_output);
  let results = (outs NN_FloatTensor:$grad_lhs, NN_FloatTensor:$grad_rhs);
  let assemblyFormat = [{
    $condition `,` $grad_output attr-dict `:` functional-type(operands, results)
  }];
}

def NN_SumToShapeOp : NN_Op<"sum_to_shape", [Pure]> {
  let summary = "sums a broadcast tensor back down to a smaller shape";
  let description = [{
    The adjoint of broadcasting: the result shape must broadcast to the
    input shape (NumPy rules), and every stretched dimension is summed.
  }];
  let arguments = (ins NN_FloatTensor:$input);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `to` type($result)";
  let hasVerifier = 1;
}

def NN_SliceGradOp : NN_Op<"slice_grad", [Pure]> {
  let summary = "scatters a slice's gradient into zeros";
  let description = [{
    The adjoint of `nn.slice` with the same `starts`, `ends` and `steps`:
    the result (the forward input's type) is zero except at the sliced
    positions, which receive `grad_output`.
  }];
  let arguments = (ins NN_FloatTensor:$grad_output, DenseI64ArrayAttr:$starts,
                       DenseI64ArrayAttr:$ends, DenseI64ArrayAttr:$steps);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = [{
    $grad_output $starts $ends $steps attr-dict `:` type($grad_output) `to` type($result)
  }];
}

def NN_GatherGradOp : NN_Op<"gather_grad", [Pure]> {
  let summary = "scatter-adds a gather's gradient";
  let description = [{
    The adjoint of `nn.gather`: zeros of the forward input's type with
    `grad_output` added at the gathered positions (repeated indices add up).
  }];
  let arguments = (ins NN_IndexTensor:$indices, NN_FloatTensor:$grad_output,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$axis);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = [{
    $indices `,` $grad_output attr-dict `:` functional-type(operands, results)
  }];
}

def NN_MatmulGradOp : NN_Op<"matmul_grad", [Pure,
    AllTypesMatch<["lhs", "grad_lhs"]>, AllTypesMatch<["rhs", "grad_rhs"]>]> {
  let summary = "gradients of a matmul";
  let description = [{
    `grad_lhs = grad_output · rhsᵀ` and `grad_rhs = lhsᵀ · grad_output`, each
    summed over the batch dimensions its operand was broadcast along.
  }];
  let arguments = (ins NN_FloatTensor:$lhs, NN_FloatTensor:$rhs,
                       NN_FloatTensor:$grad_output);
  let results = (outs NN_FloatTensor:$grad_lhs, NN_FloatTensor:$grad_rhs);
  let assemblyFormat = [{
    $lhs `,` $rhs `,` $grad_output attr-dict `:` functional-type(operands, results)
  }];
}

def NN_LinearGradWeightOp : NN_Op<"linear_grad_weight", [Pure]> {
  let summary = "gradient of a linear layer's weight";
  let description = [{
    `inputᵀ · grad_output` over all rows (`[K, N]`), or its transpose
    (`[N, K]`) with `transpose_weight`. The input's gradient is a
    `nn.linear` of `grad_output` with the weight used the other way round;
    the bias's is a `nn.reduce_sum` of `grad_output`.
  }];
  let arguments = (ins NN_FloatTensor:$input, NN_FloatTensor:$grad_output,
                       BoolAttr:$transpose_weight);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $grad_output attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def NN_LayerNormGradInputOp : NN_Op<"layer_norm_grad_input", [Pure,
    AllTypesMatch<["input", "grad_output", "result"]>]> {
  let summary = "gradient of layer normalization's input";
  let arguments = (ins NN_FloatTensor:$input, NN_FloatTensor:$scale,
                       NN_FloatTensor:$grad_output,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$axis,
                       F32Attr:$epsilon);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $scale `,` $grad_output attr-dict `:` functional-type(operands, results)
  }];
}

def NN_LayerNormGradParamsOp : NN_Op<"layer_norm_grad_params", [Pure,
    AllTypesMatch<["input", "grad_output"]>,
    AllTypesMatch<["grad_scale", "grad_bias"]>]> {
  let summary = "gradients of layer normalization's scale and bias";
  let arguments = (ins NN_FloatTensor:$input, NN_FloatTensor:$grad_output,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$axis,
                       F32Attr:$epsilon);
  let results = (outs NN_FloatTensor:$grad_scale, NN_FloatTensor:$grad_bias);
  let assemblyFormat = [{
    $input `,` $grad_output attr-dict `:` functional-type(operands, results)
  }];
}

def NN_RMSNormGradInputOp : NN_Op<"rms_norm_grad_input", [Pure,
    AllTypesMatch<["input", "grad_output", "result"]>]> {
  let summary = "gradient of RMS normalization's input";
  let arguments = (ins NN_FloatTensor:$input, NN_FloatTensor:$scale,
                       NN_FloatTensor:$grad_output,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$axis,
                       F32Attr:$epsilon);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $scale `,` $grad_output attr-dict `:` functional-type(operands, results)
  }];
}

def NN_RMSNormGradScaleOp : NN_Op<"rms_norm_grad_scale", [Pure,
    AllTypesMatch<["input", "grad_output"]>]> {
  let summary = "gradient of RMS normalization's scale";
  let arguments = (ins NN_FloatTensor:$input, NN_FloatTensor:$grad_output,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$axis,
                       F32Attr:$epsilon);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $grad_output attr-dict `:` functional-type(operands, results)
  }];
}

def NN_AttentionGradOp : NN_Op<"attention_grad", [Pure,
    AllTypesMatch<["query", "grad_query"]>, AllTypesMatch<["key", "grad_key"]>,
    AllTypesMatch<["value", "grad_value"]>,
    AllTypesMatch<["output", "grad_output"]>]> {
  let summary = "gradients of attention's query, key and value";
  let description = [{
    Takes the forward's operands and attributes, its output and the output's
    gradient; recomputes the probabilities flash-style. The mask has no
    gradient.
  }];
  let arguments = (ins NN_FloatTensor:$query, NN_FloatTensor:$key,
                       NN_FloatTensor:$value, NN_FloatTensor:$output,
                       NN_FloatTensor:$grad_output,
                       Optional<StaticShapeTensorOf<[F32, BF16, F16, I1]>>:$mask,
                       ConfinedAttr<I64Attr, [IntPositive]>:$num_heads,
                       ConfinedAttr<I64Attr, [IntPositive]>:$num_kv_heads,
                       BoolAttr:$causal, F32Attr:$scale);
  let results = (outs NN_FloatTensor:$grad_query, NN_FloatTensor:$grad_key,
                      NN_FloatTensor:$grad_value);
  let assemblyFormat = [{
    $query `,` $key `,` $value `,` $output `,` $grad_output (`,` $mask^)? attr-dict `:` functional-type(operands, results)
  }];
}

def NN_GeluGradOp : NN_Op<"gelu_grad", [Pure,
    AllTypesMatch<["input", "grad_output", "result"]>]> {
  let summary = "gradient of GELU";
  let arguments = (ins NN_FloatTensor:$input, NN_FloatTensor:$grad_output,
                       NN_GeluApproximationAttr:$approximate);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = "$input `,` $grad_output attr-dict `:` type($result)";
}

def NN_SiluGradOp : NN_Op<"silu_grad", [Pure,
    AllTypesMatch<["input", "grad_output", "result"]>]> {
  let summary = "gradient of SiLU";
  let arguments = (ins NN_FloatTensor:$input, NN_FloatTensor:$grad_output);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = "$input `,` $grad_output attr-dict `:` type($result)";
}

def NN_SwigluGradOp : NN_Op<"swiglu_grad", [Pure,
    AllTypesMatch<["gate", "up", "grad_output", "grad_gate", "grad_up"]>]> {
  let summary = "gradients of SwiGLU's gate and up projection";
  let arguments = (ins NN_FloatTensor:$gate, NN_FloatTensor:$up,
                       NN_FloatTensor:$grad_output);
  let results = (outs NN_FloatTensor:$grad_gate, NN_FloatTensor:$grad_up);
  let assemblyFormat = "$gate `,` $up `,` $grad_output attr-dict `:` type($grad_gate)";
}

def NN_EmbeddingGradOp : NN_Op<"embedding_grad", [Pure]> {
  let summary = "gradient of an embedding table";
  let description = [{
    Zeros of the table's type (`[V, H]`) with each row of `grad_output` added
    to the row its id selected, except the rows whose id is `padding_idx`.
  }];
  let arguments = (ins NN_IndexTensor:$ids, NN_FloatTensor:$grad_output,
                       OptionalAttr<ConfinedAttr<I64Attr, [IntNonNegative]>>:$padding_idx);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = [{
    $ids `,` $grad_output attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def NN_CrossEntropyGradOp : NN_Op<"cross_entropy_grad", [Pure,
    AllTypesMatch<["logits", "result"]>]> {
  let summary = "gradient of the mean cross-entropy";
  let description = [{
    `grad_loss / count · (softmax(logits) - onehot(target))` for rows whose
    target is not `ignore_index` (count of them), zero for ignored rows.
  }];
  let arguments = (ins NN_FloatTensor:$logits, NN_IndexTensor:$targets,
                       NN_ScalarFloatTensor:$grad_loss, I64Attr:$ignore_index);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = [{
    $logits `,` $targets `,` $grad_loss attr-dict `:` functional-type(operands, results)
  }];
}

def NN_SoftmaxGradOp : NN_Op<"softmax_grad", [Pure,
    AllTypesMatch<["output", "grad_output", "result"]>]> {
  let summary = "gradient of softmax from its output";
  let arguments = (ins NN_FloatTensor:$output, NN_FloatTensor:$grad_output,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$axis);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = "$output `,` $grad_output attr-dict `:` type($result)";
}

def NN_LogSoftmaxGradOp : NN_Op<"log_softmax_grad", [Pure,
    AllTypesMatch<["output", "grad_output", "result"]>]> {
  let summary = "gradient of log-softmax from its output";
  let arguments = (ins NN_FloatTensor:$output, NN_FloatTensor:$grad_output,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$axis);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = "$output `,` $grad_output attr-dict `:` type($result)";
}

def NN_AccumulateGradOp : NN_Op<"accumulate_grad", [
    DeclareOpInterfaceMethods<SymbolUserOpInterface>,
    MemoryEffects<[MemWrite]>]> {
  let summary = "adds to a parameter's gradient";
  let description = [{
    Adds `grad` (the parameter's type) to the gradient buffer of the
    `nn.parameter` named by `name`. Every use of a parameter contributes one;
    a tied parameter therefore sums the gradients of all its uses. The
    runtime zeroes gradient buffers once per optimizer step, so micro-batches
    accumulate.

    Example:

    ```mlir
    nn.accumulate_grad @"wte.weight", %g : tensor<64x32xf32>
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$name, NN_FloatTensor:$grad);
  let assemblyFormat = "$name `,` $grad attr-dict `:` type($grad)";
}

#endif // WEIPIPE_DIALECT_NN_NNOPS_TD
