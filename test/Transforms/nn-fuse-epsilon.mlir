// RUN: weipipe-opt %s -nn-fuse 2>&1 | FileCheck %s
// A norm without epsilon, as torch.onnx's optimizer leaves an RMSNorm whose
// epsilon is 1e-8 (Helium, Moshi): it still fuses, with epsilon 0, and one
// warning for the function says why the epsilon may be missing and what to do.

// CHECK: warning: 2 norm(s) have no epsilon (this one first); torch.onnx's optimizer removes an epsilon of 1e-8 or less as if it were zero. That changes the result by about epsilon / mean(x^2): if the model adds one, export with optimize=False
// CHECK-NOT: warning
// CHECK-LABEL: func.func @rms_norm_without_epsilon
// CHECK: %[[N:.*]] = nn.rms_norm %arg0, %arg1 {axis = 2 : i64, epsilon = 0.000000e+00 : f32}
// CHECK: nn.layer_norm %[[N]], {{.*}} {axis = 2 : i64, epsilon = 0.000000e+00 : f32}
// CHECK-NOT: nn.sqrt
func.func @rms_norm_without_epsilon(%x: tensor<2x8x64xf32>, %w: tensor<64xf32>) -> tensor<2x8x64xf32> {
  %two = nn.constant dense<2.000000e+00> : tensor<f32>
  %0 = nn.pow %x, %two : (tensor<2x8x64xf32>, tensor<f32>) -> tensor<2x8x64xf32>
  %1 = nn.reduce_mean %0 {axes = array<i64: 2>, keepdims = true} : tensor<2x8x64xf32> to tensor<2x8x1xf32>
  %2 = nn.sqrt %1 : tensor<2x8x1xf32>
  %3 = nn.reciprocal %2 : tensor<2x8x1xf32>
  %4 = nn.mul %x, %3 : (tensor<2x8x64xf32>, tensor<2x8x1xf32>) -> tensor<2x8x64xf32>
  %5 = nn.mul %w, %4 : (tensor<64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
  // The same for a layer norm: (y - mean(y)) / sqrt(mean((y - mean(y))^2)).
  %m = nn.reduce_mean %5 {axes = array<i64: 2>, keepdims = true} : tensor<2x8x64xf32> to tensor<2x8x1xf32>
  %c = nn.sub %5, %m : (tensor<2x8x64xf32>, tensor<2x8x1xf32>) -> tensor<2x8x64xf32>
  %sq = nn.mul %c, %c : (tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
  %v = nn.reduce_mean %sq {axes = array<i64: 2>, keepdims = true} : tensor<2x8x64xf32> to tensor<2x8x1xf32>
  %s = nn.sqrt %v : tensor<2x8x1xf32>
  %y = nn.div %c, %s : (tensor<2x8x64xf32>, tensor<2x8x1xf32>) -> tensor<2x8x64xf32>
  return %y : tensor<2x8x64xf32>
}
