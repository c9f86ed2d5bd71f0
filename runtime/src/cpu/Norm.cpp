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
    float *yr = y + r * n;
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i)
      s += xr[i];
    const double mu = s / double(n);
    double v = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const double dlt = xr[i] - mu;
      v += dlt * dlt;
    }
    const float m = float(mu);
    const float rs = float(1.0 / std::sqrt(v / double(n) + double(eps)));
    for (int64_t i = 0; i < n; ++i) {
      const float xhat = (xr[i] - m) * rs;
      yr[i] = xhat * scale[i] + (bias ? bias[i] : 0.0f);
    }
    if (mean)
      mean[r] = m;
    if (rstd)
      rstd[r] = rs;
  }
}

void layer_norm_backward(const float *x, const float *scale,
                         const float *mean, const float *rstd,
                         const float *dy, float *dx, float *dscale,
                         float *dbias, int64_t rows, int64_t normSize) {
  const int64_t n = normSize;
  float *outs[2] = {dscale, dbias};
  chunkedColumnSums(rows, n, 2, outs, [&](int64_t r0, int64_t r1, float **ps) {
    for (int64_t r = r0; r < r1; ++r) {
      const float *xr = x + r * n, *gr = dy + r * n;
      const float m = mean[r], rs = rstd[r];
      double sg = 0.0, sgx = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        const float xhat = (xr[i] - m) * rs;
        const float g = gr[i] * scale[i];
        sg += g;
        sgx += double(g) * xhat;
        ps[0][i] += gr[i] * xhat;
        ps[1][i] += gr[i];
      }
      if (!dx)
        continue;
      const float mg = float(sg / double(n)), mgx = float(sgx / double(n));
      float *dr = dx + r * n;
      for (int64_t i = 0; i < n; ++i) {
        const float xhat = (xr[i] - m) * rs;
        dr[i] = rs * (gr[i] * scale[i] - mg - xhat * mgx);
      }
    }
  });
}

void rms_norm_forward(const float *x, const float *scale, float *y,
                      float *rstd, int64_t rows, int64_t normSize, float eps) {
  const int64_t n = normSize;
#pragma omp parallel for schedule(static) if (rows * n >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float *xr = x + r * n;
    float *yr = y + r * n;
    double ss = 0.0;
    for (int64_t i = 0; i < n; ++i)
      ss += double(xr[i]) * xr[i];
    const float rs = float(1.0 / std::sqrt(ss / double(n) + double(eps)));
    for (int64_t i = 0; i < n; ++i)
      yr[i] = xr[i] * rs * scale[i];
    if (rstd)
      rstd[r] = rs;
  }
}

void rms_norm_backward(const float *x, const float *scale, const float *rstd,
                       const float *dy, float *dx, float *dscale,
                       int64_t rows, int64_t normSize) {
  const int64_t n = normSize;
  float *outs[1] = {dscale};
  chunkedColumnSums(rows, n, 1, outs, [&](int64_t r0, int64_t r1, float **ps) {
    for (int64_t r = r0; r < r1; ++r) {
      const float *xr = x + r * n, *gr = dy + r * n;
      const float rs = rstd[r];
      double sgx = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        const float xhat = xr[i] * rs;
        sgx += double(gr[i] * scale[i]) * xhat;
        ps[0][i] += gr[i] * xhat;
      }
      if (!dx)
        continue;
      const float mgx = float(sgx / double(n));
      float *dr = dx + r * n;
      for (int64_t i = 0; i < n; ++i)
        dr[i] = rs * (gr[i] * scale[i] - xr[i] * rs * mgx);
    }
  });
}

} // namespace weipipe::rt::cpu
