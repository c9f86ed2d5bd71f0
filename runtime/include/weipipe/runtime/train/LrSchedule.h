//===- LrSchedule.h - the learning-rate schedule ----------------*- C++ -*-===//
//
// Part of weipipe's runtime. The reference trainer's schedule
// (python/weipipe/reference/README.md, "LR schedule"; train.py's lr_at),
// evaluated in double in the same order of operations so that both trainers
// use bitwise the same rate. For the 0-based step s of N steps, W warm-up
// steps:
//
//   s < W:            lr * (s + 1) / W            (both schedules)
//   constant:         lr
//   cosine (s >= W):  min_lr + (lr - min_lr) * 0.5 *
//                       (1 + cos(pi * (s - W) / max(1, N - W)))
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_TRAIN_LRSCHEDULE_H
#define WEIPIPE_RUNTIME_TRAIN_LRSCHEDULE_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

namespace weipipe::rt::train {

enum class LrScheduleKind { Constant, Cosine };

inline std::optional<LrScheduleKind> parseLrSchedule(const std::string &s) {
  if (s == "constant")
    return LrScheduleKind::Constant;
  if (s == "cosine")
    return LrScheduleKind::Cosine;
  return std::nullopt;
}

inline const char *lrScheduleName(LrScheduleKind k) {
  return k == LrScheduleKind::Cosine ? "cosine" : "constant";
}

/// Python's math.pi.
constexpr double kPi = 3.141592653589793;

struct LrSchedule {
  LrScheduleKind kind = LrScheduleKind::Constant;
  double lr = 1e-3;
  double minLr = 0.0;
  int64_t warmupSteps = 0;
  int64_t steps = 0; ///< N, the run's total

  /// The rate of 0-based step `s`.
  double at(int64_t s) const {
    const int64_t W = warmupSteps, N = steps;
    if (s < W) // Python: c.lr * (s + 1) / W, left to right
      return lr * double(s + 1) / double(W);
    if (kind == LrScheduleKind::Constant)
      return lr;
    // Python's int / int is the correctly rounded quotient, as here.
    const double p = double(s - W) / double(std::max<int64_t>(1, N - W));
    return minLr + (lr - minLr) * 0.5 * (1.0 + std::cos(kPi * p));
  }
};

} // namespace weipipe::rt::train

#endif // WEIPIPE_RUNTIME_TRAIN_LRSCHEDULE_H
