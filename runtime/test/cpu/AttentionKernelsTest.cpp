//===- AttentionKernelsTest.cpp - nn.attention -----------------------------===//

#include "KernelTestUtil.h"

#include <limits>

using namespace wpt;

namespace {

struct Inputs {
  AttentionParams p;
  std::vector<float> q, k, v, addMask;
  std::vector<uint8_t> keepMask;
};

/// Double reference on the BHSD layout.
void refAttention(const Inputs &in, std::vector<double> &out,
                  std::vector<double> &lse) {
  const AttentionParams &p = in.p;
  out.assign(size_t(p.B * p.H * p.Sq * p.Dv), 0.0);
  lse.assign(size_t(p.B * p.H * p.Sq), -INFINITY);
  std::vector<int64_t> full = {p.B, p.H, p.Sq, p.Sk};
  std::vector<int64_t> ms(p.mask.shape.dims, p.mask.shape.dims + p.mask.shape.rank);
  const int64_t group = p.H / p.Hkv;
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t h = 0; h < p.H; ++h)
      for (int64_t i = 0; i < p.Sq; ++i) {
        const int64_t hk = h / group;
        std::vector<double> s(size_t(p.Sk), -INFINITY);
        for (int64_t j = 0; j < p.Sk; ++j) {
          if (p.causal && j > i)
            continue;
          const int64_t mi = bcastIndex({b, h, i, j}, ms);
          if (p.mask.kind == MaskKind::Keep && !in.keepMask[size_t(mi)])
            continue;
          double dot = 0;
          for (int64_t d = 0; d < p.D; ++d)
            dot += double(in.q[size_t(((b * p.H + h) * p.Sq + i) * p.D + d)]) *
                   in.k[size_t(((b * p.Hkv + hk) * p.Sk + j) * p.D + d)];
          s[size_t(j)] = dot * p.scale +
                         (p.mask.kind == MaskKind::Additive ? in.addMask[size_t(mi)] : 0.0);
        }
        double mx = -INFINITY;
        for (double x : s)
          mx = std::max(mx, x);
        if (mx == -INFINITY)
          continue;
        double sum = 0;
        for (double x : s)
          sum += std::exp(x - mx);
        lse[size_t((b * p.H + h) * p.Sq + i)] = mx + std::log(sum);
        for (int64_t j = 0; j < p.Sk; ++j) {
          const double pr = std::exp(s[size_t(j)] - mx) / sum;
          for (int64_t d = 0; d < p.Dv; ++d)
            out[size_t(((b * p.H + h) * p.Sq + i) * p.Dv + d)] +=
                pr * in.v[size_t(((b * p.Hkv + hk) * p.Sk + j) * p.Dv + d)];
        }
      }
}

Inputs makeInputs(Rng &rng, int64_t B, int64_t H, int64_t Hkv, int64_t Sq,
                  int64_t Sk, int64_t D, int64_t Dv, bool causal,
                  MaskKind mask = MaskKind::None, Shape maskShape = Shape()) {
  Inputs in;
  AttentionParams &p = in.p;
  p.B = B;
  p.H = H;
  p.Hkv = Hkv;
  p.Sq = Sq;
  p.Sk = Sk;
  p.D = D;
  p.Dv = Dv;
  p.causal = causal;
  p.scale = float(1.0 / std::sqrt(double(D)));
  in.q = randVec(rng, B * H * Sq * D, -1.5f, 1.5f);
  in.k = randVec(rng, B * Hkv * Sk * D, -1.5f, 1.5f);
  in.v = randVec(rng, B * Hkv * Sk * Dv);
  p.mask.kind = mask;
  p.mask.shape = maskShape;
  if (mask == MaskKind::Additive) {
    in.addMask = randVec(rng, maskShape.numel(), -2.0f, 1.0f);
    for (size_t i = 0; i < in.addMask.size(); i += 5) // some hard -inf
      in.addMask[i] = -std::numeric_limits<float>::infinity();
    p.mask.additive = in.addMask.data();
  } else if (mask == MaskKind::Keep) {
    in.keepMask.resize(size_t(maskShape.numel()));
    for (auto &m : in.keepMask)
      m = rng.below(4) != 0;
    p.mask.keep = in.keepMask.data();
  }
  return in;
}

