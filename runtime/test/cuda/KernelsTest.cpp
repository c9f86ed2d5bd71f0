//===- KernelsTest.cpp - CUDA kernels against the CPU kernels -------------===//
//
// Part of weipipe's runtime tests. Every kernel of cuda/Kernels.h except
// attention (AttentionTest.cpp) runs on the GPU and is compared with the CPU
// kernel it mirrors, on the same inputs: fp32 storage against the fp32 CPU
// kernel, bf16 storage against the CPU kernel on the bf16-rounded inputs.
// Each tolerance is stated, and justified, where it is used; every check
// prints its measured error and the allowed one ("[cuda] ..." lines), so a
// run on the device shows the margins.
//
// Every device test uses the CudaKernels fixture, which skips (never passes)
// where deviceCount() finds no GPU. The tests without a fixture need none.
//
//===----------------------------------------------------------------------===//

#include "CudaTestUtil.h"

#include "weipipe/runtime/cpu/Kernels.h"
#include "weipipe/runtime/cuda/Device.h"
#include "weipipe/runtime/cuda/Kernels.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace cpu = weipipe::rt::cpu;
namespace cu = weipipe::rt::cuda;
using cu::bf16;
using cu::KernelError;
using weipipe::rt::GeluApprox;
using weipipe::rt::Status;
using namespace weipipe::rt::cuda::test;

namespace {

//===----------------------------------------------------------------------===//
// Tolerances (relative to the largest reference element: see relClose)
//===----------------------------------------------------------------------===//

/// fp32 storage, the fp32-mode target. The GPU and the CPU evaluate the same
/// formulas in fp32 on the same inputs; they differ only in summation order
/// (warp and block trees against the CPU's loops and lanes) and in the last
/// bits of expf/erfcf/rsqrtf (a few ulp on either side), i.e. by a few
/// units of 2^-24 of the partial sums. 1e-5 leaves one to two orders of
/// magnitude above that for the sums of up to 50257 terms tested here.
constexpr double kF32Tol = 1e-5;

/// bf16 storage of an output. The reference sees the same bf16-rounded
/// inputs and computes in fp32; the GPU computes in fp32 too and rounds each
/// stored output to bf16 once: half an ulp of an 8-bit significand, at most
/// 2^-8 = 0.0039 of the element (so of max|ref|), plus the fp32 differences
/// above. 1e-2 is 2.5 times that bound. (The fp32 outputs of bf16 kernels,
/// statistics, losses and parameter gradients, keep kF32Tol: they are
/// computed in fp32 from the same rounded inputs on both sides.)
constexpr double kBf16Tol = 1e-2;

constexpr float kEps = 1e-5f;
constexpr int64_t kIgnore = -100;

uint16_t bitsOf(bf16 b) {
  uint16_t u;
  std::memcpy(&u, &b, sizeof u);
  return u;
}

} // namespace

/// The device tests' fixture: a device and a stream, or a skip.
class CudaKernels : public CudaTest {};

//===----------------------------------------------------------------------===//
// KernelError, describe(): no device needed
//===----------------------------------------------------------------------===//

TEST(CudaKernelError, DescribeNamesValuePositionAndBound) {
  KernelError e;
  EXPECT_EQ(cu::describe(e, "id"), "");
  e.code = KernelError::IndexOutOfRange;
  e.value = 70000;
  e.position = 17;
  e.bound = 50257;
  EXPECT_EQ(cu::describe(e, "id"),
            "id 70000 at position 17 is outside [0, 50257)");
  e.code = KernelError::TargetOutOfRange;
  e.value = -3;
  EXPECT_EQ(cu::describe(e, "target"),
            "target -3 at position 17 is outside [0, 50257)");
}

//===----------------------------------------------------------------------===//
// cast, accumulate
//===----------------------------------------------------------------------===//

// fp32 -> bf16 is round to nearest even, exactly specified: the GPU must
// give host __float2bfloat16's bits for every input (ties, subnormals,
// overflow to infinity included), and bf16 -> fp32 is exact.
TEST_F(CudaKernels, CastRoundTripMatchesHostRoundingBitForBit) {
  std::mt19937 rng(1);
  std::vector<float> x = {
      0.0f,
      -0.0f,
      1.0f,
      1.00390625f,  // 1 + 2^-8: a tie, to even (1)
      1.01171875f,  // 1 + 3 2^-8: a tie, to even (1 + 2^-6)
      -1.00390625f, // the same below zero
      1.00390637f,  // just above the tie: up
      65504.0f,
      std::numeric_limits<float>::max(), // rounds to +inf
      -std::numeric_limits<float>::max(),
      std::numeric_limits<float>::min(),        // smallest normal
      std::numeric_limits<float>::denorm_min(), // smallest subnormal
      1e-40f,                                   // a subnormal
      std::numeric_limits<float>::infinity(),
      -std::numeric_limits<float>::infinity(),
  };
  // Random magnitudes over the whole exponent range, subnormals included.
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  std::uniform_int_distribution<int> expo(-149, 127), sign(0, 1);
  while (x.size() < (size_t(1) << 20) + 3) {
    const float v = std::ldexp(mant(rng), expo(rng));
    x.push_back(sign(rng) ? -v : v);
  }
  x.push_back(std::numeric_limits<float>::quiet_NaN()); // checked apart
  const size_t n = x.size();

  auto dX = upload(x, s());
  Dev<bf16> dB(n), dB2(n);
  Dev<float> dY(n), dX2(n);
  ASSERT_OK(cu::cast(dX.get(), dB.get(), int64_t(n), s()));
  ASSERT_OK(cu::cast(dB.get(), dY.get(), int64_t(n), s()));
  ASSERT_OK(cu::cast(dX.get(), dX2.get(), int64_t(n), s()));
  ASSERT_OK(cu::cast(dB.get(), dB2.get(), int64_t(n), s()));
  std::vector<bf16> b = download(dB, s()), b2 = download(dB2, s());
  std::vector<float> y = download(dY, s()), x2 = download(dX2, s());

  // NaN: any NaN (the payload is not specified).
  EXPECT_TRUE(std::isnan(__bfloat162float(b.back())));
  EXPECT_TRUE(std::isnan(y.back()));
  b.pop_back();
  y.pop_back();
  std::vector<float> xs(x.begin(), x.end() - 1);

  std::vector<bf16> wantB = toBf16(xs);
  EXPECT_TRUE(sameBits("cast f32 -> bf16", b, wantB));
  EXPECT_EQ(bitsOf(b[3]), 0x3F80u); // the ties, spelled out
  EXPECT_EQ(bitsOf(b[4]), 0x3F82u);
  EXPECT_TRUE(sameBits("cast bf16 -> f32", y, widen(wantB)));
  EXPECT_TRUE(std::isnan(x2.back()));
  x2.pop_back();
  EXPECT_TRUE(sameBits("cast f32 -> f32", x2, xs));
  b2.pop_back();
  EXPECT_TRUE(sameBits("cast bf16 -> bf16", b2, b));
}

// dst + src is one IEEE fp32 addition on either side: bitwise equal.
TEST_F(CudaKernels, AccumulateAddsIntoDestination) {
  for (size_t n : {size_t(1), size_t(1000), (size_t(1) << 20) + 5}) {
    std::mt19937 rng(static_cast<uint32_t>(n));
    const auto src = randVec(rng, n, -1.0f, 1.0f);
    const auto dst = randVec(rng, n, -4.0f, 4.0f);
    std::vector<float> want(n);
    for (size_t i = 0; i < n; ++i)
      want[i] = dst[i] + src[i];
    auto dSrc = upload(src, s()), dDst = upload(dst, s());
    ASSERT_OK(cu::accumulate(dSrc.get(), dDst.get(), int64_t(n), s()));
    EXPECT_TRUE(sameBits("accumulate n=" + std::to_string(n),
                         download(dDst, s()), want));
  }
}

//===----------------------------------------------------------------------===//
// Activations
//===----------------------------------------------------------------------===//

