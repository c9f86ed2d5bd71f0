// RUN: weipipe-opt %s --verify-roundtrip | FileCheck %s

// Round-trip test for every op of the nn dialect. Shapes follow a small
// Llama-style decoder (hidden 512, 8 query heads, 2 key/value heads, head
// size 64, FFN 1376, vocabulary 32000) at batch 2 and sequence 16.

// Parameters live at module level and name their bytes by file, offset and
// length; the length is numel * element size.
nn.parameter @"model.embed_tokens.weight" : tensor<32000x512xbf16> at "model.safetensors"[8, 32768000]
nn.parameter @"onnx::MatMul_1234" : tensor<512x1536xf32> at "model.onnx.data"[0, 3145728]
nn.parameter @"model.norm.weight" : tensor<512xf16> at "model.onnx"[4096, 1024]
nn.parameter @lm_head.bias : tensor<32000xf32> at "model.onnx"[0, 128000]
// CHECK: module {
// CHECK-NEXT: nn.parameter @model.embed_tokens.weight : tensor<32000x512xbf16> at "model.safetensors"[8, 32768000]
// CHECK-NEXT: nn.parameter @"onnx::MatMul_1234" : tensor<512x1536xf32> at "model.onnx.data"[0, 3145728]
// CHECK-NEXT: nn.parameter @model.norm.weight : tensor<512xf16> at "model.onnx"[4096, 1024]
// CHECK-NEXT: nn.parameter @lm_head.bias : tensor<32000xf32> at "model.onnx"[0, 128000]

// Tests that nn.param reads parameters, that one parameter may be read twice
// (tied embedding and LM head), and that quoted symbol names survive.
// CHECK-LABEL: func.func @params(
// CHECK-SAME: ) -> (tensor<32000x512xbf16>, tensor<32000x512xbf16>, tensor<512x1536xf32>, tensor<512xf16>, tensor<32000xf32>)
// CHECK-NEXT: %[[EMB:.*]] = nn.param @model.embed_tokens.weight : tensor<32000x512xbf16>
// CHECK-NEXT: %[[TIED:.*]] = nn.param @model.embed_tokens.weight : tensor<32000x512xbf16>
// CHECK-NEXT: %[[W:.*]] = nn.param @"onnx::MatMul_1234" : tensor<512x1536xf32>
// CHECK-NEXT: %[[G:.*]] = nn.param @model.norm.weight : tensor<512xf16>
// CHECK-NEXT: %[[B:.*]] = nn.param @lm_head.bias : tensor<32000xf32>
// CHECK-NEXT: return %[[EMB]], %[[TIED]], %[[W]], %[[G]], %[[B]] : tensor<32000x512xbf16>, tensor<32000x512xbf16>, tensor<512x1536xf32>, tensor<512xf16>, tensor<32000xf32>
func.func @params() -> (tensor<32000x512xbf16>, tensor<32000x512xbf16>, tensor<512x1536xf32>, tensor<512xf16>, tensor<32000xf32>) {
  %emb = nn.param @"model.embed_tokens.weight" : tensor<32000x512xbf16>
  %tied = nn.param @"model.embed_tokens.weight" : tensor<32000x512xbf16>
  %w = nn.param @"onnx::MatMul_1234" : tensor<512x1536xf32>
  %g = nn.param @"model.norm.weight" : tensor<512xf16>
  %b = nn.param @lm_head.bias : tensor<32000xf32>
  return %emb, %tied, %w, %g, %b : tensor<32000x512xbf16>, tensor<32000x512xbf16>, tensor<512x1536xf32>, tensor<512xf16>, tensor<32000xf32>
}

// Tests nn.constant with scalar, splat and non-splat values of every element
// type class.
// CHECK-LABEL: func.func @constants(
// CHECK-SAME: )
// CHECK-NEXT: %[[SCALE:.*]] = nn.constant dense<1.250000e-01> : tensor<f32>
// CHECK-NEXT: %[[KEEP:.*]] = nn.constant dense<{{\[\[}}true, false], [true, true]]> : tensor<2x2xi1>
// CHECK-NEXT: %[[POS:.*]] = nn.constant dense<[0, 1, 2, 3]> : tensor<4xi64>
// CHECK-NEXT: %[[IDX:.*]] = nn.constant dense<0> : tensor<2xi32>
// CHECK-NEXT: %[[EPS:.*]] = nn.constant dense<9.765620e-04> : tensor<1xbf16>
// CHECK-NEXT: %[[INV:.*]] = nn.constant dense<5.000000e-01> : tensor<16x32xf16>
// CHECK-NEXT: return
func.func @constants() {
  %scale = nn.constant dense<1.250000e-01> : tensor<f32>
  %keep = nn.constant dense<[[true, false], [true, true]]> : tensor<2x2xi1>
  %pos = nn.constant dense<[0, 1, 2, 3]> : tensor<4xi64>
  %idx = nn.constant dense<0> : tensor<2xi32>
  %eps = nn.constant dense<9.765625E-4> : tensor<1xbf16>
  %inv = nn.constant dense<5.000000e-01> : tensor<16x32xf16>
  return
}

