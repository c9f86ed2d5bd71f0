// RUN: weipipe-opt %s -split-input-file -verify-diagnostics

// Tests that a slot kind must be one of weights, grads, activations.
pipe.program @p for @m rank 0 of 1 schedule "test" {
  // expected-error @+2 {{expected ::mlir::weipipe::pipe::SlotKind to be one of: weights, grads, activations}}
  // expected-error @+1 {{failed to parse Pipe_SlotType parameter 'kind' which is to be a `::mlir::weipipe::pipe::SlotKind`}}
  %s = pipe.slot "S" : !pipe.slot<bogus>
}

// -----

// Tests that a model has at least one layer.
// expected-error @+1 {{'pipe.model' op expects at least one layer, got 0}}
pipe.model @m layers 0 {
}

// -----

// Tests that a model has at most one prologue chunk.
// expected-error @+1 {{'pipe.model' op has more than one prologue chunk}}
pipe.model @m layers 1 {
  // expected-note @+1 {{prologue chunk @a}}
  pipe.chunk prologue @a() {
    pipe.yield
  }
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
  // expected-note @+1 {{prologue chunk @b}}
  pipe.chunk prologue @b() {
    pipe.yield
  }
}

// -----

// Tests that a model has at most one epilogue chunk.
// expected-error @+1 {{'pipe.model' op has more than one epilogue chunk}}
pipe.model @m layers 1 {
  // expected-note @+1 {{epilogue chunk @a}}
  pipe.chunk epilogue @a() {
    pipe.yield
  }
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
  // expected-note @+1 {{epilogue chunk @b}}
  pipe.chunk epilogue @b() {
    pipe.yield
  }
}

// -----

// Tests that a gap between layer chunks is reported at the next chunk.
// expected-error @+1 {{'pipe.model' op layers [1, 2) are not covered by any chunk}}
pipe.model @m layers 3 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
  // expected-note @+1 {{chunk @c1 covers layers [2, 3)}}
  pipe.chunk layers [2, 3) @c1() {
    pipe.yield
  }
}

// -----

// Tests that layers missing at the end are reported at the last chunk.
// expected-error @+1 {{'pipe.model' op layers [2, 4) are not covered by any chunk}}
pipe.model @m layers 4 {
  // expected-note @+1 {{chunk @c1 covers layers [1, 2)}}
  pipe.chunk layers [1, 2) @c1() {
    pipe.yield
  }
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}

// -----

// Tests that a model without layer chunks covers none of its layers.
// expected-error @+1 {{'pipe.model' op layers [0, 2) are not covered by any chunk}}
pipe.model @m layers 2 {
  pipe.chunk prologue @embed() {
    pipe.yield
  }
}

// -----

// Tests that overlapping layer chunks are reported with both chunks.
// expected-error @+1 {{'pipe.model' op chunks @c0 and @c1 overlap on layers [1, 2)}}
pipe.model @m layers 3 {
  // expected-note @+1 {{chunk @c0 covers layers [0, 2)}}
  pipe.chunk layers [0, 2) @c0() {
    pipe.yield
  }
  // expected-note @+1 {{chunk @c1 covers layers [1, 3)}}
  pipe.chunk layers [1, 3) @c1() {
    pipe.yield
  }
}

// -----

// Tests that a layer chunk may not reach past the model's last layer.
// expected-error @+1 {{'pipe.model' op layers [2, 3) are past the model's 2 layers}}
pipe.model @m layers 2 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
  // expected-note @+1 {{chunk @c1 covers layers [1, 3)}}
  pipe.chunk layers [1, 3) @c1() {
    pipe.yield
  }
}

// -----

// Tests that chunk names are unique within a model (its symbol table).
pipe.model @m layers 2 {
  // expected-note @+1 {{see existing symbol definition here}}
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
  // expected-error @+1 {{redefinition of symbol named 'c0'}}
  pipe.chunk layers [1, 2) @c0() {
    pipe.yield
  }
}

// -----

// Tests that a chunk lives in a model.
// expected-error @+1 {{'pipe.chunk' op expects parent op 'pipe.model'}}
pipe.chunk layers [0, 1) @c0() {
  pipe.yield
}

