//===- BlasTest.cpp - cuBLASLt GEMMs against cpu::gemm --------------------===//
//
// Part of weipipe's runtime tests. cuda::Blas::gemm on the GPU against
// cpu::gemm on the same operands: every transpose, odd shapes, sub-matrix
// views, accumulation, the bias epilogue, strided and broadcast batches,
// bf16 operands; the plan cache; errors that name the shape. Each check
// prints its measured error and the allowed one ("[cuda] ..." lines).
//
// The device tests use the CudaBlas fixture, which skips (never passes)
// where deviceCount() finds no GPU; the GemmShape tests need no device.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/cuda/Blas.h"
#include "CudaTestUtil.h"
#include "weipipe/runtime/cpu/Kernels.h"
#include "weipipe/runtime/cuda/Device.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace cpu = weipipe::rt::cpu;
namespace cu = weipipe::rt::cuda;
using cu::bf16;
using cu::ElementType;
using cu::GemmShape;
using weipipe::rt::Status;
using namespace weipipe::rt::cuda::test;

namespace {

//===----------------------------------------------------------------------===//
// Tolerances (relative to the largest reference element)
//===----------------------------------------------------------------------===//

/// fp32 operands and result, fp32 compute without TF32 (Blas.h): both sides
/// sum the K exact-ish fp32 products in fp32, in different orders (OpenBLAS
/// and cuBLASLt block K differently). With operands in [-1, 1] the rounding
/// is a random walk of ~sqrt(K) steps of 2^-24 of the partial sums, whose
/// size is that of the results: ~64 * 6e-8 ~ 4e-6 of a typical element at
/// K = 4096, ~1e-6 of max|ref| (a few standard deviations above typical).
/// 1e-5 leaves a margin of ten.
constexpr double kF32Tol = 1e-5;

/// bf16 operands, fp32 result. A product of two bf16 values (8-bit
/// significands) is exact in fp32, so the reference (cpu::gemm on the
/// rounded values) differs only by the fp32 summation, as above; but the
/// tensor cores add the products with truncation instead of round to
/// nearest (up to an ulp per addition, biased the same way while a partial
/// sum keeps its sign): an estimated ~3e-6 of max|ref| at K = 257. 2e-5.
constexpr double kBf16InTol = 2e-5;

/// bf16 result: each element rounded to bf16 once, at most half an ulp of
/// an 8-bit significand = 2^-8 = 0.0039 of the element, plus the fp32
/// differences above: 1e-2 (2.5 times the bound).
constexpr double kBf16OutTol = 1e-2;

//===----------------------------------------------------------------------===//
// Device arrays and copies
//===----------------------------------------------------------------------===//

/// n device bytes (one at least).
using Bytes = Dev<uint8_t>;

size_t elementBytes(ElementType t) { return t == ElementType::BF16 ? 2 : 4; }

/// v stored as t on the device (bf16: rounded to nearest even).
Bytes uploadAs(ElementType t, const std::vector<float> &v, cudaStream_t s) {
  std::vector<uint8_t> h(v.size() * elementBytes(t));
  if (t == ElementType::BF16) {
    const std::vector<bf16> b = toBf16(v);
    if (!b.empty())
      std::memcpy(h.data(), b.data(), h.size());
  } else if (!v.empty()) {
    std::memcpy(h.data(), v.data(), h.size());
  }
  return upload(h, s);
}

/// The elements of type t in d, widened to float.
std::vector<float> downloadAs(ElementType t, const Bytes &d, cudaStream_t s) {
  const std::vector<uint8_t> h = download(d, s);
  const size_t n = h.size() / elementBytes(t);
  if (t == ElementType::BF16) {
    std::vector<bf16> b(n);
    if (n)
      std::memcpy(b.data(), h.data(), h.size());
    return widen(b);
  }
  std::vector<float> v(n);
  if (n)
    std::memcpy(v.data(), h.data(), h.size());
  return v;
}

/// v as type t holds it.
std::vector<float> storedAs(ElementType t, const std::vector<float> &v) {
  return t == ElementType::BF16 ? asStored<bf16>(v) : v;
}

//===----------------------------------------------------------------------===//
// Problems: a GemmShape, its operands (whole buffers), and where the views
// start in them
//===----------------------------------------------------------------------===//

struct Problem {
  GemmShape g;
  float alpha = 1.0f;
  size_t offA = 0, offB = 0, offC = 0; ///< first element of each view
  std::vector<float> a, b, c0, bias;   ///< values as their types hold them
};

size_t spanA(const GemmShape &g) {
  return size_t((g.batch - 1) * g.strideA + (g.transA ? g.K : g.M) * g.lda);
}
size_t spanB(const GemmShape &g) {
  return size_t((g.batch - 1) * g.strideB + (g.transB ? g.N : g.K) * g.ldb);
}
size_t spanC(const GemmShape &g) {
  return size_t((g.batch - 1) * g.strideC + g.M * g.ldc);
}

/// Operands in [-1, 1], C's preload (read with accumulate; elsewhere it
/// shows what the GEMM must leave alone) in [-4, 4], bias in [-2, 2].
Problem makeProblem(const GemmShape &g, uint32_t seed, size_t offA = 0,
                    size_t offB = 0, size_t offC = 0) {
  std::mt19937 rng(seed);
  Problem p;
  p.g = g;
  p.offA = offA;
  p.offB = offB;
  p.offC = offC;
  p.a = storedAs(g.a, randVec(rng, offA + spanA(g), -1.0f, 1.0f));
  p.b = storedAs(g.b, randVec(rng, offB + spanB(g), -1.0f, 1.0f));
  p.c0 = storedAs(g.c, randVec(rng, offC + spanC(g), -4.0f, 4.0f));
  if (g.bias)
    p.bias = storedAs(g.c, randVec(rng, size_t(g.N), -2.0f, 2.0f));
  return p;
}

/// cpu::gemm per batch on the views (fp32 on the stored values), then the
/// bias on every row.
std::vector<float> cpuResult(const Problem &p) {
  const GemmShape &g = p.g;
  std::vector<float> c = p.c0;
  for (int64_t t = 0; t < g.batch; ++t) {
    float *ct = c.data() + p.offC + t * g.strideC;
    cpu::gemm(g.transA, g.transB, g.M, g.N, g.K, p.alpha,
              p.a.data() + p.offA + t * g.strideA, g.lda,
              p.b.data() + p.offB + t * g.strideB, g.ldb,
              g.accumulate ? 1.0f : 0.0f, ct, g.ldc);
    if (g.bias)
      for (int64_t i = 0; i < g.M; ++i)
        for (int64_t j = 0; j < g.N; ++j)
          ct[i * g.ldc + j] += p.bias[size_t(j)];
  }
  return c;
}

/// Blas::gemm on the problem; C's whole buffer afterwards (widened).
std::vector<float> gpuResult(cu::Blas &blas, cudaStream_t s, const Problem &p) {
  const GemmShape &g = p.g;
  Bytes a = uploadAs(g.a, p.a, s), b = uploadAs(g.b, p.b, s),
        c = uploadAs(g.c, p.c0, s);
  std::unique_ptr<Bytes> bias;
  if (g.bias)
    bias = std::make_unique<Bytes>(uploadAs(g.c, p.bias, s));
  must(blas.gemm(g, p.alpha, a.get() + p.offA * elementBytes(g.a),
                 b.get() + p.offB * elementBytes(g.b),
                 c.get() + p.offC * elementBytes(g.c),
                 bias ? bias->get() : nullptr, s),
       "Blas::gemm");
  return downloadAs(g.c, c, s);
}

const char *transName(bool transA, bool transB) {
  static const char *const names[] = {"NN", "NT", "TN", "TT"};
  return names[int(transA) * 2 + int(transB)];
}

std::string shapeTag(const GemmShape &g) {
  return std::to_string(g.M) + "x" + std::to_string(g.N) + "x" +
         std::to_string(g.K) + " " + transName(g.transA, g.transB);
}

} // namespace

