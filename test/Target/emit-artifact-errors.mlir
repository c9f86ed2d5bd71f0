// RUN: rm -f %t.wpp
// RUN: not weipipe-opt %s -split-input-file --emit=artifact -o %t.wpp 2>&1 | FileCheck %s
// RUN: not ls %t.wpp

// A parameter that has no stored bytes cannot be trained.
// CHECK: error: parameter 'w' has no stored bytes to train from
nn.parameter @w : tensor<16x8xf32>
func.func @main(%ids: tensor<2x4xi64> {nn.name = "input_ids"}) -> tensor<2x4x16xf32> {
  %w = nn.param @w : tensor<16x8xf32>
  %x = nn.embedding %w, %ids : (tensor<16x8xf32>, tensor<2x4xi64>) -> tensor<2x4x8xf32>
  %y = nn.linear %x, %w {transpose_weight = true} : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  return %y : tensor<2x4x16xf32>
}