// -----

// Tests that a chunk kind is prologue, layers or epilogue.
pipe.model @m layers 1 {
  // expected-error @+1 {{expected chunk kind 'prologue', 'layers' or 'epilogue', got 'middle'}}
  pipe.chunk middle @c0() {
    pipe.yield
  }
}

// -----

// Tests that a chunk has a body.
pipe.model @m layers 1 {
  // expected-error @+1 {{'pipe.chunk' op expects a body}}
  pipe.chunk layers [0, 1) @c0(tensor<2xf32>) -> tensor<2xf32>
}

// -----

// Tests that a layers chunk has a layer range.
pipe.model @m layers 1 {
  // expected-error @+1 {{'pipe.chunk' op a layers chunk needs first_layer and num_layers}}
  pipe.chunk layers @c0() {
    pipe.yield
  }
}

// -----

// Tests that a layers chunk's range is not empty.
pipe.model @m layers 1 {
  // expected-error @+1 {{'pipe.chunk' op expects a non-empty layer range, got [1, 1)}}
  pipe.chunk layers [1, 1) @c0() {
    pipe.yield
  }
}

// -----

// Tests that a layers chunk's range starts at layer 0 or later.
pipe.model @m layers 1 {
  // expected-error @+1 {{'pipe.chunk' op layer range [-1, 1) starts before layer 0}}
  pipe.chunk layers [-1, 1) @c0() {
    pipe.yield
  }
}

// -----

// Tests that a prologue chunk has no layer range.
pipe.model @m layers 1 {
  // expected-error @+1 {{'pipe.chunk' op a prologue chunk has no layer range}}
  pipe.chunk prologue [0, 1) @embed() {
    pipe.yield
  }
}

// -----

// Tests that an epilogue chunk has no layer range, in generic form.
"pipe.model"() <{num_layers = 1 : si64, sym_name = "m"}> ({
  // expected-error @+1 {{'pipe.chunk' op an epilogue chunk has no layer range}}
  "pipe.chunk"() <{function_type = () -> (), kind = #pipe<chunk_kind epilogue>, num_layers = 0 : si64, sym_name = "head"}> ({
    "pipe.yield"() : () -> ()
  }) : () -> ()
}) : () -> ()

// -----

// Tests that the entry block's arguments match the chunk's signature.
"pipe.model"() <{num_layers = 1 : si64, sym_name = "m"}> ({
  // expected-error @+1 {{'pipe.chunk' op entry block must have 1 arguments to match function signature}}
  "pipe.chunk"() <{first_layer = 0 : si64, function_type = (f32) -> (), kind = #pipe<chunk_kind layers>, num_layers = 1 : si64, sym_name = "c0"}> ({
    "pipe.yield"() : () -> ()
  }) : () -> ()
}) : () -> ()

// -----

// Tests that pipe.yield yields as many values as the chunk returns.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0(%x: f32) -> (f32, f32) {
    // expected-error @+1 {{'pipe.yield' op expects 2 operands to match the results of chunk @c0, got 1}}
    pipe.yield %x : f32
  }
}

// -----

// Tests that pipe.yield yields the chunk's result types.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0(%x: f32) -> i32 {
    // expected-error @+1 {{'pipe.yield' op operand #0 type 'f32' does not match result type 'i32' of chunk @c0}}
    pipe.yield %x : f32
  }
}

// -----

// Tests that pipe.yield ends a chunk and nothing else.
func.func @f() {
  // expected-error @+1 {{'pipe.yield' op expects parent op 'pipe.chunk'}}
  pipe.yield
}

// -----

// Tests that a program has at least one rank.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
// expected-error @+1 {{'pipe.program' op expects at least one rank, got 0}}
pipe.program @p for @m rank 0 of 0 schedule "test" {
}

// -----

// Tests that a program's rank is below the number of ranks.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
// expected-error @+1 {{'pipe.program' op rank 2 is out of range [0, 2)}}
pipe.program @p for @m rank 2 of 2 schedule "test" {
}

// -----

// Tests that a program's rank is not negative.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
// expected-error @+1 {{'pipe.program' op rank -1 is out of range [0, 2)}}
pipe.program @p for @m rank -1 of 2 schedule "test" {
}