//===----------------------------------------------------------------------===//
// GemmShape: no device needed
//===----------------------------------------------------------------------===//

TEST(GemmShape, StrNamesDimensionsTypesAndFlags) {
  GemmShape g = cu::denseGemm(false, true, 64, 128, 256, ElementType::BF16,
                              ElementType::F32);
  g.batch = 4;
  // Blas.h's own example.
  EXPECT_EQ(g.str(), "64 x 128 x 256 (bf16 x bf16 -> f32, transB, 4 batches)");
  const std::string s =
      cu::denseGemm(true, false, 3, 5, 7, ElementType::F32, ElementType::BF16)
          .str();
  EXPECT_NE(s.find("3 x 5 x 7"), std::string::npos) << s;
  EXPECT_NE(s.find("f32 x f32 -> bf16"), std::string::npos) << s;
  EXPECT_NE(s.find("transA"), std::string::npos) << s;
  EXPECT_EQ(s.find("transB"), std::string::npos) << s;
  EXPECT_EQ(s.find("batches"), std::string::npos) << s;
}

// Row-major dense operands: A [M, K] (lda K) or [K, M] (lda M) with transA,
// B [K, N] (ldb N) or [N, K] (ldb K) with transB, C [M, N] (ldc N); one
// batch, no bias, no accumulation.
TEST(GemmShape, DenseGemmSetsLeadingDimensions) {
  for (bool transA : {false, true})
    for (bool transB : {false, true}) {
      const GemmShape g = cu::denseGemm(transA, transB, 3, 5, 7);
      const std::string tag = transName(transA, transB);
      EXPECT_EQ(g.transA, transA) << tag;
      EXPECT_EQ(g.transB, transB) << tag;
      EXPECT_EQ(g.M, 3) << tag;
      EXPECT_EQ(g.N, 5) << tag;
      EXPECT_EQ(g.K, 7) << tag;
      EXPECT_EQ(g.lda, transA ? 3 : 7) << tag;
      EXPECT_EQ(g.ldb, transB ? 7 : 5) << tag;
      EXPECT_EQ(g.ldc, 5) << tag;
      EXPECT_EQ(g.a, ElementType::F32) << tag;
      EXPECT_EQ(g.b, ElementType::F32) << tag;
      EXPECT_EQ(g.c, ElementType::F32) << tag;
      EXPECT_EQ(g.batch, 1) << tag;
      EXPECT_EQ(g.strideA, 0) << tag;
      EXPECT_EQ(g.strideB, 0) << tag;
      EXPECT_EQ(g.strideC, 0) << tag;
      EXPECT_FALSE(g.bias) << tag;
      EXPECT_FALSE(g.accumulate) << tag;
    }
  const GemmShape h =
      cu::denseGemm(false, true, 2, 4, 8, ElementType::BF16, ElementType::BF16);
  EXPECT_EQ(h.a, ElementType::BF16);
  EXPECT_EQ(h.b, ElementType::BF16);
  EXPECT_EQ(h.c, ElementType::BF16);
}

