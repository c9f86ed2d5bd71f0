// RUN: weipipe-opt %s --verify-roundtrip | FileCheck %s
// RUN: weipipe-opt %s --mlir-print-op-generic | weipipe-opt | FileCheck %s

// Tests that a model with a prologue, two layer chunks (written out of layer
// order) and an epilogue round-trips, with nn ops in the chunk bodies.

// CHECK-LABEL: pipe.model @gpt layers 4 {
// CHECK:         pipe.chunk prologue @embed(%[[IDS:.*]]: tensor<2x8xi64>, %[[WTE:.*]]: tensor<64x32xf32>) -> tensor<2x8x32xf32> {
// CHECK-NEXT:      %[[H:.*]] = nn.embedding %[[WTE]], %[[IDS]]
// CHECK-NEXT:      pipe.yield %[[H]] : tensor<2x8x32xf32>
// CHECK-NEXT:    }
// CHECK:         pipe.chunk layers [2, 4) @c1(%[[X1:.*]]: tensor<2x8x32xf32>, %[[W1:.*]]: tensor<32x32xf32>) -> tensor<2x8x32xf32> {
// CHECK-NEXT:      %[[Y1:.*]] = nn.matmul %[[X1]], %[[W1]]
// CHECK-NEXT:      %[[Z1:.*]] = nn.add %[[X1]], %[[Y1]]
// CHECK-NEXT:      pipe.yield %[[Z1]] : tensor<2x8x32xf32>
// CHECK-NEXT:    }
// CHECK:         pipe.chunk layers [0, 2) private @c0(%{{.*}}: tensor<2x8x32xf32>, %{{.*}}: tensor<32x32xf32>) -> tensor<2x8x32xf32> attributes {weipipe.cost = 2 : i64} {
// CHECK:         pipe.chunk epilogue @head(%{{.*}}: tensor<2x8x32xf32>, %{{.*}}: tensor<32x64xf32>) -> (tensor<2x8x64xf32>, tensor<2x8x32xf32>) {
// CHECK:           pipe.yield %{{.*}}, %{{.*}} : tensor<2x8x64xf32>, tensor<2x8x32xf32>
pipe.model @gpt layers 4 {
  pipe.chunk prologue @embed(%ids: tensor<2x8xi64>, %wte: tensor<64x32xf32>) -> tensor<2x8x32xf32> {
    %h = nn.embedding %wte, %ids : (tensor<64x32xf32>, tensor<2x8xi64>) -> tensor<2x8x32xf32>
    pipe.yield %h : tensor<2x8x32xf32>
  }
  pipe.chunk layers [2, 4) @c1(%x: tensor<2x8x32xf32>, %w: tensor<32x32xf32>) -> tensor<2x8x32xf32> {
    %y = nn.matmul %x, %w : (tensor<2x8x32xf32>, tensor<32x32xf32>) -> tensor<2x8x32xf32>
    %z = nn.add %x, %y : (tensor<2x8x32xf32>, tensor<2x8x32xf32>) -> tensor<2x8x32xf32>
    pipe.yield %z : tensor<2x8x32xf32>
  }
  pipe.chunk layers [0, 2) private @c0(%x: tensor<2x8x32xf32>, %w: tensor<32x32xf32>) -> tensor<2x8x32xf32> attributes {weipipe.cost = 2} {
    %y = nn.matmul %x, %w : (tensor<2x8x32xf32>, tensor<32x32xf32>) -> tensor<2x8x32xf32>
    pipe.yield %y : tensor<2x8x32xf32>
  }
  pipe.chunk epilogue @head(%x: tensor<2x8x32xf32>, %w: tensor<32x64xf32>) -> (tensor<2x8x64xf32>, tensor<2x8x32xf32>) {
    %logits = nn.matmul %x, %w : (tensor<2x8x32xf32>, tensor<32x64xf32>) -> tensor<2x8x64xf32>
    pipe.yield %logits, %x : tensor<2x8x64xf32>, tensor<2x8x32xf32>
  }
}

// Tests that every program op and every slot kind round-trips, and that
// slots print under their labels.