struct Case {
  const char *name;
  int64_t B, H, Hkv, Sq, Sk, D, Dv;
  bool causal;
  MaskKind mask;
  Shape maskShape;
};

const std::vector<Case> kCases = {
    {"causal GQA 4/2", 2, 4, 2, 13, 13, 8, 8, true, MaskKind::None, {}},
    {"additive [Sq,Sk] mask, Dv != D",
     1,
     3,
     3,
     7,
     11,
     5,
     6,
     false,
     MaskKind::Additive,
     {7, 11}},
    {"causal MQA + keep [B,1,1,Sk]",
     2,
     4,
     1,
     9,
     9,
     6,
     4,
     true,
     MaskKind::Keep,
     {2, 1, 1, 9}},
    {"causal Sq < Sk", 1, 2, 1, 5, 9, 4, 4, true, MaskKind::None, {}},
    {"causal Sq > Sk", 1, 2, 2, 9, 5, 4, 3, true, MaskKind::None, {}},
    {"keep [B,H,Sq,Sk] + causal",
     1,
     2,
     1,
     6,
     6,
     3,
     3,
     true,
     MaskKind::Keep,
     {1, 2, 6, 6}},
    {"multi-tile causal S=70",
     1,
     2,
     1,
     70,
     70,
     16,
     16,
     true,
     MaskKind::None,
     {}},
    {"multi-tile Sq=70 Sk=100 additive [H,1,Sk]",
     1,
     2,
     2,
     70,
     100,
     8,
     8,
     false,
     MaskKind::Additive,
     {2, 1, 100}},
    // Over one forward key block (online rescaling) and over the one-pass
    // backward's key limit (two-pass backward).
    {"Sk=1100 additive [Sq,Sk]",
     1,
     2,
     1,
     3,
     1100,
     4,
     4,
     false,
     MaskKind::Additive,
     {3, 1100}},
    {"Sk=4100", 1, 1, 1, 2, 4100, 4, 3, false, MaskKind::None, {}},
};

} // namespace

TEST(AttentionKernels, ForwardMatchesReference) {
  Rng rng(61);
  for (const Case &c : kCases) {
    Inputs in = makeInputs(rng, c.B, c.H, c.Hkv, c.Sq, c.Sk, c.D, c.Dv,
                           c.causal, c.mask, c.maskShape);
    std::vector<double> ref, refLse;
    refAttention(in, ref, refLse);
    std::vector<float> out(ref.size()), lse(refLse.size());
    attention_forward(in.p, in.q.data(), in.k.data(), in.v.data(), out.data(),
                      lse.data());
    EXPECT_TRUE(closeToSum(std::string("attention ") + c.name, out, ref));
    // lse: compare where finite; -inf rows must be -inf.
    std::vector<double> finiteRef;
    std::vector<float> finiteGot;
    for (size_t i = 0; i < lse.size(); ++i) {
      if (refLse[i] == -INFINITY) {
        EXPECT_EQ(lse[i], -INFINITY) << c.name << " row " << i;
        continue;
      }
      finiteRef.push_back(refLse[i]);
      finiteGot.push_back(lse[i]);
    }
    EXPECT_TRUE(closeToSum(std::string("attention lse ") + c.name, finiteGot, finiteRef));
  }
}