// Tests the broadcasting binary ops: arithmetic on f32, bf16 and i64,
// comparisons producing i1, and logic on i1.
// CHECK-LABEL: func.func @binary(
// CHECK-SAME: %[[X:[^:]+]]: tensor<2x16x512xf32>, %[[BIAS:[^:]+]]: tensor<512xf32>, %[[S:[^:]+]]: tensor<f32>, %[[HB:[^:]+]]: tensor<2x16x512xbf16>, %[[HB1:[^:]+]]: tensor<2x1x512xbf16>, %[[IDS:[^:]+]]: tensor<2x16xi64>, %[[ONE:[^:]+]]: tensor<1xi64>, %[[COL:[^:]+]]: tensor<1x16xi64>, %[[ROW:[^:]+]]: tensor<16x1xi64>, %[[PAD:[^:]+]]: tensor<2x1x1x16xi1>, %[[CAUSAL:[^:]+]]: tensor<16x16xi1>, %[[I:[^:]+]]: tensor<2x16xi32>)
// CHECK-NEXT: %[[ADD:.*]] = nn.add %[[X]], %[[BIAS]] : (tensor<2x16x512xf32>, tensor<512xf32>) -> tensor<2x16x512xf32>
// CHECK-NEXT: %[[SUB:.*]] = nn.sub %[[BIAS]], %[[X]] : (tensor<512xf32>, tensor<2x16x512xf32>) -> tensor<2x16x512xf32>
// CHECK-NEXT: %[[MUL:.*]] = nn.mul %[[X]], %[[X]] : (tensor<2x16x512xf32>, tensor<2x16x512xf32>) -> tensor<2x16x512xf32>
// CHECK-NEXT: %[[DIV:.*]] = nn.div %[[X]], %[[S]] : (tensor<2x16x512xf32>, tensor<f32>) -> tensor<2x16x512xf32>
// CHECK-NEXT: %[[POW:.*]] = nn.pow %[[X]], %[[S]] : (tensor<2x16x512xf32>, tensor<f32>) -> tensor<2x16x512xf32>
// CHECK-NEXT: %[[MAX:.*]] = nn.max %[[HB]], %[[HB1]] : (tensor<2x16x512xbf16>, tensor<2x1x512xbf16>) -> tensor<2x16x512xbf16>
// CHECK-NEXT: %[[MIN:.*]] = nn.min %[[HB1]], %[[HB]] : (tensor<2x1x512xbf16>, tensor<2x16x512xbf16>) -> tensor<2x16x512xbf16>
// CHECK-NEXT: %[[IADD:.*]] = nn.add %[[IDS]], %[[ONE]] : (tensor<2x16xi64>, tensor<1xi64>) -> tensor<2x16xi64>
// CHECK-NEXT: %[[IMUL:.*]] = nn.mul %[[I]], %[[I]] : (tensor<2x16xi32>, tensor<2x16xi32>) -> tensor<2x16xi32>
// CHECK-NEXT: %[[EQ:.*]] = nn.equal %[[IDS]], %[[ONE]] : (tensor<2x16xi64>, tensor<1xi64>) -> tensor<2x16xi1>
// CHECK-NEXT: %[[BEQ:.*]] = nn.equal %[[CAUSAL]], %[[CAUSAL]] : (tensor<16x16xi1>, tensor<16x16xi1>) -> tensor<16x16xi1>
// CHECK-NEXT: %[[LT:.*]] = nn.less %[[COL]], %[[ROW]] : (tensor<1x16xi64>, tensor<16x1xi64>) -> tensor<16x16xi1>
// CHECK-NEXT: %[[GT:.*]] = nn.greater %[[X]], %[[S]] : (tensor<2x16x512xf32>, tensor<f32>) -> tensor<2x16x512xi1>
// CHECK-NEXT: %[[AND:.*]] = nn.and %[[PAD]], %[[CAUSAL]] : (tensor<2x1x1x16xi1>, tensor<16x16xi1>) -> tensor<2x1x16x16xi1>
// CHECK-NEXT: %[[OR:.*]] = nn.or %[[CAUSAL]], %[[LT]] : (tensor<16x16xi1>, tensor<16x16xi1>) -> tensor<16x16xi1>
// CHECK-NEXT: return
func.func @binary(%x: tensor<2x16x512xf32>, %bias: tensor<512xf32>, %s: tensor<f32>, %hb: tensor<2x16x512xbf16>, %hb1: tensor<2x1x512xbf16>, %ids: tensor<2x16xi64>, %one: tensor<1xi64>, %col: tensor<1x16xi64>, %row: tensor<16x1xi64>, %pad: tensor<2x1x1x16xi1>, %causal: tensor<16x16xi1>, %i: tensor<2x16xi32>) {
  %add = nn.add %x, %bias : (tensor<2x16x512xf32>, tensor<512xf32>) -> tensor<2x16x512xf32>
  %sub = nn.sub %bias, %x : (tensor<512xf32>, tensor<2x16x512xf32>) -> tensor<2x16x512xf32>
  %mul = nn.mul %x, %x : (tensor<2x16x512xf32>, tensor<2x16x512xf32>) -> tensor<2x16x512xf32>
  %div = nn.div %x, %s : (tensor<2x16x512xf32>, tensor<f32>) -> tensor<2x16x512xf32>
  %pow = nn.pow %x, %s : (tensor<2x16x512xf32>, tensor<f32>) -> tensor<2x16x512xf32>
  %max = nn.max %hb, %hb1 : (tensor<2x16x512xbf16>, tensor<2x1x512xbf16>) -> tensor<2x16x512xbf16>
  %min = nn.min %hb1, %hb : (tensor<2x1x512xbf16>, tensor<2x16x512xbf16>) -> tensor<2x16x512xbf16>
  %iadd = nn.add %ids, %one : (tensor<2x16xi64>, tensor<1xi64>) -> tensor<2x16xi64>
  %imul = nn.mul %i, %i : (tensor<2x16xi32>, tensor<2x16xi32>) -> tensor<2x16xi32>
  %eq = nn.equal %ids, %one : (tensor<2x16xi64>, tensor<1xi64>) -> tensor<2x16xi1>
  %beq = nn.equal %causal, %causal : (tensor<16x16xi1>, tensor<16x16xi1>) -> tensor<16x16xi1>
  %lt = nn.less %col, %row : (tensor<1x16xi64>, tensor<16x1xi64>) -> tensor<16x16xi1>
  %gt = nn.greater %x, %s : (tensor<2x16x512xf32>, tensor<f32>) -> tensor<2x16x512xi1>
  %and = nn.and %pad, %causal : (tensor<2x1x1x16xi1>, tensor<16x16xi1>) -> tensor<2x1x16x16xi1>
  %or = nn.or %causal, %lt : (tensor<16x16xi1>, tensor<16x16xi1>) -> tensor<16x16xi1>
  return
}

// Tests the unary ops, casts between every element type class, and where.
// CHECK-LABEL: func.func @unary(
// CHECK-SAME: %[[X:[^:]+]]: tensor<2x16x512xf32>, %[[H:[^:]+]]: tensor<2x16x512xf16>, %[[IDS:[^:]+]]: tensor<2x16xi64>, %[[M:[^:]+]]: tensor<16x16xi1>, %[[SCORES:[^:]+]]: tensor<2x8x16x16xf32>, %[[S:[^:]+]]: tensor<f32>, %[[ZERO:[^:]+]]: tensor<i64>)
// CHECK-NEXT: %[[NEG:.*]] = nn.neg %[[X]] : tensor<2x16x512xf32>
// CHECK-NEXT: %[[INEG:.*]] = nn.neg %[[IDS]] : tensor<2x16xi64>
// CHECK-NEXT: %[[ABS:.*]] = nn.abs %[[IDS]] : tensor<2x16xi64>
// CHECK-NEXT: %[[SQRT:.*]] = nn.sqrt %[[X]] : tensor<2x16x512xf32>
// CHECK-NEXT: %[[RCP:.*]] = nn.reciprocal %[[X]] : tensor<2x16x512xf32>
// CHECK-NEXT: %[[EXP:.*]] = nn.exp %[[X]] : tensor<2x16x512xf32>
// CHECK-NEXT: %[[LOG:.*]] = nn.log %[[X]] : tensor<2x16x512xf32>
// CHECK-NEXT: %[[ERF:.*]] = nn.erf %[[X]] : tensor<2x16x512xf32>
// CHECK-NEXT: %[[TANH:.*]] = nn.tanh %[[H]] : tensor<2x16x512xf16>
// CHECK-NEXT: %[[SIG:.*]] = nn.sigmoid %[[X]] : tensor<2x16x512xf32>
// CHECK-NEXT: %[[RELU:.*]] = nn.relu %[[X]] : tensor<2x16x512xf32>
// CHECK-NEXT: %[[SIN:.*]] = nn.sin %[[H]] : tensor<2x16x512xf16>
// CHECK-NEXT: %[[COS:.*]] = nn.cos %[[H]] : tensor<2x16x512xf16>
// CHECK-NEXT: %[[NOT:.*]] = nn.not %[[M]] : tensor<16x16xi1>
// CHECK-NEXT: %[[TOBF:.*]] = nn.cast %[[X]] : tensor<2x16x512xf32> to tensor<2x16x512xbf16>
// CHECK-NEXT: %[[FROMH:.*]] = nn.cast %[[H]] : tensor<2x16x512xf16> to tensor<2x16x512xf32>
// CHECK-NEXT: %[[ITOF:.*]] = nn.cast %[[IDS]] : tensor<2x16xi64> to tensor<2x16xf32>
// CHECK-NEXT: %[[NARROW:.*]] = nn.cast %[[IDS]] : tensor<2x16xi64> to tensor<2x16xi32>
// CHECK-NEXT: %[[BTOF:.*]] = nn.cast %[[M]] : tensor<16x16xi1> to tensor<16x16xf32>
// CHECK-NEXT: %[[FTOB:.*]] = nn.cast %[[X]] : tensor<2x16x512xf32> to tensor<2x16x512xi1>
// CHECK-NEXT: %[[WHERE:.*]] = nn.where %[[M]], %[[SCORES]], %[[S]] : (tensor<16x16xi1>, tensor<2x8x16x16xf32>, tensor<f32>) -> tensor<2x8x16x16xf32>
// CHECK-NEXT: %[[IWHERE:.*]] = nn.where %[[M]], %[[ZERO]], %[[ZERO]] : (tensor<16x16xi1>, tensor<i64>, tensor<i64>) -> tensor<16x16xi64>
// CHECK-NEXT: return
func.func @unary(%x: tensor<2x16x512xf32>, %h: tensor<2x16x512xf16>, %ids: tensor<2x16xi64>, %m: tensor<16x16xi1>, %scores: tensor<2x8x16x16xf32>, %s: tensor<f32>, %zero: tensor<i64>) {
  %neg = nn.neg %x : tensor<2x16x512xf32>
  %ineg = nn.neg %ids : tensor<2x16xi64>
  %abs = nn.abs %ids : tensor<2x16xi64>
  %sqrt = nn.sqrt %x : tensor<2x16x512xf32>
  %rcp = nn.reciprocal %x : tensor<2x16x512xf32>
  %exp = nn.exp %x : tensor<2x16x512xf32>
  %log = nn.log %x : tensor<2x16x512xf32>
  %erf = nn.erf %x : tensor<2x16x512xf32>
  %tanh = nn.tanh %h : tensor<2x16x512xf16>
  %sig = nn.sigmoid %x : tensor<2x16x512xf32>
  %relu = nn.relu %x : tensor<2x16x512xf32>
  %sin = nn.sin %h : tensor<2x16x512xf16>
  %cos = nn.cos %h : tensor<2x16x512xf16>
  %not = nn.not %m : tensor<16x16xi1>
  %tobf = nn.cast %x : tensor<2x16x512xf32> to tensor<2x16x512xbf16>
  %fromh = nn.cast %h : tensor<2x16x512xf16> to tensor<2x16x512xf32>
  %itof = nn.cast %ids : tensor<2x16xi64> to tensor<2x16xf32>
  %narrow = nn.cast %ids : tensor<2x16xi64> to tensor<2x16xi32>
  %btof = nn.cast %m : tensor<16x16xi1> to tensor<16x16xf32>
  %ftob = nn.cast %x : tensor<2x16x512xf32> to tensor<2x16x512xi1>
  %where = nn.where %m, %scores, %s : (tensor<16x16xi1>, tensor<2x8x16x16xf32>, tensor<f32>) -> tensor<2x8x16x16xf32>
  %iwhere = nn.where %m, %zero, %zero : (tensor<16x16xi1>, tensor<i64>, tensor<i64>) -> tensor<16x16xi64>
  return
}

