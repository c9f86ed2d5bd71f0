// RUN: weipipe-opt %s -pipe-schedule="ranks=2 microbatches=2" | FileCheck %s --check-prefix=WEI
// RUN: weipipe-opt %s -pipe-schedule="schedule=1f1b ranks=2 microbatches=2" | FileCheck %s --check-prefix=OFOB
// RUN: weipipe-opt %s -pipe-schedule="ranks=2 microbatches=2" -pipe-verify-schedule --verify-roundtrip -o /dev/null
// RUN: weipipe-opt %s -pipe-schedule="ranks=2 microbatches=2" | weipipe-opt -pipe-verify-schedule -o /dev/null
// RUN: weipipe-opt %s -pipe-schedule="schedule=1f1b ranks=2 microbatches=2" | weipipe-opt -pipe-verify-schedule | FileCheck %s --check-prefix=OFOB
// RUN: not weipipe-opt %s -pipe-schedule="ranks=4 microbatches=4" 2>&1 | FileCheck %s --check-prefix=CHUNKS
// RUN: not weipipe-opt %s -pipe-schedule="schedule=interleaved-1f1b chunks-per-rank=2 ranks=2 microbatches=2" 2>&1 | FileCheck %s --check-prefix=INTERLEAVED
// RUN: not weipipe-opt %s -pipe-schedule="ranks=2 microbatches=3" 2>&1 | FileCheck %s --check-prefix=DIVISIBLE
// RUN: not weipipe-opt %s -pipe-schedule="schedule=2f2b ranks=2" 2>&1 | FileCheck %s --check-prefix=UNKNOWN
// RUN: not weipipe-opt %s -pipe-schedule="ranks=2 microbatches=2" -pipe-schedule="schedule=1f1b ranks=2 microbatches=2" 2>&1 | FileCheck %s --check-prefix=TWICE
// RUN: not weipipe-opt %s -pipe-schedule="model=gpt ranks=2" 2>&1 | FileCheck %s --check-prefix=NOMODEL
// RUN: not weipipe-opt %s -pipe-verify-schedule 2>&1 | FileCheck %s --check-prefix=NOPROGRAM

// A model of two layers chunks (and a prologue and an epilogue, which no
// schedule places), scheduled on two ranks with two micro-batches.
pipe.model @main_model layers 2 {
  pipe.chunk prologue @embed(%ids: tensor<2x4xi64>, %wte: tensor<16x8xf32>) -> tensor<2x4x8xf32> {
    %h = nn.embedding %wte, %ids : (tensor<16x8xf32>, tensor<2x4xi64>) -> tensor<2x4x8xf32>
    pipe.yield %h : tensor<2x4x8xf32>
  }
  pipe.chunk layers [0, 1) @c0(%x: tensor<2x4x8xf32>, %w: tensor<8x8xf32>) -> tensor<2x4x8xf32> {
    %y = nn.matmul %x, %w : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
    pipe.yield %y : tensor<2x4x8xf32>
  }
  pipe.chunk layers [1, 2) @c1(%x: tensor<2x4x8xf32>, %w: tensor<8x8xf32>) -> tensor<2x4x8xf32> {
    %y = nn.matmul %x, %w : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
    pipe.yield %y : tensor<2x4x8xf32>
  }
  pipe.chunk epilogue @head(%x: tensor<2x4x8xf32>, %w: tensor<8x16xf32>) -> tensor<2x4x16xf32> {
    %l = nn.matmul %x, %w : (tensor<2x4x8xf32>, tensor<8x16xf32>) -> tensor<2x4x16xf32>
    pipe.yield %l : tensor<2x4x16xf32>
  }
}

