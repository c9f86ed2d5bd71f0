//===- bench_schedule.cpp - schedule generation and verification speed ---===//
//
// Part of weipipe's benchmarks (bench/schedule/README.md). For a model of
// `layers` layers on P ranks with N micro-batches, generates every schedule
// (lib/Schedule), verifies it by symbolic execution of all ranks, and prints
// the time of each phase against the 2-second budget the compiler allows
// itself. Schedules whose options do not fit the configuration (WZB2 needs
// N = P) run with the nearest configuration that does, said in the output.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Schedule/Schedule.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

using namespace weipipe::schedule;

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
  std::printf("%-20s %6s %5s %8s %10s %10s %10s %8s\n", "schedule", "chunks",
              "N", "actions", "generate", "verify", "total", "/budget");
  bool allFit = true;
  for (const std::string &name : scheduleNames()) {
    Options o;
    o.name = name;
    o.ranks = name == "single" ? 1 : P;
    o.microbatches = name == "weipipe-zb2" ? o.ranks : N;
    o.nodeSize = name == "tawpipe" ? 8 : 1;
    if (name == "interleaved-1f1b")
      o.chunksPerRank = layers / P >= 2 ? 2 : 1;
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
    const double total = gen + ver;
    allFit &= total < budget;
    std::printf("%-20s %6d %5d %8zu %9.3fs %9.3fs %9.3fs %7.2fx\n",
                name.c_str(), chunks, o.microbatches, actions, gen, ver, total,
                total / budget);
  }
  std::printf("%s\n", allFit ? "every schedule within the budget"
                             : "SOME SCHEDULES EXCEED THE BUDGET");
  return allFit ? 0 : 1;
}
