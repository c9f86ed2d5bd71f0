// RUN: not weipipe-opt %s --emit=artifact -o %t.wpp 2>&1 | FileCheck %s

// A function with neither logits nor a scalar loss cannot be trained.
// CHECK: error: nn-append-loss: the first result must be logits [batch, sequence, vocab] or the function must return one f32 scalar loss; results are: 'tensor<2x8xf32>'
func.func @main(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
  return %x : tensor<2x8xf32>
}
