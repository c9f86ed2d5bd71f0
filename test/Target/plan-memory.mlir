// The buffer plan is a pass whose result lit can read: -weipipe-plan-memory
// records the plan --emit=artifact writes (the same code computes both).
// Values the forward saves for the backward keep their offsets while the
// backward's temporaries reuse the space of dead ones; weight gradients
// that accumulate into their parameter's gradient buffer are off the arena
// (-1).
// RUN: sed -e 's|STORAGE|%s|' %s > %t.mlir
// RUN: weipipe-opt %t.mlir -weipipe-train -weipipe-plan-memory 2>/dev/null | FileCheck %s
// RUN: weipipe-opt %t.mlir -weipipe-train -weipipe-plan-memory=split-backward 2>/dev/null | FileCheck %s --check-prefix=SPLIT
// RUN: weipipe-opt %t.mlir -weipipe-train -weipipe-plan-memory 2>/dev/null > %t.planned.mlir
// RUN: weipipe-opt %t.planned.mlir --emit=artifact -o %t.wpp 2>&1 | FileCheck %s --check-prefix=EMIT
// RUN: not weipipe-opt %t.mlir -weipipe-plan-memory 2>&1 | FileCheck %s --check-prefix=UNDIFF

// CHECK-LABEL: func.func @main_forward
// CHECK-SAME: nn.arena_bytes = 1792 : i64
// CHECK: nn.embedding {{.*}} {nn.arena = array<i64: {{[0-9]+}}>}
// CHECK: nn.rms_norm {{.*}}nn.arena = array<i64: {{[0-9]+}}>}
// CHECK: nn.linear {{.*}}nn.arena = array<i64: [[$LOGITS:[0-9]+]]>
// CHECK: nn.cross_entropy {{.*}}nn.arena = array<i64: {{[0-9]+}}>
// CHECK-LABEL: func.func @main_backward(
// CHECK: nn.cross_entropy_grad {{.*}}nn.arena = array<i64: {{[0-9]+}}>
// The input gradient of the head reuses the logits' bytes, dead by then.
// CHECK: nn.linear {{.*}}{nn.arena = array<i64: [[$LOGITS]]>, transpose_weight = false}
// CHECK: nn.linear_grad_weight {{.*}}nn.arena = array<i64: -1>
// CHECK: nn.rms_norm_grad_scale {{.*}}nn.arena = array<i64: -1>
// CHECK: nn.embedding_grad {{.*}}nn.arena = array<i64: -1>
// The split backward plans backward_input and backward_weight instead.
// SPLIT-LABEL: func.func @main_forward
// SPLIT-SAME: nn.arena_bytes =
// SPLIT-LABEL: func.func @main_backward(
// SPLIT-NOT: nn.arena =
// SPLIT-LABEL: func.func @main_backward_input(
// SPLIT: nn.cross_entropy_grad {{.*}}nn.arena = array<i64:
// SPLIT-LABEL: func.func @main_backward_weight(
// SPLIT: nn.linear_grad_weight {{.*}}nn.arena = array<i64: -1>
// EMIT: memory plan (rank 0 of 1): activations 1.8 KiB
// UNDIFF: error: no forward function of 'main': the module was not differentiated (-nn-autodiff)

nn.parameter @emb : tensor<16x8xf32> at "STORAGE"[0, 512]
nn.parameter @g : tensor<8xf32> at "STORAGE"[512, 32]
func.func @main(%ids: tensor<2x4xi64> {nn.name = "input_ids"}) -> tensor<2x4x16xf32> {
  %e = nn.param @emb : tensor<16x8xf32>
  %x = nn.embedding %e, %ids : (tensor<16x8xf32>, tensor<2x4xi64>) -> tensor<2x4x8xf32>
  %g = nn.param @g : tensor<8xf32>
  %h = nn.rms_norm %x, %g {axis = 2 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %y = nn.linear %h, %e {transpose_weight = true} : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  return %y : tensor<2x4x16xf32>
}
