//===- CudaTestUtil.h - what the CUDA kernel tests share ---------*- C++
//-*-===//
//
// Part of weipipe's runtime tests. The CUDA kernel tests build twice: against
// the CUDA backend (weipipe_cuda_tests: they skip without a GPU) and against
// the CPU emulation of the kernels (test/cuda-emu: weipipe_cuda_emu_tests,
// WEIPIPE_CUDA_EMULATION defined), which runs them on every machine, a few
// hundred to a thousand times slower than a GPU.
//
// What they share: the fixture (CudaTest: a device and a stream, or a skip),
// device arrays and copies, bf16 on the host, random inputs, and the
// comparisons that print their measured error and the allowed one
// ("[cuda] ..." lines).
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_TEST_CUDA_CUDATESTUTIL_H
#define WEIPIPE_RUNTIME_TEST_CUDA_CUDATESTUTIL_H

#include "weipipe/runtime/cuda/Device.h"
#include "weipipe/runtime/cuda/Kernels.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

/// Fails and ends the test when `expr` (a Status) is an error, naming it.
#define ASSERT_OK(expr)                                                        \
  do {                                                                         \
    const ::weipipe::rt::Status wpSt_ = (expr);                                \
    ASSERT_TRUE(wpSt_.ok()) << #expr << ": " << wpSt_.message();               \
  } while (0)

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

//===----------------------------------------------------------------------===//
// The fixture: a device and a stream, or a skip
//===----------------------------------------------------------------------===//

/// Skips (never passes) where deviceCount() finds no GPU, with its reason;
/// otherwise selects device 0 and creates a stream, s().
class CudaTest : public ::testing::Test {
protected:
  void SetUp() override {
    std::string why;
    if (deviceCount(&why) == 0)
      GTEST_SKIP() << why;
    ASSERT_OK(selectDevice(0));
    ASSERT_OK(stream_.create());
  }
  cudaStream_t s() const { return stream_.get(); }

private:
  Stream stream_;
};

//===----------------------------------------------------------------------===//
// Device arrays and copies
//===----------------------------------------------------------------------===//

/// Ends the running test when an infrastructure call (an allocation, a copy,
/// a synchronization, a launch inside a helper that returns a value) fails:
/// GoogleTest reports the exception, with `what` and the error, as a
/// failure of that test.
inline void must(const Status &s, const std::string &what) {
  if (!s.ok())
    throw std::runtime_error(what + ": " + s.message());
}

inline Status cudaStatus(cudaError_t e, const char *call) {
  return e == cudaSuccess ? Status() : error(e, call, __FILE__, __LINE__);
}

/// must() for a CUDA runtime call, named after it.
inline void mustCuda(cudaError_t e, const char *call) {
  must(cudaStatus(e, call), call);
}

/// Waits for the stream; a failed kernel's asynchronous error surfaces here.
inline void sync(cudaStream_t s) {
  must(cudaStatus(cudaStreamSynchronize(s), "cudaStreamSynchronize"),
       "synchronize");
}

/// n device elements of T (one byte at least, so get() is never null).
template <class T> class Dev {
public:
  explicit Dev(size_t n) : n_(n) {
    must(buf_.allocate(uint64_t(n) * sizeof(T), "a test buffer"), "allocate");
  }
  T *get() const { return buf_.as<T>(); }
  size_t size() const { return n_; }
  uint64_t bytes() const { return uint64_t(n_) * sizeof(T); }

private:
  DeviceBuffer buf_;
  size_t n_;
};

/// d = h (sizes equal); returns once the copy is done, so h may change.
template <class T>
void put(const Dev<T> &d, const std::vector<T> &h, cudaStream_t s) {
  if (h.size() != d.size())
    throw std::logic_error("put: " + std::to_string(h.size()) +
                           " elements into " + std::to_string(d.size()));
  if (!h.empty())
    must(copyToDevice(d.get(), h.data(), d.bytes(), s), "copyToDevice");
  sync(s);
}

template <class T> Dev<T> upload(const std::vector<T> &h, cudaStream_t s) {
  Dev<T> d(h.size());
  put(d, h, s);
  return d;
}

/// The array after everything enqueued on `s` so far.
template <class T> std::vector<T> download(const Dev<T> &d, cudaStream_t s) {
  sync(s);
  std::vector<T> h(d.size());
  if (!h.empty())
    must(copyToHost(h.data(), d.get(), d.bytes(), s), "copyToHost");
  sync(s);
  return h;
}

/// Sets every byte of d to `byte` on the stream (cudaMemsetAsync: a
/// non-blocking stream is not ordered after the legacy-stream cudaMemset).
template <class T> void fill(const Dev<T> &d, int byte, cudaStream_t s) {
  mustCuda(cudaMemsetAsync(d.get(), byte, d.bytes(), s), "cudaMemsetAsync");
}

template <class T> void zero(const Dev<T> &d, cudaStream_t s) { fill(d, 0, s); }

/// A zeroed device KernelError, as the executor provides one.
inline Dev<KernelError> zeroedError(cudaStream_t s) {
  Dev<KernelError> e(1);
  zero(e, s);
  return e;
}

inline KernelError readError(const Dev<KernelError> &e, cudaStream_t s) {
  return download(e, s)[0];
}

//===----------------------------------------------------------------------===//
// bf16 on the host, names
//===----------------------------------------------------------------------===//

/// v as a float (exact), and a float as T (bf16: rounded to nearest even).
template <class T> float toFloat(T v) {
  if constexpr (std::is_same_v<T, bf16>)
    return __bfloat162float(v);
  else
    return float(v);
}
template <class T> T fromFloat(float v) {
  if constexpr (std::is_same_v<T, bf16>)
    return __float2bfloat16(v);
  else
    return T(v);
}

