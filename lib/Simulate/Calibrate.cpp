//===- Calibrate.cpp - machine models fitted to measured runs -------------===//
//
// Part of weipipe. See include/weipipe/Simulate/Calibrate.h.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Simulate/Calibrate.h"

#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>

namespace weipipe::simulate {

using rt::train::TraceEvent;

std::string readTrace(const std::string &path, MeasuredRun *run) {
  std::vector<TraceEvent> *events = &run->events;
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer =
      llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buffer)
    return path + ": cannot read the trace: " + buffer.getError().message();
  llvm::Expected<llvm::json::Value> json =
      llvm::json::parse((*buffer)->getBuffer());
  if (!json)
    return path + ": not a trace: not JSON (" +
           llvm::toString(json.takeError()) + ")";
  const llvm::json::Object *root = json->getAsObject();
  const llvm::json::Array *list =
      root ? root->getArray("traceEvents") : nullptr;
  if (!list)
    return path + ": not a trace: no traceEvents list (write one with "
                  "weipipe-run --trace)";
  events->clear();
  run->instructions.clear();
  if (const llvm::json::Array *ins = root->getArray("weipipeInstructions"))
    for (size_t i = 0; i < ins->size(); ++i) {
      const llvm::json::Array *row = (*ins)[i].getAsArray();
      std::optional<int64_t> f, k, runs;
      std::optional<double> sec, fastest;
      if (row && row->size() == 5) {
        f = (*row)[0].getAsInteger();
        k = (*row)[1].getAsInteger();
        sec = (*row)[2].getAsNumber();
        runs = (*row)[3].getAsInteger();
        fastest = (*row)[4].getAsNumber();
      }
      if (!f || !k || !sec || !runs || !fastest || *f < 0 || *k < 0 ||
          *runs < 0 || *f > INT32_MAX || *k > INT32_MAX || !(*sec >= 0) ||
          !(*fastest >= 0))
        return path + ": not a trace: weipipeInstructions[" +
               std::to_string(i) +
               "] is not [function, instruction, seconds, runs, fastest]";
      run->instructions.push_back(
          {int(*f), int(*k), *sec, uint64_t(*runs), *fastest});
    }
  for (size_t i = 0; i < list->size(); ++i) {
    const llvm::json::Object *e = (*list)[i].getAsObject();
    const std::string at =
        path + ": not a trace: traceEvents[" + std::to_string(i) + "] ";
    if (!e)
      return at + "is not an object";
    auto ph = e->getString("ph");
    if (!ph)
      return at + "has no 'ph'";
    if (*ph != "X")
      continue;
    auto pid = e->getInteger("pid"), tid = e->getInteger("tid");
    auto ts = e->getNumber("ts"), dur = e->getNumber("dur");
    auto cat = e->getString("cat");
    if (!pid || !tid || !ts || !dur || !cat)
      return at + "lacks one of pid, tid, ts, dur, cat";
    if (*pid < 0 || *pid > (1 << 20) || !(*dur >= 0) || !std::isfinite(*ts))
      return at + "has a negative rank or duration";
    TraceEvent t;
    t.rank = int(*pid);
    t.transfer = *tid == 1;
    t.category = cat->str();
    t.start = *ts * 1e-6;
    t.duration = *dur * 1e-6;
    if (auto name = e->getString("name"))
      t.name = name->str();
    if (const llvm::json::Object *args = e->getObject("args")) {
      auto integer = [&](llvm::StringRef k, int fallback) {
        auto v = args->getInteger(k);
        return v && *v >= INT32_MIN && *v <= INT32_MAX ? int(*v) : fallback;
      };
      t.chunk = integer("chunk", -1);
      t.microbatch = integer("microbatch", -1);
      t.turn = integer("turn", -1);
      t.peer = integer("peer", -1);
      t.bytes = args->getNumber("bytes").value_or(0);
    }
    events->push_back(std::move(t));
  }
  return "";
}

