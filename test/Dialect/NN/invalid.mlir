// RUN: weipipe-opt %s -split-input-file -verify-diagnostics

// One case per verifier branch of lib/Dialect/NN/NNOps.cpp, plus the ODS
// constraints (element types, static shapes, attribute ranges, traits) that
// the importer relies on. Messages are matched verbatim.

//===----------------------------------------------------------------------===//
// nn.parameter / nn.param / nn.constant
//===----------------------------------------------------------------------===//

// 32x64 f32 is 8192 bytes.
// expected-error @+1 {{'nn.parameter' op storage length 4096 does not match 8192 bytes of 'tensor<32x64xf32>'}}
nn.parameter @"wte.weight" : tensor<32x64xf32> at "model.onnx"[1024, 4096]

// -----

// bf16 is two bytes per element.
// expected-error @+1 {{'nn.parameter' op storage length 8192 does not match 4096 bytes of 'tensor<32x64xbf16>'}}
nn.parameter @"wte.weight" : tensor<32x64xbf16> at "model.safetensors"[0, 8192]

// -----

// expected-error @+1 {{'nn.parameter' op attribute 'param_type' failed to satisfy constraint: type attribute of statically shaped tensor of 32-bit float or bfloat16 type or 16-bit float values}}
nn.parameter @ids : tensor<8xi64> at "model.onnx"[0, 64]

// -----

// expected-error @+1 {{'nn.parameter' op attribute 'param_type' failed to satisfy constraint: type attribute of statically shaped tensor of 32-bit float or bfloat16 type or 16-bit float values}}
nn.parameter @w : tensor<?x64xf32> at "model.onnx"[0, 256]

// -----

// expected-error @+1 {{'nn.parameter' op attribute 'offset' failed to satisfy constraint: 64-bit signless integer attribute whose value is non-negative}}
nn.parameter @w : tensor<64xf32> at "model.onnx"[-8, 256]

// -----

func.func @parameter_in_function() {
  // expected-error @+1 {{'nn.parameter' op expects parent op 'builtin.module'}}
  nn.parameter @w : tensor<64xf32> at "model.onnx"[0, 256]
  return
}

// -----

func.func @param_missing_symbol() -> tensor<64x32xf32> {
  // expected-error @+1 {{'nn.param' op 'wte.weight' does not name an nn.parameter}}
  %w = nn.param @"wte.weight" : tensor<64x32xf32>
  return %w : tensor<64x32xf32>
}

// -----

func.func private @not_a_parameter()

func.func @param_names_a_function() -> tensor<64x32xf32> {
  // expected-error @+1 {{'nn.param' op 'not_a_parameter' does not name an nn.parameter}}
  %w = nn.param @not_a_parameter : tensor<64x32xf32>
  return %w : tensor<64x32xf32>
}

// -----

nn.parameter @"wte.weight" : tensor<64x32xf32> at "model.onnx"[0, 8192]

func.func @param_type_mismatch() -> tensor<64x32xbf16> {
  // expected-error @+1 {{'nn.param' op result type 'tensor<64x32xbf16>' does not match parameter type 'tensor<64x32xf32>'}}
  %w = nn.param @"wte.weight" : tensor<64x32xbf16>
  return %w : tensor<64x32xbf16>
}

// -----

nn.parameter @"wte.weight" : tensor<64x32xf32> at "model.onnx"[0, 8192]

func.func @param_shape_mismatch() -> tensor<32x64xf32> {
  // expected-error @+1 {{'nn.param' op result type 'tensor<32x64xf32>' does not match parameter type 'tensor<64x32xf32>'}}
  %w = nn.param @"wte.weight" : tensor<32x64xf32>
  return %w : tensor<32x64xf32>
}

// -----

func.func @constant_not_elements() {
  // expected-error @+1 {{'nn.constant' op value must be an elements attribute}}
  %c = nn.constant "weights" : tensor<4xf32>
  return
}

// -----

func.func @constant_type_mismatch() {
  // expected-error @+1 {{'nn.constant' op failed to verify that all of {value, result} have same type}}
  %c = "nn.constant"() <{value = dense<1.0> : tensor<4xf32>}> : () -> tensor<4xbf16>
  return
}

// -----

func.func @constant_bad_element_type() {
  // expected-error @+1 {{'nn.constant' op result #0 must be statically shaped tensor of 32-bit float or bfloat16 type or 16-bit float or 32-bit signless integer or 64-bit signless integer or 1-bit signless integer values, but got 'tensor<4xf64>'}}
  %c = nn.constant dense<1.0> : tensor<4xf64>
  return
}

// -----

func.func @constant_missing_value() {
  // expected-error @+1 {{'nn.constant' op requires attribute 'value'}}
  %c = "nn.constant"() : () -> tensor<4xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// Broadcasting binary ops
//===----------------------------------------------------------------------===//

func.func @binary_operand_element_types(%a: tensor<2x8xf32>, %b: tensor<2x8xbf16>) {
  // expected-error @+1 {{'nn.add' op lhs element type 'f32' differs from rhs element type 'bf16'}}
  %r = nn.add %a, %b : (tensor<2x8xf32>, tensor<2x8xbf16>) -> tensor<2x8xf32>
  return
}

// -----

func.func @binary_result_element_type(%a: tensor<2x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'nn.mul' op lhs element type 'f32' differs from result element type 'f16'}}
  %r = nn.mul %a, %b : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf16>
  return
}

// -----

func.func @binary_no_broadcast(%a: tensor<2x16x512xf32>, %b: tensor<16x256xf32>) {
  // expected-error @+1 {{'nn.sub' op operand shapes [2, 16, 512] [16, 256] do not broadcast}}
  %r = nn.sub %a, %b : (tensor<2x16x512xf32>, tensor<16x256xf32>) -> tensor<2x16x512xf32>
  return
}

// -----

func.func @binary_result_shape(%a: tensor<2x1x8xf32>, %b: tensor<4x1xf32>) {
  // expected-error @+1 {{'nn.div' op result shape [2, 1, 8] does not match expected [2, 4, 8]}}
  %r = nn.div %a, %b : (tensor<2x1x8xf32>, tensor<4x1xf32>) -> tensor<2x1x8xf32>
  return
}

// -----

func.func @compare_no_broadcast(%a: tensor<2x16xi64>, %b: tensor<8xi64>) {
  // expected-error @+1 {{'nn.less' op operand shapes [2, 16] [8] do not broadcast}}
  %r = nn.less %a, %b : (tensor<2x16xi64>, tensor<8xi64>) -> tensor<2x16xi1>
  return
}

// -----

func.func @compare_operand_element_types(%a: tensor<16xi64>, %b: tensor<16xi32>) {
  // expected-error @+1 {{'nn.equal' op lhs element type 'i64' differs from rhs element type 'i32'}}
  %r = nn.equal %a, %b : (tensor<16xi64>, tensor<16xi32>) -> tensor<16xi1>
  return
}

// -----

func.func @compare_result_not_i1(%a: tensor<16xf32>, %b: tensor<16xf32>) {
  // expected-error @+1 {{'nn.greater' op result #0 must be statically shaped tensor of 1-bit signless integer values, but got 'tensor<16xf32>'}}
  %r = nn.greater %a, %b : (tensor<16xf32>, tensor<16xf32>) -> tensor<16xf32>
  return
}

// -----

func.func @pow_on_integers(%a: tensor<16xi64>, %b: tensor<16xi64>) {
  // expected-error @+1 {{'nn.pow' op operand #0 must be statically shaped tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<16xi64>'}}
  %r = nn.pow %a, %b : (tensor<16xi64>, tensor<16xi64>) -> tensor<16xi64>
  return
}

// -----

func.func @and_on_floats(%a: tensor<16xf32>, %b: tensor<16xf32>) {
  // expected-error @+1 {{'nn.and' op operand #0 must be statically shaped tensor of 1-bit signless integer values, but got 'tensor<16xf32>'}}
  %r = nn.and %a, %b : (tensor<16xf32>, tensor<16xf32>) -> tensor<16xi1>
  return
}

// -----

func.func @add_dynamic_shape(%a: tensor<?x512xf32>, %b: tensor<512xf32>) {
  // expected-error @+1 {{'nn.add' op operand #0 must be statically shaped tensor of 32-bit float or bfloat16 type or 16-bit float or 32-bit signless integer or 64-bit signless integer values, but got 'tensor<?x512xf32>'}}
  %r = nn.add %a, %b : (tensor<?x512xf32>, tensor<512xf32>) -> tensor<?x512xf32>
  return
}

// -----

func.func @max_on_i1(%a: tensor<16xi1>, %b: tensor<16xi1>) {
  // expected-error @+1 {{'nn.max' op operand #0 must be statically shaped tensor of 32-bit float or bfloat16 type or 16-bit float or 32-bit signless integer or 64-bit signless integer values, but got 'tensor<16xi1>'}}
  %r = nn.max %a, %b : (tensor<16xi1>, tensor<16xi1>) -> tensor<16xi1>
  return
}