// CHECK-LABEL: pipe.program @all_ops for @gpt rank 1 of 4 schedule "test" {
// CHECK-NEXT:    %F = pipe.slot "F" : !pipe.slot<weights>
// CHECK-NEXT:    %F.next = pipe.slot "F.next" : !pipe.slot<weights>
// CHECK-NEXT:    %D = pipe.slot "D" : !pipe.slot<grads>
// CHECK-NEXT:    %A = pipe.slot "A" : !pipe.slot<activations>
// CHECK-NEXT:    %dA = pipe.slot "dA" : !pipe.slot<activations>
// CHECK-NEXT:    pipe.load_master @c0 into(%F)
// CHECK-NEXT:    pipe.zero %D
// CHECK-NEXT:    pipe.swap %F, %F.next : !pipe.slot<weights>
// CHECK-NEXT:    pipe.forward @embed weights(%F) microbatch(1)
// CHECK-NEXT:    pipe.forward @c0 weights(%F) microbatch(5) in(%A) out(%dA)
// CHECK-NEXT:    pipe.forward @c1 weights(%F) microbatch(5) out(%A)
// CHECK-NEXT:    pipe.loss microbatch(1)
// CHECK-NEXT:    pipe.backward_input @c1 weights(%F) microbatch(1)
// CHECK-NEXT:    pipe.backward_input @c0 weights(%F) microbatch(1) in(%A) out(%dA)
// CHECK-NEXT:    pipe.backward_weight @c1 microbatch(1) accumulate(%D)
// CHECK-NEXT:    pipe.backward @c0 weights(%F) microbatch(1) accumulate(%D)
// CHECK-NEXT:    pipe.backward @head weights(%F) microbatch(0) accumulate(%D) in(%A)
// CHECK-NEXT:    pipe.optimizer_step @c0 grads(%D)
// CHECK-NEXT:    %[[S:.*]] = pipe.send %F, %D to 2 turn(5) : !pipe.slot<weights>, !pipe.slot<grads>
// CHECK-NEXT:    %[[R:.*]] = pipe.recv %F.next, %A from 0 turn(0) : !pipe.slot<weights>, !pipe.slot<activations>
// CHECK-NEXT:    pipe.wait %[[S]], %[[R]]
// CHECK-NEXT:    %[[S2:.*]] = pipe.send %dA to 3 turn(6) : !pipe.slot<activations>
// CHECK-NEXT:    pipe.wait %[[S2]]
// CHECK-NEXT:  }
pipe.program @all_ops for @gpt rank 1 of 4 schedule "test" {
  %f = pipe.slot "F" : !pipe.slot<weights>
  %f2 = pipe.slot "F.next" : !pipe.slot<weights>
  %d = pipe.slot "D" : !pipe.slot<grads>
  %a = pipe.slot "A" : !pipe.slot<activations>
  %da = pipe.slot "dA" : !pipe.slot<activations>
  pipe.load_master @c0 into(%f)
  pipe.zero %d
  pipe.swap %f, %f2 : !pipe.slot<weights>
  pipe.forward @embed weights(%f) microbatch(1)
  pipe.forward @c0 weights(%f) microbatch(5) in(%a) out(%da)
  pipe.forward @c1 weights(%f) microbatch(5) out(%a)
  pipe.loss microbatch(1)
  pipe.backward_input @c1 weights(%f) microbatch(1)
  pipe.backward_input @c0 weights(%f) microbatch(1) in(%a) out(%da)
  pipe.backward_weight @c1 microbatch(1) accumulate(%d)
  pipe.backward @c0 weights(%f) microbatch(1) accumulate(%d)
  pipe.backward @head weights(%f) microbatch(0) accumulate(%d) in(%a)
  pipe.optimizer_step @c0 grads(%d)
  %s = pipe.send %f, %d to 2 turn(5) : !pipe.slot<weights>, !pipe.slot<grads>
  %r = pipe.recv %f2, %a from 0 turn(0) : !pipe.slot<weights>, !pipe.slot<activations>
  pipe.wait %s, %r
  %s2 = pipe.send %da to 3 turn(6) : !pipe.slot<activations>
  pipe.wait %s2
}