// -----

// Tests that a program names a pipe.model.
// expected-error @+1 {{'pipe.program' op @nope does not name a pipe.model}}
pipe.program @p for @nope rank 0 of 1 schedule "test" {
}

// -----

// Tests that a program's model must be a pipe.model, not another symbol.
func.func private @m()
// expected-error @+1 {{'pipe.program' op @m does not name a pipe.model}}
pipe.program @p for @m rank 0 of 1 schedule "test" {
}

// -----

// Tests that slot labels are unique within a program.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  // expected-note @+1 {{first slot labelled "F"}}
  %a = pipe.slot "F" : !pipe.slot<weights>
  // expected-error @+1 {{'pipe.slot' op label "F" is already used by another slot}}
  %b = pipe.slot "F" : !pipe.slot<grads>
}

// -----

// Tests that a slot label is not empty.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  // expected-error @+1 {{'pipe.slot' op expects a non-empty label}}
  %a = pipe.slot "" : !pipe.slot<weights>
}

// -----

// Tests that program steps live in a pipe.program.
func.func @f() {
  // expected-error @+1 {{'pipe.slot' op expects parent op 'pipe.program'}}
  %a = pipe.slot "F" : !pipe.slot<weights>
  return
}

// -----

// Tests that pipe.slot produces a slot type.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  // expected-error @+1 {{'pipe.slot' op result #0 must be a ring slot or buffer of one kind, but got '!pipe.token'}}
  %a = "pipe.slot"() <{label = "T"}> : () -> !pipe.token
}

// -----

// Tests that pipe.load_master names a chunk of the program's model.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  // expected-error @+1 {{'pipe.load_master' op @c9 does not name a pipe.chunk of model @m}}
  pipe.load_master @c9 into(%w)
}

// -----

// Tests that pipe.forward names a chunk of the program's model.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  // expected-error @+1 {{'pipe.forward' op @c9 does not name a pipe.chunk of model @m}}
  pipe.forward @c9 weights(%w) microbatch(0)
}

// -----

// Tests that pipe.backward_input names a chunk of the program's model.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  // expected-error @+1 {{'pipe.backward_input' op @c9 does not name a pipe.chunk of model @m}}
  pipe.backward_input @c9 weights(%w) microbatch(0)
}

// -----

// Tests that pipe.backward_weight names a chunk of the program's model.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %d = pipe.slot "D" : !pipe.slot<grads>
  // expected-error @+1 {{'pipe.backward_weight' op @c9 does not name a pipe.chunk of model @m}}
  pipe.backward_weight @c9 microbatch(0) accumulate(%d)
}

// -----

// Tests that pipe.backward names a chunk of the program's model.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  %d = pipe.slot "D" : !pipe.slot<grads>
  // expected-error @+1 {{'pipe.backward' op @c9 does not name a pipe.chunk of model @m}}
  pipe.backward @c9 weights(%w) microbatch(0) accumulate(%d)
}

// -----

// Tests that pipe.optimizer_step names a chunk of the program's model.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %d = pipe.slot "D" : !pipe.slot<grads>
  // expected-error @+1 {{'pipe.optimizer_step' op @c9 does not name a pipe.chunk of model @m}}
  pipe.optimizer_step @c9 grads(%d)
}

// -----

// Tests that chunks are looked up in the program's model, not elsewhere.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.model @other layers 1 {
  pipe.chunk layers [0, 1) @c1() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 1 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  // expected-error @+1 {{'pipe.forward' op @c1 does not name a pipe.chunk of model @m}}
  pipe.forward @c1 weights(%w) microbatch(0)
}

// -----

// Tests that pipe.forward's micro-batch is not negative.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  // expected-error @+1 {{'pipe.forward' op microbatch -1 is negative}}
  pipe.forward @c0 weights(%w) microbatch(-1)
}

// -----

// Tests that pipe.backward_input's micro-batch is not negative.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  // expected-error @+1 {{'pipe.backward_input' op microbatch -1 is negative}}
  pipe.backward_input @c0 weights(%w) microbatch(-1)
}

// -----

