// One ONNX initializer that is the scale of two norms (exporters merge equal
// initializers) is trained as one parameter, with a warning that says why it
// may differ from PyTorch. The parameters point at this file's own bytes.
// RUN: sed -e 's|STORAGE|%s|' %s > %t.mlir
// RUN: weipipe-opt %t.mlir --emit=artifact -o %t.wpp 2>&1 | FileCheck %s
// CHECK: warning: parameter 'ln.weight' is the scale or bias of 2 normalization layers and is trained as one parameter; exporters merge initializers that hold equal values
// CHECK: wrote {{.*}}.wpp
// The two gradients of each norm are marked to run as one kernel call.
// CHECK: program: forward (5 instructions) backward (8 instructions, 2 norm-gradient pairs fused)

nn.parameter @emb : tensor<16x8xf32> at "STORAGE"[0, 512]
nn.parameter @ln.weight : tensor<8xf32> at "STORAGE"[512, 32]
func.func @main(%ids: tensor<2x4xi64> {nn.name = "input_ids"}) -> tensor<2x4x16xf32> {
  %e = nn.param @emb : tensor<16x8xf32>
  %x = nn.embedding %e, %ids : (tensor<16x8xf32>, tensor<2x4xi64>) -> tensor<2x4x8xf32>
  %g = nn.param @ln.weight : tensor<8xf32>
  %h = nn.rms_norm %x, %g {axis = 2 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %n = nn.rms_norm %h, %g {axis = 2 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %y = nn.linear %n, %e {transpose_weight = true} : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  return %y : tensor<2x4x16xf32>
}