TEST(AttentionKernels, BackwardMatchesFiniteDifferences) {
  Rng rng(62);
  for (const Case &c : kCases) {
    if (c.Sq > 64)
      continue; // the multi-tile cases get a sampled check below
    Inputs in = makeInputs(rng, c.B, c.H, c.Hkv, c.Sq, c.Sk, c.D, c.Dv,
                           c.causal, c.mask, c.maskShape);
    const AttentionParams &p = in.p;
    std::vector<float> out(size_t(p.B * p.H * p.Sq * p.Dv)),
        lse(size_t(p.B * p.H * p.Sq));
    attention_forward(p, in.q.data(), in.k.data(), in.v.data(), out.data(),
                      lse.data());
    auto r = randVec(rng, int64_t(out.size()));
    std::vector<float> dq(in.q.size(), 9.0f), dk(in.k.size(), 9.0f),
        dv(in.v.size(), 9.0f);
    attention_backward(p, in.q.data(), in.k.data(), in.v.data(), out.data(),
                       lse.data(), r.data(), dq.data(), dk.data(), dv.data());
    auto loss = [&] {
      attention_forward(p, in.q.data(), in.k.data(), in.v.data(), out.data(),
                        lse.data());
      return dotLoss(out, r);
    };
    const std::string tag = std::string("attention ") + c.name;
    fdCheck(tag + " dq", in.q, dq, loss);
    fdCheck(tag + " dk", in.k, dk, loss);
    fdCheck(tag + " dv", in.v, dv, loss);
  }
}

TEST(AttentionKernels, MultiTileBackward) {
  Rng rng(63);
  Inputs in = makeInputs(rng, 1, 4, 2, 70, 70, 8, 8, true);
  const AttentionParams &p = in.p;
  std::vector<float> out(size_t(p.B * p.H * p.Sq * p.Dv)),
      lse(size_t(p.B * p.H * p.Sq));
  attention_forward(p, in.q.data(), in.k.data(), in.v.data(), out.data(),
                    lse.data());
  auto r = randVec(rng, int64_t(out.size()));
  std::vector<float> dq(in.q.size()), dk(in.k.size()), dv(in.v.size());
  attention_backward(p, in.q.data(), in.k.data(), in.v.data(), out.data(),
                     lse.data(), r.data(), dq.data(), dk.data(), dv.data());
  auto loss = [&] {
    attention_forward(p, in.q.data(), in.k.data(), in.v.data(), out.data(),
                      lse.data());
    return dotLoss(out, r);
  };
  FdOptions o;
  o.samples = 16;
  fdCheck("attention multi-tile causal GQA dq", in.q, dq, loss, o);
  fdCheck("attention multi-tile causal GQA dk", in.k, dk, loss, o);
  fdCheck("attention multi-tile causal GQA dv", in.v, dv, loss, o);
}

TEST(AttentionKernels, ThreadedBackwardPathsAndRecomputedLse) {
  // Big enough to run threaded: B * Hkv = 4 takes the one-pass backward
  // (one task per kv head), 2 the two-pass one. Without lse, the backward
  // recomputes it.
  Rng rng(68);
  for (int64_t B : {2, 1}) {
    Inputs in = makeInputs(rng, B, 4, 2, 130, 130, 32, 32, true);
    const AttentionParams &p = in.p;
    std::vector<float> out(size_t(p.B * p.H * p.Sq * p.Dv)),
        lse(size_t(p.B * p.H * p.Sq));
    attention_forward(p, in.q.data(), in.k.data(), in.v.data(), out.data(),
                      lse.data());
    auto r = randVec(rng, int64_t(out.size()));
    std::vector<float> dq(in.q.size()), dk(in.k.size()), dv(in.v.size());
    attention_backward(p, in.q.data(), in.k.data(), in.v.data(), out.data(),
                       lse.data(), r.data(), dq.data(), dk.data(), dv.data());
    std::vector<float> dq2(dq.size()), dk2(dk.size()), dv2(dv.size());
    attention_backward(p, in.q.data(), in.k.data(), in.v.data(), out.data(),
                       nullptr, r.data(), dq2.data(), dk2.data(), dv2.data());
    const std::string tag = "attention B=" + std::to_string(B);
    EXPECT_TRUE(closeToSum(tag + " dq without lse", dq2, toDouble(dq)));
    EXPECT_TRUE(closeToSum(tag + " dk without lse", dk2, toDouble(dk)));
    EXPECT_TRUE(closeToSum(tag + " dv without lse", dv2, toDouble(dv)));
    auto loss = [&] {
      attention_forward(p, in.q.data(), in.k.data(), in.v.data(), out.data(),
                        lse.data());
      return dotLoss(out, r);
    };
    FdOptions o;
    o.samples = 16;
    fdCheck(tag + " dq", in.q, dq, loss, o);
    fdCheck(tag + " dk", in.k, dk, loss, o);
    fdCheck(tag + " dv", in.v, dv, loss, o);
  }
}

