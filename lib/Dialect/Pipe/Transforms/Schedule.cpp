//===- Schedule.cpp - the pipe-schedule pass ------------------------------===//
//
// Part of weipipe. Generates a pipeline schedule (lib/Schedule) for a model
// cut into layers chunks and writes it into the IR as one pipe.program per
// rank, where the verifier pass and the artifact writer read it.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Schedule/Schedule.h"
#include "weipipe/Dialect/Pipe/PipeOps.h"
#include "weipipe/Dialect/Pipe/Transforms/Passes.h"

namespace mlir::weipipe {
#define GEN_PASS_DEF_PIPESCHEDULEPASS
#include "weipipe/Dialect/Pipe/Transforms/Passes.h.inc"
} // namespace mlir::weipipe

using namespace mlir;
using namespace mlir::weipipe;
namespace sched = ::weipipe::schedule;

namespace {

/// The schedule library names the fix as weipipe-opt's flags (--ranks); a
/// pass user sets the pass's options (ranks=).
std::string asPassOptions(std::string message) {
  for (const char *flag :
       {"ranks", "microbatches", "chunks-per-rank", "node-size"}) {
    std::string from = std::string("--") + flag;
    for (size_t at = message.find(from); at != std::string::npos;
         at = message.find(from, at))
      message.erase(at, 2);
  }
  return message;
}

struct PipeSchedulePass
    : mlir::weipipe::impl::PipeSchedulePassBase<PipeSchedulePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    pipe::ModelOp modelOp = lookupModel(module, model, "pipe-schedule");
    if (!modelOp)
      return signalPassFailure();
    for (auto program : module.getBody()->getOps<pipe::ProgramOp>()) {
      if (program.getModel() != model)
        continue;
      InFlightDiagnostic diag = modelOp.emitError()
                                << "pipe-schedule: @" << model
                                << " is already scheduled";
      diag.attachNote(program.getLoc())
          << "@" << program.getSymName() << " runs it";
      return signalPassFailure();
    }

    sched::Options options;
    options.name = schedule;
    options.ranks = ranks;
    options.microbatches = microbatches;
    options.chunksPerRank = chunksPerRank;
    options.nodeSize = nodeSize;
    std::string error;
    const int chunks = sched::chunksFor(options, &error);
    if (chunks < 0) {
      module.emitError() << "pipe-schedule: " << asPassOptions(error);
      return signalPassFailure();
    }
    int layers = 0;
    for (auto chunk : modelOp.getBodyRegion().front().getOps<pipe::ChunkOp>())
      layers += chunk.getKind() == pipe::ChunkKind::layers;
    if (layers != chunks) {
      InFlightDiagnostic diag = modelOp.emitError()
                                << "pipe-schedule: the model has " << layers
                                << " layer chunks, " << options.name;
      if (options.name == "interleaved-1f1b")
        diag << " with " << options.chunksPerRank << " chunks per rank";
      diag << " on " << options.ranks
           << (options.ranks == 1 ? " rank" : " ranks") << " needs " << chunks
           << ": run pipe-build-model{chunks=" << chunks << "}";
      return signalPassFailure();
    }

    sched::Schedule s;
    if (!sched::generateSchedule(options, &s, &error)) {
      module.emitError() << "pipe-schedule: " << asPassOptions(error);
      return signalPassFailure();
    }
    OpBuilder b(module.getContext());
    b.setInsertionPointAfter(modelOp);
    if (failed(writeSchedule(b, modelOp, s)))
      return signalPassFailure();
  }
};

} // namespace
