// Autodiff applies to any function with a scalar f32 loss, not only a whole
// model's main: here a chunk that takes activations (a float argument, whose
// gradient the backward returns) beside another function left alone. The
// functions made carry their roles and the function they differentiate.
// RUN: weipipe-opt %s -nn-autodiff=function=chunk1 | FileCheck %s

// CHECK-LABEL: func.func @chunk1_forward(%arg0: tensor<2x8x16xf32>) -> (tensor<f32>
// CHECK-SAME: nn.autodiff = "forward", nn.autodiff_of = "chunk1"
// CHECK-LABEL: func.func @chunk1_backward(
// CHECK-SAME: -> tensor<2x8x16xf32>
// CHECK-SAME: nn.autodiff = "backward", nn.autodiff_of = "chunk1"
// CHECK: nn.linear_grad_weight
// CHECK: nn.accumulate_grad
// CHECK-LABEL: func.func @chunk1_backward_input(
// CHECK-LABEL: func.func @chunk1_backward_weight(
// CHECK-LABEL: func.func @main(
// CHECK-NOT: nn.autodiff
nn.parameter @w : tensor<16x16xf32>
func.func @chunk1(%h: tensor<2x8x16xf32>) -> tensor<f32> {
  %w = nn.param @w : tensor<16x16xf32>
  %y = nn.linear %h, %w {transpose_weight = false} : (tensor<2x8x16xf32>, tensor<16x16xf32>) -> tensor<2x8x16xf32>
  %l = nn.reduce_mean %y {axes = array<i64: 0, 1, 2>, keepdims = false} : tensor<2x8x16xf32> to tensor<f32>
  return %l : tensor<f32>
}
func.func @main(%h: tensor<2x8x16xf32>) -> tensor<f32> {
  %l = nn.reduce_mean %h {axes = array<i64: 0, 1, 2>, keepdims = false} : tensor<2x8x16xf32> to tensor<f32>
  return %l : tensor<f32>
}
