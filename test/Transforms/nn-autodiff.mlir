// RUN: weipipe-opt %s -split-input-file -nn-autodiff -verify-diagnostics | FileCheck %s
// RUN: weipipe-opt %s -split-input-file -nn-autodiff=recompute -verify-diagnostics | FileCheck %s --check-prefix=RECOMPUTE

// A tiny tied language model: embedding, a biased linear, layer_norm, and the
// head reading the embedding again (transposed). The forward returns the loss
// and what the backward needs; B computes activation gradients only; W the
// weight gradients; the tied table accumulates twice (embedding and head).

// CHECK-LABEL: func.func @main_forward(%arg0: tensor<2x8xi64> {nn.name = "input_ids"}, %arg1: tensor<2x8xi64> {nn.name = "targets"})
// CHECK-SAME: -> (tensor<f32>, tensor<2x8xi64>, tensor<2x8xi64>, tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x64xf32>)
// CHECK-SAME: nn.autodiff = "forward", nn.autodiff_of = "main", nn.saved = 6
// CHECK: nn.embedding
// CHECK: nn.linear
// CHECK: nn.layer_norm
// CHECK: %[[LOGITS:.*]] = nn.linear %{{.*}}, %{{.*}} {transpose_weight = true}
// CHECK: %[[LOSS:.*]] = nn.cross_entropy %[[LOGITS]], %arg1
// CHECK: return %[[LOSS]], %arg0, %arg1, %{{.*}}, %{{.*}}, %{{.*}}, %[[LOGITS]]

// The fused backward: input gradients flow down, weight gradients accumulate.
// CHECK-LABEL: func.func @main_backward(
// CHECK-SAME: %arg6: tensor<f32>)
// CHECK-SAME: nn.autodiff = "backward", nn.autodiff_of = "main", nn.recompute = false, nn.saved = 6
// CHECK: %[[DL:.*]] = nn.cross_entropy_grad %arg5, %arg1, %arg6
// CHECK: %[[DH:.*]] = nn.linear %[[DL]], %{{.*}} {transpose_weight = false}
// CHECK: %[[GH:.*]] = nn.linear_grad_weight %arg4, %[[DL]] {transpose_weight = true}
// CHECK: nn.accumulate_grad @emb, %[[GH]] : tensor<64x16xf32>
// CHECK: nn.layer_norm_grad_input %arg3, %{{.*}}, %[[DH]]
// CHECK: %[[GS:.*]], %[[GB:.*]] = nn.layer_norm_grad_params %arg3, %[[DH]]
// CHECK: nn.accumulate_grad @ln.scale, %[[GS]]
// CHECK: nn.accumulate_grad @ln.bias, %[[GB]]
// CHECK: %[[GW:.*]] = nn.linear_grad_weight %arg2, %{{.*}} {transpose_weight = false}
// CHECK: %[[GB2:.*]] = nn.reduce_sum %{{.*}} {axes = array<i64: 0, 1>, keepdims = false} : tensor<2x8x16xf32> to tensor<16xf32>
// CHECK: nn.accumulate_grad @w, %[[GW]]
// CHECK: nn.accumulate_grad @b, %[[GB2]]
// CHECK: %[[GE:.*]] = nn.embedding_grad %arg0, %{{.*}} : (tensor<2x8xi64>, tensor<2x8x16xf32>) -> tensor<64x16xf32>
// CHECK: nn.accumulate_grad @emb, %[[GE]]
// CHECK: return
// CHECK-NEXT: }

// B: no weight-gradient op; returns what W needs.
// CHECK-LABEL: func.func @main_backward_input(
// CHECK-SAME: nn.autodiff = "backward_input"
// CHECK-SAME: nn.transfer = 4
// CHECK-NOT: grad_weight
// CHECK-NOT: grad_params
// CHECK-NOT: embedding_grad
// CHECK-NOT: accumulate_grad
// CHECK: return

// W: only weight gradients.
// CHECK-LABEL: func.func @main_backward_weight(
// CHECK-SAME: nn.autodiff = "backward_weight"
// CHECK-NOT: nn.linear %
// CHECK-NOT: grad_input
// CHECK-COUNT-2: nn.accumulate_grad @emb
// CHECK: return

