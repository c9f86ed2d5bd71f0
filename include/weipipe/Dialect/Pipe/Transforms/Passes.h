//===- Passes.h - the pipe dialect's passes ---------------------*- C++ -*-===//
//
// Part of weipipe. Passes that build and schedule pipelines (Passes.td).
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_DIALECT_PIPE_TRANSFORMS_PASSES_H
#define WEIPIPE_DIALECT_PIPE_TRANSFORMS_PASSES_H

#include "weipipe/Dialect/NN/NNDialect.h"
#include "weipipe/Dialect/Pipe/PipeDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/Pass.h"

namespace weipipe::schedule {
struct Schedule;
} // namespace weipipe::schedule

namespace mlir::weipipe {

namespace pipe {
class ModelOp;
class ChunkOp;
} // namespace pipe

/// The function `pipe-autodiff` writes for `chunk` of `model` (and the
/// `nn.autodiff_of` of its differentiated functions): "<model>_<chunk>".
std::string chunkFunctionName(pipe::ModelOp model, pipe::ChunkOp chunk);

/// The pipe.model `name` of `module`, or null after an error naming `pass`.
pipe::ModelOp lookupModel(ModuleOp module, StringRef name, StringRef pass);

//===----------------------------------------------------------------------===//
// Schedules in the IR (ScheduleIR.cpp)
//===----------------------------------------------------------------------===//
//
// A schedule (include/weipipe/Schedule/Schedule.h) is one `pipe.program` per
// rank: `pipe.program @rankR for @model rank R of P schedule "NAME"
// microbatches N owners [o0, ...]` (and `node_size S` when S != 1), whose
// slots are the `pipe.slot`s in order and whose actions are its other ops in
// order. Chunk c of the schedule is the model's c-th `layers` chunk in layer
// order. `owners` is the schedule's owner map, the same on every program. A
// step without a `turn` is in the turn of the step before it; tokens are the
// send/recv results, numbered in program order.

/// Writes one pipe.program per rank of `schedule`, for `model`, at `b`'s
/// insertion point. The model must have `schedule.chunks` layers chunks.
/// Fails with an error at the model when it does not, or when a program's
/// name is taken.
LogicalResult writeSchedule(OpBuilder &b, pipe::ModelOp model,
                            const ::weipipe::schedule::Schedule &schedule);

/// The schedule of the pipe.program ops of `module` that run `model`, read
/// back: readSchedule(writeSchedule(s)) equals s in every field but the
/// verifier's `contents`. Fails with an error on the offending op when the
/// programs are not one schedule: no program, a missing or duplicate rank,
/// programs that disagree on ranks, schedule, micro-batches, owners or node
/// size, an owner map that does not list every layers chunk, a step that
/// names a chunk that is not a layers chunk, or an op with no place in a
/// schedule (pipe.loss, a pipe.zero without a chunk, an op of another
/// dialect). With `steps`, also returns each rank's step ops, in the order of
/// its actions (`steps[R][K]` is action K of rank R).
FailureOr<::weipipe::schedule::Schedule>
readSchedule(ModuleOp module, pipe::ModelOp model,
             SmallVectorImpl<SmallVector<Operation *>> *steps = nullptr);

/// readSchedule, then the verifier (which fills in what every transfer
/// carries); a broken schedule is an error on the op of the rank and step
/// the verifier names. What -pipe-verify-schedule runs and the artifact
/// writer lowers.
FailureOr<::weipipe::schedule::Schedule>
readVerifiedSchedule(ModuleOp module, pipe::ModelOp model);

#define GEN_PASS_DECL
#include "weipipe/Dialect/Pipe/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "weipipe/Dialect/Pipe/Transforms/Passes.h.inc"

} // namespace mlir::weipipe

#endif // WEIPIPE_DIALECT_PIPE_TRANSFORMS_PASSES_H
