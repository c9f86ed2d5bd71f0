//===- bench_simulate.cpp - the simulator's speed at sweep scale ----------===//
//
// Part of weipipe. Issue 11 asks for a simulator fast enough to sweep: a
// 32-layer model on P = 16 ranks with N = 64 micro-batches "in well under a
// second". For every schedule this generates and verifies the programs (not
// timed: the compiler does that once per compile) and times
// simulateSchedule with per-chunk costs, weight and activation bytes and
// two nodes of 8 ranks, the best of 5 runs (bench/simulate/README.md).
//
//===----------------------------------------------------------------------===//

#include "../schedule/SweepOptions.h"
#include "weipipe/Schedule/Simulate.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

using namespace weipipe::schedule;

int main(int argc, char **argv) {
  const int layers = argc > 1 ? std::atoi(argv[1]) : 32;
  const int P = argc > 2 ? std::atoi(argv[2]) : 16;
  const int N = argc > 3 ? std::atoi(argv[3]) : 64;
  const double budget = 1.0;
  std::printf("%d layers, P = %d, N = %d; budget %.1f s per simulation\n",
              layers, P, N, budget);
  std::printf("%-20s %8s %12s %10s %8s\n", "schedule", "actions", "simulate",
              "bubble", "/budget");
  bool allFit = true;
  for (const std::string &name : scheduleNames()) {
    const Options o = sweepOptions(name, layers, P, N);
    Schedule s;
    std::string error;
    if (!generateSchedule(o, &s, &error)) {
      std::printf("%-20s skipped: %s\n", name.c_str(), error.c_str());
      continue;
    }
    if (std::string why = verifySchedule(s); !why.empty()) {
      std::printf("%-20s verification failed: %s\n", name.c_str(), why.c_str());
      allFit = false;
      continue;
    }
    CostModel m = CostModel::uniform(s.chunks, 1.0, 2.0, 0.0);
    m.weightBytes.assign(size_t(s.chunks), 4e8 / s.chunks);
    m.activationBytes.assign(size_t(s.chunks), 6.4e7);
    m.ranksPerNode = 8;
    m.intraNode = {5e-6, 2e11, false, false};
    m.interNode = {5e-5, 1.25e9, true, false};
    size_t actions = 0;
    for (const RankProgram &p : s.programs)
      actions += p.actions.size();
    double best = 1e9;
    Simulation sim;
    for (int k = 0; k < 5; ++k) {
      const auto t0 = std::chrono::steady_clock::now();
      error = simulateSchedule(s, m, &sim);
      best = std::min(best, std::chrono::duration<double>(
                                std::chrono::steady_clock::now() - t0)
                                .count());
      if (!error.empty())
        break;
    }
    if (!error.empty()) {
      std::printf("%-20s simulation failed: %s\n", name.c_str(), error.c_str());
      allFit = false;
      continue;
    }
    allFit &= best < budget;
    std::printf("%-20s %8zu %10.4f s %10.4f %7.3fx\n", name.c_str(), actions,
                best, sim.bubbleRatio, best / budget);
  }
  std::printf("%s\n",
              allFit ? "every schedule well within the budget" : "OVER BUDGET");
  return allFit ? 0 : 1;
}
