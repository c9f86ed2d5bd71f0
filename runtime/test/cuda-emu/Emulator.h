//===- Emulator.h - the CUDA execution model on the CPU ---------*- C++ -*-===//
//
// Part of weipipe's runtime tests. Compiles the CUDA kernel files
// (src/cuda/*.cu) as plain C++ with the host compiler and runs them on the
// CPU, so that their tests run on machines without a GPU (every CI machine):
//
//  * A launch runs when its stream gets to it (EmuStreams.h: streams run
//    late, so that a missing event between streams shows), its blocks one
//    after the other. A block's threads run as
//    fibers (cooperative user-space threads) on one host thread; a thread
//    runs until it reaches a barrier, then the next one runs.
//  * Every __syncthreads is a block-wide barrier and every warp shuffle a
//    barrier of its warp. The scheduler checks that every thread reaches the
//    same barriers: a __syncthreads that some threads skip (they exited or
//    wait at another barrier), a shuffle that some lanes of the warp do not
//    reach, a shuffle reading a lane that left the warp - each aborts the
//    test with the kernel, block and thread named.
//  * Between barriers the threads run in thread order in one block and in
//    reverse order in the next (alternating per launch too), so a missing
//    __syncthreads between a write and another thread's read changes the
//    result on one of the two orders (WEIPIPE_CUDA_EMU_ORDER=forward,
//    reverse or alternate, the default).
//  * `__shared__` variables are function-local statics (blocks run one at a
//    time, so a static is exactly one block's shared memory); dynamic shared
//    memory (WP_DYNAMIC_SHARED) is filled with NaN bytes before each block.
//  * Device memory is host memory from the stand-ins of Emulator.cpp:
//    allocations end at an unmapped page (an overrun of more than the
//    256-byte rounding faults), start NaN-filled (no zeros to rely on) and
//    are unmapped when freed; a fault names the kernel, block and thread.
//
// Include this header first, then the kernel file (test/cuda-emu/Emu*.cpp);
// WEIPIPE_CUDA_EMULATION must be defined for the whole build.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_CUDA_EMULATOR_H
#define WEIPIPE_CUDA_EMULATOR_H

#ifndef WEIPIPE_CUDA_EMULATION
#error "Emulator.h needs WEIPIPE_CUDA_EMULATION defined"
#endif

// The CUDA headers for the types (dim3, uint3, float4, cudaError_t,
// __nv_bfloat16 and its host conversions); no CUDA library is linked.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "EmuStreams.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <math.h> // isnan, isinf, ... in the global namespace, as nvcc has them
#include <memory>
#include <tuple>
#include <type_traits>

// Execution-space and launch qualifiers: nothing on the host.
#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __host__
#define __host__
#undef __forceinline__
#define __forceinline__ inline
#undef __launch_bounds__
#define __launch_bounds__(...)
// One block runs at a time: a function-local static is its shared memory.
#undef __shared__
#define __shared__ static

namespace weipipe::emu {

/// The running thread's built-in variables (set by the scheduler at every
/// switch).
struct Builtins {
  uint3 thread{0, 0, 0}, block{0, 0, 0};
  dim3 blockSize{1, 1, 1}, gridSize{1, 1, 1};
};
extern Builtins current;

/// Whether a launch's configuration is one the CUDA runtime accepts; a bad
/// one sets the last error (at the launch, as the runtime reports it).
bool launchable(const void *kernel, dim3 grid, dim3 block, size_t smem);
/// Runs body(ctx) as every thread of every block of the grid (a launchable
/// configuration).
void run(const void *kernel, const char *signature, dim3 grid, dim3 block,
         size_t smem, void (*body)(void *), void *ctx);

template <class... KArgs, class... Args>
void launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
            cudaStream_t stream, Args... args) {
  static_assert(sizeof...(KArgs) == sizeof...(Args),
                "launch: wrong number of kernel arguments");
  if (!launchable(reinterpret_cast<const void *>(kernel), grid, block, smem))
    return;
  // Converted once to the parameter types, as a <<<>>> launch does, and
  // kept until the stream runs the kernel; each thread gets its own copy
  // (its parameters).
  using Params = std::tuple<std::decay_t<KArgs>...>;
  auto params = std::make_shared<Params>(args...);
  const char *signature = __PRETTY_FUNCTION__;
  enqueue(stream, [kernel, params, grid, block, smem, signature] {
    struct Ctx {
      void (*kernel)(KArgs...);
      Params *params;
    } ctx{kernel, params.get()};
    run(
        reinterpret_cast<const void *>(kernel), signature, grid, block, smem,
        [](void *c) {
          Ctx *x = static_cast<Ctx *>(c);
          std::apply(x->kernel, *x->params);
        },
        &ctx);
  });
}

/// The launch's dynamic shared memory (16-byte aligned).
void *dynamicShared();

/// __syncthreads.
void syncThreads();

/// A warp shuffle: publishes `bytes` of `value`, waits for the warp, copies
/// lane `src`'s value (0..31, or -1 for its own) into `out`.
void shuffle(unsigned mask, const void *value, void *out, size_t bytes, int src,
             const char *what);

