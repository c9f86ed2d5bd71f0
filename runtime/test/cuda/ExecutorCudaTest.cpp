//===- ExecutorCudaTest.cpp - the executor on the GPU against the CPU -----===//
//
// Part of weipipe's runtime tests. Hand-built artifacts (those shared with
// test/ExecutorTest.cpp in test/ExecutorTestArtifacts.h) run on the CPU
// executor and on the CUDA executor (ExecutorOptions{Device::Cuda,
// precision}, src/cuda/Backend.cpp), and every result is compared: the
// loss, the arena (through `logits()`), every gradient (device pointers,
// downloaded with cudaMemcpy). Also the data
// errors of the device kernels (named as on the CPU, the executor usable
// afterwards), the device optimizer step against the CPU trainer's
// arithmetic, the non-finite search, and the option checks.
//
// Built twice: into weipipe_cuda_tests (the real backend; the tests skip
// without a GPU) and into the emulated weipipe_cuda_emu_tests (test/cuda-emu:
// the kernels and a cuBLASLt stand-in on the CPU), where they always run.
//
// Tolerances (relative to the largest reference element of each tensor):
//  * fp32: the device sums in other orders than the CPU (cuBLASLt's or the
//    emulation's k order against OpenBLAS's blocked FMAs; tree reductions in
//    the loss, norm and attention kernels against the CPU's loops). Every
//    sum here has at most a few dozen terms of values ~1, so the difference
//    is a few ulps (2^-24 ~ 6e-8) of the partial sums: ~1e-6 of the largest
//    element at worst; 1e-5 leaves a margin of ten.
//  * bf16 (--precision bf16): every GEMM input is rounded to bf16 (8-bit
//    significand: a relative error up to 2^-9 each, 2^-8 per product); the
//    products of a sum err independently, so a sum's error is ~2^-8 of the
//    sum of |products|, which with these sizes (K <= 8, values in [-1, 1])
//    stays within a few times the largest result: ~4e-3 of max|ref| at the
//    worst, and it passes through the loss and the backward GEMMs (rounded
//    again). 2e-2 (a margin of ~5) still catches a wrong operand, transpose
//    or missing term, each of which is O(1).
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/Executor.h"
#include "weipipe/runtime/cpu/Kernels.h"
#include "weipipe/runtime/cuda/Device.h"

#include "../ExecutorTestArtifacts.h"
#include "CudaTestUtil.h"

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

using namespace weipipe::rt;
using namespace weipipe::rt::test;
namespace k = weipipe::rt::cpu;
namespace cu = weipipe::rt::cuda;
using weipipe::rt::cuda::test::CudaTest;
using weipipe::rt::cuda::test::relCloseFinite;
using weipipe::rt::cuda::test::sameBits;