// -----

func.func @add_unranked(%a: tensor<*xf32>, %b: tensor<512xf32>) {
  // expected-error @+1 {{'nn.add' op operand #0 must be statically shaped tensor of 32-bit float or bfloat16 type or 16-bit float or 32-bit signless integer or 64-bit signless integer values, but got 'tensor<*xf32>'}}
  %r = nn.add %a, %b : (tensor<*xf32>, tensor<512xf32>) -> tensor<512xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// Unary ops, cast, where
//===----------------------------------------------------------------------===//

func.func @unary_type_change(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{'nn.exp' op requires the same type for all operands and results}}
  %r = "nn.exp"(%x) : (tensor<2x8xf32>) -> tensor<2x8xbf16>
  return
}

// -----

func.func @sqrt_on_integers(%x: tensor<2x8xi64>) {
  // expected-error @+1 {{'nn.sqrt' op operand #0 must be statically shaped tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<2x8xi64>'}}
  %r = nn.sqrt %x : tensor<2x8xi64>
  return
}

// -----

func.func @not_on_floats(%x: tensor<8x8xf32>) {
  // expected-error @+1 {{'nn.not' op operand #0 must be statically shaped tensor of 1-bit signless integer values, but got 'tensor<8x8xf32>'}}
  %r = nn.not %x : tensor<8x8xf32>
  return
}

// -----

func.func @cast_shape_change(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{'nn.cast' op requires the same shape for all operands and results}}
  %r = nn.cast %x : tensor<2x8xf32> to tensor<16xbf16>
  return
}

// -----

func.func @where_lhs_element_type(%c: tensor<8x8xi1>, %a: tensor<8x8xf16>, %b: tensor<8x8xf32>) {
  // expected-error @+1 {{'nn.where' op lhs element type 'f16' differs from result element type 'f32'}}
  %r = nn.where %c, %a, %b : (tensor<8x8xi1>, tensor<8x8xf16>, tensor<8x8xf32>) -> tensor<8x8xf32>
  return
}

// -----

func.func @where_rhs_element_type(%c: tensor<8x8xi1>, %a: tensor<2x4x8x8xf32>, %b: tensor<i64>) {
  // expected-error @+1 {{'nn.where' op rhs element type 'i64' differs from result element type 'f32'}}
  %r = nn.where %c, %a, %b : (tensor<8x8xi1>, tensor<2x4x8x8xf32>, tensor<i64>) -> tensor<2x4x8x8xf32>
  return
}

// -----

func.func @where_no_broadcast(%c: tensor<16x16xi1>, %a: tensor<2x4x8x8xf32>, %b: tensor<f32>) {
  // expected-error @+1 {{'nn.where' op operand shapes [16, 16] [2, 4, 8, 8] [] do not broadcast}}
  %r = nn.where %c, %a, %b : (tensor<16x16xi1>, tensor<2x4x8x8xf32>, tensor<f32>) -> tensor<2x4x8x8xf32>
  return
}

// -----

func.func @where_result_shape(%c: tensor<8x8xi1>, %a: tensor<2x4x8x8xf32>, %b: tensor<f32>) {
  // expected-error @+1 {{'nn.where' op result shape [8, 8] does not match expected [2, 4, 8, 8]}}
  %r = nn.where %c, %a, %b : (tensor<8x8xi1>, tensor<2x4x8x8xf32>, tensor<f32>) -> tensor<8x8xf32>
  return
}

// -----

