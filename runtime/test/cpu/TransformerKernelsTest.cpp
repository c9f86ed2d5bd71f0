//===- TransformerKernelsTest.cpp - gelu, silu, swiglu, embedding, rotary -===//

#include "KernelTestUtil.h"

#include <cstring>

using namespace wpt;

namespace {
double refGelu(double x, GeluApprox a) {
  if (a == GeluApprox::None)
    return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
  const double k = std::sqrt(2.0 / M_PI);
  return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
}
double refSilu(double x) { return x / (1.0 + std::exp(-x)); }
} // namespace

TEST(ActivationKernels, GeluForwardMatchesReference) {
  Rng rng(51);
  for (GeluApprox a : {GeluApprox::None, GeluApprox::Tanh})
    for (int64_t n : {1, 41, 40003}) {
      auto x = randVec(rng, n, -6.0f, 6.0f);
      std::vector<float> y(x.size());
      gelu_forward(x.data(), y.data(), n, a);
      std::vector<double> ref(x.size());
      for (size_t i = 0; i < x.size(); ++i)
        ref[i] = refGelu(x[i], a);
      EXPECT_TRUE(closeTo(std::string("gelu ") +
                              (a == GeluApprox::None ? "erf" : "tanh") +
                              " n=" + std::to_string(n),
                          y, ref));
    }
}

// The erf GELU runs on vector lanes (Cephes' erfcf): every element within a
// few ulp of the double reference, into the negative tail where the result
// is tiny and 1 + erf would cancel; the derivative likewise.
TEST(ActivationKernels, GeluErfElementwiseAccuracy) {
  const int64_t n = 40001;
  std::vector<float> x(n), y(n), dy(n, 1.0f), dx(n);
  for (int64_t i = 0; i < n; ++i)
    x[i] = -10.0f + 20.0f * float(i) / float(n - 1);
  gelu_forward(x.data(), y.data(), n, GeluApprox::None);
  gelu_backward(x.data(), dy.data(), dx.data(), n, GeluApprox::None);
  double worstY = 0, worstDx = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i], cdf = 0.5 * std::erfc(-v / std::sqrt(2.0));
    const double ref = v * cdf;
    const double pdf = std::exp(-0.5 * v * v) / std::sqrt(2 * M_PI);
    const double dref = cdf + v * pdf;
    // The derivative crosses 0 near x = -0.75: relative to its terms' size.
    const double dscale = cdf + std::abs(v * pdf);
    // e^(-x^2) carries the rounding of x^2 (about x^2 ulp): relative 1e-6
    // plus that, and an absolute floor far below any activation.
    const double tol = 1e-6 + 2.4e-7 * v * v;
    worstY = std::max(worstY, std::abs(y[i] - ref) / (std::abs(ref) + 1e-30) / tol);
    worstDx = std::max(worstDx, std::abs(dx[i] - dref) / (dscale + 1e-30) / tol);
  }
  EXPECT_LE(worstY, 1.0) << "gelu erf: worst error in units of the tolerance";
  EXPECT_LE(worstDx, 1.0) << "gelu erf backward: worst error in units of the tolerance";
}

TEST(ActivationKernels, GeluBackwardMatchesFiniteDifferences) {
  Rng rng(52);
  for (GeluApprox a : {GeluApprox::None, GeluApprox::Tanh}) {
    auto x = randVec(rng, 47, -4.0f, 4.0f);
    auto r = randVec(rng, 47);
    std::vector<float> y(x.size()), dx(x.size());
    gelu_backward(x.data(), r.data(), dx.data(), 47, a);
    fdCheck(std::string("gelu ") + (a == GeluApprox::None ? "erf" : "tanh"), x,
            dx, [&] {
              gelu_forward(x.data(), y.data(), 47, a);
              return dotLoss(y, r);
            });
  }
}