namespace {

constexpr double kF32Tol = 1e-5;  // see the file comment
constexpr double kBf16Tol = 2e-2; // see the file comment

//===----------------------------------------------------------------------===//
// Running and reading both executors
//===----------------------------------------------------------------------===//

std::unique_ptr<Executor> make(const Artifact &a, const std::string &dir,
                               Device d, Precision p = Precision::Fp32) {
  std::string err;
  auto ex = Executor::create(a, dir, &err, nullptr, 0, ExecutorOptions{d, p});
  EXPECT_TRUE(ex) << deviceName(d) << ": " << err;
  return ex;
}

/// n floats of the executor's memory at p (a device address on a GPU).
std::vector<float> readFloats(const Executor &ex, const float *p, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  if (n == 0)
    return v;
  if (ex.onDevice()) {
    const cudaError_t e =
        cudaMemcpy(v.data(), p, size_t(n) * 4, cudaMemcpyDeviceToHost);
    EXPECT_EQ(e, cudaSuccess) << cudaGetErrorString(e);
  } else {
    std::memcpy(v.data(), p, size_t(n) * 4);
  }
  return v;
}

void writeFloats(const Executor &ex, float *p, const std::vector<float> &v) {
  if (v.empty())
    return;
  if (ex.onDevice()) {
    const cudaError_t e =
        cudaMemcpy(p, v.data(), v.size() * 4, cudaMemcpyHostToDevice);
    ASSERT_EQ(e, cudaSuccess) << cudaGetErrorString(e);
  } else {
    std::memcpy(p, v.data(), v.size() * 4);
  }
}

std::vector<float> grad(Executor &ex, size_t i) {
  return readFloats(ex, ex.params()[i].grad, ex.params()[i].numel);
}
std::vector<float> value(Executor &ex, size_t i) {
  return readFloats(ex, ex.params()[i].value, ex.params()[i].numel);
}

/// The bytes of an arena ref (the artifact exposes the arena as its logits;
/// logits() is a host copy on a device executor).
std::vector<uint8_t> arenaBytes(const Executor &ex, const TensorRef &r) {
  const uint8_t *base = reinterpret_cast<const uint8_t *>(ex.logits());
  return std::vector<uint8_t>(base + r.offset, base + r.offset + r.bytes());
}
std::vector<float> arenaFloats(const Executor &ex, const TensorRef &r) {
  const std::vector<uint8_t> b = arenaBytes(ex, r);
  std::vector<float> v(b.size() / 4);
  if (!v.empty())
    std::memcpy(v.data(), b.data(), b.size());
  return v;
}

/// CudaTest: skips where deviceCount() finds no GPU (device 0 otherwise).
class ExecutorCuda : public CudaTest {};

/// The tiny model on the CPU and on the GPU, one micro-batch (twice with
/// `twice`): loss, logits, both gradients within tol.
void compareTiny(Precision prec, double tol, const char *tag) {
  Tiny t = makeTiny();
  auto cpuEx = make(t.a, t.dir, Device::Cpu);
  auto gpuEx = make(t.a, t.dir, Device::Cuda, prec);
  ASSERT_TRUE(cpuEx && gpuEx);
  EXPECT_EQ(gpuEx->options().precision, prec);
  EXPECT_TRUE(gpuEx->onDevice());
  EXPECT_HAS(gpuEx->deviceDescription(), "cuda: ");
  // Loaded from their file offsets (uploaded bit for bit).
  EXPECT_TRUE(sameBits("emb loaded", value(*gpuEx, 0), t.emb));
  EXPECT_TRUE(sameBits("w loaded", value(*gpuEx, 1), t.w));
  const std::string p = std::string(tag) + " tiny ";
  for (int mb = 1; mb <= 2; ++mb) {
    float lc = 0, lg = 0;
    ASSERT_TRUE(
        cpuEx->runMicrobatch(kIds.data(), kTargets.data(), 0.5f, &lc).ok());
    const k::Status st =
        gpuEx->runMicrobatch(kIds.data(), kTargets.data(), 0.5f, &lg);
    ASSERT_TRUE(st.ok()) << st.message();
    const std::string q = p + "mb " + std::to_string(mb) + " ";
    EXPECT_GT(lc, 0.5f);
    EXPECT_TRUE(relCloseFinite(q + "loss", lg, lc, tol));
    const std::vector<float> lgts = readFloats(*cpuEx, cpuEx->logits(), N * V);
    const float *gl = gpuEx->logits();
    const std::vector<float> glv(gl, gl + N * V);
    EXPECT_TRUE(relCloseFinite(q + "logits", glv, lgts, tol));
    if (prec == Precision::Bf16) { // the bf16 products are in effect
      double worst = 0;
      for (size_t i = 0; i < glv.size(); ++i)
        worst = std::max(worst, double(std::fabs(glv[i] - lgts[i])));
      EXPECT_GT(worst, 1e-4) << "--precision bf16 changed no logit";
    }
    // The gradients accumulate over the two micro-batches (the flag).
    EXPECT_TRUE(
        relCloseFinite(q + "d emb", grad(*gpuEx, 0), grad(*cpuEx, 0), tol));
    EXPECT_TRUE(
        relCloseFinite(q + "d w", grad(*gpuEx, 1), grad(*cpuEx, 1), tol));
  }
  // zeroGrads on the device, then runForward alone: the same loss, no
  // gradient.
  gpuEx->zeroGrads();
  float fc = 0, fg = 0;
  ASSERT_TRUE(cpuEx->runForward(kIds.data(), kTargets.data(), &fc).ok());
  ASSERT_TRUE(gpuEx->runForward(kIds.data(), kTargets.data(), &fg).ok());
  EXPECT_TRUE(relCloseFinite(p + "runForward loss", fg, fc, tol));
  for (size_t i = 0; i < 2; ++i)
    for (float g : grad(*gpuEx, i))
      ASSERT_EQ(g, 0.0f) << "parameter " << i << " after zeroGrads";
}

} // namespace