// Tests reshape, transpose, broadcast, concat, slice (positive and negative
// steps, an empty result, steps of INT64_MAX and INT64_MIN that take one
// element), gather, trilu, cumsum and band.
// CHECK-LABEL: func.func @shape(
// CHECK-SAME: %[[X:[^:]+]]: tensor<2x16x512xf32>, %[[QKV:[^:]+]]: tensor<2x16x1536xf32>, %[[Q:[^:]+]]: tensor<2x16x8x64xf32>, %[[W:[^:]+]]: tensor<512x1536xf32>, %[[POS:[^:]+]]: tensor<1x16xi64>, %[[S:[^:]+]]: tensor<f32>, %[[ONE:[^:]+]]: tensor<1xf32>, %[[M:[^:]+]]: tensor<16x16xi1>, %[[TABLE:[^:]+]]: tensor<32000x512xf32>, %[[IDS:[^:]+]]: tensor<2x16xi64>, %[[LAST:[^:]+]]: tensor<i32>, %[[SQ:[^:]+]]: tensor<16x16xf32>)
// CHECK-NEXT: %[[SPLIT:.*]] = nn.reshape %[[X]] : tensor<2x16x512xf32> to tensor<2x16x8x64xf32>
// CHECK-NEXT: %[[FLAT:.*]] = nn.reshape %[[X]] : tensor<2x16x512xf32> to tensor<32x512xf32>
// CHECK-NEXT: %[[SCALAR:.*]] = nn.reshape %[[ONE]] : tensor<1xf32> to tensor<f32>
// CHECK-NEXT: %[[BMASK:.*]] = nn.reshape %[[M]] : tensor<16x16xi1> to tensor<1x1x16x16xi1>
// CHECK-NEXT: %[[HEADS:.*]] = nn.transpose %[[Q]] [0, 2, 1, 3] : tensor<2x16x8x64xf32> to tensor<2x8x16x64xf32>
// CHECK-NEXT: %[[WT:.*]] = nn.transpose %[[W]] [1, 0] : tensor<512x1536xf32> to tensor<1536x512xf32>
// CHECK-NEXT: %[[BPOS:.*]] = nn.broadcast %[[POS]] : tensor<1x16xi64> to tensor<2x16xi64>
// CHECK-NEXT: %[[FILL:.*]] = nn.broadcast %[[S]] : tensor<f32> to tensor<16x16xf32>
// CHECK-NEXT: %[[BM:.*]] = nn.broadcast %[[M]] : tensor<16x16xi1> to tensor<2x1x16x16xi1>
// CHECK-NEXT: %[[CAT:.*]] = nn.concat %[[X]], %[[X]], %[[X]] {axis = 2 : i64} : (tensor<2x16x512xf32>, tensor<2x16x512xf32>, tensor<2x16x512xf32>) -> tensor<2x16x1536xf32>
// CHECK-NEXT: %[[CAT1:.*]] = nn.concat %[[X]] {axis = 0 : i64} : (tensor<2x16x512xf32>) -> tensor<2x16x512xf32>
// CHECK-NEXT: %[[ICAT:.*]] = nn.concat %[[POS]], %[[POS]] {axis = 0 : i64} : (tensor<1x16xi64>, tensor<1x16xi64>) -> tensor<2x16xi64>
// CHECK-NEXT: %[[QS:.*]] = nn.slice %[[QKV]] [0, 0, 0] [2, 16, 512] [1, 1, 1] : tensor<2x16x1536xf32> to tensor<2x16x512xf32>
// CHECK-NEXT: %[[VS:.*]] = nn.slice %[[QKV]] [0, 0, 1024] [2, 16, 1536] [1, 1, 1] : tensor<2x16x1536xf32> to tensor<2x16x512xf32>
// CHECK-NEXT: %[[REV:.*]] = nn.slice %[[X]] [1, 15, 511] [-1, -1, -1] [-1, -1, -2] : tensor<2x16x512xf32> to tensor<2x16x256xf32>
// CHECK-NEXT: %[[STRIDED:.*]] = nn.slice %[[X]] [0, 0, 1] [2, 16, 512] [1, 3, 2] : tensor<2x16x512xf32> to tensor<2x6x256xf32>
// CHECK-NEXT: %[[EMPTY:.*]] = nn.slice %[[X]] [0, 4, 0] [2, 4, 512] [1, 1, 1] : tensor<2x16x512xf32> to tensor<2x0x512xf32>
// CHECK-NEXT: %[[FIRST:.*]] = nn.slice %[[X]] [0, 0, 0] [2, 16, 512] [1, 9223372036854775807, 1] : tensor<2x16x512xf32> to tensor<2x1x512xf32>
// CHECK-NEXT: %[[FINAL:.*]] = nn.slice %[[X]] [0, 15, 0] [2, -1, 512] [1, -9223372036854775808, 1] : tensor<2x16x512xf32> to tensor<2x1x512xf32>
// CHECK-NEXT: %[[EMB:.*]] = nn.gather %[[TABLE]], %[[IDS]] {axis = 0 : i64} : (tensor<32000x512xf32>, tensor<2x16xi64>) -> tensor<2x16x512xf32>
// CHECK-NEXT: %[[TOK:.*]] = nn.gather %[[X]], %[[LAST]] {axis = 1 : i64} : (tensor<2x16x512xf32>, tensor<i32>) -> tensor<2x512xf32>
// CHECK-NEXT: %[[LOWER:.*]] = nn.trilu %[[SQ]] {k = 0 : i64, upper = false} : tensor<16x16xf32>
// CHECK-NEXT: %[[UPPER:.*]] = nn.trilu %[[BM]] {k = 1 : i64, upper = true} : tensor<2x1x16x16xi1>
// CHECK-NEXT: %[[BAND:.*]] = nn.trilu %[[SQ]] {k = -4 : i64, upper = true} : tensor<16x16xf32>
// CHECK-NEXT: %[[CPOS:.*]] = nn.cumsum %[[IDS]] {axis = 1 : i64, exclusive = false, reverse = false} : tensor<2x16xi64>
// CHECK-NEXT: %[[CX:.*]] = nn.cumsum %[[X]] {axis = 0 : i64, exclusive = true, reverse = true} : tensor<2x16x512xf32>
// CHECK-NEXT: %[[DIAG:.*]] = nn.slice %[[X]] [0, 0, 0] [1, 1, 31] [1, 1, 1] : tensor<2x16x512xf32> to tensor<1x1x31xf32>
// CHECK-NEXT: %[[DIAG1:.*]] = nn.reshape %[[DIAG]] : tensor<1x1x31xf32> to tensor<31xf32>
// CHECK-NEXT: %[[BAND:.*]] = nn.band %[[DIAG1]] : tensor<31xf32> to tensor<2x1x16x16xf32>
// CHECK-NEXT: nn.topk_indices %{{.*}} {k = 2 : i64, largest = true} : tensor<2x16x512xf32> to tensor<2x16x2xi64>
// CHECK-NEXT: return
func.func @shape(%x: tensor<2x16x512xf32>, %qkv: tensor<2x16x1536xf32>, %q: tensor<2x16x8x64xf32>, %w: tensor<512x1536xf32>, %pos: tensor<1x16xi64>, %s: tensor<f32>, %one: tensor<1xf32>, %m: tensor<16x16xi1>, %table: tensor<32000x512xf32>, %ids: tensor<2x16xi64>, %last: tensor<i32>, %sq: tensor<16x16xf32>) {
  %split = nn.reshape %x : tensor<2x16x512xf32> to tensor<2x16x8x64xf32>
  %flat = nn.reshape %x : tensor<2x16x512xf32> to tensor<32x512xf32>
  %scalar = nn.reshape %one : tensor<1xf32> to tensor<f32>
  %bmask = nn.reshape %m : tensor<16x16xi1> to tensor<1x1x16x16xi1>
  %heads = nn.transpose %q [0, 2, 1, 3] : tensor<2x16x8x64xf32> to tensor<2x8x16x64xf32>
  %wt = nn.transpose %w [1, 0] : tensor<512x1536xf32> to tensor<1536x512xf32>
  %bpos = nn.broadcast %pos : tensor<1x16xi64> to tensor<2x16xi64>
  %fill = nn.broadcast %s : tensor<f32> to tensor<16x16xf32>
  %bm = nn.broadcast %m : tensor<16x16xi1> to tensor<2x1x16x16xi1>
  %cat = nn.concat %x, %x, %x {axis = 2 : i64} : (tensor<2x16x512xf32>, tensor<2x16x512xf32>, tensor<2x16x512xf32>) -> tensor<2x16x1536xf32>
  %cat1 = nn.concat %x {axis = 0 : i64} : (tensor<2x16x512xf32>) -> tensor<2x16x512xf32>
  %icat = nn.concat %pos, %pos {axis = 0 : i64} : (tensor<1x16xi64>, tensor<1x16xi64>) -> tensor<2x16xi64>
  %qs = nn.slice %qkv [0, 0, 0] [2, 16, 512] [1, 1, 1] : tensor<2x16x1536xf32> to tensor<2x16x512xf32>
  %vs = nn.slice %qkv [0, 0, 1024] [2, 16, 1536] [1, 1, 1] : tensor<2x16x1536xf32> to tensor<2x16x512xf32>
  %rev = nn.slice %x [1, 15, 511] [-1, -1, -1] [-1, -1, -2] : tensor<2x16x512xf32> to tensor<2x16x256xf32>
  %strided = nn.slice %x [0, 0, 1] [2, 16, 512] [1, 3, 2] : tensor<2x16x512xf32> to tensor<2x6x256xf32>
  %empty = nn.slice %x [0, 4, 0] [2, 4, 512] [1, 1, 1] : tensor<2x16x512xf32> to tensor<2x0x512xf32>
  %first = nn.slice %x [0, 0, 0] [2, 16, 512] [1, 9223372036854775807, 1] : tensor<2x16x512xf32> to tensor<2x1x512xf32>
  %final = nn.slice %x [0, 15, 0] [2, -1, 512] [1, -9223372036854775808, 1] : tensor<2x16x512xf32> to tensor<2x1x512xf32>
  %emb = nn.gather %table, %ids {axis = 0 : i64} : (tensor<32000x512xf32>, tensor<2x16xi64>) -> tensor<2x16x512xf32>
  %tok = nn.gather %x, %last {axis = 1 : i64} : (tensor<2x16x512xf32>, tensor<i32>) -> tensor<2x512xf32>
  %lower = nn.trilu %sq {k = 0 : i64, upper = false} : tensor<16x16xf32>
  %upper = nn.trilu %bm {k = 1 : i64, upper = true} : tensor<2x1x16x16xi1>
  %band = nn.trilu %sq {k = -4 : i64, upper = true} : tensor<16x16xf32>
  %cpos = nn.cumsum %ids {axis = 1 : i64, exclusive = false, reverse = false} : tensor<2x16xi64>
  %cx = nn.cumsum %x {axis = 0 : i64, exclusive = true, reverse = true} : tensor<2x16x512xf32>
  %diag = nn.slice %x [0, 0, 0] [1, 1, 31] [1, 1, 1] : tensor<2x16x512xf32> to tensor<1x1x31xf32>
  %diag1 = nn.reshape %diag : tensor<1x1x31xf32> to tensor<31xf32>
  %bandm = nn.band %diag1 : tensor<31xf32> to tensor<2x1x16x16xf32>
  %top = nn.topk_indices %x {k = 2 : i64, largest = true} : tensor<2x16x512xf32> to tensor<2x16x2xi64>
  return
}