// With recompute the forward returns only the loss and the backward
// recomputes from the inputs.
// RECOMPUTE-LABEL: func.func @main_forward(
// RECOMPUTE-SAME: -> tensor<f32>
// RECOMPUTE-SAME: nn.saved = 0
// RECOMPUTE-LABEL: func.func @main_backward(%arg0: tensor<2x8xi64>, %arg1: tensor<2x8xi64>, %arg2: tensor<f32>)
// RECOMPUTE-SAME: nn.recompute = true
// RECOMPUTE: nn.embedding
// RECOMPUTE: nn.layer_norm
// RECOMPUTE: nn.cross_entropy_grad
// RECOMPUTE: nn.embedding_grad
nn.parameter @emb : tensor<64x16xf32>
nn.parameter @w : tensor<16x16xf32>
nn.parameter @b : tensor<16xf32>
nn.parameter @ln.scale : tensor<16xf32>
nn.parameter @ln.bias : tensor<16xf32>
func.func @main(%ids: tensor<2x8xi64> {nn.name = "input_ids"}, %t: tensor<2x8xi64> {nn.name = "targets"}) -> tensor<f32> {
  %e = nn.param @emb : tensor<64x16xf32>
  %x = nn.embedding %e, %ids : (tensor<64x16xf32>, tensor<2x8xi64>) -> tensor<2x8x16xf32>
  %w = nn.param @w : tensor<16x16xf32>
  %b = nn.param @b : tensor<16xf32>
  %h = nn.linear %x, %w, %b {transpose_weight = false} : (tensor<2x8x16xf32>, tensor<16x16xf32>, tensor<16xf32>) -> tensor<2x8x16xf32>
  %s = nn.param @ln.scale : tensor<16xf32>
  %sb = nn.param @ln.bias : tensor<16xf32>
  %n = nn.layer_norm %h, %s, %sb {axis = 2 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x8x16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<2x8x16xf32>
  %e2 = nn.param @emb : tensor<64x16xf32>
  %y = nn.linear %n, %e2 {transpose_weight = true} : (tensor<2x8x16xf32>, tensor<64x16xf32>) -> tensor<2x8x64xf32>
  %l = nn.cross_entropy %y, %t {ignore_index = -100 : i64} : (tensor<2x8x64xf32>, tensor<2x8xi64>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// Primitive ops have gradients too: an unfused softmax attention-like block
// with a residual, a mean, a broadcast scale and a tanh.
// CHECK-LABEL: func.func @main_backward(
// CHECK-DAG: nn.unary_grad %{{.*}} {fn = 7 : i32} : tensor<4x8xf32>
// CHECK-DAG: nn.softmax_grad %{{.*}}, %{{.*}} {axis = 1 : i64} : tensor<4x8xf32>
// CHECK-DAG: nn.binary_grad %{{.*}}, %{{.*}}, %{{.*}} {fn = 2 : i32} : (tensor<4x8xf32>, tensor<8xf32>, tensor<4x8xf32>) -> (tensor<4x8xf32>, tensor<8xf32>)
// CHECK-DAG: nn.reduce_grad %{{.*}}, %{{.*}}, %{{.*}} {axes = array<i64: 1>, fn = 1 : i32}
// CHECK-DAG: nn.matmul_grad
// CHECK-DAG: nn.transpose %{{.*}} [1, 0] : tensor<8x4xf32> to tensor<4x8xf32>
// CHECK-DAG: nn.accumulate_grad @m, %{{.*}} : tensor<8x8xf32>
// CHECK-DAG: nn.accumulate_grad @scale, %{{.*}} : tensor<8xf32>
// The argument's gradient is returned.
// CHECK: return %{{.*}} : tensor<4x8xf32>
nn.parameter @scale : tensor<8xf32>
nn.parameter @m : tensor<8x8xf32>
func.func @main(%x: tensor<4x8xf32>) -> tensor<f32> {
  %s = nn.param @scale : tensor<8xf32>
  %m = nn.param @m : tensor<8x8xf32>
  %a = nn.mul %x, %s : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  %p = nn.softmax %a {axis = 1 : i64} : tensor<4x8xf32>
  %q = nn.matmul %p, %m : (tensor<4x8xf32>, tensor<8x8xf32>) -> tensor<4x8xf32>
  %t = nn.transpose %q [1, 0] : tensor<4x8xf32> to tensor<8x4xf32>
  %u = nn.transpose %t [1, 0] : tensor<8x4xf32> to tensor<4x8xf32>
  %v = nn.tanh %u : tensor<4x8xf32>
  %r = nn.add %v, %x : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %mean = nn.reduce_mean %r {axes = array<i64: 1>, keepdims = false} : tensor<4x8xf32> to tensor<4xf32>
  %l = nn.reduce_sum %mean {axes = array<i64: 0>, keepdims = false} : tensor<4xf32> to tensor<f32>
  return %l : tensor<f32>
}

// -----

// expected-error @below {{nn-autodiff: 'main' must return one f32 scalar loss (run -nn-append-loss first)}}
func.func @main(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  return %x : tensor<4x8xf32>
}

// -----

// A fused projection split three ways (q, k, v): the gradient joins the
// pieces with one concat, in slice order, with zeros for a piece that does not
// reach the loss. Overlapping or strided slices keep the scatter form.
// CHECK-LABEL: func.func @main_backward(
// CHECK-DAG: %[[Z:.*]] = nn.constant dense<0.000000e+00> : tensor<2x4xf32>
// CHECK-DAG: %[[DQ:.*]] = nn.unary_grad %{{.*}}, %{{.*}}, %{{.*}} {fn = 4 : i32} : tensor<2x4xf32>
// CHECK-DAG: %[[DV:.*]] = nn.unary_grad %{{.*}}, %{{.*}}, %{{.*}} {fn = 7 : i32} : tensor<2x4xf32>
// CHECK: nn.concat %[[DQ]], %[[Z]], %[[DV]] {axis = 1 : i64} : (tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x12xf32>
// CHECK-NOT: nn.slice_grad
// CHECK: return
nn.parameter @w : tensor<8x12xf32>
func.func @main(%x: tensor<2x8xf32>) -> tensor<f32> {
  %w = nn.param @w : tensor<8x12xf32>
  %qkv = nn.linear %x, %w {transpose_weight = false} : (tensor<2x8xf32>, tensor<8x12xf32>) -> tensor<2x12xf32>
  %v = nn.slice %qkv [0, 8] [2, 12] [1, 1] : tensor<2x12xf32> to tensor<2x4xf32>
  %q = nn.slice %qkv [0, 0] [2, 4] [1, 1] : tensor<2x12xf32> to tensor<2x4xf32>
  %k = nn.slice %qkv [0, 4] [2, 8] [1, 1] : tensor<2x12xf32> to tensor<2x4xf32>
  %eq = nn.exp %q : tensor<2x4xf32>
  %tv = nn.tanh %v : tensor<2x4xf32>
  %s = nn.add %eq, %tv : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>
  %l = nn.reduce_sum %s {axes = array<i64: 0, 1>, keepdims = false} : tensor<2x4xf32> to tensor<f32>
  return %l : tensor<f32>
}

// -----

// CHECK-LABEL: func.func @main_backward(
// CHECK-COUNT-2: nn.slice_grad
// CHECK-NOT: nn.concat
// CHECK: return
func.func @main(%x: tensor<2x8xf32>) -> tensor<f32> {
  %a = nn.slice %x [0, 0] [2, 5] [1, 1] : tensor<2x8xf32> to tensor<2x5xf32>
  %b = nn.slice %x [0, 3] [2, 8] [1, 1] : tensor<2x8xf32> to tensor<2x5xf32>
  %s = nn.add %a, %b : (tensor<2x5xf32>, tensor<2x5xf32>) -> tensor<2x5xf32>
  %l = nn.reduce_sum %s {axes = array<i64: 0, 1>, keepdims = false} : tensor<2x5xf32> to tensor<f32>
  return %l : tensor<f32>
}

// -----

// Frozen operands get no gradient and no op computes one: a weightless
// layer_norm exported with a constant scale of ones and a trained bias (OLMo)
// takes its bias gradient as a row sum, without layer_norm_grad_params; a
// constant linear weight gets no linear_grad_weight but still passes the
// input gradient on; the rotary tables get none.
// CHECK-LABEL: func.func @main_backward(
// CHECK: nn.linear_grad_weight %{{.*}} {transpose_weight = true}
// CHECK-NEXT: nn.accumulate_grad @emb
// CHECK-NOT: layer_norm_grad_params
// CHECK: nn.layer_norm_grad_input
// CHECK-NOT: layer_norm_grad_params
// CHECK: %[[BIAS:.*]] = nn.reduce_sum %{{.*}} {axes = array<i64: 0, 1>, keepdims = false} : tensor<2x8x16xf32> to tensor<16xf32>
// CHECK-NEXT: nn.accumulate_grad @ln.bias, %[[BIAS]]
// CHECK-NOT: linear_grad_weight
// CHECK-NOT: layer_norm_grad_params
// CHECK: nn.embedding_grad
// CHECK-NEXT: nn.accumulate_grad @emb
// CHECK-NEXT: return
nn.parameter @emb : tensor<64x16xf32>
nn.parameter @ln.bias : tensor<16xf32>
func.func @main(%ids: tensor<2x8xi64> {nn.name = "input_ids"}, %t: tensor<2x8xi64> {nn.name = "targets"}) -> tensor<f32> {
  %e = nn.param @emb : tensor<64x16xf32>
  %x = nn.embedding %e, %ids : (tensor<64x16xf32>, tensor<2x8xi64>) -> tensor<2x8x16xf32>
  %cos = nn.constant dense<0.5> : tensor<8x8xf32>
  %sin = nn.constant dense<0.25> : tensor<8x8xf32>
  %x4 = nn.reshape %x : tensor<2x8x16xf32> to tensor<2x1x8x16xf32>
  %r4 = nn.rotary %x4, %cos, %sin {interleaved = false, rotary_dim = 16 : i64} : (tensor<2x1x8x16xf32>, tensor<8x8xf32>, tensor<8x8xf32>) -> tensor<2x1x8x16xf32>
  %r = nn.reshape %r4 : tensor<2x1x8x16xf32> to tensor<2x8x16xf32>
  %mask = nn.constant dense<2.0> : tensor<16xf32>
  %m = nn.mul %r, %mask : (tensor<2x8x16xf32>, tensor<16xf32>) -> tensor<2x8x16xf32>
  %w = nn.constant dense<0.125> : tensor<16x16xf32>
  %h = nn.linear %m, %w {transpose_weight = false} : (tensor<2x8x16xf32>, tensor<16x16xf32>) -> tensor<2x8x16xf32>
  %s = nn.constant dense<1.0> : tensor<16xf32>
  %sb = nn.param @ln.bias : tensor<16xf32>
  %n = nn.layer_norm %h, %s, %sb {axis = 2 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x8x16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<2x8x16xf32>
  %y = nn.linear %n, %e {transpose_weight = true} : (tensor<2x8x16xf32>, tensor<64x16xf32>) -> tensor<2x8x64xf32>
  %l = nn.cross_entropy %y, %t {ignore_index = -100 : i64} : (tensor<2x8x64xf32>, tensor<2x8xi64>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// A parameter that no gradient reaches (a rotary table taken for a weight)
// is reported: weight decay alone would change it.
nn.parameter @emb : tensor<64x16xf32>
nn.parameter @cos : tensor<8x8xf32>
// expected-warning @below {{nn-autodiff: no gradient reaches parameter 'cos'}}
func.func @main(%ids: tensor<2x8xi64> {nn.name = "input_ids"}, %t: tensor<2x8xi64> {nn.name = "targets"}) -> tensor<f32> {
  %e = nn.param @emb : tensor<64x16xf32>
  %x = nn.embedding %e, %ids : (tensor<64x16xf32>, tensor<2x8xi64>) -> tensor<2x8x16xf32>
  %cos = nn.param @cos : tensor<8x8xf32>
  %sin = nn.constant dense<0.25> : tensor<8x8xf32>
  %x4 = nn.reshape %x : tensor<2x8x16xf32> to tensor<2x1x8x16xf32>
  %r4 = nn.rotary %x4, %cos, %sin {interleaved = false, rotary_dim = 16 : i64} : (tensor<2x1x8x16xf32>, tensor<8x8xf32>, tensor<8x8xf32>) -> tensor<2x1x8x16xf32>
  %r = nn.reshape %r4 : tensor<2x1x8x16xf32> to tensor<2x8x16xf32>
  %y = nn.linear %r, %e {transpose_weight = true} : (tensor<2x8x16xf32>, tensor<64x16xf32>) -> tensor<2x8x64xf32>
  %l = nn.cross_entropy %y, %t {ignore_index = -100 : i64} : (tensor<2x8x64xf32>, tensor<2x8xi64>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// The gradient of a cumulative sum is the cumulative sum of dy the other way
// (exclusive stays exclusive); an integer cumsum (position ids) needs none.
// CHECK-LABEL: func.func @main_backward(
// CHECK: nn.cumsum %{{.*}} {axis = 1 : i64, exclusive = true, reverse = false} : tensor<2x8x16xf32>
// CHECK-NOT: nn.cumsum
// CHECK: return
nn.parameter @emb : tensor<64x16xf32>
func.func @main(%ids: tensor<2x8xi64> {nn.name = "input_ids"}, %t: tensor<2x8xi64> {nn.name = "targets"}) -> tensor<f32> {
  %e = nn.param @emb : tensor<64x16xf32>
  %p = nn.cumsum %ids {axis = 1 : i64, exclusive = false, reverse = false} : tensor<2x8xi64>
  %x = nn.embedding %e, %p : (tensor<64x16xf32>, tensor<2x8xi64>) -> tensor<2x8x16xf32>
  %c = nn.cumsum %x {axis = 1 : i64, exclusive = true, reverse = true} : tensor<2x8x16xf32>
  %y = nn.linear %c, %e {transpose_weight = true} : (tensor<2x8x16xf32>, tensor<64x16xf32>) -> tensor<2x8x64xf32>
  %l = nn.cross_entropy %y, %t {ignore_index = -100 : i64} : (tensor<2x8x64xf32>, tensor<2x8xi64>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// A parameter read only through slices that tile it (a depthwise kernel's
// taps, as the importer lowers Conv): its gradient is the concat of the
// slices' gradients, accumulated into the parameter.
// CHECK-LABEL: nn.parameter @k : tensor<16x2xf32>
// CHECK-LABEL: func.func @main_backward(
// CHECK: %[[J:.*]] = nn.concat %{{.*}}, %{{.*}} {axis = 1 : i64} : (tensor<16x1xf32>, tensor<16x1xf32>) -> tensor<16x2xf32>
// CHECK: nn.accumulate_grad @k, %[[J]] : tensor<16x2xf32>
nn.parameter @emb : tensor<64x16xf32>
nn.parameter @k : tensor<16x2xf32>
func.func @main(%ids: tensor<2x8xi64> {nn.name = "input_ids"}, %t: tensor<2x8xi64> {nn.name = "targets"}) -> tensor<f32> {
  %e = nn.param @emb : tensor<64x16xf32>
  %x = nn.embedding %e, %ids : (tensor<64x16xf32>, tensor<2x8xi64>) -> tensor<2x8x16xf32>
  %k = nn.param @k : tensor<16x2xf32>
  %k0 = nn.slice %k [0, 0] [16, 1] [1, 1] : tensor<16x2xf32> to tensor<16x1xf32>
  %k1 = nn.slice %k [0, 1] [16, 2] [1, 1] : tensor<16x2xf32> to tensor<16x1xf32>
  %r0 = nn.reshape %k0 : tensor<16x1xf32> to tensor<16xf32>
  %r1 = nn.reshape %k1 : tensor<16x1xf32> to tensor<16xf32>
  %a = nn.mul %x, %r0 : (tensor<2x8x16xf32>, tensor<16xf32>) -> tensor<2x8x16xf32>
  %b = nn.mul %a, %r1 : (tensor<2x8x16xf32>, tensor<16xf32>) -> tensor<2x8x16xf32>
  %y = nn.linear %b, %e {transpose_weight = true} : (tensor<2x8x16xf32>, tensor<64x16xf32>) -> tensor<2x8x64xf32>
  %l = nn.cross_entropy %y, %t {ignore_index = -100 : i64} : (tensor<2x8x64xf32>, tensor<2x8xi64>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// Scores with the chosen element replaced by a constant at run-time indices
// (Phi-MoE's masked router score): the data's gradient is dy with the
// replaced elements zeroed, a scatter of zeros at the same indices.
// CHECK-LABEL: func.func @main_backward(
// CHECK: %[[Z:.*]] = nn.constant dense<0.000000e+00> : tensor<2x8x1xf32>
// CHECK: nn.scatter_elements %{{.*}}, %{{.*}}, %[[Z]] {axis = 2 : i64} : (tensor<2x8x16xf32>, tensor<2x8x1xi64>, tensor<2x8x1xf32>) -> tensor<2x8x16xf32>
nn.parameter @emb : tensor<64x16xf32>
func.func @main(%ids: tensor<2x8xi64> {nn.name = "input_ids"}, %t: tensor<2x8xi64> {nn.name = "targets"}) -> tensor<f32> {
  %e = nn.param @emb : tensor<64x16xf32>
  %x = nn.embedding %e, %ids : (tensor<64x16xf32>, tensor<2x8xi64>) -> tensor<2x8x16xf32>
  %i = nn.topk_indices %x {k = 1 : i64, largest = true} : tensor<2x8x16xf32> to tensor<2x8x1xi64>
  %u = nn.constant dense<-1.0e+09> : tensor<2x8x1xf32>
  %m = nn.scatter_elements %x, %i, %u {axis = 2 : i64} : (tensor<2x8x16xf32>, tensor<2x8x1xi64>, tensor<2x8x1xf32>) -> tensor<2x8x16xf32>
  %y = nn.linear %m, %e {transpose_weight = true} : (tensor<2x8x16xf32>, tensor<64x16xf32>) -> tensor<2x8x64xf32>
  %l = nn.cross_entropy %y, %t {ignore_index = -100 : i64} : (tensor<2x8x64xf32>, tensor<2x8xi64>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// Updates that need a gradient (JetMoE's expert outputs put back in token
// order): each gets the result's gradient where it was written, a gather
// from the flattened gradient at index * stride(axis) + the position's
// other coordinates (constants).
// CHECK-LABEL: func.func @main_backward
// CHECK: %[[W:.*]] = nn.where
// CHECK: %[[OFF:.*]] = nn.constant dense<{{\[\[\[}}0], [16], [32]
// CHECK: %[[I:.*]] = nn.add %[[W]], %[[OFF]]
// CHECK: %[[F:.*]] = nn.reshape %{{.*}} : tensor<2x8x16xf32> to tensor<256xf32>
// CHECK: %[[G:.*]] = nn.gather %[[F]], %[[I]] {axis = 0 : i64} : (tensor<256xf32>, tensor<2x8x1xi64>) -> tensor<2x8x1xf32>
nn.parameter @emb : tensor<64x16xf32>
func.func @main(%ids: tensor<2x8xi64> {nn.name = "input_ids"}, %t: tensor<2x8xi64> {nn.name = "targets"}) -> tensor<f32> {
  %e = nn.param @emb : tensor<64x16xf32>
  %x = nn.embedding %e, %ids : (tensor<64x16xf32>, tensor<2x8xi64>) -> tensor<2x8x16xf32>
  %i = nn.topk_indices %x {k = 1 : i64, largest = true} : tensor<2x8x16xf32> to tensor<2x8x1xi64>
  %u = nn.slice %x [0, 0, 0] [2, 8, 1] [1, 1, 1] : tensor<2x8x16xf32> to tensor<2x8x1xf32>
  %z = nn.constant dense<0.0> : tensor<2x8x16xf32>
  %m = nn.scatter_elements %z, %i, %u {axis = 2 : i64} : (tensor<2x8x16xf32>, tensor<2x8x1xi64>, tensor<2x8x1xf32>) -> tensor<2x8x16xf32>
  %y = nn.linear %m, %e {transpose_weight = true} : (tensor<2x8x16xf32>, tensor<64x16xf32>) -> tensor<2x8x64xf32>
  %l = nn.cross_entropy %y, %t {ignore_index = -100 : i64} : (tensor<2x8x64xf32>, tensor<2x8xi64>) -> tensor<f32>
  return %l : tensor<f32>
}