//===----------------------------------------------------------------------===//
// Options (no device needed)
//===----------------------------------------------------------------------===//

TEST(ExecutorOptions, Bf16OnTheCpuIsRefusedNamingPrecision) {
  Tiny t = makeTiny();
  std::string err;
  EXPECT_FALSE(Executor::create(t.a, t.dir, &err, nullptr, 0,
                                ExecutorOptions{Device::Cpu, Precision::Bf16}));
  EXPECT_HAS(err, "--precision bf16");
  EXPECT_HAS(err, "--device cuda");
}

//===----------------------------------------------------------------------===//
// The tiny model
//===----------------------------------------------------------------------===//

TEST_F(ExecutorCuda, TinyModelF32MatchesCpu) {
  compareTiny(Precision::Fp32, kF32Tol, "f32");
}

TEST_F(ExecutorCuda, TinyModelBf16MatchesCpu) {
  compareTiny(Precision::Bf16, kBf16Tol, "bf16");
}

// Without the flag, weight-gradient instructions zero their result first;
// the Accumulate instruction always adds.
TEST_F(ExecutorCuda, AccumulateFlag) {
  Tiny t = makeTiny(/*accumulate=*/false);
  auto cpuEx = make(t.a, t.dir, Device::Cpu);
  auto gpuEx = make(t.a, t.dir, Device::Cuda);
  ASSERT_TRUE(cpuEx && gpuEx);
  float loss;
  ASSERT_TRUE(
      cpuEx->runMicrobatch(kIds.data(), kTargets.data(), 1.0f, &loss).ok());
  for (int rep = 0; rep < 2; ++rep)
    ASSERT_TRUE(
        gpuEx->runMicrobatch(kIds.data(), kTargets.data(), 1.0f, &loss).ok());
  EXPECT_TRUE(relCloseFinite("no flag, 2 mb: d emb", grad(*gpuEx, 0),
                             grad(*cpuEx, 0), kF32Tol));
  EXPECT_TRUE(relCloseFinite("no flag, 2 mb: d w", grad(*gpuEx, 1),
                             grad(*cpuEx, 1), kF32Tol));

  const std::vector<float> g = {1.0f, -2.0f, 0.5f, 4.0f};
  const Artifact a = accumulateArtifact(g);
  auto acc = make(a, t.dir, Device::Cuda);
  ASSERT_TRUE(acc);
  for (int rep = 0; rep < 3; ++rep)
    ASSERT_TRUE(acc->runMicrobatch(nullptr, nullptr, 1.0f, nullptr).ok());
  EXPECT_EQ(grad(*acc, 0), (std::vector<float>{3.0f, -6.0f, 1.5f, 12.0f}));
}

// An id out of range is found by the device kernel, reported at the end of
// the micro-batch naming the instruction as the CPU does, and the record is
// cleared: the next good micro-batch succeeds and is right.
TEST_F(ExecutorCuda, DataErrorNamesTheInstructionAndClears) {
  Tiny t = makeTiny(/*accumulate=*/false);
  auto cpuEx = make(t.a, t.dir, Device::Cpu);
  auto gpuEx = make(t.a, t.dir, Device::Cuda);
  ASSERT_TRUE(cpuEx && gpuEx);
  std::vector<int64_t> ids = kIds;
  ids[3] = 99;
  // Both name the instruction and the id in the same words.
  const std::string where = "function 'forward', instruction 0 (embedding "
                            "'wte'): ";
  float loss = 0;
  k::Status st = cpuEx->runMicrobatch(ids.data(), kTargets.data(), 1.0f, &loss);
  ASSERT_FALSE(st.ok());
  EXPECT_HAS(st.message(), where);
  EXPECT_HAS(st.message(), "id 99 at position 3");
  const std::string cpuMessage = st.message();
  st = gpuEx->runMicrobatch(ids.data(), kTargets.data(), 1.0f, &loss);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), cpuMessage);
  EXPECT_EQ(st.message(),
            where + "embedding: id 99 at position 3 is outside the table of "
                    "8 rows");

  // A bad target: the cross-entropy's record.
  std::vector<int64_t> targets = kTargets;
  targets[1] = 9;
  st = cpuEx->runMicrobatch(kIds.data(), targets.data(), 1.0f, &loss);
  ASSERT_FALSE(st.ok());
  const std::string cpuTarget = st.message();
  st = gpuEx->runMicrobatch(kIds.data(), targets.data(), 1.0f, &loss);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), cpuTarget);
  EXPECT_HAS(st.message(),
             "function 'forward', instruction 2 (cross_entropy 'loss')");
  EXPECT_HAS(st.message(), "target 9 at row 1 is outside [0, 8)");

  float lc = 0, lg = 0;
  ASSERT_TRUE(
      cpuEx->runMicrobatch(kIds.data(), kTargets.data(), 1.0f, &lc).ok());
  st = gpuEx->runMicrobatch(kIds.data(), kTargets.data(), 1.0f, &lg);
  ASSERT_TRUE(st.ok()) << "after a data error: " << st.message();
  EXPECT_TRUE(relCloseFinite("after the errors: loss", lg, lc, kF32Tol));
  EXPECT_TRUE(relCloseFinite("after the errors: d emb", grad(*gpuEx, 0),
                             grad(*cpuEx, 0), kF32Tol));
  EXPECT_TRUE(relCloseFinite("after the errors: d w", grad(*gpuEx, 1),
                             grad(*cpuEx, 1), kF32Tol));
  // And again: nothing left over.
  st = gpuEx->runMicrobatch(kIds.data(), kTargets.data(), 1.0f, &lg);
  EXPECT_TRUE(st.ok()) << st.message();
}