TEST(ActivationKernels, SiluAndSwiglu) {
  Rng rng(53);
  for (int64_t n : {3, 40009}) {
    auto x = randVec(rng, n, -8.0f, 8.0f), u = randVec(rng, n, -2.0f, 2.0f);
    std::vector<float> y(x.size());
    std::vector<double> ref(x.size());
    silu_forward(x.data(), y.data(), n);
    for (size_t i = 0; i < x.size(); ++i)
      ref[i] = refSilu(x[i]);
    EXPECT_TRUE(closeTo("silu n=" + std::to_string(n), y, ref));
    swiglu_forward(x.data(), u.data(), y.data(), n);
    for (size_t i = 0; i < x.size(); ++i)
      ref[i] = refSilu(x[i]) * u[i];
    EXPECT_TRUE(closeTo("swiglu n=" + std::to_string(n), y, ref));
  }
  const int64_t n = 43;
  auto x = randVec(rng, n, -4.0f, 4.0f), u = randVec(rng, n, -2.0f, 2.0f);
  auto r = randVec(rng, n);
  std::vector<float> y(static_cast<size_t>(n)), dx(static_cast<size_t>(n)), dg(static_cast<size_t>(n)), du(static_cast<size_t>(n));
  silu_backward(x.data(), r.data(), dx.data(), n);
  fdCheck("silu", x, dx, [&] {
    silu_forward(x.data(), y.data(), n);
    return dotLoss(y, r);
  });
  swiglu_backward(x.data(), u.data(), r.data(), dg.data(), du.data(), n);
  auto loss = [&] {
    swiglu_forward(x.data(), u.data(), y.data(), n);
    return dotLoss(y, r);
  };
  fdCheck("swiglu dgate", x, dg, loss);
  fdCheck("swiglu dup", u, du, loss);
}

TEST(EmbeddingKernels, ForwardBackward) {
  Rng rng(54);
  const int64_t V = 11, H = 70, N = 23; // H > one 64-column strip
  auto table = randVec(rng, V * H);
  std::vector<int64_t> ids(static_cast<size_t>(N));
  for (auto &i : ids)
    i = rng.below(V);
  ids[3] = ids[7] = ids[19] = 4; // repeated ids accumulate
  ids[0] = V - 1;
  std::vector<float> out(size_t(N * H));
  ASSERT_TRUE(embedding_forward(table.data(), ids.data(), out.data(), N, V, H).ok());
  std::vector<double> ref(out.size());
  for (int64_t i = 0; i < N; ++i)
    for (int64_t h = 0; h < H; ++h)
      ref[size_t(i * H + h)] = table[size_t(ids[size_t(i)] * H + h)];
  EXPECT_TRUE(closeTo("embedding", out, ref));
  auto r = randVec(rng, N * H);
  const float w0 = 0.75f;
  std::vector<float> dt(table.size(), w0);
  ASSERT_TRUE(embedding_backward(ids.data(), r.data(), dt.data(), N, V, H).ok());
  std::vector<double> dref(table.size(), w0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t h = 0; h < H; ++h)
      dref[size_t(ids[size_t(i)] * H + h)] += r[size_t(i * H + h)];
  EXPECT_TRUE(closeToSum("embedding backward (accumulated)", dt, dref));
  for (auto &v : dt)
    v -= w0;
  fdCheck("embedding dtable", table, dt, [&] {
    EXPECT_TRUE(embedding_forward(table.data(), ids.data(), out.data(), N, V, H).ok());
    return dotLoss(out, r);
  });
}

// nn.Embedding(padding_idx=p): the lookups of row p add nothing to its
// gradient; the other rows get theirs, repeated ids summed.
TEST(EmbeddingKernels, EmbeddingBackwardSkipsPaddingRow) {
  const int64_t V = 4, H = 3, N = 5;
  std::vector<int64_t> ids = {2, 0, 2, 3, 0};
  std::vector<float> g(size_t(N * H));
  for (size_t k = 0; k < g.size(); ++k)
    g[k] = 0.5f + float(k);
  for (int64_t pad : {int64_t(-1), int64_t(0), int64_t(2)}) {
    std::vector<float> dt(size_t(V * H), 0.25f);
    ASSERT_TRUE(
        embedding_backward(ids.data(), g.data(), dt.data(), N, V, H, pad).ok());
    std::vector<float> want(size_t(V * H), 0.25f);
    for (int64_t i = 0; i < N; ++i)
      if (ids[size_t(i)] != pad)
        for (int64_t h = 0; h < H; ++h)
          want[size_t(ids[size_t(i)] * H + h)] += g[size_t(i * H + h)];
    EXPECT_EQ(dt, want) << "padding_idx " << pad;
    if (pad >= 0) {
      for (int64_t h = 0; h < H; ++h)
        EXPECT_EQ(dt[size_t(pad * H + h)], 0.25f);
    }
  }
}