namespace {

const size_t kActivationSizes[] = {1, 1000, size_t(1) << 20};

template <class T>
void checkGelu(cudaStream_t s, GeluApprox approx, size_t n, double tol) {
  const std::string tag = std::string("gelu ") +
                          (approx == GeluApprox::Tanh ? "tanh " : "erf ") +
                          typeName<T>() + " n=" + std::to_string(n);
  std::mt19937 rng(uint32_t(n) * 3 + uint32_t(approx));
  const auto x = asStored<T>(randVec(rng, n, -8.0f, 8.0f));
  const auto dy = asStored<T>(randVec(rng, n, -1.0f, 1.0f));
  std::vector<float> y(n), dx(n);
  cpu::gelu_forward(x.data(), y.data(), int64_t(n), approx);
  cpu::gelu_backward(x.data(), dy.data(), dx.data(), int64_t(n), approx);
  auto dX = upload(store<T>(x), s), dDy = upload(store<T>(dy), s);
  Dev<T> dY(n), dDx(n);
  ASSERT_OK(cu::gelu_forward(dX.get(), dY.get(), int64_t(n), approx, s));
  ASSERT_OK(
      cu::gelu_backward(dX.get(), dDy.get(), dDx.get(), int64_t(n), approx, s));
  EXPECT_TRUE(relClose(tag + " y", widen(download(dY, s)), y, tol));
  EXPECT_TRUE(relClose(tag + " dx", widen(download(dDx, s)), dx, tol));
}

template <class T> void checkSilu(cudaStream_t s, size_t n, double tol) {
  const std::string tag =
      std::string("silu ") + typeName<T>() + " n=" + std::to_string(n);
  std::mt19937 rng(uint32_t(n) * 5 + 1);
  const auto x = asStored<T>(randVec(rng, n, -8.0f, 8.0f));
  const auto dy = asStored<T>(randVec(rng, n, -1.0f, 1.0f));
  std::vector<float> y(n), dx(n);
  cpu::silu_forward(x.data(), y.data(), int64_t(n));
  cpu::silu_backward(x.data(), dy.data(), dx.data(), int64_t(n));
  auto dX = upload(store<T>(x), s), dDy = upload(store<T>(dy), s);
  Dev<T> dY(n), dDx(n);
  ASSERT_OK(cu::silu_forward(dX.get(), dY.get(), int64_t(n), s));
  ASSERT_OK(cu::silu_backward(dX.get(), dDy.get(), dDx.get(), int64_t(n), s));
  EXPECT_TRUE(relClose(tag + " y", widen(download(dY, s)), y, tol));
  EXPECT_TRUE(relClose(tag + " dx", widen(download(dDx, s)), dx, tol));
}

struct SwigluInputs {
  std::vector<float> gate, up, dy;
};

template <class T> SwigluInputs swigluInputs(size_t n) {
  std::mt19937 rng(uint32_t(n) * 7 + 2);
  SwigluInputs in;
  in.gate = asStored<T>(randVec(rng, n, -8.0f, 8.0f));
  in.up = asStored<T>(randVec(rng, n, -2.0f, 2.0f));
  in.dy = asStored<T>(randVec(rng, n, -1.0f, 1.0f));
  return in;
}

template <class T> void checkSwiglu(cudaStream_t s, size_t n, double tol) {
  const std::string tag =
      std::string("swiglu ") + typeName<T>() + " n=" + std::to_string(n);
  const SwigluInputs in = swigluInputs<T>(n);
  std::vector<float> y(n), dgate(n), dup(n);
  cpu::swiglu_forward(in.gate.data(), in.up.data(), y.data(), int64_t(n));
  cpu::swiglu_backward(in.gate.data(), in.up.data(), in.dy.data(), dgate.data(),
                       dup.data(), int64_t(n));
  auto dG = upload(store<T>(in.gate), s), dU = upload(store<T>(in.up), s),
       dDy = upload(store<T>(in.dy), s);
  Dev<T> dY(n), dDg(n), dDu(n);
  ASSERT_OK(cu::swiglu_forward(dG.get(), dU.get(), dY.get(), int64_t(n), s));
  ASSERT_OK(cu::swiglu_backward(dG.get(), dU.get(), dDy.get(), dDg.get(),
                                dDu.get(), int64_t(n), s));
  EXPECT_TRUE(relClose(tag + " y", widen(download(dY, s)), y, tol));
  EXPECT_TRUE(relClose(tag + " dgate", widen(download(dDg, s)), dgate, tol));
  EXPECT_TRUE(relClose(tag + " dup", widen(download(dDu, s)), dup, tol));
}

} // namespace

TEST_F(CudaKernels, GeluMatchesCpu) {
  for (GeluApprox approx : {GeluApprox::None, GeluApprox::Tanh})
    for (size_t n : kActivationSizes)
      checkGelu<float>(s(), approx, n, kF32Tol);
}

TEST_F(CudaKernels, SiluMatchesCpu) {
  for (size_t n : kActivationSizes)
    checkSilu<float>(s(), n, kF32Tol);
}

TEST_F(CudaKernels, SwigluMatchesCpu) {
  for (size_t n : kActivationSizes)
    checkSwiglu<float>(s(), n, kF32Tol);
}

// dgate or dup may be nullptr, and either may overwrite gate/up/dy: each is
// then the full run's result bit for bit (the same arithmetic per element).
TEST_F(CudaKernels, SwigluBackwardOptionalAndAliasedOutputs) {
  const size_t n = 1000;
  const SwigluInputs in = swigluInputs<float>(n);
  auto dG = upload(in.gate, s()), dU = upload(in.up, s()),
       dDy = upload(in.dy, s());
  Dev<float> dDg(n), dDu(n);
  ASSERT_OK(cu::swiglu_backward(dG.get(), dU.get(), dDy.get(), dDg.get(),
                                dDu.get(), int64_t(n), s()));
  const auto fullDg = download(dDg, s()), fullDu = download(dDu, s());
  std::vector<float> cpuDg(n), cpuDu(n);
  cpu::swiglu_backward(in.gate.data(), in.up.data(), in.dy.data(), cpuDg.data(),
                       cpuDu.data(), int64_t(n));
  EXPECT_TRUE(relClose("swiglu dgate (full)", fullDg, cpuDg, kF32Tol));

  Dev<float> only(n);
  ASSERT_OK(cu::swiglu_backward(dG.get(), dU.get(), dDy.get(), only.get(),
                                static_cast<float *>(nullptr), int64_t(n),
                                s()));
  EXPECT_TRUE(sameBits("swiglu dgate alone", download(only, s()), fullDg));
  ASSERT_OK(cu::swiglu_backward(dG.get(), dU.get(), dDy.get(),
                                static_cast<float *>(nullptr), only.get(),
                                int64_t(n), s()));
  EXPECT_TRUE(sameBits("swiglu dup alone", download(only, s()), fullDu));

  // dgate over gate, dup over up.
  ASSERT_OK(cu::swiglu_backward(dG.get(), dU.get(), dDy.get(), dG.get(),
                                dU.get(), int64_t(n), s()));
  EXPECT_TRUE(sameBits("swiglu dgate over gate", download(dG, s()), fullDg));
  EXPECT_TRUE(sameBits("swiglu dup over up", download(dU, s()), fullDu));
  // dgate over dy.
  put(dG, in.gate, s());
  put(dU, in.up, s());
  ASSERT_OK(cu::swiglu_backward(dG.get(), dU.get(), dDy.get(), dDy.get(),
                                static_cast<float *>(nullptr), int64_t(n),
                                s()));
  EXPECT_TRUE(sameBits("swiglu dgate over dy", download(dDy, s()), fullDg));
}