inline std::vector<bf16> toBf16(const std::vector<float> &v) {
  std::vector<bf16> r(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    r[i] = __float2bfloat16(v[i]);
  return r;
}

inline std::vector<float> widen(const std::vector<float> &v) { return v; }
inline std::vector<float> widen(const std::vector<bf16> &v) {
  std::vector<float> r(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    r[i] = __bfloat162float(v[i]);
  return r;
}

/// v in storage type T.
template <class T> std::vector<T> store(const std::vector<float> &v) {
  if constexpr (std::is_same_v<T, bf16>)
    return toBf16(v);
  else
    return v;
}

/// v as T holds it: the inputs that both the GPU and the CPU reference see.
template <class T> std::vector<float> asStored(const std::vector<float> &v) {
  return widen(store<T>(v));
}

template <class T> const char *typeName() {
  if constexpr (std::is_same_v<T, float>)
    return "f32";
  else if constexpr (std::is_same_v<T, bf16>)
    return "bf16";
  else if constexpr (std::is_same_v<T, int64_t>)
    return "i64";
  else if constexpr (std::is_same_v<T, int32_t>)
    return "i32";
  else
    return "bool";
}

//===----------------------------------------------------------------------===//
// Random inputs (from a seeded std::mt19937)
//===----------------------------------------------------------------------===//

/// n floats uniform in [lo, hi).
inline std::vector<float> randVec(std::mt19937 &rng, size_t n, float lo,
                                  float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float &x : v)
    x = d(rng);
  return v;
}

/// n integers uniform in [lo, hi], as T.
template <class T = int64_t>
std::vector<T> randInts(std::mt19937 &rng, size_t n, int64_t lo, int64_t hi) {
  std::uniform_int_distribution<int64_t> d(lo, hi);
  std::vector<T> v(n);
  for (T &x : v)
    x = T(d(rng));
  return v;
}

//===----------------------------------------------------------------------===//
// Comparisons
//===----------------------------------------------------------------------===//

/// maxRelErr = max|gpu - cpu| / (1e-30 + max|cpu|) <= tol: the error on the
/// scale of the tensor, so that elements that cancel to ~0 are judged by the
/// magnitudes that produced them. A NaN or infinity where the reference has
/// none fails; where the reference has one, the same value matches it (use
/// relCloseFinite where the reference must be finite). Prints the error and
/// the allowed value.
inline ::testing::AssertionResult relClose(const std::string &what,
                                           const std::vector<float> &gpu,
                                           const std::vector<float> &ref,
                                           double tol) {
  if (gpu.size() != ref.size())
    return ::testing::AssertionFailure()
           << what << ": " << gpu.size() << " elements, want " << ref.size();
  double maxRef = 0.0, maxDiff = 0.0;
  size_t worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (std::isfinite(ref[i]))
      maxRef = std::max(maxRef, std::fabs(double(ref[i])));
    double d =
        gpu[i] == ref[i] ? 0.0 : std::fabs(double(gpu[i]) - double(ref[i]));
    if (!std::isfinite(d))
      d = std::isnan(gpu[i]) && std::isnan(ref[i])
              ? 0.0
              : std::numeric_limits<double>::infinity();
    if (d > maxDiff) {
      maxDiff = d;
      worst = i;
    }
  }
  const double err = maxDiff / (1e-30 + maxRef);
  std::printf("[cuda] %-52s n=%-8zu max rel err %.2e (allowed %.0e)\n",
              what.c_str(), ref.size(), err, tol);
  if (err <= tol)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": max|gpu - cpu| / max|cpu| = " << err << ", allowed "
         << tol << "; worst at " << worst << ": gpu " << gpu[worst] << ", cpu "
         << ref[worst] << " (max|cpu| " << maxRef << ")";
}

inline ::testing::AssertionResult relClose(const std::string &what, float gpu,
                                           float ref, double tol) {
  return relClose(what, std::vector<float>{gpu}, std::vector<float>{ref}, tol);
}

/// relClose, and a NaN or infinity in the reference fails too (results of
/// finite arithmetic on finite inputs).
inline ::testing::AssertionResult relCloseFinite(const std::string &what,
                                                 const std::vector<float> &gpu,
                                                 const std::vector<float> &ref,
                                                 double tol) {
  for (size_t i = 0; i < ref.size(); ++i)
    if (!std::isfinite(ref[i]))
      return ::testing::AssertionFailure()
             << what << ": the reference is not finite at " << i << ": "
             << ref[i];
  return relClose(what, gpu, ref, tol);
}

inline ::testing::AssertionResult
relCloseFinite(const std::string &what, float gpu, float ref, double tol) {
  return relCloseFinite(what, std::vector<float>{gpu}, std::vector<float>{ref},
                        tol);
}

/// An element as a number, for messages.
template <class T> double shown(T v) {
  if constexpr (std::is_same_v<T, bf16>)
    return __bfloat162float(v);
  else
    return double(v);
}

/// Element-for-element identical bits (results that must not depend on
/// scheduling, copies, and exactly specified roundings).
template <class T>
::testing::AssertionResult sameBits(const std::string &what,
                                    const std::vector<T> &got,
                                    const std::vector<T> &want) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure()
           << what << ": " << got.size() << " elements, want " << want.size();
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(T)) != 0 && bad++ == 0)
      first = i;
  if (bad == 0)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": " << bad << " of " << got.size()
         << " elements differ bitwise; first at " << first << ": gpu "
         << shown(got[first]) << ", want " << shown(want[first]);
}

} // namespace weipipe::rt::cuda::test

#endif // WEIPIPE_RUNTIME_TEST_CUDA_CUDATESTUTIL_H