TEST(AttentionKernels, BshdLayoutMatchesBhsd) {
  Rng rng(64);
  Inputs in = makeInputs(rng, 2, 4, 2, 10, 12, 6, 5, false, MaskKind::Additive,
                         Shape{10, 12});
  AttentionParams p = in.p;
  const Shape qs{p.B, p.H, p.Sq, p.D}, ks{p.B, p.Hkv, p.Sk, p.D},
      vs{p.B, p.Hkv, p.Sk, p.Dv}, os{p.B, p.H, p.Sq, p.Dv};
  const std::vector<int64_t> perm = {0, 2, 1, 3};
  auto toBshd = [&](const std::vector<float> &x, const Shape &s) {
    std::vector<float> y(x.size());
    transpose(x.data(), s, perm, y.data());
    return y;
  };
  std::vector<float> out(size_t(os.numel())), lse(size_t(p.B * p.H * p.Sq));
  attention_forward(p, in.q.data(), in.k.data(), in.v.data(), out.data(),
                    lse.data());
  auto r = randVec(rng, os.numel());
  std::vector<float> dq(in.q.size()), dk(in.k.size()), dv(in.v.size());
  attention_backward(p, in.q.data(), in.k.data(), in.v.data(), out.data(),
                     lse.data(), r.data(), dq.data(), dk.data(), dv.data());

  AttentionParams t = p;
  t.layout = AttentionLayout::BSHD;
  auto q2 = toBshd(in.q, qs), k2 = toBshd(in.k, ks), v2 = toBshd(in.v, vs),
       r2 = toBshd(r, os);
  std::vector<float> out2(out.size()), lse2(lse.size());
  attention_forward(t, q2.data(), k2.data(), v2.data(), out2.data(), lse2.data());
  std::vector<float> dq2(dq.size()), dk2(dk.size()), dv2(dv.size());
  attention_backward(t, q2.data(), k2.data(), v2.data(), out2.data(),
                     lse2.data(), r2.data(), dq2.data(), dk2.data(), dv2.data());
  EXPECT_TRUE(closeToSum("attention BSHD out", out2, toDouble(toBshd(out, os))));
  EXPECT_TRUE(closeToSum("attention BSHD lse", lse2, toDouble(lse)));
  EXPECT_TRUE(closeToSum("attention BSHD dq", dq2, toDouble(toBshd(dq, qs))));
  EXPECT_TRUE(closeToSum("attention BSHD dk", dk2, toDouble(toBshd(dk, ks))));
  EXPECT_TRUE(closeToSum("attention BSHD dv", dv2, toDouble(toBshd(dv, vs))));
}

TEST(AttentionKernels, FullyMaskedRowGivesZeros) {
  Rng rng(65);
  // Query row 2 of every head keeps no key.
  Inputs in = makeInputs(rng, 1, 2, 1, 4, 5, 3, 3, false, MaskKind::Keep,
                         Shape{4, 5});
  for (int64_t j = 0; j < 5; ++j)
    in.keepMask[size_t(2 * 5 + j)] = 0;
  in.keepMask[0] = 1;
  const AttentionParams &p = in.p;
  std::vector<float> out(size_t(2 * 4 * 3)), lse(8);
  attention_forward(p, in.q.data(), in.k.data(), in.v.data(), out.data(),
                    lse.data());
  for (int64_t h = 0; h < 2; ++h) {
    EXPECT_EQ(lse[size_t(h * 4 + 2)], -INFINITY);
    for (int64_t d = 0; d < 3; ++d)
      EXPECT_EQ(out[size_t((h * 4 + 2) * 3 + d)], 0.0f);
  }
  auto r = randVec(rng, int64_t(out.size()));
  std::vector<float> dq(in.q.size()), dk(in.k.size()), dv(in.v.size());
  attention_backward(p, in.q.data(), in.k.data(), in.v.data(), out.data(),
                     lse.data(), r.data(), dq.data(), dk.data(), dv.data());
  for (float x : dq)
    ASSERT_TRUE(std::isfinite(x));
  for (float x : dk)
    ASSERT_TRUE(std::isfinite(x));
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t d = 0; d < 3; ++d)
      EXPECT_EQ(dq[size_t((h * 4 + 2) * 3 + d)], 0.0f);
}