// y may alias x (gelu, silu), dx may alias dy: in place gives the
// out-of-place bits.
TEST_F(CudaKernels, ActivationsInPlace) {
  const size_t n = 4099;
  std::mt19937 rng(9);
  const auto x = randVec(rng, n, -8.0f, 8.0f), dy = randVec(rng, n, -1, 1);
  auto dX = upload(x, s()), dDy = upload(dy, s());
  Dev<float> out(n);
  for (GeluApprox approx : {GeluApprox::None, GeluApprox::Tanh}) {
    const std::string tag =
        approx == GeluApprox::Tanh ? "gelu tanh" : "gelu erf";
    ASSERT_OK(cu::gelu_forward(dX.get(), out.get(), int64_t(n), approx, s()));
    const auto y = download(out, s());
    ASSERT_OK(cu::gelu_backward(dX.get(), dDy.get(), out.get(), int64_t(n),
                                approx, s()));
    const auto dx = download(out, s());
    auto inPlace = upload(x, s());
    ASSERT_OK(cu::gelu_forward(inPlace.get(), inPlace.get(), int64_t(n), approx,
                               s()));
    EXPECT_TRUE(sameBits(tag + " y over x", download(inPlace, s()), y));
    put(inPlace, dy, s());
    ASSERT_OK(cu::gelu_backward(dX.get(), inPlace.get(), inPlace.get(),
                                int64_t(n), approx, s()));
    EXPECT_TRUE(sameBits(tag + " dx over dy", download(inPlace, s()), dx));
  }
  ASSERT_OK(cu::silu_forward(dX.get(), out.get(), int64_t(n), s()));
  const auto y = download(out, s());
  ASSERT_OK(cu::silu_backward(dX.get(), dDy.get(), out.get(), int64_t(n), s()));
  const auto dx = download(out, s());
  auto inPlace = upload(x, s());
  ASSERT_OK(cu::silu_forward(inPlace.get(), inPlace.get(), int64_t(n), s()));
  EXPECT_TRUE(sameBits("silu y over x", download(inPlace, s()), y));
  put(inPlace, dy, s());
  ASSERT_OK(cu::silu_backward(dX.get(), inPlace.get(), inPlace.get(),
                              int64_t(n), s()));
  EXPECT_TRUE(sameBits("silu dx over dy", download(inPlace, s()), dx));
}

// bf16 storage: kBf16Tol (one bf16 rounding of each output).
TEST_F(CudaKernels, ActivationsBf16MatchCpu) {
  for (size_t n : {size_t(1000), size_t(1) << 20}) {
    checkGelu<bf16>(s(), GeluApprox::None, n, kBf16Tol);
    checkGelu<bf16>(s(), GeluApprox::Tanh, n, kBf16Tol);
    checkSilu<bf16>(s(), n, kBf16Tol);
    checkSwiglu<bf16>(s(), n, kBf16Tol);
  }
}

//===----------------------------------------------------------------------===//
// layer_norm, rms_norm
//===----------------------------------------------------------------------===//

namespace {

struct NormShape {
  int64_t rows, n;
};
// normSize not a multiple of 32 (50) and a model width (4096); one row and
// rows that span several blocks of the forward and several chunks of the
// parameter-gradient sums.
const NormShape kNormShapes[] = {{1, 50}, {300, 50}, {1, 4096}, {300, 4096}};

std::string normTag(bool rms, const char *type, int64_t rows, int64_t n) {
  return std::string(rms ? "rms_norm " : "layer_norm ") + type + " " +
         std::to_string(rows) + "x" + std::to_string(n);
}

template <class T>
void checkNormForward(cudaStream_t s, bool rms, int64_t rows, int64_t n,
                      bool withBias, double yTol) {
  const std::string tag =
      normTag(rms, typeName<T>(), rows, n) + (withBias ? " +bias" : "");
  std::mt19937 rng(uint32_t(rows * 7919 + n));
  const size_t count = size_t(rows * n);
  const auto x = asStored<T>(randVec(rng, count, -2.0f, 3.0f)); // mean != 0
  const auto g = asStored<T>(randVec(rng, size_t(n), 0.5f, 1.5f));
  const auto b = asStored<T>(randVec(rng, size_t(n), -1.0f, 1.0f));
  std::vector<float> y(count), mean(static_cast<size_t>(rows)),
      rstd(static_cast<size_t>(rows));
  if (rms)
    cpu::rms_norm_forward(x.data(), g.data(), y.data(), rstd.data(), rows, n,
                          kEps);
  else
    cpu::layer_norm_forward(x.data(), g.data(), withBias ? b.data() : nullptr,
                            y.data(), mean.data(), rstd.data(), rows, n, kEps);

  auto dX = upload(store<T>(x), s), dG = upload(store<T>(g), s),
       dB = upload(store<T>(b), s);
  Dev<T> dY(count);
  Dev<float> dMean(static_cast<size_t>(rows)), dRstd(static_cast<size_t>(rows));
  if (rms)
    ASSERT_OK(cu::rms_norm_forward(dX.get(), dG.get(), dY.get(), dRstd.get(),
                                   rows, n, kEps, s));
  else
    ASSERT_OK(cu::layer_norm_forward(
        dX.get(), dG.get(), withBias ? dB.get() : nullptr, dY.get(),
        dMean.get(), dRstd.get(), rows, n, kEps, s));
  const auto gotY = download(dY, s);
  EXPECT_TRUE(relClose(tag + " y", widen(gotY), y, yTol));
  if (!rms) {
    EXPECT_TRUE(relClose(tag + " mean", download(dMean, s), mean, kF32Tol));
  }
  EXPECT_TRUE(relClose(tag + " rstd", download(dRstd, s), rstd, kF32Tol));

  // The statistics are optional: without them y is the same.
  Dev<T> dY2(count);
  if (rms)
    ASSERT_OK(cu::rms_norm_forward(dX.get(), dG.get(), dY2.get(), nullptr, rows,
                                   n, kEps, s));
  else
    ASSERT_OK(cu::layer_norm_forward(dX.get(), dG.get(),
                                     withBias ? dB.get() : nullptr, dY2.get(),
                                     nullptr, nullptr, rows, n, kEps, s));
  EXPECT_TRUE(sameBits(tag + " y without statistics", download(dY2, s), gotY));
}

struct NormInputs {
  std::vector<float> x, g, dy, dscale0, dbias0;
};

/// x, scale and dy as T holds them; the preloaded parameter gradients are
/// fp32 and nonzero (O(1), against sums of O(10) over 300 rows), so a kernel
/// that overwrote them instead of adding would be off by far more than the
/// tolerance.
template <class T> NormInputs normInputs(int64_t rows, int64_t n) {
  std::mt19937 rng(uint32_t(rows * 104729 + n));
  NormInputs in;
  in.x = asStored<T>(randVec(rng, size_t(rows * n), -2.0f, 3.0f));
  in.g = asStored<T>(randVec(rng, size_t(n), 0.5f, 1.5f));
  in.dy = asStored<T>(randVec(rng, size_t(rows * n), -1.0f, 1.0f));
  in.dscale0 = randVec(rng, size_t(n), -1.0f, 1.0f);
  in.dbias0 = randVec(rng, size_t(n), -1.0f, 1.0f);
  return in;
}

struct NormGrads {
  std::vector<float> dx, dscale, dbias;
};

NormGrads cpuNormBackward(bool rms, const NormInputs &in, int64_t rows,
                          int64_t n) {
  std::vector<float> mean(static_cast<size_t>(rows)),
      rstd(static_cast<size_t>(rows));
  NormGrads r{std::vector<float>(in.x.size()), in.dscale0, in.dbias0};
  if (rms) {
    cpu::rms_norm_forward(in.x.data(), in.g.data(), nullptr, rstd.data(), rows,
                          n, kEps);
    cpu::rms_norm_backward(in.x.data(), in.g.data(), rstd.data(), in.dy.data(),
                           r.dx.data(), r.dscale.data(), rows, n);
  } else {
    cpu::layer_norm_forward(in.x.data(), in.g.data(), nullptr, nullptr,
                            mean.data(), rstd.data(), rows, n, kEps);
    cpu::layer_norm_backward(in.x.data(), in.g.data(), mean.data(), rstd.data(),
                             in.dy.data(), r.dx.data(), r.dscale.data(),
                             r.dbias.data(), rows, n);
  }
  return r;
}

struct NormOutputs {
  bool dx = true, dscale = true, dbias = true;
  bool dxOverDy = false; ///< pass dy's buffer as dx
};

/// The GPU backward from the preloaded dscale/dbias; an output left out is
/// passed as nullptr (its result then holds the preload, dx zeros).
template <class T>
NormGrads gpuNormBackward(cudaStream_t s, bool rms, const NormInputs &in,
                          int64_t rows, int64_t n, NormOutputs o = {}) {
  auto dX = upload(store<T>(in.x), s), dG = upload(store<T>(in.g), s),
       dDy = upload(store<T>(in.dy), s);
  Dev<T> dDx(in.x.size());
  zero(dDx, s);
  auto dS = upload(in.dscale0, s), dB = upload(in.dbias0, s);
  Dev<uint8_t> ws(cu::normBackwardWorkspaceBytes(rows, n));
  T *dx = !o.dx ? nullptr : o.dxOverDy ? dDy.get() : dDx.get();
  float *ds = o.dscale ? dS.get() : nullptr, *db = o.dbias ? dB.get() : nullptr;
  if (rms)
    must(cu::rms_norm_backward(dX.get(), dG.get(), dDy.get(), dx, ds, rows, n,
                               kEps, ws.get(), s),
         "rms_norm_backward");
  else
    must(cu::layer_norm_backward(dX.get(), dG.get(), dDy.get(), dx, ds, db,
                                 rows, n, kEps, ws.get(), s),
         "layer_norm_backward");
  NormGrads r;
  r.dx = widen(download(o.dxOverDy ? dDy : dDx, s));
  r.dscale = download(dS, s);
  r.dbias = download(dB, s);
  return r;
}

/// dx WRITTEN (dxTol), dscale/dbias ACCUMULATED onto the preload (fp32 sums
/// over the rows of products of the same inputs on both sides: kF32Tol).
template <class T>
void checkNormBackward(cudaStream_t s, bool rms, int64_t rows, int64_t n,
                       double dxTol) {
  const std::string tag = normTag(rms, typeName<T>(), rows, n);
  const NormInputs in = normInputs<T>(rows, n);
  const NormGrads want = cpuNormBackward(rms, in, rows, n);
  const NormGrads got = gpuNormBackward<T>(s, rms, in, rows, n);
  EXPECT_TRUE(relClose(tag + " dx", got.dx, want.dx, dxTol));
  EXPECT_TRUE(
      relClose(tag + " dscale (preloaded)", got.dscale, want.dscale, kF32Tol));
  if (!rms) {
    EXPECT_TRUE(
        relClose(tag + " dbias (preloaded)", got.dbias, want.dbias, kF32Tol));
  } else { // rms has no bias: the buffer is untouched
    EXPECT_TRUE(sameBits(tag + " dbias untouched", got.dbias, in.dbias0));
  }
}

} // namespace