// Tests that pipe.backward_weight's micro-batch is not negative.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %d = pipe.slot "D" : !pipe.slot<grads>
  // expected-error @+1 {{'pipe.backward_weight' op microbatch -1 is negative}}
  pipe.backward_weight @c0 microbatch(-1) accumulate(%d)
}

// -----

// Tests that pipe.backward's micro-batch is not negative.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  %d = pipe.slot "D" : !pipe.slot<grads>
  // expected-error @+1 {{'pipe.backward' op microbatch -1 is negative}}
  pipe.backward @c0 weights(%w) microbatch(-1) accumulate(%d)
}

// -----

// Tests that pipe.loss's micro-batch is not negative.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  // expected-error @+1 {{'pipe.loss' op microbatch -1 is negative}}
  pipe.loss microbatch(-1)
}

// -----

// Tests that pipe.forward reads and writes different activation slots.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  %a = pipe.slot "A" : !pipe.slot<activations>
  // expected-error @+1 {{'pipe.forward' op expects different slots for in and out}}
  pipe.forward @c0 weights(%w) microbatch(0) in(%a) out(%a)
}

// -----

// Tests that pipe.backward_input reads and writes different activation slots.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  %a = pipe.slot "A" : !pipe.slot<activations>
  // expected-error @+1 {{'pipe.backward_input' op expects different slots for in and out}}
  pipe.backward_input @c0 weights(%w) microbatch(0) in(%a) out(%a)
}

// -----

// Tests that pipe.backward reads and writes different activation slots.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  %a = pipe.slot "A" : !pipe.slot<activations>
  %d = pipe.slot "D" : !pipe.slot<grads>
  // expected-error @+1 {{'pipe.backward' op expects different slots for in and out}}
  pipe.backward @c0 weights(%w) microbatch(0) accumulate(%d) in(%a) out(%a)
}

// -----

// Tests that a slot of the wrong kind does not parse where a kind is implied.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  // expected-note @+1 {{prior use here}}
  %d = pipe.slot "D" : !pipe.slot<grads>
  // expected-error @+1 {{use of value '%d' expects different type than prior uses: '!pipe.slot<weights>' vs '!pipe.slot<grads>'}}
  pipe.forward @c0 weights(%d) microbatch(0)
}

// -----

// Tests that pipe.forward takes a weights slot.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  %d = pipe.slot "D" : !pipe.slot<grads>
  // expected-error @+1 {{'pipe.forward' op operand #0 must be !pipe.slot<weights>, but got '!pipe.slot<grads>'}}
  "pipe.forward"(%d) <{chunk = @c0, microbatch = 0 : si64, operandSegmentSizes = array<i32: 1, 0, 0>}> : (!pipe.slot<grads>) -> ()
}

// -----

// Tests that pipe.forward takes a activations (in) slot.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  %d = pipe.slot "D" : !pipe.slot<grads>
  // expected-error @+1 {{'pipe.forward' op operand #1 must be !pipe.slot<activations>, but got '!pipe.slot<weights>'}}
  "pipe.forward"(%w, %w) <{chunk = @c0, microbatch = 0 : si64, operandSegmentSizes = array<i32: 1, 1, 0>}> : (!pipe.slot<weights>, !pipe.slot<weights>) -> ()
}

// -----

// Tests that pipe.backward_input takes a weights slot.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  %d = pipe.slot "D" : !pipe.slot<grads>
  // expected-error @+1 {{'pipe.backward_input' op operand #0 must be !pipe.slot<weights>, but got '!pipe.slot<grads>'}}
  "pipe.backward_input"(%d) <{chunk = @c0, microbatch = 0 : si64, operandSegmentSizes = array<i32: 1, 0, 0>}> : (!pipe.slot<grads>) -> ()
}

// -----

// Tests that pipe.backward_weight takes a grads slot.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  %d = pipe.slot "D" : !pipe.slot<grads>
  // expected-error @+1 {{'pipe.backward_weight' op operand #0 must be !pipe.slot<grads>, but got '!pipe.slot<weights>'}}
  "pipe.backward_weight"(%w) <{chunk = @c0, microbatch = 0 : si64}> : (!pipe.slot<weights>) -> ()
}

