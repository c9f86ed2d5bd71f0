//===- Common.cuh - what the CUDA kernel files share ------------*- CUDA
//-*-===//
//
// Part of weipipe's runtime (CUDA backend). Conversions between the storage
// types and fp32, warp and block reductions, and launch arithmetic. Kernels
// compute in fp32 whatever they load and store.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_SRC_CUDA_COMMON_CUH
#define WEIPIPE_RUNTIME_SRC_CUDA_COMMON_CUH

#include "weipipe/runtime/cuda/Device.h"
#include "weipipe/runtime/cuda/Kernels.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

// Emulated builds (test/cuda-emu: the kernels compiled as C++ by the host
// compiler and run on the CPU, every CI machine) include the emulator before
// the kernel file; it supplies the CUDA built-ins and the launch. Nothing
// below changes what nvcc compiles.
#ifdef WEIPIPE_CUDA_EMULATION
#ifndef WEIPIPE_CUDA_EMULATOR_H
#error "an emulated kernel file must include test/cuda-emu/Emulator.h first"
#endif
#endif

/// The kernel's dynamic shared memory (the launch's `smem` bytes) as
/// `type *name`: `extern __shared__ type name[]` under nvcc.
#ifdef WEIPIPE_CUDA_EMULATION
#define WP_DYNAMIC_SHARED(type, name)                                          \
  type *const name = static_cast<type *>(::weipipe::emu::dynamicShared())
#else
#define WP_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

namespace weipipe::rt::cuda::detail {

__device__ __forceinline__ float toFloat(float x) { return x; }
__device__ __forceinline__ float toFloat(bf16 x) { return __bfloat162float(x); }

template <class T> __device__ __forceinline__ T fromFloat(float x);
template <> __device__ __forceinline__ float fromFloat<float>(float x) {
  return x;
}
template <> __device__ __forceinline__ bf16 fromFloat<bf16>(float x) {
  return __float2bfloat16_rn(x);
}

constexpr int kWarp = 32;

__device__ __forceinline__ float warpSum(float v) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ double warpSum(double v) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warpMax(float v) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o /= 2)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/// The sum of `v` over the block (blockDim.x a multiple of 32, at most
/// 1024), returned to every thread; `shared` holds 32 values. The order is
/// fixed by the block size, so the result is deterministic.
template <class V> __device__ V blockSum(V v, V *shared) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int warps = blockDim.x / kWarp;
  v = warpSum(v);
  __syncthreads(); // `shared` may still be read from a previous call
  if (lane == 0)
    shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : V(0);
  return warpSum(v);
}
__device__ inline float blockMax(float v, float *shared) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int warps = blockDim.x / kWarp;
  v = warpMax(v);
  __syncthreads();
  if (lane == 0)
    shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : -INFINITY;
  return warpMax(v);
}

/// Records the first data error of a launch (later ones are dropped).
__device__ inline void recordError(KernelError *err, int code, int64_t value,
                                   int64_t position, int64_t bound) {
  if (!err)
    return;
  if (atomicCAS(&err->code, 0, -1) == 0) {
    err->value = value;
    err->position = position;
    err->bound = bound;
    __threadfence();
    atomicExch(&err->code, code);
  }
}

/// Grid size for n elements at `threads` per block, `perThread` each, capped
/// so that grid-stride loops cover the rest.
inline unsigned blocksFor(int64_t n, int threads, int perThread = 1) {
  const int64_t per = int64_t(threads) * perThread;
  int64_t b = (n + per - 1) / per;
  if (b < 1)
    b = 1;
  if (b > (int64_t(1) << 20))
    b = int64_t(1) << 20;
  return unsigned(b);
}

/// Every kernel launch: kernel<<<grid, block, smem, stream>>>(args...), or
/// the emulator's launch in emulated builds. The arguments are converted to
/// the kernel's parameter types as a <<<>>> call converts them; pass the
/// kernel with its template arguments spelled out.
template <class... KArgs, class... Args>
void launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
            cudaStream_t stream, Args... args) {
  static_assert(sizeof...(KArgs) == sizeof...(Args),
                "launch: wrong number of kernel arguments");
#ifdef WEIPIPE_CUDA_EMULATION
  ::weipipe::emu::launch(kernel, grid, block, smem, stream, args...);
#else
  kernel<<<grid, block, smem, stream>>>(args...);
#endif
}

/// `bytes` rounded up to 256: the alignment of each part of a workspace
/// (cudaMalloc's own).
inline uint64_t align256(uint64_t bytes) { return (bytes + 255) / 256 * 256; }

/// The end of every launcher: the launch's error, if any, named.
inline Status launched(const char *kernel) {
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess)
    return Status();
  return error(e, kernel, nullptr, 0);
}

} // namespace weipipe::rt::cuda::detail

#endif // WEIPIPE_RUNTIME_SRC_CUDA_COMMON_CUH
