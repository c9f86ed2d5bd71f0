//===- Norm.cu - nn.layer_norm, nn.rms_norm forward and backward ----------===//
//
// Part of weipipe's runtime (CUDA backend). A row is the normSize trailing
// elements; kRms selects rms_norm (no mean, no bias).
//
//   forward: one warp per row, two passes over the row (mean, then the
//     squared deviations: no E[x^2] - E[x]^2 cancellation), fp32 sums.
//   backward, in four launches so that dx may overwrite dy (the CPU kernel's
//     contract) and the parameter gradients stay deterministic:
//     1. the row statistics again (the artifact keeps none) into the
//        workspace;
//     2. column partial sums of dy xhat (and dy): block (column tile, row
//        chunk), one thread per column walking the chunk's rows in order;
//     3. one thread per column adds the chunks' partials in chunk order to
//        dscale (dbias);
//     4. dx, one warp per row.
//   The chunk count is fixed (kChunks), not derived from the device, so the
//   sums are the same on every GPU.
//
//===----------------------------------------------------------------------===//

#include "Common.cuh"

namespace weipipe::rt::cuda {
using namespace detail;

namespace {

constexpr int kWarpsPerBlock = 8;
constexpr int kChunks = 64;
constexpr int kColumnThreads = 256;

/// Row statistics of one row, in the calling warp: mean (0 for rms) and
/// rstd.
template <bool kRms, class T>
__device__ void rowStats(const T *xr, int64_t n, float eps, float *mean,
                         float *rstd) {
  const int lane = threadIdx.x % kWarp;
  float mu = 0.0f;
  if (!kRms) {
    float s = 0.0f;
    for (int64_t i = lane; i < n; i += kWarp)
      s += toFloat(xr[i]);
    mu = warpSum(s) / float(n);
  }
  float v = 0.0f;
  for (int64_t i = lane; i < n; i += kWarp) {
    const float d = toFloat(xr[i]) - mu;
    v += d * d;
  }
  v = warpSum(v) / float(n);
  *mean = mu;
  *rstd = rsqrtf(v + eps);
}

template <bool kRms, class T>
__global__ void normForward(const T *x, const T *scale, const T *bias, T *y,
                            float *mean, float *rstd, int64_t rows, int64_t n,
                            float eps) {
  const int64_t r = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  if (r >= rows)
    return;
  const T *xr = x + r * n;
  float mu, rs;
  rowStats<kRms>(xr, n, eps, &mu, &rs);
  const int lane = threadIdx.x % kWarp;
  if (lane == 0) {
    if (mean)
      mean[r] = mu;
    if (rstd)
      rstd[r] = rs;
  }
  if (!y)
    return;
  T *yr = y + r * n;
  for (int64_t i = lane; i < n; i += kWarp) {
    const float xhat = (toFloat(xr[i]) - mu) * rs;
    float o = xhat * toFloat(scale[i]);
    if (bias)
      o += toFloat(bias[i]);
    yr[i] = fromFloat<T>(o);
  }
}

/// Step 2: partial[c][col] (and partial[kChunks + c][col] for the bias) over
/// the rows of chunk c.
template <bool kRms, class T>
__global__ void normColumnPartials(const T *x, const T *dy, const float *mean,
                                   const float *rstd, int64_t rows, int64_t n,
                                   int64_t chunkRows, bool withBias,
                                   float *partial) {
  const int64_t col = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int c = blockIdx.y;
  if (col >= n)
    return;
  const int64_t r0 = int64_t(c) * chunkRows;
  const int64_t r1 = r0 + chunkRows < rows ? r0 + chunkRows : rows;
  float sx = 0.0f, sb = 0.0f;
  for (int64_t r = r0; r < r1; ++r) {
    const float g = toFloat(dy[r * n + col]);
    const float mu = kRms ? 0.0f : mean[r];
    sx += g * ((toFloat(x[r * n + col]) - mu) * rstd[r]);
    sb += g;
  }
  partial[int64_t(c) * n + col] = sx;
  if (withBias)
    partial[int64_t(kChunks + c) * n + col] = sb;
}

/// Step 3: dscale[col] += sum over chunks in order (dbias likewise).
__global__ void normColumnSums(const float *partial, int64_t n, int chunks,
                               float *dscale, float *dbias) {
  const int64_t col = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= n)
    return;
  if (dscale) {
    float s = 0.0f;
    for (int c = 0; c < chunks; ++c)
      s += partial[int64_t(c) * n + col];
    dscale[col] += s;
  }
  if (dbias) {
    float s = 0.0f;
    for (int c = 0; c < chunks; ++c)
      s += partial[int64_t(kChunks + c) * n + col];
    dbias[col] += s;
  }
}

/// Step 1 (statistics only) when `dx` is null, step 4 otherwise:
/// dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy scale (rms: without
/// the mean(g) term).
template <bool kRms, class T>
__global__ void normDx(const T *x, const T *scale, const T *dy, T *dx,
                       float *mean, float *rstd, int64_t rows, int64_t n,
                       float eps) {
  const int64_t r = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  if (r >= rows)
    return;
  const int lane = threadIdx.x % kWarp;
  const T *xr = x + r * n;
  if (!dx) {
    float mu, rs;
    rowStats<kRms>(xr, n, eps, &mu, &rs);
    if (lane == 0) {
      mean[r] = mu;
      rstd[r] = rs;
    }
    return;
  }
  const T *gr = dy + r * n;
  const float mu = kRms ? 0.0f : mean[r], rs = rstd[r];
  float sg = 0.0f, sgx = 0.0f;
  for (int64_t i = lane; i < n; i += kWarp) {
    const float g = toFloat(gr[i]) * toFloat(scale[i]);
    sg += g;
    sgx += g * ((toFloat(xr[i]) - mu) * rs);
  }
  const float mg = kRms ? 0.0f : warpSum(sg) / float(n);
  const float mgx = warpSum(sgx) / float(n);
  // Every lane has read its elements of the row above; a lane writes only
  // the elements it read itself, so dx may alias dy.
  T *dr = dx + r * n;
  for (int64_t i = lane; i < n; i += kWarp) {
    const float g = toFloat(gr[i]) * toFloat(scale[i]);
    const float xhat = (toFloat(xr[i]) - mu) * rs;
    dr[i] = fromFloat<T>(rs * (g - mg - xhat * mgx));
  }
}

unsigned rowBlocks(int64_t rows) {
  return unsigned((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

template <bool kRms, class T>
Status normBackward(const T *x, const T *scale, const T *dy, T *dx,
                    float *dscale, float *dbias, int64_t rows, int64_t n,
                    float eps, void *workspace, cudaStream_t stream) {
  if (rows <= 0 || n <= 0 || (!dx && !dscale && !dbias))
    return Status();
  float *mean = static_cast<float *>(workspace);
  float *rstd = mean + rows;
  float *partial = rstd + rows;
  const char *name = kRms ? "rms_norm_backward" : "layer_norm_backward";
  launch(normDx<kRms, T>, rowBlocks(rows), kWarpsPerBlock * kWarp, 0, stream, x,
         scale, dy, static_cast<T *>(nullptr), mean, rstd, rows, n, eps);
  WP_TRY(launched(name));
  if (dscale || dbias) {
    const int64_t chunkRows = (rows + kChunks - 1) / kChunks;
    const int chunks = int((rows + chunkRows - 1) / chunkRows);
    const dim3 grid(blocksFor(n, kColumnThreads), unsigned(chunks));
    launch(normColumnPartials<kRms, T>, grid, kColumnThreads, 0, stream, x, dy,
           static_cast<const float *>(mean), static_cast<const float *>(rstd),
           rows, n, chunkRows, dbias != nullptr, partial);
    WP_TRY(launched(name));
    launch(normColumnSums, blocksFor(n, kColumnThreads), kColumnThreads, 0,
           stream, static_cast<const float *>(partial), n, chunks, dscale,
           dbias);
    WP_TRY(launched(name));
  }
  if (dx) {
    launch(normDx<kRms, T>, rowBlocks(rows), kWarpsPerBlock * kWarp, 0, stream,
           x, scale, dy, dx, mean, rstd, rows, n, eps);
    WP_TRY(launched(name));
  }
  return Status();
}

} // namespace

uint64_t normBackwardWorkspaceBytes(int64_t rows, int64_t normSize) {
  return uint64_t(2 * rows + 2 * int64_t(kChunks) * normSize) * sizeof(float);
}

template <class T>
Status layer_norm_forward(const T *x, const T *scale, const T *bias, T *y,
                          float *mean, float *rstd, int64_t rows,
                          int64_t normSize, float eps, cudaStream_t stream) {
  if (rows <= 0 || normSize <= 0)
    return Status();
  launch(normForward<false, T>, rowBlocks(rows), kWarpsPerBlock * kWarp, 0,
         stream, x, scale, bias, y, mean, rstd, rows, normSize, eps);
  return launched("layer_norm_forward");
}

template <class T>
Status layer_norm_backward(const T *x, const T *scale, const T *dy, T *dx,
                           float *dscale, float *dbias, int64_t rows,
                           int64_t normSize, float eps, void *workspace,
                           cudaStream_t stream) {
  return normBackward<false>(x, scale, dy, dx, dscale, dbias, rows, normSize,
                             eps, workspace, stream);
}

template <class T>
Status rms_norm_forward(const T *x, const T *scale, T *y, float *rstd,
                        int64_t rows, int64_t normSize, float eps,
                        cudaStream_t stream) {
  if (rows <= 0 || normSize <= 0)
    return Status();
  launch(normForward<true, T>, rowBlocks(rows), kWarpsPerBlock * kWarp, 0,
         stream, x, scale, static_cast<const T *>(nullptr), y,
         static_cast<float *>(nullptr), rstd, rows, normSize, eps);
  return launched("rms_norm_forward");
}

template <class T>
Status rms_norm_backward(const T *x, const T *scale, const T *dy, T *dx,
                         float *dscale, int64_t rows, int64_t normSize,
                         float eps, void *workspace, cudaStream_t stream) {
  return normBackward<true>(x, scale, dy, dx, dscale, nullptr, rows, normSize,
                            eps, workspace, stream);
}

#define WP_INSTANTIATE(T)                                                      \
  template Status layer_norm_forward<T>(const T *, const T *, const T *, T *,  \
                                        float *, float *, int64_t, int64_t,    \
                                        float, cudaStream_t);                  \
  template Status layer_norm_backward<T>(const T *, const T *, const T *, T *, \
                                         float *, float *, int64_t, int64_t,   \
                                         float, void *, cudaStream_t);         \
  template Status rms_norm_forward<T>(const T *, const T *, T *, float *,      \
                                      int64_t, int64_t, float, cudaStream_t);  \
  template Status rms_norm_backward<T>(const T *, const T *, const T *, T *,   \
                                       float *, int64_t, int64_t, float,       \
                                       void *, cudaStream_t);
WP_INSTANTIATE(float)
WP_INSTANTIATE(bf16)
#undef WP_INSTANTIATE

} // namespace weipipe::rt::cuda
