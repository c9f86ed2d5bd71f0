// A float graph input the loss never reads (issue 9: autodiff crashed
// building the zero gradient it returns for it) gets a diagnostic that
// names it, and nothing is written.
// RUN: sed -e 's|STORAGE|%s|' %s > %t.mlir
// RUN: rm -f %t.wpp
// RUN: not weipipe-opt %t.mlir --emit=artifact -o %t.wpp 2>&1 | FileCheck %s --implicit-check-not="see current operation"
// RUN: not ls %t.wpp
// CHECK: error: input 'extra' is 'tensor<2x4xf32>'; training takes [batch, seq] i64 token ids (fold the other inputs at import with --fold-inputs)

nn.parameter @emb : tensor<16x8xf32> at "STORAGE"[0, 512]
func.func @main(%ids: tensor<2x4xi64> {nn.name = "input_ids"}, %u: tensor<2x4xf32> {nn.name = "extra"}) -> tensor<2x4x16xf32> {
  %e = nn.param @emb : tensor<16x8xf32>
  %x = nn.embedding %e, %ids : (tensor<16x8xf32>, tensor<2x4xi64>) -> tensor<2x4x8xf32>
  %y = nn.linear %x, %e {transpose_weight = true} : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  return %y : tensor<2x4x16xf32>
}
