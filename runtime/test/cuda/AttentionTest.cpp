//===- AttentionTest.cpp - CUDA nn.attention against the CPU kernels ------===//
//
// Part of weipipe's runtime tests (CUDA backend). cuda::attention_forward
// (out, lse) and attention_backward (dq, dk, dv) against
// cpu::attention_forward / attention_backward on the same inputs: random
// values in [-1, 1) from a fixed-seed std::mt19937, rounded to the storage
// type first, so that the CPU computes in fp32 on exactly the values the GPU
// reads. Outputs start as NaN bytes, so an element the kernels fail to write
// shows. Every test but the support check skips where there is no GPU.
//
// Tolerances, per tensor, on max |gpu - cpu| (inf must match exactly):
//   fp32 storage: 2e-5 (1 + max|cpu|). Both sides compute in fp32 but sum in
//     other orders (tiles of 32/64 keys against OpenBLAS blocks of up to 512)
//     and with other exponentials (CUDA's expf against the CPU's polynomial,
//     a few ulp each); over up to 4000 terms that is ~1e-6 of the partial
//     sums, which are O(1) (softmax weights sum to 1, inputs are in [-1, 1))
//     even where the result itself is small (dv, dq), hence the absolute
//     floor. lse always uses this bound: it is fp32 whatever T is.
//   bf16 storage: 2e-2 max|cpu| + the fp32 bound. The inputs are the same
//     bf16 values on both sides and the arithmetic is fp32, so what differs
//     is the final rounding of each element to bf16 (8-bit mantissa: 2^-9
//     relative); 2e-2 also leaves room for tensor-core kernels that round P
//     to bf16 before P V.
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
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace {

namespace wcpu = weipipe::rt::cpu;
namespace wcuda = weipipe::rt::cuda;
using wcpu::AttentionLayout;
using wcpu::AttentionParams;
using wcpu::MaskKind;
using wcuda::bf16;
using weipipe::rt::Status;
using namespace weipipe::rt::cuda::test;

constexpr float kInf = std::numeric_limits<float>::infinity();

//===----------------------------------------------------------------------===//
// Host helpers
//===----------------------------------------------------------------------===//

/// n elements of T on the default stream (the kernels' here), or of NaN
/// bytes (0xFF: NaN in fp32 and in bf16).
template <class T> Dev<T> upload(const std::vector<T> &h) {
  return wcuda::test::upload(h, nullptr);
}
template <class T> Dev<T> allocateNaN(size_t n) {
  Dev<T> d(n);
  wcuda::test::fill(d, 0xFF, nullptr);
  return d;
}

/// Element offset of (b, head, row, d) in a q/k/v/out-like tensor.
int64_t elementIndex(const AttentionParams &p, int64_t heads, int64_t S,
                     int64_t dim, int64_t b, int64_t h, int64_t i, int64_t d) {
  if (p.layout == AttentionLayout::BHSD)
    return ((b * heads + h) * S + i) * dim + d;
  return ((b * S + i) * heads + h) * dim + d;
}

struct Tolerance {
  double rel, abs; // bound = rel max|cpu| + abs (1 + max|cpu|)
};
constexpr Tolerance kFp32Tol{0.0, 2e-5};
constexpr Tolerance kBf16Tol{2e-2, 2e-5};
template <class T> Tolerance storageTolerance() {
  return std::is_same<T, bf16>::value ? kBf16Tol : kFp32Tol;
}

template <class T>
void expectClose(const char *what, const std::vector<T> &got,
                 const std::vector<float> &ref, Tolerance tol) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  double scale = 0.0;
  for (float r : ref)
    if (std::isfinite(r))
      scale = std::max(scale, std::fabs(double(r)));
  const double bound = tol.rel * scale + tol.abs * (1.0 + scale);
  size_t bad = 0, worst = 0;
  double worstErr = -1.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double g = toFloat(got[i]), r = ref[i];
    const double err = std::isinf(r) ? (g == r ? 0.0 : double(kInf))
                                     : std::fabs(g - r); // NaN if g is
    if (!(err <= bound)) {
      ++bad;
      if (!(err <= worstErr)) {
        worstErr = err;
        worst = i;
      }
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << ref.size()
                     << " elements off by more than " << bound << " (max |cpu| "
                     << scale << "); element " << worst << ": gpu "
                     << (bad ? toFloat(got[worst]) : 0.0f) << ", cpu "
                     << (bad ? ref[worst] : 0.0f);
}

//===----------------------------------------------------------------------===//
// Cases
//===----------------------------------------------------------------------===//

struct Case {
  int64_t B = 1, H = 2, Hkv = 2, Sq = 17, Sk = 17, D = 64, Dv = 64;
  AttentionLayout layout = AttentionLayout::BHSD;
  bool causal = false;
  MaskKind mask = MaskKind::None;
  std::vector<int64_t> maskShape; ///< broadcast to [B, H, Sq, Sk]
  int64_t maskedRow = -1; ///< additive mask ending in [Sq, Sk]: row all -inf
  bool giveLse = true;    ///< backward with the forward's lse, or nullptr
  bool dq = true, dk = true, dv = true;
  uint32_t seed = 1;
  /// Tensor cores: the inputs are drawn as bf16 values whatever T is (the
  /// kernels round fp32 ones to bf16), so the CPU computes on what they read.
  wcuda::AttentionMath math = wcuda::AttentionMath::Fp32;

  std::string str() const {
    std::string s = "B=" + std::to_string(B) + " H=" + std::to_string(H) +
                    " Hkv=" + std::to_string(Hkv) +
                    " Sq=" + std::to_string(Sq) + " Sk=" + std::to_string(Sk) +
                    " D=" + std::to_string(D) + " Dv=" + std::to_string(Dv) +
                    (layout == AttentionLayout::BHSD ? " BHSD" : " BSHD") +
                    (causal ? " causal" : "");
    if (mask != MaskKind::None) {
      s += mask == MaskKind::Additive ? " additive[" : " keep[";
      for (size_t i = 0; i < maskShape.size(); ++i)
        s += (i ? "," : "") + std::to_string(maskShape[i]);
      s += "]";
      if (maskedRow >= 0)
        s += " maskedRow=" + std::to_string(maskedRow);
    }
    if (!giveLse)
      s += " noLse";
    s += std::string(" grads:") + (dq ? " dq" : "") + (dk ? " dk" : "") +
         (dv ? " dv" : "");
    if (tensorCores())
      s += " tensor cores";
    return s;
  }
  bool tensorCores() const {
    return math == wcuda::AttentionMath::TensorCoresBf16;
  }
};

template <class T> struct Inputs {
  AttentionParams p; ///< mask pointers on the host
  std::vector<T> q, k, v, dout;
  std::vector<float> qf, kf, vf, doutf; ///< the same values in fp32
  std::vector<float> additive;
  std::vector<uint8_t> keep;
  int64_t nq = 0, nk = 0, nv = 0, no = 0, nl = 0; ///< element counts
};

/// Uniform in [-1, 1) from the raw 32-bit draws (the same numbers with every
/// standard library, unlike std::uniform_real_distribution).
float uniform(std::mt19937 &rng) {
  return float(double(rng()) * (2.0 / 4294967296.0) - 1.0);
}

/// n values in [-1, 1), rounded to bf16 first where `asBf16`.
template <class T>
void fill(std::mt19937 &rng, int64_t n, std::vector<T> &t,
          std::vector<float> &f, bool asBf16) {
  t.resize(size_t(n));
  f.resize(size_t(n));
  for (size_t i = 0; i < size_t(n); ++i) {
    const float x = uniform(rng);
    t[i] = fromFloat<T>(asBf16 ? toFloat(fromFloat<bf16>(x)) : x);
    f[i] = toFloat(t[i]);
  }
}

template <class T> Inputs<T> makeInputs(const Case &c) {
  Inputs<T> in;
  AttentionParams &p = in.p;
  p.B = c.B;
  p.H = c.H;
  p.Hkv = c.Hkv;
  p.Sq = c.Sq;
  p.Sk = c.Sk;
  p.D = c.D;
  p.Dv = c.Dv;
  p.layout = c.layout;
  p.causal = c.causal;
  p.scale = float(1.0 / std::sqrt(double(c.D)));
  in.nq = c.B * c.H * c.Sq * c.D;
  in.nk = c.B * c.Hkv * c.Sk * c.D;
  in.nv = c.B * c.Hkv * c.Sk * c.Dv;
  in.no = c.B * c.H * c.Sq * c.Dv;
  in.nl = c.B * c.H * c.Sq;
  std::mt19937 rng(c.seed);
  const bool asBf16 = c.tensorCores();
  fill(rng, in.nq, in.q, in.qf, asBf16);
  fill(rng, in.nk, in.k, in.kf, asBf16);
  fill(rng, in.nv, in.v, in.vf, asBf16);
  fill(rng, in.no, in.dout, in.doutf, asBf16);
  if (c.mask != MaskKind::None) {
    p.mask.kind = c.mask;
    p.mask.shape = wcpu::Shape(c.maskShape);
    const int64_t n = p.mask.shape.numel();
    if (c.mask == MaskKind::Additive) {
      in.additive.resize(size_t(n));
      for (int64_t i = 0; i < n; ++i) {
        // About one in eight masked; the row c.maskedRow entirely.
        const bool masked =
            rng() % 8 == 0 ||
            (c.maskedRow >= 0 && (i / c.Sk) % c.Sq == c.maskedRow);
        const float x = uniform(rng);
        in.additive[size_t(i)] = masked ? -kInf : x;
      }
      p.mask.additive = in.additive.data();
    } else {
      in.keep.resize(size_t(n));
      for (int64_t i = 0; i < n; ++i)
        in.keep[size_t(i)] = rng() % 4 != 0;
      p.mask.keep = in.keep.data();
    }
  }
  return in;
}

/// What the GPU produced for one case.
template <class T> struct GpuResult {
  std::vector<T> out, dq, dk, dv;
  std::vector<float> lse;
};

/// The forward, then the backward on `outForBackward` (the values both sides
/// of the comparison use) and dout, with the forward's lse or none.
template <class T>
void runGpu(const Case &c, const Inputs<T> &in,
            const std::vector<T> &outForBackward, GpuResult<T> &r) {
  const Dev<T> q = upload(in.q), k = upload(in.k), v = upload(in.v);
  AttentionParams dp = in.p; // the mask on the device
  Dev<float> additive(0);
  Dev<uint8_t> keep(0);
  if (c.mask == MaskKind::Additive) {
    additive = upload(in.additive);
    dp.mask.additive = additive.get();
  } else if (c.mask == MaskKind::Keep) {
    keep = upload(in.keep);
    dp.mask.keep = keep.get();
  }
  const Dev<T> out = allocateNaN<T>(size_t(in.no));
  const Dev<float> lse = allocateNaN<float>(size_t(in.nl));
  Status st = wcuda::attention_forward<T>(
      dp, q.get(), k.get(), v.get(), out.get(), lse.get(), nullptr, c.math);
  ASSERT_TRUE(st.ok()) << st.message();
  r.out = download(out, nullptr);
  r.lse = download(lse, nullptr);

  const Dev<T> o = upload(outForBackward), dout = upload(in.dout);
  const Dev<T> dq = allocateNaN<T>(size_t(in.nq)),
               dk = allocateNaN<T>(size_t(in.nk)),
               dv = allocateNaN<T>(size_t(in.nv));
  // NaN too: Dr and the recomputed lse must be written before they are read.
  const uint64_t wsBytes = wcuda::attentionBackwardWorkspaceBytes(dp);
  const Dev<uint8_t> ws = allocateNaN<uint8_t>(size_t(wsBytes));
  st = wcuda::attention_backward<T>(
      dp, q.get(), k.get(), v.get(), o.get(), c.giveLse ? lse.get() : nullptr,
      dout.get(), c.dq ? dq.get() : nullptr, c.dk ? dk.get() : nullptr,
      c.dv ? dv.get() : nullptr, ws.get(), nullptr, c.math);
  ASSERT_TRUE(st.ok()) << st.message();
  r.dq = download(dq, nullptr);
  r.dk = download(dk, nullptr);
  r.dv = download(dv, nullptr);
}

/// The CPU's out rounded to T: the out both backward passes take.
template <class T> std::vector<T> storedOut(const std::vector<float> &outRef) {
  std::vector<T> o(outRef.size());
  for (size_t i = 0; i < o.size(); ++i)
    o[i] = fromFloat<T>(outRef[i]);
  return o;
}

template <class T> void runCase(const Case &c) {
  SCOPED_TRACE(c.str() + " " + typeName<T>());
  const Inputs<T> in = makeInputs<T>(c);
  const AttentionParams &p = in.p;

  std::vector<float> outRef(size_t(in.no)), lseRef(size_t(in.nl));
  wcpu::attention_forward(p, in.qf.data(), in.kf.data(), in.vf.data(),
                          outRef.data(), lseRef.data());
  const std::vector<T> outT = storedOut<T>(outRef);
  std::vector<float> outF(outT.size());
  for (size_t i = 0; i < outT.size(); ++i)
    outF[i] = toFloat(outT[i]);
  std::vector<float> dqRef(size_t(in.nq)), dkRef(size_t(in.nk)),
      dvRef(size_t(in.nv));
  wcpu::attention_backward(p, in.qf.data(), in.kf.data(), in.vf.data(),
                           outF.data(), c.giveLse ? lseRef.data() : nullptr,
                           in.doutf.data(), dqRef.data(), dkRef.data(),
                           dvRef.data());

  GpuResult<T> r;
  ASSERT_NO_FATAL_FAILURE(runGpu(c, in, outT, r));
  const Tolerance tol = c.tensorCores() ? kBf16Tol : storageTolerance<T>();
  expectClose("out", r.out, outRef, tol);
  expectClose("lse", r.lse, lseRef, kFp32Tol);
  if (c.dq)
    expectClose("dq", r.dq, dqRef, tol);
  if (c.dk)
    expectClose("dk", r.dk, dkRef, tol);
  if (c.dv)
    expectClose("dv", r.dv, dvRef, tol);

  if (c.maskedRow >= 0 && c.maskedRow < c.Sq) // no allowed key: 0 and -inf
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t h = 0; h < c.H; ++h) {
        EXPECT_EQ(r.lse[size_t((b * c.H + h) * c.Sq + c.maskedRow)], -kInf);
        for (int64_t d = 0; d < c.Dv; ++d)
          EXPECT_EQ(toFloat(r.out[size_t(elementIndex(p, c.H, c.Sq, c.Dv, b, h,
                                                      c.maskedRow, d))]),
                    0.0f);
      }
}