/// A whole-warp exchange: publishes `bytes` (at most 32) of `value`, waits
/// for the warp, copies every lane's value into `all` (32 x bytes, in lane
/// order).
void gather(const void *value, void *all, size_t bytes, const char *what);

/// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 of the calling warp:
/// c += A B on the PTX ISA's fragment layouts (a: 4 registers of bf16 pairs,
/// b: 2, c: 4 floats), every lane of the warp taking part.
void mmaBf16(float c[4], const uint32_t a[4], const uint32_t b[2]);

/// The calling thread's lane (threadIdx linearized, mod 32).
unsigned lane();

} // namespace weipipe::emu

#undef threadIdx
#undef blockIdx
#undef blockDim
#undef gridDim
#define threadIdx (static_cast<const uint3 &>(::weipipe::emu::current.thread))
#define blockIdx (static_cast<const uint3 &>(::weipipe::emu::current.block))
#define blockDim (static_cast<const dim3 &>(::weipipe::emu::current.blockSize))
#define gridDim (static_cast<const dim3 &>(::weipipe::emu::current.gridSize))

inline void __syncthreads() { ::weipipe::emu::syncThreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  int dummy = 0, out = 0;
  ::weipipe::emu::shuffle(mask, &dummy, &out, sizeof dummy, -1, "__syncwarp");
}

// Shuffles (width: a power of two up to 32, as in CUDA).
template <class T>
inline T __shfl_sync(unsigned mask, T v, int srcLane, int width = 32) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 16);
  const int l = int(::weipipe::emu::lane());
  const int src = (l & ~(width - 1)) + (srcLane & (width - 1));
  T r;
  ::weipipe::emu::shuffle(mask, &v, &r, sizeof(T), src, "__shfl_sync");
  return r;
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int laneMask, int width = 32) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 16);
  const int l = int(::weipipe::emu::lane());
  int src = l ^ laneMask;
  // A lane of a later group of `width` lanes: the caller's own value.
  if ((src & ~(width - 1)) > (l & ~(width - 1)) || src > 31)
    src = -1;
  T r;
  ::weipipe::emu::shuffle(mask, &v, &r, sizeof(T), src, "__shfl_xor_sync");
  return r;
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 16);
  const int l = int(::weipipe::emu::lane());
  const int src = (l & (width - 1)) + int(delta) >= width ? -1 : l + int(delta);
  T r;
  ::weipipe::emu::shuffle(mask, &v, &r, sizeof(T), src, "__shfl_down_sync");
  return r;
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 16);
  const int l = int(::weipipe::emu::lane());
  const int src = (l & (width - 1)) < int(delta) ? -1 : l - int(delta);
  T r;
  ::weipipe::emu::shuffle(mask, &v, &r, sizeof(T), src, "__shfl_up_sync");
  return r;
}

// Atomics: threads are fibers of one host thread and never preempted, so a
// plain read-modify-write is atomic.
inline int atomicCAS(int *p, int compare, int value) {
  const int old = *p;
  if (old == compare)
    *p = value;
  return old;
}
inline unsigned atomicCAS(unsigned *p, unsigned compare, unsigned value) {
  const unsigned old = *p;
  if (old == compare)
    *p = value;
  return old;
}
inline unsigned long long atomicCAS(unsigned long long *p,
                                    unsigned long long compare,
                                    unsigned long long value) {
  const unsigned long long old = *p;
  if (old == compare)
    *p = value;
  return old;
}
template <class T> inline T atomicExch(T *p, T value) {
  const T old = *p;
  *p = value;
  return old;
}
template <class T> inline T atomicAdd(T *p, T value) {
  const T old = *p;
  *p = old + value;
  return old;
}
inline void __threadfence() {}

/// The runtime's C++ overload for kernels (cuda_runtime.h declares it for
/// nvcc only).
template <class T>
cudaError_t cudaFuncSetAttribute(T *kernel, cudaFuncAttribute attr, int value) {
  return ::cudaFuncSetAttribute(reinterpret_cast<const void *>(kernel), attr,
                                value);
}
inline void __threadfence_block() {}

// Device intrinsics without a host definition. The _rn forms are single
// IEEE operations, rounded to nearest (the emulated library is compiled with
// -ffp-contract=off, so nothing fuses them).
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
// The device's are approximations (rsqrtf: 2 ulp; the fast-math forms
// more); the host computes them correctly rounded or nearly so.
inline float rsqrtf(float a) { return 1.0f / std::sqrt(a); }
inline double rsqrt(double a) { return 1.0 / std::sqrt(a); }
inline float __expf(float a) { return std::exp(a); }
inline float __logf(float a) { return std::log(a); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float a) {
  return a != a ? 0.0f : a < 0.0f ? 0.0f : a > 1.0f ? 1.0f : a;
}
inline int __float_as_int(float a) {
  int r;
  std::memcpy(&r, &a, sizeof r);
  return r;
}
inline float __int_as_float(int a) {
  float r;
  std::memcpy(&r, &a, sizeof r);
  return r;
}
inline unsigned __float_as_uint(float a) {
  unsigned r;
  std::memcpy(&r, &a, sizeof r);
  return r;
}
inline float __uint_as_float(unsigned a) {
  float r;
  std::memcpy(&r, &a, sizeof r);
  return r;
}

#endif // WEIPIPE_CUDA_EMULATOR_H
