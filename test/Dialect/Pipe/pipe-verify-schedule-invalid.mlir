// RUN: weipipe-opt %s -split-input-file -pipe-verify-schedule=model=m -verify-diagnostics

// Hand-written schedules that pipe-verify-schedule rejects, one per rule, on
// two or three ranks: the error sits on the step that breaks the rule and
// says the rank, the step (counting the program's steps from 0, slots not
// counted) and why. Then the programs that are not one schedule at all.

// A valid program: FSDP on two ranks. Rank r owns chunk r and runs
// micro-batch r through both chunks: it fetches the other chunk's weights from
// its owner, sends that chunk's gradient back, and adds the partial gradient it
// receives into its own chunk's accumulator before stepping it.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
pipe.program @rank0 for @m rank 0 of 2 schedule "fsdp" microbatches 2 owners [0, 1] {
  %W0 = pipe.slot "W0" : !pipe.slot<weights>
  %W1 = pipe.slot "W1" : !pipe.slot<weights>
  %D0 = pipe.slot "D0" : !pipe.slot<grads>
  %D1 = pipe.slot "D1" : !pipe.slot<grads>
  %R = pipe.slot "R" : !pipe.slot<grads>
  pipe.load_master @c0 into(%W0)
  %s0 = pipe.send %W0 to 1 turn(0) : !pipe.slot<weights>
  %r0 = pipe.recv %W1 from 1 turn(0) : !pipe.slot<weights>
  pipe.zero @c0 %D0
  pipe.zero @c1 %D1
  pipe.wait %s0, %r0
  pipe.forward @c0 weights(%W0) microbatch(0) turn(1)
  pipe.forward @c1 weights(%W1) microbatch(0)
  pipe.backward @c1 weights(%W1) microbatch(0) accumulate(%D1) turn(2)
  pipe.backward @c0 weights(%W0) microbatch(0) accumulate(%D0)
  %s1 = pipe.send %D1 to 1 turn(3) : !pipe.slot<grads>
  %r1 = pipe.recv %R from 1 turn(3) : !pipe.slot<grads>
  pipe.wait %s1, %r1
  pipe.add_into @c0 %R into(%D0)
  pipe.optimizer_step @c0 grads(%D0)
}
pipe.program @rank1 for @m rank 1 of 2 schedule "fsdp" microbatches 2 owners [0, 1] {
  %W0 = pipe.slot "W0" : !pipe.slot<weights>
  %W1 = pipe.slot "W1" : !pipe.slot<weights>
  %D0 = pipe.slot "D0" : !pipe.slot<grads>
  %D1 = pipe.slot "D1" : !pipe.slot<grads>
  %R = pipe.slot "R" : !pipe.slot<grads>
  pipe.load_master @c1 into(%W1)
  %s0 = pipe.send %W1 to 0 turn(0) : !pipe.slot<weights>
  %r0 = pipe.recv %W0 from 0 turn(0) : !pipe.slot<weights>
  pipe.zero @c0 %D0
  pipe.zero @c1 %D1
  pipe.wait %s0, %r0
  pipe.forward @c0 weights(%W0) microbatch(1) turn(1)
  pipe.forward @c1 weights(%W1) microbatch(1)
  pipe.backward @c1 weights(%W1) microbatch(1) accumulate(%D1) turn(2)
  pipe.backward @c0 weights(%W0) microbatch(1) accumulate(%D0)
  %s1 = pipe.send %D0 to 0 turn(3) : !pipe.slot<grads>
  %r1 = pipe.recv %R from 0 turn(3) : !pipe.slot<grads>
  pipe.wait %s1, %r1
  pipe.add_into @c1 %R into(%D1)
  pipe.optimizer_step @c1 grads(%D1)
}

// -----

// A valid program: 1F1B on two ranks, one micro-batch. Rank 0 sends the
// activation of chunk 0 on and gets the activation gradient back.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
pipe.program @rank0 for @m rank 0 of 2 schedule "1f1b" microbatches 1 owners [0, 1] {
  %W = pipe.slot "W" : !pipe.slot<weights>
  %D = pipe.slot "D" : !pipe.slot<grads>
  %A = pipe.slot "A" : !pipe.slot<activations>
  %G = pipe.slot "G" : !pipe.slot<activations>
  pipe.load_master @c0 into(%W)
  pipe.zero @c0 %D
  pipe.forward @c0 weights(%W) microbatch(0) out(%A)
  %s = pipe.send %A to 1 turn(0) : !pipe.slot<activations>
  %r = pipe.recv %G from 1 turn(2) : !pipe.slot<activations>
  pipe.wait %s, %r
  pipe.backward @c0 weights(%W) microbatch(0) accumulate(%D) in(%G)
  pipe.optimizer_step @c0 grads(%D)
}
pipe.program @rank1 for @m rank 1 of 2 schedule "1f1b" microbatches 1 owners [0, 1] {
  %W = pipe.slot "W" : !pipe.slot<weights>
  %D = pipe.slot "D" : !pipe.slot<grads>
  %A = pipe.slot "A" : !pipe.slot<activations>
  %G = pipe.slot "G" : !pipe.slot<activations>
  pipe.load_master @c1 into(%W)
  pipe.zero @c1 %D
  %r = pipe.recv %A from 0 turn(1) : !pipe.slot<activations>
  pipe.wait %r
  pipe.forward @c1 weights(%W) microbatch(0) in(%A)
  pipe.backward @c1 weights(%W) microbatch(0) accumulate(%D) out(%G) turn(2)
  %s = pipe.send %G to 0 turn(2) : !pipe.slot<activations>
  pipe.wait %s
  pipe.optimizer_step @c1 grads(%D)
}

// -----

// An unmatched send: rank 0 sends its activation twice, rank 1 receives it once.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
pipe.program @rank0 for @m rank 0 of 2 schedule "1f1b" microbatches 1 owners [0, 1] {
  %W = pipe.slot "W" : !pipe.slot<weights>
  %D = pipe.slot "D" : !pipe.slot<grads>
  %A = pipe.slot "A" : !pipe.slot<activations>
  %G = pipe.slot "G" : !pipe.slot<activations>
  pipe.load_master @c0 into(%W)
  pipe.zero @c0 %D
  pipe.forward @c0 weights(%W) microbatch(0) out(%A)
  %s = pipe.send %A to 1 turn(0) : !pipe.slot<activations>
  // expected-error @+1 {{rank 0, step 4 (send to 1 at turn 0): no recv matches it: rank 1 posts 1 recv(s) from rank 0 for 2 send(s)}}
  %s2 = pipe.send %A to 1 turn(0) : !pipe.slot<activations>
  %r = pipe.recv %G from 1 turn(2) : !pipe.slot<activations>
  pipe.wait %s, %s2, %r
  pipe.backward @c0 weights(%W) microbatch(0) accumulate(%D) in(%G)
  pipe.optimizer_step @c0 grads(%D)
}
pipe.program @rank1 for @m rank 1 of 2 schedule "1f1b" microbatches 1 owners [0, 1] {
  %W = pipe.slot "W" : !pipe.slot<weights>
  %D = pipe.slot "D" : !pipe.slot<grads>
  %A = pipe.slot "A" : !pipe.slot<activations>
  %G = pipe.slot "G" : !pipe.slot<activations>
  pipe.load_master @c1 into(%W)
  pipe.zero @c1 %D
  %r = pipe.recv %A from 0 turn(1) : !pipe.slot<activations>
  pipe.wait %r
  pipe.forward @c1 weights(%W) microbatch(0) in(%A)
  pipe.backward @c1 weights(%W) microbatch(0) accumulate(%D) out(%G) turn(2)
  %s = pipe.send %G to 0 turn(2) : !pipe.slot<activations>
  pipe.wait %s
  pipe.optimizer_step @c1 grads(%D)
}