TEST_F(CudaKernels, LayerNormForwardMatchesCpu) {
  for (const NormShape &sh : kNormShapes)
    for (bool withBias : {false, true})
      checkNormForward<float>(s(), false, sh.rows, sh.n, withBias, kF32Tol);
}

TEST_F(CudaKernels, RmsNormForwardMatchesCpu) {
  for (const NormShape &sh : kNormShapes)
    checkNormForward<float>(s(), true, sh.rows, sh.n, false, kF32Tol);
}

TEST_F(CudaKernels, LayerNormBackwardMatchesCpu) {
  for (const NormShape &sh : kNormShapes)
    checkNormBackward<float>(s(), false, sh.rows, sh.n, kF32Tol);
}

TEST_F(CudaKernels, RmsNormBackwardMatchesCpu) {
  for (const NormShape &sh : kNormShapes)
    checkNormBackward<float>(s(), true, sh.rows, sh.n, kF32Tol);
}

// dx over dy: the parameter-gradient pass reads dy before dx is written, so
// every output is the out-of-place run's, bit for bit.
TEST_F(CudaKernels, NormBackwardDxMayAliasDy) {
  for (bool rms : {false, true})
    for (const NormShape &sh : {NormShape{1, 50}, NormShape{300, 4096}}) {
      const std::string tag = normTag(rms, "f32", sh.rows, sh.n);
      const NormInputs in = normInputs<float>(sh.rows, sh.n);
      const NormGrads apart =
          gpuNormBackward<float>(s(), rms, in, sh.rows, sh.n);
      NormOutputs o;
      o.dxOverDy = true;
      const NormGrads over =
          gpuNormBackward<float>(s(), rms, in, sh.rows, sh.n, o);
      EXPECT_TRUE(sameBits(tag + " dx over dy", over.dx, apart.dx));
      EXPECT_TRUE(
          sameBits(tag + " dscale, dx over dy", over.dscale, apart.dscale));
      EXPECT_TRUE(
          sameBits(tag + " dbias, dx over dy", over.dbias, apart.dbias));
    }
}

// No floating-point atomics: two runs give the same bits (1000 rows: the
// parameter gradients go through 63 chunks of 16 rows).
TEST_F(CudaKernels, NormBackwardIsDeterministic) {
  const int64_t rows = 1000, n = 4096;
  for (bool rms : {false, true}) {
    const std::string tag = normTag(rms, "f32", rows, n);
    const NormInputs in = normInputs<float>(rows, n);
    const NormGrads a = gpuNormBackward<float>(s(), rms, in, rows, n);
    const NormGrads b = gpuNormBackward<float>(s(), rms, in, rows, n);
    EXPECT_TRUE(sameBits(tag + " dx, run 2 vs 1", b.dx, a.dx));
    EXPECT_TRUE(sameBits(tag + " dscale, run 2 vs 1", b.dscale, a.dscale));
    EXPECT_TRUE(sameBits(tag + " dbias, run 2 vs 1", b.dbias, a.dbias));
  }
}

// Any output may be nullptr: each requested one is the full run's, the
// others untouched.
TEST_F(CudaKernels, NormBackwardOptionalOutputs) {
  const int64_t rows = 300, n = 50;
  for (bool rms : {false, true}) {
    const std::string tag = normTag(rms, "f32", rows, n);
    const NormInputs in = normInputs<float>(rows, n);
    const NormGrads full = gpuNormBackward<float>(s(), rms, in, rows, n);
    NormOutputs dxOnly;
    dxOnly.dscale = dxOnly.dbias = false;
    NormGrads r = gpuNormBackward<float>(s(), rms, in, rows, n, dxOnly);
    EXPECT_TRUE(sameBits(tag + " dx alone", r.dx, full.dx));
    EXPECT_TRUE(sameBits(tag + " dscale not passed", r.dscale, in.dscale0));
    EXPECT_TRUE(sameBits(tag + " dbias not passed", r.dbias, in.dbias0));
    NormOutputs dscaleOnly;
    dscaleOnly.dx = dscaleOnly.dbias = false;
    r = gpuNormBackward<float>(s(), rms, in, rows, n, dscaleOnly);
    EXPECT_TRUE(sameBits(tag + " dscale alone", r.dscale, full.dscale));
    EXPECT_TRUE(sameBits(tag + " dbias not passed", r.dbias, in.dbias0));
    EXPECT_TRUE(sameBits(tag + " dx not passed", r.dx,
                         std::vector<float>(in.x.size(), 0.0f)));
    if (!rms) {
      NormOutputs dbiasOnly;
      dbiasOnly.dx = dbiasOnly.dscale = false;
      r = gpuNormBackward<float>(s(), rms, in, rows, n, dbiasOnly);
      EXPECT_TRUE(sameBits(tag + " dbias alone", r.dbias, full.dbias));
      EXPECT_TRUE(sameBits(tag + " dscale not passed", r.dscale, in.dscale0));
    }
  }
}

// bf16: y and dx kBf16Tol; mean, rstd, dscale, dbias are fp32 from the same
// rounded inputs: kF32Tol.
TEST_F(CudaKernels, NormsBf16MatchCpu) {
  for (const NormShape &sh : kNormShapes) {
    checkNormForward<bf16>(s(), false, sh.rows, sh.n, true, kBf16Tol);
    checkNormForward<bf16>(s(), true, sh.rows, sh.n, false, kBf16Tol);
    checkNormBackward<bf16>(s(), false, sh.rows, sh.n, kBf16Tol);
    checkNormBackward<bf16>(s(), true, sh.rows, sh.n, kBf16Tol);
  }
}

//===----------------------------------------------------------------------===//
// Embedding
//===----------------------------------------------------------------------===//

namespace {

constexpr int64_t kV = 1000, kH = 64, kNumIds = 777;

/// kNumIds ids in [0, 300): many repeats, and table rows no id touches.
std::vector<int64_t> embeddingIds(uint32_t seed) {
  std::mt19937 rng(seed);
  return randInts(rng, size_t(kNumIds), 0, 299);
}

} // namespace