// Tests that a program may be empty and that a single-rank program is valid.

// CHECK-LABEL: pipe.program @single for @gpt rank 0 of 1 schedule "single-rank" {
// CHECK-NEXT:  }
pipe.program @single for @gpt rank 0 of 1 schedule "single-rank" {
}

// Tests a realistic schedule: WeiPipe-Naive with P = 2 ranks, one chunk per
// layer, one micro-batch per rank (spec section 2.1). Chunk c is owned by rank
// (c + 1) mod 2. At turn t rank j holds F-slot W_f, B-slot W_(1-f) and D-slot
// D_(1-f) with f = (t - j) mod 2. Each turn receives the next turn's slots
// into spare buffers while computing, sends its own slots on, waits and swaps.
// Rank 0 runs micro-batch 0, rank 1 micro-batch 1.

// CHECK-LABEL: pipe.model @tiny layers 2 {
// CHECK:         pipe.chunk layers [0, 1) @c0(
// CHECK:         pipe.chunk layers [1, 2) @c1(
pipe.model @tiny layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<2x8x32xf32>, %w: tensor<32x32xf32>) -> tensor<2x8x32xf32> {
    %y = nn.matmul %x, %w : (tensor<2x8x32xf32>, tensor<32x32xf32>) -> tensor<2x8x32xf32>
    pipe.yield %y : tensor<2x8x32xf32>
  }
  pipe.chunk layers [1, 2) @c1(%x: tensor<2x8x32xf32>, %w: tensor<32x32xf32>) -> tensor<2x8x32xf32> {
    %y = nn.matmul %x, %w : (tensor<2x8x32xf32>, tensor<32x32xf32>) -> tensor<2x8x32xf32>
    pipe.yield %y : tensor<2x8x32xf32>
  }
}