//===----------------------------------------------------------------------===//
// The fixture: a device, a stream and a Blas, or a skip
//===----------------------------------------------------------------------===//

class CudaBlas : public CudaTest {
protected:
  void SetUp() override {
    CudaTest::SetUp();
    if (IsSkipped() || HasFatalFailure())
      return;
    ASSERT_OK(cu::Blas::create(&blas_));
  }

  /// The problem on the GPU against the CPU: the M x N results of every
  /// batch within `tol`, and every other element of C's buffer untouched.
  /// `reference` (default: p itself) is the problem the CPU solves.
  void check(const std::string &tag, const Problem &p, double tol,
             const Problem *reference = nullptr) {
    const GemmShape &g = p.g;
    const std::vector<float> want = cpuResult(reference ? *reference : p);
    const std::vector<float> got = gpuResult(*blas_, s(), p);
    std::vector<bool> inView(want.size(), false);
    std::vector<float> gotView, wantView, gotRest, wantRest;
    for (int64_t t = 0; t < g.batch; ++t)
      for (int64_t i = 0; i < g.M; ++i)
        for (int64_t j = 0; j < g.N; ++j) {
          const size_t at = p.offC + size_t(t * g.strideC + i * g.ldc + j);
          inView[at] = true;
          gotView.push_back(got[at]);
          wantView.push_back(want[at]);
        }
    for (size_t i = 0; i < want.size(); ++i)
      if (!inView[i]) {
        gotRest.push_back(got[i]);
        wantRest.push_back(p.c0[i]);
      }
    EXPECT_TRUE(relCloseFinite(tag, gotView, wantView, tol));
    EXPECT_TRUE(sameBits(tag + ": C outside the view", gotRest, wantRest));
  }