// Tests the reductions with and without keepdims, softmax, log_softmax and
// matmul with batch broadcasting and rank-1 promotion.
// CHECK-LABEL: func.func @reduce_softmax_matmul(
// CHECK-SAME: %[[X:[^:]+]]: tensor<2x16x512xf32>, %[[IDS:[^:]+]]: tensor<2x16xi64>, %[[SCORES:[^:]+]]: tensor<2x8x16x16xf32>, %[[LOGITS:[^:]+]]: tensor<2x16x32000xf32>, %[[W:[^:]+]]: tensor<512x1536xf32>, %[[Q:[^:]+]]: tensor<2x8x16x64xf32>, %[[KT:[^:]+]]: tensor<2x8x64x16xf32>, %[[QB:[^:]+]]: tensor<2x1x16x64xf32>, %[[KB:[^:]+]]: tensor<8x64x16xf32>, %[[VEC:[^:]+]]: tensor<512xf32>, %[[HD:[^:]+]]: tensor<64xf32>, %[[HB:[^:]+]]: tensor<2x16x512xbf16>, %[[WB:[^:]+]]: tensor<512x1376xbf16>)
// CHECK-NEXT: %[[MEAN:.*]] = nn.reduce_mean %[[X]] {axes = array<i64: 2>, keepdims = true} : tensor<2x16x512xf32> to tensor<2x16x1xf32>
// CHECK-NEXT: %[[SUM:.*]] = nn.reduce_sum %[[X]] {axes = array<i64: 0, 1>, keepdims = false} : tensor<2x16x512xf32> to tensor<512xf32>
// CHECK-NEXT: %[[MAX:.*]] = nn.reduce_max %[[SCORES]] {axes = array<i64: 3>, keepdims = false} : tensor<2x8x16x16xf32> to tensor<2x8x16xf32>
// CHECK-NEXT: %[[COUNT:.*]] = nn.reduce_sum %[[IDS]] {axes = array<i64: 0, 1>, keepdims = false} : tensor<2x16xi64> to tensor<i64>
// CHECK-NEXT: %[[ALL:.*]] = nn.reduce_max %[[IDS]] {axes = array<i64: 0, 1>, keepdims = true} : tensor<2x16xi64> to tensor<1x1xi64>
// CHECK-NEXT: %[[P:.*]] = nn.softmax %[[SCORES]] {axis = 3 : i64} : tensor<2x8x16x16xf32>
// CHECK-NEXT: %[[LP:.*]] = nn.log_softmax %[[LOGITS]] {axis = 2 : i64} : tensor<2x16x32000xf32>
// CHECK-NEXT: %[[PROJ:.*]] = nn.matmul %[[X]], %[[W]] : (tensor<2x16x512xf32>, tensor<512x1536xf32>) -> tensor<2x16x1536xf32>
// CHECK-NEXT: %[[QK:.*]] = nn.matmul %[[Q]], %[[KT]] : (tensor<2x8x16x64xf32>, tensor<2x8x64x16xf32>) -> tensor<2x8x16x16xf32>
// CHECK-NEXT: %[[BQK:.*]] = nn.matmul %[[QB]], %[[KB]] : (tensor<2x1x16x64xf32>, tensor<8x64x16xf32>) -> tensor<2x8x16x16xf32>
// CHECK-NEXT: %[[VM:.*]] = nn.matmul %[[VEC]], %[[W]] : (tensor<512xf32>, tensor<512x1536xf32>) -> tensor<1536xf32>
// CHECK-NEXT: %[[MV:.*]] = nn.matmul %[[X]], %[[VEC]] : (tensor<2x16x512xf32>, tensor<512xf32>) -> tensor<2x16xf32>
// CHECK-NEXT: %[[DOT:.*]] = nn.matmul %[[HD]], %[[HD]] : (tensor<64xf32>, tensor<64xf32>) -> tensor<f32>
// CHECK-NEXT: %[[BF:.*]] = nn.matmul %[[HB]], %[[WB]] : (tensor<2x16x512xbf16>, tensor<512x1376xbf16>) -> tensor<2x16x1376xbf16>
// CHECK-NEXT: return
func.func @reduce_softmax_matmul(%x: tensor<2x16x512xf32>, %ids: tensor<2x16xi64>, %scores: tensor<2x8x16x16xf32>, %logits: tensor<2x16x32000xf32>, %w: tensor<512x1536xf32>, %q: tensor<2x8x16x64xf32>, %kt: tensor<2x8x64x16xf32>, %qb: tensor<2x1x16x64xf32>, %kb: tensor<8x64x16xf32>, %vec: tensor<512xf32>, %hd: tensor<64xf32>, %hb: tensor<2x16x512xbf16>, %wb: tensor<512x1376xbf16>) {
  %mean = nn.reduce_mean %x {axes = array<i64: 2>, keepdims = true} : tensor<2x16x512xf32> to tensor<2x16x1xf32>
  %sum = nn.reduce_sum %x {axes = array<i64: 0, 1>, keepdims = false} : tensor<2x16x512xf32> to tensor<512xf32>
  %max = nn.reduce_max %scores {axes = array<i64: 3>, keepdims = false} : tensor<2x8x16x16xf32> to tensor<2x8x16xf32>
  %count = nn.reduce_sum %ids {axes = array<i64: 0, 1>, keepdims = false} : tensor<2x16xi64> to tensor<i64>
  %all = nn.reduce_max %ids {axes = array<i64: 0, 1>, keepdims = true} : tensor<2x16xi64> to tensor<1x1xi64>
  %p = nn.softmax %scores {axis = 3 : i64} : tensor<2x8x16x16xf32>
  %lp = nn.log_softmax %logits {axis = 2 : i64} : tensor<2x16x32000xf32>
  %proj = nn.matmul %x, %w : (tensor<2x16x512xf32>, tensor<512x1536xf32>) -> tensor<2x16x1536xf32>
  %qk = nn.matmul %q, %kt : (tensor<2x8x16x64xf32>, tensor<2x8x64x16xf32>) -> tensor<2x8x16x16xf32>
  %bqk = nn.matmul %qb, %kb : (tensor<2x1x16x64xf32>, tensor<8x64x16xf32>) -> tensor<2x8x16x16xf32>
  %vm = nn.matmul %vec, %w : (tensor<512xf32>, tensor<512x1536xf32>) -> tensor<1536xf32>
  %mv = nn.matmul %x, %vec : (tensor<2x16x512xf32>, tensor<512xf32>) -> tensor<2x16xf32>
  %dot = nn.matmul %hd, %hd : (tensor<64xf32>, tensor<64xf32>) -> tensor<f32>
  %bf = nn.matmul %hb, %wb : (tensor<2x16x512xbf16>, tensor<512x1376xbf16>) -> tensor<2x16x1376xbf16>
  return
}

