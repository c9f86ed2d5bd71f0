// A 3-layer model of hidden size 8 (736 values, 2944 bytes of storage);
// used by test/runtime/memory-limit.test.
nn.parameter @emb : tensor<32x8xf32> at "STORAGE"[0, 1024]
nn.parameter @g0 : tensor<8xf32> at "STORAGE"[1024, 32]
nn.parameter @w0 : tensor<8x8xf32> at "STORAGE"[1056, 256]
nn.parameter @val_7 : tensor<8xf32> at "STORAGE"[1312, 32]
nn.parameter @val_9 : tensor<8x8xf32> at "STORAGE"[1344, 256]
nn.parameter @l2.g : tensor<8xf32> at "STORAGE"[1600, 32]
nn.parameter @l2.w : tensor<8x8xf32> at "STORAGE"[1632, 256]
nn.parameter @gf : tensor<8xf32> at "STORAGE"[1888, 32]
nn.parameter @head : tensor<32x8xf32> at "STORAGE"[1920, 1024]
func.func @main(%ids: tensor<2x4xi64>) -> tensor<2x4x32xf32> {
  %e = nn.param @emb : tensor<32x8xf32>
  %x0 = nn.embedding %e, %ids : (tensor<32x8xf32>, tensor<2x4xi64>) -> tensor<2x4x8xf32>
  %c = nn.constant dense<0.5> : tensor<8xf32>
  %bias = nn.mul %c, %c : (tensor<8xf32>, tensor<8xf32>) -> tensor<8xf32>
  %g0 = nn.param @g0 : tensor<8xf32>
  %n0 = nn.rms_norm %x0, %g0 {axis = 2 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %w0 = nn.param @w0 : tensor<8x8xf32>
  %y0 = nn.linear %n0, %w0 {transpose_weight = false} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %b0 = nn.add %y0, %bias : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %x1 = nn.add %x0, %b0 : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %g1 = nn.param @val_7 : tensor<8xf32>
  %n1 = nn.rms_norm %x1, %g1 {axis = 2 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %w1 = nn.param @val_9 : tensor<8x8xf32>
  %y1 = nn.linear %n1, %w1 {transpose_weight = false} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %b1 = nn.add %y1, %bias : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %x2 = nn.add %x1, %b1 : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %g2 = nn.param @l2.g : tensor<8xf32>
  %n2 = nn.rms_norm %x2, %g2 {axis = 2 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %w2 = nn.param @l2.w : tensor<8x8xf32>
  %y2 = nn.linear %n2, %w2 {transpose_weight = false} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %b2 = nn.add %y2, %bias : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %x3 = nn.add %x2, %b2 : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %gf = nn.param @gf : tensor<8xf32>
  %nf = nn.rms_norm %x3, %gf {axis = 2 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %h = nn.param @head : tensor<32x8xf32>
  %logits = nn.linear %nf, %h {transpose_weight = true} : (tensor<2x4x8xf32>, tensor<32x8xf32>) -> tensor<2x4x32xf32>
  return %logits : tensor<2x4x32xf32>
}