  std::unique_ptr<cu::Blas> blas_; // destroyed before CudaTest's stream
};

//===----------------------------------------------------------------------===//
// fp32
//===----------------------------------------------------------------------===//

TEST_F(CudaBlas, F32MatchesCpuForAllTransposes) {
  struct Dims {
    int64_t M, N, K;
  };
  uint32_t seed = 1;
  for (const Dims &d : {Dims{1, 7, 3}, Dims{129, 65, 257}, Dims{64, 96, 4096}})
    for (bool transA : {false, true})
      for (bool transB : {false, true}) {
        const GemmShape g = cu::denseGemm(transA, transB, d.M, d.N, d.K);
        check("f32 " + shapeTag(g), makeProblem(g, seed++), kF32Tol);
      }
  // alpha scales the product.
  Problem p = makeProblem(cu::denseGemm(false, true, 129, 65, 257), seed++);
  p.alpha = 0.5f;
  check("f32 129x65x257 NT alpha 0.5", p, kF32Tol);
}

// Sub-matrix views: leading dimensions larger than the rows, the views
// starting inside bigger buffers; 16-byte aligned views (leading dimensions
// and offsets multiples of 4 elements) and 4-byte aligned ones (odd leading
// dimensions and offsets, as every dimension here is odd: the least
// alignment an f32 view can have).
// C's elements outside the view must keep their values.
TEST_F(CudaBlas, F32SubMatrixViewsWithLargerLeadingDimensions) {
  const int64_t M = 33, N = 17, K = 45;
  uint32_t seed = 100;
  for (bool odd : {false, true})
    for (bool transA : {false, true})
      for (bool transB : {false, true}) {
        GemmShape g = cu::denseGemm(transA, transB, M, N, K);
        const auto widen = [&](int64_t ld) {
          return odd ? ld + 6 : (ld + 4 + 3) / 4 * 4;
        };
        g.lda = widen(g.lda);
        g.ldb = widen(g.ldb);
        g.ldc = widen(g.ldc);
        // One row down and a few columns in.
        const size_t pad = odd ? 2 : 4;
        const Problem p = makeProblem(g, seed++, size_t(g.lda) + pad,
                                      size_t(g.ldb) + pad, size_t(g.ldc) + pad);
        check(std::string("f32 view ") + (odd ? "4B " : "16B ") + shapeTag(g) +
                  " ld " + std::to_string(g.lda) + "/" + std::to_string(g.ldb) +
                  "/" + std::to_string(g.ldc),
              p, kF32Tol);
      }
}

// beta = 1: the product is added to C's preload (in [-4, 4], against
// results of ~|10|: a kernel that ignored it would be off by ~30%).
TEST_F(CudaBlas, AccumulateAddsToPreloadedC) {
  uint32_t seed = 200;
  for (bool transA : {false, true})
    for (bool transB : {false, true}) {
      GemmShape g = cu::denseGemm(transA, transB, 129, 65, 257);
      g.accumulate = true;
      check("f32 accumulate " + shapeTag(g), makeProblem(g, seed++), kF32Tol);
    }
}

// bias[N] added to every row (the linear layer: x W^T + b is NT), alone
// and with accumulation.
TEST_F(CudaBlas, BiasEpilogueAddsBiasToEveryRow) {
  uint32_t seed = 300;
  for (bool transB : {false, true})
    for (bool accumulate : {false, true}) {
      GemmShape g = cu::denseGemm(false, transB, 129, 65, 257);
      g.bias = true;
      g.accumulate = accumulate;
      check("f32 bias " + shapeTag(g) + (accumulate ? " accumulate" : ""),
            makeProblem(g, seed++), kF32Tol);
    }
}

