//===- Machine.h - machine models for the timing simulator ------*- C++ -*-===//
//
// Part of weipipe. A machine model says how fast a device computes and how
// fast its links move bytes: what the simulator turns a compiled program's
// instructions and messages into times with. Models are JSON files
// (machines/*.json, documented in machines/README.md); the shipped ones are
// found by name, a user's own by path.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_SIMULATE_MACHINE_H
#define WEIPIPE_SIMULATE_MACHINE_H

#include <string>
#include <utility>
#include <vector>

namespace weipipe::simulate {

enum class Precision { Bf16, Fp32 };
const char *precisionName(Precision p); ///< "bf16", "fp32"

/// A fraction of peak over a size: points (x, efficiency) with x ascending,
/// interpolated linearly in log(x), constant beyond the ends.
struct EfficiencyCurve {
  std::vector<std::pair<double, double>> points;
  double at(double x) const;
};

struct LinkModel {
  std::string kind;         ///< "nvlink", "pcie", "infiniband", "ethernet", ...
  double bandwidth = 0;     ///< bytes/s per direction, achievable
  double latency = 0;       ///< seconds per message
  bool shared = false;      ///< one channel per node, not per pair of ranks
  bool synchronous = false; ///< the sender's thread moves the bytes
};

struct Machine {
  std::string name, description, file;
  std::vector<std::string> sources;
  std::string device;           ///< the device's name
  double memoryBytes = 0;       ///< capacity per device
  double memoryBandwidth = 0;   ///< bytes/s
  double peakFlops[2] = {0, 0}; ///< dense GEMM flop/s, by Precision
  /// Fraction of peak a GEMM reaches, over its FLOPs.
  EfficiencyCurve gemmEfficiency;
  /// Fraction of peak attention reaches, over the key sequence length.
  EfficiencyCurve attentionEfficiency;
  /// Fraction of memory bandwidth a memory-bound kernel reaches.
  double elementwiseEfficiency = 1;
  double launchOverhead = 0; ///< seconds per instruction
  int ranksPerNode = 1;
  LinkModel intraNode;
  bool hasInterNode = false;
  LinkModel interNode;
  Precision defaultPrecision = Precision::Bf16;
};

/// The directory the shipped models are in: $WEIPIPE_MACHINES_DIR, else the
/// source tree's machines/ (set at build time).
std::string machinesDir();
/// The shipped models' names, sorted ("a800-nvlink-10gbe", ...).
std::vector<std::string> shippedMachineNames();

/// Loads a model: `nameOrPath` is a shipped name, or a path (it contains a
/// '/' or ends in ".json"). Returns "" or what is wrong: an unknown name
/// (listing the shipped ones), a file that cannot be read, JSON that does
/// not parse (with its line), or a field that is missing, of the wrong
/// type, out of range or unknown (naming it: "device.peak_tflops.bf16").
std::string loadMachine(const std::string &nameOrPath, Machine *out);
/// Parses a model from `text`; `file` names it in messages.
std::string parseMachine(const std::string &text, const std::string &file,
                         Machine *out);

} // namespace weipipe::simulate

#endif // WEIPIPE_SIMULATE_MACHINE_H
