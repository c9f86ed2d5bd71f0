//===- Optim.cpp - AdamW and the global gradient norm ---------------------===//
//
// Part of weipipe's runtime (CPU kernels). AdamW follows
// torch.optim.AdamW's single-tensor path operation by operation; the norm is
// summed in double over fixed chunks, added in order.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include <cmath>

namespace weipipe::rt::cpu {
using namespace detail;

void adamw_step(float *p, const float *g, float *m, float *v, int64_t n,
                const AdamWConfig &c, int64_t step, float gradScale) {
  WP_CHECK(step >= 1, "AdamW steps count from 1");
  const double bc1 = 1.0 - std::pow(c.beta1, double(step));
  const double bc2 = 1.0 - std::pow(c.beta2, double(step));
  const float decay = float(1.0 - c.lr * c.weightDecay);
  const float w1 = float(1.0 - c.beta1); // lerp weight
  const float b2 = float(c.beta2), w2 = float(1.0 - c.beta2);
  const float stepSize = float(c.lr / bc1);
  const float bc2Sqrt = float(std::sqrt(bc2));
  const float eps = float(c.eps);
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] * gradScale;
    float pi = p[i] * decay;
    const float mi = m[i] + w1 * (gi - m[i]);
    const float vi = v[i] * b2 + w2 * gi * gi;
    const float denom = std::sqrt(vi) / bc2Sqrt + eps;
    pi += -stepSize * (mi / denom);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
  }
}

double sum_of_squares(const float *x, int64_t n) {
  constexpr int64_t CH = 1 << 15;
  const int64_t chunks = (n + CH - 1) / CH;
  std::vector<double> partial(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t c = 0; c < chunks; ++c) {
    double s = 0.0;
    for (int64_t i = c * CH, e = std::min(n, (c + 1) * CH); i < e; ++i)
      s += double(x[i]) * x[i];
    partial[size_t(c)] = s;
  }
  double s = 0.0;
  for (double v : partial)
    s += v;
  return s;
}

double global_norm(Span<const float *> tensors, Span<int64_t> sizes) {
  WP_CHECK(tensors.size == sizes.size, "one size per tensor");
  double s = 0.0;
  for (size_t i = 0; i < tensors.size; ++i)
    s += sum_of_squares(tensors[i], sizes[i]);
  return std::sqrt(s);
}

float clip_scale(double norm, double maxNorm) {
  const double c = maxNorm / (norm + 1e-6);
  return c < 1.0 ? float(c) : 1.0f;
}

} // namespace weipipe::rt::cpu