TEST(KernelDeterminism, SameBitsWithOneAndTwoThreads) {
  // Big enough for the multithreaded paths; results must not depend on the
  // thread count (fixed chunks, fixed order, no atomics).
  Rng rng(66);
  const int saved = num_threads();
  auto run = [&](int threads) {
    set_num_threads(threads);
    std::vector<std::vector<float>> res;
    Rng local(67);
    // layer_norm backward (chunked dscale/dbias).
    const int64_t rows = 700, n = 96;
    auto x = randVec(local, rows * n), g = randVec(local, n),
         dy = randVec(local, rows * n);
    std::vector<float> y(x.size()), mean(static_cast<size_t>(rows)), rstd(static_cast<size_t>(rows)),
        dx(x.size()), dg(static_cast<size_t>(n)), db(static_cast<size_t>(n));
    layer_norm_forward(x.data(), g.data(), nullptr, y.data(), mean.data(),
                       rstd.data(), rows, n, 1e-5f);
    layer_norm_backward(x.data(), g.data(), mean.data(), rstd.data(), dy.data(),
                        dx.data(), dg.data(), db.data(), rows, n);
    res.push_back(dx);
    res.push_back(dg);
    res.push_back(db);
    // Embedding backward with heavy repetition.
    std::vector<int64_t> ids(static_cast<size_t>(rows));
    for (auto &i : ids)
      i = local.below(17);
    std::vector<float> dt(size_t(17 * n));
    EXPECT_TRUE(embedding_backward(ids.data(), dy.data(), dt.data(), rows, 17, n).ok());
    res.push_back(dt);
    // Reductions and broadcast gradients.
    std::vector<float> s(static_cast<size_t>(n));
    sum_to_shape(dy.data(), Shape{rows, n}, s.data(), Shape{n});
    res.push_back(s);
    std::vector<float> tot(1);
    reduce_forward(ReduceOp::Sum, dy.data(), Shape{rows * n}, {0}, tot.data());
    res.push_back(tot);
    // Attention backward with GQA.
    // 4 * 128 * 128 * 32 multiply-adds: over the threading threshold.
    Inputs in = makeInputs(local, 1, 4, 2, 128, 128, 32, 32, true);
    std::vector<float> out(size_t(4 * 128 * 32)), lse(size_t(4 * 128));
    attention_forward(in.p, in.q.data(), in.k.data(), in.v.data(), out.data(),
                      lse.data());
    auto r = randVec(local, int64_t(out.size()));
    std::vector<float> dq(in.q.size()), dk(in.k.size()), dv(in.v.size());
    attention_backward(in.p, in.q.data(), in.k.data(), in.v.data(), out.data(),
                       lse.data(), r.data(), dq.data(), dk.data(), dv.data());
    res.push_back(out);
    res.push_back(dq);
    res.push_back(dk);
    res.push_back(dv);
    // B * Hkv = 4: the one-pass backward, with the lse recomputed.
    Inputs in4 = makeInputs(local, 2, 4, 2, 128, 128, 32, 32, true);
    std::vector<float> out4(size_t(2 * 4 * 128 * 32));
    attention_forward(in4.p, in4.q.data(), in4.k.data(), in4.v.data(),
                      out4.data(), nullptr);
    auto r4 = randVec(local, int64_t(out4.size()));
    std::vector<float> dq4(in4.q.size()), dk4(in4.k.size()), dv4(in4.v.size());
    attention_backward(in4.p, in4.q.data(), in4.k.data(), in4.v.data(),
                       out4.data(), nullptr, r4.data(), dq4.data(), dk4.data(),
                       dv4.data());
    res.push_back(out4);
    res.push_back(dq4);
    res.push_back(dk4);
    res.push_back(dv4);
    // Small batched matmul spread over threads, forward and backward.
    auto a = randVec(local, 24 * 32 * 40), bm = randVec(local, 24 * 40 * 48),
         gc = randVec(local, 24 * 32 * 48);
    std::vector<float> c(gc.size()), da(a.size()), dbm(bm.size());
    matmul_forward(a.data(), Shape{24, 32, 40}, bm.data(), Shape{24, 40, 48},
                   c.data());
    matmul_backward(a.data(), Shape{24, 32, 40}, bm.data(), Shape{24, 40, 48},
                    gc.data(), da.data(), dbm.data());
    res.push_back(c);
    res.push_back(da);
    res.push_back(dbm);
    // Vector activations: threads split at whole vectors, the tail is padded.
    const int64_t na = 3 * 32768 + 13;
    auto ax = randVec(local, na), au = randVec(local, na),
         ag = randVec(local, na);
    std::vector<float> ay(static_cast<size_t>(na)), adx(ay.size()),
        adu(ay.size());
    gelu_forward(ax.data(), ay.data(), na, GeluApprox::Tanh);
    res.push_back(ay);
    gelu_backward(ax.data(), ag.data(), adx.data(), na, GeluApprox::Tanh);
    res.push_back(adx);
    silu_backward(ax.data(), ag.data(), adx.data(), na);
    res.push_back(adx);
    swiglu_backward(ax.data(), au.data(), ag.data(), adx.data(), adu.data(),
                    na);
    res.push_back(adx);
    res.push_back(adu);
    return res;
  };
  auto one = run(1);
  auto two = run(2);
  auto again = run(2);
  set_num_threads(saved);
  ASSERT_EQ(one.size(), two.size());
  for (size_t i = 0; i < one.size(); ++i) {
    EXPECT_EQ(one[i], two[i]) << "result " << i << " differs between 1 and 2 threads";
    EXPECT_EQ(two[i], again[i]) << "result " << i << " differs between runs";
  }
  (void)rng;
}