// Tests nn.linear with and without bias, with both weight layouts, on f32,
// bf16 and a rank-1 input.
// CHECK-LABEL: func.func @linear(
// CHECK-SAME: %[[X:[^:]+]]: tensor<2x16x512xf32>, %[[W:[^:]+]]: tensor<512x1536xf32>, %[[B:[^:]+]]: tensor<1536xf32>, %[[XB:[^:]+]]: tensor<2x16x512xbf16>, %[[WT:[^:]+]]: tensor<1376x512xbf16>, %[[BT:[^:]+]]: tensor<1376xbf16>, %[[VEC:[^:]+]]: tensor<512xf32>)
// CHECK-NEXT: %[[QKV:.*]] = nn.linear %[[X]], %[[W]], %[[B]] {transpose_weight = false} : (tensor<2x16x512xf32>, tensor<512x1536xf32>, tensor<1536xf32>) -> tensor<2x16x1536xf32>
// CHECK-NEXT: %[[UP:.*]] = nn.linear %[[XB]], %[[WT]] {transpose_weight = true} : (tensor<2x16x512xbf16>, tensor<1376x512xbf16>) -> tensor<2x16x1376xbf16>
// CHECK-NEXT: %[[UPB:.*]] = nn.linear %[[XB]], %[[WT]], %[[BT]] {transpose_weight = true} : (tensor<2x16x512xbf16>, tensor<1376x512xbf16>, tensor<1376xbf16>) -> tensor<2x16x1376xbf16>
// CHECK-NEXT: %[[V:.*]] = nn.linear %[[VEC]], %[[W]] {transpose_weight = false} : (tensor<512xf32>, tensor<512x1536xf32>) -> tensor<1536xf32>
// CHECK-NEXT: return
func.func @linear(%x: tensor<2x16x512xf32>, %w: tensor<512x1536xf32>, %b: tensor<1536xf32>, %xb: tensor<2x16x512xbf16>, %wt: tensor<1376x512xbf16>, %bt: tensor<1376xbf16>, %vec: tensor<512xf32>) {
  %qkv = nn.linear %x, %w, %b {transpose_weight = false} : (tensor<2x16x512xf32>, tensor<512x1536xf32>, tensor<1536xf32>) -> tensor<2x16x1536xf32>
  %up = nn.linear %xb, %wt {transpose_weight = true} : (tensor<2x16x512xbf16>, tensor<1376x512xbf16>) -> tensor<2x16x1376xbf16>
  %upb = nn.linear %xb, %wt, %bt {transpose_weight = true} : (tensor<2x16x512xbf16>, tensor<1376x512xbf16>, tensor<1376xbf16>) -> tensor<2x16x1376xbf16>
  %v = nn.linear %vec, %w {transpose_weight = false} : (tensor<512xf32>, tensor<512x1536xf32>) -> tensor<1536xf32>
  return
}

