//===- Calibrate.h - machine models fitted to measured runs -----*- C++ -*-===//
//
// Part of weipipe. A machine model's figures are estimates until they are
// fitted to a measured run: `weipipe-run --trace` records how long every
// compute action and send of an artifact took, and calibration scales the
// model so that its predictions of those same actions fit them best.
//
// The fit works on instructions, not actions: every instruction's measured
// time against what the model charges for it, so that the fitted model
// prices any other program of the same kernels (another schedule, another
// size) as well as the one measured.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_SIMULATE_CALIBRATE_H
#define WEIPIPE_SIMULATE_CALIBRATE_H

#include "weipipe/Simulate/Cost.h"
#include "weipipe/runtime/train/Trace.h"

namespace weipipe::simulate {

/// A measured run: its timeline and the time of every instruction.
struct MeasuredRun {
  std::vector<rt::train::TraceEvent> events;
  std::vector<rt::train::InstructionSample> instructions;
};

/// Reads a trace file (runtime/include/weipipe/runtime/train/Trace.h's
/// format). Returns "" or what makes it not one, naming the file and the
/// event.
std::string readTrace(const std::string &path, MeasuredRun *run);

struct Calibration {
  Machine machine;     ///< the fitted model
  std::string summary; ///< the factors and how well each action fits
};

/// Fits `base` to `run`, a trace of `a` (the same artifact, compiled with
/// the same flags) measured on the machine being modelled, at precision
/// `p`: memory-bound instructions give the launch overhead and the memory
/// bandwidth (least squares of time = launch + bytes / bandwidth), products
/// and attention their efficiency curves (the measured rate over the peak,
/// per decade of FLOPs or key length; the peak rises to the fastest rate
/// seen), sends the intra-node link. Returns "" or why it cannot (a trace
/// without instruction times, an instruction the artifact does not have).
std::string calibrate(const rt::Artifact &a, const MeasuredRun &run,
                      const Machine &base, Precision p, const std::string &from,
                      Calibration *out);

/// The model as a machine file (machines/README.md's format).
std::string formatMachine(const Machine &m);

} // namespace weipipe::simulate

#endif // WEIPIPE_SIMULATE_CALIBRATE_H