/// The case with fp32 math, then on tensor cores (--precision bf16).
template <class T> void runBoth(Case c) {
  runCase<T>(c);
  c.math = wcuda::AttentionMath::TensorCoresBf16;
  runCase<T>(c);
}

class CudaAttentionTest : public CudaTest {};

struct Lengths {
  int64_t Sq, Sk;
};

//===----------------------------------------------------------------------===//
// Tests
//===----------------------------------------------------------------------===//

// Lengths around and off the tile sizes (64-row tiles, 32/64-key tiles).
TEST_F(CudaAttentionTest, SequenceLengths) {
  for (Lengths n :
       {Lengths{1, 1}, Lengths{17, 17}, Lengths{64, 65}, Lengths{128, 128},
        Lengths{257, 1000}, Lengths{1000, 257}}) {
    Case c;
    c.B = 2;
    c.H = 2;
    c.Hkv = 1;
    c.Sq = n.Sq;
    c.Sk = n.Sk;
    runBoth<float>(c);
    if (n.Sq != 64)
      runBoth<bf16>(c);
  }
}

// Top-left aligned causal masks with Sq == Sk, Sq < Sk and Sq > Sk, head dim
// 128, both layouts.
TEST_F(CudaAttentionTest, Causal) {
  for (Lengths n :
       {Lengths{1, 5}, Lengths{257, 257}, Lengths{100, 300}, Lengths{300, 100}})
    for (AttentionLayout l : {AttentionLayout::BHSD, AttentionLayout::BSHD}) {
      Case c;
      c.H = 4;
      c.Hkv = 2;
      c.Sq = n.Sq;
      c.Sk = n.Sk;
      c.D = c.Dv = 128;
      c.layout = l;
      c.causal = true;
      runBoth<float>(c);
      runBoth<bf16>(c);
    }
}