// Three products with element strides between them; a stride of 0
// broadcasts that operand to every batch (one weight for every batch).
TEST_F(CudaBlas, StridedBatchesMatchCpu) {
  uint32_t seed = 400;
  const int64_t M = 33, N = 17, K = 45;
  struct Variant {
    const char *name;
    bool broadcastA, broadcastB;
  };
  for (const Variant &v : {Variant{"strided", false, false},
                           Variant{"A broadcast (stride 0)", true, false},
                           Variant{"B broadcast (stride 0)", false, true}})
    for (bool transB : {false, true}) {
      GemmShape g = cu::denseGemm(false, transB, M, N, K);
      g.batch = 3;
      g.strideA = v.broadcastA ? 0 : M * K;
      g.strideB = v.broadcastB ? 0 : K * N;
      g.strideC = M * N;
      check(std::string("f32 3 batches ") + v.name + " " + shapeTag(g),
            makeProblem(g, seed++), kF32Tol);
    }
}

// The plan cache keeps the algorithm: the same call gives the same bits.
TEST_F(CudaBlas, RepeatedGemmIsBitwiseRepeatable) {
  const Problem p = makeProblem(cu::denseGemm(false, true, 129, 65, 4096), 7);
  const std::vector<float> first = gpuResult(*blas_, s(), p);
  EXPECT_TRUE(sameBits("129x65x4096 NT, call 2 vs 1", gpuResult(*blas_, s(), p),
                       first));
}

//===----------------------------------------------------------------------===//
// bf16
//===----------------------------------------------------------------------===//

TEST_F(CudaBlas, Bf16InputsF32OutputMatchCpu) {
  uint32_t seed = 500;
  for (bool transA : {false, true})
    for (bool transB : {false, true}) {
      const GemmShape g = cu::denseGemm(transA, transB, 129, 65, 257,
                                        ElementType::BF16, ElementType::F32);
      check("bf16 -> f32 " + shapeTag(g), makeProblem(g, seed++), kBf16InTol);
    }
}

// fp32 operands multiplied on bf16 tensor cores (--precision bf16 over fp32
// storage): the CPU's fp32 product of the operands rounded to bf16, with the
// bf16-input tolerance (the same products, summed in fp32). bf16 operands
// are refused: the mode is for fp32 storage.
TEST_F(CudaBlas, FastBf16ProductsOfF32Operands) {
  uint32_t seed = 550;
  for (bool transB : {false, true}) {
    GemmShape g = cu::denseGemm(false, transB, 129, 65, 257);
    g.fastBf16 = true;
    const Problem p = makeProblem(g, seed++);
    Problem rounded = p;
    rounded.a = storedAs(ElementType::BF16, p.a);
    rounded.b = storedAs(ElementType::BF16, p.b);
    check("f32 with bf16 products " + shapeTag(g), p, kBf16InTol, &rounded);
  }
  GemmShape bad =
      cu::denseGemm(false, false, 8, 8, 8, ElementType::BF16, ElementType::F32);
  bad.fastBf16 = true;
  Bytes a(256), b(256), c(256);
  const Status st =
      blas_->gemm(bad, 1.0f, a.get(), b.get(), c.get(), nullptr, s());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("fp32 operands"), std::string::npos)
      << st.message();
}

// bf16 result (and bias, which has C's type), with and without
// accumulation onto a bf16 C.
TEST_F(CudaBlas, Bf16InputsBf16OutputMatchCpu) {
  uint32_t seed = 600;
  for (bool transB : {false, true})
    for (bool accumulate : {false, true}) {
      GemmShape g = cu::denseGemm(false, transB, 129, 65, 257,
                                  ElementType::BF16, ElementType::BF16);
      g.bias = true;
      g.accumulate = accumulate;
      check("bf16 -> bf16 bias " + shapeTag(g) +
                (accumulate ? " accumulate" : ""),
            makeProblem(g, seed++), kBf16OutTol);
    }
  const GemmShape g = cu::denseGemm(true, false, 129, 65, 257,
                                    ElementType::BF16, ElementType::BF16);
  check("bf16 -> bf16 " + shapeTag(g), makeProblem(g, seed++), kBf16OutTol);
}