// CHECK-LABEL: pipe.program @naive_rank0 for @tiny rank 0 of 2 schedule "weipipe-naive" {
// CHECK-NEXT:    %F = pipe.slot "F" : !pipe.slot<weights>
// CHECK-NEXT:    %B = pipe.slot "B" : !pipe.slot<weights>
// CHECK-NEXT:    %D = pipe.slot "D" : !pipe.slot<grads>
// CHECK-NEXT:    %F.next = pipe.slot "F.next" : !pipe.slot<weights>
// CHECK-NEXT:    %B.next = pipe.slot "B.next" : !pipe.slot<weights>
// CHECK-NEXT:    %D.next = pipe.slot "D.next" : !pipe.slot<grads>
// CHECK-NEXT:    pipe.load_master @c1 into(%B)
// CHECK-NEXT:    pipe.zero %D
// CHECK-NEXT:    %[[S0:.*]] = pipe.send %B to 1 turn(0) : !pipe.slot<weights>
// CHECK-NEXT:    %[[R0:.*]] = pipe.recv %F from 1 turn(0) : !pipe.slot<weights>
// CHECK-NEXT:    pipe.wait %[[S0]], %[[R0]]
// CHECK-NEXT:    %[[R1:.*]] = pipe.recv %F.next, %B.next, %D.next from 1 turn(1) : !pipe.slot<weights>, !pipe.slot<weights>, !pipe.slot<grads>
// CHECK-NEXT:    pipe.forward @c0 weights(%F) microbatch(0)
// CHECK-NEXT:    %[[S1:.*]] = pipe.send %F, %B, %D to 1 turn(1) : !pipe.slot<weights>, !pipe.slot<weights>, !pipe.slot<grads>
// CHECK-NEXT:    pipe.wait %[[S1]], %[[R1]]
// CHECK-NEXT:    pipe.swap %F, %F.next : !pipe.slot<weights>
// CHECK-NEXT:    pipe.swap %B, %B.next : !pipe.slot<weights>
// CHECK-NEXT:    pipe.swap %D, %D.next : !pipe.slot<grads>
// CHECK:         pipe.forward @c1 weights(%F) microbatch(0)
// CHECK-NEXT:    pipe.loss microbatch(0)
// CHECK:         pipe.backward @c1 weights(%B) microbatch(0) accumulate(%D)
// CHECK:         pipe.backward @c0 weights(%B) microbatch(0) accumulate(%D)
// CHECK:         pipe.send %F, %B, %D to 1 turn(4)
// CHECK:         pipe.swap %D, %D.next : !pipe.slot<grads>
// CHECK-NEXT:    pipe.optimizer_step @c1 grads(%D)
// CHECK-NEXT:  }
pipe.program @naive_rank0 for @tiny rank 0 of 2 schedule "weipipe-naive" {
  %F = pipe.slot "F" : !pipe.slot<weights>
  %B = pipe.slot "B" : !pipe.slot<weights>
  %D = pipe.slot "D" : !pipe.slot<grads>
  %Fn = pipe.slot "F.next" : !pipe.slot<weights>
  %Bn = pipe.slot "B.next" : !pipe.slot<weights>
  %Dn = pipe.slot "D.next" : !pipe.slot<grads>
  // Seeds: B is the own chunk c1; F (c0) comes from its owner, rank 1, which
  // gets c1 as its F seed in exchange; D starts at zero.
  pipe.load_master @c1 into(%B)
  pipe.zero %D
  %s0 = pipe.send %B to 1 turn(0) : !pipe.slot<weights>
  %r0 = pipe.recv %F from 1 turn(0) : !pipe.slot<weights>
  pipe.wait %s0, %r0
  // Turn 0: F = W0, B = W1, D = D1.
  %r1 = pipe.recv %Fn, %Bn, %Dn from 1 turn(1) : !pipe.slot<weights>, !pipe.slot<weights>, !pipe.slot<grads>
  pipe.forward @c0 weights(%F) microbatch(0)
  %s1 = pipe.send %F, %B, %D to 1 turn(1) : !pipe.slot<weights>, !pipe.slot<weights>, !pipe.slot<grads>
  pipe.wait %s1, %r1
  pipe.swap %F, %Fn : !pipe.slot<weights>
  pipe.swap %B, %Bn : !pipe.slot<weights>
  pipe.swap %D, %Dn : !pipe.slot<grads>
  // Turn 1: F = W1, B = W0, D = D0.
  %r2 = pipe.recv %Fn, %Bn, %Dn from 1 turn(2) : !pipe.slot<weights>, !pipe.slot<weights>, !pipe.slot<grads>
  pipe.forward @c1 weights(%F) microbatch(0)
  pipe.loss microbatch(0)
  %s2 = pipe.send %F, %B, %D to 1 turn(2) : !pipe.slot<weights>, !pipe.slot<weights>, !pipe.slot<grads>
  pipe.wait %s2, %r2
  pipe.swap %F, %Fn : !pipe.slot<weights>
  pipe.swap %B, %Bn : !pipe.slot<weights>
  pipe.swap %D, %Dn : !pipe.slot<grads>
  // Turn 2: F = W0, B = W1, D = D1.
  %r3 = pipe.recv %Fn, %Bn, %Dn from 1 turn(3) : !pipe.slot<weights>, !pipe.slot<weights>, !pipe.slot<grads>
  pipe.backward @c1 weights(%B) microbatch(0) accumulate(%D)
  %s3 = pipe.send %F, %B, %D to 1 turn(3) : !pipe.slot<weights>, !pipe.slot<weights>, !pipe.slot<grads>
  pipe.wait %s3, %r3
  pipe.swap %F, %Fn : !pipe.slot<weights>
  pipe.swap %B, %Bn : !pipe.slot<weights>
  pipe.swap %D, %Dn : !pipe.slot<grads>
  // Turn 3: F = W1, B = W0, D = D0.
  %r4 = pipe.recv %Fn, %Bn, %Dn from 1 turn(4) : !pipe.slot<weights>, !pipe.slot<weights>, !pipe.slot<grads>
  pipe.backward @c0 weights(%B) microbatch(0) accumulate(%D)
  %s4 = pipe.send %F, %B, %D to 1 turn(4) : !pipe.slot<weights>, !pipe.slot<weights>, !pipe.slot<grads>
  pipe.wait %s4, %r4
  pipe.swap %F, %Fn : !pipe.slot<weights>
  pipe.swap %B, %Bn : !pipe.slot<weights>
  pipe.swap %D, %Dn : !pipe.slot<grads>
  // Turn 4: D holds D1 with both ranks' contributions; rank 0 owns c1.
  pipe.optimizer_step @c1 grads(%D)
}

