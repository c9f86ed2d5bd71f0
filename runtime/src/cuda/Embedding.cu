//===- Embedding.cu - nn.embedding and nn.rotary --------------------------===//
//
// Part of weipipe's runtime (CUDA backend).
//
//   embedding forward: one thread per output element (a row per id).
//   embedding backward, deterministic without atomics: a stable radix sort
//     of (id, position) pairs (CUB), then one block per run of equal ids
//     that adds the run's dout rows in position order, column by column, to
//     the table's gradient row. A very frequent id serializes into one block;
//     ids are few next to the rows they touch, so this stays cheap.
//   rotary: one thread per (row, pair) so that each pair is read whole before
//     it is written (y may alias x); the features past rotaryDim are copied
//     by the threads past the pairs. The backward is the forward with sin
//     negated (the transposed rotation).
//
//===----------------------------------------------------------------------===//

#include "Common.cuh"

#ifdef WEIPIPE_CUDA_EMULATION
#include <algorithm>
#include <utility>
#include <vector>
#else
#include <cub/device/device_radix_sort.cuh>
#endif

namespace weipipe::rt::cuda {
using namespace detail;

namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void embeddingForward(const T *table, const int64_t *ids, T *out,
                                 int64_t numIds, int64_t V, int64_t H,
                                 KernelError *err) {
  const int64_t total = numIds * H;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += stride) {
    const int64_t i = e / H, c = e % H;
    const int64_t id = ids[i];
    if (id < 0 || id >= V) {
      if (c == 0)
        recordError(err, KernelError::IndexOutOfRange, id, i, V);
      out[e] = fromFloat<T>(0.0f);
      continue;
    }
    out[e] = table[id * H + c];
  }
}

__global__ void iota(int32_t *p, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    p[i] = int32_t(i);
}

/// Block i works when sorted position i starts a run of equal ids.
template <class T>
__global__ void
embeddingBackward(const int64_t *sortedIds, const int32_t *positions,
                  const T *dout, float *dtable, int64_t numIds, int64_t V,
                  int64_t H, int64_t paddingIdx, KernelError *err) {
  const int64_t i = blockIdx.x;
  const int64_t id = sortedIds[i];
  if (i > 0 && sortedIds[i - 1] == id)
    return;
  if (id < 0 || id >= V) {
    if (threadIdx.x == 0)
      recordError(err, KernelError::IndexOutOfRange, id, positions[i], V);
    return;
  }
  if (id == paddingIdx)
    return;
  int64_t end = i + 1;
  while (end < numIds && sortedIds[end] == id)
    ++end;
  for (int64_t c = threadIdx.x; c < H; c += blockDim.x) {
    float s = 0.0f;
    for (int64_t j = i; j < end; ++j)
      s += toFloat(dout[int64_t(positions[j]) * H + c]);
    dtable[id * H + c] += s;
  }
}

/// The workspace's parts, each 256-byte aligned.
struct SortSpace {
  int64_t *keysOut;
  int32_t *valsIn, *valsOut;
  void *temp;
  size_t tempBytes;
};

/// The stable sort of (id, position) pairs by id, all 64 bits of the id:
/// CUB's radix sort and the temporary bytes it needs. Emulated builds have no
/// CUB: a host std::stable_sort gives the same order, and the temporary size
/// is what a GPU-less machine computes.
#ifdef WEIPIPE_CUDA_EMULATION
size_t sortTempBytes(int64_t n) { return size_t(n) * 24 + (size_t(1) << 20); }

