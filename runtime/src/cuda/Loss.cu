//===- Loss.cu - softmax cross-entropy fused over the vocabulary ----------===//
//
// Part of weipipe's runtime (CUDA backend). One block per row of V logits
// (llm.c's fused classifier): each thread keeps a running max and sum over
// its strided elements (online softmax), the block combines them, so the
// row is read once for its logsumexp and never copied or turned into
// probabilities. The forward's mean is one block adding the rows' losses in
// double in a fixed order; the backward rereads the row for
// dloss / numValid * (softmax - onehot), writing each element over the one
// it read when dlogits aliases logits.
//
//===----------------------------------------------------------------------===//

#include "Common.cuh"

namespace weipipe::rt::cuda {
using namespace detail;

namespace {

constexpr int kRowThreads = 512;
constexpr int kSumThreads = 1024;

/// The row's logsumexp, in every thread of the block.
template <class T>
__device__ float rowLse(const T *x, int64_t V, float *shared) {
  float m = -INFINITY, l = 0.0f;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    const float v = toFloat(x[j]);
    if (v == -INFINITY) // exp(-inf) adds nothing (and -inf - -inf is NaN)
      continue;
    if (v > m) {
      l = l * expf(m - v) + 1.0f; // exp(-inf) = 0 on the first element
      m = v;
    } else {
      l += expf(v - m);
    }
  }
  const float M = blockMax(m, shared);
  // A thread that saw only -inf (or nothing) adds nothing.
  const float part = m == -INFINITY ? 0.0f : l * expf(m - M);
  const float L = blockSum(part, shared);
  return M + logf(L);
}

__device__ bool validTarget(int64_t t, int64_t V, int64_t ignoreIndex) {
  return t != ignoreIndex && t >= 0 && t < V;
}

template <class T>
__global__ void ceRows(const T *logits, const int64_t *targets, int64_t V,
                       int64_t ignoreIndex, float *lse, double *rowLoss,
                       KernelError *err) {
  __shared__ float shared[kWarp];
  const int64_t r = blockIdx.x;
  const T *x = logits + r * V;
  const float l = rowLse(x, V, shared);
  if (threadIdx.x != 0)
    return;
  if (lse)
    lse[r] = l;
  const int64_t t = targets[r];
  if (t != ignoreIndex && (t < 0 || t >= V))
    recordError(err, KernelError::TargetOutOfRange, t, r, V);
  rowLoss[r] =
      validTarget(t, V, ignoreIndex) ? double(l) - double(toFloat(x[t])) : 0.0;
}

/// Sums the rows' losses and counts the valid rows (one block); writes the
/// mean to *loss (when given) and the count to *numValid (when given).
__global__ void ceMean(const double *rowLoss, const int64_t *targets, int64_t N,
                       int64_t V, int64_t ignoreIndex, float *loss,
                       int64_t *numValid) {
  __shared__ double shared[kWarp];
  double s = 0.0, c = 0.0;
  for (int64_t r = threadIdx.x; r < N; r += blockDim.x) {
    if (rowLoss)
      s += rowLoss[r];
    c += validTarget(targets[r], V, ignoreIndex) ? 1.0 : 0.0;
  }
  s = blockSum(s, shared);
  c = blockSum(c, shared);
  if (threadIdx.x == 0) {
    if (loss)
      *loss = c > 0 ? float(s / c) : 0.0f;
    if (numValid)
      *numValid = int64_t(c);
  }
}

template <class T>
__global__ void ceBackward(const T *logits, const int64_t *targets,
                           const float *dloss, const int64_t *numValid,
                           int64_t V, int64_t ignoreIndex, T *dlogits) {
  __shared__ float shared[kWarp];
  const int64_t r = blockIdx.x;
  const T *x = logits + r * V;
  T *d = dlogits + r * V;
  const int64_t t = targets[r];
  if (!validTarget(t, V, ignoreIndex) || *numValid == 0) {
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x)
      d[j] = fromFloat<T>(0.0f);
    return;
  }
  // rowLse ends in block reductions: every thread has read its elements for
  // it before any thread writes below (and each writes only its own).
  const float l = rowLse(x, V, shared);
  const float g = *dloss / float(*numValid);
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    const float p = expf(toFloat(x[j]) - l);
    d[j] = fromFloat<T>(g * (p - (j == t ? 1.0f : 0.0f)));
  }
}

} // namespace

uint64_t crossEntropyWorkspaceBytes(int64_t N) {
  return align256(uint64_t(N > 0 ? N : 1) * sizeof(double)) + 256;
}

template <class T>
Status cross_entropy_forward(const T *logits, const int64_t *targets, int64_t N,
                             int64_t V, int64_t ignoreIndex, float *loss,
                             float *lse, int64_t *numValid, void *workspace,
                             KernelError *err, cudaStream_t stream) {
  if (V <= 0)
    return Status::error("cross_entropy needs at least one class");
  double *rowLoss = static_cast<double *>(workspace);
  if (N > 0) {
    if (N > INT32_MAX)
      return Status::error("cross_entropy: " + std::to_string(N) +
                           " rows exceed the kernel's 2^31 - 1");
    launch(ceRows<T>, unsigned(N), kRowThreads, 0, stream, logits, targets, V,
           ignoreIndex, lse, rowLoss, err);
    WP_TRY(launched("cross_entropy_forward"));
  }
  launch(ceMean, 1, kSumThreads, 0, stream,
         static_cast<const double *>(N > 0 ? rowLoss : nullptr), targets, N, V,
         ignoreIndex, loss, numValid);
  return launched("cross_entropy_forward (mean)");
}

template <class T>
Status cross_entropy_backward(const T *logits, const int64_t *targets,
                              const float *dloss, int64_t N, int64_t V,
                              int64_t ignoreIndex, T *dlogits, void *workspace,
                              cudaStream_t stream) {
  if (N <= 0 || V <= 0)
    return Status();
  if (N > INT32_MAX)
    return Status::error("cross_entropy: " + std::to_string(N) +
                         " rows exceed the kernel's 2^31 - 1");
  int64_t *numValid =
      reinterpret_cast<int64_t *>(static_cast<uint8_t *>(workspace) +
                                  align256(uint64_t(N) * sizeof(double)));
  launch(ceMean, 1, kSumThreads, 0, stream,
         static_cast<const double *>(nullptr), targets, N, V, ignoreIndex,
         static_cast<float *>(nullptr), numValid);
  WP_TRY(launched("cross_entropy_backward (count)"));
  launch(ceBackward<T>, unsigned(N), kRowThreads, 0, stream, logits, targets,
         dloss, static_cast<const int64_t *>(numValid), V, ignoreIndex,
         dlogits);
  return launched("cross_entropy_backward");
}

#define WP_INSTANTIATE(T)                                                      \
  template Status cross_entropy_forward<T>(                                    \
      const T *, const int64_t *, int64_t, int64_t, int64_t, float *, float *, \
      int64_t *, void *, KernelError *, cudaStream_t);                         \
  template Status cross_entropy_backward<T>(                                   \
      const T *, const int64_t *, const float *, int64_t, int64_t, int64_t,    \
      T *, void *, cudaStream_t);
WP_INSTANTIATE(float)
WP_INSTANTIATE(bf16)
#undef WP_INSTANTIATE

} // namespace weipipe::rt::cuda
