// The training compilation is one registered pipeline: --weipipe-train and
// -pass-pipeline give exactly what the passes give one by one, with each
// option reaching its pass.
// RUN: weipipe-opt %s -nn-tie-parameters -nn-fuse -nn-append-loss -nn-autodiff -cse > %t.passes.mlir
// RUN: weipipe-opt %s -weipipe-train > %t.pipeline.mlir
// RUN: diff %t.passes.mlir %t.pipeline.mlir
// RUN: weipipe-opt %s -pass-pipeline='builtin.module(weipipe-train)' | diff %t.passes.mlir -
// RUN: weipipe-opt %s -nn-tie-parameters -nn-append-loss -nn-autodiff=recompute=true -cse > %t.options.mlir
// RUN: weipipe-opt %s -pass-pipeline='builtin.module(weipipe-train{fuse=false recompute=true})' | diff %t.options.mlir -
// RUN: FileCheck %s --input-file=%t.pipeline.mlir
// RUN: FileCheck %s --check-prefix=RECOMPUTE --input-file=%t.options.mlir

// CHECK: func.func @main_forward
// CHECK: nn.rms_norm
// CHECK: func.func @main_backward_weight
// RECOMPUTE: func.func @main_forward({{.*}}) -> tensor<f32>
// RECOMPUTE-NOT: nn.rms_norm
nn.parameter @emb : tensor<64x16xf32>
nn.parameter @g : tensor<16xf32>
func.func @main(%ids: tensor<2x8xi64> {nn.name = "input_ids"}) -> tensor<2x8x64xf32> {
  %e = nn.param @emb : tensor<64x16xf32>
  %g = nn.param @g : tensor<16xf32>
  %x = nn.embedding %e, %ids : (tensor<64x16xf32>, tensor<2x8xi64>) -> tensor<2x8x16xf32>
  %two = nn.constant dense<2.000000e+00> : tensor<f32>
  %eps = nn.constant dense<9.99999997E-7> : tensor<f32>
  %0 = nn.pow %x, %two : (tensor<2x8x16xf32>, tensor<f32>) -> tensor<2x8x16xf32>
  %1 = nn.reduce_mean %0 {axes = array<i64: 2>, keepdims = true} : tensor<2x8x16xf32> to tensor<2x8x1xf32>
  %2 = nn.add %1, %eps : (tensor<2x8x1xf32>, tensor<f32>) -> tensor<2x8x1xf32>
  %3 = nn.sqrt %2 : tensor<2x8x1xf32>
  %4 = nn.reciprocal %3 : tensor<2x8x1xf32>
  %5 = nn.mul %x, %4 : (tensor<2x8x16xf32>, tensor<2x8x1xf32>) -> tensor<2x8x16xf32>
  %6 = nn.mul %5, %g : (tensor<2x8x16xf32>, tensor<16xf32>) -> tensor<2x8x16xf32>
  %y = nn.linear %6, %e {transpose_weight = true} : (tensor<2x8x16xf32>, tensor<64x16xf32>) -> tensor<2x8x64xf32>
  return %y : tensor<2x8x64xf32>
}
