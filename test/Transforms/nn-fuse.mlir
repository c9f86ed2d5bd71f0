// RUN: weipipe-opt %s -split-input-file -nn-fuse | FileCheck %s
// Each case is a primitive form an exporter emits (TorchScript at opsets 14
// and 17, dynamo at 20), as the importer leaves it.

// CHECK-LABEL: func.func @linear_bias
// CHECK: %[[Y:.*]] = nn.linear %arg0, %arg1, %arg2 {transpose_weight = false} : (tensor<2x8x32xf32>, tensor<32x96xf32>, tensor<96xf32>) -> tensor<2x8x96xf32>
// CHECK-NEXT: return %[[Y]]
func.func @linear_bias(%x: tensor<2x8x32xf32>, %w: tensor<32x96xf32>, %b: tensor<96xf32>) -> tensor<2x8x96xf32> {
  %0 = nn.matmul %x, %w : (tensor<2x8x32xf32>, tensor<32x96xf32>) -> tensor<2x8x96xf32>
  // TorchScript puts the bias first.
  %1 = nn.add %b, %0 : (tensor<96xf32>, tensor<2x8x96xf32>) -> tensor<2x8x96xf32>
  return %1 : tensor<2x8x96xf32>
}

// -----

// A weight used transposed (PyTorch's [out, in] layout kept by --no-fold
// exports) and no bias.
// CHECK-LABEL: func.func @linear_transposed
// CHECK: nn.linear %arg0, %arg1 {transpose_weight = true} : (tensor<2x8x32xf32>, tensor<96x32xf32>) -> tensor<2x8x96xf32>
func.func @linear_transposed(%x: tensor<2x8x32xf32>, %w: tensor<96x32xf32>) -> tensor<2x8x96xf32> {
  %t = nn.transpose %w [1, 0] : tensor<96x32xf32> to tensor<32x96xf32>
  %0 = nn.matmul %x, %t : (tensor<2x8x32xf32>, tensor<32x96xf32>) -> tensor<2x8x96xf32>
  return %0 : tensor<2x8x96xf32>
}

// -----

// An add whose other operand is not a [N] bias stays an add.
// CHECK-LABEL: func.func @linear_no_residual_bias
// CHECK: %[[L:.*]] = nn.linear %arg0, %arg1 {transpose_weight = false}
// CHECK: nn.add %[[L]], %arg0
func.func @linear_no_residual_bias(%x: tensor<2x8x32xf32>, %w: tensor<32x32xf32>) -> tensor<2x8x32xf32> {
  %0 = nn.matmul %x, %w : (tensor<2x8x32xf32>, tensor<32x32xf32>) -> tensor<2x8x32xf32>
  %1 = nn.add %0, %x : (tensor<2x8x32xf32>, tensor<2x8x32xf32>) -> tensor<2x8x32xf32>
  return %1 : tensor<2x8x32xf32>
}

// -----

// CHECK-LABEL: func.func @embedding
// CHECK: nn.embedding %arg0, %arg1 : (tensor<64x32xf32>, tensor<2x8xi64>) -> tensor<2x8x32xf32>
func.func @embedding(%t: tensor<64x32xf32>, %ids: tensor<2x8xi64>) -> tensor<2x8x32xf32> {
  %0 = nn.gather %t, %ids {axis = 0 : i64} : (tensor<64x32xf32>, tensor<2x8xi64>) -> tensor<2x8x32xf32>
  return %0 : tensor<2x8x32xf32>
}

// -----

