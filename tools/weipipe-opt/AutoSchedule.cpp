//===- AutoSchedule.cpp - --schedule=auto: the best simulated plan --------===//
//
// Part of weipipe. See AutoSchedule.h. Each plan is compiled from a copy of
// the imported module (the pipeline passes rewrite it) with diagnostics
// silenced: a plan the model or the schedule cannot take (N not a multiple
// of P, a tied head with --ends=owned, too few layers for the chunks) is
// counted, not reported.
//
//===----------------------------------------------------------------------===//

#include "AutoSchedule.h"

#include "weipipe/Schedule/Schedule.h"
#include "weipipe/Simulate/Predict.h"
#include "weipipe/runtime/RankMemory.h"

#include "mlir/IR/Diagnostics.h"

#include <algorithm>
#include <cstdio>
#include <map>

using namespace weipipe::opt;
namespace sim = weipipe::simulate;

namespace {

struct Plan {
  mlir::weipipe::PipelineOptions options;
  int64_t batch = 1;
  double tokensPerDevice = 0, iteration = 0, bubble = 0;
  uint64_t peak = 0;
};

std::string flagsOf(const Plan &p, const std::string &inputs) {
  const auto &s = p.options.schedule;
  std::string f = "--ranks=" + std::to_string(s.ranks) +
                  " --schedule=" + s.name +
                  " --microbatches=" + std::to_string(s.microbatches);
  if (s.chunksPerRank > 1)
    f += " --chunks-per-rank=" + std::to_string(s.chunksPerRank);
  if (s.nodeSize > 1)
    f += " --node-size=" + std::to_string(s.nodeSize);
  if (p.options.recompute)
    f += " --recompute";
  if (p.options.ends != "replicated")
    f += " --ends=" + p.options.ends;
  return f + inputs;
}

} // namespace

