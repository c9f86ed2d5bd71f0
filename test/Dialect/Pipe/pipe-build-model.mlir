// RUN: weipipe-opt %s -split-input-file -pipe-build-model -verify-diagnostics | FileCheck %s
// RUN: not weipipe-opt %s -split-input-file -pipe-build-model=chunks=2 2>&1 | FileCheck %s --check-prefix=TWO
// RUN: not weipipe-opt %s -split-input-file -pipe-build-model=chunks=4 2>&1 | FileCheck %s --check-prefix=FOUR

// Three equal layers in two chunks: the first takes the extra layer; each
// chunk's pipe.cost is its forward FLOPs.
// TWO: pipe.chunk layers [0, 2) @chunk0({{.*}}) -> tensor<2x4x8xf32> attributes {pipe.cost = [[C2:[0-9]+]] : i64}
// TWO: pipe.chunk layers [2, 3) @chunk1({{.*}}) -> tensor<2x4x8xf32> attributes {pipe.cost = {{[0-9]+}} : i64}
// FOUR: error: pipe-build-model: cannot cut 3 layers into 4 chunks: there are more chunks than layers

// The model cut along its discovered layers: a prologue, one chunk per layer
// and an epilogue, each a function of its input activations and then its
// weights (each marked with its parameter). The value the prologue computes
// from constants alone (%bias) is recomputed inside every layer chunk, never
// sent between stages; the layers pass on the residual stream only. The
// function stays for single-rank training.
// CHECK-LABEL: func.func @main(
// CHECK-LABEL: pipe.model @main_model layers 3 {
// CHECK: pipe.chunk prologue @prologue(%{{.*}}: tensor<2x4xi64>, %{{.*}}: tensor<32x8xf32> {pipe.param = @emb}) -> tensor<2x4x8xf32> attributes {pipe.cost = {{[0-9]+}} : i64} {
// CHECK-NEXT: nn.embedding
// CHECK-NEXT: pipe.yield
// CHECK: pipe.chunk layers [0, 1) @chunk0(%[[X:.*]]: tensor<2x4x8xf32>, %{{.*}}: tensor<8xf32> {pipe.param = @g0}, %{{.*}}: tensor<8x8xf32> {pipe.param = @w0}) -> tensor<2x4x8xf32> attributes {pipe.cost = {{[0-9]+}} : i64} {
// CHECK: nn.rms_norm %[[X]]
// CHECK: nn.constant
// CHECK: nn.mul
// CHECK: pipe.chunk layers [1, 2) @chunk1(%{{.*}}: tensor<2x4x8xf32>, %{{.*}}: tensor<8xf32> {pipe.param = @val_7}, %{{.*}}: tensor<8x8xf32> {pipe.param = @val_9}) -> tensor<2x4x8xf32> attributes {pipe.cost = {{[0-9]+}} : i64} {
// CHECK: nn.mul
// CHECK: pipe.chunk layers [2, 3) @chunk2(%{{.*}}: tensor<2x4x8xf32>, %{{.*}}: tensor<8xf32> {pipe.param = @l2.g}, %{{.*}}: tensor<8x8xf32> {pipe.param = @l2.w}) -> tensor<2x4x8xf32> attributes {pipe.cost = {{[0-9]+}} : i64} {
// CHECK: pipe.chunk epilogue @epilogue(%{{.*}}: tensor<2x4x8xf32>, %{{.*}}: tensor<8xf32> {pipe.param = @gf}, %{{.*}}: tensor<32x8xf32> {pipe.param = @head}) -> tensor<2x4x32xf32> attributes {pipe.cost = {{[0-9]+}} : i64} {
// CHECK: nn.linear
// CHECK-NEXT: pipe.yield
nn.parameter @emb : tensor<32x8xf32>
nn.parameter @g0 : tensor<8xf32>
nn.parameter @w0 : tensor<8x8xf32>
nn.parameter @val_7 : tensor<8xf32>
nn.parameter @val_9 : tensor<8x8xf32>
nn.parameter @l2.g : tensor<8xf32>
nn.parameter @l2.w : tensor<8x8xf32>
nn.parameter @gf : tensor<8xf32>
nn.parameter @head : tensor<32x8xf32>
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

// Nothing repeats: no layers to distribute.
nn.parameter @w : tensor<8x8xf32>
// expected-error @+1 {{pipe-build-model: 'main' has no repeated block (2 ops), so it has no layers to distribute over ranks; it trains on one rank}}
func.func @main(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
  %w = nn.param @w : tensor<8x8xf32>
  %y = nn.linear %x, %w {transpose_weight = false} : (tensor<2x8xf32>, tensor<8x8xf32>) -> tensor<2x8xf32>
  %z = nn.exp %y : tensor<2x8xf32>
  return %z : tensor<2x8xf32>
}
