//===- ExecutorTest.cpp - running hand-built artifacts --------------------===//
//
// Part of weipipe's runtime tests. Small artifacts built by hand run through
// the executor and are compared with direct kernel calls (bit for bit where
// the executor makes the same calls) and with finite differences; plus the
// accumulate flag, parameter storage errors, the non-finite search and data
// errors naming their instruction; mutated artifacts that pass validation
// run without a kernel abort; and the step loop (train/Trainer.h) against
// the same calls made by hand.
//
// Tests read arena values through `logits()`: an artifact may declare its
// logits as any f32 arena range, so a test declares the whole arena.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/Executor.h"
#include "weipipe/runtime/Crc32c.h"
#include "weipipe/runtime/train/Trainer.h"

#include "ExecutorTestArtifacts.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <unistd.h>

using namespace weipipe::rt;
using namespace weipipe::rt::test;
namespace k = weipipe::rt::cpu;

namespace {

template <typename T = float>
const T *at(const Executor &ex, const TensorRef &r) {
  return reinterpret_cast<const T *>(
      reinterpret_cast<const char *>(ex.logits()) + r.offset);
}

struct Reference {
  float loss = 0;
  std::vector<float> logits, dEmb, dW;
};

/// The same computation as direct kernel calls.
Reference reference(const Tiny &t) {
  Reference r;
  std::vector<float> h(N * H), lse(N), dlogits(N * V), dh(N * H);
  r.logits.resize(N * V);
  r.dEmb.assign(V * H, 0.0f);
  r.dW.assign(V * H, 0.0f);
  EXPECT_TRUE(
      k::embedding_forward(t.emb.data(), kIds.data(), h.data(), N, V, H).ok());
  k::linear_forward(h.data(), t.w.data(), nullptr, r.logits.data(), N, H, V,
                    true);
  EXPECT_TRUE(k::cross_entropy_forward(r.logits.data(), kTargets.data(), N, V,
                                       -100, &r.loss, lse.data())
                  .ok());
  k::cross_entropy_backward(r.logits.data(), kTargets.data(), lse.data(), 1.0f,
                            N, V, -100, dlogits.data());
  k::linear_backward(h.data(), t.w.data(), dlogits.data(), dh.data(),
                     r.dW.data(), nullptr, N, H, V, true);
  EXPECT_TRUE(
      k::embedding_backward(kIds.data(), dh.data(), r.dEmb.data(), N, V, H)
          .ok());
  return r;
}

std::unique_ptr<Executor> create(const Artifact &a, const std::string &dir) {
  std::string err;
  auto ex = Executor::create(a, dir, &err);
  EXPECT_TRUE(ex) << err;
  return ex;
}

} // namespace

TEST(Executor, TinyModelMatchesKernels) {
  Tiny t = makeTiny();
  auto ex = create(t.a, t.dir);
  ASSERT_TRUE(ex);
  ASSERT_EQ(ex->params().size(), 2u);
  // Loaded from their offsets in the file.
  EXPECT_EQ(std::memcmp(ex->params()[0].value, t.emb.data(), V * H * 4), 0);
  EXPECT_EQ(std::memcmp(ex->params()[1].value, t.w.data(), V * H * 4), 0);
  EXPECT_EQ(ex->params()[1].desc->name, "w");
  EXPECT_GE(ex->bytesAllocated(), t.a.arenaBytes + 2 * 2 * V * H * 4);

  float loss = 0;
  ASSERT_TRUE(
      ex->runMicrobatch(kIds.data(), kTargets.data(), 1.0f, &loss).ok());
  const Reference r = reference(t);
  EXPECT_EQ(loss, r.loss);
  EXPECT_GT(loss, 0.5f);
  for (int64_t i = 0; i < V * H; ++i) {
    EXPECT_EQ(ex->params()[0].grad[i], r.dEmb[i]) << i;
    EXPECT_EQ(ex->params()[1].grad[i], r.dW[i]) << i;
  }
  for (int64_t i = 0; i < N * V; ++i)
    EXPECT_EQ(ex->logits()[i], r.logits[i]);

  // A second micro-batch accumulates (the instructions carry the flag).
  ASSERT_TRUE(
      ex->runMicrobatch(kIds.data(), kTargets.data(), 1.0f, &loss).ok());
  for (int64_t i = 0; i < V * H; ++i) {
    EXPECT_NEAR(ex->params()[0].grad[i], 2 * r.dEmb[i], 1e-6) << i;
    EXPECT_NEAR(ex->params()[1].grad[i], 2 * r.dW[i], 1e-6) << i;
  }
  ex->zeroGrads();
  for (int64_t i = 0; i < V * H; ++i)
    EXPECT_EQ(ex->params()[1].grad[i], 0.0f);

  // runForward alone gives the same loss and logits.
  float fwdLoss = 0;
  ASSERT_TRUE(ex->runForward(kIds.data(), kTargets.data(), &fwdLoss).ok());
  EXPECT_EQ(fwdLoss, r.loss);
  for (int64_t i = 0; i < V * H; ++i)
    EXPECT_EQ(ex->params()[1].grad[i], 0.0f); // no backward ran
}