// Tests layer_norm with and without bias and over more than one dimension,
// and rms_norm on f16.
// CHECK-LABEL: func.func @norms(
// CHECK-SAME: %[[X:[^:]+]]: tensor<2x16x512xf32>, %[[G:[^:]+]]: tensor<512xf32>, %[[B:[^:]+]]: tensor<512xf32>, %[[G2:[^:]+]]: tensor<16x512xf32>, %[[B2:[^:]+]]: tensor<16x512xf32>, %[[XH:[^:]+]]: tensor<2x16x512xf16>, %[[GH:[^:]+]]: tensor<512xf16>, %[[XB:[^:]+]]: tensor<2x16x512xbf16>, %[[GB:[^:]+]]: tensor<512xbf16>)
// CHECK-NEXT: %[[LN:.*]] = nn.layer_norm %[[X]], %[[G]], %[[B]] {axis = 2 : i64, epsilon = 9.99999974E-6 : f32} : (tensor<2x16x512xf32>, tensor<512xf32>, tensor<512xf32>) -> tensor<2x16x512xf32>
// CHECK-NEXT: %[[LNNB:.*]] = nn.layer_norm %[[X]], %[[G]] {axis = 2 : i64, epsilon = 9.99999974E-6 : f32} : (tensor<2x16x512xf32>, tensor<512xf32>) -> tensor<2x16x512xf32>
// CHECK-NEXT: %[[LN2:.*]] = nn.layer_norm %[[X]], %[[G2]], %[[B2]] {axis = 1 : i64, epsilon = 0.000000e+00 : f32} : (tensor<2x16x512xf32>, tensor<16x512xf32>, tensor<16x512xf32>) -> tensor<2x16x512xf32>
// CHECK-NEXT: %[[RMS:.*]] = nn.rms_norm %[[XH]], %[[GH]] {axis = 2 : i64, epsilon = 9.99999997E-7 : f32} : (tensor<2x16x512xf16>, tensor<512xf16>) -> tensor<2x16x512xf16>
// CHECK-NEXT: %[[RMSB:.*]] = nn.rms_norm %[[XB]], %[[GB]] {axis = 2 : i64, epsilon = 9.99999974E-6 : f32} : (tensor<2x16x512xbf16>, tensor<512xbf16>) -> tensor<2x16x512xbf16>
// CHECK-NEXT: return
func.func @norms(%x: tensor<2x16x512xf32>, %g: tensor<512xf32>, %b: tensor<512xf32>, %g2: tensor<16x512xf32>, %b2: tensor<16x512xf32>, %xh: tensor<2x16x512xf16>, %gh: tensor<512xf16>, %xb: tensor<2x16x512xbf16>, %gb: tensor<512xbf16>) {
  %ln = nn.layer_norm %x, %g, %b {axis = 2 : i64, epsilon = 9.99999974E-6 : f32} : (tensor<2x16x512xf32>, tensor<512xf32>, tensor<512xf32>) -> tensor<2x16x512xf32>
  %lnnb = nn.layer_norm %x, %g {axis = 2 : i64, epsilon = 9.99999974E-6 : f32} : (tensor<2x16x512xf32>, tensor<512xf32>) -> tensor<2x16x512xf32>
  %ln2 = nn.layer_norm %x, %g2, %b2 {axis = 1 : i64, epsilon = 0.000000e+00 : f32} : (tensor<2x16x512xf32>, tensor<16x512xf32>, tensor<16x512xf32>) -> tensor<2x16x512xf32>
  %rms = nn.rms_norm %xh, %gh {axis = 2 : i64, epsilon = 9.99999997E-7 : f32} : (tensor<2x16x512xf16>, tensor<512xf16>) -> tensor<2x16x512xf16>
  %rmsb = nn.rms_norm %xb, %gb {axis = 2 : i64, epsilon = 9.99999974E-6 : f32} : (tensor<2x16x512xbf16>, tensor<512xbf16>) -> tensor<2x16x512xbf16>
  return
}

// Tests rank-4 attention [B, H, S, D] with grouped-query heads: causal with
// no mask, an additive f32 mask, an i1 keep-mask, and cross-attention with
// Sq != Sk and a value head size Dv != D.
// CHECK-LABEL: func.func @attention_bhsd(
// CHECK-SAME: %[[Q:[^:]+]]: tensor<2x8x16x64xf32>, %[[K:[^:]+]]: tensor<2x2x16x64xf32>, %[[V:[^:]+]]: tensor<2x2x16x64xf32>, %[[ADD:[^:]+]]: tensor<2x1x16x16xf32>, %[[KEEP:[^:]+]]: tensor<16x16xi1>, %[[CK:[^:]+]]: tensor<2x8x32x64xf32>, %[[CV:[^:]+]]: tensor<2x8x32x128xf32>, %[[PAD:[^:]+]]: tensor<2x1x1x32xi1>, %[[QB:[^:]+]]: tensor<2x8x16x64xbf16>, %[[KB:[^:]+]]: tensor<2x1x16x64xbf16>, %[[MB:[^:]+]]: tensor<16xbf16>)
// CHECK-NEXT: %[[CAUSAL:.*]] = nn.attention %[[Q]], %[[K]], %[[V]] {causal = true, num_heads = 8 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xf32>, tensor<2x2x16x64xf32>, tensor<2x2x16x64xf32>) -> tensor<2x8x16x64xf32>
// CHECK-NEXT: %[[ADDITIVE:.*]] = nn.attention %[[Q]], %[[K]], %[[V]], %[[ADD]] {causal = false, num_heads = 8 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xf32>, tensor<2x2x16x64xf32>, tensor<2x2x16x64xf32>, tensor<2x1x16x16xf32>) -> tensor<2x8x16x64xf32>
// CHECK-NEXT: %[[KEPT:.*]] = nn.attention %[[Q]], %[[K]], %[[V]], %[[KEEP]] {causal = false, num_heads = 8 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xf32>, tensor<2x2x16x64xf32>, tensor<2x2x16x64xf32>, tensor<16x16xi1>) -> tensor<2x8x16x64xf32>
// CHECK-NEXT: %[[CROSS:.*]] = nn.attention %[[Q]], %[[CK]], %[[CV]], %[[PAD]] {causal = false, num_heads = 8 : i64, num_kv_heads = 8 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xf32>, tensor<2x8x32x64xf32>, tensor<2x8x32x128xf32>, tensor<2x1x1x32xi1>) -> tensor<2x8x16x128xf32>
// CHECK-NEXT: %[[MQA:.*]] = nn.attention %[[QB]], %[[KB]], %[[KB]], %[[MB]] {causal = true, num_heads = 8 : i64, num_kv_heads = 1 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xbf16>, tensor<2x1x16x64xbf16>, tensor<2x1x16x64xbf16>, tensor<16xbf16>) -> tensor<2x8x16x64xbf16>
// CHECK-NEXT: return
func.func @attention_bhsd(%q: tensor<2x8x16x64xf32>, %k: tensor<2x2x16x64xf32>, %v: tensor<2x2x16x64xf32>, %add: tensor<2x1x16x16xf32>, %keep: tensor<16x16xi1>, %ck: tensor<2x8x32x64xf32>, %cv: tensor<2x8x32x128xf32>, %pad: tensor<2x1x1x32xi1>, %qb: tensor<2x8x16x64xbf16>, %kb: tensor<2x1x16x64xbf16>, %mb: tensor<16xbf16>) {
  %causal = nn.attention %q, %k, %v {causal = true, num_heads = 8 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xf32>, tensor<2x2x16x64xf32>, tensor<2x2x16x64xf32>) -> tensor<2x8x16x64xf32>
  %additive = nn.attention %q, %k, %v, %add {causal = false, num_heads = 8 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xf32>, tensor<2x2x16x64xf32>, tensor<2x2x16x64xf32>, tensor<2x1x16x16xf32>) -> tensor<2x8x16x64xf32>
  %kept = nn.attention %q, %k, %v, %keep {causal = false, num_heads = 8 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xf32>, tensor<2x2x16x64xf32>, tensor<2x2x16x64xf32>, tensor<16x16xi1>) -> tensor<2x8x16x64xf32>
  %cross = nn.attention %q, %ck, %cv, %pad {causal = false, num_heads = 8 : i64, num_kv_heads = 8 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xf32>, tensor<2x8x32x64xf32>, tensor<2x8x32x128xf32>, tensor<2x1x1x32xi1>) -> tensor<2x8x16x128xf32>
  %mqa = nn.attention %qb, %kb, %kb, %mb {causal = true, num_heads = 8 : i64, num_kv_heads = 1 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xbf16>, tensor<2x1x16x64xbf16>, tensor<2x1x16x64xbf16>, tensor<16xbf16>) -> tensor<2x8x16x64xbf16>
  return
}