// Padded head dims (40 -> 64, 16 -> 32) and D != Dv.
TEST_F(CudaAttentionTest, HeadDims) {
  const int64_t dims[][2] = {{40, 40}, {16, 16}, {32, 64}, {128, 64}, {64, 96}};
  for (const auto &d : dims)
    for (bool causal : {false, true}) {
      Case c;
      c.Sq = 70;
      c.Sk = 90;
      c.D = d[0];
      c.Dv = d[1];
      c.causal = causal;
      c.layout = causal ? AttentionLayout::BSHD : AttentionLayout::BHSD;
      runBoth<float>(c);
      runBoth<bf16>(c);
    }
}

// GQA groups of 1, 2 and 4 query heads per kv head (dk/dv sum the group).
TEST_F(CudaAttentionTest, GqaGroups) {
  for (int64_t hkv : {4, 2, 1})
    for (bool causal : {false, true}) {
      Case c;
      c.B = 2;
      c.H = 4;
      c.Hkv = hkv;
      c.Sq = 130;
      c.Sk = 150;
      c.causal = causal;
      c.layout = hkv == 2 ? AttentionLayout::BSHD : AttentionLayout::BHSD;
      runBoth<float>(c);
      runBoth<bf16>(c);
    }
}

// An additive mask with -inf entries and a fully masked row (out 0, lse -inf,
// finite gradients), as [1, 1, Sq, Sk] and as the rank-2 [Sq, Sk].
TEST_F(CudaAttentionTest, AdditiveMask) {
  for (bool causal : {false, true})
    for (bool rank2 : {false, true}) {
      Case c;
      c.B = 2;
      c.Sq = 100;
      c.Sk = 140;
      c.causal = causal;
      c.mask = MaskKind::Additive;
      c.maskShape = rank2 ? std::vector<int64_t>{c.Sq, c.Sk}
                          : std::vector<int64_t>{1, 1, c.Sq, c.Sk};
      c.maskedRow = 37;
      runBoth<float>(c);
      runBoth<bf16>(c);
      c.giveLse = false;
      runBoth<float>(c);
    }
}