// CHECK-LABEL: pipe.program @naive_rank1 for @tiny rank 1 of 2 schedule "weipipe-naive" {
// CHECK:         pipe.load_master @c0 into(%B)
// CHECK:         pipe.forward @c0 weights(%F) microbatch(1)
// CHECK:         pipe.forward @c1 weights(%F) microbatch(1)
// CHECK-NEXT:    pipe.loss microbatch(1)
// CHECK:         pipe.backward @c1 weights(%B) microbatch(1) accumulate(%D)
// CHECK:         pipe.backward @c0 weights(%B) microbatch(1) accumulate(%D)
// CHECK-NEXT:    pipe.optimizer_step @c0 grads(%D)
// CHECK-NEXT:  }
pipe.program @naive_rank1 for @tiny rank 1 of 2 schedule "weipipe-naive" {
  %F = pipe.slot "F" : !pipe.slot<weights>
  %B = pipe.slot "B" : !pipe.slot<weights>
  %D = pipe.slot "D" : !pipe.slot<grads>
  %Fn = pipe.slot "F.next" : !pipe.slot<weights>
  %Bn = pipe.slot "B.next" : !pipe.slot<weights>
  %Dn = pipe.slot "D.next" : !pipe.slot<grads>
  // Seeds: B is the own chunk c0; F (c1) comes from rank 0.
  pipe.load_master @c0 into(%B)
  pipe.zero %D
  %s0 = pipe.send %B to 0 turn(0) : !pipe.slot<weights>
  %r0 = pipe.recv %F from 0 turn(0) : !pipe.slot<weights>
  pipe.wait %s0, %r0
  // Turn 0: F = W1, B = W0, D = D0; nothing to compute yet.
  %r1 = pipe.recv %Fn, %Bn, %Dn from 0 turn(1) : !pipe.slot<weights>, !pipe.slot<weights>, !pipe.slot<grads>
  %s1 = pipe.send %F, %B, %D to 0 turn(1) : !pipe.slot<weights>, !pipe.slot<weights>, !pipe.slot<grads>
  pipe.wait %s1, %r1
  pipe.swap %F, %Fn : !pipe.slot<weights>
  pipe.swap %B, %Bn : !pipe.slot<weights>
  pipe.swap %D, %Dn : !pipe.slot<grads>
  // Turn 1: F = W0, B = W1, D = D1.
  %r2 = pipe.recv %Fn, %Bn, %Dn from 0 turn(2) : !pipe.slot<weights>, !pipe.slot<weights>, !pipe.slot<grads>
  pipe.forward @c0 weights(%F) microbatch(1)
  %s2 = pipe.send %F, %B, %D to 0 turn(2) : !pipe.slot<weights>, !pipe.slot<weights>, !pipe.slot<grads>
  pipe.wait %s2, %r2
  pipe.swap %F, %Fn : !pipe.slot<weights>
  pipe.swap %B, %Bn : !pipe.slot<weights>
  pipe.swap %D, %Dn : !pipe.slot<grads>
  // Turn 2: F = W1, B = W0, D = D0.
  %r3 = pipe.recv %Fn, %Bn, %Dn from 0 turn(3) : !pipe.slot<weights>, !pipe.slot<weights>, !pipe.slot<grads>
  pipe.forward @c1 weights(%F) microbatch(1)
  pipe.loss microbatch(1)
  %s3 = pipe.send %F, %B, %D to 0 turn(3) : !pipe.slot<weights>, !pipe.slot<weights>, !pipe.slot<grads>
  pipe.wait %s3, %r3
  pipe.swap %F, %Fn : !pipe.slot<weights>
  pipe.swap %B, %Bn : !pipe.slot<weights>
  pipe.swap %D, %Dn : !pipe.slot<grads>
  // Turn 3: F = W0, B = W1, D = D1.
  %r4 = pipe.recv %Fn, %Bn, %Dn from 0 turn(4) : !pipe.slot<weights>, !pipe.slot<weights>, !pipe.slot<grads>
  pipe.backward @c1 weights(%B) microbatch(1) accumulate(%D)
  %s4 = pipe.send %F, %B, %D to 0 turn(4) : !pipe.slot<weights>, !pipe.slot<weights>, !pipe.slot<grads>
  pipe.wait %s4, %r4
  pipe.swap %F, %Fn : !pipe.slot<weights>
  pipe.swap %B, %Bn : !pipe.slot<weights>
  pipe.swap %D, %Dn : !pipe.slot<grads>
  // Turn 4: F = W1, B = W0, D = D0, which rank 0 filled at turn 3; after
  // this backward it is complete, and rank 1 owns c0.
  pipe.backward @c0 weights(%B) microbatch(1) accumulate(%D)
  pipe.optimizer_step @c0 grads(%D)
}