TEST(EmbeddingKernels, OutOfRangeIdIsAnErrorAndWritesNothing) {
  const int64_t V = 5, H = 3;
  std::vector<float> table(size_t(V * H), 1.0f);
  for (int64_t bad : {int64_t(5), int64_t(-1), int64_t(1) << 40}) {
    std::vector<int64_t> ids = {0, 2, bad, 1};
    std::vector<float> out(size_t(4 * H), -3.0f);
    Status s = embedding_forward(table.data(), ids.data(), out.data(), 4, V, H);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find(std::to_string(bad)), std::string::npos)
        << s.message();
    EXPECT_NE(s.message().find("position 2"), std::string::npos) << s.message();
    for (float v : out)
      EXPECT_EQ(v, -3.0f);
    std::vector<float> dt(table.size(), 0.0f), g(size_t(4 * H), 1.0f);
    EXPECT_FALSE(embedding_backward(ids.data(), g.data(), dt.data(), 4, V, H).ok());
    for (float v : dt)
      EXPECT_EQ(v, 0.0f);
  }
}

namespace {
std::vector<double> refRotary(const std::vector<float> &x,
                              const std::vector<float> &c,
                              const std::vector<float> &s,
                              const RotaryDims &d) {
  std::vector<double> y(x.begin(), x.end());
  const int64_t half = d.rotaryDim / 2;
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t h = 0; h < d.H; ++h)
      for (int64_t t = 0; t < d.S; ++t) {
        const int64_t row = ((b * d.H + h) * d.S + t) * d.D;
        const int64_t tab = (d.tableHasBatch ? b * d.S + t : t) * half;
        for (int64_t i = 0; i < half; ++i) {
          int64_t p = d.interleaved ? 2 * i : i;
          int64_t q = d.interleaved ? 2 * i + 1 : i + half;
          double cs = c[size_t(tab + i)], sn = s[size_t(tab + i)];
          double x1 = x[size_t(row + p)], x2 = x[size_t(row + q)];
          y[size_t(row + p)] = x1 * cs - x2 * sn;
          y[size_t(row + q)] = x2 * cs + x1 * sn;
        }
      }
  return y;
}
} // namespace

TEST(RotaryKernels, ForwardBackwardBothForms) {
  Rng rng(55);
  for (bool interleaved : {false, true})
    for (bool batchTable : {false, true})
      for (int64_t R : {int64_t(6), int64_t(10)}) { // partial and full rotary
        RotaryDims d;
        d.B = 2;
        d.H = 3;
        d.S = 5;
        d.D = 10;
        d.rotaryDim = R;
        d.interleaved = interleaved;
        d.tableHasBatch = batchTable;
        const int64_t tabRows = (batchTable ? d.B : 1) * d.S;
        std::vector<float> c(size_t(tabRows * R / 2)), s(c.size());
        for (size_t i = 0; i < c.size(); ++i) {
          float ang = rng.uniform(-3.0f, 3.0f);
          c[i] = std::cos(ang);
          s[i] = std::sin(ang);
        }
        auto x = randVec(rng, d.B * d.H * d.S * d.D);
        std::vector<float> y(x.size());
        rotary_forward(x.data(), c.data(), s.data(), y.data(), d);
        const std::string tag = std::string("rotary ") +
                                (interleaved ? "interleaved" : "half") +
                                (batchTable ? " [B,S,R/2]" : " [S,R/2]") +
                                " R=" + std::to_string(R);
        EXPECT_TRUE(closeTo(tag, y, refRotary(x, c, s, d)));
        // In place gives the same.
        std::vector<float> inplace = x;
        rotary_forward(inplace.data(), c.data(), s.data(), inplace.data(), d);
        EXPECT_EQ(inplace, y);
        auto r = randVec(rng, int64_t(x.size()));
        std::vector<float> dx(x.size());
        rotary_backward(r.data(), c.data(), s.data(), dx.data(), d);
        fdCheck(tag, x, dx, [&] {
          rotary_forward(x.data(), c.data(), s.data(), y.data(), d);
          return dotLoss(y, r);
        });
      }
}