TEST(Executor, GradientsMatchFiniteDifferences) {
  Tiny t = makeTiny();
  auto ex = create(t.a, t.dir);
  ASSERT_TRUE(ex);
  float loss;
  // dloss seeds the backward: with 0.5 the gradients halve.
  ASSERT_TRUE(
      ex->runMicrobatch(kIds.data(), kTargets.data(), 0.5f, &loss).ok());
  double worst = 0;
  for (int p = 0; p < 2; ++p) {
    // Embedding rows 3 and 7 are used; row 2 is not (its gradient is 0).
    for (int64_t i :
         std::vector<int64_t>{3 * H + 1, 7 * H + 2, 2 * H, 5, 17, 30}) {
      float *x = ex->params()[p].value + i;
      const float saved = *x;
      const float step = 1e-2f;
      float lp, lm;
      *x = saved + step;
      ASSERT_TRUE(ex->runForward(kIds.data(), kTargets.data(), &lp).ok());
      *x = saved - step;
      ASSERT_TRUE(ex->runForward(kIds.data(), kTargets.data(), &lm).ok());
      *x = saved;
      const double fd = 0.5 * (double(lp) - double(lm)) / (2.0 * step);
      const double g = ex->params()[p].grad[i];
      EXPECT_NEAR(g, fd, 1e-3 + 1e-2 * std::fabs(fd))
          << "parameter " << p << " element " << i;
      worst = std::max(worst, std::fabs(g - fd));
    }
  }
  std::printf("[fd] tiny model: worst |analytic - fd| = %.3g\n", worst);
}

TEST(Executor, AccumulateFlag) {
  // Without the flag, weight-gradient instructions zero their result first:
  // two micro-batches leave one micro-batch's gradient.
  Tiny t = makeTiny(/*accumulate=*/false);
  auto ex = create(t.a, t.dir);
  ASSERT_TRUE(ex);
  float loss;
  const Reference r = reference(t);
  for (int rep = 0; rep < 2; ++rep)
    ASSERT_TRUE(
        ex->runMicrobatch(kIds.data(), kTargets.data(), 1.0f, &loss).ok());
  for (int64_t i = 0; i < V * H; ++i) {
    EXPECT_EQ(ex->params()[0].grad[i], r.dEmb[i]) << i;
    EXPECT_EQ(ex->params()[1].grad[i], r.dW[i]) << i;
  }

  // Accumulate always adds: dst += g.
  const std::vector<float> g = {1.0f, -2.0f, 0.5f, 4.0f};
  const Artifact a = accumulateArtifact(g);
  auto acc = create(a, t.dir);
  ASSERT_TRUE(acc);
  for (int rep = 0; rep < 3; ++rep)
    ASSERT_TRUE(acc->runMicrobatch(nullptr, nullptr, 1.0f, nullptr).ok());
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(acc->params()[0].grad[i], 3 * g[i]);
}

TEST(Executor, ParameterStorageErrors) {
  Tiny t = makeTiny();
  std::string err;
  {
    Artifact a = t.a;
    a.params[1].storage.fileSize = 300;
    EXPECT_FALSE(Executor::create(a, t.dir, &err));
    EXPECT_HAS(err, "parameter 'w': " + t.file +
                        " is 284 bytes, but the artifact was compiled against "
                        "a 300-byte file; the model changed since it was "
                        "compiled: recompile");
  }
  {
    Artifact a = t.a;
    a.params[0].storage.file = "missing.bin";
    EXPECT_FALSE(Executor::create(a, t.dir, &err));
    EXPECT_HAS(err, "parameter 'emb'");
    EXPECT_HAS(err, t.dir + "/missing.bin");
  }
  {
    Artifact a = t.a;
    a.params[1].storage.offset = 200; // 200 + 128 > 284
    EXPECT_FALSE(Executor::create(a, t.dir, &err));
    EXPECT_HAS(err, "parameter 'w': bytes [200, 328) are outside");
  }
  {
    Artifact a = t.a;
    a.params[0].storage.length = 64;
    EXPECT_FALSE(Executor::create(a, t.dir, &err));
    EXPECT_HAS(err, "holds 64 bytes, but f32[8, 4] needs 128");
  }
  {
    // An unknown compile-time size (0) is not checked.
    Artifact a = t.a;
    a.params[0].storage.fileSize = 0;
    EXPECT_TRUE(Executor::create(a, t.dir, &err)) << err;
  }
  {
    // Invalid artifacts built in memory are caught too.
    Artifact a = t.a;
    a.functions[0].body[1].operands[1].index = 9;
    EXPECT_FALSE(Executor::create(a, t.dir, &err));
    EXPECT_HAS(err, "parameter index 9 is out of range");
  }
}

TEST(Executor, PlanTooLargeForMemory) {
  Tiny t = makeTiny();
  Artifact a = t.a;
  a.arenaBytes = uint64_t(1) << 61; // 2 EiB
  std::string err;
  EXPECT_FALSE(Executor::create(a, t.dir, &err));
  EXPECT_HAS(err, "the plan needs ");
  EXPECT_HAS(err, "bytes: arena 2147483648.0 GiB, parameters 256 B, "
                  "gradients 256 B, AdamW state 512 bytes");
}

TEST(Executor, MemoryLimitCoversTheOptimizerState) {
  Tiny t = makeTiny();
  std::string err;
  // A limit below the plan is refused naming it; one above it passes.
  EXPECT_FALSE(Executor::create(t.a, t.dir, &err, nullptr, 1));
  EXPECT_HAS(err, "over --memory-limit (0.0 GiB, 1 bytes)");
  auto ex = Executor::create(t.a, t.dir, &err, nullptr, 1 << 30);
  EXPECT_TRUE(ex) << err;
}

