//===- AttentionCommon.cuh - what the attention kernels share ---*- C++ -*-===//
//
// Part of weipipe's runtime (CUDA backend). The attention problem as the
// kernels see it, the masking rule and the block-to-tile mapping, shared by
// the fp32 kernels (Attention.cu, the CPU's arithmetic) and the bf16
// tensor-core kernels (AttentionMma.cu, --precision bf16).
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_SRC_CUDA_ATTENTIONCOMMON_CUH
#define WEIPIPE_RUNTIME_SRC_CUDA_ATTENTIONCOMMON_CUH

#include "Common.cuh"

#include <string>

namespace weipipe::rt::cuda::detail {

/// Rows a block owns: query rows (forward, dQ) or keys (dK/dV).
constexpr int kOwn = 64;
constexpr int kMaxHeadDim = 128;

enum MaskCode : int { kNoMask = 0, kAdditive = 1, kKeep = 2 };

/// Element offsets of one tensor: batch, head and row (sequence) strides.
struct HeadStrides {
  int64_t b = 0, h = 0, s = 0;
};

/// The problem as the kernels see it (passed by value).
struct Problem {
  int64_t B, H, Hkv, G, Sq, Sk;
  int D, Dv;
  HeadStrides q, k, v, o; // dq, dk, dv share q, k, v's; out and dout o's
  float scale;
  bool causal;
  int mask;
  const float *additive;
  const uint8_t *keep;
  int64_t mb, mh, mq, mk; // mask strides, 0 where broadcast
};

/// The scaled score s of query i against key j after the causal rule and the
/// mask; -inf where the key is not allowed, and for rows and keys past the
/// ends (the zero-filled tails of the tiles, whose mask must not be read).
__device__ __forceinline__ float maskedScore(const Problem &p, int64_t b,
                                             int64_t h, int64_t i, int64_t j,
                                             float s) {
  if (i >= p.Sq || j >= p.Sk || (p.causal && j > i))
    return -INFINITY;
  if (p.mask == kAdditive)
    return s + p.additive[b * p.mb + h * p.mh + i * p.mq + j * p.mk];
  if (p.mask == kKeep && !p.keep[b * p.mb + h * p.mh + i * p.mq + j * p.mk])
    return -INFINITY;
  return s;
}

/// exp(s - lse): 0 for a masked score and for a row without allowed keys
/// (lse = -inf, where s - lse would be NaN).
__device__ __forceinline__ float probability(float s, float lse) {
  return (s == -INFINITY || lse == -INFINITY) ? 0.0f : expf(s - lse);
}

__device__ __forceinline__ int64_t minI64(int64_t a, int64_t b) {
  return a < b ? a : b;
}

/// The (b, h, query tile) a forward or dQ block owns (the last tiles first:
/// under the causal mask they see the most keys), its first row, its row
/// count and the end of the keys it sees.
struct QueryTile {
  int64_t b, h, hk, i0, kEnd;
  int rows;
};
__device__ __forceinline__ QueryTile queryTile(const Problem &p) {
  const int64_t nqt = (p.Sq + kOwn - 1) / kOwn;
  const int64_t bh = int64_t(blockIdx.x) / nqt;
  const int64_t tile = nqt - 1 - (int64_t(blockIdx.x) - bh * nqt);
  QueryTile t;
  t.b = bh / p.H;
  t.h = bh % p.H;
  t.hk = t.h / p.G;
  t.i0 = tile * kOwn;
  t.rows = int(minI64(kOwn, p.Sq - t.i0));
  t.kEnd = p.causal ? minI64(p.Sk, t.i0 + t.rows) : p.Sk;
  return t;
}

/// lse and Dr of query rows [i0, i0 + N) into shared memory (-inf and 0
/// past the `valid` rows): threads [0, N) of the block load one each.
template <int N>
__device__ __forceinline__ void loadRowStats(float *lseS, float *DrS,
                                             const float *lseH,
                                             const float *DrH, int64_t i0,
                                             int valid) {
  if (int(threadIdx.x) < N) {
    const bool in = int(threadIdx.x) < valid;
    lseS[threadIdx.x] = in ? lseH[i0 + threadIdx.x] : -INFINITY;
    DrS[threadIdx.x] = in ? DrH[i0 + threadIdx.x] : 0.0f;
  }
}

inline int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// Allows `bytes` of dynamic shared memory for `kernel` (above the default
/// 48 KiB it must be asked for), or an error when the device has less.
template <class Kernel>
Status allowSharedMemory(Kernel kernel, size_t bytes, const char *name) {
  if (bytes <= 48 * 1024)
    return Status();
  int device = 0, optin = 0;
  WP_CUDA_TRY(cudaGetDevice(&device));
  WP_CUDA_TRY(cudaDeviceGetAttribute(
      &optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  if (bytes > size_t(optin))
    return Status::error(std::string(name) + " needs " + std::to_string(bytes) +
                         " bytes of shared memory per block; the device "
                         "allows " +
                         std::to_string(optin));
  WP_CUDA_TRY(cudaFuncSetAttribute(
      kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  return Status();
}

/// Launches `blocks` blocks of `threads` (none: nothing to do).
template <class... KArgs, class... Args>
Status launchBlocks(void (*kernel)(KArgs...), int threads, size_t smem,
                    int64_t blocks, cudaStream_t stream, const char *name,
                    Args... args) {
  if (blocks <= 0)
    return Status();
  WP_TRY(allowSharedMemory(kernel, smem, name));
  launch(kernel, unsigned(blocks), unsigned(threads), smem, stream, args...);
  return launched(name);
}

/// The tensor-core kernels (AttentionMma.cu): the forward (out may be
/// nullptr: lse alone), and the dK/dV and dQ passes of the backward given
/// lse and Dr = rowsum(dO * O).
template <class T>
Status mmaAttentionForward(const Problem &p, const T *q, const T *k, const T *v,
                           T *out, float *lse, cudaStream_t stream,
                           const char *name);
template <class T>
Status mmaAttentionBackward(const Problem &p, const T *q, const T *k,
                            const T *v, const T *dout, const float *lse,
                            const float *Dr, T *dq, T *dk, T *dv,
                            cudaStream_t stream);

} // namespace weipipe::rt::cuda::detail

#endif // WEIPIPE_RUNTIME_SRC_CUDA_ATTENTIONCOMMON_CUH
