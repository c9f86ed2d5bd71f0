// Six equal layers in four chunks: 2, 2, 1, 1 (the first chunks take the
// extra layers; the last, which feeds the head, the fewest). Seven are too
// many.
// RUN: weipipe-opt %s -pipe-build-model=chunks=4 | FileCheck %s
// RUN: not weipipe-opt %s -pipe-build-model=chunks=7 2>&1 | FileCheck %s --check-prefix=SEVEN
// CHECK: pipe.model @main_model layers 6 {
// CHECK: pipe.chunk layers [0, 2) @chunk0(
// CHECK: pipe.chunk layers [2, 4) @chunk1(
// CHECK: pipe.chunk layers [4, 5) @chunk2(
// CHECK: pipe.chunk layers [5, 6) @chunk3(
// SEVEN: error: pipe-build-model: cannot cut 6 layers into 7 chunks: there are more chunks than layers
// The four chunks scheduled on four ranks, as one pass pipeline: chunk c's
// master is on rank c + 1 mod 4, which seeds its ring with it and steps it.
// RUN: weipipe-opt %s -pass-pipeline='builtin.module(pipe-build-model{chunks=4},pipe-schedule{ranks=4 microbatches=4},pipe-verify-schedule)' | FileCheck %s --check-prefix=SCHED
// SCHED-LABEL: pipe.program @rank0 for @main_model rank 0 of 4 schedule "weipipe-interleave" microbatches 4 owners [1, 2, 3, 0] {
// SCHED:         pipe.load_master @chunk3 into(%B)
// SCHED:         pipe.optimizer_step @chunk3 grads(%D)
// SCHED-LABEL: pipe.program @rank1 for @main_model rank 1 of 4
// SCHED:         pipe.optimizer_step @chunk0 grads(%D)
// SCHED-LABEL: pipe.program @rank2 for @main_model rank 2 of 4
// SCHED:         pipe.optimizer_step @chunk1 grads(%D)
// SCHED-LABEL: pipe.program @rank3 for @main_model rank 3 of 4
// SCHED:         pipe.optimizer_step @chunk2 grads(%D)
// With the embedding and the head owned by the first and the last chunk, the
// head's matmul (4 x a layer's FLOPs here) leaves the last chunk one layer
// and the first, which also embeds, one: 1, 2, 2, 1. Both read the tied
// embedding.
// RUN: weipipe-opt %s -pipe-build-model="chunks=4 ends=owned" | FileCheck %s --check-prefix=OWNED
// RUN: not weipipe-opt %s -pipe-build-model="ends=both" 2>&1 | FileCheck %s --check-prefix=BAD
// OWNED-NOT: pipe.chunk prologue
// OWNED: pipe.chunk layers [0, 1) @chunk0(%{{.*}}: tensor<2x4xi64>, %{{.*}}: tensor<32x8xf32> {pipe.param = @emb}
// OWNED: pipe.chunk layers [1, 3) @chunk1(
// OWNED: pipe.chunk layers [3, 5) @chunk2(
// OWNED: pipe.chunk layers [5, 6) @chunk3({{.*}}{pipe.param = @emb}
// OWNED-NOT: pipe.chunk epilogue
// BAD: error: pipe-build-model: ends='both': expected chunks or owned
nn.parameter @emb : tensor<32x8xf32>
nn.parameter @w0 : tensor<8x8xf32>
nn.parameter @w1 : tensor<8x8xf32>
nn.parameter @w2 : tensor<8x8xf32>
nn.parameter @w3 : tensor<8x8xf32>
nn.parameter @w4 : tensor<8x8xf32>
nn.parameter @w5 : tensor<8x8xf32>
func.func @main(%ids: tensor<2x4xi64>) -> tensor<2x4x32xf32> {
  %e = nn.param @emb : tensor<32x8xf32>
  %x0 = nn.embedding %e, %ids : (tensor<32x8xf32>, tensor<2x4xi64>) -> tensor<2x4x8xf32>
  %w0 = nn.param @w0 : tensor<8x8xf32>
  %y0 = nn.linear %x0, %w0 {transpose_weight = false} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %g0 = nn.gelu %y0 {approximate = 0 : i32} : tensor<2x4x8xf32>
  %x1 = nn.add %x0, %g0 : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %w1 = nn.param @w1 : tensor<8x8xf32>
  %y1 = nn.linear %x1, %w1 {transpose_weight = false} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %g1 = nn.gelu %y1 {approximate = 0 : i32} : tensor<2x4x8xf32>
  %x2 = nn.add %x1, %g1 : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %w2 = nn.param @w2 : tensor<8x8xf32>
  %y2 = nn.linear %x2, %w2 {transpose_weight = false} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %g2 = nn.gelu %y2 {approximate = 0 : i32} : tensor<2x4x8xf32>
  %x3 = nn.add %x2, %g2 : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %w3 = nn.param @w3 : tensor<8x8xf32>
  %y3 = nn.linear %x3, %w3 {transpose_weight = false} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %g3 = nn.gelu %y3 {approximate = 0 : i32} : tensor<2x4x8xf32>
  %x4 = nn.add %x3, %g3 : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %w4 = nn.param @w4 : tensor<8x8xf32>
  %y4 = nn.linear %x4, %w4 {transpose_weight = false} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %g4 = nn.gelu %y4 {approximate = 0 : i32} : tensor<2x4x8xf32>
  %x5 = nn.add %x4, %g4 : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %w5 = nn.param @w5 : tensor<8x8xf32>
  %y5 = nn.linear %x5, %w5 {transpose_weight = false} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %g5 = nn.gelu %y5 {approximate = 0 : i32} : tensor<2x4x8xf32>
  %x6 = nn.add %x5, %g5 : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %logits = nn.linear %x6, %e {transpose_weight = true} : (tensor<2x4x8xf32>, tensor<32x8xf32>) -> tensor<2x4x32xf32>
  return %logits : tensor<2x4x32xf32>
}