//===----------------------------------------------------------------------===//
// The optimizer step
//===----------------------------------------------------------------------===//

// optimizerStep (the device's global norm, clipping factor and AdamW)
// against cpu::global_norm, cpu::clip_scale and cpu::adamw_step, as the CPU
// trainer applies them. After the same micro-batch the gradients agree
// within the fp32 tolerance; then the CPU's gradients are copied to the
// device, so that both sides step from identical inputs: the norm agrees to
// double rounding and the parameters bit for bit, over two steps (the
// moments kept on the device).
TEST_F(ExecutorCuda, OptimizerStepMatchesTheCpuTrainer) {
  Tiny t = makeTiny();
  auto cpuEx = make(t.a, t.dir, Device::Cpu);
  auto gpuEx = make(t.a, t.dir, Device::Cuda);
  ASSERT_TRUE(cpuEx && gpuEx);
  float loss;
  ASSERT_TRUE(
      cpuEx->runMicrobatch(kIds.data(), kTargets.data(), 1.0f, &loss).ok());
  ASSERT_TRUE(
      gpuEx->runMicrobatch(kIds.data(), kTargets.data(), 1.0f, &loss).ok());
  for (size_t i = 0; i < 2; ++i)
    ASSERT_TRUE(relCloseFinite("grad " + std::to_string(i) + " before the step",
                               grad(*gpuEx, i), grad(*cpuEx, i), kF32Tol));

  std::vector<ParamBuffers> &cp = cpuEx->params();
  std::vector<k::AdamWConfig> configs(2);
  configs[0] = {1e-2, 0.9, 0.95, 1e-8, 0.1};
  configs[1] = {3e-3, 0.8, 0.999, 1e-6, 0.0};
  std::vector<std::vector<float>> m(2), v(2);
  for (size_t i = 0; i < 2; ++i) {
    m[i].assign(size_t(cp[i].numel), 0.0f);
    v[i].assign(size_t(cp[i].numel), 0.0f);
  }
  for (int64_t step = 1; step <= 2; ++step) {
    const std::string tag = "step " + std::to_string(step) + ": ";
    if (step == 2) { // new gradients, the same on both sides
      for (size_t i = 0; i < 2; ++i) {
        const std::vector<float> g = values(size_t(cp[i].numel), 40 + i);
        std::memcpy(cp[i].grad, g.data(), g.size() * 4);
      }
    }
    for (size_t i = 0; i < 2; ++i)
      writeFloats(*gpuEx, gpuEx->params()[i].grad, grad(*cpuEx, i));
    std::vector<const float *> ptrs = {cp[0].grad, cp[1].grad};
    std::vector<int64_t> sizes = {cp[0].numel, cp[1].numel};
    const double norm = k::global_norm(ptrs, sizes);
    // Clip to half the norm: the factor is in play.
    const double clip = 0.5 * norm;
    const float scale = k::clip_scale(norm, clip);
    ASSERT_LT(scale, 1.0f);
    for (size_t i = 0; i < 2; ++i)
      k::adamw_step(cp[i].value, cp[i].grad, m[i].data(), v[i].data(),
                    cp[i].numel, configs[i], step, scale);
    double gpuNorm = -1;
    const k::Status st = gpuEx->optimizerStep(configs, step, clip, &gpuNorm);
    ASSERT_TRUE(st.ok()) << st.message();
    std::printf("[cuda] %sglobal norm gpu %.17g cpu %.17g\n", tag.c_str(),
                gpuNorm, norm);
    EXPECT_NEAR(gpuNorm, norm, 1e-12 * norm) << tag;
    for (size_t i = 0; i < 2; ++i)
      EXPECT_TRUE(sameBits(tag + cp[i].desc->name + " after AdamW",
                           value(*gpuEx, i), value(*cpuEx, i)));
  }
  // Without clipping (gradClip 0) the norm is still reported.
  double n0 = -1;
  ASSERT_TRUE(gpuEx->optimizerStep(configs, 3, 0.0, &n0).ok());
  EXPECT_GT(n0, 0.0);
  // The CPU executor has no device optimizer.
  EXPECT_FALSE(cpuEx->optimizerStep(configs, 1, 0.0, &n0).ok());
}

