//===- Optim.cu - fused AdamW and the global gradient norm ----------------===//
//
// Part of weipipe's runtime (CUDA backend). AdamW is one thread per element
// with cpu::adamw_step's float operations in its order, each rounded on its
// own (its scalars come from the host, rounded as the CPU rounds them): the
// same inputs give the CPU's weights bit for bit where the CPU build does not
// contract to FMA either (x86-64 without -mfma). The norm: per-block partial
// sums in double over a fixed grid (kNormBlocks, independent of the device),
// then one block adds them in order: deterministic.
//
//===----------------------------------------------------------------------===//

#include "Common.cuh"

#include <cmath>

namespace weipipe::rt::cuda {
using namespace detail;

namespace {

constexpr int kThreads = 256;
constexpr int kNormBlocks = 512;

__global__ void adamwKernel(float *p, const float *g, float *m, float *v,
                            int64_t n, AdamWCoefficients c,
                            const float *gradScale, bf16 *compute) {
  const float scale = gradScale ? *gradScale : 1.0f;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    // Each operation rounded on its own (no FMA contraction): the CPU's
    // float arithmetic bit for bit.
    const float gi = __fmul_rn(g[i], scale);
    float pi = __fmul_rn(p[i], c.decay);
    const float mi = __fadd_rn(m[i], __fmul_rn(c.w1, __fsub_rn(gi, m[i])));
    const float vi =
        __fadd_rn(__fmul_rn(v[i], c.b2), __fmul_rn(__fmul_rn(c.w2, gi), gi));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), c.bc2Sqrt), c.eps);
    pi = __fadd_rn(pi, __fmul_rn(-c.stepSize, __fdiv_rn(mi, denom)));
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
    if (compute)
      compute[i] = __float2bfloat16_rn(pi);
  }
}

__global__ void squaresPartial(const float *x, int64_t n, double *partial) {
  __shared__ double shared[kWarp];
  double s = 0.0;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    s += double(x[i]) * double(x[i]);
  s = blockSum(s, shared);
  if (threadIdx.x == 0)
    partial[blockIdx.x] = s;
}

__global__ void squaresTotal(const double *partial, int count, double *sumsq) {
  __shared__ double shared[kWarp];
  double s = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x)
    s += partial[i];
  s = blockSum(s, shared);
  if (threadIdx.x == 0)
    *sumsq += s;
}

__global__ void clipKernel(const double *sumsq, double maxNorm, float *scale,
                           double *norm) {
  const double nrm = sqrt(*sumsq);
  const double c = maxNorm / (nrm + 1e-6);
  *scale = c < 1.0 ? float(c) : 1.0f;
  if (norm)
    *norm = nrm;
}

} // namespace

AdamWCoefficients adamwCoefficients(const cpu::AdamWConfig &c, int64_t step) {
  AdamWCoefficients k;
  const double bc1 = 1.0 - std::pow(c.beta1, double(step));
  const double bc2 = 1.0 - std::pow(c.beta2, double(step));
  k.decay = float(1.0 - c.lr * c.weightDecay);
  k.w1 = float(1.0 - c.beta1);
  k.b2 = float(c.beta2);
  k.w2 = float(1.0 - c.beta2);
  k.stepSize = float(c.lr / bc1);
  k.bc2Sqrt = float(std::sqrt(bc2));
  k.eps = float(c.eps);
  return k;
}

Status adamw_step(float *p, const float *g, float *m, float *v, int64_t n,
                  const AdamWCoefficients &c, const float *gradScale,
                  bf16 *compute, cudaStream_t stream) {
  if (n <= 0)
    return Status();
  launch(adamwKernel, blocksFor(n, kThreads, 4), kThreads, 0, stream, p, g, m,
         v, n, c, gradScale, compute);
  return launched("adamw_step");
}

uint64_t sumOfSquaresWorkspaceBytes() { return kNormBlocks * sizeof(double); }

Status sum_of_squares(const float *x, int64_t n, double *sumsq, void *workspace,
                      cudaStream_t stream) {
  if (n <= 0)
    return Status();
  double *partial = static_cast<double *>(workspace);
  launch(squaresPartial, kNormBlocks, kThreads, 0, stream, x, n, partial);
  WP_TRY(launched("sum_of_squares"));
  launch(squaresTotal, 1, kThreads, 0, stream,
         static_cast<const double *>(partial), kNormBlocks, sumsq);
  return launched("sum_of_squares");
}

Status clip_scale(const double *sumsq, double maxNorm, float *scale,
                  double *norm, cudaStream_t stream) {
  launch(clipKernel, 1, 1, 0, stream, sumsq, maxNorm, scale, norm);
  return launched("clip_scale");
}

} // namespace weipipe::rt::cuda
