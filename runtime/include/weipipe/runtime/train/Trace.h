//===- Trace.h - timelines as Chrome trace JSON -----------------*- C++ -*-===//
//
// Part of weipipe's runtime. The one timeline format of the project: the
// simulator writes a planned iteration in it (weipipe-opt --simulate-trace)
// and weipipe-run a measured one, so that the two open side by side in
// Perfetto or chrome://tracing and the plotting scripts read either.
//
// The file is Chrome's trace event format (a JSON object with
// "traceEvents"): one process per rank ("rank R"), thread 0 its compute and
// thread 1 its sends; every event a complete event ("ph": "X", "ts" and
// "dur" in microseconds) whose "cat" is the action (forward,
// backward_input, backward_weight, backward, optimizer_step, send) and
// whose "args" hold chunk, microbatch, turn and, for a send, peer and bytes.
// "otherData" says where it came from ("source": "simulator" or
// "weipipe-run") and what it ran. weipipe-run adds "weipipeInstructions",
// the measured time of every instruction of the artifact.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_TRAIN_TRACE_H
#define WEIPIPE_RUNTIME_TRAIN_TRACE_H

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace weipipe::rt::train {

struct TraceEvent {
  int rank = 0;
  bool transfer = false; ///< a send (thread 1), else compute (thread 0)
  std::string name;      ///< "F c2 m5", "send -> 3"
  std::string category;  ///< the action: "forward", "send", ...
  double start = 0, duration = 0; ///< seconds
  int chunk = -1, microbatch = -1, turn = -1;
  int peer = -1;    ///< a send's receiver
  double bytes = 0; ///< a send's size
};

/// The measured time of one instruction of the artifact (function,
/// instruction index), over `runs` runs: what calibration fits.
struct InstructionSample {
  int function = 0, instruction = 0;
  double seconds = 0; ///< all runs together
  uint64_t runs = 0;
  double fastest = 0; ///< the fastest run
};

/// A compute event's name: "F c2 m5" (forward), "B" (backward_input), "W"
/// (backward_weight), "BW" (backward), "opt c2" (optimizer_step).
std::string traceActionName(const std::string &category, int chunk,
                            int microbatch);

/// The trace file's text. `instructions`, when given, become the top-level
/// "weipipeInstructions": [[function, instruction, seconds, runs, fastest],
/// ...]
/// (trace viewers ignore it). `info` becomes "otherData" (string values).
std::string
chromeTrace(const std::vector<TraceEvent> &events, int ranks,
            const std::vector<std::pair<std::string, std::string>> &info,
            const std::vector<InstructionSample> &instructions = {});

} // namespace weipipe::rt::train

#endif // WEIPIPE_RUNTIME_TRAIN_TRACE_H