func.func @where_condition_not_i1(%c: tensor<8x8xf32>, %a: tensor<8x8xf32>) {
  // expected-error @+1 {{'nn.where' op operand #0 must be statically shaped tensor of 1-bit signless integer values, but got 'tensor<8x8xf32>'}}
  %r = nn.where %c, %a, %a : (tensor<8x8xf32>, tensor<8x8xf32>, tensor<8x8xf32>) -> tensor<8x8xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// Shape and data movement
//===----------------------------------------------------------------------===//

func.func @reshape_element_type(%x: tensor<2x16x512xf32>) {
  // expected-error @+1 {{'nn.reshape' op input element type 'f32' differs from result element type 'bf16'}}
  %r = nn.reshape %x : tensor<2x16x512xf32> to tensor<2x16x8x64xbf16>
  return
}

// -----

func.func @reshape_element_count(%x: tensor<2x16x512xf32>) {
  // expected-error @+1 {{'nn.reshape' op input has 16384 elements but result has 8192}}
  %r = nn.reshape %x : tensor<2x16x512xf32> to tensor<2x16x4x64xf32>
  return
}

// -----

func.func @transpose_element_type(%x: tensor<2x16x8x64xf32>) {
  // expected-error @+1 {{'nn.transpose' op input element type 'f32' differs from result element type 'f16'}}
  %r = nn.transpose %x [0, 2, 1, 3] : tensor<2x16x8x64xf32> to tensor<2x8x16x64xf16>
  return
}

// -----

func.func @transpose_perm_size(%x: tensor<2x16x8x64xf32>) {
  // expected-error @+1 {{'nn.transpose' op perm has 3 entries for rank 4}}
  %r = nn.transpose %x [0, 2, 1] : tensor<2x16x8x64xf32> to tensor<2x8x16x64xf32>
  return
}

// -----

func.func @transpose_perm_repeats(%x: tensor<2x16x8x64xf32>) {
  // expected-error @+1 {{'nn.transpose' op perm [0, 2, 2, 3] is not a permutation of [0, 4)}}
  %r = nn.transpose %x [0, 2, 2, 3] : tensor<2x16x8x64xf32> to tensor<2x8x8x64xf32>
  return
}

// -----

func.func @transpose_perm_out_of_range(%x: tensor<2x16x8x64xf32>) {
  // expected-error @+1 {{'nn.transpose' op perm [0, 2, 4, 3] is not a permutation of [0, 4)}}
  %r = nn.transpose %x [0, 2, 4, 3] : tensor<2x16x8x64xf32> to tensor<2x8x16x64xf32>
  return
}

// -----

func.func @transpose_perm_negative(%x: tensor<512x1536xf32>) {
  // expected-error @+1 {{'nn.transpose' op perm [-1, 0] is not a permutation of [0, 2)}}
  %r = nn.transpose %x [-1, 0] : tensor<512x1536xf32> to tensor<1536x512xf32>
  return
}

// -----

func.func @transpose_result_shape(%x: tensor<2x16x8x64xf32>) {
  // expected-error @+1 {{'nn.transpose' op result shape [2, 16, 8, 64] does not match expected [2, 8, 16, 64]}}
  %r = nn.transpose %x [0, 2, 1, 3] : tensor<2x16x8x64xf32> to tensor<2x16x8x64xf32>
  return
}

// -----

func.func @broadcast_element_type(%x: tensor<1x16xi64>) {
  // expected-error @+1 {{'nn.broadcast' op input element type 'i64' differs from result element type 'i32'}}
  %r = nn.broadcast %x : tensor<1x16xi64> to tensor<2x16xi32>
  return
}

// -----

func.func @broadcast_incompatible(%x: tensor<3x16xi64>) {
  // expected-error @+1 {{'nn.broadcast' op input shape [3, 16] does not broadcast to [2, 16]}}
  %r = nn.broadcast %x : tensor<3x16xi64> to tensor<2x16xi64>
  return
}

// -----

// Broadcasting never removes dimensions.
func.func @broadcast_to_lower_rank(%x: tensor<1x1x16xf32>) {
  // expected-error @+1 {{'nn.broadcast' op input shape [1, 1, 16] does not broadcast to [1, 16]}}
  %r = nn.broadcast %x : tensor<1x1x16xf32> to tensor<1x16xf32>
  return
}

// -----

// Broadcasting never shrinks a dimension to 1.
func.func @broadcast_shrinks(%x: tensor<2x16xf32>) {
  // expected-error @+1 {{'nn.broadcast' op input shape [2, 16] does not broadcast to [1, 16]}}
  %r = nn.broadcast %x : tensor<2x16xf32> to tensor<1x16xf32>
  return
}

// -----

func.func @concat_no_inputs() {
  // expected-error @+1 {{'nn.concat' op needs at least one input}}
  %r = nn.concat {axis = 0 : i64} : () -> tensor<0xf32>
  return
}

// -----

func.func @concat_axis_out_of_range(%a: tensor<2x16x512xf32>) {
  // expected-error @+1 {{'nn.concat' op axis 3 out of range for rank 3}}
  %r = nn.concat %a, %a {axis = 3 : i64} : (tensor<2x16x512xf32>, tensor<2x16x512xf32>) -> tensor<2x16x1024xf32>
  return
}

// -----

func.func @concat_negative_axis(%a: tensor<2x16x512xf32>) {
  // expected-error @+1 {{'nn.concat' op attribute 'axis' failed to satisfy constraint: 64-bit signless integer attribute whose value is non-negative}}
  %r = nn.concat %a, %a {axis = -1 : i64} : (tensor<2x16x512xf32>, tensor<2x16x512xf32>) -> tensor<2x16x1024xf32>
  return
}

// -----

func.func @concat_element_type(%a: tensor<2x16x512xf32>, %b: tensor<2x16x512xbf16>) {
  // expected-error @+1 {{'nn.concat' op input element type 'bf16' differs from result element type 'f32'}}
  %r = nn.concat %a, %b {axis = 2 : i64} : (tensor<2x16x512xf32>, tensor<2x16x512xbf16>) -> tensor<2x16x1024xf32>
  return
}

// -----

func.func @concat_rank(%a: tensor<2x16x512xf32>, %b: tensor<16x512xf32>) {
  // expected-error @+1 {{'nn.concat' op input 1 has rank 2, expected 3}}
  %r = nn.concat %a, %b {axis = 1 : i64} : (tensor<2x16x512xf32>, tensor<16x512xf32>) -> tensor<2x32x512xf32>
  return
}

// -----

func.func @concat_other_dimension(%a: tensor<2x16x512xf32>, %b: tensor<2x8x256xf32>) {
  // expected-error @+1 {{'nn.concat' op input 1 dimension 2 is 256, expected 512}}
  %r = nn.concat %a, %b {axis = 1 : i64} : (tensor<2x16x512xf32>, tensor<2x8x256xf32>) -> tensor<2x24x512xf32>
  return
}

// -----

func.func @concat_result_shape(%a: tensor<2x16x512xf32>, %b: tensor<2x16x1024xf32>) {
  // expected-error @+1 {{'nn.concat' op result shape [2, 16, 1024] does not match expected [2, 16, 1536]}}
  %r = nn.concat %a, %b {axis = 2 : i64} : (tensor<2x16x512xf32>, tensor<2x16x1024xf32>) -> tensor<2x16x1024xf32>
  return
}

// -----

func.func @slice_element_type(%x: tensor<2x16xf32>) {
  // expected-error @+1 {{'nn.slice' op input element type 'f32' differs from result element type 'bf16'}}
  %r = nn.slice %x [0, 0] [2, 8] [1, 1] : tensor<2x16xf32> to tensor<2x8xbf16>
  return
}

// -----

func.func @slice_entry_count(%x: tensor<2x16xf32>) {
  // expected-error @+1 {{'nn.slice' op starts, ends and steps need 2 entries each}}
  %r = nn.slice %x [0] [8] [1] : tensor<2x16xf32> to tensor<2x8xf32>
  return
}

// -----

func.func @slice_zero_step(%x: tensor<2x16xf32>) {
  // expected-error @+1 {{'nn.slice' op step of dimension 1 is zero}}
  %r = nn.slice %x [0, 0] [2, 8] [1, 0] : tensor<2x16xf32> to tensor<2x8xf32>
  return
}

// -----

// ONNX's INT64_MAX "to the end" must be clamped by the importer.
func.func @slice_end_not_clamped(%x: tensor<2x16xf32>) {
  // expected-error @+1 {{'nn.slice' op bounds [8, 9223372036854775807) step 1 are not clamped to dimension 1 of size 16}}
  %r = nn.slice %x [0, 8] [2, 9223372036854775807] [1, 1] : tensor<2x16xf32> to tensor<2x8xf32>
  return
}

// -----

// Negative starts count from the end in ONNX; here they must be resolved.
func.func @slice_negative_start(%x: tensor<2x16xf32>) {
  // expected-error @+1 {{'nn.slice' op bounds [-4, 16) step 1 are not clamped to dimension 1 of size 16}}
  %r = nn.slice %x [0, -4] [2, 16] [1, 1] : tensor<2x16xf32> to tensor<2x4xf32>
  return
}

// -----

func.func @slice_start_after_end(%x: tensor<2x16xf32>) {
  // expected-error @+1 {{'nn.slice' op bounds [12, 4) step 1 are not clamped to dimension 1 of size 16}}
  %r = nn.slice %x [0, 12] [2, 4] [1, 1] : tensor<2x16xf32> to tensor<2x0xf32>
  return
}

// -----

func.func @slice_negative_step_start(%x: tensor<2x16xf32>) {
  // expected-error @+1 {{'nn.slice' op bounds [16, -1) step -1 are not clamped to dimension 1 of size 16}}
  %r = nn.slice %x [0, 16] [2, -1] [1, -1] : tensor<2x16xf32> to tensor<2x16xf32>
  return
}

// -----

func.func @slice_negative_step_end(%x: tensor<2x16xf32>) {
  // expected-error @+1 {{'nn.slice' op bounds [15, -2) step -1 are not clamped to dimension 1 of size 16}}
  %r = nn.slice %x [0, 15] [2, -2] [1, -1] : tensor<2x16xf32> to tensor<2x16xf32>
  return
}

// -----

func.func @slice_result_shape(%x: tensor<2x16xf32>) {
  // expected-error @+1 {{'nn.slice' op result shape [2, 8] does not match expected [2, 6]}}
  %r = nn.slice %x [0, 0] [2, 16] [1, 3] : tensor<2x16xf32> to tensor<2x8xf32>
  return
}

// -----

func.func @gather_element_type(%t: tensor<64x32xf32>, %ids: tensor<2x8xi64>) {
  // expected-error @+1 {{'nn.gather' op input element type 'f32' differs from result element type 'bf16'}}
  %r = nn.gather %t, %ids {axis = 0 : i64} : (tensor<64x32xf32>, tensor<2x8xi64>) -> tensor<2x8x32xbf16>
  return
}

// -----

func.func @gather_axis(%t: tensor<64x32xf32>, %ids: tensor<2x8xi64>) {
  // expected-error @+1 {{'nn.gather' op axis 2 out of range for rank 2}}
  %r = nn.gather %t, %ids {axis = 2 : i64} : (tensor<64x32xf32>, tensor<2x8xi64>) -> tensor<2x8x32xf32>
  return
}

// -----

func.func @gather_result_shape(%t: tensor<64x32xf32>, %ids: tensor<2x8xi64>) {
  // expected-error @+1 {{'nn.gather' op result shape [2, 8, 64] does not match expected [64, 2, 8]}}
  %r = nn.gather %t, %ids {axis = 1 : i64} : (tensor<64x32xf32>, tensor<2x8xi64>) -> tensor<2x8x64xf32>
  return
}

// -----

func.func @gather_float_indices(%t: tensor<64x32xf32>, %ids: tensor<2x8xf32>) {
  // expected-error @+1 {{'nn.gather' op operand #1 must be statically shaped tensor of 32-bit signless integer or 64-bit signless integer values, but got 'tensor<2x8xf32>'}}
  %r = nn.gather %t, %ids {axis = 0 : i64} : (tensor<64x32xf32>, tensor<2x8xf32>) -> tensor<2x8x32xf32>
  return
}

// -----

func.func @trilu_rank(%x: tensor<16xf32>) {
  // expected-error @+1 {{'nn.trilu' op needs rank >= 2}}
  %r = nn.trilu %x {k = 0 : i64, upper = false} : tensor<16xf32>
  return
}

// -----

func.func @trilu_type_change(%x: tensor<16x16xf32>) {
  // expected-error @+1 {{'nn.trilu' op requires the same type for all operands and results}}
  %r = "nn.trilu"(%x) <{k = 0 : i64, upper = false}> : (tensor<16x16xf32>) -> tensor<16x16xi1>
  return
}

// -----

//===----------------------------------------------------------------------===//
// Reductions, softmax, matmul
//===----------------------------------------------------------------------===//

func.func @reduce_element_type(%x: tensor<2x16x512xf32>) {
  // expected-error @+1 {{'nn.reduce_mean' op input element type 'f32' differs from result element type 'bf16'}}
  %r = nn.reduce_mean %x {axes = array<i64: 2>, keepdims = true} : tensor<2x16x512xf32> to tensor<2x16x1xbf16>
  return
}

// -----

func.func @reduce_axis_out_of_range(%x: tensor<2x16x512xf32>) {
  // expected-error @+1 {{'nn.reduce_sum' op axis 3 out of range for rank 3}}
  %r = nn.reduce_sum %x {axes = array<i64: 3>, keepdims = false} : tensor<2x16x512xf32> to tensor<2x16xf32>
  return
}

// -----

// Negative axes count from the end in ONNX; here they must be resolved.
func.func @reduce_negative_axis(%x: tensor<2x16x512xf32>) {
  // expected-error @+1 {{'nn.reduce_max' op axis -1 out of range for rank 3}}
  %r = nn.reduce_max %x {axes = array<i64: -1>, keepdims = false} : tensor<2x16x512xf32> to tensor<2x16xf32>
  return
}

// -----

func.func @reduce_axes_unsorted(%x: tensor<2x16x512xf32>) {
  // expected-error @+1 {{'nn.reduce_sum' op axes [1, 0] must be sorted and unique}}
  %r = nn.reduce_sum %x {axes = array<i64: 1, 0>, keepdims = false} : tensor<2x16x512xf32> to tensor<512xf32>
  return
}

// -----

func.func @reduce_axes_repeated(%x: tensor<2x16x512xf32>) {
  // expected-error @+1 {{'nn.reduce_mean' op axes [2, 2] must be sorted and unique}}
  %r = nn.reduce_mean %x {axes = array<i64: 2, 2>, keepdims = true} : tensor<2x16x512xf32> to tensor<2x16x1xf32>
  return
}

// -----

func.func @reduce_keepdims_shape(%x: tensor<2x16x512xf32>) {
  // expected-error @+1 {{'nn.reduce_mean' op result shape [2, 16] does not match expected [2, 16, 1]}}
  %r = nn.reduce_mean %x {axes = array<i64: 2>, keepdims = true} : tensor<2x16x512xf32> to tensor<2x16xf32>
  return
}

// -----

func.func @reduce_on_i1(%x: tensor<16x16xi1>) {
  // expected-error @+1 {{'nn.reduce_max' op operand #0 must be statically shaped tensor of 32-bit float or bfloat16 type or 16-bit float or 32-bit signless integer or 64-bit signless integer values, but got 'tensor<16x16xi1>'}}
  %r = nn.reduce_max %x {axes = array<i64: 1>, keepdims = false} : tensor<16x16xi1> to tensor<16xi1>
  return
}

// -----

func.func @band_length(%d: tensor<16xf32>) {
  // expected-error @+1 {{'nn.band' op diagonals must be one value per diagonal of the last two dimensions [8, 8]: 15 values, got 'tensor<16xf32>'}}
  %r = nn.band %d : tensor<16xf32> to tensor<8x8xf32>
  return
}

// -----

func.func @band_rank(%d: tensor<1xf32>) {
  // expected-error @+1 {{'nn.band' op result must have rank >= 2, got 1}}
  %r = nn.band %d : tensor<1xf32> to tensor<8xf32>
  return
}

// -----

func.func @band_type(%d: tensor<15xi1>) {
  // expected-error @+1 {{'nn.band' op diagonals element type 'i1' differs from result element type 'f32'}}
  %r = nn.band %d : tensor<15xi1> to tensor<8x8xf32>
  return
}

// -----

func.func @cumsum_axis(%x: tensor<2x16xi64>) {
  // expected-error @+1 {{'nn.cumsum' op axis 2 out of range for rank 2}}
  %r = nn.cumsum %x {axis = 2 : i64, exclusive = false, reverse = false} : tensor<2x16xi64>
  return
}

// -----

func.func @cumsum_bool(%x: tensor<2x16xi1>) {
  // expected-error @+1 {{'nn.cumsum' op operand #0 must be statically shaped tensor of}}
  %r = nn.cumsum %x {axis = 1 : i64, exclusive = false, reverse = false} : tensor<2x16xi1>
  return
}

// -----

func.func @softmax_axis(%x: tensor<2x8x16x16xf32>) {
  // expected-error @+1 {{'nn.softmax' op axis 4 out of range for rank 4}}
  %r = nn.softmax %x {axis = 4 : i64} : tensor<2x8x16x16xf32>
  return
}

// -----

func.func @log_softmax_axis(%x: tensor<2x16x32000xf32>) {
  // expected-error @+1 {{'nn.log_softmax' op axis 3 out of range for rank 3}}
  %r = nn.log_softmax %x {axis = 3 : i64} : tensor<2x16x32000xf32>
  return
}

// -----

// Inherent attributes are properties: the generic form needs <{...}>, and a
// missing one is reported by name.
func.func @softmax_missing_axis(%x: tensor<2x8x16x16xf32>) {
  // expected-error @+1 {{'nn.softmax' op requires attribute 'axis'}}
  %r = "nn.softmax"(%x) : (tensor<2x8x16x16xf32>) -> tensor<2x8x16x16xf32>
  return
}

// -----

func.func @softmax_axis_not_i64(%x: tensor<2x8x16x16xf32>) {
  // expected-error @+1 {{'nn.softmax' op attribute 'axis' failed to satisfy constraint: 64-bit signless integer attribute whose value is non-negative}}
  %r = "nn.softmax"(%x) <{axis = 3 : i32}> : (tensor<2x8x16x16xf32>) -> tensor<2x8x16x16xf32>
  return
}

// -----

func.func @softmax_on_integers(%x: tensor<2x16xi64>) {
  // expected-error @+1 {{'nn.softmax' op operand #0 must be statically shaped tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<2x16xi64>'}}
  %r = nn.softmax %x {axis = 1 : i64} : tensor<2x16xi64>
  return
}

// -----

func.func @matmul_on_integers(%a: tensor<2x16x512xi64>, %b: tensor<512x1536xi64>) {
  // expected-error @+1 {{'nn.matmul' op operand #0 must be statically shaped tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<2x16x512xi64>'}}
  %r = nn.matmul %a, %b : (tensor<2x16x512xi64>, tensor<512x1536xi64>) -> tensor<2x16x1536xi64>
  return
}

// -----

func.func @matmul_operand_element_types(%a: tensor<2x16x512xbf16>, %b: tensor<512x1536xf32>) {
  // expected-error @+1 {{'nn.matmul' op lhs element type 'bf16' differs from rhs element type 'f32'}}
  %r = nn.matmul %a, %b : (tensor<2x16x512xbf16>, tensor<512x1536xf32>) -> tensor<2x16x1536xbf16>
  return
}

// -----

func.func @matmul_result_element_type(%a: tensor<2x16x512xbf16>, %b: tensor<512x1536xbf16>) {
  // expected-error @+1 {{'nn.matmul' op lhs element type 'bf16' differs from result element type 'f32'}}
  %r = nn.matmul %a, %b : (tensor<2x16x512xbf16>, tensor<512x1536xbf16>) -> tensor<2x16x1536xf32>
  return
}

// -----

func.func @matmul_scalar(%a: tensor<f32>, %b: tensor<512x1536xf32>) {
  // expected-error @+1 {{'nn.matmul' op matmul operands must have rank >= 1}}
  %r = nn.matmul %a, %b : (tensor<f32>, tensor<512x1536xf32>) -> tensor<1536xf32>
  return
}

// -----

func.func @matmul_contracting(%a: tensor<2x16x512xf32>, %b: tensor<1536x512xf32>) {
  // expected-error @+1 {{'nn.matmul' op contracting dimensions differ: 512 vs 1536}}
  %r = nn.matmul %a, %b : (tensor<2x16x512xf32>, tensor<1536x512xf32>) -> tensor<2x16x512xf32>
  return
}

// -----

func.func @matmul_batch(%a: tensor<2x8x16x64xf32>, %b: tensor<2x2x64x16xf32>) {
  // expected-error @+1 {{'nn.matmul' op batch dimensions do not broadcast}}
  %r = nn.matmul %a, %b : (tensor<2x8x16x64xf32>, tensor<2x2x64x16xf32>) -> tensor<2x8x16x16xf32>
  return
}

// -----

// A rank-1 operand's promoted dimension is removed from the result.
func.func @matmul_result_shape(%a: tensor<512xf32>, %b: tensor<512x1536xf32>) {
  // expected-error @+1 {{'nn.matmul' op result shape [1, 1536] does not match expected [1536]}}
  %r = nn.matmul %a, %b : (tensor<512xf32>, tensor<512x1536xf32>) -> tensor<1x1536xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// linear
//===----------------------------------------------------------------------===//

func.func @linear_weight_element_type(%x: tensor<2x16x512xf32>, %w: tensor<512x1536xbf16>) {
  // expected-error @+1 {{'nn.linear' op input element type 'f32' differs from weight element type 'bf16'}}
  %r = nn.linear %x, %w {transpose_weight = false} : (tensor<2x16x512xf32>, tensor<512x1536xbf16>) -> tensor<2x16x1536xf32>
  return
}

// -----

func.func @linear_result_element_type(%x: tensor<2x16x512xbf16>, %w: tensor<512x1536xbf16>) {
  // expected-error @+1 {{'nn.linear' op input element type 'bf16' differs from result element type 'f32'}}
  %r = nn.linear %x, %w {transpose_weight = false} : (tensor<2x16x512xbf16>, tensor<512x1536xbf16>) -> tensor<2x16x1536xf32>
  return
}

// -----

func.func @linear_scalar_input(%x: tensor<f32>, %w: tensor<512x1536xf32>) {
  // expected-error @+1 {{'nn.linear' op input must have rank >= 1}}
  %r = nn.linear %x, %w {transpose_weight = false} : (tensor<f32>, tensor<512x1536xf32>) -> tensor<1536xf32>
  return
}

// -----

func.func @linear_weight_rank(%x: tensor<2x16x512xf32>, %w: tensor<2x512x1536xf32>) {
  // expected-error @+1 {{'nn.linear' op weight must have rank 2, got 3}}
  %r = nn.linear %x, %w {transpose_weight = false} : (tensor<2x16x512xf32>, tensor<2x512x1536xf32>) -> tensor<2x16x1536xf32>
  return
}

// -----

// A [K, N] weight used as if it were stored [N, K].
func.func @linear_features_transposed(%x: tensor<2x16x512xf32>, %w: tensor<512x1536xf32>) {
  // expected-error @+1 {{'nn.linear' op input features 512 do not match weight input features 1536}}
  %r = nn.linear %x, %w {transpose_weight = true} : (tensor<2x16x512xf32>, tensor<512x1536xf32>) -> tensor<2x16x512xf32>
  return
}

// -----

// An [N, K] weight used as if it were stored [K, N].
func.func @linear_features(%x: tensor<2x16x512xbf16>, %w: tensor<1376x512xbf16>) {
  // expected-error @+1 {{'nn.linear' op input features 512 do not match weight input features 1376}}
  %r = nn.linear %x, %w {transpose_weight = false} : (tensor<2x16x512xbf16>, tensor<1376x512xbf16>) -> tensor<2x16x512xbf16>
  return
}

// -----

func.func @linear_bias_element_type(%x: tensor<2x16x512xf32>, %w: tensor<512x1536xf32>, %b: tensor<1536xf16>) {
  // expected-error @+1 {{'nn.linear' op input element type 'f32' differs from bias element type 'f16'}}
  %r = nn.linear %x, %w, %b {transpose_weight = false} : (tensor<2x16x512xf32>, tensor<512x1536xf32>, tensor<1536xf16>) -> tensor<2x16x1536xf32>
  return
}

// -----

func.func @linear_bias_shape(%x: tensor<2x16x512xf32>, %w: tensor<1536x512xf32>, %b: tensor<512xf32>) {
  // expected-error @+1 {{'nn.linear' op bias shape [512] does not match expected [1536]}}
  %r = nn.linear %x, %w, %b {transpose_weight = true} : (tensor<2x16x512xf32>, tensor<1536x512xf32>, tensor<512xf32>) -> tensor<2x16x1536xf32>
  return
}

// -----

func.func @linear_result_shape(%x: tensor<2x16x512xf32>, %w: tensor<512x1536xf32>) {
  // expected-error @+1 {{'nn.linear' op result shape [32, 1536] does not match expected [2, 16, 1536]}}
  %r = nn.linear %x, %w {transpose_weight = false} : (tensor<2x16x512xf32>, tensor<512x1536xf32>) -> tensor<32x1536xf32>
  return
}

// -----

func.func @linear_missing_transpose_weight(%x: tensor<2x16x512xf32>, %w: tensor<512x1536xf32>) {
  // expected-error @+1 {{'nn.linear' op requires attribute 'transpose_weight'}}
  %r = nn.linear %x, %w : (tensor<2x16x512xf32>, tensor<512x1536xf32>) -> tensor<2x16x1536xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// layer_norm, rms_norm
//===----------------------------------------------------------------------===//

func.func @layer_norm_result_type(%x: tensor<2x16x512xf32>, %g: tensor<512xf32>) {
  // expected-error @+1 {{'nn.layer_norm' op result type 'tensor<2x16x512xbf16>' differs from input type 'tensor<2x16x512xf32>'}}
  %r = nn.layer_norm %x, %g {axis = 2 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x16x512xf32>, tensor<512xf32>) -> tensor<2x16x512xbf16>
  return
}

// -----

func.func @layer_norm_axis(%x: tensor<2x16x512xf32>, %g: tensor<512xf32>) {
  // expected-error @+1 {{'nn.layer_norm' op axis 3 out of range for rank 3}}
  %r = nn.layer_norm %x, %g {axis = 3 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x16x512xf32>, tensor<512xf32>) -> tensor<2x16x512xf32>
  return
}

// -----

func.func @layer_norm_scale_element_type(%x: tensor<2x16x512xf32>, %g: tensor<512xbf16>) {
  // expected-error @+1 {{'nn.layer_norm' op input element type 'f32' differs from scale element type 'bf16'}}
  %r = nn.layer_norm %x, %g {axis = 2 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x16x512xf32>, tensor<512xbf16>) -> tensor<2x16x512xf32>
  return
}

// -----

// The scale has the normalized shape input.shape[axis:], not the last dim.
func.func @layer_norm_scale_shape(%x: tensor<2x16x512xf32>, %g: tensor<512xf32>) {
  // expected-error @+1 {{'nn.layer_norm' op scale shape [512] does not match expected [16, 512]}}
  %r = nn.layer_norm %x, %g {axis = 1 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x16x512xf32>, tensor<512xf32>) -> tensor<2x16x512xf32>
  return
}

// -----

func.func @layer_norm_bias_element_type(%x: tensor<2x16x512xf32>, %g: tensor<512xf32>, %b: tensor<512xf16>) {
  // expected-error @+1 {{'nn.layer_norm' op input element type 'f32' differs from bias element type 'f16'}}
  %r = nn.layer_norm %x, %g, %b {axis = 2 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x16x512xf32>, tensor<512xf32>, tensor<512xf16>) -> tensor<2x16x512xf32>
  return
}

// -----

func.func @layer_norm_bias_shape(%x: tensor<2x16x512xf32>, %g: tensor<512xf32>, %b: tensor<1x512xf32>) {
  // expected-error @+1 {{'nn.layer_norm' op bias shape [1, 512] does not match expected [512]}}
  %r = nn.layer_norm %x, %g, %b {axis = 2 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x16x512xf32>, tensor<512xf32>, tensor<1x512xf32>) -> tensor<2x16x512xf32>
  return
}

// -----

func.func @layer_norm_negative_epsilon(%x: tensor<2x16x512xf32>, %g: tensor<512xf32>) {
  // expected-error @+1 {{'nn.layer_norm' op epsilon must be non-negative}}
  %r = nn.layer_norm %x, %g {axis = 2 : i64, epsilon = -1.0e-05 : f32} : (tensor<2x16x512xf32>, tensor<512xf32>) -> tensor<2x16x512xf32>
  return
}

// -----

func.func @layer_norm_nan_epsilon(%x: tensor<2x16x512xf32>, %g: tensor<512xf32>) {
  // expected-error @+1 {{'nn.layer_norm' op epsilon must be non-negative}}
  %r = nn.layer_norm %x, %g {axis = 2 : i64, epsilon = 0x7FC00000 : f32} : (tensor<2x16x512xf32>, tensor<512xf32>) -> tensor<2x16x512xf32>
  return
}

// -----

func.func @layer_norm_f64_epsilon(%x: tensor<2x16x512xf32>, %g: tensor<512xf32>) {
  // expected-error @+1 {{'nn.layer_norm' op attribute 'epsilon' failed to satisfy constraint: 32-bit float attribute}}
  %r = nn.layer_norm %x, %g {axis = 2 : i64, epsilon = 1.0e-05 : f64} : (tensor<2x16x512xf32>, tensor<512xf32>) -> tensor<2x16x512xf32>
  return
}

// -----

func.func @rms_norm_result_type(%x: tensor<2x16x512xf16>, %g: tensor<512xf16>) {
  // expected-error @+1 {{'nn.rms_norm' op result type 'tensor<2x16x256xf16>' differs from input type 'tensor<2x16x512xf16>'}}
  %r = nn.rms_norm %x, %g {axis = 2 : i64, epsilon = 1.0e-06 : f32} : (tensor<2x16x512xf16>, tensor<512xf16>) -> tensor<2x16x256xf16>
  return
}

// -----

func.func @rms_norm_axis(%x: tensor<2x16x512xf16>, %g: tensor<512xf16>) {
  // expected-error @+1 {{'nn.rms_norm' op axis 5 out of range for rank 3}}
  %r = nn.rms_norm %x, %g {axis = 5 : i64, epsilon = 1.0e-06 : f32} : (tensor<2x16x512xf16>, tensor<512xf16>) -> tensor<2x16x512xf16>
  return
}

// -----

func.func @rms_norm_scale_element_type(%x: tensor<2x16x512xf16>, %g: tensor<512xf32>) {
  // expected-error @+1 {{'nn.rms_norm' op input element type 'f16' differs from scale element type 'f32'}}
  %r = nn.rms_norm %x, %g {axis = 2 : i64, epsilon = 1.0e-06 : f32} : (tensor<2x16x512xf16>, tensor<512xf32>) -> tensor<2x16x512xf16>
  return
}

// -----

func.func @rms_norm_scale_shape(%x: tensor<2x16x512xf16>, %g: tensor<256xf16>) {
  // expected-error @+1 {{'nn.rms_norm' op scale shape [256] does not match expected [512]}}
  %r = nn.rms_norm %x, %g {axis = 2 : i64, epsilon = 1.0e-06 : f32} : (tensor<2x16x512xf16>, tensor<256xf16>) -> tensor<2x16x512xf16>
  return
}

// -----

func.func @rms_norm_negative_epsilon(%x: tensor<2x16x512xf16>, %g: tensor<512xf16>) {
  // expected-error @+1 {{'nn.rms_norm' op epsilon must be non-negative}}
  %r = nn.rms_norm %x, %g {axis = 2 : i64, epsilon = -1.0e-06 : f32} : (tensor<2x16x512xf16>, tensor<512xf16>) -> tensor<2x16x512xf16>
  return
}

// -----

//===----------------------------------------------------------------------===//
// attention
//===----------------------------------------------------------------------===//

func.func @attention_key_element_type(%q: tensor<2x8x16x64xf32>, %k: tensor<2x2x16x64xbf16>, %v: tensor<2x2x16x64xf32>) {
  // expected-error @+1 {{'nn.attention' op query element type 'f32' differs from key element type 'bf16'}}
  %r = nn.attention %q, %k, %v {causal = true, num_heads = 8 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xf32>, tensor<2x2x16x64xbf16>, tensor<2x2x16x64xf32>) -> tensor<2x8x16x64xf32>
  return
}

// -----

func.func @attention_value_element_type(%q: tensor<2x8x16x64xf32>, %k: tensor<2x2x16x64xf32>, %v: tensor<2x2x16x64xf16>) {
  // expected-error @+1 {{'nn.attention' op query element type 'f32' differs from value element type 'f16'}}
  %r = nn.attention %q, %k, %v {causal = true, num_heads = 8 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xf32>, tensor<2x2x16x64xf32>, tensor<2x2x16x64xf16>) -> tensor<2x8x16x64xf32>
  return
}

// -----

func.func @attention_result_element_type(%q: tensor<2x8x16x64xbf16>, %k: tensor<2x2x16x64xbf16>) {
  // expected-error @+1 {{'nn.attention' op query element type 'bf16' differs from result element type 'f32'}}
  %r = nn.attention %q, %k, %k {causal = true, num_heads = 8 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xbf16>, tensor<2x2x16x64xbf16>, tensor<2x2x16x64xbf16>) -> tensor<2x8x16x64xf32>
  return
}

// -----

func.func @attention_rank(%q: tensor<16x512xf32>) {
  // expected-error @+1 {{'nn.attention' op query must have rank 3 or 4, got 2}}
  %r = nn.attention %q, %q, %q {causal = true, num_heads = 8 : i64, num_kv_heads = 8 : i64, scale = 1.250000e-01 : f32} : (tensor<16x512xf32>, tensor<16x512xf32>, tensor<16x512xf32>) -> tensor<16x512xf32>
  return
}

// -----

func.func @attention_mixed_ranks(%q: tensor<2x8x16x64xf32>, %k: tensor<2x16x128xf32>) {
  // expected-error @+1 {{'nn.attention' op query, key and value must have the same rank}}
  %r = nn.attention %q, %k, %k {causal = true, num_heads = 8 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xf32>, tensor<2x16x128xf32>, tensor<2x16x128xf32>) -> tensor<2x8x16x64xf32>
  return
}

// -----

func.func @attention_gqa_groups(%q: tensor<2x8x16x64xf32>, %k: tensor<2x3x16x64xf32>) {
  // expected-error @+1 {{'nn.attention' op num_heads 8 is not a multiple of num_kv_heads 3}}
  %r = nn.attention %q, %k, %k {causal = true, num_heads = 8 : i64, num_kv_heads = 3 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xf32>, tensor<2x3x16x64xf32>, tensor<2x3x16x64xf32>) -> tensor<2x8x16x64xf32>
  return
}

// -----

func.func @attention_zero_kv_heads(%q: tensor<2x8x16x64xf32>) {
  // expected-error @+1 {{'nn.attention' op attribute 'num_kv_heads' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %r = nn.attention %q, %q, %q {causal = true, num_heads = 8 : i64, num_kv_heads = 0 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xf32>, tensor<2x8x16x64xf32>, tensor<2x8x16x64xf32>) -> tensor<2x8x16x64xf32>
  return
}

// -----

func.func @attention_batch(%q: tensor<2x8x16x64xf32>, %k: tensor<1x2x16x64xf32>) {
  // expected-error @+1 {{'nn.attention' op batch sizes of query, key and value differ}}
  %r = nn.attention %q, %k, %k {causal = true, num_heads = 8 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xf32>, tensor<1x2x16x64xf32>, tensor<1x2x16x64xf32>) -> tensor<2x8x16x64xf32>
  return
}

// -----

func.func @attention_query_heads(%q: tensor<2x8x16x64xf32>, %k: tensor<2x2x16x64xf32>) {
  // expected-error @+1 {{'nn.attention' op query has 8 heads, num_heads is 4}}
  %r = nn.attention %q, %k, %k {causal = true, num_heads = 4 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xf32>, tensor<2x2x16x64xf32>, tensor<2x2x16x64xf32>) -> tensor<2x8x16x64xf32>
  return
}

// -----

func.func @attention_kv_heads(%q: tensor<2x8x16x64xf32>, %k: tensor<2x2x16x64xf32>, %v: tensor<2x4x16x64xf32>) {
  // expected-error @+1 {{'nn.attention' op key/value have 2/4 heads, num_kv_heads is 2}}
  %r = nn.attention %q, %k, %v {causal = true, num_heads = 8 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xf32>, tensor<2x2x16x64xf32>, tensor<2x4x16x64xf32>) -> tensor<2x8x16x64xf32>
  return
}

// -----

func.func @attention_kv_sequence(%q: tensor<2x8x16x64xf32>, %k: tensor<2x2x16x64xf32>, %v: tensor<2x2x32x64xf32>) {
  // expected-error @+1 {{'nn.attention' op key and value sequence lengths differ}}
  %r = nn.attention %q, %k, %v {causal = true, num_heads = 8 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xf32>, tensor<2x2x16x64xf32>, tensor<2x2x32x64xf32>) -> tensor<2x8x16x64xf32>
  return
}

// -----

func.func @attention_head_size(%q: tensor<2x8x16x64xf32>, %k: tensor<2x2x16x128xf32>) {
  // expected-error @+1 {{'nn.attention' op query head size 64 differs from key head size 128}}
  %r = nn.attention %q, %k, %k {causal = true, num_heads = 8 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xf32>, tensor<2x2x16x128xf32>, tensor<2x2x16x128xf32>) -> tensor<2x8x16x128xf32>
  return
}

// -----

func.func @attention_bsh_query_hidden(%q: tensor<2x16x512xf32>, %k: tensor<2x16x128xf32>) {
  // expected-error @+1 {{'nn.attention' op query hidden size 512 is not divisible by num_heads 6}}
  %r = nn.attention %q, %k, %k {causal = true, num_heads = 6 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x16x512xf32>, tensor<2x16x128xf32>, tensor<2x16x128xf32>) -> tensor<2x16x512xf32>
  return
}

// -----

func.func @attention_bsh_kv_hidden(%q: tensor<2x16x512xf32>, %k: tensor<2x16x128xf32>, %v: tensor<2x16x100xf32>) {
  // expected-error @+1 {{'nn.attention' op key/value hidden sizes 128/100 are not divisible by num_kv_heads 8}}
  %r = nn.attention %q, %k, %v {causal = true, num_heads = 8 : i64, num_kv_heads = 8 : i64, scale = 1.250000e-01 : f32} : (tensor<2x16x512xf32>, tensor<2x16x128xf32>, tensor<2x16x100xf32>) -> tensor<2x16x512xf32>
  return
}

// -----

func.func @attention_bsh_kv_sequence(%q: tensor<2x16x512xf32>, %k: tensor<2x16x128xf32>, %v: tensor<2x8x128xf32>) {
  // expected-error @+1 {{'nn.attention' op key and value sequence lengths differ}}
  %r = nn.attention %q, %k, %v {causal = true, num_heads = 8 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x16x512xf32>, tensor<2x16x128xf32>, tensor<2x8x128xf32>) -> tensor<2x16x512xf32>
  return
}

// -----

// 512 / 8 = 64 per query head but 128 / 4 = 32 per key/value head.
func.func @attention_bsh_head_size(%q: tensor<2x16x512xf32>, %k: tensor<2x16x128xf32>) {
  // expected-error @+1 {{'nn.attention' op query head size 64 differs from key head size 32}}
  %r = nn.attention %q, %k, %k {causal = true, num_heads = 8 : i64, num_kv_heads = 4 : i64, scale = 1.250000e-01 : f32} : (tensor<2x16x512xf32>, tensor<2x16x128xf32>, tensor<2x16x128xf32>) -> tensor<2x16x256xf32>
  return
}

// -----

func.func @attention_mask_shape(%q: tensor<2x8x16x64xf32>, %k: tensor<2x2x16x64xf32>, %m: tensor<2x1x16x32xf32>) {
  // expected-error @+1 {{'nn.attention' op mask shape [2, 1, 16, 32] does not broadcast to [2, 8, 16, 16]}}
  %r = nn.attention %q, %k, %k, %m {causal = false, num_heads = 8 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xf32>, tensor<2x2x16x64xf32>, tensor<2x2x16x64xf32>, tensor<2x1x16x32xf32>) -> tensor<2x8x16x64xf32>
  return
}

// -----

// A mask indexed by key/value head ([B, Hkv, Sq, Sk]) does not broadcast over
// query heads.
func.func @attention_mask_kv_heads(%q: tensor<2x8x16x64xf32>, %k: tensor<2x2x16x64xf32>, %m: tensor<2x2x16x16xi1>) {
  // expected-error @+1 {{'nn.attention' op mask shape [2, 2, 16, 16] does not broadcast to [2, 8, 16, 16]}}
  %r = nn.attention %q, %k, %k, %m {causal = false, num_heads = 8 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xf32>, tensor<2x2x16x64xf32>, tensor<2x2x16x64xf32>, tensor<2x2x16x16xi1>) -> tensor<2x8x16x64xf32>
  return
}

// -----

func.func @attention_mask_rank(%q: tensor<2x16x512xf32>, %m: tensor<1x2x8x16x16xi1>) {
  // expected-error @+1 {{'nn.attention' op mask shape [1, 2, 8, 16, 16] does not broadcast to [2, 8, 16, 16]}}
  %r = nn.attention %q, %q, %q, %m {causal = false, num_heads = 8 : i64, num_kv_heads = 8 : i64, scale = 1.250000e-01 : f32} : (tensor<2x16x512xf32>, tensor<2x16x512xf32>, tensor<2x16x512xf32>, tensor<1x2x8x16x16xi1>) -> tensor<2x16x512xf32>
  return
}

// -----

func.func @attention_mask_element_type(%q: tensor<2x8x16x64xf32>, %k: tensor<2x2x16x64xf32>, %m: tensor<2x1x16x16xbf16>) {
  // expected-error @+1 {{'nn.attention' op mask element type 'bf16' must be i1 or the query element type}}
  %r = nn.attention %q, %k, %k, %m {causal = false, num_heads = 8 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xf32>, tensor<2x2x16x64xf32>, tensor<2x2x16x64xf32>, tensor<2x1x16x16xbf16>) -> tensor<2x8x16x64xf32>
  return
}

// -----

func.func @attention_integer_mask(%q: tensor<2x8x16x64xf32>, %k: tensor<2x2x16x64xf32>, %m: tensor<2x1x16x16xi64>) {
  // expected-error @+1 {{'nn.attention' op operand #3 must be statically shaped tensor of 32-bit float or bfloat16 type or 16-bit float or 1-bit signless integer values, but got 'tensor<2x1x16x16xi64>'}}
  %r = nn.attention %q, %k, %k, %m {causal = false, num_heads = 8 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xf32>, tensor<2x2x16x64xf32>, tensor<2x2x16x64xf32>, tensor<2x1x16x16xi64>) -> tensor<2x8x16x64xf32>
  return
}

// -----

func.func @attention_result_shape(%q: tensor<2x8x16x64xf32>, %k: tensor<2x2x16x64xf32>, %v: tensor<2x2x16x128xf32>) {
  // expected-error @+1 {{'nn.attention' op result shape [2, 8, 16, 64] does not match expected [2, 8, 16, 128]}}
  %r = nn.attention %q, %k, %v {causal = true, num_heads = 8 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x8x16x64xf32>, tensor<2x2x16x64xf32>, tensor<2x2x16x128xf32>) -> tensor<2x8x16x64xf32>
  return
}

// -----

// Rank 3 keeps heads folded: the result is [B, Sq, H * Dv], not [B, H, Sq, Dv].
func.func @attention_bsh_result_shape(%q: tensor<2x16x512xf32>, %k: tensor<2x16x128xf32>) {
  // expected-error @+1 {{'nn.attention' op result shape [2, 16, 128] does not match expected [2, 16, 512]}}
  %r = nn.attention %q, %k, %k {causal = true, num_heads = 8 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : (tensor<2x16x512xf32>, tensor<2x16x128xf32>, tensor<2x16x128xf32>) -> tensor<2x16x128xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// rotary
//===----------------------------------------------------------------------===//

func.func @rotary_result_type(%x: tensor<2x8x16x64xf32>, %c: tensor<16x32xf32>) {
  // expected-error @+1 {{'nn.rotary' op result type differs from input type}}
  %r = nn.rotary %x, %c, %c {interleaved = false, rotary_dim = 64 : i64} : (tensor<2x8x16x64xf32>, tensor<16x32xf32>, tensor<16x32xf32>) -> tensor<2x16x8x64xf32>
  return
}

// -----

func.func @rotary_rank(%x: tensor<2x16x512xf32>, %c: tensor<16x32xf32>) {
  // expected-error @+1 {{'nn.rotary' op input must be [B, H, S, D], got rank 3}}
  %r = nn.rotary %x, %c, %c {interleaved = false, rotary_dim = 64 : i64} : (tensor<2x16x512xf32>, tensor<16x32xf32>, tensor<16x32xf32>) -> tensor<2x16x512xf32>
  return
}

// -----

func.func @rotary_odd_dim(%x: tensor<2x8x16x64xf32>, %c: tensor<16x16xf32>) {
  // expected-error @+1 {{'nn.rotary' op rotary_dim 33 must be even and at most the head size 64}}
  %r = nn.rotary %x, %c, %c {interleaved = true, rotary_dim = 33 : i64} : (tensor<2x8x16x64xf32>, tensor<16x16xf32>, tensor<16x16xf32>) -> tensor<2x8x16x64xf32>
  return
}

// -----

func.func @rotary_dim_too_large(%x: tensor<2x8x16x64xf32>, %c: tensor<16x64xf32>) {
  // expected-error @+1 {{'nn.rotary' op rotary_dim 128 must be even and at most the head size 64}}
  %r = nn.rotary %x, %c, %c {interleaved = false, rotary_dim = 128 : i64} : (tensor<2x8x16x64xf32>, tensor<16x64xf32>, tensor<16x64xf32>) -> tensor<2x8x16x64xf32>
  return
}

// -----

func.func @rotary_zero_dim(%x: tensor<2x8x16x64xf32>, %c: tensor<16x0xf32>) {
  // expected-error @+1 {{'nn.rotary' op attribute 'rotary_dim' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %r = nn.rotary %x, %c, %c {interleaved = false, rotary_dim = 0 : i64} : (tensor<2x8x16x64xf32>, tensor<16x0xf32>, tensor<16x0xf32>) -> tensor<2x8x16x64xf32>
  return
}

// -----

func.func @rotary_cos_element_type(%x: tensor<2x8x16x64xbf16>, %c: tensor<16x32xf32>, %s: tensor<16x32xbf16>) {
  // expected-error @+1 {{'nn.rotary' op input element type 'bf16' differs from cos element type 'f32'}}
  %r = nn.rotary %x, %c, %s {interleaved = false, rotary_dim = 64 : i64} : (tensor<2x8x16x64xbf16>, tensor<16x32xf32>, tensor<16x32xbf16>) -> tensor<2x8x16x64xbf16>
  return
}

// -----

func.func @rotary_sin_element_type(%x: tensor<2x8x16x64xbf16>, %c: tensor<16x32xbf16>, %s: tensor<16x32xf16>) {
  // expected-error @+1 {{'nn.rotary' op input element type 'bf16' differs from sin element type 'f16'}}
  %r = nn.rotary %x, %c, %s {interleaved = false, rotary_dim = 64 : i64} : (tensor<2x8x16x64xbf16>, tensor<16x32xbf16>, tensor<16x32xf16>) -> tensor<2x8x16x64xbf16>
  return
}

// -----

// Full-width tables [S, D] where [S, D/2] is expected.
func.func @rotary_cos_shape(%x: tensor<2x8x16x64xf32>, %c: tensor<16x64xf32>) {
  // expected-error @+1 {{'nn.rotary' op cos shape [16, 64] must be [16, 32] or [2, 16, 32]}}
  %r = nn.rotary %x, %c, %c {interleaved = false, rotary_dim = 64 : i64} : (tensor<2x8x16x64xf32>, tensor<16x64xf32>, tensor<16x64xf32>) -> tensor<2x8x16x64xf32>
  return
}

// -----

// A table for more positions than the sequence must be sliced first.
func.func @rotary_sin_shape(%x: tensor<2x8x16x64xf32>, %c: tensor<2x16x32xf32>, %s: tensor<2048x32xf32>) {
  // expected-error @+1 {{'nn.rotary' op sin shape [2048, 32] must be [16, 32] or [2, 16, 32]}}
  %r = nn.rotary %x, %c, %s {interleaved = true, rotary_dim = 64 : i64} : (tensor<2x8x16x64xf32>, tensor<2x16x32xf32>, tensor<2048x32xf32>) -> tensor<2x8x16x64xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// gelu, silu, swiglu
//===----------------------------------------------------------------------===//

// Attribute constraints of the custom form are checked while parsing.
func.func @gelu_bad_approximation(%x: tensor<2x16x2048xf32>) {
  // expected-error @+1 {{'nn.gelu' op attribute 'approximate' failed to satisfy constraint: how GELU is computed}}
  %r = nn.gelu %x {approximate = 2 : i32} : tensor<2x16x2048xf32>
  return
}

// -----

// In the generic form the enum is rejected when the properties are built.
func.func @gelu_bad_approximation_generic(%x: tensor<2x16x2048xf32>) {
  // expected-error @+1 {{invalid properties {approximate = 2 : i32} for op nn.gelu: Invalid attribute `approximate` in property conversion: 2 : i32}}
  %r = "nn.gelu"(%x) <{approximate = 2 : i32}> : (tensor<2x16x2048xf32>) -> tensor<2x16x2048xf32>
  return
}

// -----

func.func @gelu_type_change(%x: tensor<2x16x2048xf32>) {
  // expected-error @+1 {{'nn.gelu' op requires the same type for all operands and results}}
  %r = "nn.gelu"(%x) <{approximate = 0 : i32}> : (tensor<2x16x2048xf32>) -> tensor<2x16x2048xbf16>
  return
}

// -----

func.func @silu_on_integers(%x: tensor<2x16xi32>) {
  // expected-error @+1 {{'nn.silu' op operand #0 must be statically shaped tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<2x16xi32>'}}
  %r = nn.silu %x : tensor<2x16xi32>
  return
}

// -----

func.func @swiglu_operand_types(%g: tensor<2x16x1376xbf16>, %u: tensor<2x16x1376xf32>) {
  // expected-error @+1 {{'nn.swiglu' op requires the same type for all operands and results}}
  %r = "nn.swiglu"(%g, %u) : (tensor<2x16x1376xbf16>, tensor<2x16x1376xf32>) -> tensor<2x16x1376xbf16>
  return
}

// -----

//===----------------------------------------------------------------------===//
// embedding, cross_entropy
//===----------------------------------------------------------------------===//

func.func @embedding_element_type(%t: tensor<32000x512xbf16>, %ids: tensor<2x16xi64>) {
  // expected-error @+1 {{'nn.embedding' op table element type 'bf16' differs from result element type 'f32'}}
  %r = nn.embedding %t, %ids : (tensor<32000x512xbf16>, tensor<2x16xi64>) -> tensor<2x16x512xf32>
  return
}

// -----

func.func @embedding_table_rank(%t: tensor<32000xf32>, %ids: tensor<2x16xi64>) {
  // expected-error @+1 {{'nn.embedding' op table must be [V, H], got rank 1}}
  %r = nn.embedding %t, %ids : (tensor<32000xf32>, tensor<2x16xi64>) -> tensor<2x16xf32>
  return
}

// -----

func.func @embedding_result_shape(%t: tensor<32000x512xf32>, %ids: tensor<2x16xi64>) {
  // expected-error @+1 {{'nn.embedding' op result shape [2, 16, 32000] does not match expected [2, 16, 512]}}
  %r = nn.embedding %t, %ids : (tensor<32000x512xf32>, tensor<2x16xi64>) -> tensor<2x16x32000xf32>
  return
}

// -----

func.func @embedding_float_ids(%t: tensor<32000x512xf32>, %ids: tensor<2x16xf32>) {
  // expected-error @+1 {{'nn.embedding' op operand #1 must be statically shaped tensor of 32-bit signless integer or 64-bit signless integer values, but got 'tensor<2x16xf32>'}}
  %r = nn.embedding %t, %ids : (tensor<32000x512xf32>, tensor<2x16xf32>) -> tensor<2x16x512xf32>
  return
}

// -----

func.func @cross_entropy_scalar_logits(%l: tensor<f32>, %t: tensor<i64>) {
  // expected-error @+1 {{'nn.cross_entropy' op logits must have rank >= 1}}
  %r = nn.cross_entropy %l, %t {ignore_index = -100 : i64} : (tensor<f32>, tensor<i64>) -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_targets_shape(%l: tensor<2x16x32000xf32>, %t: tensor<2x15xi64>) {
  // expected-error @+1 {{'nn.cross_entropy' op targets shape [2, 15] does not match expected [2, 16]}}
  %r = nn.cross_entropy %l, %t {ignore_index = -100 : i64} : (tensor<2x16x32000xf32>, tensor<2x15xi64>) -> tensor<f32>
  return
}

// -----

// Targets are token ids, not one-hot rows.
func.func @cross_entropy_one_hot_targets(%l: tensor<32x32000xbf16>, %t: tensor<32x32000xi64>) {
  // expected-error @+1 {{'nn.cross_entropy' op targets shape [32, 32000] does not match expected [32]}}
  %r = nn.cross_entropy %l, %t {ignore_index = -100 : i64} : (tensor<32x32000xbf16>, tensor<32x32000xi64>) -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_result_type(%l: tensor<2x16x32000xbf16>, %t: tensor<2x16xi64>) {
  // expected-error @+1 {{'nn.cross_entropy' op result #0 must be 0D tensor of 32-bit float values, but got 'tensor<bf16>'}}
  %r = nn.cross_entropy %l, %t {ignore_index = -100 : i64} : (tensor<2x16x32000xbf16>, tensor<2x16xi64>) -> tensor<bf16>
  return
}

// -----

func.func @cross_entropy_per_token(%l: tensor<2x16x32000xf32>, %t: tensor<2x16xi64>) {
  // expected-error @+1 {{'nn.cross_entropy' op result #0 must be 0D tensor of 32-bit float values, but got 'tensor<2x16xf32>'}}
  %r = nn.cross_entropy %l, %t {ignore_index = -100 : i64} : (tensor<2x16x32000xf32>, tensor<2x16xi64>) -> tensor<2x16xf32>
  return
}

// -----

func.func @topk_k(%x: tensor<2x4xf32>) {
  // expected-error @+1 {{'nn.topk_indices' op k = 5 exceeds the last dimension 4}}
  %r = nn.topk_indices %x {k = 5 : i64, largest = true} : tensor<2x4xf32> to tensor<2x5xi64>
  return
}

// -----

func.func @topk_shape(%x: tensor<2x4xf32>) {
  // expected-error @+1 {{'nn.topk_indices' op result shape must be the input's with k last}}
  %r = nn.topk_indices %x {k = 2 : i64, largest = false} : tensor<2x4xf32> to tensor<4x2xi64>
  return
}

// -----

// The attributes the compiler keys on are declared and verified.
// expected-error @+1 {{'func.func' op 'nn.autodiff' must be forward, backward, backward_input or backward_weight, got "backwards"}}
func.func @f_backward() attributes {nn.autodiff = "backwards", nn.autodiff_of = "f"} {
  return
}

// -----

// expected-error @+1 {{'func.func' op 'nn.saved' must be a non-negative integer, got -1 : i64}}
func.func @f_backward() attributes {nn.saved = -1 : i64} {
  return
}

// -----

// expected-error @+1 {{'func.func' op 'nn.recompute' must be a bool, got 1 : i64}}
func.func @f_backward() attributes {nn.recompute = 1 : i64} {
  return
}

// -----

// expected-error @+1 {{'func.func' op unknown nn attribute 'nn.savd'}}
func.func @f_backward() attributes {nn.savd = 1 : i64} {
  return
}

// -----

// expected-error @+1 {{'func.func' op 'nn.name' must be a string, got 3 : i64}}
func.func @f(%ids: tensor<2x8xi64> {nn.name = 3 : i64}) {
  return
}

// -----

func.func @f(%x: tensor<2xf32>) -> tensor<2xf32> {
  // expected-error @+1 {{'nn.exp' op 'nn.arena' must be an array of offsets >= -1, one per result at least, got array<i64: -2>}}
  %y = nn.exp %x {nn.arena = array<i64: -2>} : tensor<2xf32>
  return %y : tensor<2xf32>
}