// A keep (i1) mask per batch and key, [B, 1, 1, Sk].
TEST_F(CudaAttentionTest, KeepMask) {
  for (bool causal : {false, true}) {
    Case c;
    c.B = 3;
    c.H = 4;
    c.Hkv = 2;
    c.Sq = 90;
    c.Sk = 200;
    c.causal = causal;
    c.layout = AttentionLayout::BSHD;
    c.mask = MaskKind::Keep;
    c.maskShape = {c.B, 1, 1, c.Sk};
    runBoth<float>(c);
    runBoth<bf16>(c);
  }
}

// lse may be nullptr in the forward: the same out, bitwise.
TEST_F(CudaAttentionTest, ForwardWithoutLse) {
  for (wcuda::AttentionMath math :
       {wcuda::AttentionMath::Fp32, wcuda::AttentionMath::TensorCoresBf16}) {
    Case c;
    c.H = 4;
    c.Hkv = 2;
    c.Sq = 150;
    c.Sk = 200;
    c.causal = true;
    c.math = math;
    SCOPED_TRACE(c.str());
    const Inputs<bf16> in = makeInputs<bf16>(c);
    GpuResult<bf16> r;
    ASSERT_NO_FATAL_FAILURE(runGpu(c, in, in.dout, r));
    const Dev<bf16> q = upload(in.q), k = upload(in.k), v = upload(in.v);
    const Dev<bf16> out = allocateNaN<bf16>(size_t(in.no));
    Status st = wcuda::attention_forward<bf16>(
        in.p, q.get(), k.get(), v.get(), out.get(), nullptr, nullptr, math);
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_TRUE(sameBits("out without lse", download(out, nullptr), r.out));
  }
}

