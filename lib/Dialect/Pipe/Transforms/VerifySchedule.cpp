//===- VerifySchedule.cpp - the pipe-verify-schedule pass -----------------===//
//
// Part of weipipe. Reads the pipe.program ops of a model back into a schedule
// and runs the symbolic verifier of lib/Schedule on it. The verifier names
// the rank and step that break a rule; the error goes on that step's op, so
// that it points into the IR the user wrote or a pass generated.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Dialect/Pipe/PipeOps.h"
#include "weipipe/Dialect/Pipe/Transforms/Passes.h"
#include "weipipe/Schedule/Schedule.h"

namespace mlir::weipipe {
#define GEN_PASS_DEF_PIPEVERIFYSCHEDULEPASS
#include "weipipe/Dialect/Pipe/Transforms/Passes.h.inc"
} // namespace mlir::weipipe

using namespace mlir;
using namespace mlir::weipipe;
namespace sched = ::weipipe::schedule;

namespace {

/// The op a verifier message is about: "rank R, step K (...): ..." is step K
/// of rank R, "rank R: ..." the program of rank R; anything else ("schedule:
/// ...") concerns the schedule as a whole, reported on rank 0's program.
Operation *locate(StringRef message, ArrayRef<SmallVector<Operation *>> steps,
                  ArrayRef<pipe::ProgramOp> programs) {
  unsigned rank = 0, step = 0;
  if (!message.consume_front("rank ") || message.consumeInteger(10, rank) ||
      rank >= programs.size())
    return programs.front();
  if (!message.consume_front(", step ") || message.consumeInteger(10, step) ||
      step >= steps[rank].size())
    return programs[rank];
  return steps[rank][step];
}

} // namespace

FailureOr<sched::Schedule>
mlir::weipipe::readVerifiedSchedule(ModuleOp module, pipe::ModelOp model) {
  SmallVector<SmallVector<Operation *>> steps;
  FailureOr<sched::Schedule> s = readSchedule(module, model, &steps);
  if (failed(s))
    return failure();
  std::string why = sched::verifySchedule(*s);
  if (why.empty())
    return s;
  // readSchedule succeeded: one program per rank, in module order here.
  SmallVector<pipe::ProgramOp> programs(size_t(s->ranks));
  for (auto program : module.getBody()->getOps<pipe::ProgramOp>())
    if (program.getModel() == model.getSymName())
      programs[size_t(program.getRank())] = program;
  locate(why, steps, programs)->emitError() << why;
  return failure();
}

namespace {

struct PipeVerifySchedulePass
    : mlir::weipipe::impl::PipeVerifySchedulePassBase<PipeVerifySchedulePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    pipe::ModelOp modelOp = lookupModel(module, model, "pipe-verify-schedule");
    if (!modelOp || failed(readVerifiedSchedule(module, modelOp)))
      return signalPassFailure();
    markAllAnalysesPreserved();
  }
};

} // namespace