// A gather: the output is the table's rows, bit for bit.
TEST_F(CudaKernels, EmbeddingForwardMatchesCpu) {
  std::mt19937 rng(21);
  const auto table = randVec(rng, size_t(kV * kH), -1.0f, 1.0f);
  const auto ids = embeddingIds(22);
  std::vector<float> want(size_t(kNumIds * kH));
  ASSERT_OK(cpu::embedding_forward(table.data(), ids.data(), want.data(),
                                   kNumIds, kV, kH));
  auto dT = upload(table, s());
  auto dIds = upload(ids, s());
  Dev<float> dOut(want.size());
  auto err = zeroedError(s());
  ASSERT_OK(cu::embedding_forward(dT.get(), dIds.get(), dOut.get(), kNumIds, kV,
                                  kH, err.get(), s()));
  EXPECT_TRUE(sameBits("embedding forward f32", download(dOut, s()), want));
  EXPECT_EQ(readError(err, s()).code, KernelError::None);
}

// An id outside [0, V) gives a zero row and a KernelError naming the id,
// its position and V; the other rows are still gathered.
TEST_F(CudaKernels, EmbeddingForwardOutOfRangeIdGivesZeroRowAndError) {
  std::mt19937 rng(23);
  const auto table = randVec(rng, size_t(kV * kH), -1.0f, 1.0f);
  auto dT = upload(table, s());
  Dev<float> dOut(size_t(kNumIds * kH));
  struct Bad {
    int64_t position, id;
  };
  for (const Bad &bad : {Bad{17, kV}, Bad{3, -5}, Bad{776, kV + 123456}}) {
    auto ids = embeddingIds(24);
    ids[size_t(bad.position)] = bad.id;
    const std::string tag = "embedding id " + std::to_string(bad.id);
    // Garbage first: the bad row must be written as zeros.
    put(dOut, std::vector<float>(dOut.size(), 7.0f), s());
    auto dIds = upload(ids, s());
    auto err = zeroedError(s());
    ASSERT_OK(cu::embedding_forward(dT.get(), dIds.get(), dOut.get(), kNumIds,
                                    kV, kH, err.get(), s()));
    const auto out = download(dOut, s());
    const KernelError e = readError(err, s());
    EXPECT_EQ(e.code, KernelError::IndexOutOfRange) << tag;
    EXPECT_EQ(e.value, bad.id) << tag;
    EXPECT_EQ(e.position, bad.position) << tag;
    EXPECT_EQ(e.bound, kV) << tag;
    EXPECT_EQ(cu::describe(e, "id"),
              "id " + std::to_string(bad.id) + " at position " +
                  std::to_string(bad.position) + " is outside [0, 1000)");
    size_t wrong = 0;
    for (int64_t i = 0; i < kNumIds; ++i)
      for (int64_t c = 0; c < kH; ++c) {
        const float want =
            i == bad.position ? 0.0f : table[size_t(ids[size_t(i)] * kH + c)];
        wrong += out[size_t(i * kH + c)] != want;
      }
    EXPECT_EQ(wrong, 0u) << tag << ": elements off the gather / zero row";
  }

  // Two bad ids: the record is one of them, value and position consistent
  // ("the first one met" is the first to reach the record, not necessarily
  // the lower position); both rows are zero.
  auto ids = embeddingIds(25);
  ids[100] = -1;
  ids[500] = kV + 7;
  auto dIds = upload(ids, s());
  auto err = zeroedError(s());
  ASSERT_OK(cu::embedding_forward(dT.get(), dIds.get(), dOut.get(), kNumIds, kV,
                                  kH, err.get(), s()));
  const auto out = download(dOut, s());
  const KernelError e = readError(err, s());
  EXPECT_EQ(e.code, KernelError::IndexOutOfRange);
  EXPECT_TRUE((e.position == 100 && e.value == -1) ||
              (e.position == 500 && e.value == kV + 7))
      << "recorded id " << e.value << " at " << e.position;
  for (int64_t c = 0; c < kH; ++c) {
    EXPECT_EQ(out[size_t(100 * kH + c)], 0.0f);
    EXPECT_EQ(out[size_t(500 * kH + c)], 0.0f);
  }
}

namespace {

/// The GPU backward into a copy of `dtable0`.
template <class T>
std::vector<float>
gpuEmbeddingBackward(cudaStream_t s, const std::vector<int64_t> &ids,
                     const std::vector<float> &dout,
                     const std::vector<float> &dtable0, int64_t V, int64_t H,
                     int64_t paddingIdx, KernelError *errOut = nullptr) {
  const int64_t numIds = int64_t(ids.size());
  auto dIds = upload(ids, s);
  auto dOut = upload(store<T>(dout), s);
  auto dTable = upload(dtable0, s);
  Dev<uint8_t> ws(cu::embeddingBackwardWorkspaceBytes(numIds));
  auto err = zeroedError(s);
  must(cu::embedding_backward(
           dIds.get(), dOut.get(), dTable.get(), numIds, V, H, paddingIdx,
           ws.get(), cu::embeddingBackwardWorkspaceBytes(numIds), err.get(), s),
       "embedding_backward");
  auto table = download(dTable, s);
  const KernelError e = readError(err, s);
  if (errOut) {
    *errOut = e;
  } else {
    EXPECT_EQ(e.code, KernelError::None) << cu::describe(e, "id");
  }
  return table;
}

} // namespace

// dtable ACCUMULATED onto a preload, repeated ids summed, paddingIdx rows
// skipped. The GPU sums a run of equal ids before adding it to the table
// row, the CPU adds each dout row in turn: the same fp32 terms, a different
// rounding order (kF32Tol). Rows no id touches, and the padding row, keep
// the preload's bits.
TEST_F(CudaKernels, EmbeddingBackwardMatchesCpu) {
  const int64_t padding = 7;
  auto ids = embeddingIds(31);
  ids[0] = ids[50] = ids[size_t(kNumIds - 1)] = padding;
  std::mt19937 rng(32);
  const auto dout = randVec(rng, size_t(kNumIds * kH), -1.0f, 1.0f);
  const auto dtable0 = randVec(rng, size_t(kV * kH), -1.0f, 1.0f);
  std::vector<float> want = dtable0;
  ASSERT_OK(cpu::embedding_backward(ids.data(), dout.data(), want.data(),
                                    kNumIds, kV, kH, padding));
  const auto got =
      gpuEmbeddingBackward<float>(s(), ids, dout, dtable0, kV, kH, padding);
  EXPECT_TRUE(
      relClose("embedding backward f32 (preloaded)", got, want, kF32Tol));
  const auto rowOf = [&](const std::vector<float> &t, int64_t r) {
    return std::vector<float>(t.begin() + r * kH, t.begin() + (r + 1) * kH);
  };
  EXPECT_TRUE(sameBits("embedding padding row", rowOf(got, padding),
                       rowOf(dtable0, padding)));
  const std::vector<float> untouched(got.begin() + 300 * kH, got.end());
  EXPECT_TRUE(
      sameBits("embedding rows of no id", untouched,
               std::vector<float>(dtable0.begin() + 300 * kH, dtable0.end())));
}

// Long runs of repeated ids (8192 ids over 40 values): two runs give the
// same bits, and the sums still match the CPU's (kF32Tol: ~200 fp32 terms
// per element, summed in position order on both sides but rounded against a
// different running value).
TEST_F(CudaKernels, EmbeddingBackwardIsDeterministic) {
  std::mt19937 rng(33);
  const int64_t numIds = 8192, padding = -1;
  const auto ids = randInts(rng, size_t(numIds), 0, 39);
  const auto dout = randVec(rng, size_t(numIds * kH), -1.0f, 1.0f);
  const auto dtable0 = randVec(rng, size_t(kV * kH), -1.0f, 1.0f);
  const auto a =
      gpuEmbeddingBackward<float>(s(), ids, dout, dtable0, kV, kH, padding);
  const auto b =
      gpuEmbeddingBackward<float>(s(), ids, dout, dtable0, kV, kH, padding);
  EXPECT_TRUE(sameBits("embedding backward, run 2 vs 1", b, a));
  std::vector<float> want = dtable0;
  ASSERT_OK(cpu::embedding_backward(ids.data(), dout.data(), want.data(),
                                    numIds, kV, kH, padding));
  EXPECT_TRUE(relClose("embedding backward 8192 ids", a, want, kF32Tol));
}