cudaError_t sortPairs(void *, size_t, const int64_t *keysIn, int64_t *keysOut,
                      const int32_t *valsIn, int32_t *valsOut, int n,
                      cudaStream_t stream) {
  // In stream order, as CUB's kernels would run.
  ::weipipe::emu::enqueue(stream, [=] {
    std::vector<std::pair<int64_t, int32_t>> kv(size_t(n > 0 ? n : 0));
    for (size_t i = 0; i < kv.size(); ++i)
      kv[i] = {keysIn[i], valsIn[i]};
    std::stable_sort(kv.begin(), kv.end(), [](const auto &a, const auto &b) {
      return a.first < b.first;
    });
    for (size_t i = 0; i < kv.size(); ++i) {
      keysOut[i] = kv[i].first;
      valsOut[i] = kv[i].second;
    }
  });
  return cudaSuccess;
}
#else
size_t sortTempBytes(int64_t n) {
  size_t bytes = 0;
  if (cub::DeviceRadixSort::SortPairs<int64_t, int32_t>(
          nullptr, bytes, nullptr, nullptr, nullptr, nullptr, int(n)) !=
      cudaSuccess) {
    cudaGetLastError();
    // No device to ask (sizing on a GPU-less machine): CUB's onesweep needs
    // well under this.
    return size_t(n) * 24 + (size_t(1) << 20);
  }
  return bytes;
}

cudaError_t sortPairs(void *temp, size_t tempBytes, const int64_t *keysIn,
                      int64_t *keysOut, const int32_t *valsIn, int32_t *valsOut,
                      int n, cudaStream_t stream) {
  return cub::DeviceRadixSort::SortPairs(temp, tempBytes, keysIn, keysOut,
                                         valsIn, valsOut, n, 0,
                                         int(sizeof(int64_t) * 8), stream);
}
#endif

SortSpace carve(void *workspace, int64_t n) {
  uint8_t *p = static_cast<uint8_t *>(workspace);
  SortSpace s;
  s.keysOut = reinterpret_cast<int64_t *>(p);
  p += align256(uint64_t(n) * sizeof(int64_t));
  s.valsIn = reinterpret_cast<int32_t *>(p);
  p += align256(uint64_t(n) * sizeof(int32_t));
  s.valsOut = reinterpret_cast<int32_t *>(p);
  p += align256(uint64_t(n) * sizeof(int32_t));
  s.temp = p;
  s.tempBytes = sortTempBytes(n);
  return s;
}

template <class T>
__global__ void rotaryKernel(const T *x, const float *cos, const float *sin,
                             T *y, int64_t rows, int64_t H, int64_t S,
                             int64_t D, int64_t half, bool interleaved,
                             bool tableHasBatch, float sinSign) {
  const int64_t perRow = D - half; // the pairs, then the pass-through
  const int64_t total = rows * perRow;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += stride) {
    const int64_t row = e / perRow, j = e % perRow;
    const T *xr = x + row * D;
    T *yr = y + row * D;
    if (j >= half) { // feature 2 half + (j - half)
      const int64_t f = half + j;
      if (yr != xr)
        yr[f] = xr[f];
      continue;
    }
    // row = (b H + h) S + t
    const int64_t t = row % S, b = row / (H * S);
    const int64_t at = ((tableHasBatch ? b * S : 0) + t) * half + j;
    const float c = cos[at], s = sinSign * sin[at];
    const int64_t i1 = interleaved ? 2 * j : j;
    const int64_t i2 = interleaved ? 2 * j + 1 : j + half;
    const float x1 = toFloat(xr[i1]), x2 = toFloat(xr[i2]);
    yr[i1] = fromFloat<T>(x1 * c - x2 * s);
    yr[i2] = fromFloat<T>(x2 * c + x1 * s);
  }
}

template <class T>
Status rotaryLaunch(const T *x, const float *cos, const float *sin, T *y,
                    const cpu::RotaryDims &d, float sinSign, const char *name,
                    cudaStream_t stream) {
  if (d.rotaryDim <= 0 || d.rotaryDim % 2 != 0 || d.rotaryDim > d.D)
    return Status::error(std::string(name) + ": rotary_dim " +
                         std::to_string(d.rotaryDim) +
                         " must be even, positive and at most the head dim " +
                         std::to_string(d.D));
  const int64_t rows = d.B * d.H * d.S, half = d.rotaryDim / 2;
  if (rows <= 0)
    return Status();
  launch(rotaryKernel<T>, blocksFor(rows * (d.D - half), kThreads, 4), kThreads,
         0, stream, x, cos, sin, y, rows, d.H, d.S, d.D, half, d.interleaved,
         d.tableHasBatch, sinSign);
  return launched(name);
}

} // namespace