// WeiPipe-Interleave: chunk c's master is on rank (c + 1) mod 2. Each rank
// seeds its backward slot B with its own master and exchanges it for the
// other rank's, which becomes its forward slot F. Every turn then posts the
// receives of the next turn into the spare slots (Fn, Bn, Dn), computes,
// sends its slots on, waits and swaps. Rank 0 runs micro-batch 0 forward at
// turns 0 and 1; rank 1, one turn later, micro-batch 1. The gradient
// accumulator D travels with B and ends on the chunk's owner.
// WEI-LABEL: pipe.program @rank0 for @main_model rank 0 of 2 schedule "weipipe-interleave" microbatches 2 owners [1, 0] {
// WEI-NEXT:    %F = pipe.slot "F" : !pipe.slot<weights>
// WEI-NEXT:    %Fn = pipe.slot "Fn" : !pipe.slot<weights>
// WEI-NEXT:    %B = pipe.slot "B" : !pipe.slot<weights>
// WEI-NEXT:    %Bn = pipe.slot "Bn" : !pipe.slot<weights>
// WEI-NEXT:    %D = pipe.slot "D" : !pipe.slot<grads>
// WEI-NEXT:    %Dn = pipe.slot "Dn" : !pipe.slot<grads>
// WEI-NEXT:    pipe.load_master @c1 into(%B)
// WEI-NEXT:    %[[S:.*]] = pipe.send %B to 1 turn(0) : !pipe.slot<weights>
// WEI-NEXT:    %[[R:.*]] = pipe.recv %F from 1 turn(0) : !pipe.slot<weights>
// WEI-NEXT:    pipe.wait %[[S]], %[[R]]
// WEI-NEXT:    pipe.zero @c1 %D
// WEI-NEXT:    %[[R0:.*]] = pipe.recv %Fn from 1 turn(0) : !pipe.slot<weights>
// WEI-NEXT:    pipe.forward @c0 weights(%F) microbatch(0)
// WEI-NEXT:    %[[S0:.*]] = pipe.send %F to 1 turn(0) : !pipe.slot<weights>
// WEI-NEXT:    pipe.wait %[[R0]], %[[S0]]
// WEI-NEXT:    pipe.swap %F, %Fn : !pipe.slot<weights>
// WEI-NEXT:    %[[R1:.*]] = pipe.recv %Fn from 1 turn(1) : !pipe.slot<weights>
// WEI-NEXT:    pipe.forward @c1 weights(%F) microbatch(0)
// WEI-NEXT:    %[[S1:.*]] = pipe.send %F to 1 turn(1) : !pipe.slot<weights>
// WEI-NEXT:    pipe.wait %[[R1]], %[[S1]]
// WEI-NEXT:    pipe.swap %F, %Fn : !pipe.slot<weights>
// WEI-NEXT:    %[[RB:.*]] = pipe.recv %Bn from 1 turn(2) : !pipe.slot<weights>
// WEI-NEXT:    %[[RD:.*]] = pipe.recv %Dn from 1 turn(2) : !pipe.slot<grads>
// WEI-NEXT:    pipe.backward @c1 weights(%B) microbatch(0) accumulate(%D)
// WEI:         pipe.optimizer_step @c1 grads(%D)
// WEI-NEXT:  }
// WEI-LABEL: pipe.program @rank1 for @main_model rank 1 of 2 schedule "weipipe-interleave" microbatches 2 owners [1, 0] {
// WEI:         pipe.load_master @c0 into(%B)
// WEI-NEXT:    %[[S:.*]] = pipe.send %B to 0 turn(0) : !pipe.slot<weights>
// WEI-NEXT:    %[[R:.*]] = pipe.recv %F from 0 turn(0) : !pipe.slot<weights>
// WEI-NEXT:    pipe.wait %[[S]], %[[R]]
// WEI-NEXT:    pipe.zero @c0 %D
// WEI-NEXT:    %[[R0:.*]] = pipe.recv %Fn from 0 turn(0) : !pipe.slot<weights>
// WEI-NEXT:    %[[S0:.*]] = pipe.send %F to 0 turn(0) : !pipe.slot<weights>
// WEI-NEXT:    pipe.wait %[[R0]], %[[S0]]
// WEI-NEXT:    pipe.swap %F, %Fn : !pipe.slot<weights>
// WEI-NEXT:    %[[R1:.*]] = pipe.recv %Fn from 0 turn(1) : !pipe.slot<weights>
// WEI-NEXT:    pipe.forward @c0 weights(%F) microbatch(1)
// WEI:         pipe.optimizer_step @c0 grads(%D)
// WEI-NEXT:  }