// An id out of range is skipped with a KernelError; the rest accumulate as
// the CPU kernel does without it.
TEST_F(CudaKernels, EmbeddingBackwardOutOfRangeIdIsSkippedWithError) {
  const int64_t padding = 7;
  auto ids = embeddingIds(34);
  std::mt19937 rng(35);
  const auto dout = randVec(rng, size_t(kNumIds * kH), -1.0f, 1.0f);
  const auto dtable0 = randVec(rng, size_t(kV * kH), -1.0f, 1.0f);
  ids[9] = kV + 5;
  KernelError e;
  const auto got =
      gpuEmbeddingBackward<float>(s(), ids, dout, dtable0, kV, kH, padding, &e);
  EXPECT_EQ(e.code, KernelError::IndexOutOfRange);
  EXPECT_EQ(e.value, kV + 5);
  EXPECT_EQ(e.position, 9);
  EXPECT_EQ(e.bound, kV);
  ids[9] = padding; // the CPU reference: that row skipped
  std::vector<float> want = dtable0;
  ASSERT_OK(cpu::embedding_backward(ids.data(), dout.data(), want.data(),
                                    kNumIds, kV, kH, padding));
  EXPECT_TRUE(
      relClose("embedding backward, bad id skipped", got, want, kF32Tol));
}

// bf16 table and dout: the forward is a copy of bf16 rows (bitwise); the
// backward sums bf16 values into the fp32 table (kF32Tol: fp32 arithmetic on
// the same rounded values on both sides).
TEST_F(CudaKernels, EmbeddingBf16MatchesCpu) {
  std::mt19937 rng(36);
  const auto table = toBf16(randVec(rng, size_t(kV * kH), -1.0f, 1.0f));
  const auto ids = embeddingIds(37);
  auto dT = upload(table, s());
  auto dIds = upload(ids, s());
  Dev<bf16> dOut(size_t(kNumIds * kH));
  auto err = zeroedError(s());
  ASSERT_OK(cu::embedding_forward(dT.get(), dIds.get(), dOut.get(), kNumIds, kV,
                                  kH, err.get(), s()));
  std::vector<bf16> want(dOut.size());
  for (int64_t i = 0; i < kNumIds; ++i)
    for (int64_t c = 0; c < kH; ++c)
      want[size_t(i * kH + c)] = table[size_t(ids[size_t(i)] * kH + c)];
  EXPECT_TRUE(sameBits("embedding forward bf16", download(dOut, s()), want));
  EXPECT_EQ(readError(err, s()).code, KernelError::None);

  const int64_t padding = 3;
  const auto dout = asStored<bf16>(randVec(rng, dOut.size(), -1.0f, 1.0f));
  const auto dtable0 = randVec(rng, size_t(kV * kH), -1.0f, 1.0f);
  std::vector<float> wantTable = dtable0;
  ASSERT_OK(cpu::embedding_backward(ids.data(), dout.data(), wantTable.data(),
                                    kNumIds, kV, kH, padding));
  EXPECT_TRUE(relClose(
      "embedding backward bf16 dout",
      gpuEmbeddingBackward<bf16>(s(), ids, dout, dtable0, kV, kH, padding),
      wantTable, kF32Tol));
}

//===----------------------------------------------------------------------===//
// Rotary
//===----------------------------------------------------------------------===//

namespace {

std::string rotaryTag(const cpu::RotaryDims &d, const char *type) {
  return std::string("rotary ") + type + " D=" + std::to_string(d.D) +
         " rot=" + std::to_string(d.rotaryDim) +
         (d.interleaved ? " interleaved" : " halves") +
         (d.tableHasBatch ? " batch-table" : "");
}

/// Every rotary case: interleaved or not, tables with or without batch,
/// rotaryDim = D and < D.
std::vector<cpu::RotaryDims> rotaryCases() {
  std::vector<cpu::RotaryDims> cases;
  for (bool interleaved : {false, true})
    for (bool tableHasBatch : {false, true})
      for (int64_t D : {16, 128})
        for (int64_t rot : {D, D / 2}) {
          cpu::RotaryDims d;
          d.B = 2;
          d.H = 3;
          d.S = D == 16 ? 7 : 33;
          d.D = D;
          d.rotaryDim = rot;
          d.interleaved = interleaved;
          d.tableHasBatch = tableHasBatch;
          cases.push_back(d);
        }
  return cases;
}

/// Forward and backward against the CPU, in place against out of place,
/// and the features past rotaryDim copied bit for bit.
template <class T>
void checkRotary(cudaStream_t s, const cpu::RotaryDims &d, double tol) {
  const std::string tag = rotaryTag(d, typeName<T>());
  std::mt19937 rng(uint32_t(d.D * 131 + d.rotaryDim * 7 + d.interleaved * 2 +
                            d.tableHasBatch));
  const size_t count = size_t(d.B * d.H * d.S * d.D);
  const size_t tableSize =
      size_t((d.tableHasBatch ? d.B : 1) * d.S * (d.rotaryDim / 2));
  const auto x = asStored<T>(randVec(rng, count, -1.0f, 1.0f));
  const auto dy = asStored<T>(randVec(rng, count, -1.0f, 1.0f));
  const auto angle = randVec(rng, tableSize, -3.2f, 3.2f);
  std::vector<float> cosT(tableSize), sinT(tableSize);
  for (size_t i = 0; i < tableSize; ++i) {
    cosT[i] = std::cos(angle[i]);
    sinT[i] = std::sin(angle[i]);
  }
  std::vector<float> y(count), dx(count);
  cpu::rotary_forward(x.data(), cosT.data(), sinT.data(), y.data(), d);
  cpu::rotary_backward(dy.data(), cosT.data(), sinT.data(), dx.data(), d);

  auto dX = upload(store<T>(x), s), dDy = upload(store<T>(dy), s);
  auto dCos = upload(cosT, s), dSin = upload(sinT, s);
  Dev<T> dY(count), dDx(count);
  ASSERT_OK(
      cu::rotary_forward(dX.get(), dCos.get(), dSin.get(), dY.get(), d, s));
  ASSERT_OK(
      cu::rotary_backward(dDy.get(), dCos.get(), dSin.get(), dDx.get(), d, s));
  const auto gotY = download(dY, s), gotDx = download(dDx, s);
  EXPECT_TRUE(relClose(tag + " y", widen(gotY), y, tol));
  EXPECT_TRUE(relClose(tag + " dx", widen(gotDx), dx, tol));

  // In place: y over x, dx over dy.
  ASSERT_OK(
      cu::rotary_forward(dX.get(), dCos.get(), dSin.get(), dX.get(), d, s));
  EXPECT_TRUE(sameBits(tag + " y over x", download(dX, s), gotY));
  ASSERT_OK(
      cu::rotary_backward(dDy.get(), dCos.get(), dSin.get(), dDy.get(), d, s));
  EXPECT_TRUE(sameBits(tag + " dx over dy", download(dDy, s), gotDx));

  // Pass-through features: copies of the input.
  const std::vector<T> xs = store<T>(x), dys = store<T>(dy);
  std::vector<T> passY, passX, passDx, passDy;
  for (size_t r = 0; r < count / size_t(d.D); ++r)
    for (int64_t f = d.rotaryDim; f < d.D; ++f) {
      const size_t i = r * size_t(d.D) + size_t(f);
      passY.push_back(gotY[i]);
      passX.push_back(xs[i]);
      passDx.push_back(gotDx[i]);
      passDy.push_back(dys[i]);
    }
  EXPECT_TRUE(sameBits(tag + " y pass-through", passY, passX));
  EXPECT_TRUE(sameBits(tag + " dx pass-through", passDx, passDy));
}

} // namespace

// fp32: each output is x1 c -/+ x2 s on both sides; nvcc may contract one
// product into an FMA, which differs from two rounded products by at most
// about an ulp of |x| <= 1 (2^-24 relative to max|ref| ~ 1), so 1e-6 (eight
// such ulps) suffices, tighter than kF32Tol.
TEST_F(CudaKernels, RotaryMatchesCpu) {
  for (const cpu::RotaryDims &d : rotaryCases())
    checkRotary<float>(s(), d, 1e-6);
}

TEST_F(CudaKernels, RotaryBf16MatchesCpu) {
  for (const cpu::RotaryDims &d : rotaryCases())
    checkRotary<bf16>(s(), d, kBf16Tol);
}

//===----------------------------------------------------------------------===//
// Cross-entropy
//===----------------------------------------------------------------------===//