// GELU, erf form as TorchScript emits it: x * 0.5 * (1 + erf(x / 1.4142135)).
// CHECK-LABEL: func.func @gelu_erf
// CHECK: %[[G:.*]] = nn.gelu %arg0 {approximate = 0 : i32} : tensor<2x8x64xf32>
// CHECK-NEXT: return %[[G]]
func.func @gelu_erf(%x: tensor<2x8x64xf32>) -> tensor<2x8x64xf32> {
  %c1 = nn.constant dense<1.41421354> : tensor<f32>
  %c2 = nn.constant dense<1.000000e+00> : tensor<f32>
  %c3 = nn.constant dense<5.000000e-01> : tensor<f32>
  %0 = nn.div %x, %c1 : (tensor<2x8x64xf32>, tensor<f32>) -> tensor<2x8x64xf32>
  %1 = nn.erf %0 : tensor<2x8x64xf32>
  %2 = nn.add %1, %c2 : (tensor<2x8x64xf32>, tensor<f32>) -> tensor<2x8x64xf32>
  %3 = nn.mul %x, %2 : (tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
  %4 = nn.mul %3, %c3 : (tensor<2x8x64xf32>, tensor<f32>) -> tensor<2x8x64xf32>
  return %4 : tensor<2x8x64xf32>
}

// -----

// GELU, tanh form (GPT-2's gelu_new):
// 0.5 * x * (1 + tanh(0.7978845608 * (x + 0.044715 * x^3))).
// CHECK-LABEL: func.func @gelu_tanh
// CHECK: nn.gelu %arg0 {approximate = 1 : i32} : tensor<2x8x64xf32>
// CHECK-NOT: nn.tanh
func.func @gelu_tanh(%x: tensor<2x8x64xf32>) -> tensor<2x8x64xf32> {
  %half = nn.constant dense<5.000000e-01> : tensor<f32>
  %three = nn.constant dense<3.000000e+00> : tensor<f32>
  %k = nn.constant dense<4.471500e-02> : tensor<f32>
  %c = nn.constant dense<0.797884583> : tensor<f32>
  %one = nn.constant dense<1.000000e+00> : tensor<f32>
  %0 = nn.mul %x, %half : (tensor<2x8x64xf32>, tensor<f32>) -> tensor<2x8x64xf32>
  %1 = nn.pow %x, %three : (tensor<2x8x64xf32>, tensor<f32>) -> tensor<2x8x64xf32>
  %2 = nn.mul %1, %k : (tensor<2x8x64xf32>, tensor<f32>) -> tensor<2x8x64xf32>
  %3 = nn.add %x, %2 : (tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
  %4 = nn.mul %3, %c : (tensor<2x8x64xf32>, tensor<f32>) -> tensor<2x8x64xf32>
  %5 = nn.tanh %4 : tensor<2x8x64xf32>
  %6 = nn.add %5, %one : (tensor<2x8x64xf32>, tensor<f32>) -> tensor<2x8x64xf32>
  %7 = nn.mul %0, %6 : (tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
  return %7 : tensor<2x8x64xf32>
}

// -----

// A near miss (0.6 instead of 0.5) is not GELU and stays primitive.
// CHECK-LABEL: func.func @gelu_wrong_constant
// CHECK-NOT: nn.gelu
// CHECK: nn.erf
func.func @gelu_wrong_constant(%x: tensor<8xf32>) -> tensor<8xf32> {
  %c1 = nn.constant dense<1.41421354> : tensor<f32>
  %c2 = nn.constant dense<1.000000e+00> : tensor<f32>
  %c3 = nn.constant dense<6.000000e-01> : tensor<f32>
  %0 = nn.div %x, %c1 : (tensor<8xf32>, tensor<f32>) -> tensor<8xf32>
  %1 = nn.erf %0 : tensor<8xf32>
  %2 = nn.add %1, %c2 : (tensor<8xf32>, tensor<f32>) -> tensor<8xf32>
  %3 = nn.mul %x, %2 : (tensor<8xf32>, tensor<8xf32>) -> tensor<8xf32>
  %4 = nn.mul %3, %c3 : (tensor<8xf32>, tensor<f32>) -> tensor<8xf32>
  return %4 : tensor<8xf32>
}

// -----

// SwiGLU as Llama exports it: (g * sigmoid(g)) * u.
// CHECK-LABEL: func.func @swiglu
// CHECK: %[[S:.*]] = nn.swiglu %arg0, %arg1 : tensor<2x8x128xf32>
// CHECK-NEXT: return %[[S]]
func.func @swiglu(%g: tensor<2x8x128xf32>, %u: tensor<2x8x128xf32>) -> tensor<2x8x128xf32> {
  %0 = nn.sigmoid %g : tensor<2x8x128xf32>
  %1 = nn.mul %g, %0 : (tensor<2x8x128xf32>, tensor<2x8x128xf32>) -> tensor<2x8x128xf32>
  %2 = nn.mul %1, %u : (tensor<2x8x128xf32>, tensor<2x8x128xf32>) -> tensor<2x8x128xf32>
  return %2 : tensor<2x8x128xf32>
}

// -----

// A lone SiLU.
// CHECK-LABEL: func.func @silu
// CHECK: nn.silu %arg0 : tensor<2x8x128xf32>
func.func @silu(%g: tensor<2x8x128xf32>) -> tensor<2x8x128xf32> {
  %0 = nn.sigmoid %g : tensor<2x8x128xf32>
  %1 = nn.mul %0, %g : (tensor<2x8x128xf32>, tensor<2x8x128xf32>) -> tensor<2x8x128xf32>
  return %1 : tensor<2x8x128xf32>
}

// -----

// LayerNorm decomposed (TorchScript, opset 14).
// CHECK-LABEL: func.func @layer_norm
// CHECK: %[[N:.*]] = nn.layer_norm %arg0, %arg1, %arg2 {axis = 2 : i64, epsilon = 9.99999974E-6 : f32} : (tensor<2x8x64xf32>, tensor<64xf32>, tensor<64xf32>) -> tensor<2x8x64xf32>
// CHECK-NEXT: return %[[N]]
func.func @layer_norm(%x: tensor<2x8x64xf32>, %g: tensor<64xf32>, %b: tensor<64xf32>) -> tensor<2x8x64xf32> {
  %two = nn.constant dense<2.000000e+00> : tensor<f32>
  %eps = nn.constant dense<9.99999974E-6> : tensor<f32>
  %0 = nn.reduce_mean %x {axes = array<i64: 2>, keepdims = true} : tensor<2x8x64xf32> to tensor<2x8x1xf32>
  %1 = nn.sub %x, %0 : (tensor<2x8x64xf32>, tensor<2x8x1xf32>) -> tensor<2x8x64xf32>
  %2 = nn.pow %1, %two : (tensor<2x8x64xf32>, tensor<f32>) -> tensor<2x8x64xf32>
  %3 = nn.reduce_mean %2 {axes = array<i64: 2>, keepdims = true} : tensor<2x8x64xf32> to tensor<2x8x1xf32>
  %4 = nn.add %3, %eps : (tensor<2x8x1xf32>, tensor<f32>) -> tensor<2x8x1xf32>
  %5 = nn.sqrt %4 : tensor<2x8x1xf32>
  %6 = nn.div %1, %5 : (tensor<2x8x64xf32>, tensor<2x8x1xf32>) -> tensor<2x8x64xf32>
  %7 = nn.mul %6, %g : (tensor<2x8x64xf32>, tensor<64xf32>) -> tensor<2x8x64xf32>
  %8 = nn.add %7, %b : (tensor<2x8x64xf32>, tensor<64xf32>) -> tensor<2x8x64xf32>
  return %8 : tensor<2x8x64xf32>
}

// -----

// Statistics over a different tensor are not a LayerNorm.
// CHECK-LABEL: func.func @layer_norm_mismatch
// CHECK-NOT: nn.layer_norm
func.func @layer_norm_mismatch(%x: tensor<2x8x64xf32>, %y: tensor<2x8x64xf32>) -> tensor<2x8x64xf32> {
  %two = nn.constant dense<2.000000e+00> : tensor<f32>
  %eps = nn.constant dense<9.99999974E-6> : tensor<f32>
  %0 = nn.reduce_mean %y {axes = array<i64: 2>, keepdims = true} : tensor<2x8x64xf32> to tensor<2x8x1xf32>
  %1 = nn.sub %x, %0 : (tensor<2x8x64xf32>, tensor<2x8x1xf32>) -> tensor<2x8x64xf32>
  %2 = nn.pow %1, %two : (tensor<2x8x64xf32>, tensor<f32>) -> tensor<2x8x64xf32>
  %3 = nn.reduce_mean %2 {axes = array<i64: 2>, keepdims = true} : tensor<2x8x64xf32> to tensor<2x8x1xf32>
  %4 = nn.add %3, %eps : (tensor<2x8x1xf32>, tensor<f32>) -> tensor<2x8x1xf32>
  %5 = nn.sqrt %4 : tensor<2x8x1xf32>
  %6 = nn.div %1, %5 : (tensor<2x8x64xf32>, tensor<2x8x1xf32>) -> tensor<2x8x64xf32>
  return %6 : tensor<2x8x64xf32>
}

// -----

// RMSNorm as TorchScript emits Llama's: x * (1 / sqrt(mean(x^2) + eps)) * w.
// CHECK-LABEL: func.func @rms_norm_div
// CHECK: %[[N:.*]] = nn.rms_norm %arg0, %arg1 {axis = 2 : i64, epsilon = 9.99999997E-7 : f32} : (tensor<2x8x64xf32>, tensor<64xf32>) -> tensor<2x8x64xf32>
// CHECK-NEXT: return %[[N]]
func.func @rms_norm_div(%x: tensor<2x8x64xf32>, %w: tensor<64xf32>) -> tensor<2x8x64xf32> {
  %two = nn.constant dense<2.000000e+00> : tensor<f32>
  %eps = nn.constant dense<9.99999997E-7> : tensor<f32>
  %one = nn.constant dense<1.000000e+00> : tensor<f32>
  %0 = nn.pow %x, %two : (tensor<2x8x64xf32>, tensor<f32>) -> tensor<2x8x64xf32>
  %1 = nn.reduce_mean %0 {axes = array<i64: 2>, keepdims = true} : tensor<2x8x64xf32> to tensor<2x8x1xf32>
  %2 = nn.add %1, %eps : (tensor<2x8x1xf32>, tensor<f32>) -> tensor<2x8x1xf32>
  %3 = nn.sqrt %2 : tensor<2x8x1xf32>
  %4 = nn.div %one, %3 : (tensor<f32>, tensor<2x8x1xf32>) -> tensor<2x8x1xf32>
  %5 = nn.mul %x, %4 : (tensor<2x8x64xf32>, tensor<2x8x1xf32>) -> tensor<2x8x64xf32>
  %6 = nn.mul %w, %5 : (tensor<64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
  return %6 : tensor<2x8x64xf32>
}

// -----

// RMSNorm as dynamo emits it: reciprocal(sqrt(...)).
// CHECK-LABEL: func.func @rms_norm_reciprocal
// CHECK: nn.rms_norm %arg0, %arg1 {axis = 2 : i64, epsilon = 9.99999997E-7 : f32}
// CHECK-NOT: nn.reciprocal
func.func @rms_norm_reciprocal(%x: tensor<2x8x64xf32>, %w: tensor<64xf32>) -> tensor<2x8x64xf32> {
  %two = nn.constant dense<2.000000e+00> : tensor<f32>
  %eps = nn.constant dense<9.99999997E-7> : tensor<f32>
  %0 = nn.pow %x, %two : (tensor<2x8x64xf32>, tensor<f32>) -> tensor<2x8x64xf32>
  %1 = nn.reduce_mean %0 {axes = array<i64: 2>, keepdims = true} : tensor<2x8x64xf32> to tensor<2x8x1xf32>
  %2 = nn.add %1, %eps : (tensor<2x8x1xf32>, tensor<f32>) -> tensor<2x8x1xf32>
  %3 = nn.sqrt %2 : tensor<2x8x1xf32>
  %4 = nn.reciprocal %3 : tensor<2x8x1xf32>
  %5 = nn.mul %x, %4 : (tensor<2x8x64xf32>, tensor<2x8x1xf32>) -> tensor<2x8x64xf32>
  %6 = nn.mul %5, %w : (tensor<2x8x64xf32>, tensor<64xf32>) -> tensor<2x8x64xf32>
  return %6 : tensor<2x8x64xf32>
}

// -----

// Causal attention as TorchScript emits GPT-2's: q kᵀ, scale, where(mask,
// -inf, s), softmax, · v. The mask is the causal pattern, so it becomes the
// causal flag; kᵀ, written as transpose [0, 2, 3, 1] of [B, S, H, D], becomes
// a transpose to [B, H, S, D].
// CHECK-LABEL: func.func @attention_causal
// CHECK: %[[K:.*]] = nn.transpose %arg1 [0, 2, 1, 3] : tensor<1x3x2x4xf32> to tensor<1x2x3x4xf32>
// CHECK: %[[O:.*]] = nn.attention %arg0, %[[K]], %arg2 {causal = true, num_heads = 2 : i64, num_kv_heads = 2 : i64, scale = 5.000000e-01 : f32} : (tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32>
// CHECK-NEXT: return %[[O]]
func.func @attention_causal(%q: tensor<1x2x3x4xf32>, %kBSHD: tensor<1x3x2x4xf32>, %v: tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32> {
  %kT = nn.transpose %kBSHD [0, 2, 3, 1] : tensor<1x3x2x4xf32> to tensor<1x2x4x3xf32>
  %0 = nn.matmul %q, %kT : (tensor<1x2x3x4xf32>, tensor<1x2x4x3xf32>) -> tensor<1x2x3x3xf32>
  %s = nn.constant dense<5.000000e-01> : tensor<f32>
  %1 = nn.mul %0, %s : (tensor<1x2x3x3xf32>, tensor<f32>) -> tensor<1x2x3x3xf32>
  %m = nn.constant dense<[[false, true, true], [false, false, true], [false, false, false]]> : tensor<3x3xi1>
  %ninf = nn.constant dense<0xFF800000> : tensor<f32>
  %2 = nn.where %m, %ninf, %1 : (tensor<3x3xi1>, tensor<f32>, tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %3 = nn.softmax %2 {axis = 3 : i64} : tensor<1x2x3x3xf32>
  %4 = nn.matmul %3, %v : (tensor<1x2x3x3xf32>, tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32>
  return %4 : tensor<1x2x3x4xf32>
}

// -----

// Attention as TorchScript exports torch's SDPA (HF Llama, opset 17):
// sqrt(scale) on q and on kᵀ, an additive causal mask, a NaN guard after the
// softmax, and keys/values repeated to every query head (grouped-query).
// CHECK-LABEL: func.func @attention_sdpa_gqa
// CHECK: %[[O:.*]] = nn.attention %arg0, %arg1, %arg2 {causal = true, num_heads = 4 : i64, num_kv_heads = 2 : i64, scale = 2.500000e-01 : f32} : (tensor<1x4x3x4xf32>, tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>) -> tensor<1x4x3x4xf32>
// CHECK-NEXT: return %[[O]]
func.func @attention_sdpa_gqa(%q: tensor<1x4x3x4xf32>, %k: tensor<1x2x3x4xf32>, %v: tensor<1x2x3x4xf32>) -> tensor<1x4x3x4xf32> {
  %k1 = nn.reshape %k : tensor<1x2x3x4xf32> to tensor<1x2x1x3x4xf32>
  %k2 = nn.broadcast %k1 : tensor<1x2x1x3x4xf32> to tensor<1x2x2x3x4xf32>
  %k3 = nn.reshape %k2 : tensor<1x2x2x3x4xf32> to tensor<1x4x3x4xf32>
  %v1 = nn.reshape %v : tensor<1x2x3x4xf32> to tensor<1x2x1x3x4xf32>
  %v2 = nn.broadcast %v1 : tensor<1x2x1x3x4xf32> to tensor<1x2x2x3x4xf32>
  %v3 = nn.reshape %v2 : tensor<1x2x2x3x4xf32> to tensor<1x4x3x4xf32>
  %kT = nn.transpose %k3 [0, 1, 3, 2] : tensor<1x4x3x4xf32> to tensor<1x4x4x3xf32>
  %half = nn.constant dense<5.000000e-01> : tensor<f32>
  %qs = nn.mul %q, %half : (tensor<1x4x3x4xf32>, tensor<f32>) -> tensor<1x4x3x4xf32>
  %ks = nn.mul %kT, %half : (tensor<1x4x4x3xf32>, tensor<f32>) -> tensor<1x4x4x3xf32>
  %0 = nn.matmul %qs, %ks : (tensor<1x4x3x4xf32>, tensor<1x4x4x3xf32>) -> tensor<1x4x3x3xf32>
  %mask = nn.constant dense<[[[[0.0, 0xFF800000, 0xFF800000], [0.0, 0.0, 0xFF800000], [0.0, 0.0, 0.0]]]]> : tensor<1x1x3x3xf32>
  %1 = nn.add %0, %mask : (tensor<1x4x3x3xf32>, tensor<1x1x3x3xf32>) -> tensor<1x4x3x3xf32>
  %2 = nn.softmax %1 {axis = 3 : i64} : tensor<1x4x3x3xf32>
  %nan = nn.is_nan %2 : tensor<1x4x3x3xf32> to tensor<1x4x3x3xi1>
  %zero = nn.constant dense<0.000000e+00> : tensor<1xf32>
  %3 = nn.where %nan, %zero, %2 : (tensor<1x4x3x3xi1>, tensor<1xf32>, tensor<1x4x3x3xf32>) -> tensor<1x4x3x3xf32>
  %4 = nn.matmul %3, %v3 : (tensor<1x4x3x3xf32>, tensor<1x4x3x4xf32>) -> tensor<1x4x3x4xf32>
  return %4 : tensor<1x4x3x4xf32>
}

// -----

// A mask that is neither causal nor all-keep stays a mask operand; a mask
// computed at run time with a NaN guard is not fused (a fully masked row
// would differ).
// CHECK-LABEL: func.func @attention_padding_mask
// CHECK: nn.attention %arg0, %{{.*}}, %arg2, %{{.*}} {causal = false
// CHECK-SAME: tensor<1x1x1x3xi1>
func.func @attention_padding_mask(%q: tensor<1x2x3x4xf32>, %k: tensor<1x2x3x4xf32>, %v: tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32> {
  %kT = nn.transpose %k [0, 1, 3, 2] : tensor<1x2x3x4xf32> to tensor<1x2x4x3xf32>
  %0 = nn.matmul %q, %kT : (tensor<1x2x3x4xf32>, tensor<1x2x4x3xf32>) -> tensor<1x2x3x3xf32>
  %keep = nn.constant dense<[[[[true, true, false]]]]> : tensor<1x1x1x3xi1>
  %ninf = nn.constant dense<0xFF800000> : tensor<f32>
  %1 = nn.where %keep, %0, %ninf : (tensor<1x1x1x3xi1>, tensor<1x2x3x3xf32>, tensor<f32>) -> tensor<1x2x3x3xf32>
  %2 = nn.softmax %1 {axis = 3 : i64} : tensor<1x2x3x3xf32>
  %3 = nn.matmul %2, %v : (tensor<1x2x3x3xf32>, tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32>
  return %3 : tensor<1x2x3x4xf32>
}

// CHECK-LABEL: func.func @attention_runtime_mask_guarded
// CHECK-NOT: nn.attention
func.func @attention_runtime_mask_guarded(%q: tensor<1x2x3x4xf32>, %k: tensor<1x2x3x4xf32>, %v: tensor<1x2x3x4xf32>, %m: tensor<1x1x3x3xf32>) -> tensor<1x2x3x4xf32> {
  %kT = nn.transpose %k [0, 1, 3, 2] : tensor<1x2x3x4xf32> to tensor<1x2x4x3xf32>
  %0 = nn.matmul %q, %kT : (tensor<1x2x3x4xf32>, tensor<1x2x4x3xf32>) -> tensor<1x2x3x3xf32>
  %1 = nn.add %0, %m : (tensor<1x2x3x3xf32>, tensor<1x1x3x3xf32>) -> tensor<1x2x3x3xf32>
  %2 = nn.softmax %1 {axis = 3 : i64} : tensor<1x2x3x3xf32>
  %nan = nn.is_nan %2 : tensor<1x2x3x3xf32> to tensor<1x2x3x3xi1>
  %zero = nn.constant dense<0.000000e+00> : tensor<f32>
  %3 = nn.where %nan, %zero, %2 : (tensor<1x2x3x3xi1>, tensor<f32>, tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %4 = nn.matmul %3, %v : (tensor<1x2x3x3xf32>, tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32>
  return %4 : tensor<1x2x3x4xf32>
}

// -----

// A score bias computed from a parameter (Doge's learned dynamic mask) is
// trained through the scores, and nn.attention takes no gradient for its
// mask: it stays unfused. A run-time mask without parameters is fused.
nn.parameter @a : tensor<1x1x3x3xf32>
// CHECK-LABEL: func.func @attention_parameter_bias
// CHECK-NOT: nn.attention
// CHECK: nn.softmax
func.func @attention_parameter_bias(%q: tensor<1x2x3x4xf32>, %k: tensor<1x2x3x4xf32>, %v: tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32> {
  %kT = nn.transpose %k [0, 1, 3, 2] : tensor<1x2x3x4xf32> to tensor<1x2x4x3xf32>
  %0 = nn.matmul %q, %kT : (tensor<1x2x3x4xf32>, tensor<1x2x4x3xf32>) -> tensor<1x2x3x3xf32>
  %a = nn.param @a : tensor<1x1x3x3xf32>
  %bias = nn.exp %a : tensor<1x1x3x3xf32>
  %1 = nn.add %0, %bias : (tensor<1x2x3x3xf32>, tensor<1x1x3x3xf32>) -> tensor<1x2x3x3xf32>
  %2 = nn.softmax %1 {axis = 3 : i64} : tensor<1x2x3x3xf32>
  %3 = nn.matmul %2, %v : (tensor<1x2x3x3xf32>, tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32>
  return %3 : tensor<1x2x3x4xf32>
}
// CHECK-LABEL: func.func @attention_runtime_bias
// CHECK: nn.attention
func.func @attention_runtime_bias(%q: tensor<1x2x3x4xf32>, %k: tensor<1x2x3x4xf32>, %v: tensor<1x2x3x4xf32>, %m: tensor<1x1x3x3xf32>) -> tensor<1x2x3x4xf32> {
  %kT = nn.transpose %k [0, 1, 3, 2] : tensor<1x2x3x4xf32> to tensor<1x2x4x3xf32>
  %0 = nn.matmul %q, %kT : (tensor<1x2x3x4xf32>, tensor<1x2x4x3xf32>) -> tensor<1x2x3x3xf32>
  %bias = nn.exp %m : tensor<1x1x3x3xf32>
  %1 = nn.add %0, %bias : (tensor<1x2x3x3xf32>, tensor<1x1x3x3xf32>) -> tensor<1x2x3x3xf32>
  %2 = nn.softmax %1 {axis = 3 : i64} : tensor<1x2x3x3xf32>
  %3 = nn.matmul %2, %v : (tensor<1x2x3x3xf32>, tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32>
  return %3 : tensor<1x2x3x4xf32>
}

// -----

// Rotary, rotate-half form: x * cos + concat(-x[..., 2:], x[..., :2]) * sin
// with tables whose halves repeat. The fused op takes the [S, R/2] halves.
// CHECK-LABEL: func.func @rotary
// CHECK-DAG: %[[C:.*]] = nn.constant dense<{{\[}}[1.000000e+00, 2.000000e+00], [3.000000e+00, 4.000000e+00]]> : tensor<2x2xf32>
// CHECK-DAG: %[[S:.*]] = nn.constant dense<{{\[}}[5.000000e+00, 6.000000e+00], [7.000000e+00, 8.000000e+00]]> : tensor<2x2xf32>
// CHECK: %[[R:.*]] = nn.rotary %arg0, %[[C]], %[[S]] {interleaved = false, rotary_dim = 4 : i64} : (tensor<1x2x2x4xf32>, tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<1x2x2x4xf32>
// CHECK-NEXT: return %[[R]]
func.func @rotary(%x: tensor<1x2x2x4xf32>) -> tensor<1x2x2x4xf32> {
  %cos = nn.constant dense<[[[[1.0, 2.0, 1.0, 2.0], [3.0, 4.0, 3.0, 4.0]]]]> : tensor<1x1x2x4xf32>
  %sin = nn.constant dense<[[[[5.0, 6.0, 5.0, 6.0], [7.0, 8.0, 7.0, 8.0]]]]> : tensor<1x1x2x4xf32>
  %0 = nn.mul %x, %cos : (tensor<1x2x2x4xf32>, tensor<1x1x2x4xf32>) -> tensor<1x2x2x4xf32>
  %lo = nn.slice %x [0, 0, 0, 0] [1, 2, 2, 2] [1, 1, 1, 1] : tensor<1x2x2x4xf32> to tensor<1x2x2x2xf32>
  %hi = nn.slice %x [0, 0, 0, 2] [1, 2, 2, 4] [1, 1, 1, 1] : tensor<1x2x2x4xf32> to tensor<1x2x2x2xf32>
  %neg = nn.neg %hi : tensor<1x2x2x2xf32>
  %rh = nn.concat %neg, %lo {axis = 3 : i64} : (tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>) -> tensor<1x2x2x4xf32>
  %1 = nn.mul %rh, %sin : (tensor<1x2x2x4xf32>, tensor<1x1x2x4xf32>) -> tensor<1x2x2x4xf32>
  %2 = nn.add %0, %1 : (tensor<1x2x2x4xf32>, tensor<1x2x2x4xf32>) -> tensor<1x2x2x4xf32>
  return %2 : tensor<1x2x2x4xf32>
}

// -----

// Tables whose halves differ are not rotate-half rotary.
// CHECK-LABEL: func.func @rotary_halves_differ
// CHECK-NOT: nn.rotary
func.func @rotary_halves_differ(%x: tensor<1x2x2x4xf32>) -> tensor<1x2x2x4xf32> {
  %cos = nn.constant dense<[[[[1.0, 2.0, 1.0, 2.5], [3.0, 4.0, 3.0, 4.0]]]]> : tensor<1x1x2x4xf32>
  %sin = nn.constant dense<[[[[5.0, 6.0, 5.0, 6.0], [7.0, 8.0, 7.0, 8.0]]]]> : tensor<1x1x2x4xf32>
  %0 = nn.mul %x, %cos : (tensor<1x2x2x4xf32>, tensor<1x1x2x4xf32>) -> tensor<1x2x2x4xf32>
  %lo = nn.slice %x [0, 0, 0, 0] [1, 2, 2, 2] [1, 1, 1, 1] : tensor<1x2x2x4xf32> to tensor<1x2x2x2xf32>
  %hi = nn.slice %x [0, 0, 0, 2] [1, 2, 2, 4] [1, 1, 1, 1] : tensor<1x2x2x4xf32> to tensor<1x2x2x2xf32>
  %neg = nn.neg %hi : tensor<1x2x2x2xf32>
  %rh = nn.concat %neg, %lo {axis = 3 : i64} : (tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>) -> tensor<1x2x2x4xf32>
  %1 = nn.mul %rh, %sin : (tensor<1x2x2x4xf32>, tensor<1x1x2x4xf32>) -> tensor<1x2x2x4xf32>
  %2 = nn.add %0, %1 : (tensor<1x2x2x4xf32>, tensor<1x2x2x4xf32>) -> tensor<1x2x2x4xf32>
  return %2 : tensor<1x2x2x4xf32>
}

// -----

// The dynamo form of kᵀ: a transpose of the last two dims through a 3-D
// batched view, which canonicalizes to a 4-D transpose and folds away.
// CHECK-LABEL: func.func @attention_batched_transpose
// CHECK: nn.attention %arg0, %arg1, %arg2 {causal = false
func.func @attention_batched_transpose(%q: tensor<1x2x3x4xf32>, %k: tensor<1x2x3x4xf32>, %v: tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32> {
  %0 = nn.reshape %k : tensor<1x2x3x4xf32> to tensor<2x3x4xf32>
  %1 = nn.transpose %0 [0, 2, 1] : tensor<2x3x4xf32> to tensor<2x4x3xf32>
  %kT = nn.reshape %1 : tensor<2x4x3xf32> to tensor<1x2x4x3xf32>
  %2 = nn.matmul %q, %kT : (tensor<1x2x3x4xf32>, tensor<1x2x4x3xf32>) -> tensor<1x2x3x3xf32>
  %3 = nn.softmax %2 {axis = 3 : i64} : tensor<1x2x3x3xf32>
  %4 = nn.matmul %3, %v : (tensor<1x2x3x3xf32>, tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32>
  return %4 : tensor<1x2x3x4xf32>
}

// -----

// The same batched view over keys repeated for grouped-query attention
// ([B, Hkv, G, S, D] merged to [B*H, S, D], as static-shape dynamo exports
// write it): a transpose of the repeated keys reshaped to [B, H, S, D], so
// the repetition is recognized and dropped.
// CHECK-LABEL: func.func @attention_batched_transpose_repeated
// CHECK: nn.attention %arg0, %arg1, %arg2 {causal = false, num_heads = 4 : i64, num_kv_heads = 2 : i64
func.func @attention_batched_transpose_repeated(%q: tensor<1x4x3x4xf32>, %k: tensor<1x2x3x4xf32>, %v: tensor<1x2x3x4xf32>) -> tensor<1x4x3x4xf32> {
  %k1 = nn.reshape %k : tensor<1x2x3x4xf32> to tensor<1x2x1x3x4xf32>
  %kb = nn.broadcast %k1 : tensor<1x2x1x3x4xf32> to tensor<1x2x2x3x4xf32>
  %0 = nn.reshape %kb : tensor<1x2x2x3x4xf32> to tensor<4x3x4xf32>
  %1 = nn.transpose %0 [0, 2, 1] : tensor<4x3x4xf32> to tensor<4x4x3xf32>
  %kT = nn.reshape %1 : tensor<4x4x3xf32> to tensor<1x4x4x3xf32>
  %v1 = nn.reshape %v : tensor<1x2x3x4xf32> to tensor<1x2x1x3x4xf32>
  %vb = nn.broadcast %v1 : tensor<1x2x1x3x4xf32> to tensor<1x2x2x3x4xf32>
  %vr = nn.reshape %vb : tensor<1x2x2x3x4xf32> to tensor<1x4x3x4xf32>
  %2 = nn.matmul %q, %kT : (tensor<1x4x3x4xf32>, tensor<1x4x4x3xf32>) -> tensor<1x4x3x3xf32>
  %3 = nn.softmax %2 {axis = 3 : i64} : tensor<1x4x3x3xf32>
  %4 = nn.matmul %3, %vr : (tensor<1x4x3x3xf32>, tensor<1x4x3x4xf32>) -> tensor<1x4x3x4xf32>
  return %4 : tensor<1x4x3x4xf32>
}
