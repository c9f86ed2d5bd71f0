//===- Norm.cpp - nn.layer_norm, nn.rms_norm ------------------------------===//
//
// Part of weipipe's runtime (CPU kernels). One row = the normSize trailing
// elements. Row statistics are accumulated in double; scale/bias gradients
// are summed over fixed row chunks (chunkedColumnSums), so they do not depend
// on the thread count.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include <cmath>

namespace weipipe::rt::cpu {
using namespace detail;

void layer_norm_forward(const float *x, const float *scale, const float *bias,
                        float *y, float *mean, float *rstd, int64_t rows,
                        int64_t normSize, float eps) {
  const int64_t n = normSize;
#pragma omp parallel for schedule(static) if (rows * n >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float *xr = x + r * n;
    const double mu =
        rowSum(n, [&](int64_t i) { return double(xr[i]); }) / double(n);
    const double v = rowSum(n, [&](int64_t i) {
      const double dlt = xr[i] - mu;
      return dlt * dlt;
    });
    const float m = float(mu);
    const float rs = float(1.0 / std::sqrt(v / double(n) + double(eps)));
    if (mean)
      mean[r] = m;
    if (rstd)
      rstd[r] = rs;
    if (!y)
      continue;
    float *yr = y + r * n;
    for (int64_t i = 0; i < n; ++i) {
      const float xhat = (xr[i] - m) * rs;
      yr[i] = xhat * scale[i] + (bias ? bias[i] : 0.0f);
    }
  }
}

namespace {
/// dx of one layer_norm row: rstd (g - mean(g) - xhat mean(g xhat)).
void layerNormDxRow(const float *xr, const float *gr, const float *scale,
                    float m, float rs, int64_t n, float *dr) {
  const double sg =
      rowSum(n, [&](int64_t i) { return double(gr[i] * scale[i]); });
  const double sgx = rowSum(n, [&](int64_t i) {
    const float xhat = (xr[i] - m) * rs;
    return double(gr[i] * scale[i]) * xhat;
  });
  const float mg = float(sg / double(n)), mgx = float(sgx / double(n));
  for (int64_t i = 0; i < n; ++i) {
    const float xhat = (xr[i] - m) * rs;
    dr[i] = rs * (gr[i] * scale[i] - mg - xhat * mgx);
  }
}

/// dx of one rms_norm row: rstd (g - xhat mean(g xhat)).
void rmsNormDxRow(const float *xr, const float *gr, const float *scale,
                  float rs, int64_t n, float *dr) {
  const double sgx = rowSum(n, [&](int64_t i) {
    const float xhat = xr[i] * rs;
    return double(gr[i] * scale[i]) * xhat;
  });
  const float mgx = float(sgx / double(n));
  for (int64_t i = 0; i < n; ++i)
    dr[i] = rs * (gr[i] * scale[i] - xr[i] * rs * mgx);
}
} // namespace

void layer_norm_backward(const float *x, const float *scale,
                         const float *mean, const float *rstd,
                         const float *dy, float *dx, float *dscale,
                         float *dbias, int64_t rows, int64_t normSize) {
  const int64_t n = normSize;
  if (!dscale && !dbias) { // rows only: no column sums
    if (!dx)
      return;
#pragma omp parallel for schedule(static) if (rows * n >= kParallelMin)
    for (int64_t r = 0; r < rows; ++r)
      layerNormDxRow(x + r * n, dy + r * n, scale, mean[r], rstd[r], n,
                     dx + r * n);
    return;
  }
  float *outs[2] = {dscale, dbias};
  chunkedColumnSums(rows, n, 2, outs, [&](int64_t r0, int64_t r1, float **ps) {
    for (int64_t r = r0; r < r1; ++r) {
      const float *xr = x + r * n, *gr = dy + r * n;
      const float m = mean[r], rs = rstd[r];
      for (int64_t i = 0; i < n; ++i) {
        const float xhat = (xr[i] - m) * rs;
        ps[0][i] += gr[i] * xhat;
        ps[1][i] += gr[i];
      }
      // After the column sums: dx may overwrite dy.
      if (dx)
        layerNormDxRow(xr, gr, scale, m, rs, n, dx + r * n);
    }
  });
}

void rms_norm_forward(const float *x, const float *scale, float *y,
                      float *rstd, int64_t rows, int64_t normSize, float eps) {
  const int64_t n = normSize;
#pragma omp parallel for schedule(static) if (rows * n >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float *xr = x + r * n;
    const double ss =
        rowSum(n, [&](int64_t i) { return double(xr[i]) * xr[i]; });
    const float rs = float(1.0 / std::sqrt(ss / double(n) + double(eps)));
    if (rstd)
      rstd[r] = rs;
    if (!y)
      continue;
    float *yr = y + r * n;
    for (int64_t i = 0; i < n; ++i)
      yr[i] = xr[i] * rs * scale[i];
  }
}

void rms_norm_backward(const float *x, const float *scale, const float *rstd,
                       const float *dy, float *dx, float *dscale,
                       int64_t rows, int64_t normSize) {
  const int64_t n = normSize;
  if (!dscale) {
    if (!dx)
      return;
#pragma omp parallel for schedule(static) if (rows * n >= kParallelMin)
    for (int64_t r = 0; r < rows; ++r)
      rmsNormDxRow(x + r * n, dy + r * n, scale, rstd[r], n, dx + r * n);
    return;
  }
  float *outs[1] = {dscale};
  chunkedColumnSums(rows, n, 1, outs, [&](int64_t r0, int64_t r1, float **ps) {
    for (int64_t r = r0; r < r1; ++r) {
      const float *xr = x + r * n, *gr = dy + r * n;
      const float rs = rstd[r];
      for (int64_t i = 0; i < n; ++i)
        ps[0][i] += gr[i] * (xr[i] * rs);
      if (dx)
        rmsNormDxRow(xr, gr, scale, rs, n, dx + r * n);
    }
  });
}

} // namespace weipipe::rt::cpu
