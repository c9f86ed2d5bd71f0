// A micro-batch of zero rows or zero tokens trains nothing (issue 9, class
// 6: it compiled): a diagnostic names the input and the flag that sets it,
// and nothing is written.
// RUN: sed -e 's|STORAGE|%s|' -e 's|BATCH|0|g' -e 's|SEQ|4|g' %s > %t.rows.mlir
// RUN: sed -e 's|STORAGE|%s|' -e 's|BATCH|2|g' -e 's|SEQ|0|g' %s > %t.tokens.mlir
// RUN: rm -f %t.wpp
// RUN: not weipipe-opt %t.rows.mlir --emit=artifact -o %t.wpp 2>&1 | FileCheck %s --check-prefix=ROWS --implicit-check-not="see current operation"
// RUN: not weipipe-opt %t.tokens.mlir --emit=artifact -o %t.wpp 2>&1 | FileCheck %s --check-prefix=TOKENS --implicit-check-not="see current operation"
// RUN: not ls %t.wpp
// ROWS: error: input 'input_ids' is [0, 4]; a micro-batch needs at least one row and one token (--input-shape=input_ids=BATCH,SEQ with both >= 1)
// TOKENS: error: input 'input_ids' is [2, 0]; a micro-batch needs at least one row and one token (--input-shape=input_ids=BATCH,SEQ with both >= 1)

nn.parameter @emb : tensor<16x8xf32> at "STORAGE"[0, 512]
func.func @main(%ids: tensor<BATCHxSEQxi64> {nn.name = "input_ids"}) -> tensor<BATCHxSEQx16xf32> {
  %e = nn.param @emb : tensor<16x8xf32>
  %x = nn.embedding %e, %ids : (tensor<16x8xf32>, tensor<BATCHxSEQxi64>) -> tensor<BATCHxSEQx8xf32>
  %y = nn.linear %x, %e {transpose_weight = true} : (tensor<BATCHxSEQx8xf32>, tensor<16x8xf32>) -> tensor<BATCHxSEQx16xf32>
  return %y : tensor<BATCHxSEQx16xf32>
}
