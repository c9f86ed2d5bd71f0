//===- Predict.h - a compiled pipeline's iteration on a machine -*- C++ -*-===//
//
// Part of weipipe. What `weipipe-opt --simulate=MACHINE` prints: the cost
// model of a compiled pipeline artifact on a machine model, the simulation
// of every rank's program with it, and what a user asks of the result
// (iteration time, tokens/s per device, bubble ratio, bytes per link, peak
// memory per rank against the device's) as a report and a Chrome trace.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_SIMULATE_PREDICT_H
#define WEIPIPE_SIMULATE_PREDICT_H

#include "weipipe/Simulate/Cost.h"
#include "weipipe/runtime/RankMemory.h"
#include "weipipe/runtime/train/Trace.h"

#include <cstdint>

namespace weipipe::simulate {

struct Prediction {
  Machine machine;
  Precision precision = Precision::Bf16;
  Storage storage = Storage::Fp32;
  PipelineCost cost;
  schedule::Simulation sim;
  double tokens = 0;               ///< per iteration, all ranks
  std::vector<uint64_t> peakBytes; ///< per rank, the runtime's plan
  double tokensPerDevice() const;  ///< per second
  double mfu() const;              ///< model FLOPs / (ranks x peak x time)
  /// The first rank whose plan exceeds the device's memory, or -1.
  int outOfMemory() const;
};

/// Simulates `s` (verified; the schedule `a` was compiled with) on `m`.
/// `peakBytes`: each rank's memory plan (RankMemory.h). Returns "" or why it
/// cannot (the machine has too few ranks per node and no inter-node link,
/// a simulation error).
std::string predict(const rt::Artifact &a, const schedule::Schedule &s,
                    const Machine &m, Precision p, Storage storage,
                    std::vector<uint64_t> peakBytes, Prediction *out);

/// A rank's memory plan held as `storage` holds it: Fp32, the plan's total;
/// Mixed, its activations, scratch and slots at half the bytes, fp32
/// masters, gradients and AdamW moments, and a 16-bit copy of the weights.
uint64_t storedBytes(const rt::RankMemoryPlan &plan, Storage storage);

/// "1.23 GiB", "4.56 MiB", "7.8 KiB": how reports show sizes.
std::string formatBytes(double bytes);

/// The report `--simulate` prints.
std::string formatPrediction(const Prediction &pr, const schedule::Schedule &s);

/// The simulated timeline in the trace format (Trace.h).
std::vector<rt::train::TraceEvent> traceEvents(const Prediction &pr,
                                               const schedule::Schedule &s);

} // namespace weipipe::simulate

#endif // WEIPIPE_SIMULATE_PREDICT_H