// Tests what a schedule adds to a program: its micro-batches, chunk owners
// and node size; pipe.zero naming the chunk it starts an accumulator of;
// pipe.add_into; and the turn of any step.

// CHECK-LABEL: pipe.program @scheduled for @tiny rank 1 of 2 schedule "fsdp" microbatches 4 owners [0, 1] node_size 2 {
// CHECK-NEXT:    %W = pipe.slot "W" : !pipe.slot<weights>
// CHECK-NEXT:    %Wn = pipe.slot "Wn" : !pipe.slot<weights>
// CHECK-NEXT:    %D = pipe.slot "D" : !pipe.slot<grads>
// CHECK-NEXT:    %R = pipe.slot "R" : !pipe.slot<grads>
// CHECK-NEXT:    pipe.load_master @c1 into(%W) turn(0)
// CHECK-NEXT:    pipe.zero @c1 %D
// CHECK-NEXT:    pipe.swap %W, %Wn turn(1) : !pipe.slot<weights>
// CHECK-NEXT:    pipe.forward @c1 weights(%W) microbatch(1) turn(2)
// CHECK-NEXT:    pipe.backward_input @c1 weights(%W) microbatch(1) turn(3)
// CHECK-NEXT:    pipe.backward_weight @c1 microbatch(1) accumulate(%D) turn(4)
// CHECK-NEXT:    pipe.backward @c1 weights(%W) microbatch(3) accumulate(%D) turn(5)
// CHECK-NEXT:    %[[R:.*]] = pipe.recv %R from 0 turn(6) : !pipe.slot<grads>
// CHECK-NEXT:    pipe.wait %[[R]] turn(7)
// CHECK-NEXT:    pipe.add_into @c1 %R into(%D) turn(8)
// CHECK-NEXT:    pipe.optimizer_step @c1 grads(%D) turn(9)
// CHECK-NEXT:  }
pipe.program @scheduled for @tiny rank 1 of 2 schedule "fsdp" microbatches 4 owners [0, 1] node_size 2 {
  %w = pipe.slot "W" : !pipe.slot<weights>
  %wn = pipe.slot "Wn" : !pipe.slot<weights>
  %d = pipe.slot "D" : !pipe.slot<grads>
  %r = pipe.slot "R" : !pipe.slot<grads>
  pipe.load_master @c1 into(%w) turn(0)
  pipe.zero @c1 %d
  pipe.swap %w, %wn turn(1) : !pipe.slot<weights>
  pipe.forward @c1 weights(%w) microbatch(1) turn(2)
  pipe.backward_input @c1 weights(%w) microbatch(1) turn(3)
  pipe.backward_weight @c1 microbatch(1) accumulate(%d) turn(4)
  pipe.backward @c1 weights(%w) microbatch(3) accumulate(%d) turn(5)
  %t = pipe.recv %r from 0 turn(6) : !pipe.slot<grads>
  pipe.wait %t turn(7)
  pipe.add_into @c1 %r into(%d) turn(8)
  pipe.optimizer_step @c1 grads(%d) turn(9)
}