// Tests rank-3 attention with heads folded into the hidden dimension:
// grouped-query without a mask, and multi-head with f16 and i1 masks.
// CHECK-LABEL: func.func @attention_bsh(
// CHECK-SAME: %[[Q:[^:]+]]: tensor<2x16x512xf32>, %[[K:[^:]+]]: tensor<2x16x128xf32>, %[[V:[^:]+]]: tensor<2x16x128xf32>, %[[QH:[^:]+]]: tensor<2x16x512xf16>, %[[MH:[^:]+]]: tensor<1x1x16x16xf16>, %[[KEEP:[^:]+]]: tensor<2x8x16x16xi1>)
// CHECK-NEXT: %[[GQA:.*]] = nn.attention %[[Q]], %[[K]], %[[V]] {causal = true, num_heads = 8 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x16x512xf32>, tensor<2x16x128xf32>, tensor<2x16x128xf32>) -> tensor<2x16x512xf32>
// CHECK-NEXT: %[[MHA:.*]] = nn.attention %[[QH]], %[[QH]], %[[QH]], %[[MH]] {causal = false, num_heads = 8 : i64, num_kv_heads = 8 : i64, scale = 1.250000e-01 : f32} : (tensor<2x16x512xf16>, tensor<2x16x512xf16>, tensor<2x16x512xf16>, tensor<1x1x16x16xf16>) -> tensor<2x16x512xf16>
// CHECK-NEXT: %[[KEPT:.*]] = nn.attention %[[Q]], %[[Q]], %[[Q]], %[[KEEP]] {causal = false, num_heads = 8 : i64, num_kv_heads = 8 : i64, scale = 1.250000e-01 : f32} : (tensor<2x16x512xf32>, tensor<2x16x512xf32>, tensor<2x16x512xf32>, tensor<2x8x16x16xi1>) -> tensor<2x16x512xf32>
// CHECK-NEXT: return
func.func @attention_bsh(%q: tensor<2x16x512xf32>, %k: tensor<2x16x128xf32>, %v: tensor<2x16x128xf32>, %qh: tensor<2x16x512xf16>, %mh: tensor<1x1x16x16xf16>, %keep: tensor<2x8x16x16xi1>) {
  %gqa = nn.attention %q, %k, %v {causal = true, num_heads = 8 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x16x512xf32>, tensor<2x16x128xf32>, tensor<2x16x128xf32>) -> tensor<2x16x512xf32>
  %mha = nn.attention %qh, %qh, %qh, %mh {causal = false, num_heads = 8 : i64, num_kv_heads = 8 : i64, scale = 1.250000e-01 : f32} : (tensor<2x16x512xf16>, tensor<2x16x512xf16>, tensor<2x16x512xf16>, tensor<1x1x16x16xf16>) -> tensor<2x16x512xf16>
  %kept = nn.attention %q, %q, %q, %keep {causal = false, num_heads = 8 : i64, num_kv_heads = 8 : i64, scale = 1.250000e-01 : f32} : (tensor<2x16x512xf32>, tensor<2x16x512xf32>, tensor<2x16x512xf32>, tensor<2x8x16x16xi1>) -> tensor<2x16x512xf32>
  return
}

// Tests rotary with [S, R/2] and [B, S, R/2] tables, both pairings, and a
// partial rotary dimension (GPT-NeoX rotary_pct).
// CHECK-LABEL: func.func @rotary(
// CHECK-SAME: %[[X:[^:]+]]: tensor<2x8x16x64xf32>, %[[COS:[^:]+]]: tensor<16x32xf32>, %[[SIN:[^:]+]]: tensor<16x32xf32>, %[[BCOS:[^:]+]]: tensor<2x16x32xf32>, %[[BSIN:[^:]+]]: tensor<2x16x32xf32>, %[[PCOS:[^:]+]]: tensor<16x8xf32>, %[[PSIN:[^:]+]]: tensor<16x8xf32>, %[[XB:[^:]+]]: tensor<2x2x16x64xbf16>, %[[CB:[^:]+]]: tensor<16x32xbf16>)
// CHECK-NEXT: %[[HALF:.*]] = nn.rotary %[[X]], %[[COS]], %[[SIN]] {interleaved = false, rotary_dim = 64 : i64} : (tensor<2x8x16x64xf32>, tensor<16x32xf32>, tensor<16x32xf32>) -> tensor<2x8x16x64xf32>
// CHECK-NEXT: %[[PAIRS:.*]] = nn.rotary %[[X]], %[[BCOS]], %[[BSIN]] {interleaved = true, rotary_dim = 64 : i64} : (tensor<2x8x16x64xf32>, tensor<2x16x32xf32>, tensor<2x16x32xf32>) -> tensor<2x8x16x64xf32>
// CHECK-NEXT: %[[PARTIAL:.*]] = nn.rotary %[[X]], %[[PCOS]], %[[PSIN]] {interleaved = false, rotary_dim = 16 : i64} : (tensor<2x8x16x64xf32>, tensor<16x8xf32>, tensor<16x8xf32>) -> tensor<2x8x16x64xf32>
// CHECK-NEXT: %[[KV:.*]] = nn.rotary %[[XB]], %[[CB]], %[[CB]] {interleaved = false, rotary_dim = 64 : i64} : (tensor<2x2x16x64xbf16>, tensor<16x32xbf16>, tensor<16x32xbf16>) -> tensor<2x2x16x64xbf16>
// CHECK-NEXT: return
func.func @rotary(%x: tensor<2x8x16x64xf32>, %cos: tensor<16x32xf32>, %sin: tensor<16x32xf32>, %bcos: tensor<2x16x32xf32>, %bsin: tensor<2x16x32xf32>, %pcos: tensor<16x8xf32>, %psin: tensor<16x8xf32>, %xb: tensor<2x2x16x64xbf16>, %cb: tensor<16x32xbf16>) {
  %half = nn.rotary %x, %cos, %sin {interleaved = false, rotary_dim = 64 : i64} : (tensor<2x8x16x64xf32>, tensor<16x32xf32>, tensor<16x32xf32>) -> tensor<2x8x16x64xf32>
  %pairs = nn.rotary %x, %bcos, %bsin {interleaved = true, rotary_dim = 64 : i64} : (tensor<2x8x16x64xf32>, tensor<2x16x32xf32>, tensor<2x16x32xf32>) -> tensor<2x8x16x64xf32>
  %partial = nn.rotary %x, %pcos, %psin {interleaved = false, rotary_dim = 16 : i64} : (tensor<2x8x16x64xf32>, tensor<16x8xf32>, tensor<16x8xf32>) -> tensor<2x8x16x64xf32>
  %kv = nn.rotary %xb, %cb, %cb {interleaved = false, rotary_dim = 64 : i64} : (tensor<2x2x16x64xbf16>, tensor<16x32xbf16>, tensor<16x32xbf16>) -> tensor<2x2x16x64xbf16>
  return
}