namespace {

struct CeResult {
  float loss = -1.0f;
  std::vector<float> lse;
  int64_t numValid = -1;
  KernelError err;
};

CeResult cpuCeForward(const std::vector<float> &logits,
                      const std::vector<int64_t> &targets, int64_t N,
                      int64_t V) {
  CeResult r;
  r.lse.resize(size_t(N));
  must(cpu::cross_entropy_forward(logits.data(), targets.data(), N, V, kIgnore,
                                  &r.loss, r.lse.data(), &r.numValid),
       "cpu::cross_entropy_forward");
  return r;
}

template <class T>
CeResult gpuCeForward(cudaStream_t s, const std::vector<float> &logits,
                      const std::vector<int64_t> &targets, int64_t N,
                      int64_t V) {
  auto dL = upload(store<T>(logits), s);
  auto dT = upload(targets, s);
  Dev<float> loss(1), lse(static_cast<size_t>(N));
  Dev<int64_t> numValid(1);
  Dev<uint8_t> ws(cu::crossEntropyWorkspaceBytes(N));
  auto err = zeroedError(s);
  must(cu::cross_entropy_forward(dL.get(), dT.get(), N, V, kIgnore, loss.get(),
                                 lse.get(), numValid.get(), ws.get(), err.get(),
                                 s),
       "cross_entropy_forward");
  CeResult r;
  r.loss = download(loss, s)[0];
  r.lse = download(lse, s);
  r.numValid = download(numValid, s)[0];
  r.err = readError(err, s);
  return r;
}

std::vector<float> cpuCeBackward(const std::vector<float> &logits,
                                 const std::vector<int64_t> &targets, int64_t N,
                                 int64_t V, float dloss) {
  const CeResult f = cpuCeForward(logits, targets, N, V);
  std::vector<float> d(logits.size());
  cpu::cross_entropy_backward(logits.data(), targets.data(), f.lse.data(),
                              dloss, N, V, kIgnore, d.data());
  return d;
}

/// dlogits (widened), written over the logits with `inPlace`.
template <class T>
std::vector<float> gpuCeBackward(cudaStream_t s,
                                 const std::vector<float> &logits,
                                 const std::vector<int64_t> &targets, int64_t N,
                                 int64_t V, float dloss, bool inPlace) {
  auto dL = upload(store<T>(logits), s);
  auto dT = upload(targets, s);
  auto dLoss = upload(std::vector<float>{dloss}, s);
  Dev<T> dG(logits.size());
  Dev<uint8_t> ws(cu::crossEntropyWorkspaceBytes(N));
  must(cu::cross_entropy_backward(dL.get(), dT.get(), dLoss.get(), N, V,
                                  kIgnore, inPlace ? dL.get() : dG.get(),
                                  ws.get(), s),
       "cross_entropy_backward");
  return widen(download(inPlace ? dL : dG, s));
}

/// N rows of V logits in [-8, 8], every fifth row (from row 3) ignored.
void ceInputs(uint32_t seed, int64_t N, int64_t V, std::vector<float> *logits,
              std::vector<int64_t> *targets) {
  std::mt19937 rng(seed);
  *logits = randVec(rng, size_t(N * V), -8.0f, 8.0f);
  *targets = randInts(rng, size_t(N), 0, V - 1);
  for (int64_t r = 3; r < N; r += 5)
    (*targets)[size_t(r)] = kIgnore;
}

/// Forward (loss, lse, numValid, no error) and backward (out of place
/// against the CPU, in place against out of place) of one problem. loss and
/// lse are fp32 whatever T: kF32Tol; dlogits `dTol`.
template <class T>
void checkCrossEntropy(cudaStream_t s, const std::string &tag,
                       const std::vector<float> &logits,
                       const std::vector<int64_t> &targets, int64_t N,
                       int64_t V, double dTol) {
  const CeResult want = cpuCeForward(logits, targets, N, V);
  const CeResult got = gpuCeForward<T>(s, logits, targets, N, V);
  EXPECT_TRUE(relClose(tag + " loss", got.loss, want.loss, kF32Tol));
  EXPECT_TRUE(relClose(tag + " lse", got.lse, want.lse, kF32Tol));
  EXPECT_EQ(got.numValid, want.numValid) << tag;
  EXPECT_EQ(got.err.code, KernelError::None)
      << tag << ": " << cu::describe(got.err, "target");

  const float dloss = 1.5f;
  const auto wantD = cpuCeBackward(logits, targets, N, V, dloss);
  const auto gotD = gpuCeBackward<T>(s, logits, targets, N, V, dloss, false);
  EXPECT_TRUE(relClose(tag + " dlogits", gotD, wantD, dTol));
  EXPECT_TRUE(sameBits(tag + " dlogits over logits",
                       gpuCeBackward<T>(s, logits, targets, N, V, dloss, true),
                       gotD));
}

} // namespace

TEST_F(CudaKernels, CrossEntropyMatchesCpu) {
  std::vector<float> logits;
  std::vector<int64_t> targets;
  ceInputs(41, 64, 1000, &logits, &targets);
  checkCrossEntropy<float>(s(), "cross_entropy f32 64x1000", logits, targets,
                           64, 1000, kF32Tol);
}

// A real vocabulary (GPT-2's 50257, not a multiple of the block size) with
// few rows. The sums run over 50257 terms: kF32Tol still holds, the GPU's
// per-thread running sums and block tree keep the rounding at ~1e-7.
TEST_F(CudaKernels, CrossEntropyGpt2VocabularyMatchesCpu) {
  std::vector<float> logits;
  std::vector<int64_t> targets;
  ceInputs(42, 8, 50257, &logits, &targets);
  checkCrossEntropy<float>(s(), "cross_entropy f32 8x50257", logits, targets, 8,
                           50257, kF32Tol);
}

// No valid row: loss 0 (not NaN), numValid 0, every lse still computed, a
// zero gradient.
TEST_F(CudaKernels, CrossEntropyAllRowsIgnoredGivesZeroLoss) {
  const int64_t N = 6, V = 100;
  std::mt19937 rng(43);
  const auto logits = randVec(rng, size_t(N * V), -8.0f, 8.0f);
  const std::vector<int64_t> targets(size_t(N), kIgnore);
  const CeResult want = cpuCeForward(logits, targets, N, V);
  const CeResult got = gpuCeForward<float>(s(), logits, targets, N, V);
  EXPECT_EQ(got.loss, 0.0f);
  EXPECT_EQ(got.numValid, 0);
  EXPECT_EQ(got.err.code, KernelError::None);
  EXPECT_TRUE(
      relClose("cross_entropy all ignored lse", got.lse, want.lse, kF32Tol));
  EXPECT_TRUE(
      sameBits("cross_entropy all ignored dlogits",
               gpuCeBackward<float>(s(), logits, targets, N, V, 1.0f, false),
               std::vector<float>(logits.size(), 0.0f)));
}

// A target outside [0, V) that is not ignore_index: a TargetOutOfRange
// record (value, row, V), and the row counts as ignored in the loss and
// numValid. The backward's own count applies the same rule (the row gets a
// zero gradient and is not counted), as it must to agree with the forward.
TEST_F(CudaKernels, CrossEntropyTargetOutOfRangeRecordsError) {
  const int64_t N = 16, V = 1000;
  std::vector<float> logits;
  std::vector<int64_t> targets;
  ceInputs(44, N, V, &logits, &targets);
  for (int64_t bad : {V + 3, int64_t(-7)}) {
    const std::string tag = "cross_entropy target " + std::to_string(bad);
    std::vector<int64_t> withBad = targets;
    withBad[6] = bad;
    const CeResult got = gpuCeForward<float>(s(), logits, withBad, N, V);
    EXPECT_EQ(got.err.code, KernelError::TargetOutOfRange) << tag;
    EXPECT_EQ(got.err.value, bad) << tag;
    EXPECT_EQ(got.err.position, 6) << tag;
    EXPECT_EQ(got.err.bound, V) << tag;
    EXPECT_EQ(cu::describe(got.err, "target"),
              "target " + std::to_string(bad) +
                  " at position 6 is outside [0, 1000)");
    std::vector<int64_t> ignored = targets;
    ignored[6] = kIgnore;
    const CeResult want = cpuCeForward(logits, ignored, N, V);
    EXPECT_TRUE(relClose(tag + " loss", got.loss, want.loss, kF32Tol));
    EXPECT_EQ(got.numValid, want.numValid) << tag;
    EXPECT_TRUE(
        relClose(tag + " dlogits",
                 gpuCeBackward<float>(s(), logits, withBad, N, V, 1.0f, false),
                 cpuCeBackward(logits, ignored, N, V, 1.0f), kF32Tol));
  }
}

