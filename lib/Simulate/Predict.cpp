//===- Predict.cpp - a compiled pipeline's iteration on a machine ---------===//
//
// Part of weipipe. See include/weipipe/Simulate/Predict.h.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Simulate/Predict.h"

#include <algorithm>
#include <cstdio>

namespace weipipe::simulate {

double Prediction::tokensPerDevice() const {
  const double P = double(sim.busy.size());
  return sim.iterationTime > 0 && P > 0 ? tokens / sim.iterationTime / P : 0;
}

double Prediction::mfu() const {
  const double P = double(sim.busy.size());
  const double peak = machine.peakFlops[int(precision)];
  return sim.iterationTime > 0 && P > 0
             ? cost.flops / (P * peak * sim.iterationTime)
             : 0;
}

int Prediction::outOfMemory() const {
  for (size_t r = 0; r < peakBytes.size(); ++r)
    if (double(peakBytes[r]) > machine.memoryBytes)
      return int(r);
  return -1;
}

std::string predict(const rt::Artifact &a, const schedule::Schedule &s,
                    const Machine &m, Precision p, Storage storage,
                    std::vector<uint64_t> peakBytes, Prediction *out) {
  Prediction pr;
  pr.machine = m;
  pr.precision = p;
  pr.storage = storage;
  if (std::string e = pipelineCost(a, m, p, storage, &pr.cost); !e.empty())
    return e;
  if (std::string e = schedule::simulateSchedule(s, pr.cost.model, &pr.sim);
      !e.empty())
    return "the simulation stopped: " + e;
  pr.tokens = double(a.microbatches) * double(a.batch) * double(a.seq);
  pr.peakBytes = std::move(peakBytes);
  *out = std::move(pr);
  return "";
}

uint64_t storedBytes(const rt::RankMemoryPlan &plan, Storage storage) {
  if (storage == Storage::Fp32)
    return plan.total();
  rt::RankMemoryPlan mixed = plan;
  mixed.constantBytes += plan.parameterBytes / 2; // the 16-bit copy
  mixed.slotBytes /= 2;
  mixed.activationBytes /= 2;
  mixed.scratchBytes /= 2;
  mixed.kernelScratchBytes /= 2;
  return mixed.total();
}

namespace {

std::string printf(const char *format, double a, double b = 0, double c = 0) {
  char buf[128];
  std::snprintf(buf, sizeof buf, format, a, b, c);
  return buf;
}

/// 1.23 ms, 4.5 s.
std::string seconds(double t) {
  if (t >= 1)
    return printf("%.3f s", t);
  if (t >= 1e-3)
    return printf("%.3f ms", t * 1e3);
  return printf("%.1f us", t * 1e6);
}

} // namespace

std::string formatBytes(double b) {
  if (b >= double(1ull << 30))
    return printf("%.2f GiB", b / double(1ull << 30));
  if (b >= double(1ull << 20))
    return printf("%.2f MiB", b / double(1ull << 20));
  return printf("%.1f KiB", b / 1024);
}

std::string formatPrediction(const Prediction &pr,
                             const schedule::Schedule &s) {
  const Machine &m = pr.machine;
  const schedule::Simulation &sim = pr.sim;
  const int P = s.ranks;
  std::string o = "simulated on " + m.name + " (" + m.device + ", " +
                  precisionName(pr.precision) +
                  (pr.storage == Storage::Mixed
                       ? " with mixed-precision storage (16-bit activations "
                         "and messages)"
                       : "") +
                  ", " + std::to_string(m.ranksPerNode) + " ranks per node):\n";
  o += "  schedule: " + s.name + " on " + std::to_string(P) + " rank(s), " +
       std::to_string(s.microbatches) + " micro-batch(es), " +
       std::to_string(s.chunks) + " chunk(s)\n";
  o += "  iteration time: " + seconds(sim.iterationTime) + " (" +
       printf("%.0f", pr.tokens) + " tokens; after the program, " +
       (P > 1 ? "the ends' gradient exchange and AdamW " : "AdamW ") +
       seconds(pr.cost.model.tail) + ")\n";
  if (P > 1 &&
      (m.intraNode.synchronous || (m.hasInterNode && m.interNode.synchronous)))
    o += "  sends: blocking (a sender waits until its message has "
         "arrived)\n";
  o += "  tokens/s per device: " + printf("%.1f", pr.tokensPerDevice()) + "\n";
  o += "  bubble ratio: " + printf("%.4f", sim.bubbleRatio) + "\n";
  o += "  model FLOPs per iteration: " + printf("%.0f", pr.cost.flops) +
       " (GEMMs " + printf("%.0f", pr.cost.gemmFlops) + ", attention " +
       printf("%.0f", pr.cost.attentionFlops) + "; MFU " +
       printf("%.1f", 100 * pr.mfu()) + " % of " +
       printf("%.1f", m.peakFlops[int(pr.precision)] / 1e12) +
       " TFLOP/s per device)\n";
  o += "  per rank (not computing: waits, copies, the tail):\n"
       "    rank      compute  not computing   peak memory\n";
  for (int r = 0; r < P; ++r) {
    const double busy = sim.busy[size_t(r)];
    const double mem =
        size_t(r) < pr.peakBytes.size() ? double(pr.peakBytes[size_t(r)]) : 0;
    char line[160];
    std::snprintf(
        line, sizeof line, "    %4d %12s %14s %13s%s\n", r,
        seconds(busy).c_str(), seconds(sim.iterationTime - busy).c_str(),
        formatBytes(mem).c_str(), mem > m.memoryBytes ? "  OUT OF MEMORY" : "");
    o += line;
  }
  o += "  bytes per link (per iteration):\n";
  bool any = false;
  const int perNode = std::max(m.ranksPerNode, 1);
  for (int from = 0; from < P; ++from)
    for (int to = 0; to < P; ++to)
      if (double b = sim.linkBytes[size_t(from) * size_t(P) + size_t(to)];
          b > 0) {
        const bool inside = from / perNode == to / perNode;
        const LinkModel &l =
            inside || !m.hasInterNode ? m.intraNode : m.interNode;
        o += "    " + std::to_string(from) + " -> " + std::to_string(to) +
             ": " + formatBytes(b) + " (" + l.kind + ")\n";
        any = true;
      }
  if (!any)
    o += "    none\n";
  if (int r = pr.outOfMemory(); r >= 0)
    o += "  does not fit: rank " + std::to_string(r) + " needs " +
         formatBytes(double(pr.peakBytes[size_t(r)])) + ", the device has " +
         formatBytes(m.memoryBytes) + "\n";
  return o;
}

std::vector<rt::train::TraceEvent> traceEvents(const Prediction &pr,
                                               const schedule::Schedule &s) {
  std::vector<rt::train::TraceEvent> events;
  auto event = [&](const schedule::TimedAction &t, bool transfer) {
    const schedule::Action &a = s.programs[size_t(t.rank)].actions[t.action];
    rt::train::TraceEvent e;
    e.rank = t.rank;
    e.transfer = transfer;
    e.category = schedule::opName(a.op);
    e.start = t.start;
    e.duration = t.end - t.start;
    e.chunk = a.chunk;
    e.microbatch = a.microbatch;
    e.turn = a.turn;
    if (transfer) {
      e.peer = t.peer;
      e.bytes = t.bytes;
      e.name = "send -> " + std::to_string(t.peer);
    } else {
      e.name = rt::train::traceActionName(e.category, a.chunk, a.microbatch);
    }
    events.push_back(std::move(e));
  };
  for (const schedule::TimedAction &t : pr.sim.compute)
    event(t, false);
  for (const schedule::TimedAction &t : pr.sim.transfers)
    event(t, true);
  // The tail on every rank, after the last one finishes (as weipipe-run
  // records its closing reductions and optimizer).
  if (pr.cost.model.tail > 0)
    for (int r = 0; r < s.ranks; ++r) {
      rt::train::TraceEvent e;
      e.rank = r;
      e.name = "all-reduce + AdamW";
      e.category = "all_reduce";
      e.duration = pr.cost.model.tail;
      e.start = pr.sim.iterationTime - e.duration;
      events.push_back(std::move(e));
    }
  return events;
}

} // namespace weipipe::simulate