//===----------------------------------------------------------------------===//
// The non-finite search
//===----------------------------------------------------------------------===//

TEST_F(ExecutorCuda, FindFirstNonFiniteNamesTheSameInstruction) {
  const Artifact a = nonFiniteArtifact();
  auto cpuEx = make(a, "", Device::Cpu);
  auto gpuEx = make(a, "", Device::Cuda);
  ASSERT_TRUE(cpuEx && gpuEx);
  const std::string want =
      "function 'forward', instruction 0 (unary 'log of c'): result 0 has 1 "
      "non-finite values (first at element 1 = nan)";
  EXPECT_EQ(cpuEx->findFirstNonFinite(nullptr, nullptr, 1.0f), want);
  EXPECT_EQ(gpuEx->findFirstNonFinite(nullptr, nullptr, 1.0f), want);

  // A clean run finds nothing; a non-finite parameter is named as such.
  Tiny t = makeTiny();
  auto tiny = make(t.a, t.dir, Device::Cuda);
  ASSERT_TRUE(tiny);
  EXPECT_EQ(tiny->findFirstNonFinite(kIds.data(), kTargets.data(), 1.0f), "");
  std::vector<float> w = value(*tiny, 1);
  w[6] = INFINITY;
  writeFloats(*tiny, tiny->params()[1].value, w);
  EXPECT_EQ(tiny->findFirstNonFinite(kIds.data(), kTargets.data(), 1.0f),
            "parameter 'w' has 1 non-finite values (first at element 6 = inf)");
}

//===----------------------------------------------------------------------===//
// Norms (the fused gradient pairs) and attention
//===----------------------------------------------------------------------===//