namespace {

/// Least squares of y ~ X theta with theta >= 0, K unknowns: every subset of
/// free unknowns solved exactly (normal equations), the best feasible one
/// kept. K is at most 4, so 16 small solves.
template <size_t K>
std::array<double, K>
nonNegativeFit(const std::vector<std::array<double, K>> &X,
               const std::vector<double> &y) {
  std::array<double, K> best{};
  double bestResidual = INFINITY;
  for (unsigned mask = 1; mask < (1u << K); ++mask) {
    std::vector<size_t> free;
    for (size_t k = 0; k < K; ++k)
      if (mask & (1u << k))
        free.push_back(k);
    const size_t n = free.size();
    // A theta = b, Gaussian elimination with partial pivoting.
    std::vector<std::vector<double>> A(n, std::vector<double>(n + 1, 0));
    for (size_t r = 0; r < X.size(); ++r)
      for (size_t i = 0; i < n; ++i) {
        for (size_t j = 0; j < n; ++j)
          A[i][j] += X[r][free[i]] * X[r][free[j]];
        A[i][n] += X[r][free[i]] * y[r];
      }
    bool singular = false;
    for (size_t c = 0; c < n && !singular; ++c) {
      size_t pivot = c;
      for (size_t r = c + 1; r < n; ++r)
        if (std::fabs(A[r][c]) > std::fabs(A[pivot][c]))
          pivot = r;
      std::swap(A[c], A[pivot]);
      if (std::fabs(A[c][c]) < 1e-30) {
        singular = true;
        break;
      }
      for (size_t r = 0; r < n; ++r)
        if (r != c) {
          const double f = A[r][c] / A[c][c];
          for (size_t j = c; j <= n; ++j)
            A[r][j] -= f * A[c][j];
        }
    }
    if (singular)
      continue;
    std::array<double, K> theta{};
    bool feasible = true;
    for (size_t i = 0; i < n; ++i) {
      theta[free[i]] = A[i][n] / A[i][i];
      feasible &= theta[free[i]] >= 0;
    }
    if (!feasible)
      continue;
    double residual = 0;
    for (size_t r = 0; r < X.size(); ++r) {
      double p = 0;
      for (size_t k = 0; k < K; ++k)
        p += X[r][k] * theta[k];
      residual += (p - y[r]) * (p - y[r]);
    }
    if (residual < bestResidual) {
      bestResidual = residual;
      best = theta;
    }
  }
  return best;
}

std::string fmt(const char *f, double a, double b = 0, double c = 0,
                double d = 0) {
  char buf[256];
  std::snprintf(buf, sizeof buf, f, a, b, c, d);
  return buf;
}

} // namespace