// Without lse the backward recomputes it into the workspace.
TEST_F(CudaAttentionTest, BackwardWithoutLse) {
  for (bool causal : {false, true}) {
    Case c;
    c.H = 4;
    c.Hkv = 1;
    c.Sq = 300;
    c.Sk = 600;
    c.causal = causal;
    c.giveLse = false;
    runBoth<float>(c);
    runBoth<bf16>(c);
  }
}

// Any of dq, dk, dv may be nullptr.
TEST_F(CudaAttentionTest, PartialGradients) {
  const bool sets[][3] = {{true, false, false},
                          {false, true, false},
                          {false, false, true},
                          {false, true, true},
                          {true, false, true}};
  for (const auto &s : sets)
    for (bool giveLse : {true, false}) {
      Case c;
      c.H = 2;
      c.Hkv = 1;
      c.Sq = 80;
      c.Sk = 100;
      c.causal = true;
      c.dq = s[0];
      c.dk = s[1];
      c.dv = s[2];
      c.giveLse = giveLse;
      runBoth<float>(c);
    }
}

// No keys: every row is fully masked. No queries: dk = dv = 0.
TEST_F(CudaAttentionTest, EmptySequences) {
  Case c;
  c.Sq = 5;
  c.Sk = 0;
  runBoth<float>(c);
  c.Sq = 0;
  c.Sk = 7;
  runBoth<float>(c);
}

