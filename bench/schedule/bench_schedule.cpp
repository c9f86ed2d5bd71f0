//===- bench_schedule.cpp - schedule generation and verification speed ---===//
//
// Part of weipipe's benchmarks (bench/schedule/README.md). For a model of
// `layers` layers on P ranks with N micro-batches, generates every schedule
// (lib/Schedule), verifies it by symbolic execution of all ranks, and prints
// the time of each phase against the 2-second budget the compiler allows
// itself: generating and verifying the programs as data, writing them as
// pipe.program ops (-pipe-schedule) and reading them back for the verifier
// (-pipe-verify-schedule), the path every compile takes. WZB2 needs N = P
// and runs with that.
//
//===----------------------------------------------------------------------===//

#include "SweepOptions.h"
#include "weipipe/Dialect/Pipe/PipeOps.h"
#include "weipipe/Dialect/Pipe/Transforms/Passes.h"
#include "weipipe/InitAllDialects.h"
#include "weipipe/Schedule/Schedule.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

using namespace weipipe::schedule;
namespace pipe = mlir::weipipe::pipe;

namespace {
double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
      .count();
}
} // namespace

int main(int argc, char **argv) {
  const int layers = argc > 1 ? std::atoi(argv[1]) : 96;
  const int P = argc > 2 ? std::atoi(argv[2]) : 64;
  const int N = argc > 3 ? std::atoi(argv[3]) : 512;
  const double budget = 2.0;
  std::printf("%d layers, P = %d, N = %d; budget %.1f s per schedule\n", layers,
              P, N, budget);
  std::printf("%-20s %6s %5s %8s %9s %9s %9s %9s %9s %8s\n", "schedule",
              "chunks", "N", "actions", "generate", "verify", "to IR",
              "from IR", "total", "/budget");
  mlir::DialectRegistry registry;
  mlir::weipipe::registerAllDialects(registry);
  mlir::MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  bool allFit = true;
  for (const std::string &name : scheduleNames()) {
    const Options o = sweepOptions(name, layers, P, N);
    std::string error;
    const int chunks = chunksFor(o, &error);
    if (chunks < 0 || chunks > layers) {
      std::printf("%-20s skipped: %s\n", name.c_str(),
                  chunks < 0 ? error.c_str() : "more chunks than layers");
      continue;
    }
    auto t0 = std::chrono::steady_clock::now();
    Schedule s;
    if (!generateSchedule(o, &s, &error)) {
      std::printf("%-20s error: %s\n", name.c_str(), error.c_str());
      return 1;
    }
    const double gen = since(t0);
    t0 = std::chrono::steady_clock::now();
    std::string why = verifySchedule(s);
    const double ver = since(t0);
    if (!why.empty()) {
      std::printf("%-20s verification failed: %s\n", name.c_str(), why.c_str());
      return 1;
    }
    size_t actions = 0;
    for (const RankProgram &p : s.programs)
      actions += p.actions.size();
    // The IR: a model of `chunks` empty layers chunks, the programs written
    // after it and read back.
    mlir::OpBuilder b(&ctx);
    auto module = mlir::ModuleOp::create(b.getUnknownLoc());
    b.setInsertionPointToEnd(module.getBody());
    auto model =
        pipe::ModelOp::create(b, b.getUnknownLoc(), "model", int64_t(chunks));
    {
      mlir::OpBuilder in =
          mlir::OpBuilder::atBlockEnd(&model.getBodyRegion().front());
      for (int c = 0; c < chunks; ++c) {
        auto chunk = pipe::ChunkOp::create(
            in, b.getUnknownLoc(), "chunk" + std::to_string(c),
            pipe::ChunkKind::layers, b.getFunctionType({}, {}), int64_t(c),
            int64_t(1));
        mlir::Block *body = new mlir::Block();
        chunk.getBody().push_back(body);
        mlir::OpBuilder cb = mlir::OpBuilder::atBlockEnd(body);
        pipe::YieldOp::create(cb, b.getUnknownLoc(), mlir::ValueRange());
      }
    }
    t0 = std::chrono::steady_clock::now();
    if (mlir::failed(mlir::weipipe::writeSchedule(b, model, s))) {
      std::printf("%-20s writing the IR failed\n", name.c_str());
      return 1;
    }
    const double toIR = since(t0);
    t0 = std::chrono::steady_clock::now();
    auto back = mlir::weipipe::readSchedule(module, model);
    if (mlir::failed(back) || !verifySchedule(*back).empty()) {
      std::printf("%-20s reading the IR back failed\n", name.c_str());
      return 1;
    }
    const double fromIR = since(t0);
    module.erase();
    const double total = gen + ver + toIR + fromIR;
    allFit &= total < budget;
    std::printf("%-20s %6d %5d %8zu %8.3fs %8.3fs %8.3fs %8.3fs %8.3fs "
                "%7.2fx\n",
                name.c_str(), chunks, o.microbatches, actions, gen, ver, toIR,
                fromIR, total, total / budget);
  }
  std::printf("%s\n", allFit ? "every schedule within the budget"
                             : "SOME SCHEDULES EXCEED THE BUDGET");
  return allFit ? 0 : 1;
}