std::string calibrate(const rt::Artifact &a, const MeasuredRun &run,
                      const Machine &base, Precision p, const std::string &from,
                      Calibration *out) {
  if (run.instructions.empty())
    return "the trace has no instruction times (weipipeInstructions): "
           "record it with weipipe-run --trace";
  // Per-run time of every instruction, priced on the base model.
  struct Sample {
    OpCost cost;
    double seconds;
    double keys;
  };
  std::vector<Sample> samples;
  for (const rt::train::InstructionSample &m : run.instructions) {
    if (m.function < 0 || size_t(m.function) >= a.functions.size() ||
        m.instruction < 0 ||
        size_t(m.instruction) >= a.functions[size_t(m.function)].body.size())
      return "the trace times instruction " + std::to_string(m.instruction) +
             " of function " + std::to_string(m.function) +
             ", which the artifact does not have: trace and artifact must "
             "come from the same compile";
    const rt::Function &fn = a.functions[size_t(m.function)];
    bool partner = false;
    const OpCost cost = stepCost(fn, size_t(m.instruction), base, p, &partner);
    // A fused norm-gradient partner runs no kernel of its own (its time is
    // its predecessor's); a time of 0 is below the clock's resolution.
    if (m.runs == 0 || partner || !(m.fastest > 0))
      continue;
    // The fastest run: the machine is shared, and interference only ever
    // slows an instruction down.
    samples.push_back(
        {cost, m.fastest, attentionKeyLength(fn.body[size_t(m.instruction)])});
  }
  Machine m = base;
  // Memory-bound instructions: t = launch + bytes / bandwidth.
  std::vector<std::array<double, 2>> memX;
  std::vector<double> memY;
  for (const Sample &s : samples)
    if (s.cost.kind == OpCost::Memory) {
      memX.push_back({1.0, s.cost.bytes});
      memY.push_back(s.seconds);
    }
  if (memX.size() >= 2) {
    const std::array<double, 2> f = nonNegativeFit(memX, memY);
    m.launchOverhead = f[0];
    if (f[1] > 0) {
      m.memoryBandwidth = 1.0 / f[1];
      m.elementwiseEfficiency = 1;
    }
  }
  // Products and attention: the rate each reached, without the launch.
  auto rate = [&](const Sample &s) {
    return s.cost.flops /
           std::max(s.seconds - m.launchOverhead, 0.1 * s.seconds);
  };
  double fastest = 0;
  for (const Sample &s : samples)
    if (s.cost.kind != OpCost::Memory && s.cost.flops > 0)
      fastest = std::max(fastest, rate(s));
  double &peak = m.peakFlops[int(p)];
  peak = std::max(peak, fastest);
  // Efficiency curves: the measured rate over peak, FLOP-weighted within
  // each decade of size (GEMMs: FLOPs; attention: key length).
  auto curve = [&](OpCost::Kind kind, auto size, EfficiencyCurve *c) {
    std::map<int, std::array<double, 3>> bins; // flops, seconds, log size
    for (const Sample &s : samples)
      if (s.cost.kind == kind && s.cost.flops > 0) {
        const double x = size(s);
        auto &b = bins[int(std::floor(std::log10(x)))];
        b[0] += s.cost.flops;
        b[1] += s.cost.flops / rate(s);
        b[2] += s.cost.flops * std::log(x);
      }
    if (bins.empty())
      return;
    c->points.clear();
    for (const auto &[decade, b] : bins)
      c->points.push_back(
          {std::exp(b[2] / b[0]), std::min(1.0, b[0] / b[1] / peak)});
  };
  curve(
      OpCost::Gemm, [](const Sample &s) { return s.cost.flops; },
      &m.gemmEfficiency);
  curve(
      OpCost::Attention, [](const Sample &s) { return s.keys; },
      &m.attentionEfficiency);
  // Sends: t = latency + bytes / bandwidth on the intra-node link.
  std::vector<std::array<double, 2>> sendX;
  std::vector<double> sendY;
  for (const TraceEvent &e : run.events)
    if (e.transfer && e.category == "send") {
      sendX.push_back({1.0, e.bytes});
      sendY.push_back(e.duration);
    }
  double smallest = INFINITY, largest = 0;
  for (const auto &x : sendX) {
    smallest = std::min(smallest, x[1]);
    largest = std::max(largest, x[1]);
  }
  if (sendX.size() >= 2 && largest >= 2 * smallest) {
    const std::array<double, 2> f = nonNegativeFit(sendX, sendY);
    m.intraNode.latency = f[0];
    if (f[1] > 0)
      m.intraNode.bandwidth = 1.0 / f[1];
  } else if (!sendX.empty() && largest > 0) {
    // Messages of one size cannot tell latency from bandwidth: keep the
    // latency, fit the bandwidth.
    double bb = 0, bt = 0;
    for (size_t i = 0; i < sendX.size(); ++i) {
      bb += sendX[i][1] * sendX[i][1];
      bt += sendX[i][1] * std::max(sendY[i] - m.intraNode.latency, 0.0);
    }
    if (bt > 0)
      m.intraNode.bandwidth = bb / bt;
  }
  // How well the fitted model predicts the measured compute actions.
  const std::vector<ChunkWork> work = chunkWork(a, m, p);
  double predicted = 0, actual = 0, worst = 0;
  size_t actions = 0;
  for (const TraceEvent &e : run.events) {
    if (e.transfer || e.chunk < 0 || size_t(e.chunk) >= work.size())
      continue;
    const ChunkWork &c = work[size_t(e.chunk)];
    const Work *w = e.category == "forward"           ? &c.forward
                    : e.category == "backward_input"  ? &c.backwardInput
                    : e.category == "backward_weight" ? &c.backwardWeight
                    : e.category == "backward"        ? &c.backward
                    : e.category == "optimizer_step"  ? &c.optimizerStep
                                                      : nullptr;
    if (!w)
      continue;
    const double t = w->seconds(m);
    predicted += t;
    actual += e.duration;
    worst =
        std::max(worst, std::fabs(t - e.duration) / std::max(e.duration, 1e-9));
    ++actions;
  }
  const std::string fitted =
      fmt("%.4g TFLOP/s peak, %.4g GB/s memory, %.3g us per launch",
          peak / 1e12, m.memoryBandwidth / 1e9, m.launchOverhead * 1e6) +
      fmt("; link %.3g us + bytes at %.4g GB/s", m.intraNode.latency * 1e6,
          m.intraNode.bandwidth / 1e9);
  // A model calibrated again says only how it was calibrated last.
  m.sources.erase(std::remove_if(m.sources.begin(), m.sources.end(),
                                 [](const std::string &s) {
                                   return s.rfind("Calibrated ", 0) == 0;
                                 }),
                  m.sources.end());
  m.sources.push_back("Calibrated at " + std::string(precisionName(p)) +
                      " (the other precision's figures fit nothing) by "
                      "weipipe-opt --calibrate-from=" +
                      from + " (" + std::to_string(samples.size()) +
                      " instructions, " + std::to_string(sendX.size()) +
                      " sends): " + fitted + ".");
  out->summary =
      "calibrated " + m.name + " from " + from + ": " +
      std::to_string(samples.size()) + " instructions, " +
      std::to_string(sendX.size()) + " sends\n  now: " + fitted + "\n" +
      (actions && actual > 0
           ? fmt("  its compute actions: predicted %.4g s in all, "
                 "measured %.4g s (%+.1f %%); the worst single action "
                 "off by %.0f %%\n",
                 predicted, actual, 100 * (predicted - actual) / actual,
                 100 * worst)
           : std::string());
  out->machine = std::move(m);
  return "";
}