// Bitwise the same results from run to run (no atomics).
TEST_F(CudaAttentionTest, Deterministic) {
  for (wcuda::AttentionMath math :
       {wcuda::AttentionMath::Fp32, wcuda::AttentionMath::TensorCoresBf16}) {
    Case c;
    c.B = 2;
    c.H = 4;
    c.Hkv = 1;
    c.Sq = 300;
    c.Sk = 300;
    c.causal = true;
    c.math = math;
    SCOPED_TRACE(c.str());
    {
      const Inputs<float> in = makeInputs<float>(c);
      const std::vector<float> o(size_t(in.no), 0.01f);
      GpuResult<float> a, b;
      ASSERT_NO_FATAL_FAILURE(runGpu(c, in, o, a));
      ASSERT_NO_FATAL_FAILURE(runGpu(c, in, o, b));
      EXPECT_TRUE(a.out == b.out && a.lse == b.lse && a.dq == b.dq &&
                  a.dk == b.dk && a.dv == b.dv);
    }
    {
      const Inputs<bf16> in = makeInputs<bf16>(c);
      const std::vector<bf16> o(size_t(in.no), fromFloat<bf16>(0.01f));
      GpuResult<bf16> a, b;
      ASSERT_NO_FATAL_FAILURE(runGpu(c, in, o, a));
      ASSERT_NO_FATAL_FAILURE(runGpu(c, in, o, b));
      auto same = [](const std::vector<bf16> &x, const std::vector<bf16> &y) {
        return x.size() == y.size() &&
               (x.empty() ||
                std::memcmp(x.data(), y.data(), x.size() * sizeof(bf16)) == 0);
      };
      EXPECT_TRUE(same(a.out, b.out) && a.lse == b.lse && same(a.dq, b.dq) &&
                  same(a.dk, b.dk) && same(a.dv, b.dv));
    }
  }
}

// A long causal sequence at the head dim of the large models (1024 under
// emulation, a sixteenth of the work: still 16 query tiles against up to
// 32 key tiles each).
TEST_F(CudaAttentionTest, LongCausalBf16) {
  Case c;
  c.H = 2;
  c.Hkv = 1;
  c.Sq = c.Sk = int64_t(sizeFor(4096, 1024));
  c.D = c.Dv = 128;
  c.causal = true;
  runBoth<bf16>(c);
}

// The support check needs no device.
TEST(CudaAttentionSupport, HeadDimsAndShapes) {
  AttentionParams p;
  p.B = 2;
  p.H = 8;
  p.Hkv = 2;
  p.Sq = 65536;
  p.Sk = 65536;
  for (int64_t d : {1, 40, 64, 128}) {
    p.D = p.Dv = d;
    Status st = wcuda::attentionSupported(p);
    EXPECT_TRUE(st.ok()) << d << ": " << st.message();
  }
  p.D = 256;
  p.Dv = 128;
  Status st = wcuda::attentionSupported(p);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("256"), std::string::npos) << st.message();
  p.D = 128;
  p.Dv = 256;
  st = wcuda::attentionSupported(p);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("256"), std::string::npos) << st.message();

  p.Dv = 64;
  p.Hkv = 3; // 8 query heads do not group over 3 kv heads
  EXPECT_FALSE(wcuda::attentionSupported(p).ok());
  p.Hkv = 2;
  const float dummy = 0.0f;
  p.mask.kind = MaskKind::Additive;
  p.mask.additive = &dummy; // never read by the check
  p.mask.shape = wcpu::Shape(std::vector<int64_t>{2, 1, 1, p.Sk});
  st = wcuda::attentionSupported(p);
  EXPECT_TRUE(st.ok()) << st.message();
  p.mask.shape = wcpu::Shape(std::vector<int64_t>{3, 1, 1, p.Sk});
  EXPECT_FALSE(wcuda::attentionSupported(p).ok());

  // Dr and lse, each [B, H, Sq] fp32 rounded up to 256 bytes.
  p.Sq = 100;
  EXPECT_EQ(wcuda::attentionBackwardWorkspaceBytes(p), 2u * 6400u);
}

} // namespace