TEST(Executor, DataErrorsNameTheInstruction) {
  Tiny t = makeTiny();
  auto ex = create(t.a, t.dir);
  ASSERT_TRUE(ex);
  std::vector<int64_t> ids = kIds, targets = kTargets;
  ids[4] = V;
  float loss;
  cpu::Status st = ex->runMicrobatch(ids.data(), targets.data(), 1.0f, &loss);
  ASSERT_FALSE(st.ok());
  EXPECT_HAS(st.message(),
             "function 'forward', instruction 0 (embedding 'wte')");
  EXPECT_HAS(st.message(), "id 8 at position 4");
  ids = kIds;
  targets[1] = 9;
  st = ex->runMicrobatch(ids.data(), targets.data(), 1.0f, &loss);
  ASSERT_FALSE(st.ok());
  EXPECT_HAS(st.message(),
             "function 'forward', instruction 2 (cross_entropy 'loss')");
  EXPECT_HAS(st.message(), "target 9 at row 1");
}

TEST(Executor, FindFirstNonFinite) {
  const Artifact a = nonFiniteArtifact();
  auto x = create(a, "");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->findFirstNonFinite(nullptr, nullptr, 1.0f),
            "function 'forward', instruction 0 (unary 'log of c'): result 0 "
            "has 1 non-finite values (first at element 1 = nan)");

  // A clean run finds nothing; a non-finite parameter is named as such.
  Tiny t = makeTiny();
  auto tiny = create(t.a, t.dir);
  ASSERT_TRUE(tiny);
  EXPECT_EQ(tiny->findFirstNonFinite(kIds.data(), kTargets.data(), 1.0f), "");
  tiny->params()[1].value[6] = INFINITY;
  EXPECT_EQ(tiny->findFirstNonFinite(kIds.data(), kTargets.data(), 1.0f),
            "parameter 'w' has 1 non-finite values (first at element 6 = inf)");
}

TEST(Executor, NormAndAttentionMatchKernels) {
  // Operands are constants; the backward instructions recompute their
  // statistics, which must agree with the forward's saved ones bit for bit.
  const NormAttention n = normAttentionArtifact();
  constexpr int64_t R = NormAttention::R, C = NormAttention::C,
                    Sq = NormAttention::Sq, Sk = NormAttention::Sk,
                    D = NormAttention::D;
  constexpr double eps = NormAttention::eps;
  const auto &x = n.x, &scale = n.scale, &bias = n.bias, &dy = n.dy, &q = n.q,
             &kk = n.kk, &v = n.v, &dout = n.dout;
  const std::vector<uint8_t> &keep = n.keep;
  const TensorRef &y1 = n.y1, &dx1 = n.dx1, &ds1 = n.ds1, &db1 = n.db1,
                  &y2 = n.y2, &dx2 = n.dx2, &ds2 = n.ds2, &o = n.o, &dq = n.dq,
                  &dk = n.dk, &dv = n.dv, &o3 = n.o3, &dq3 = n.dq3,
                  &dk3 = n.dk3, &dv3 = n.dv3, &ds4 = n.ds4, &db4 = n.db4,
                  &dx5 = n.dx5, &dx6 = n.dx6, &ds6 = n.ds6;
  auto ex = create(n.a, "");
  ASSERT_TRUE(ex);
  ASSERT_TRUE(ex->runMicrobatch(nullptr, nullptr, 1.0f, nullptr).ok());

  auto expectEq = [&](const TensorRef &r, const std::vector<float> &want,
                      const char *what) {
    const float *got = at(*ex, r);
    ASSERT_EQ(size_t(r.numel()), want.size()) << what;
    for (size_t i = 0; i < want.size(); ++i)
      ASSERT_EQ(got[i], want[i]) << what << " element " << i;
  };
  std::vector<float> y(R * C), mean(R), rstd(R), dx(R * C), ds(C, 0.0f),
      db(C, 0.0f);
  k::layer_norm_forward(x.data(), scale.data(), bias.data(), y.data(),
                        mean.data(), rstd.data(), R, C, float(eps));
  expectEq(y1, y, "layer_norm");
  k::layer_norm_backward(x.data(), scale.data(), mean.data(), rstd.data(),
                         dy.data(), dx.data(), ds.data(), db.data(), R, C);
  expectEq(dx1, dx, "layer_norm dx");
  expectEq(ds1, ds, "layer_norm dscale");
  expectEq(db1, db, "layer_norm dbias");
  expectEq(dx6, dx, "layer_norm dx alone");
  expectEq(ds4, ds, "layer_norm dscale alone");
  expectEq(db4, db, "layer_norm dbias alone");
  std::fill(ds.begin(), ds.end(), 0.0f);
  k::rms_norm_forward(x.data(), scale.data(), y.data(), rstd.data(), R, C,
                      float(eps));
  expectEq(y2, y, "rms_norm");
  k::rms_norm_backward(x.data(), scale.data(), rstd.data(), dy.data(),
                       dx.data(), ds.data(), R, C);
  expectEq(dx2, dx, "rms_norm dx");
  expectEq(ds2, ds, "rms_norm dscale");
  expectEq(dx5, dx, "rms_norm dx alone");
  expectEq(ds6, ds, "rms_norm dscale alone");

  for (bool bshd : {false, true}) {
    k::AttentionParams ap;
    ap.H = 2;
    ap.Hkv = 1;
    ap.Sq = Sq;
    ap.Sk = Sk;
    ap.D = ap.Dv = D;
    ap.scale = 0.5f;
    ap.causal = !bshd;
    ap.layout = bshd ? k::AttentionLayout::BSHD : k::AttentionLayout::BHSD;
    if (bshd) {
      ap.mask.kind = k::MaskKind::Keep;
      ap.mask.keep = keep.data();
      ap.mask.shape = k::Shape{Sq, Sk};
    }
    std::vector<float> out(2 * Sq * D), lse(2 * Sq), gq(2 * Sq * D), gk(Sk * D),
        gv(Sk * D);
    k::attention_forward(ap, q.data(), kk.data(), v.data(), out.data(),
                         lse.data());
    // The executor has no saved lse: the backward recomputes it.
    k::attention_backward(ap, q.data(), kk.data(), v.data(), out.data(),
                          nullptr, dout.data(), gq.data(), gk.data(),
                          gv.data());
    expectEq(bshd ? o3 : o, out, "attention");
    expectEq(bshd ? dq3 : dq, gq, "attention dq");
    expectEq(bshd ? dk3 : dk, gk, "attention dk");
    expectEq(bshd ? dv3 : dv, gv, "attention dv");
  }
}