std::string formatMachine(const Machine &m) {
  std::string text;
  llvm::raw_string_ostream os(text);
  llvm::json::OStream j(os, 2);
  auto curve = [&](const EfficiencyCurve &c) {
    j.array([&] {
      for (const auto &[x, e] : c.points)
        j.array([&] {
          j.value(x);
          j.value(e);
        });
    });
  };
  auto link = [&](const LinkModel &l) {
    j.object([&] {
      j.attribute("kind", l.kind);
      j.attribute("bandwidth_gb_s", l.bandwidth / 1e9);
      j.attribute("efficiency", 1.0);
      j.attribute("latency_us", l.latency * 1e6);
      j.attribute("shared", l.shared);
      j.attribute("synchronous", l.synchronous);
    });
  };
  j.object([&] {
    j.attribute("name", m.name);
    if (!m.description.empty())
      j.attribute("description", m.description);
    j.attributeArray("sources", [&] {
      for (const std::string &s : m.sources)
        j.value(s);
    });
    j.attributeObject("device", [&] {
      j.attribute("name", m.device);
      j.attribute("memory_gib", m.memoryBytes / double(1ull << 30));
      j.attribute("memory_bandwidth_gb_s", m.memoryBandwidth / 1e9);
      j.attributeObject("peak_tflops", [&] {
        j.attribute("bf16", m.peakFlops[int(Precision::Bf16)] / 1e12);
        j.attribute("fp32", m.peakFlops[int(Precision::Fp32)] / 1e12);
      });
      j.attributeBegin("gemm_efficiency");
      curve(m.gemmEfficiency);
      j.attributeEnd();
      j.attributeBegin("attention_efficiency");
      curve(m.attentionEfficiency);
      j.attributeEnd();
      j.attribute("elementwise_efficiency", m.elementwiseEfficiency);
      j.attribute("launch_overhead_us", m.launchOverhead * 1e6);
    });
    j.attribute("ranks_per_node", m.ranksPerNode);
    j.attributeBegin("intra_node");
    link(m.intraNode);
    j.attributeEnd();
    if (m.hasInterNode) {
      j.attributeBegin("inter_node");
      link(m.interNode);
      j.attributeEnd();
    }
    j.attribute("default_precision", precisionName(m.defaultPrecision));
  });
  os.flush();
  return text + "\n";
}

} // namespace weipipe::simulate