// -----

// A missing recv: rank 1 never receives the activation its forward reads.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
pipe.program @rank0 for @m rank 0 of 2 schedule "1f1b" microbatches 1 owners [0, 1] {
  %W = pipe.slot "W" : !pipe.slot<weights>
  %D = pipe.slot "D" : !pipe.slot<grads>
  %A = pipe.slot "A" : !pipe.slot<activations>
  %G = pipe.slot "G" : !pipe.slot<activations>
  pipe.load_master @c0 into(%W)
  pipe.zero @c0 %D
  pipe.forward @c0 weights(%W) microbatch(0) out(%A)
  %s = pipe.send %A to 1 turn(0) : !pipe.slot<activations>
  %r = pipe.recv %G from 1 turn(2) : !pipe.slot<activations>
  pipe.wait %s, %r
  pipe.backward @c0 weights(%W) microbatch(0) accumulate(%D) in(%G)
  pipe.optimizer_step @c0 grads(%D)
}
pipe.program @rank1 for @m rank 1 of 2 schedule "1f1b" microbatches 1 owners [0, 1] {
  %W = pipe.slot "W" : !pipe.slot<weights>
  %D = pipe.slot "D" : !pipe.slot<grads>
  %A = pipe.slot "A" : !pipe.slot<activations>
  %G = pipe.slot "G" : !pipe.slot<activations>
  pipe.load_master @c1 into(%W)
  pipe.zero @c1 %D
  // expected-error @+1 {{rank 1, step 2 (forward 1.0 at turn 0): in slot 'A' holds nothing, not the activation 0.0}}
  pipe.forward @c1 weights(%W) microbatch(0) in(%A)
  pipe.backward @c1 weights(%W) microbatch(0) accumulate(%D) out(%G) turn(2)
  %s = pipe.send %G to 0 turn(2) : !pipe.slot<activations>
  pipe.wait %s
  pipe.optimizer_step @c1 grads(%D)
}

// -----

// Sends out of order on a link, on two ranks, where a ring's next and
// previous rank are the same peer: rank 0 passes its forward slot F on (to its
// next rank) and then its accumulator D (to its previous rank), both rank 1;
// rank 1 posts the receive for D first. Only the first transfers are written:
// the verifier stops at the first violation.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
pipe.program @rank0 for @m rank 0 of 2 schedule "weipipe-interleave" microbatches 2 owners [0, 1] {
  %F = pipe.slot "F" : !pipe.slot<weights>
  %D = pipe.slot "D" : !pipe.slot<grads>
  pipe.load_master @c0 into(%F)
  pipe.zero @c0 %D
  %s0 = pipe.send %F to 1 turn(0) : !pipe.slot<weights>
  %s1 = pipe.send %D to 1 turn(0) : !pipe.slot<grads>
  pipe.wait %s0, %s1
}
pipe.program @rank1 for @m rank 1 of 2 schedule "weipipe-interleave" microbatches 2 owners [0, 1] {
  %Fn = pipe.slot "Fn" : !pipe.slot<weights>
  %Dn = pipe.slot "Dn" : !pipe.slot<grads>
  // expected-error @+1 {{rank 1, step 0 (recv from 0 at turn 0): the 1st message from rank 0 to rank 1 carries weights (its send is rank 0, step 2), but this recv expects grads}}
  %r0 = pipe.recv %Dn from 0 turn(0) : !pipe.slot<grads>
  %r1 = pipe.recv %Fn from 0 turn(0) : !pipe.slot<weights>
  pipe.wait %r0, %r1
}

// -----

// Sends out of order on a link, with messages of one kind: rank 0 sends the
// activation of micro-batch 1 before that of micro-batch 0, so rank 1's first
// receive gets micro-batch 1. Only the forwards are written.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
pipe.program @rank0 for @m rank 0 of 2 schedule "gpipe" microbatches 2 owners [0, 1] {
  %W = pipe.slot "W" : !pipe.slot<weights>
  %A0 = pipe.slot "A0" : !pipe.slot<activations>
  %A1 = pipe.slot "A1" : !pipe.slot<activations>
  pipe.load_master @c0 into(%W)
  pipe.forward @c0 weights(%W) microbatch(0) out(%A0)
  pipe.forward @c0 weights(%W) microbatch(1) out(%A1) turn(1)
  %s1 = pipe.send %A1 to 1 turn(1) : !pipe.slot<activations>
  %s0 = pipe.send %A0 to 1 turn(1) : !pipe.slot<activations>
  pipe.wait %s0, %s1
}
pipe.program @rank1 for @m rank 1 of 2 schedule "gpipe" microbatches 2 owners [0, 1] {
  %W = pipe.slot "W" : !pipe.slot<weights>
  %A0 = pipe.slot "A0" : !pipe.slot<activations>
  %A1 = pipe.slot "A1" : !pipe.slot<activations>
  pipe.load_master @c1 into(%W)
  %r0 = pipe.recv %A0 from 0 turn(1) : !pipe.slot<activations>
  %r1 = pipe.recv %A1 from 0 turn(2) : !pipe.slot<activations>
  pipe.wait %r0, %r1
  // expected-error @+1 {{rank 1, step 4 (forward 1.0 at turn 2): in slot 'A0' holds the activation 0.1, not the activation 0.0}}
  pipe.forward @c1 weights(%W) microbatch(0) in(%A0)
  pipe.forward @c1 weights(%W) microbatch(1) in(%A1)
}

// -----

// A deadlock cycle of receives on a ring of three ranks: each rank waits for
// its previous rank's chunk before it sends its own on.