// 1F1B: rank r holds chunk r and steps it; activations go forward in Aout
// slots, their gradients come back into Ain slots. A step without a turn is
// in the turn of the step before it.
// OFOB-LABEL: pipe.program @rank0 for @main_model rank 0 of 2 schedule "1f1b" microbatches 2 owners [0, 1] {
// OFOB-NEXT:    %W0 = pipe.slot "W0" : !pipe.slot<weights>
// OFOB-NEXT:    %D0 = pipe.slot "D0" : !pipe.slot<grads>
// OFOB-NEXT:    %Aout0 = pipe.slot "Aout0" : !pipe.slot<activations>
// OFOB-NEXT:    %Ain0 = pipe.slot "Ain0" : !pipe.slot<activations>
// OFOB-NEXT:    %Aout1 = pipe.slot "Aout1" : !pipe.slot<activations>
// OFOB-NEXT:    %Ain1 = pipe.slot "Ain1" : !pipe.slot<activations>
// OFOB-NEXT:    pipe.load_master @c0 into(%W0)
// OFOB-NEXT:    pipe.zero @c0 %D0
// OFOB-NEXT:    pipe.forward @c0 weights(%W0) microbatch(0) out(%Aout0)
// OFOB-NEXT:    %[[S0:.*]] = pipe.send %Aout0 to 1 turn(0) : !pipe.slot<activations>
// OFOB-NEXT:    %[[R0:.*]] = pipe.recv %Ain0 from 1 turn(1) : !pipe.slot<activations>
// OFOB-NEXT:    pipe.forward @c0 weights(%W0) microbatch(1) out(%Aout1)
// OFOB-NEXT:    %[[S1:.*]] = pipe.send %Aout1 to 1 turn(1) : !pipe.slot<activations>
// OFOB-NEXT:    %[[R1:.*]] = pipe.recv %Ain1 from 1 turn(3) : !pipe.slot<activations>
// OFOB-NEXT:    pipe.wait %[[R0]]
// OFOB-NEXT:    pipe.backward @c0 weights(%W0) microbatch(0) accumulate(%D0) in(%Ain0)
// OFOB-NEXT:    pipe.wait %[[R1]] turn(5)
// OFOB-NEXT:    pipe.backward @c0 weights(%W0) microbatch(1) accumulate(%D0) in(%Ain1)
// OFOB-NEXT:    pipe.wait %[[S0]], %[[S1]]
// OFOB-NEXT:    pipe.optimizer_step @c0 grads(%D0)
// OFOB-NEXT:  }
// OFOB-LABEL: pipe.program @rank1 for @main_model rank 1 of 2 schedule "1f1b" microbatches 2 owners [0, 1] {
// OFOB:         pipe.load_master @c1 into(%W1)
// OFOB-NEXT:    pipe.zero @c1 %D1
// OFOB-NEXT:    %[[R0:.*]] = pipe.recv %Ain0 from 0 turn(1) : !pipe.slot<activations>
// OFOB-NEXT:    pipe.wait %[[R0]]
// OFOB-NEXT:    pipe.forward @c1 weights(%W1) microbatch(0) in(%Ain0)
// OFOB-NEXT:    %[[R1:.*]] = pipe.recv %Ain0 from 0 turn(2) : !pipe.slot<activations>
// OFOB-NEXT:    pipe.backward @c1 weights(%W1) microbatch(0) accumulate(%D1) out(%Aout0)
// OFOB-NEXT:    %[[S0:.*]] = pipe.send %Aout0 to 0 turn(2) : !pipe.slot<activations>
// OFOB-NEXT:    pipe.wait %[[R1]] turn(3)
// OFOB-NEXT:    pipe.forward @c1 weights(%W1) microbatch(1) in(%Ain0)
// OFOB-NEXT:    pipe.backward @c1 weights(%W1) microbatch(1) accumulate(%D1) out(%Aout1) turn(4)
// OFOB-NEXT:    %[[S1:.*]] = pipe.send %Aout1 to 0 turn(4) : !pipe.slot<activations>
// OFOB-NEXT:    pipe.wait %[[S0]], %[[S1]] turn(5)
// OFOB-NEXT:    pipe.optimizer_step @c1 grads(%D1)
// OFOB-NEXT:  }

// CHUNKS: error: pipe-schedule: the model has 2 layer chunks, weipipe-interleave on 4 ranks needs 4: run pipe-build-model{chunks=4}
// INTERLEAVED: error: pipe-schedule: the model has 2 layer chunks, interleaved-1f1b with 2 chunks per rank on 2 ranks needs 4: run pipe-build-model{chunks=4}
// DIVISIBLE: error: pipe-schedule: weipipe-interleave: needs microbatches divisible by ranks (got 3 micro-batches on 2 ranks); use a multiple of 2
// UNKNOWN: error: pipe-schedule: unknown schedule '2f2b'; known schedules: single, gpipe, 1f1b,
// TWICE: error: pipe-schedule: @main_model is already scheduled
// TWICE: note: @rank0 runs it
// NOMODEL: error: pipe-schedule: no pipe.model 'gpt'
// NOPROGRAM: error: no pipe.program runs @main_model