// -----

// Tests that pipe.backward takes a grads (accumulate) slot.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  %d = pipe.slot "D" : !pipe.slot<grads>
  // expected-error @+1 {{'pipe.backward' op operand #1 must be !pipe.slot<grads>, but got '!pipe.slot<weights>'}}
  "pipe.backward"(%w, %w) <{chunk = @c0, microbatch = 0 : si64, operandSegmentSizes = array<i32: 1, 1, 0, 0>}> : (!pipe.slot<weights>, !pipe.slot<weights>) -> ()
}

// -----

// Tests that pipe.optimizer_step takes a grads slot.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  %d = pipe.slot "D" : !pipe.slot<grads>
  // expected-error @+1 {{'pipe.optimizer_step' op operand #0 must be !pipe.slot<grads>, but got '!pipe.slot<weights>'}}
  "pipe.optimizer_step"(%w) <{chunk = @c0}> : (!pipe.slot<weights>) -> ()
}

// -----

// Tests that pipe.load_master takes a weights slot.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  %d = pipe.slot "D" : !pipe.slot<grads>
  // expected-error @+1 {{'pipe.load_master' op operand #0 must be !pipe.slot<weights>, but got '!pipe.slot<grads>'}}
  "pipe.load_master"(%d) <{chunk = @c0}> : (!pipe.slot<grads>) -> ()
}

// -----

// Tests that pipe.zero takes a grads slot.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  %d = pipe.slot "D" : !pipe.slot<grads>
  // expected-error @+1 {{'pipe.zero' op operand #0 must be !pipe.slot<grads>, but got '!pipe.slot<weights>'}}
  "pipe.zero"(%w) : (!pipe.slot<weights>) -> ()
}

// -----

// Tests that pipe.swap exchanges two different slots.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  // expected-error @+1 {{'pipe.swap' op expects two different slots}}
  pipe.swap %w, %w : !pipe.slot<weights>
}

// -----

// Tests that pipe.swap exchanges slots of one kind.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  %d = pipe.slot "D" : !pipe.slot<grads>
  // expected-error @+1 {{'pipe.swap' op failed to verify that all of {lhs, rhs} have same type}}
  "pipe.swap"(%w, %d) : (!pipe.slot<weights>, !pipe.slot<grads>) -> ()
}

// -----

// Tests that pipe.send carries at least one slot.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  // expected-error @+1 {{'pipe.send' op expects at least one slot}}
  %t = "pipe.send"() <{peer = 1 : si64, turn = 0 : si64}> : () -> !pipe.token
}

// -----

// Tests that pipe.send carries distinct slots.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  %d = pipe.slot "D" : !pipe.slot<grads>
  // expected-error @+1 {{'pipe.send' op operands #0 and #2 are the same slot}}
  %t = pipe.send %w, %d, %w to 1 turn(0) : !pipe.slot<weights>, !pipe.slot<grads>, !pipe.slot<weights>
}

// -----

// Tests that pipe.send's turn is not negative.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  // expected-error @+1 {{'pipe.send' op turn -1 is negative}}
  %t = pipe.send %w to 1 turn(-1) : !pipe.slot<weights>
}

// -----

// Tests that pipe.send's peer is a rank of the program.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  // expected-error @+1 {{'pipe.send' op peer 2 is out of range [0, 2)}}
  %t = pipe.send %w to 2 turn(0) : !pipe.slot<weights>
}

// -----

// Tests that pipe.send's peer is not negative.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  // expected-error @+1 {{'pipe.send' op peer -1 is out of range [0, 2)}}
  %t = pipe.send %w to -1 turn(0) : !pipe.slot<weights>
}

// -----

// Tests that pipe.send's peer is another rank.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 1 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  // expected-error @+1 {{'pipe.send' op peer 1 is the program's own rank}}
  %t = pipe.send %w to 1 turn(0) : !pipe.slot<weights>
}

// -----

// Tests that pipe.recv carries at least one slot.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  // expected-error @+1 {{'pipe.recv' op expects at least one slot}}
  %t = "pipe.recv"() <{peer = 1 : si64, turn = 0 : si64}> : () -> !pipe.token
}