TEST(AttentionKernels, LongKeysBackwardInBlocks) {
  // Past kMaxFusedKeys (1024) keys the one-pass backward goes through the
  // keys in blocks (and sweeps once for lse when none is given): checked
  // against finite differences, causal and GQA, with a threaded problem of
  // B * Hkv = 4 kv heads, with and without a saved lse.
  Rng rng(69);
  Inputs in = makeInputs(rng, 2, 4, 2, 2100, 2100, 8, 8, true);
  const AttentionParams &p = in.p;
  std::vector<float> out(size_t(p.B * p.H * p.Sq * p.Dv)),
      lse(size_t(p.B * p.H * p.Sq));
  attention_forward(p, in.q.data(), in.k.data(), in.v.data(), out.data(),
                    lse.data());
  auto r = randVec(rng, int64_t(out.size()));
  std::vector<float> dq(in.q.size()), dk(in.k.size()), dv(in.v.size());
  attention_backward(p, in.q.data(), in.k.data(), in.v.data(), out.data(),
                     lse.data(), r.data(), dq.data(), dk.data(), dv.data());
  std::vector<float> dq2(dq.size()), dk2(dk.size()), dv2(dv.size());
  attention_backward(p, in.q.data(), in.k.data(), in.v.data(), out.data(),
                     nullptr, r.data(), dq2.data(), dk2.data(), dv2.data());
  EXPECT_TRUE(closeToSum("long keys dq without lse", dq2, toDouble(dq)));
  EXPECT_TRUE(closeToSum("long keys dk without lse", dk2, toDouble(dk)));
  EXPECT_TRUE(closeToSum("long keys dv without lse", dv2, toDouble(dv)));
  auto loss = [&] {
    attention_forward(p, in.q.data(), in.k.data(), in.v.data(), out.data(),
                      lse.data());
    return dotLoss(out, r);
  };
  FdOptions o;
  o.samples = 8;
  fdCheck("long keys dq", in.q, dq, loss, o);
  fdCheck("long keys dk", in.k, dk, loss, o);
  fdCheck("long keys dv", in.v, dv, loss, o);
}
