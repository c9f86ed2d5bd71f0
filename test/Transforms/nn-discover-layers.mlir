// RUN: weipipe-opt %s -split-input-file -nn-discover-layers -verify-diagnostics | FileCheck %s
// RUN: not weipipe-opt %s -split-input-file -nn-discover-layers=function=nope 2>&1 | FileCheck %s --check-prefix=MISSING
// RUN: not weipipe-opt %s -split-input-file -pipe-build-model=chunks=2 2>&1 | FileCheck %s --check-prefix=BUILD
// BUILD: pipe.chunk layers [0, 2) @chunk0
// BUILD: pipe.chunk layers [2, 3) @chunk1
// BUILD: no repeated block
// BUILD: pipe.chunk layers [0, 2) @chunk0
// BUILD: pipe.chunk layers [2, 4) @chunk1

// Three layers of pre-norm residual blocks between an embedding and a head.
// The layers read their own parameters (any names), a value the prologue
// computes once (%bias, read by every layer) and the previous layer's
// output; boundaries fall on the residual stream.
// CHECK-LABEL: func.func @main
// CHECK: nn.embedding {{.*}}nn.layer = -1
// CHECK: nn.mul {{.*}}nn.layer = -1
// CHECK-COUNT-4: nn.layer = 0 :
// CHECK-COUNT-4: nn.layer = 1 :
// CHECK-COUNT-4: nn.layer = 2 :
// CHECK: nn.rms_norm {{.*}}nn.layer = -2
// CHECK: nn.linear {{.*}}nn.layer = -2
nn.parameter @emb : tensor<32x8xf32>
nn.parameter @g0 : tensor<8xf32>
nn.parameter @w0 : tensor<8x8xf32>
nn.parameter @val_7 : tensor<8xf32>
nn.parameter @val_9 : tensor<8x8xf32>
nn.parameter @l2.g : tensor<8xf32>
nn.parameter @l2.w : tensor<8x8xf32>
nn.parameter @gf : tensor<8xf32>
nn.parameter @head : tensor<32x8xf32>
// expected-remark @+1 {{nn-discover-layers: 3 x layer of 4 ops (rms_norm, linear, add x2; 2 parameter(s), 72 values each); prologue: embedding, mul; 1 parameter(s), 256 values; epilogue: rms_norm, linear; 2 parameter(s), 264 values}}
func.func @main(%ids: tensor<2x4xi64>) -> tensor<2x4x32xf32> {
  %e = nn.param @emb : tensor<32x8xf32>
  %x0 = nn.embedding %e, %ids : (tensor<32x8xf32>, tensor<2x4xi64>) -> tensor<2x4x8xf32>
  %c = nn.constant dense<0.5> : tensor<8xf32>
  %bias = nn.mul %c, %c : (tensor<8xf32>, tensor<8xf32>) -> tensor<8xf32>
  %g0 = nn.param @g0 : tensor<8xf32>
  %n0 = nn.rms_norm %x0, %g0 {axis = 2 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %w0 = nn.param @w0 : tensor<8x8xf32>
  %y0 = nn.linear %n0, %w0 {transpose_weight = false} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %b0 = nn.add %y0, %bias : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %x1 = nn.add %x0, %b0 : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %g1 = nn.param @val_7 : tensor<8xf32>
  %n1 = nn.rms_norm %x1, %g1 {axis = 2 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %w1 = nn.param @val_9 : tensor<8x8xf32>
  %y1 = nn.linear %n1, %w1 {transpose_weight = false} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %b1 = nn.add %y1, %bias : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %x2 = nn.add %x1, %b1 : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %g2 = nn.param @l2.g : tensor<8xf32>
  %n2 = nn.rms_norm %x2, %g2 {axis = 2 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %w2 = nn.param @l2.w : tensor<8x8xf32>
  %y2 = nn.linear %n2, %w2 {transpose_weight = false} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %b2 = nn.add %y2, %bias : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %x3 = nn.add %x2, %b2 : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %gf = nn.param @gf : tensor<8xf32>
  %nf = nn.rms_norm %x3, %gf {axis = 2 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %h = nn.param @head : tensor<32x8xf32>
  %logits = nn.linear %nf, %h {transpose_weight = true} : (tensor<2x4x8xf32>, tensor<32x8xf32>) -> tensor<2x4x32xf32>
  return %logits : tensor<2x4x32xf32>
}

// -----

// Nothing repeats: one rank only.
// CHECK-LABEL: func.func @main
// CHECK-NOT: nn.layer
nn.parameter @w : tensor<8x8xf32>
// expected-remark @+1 {{nn-discover-layers: no repeated block in 'main' (2 ops): it trains on one rank, not in a pipeline}}
func.func @main(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
  %w = nn.param @w : tensor<8x8xf32>
  %y = nn.linear %x, %w {transpose_weight = false} : (tensor<2x8xf32>, tensor<8x8xf32>) -> tensor<2x8xf32>
  %z = nn.exp %y : tensor<2x8xf32>
  return %z : tensor<2x8xf32>
}

// MISSING: error: nn-discover-layers: no function 'nope' with a body

// -----

// The first layer scales its projection once more (one op the others do not
// have) and so does the last: both are still layers, four in all, not
// prologue and epilogue.
// CHECK-LABEL: func.func @main
// CHECK: nn.embedding {{.*}}nn.layer = -1
// CHECK-COUNT-5: nn.layer = 0 :
// CHECK-COUNT-4: nn.layer = 1 :
// CHECK-COUNT-4: nn.layer = 2 :
// CHECK-COUNT-5: nn.layer = 3 :
// CHECK: nn.linear {{.*}}nn.layer = -2
nn.parameter @emb : tensor<32x8xf32>
nn.parameter @g0 : tensor<8xf32>
nn.parameter @w0 : tensor<8x8xf32>
nn.parameter @g1 : tensor<8xf32>
nn.parameter @w1 : tensor<8x8xf32>
nn.parameter @g2 : tensor<8xf32>
nn.parameter @w2 : tensor<8x8xf32>
nn.parameter @g3 : tensor<8xf32>
nn.parameter @w3 : tensor<8x8xf32>
nn.parameter @head : tensor<32x8xf32>
// expected-remark @+1 {{nn-discover-layers: 4 x layer of 4 ops (rms_norm, linear, add x2; 2 parameter(s), 72 values each; layer 0: 5 ops; layer 3: 5 ops); prologue: embedding; 1 parameter(s), 256 values; epilogue: linear; 1 parameter(s), 256 values}}
func.func @main(%ids: tensor<2x4xi64>) -> tensor<2x4x32xf32> {
  %e = nn.param @emb : tensor<32x8xf32>
  %x0 = nn.embedding %e, %ids : (tensor<32x8xf32>, tensor<2x4xi64>) -> tensor<2x4x8xf32>
  %k = nn.constant dense<0.5> : tensor<2x4x8xf32>
  %g0 = nn.param @g0 : tensor<8xf32>
  %n0 = nn.rms_norm %x0, %g0 {axis = 2 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %w0 = nn.param @w0 : tensor<8x8xf32>
  %y0 = nn.linear %n0, %w0 {transpose_weight = false} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %s0 = nn.mul %y0, %k : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %b0 = nn.add %s0, %y0 : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %x1 = nn.add %x0, %b0 : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %g1 = nn.param @g1 : tensor<8xf32>
  %n1 = nn.rms_norm %x1, %g1 {axis = 2 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %w1 = nn.param @w1 : tensor<8x8xf32>
  %y1 = nn.linear %n1, %w1 {transpose_weight = false} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %b1 = nn.add %y1, %y1 : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %x2 = nn.add %x1, %b1 : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %g2 = nn.param @g2 : tensor<8xf32>
  %n2 = nn.rms_norm %x2, %g2 {axis = 2 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %w2 = nn.param @w2 : tensor<8x8xf32>
  %y2 = nn.linear %n2, %w2 {transpose_weight = false} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %b2 = nn.add %y2, %y2 : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %x3 = nn.add %x2, %b2 : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %g3 = nn.param @g3 : tensor<8xf32>
  %n3 = nn.rms_norm %x3, %g3 {axis = 2 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %w3 = nn.param @w3 : tensor<8x8xf32>
  %y3 = nn.linear %n3, %w3 {transpose_weight = false} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %s3 = nn.mul %y3, %k : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %b3 = nn.add %s3, %y3 : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %x4 = nn.add %x3, %b3 : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %h = nn.param @head : tensor<32x8xf32>
  %logits = nn.linear %x4, %h {transpose_weight = true} : (tensor<2x4x8xf32>, tensor<32x8xf32>) -> tensor<2x4x32xf32>
  return %logits : tensor<2x4x32xf32>
}
