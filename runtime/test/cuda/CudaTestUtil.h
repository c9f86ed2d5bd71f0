//===- CudaTestUtil.h - what the CUDA kernel tests share ---------*- C++
//-*-===//
//
// Part of weipipe's runtime tests. The CUDA kernel tests build twice: against
// the CUDA backend (weipipe_cuda_tests: they skip without a GPU) and against
// the CPU emulation of the kernels (test/cuda-emu: weipipe_cuda_emu_tests,
// WEIPIPE_CUDA_EMULATION defined), which runs them on every machine, a few
// hundred to a thousand times slower than a GPU.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_TEST_CUDA_CUDATESTUTIL_H
#define WEIPIPE_RUNTIME_TEST_CUDA_CUDATESTUTIL_H

#include <cstddef>

namespace weipipe::rt::cuda::test {

/// True in the emulated build: the largest cases shrink there (the same
/// code paths at a size the CPU runs in seconds), or skip with
/// GTEST_SKIP() << kTooSlowUnderEmulation.
constexpr bool emulated() {
#ifdef WEIPIPE_CUDA_EMULATION
  return true;
#else
  return false;
#endif
}

constexpr const char *kTooSlowUnderEmulation =
    "too slow under emulation; runs on a GPU";

/// `gpu` on a GPU, `emu` under emulation.
constexpr size_t sizeFor(size_t gpu, size_t emu) {
  return emulated() ? emu : gpu;
}

} // namespace weipipe::rt::cuda::test

#endif // WEIPIPE_RUNTIME_TEST_CUDA_CUDATESTUTIL_H
