// RUN: weipipe-opt %s -split-input-file -nn-append-loss -verify-diagnostics | FileCheck %s
// RUN: weipipe-opt %s -split-input-file -nn-append-loss="keep-logits ignore-index=0" -verify-diagnostics | FileCheck %s --check-prefix=KEEP

// A logits model gets a targets input and returns the mean cross-entropy.
// CHECK-LABEL: func.func @main(%arg0: tensor<2x8xi64> {nn.name = "input_ids"}, %arg1: tensor<2x8xi64> {nn.name = "targets"}) -> tensor<f32>
// CHECK: %[[L:.*]] = nn.cross_entropy %{{.*}}, %arg1 {ignore_index = -100 : i64} : (tensor<2x8x64xf32>, tensor<2x8xi64>) -> tensor<f32>
// CHECK-NEXT: return %[[L]] : tensor<f32>
// KEEP-LABEL: func.func @main(%arg0: tensor<2x8xi64> {nn.name = "input_ids"}, %arg1: tensor<2x8xi64> {nn.name = "targets"}) -> (tensor<f32>, tensor<2x8x64xf32>)
// KEEP: %[[L:.*]] = nn.cross_entropy %[[X:.*]], %arg1 {ignore_index = 0 : i64}
// KEEP-NEXT: return %[[L]], %[[X]] : tensor<f32>, tensor<2x8x64xf32>
nn.parameter @emb : tensor<64x16xf32>
func.func @main(%ids: tensor<2x8xi64> {nn.name = "input_ids"}) -> tensor<2x8x64xf32> {
  %e = nn.param @emb : tensor<64x16xf32>
  %x = nn.embedding %e, %ids : (tensor<64x16xf32>, tensor<2x8xi64>) -> tensor<2x8x16xf32>
  %y = nn.linear %x, %e {transpose_weight = true} : (tensor<2x8x16xf32>, tensor<64x16xf32>) -> tensor<2x8x64xf32>
  return %y : tensor<2x8x64xf32>
}

// -----

// A model that returns its own loss keeps it.
// CHECK-LABEL: func.func @main(%arg0: tensor<2x8xf32>) -> tensor<f32>
// CHECK-NOT: nn.cross_entropy
// expected-remark @+1 {{the model already returns a scalar loss; keeping it}}
func.func @main(%x: tensor<2x8xf32>) -> tensor<f32> {
  %l = nn.reduce_mean %x {axes = array<i64: 0, 1>, keepdims = false} : tensor<2x8xf32> to tensor<f32>
  return %l : tensor<f32>
}

// -----

// expected-error @+1 {{nn-append-loss: the first result must be logits [batch, sequence, vocab] or the function must return one f32 scalar loss; results are: 'tensor<2x8xf32>'}}
func.func @main(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
  return %x : tensor<2x8xf32>
}

// -----

// expected-error @+1 {{nn-append-loss: logits 'tensor<2x8x4xf32>' need an integer token-id input of shape [2, 8] to be next-token logits}}
func.func @main(%x: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  return %x : tensor<2x8x4xf32>
}

// -----

// expected-error @+1 {{nn-append-loss: no function 'main' with a body}}
module {
  func.func @other() {
    return
  }
}