TEST_F(CudaKernels, CrossEntropyBf16MatchesCpu) {
  std::vector<float> logits;
  std::vector<int64_t> targets;
  ceInputs(45, 64, 1000, &logits, &targets);
  checkCrossEntropy<bf16>(s(), "cross_entropy bf16 64x1000",
                          asStored<bf16>(logits), targets, 64, 1000, kBf16Tol);
  ceInputs(46, 8, 50257, &logits, &targets);
  checkCrossEntropy<bf16>(s(), "cross_entropy bf16 8x50257",
                          asStored<bf16>(logits), targets, 8, 50257, kBf16Tol);
}

//===----------------------------------------------------------------------===//
// AdamW, the gradient norm
//===----------------------------------------------------------------------===//

// The scalars of a step, as cpu::adamw_step rounds them (in double, then to
// float once). No device needed.
TEST(CudaAdamW, CoefficientsRoundAsTheCpuKernel) {
  cpu::AdamWConfig c;
  c.lr = 1e-3;
  c.weightDecay = 0.1;
  for (int64_t step : {1, 2, 10, 1000}) {
    const cu::AdamWCoefficients k = cu::adamwCoefficients(c, step);
    const double bc1 = 1.0 - std::pow(c.beta1, double(step));
    const double bc2 = 1.0 - std::pow(c.beta2, double(step));
    EXPECT_EQ(k.decay, float(1.0 - c.lr * c.weightDecay)) << step;
    EXPECT_EQ(k.w1, float(1.0 - c.beta1)) << step;
    EXPECT_EQ(k.b2, float(c.beta2)) << step;
    EXPECT_EQ(k.w2, float(1.0 - c.beta2)) << step;
    EXPECT_EQ(k.stepSize, float(c.lr / bc1)) << step;
    EXPECT_EQ(k.bc2Sqrt, float(std::sqrt(bc2))) << step;
    EXPECT_EQ(k.eps, float(c.eps)) << step;
  }
}

namespace {

/// Three steps on the GPU and with cpu::adamw_step, same config and
/// gradients. Bit for bit: the kernel rounds every fp32 operation on its
/// own, in cpu::adamw_step's order, with the same host-rounded scalars
/// (division and sqrt are IEEE on both sides), and the CPU build has no FMA
/// contraction (x86-64 without -mfma). The compute copy is the bf16 rounding
/// of the GPU's own result, bit for bit.
void checkAdamW(cudaStream_t s, bool deviceScale) {
  const std::string tag =
      std::string("adamw") + (deviceScale ? " gradScale 0.5" : "");
  const int64_t n = 65537;
  cpu::AdamWConfig c;
  c.lr = 1e-3;
  c.weightDecay = 0.1;
  std::mt19937 rng(deviceScale ? 51 : 52);
  std::vector<float> p = randVec(rng, size_t(n), -1.0f, 1.0f);
  std::vector<float> m(size_t(n), 0.0f), v(size_t(n), 0.0f);
  auto dP = upload(p, s), dM = upload(m, s), dV = upload(v, s);
  auto dScale = upload(std::vector<float>{0.5f}, s);
  Dev<float> dG(static_cast<size_t>(n));
  Dev<bf16> dCompute(static_cast<size_t>(n));
  for (int64_t step = 1; step <= 3; ++step) {
    const auto g = randVec(rng, size_t(n), -1.0f, 1.0f);
    put(dG, g, s);
    cpu::adamw_step(p.data(), g.data(), m.data(), v.data(), n, c, step,
                    deviceScale ? 0.5f : 1.0f);
    ASSERT_OK(cu::adamw_step(dP.get(), dG.get(), dM.get(), dV.get(), n,
                             cu::adamwCoefficients(c, step),
                             deviceScale ? dScale.get() : nullptr,
                             dCompute.get(), s));
  }
  const auto gotP = download(dP, s);
  EXPECT_TRUE(sameBits(tag + " p", gotP, p));
  EXPECT_TRUE(sameBits(tag + " m", download(dM, s), m));
  EXPECT_TRUE(sameBits(tag + " v", download(dV, s), v));
  EXPECT_TRUE(sameBits(tag + " bf16 compute copy", download(dCompute, s),
                       toBf16(gotP)));
}

} // namespace

TEST_F(CudaKernels, AdamWStepsMatchCpu) { checkAdamW(s(), false); }

TEST_F(CudaKernels, AdamWStepsWithDeviceGradScaleMatchCpu) {
  checkAdamW(s(), true);
}

// Two tensors added into one device double. Every square of a float is
// exact in double (48 significant bits <= 53); only the order of the ~10^6
// additions differs from the CPU's: a relative error of order sqrt(n)
// 2^-53 ~ 1e-13 (all terms positive, no cancellation): 1e-12. And the
// fixed-grid order is the same from run to run: bitwise.
TEST_F(CudaKernels, SumOfSquaresMatchesCpu) {
  std::mt19937 rng(61);
  const auto a = randVec(rng, (size_t(1) << 20) + 7, -3.0f, 3.0f);
  const auto b = randVec(rng, 1000, -1.0f, 1.0f);
  const double want = cpu::sum_of_squares(a.data(), int64_t(a.size())) +
                      cpu::sum_of_squares(b.data(), int64_t(b.size()));
  auto dA = upload(a, s()), dB = upload(b, s());
  Dev<uint8_t> ws(cu::sumOfSquaresWorkspaceBytes());
  std::vector<double> runs;
  for (int run = 0; run < 2; ++run) {
    Dev<double> sumsq(1);
    zero(sumsq, s());
    ASSERT_OK(cu::sum_of_squares(dA.get(), int64_t(a.size()), sumsq.get(),
                                 ws.get(), s()));
    ASSERT_OK(cu::sum_of_squares(dB.get(), int64_t(b.size()), sumsq.get(),
                                 ws.get(), s()));
    runs.push_back(download(sumsq, s())[0]);
  }
  std::printf("[cuda] sum_of_squares: gpu %.17g cpu %.17g rel err %.2e "
              "(allowed 1e-12)\n",
              runs[0], want, std::fabs(runs[0] - want) / want);
  EXPECT_LE(std::fabs(runs[0] - want), 1e-12 * want)
      << "gpu " << runs[0] << ", cpu " << want;
  EXPECT_TRUE(sameBits("sum_of_squares, run 2 vs 1",
                       std::vector<double>{runs[1]},
                       std::vector<double>{runs[0]}));
}

// The same double operations on either side (sqrt, +1e-6, a division, all
// correctly rounded IEEE operations on the device), then one rounding to
// float: equal.
TEST_F(CudaKernels, ClipScaleMatchesCpu) {
  struct Case {
    double sumsq, maxNorm;
  };
  for (const Case &c : {Case{4.0, 1.0}, Case{4.0, 10.0}, Case{123.456, 3.0},
                        Case{1e-20, 1.0}, Case{0.0, 1.0}, Case{2.25, 1.5}}) {
    const std::string tag = "clip_scale sumsq=" + std::to_string(c.sumsq) +
                            " max=" + std::to_string(c.maxNorm);
    auto dSumsq = upload(std::vector<double>{c.sumsq}, s());
    Dev<float> scale(1);
    Dev<double> norm(1);
    ASSERT_OK(
        cu::clip_scale(dSumsq.get(), c.maxNorm, scale.get(), norm.get(), s()));
    EXPECT_EQ(download(scale, s())[0],
              cpu::clip_scale(std::sqrt(c.sumsq), c.maxNorm))
        << tag;
    EXPECT_EQ(download(norm, s())[0], std::sqrt(c.sumsq)) << tag;
    // norm may be nullptr.
    Dev<float> scale2(1);
    ASSERT_OK(
        cu::clip_scale(dSumsq.get(), c.maxNorm, scale2.get(), nullptr, s()));
    EXPECT_EQ(download(scale2, s())[0], download(scale, s())[0]) << tag;
  }
}