template <class T>
Status embedding_forward(const T *table, const int64_t *ids, T *out,
                         int64_t numIds, int64_t V, int64_t H, KernelError *err,
                         cudaStream_t stream) {
  if (numIds <= 0 || H <= 0)
    return Status();
  launch(embeddingForward<T>, blocksFor(numIds * H, kThreads, 4), kThreads, 0,
         stream, table, ids, out, numIds, V, H, err);
  return launched("embedding_forward");
}

uint64_t embeddingBackwardWorkspaceBytes(int64_t numIds) {
  const uint64_t n = uint64_t(numIds > 0 ? numIds : 1);
  return align256(n * sizeof(int64_t)) + 2 * align256(n * sizeof(int32_t)) +
         align256(sortTempBytes(int64_t(n)));
}

template <class T>
Status embedding_backward(const int64_t *ids, const T *dout, float *dtable,
                          int64_t numIds, int64_t V, int64_t H,
                          int64_t paddingIdx, void *workspace,
                          uint64_t workspaceBytes, KernelError *err,
                          cudaStream_t stream) {
  if (numIds <= 0 || H <= 0)
    return Status();
  if (numIds > INT32_MAX)
    return Status::error("embedding_backward: " + std::to_string(numIds) +
                         " ids exceed the kernel's 2^31 - 1");
  SortSpace sp = carve(workspace, numIds);
  const uint64_t need = embeddingBackwardWorkspaceBytes(numIds);
  if (workspaceBytes < need)
    return Status::error("embedding_backward: the workspace has " +
                         std::to_string(workspaceBytes) + " bytes, " +
                         std::to_string(need) + " needed");
  launch(iota, blocksFor(numIds, kThreads), kThreads, 0, stream, sp.valsIn,
         numIds);
  WP_TRY(launched("embedding_backward (positions)"));
  // Radix sort is stable: equal ids keep their position order.
  WP_CUDA_TRY(sortPairs(sp.temp, sp.tempBytes, ids, sp.keysOut, sp.valsIn,
                        sp.valsOut, int(numIds), stream));
  launch(embeddingBackward<T>, unsigned(numIds), kThreads, 0, stream,
         static_cast<const int64_t *>(sp.keysOut),
         static_cast<const int32_t *>(sp.valsOut), dout, dtable, numIds, V, H,
         paddingIdx, err);
  return launched("embedding_backward");
}

template <class T>
Status rotary_forward(const T *x, const float *cos, const float *sin, T *y,
                      const cpu::RotaryDims &d, cudaStream_t stream) {
  return rotaryLaunch(x, cos, sin, y, d, 1.0f, "rotary_forward", stream);
}

template <class T>
Status rotary_backward(const T *dy, const float *cos, const float *sin, T *dx,
                       const cpu::RotaryDims &d, cudaStream_t stream) {
  return rotaryLaunch(dy, cos, sin, dx, d, -1.0f, "rotary_backward", stream);
}

#define WP_INSTANTIATE(T)                                                      \
  template Status embedding_forward<T>(const T *, const int64_t *, T *,        \
                                       int64_t, int64_t, int64_t,              \
                                       KernelError *, cudaStream_t);           \
  template Status embedding_backward<T>(                                       \
      const int64_t *, const T *, float *, int64_t, int64_t, int64_t, int64_t, \
      void *, uint64_t, KernelError *, cudaStream_t);                          \
  template Status rotary_forward<T>(const T *, const float *, const float *,   \
                                    T *, const cpu::RotaryDims &,              \
                                    cudaStream_t);                             \
  template Status rotary_backward<T>(const T *, const float *, const float *,  \
                                     T *, const cpu::RotaryDims &,             \
                                     cudaStream_t);
WP_INSTANTIATE(float)
WP_INSTANTIATE(bf16)
#undef WP_INSTANTIATE

} // namespace weipipe::rt::cuda
