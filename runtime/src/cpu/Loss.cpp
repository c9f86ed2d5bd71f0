//===- Loss.cpp - nn.cross_entropy ----------------------------------------===//
//
// Part of weipipe's runtime (CPU kernels). Rows are independent; the mean is
// summed in double in row order. The backward may overwrite the logits with
// their gradient (llm.c's fused classifier does the same on the GPU).
//
//===----------------------------------------------------------------------===//

#include "Internal.h"
#include "Vec.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace weipipe::rt::cpu {
using namespace detail;

Status cross_entropy_forward(const float *logits, const int64_t *targets,
                             int64_t N, int64_t V, int64_t ignoreIndex,
                             float *loss, float *lse, int64_t *numValid) {
  WP_CHECK(V > 0, "cross_entropy needs at least one class");
  for (int64_t r = 0; r < N; ++r) {
    const int64_t t = targets[r];
    if (t != ignoreIndex && (t < 0 || t >= V))
      return Status::error("cross_entropy: target " + std::to_string(t) +
                           " at row " + std::to_string(r) + " is outside [0, " +
                           std::to_string(V) + ") and is not ignore_index " +
                           std::to_string(ignoreIndex));
  }
  std::vector<double> rowLoss(static_cast<size_t>(N));
#pragma omp parallel if (N * V >= kParallelMin)
  {
    // A row's worth per thread that gets rows, so that the scratch never
    // exceeds the logits themselves (an empty batch allocates nothing).
    std::vector<float> e;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < N; ++r) {
      if (e.empty())
        e.resize(static_cast<size_t>(V));
      const float *x = logits + r * V;
      const float mx = row_max(x, V);
      double sum;
      if (std::isfinite(mx)) { // e^(x - max) on the lanes, summed in double
        std::memcpy(e.data(), x, size_t(V) * sizeof(float));
        exp_shifted(e.data(), V, mx);
        sum = rowSum(V, [&](int64_t j) { return double(e[size_t(j)]); });
      } else {
        sum = 0.0;
        for (int64_t j = 0; j < V; ++j)
          sum += double(std::exp(x[j] - mx));
      }
      const double l = double(mx) + std::log(sum);
      if (lse)
        lse[r] = float(l);
      const int64_t t = targets[r];
      rowLoss[size_t(r)] = t == ignoreIndex ? 0.0 : l - double(x[t]);
    }
  }
  double total = 0.0;
  int64_t count = 0;
  for (int64_t r = 0; r < N; ++r)
    if (targets[r] != ignoreIndex) {
      total += rowLoss[size_t(r)];
      ++count;
    }
  *loss = count ? float(total / double(count)) : 0.0f;
  if (numValid)
    *numValid = count;
  return Status();
}

void cross_entropy_backward(const float *logits, const int64_t *targets,
                            const float *lse, float dloss, int64_t N, int64_t V,
                            int64_t ignoreIndex, float *dlogits) {
  int64_t count = 0;
  for (int64_t r = 0; r < N; ++r)
    count += targets[r] != ignoreIndex;
  const float scale = count ? float(double(dloss) / double(count)) : 0.0f;
#pragma omp parallel for schedule(static) if (N * V >= kParallelMin)
  for (int64_t r = 0; r < N; ++r) {
    const float *x = logits + r * V;
    float *d = dlogits + r * V;
    const int64_t t = targets[r];
    if (t == ignoreIndex) {
      for (int64_t j = 0; j < V; ++j)
        d[j] = 0.0f;
      continue;
    }
    WP_CHECK(t >= 0 && t < V, "cross_entropy backward: target out of range");
    const float l = lse[r];
    if (std::isfinite(l)) { // on the lanes; d may be x
      if (d != x)
        std::memcpy(d, x, size_t(V) * sizeof(float));
      exp_shifted(d, V, l);
      for (int64_t j = 0; j < V; ++j)
        d[j] *= scale;
    } else {
      for (int64_t j = 0; j < V; ++j)
        d[j] = scale * std::exp(x[j] - l);
    }
    d[t] -= scale;
  }
}

} // namespace weipipe::rt::cpu
