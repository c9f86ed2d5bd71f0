// RUN: not weipipe-opt %s -nn-fuse=patterns=linear,flash 2>&1 | FileCheck %s
// CHECK: nn-fuse: unknown pattern 'flash' (known: linear, embedding, layer_norm, rms_norm, gelu, silu, attention, rotary)
func.func @f() {
  return
}
