//===- Embedding.cpp - nn.embedding, nn.rotary ----------------------------===//
//
// Part of weipipe's runtime (CPU kernels). The embedding backward gives each
// thread a strip of table columns and walks the ids in order: no atomics, and
// repeated ids add up in the same order whatever the thread count.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include <cstring>

namespace weipipe::rt::cpu {
using namespace detail;

namespace {
Status checkIds(const int64_t *ids, int64_t numIds, int64_t V,
                const char *what) {
  for (int64_t i = 0; i < numIds; ++i)
    if (ids[i] < 0 || ids[i] >= V)
      return Status::error(std::string(what) + ": id " +
                           std::to_string(ids[i]) + " at position " +
                           std::to_string(i) + " is outside the table of " +
                           std::to_string(V) + " rows");
  return Status();
}
} // namespace

Status embedding_forward(const float *table, const int64_t *ids, float *out,
                         int64_t numIds, int64_t V, int64_t H) {
  if (Status s = checkIds(ids, numIds, V, "embedding"); !s.ok())
    return s;
#pragma omp parallel for schedule(static) if (numIds * H >= kParallelMin)
  for (int64_t i = 0; i < numIds; ++i)
    std::memcpy(out + i * H, table + ids[i] * H, size_t(H) * sizeof(float));
  return Status();
}

Status embedding_backward(const int64_t *ids, const float *dout,
                          float *dtable, int64_t numIds, int64_t V, int64_t H,
                          int64_t paddingIdx) {
  if (Status s = checkIds(ids, numIds, V, "embedding backward"); !s.ok())
    return s;
  constexpr int64_t CH = 64;
  const int64_t strips = (H + CH - 1) / CH;
#pragma omp parallel for schedule(static) if (numIds * H >= kParallelMin)
  for (int64_t t = 0; t < strips; ++t) {
    const int64_t c0 = t * CH, n = std::min(CH, H - c0);
    for (int64_t i = 0; i < numIds; ++i) {
      if (ids[i] == paddingIdx)
        continue;
      float *d = dtable + ids[i] * H + c0;
      const float *g = dout + i * H + c0;
      for (int64_t c = 0; c < n; ++c)
        d[c] += g[c];
    }
  }
  return Status();
}

namespace {
/// y = R(sign * angle) x on the rotary features, the rest copied.
void rotate(const float *x, const float *cosT, const float *sinT, float *y,
            const RotaryDims &d, float sign) {
  const int64_t R = d.rotaryDim, half = R / 2, D = d.D;
  WP_CHECK(R > 0 && R % 2 == 0 && R <= D,
           "rotary_dim must be even, positive and <= the head size");
  const int64_t rows = d.B * d.H * d.S;
#pragma omp parallel for schedule(static) if (rows * D >= kParallelMin)
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t b = row / (d.H * d.S), s = row % d.S;
    const int64_t tab = (d.tableHasBatch ? b * d.S + s : s) * half;
    const float *xr = x + row * D;
    float *yr = y + row * D;
    const float *ct = cosT + tab, *st = sinT + tab;
    if (d.interleaved) {
      for (int64_t i = 0; i < half; ++i) {
        const float x1 = xr[2 * i], x2 = xr[2 * i + 1];
        const float c = ct[i], sn = sign * st[i];
        yr[2 * i] = x1 * c - x2 * sn;
        yr[2 * i + 1] = x2 * c + x1 * sn;
      }
    } else { // split halves: a loop the compiler vectorizes
      for (int64_t i = 0; i < half; ++i) {
        const float x1 = xr[i], x2 = xr[i + half];
        const float c = ct[i], sn = sign * st[i];
        yr[i] = x1 * c - x2 * sn;
        yr[i + half] = x2 * c + x1 * sn;
      }
    }
    if (yr != xr)
      for (int64_t i = R; i < D; ++i)
        yr[i] = xr[i];
  }
}
} // namespace

void rotary_forward(const float *x, const float *cos, const float *sin,
                    float *y, const RotaryDims &d) {
  rotate(x, cos, sin, y, d, 1.0f);
}

void rotary_backward(const float *dy, const float *cos, const float *sin,
                     float *dx, const RotaryDims &d) {
  rotate(dy, cos, sin, dx, d, -1.0f);
}

} // namespace weipipe::rt::cpu