// Tests gelu with both approximations, silu and swiglu.
// CHECK-LABEL: func.func @activations(
// CHECK-SAME: %[[X:[^:]+]]: tensor<2x16x1376xf32>, %[[GATE:[^:]+]]: tensor<2x16x1376xbf16>, %[[UP:[^:]+]]: tensor<2x16x1376xbf16>, %[[H:[^:]+]]: tensor<2x16x2048xf16>)
// CHECK-NEXT: %[[EXACT:.*]] = nn.gelu %[[X]] {approximate = 0 : i32} : tensor<2x16x1376xf32>
// CHECK-NEXT: %[[TANH:.*]] = nn.gelu %[[H]] {approximate = 1 : i32} : tensor<2x16x2048xf16>
// CHECK-NEXT: %[[SILU:.*]] = nn.silu %[[GATE]] : tensor<2x16x1376xbf16>
// CHECK-NEXT: %[[SWIGLU:.*]] = nn.swiglu %[[GATE]], %[[UP]] : tensor<2x16x1376xbf16>
// CHECK-NEXT: return
func.func @activations(%x: tensor<2x16x1376xf32>, %gate: tensor<2x16x1376xbf16>, %up: tensor<2x16x1376xbf16>, %h: tensor<2x16x2048xf16>) {
  %exact = nn.gelu %x {approximate = 0 : i32} : tensor<2x16x1376xf32>
  %tanh = nn.gelu %h {approximate = 1 : i32} : tensor<2x16x2048xf16>
  %silu = nn.silu %gate : tensor<2x16x1376xbf16>
  %swiglu = nn.swiglu %gate, %up : tensor<2x16x1376xbf16>
  return
}

// Tests embedding with i64 and i32 ids and cross_entropy on f32 and bf16
// logits.
// CHECK-LABEL: func.func @embedding_loss(
// CHECK-SAME: %[[TABLE:[^:]+]]: tensor<32000x512xbf16>, %[[IDS:[^:]+]]: tensor<2x16xi64>, %[[IDS32:[^:]+]]: tensor<32xi32>, %[[LOGITS:[^:]+]]: tensor<2x16x32000xf32>, %[[FLAT:[^:]+]]: tensor<32x32000xbf16>) -> (tensor<f32>, tensor<f32>)
// CHECK-NEXT: %[[E:.*]] = nn.embedding %[[TABLE]], %[[IDS]] : (tensor<32000x512xbf16>, tensor<2x16xi64>) -> tensor<2x16x512xbf16>
// CHECK-NEXT: %[[E32:.*]] = nn.embedding %[[TABLE]], %[[IDS32]] : (tensor<32000x512xbf16>, tensor<32xi32>) -> tensor<32x512xbf16>
// CHECK-NEXT: %[[LOSS:.*]] = nn.cross_entropy %[[LOGITS]], %[[IDS]] {ignore_index = -100 : i64} : (tensor<2x16x32000xf32>, tensor<2x16xi64>) -> tensor<f32>
// CHECK-NEXT: %[[LOSSB:.*]] = nn.cross_entropy %[[FLAT]], %[[IDS32]] {ignore_index = 0 : i64} : (tensor<32x32000xbf16>, tensor<32xi32>) -> tensor<f32>
// CHECK-NEXT: return %[[LOSS]], %[[LOSSB]] : tensor<f32>, tensor<f32>
func.func @embedding_loss(%table: tensor<32000x512xbf16>, %ids: tensor<2x16xi64>, %ids32: tensor<32xi32>, %logits: tensor<2x16x32000xf32>, %flat: tensor<32x32000xbf16>) -> (tensor<f32>, tensor<f32>) {
  %e = nn.embedding %table, %ids : (tensor<32000x512xbf16>, tensor<2x16xi64>) -> tensor<2x16x512xbf16>
  %e32 = nn.embedding %table, %ids32 : (tensor<32000x512xbf16>, tensor<32xi32>) -> tensor<32x512xbf16>
  %loss = nn.cross_entropy %logits, %ids {ignore_index = -100 : i64} : (tensor<2x16x32000xf32>, tensor<2x16xi64>) -> tensor<f32>
  %lossb = nn.cross_entropy %flat, %ids32 {ignore_index = 0 : i64} : (tensor<32x32000xbf16>, tensor<32xi32>) -> tensor<f32>
  return %loss, %lossb : tensor<f32>, tensor<f32>
}

// Tests that the generic form, with inherent attributes as properties
// (`<{...}>`), parses and prints in the custom form, and that discardable
// attributes stay in the attribute dictionary next to inherent ones.
// CHECK-LABEL: func.func @generic(
// CHECK-SAME: %[[X:[^:]+]]: tensor<2x8x16x16xf32>, %[[A:[^:]+]]: tensor<2x16x512xf32>, %[[W:[^:]+]]: tensor<512x1536xf32>)
// CHECK-NEXT: %[[P:.*]] = nn.softmax %[[X]] {axis = 3 : i64} : tensor<2x8x16x16xf32>
// CHECK-NEXT: %[[Y:.*]] = nn.linear %[[A]], %[[W]] {transpose_weight = false} : (tensor<2x16x512xf32>, tensor<512x1536xf32>) -> tensor<2x16x1536xf32>
// CHECK-NEXT: %[[G:.*]] = nn.gelu %[[A]] {approximate = 1 : i32, wp.stage = 3 : i64} : tensor<2x16x512xf32>
// CHECK-NEXT: %[[C:.*]] = nn.constant dense<2.000000e+00> : tensor<2xf32>
// CHECK-NEXT: %[[T:.*]] = nn.softmax %[[X]] {axis = 3 : i64, wp.stage = 1 : i64} : tensor<2x8x16x16xf32>
// CHECK-NEXT: return
func.func @generic(%x: tensor<2x8x16x16xf32>, %a: tensor<2x16x512xf32>, %w: tensor<512x1536xf32>) {
  %p = "nn.softmax"(%x) <{axis = 3 : i64}> : (tensor<2x8x16x16xf32>) -> tensor<2x8x16x16xf32>
  %y = "nn.linear"(%a, %w) <{transpose_weight = false}> : (tensor<2x16x512xf32>, tensor<512x1536xf32>) -> tensor<2x16x1536xf32>
  %g = "nn.gelu"(%a) <{approximate = 1 : i32}> {wp.stage = 3 : i64} : (tensor<2x16x512xf32>) -> tensor<2x16x512xf32>
  %c = "nn.constant"() <{value = dense<2.0> : tensor<2xf32>}> : () -> tensor<2xf32>
  %t = nn.softmax %x {axis = 3 : i64, wp.stage = 1 : i64} : tensor<2x8x16x16xf32>
  return
}