TEST_F(ExecutorCuda, NormAndAttentionMatchCpu) {
  const NormAttention n = normAttentionArtifact();
  const Artifact &a = n.a;
  const TensorRef &y1 = n.y1, &dx1 = n.dx1, &ds1 = n.ds1, &db1 = n.db1,
                  &y2 = n.y2, &dx2 = n.dx2, &ds2 = n.ds2, &o = n.o, &dq = n.dq,
                  &dk = n.dk, &dv = n.dv, &o3 = n.o3, &dq3 = n.dq3,
                  &dk3 = n.dk3, &dv3 = n.dv3, &ds4 = n.ds4, &db4 = n.db4,
                  &dx5 = n.dx5, &dx6 = n.dx6, &ds6 = n.ds6;
  auto cpuEx = make(a, "", Device::Cpu);
  auto gpuEx = make(a, "", Device::Cuda);
  ASSERT_TRUE(cpuEx && gpuEx);
  ASSERT_TRUE(cpuEx->runMicrobatch(nullptr, nullptr, 1.0f, nullptr).ok());
  // Twice on the device: the accumulating parameter gradients are zeroed
  // by the executor (no kAccumulate flag), so a rerun gives the same.
  for (int rep = 0; rep < 2; ++rep) {
    const k::Status st = gpuEx->runMicrobatch(nullptr, nullptr, 1.0f, nullptr);
    ASSERT_TRUE(st.ok()) << st.message();
  }
  const std::pair<const char *, TensorRef> results[] = {
      {"layer_norm y", y1},
      {"layer_norm dx (fused)", dx1},
      {"layer_norm dscale (fused)", ds1},
      {"layer_norm dbias (fused)", db1},
      {"rms_norm y", y2},
      {"rms_norm dx (fused)", dx2},
      {"rms_norm dscale (fused)", ds2},
      {"attention BHSD causal", o},
      {"attention BHSD dq", dq},
      {"attention BHSD dk", dk},
      {"attention BHSD dv", dv},
      {"attention BSHD keep mask", o3},
      {"attention BSHD dq", dq3},
      {"attention BSHD dk", dk3},
      {"attention BSHD dv", dv3},
      {"layer_norm dscale alone", ds4},
      {"layer_norm dbias alone", db4},
      {"rms_norm dx alone", dx5},
      {"layer_norm dx alone", dx6},
      {"rms_norm dscale alone", ds6},
  };
  for (const auto &[name, r] : results)
    EXPECT_TRUE(relCloseFinite(name, arenaFloats(*gpuEx, r),
                               arenaFloats(*cpuEx, r), kF32Tol));
  // --precision bf16: attention on tensor cores (bf16 operands), within the
  // bf16 tolerance of the CPU, and not the fp32 kernels' result.
  auto bf16Ex = make(a, "", Device::Cuda, Precision::Bf16);
  ASSERT_TRUE(bf16Ex);
  {
    const k::Status st = bf16Ex->runMicrobatch(nullptr, nullptr, 1.0f, nullptr);
    ASSERT_TRUE(st.ok()) << st.message();
  }
  double changed = 0.0;
  for (const auto &[name, r] : results) {
    if (std::string(name).rfind("attention", 0) != 0)
      continue;
    const std::vector<float> b = arenaFloats(*bf16Ex, r),
                             f = arenaFloats(*gpuEx, r);
    EXPECT_TRUE(relCloseFinite(std::string("bf16 ") + name, b,
                               arenaFloats(*cpuEx, r), kBf16Tol));
    for (size_t i = 0; i < b.size() && i < f.size(); ++i)
      changed = std::max(changed, double(std::fabs(b[i] - f[i])));
  }
  EXPECT_GT(changed, 1e-4) << "--precision bf16 left attention in fp32";
  // The fused pair and the ops alone compute the same on the device too.
  EXPECT_TRUE(relCloseFinite("device: fused vs alone, ln dx",
                             arenaFloats(*gpuEx, dx1), arenaFloats(*gpuEx, dx6),
                             kF32Tol));
  EXPECT_TRUE(relCloseFinite("device: fused vs alone, rms dscale",
                             arenaFloats(*gpuEx, ds2), arenaFloats(*gpuEx, ds6),
                             kF32Tol));
}

//===----------------------------------------------------------------------===//
// Typed data movement: exact
//===----------------------------------------------------------------------===//

TEST_F(ExecutorCuda, TypedDataMovementMatchesCpuExactly) {
  const TypedMovement m = typedMovementArtifact();
  const Artifact &a = m.a;
  const TensorRef &f = m.f, &tr = m.tr, &lt = m.lt, &wh = m.wh, &sum = m.sum,
                  &cat = m.cat, &sl = m.sl, &ga = m.ga, &i32 = m.i32,
                  &cp = m.cp, &bc = m.bc, &st = m.st, &tri = m.tri, &cs = m.cs,
                  &csf = m.csf, &bd = m.bd;
  auto cpuEx = make(a, "", Device::Cpu);
  auto gpuEx = make(a, "", Device::Cuda);
  ASSERT_TRUE(cpuEx && gpuEx);
  ASSERT_TRUE(cpuEx->runMicrobatch(nullptr, nullptr, 1.0f, nullptr).ok());
  const k::Status s = gpuEx->runMicrobatch(nullptr, nullptr, 1.0f, nullptr);
  ASSERT_TRUE(s.ok()) << s.message();
  const std::pair<const char *, TensorRef> results[] = {
      {"cast i64->f32", f}, {"transpose", tr},   {"compare", lt},
      {"where", wh},        {"reduce sum", sum}, {"concat", cat},
      {"slice", sl},        {"gather", ga},      {"cast bool->i32", i32},
      {"copy", cp},         {"broadcast", bc},   {"sum_to_shape", st},
      {"trilu", tri},       {"cumsum i64", cs},  {"cumsum f32 excl rev", csf},
      {"band", bd}};
  for (const auto &[name, r] : results)
    EXPECT_EQ(arenaBytes(*gpuEx, r), arenaBytes(*cpuEx, r)) << name;
  // And the values themselves (the CPU's are checked in ExecutorTest.cpp).
  EXPECT_EQ(arenaFloats(*gpuEx, st), (std::vector<float>{6, 10, 14}));
  EXPECT_EQ(arenaFloats(*gpuEx, csf), (std::vector<float>{3, 4, 5, 0, 0, 0}));
}