//===----------------------------------------------------------------------===//
// Plans, errors
//===----------------------------------------------------------------------===//

// One plan per distinct shape (cudaMalloc'd buffers: one alignment class);
// a repeated call reuses it.
TEST_F(CudaBlas, PlanCountGrowsOncePerDistinctShape) {
  const GemmShape nn = cu::denseGemm(false, false, 16, 24, 32);
  const GemmShape nt = cu::denseGemm(false, true, 16, 24, 32);
  GemmShape acc = nn;
  acc.accumulate = true;
  Bytes a(64 * 64 * 4), b(64 * 64 * 4), c(64 * 64 * 4);
  ASSERT_EQ(blas_->planCount(), 0u);
  const auto run = [&](const GemmShape &g) {
    return blas_->gemm(g, 1.0f, a.get(), b.get(), c.get(), nullptr, s());
  };
  ASSERT_OK(run(nn));
  EXPECT_EQ(blas_->planCount(), 1u);
  ASSERT_OK(run(nn));
  EXPECT_EQ(blas_->planCount(), 1u) << "a repeated shape made a new plan";
  ASSERT_OK(run(nt));
  EXPECT_EQ(blas_->planCount(), 2u);
  ASSERT_OK(run(nn));
  ASSERT_OK(run(nt));
  EXPECT_EQ(blas_->planCount(), 2u);
  ASSERT_OK(run(acc));
  EXPECT_EQ(blas_->planCount(), 3u) << "accumulate is part of the shape";
  sync(s());
}

// A plan made ahead for the artifact's 64-byte alignment serves the
// later gemm on 64-byte aligned buffers (views 16 floats into cudaMalloc'd
// ones), and that gemm is right.
TEST_F(CudaBlas, PlanMadeAheadServesTheGemm) {
  const GemmShape g = cu::denseGemm(false, true, 129, 65, 257);
  ASSERT_OK(blas_->plan(g, 64));
  ASSERT_EQ(blas_->planCount(), 1u);
  ASSERT_OK(blas_->plan(g, 64));
  EXPECT_EQ(blas_->planCount(), 1u);
  check("f32 129x65x257 NT, 64-byte aligned", makeProblem(g, 8, 16, 16, 16),
        kF32Tol);
  EXPECT_EQ(blas_->planCount(), 1u) << "gemm did not use the plan made ahead";
}

// A dimension of 0 is refused (nothing enqueued, no plan kept) with a
// message that names the shape; so is a bias pointer that does not match
// the shape's bias flag.
TEST_F(CudaBlas, BadShapeReturnsErrorNamingIt) {
  Bytes a(256), b(256), c(256), bias(256);
  const GemmShape zero = cu::denseGemm(false, false, 0, 7, 3);
  Status st = blas_->gemm(zero, 1.0f, a.get(), b.get(), c.get(), nullptr, s());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find(zero.str()), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("0 x 7 x 3"), std::string::npos) << st.message();
  EXPECT_EQ(blas_->planCount(), 0u);
  EXPECT_FALSE(blas_->plan(zero, 64).ok());
  EXPECT_EQ(blas_->planCount(), 0u);

  GemmShape withBias = cu::denseGemm(false, false, 4, 7, 3);
  withBias.bias = true;
  st = blas_->gemm(withBias, 1.0f, a.get(), b.get(), c.get(), nullptr, s());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find(withBias.str()), std::string::npos)
      << st.message();
  const GemmShape noBias = cu::denseGemm(false, false, 4, 7, 3);
  st = blas_->gemm(noBias, 1.0f, a.get(), b.get(), c.get(), bias.get(), s());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find(noBias.str()), std::string::npos) << st.message();
  sync(s());
}
