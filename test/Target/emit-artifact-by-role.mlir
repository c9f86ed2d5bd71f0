// The artifact writer finds the training functions by their declared roles
// (nn.autodiff, nn.autodiff_of), not by name: after the pipeline, renamed
// functions still compile to the same artifact, and a module whose forward
// lost its role is refused.
// RUN: sed -e 's|STORAGE|%s|' %s > %t.mlir
// RUN: weipipe-opt %t.mlir -weipipe-train > %t.train.mlir
// RUN: weipipe-opt %t.train.mlir --emit=artifact -o %t.wpp 2>&1 | FileCheck %s
// RUN: sed -e 's/@main_forward/@fwd/; s/@main_backward_input/@bwd_in/; s/@main_backward_weight/@bwd_w/; s/@main_backward/@bwd/' %t.train.mlir > %t.renamed.mlir
// RUN: weipipe-opt %t.renamed.mlir --emit=artifact -o %t.renamed.wpp 2>&1 | FileCheck %s --check-prefix=RENAMED
// RUN: weipipe-opt %t.renamed.mlir --emit=artifact --backward=split -o %t.split.wpp 2>&1 | FileCheck %s --check-prefix=SPLIT
// RUN: sed -e 's/nn.autodiff = "forward", //' %t.train.mlir > %t.nofwd.mlir
// RUN: not weipipe-opt %t.nofwd.mlir --emit=artifact -o %t.nofwd.wpp 2>&1 | FileCheck %s --check-prefix=NOFWD
// CHECK: program: forward (
// RENAMED: program: forward ({{[0-9]+}} instructions) backward (
// SPLIT: program: forward ({{[0-9]+}} instructions) backward_input ({{[0-9]+}} instructions) backward_weight (
// NOFWD: error: no forward function of 'main': the module was not differentiated (-nn-autodiff)

nn.parameter @emb : tensor<16x8xf32> at "STORAGE"[0, 512]
func.func @main(%ids: tensor<2x4xi64> {nn.name = "input_ids"}) -> tensor<2x4x16xf32> {
  %e = nn.param @emb : tensor<16x8xf32>
  %x = nn.embedding %e, %ids : (tensor<16x8xf32>, tensor<2x4xi64>) -> tensor<2x4x8xf32>
  %y = nn.linear %x, %e {transpose_weight = true} : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  return %y : tensor<2x4x16xf32>
}