std::string weipipe::opt::searchSchedules(mlir::ModuleOp module,
                                          const AutoSearch &search,
                                          std::string *report,
                                          AutoChoice *best) {
  const int P = search.base.schedule.ranks;
  std::vector<std::string> names = search.schedules;
  if (names.empty())
    for (const std::string &n : weipipe::schedule::scheduleNames())
      if ((n == "single") == (P == 1))
        names.push_back(n);
  // Micro-batch counts: divisors of the step's rows (at most six, from P
  // up), each with the size that keeps the rows.
  const int64_t rows = search.batch * int64_t(search.microbatches);
  std::vector<int> counts;
  if (search.reimport) {
    for (int64_t n = std::max(1, P); n <= rows && counts.size() < 6; ++n)
      if (rows % n == 0)
        counts.push_back(int(n));
  }
  if (counts.empty())
    counts.push_back(search.microbatches);
  std::map<int64_t, mlir::OwningOpRef<mlir::ModuleOp>> imported;
  const uint64_t limit = search.memoryLimit
                             ? *search.memoryLimit
                             : uint64_t(search.machine->memoryBytes);
  std::vector<Plan> fits, over;
  size_t invalid = 0, tried = 0;
  // Failing plans are expected: their diagnostics are not the user's.
  mlir::ScopedDiagnosticHandler quiet(
      module.getContext(), [](mlir::Diagnostic &) { return mlir::success(); });
  // Ranks per node for the schedules that group by node: tawpipe's as the
  // machine says; fsdp relays its gathers through a rank of each node when
  // the machine's nodes split the ranks.
  const int perNode = search.machine->ranksPerNode;
  auto nodeSize = [&](const std::string &name) {
    if (name == "tawpipe")
      return perNode;
    if (name != "fsdp")
      return 1;
    return perNode >= P ? P : perNode > 0 && P % perNode == 0 ? perNode : 1;
  };
  for (const std::string &name : names)
    for (int v : name == "interleaved-1f1b" ? std::vector<int>{2, 3, 4}
                                            : std::vector<int>{1})
      for (int n : counts)
        for (bool recompute : {false, true})
          for (const char *ends : {"replicated", "owned"}) {
            Plan p;
            p.options = search.base;
            p.options.schedule.name = name;
            p.options.schedule.chunksPerRank = v;
            p.options.schedule.microbatches = n;
            p.options.schedule.nodeSize = nodeSize(name);
            p.options.recompute = recompute;
            p.options.ends = ends;
            p.batch = search.batch;
            std::string error;
            ++tried;
            if (weipipe::schedule::chunksFor(p.options.schedule, &error) < 0) {
              ++invalid;
              continue;
            }
            mlir::ModuleOp source = module;
            if (search.reimport && rows / n != search.batch) {
              p.batch = rows / n;
              auto &m = imported[p.batch];
              if (!m)
                m = search.reimport(p.batch);
              if (!m) {
                ++invalid;
                continue;
              }
              source = *m;
            }
            mlir::OwningOpRef<mlir::ModuleOp> copy = source.clone();
            weipipe::schedule::Schedule schedule;
            weipipe::rt::Artifact artifact;
            if (mlir::failed(mlir::weipipe::buildPipelineArtifact(
                    *copy, p.options, schedule, artifact))) {
              ++invalid;
              continue;
            }
            std::vector<uint64_t> peaks;
            for (uint32_t r = 0; r < artifact.ranks; ++r)
              peaks.push_back(weipipe::rt::planRankMemory(artifact, r).total());
            sim::Prediction pr;
            if (!sim::predict(artifact, schedule, *search.machine,
                              search.precision, sim::Storage::Fp32, peaks, &pr)
                     .empty()) {
              ++invalid;
              continue;
            }
            p.tokensPerDevice = pr.tokensPerDevice();
            p.iteration = pr.sim.iterationTime;
            p.bubble = pr.sim.bubbleRatio;
            p.peak = *std::max_element(peaks.begin(), peaks.end());
            (p.peak <= limit ? fits : over).push_back(std::move(p));
          }
  if (fits.empty() && over.empty())
    return "no plan of the search compiles (" + std::to_string(tried) +
           " tried)";
  if (fits.empty()) {
    const Plan &small = *std::min_element(
        over.begin(), over.end(),
        [](const Plan &a, const Plan &b) { return a.peak < b.peak; });
    return "no plan fits in " + sim::formatBytes(double(limit)) +
           ": the smallest needs " + sim::formatBytes(double(small.peak)) +
           " (" + flagsOf(small, "") + ")";
  }
  std::stable_sort(fits.begin(), fits.end(), [](const Plan &a, const Plan &b) {
    return a.tokensPerDevice > b.tokensPerDevice;
  });
  char line[256];
  std::string o =
      "--schedule=auto on " + search.machine->name + " (" +
      sim::precisionName(search.precision) + "): " + std::to_string(tried) +
      " plans, " + std::to_string(invalid) +
      " not valid for this model or schedule, " + std::to_string(over.size()) +
      " over " + sim::formatBytes(double(limit)) + "; the best of " +
      std::to_string(fits.size()) + ":\n";
  std::snprintf(line, sizeof line,
                "  %4s  %-20s %2s %4s %5s %9s %-10s %15s %12s %7s %12s\n",
                "rank", "schedule", "v", "N", "rows", "recompute", "ends",
                "tokens/s/device", "iteration", "bubble", "peak memory");
  o += line;
  for (size_t k = 0; k < fits.size() && k < 5; ++k) {
    const Plan &p = fits[k];
    const auto &s = p.options.schedule;
    std::snprintf(line, sizeof line,
                  "  %4zu  %-20s %2d %4d %5lld %9s %-10s %15.1f %10.3f ms "
                  "%7.4f %12s\n",
                  k + 1, s.name.c_str(), s.chunksPerRank, s.microbatches,
                  (long long)p.batch, p.options.recompute ? "yes" : "no",
                  p.options.ends.c_str(), p.tokensPerDevice, p.iteration * 1e3,
                  p.bubble, sim::formatBytes(double(p.peak)).c_str());
    o += line;
  }
  best->options = fits.front().options;
  best->batch = fits.front().batch;
  best->flags = flagsOf(fits.front(), "");
  o += "  chosen: " + best->flags +
       (best->batch != search.batch
            ? " (micro-batches of " + std::to_string(best->batch) + " rows)"
            : std::string()) +
       "\n";
  *report = o;
  return "";
}
