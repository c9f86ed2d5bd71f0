//===- NNDialect.td - the nn dialect -----------------------*- tablegen -*-===//
//
// Part of weipipe. The `nn` dialect: tensor compute on static shapes.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_DIALECT_NN_NNDIALECT_TD
#define WEIPIPE_DIALECT_NN_NNDIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def NN_Dialect : Dialect {
  let name = "nn";
  let summary = "Tensor compute for transformer training on static shapes";
  let description = [{
    The `nn` dialect is the level ONNX imports into. It has primitive ops that
    ONNX operators map onto one to one (matmul, add, softmax, reshape, ...) and
    fused transformer ops (linear, layer_norm, rms_norm, attention, rotary,
    gelu, swiglu, embedding, cross_entropy) that later passes raise the
    primitives to. Every tensor has a static shape. Floating-point compute is
    f32, bf16 or f16; indices are i32 or i64; predicates are i1.

    Parameters (trainable weights) are module-level `nn.parameter` symbols that
    reference their bytes by file, offset and length: the IR never holds weight
    bytes. `nn.param` reads one inside a function.
  }];
  let cppNamespace = "::mlir::weipipe::nn";
  let hasConstantMaterializer = 1;
  // Every attribute the compiler keys on is declared here (helpers
  // NNDialect::<Name>AttrHelper) and verified by the dialect.
  let discardableAttrs = (ins
    // On the module: the floating-point initializers of the source model
    // that are not trained, each with the reason (name -> reason), for the
    // compile summary.
    "::mlir::DictionaryAttr":$frozen_initializers,
    // On the module: the model file it was imported from.
    "::mlir::StringAttr":$source,
    // On a function argument: the model input it stands for (input_ids,
    // targets).
    "::mlir::StringAttr":$name,
    // On each function nn-autodiff makes: its role (forward, backward,
    // backward_input, backward_weight; nn::AutodiffRole) and the function it
    // differentiates. Consumers find the functions by these, not by name.
    "::mlir::StringAttr":$autodiff,
    "::mlir::StringAttr":$autodiff_of,
    // On the backward functions: how many leading arguments are values the
    // forward saved, and whether they are the forward's arguments instead
    // (recompute).
    "::mlir::IntegerAttr":$saved,
    "::mlir::BoolAttr":$recompute,
    // On backward_input: how many trailing results go to backward_weight.
    "::mlir::IntegerAttr":$transfer,
    // The buffer plan, recorded by -weipipe-plan-memory: on each op the
    // arena byte offset of each result (-1: not in the arena), on the
    // forward function the arena's size.
    "::mlir::DenseI64ArrayAttr":$arena,
    "::mlir::IntegerAttr":$arena_bytes,
    // The part of the model an op belongs to (-nn-discover-layers): the
    // layer index, -1 for the prologue, -2 for the epilogue.
    "::mlir::IntegerAttr":$layer
  );
  let hasOperationAttrVerify = 1;
  let hasRegionArgAttrVerify = 1;
}

//===----------------------------------------------------------------------===//
// Type constraints
//===----------------------------------------------------------------------===//

def NN_FloatElement : AnyTypeOf<[F32, BF16, F16]>;
def NN_IndexElement : AnyTypeOf<[I32, I64]>;
def NN_AnyElement : AnyTypeOf<[F32, BF16, F16, I64, I32, I1]>;

def NN_FloatTensor : StaticShapeTensorOf<[F32, BF16, F16]>;
def NN_IndexTensor : StaticShapeTensorOf<[I32, I64]>;
def NN_BoolTensor : StaticShapeTensorOf<[I1]>;
def NN_NumericTensor : StaticShapeTensorOf<[F32, BF16, F16, I32, I64]>;
def NN_AnyTensor : StaticShapeTensorOf<[F32, BF16, F16, I32, I64, I1]>;
def NN_ScalarFloatTensor : TensorRankOf<[F32], [0]>;

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def NN_GeluApproximationAttr : I32EnumAttr<"GeluApproximation",
    "how GELU is computed", [
      I32EnumAttrCase<"none", 0>,
      I32EnumAttrCase<"tanh", 1>
    ]> {
  let cppNamespace = "::mlir::weipipe::nn";
}

//===----------------------------------------------------------------------===//
// Base op
//===----------------------------------------------------------------------===//

class NN_Op<string mnemonic, list<Trait> traits = []>
    : Op<NN_Dialect, mnemonic, traits>;

#endif // WEIPIPE_DIALECT_NN_NNDIALECT_TD