pipe.model @m layers 3 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [2, 3) @c2(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
pipe.program @rank0 for @m rank 0 of 3 schedule "weipipe-naive" microbatches 3 owners [0, 1, 2] {
  %W = pipe.slot "W" : !pipe.slot<weights>
  %Wn = pipe.slot "Wn" : !pipe.slot<weights>
  pipe.load_master @c0 into(%W)
  %r = pipe.recv %Wn from 2 turn(1) : !pipe.slot<weights>
  // expected-error @+1 {{rank 0, step 2 (wait at turn 1): deadlock, every unfinished rank is blocked: this rank waits for the 1st message from rank 2, which has sent 0 to it; rank 1 at step 2 (turn 1) waits for the 1st message from rank 0, which has sent 0 to it; rank 2 at step 2 (turn 1) waits for the 1st message from rank 1, which has sent 0 to it}}
  pipe.wait %r
  %s = pipe.send %W to 1 turn(1) : !pipe.slot<weights>
  pipe.wait %s
}
pipe.program @rank1 for @m rank 1 of 3 schedule "weipipe-naive" microbatches 3 owners [0, 1, 2] {
  %W = pipe.slot "W" : !pipe.slot<weights>
  %Wn = pipe.slot "Wn" : !pipe.slot<weights>
  pipe.load_master @c1 into(%W)
  %r = pipe.recv %Wn from 0 turn(1) : !pipe.slot<weights>
  pipe.wait %r
  %s = pipe.send %W to 2 turn(1) : !pipe.slot<weights>
  pipe.wait %s
}
pipe.program @rank2 for @m rank 2 of 3 schedule "weipipe-naive" microbatches 3 owners [0, 1, 2] {
  %W = pipe.slot "W" : !pipe.slot<weights>
  %Wn = pipe.slot "Wn" : !pipe.slot<weights>
  pipe.load_master @c2 into(%W)
  %r = pipe.recv %Wn from 1 turn(1) : !pipe.slot<weights>
  pipe.wait %r
  %s = pipe.send %W to 0 turn(1) : !pipe.slot<weights>
  pipe.wait %s
}

// -----

// A forward with the wrong chunk's weights.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
pipe.program @rank0 for @m rank 0 of 2 schedule "fsdp" microbatches 2 owners [0, 1] {
  %W0 = pipe.slot "W0" : !pipe.slot<weights>
  %W1 = pipe.slot "W1" : !pipe.slot<weights>
  %D0 = pipe.slot "D0" : !pipe.slot<grads>
  %D1 = pipe.slot "D1" : !pipe.slot<grads>
  %R = pipe.slot "R" : !pipe.slot<grads>
  pipe.load_master @c0 into(%W0)
  %s0 = pipe.send %W0 to 1 turn(0) : !pipe.slot<weights>
  %r0 = pipe.recv %W1 from 1 turn(0) : !pipe.slot<weights>
  pipe.zero @c0 %D0
  pipe.zero @c1 %D1
  pipe.wait %s0, %r0
  pipe.forward @c0 weights(%W0) microbatch(0) turn(1)
  // expected-error @+1 {{rank 0, step 7 (forward 1.0 at turn 1): weights slot 'W0' holds the weights of chunk 0, not the weights of chunk 1}}
  pipe.forward @c1 weights(%W0) microbatch(0)
  pipe.backward @c1 weights(%W1) microbatch(0) accumulate(%D1) turn(2)
  pipe.backward @c0 weights(%W0) microbatch(0) accumulate(%D0)
  %s1 = pipe.send %D1 to 1 turn(3) : !pipe.slot<grads>
  %r1 = pipe.recv %R from 1 turn(3) : !pipe.slot<grads>
  pipe.wait %s1, %r1
  pipe.add_into @c0 %R into(%D0)
  pipe.optimizer_step @c0 grads(%D0)
}
pipe.program @rank1 for @m rank 1 of 2 schedule "fsdp" microbatches 2 owners [0, 1] {
  %W0 = pipe.slot "W0" : !pipe.slot<weights>
  %W1 = pipe.slot "W1" : !pipe.slot<weights>
  %D0 = pipe.slot "D0" : !pipe.slot<grads>
  %D1 = pipe.slot "D1" : !pipe.slot<grads>
  %R = pipe.slot "R" : !pipe.slot<grads>
  pipe.load_master @c1 into(%W1)
  %s0 = pipe.send %W1 to 0 turn(0) : !pipe.slot<weights>
  %r0 = pipe.recv %W0 from 0 turn(0) : !pipe.slot<weights>
  pipe.zero @c0 %D0
  pipe.zero @c1 %D1
  pipe.wait %s0, %r0
  pipe.forward @c0 weights(%W0) microbatch(1) turn(1)
  pipe.forward @c1 weights(%W1) microbatch(1)
  pipe.backward @c1 weights(%W1) microbatch(1) accumulate(%D1) turn(2)
  pipe.backward @c0 weights(%W0) microbatch(1) accumulate(%D0)
  %s1 = pipe.send %D0 to 0 turn(3) : !pipe.slot<grads>
  %r1 = pipe.recv %R from 0 turn(3) : !pipe.slot<grads>
  pipe.wait %s1, %r1
  pipe.add_into @c1 %R into(%D1)
  pipe.optimizer_step @c1 grads(%D1)
}

// -----

// A backward before its forward.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
pipe.program @rank0 for @m rank 0 of 2 schedule "fsdp" microbatches 2 owners [0, 1] {
  %W0 = pipe.slot "W0" : !pipe.slot<weights>
  %W1 = pipe.slot "W1" : !pipe.slot<weights>
  %D0 = pipe.slot "D0" : !pipe.slot<grads>
  %D1 = pipe.slot "D1" : !pipe.slot<grads>
  %R = pipe.slot "R" : !pipe.slot<grads>
  pipe.load_master @c0 into(%W0)
  %s0 = pipe.send %W0 to 1 turn(0) : !pipe.slot<weights>
  %r0 = pipe.recv %W1 from 1 turn(0) : !pipe.slot<weights>
  pipe.zero @c0 %D0
  pipe.zero @c1 %D1
  pipe.wait %s0, %r0
  pipe.forward @c0 weights(%W0) microbatch(0) turn(1)
  // expected-error @+1 {{rank 0, step 7 (backward 1.0 at turn 1): the backward of 1.0 must run where its forward ran, but F 1.0 has not run before it}}
  pipe.backward @c1 weights(%W1) microbatch(0) accumulate(%D1)
  pipe.forward @c1 weights(%W1) microbatch(0) turn(2)
  pipe.backward @c0 weights(%W0) microbatch(0) accumulate(%D0)
  %s1 = pipe.send %D1 to 1 turn(3) : !pipe.slot<grads>
  %r1 = pipe.recv %R from 1 turn(3) : !pipe.slot<grads>
  pipe.wait %s1, %r1
  pipe.add_into @c0 %R into(%D0)
  pipe.optimizer_step @c0 grads(%D0)
}
pipe.program @rank1 for @m rank 1 of 2 schedule "fsdp" microbatches 2 owners [0, 1] {
  %W0 = pipe.slot "W0" : !pipe.slot<weights>
  %W1 = pipe.slot "W1" : !pipe.slot<weights>
  %D0 = pipe.slot "D0" : !pipe.slot<grads>
  %D1 = pipe.slot "D1" : !pipe.slot<grads>
  %R = pipe.slot "R" : !pipe.slot<grads>
  pipe.load_master @c1 into(%W1)
  %s0 = pipe.send %W1 to 0 turn(0) : !pipe.slot<weights>
  %r0 = pipe.recv %W0 from 0 turn(0) : !pipe.slot<weights>
  pipe.zero @c0 %D0
  pipe.zero @c1 %D1
  pipe.wait %s0, %r0
  pipe.forward @c0 weights(%W0) microbatch(1) turn(1)
  pipe.forward @c1 weights(%W1) microbatch(1)
  pipe.backward @c1 weights(%W1) microbatch(1) accumulate(%D1) turn(2)
  pipe.backward @c0 weights(%W0) microbatch(1) accumulate(%D0)
  %s1 = pipe.send %D0 to 0 turn(3) : !pipe.slot<grads>
  %r1 = pipe.recv %R from 0 turn(3) : !pipe.slot<grads>
  pipe.wait %s1, %r1
  pipe.add_into @c1 %R into(%D1)
  pipe.optimizer_step @c1 grads(%D1)
}

// -----

// A backward on another rank than its forward: rank 0 sends chunk 0's weights
// along with the activation, and rank 1 runs chunk 0's backward too; but the
// activations that backward needs stayed on rank 0.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
pipe.program @rank0 for @m rank 0 of 2 schedule "1f1b" microbatches 1 owners [0, 1] {
  %W = pipe.slot "W" : !pipe.slot<weights>
  %D = pipe.slot "D" : !pipe.slot<grads>
  %A = pipe.slot "A" : !pipe.slot<activations>
  %G = pipe.slot "G" : !pipe.slot<activations>
  pipe.load_master @c0 into(%W)
  pipe.zero @c0 %D
  pipe.forward @c0 weights(%W) microbatch(0) out(%A)
  %s = pipe.send %W, %A to 1 turn(0) : !pipe.slot<weights>, !pipe.slot<activations>
  %r = pipe.recv %G from 1 turn(2) : !pipe.slot<activations>
  pipe.wait %s, %r
  pipe.backward @c0 weights(%W) microbatch(0) accumulate(%D) in(%G)
  pipe.optimizer_step @c0 grads(%D)
}
pipe.program @rank1 for @m rank 1 of 2 schedule "1f1b" microbatches 1 owners [0, 1] {
  %W = pipe.slot "W" : !pipe.slot<weights>
  %D = pipe.slot "D" : !pipe.slot<grads>
  %A = pipe.slot "A" : !pipe.slot<activations>
  %G = pipe.slot "G" : !pipe.slot<activations>
  pipe.load_master @c1 into(%W)
  pipe.zero @c1 %D
  %W0 = pipe.slot "W0" : !pipe.slot<weights>
  %D0 = pipe.slot "D0" : !pipe.slot<grads>
  %r = pipe.recv %W0, %A from 0 turn(1) : !pipe.slot<weights>, !pipe.slot<activations>
  pipe.wait %r
  pipe.forward @c1 weights(%W) microbatch(0) in(%A)
  pipe.backward @c1 weights(%W) microbatch(0) accumulate(%D) out(%G) turn(2)
  pipe.zero @c0 %D0
  // expected-error @+1 {{rank 1, step 7 (backward 0.0 at turn 2): the backward of 0.0 must run where its forward ran, but F 0.0 ran on rank 0}}
  pipe.backward @c0 weights(%W0) microbatch(0) accumulate(%D0) in(%G)
  pipe.optimizer_step @c1 grads(%D)
}

// -----

// A weight gradient accumulated twice: rank 0 adds rank 1's partial gradient in twice.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
pipe.program @rank0 for @m rank 0 of 2 schedule "fsdp" microbatches 2 owners [0, 1] {
  %W0 = pipe.slot "W0" : !pipe.slot<weights>
  %W1 = pipe.slot "W1" : !pipe.slot<weights>
  %D0 = pipe.slot "D0" : !pipe.slot<grads>
  %D1 = pipe.slot "D1" : !pipe.slot<grads>
  %R = pipe.slot "R" : !pipe.slot<grads>
  pipe.load_master @c0 into(%W0)
  %s0 = pipe.send %W0 to 1 turn(0) : !pipe.slot<weights>
  %r0 = pipe.recv %W1 from 1 turn(0) : !pipe.slot<weights>
  pipe.zero @c0 %D0
  pipe.zero @c1 %D1
  pipe.wait %s0, %r0
  pipe.forward @c0 weights(%W0) microbatch(0) turn(1)
  pipe.forward @c1 weights(%W1) microbatch(0)
  pipe.backward @c1 weights(%W1) microbatch(0) accumulate(%D1) turn(2)
  pipe.backward @c0 weights(%W0) microbatch(0) accumulate(%D0)
  %s1 = pipe.send %D1 to 1 turn(3) : !pipe.slot<grads>
  %r1 = pipe.recv %R from 1 turn(3) : !pipe.slot<grads>
  pipe.wait %s1, %r1
  pipe.add_into @c0 %R into(%D0)
  // expected-error @+1 {{rank 0, step 14 (add_into 0 at turn 3): micro-batch 1 of chunk 0 is in both slot 'D0' and slot 'R' (its gradient would count twice)}}
  pipe.add_into @c0 %R into(%D0)
  pipe.optimizer_step @c0 grads(%D0)
}
pipe.program @rank1 for @m rank 1 of 2 schedule "fsdp" microbatches 2 owners [0, 1] {
  %W0 = pipe.slot "W0" : !pipe.slot<weights>
  %W1 = pipe.slot "W1" : !pipe.slot<weights>
  %D0 = pipe.slot "D0" : !pipe.slot<grads>
  %D1 = pipe.slot "D1" : !pipe.slot<grads>
  %R = pipe.slot "R" : !pipe.slot<grads>
  pipe.load_master @c1 into(%W1)
  %s0 = pipe.send %W1 to 0 turn(0) : !pipe.slot<weights>
  %r0 = pipe.recv %W0 from 0 turn(0) : !pipe.slot<weights>
  pipe.zero @c0 %D0
  pipe.zero @c1 %D1
  pipe.wait %s0, %r0
  pipe.forward @c0 weights(%W0) microbatch(1) turn(1)
  pipe.forward @c1 weights(%W1) microbatch(1)
  pipe.backward @c1 weights(%W1) microbatch(1) accumulate(%D1) turn(2)
  pipe.backward @c0 weights(%W0) microbatch(1) accumulate(%D0)
  %s1 = pipe.send %D0 to 0 turn(3) : !pipe.slot<grads>
  %r1 = pipe.recv %R from 0 turn(3) : !pipe.slot<grads>
  pipe.wait %s1, %r1
  pipe.add_into @c1 %R into(%D1)
  pipe.optimizer_step @c1 grads(%D1)
}

// -----

// A weight gradient never accumulated: rank 0 receives rank 1's partial gradient but does not add it in.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
pipe.program @rank0 for @m rank 0 of 2 schedule "fsdp" microbatches 2 owners [0, 1] {
  %W0 = pipe.slot "W0" : !pipe.slot<weights>
  %W1 = pipe.slot "W1" : !pipe.slot<weights>
  %D0 = pipe.slot "D0" : !pipe.slot<grads>
  %D1 = pipe.slot "D1" : !pipe.slot<grads>
  %R = pipe.slot "R" : !pipe.slot<grads>
  pipe.load_master @c0 into(%W0)
  %s0 = pipe.send %W0 to 1 turn(0) : !pipe.slot<weights>
  %r0 = pipe.recv %W1 from 1 turn(0) : !pipe.slot<weights>
  pipe.zero @c0 %D0
  pipe.zero @c1 %D1
  pipe.wait %s0, %r0
  pipe.forward @c0 weights(%W0) microbatch(0) turn(1)
  pipe.forward @c1 weights(%W1) microbatch(0)
  pipe.backward @c1 weights(%W1) microbatch(0) accumulate(%D1) turn(2)
  pipe.backward @c0 weights(%W0) microbatch(0) accumulate(%D0)
  %s1 = pipe.send %D1 to 1 turn(3) : !pipe.slot<grads>
  %r1 = pipe.recv %R from 1 turn(3) : !pipe.slot<grads>
  pipe.wait %s1, %r1
  // expected-error @+1 {{rank 0, step 13 (optimizer_step 0 at turn 3): the accumulator of chunk 0 in slot 'D0' holds 1 of 2 micro-batches (micro-batch 1 is missing)}}
  pipe.optimizer_step @c0 grads(%D0)
}
pipe.program @rank1 for @m rank 1 of 2 schedule "fsdp" microbatches 2 owners [0, 1] {
  %W0 = pipe.slot "W0" : !pipe.slot<weights>
  %W1 = pipe.slot "W1" : !pipe.slot<weights>
  %D0 = pipe.slot "D0" : !pipe.slot<grads>
  %D1 = pipe.slot "D1" : !pipe.slot<grads>
  %R = pipe.slot "R" : !pipe.slot<grads>
  pipe.load_master @c1 into(%W1)
  %s0 = pipe.send %W1 to 0 turn(0) : !pipe.slot<weights>
  %r0 = pipe.recv %W0 from 0 turn(0) : !pipe.slot<weights>
  pipe.zero @c0 %D0
  pipe.zero @c1 %D1
  pipe.wait %s0, %r0
  pipe.forward @c0 weights(%W0) microbatch(1) turn(1)
  pipe.forward @c1 weights(%W1) microbatch(1)
  pipe.backward @c1 weights(%W1) microbatch(1) accumulate(%D1) turn(2)
  pipe.backward @c0 weights(%W0) microbatch(1) accumulate(%D0)
  %s1 = pipe.send %D0 to 0 turn(3) : !pipe.slot<grads>
  %r1 = pipe.recv %R from 0 turn(3) : !pipe.slot<grads>
  pipe.wait %s1, %r1
  pipe.add_into @c1 %R into(%D1)
  pipe.optimizer_step @c1 grads(%D1)
}

// -----

// An optimizer step missing: rank 1 never steps chunk 1. The error concerns
// the schedule as a whole and goes on rank 0's program.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
// expected-error @+1 {{schedule: chunk 1 is never stepped (its owner is rank 1)}}
pipe.program @rank0 for @m rank 0 of 2 schedule "fsdp" microbatches 2 owners [0, 1] {
  %W0 = pipe.slot "W0" : !pipe.slot<weights>
  %W1 = pipe.slot "W1" : !pipe.slot<weights>
  %D0 = pipe.slot "D0" : !pipe.slot<grads>
  %D1 = pipe.slot "D1" : !pipe.slot<grads>
  %R = pipe.slot "R" : !pipe.slot<grads>
  pipe.load_master @c0 into(%W0)
  %s0 = pipe.send %W0 to 1 turn(0) : !pipe.slot<weights>
  %r0 = pipe.recv %W1 from 1 turn(0) : !pipe.slot<weights>
  pipe.zero @c0 %D0
  pipe.zero @c1 %D1
  pipe.wait %s0, %r0
  pipe.forward @c0 weights(%W0) microbatch(0) turn(1)
  pipe.forward @c1 weights(%W1) microbatch(0)
  pipe.backward @c1 weights(%W1) microbatch(0) accumulate(%D1) turn(2)
  pipe.backward @c0 weights(%W0) microbatch(0) accumulate(%D0)
  %s1 = pipe.send %D1 to 1 turn(3) : !pipe.slot<grads>
  %r1 = pipe.recv %R from 1 turn(3) : !pipe.slot<grads>
  pipe.wait %s1, %r1
  pipe.add_into @c0 %R into(%D0)
  pipe.optimizer_step @c0 grads(%D0)
}
pipe.program @rank1 for @m rank 1 of 2 schedule "fsdp" microbatches 2 owners [0, 1] {
  %W0 = pipe.slot "W0" : !pipe.slot<weights>
  %W1 = pipe.slot "W1" : !pipe.slot<weights>
  %D0 = pipe.slot "D0" : !pipe.slot<grads>
  %D1 = pipe.slot "D1" : !pipe.slot<grads>
  %R = pipe.slot "R" : !pipe.slot<grads>
  pipe.load_master @c1 into(%W1)
  %s0 = pipe.send %W1 to 0 turn(0) : !pipe.slot<weights>
  %r0 = pipe.recv %W0 from 0 turn(0) : !pipe.slot<weights>
  pipe.zero @c0 %D0
  pipe.zero @c1 %D1
  pipe.wait %s0, %r0
  pipe.forward @c0 weights(%W0) microbatch(1) turn(1)
  pipe.forward @c1 weights(%W1) microbatch(1)
  pipe.backward @c1 weights(%W1) microbatch(1) accumulate(%D1) turn(2)
  pipe.backward @c0 weights(%W0) microbatch(1) accumulate(%D0)
  %s1 = pipe.send %D0 to 0 turn(3) : !pipe.slot<grads>
  %r1 = pipe.recv %R from 0 turn(3) : !pipe.slot<grads>
  pipe.wait %s1, %r1
  pipe.add_into @c1 %R into(%D1)
}

// -----

// An optimizer step on a rank that does not own the chunk.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
pipe.program @rank0 for @m rank 0 of 2 schedule "fsdp" microbatches 2 owners [0, 1] {
  %W0 = pipe.slot "W0" : !pipe.slot<weights>
  %W1 = pipe.slot "W1" : !pipe.slot<weights>
  %D0 = pipe.slot "D0" : !pipe.slot<grads>
  %D1 = pipe.slot "D1" : !pipe.slot<grads>
  %R = pipe.slot "R" : !pipe.slot<grads>
  pipe.load_master @c0 into(%W0)
  %s0 = pipe.send %W0 to 1 turn(0) : !pipe.slot<weights>
  %r0 = pipe.recv %W1 from 1 turn(0) : !pipe.slot<weights>
  pipe.zero @c0 %D0
  pipe.zero @c1 %D1
  pipe.wait %s0, %r0
  pipe.forward @c0 weights(%W0) microbatch(0) turn(1)
  pipe.forward @c1 weights(%W1) microbatch(0)
  pipe.backward @c1 weights(%W1) microbatch(0) accumulate(%D1) turn(2)
  pipe.backward @c0 weights(%W0) microbatch(0) accumulate(%D0)
  %s1 = pipe.send %D1 to 1 turn(3) : !pipe.slot<grads>
  %r1 = pipe.recv %R from 1 turn(3) : !pipe.slot<grads>
  pipe.wait %s1, %r1
  pipe.add_into @c0 %R into(%D0)
  pipe.optimizer_step @c0 grads(%D0)
}
pipe.program @rank1 for @m rank 1 of 2 schedule "fsdp" microbatches 2 owners [0, 1] {
  %W0 = pipe.slot "W0" : !pipe.slot<weights>
  %W1 = pipe.slot "W1" : !pipe.slot<weights>
  %D0 = pipe.slot "D0" : !pipe.slot<grads>
  %D1 = pipe.slot "D1" : !pipe.slot<grads>
  %R = pipe.slot "R" : !pipe.slot<grads>
  pipe.load_master @c1 into(%W1)
  %s0 = pipe.send %W1 to 0 turn(0) : !pipe.slot<weights>
  %r0 = pipe.recv %W0 from 0 turn(0) : !pipe.slot<weights>
  pipe.zero @c0 %D0
  pipe.zero @c1 %D1
  pipe.wait %s0, %r0
  pipe.forward @c0 weights(%W0) microbatch(1) turn(1)
  pipe.forward @c1 weights(%W1) microbatch(1)
  pipe.backward @c1 weights(%W1) microbatch(1) accumulate(%D1) turn(2)
  pipe.backward @c0 weights(%W0) microbatch(1) accumulate(%D0)
  // expected-error @+1 {{rank 1, step 10 (optimizer_step 0 at turn 2): steps chunk 0, whose master rank 0 owns (only the owner steps a chunk)}}
  pipe.optimizer_step @c0 grads(%D0)
  %s1 = pipe.send %D0 to 0 turn(3) : !pipe.slot<grads>
  %r1 = pipe.recv %R from 0 turn(3) : !pipe.slot<grads>
  pipe.wait %s1, %r1
  pipe.add_into @c1 %R into(%D1)
  pipe.optimizer_step @c1 grads(%D1)
}

// -----

// A load of another rank's master: rank 1 loads chunk 0 instead of receiving it from its owner.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
pipe.program @rank0 for @m rank 0 of 2 schedule "fsdp" microbatches 2 owners [0, 1] {
  %W0 = pipe.slot "W0" : !pipe.slot<weights>
  %W1 = pipe.slot "W1" : !pipe.slot<weights>
  %D0 = pipe.slot "D0" : !pipe.slot<grads>
  %D1 = pipe.slot "D1" : !pipe.slot<grads>
  %R = pipe.slot "R" : !pipe.slot<grads>
  pipe.load_master @c0 into(%W0)
  %r0 = pipe.recv %W1 from 1 turn(0) : !pipe.slot<weights>
  pipe.zero @c0 %D0
  pipe.zero @c1 %D1
  pipe.wait %r0
  pipe.forward @c0 weights(%W0) microbatch(0) turn(1)
  pipe.forward @c1 weights(%W1) microbatch(0)
  pipe.backward @c1 weights(%W1) microbatch(0) accumulate(%D1) turn(2)
  pipe.backward @c0 weights(%W0) microbatch(0) accumulate(%D0)
  %s1 = pipe.send %D1 to 1 turn(3) : !pipe.slot<grads>
  %r1 = pipe.recv %R from 1 turn(3) : !pipe.slot<grads>
  pipe.wait %s1, %r1
  pipe.add_into @c0 %R into(%D0)
  pipe.optimizer_step @c0 grads(%D0)
}
pipe.program @rank1 for @m rank 1 of 2 schedule "fsdp" microbatches 2 owners [0, 1] {
  %W0 = pipe.slot "W0" : !pipe.slot<weights>
  %W1 = pipe.slot "W1" : !pipe.slot<weights>
  %D0 = pipe.slot "D0" : !pipe.slot<grads>
  %D1 = pipe.slot "D1" : !pipe.slot<grads>
  %R = pipe.slot "R" : !pipe.slot<grads>
  pipe.load_master @c1 into(%W1)
  %s0 = pipe.send %W1 to 0 turn(0) : !pipe.slot<weights>
  pipe.zero @c0 %D0
  pipe.zero @c1 %D1
  // expected-error @+1 {{rank 1, step 4 (load_master 0 at turn 0): loads the master of chunk 0, which rank 0 owns (a rank loads only its own chunks)}}
  pipe.load_master @c0 into(%W0)
  pipe.wait %s0
  pipe.forward @c0 weights(%W0) microbatch(1) turn(1)
  pipe.forward @c1 weights(%W1) microbatch(1)
  pipe.backward @c1 weights(%W1) microbatch(1) accumulate(%D1) turn(2)
  pipe.backward @c0 weights(%W0) microbatch(1) accumulate(%D0)
  %s1 = pipe.send %D0 to 0 turn(3) : !pipe.slot<grads>
  %r1 = pipe.recv %R from 0 turn(3) : !pipe.slot<grads>
  pipe.wait %s1, %r1
  pipe.add_into @c1 %R into(%D1)
  pipe.optimizer_step @c1 grads(%D1)
}

// -----

// A write into a slot under an unwaited send: rank 0 reuses D1 as the buffer
// for rank 1's partial gradient while D1 is still being sent.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
pipe.program @rank0 for @m rank 0 of 2 schedule "fsdp" microbatches 2 owners [0, 1] {
  %W0 = pipe.slot "W0" : !pipe.slot<weights>
  %W1 = pipe.slot "W1" : !pipe.slot<weights>
  %D0 = pipe.slot "D0" : !pipe.slot<grads>
  %D1 = pipe.slot "D1" : !pipe.slot<grads>
  %R = pipe.slot "R" : !pipe.slot<grads>
  pipe.load_master @c0 into(%W0)
  %s0 = pipe.send %W0 to 1 turn(0) : !pipe.slot<weights>
  %r0 = pipe.recv %W1 from 1 turn(0) : !pipe.slot<weights>
  pipe.zero @c0 %D0
  pipe.zero @c1 %D1
  pipe.wait %s0, %r0
  pipe.forward @c0 weights(%W0) microbatch(0) turn(1)
  pipe.forward @c1 weights(%W1) microbatch(0)
  pipe.backward @c1 weights(%W1) microbatch(0) accumulate(%D1) turn(2)
  pipe.backward @c0 weights(%W0) microbatch(0) accumulate(%D0)
  %s1 = pipe.send %D1 to 1 turn(3) : !pipe.slot<grads>
  // expected-error @+1 {{rank 0, step 11 (recv from 1 at turn 3): writes slot 'D1' while a send from it (step 10) is not waited}}
  %r1 = pipe.recv %D1 from 1 turn(3) : !pipe.slot<grads>
  pipe.wait %s1, %r1
  pipe.add_into @c0 %D1 into(%D0)
  pipe.optimizer_step @c0 grads(%D0)
}
pipe.program @rank1 for @m rank 1 of 2 schedule "fsdp" microbatches 2 owners [0, 1] {
  %W0 = pipe.slot "W0" : !pipe.slot<weights>
  %W1 = pipe.slot "W1" : !pipe.slot<weights>
  %D0 = pipe.slot "D0" : !pipe.slot<grads>
  %D1 = pipe.slot "D1" : !pipe.slot<grads>
  %R = pipe.slot "R" : !pipe.slot<grads>
  pipe.load_master @c1 into(%W1)
  %s0 = pipe.send %W1 to 0 turn(0) : !pipe.slot<weights>
  %r0 = pipe.recv %W0 from 0 turn(0) : !pipe.slot<weights>
  pipe.zero @c0 %D0
  pipe.zero @c1 %D1
  pipe.wait %s0, %r0
  pipe.forward @c0 weights(%W0) microbatch(1) turn(1)
  pipe.forward @c1 weights(%W1) microbatch(1)
  pipe.backward @c1 weights(%W1) microbatch(1) accumulate(%D1) turn(2)
  pipe.backward @c0 weights(%W0) microbatch(1) accumulate(%D0)
  %s1 = pipe.send %D0 to 0 turn(3) : !pipe.slot<grads>
  %r1 = pipe.recv %R from 0 turn(3) : !pipe.slot<grads>
  pipe.wait %s1, %r1
  pipe.add_into @c1 %R into(%D1)
  pipe.optimizer_step @c1 grads(%D1)
}

// -----

// A read of a slot under an unwaited recv: rank 0 runs chunk 1 before its weights have arrived.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
pipe.program @rank0 for @m rank 0 of 2 schedule "fsdp" microbatches 2 owners [0, 1] {
  %W0 = pipe.slot "W0" : !pipe.slot<weights>
  %W1 = pipe.slot "W1" : !pipe.slot<weights>
  %D0 = pipe.slot "D0" : !pipe.slot<grads>
  %D1 = pipe.slot "D1" : !pipe.slot<grads>
  %R = pipe.slot "R" : !pipe.slot<grads>
  pipe.load_master @c0 into(%W0)
  %s0 = pipe.send %W0 to 1 turn(0) : !pipe.slot<weights>
  %r0 = pipe.recv %W1 from 1 turn(0) : !pipe.slot<weights>
  pipe.zero @c0 %D0
  pipe.zero @c1 %D1
  pipe.forward @c0 weights(%W0) microbatch(0) turn(1)
  // expected-error @+1 {{rank 0, step 6 (forward 1.0 at turn 1): reads slot 'W1' while the recv into it (step 2) is not waited}}
  pipe.forward @c1 weights(%W1) microbatch(0)
  pipe.wait %s0, %r0
  pipe.backward @c1 weights(%W1) microbatch(0) accumulate(%D1) turn(2)
  pipe.backward @c0 weights(%W0) microbatch(0) accumulate(%D0)
  %s1 = pipe.send %D1 to 1 turn(3) : !pipe.slot<grads>
  %r1 = pipe.recv %R from 1 turn(3) : !pipe.slot<grads>
  pipe.wait %s1, %r1
  pipe.add_into @c0 %R into(%D0)
  pipe.optimizer_step @c0 grads(%D0)
}
pipe.program @rank1 for @m rank 1 of 2 schedule "fsdp" microbatches 2 owners [0, 1] {
  %W0 = pipe.slot "W0" : !pipe.slot<weights>
  %W1 = pipe.slot "W1" : !pipe.slot<weights>
  %D0 = pipe.slot "D0" : !pipe.slot<grads>
  %D1 = pipe.slot "D1" : !pipe.slot<grads>
  %R = pipe.slot "R" : !pipe.slot<grads>
  pipe.load_master @c1 into(%W1)
  %s0 = pipe.send %W1 to 0 turn(0) : !pipe.slot<weights>
  %r0 = pipe.recv %W0 from 0 turn(0) : !pipe.slot<weights>
  pipe.zero @c0 %D0
  pipe.zero @c1 %D1
  pipe.wait %s0, %r0
  pipe.forward @c0 weights(%W0) microbatch(1) turn(1)
  pipe.forward @c1 weights(%W1) microbatch(1)
  pipe.backward @c1 weights(%W1) microbatch(1) accumulate(%D1) turn(2)
  pipe.backward @c0 weights(%W0) microbatch(1) accumulate(%D0)
  %s1 = pipe.send %D0 to 0 turn(3) : !pipe.slot<grads>
  %r1 = pipe.recv %R from 0 turn(3) : !pipe.slot<grads>
  pipe.wait %s1, %r1
  pipe.add_into @c1 %R into(%D1)
  pipe.optimizer_step @c1 grads(%D1)
}

// -----

// A weight-gradient step (W) before its backward-input step (B).

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
pipe.program @rank0 for @m rank 0 of 2 schedule "1f1b" microbatches 1 owners [0, 1] {
  %W = pipe.slot "W" : !pipe.slot<weights>
  %D = pipe.slot "D" : !pipe.slot<grads>
  %A = pipe.slot "A" : !pipe.slot<activations>
  %G = pipe.slot "G" : !pipe.slot<activations>
  pipe.load_master @c0 into(%W)
  pipe.zero @c0 %D
  pipe.forward @c0 weights(%W) microbatch(0) out(%A)
  %s = pipe.send %A to 1 turn(0) : !pipe.slot<activations>
  %r = pipe.recv %G from 1 turn(2) : !pipe.slot<activations>
  pipe.wait %s, %r
  pipe.backward @c0 weights(%W) microbatch(0) accumulate(%D) in(%G)
  pipe.optimizer_step @c0 grads(%D)
}
pipe.program @rank1 for @m rank 1 of 2 schedule "1f1b" microbatches 1 owners [0, 1] {
  %W = pipe.slot "W" : !pipe.slot<weights>
  %D = pipe.slot "D" : !pipe.slot<grads>
  %A = pipe.slot "A" : !pipe.slot<activations>
  %G = pipe.slot "G" : !pipe.slot<activations>
  pipe.load_master @c1 into(%W)
  pipe.zero @c1 %D
  %r = pipe.recv %A from 0 turn(1) : !pipe.slot<activations>
  pipe.wait %r
  pipe.forward @c1 weights(%W) microbatch(0) in(%A)
  // expected-error @+1 {{rank 1, step 5 (backward_weight 1.0 at turn 2): W 1.0 needs B 1.0 on this rank first, but it has not run}}
  pipe.backward_weight @c1 microbatch(0) accumulate(%D) turn(2)
  pipe.backward_input @c1 weights(%W) microbatch(0) out(%G)
  %s = pipe.send %G to 0 turn(2) : !pipe.slot<activations>
  pipe.wait %s
  pipe.optimizer_step @c1 grads(%D)
}

// -----

// A transfer whose token is never waited.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
pipe.program @rank0 for @m rank 0 of 2 schedule "1f1b" microbatches 1 owners [0, 1] {
  %W = pipe.slot "W" : !pipe.slot<weights>
  %D = pipe.slot "D" : !pipe.slot<grads>
  %A = pipe.slot "A" : !pipe.slot<activations>
  %G = pipe.slot "G" : !pipe.slot<activations>
  pipe.load_master @c0 into(%W)
  pipe.zero @c0 %D
  pipe.forward @c0 weights(%W) microbatch(0) out(%A)
  %s = pipe.send %A to 1 turn(0) : !pipe.slot<activations>
  %r = pipe.recv %G from 1 turn(2) : !pipe.slot<activations>
  pipe.wait %s, %r
  pipe.backward @c0 weights(%W) microbatch(0) accumulate(%D) in(%G)
  pipe.optimizer_step @c0 grads(%D)
}
pipe.program @rank1 for @m rank 1 of 2 schedule "1f1b" microbatches 1 owners [0, 1] {
  %W = pipe.slot "W" : !pipe.slot<weights>
  %D = pipe.slot "D" : !pipe.slot<grads>
  %A = pipe.slot "A" : !pipe.slot<activations>
  %G = pipe.slot "G" : !pipe.slot<activations>
  pipe.load_master @c1 into(%W)
  pipe.zero @c1 %D
  %r = pipe.recv %A from 0 turn(1) : !pipe.slot<activations>
  pipe.wait %r
  pipe.forward @c1 weights(%W) microbatch(0) in(%A)
  pipe.backward @c1 weights(%W) microbatch(0) accumulate(%D) out(%G) turn(2)
  // expected-error @+1 {{rank 1, step 6 (send to 0 at turn 2): its token 1 is never waited}}
  %s = pipe.send %G to 0 turn(2) : !pipe.slot<activations>
  pipe.optimizer_step @c1 grads(%D)
}

// -----

// Turns go back within a program.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
pipe.program @rank0 for @m rank 0 of 2 schedule "1f1b" microbatches 1 owners [0, 1] {
  %W = pipe.slot "W" : !pipe.slot<weights>
  %D = pipe.slot "D" : !pipe.slot<grads>
  %A = pipe.slot "A" : !pipe.slot<activations>
  %G = pipe.slot "G" : !pipe.slot<activations>
  pipe.load_master @c0 into(%W)
  pipe.zero @c0 %D
  pipe.forward @c0 weights(%W) microbatch(0) out(%A)
  %s = pipe.send %A to 1 turn(0) : !pipe.slot<activations>
  %r = pipe.recv %G from 1 turn(2) : !pipe.slot<activations>
  pipe.wait %s, %r
  pipe.backward @c0 weights(%W) microbatch(0) accumulate(%D) in(%G)
  pipe.optimizer_step @c0 grads(%D)
}
pipe.program @rank1 for @m rank 1 of 2 schedule "1f1b" microbatches 1 owners [0, 1] {
  %W = pipe.slot "W" : !pipe.slot<weights>
  %D = pipe.slot "D" : !pipe.slot<grads>
  %A = pipe.slot "A" : !pipe.slot<activations>
  %G = pipe.slot "G" : !pipe.slot<activations>
  pipe.load_master @c1 into(%W)
  pipe.zero @c1 %D
  %r = pipe.recv %A from 0 turn(1) : !pipe.slot<activations>
  pipe.wait %r
  pipe.forward @c1 weights(%W) microbatch(0) in(%A)
  pipe.backward @c1 weights(%W) microbatch(0) accumulate(%D) out(%G) turn(2)
  // expected-error @+1 {{rank 1, step 6 (send to 0 at turn 1): turn goes back from 2}}
  %s = pipe.send %G to 0 turn(1) : !pipe.slot<activations>
  pipe.wait %s
  pipe.optimizer_step @c1 grads(%D)
}

// -----

// A micro-batch the iteration does not have.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
pipe.program @rank0 for @m rank 0 of 2 schedule "1f1b" microbatches 1 owners [0, 1] {
  %W = pipe.slot "W" : !pipe.slot<weights>
  %D = pipe.slot "D" : !pipe.slot<grads>
  %A = pipe.slot "A" : !pipe.slot<activations>
  %G = pipe.slot "G" : !pipe.slot<activations>
  pipe.load_master @c0 into(%W)
  pipe.zero @c0 %D
  pipe.forward @c0 weights(%W) microbatch(0) out(%A)
  %s = pipe.send %A to 1 turn(0) : !pipe.slot<activations>
  %r = pipe.recv %G from 1 turn(2) : !pipe.slot<activations>
  pipe.wait %s, %r
  pipe.backward @c0 weights(%W) microbatch(0) accumulate(%D) in(%G)
  pipe.optimizer_step @c0 grads(%D)
}
pipe.program @rank1 for @m rank 1 of 2 schedule "1f1b" microbatches 1 owners [0, 1] {
  %W = pipe.slot "W" : !pipe.slot<weights>
  %D = pipe.slot "D" : !pipe.slot<grads>
  %A = pipe.slot "A" : !pipe.slot<activations>
  %G = pipe.slot "G" : !pipe.slot<activations>
  pipe.load_master @c1 into(%W)
  pipe.zero @c1 %D
  %r = pipe.recv %A from 0 turn(1) : !pipe.slot<activations>
  pipe.wait %r
  // expected-error @+1 {{rank 1, step 4 (forward 1.2 at turn 1): micro-batch 2 is not in [0, 1)}}
  pipe.forward @c1 weights(%W) microbatch(2) in(%A)
  pipe.backward @c1 weights(%W) microbatch(0) accumulate(%D) out(%G) turn(2)
  %s = pipe.send %G to 0 turn(2) : !pipe.slot<activations>
  pipe.wait %s
  pipe.optimizer_step @c1 grads(%D)
}

// -----

// A micro-batch that no rank runs: here nothing runs at all. The error
// concerns the schedule as a whole and goes on rank 0's program.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
// expected-error @+1 {{schedule: chunk 0, micro-batch 0: no rank runs its forward (F)}}
pipe.program @rank0 for @m rank 0 of 2 schedule "test" microbatches 1 owners [0, 1] {
}
pipe.program @rank1 for @m rank 1 of 2 schedule "test" microbatches 1 owners [0, 1] {
}

// -----

// A schedule must have a program for every rank.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
// expected-error @+1 {{the test schedule of @m runs on 2 ranks, but no program is for rank 1}}
pipe.program @rank0 for @m rank 0 of 2 schedule "test" microbatches 1 owners [0, 1] {
}

// -----

// A rank has one program.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
// expected-note @+1 {{the first, @rank0}}
pipe.program @rank0 for @m rank 0 of 2 schedule "test" microbatches 1 owners [0, 1] {
}
pipe.program @rank1 for @m rank 1 of 2 schedule "test" microbatches 1 owners [0, 1] {
}
// expected-error @+1 {{is a second program for rank 0 of @m}}
pipe.program @again for @m rank 0 of 2 schedule "test" microbatches 1 owners [0, 1] {
}

// -----

// The programs of a schedule agree on the number of ranks.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
// expected-note @+1 {{@rank0}}
pipe.program @rank0 for @m rank 0 of 2 schedule "test" microbatches 1 owners [0, 1] {
}
// expected-error @+1 {{disagrees with @rank0 on the schedule's number of ranks; the programs of one schedule share it}}
pipe.program @rank1 for @m rank 1 of 3 schedule "test" microbatches 1 owners [0, 1] {
}

// -----

// The programs of a schedule agree on its name.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
// expected-note @+1 {{@rank0}}
pipe.program @rank0 for @m rank 0 of 2 schedule "test" microbatches 1 owners [0, 1] {
}
// expected-error @+1 {{disagrees with @rank0 on the schedule's name}}
pipe.program @rank1 for @m rank 1 of 2 schedule "1f1b" microbatches 1 owners [0, 1] {
}

// -----

// The programs of a schedule agree on the owners.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
// expected-note @+1 {{@rank0}}
pipe.program @rank0 for @m rank 0 of 2 schedule "test" microbatches 1 owners [0, 1] {
}
// expected-error @+1 {{disagrees with @rank0 on the schedule's owners}}
pipe.program @rank1 for @m rank 1 of 2 schedule "test" microbatches 1 owners [1, 0] {
}

// -----

// A program of a schedule says how many micro-batches an iteration runs.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
// expected-error @+1 {{says no `microbatches`}}
pipe.program @rank0 for @m rank 0 of 2 schedule "test"  owners [0, 1] {
}
pipe.program @rank1 for @m rank 1 of 2 schedule "test" microbatches 1 owners [0, 1] {
}

// -----

// A program of a schedule says who owns each chunk.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
// expected-error @+1 {{says no `owners`}}
pipe.program @rank0 for @m rank 0 of 2 schedule "test" microbatches 1  {
}
pipe.program @rank1 for @m rank 1 of 2 schedule "test" microbatches 1  {
}

// -----

// The owners list one rank per layers chunk.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
// expected-error @+1 {{lists 3 owners, but @m has 2 layers chunks (one owner per layers chunk, in layer order)}}
pipe.program @rank0 for @m rank 0 of 2 schedule "test" microbatches 1 owners [0, 1, 1] {
}
pipe.program @rank1 for @m rank 1 of 2 schedule "test" microbatches 1 owners [0, 1, 1] {
}

// -----

// A schedule places layers chunks only: the runtime runs the prologue and the
// epilogue next to the first and the last layers chunk.

pipe.model @m layers 2 {
  // expected-note @+1 {{chunk @embed}}
  pipe.chunk prologue @embed(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
pipe.program @rank0 for @m rank 0 of 2 schedule "test" microbatches 1 owners [0, 1] {
  %W = pipe.slot "W" : !pipe.slot<weights>
  // expected-error @+1 {{names the prologue chunk @embed, but a schedule places layers chunks only}}
  pipe.forward @embed weights(%W) microbatch(0)
}
pipe.program @rank1 for @m rank 1 of 2 schedule "test" microbatches 1 owners [0, 1] {
}

// -----

// A schedule has no pipe.loss: the runtime computes the loss with the epilogue.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
pipe.program @rank0 for @m rank 0 of 2 schedule "test" microbatches 1 owners [0, 1] {
  // expected-error @+1 {{has no place in a schedule}}
  pipe.loss microbatch(0)
}
pipe.program @rank1 for @m rank 1 of 2 schedule "test" microbatches 1 owners [0, 1] {
}

// -----

// A pipe.zero in a schedule names the chunk whose accumulator it starts.

pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
  pipe.chunk layers [1, 2) @c1(%x: tensor<4xf32>) -> tensor<4xf32> { pipe.yield %x : tensor<4xf32> }
}
pipe.program @rank0 for @m rank 0 of 2 schedule "test" microbatches 1 owners [0, 1] {
  %D = pipe.slot "D" : !pipe.slot<grads>
  // expected-error @+1 {{needs a chunk in a schedule}}
  pipe.zero %D
}
pipe.program @rank1 for @m rank 1 of 2 schedule "test" microbatches 1 owners [0, 1] {
}