// -----

// Tests that pipe.recv carries distinct slots.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  %d = pipe.slot "D" : !pipe.slot<grads>
  // expected-error @+1 {{'pipe.recv' op operands #0 and #2 are the same slot}}
  %t = pipe.recv %w, %d, %w from 1 turn(0) : !pipe.slot<weights>, !pipe.slot<grads>, !pipe.slot<weights>
}

// -----

// Tests that pipe.recv's turn is not negative.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  // expected-error @+1 {{'pipe.recv' op turn -1 is negative}}
  %t = pipe.recv %w from 1 turn(-1) : !pipe.slot<weights>
}

// -----

// Tests that pipe.recv's peer is a rank of the program.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  // expected-error @+1 {{'pipe.recv' op peer 2 is out of range [0, 2)}}
  %t = pipe.recv %w from 2 turn(0) : !pipe.slot<weights>
}

// -----

// Tests that pipe.recv's peer is not negative.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  // expected-error @+1 {{'pipe.recv' op peer -1 is out of range [0, 2)}}
  %t = pipe.recv %w from -1 turn(0) : !pipe.slot<weights>
}

// -----

// Tests that pipe.recv's peer is another rank.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 1 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  // expected-error @+1 {{'pipe.recv' op peer 1 is the program's own rank}}
  %t = pipe.recv %w from 1 turn(0) : !pipe.slot<weights>
}

// -----

// Tests that pipe.wait waits on at least one token.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  // expected-error @+1 {{'pipe.wait' op expects at least one token}}
  pipe.wait
}

// -----

// Tests that pipe.wait waits on tokens only.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  // expected-error @+1 {{'pipe.wait' op operand #0 must be variadic of an in-flight transfer, but got '!pipe.slot<weights>'}}
  "pipe.wait"(%w) : (!pipe.slot<weights>) -> ()
}

// -----

// Tests that a program's schedule runs at least one micro-batch.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
// expected-error @+1 {{'pipe.program' op expects at least one micro-batch, got 0}}
pipe.program @p for @m rank 0 of 2 schedule "test" microbatches 0 {
}

// -----

// Tests that a chunk's owner is a rank of the program's schedule.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
// expected-error @+1 {{'pipe.program' op owner 2 of chunk #0 is out of range [0, 2)}}
pipe.program @p for @m rank 0 of 2 schedule "test" microbatches 2 owners [2] {
}

// -----

// Tests that a node has at least one rank.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
// expected-error @+1 {{'pipe.program' op expects a node size of at least 1, got 0}}
pipe.program @p for @m rank 0 of 2 schedule "tawpipe" node_size 0 {
}

// -----

// Tests that pipe.add_into adds one slot into another.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %d = pipe.slot "D" : !pipe.slot<grads>
  // expected-error @+1 {{'pipe.add_into' op expects two different slots}}
  pipe.add_into @c0 %d into(%d)
}

// -----

// Tests that pipe.add_into adds gradients, not weights.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %d = pipe.slot "D" : !pipe.slot<grads>
  %w = pipe.slot "W" : !pipe.slot<weights>
  // expected-error @+1 {{'pipe.add_into' op operand #0 must be !pipe.slot<grads>, but got '!pipe.slot<weights>'}}
  "pipe.add_into"(%w, %d) <{chunk = @c0}> : (!pipe.slot<weights>, !pipe.slot<grads>) -> ()
}

// -----

// Tests that pipe.zero's chunk is a chunk of the program's model.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %d = pipe.slot "D" : !pipe.slot<grads>
  // expected-error @+1 {{'pipe.zero' op @c1 does not name a pipe.chunk of model @m}}
  pipe.zero @c1 %d
}

// -----

// Tests that the turn of a step is not negative.
pipe.model @m layers 1 {
  pipe.chunk layers [0, 1) @c0() {
    pipe.yield
  }
}
pipe.program @p for @m rank 0 of 2 schedule "test" {
  %w = pipe.slot "W" : !pipe.slot<weights>
  // expected-error @+1 {{'pipe.forward' op turn -1 is negative}}
  pipe.forward @c0 weights(%w) microbatch(0) turn(-1)
}
