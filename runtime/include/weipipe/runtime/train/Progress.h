//===- Progress.h - the trainer's progress display --------------*- C++ -*-===//
//
// Part of weipipe's runtime. Human-readable sizes, the process's resident
// memory, and the per-step progress line weipipe-run prints on stderr: a bar
// redrawn in place on a terminal, otherwise a plain line every ~10% of the
// steps and at the last step (logs and CI output stay short).
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_TRAIN_PROGRESS_H
#define WEIPIPE_RUNTIME_TRAIN_PROGRESS_H

#include <cstdint>
#include <cstdio>
#include <string>

namespace weipipe::rt::train {

/// "512 B", "1.50 KiB", "12.3 MiB", "123 GiB" (binary units, 3 significant
/// digits).
std::string formatBytes(uint64_t bytes);
/// "950", "12.3k", "1.23M" (for rates).
std::string formatCount(double x);
/// Resident set size of this process (/proc/self/statm), 0 if unknown.
uint64_t processRssBytes();

struct ProgressState {
  int64_t done = 0, total = 0; ///< steps completed / in the run
  double loss = 0;             ///< of the last step
  double tokensPerSec = 0;     ///< over the run so far
  uint64_t memBytes = 0;       ///< executor + optimizer state
  uint64_t rssBytes = 0;       ///< the process
  double elapsedS = 0;
};

/// "step 12/100 loss 3.456789 | 1.23k tok/s | mem 12.3 MiB (rss 45.6 MiB) |
/// 3.2s, eta 24s", preceded by a bar "[=====>    ] " when barWidth > 0.
std::string progressLine(const ProgressState &s, int barWidth);

class Progress {
public:
  /// enabled = false (--quiet) prints nothing; `tty`: redraw in place.
  Progress(std::FILE *out, bool enabled, bool tty)
      : out_(out), enabled_(enabled), tty_(tty) {}
  /// After each step.
  void update(const ProgressState &s);
  /// Ends the in-place line.
  void finish();

private:
  std::FILE *out_;
  bool enabled_, tty_;
  bool drawn_ = false;
  double lastDrawS_ = -1;
};

} // namespace weipipe::rt::train

#endif // WEIPIPE_RUNTIME_TRAIN_PROGRESS_H