//===----------------------------------------------------------------------===//
// GEMMs: Matmul with broadcast batches, Linear, LinearGradWeight
//===----------------------------------------------------------------------===//

namespace {

struct Gemms {
  Artifact a;
  std::vector<std::pair<std::string, TensorRef>> results;
};

/// Matmul and MatmulGrad with broadcast batch dims (the per-batch path and
/// the one-GEMM path of an unbatched rhs), Linear with and without bias in
/// both weight layouts, LinearGradWeight in both layouts, over constants.
Gemms gemmArtifact() {
  Gemms g;
  Artifact &a = g.a;
  Plan p;
  const int64_t M = 3, K = 4, Nn = 5;
  a.constants = {
      constant(DType::F32, {2, 1, M, K}, values(2 * M * K, 21)),       // 0 a
      constant(DType::F32, {3, K, Nn}, values(3 * K * Nn, 22)),        // 1 b
      constant(DType::F32, {2, 3, M, Nn}, values(2 * 3 * M * Nn, 23)), // 2 dc
      constant(DType::F32, {K, Nn}, values(K * Nn, 24)), // 3 b, unbatched
      constant(DType::F32, {2, 1, M, Nn}, values(2 * M * Nn, 25)), // 4 dc2
      constant(DType::F32, {2, M, K}, values(2 * M * K, 26)),      // 5 x [6, K]
      constant(DType::F32, {K, Nn}, values(K * Nn, 27)),           // 6 W [K, N]
      constant(DType::F32, {Nn, K}, values(Nn * K, 28)),           // 7 W [N, K]
      constant(DType::F32, {Nn}, values(Nn, 29)),                  // 8 bias
      constant(DType::F32, {2, M, Nn}, values(2 * M * Nn, 30)),    // 9 dy
      // 10: a [3, 1, K] x 1: batches broadcast on the lhs's side
      constant(DType::F32, {3, 1, M, K}, values(3 * M * K, 31)),
      constant(DType::F32, {1, 2, K, Nn}, values(2 * K * Nn, 32)),     // 11
      constant(DType::F32, {3, 2, M, Nn}, values(3 * 2 * M * Nn, 33)), // 12
      constant(DType::F32, {8, K}, values(8 * K, 34)), // 13 W [8, K]
      constant(DType::F32, {8}, values(8, 35)),        // 14 bias [8]
  };
  auto c = [&](uint32_t i) {
    return entry(Space::Const, i, a.constants[i].shape, a.constants[i].dtype);
  };
  auto out = [&](const std::string &name, std::vector<int64_t> shape) {
    TensorRef r = p.f32(std::move(shape));
    g.results.push_back({name, r});
    return r;
  };
  const TensorRef c1 = out("matmul [2,1,3,4] x [3,4,5]", {2, 3, M, Nn}),
                  da1 = out("matmul_grad da (summed over b's batches)",
                            {2, 1, M, K}),
                  db1 = out("matmul_grad db (summed over a's batches)",
                            {3, K, Nn}),
                  c2 =
                      out("matmul [2,1,3,4] x [4,5] (one GEMM)", {2, 1, M, Nn}),
                  da2 = out("matmul_grad da, unbatched rhs", {2, 1, M, K}),
                  db2 = out("matmul_grad db, unbatched rhs", {K, Nn}),
                  c3 = out("matmul [3,1,3,4] x [1,2,4,5]", {3, 2, M, Nn}),
                  da3 = out("matmul_grad da, both broadcast", {3, 1, M, K}),
                  db3 = out("matmul_grad db, both broadcast", {1, 2, K, Nn}),
                  y1 = out("linear W [K,N]", {2, M, Nn}),
                  y2 = out("linear W [N,K] + bias", {2, M, Nn}),
                  y3 = out("linear W [K,N] + bias", {2, M, Nn}),
                  dw1 = out("linear_grad_weight [K,N]", {K, Nn}),
                  dw2 = out("linear_grad_weight [N,K]", {Nn, K}),
                  dw3 = out("linear_grad_weight [N,K] accumulated", {Nn, K}),
                  p1 = out("linear N 8 + bias, before gelu", {2, M, 8}),
                  g1 = out("gelu (tanh) of it", {2, M, 8}),
                  p2 = out("linear N 8, before gelu", {2, M, 8}),
                  g2 = out("gelu (tanh) of it, no bias", {2, M, 8});
  Function f;
  f.name = "f";
  f.body = {
      instr(Opcode::Matmul, {c(0), c(1)}, {c1}),
      instr(Opcode::MatmulGrad, {c(0), c(1), c(2)}, {da1, db1}),
      instr(Opcode::Matmul, {c(0), c(3)}, {c2}),
      instr(Opcode::MatmulGrad, {c(0), c(3), c(4)}, {da2, db2}),
      instr(Opcode::Matmul, {c(10), c(11)}, {c3}),
      instr(Opcode::MatmulGrad, {c(10), c(11), c(12)}, {da3, db3}),
      instr(Opcode::Linear, {c(5), c(6), TensorRef()}, {y1}, {0}),
      instr(Opcode::Linear, {c(5), c(7), c(8)}, {y2}, {1}),
      instr(Opcode::Linear, {c(5), c(6), c(8)}, {y3}, {0}),
      instr(Opcode::LinearGradWeight, {c(5), c(9)}, {dw1}, {0}),
      instr(Opcode::LinearGradWeight, {c(5), c(9)}, {dw2}, {1}),
      // Written twice, the second adding (kAccumulate): twice the gradient.
      instr(Opcode::LinearGradWeight, {c(5), c(9)}, {dw3}, {1}),
      instr(Opcode::LinearGradWeight, {c(5), c(9)}, {dw3}, {1}, {}, "",
            Instruction::kAccumulate),
      // Linear then tanh gelu: cuBLASLt's GELU epilogue under bf16.
      instr(Opcode::Linear, {c(5), c(13), c(14)}, {p1}, {1}),
      instr(Opcode::Gelu, {p1}, {g1}, {int64_t(GeluApprox::Tanh)}),
      instr(Opcode::Linear, {c(5), c(13), TensorRef()}, {p2}, {1}),
      instr(Opcode::Gelu, {p2}, {g2}, {int64_t(GeluApprox::Tanh)}),
  };
  a.functions = {f};
  a.microbatchProgram = {0};
  exposeArena(a, p);
  return g;
}

void compareGemms(Precision prec, double tol, const char *tag) {
  const Gemms g = gemmArtifact();
  auto cpuEx = make(g.a, "", Device::Cpu);
  auto gpuEx = make(g.a, "", Device::Cuda, prec);
  ASSERT_TRUE(cpuEx && gpuEx);
  ASSERT_TRUE(cpuEx->runMicrobatch(nullptr, nullptr, 1.0f, nullptr).ok());
  const k::Status st = gpuEx->runMicrobatch(nullptr, nullptr, 1.0f, nullptr);
  ASSERT_TRUE(st.ok()) << st.message();
  double worst = 0;
  for (const auto &[name, r] : g.results) {
    const std::vector<float> got = arenaFloats(*gpuEx, r),
                             want = arenaFloats(*cpuEx, r);
    EXPECT_TRUE(relCloseFinite(std::string(tag) + " " + name, got, want, tol));
    for (size_t i = 0; i < got.size(); ++i)
      worst = std::max(worst, double(std::fabs(got[i] - want[i])));
  }
  // bf16 products are in effect: some result moved by more than fp32
  // rounding could (the inputs' rounding is ~2^-9 of values ~1).
  if (prec == Precision::Bf16) {
    EXPECT_GT(worst, 1e-4) << "--precision bf16 changed nothing";
  }
  // Both linear + gelu pairs on the GELU epilogue under bf16 only (fp32
  // keeps the CPU's gelu to the last bits).
  const bool fused = gpuEx->deviceDescription().find(
                         "2 linear + gelu pair(s) on cuBLASLt's GELU "
                         "epilogue") != std::string::npos;
  EXPECT_EQ(fused, prec == Precision::Bf16) << gpuEx->deviceDescription();
}

} // namespace

TEST_F(ExecutorCuda, GemmsF32MatchCpu) {
  compareGemms(Precision::Fp32, kF32Tol, "f32");
}

TEST_F(ExecutorCuda, GemmsBf16MatchCpu) {
  compareGemms(Precision::Bf16, kBf16Tol, "bf16");
}