TEST(Executor, TypedDataMovement) {
  // Integer, bool and float paths of the typed ops, checked by hand.
  const TypedMovement m = typedMovementArtifact();
  const TensorRef &f = m.f, &tr = m.tr, &lt = m.lt, &wh = m.wh, &sum = m.sum,
                  &cat = m.cat, &sl = m.sl, &ga = m.ga, &i32 = m.i32,
                  &cp = m.cp, &bc = m.bc, &st = m.st, &tri = m.tri, &cs = m.cs,
                  &csf = m.csf, &bd = m.bd;
  auto ex = create(m.a, "");
  ASSERT_TRUE(ex);
  ASSERT_TRUE(ex->runMicrobatch(nullptr, nullptr, 1.0f, nullptr).ok());
  auto vec = [&](const TensorRef &r, auto tag) {
    using T = decltype(tag);
    const T *d = at<T>(*ex, r);
    return std::vector<T>(d, d + r.numel());
  };
  using F = std::vector<float>;
  using I = std::vector<int64_t>;
  EXPECT_EQ(vec(f, 0.0f), (F{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(vec(tr, 0.0f), (F{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(vec(lt, uint8_t()), (std::vector<uint8_t>{1, 1, 1, 0, 0, 0}));
  EXPECT_EQ(vec(wh, 0.0f), (F{0, 1, 2, -1, -1, -1}));
  EXPECT_EQ(vec(sum, 0.0f), (F{3, 12}));
  EXPECT_EQ(vec(cat, int64_t()), (I{0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(vec(sl, 0.0f), (F{2, 1, 0, 5, 4, 3}));
  EXPECT_EQ(vec(ga, int64_t()), (I{3, 4, 5, 3, 4, 5}));
  EXPECT_EQ(vec(i32, int32_t()), (std::vector<int32_t>{1, 1, 1, 0, 0, 0}));
  EXPECT_EQ(vec(cp, int64_t()), (I{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(vec(bc, 0.0f), (F{0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(vec(st, 0.0f), (F{6, 10, 14}));
  EXPECT_EQ(vec(tri, int64_t()), (I{0, 0, 0, 3, 4, 0}));
  EXPECT_EQ(vec(cs, int64_t()), (I{0, 1, 3, 3, 7, 12}));
  // Exclusive, reversed along axis 0: row 0 gets row 1, row 1 nothing.
  EXPECT_EQ(vec(csf, 0.0f), (F{3, 4, 5, 0, 0, 0}));
  // (i, j) reads diagonal j - i + 1: [[8, 9], [7, 8]] twice.
  EXPECT_EQ(vec(bd, int64_t()), (I{8, 9, 7, 8, 8, 9, 7, 8}));
}

namespace {

/// One instruction of most opcodes over constants (and the tiny model's
/// parameters), for the mutation test below.
Artifact manyOps(const std::string &paramFile) {
  Artifact a;
  Plan p;
  a.batch = 2;
  a.seq = 3;
  Parameter emb;
  emb.name = "emb";
  emb.shape = {V, H};
  emb.storage = {paramFile, 16, V * H * 4, 0};
  a.params = {emb};
  const TensorRef ids = p.t(DType::I64, {2, 3}), tgt = p.t(DType::I64, {2, 3});
  a.inputs = {{"ids", InputRole::Tokens, ids},
              {"targets", InputRole::Targets, tgt}};
  std::vector<uint8_t> keep(25);
  for (size_t i = 0; i < keep.size(); ++i)
    keep[i] = i % 3 != 1;
  a.constants = {
      constant(DType::F32, {2, 3, 8}, values(48, 1)),    // 0
      constant(DType::F32, {8}, values(8, 2)),           // 1
      constant(DType::F32, {2, 3, 8}, values(48, 3)),    // 2
      constant(DType::F32, {1, 2, 5, 4}, values(40, 4)), // 3
      constant(DType::F32, {1, 1, 5, 4}, values(20, 5)), // 4
      constant(DType::Bool, {5, 5}, keep),               // 5
      constant(DType::I64, {2, 3}, std::vector<int64_t>{0, 1, 2, 3, 4, 5}),
      constant(DType::F32, {}, std::vector<float>{2.5f}),     // 7
      constant(DType::I64, {2}, std::vector<int64_t>{1, -1}), // 8
      constant(DType::F32, {1, 5, 8}, values(40, 6)),         // 9
      constant(DType::F32, {1, 5, 4}, values(20, 7)),         // 10
      constant(DType::F32, {5, 2}, values(10, 8)),            // 11
  };
  auto c = [&](uint32_t i) {
    return entry(Space::Const, i, a.constants[i].shape, a.constants[i].dtype);
  };
  const TensorRef pe = entry(Space::Param, 0, {V, H}),
                  ge = entry(Space::Grad, 0, {V, H});
  const TensorRef h = p.f32({2, 3, H}), lg = p.f32({2, 3, V}), loss = p.f32({}),
                  dlg = p.f32({2, 3, V}), y = p.f32({2, 3, 8}),
                  dx = p.f32({2, 3, 8}), ds = p.f32({8}), db = p.f32({8}),
                  o = p.f32({1, 2, 5, 4}), dq = p.f32({1, 2, 5, 4}),
                  dk = p.f32({1, 1, 5, 4}), dv = p.f32({1, 1, 5, 4}),
                  o3 = p.f32({1, 5, 8}), f = p.f32({2, 3}), tr = p.f32({3, 2}),
                  lt = p.t(DType::Bool, {2, 3}), wh = p.f32({2, 3}),
                  sum = p.f32({2}), cat = p.t(DType::I64, {4, 3}),
                  sl = p.f32({2, 3}), ga = p.t(DType::I64, {2, 3}),
                  bc = p.f32({2, 2, 3}), st = p.f32({1, 3}),
                  sm = p.f32({2, 3, 8}), mm = p.f32({2, 2}),
                  ro = p.f32({1, 2, 5, 4});
  a.loss = loss;
  Function fn;
  fn.name = "f";
  fn.body = {
      instr(Opcode::Embedding, {pe, ids}, {h}),
      instr(Opcode::Linear, {h, pe, TensorRef()}, {lg}, {1}),
      instr(Opcode::CrossEntropy, {lg, tgt}, {loss}, {-100}),
      instr(Opcode::CrossEntropyGrad, {lg, tgt, loss}, {dlg}, {-100}),
      instr(Opcode::LinearGradWeight, {h, dlg}, {ge}, {1}),
      instr(Opcode::EmbeddingGrad, {ids, h}, {ge}, {}, {}, "", 1),
      instr(Opcode::LayerNorm, {c(0), c(1), c(1)}, {y}, {2}, {1e-5}),
      instr(Opcode::LayerNormGradInput, {c(0), c(1), c(2)}, {dx}, {2}, {1e-5}),
      instr(Opcode::LayerNormGradParams, {c(0), c(2)}, {ds, db}, {2}, {1e-5}),
      instr(Opcode::RMSNormGradScale, {c(0), c(2)}, {ds}, {2}, {1e-5}),
      instr(Opcode::Attention, {c(3), c(4), c(4), TensorRef()}, {o}, {2, 1, 1},
            {0.5}),
      instr(Opcode::AttentionGrad, {c(3), c(4), c(4), o, c(3), c(5)},
            {dq, dk, dv}, {2, 1, 0}, {0.5}),
      instr(Opcode::Attention, {c(9), c(10), c(10), c(5)}, {o3}, {2, 1, 0},
            {0.5}),
      instr(Opcode::Rotary, {c(3), c(11), c(11)}, {ro}, {0, 4}),
      instr(Opcode::Cast, {c(6)}, {f}),
      instr(Opcode::Transpose, {f}, {tr}, {1, 0}),
      instr(Opcode::Compare, {f, c(7)}, {lt}, {1}),
      instr(Opcode::Where, {lt, f, c(7)}, {wh}),
      instr(Opcode::Reduce, {f}, {sum}, {0, 1}),
      instr(Opcode::Concat, {c(6), c(6)}, {cat}, {0}),
      instr(Opcode::Slice, {f}, {sl}, {0, 2, 2, -1, 1, -1}),
      instr(Opcode::Gather, {c(6), c(8)}, {ga}, {0}),
      instr(Opcode::Broadcast, {f}, {bc}),
      instr(Opcode::SumToShape, {bc}, {st}),
      instr(Opcode::Softmax, {c(0)}, {sm}, {2}),
      instr(Opcode::SoftmaxGrad, {sm, c(2)}, {y}, {1}),
      instr(Opcode::Matmul, {f, tr}, {mm}),
      instr(Opcode::MatmulGrad, {f, tr, mm}, {sl, TensorRef()}),
      instr(Opcode::ReduceGrad, {f, sum, sum}, {wh}, {2, 1}),
      instr(Opcode::WhereGrad, {lt, wh}, {f, TensorRef()}),
      instr(Opcode::GatherGrad, {c(8), wh}, {f}, {0}),
      instr(Opcode::SliceGrad, {sl}, {f}, {0, 2, 2, -1, 1, -1}),
      instr(Opcode::UnaryGrad, {f, wh, sl}, {wh}, {4}),
      instr(Opcode::BinaryGrad, {f, c(7), wh}, {sl, TensorRef()}, {3}),
      instr(Opcode::Accumulate, {pe}, {ge}),
  };
  a.functions = {fn};
  a.microbatchProgram = {0};
  a.arenaBytes = p.next;
  return a;
}

void reseal(std::string &b) {
  auto put = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i)
      b[at + i] = char((v >> (8 * i)) & 0xff);
  };
  put(24, crc32c(b.data() + 32, b.size() - 32));
  put(28, crc32c(b.data(), 28));
}

} // namespace

// An empty tensor next to huge dimensions once passed validation and sent
// softmax, the norms, matmul_grad, attention_grad and cross-entropy into
// loops of 2^40 turns over no data (cross-entropy first allocated a row of
// the vocabulary). Its other dimensions are now bounded, and at the bound
// every such kernel runs at once.
TEST(Executor, EmptyTensorsBoundTheWork) {
  auto build = [](int64_t E) {
    std::vector<Artifact> out;
    auto one = [&](Opcode op, std::vector<std::vector<int64_t>> ins,
                   std::vector<std::vector<int64_t>> outs,
                   std::vector<int64_t> ints, std::vector<double> floats,
                   std::vector<DType> inTypes = {}) {
      Artifact a;
      Plan p;
      std::vector<TensorRef> operands, results;
      for (size_t i = 0; i < ins.size(); ++i)
        operands.push_back(
            ins[i].empty() && i + 1 == ins.size() && op == Opcode::LayerNorm
                ? TensorRef()
                : p.t(i < inTypes.size() ? inTypes[i] : DType::F32, ins[i]));
      for (auto &o : outs)
        results.push_back(p.f32(o));
      Function fn;
      fn.name = "f";
      fn.body = {instr(op, operands, results, ints, floats)};
      a.functions = {fn};
      a.microbatchProgram = {0};
      exposeArena(a, p);
      out.push_back(a);
    };
    const std::vector<int64_t> x = {E, 0}, c = {0};
    one(Opcode::Softmax, {x}, {x}, {1}, {});
    one(Opcode::LogSoftmax, {x}, {x}, {1}, {});
    one(Opcode::SoftmaxGrad, {x, x}, {x}, {1}, {});
    one(Opcode::LayerNorm, {x, c, {}}, {x}, {1}, {1e-5});
    one(Opcode::RMSNorm, {x, c}, {x}, {1}, {1e-5});
    one(Opcode::LayerNormGradInput, {x, c, x}, {x}, {1}, {1e-5});
    one(Opcode::RMSNormGradInput, {x, c, x}, {x}, {1}, {1e-5});
    one(Opcode::RMSNormGradScale, {x, x}, {c}, {1}, {1e-5});
    one(Opcode::MatmulGrad, {{E, 0}, {0, 0}, {E, 0}}, {{E, 0}, {0, 0}}, {}, {});
    const std::vector<int64_t> q = {E, 1, 0, 1};
    one(Opcode::AttentionGrad, {q, q, q, q, q, {}}, {q, q, q}, {1, 1, 1},
        {0.5});
    one(Opcode::CrossEntropy, {{0, E}, {0}}, {{}}, {-100}, {},
        {DType::F32, DType::I64});
    one(Opcode::CrossEntropyGrad, {{0, E}, {0}, {}}, {{0, E}}, {-100}, {},
        {DType::F32, DType::I64, DType::F32});
    return out;
  };
  // The attention-gradient mask is the absent operand 5.
  auto fixMask = [](Artifact &a) {
    Instruction &in = a.functions[0].body[0];
    if (in.op == Opcode::AttentionGrad)
      in.operands[5] = TensorRef();
  };
  for (Artifact a : build(int64_t(1) << 40)) {
    fixMask(a);
    std::string err;
    EXPECT_FALSE(Executor::create(a, "", &err))
        << opcodeName(a.functions[0].body[0].op);
    EXPECT_HAS(err, "an empty tensor whose other dimensions multiply to " +
                        std::to_string(int64_t(1) << 40));
  }
  for (Artifact a : build(int64_t(1) << 24)) {
    fixMask(a);
    auto ex = create(a, "");
    ASSERT_TRUE(ex) << opcodeName(a.functions[0].body[0].op);
    EXPECT_TRUE(ex->runMicrobatch(nullptr, nullptr, 1.0f, nullptr).ok())
        << opcodeName(a.functions[0].body[0].op);
  }
}

TEST(Executor, MutatedArtifactsRunOrAreRejected) {
  // Validation must leave nothing for a kernel to abort on or to read out of
  // bounds: mutate the payload under valid checksums; whatever parses must
  // create and run (data errors are fine). A failure here aborts the binary.
  Tiny t = makeTiny();
  const Artifact base = manyOps(t.file);
  std::string err;
  auto ex = Executor::create(base, "", &err);
  ASSERT_TRUE(ex) << err;
  float loss;
  ASSERT_TRUE(
      ex->runMicrobatch(kIds.data(), kTargets.data(), 1.0f, &loss).ok());
  const std::string bytes = serializeArtifact(base);
  uint64_t seed = 12345;
  auto next = [&] {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return seed >> 33;
  };
  int ran = 0;
  for (int it = 0; it < 3000; ++it) {
    std::string b = bytes;
    for (uint64_t m = 0, n = 1 + next() % 3; m < n; ++m) {
      const size_t at = 32 + next() % (b.size() - 32);
      switch (next() % 3) {
      case 0:
        b[at] = char(b[at] ^ (1 << (next() % 8)));
        break;
      case 1:
        b[at] = char(next());
        break;
      default: // a small integer over an i64 field, or anything 8 bytes long
        if (at + 8 <= b.size()) {
          const int64_t v = int64_t(next() % 20) - 5;
          std::memcpy(&b[at], &v, 8);
        }
      }
    }
    reseal(b);
    auto a = parseArtifact(b.data(), b.size(), "mutated", &err);
    if (!a)
      continue;
    auto x = Executor::create(*a, "", &err);
    if (!x)
      continue;
    ++ran;
    (void)x->runMicrobatch(kIds.data(), kTargets.data(), 1.0f, &loss);
  }
  std::printf("[mutate] %d of 3000 mutated artifacts were valid and ran\n",
              ran);
  EXPECT_GT(ran, 100);
}

// The step loop that each rank runs (train/Trainer.h): one step is the
// micro-batches of the data order with their losses weighted by counted
// targets, then AdamW on the accumulated gradients — the same calls made
// by hand give the same bits; a non-finite loss names where it started.
TEST(Trainer, StepMatchesTheCallsByHand) {
  Tiny t = makeTiny();
  t.a.microbatches = 2;
  // Tokens 0..V-1 repeated: windows of S + 1 = 4 tokens.
  const std::string data = t.dir + "/tokens.bin";
  {
    std::ofstream f(data, std::ios::binary);
    for (int i = 0; i < 64; ++i) {
      const uint16_t tok = uint16_t((i * 5 + 3) % V);
      f.write(reinterpret_cast<const char *>(&tok), 2);
    }
  }
  std::string err;
  auto tokens = train::TokenFile::load(data, V, train::TokenDType::U16,
                                       train::DataFormat::Bin, &err);
  ASSERT_TRUE(tokens) << err;
  auto windows =
      train::Windows::create(*tokens, S, train::DataOrder::Shuffle, 7, &err);
  ASSERT_TRUE(windows) << err;
  train::OptimizerConfig oc;
  oc.schedule = {train::LrScheduleKind::Constant, 0.05, 0.0, 0, 3};
  oc.weightDecay = 0.1;
  oc.gradClip = 0.5;

  auto ex = create(t.a, t.dir);
  ASSERT_TRUE(ex);
  train::Trainer trainer(*ex, t.a, *windows, oc);
  ASSERT_TRUE(trainer.init().ok());
  EXPECT_EQ(trainer.optimizerBytes(), 2u * 2u * V * H * 4u);
  train::StepRecord r0, r1;
  ASSERT_TRUE(trainer.step(0, &r0).ok());
  ASSERT_TRUE(trainer.step(1, &r1).ok());
  EXPECT_EQ(r1.step, 1);
  EXPECT_EQ(r1.windows.size(), size_t(2 * B));
  EXPECT_EQ(r1.tokens, 2 * N);
  EXPECT_EQ(r1.lr, 0.05);

  // By hand, on a second executor and an identical data order.
  auto byHand = create(t.a, t.dir);
  auto windows2 =
      train::Windows::create(*tokens, S, train::DataOrder::Shuffle, 7, &err);
  std::vector<std::vector<float>> m(2, std::vector<float>(V * H, 0.0f)), v = m;
  std::vector<int64_t> ids(N), tgt(N);
  std::vector<uint64_t> win(B);
  for (int64_t step = 0; step < 2; ++step) {
    byHand->zeroGrads();
    double lossSum = 0;
    std::vector<uint64_t> used;
    for (int64_t mb = 0; mb < 2; ++mb) {
      windows2->fillMicrobatch(step, mb, 2, B, ids.data(), tgt.data(),
                               win.data());
      used.insert(used.end(), win.begin(), win.end());
      float loss = 0;
      ASSERT_TRUE(
          byHand->runMicrobatch(ids.data(), tgt.data(), 0.5f, &loss).ok());
      lossSum += double(loss) * double(N);
    }
    std::vector<const float *> g = {byHand->params()[0].grad,
                                    byHand->params()[1].grad};
    const double norm = k::global_norm(g, {V * H, V * H});
    const float scale = k::clip_scale(norm, 0.5);
    for (int p = 0; p < 2; ++p)
      k::adamw_step(byHand->params()[p].value, byHand->params()[p].grad,
                    m[p].data(), v[p].data(), V * H,
                    {0.05, 0.9, 0.999, 1e-8, 0.1}, step + 1, scale);
    const train::StepRecord &r = step == 0 ? r0 : r1;
    EXPECT_EQ(r.loss, lossSum / double(2 * N));
    EXPECT_EQ(r.gradNorm, norm);
    EXPECT_EQ(r.windows, used);
  }
  for (int p = 0; p < 2; ++p)
    EXPECT_EQ(std::memcmp(ex->params()[p].value, byHand->params()[p].value,
                          V * H * 4),
              0)
        << "parameter " << p;

  ex->params()[1].value[6] = NAN;
  train::StepRecord bad;
  const k::Status st = trainer.step(2, &bad);
  ASSERT_FALSE(st.ok());
  EXPECT_HAS(st.message(), "step 2: loss is nan; parameter 'w' has 1 "
                           "non-finite values (first at element 6 = nan)");
}

// Parameter refs resolve through a table a pipeline rank rebinds each turn:
// bound to other buffers, the same instructions read the weights there and
// write the gradients there; the executor's own buffers stay untouched, and
// unbinding restores them.
TEST(Executor, ParametersRebindToOtherBuffers) {
  Tiny t = makeTiny();
  auto ex = create(t.a, t.dir);
  ASSERT_TRUE(ex);
  // Other weights for 'w' (a ring slot's copy), run in place on a second
  // executor for the expected values.
  std::vector<float> slotW = values(V * H, 99), slotG(V * H, 0.0f);
  auto expected = create(t.a, t.dir);
  std::memcpy(expected->params()[1].value, slotW.data(), V * H * 4);
  float want = 0, got = 0;
  ASSERT_TRUE(
      expected->runMicrobatch(kIds.data(), kTargets.data(), 1.0f, &want).ok());

  const std::vector<float> ownW(ex->params()[1].value,
                                ex->params()[1].value + V * H);
  ex->bindParam(1, slotW.data(), slotG.data());
  EXPECT_EQ(ex->boundValue(1), slotW.data());
  EXPECT_EQ(ex->boundGrad(1), slotG.data());
  EXPECT_EQ(ex->boundValue(0), ex->params()[0].value); // others unchanged
  ASSERT_TRUE(ex->runMicrobatch(kIds.data(), kTargets.data(), 1.0f, &got).ok());
  EXPECT_EQ(got, want);
  for (int64_t i = 0; i < V * H; ++i) {
    EXPECT_EQ(slotG[i], expected->params()[1].grad[i]) << i;
    EXPECT_EQ(ex->params()[1].grad[i], 0.0f) << i; // own gradient untouched
    EXPECT_EQ(ex->params()[0].grad[i], expected->params()[0].grad[i]) << i;
  }
  EXPECT_EQ(std::memcmp(ex->params()[1].value, ownW.data(), V * H * 4), 0);

  // Unbound: the executor's own weights and gradients again.
  ex->bindParam(1, nullptr, nullptr);
  EXPECT_EQ(ex->boundValue(1), ex->params()[1].value);
  ex->zeroGrads();
  float own = 0;
  ASSERT_TRUE(ex->runMicrobatch(kIds.data(), kTargets.data(), 1.0f, &own).ok());
  EXPECT_EQ(own, reference(t).loss);
  EXPECT_NE(own, got);
}

// A kernel that takes its inputs as a pointer list (concat) follows the
// binding too.
TEST(Executor, RebindingReachesConcatInputs) {
  Tiny t = makeTiny();
  Artifact a;
  a.params = {t.a.params[0]}; // emb [V, H]
  const std::vector<float> row(H, 0.25f);
  a.constants = {constant(DType::F32, {1, H}, row)};
  Plan p;
  const TensorRef out = p.f32({V + 1, H});
  Function f;
  f.name = "forward";
  f.body = {
      instr(Opcode::Concat,
            {entry(Space::Param, 0, {V, H}), entry(Space::Const, 0, {1, H})},
            {out}, {0})};
  a.functions = {f};
  a.microbatchProgram = {0};
  exposeArena(a, p);
  auto ex = create(a, t.dir);
  ASSERT_TRUE(ex);
  std::vector<float> slot = values(V * H, 5);
  ex->bindParam(0, slot.data(), nullptr);
  float loss = 0;
  ASSERT_TRUE(ex->runForward(nullptr, nullptr, &loss).ok());
  const float *y = at<float>(*ex, out);
  EXPECT_EQ(std::memcmp(y, slot.data(), V * H * 4), 0);
  EXPECT_EQ(y[V * H], 0.25f);
  ex->bindParam(0, nullptr, nullptr);
  ASSERT_TRUE(ex->runForward(nullptr, nullptr, &loss).ok());
  EXPECT_EQ(std::memcmp(at<float>(*ex, out), t.emb.data(), V * H * 4), 0);
}

// A mask computed in the arena moves with the arena: attention reads it
// through its operand as bound now, not where it was at load time (a
// pipeline stage runs its functions on other arena instances).
TEST(Executor, RebindingReachesAttentionMasks) {
  Tiny t = makeTiny();
  constexpr int64_t Sq = 4, D = 2;
  Artifact a;
  a.constants = {constant(DType::F32, {1, 1, Sq, D}, values(Sq * D, 61)),
                 constant(DType::F32, {1, 1, Sq, D}, values(Sq * D, 62)),
                 constant(DType::F32, {1, 1, Sq, D}, values(Sq * D, 63)),
                 constant(DType::F32, {Sq, Sq},
                          std::vector<float>(size_t(Sq * Sq), 0.0f))};
  Plan p;
  const TensorRef mask = p.f32({Sq, Sq});
  const TensorRef out = p.f32({1, 1, Sq, D});
  const TensorRef q = entry(Space::Const, 0, {1, 1, Sq, D}),
                  k = entry(Space::Const, 1, {1, 1, Sq, D}),
                  v = entry(Space::Const, 2, {1, 1, Sq, D});
  Function f;
  f.name = "forward";
  f.body = {instr(Opcode::Copy, {entry(Space::Const, 3, {Sq, Sq})}, {mask}),
            instr(Opcode::Attention, {q, k, v, mask}, {out}, {1, 1, 0},
                  {0.5})};
  a.functions = {f};
  a.microbatchProgram = {0};
  exposeArena(a, p);
  auto ex = create(a, t.dir);
  ASSERT_TRUE(ex);
  float loss = 0;
  ASSERT_TRUE(ex->runForward(nullptr, nullptr, &loss).ok());
  const std::vector<float> want(at<float>(*ex, out),
                                at<float>(*ex, out) + Sq * D);
  std::vector<float> other(a.arenaBytes / 4 + 16, 0.0f);
  ex->bindArena(0, reinterpret_cast<uint8_t *>(other.data()));
  // The executor's own copy of the mask now masks every key: a stale
  // pointer would give zeros.
  float *own = const_cast<float *>(at<float>(*ex, mask));
  std::fill(own, own + Sq * Sq, -std::numeric_limits<float>::infinity());
  ASSERT_TRUE(ex->runFunction(0).ok());
  EXPECT_EQ(std::memcmp(other.data() + out.offset / 4, want.data(),
                        size_t(Sq * D) * 4),
            0);
}
