//===- LossOptimKernelsTest.cpp - cross_entropy, AdamW, global norm -------===//

#include "KernelTestUtil.h"

using namespace wpt;

namespace {
constexpr int64_t kIgnore = -100;

struct CeRef {
  double loss;
  std::vector<double> lse;
  int64_t count;
};

CeRef refCrossEntropy(const std::vector<float> &x,
                      const std::vector<int64_t> &t, int64_t N, int64_t V) {
  CeRef r{0.0, {}, 0};
  for (int64_t i = 0; i < N; ++i) {
    double mx = -INFINITY, s = 0;
    for (int64_t j = 0; j < V; ++j)
      mx = std::max(mx, double(x[size_t(i * V + j)]));
    for (int64_t j = 0; j < V; ++j)
      s += std::exp(x[size_t(i * V + j)] - mx);
    const double lse = mx + std::log(s);
    r.lse.push_back(lse);
    if (t[size_t(i)] == kIgnore)
      continue;
    r.loss += lse - x[size_t(i * V + t[size_t(i)])];
    ++r.count;
  }
  r.loss /= double(r.count);
  return r;
}

void makeCe(Rng &rng, int64_t N, int64_t V, std::vector<float> &x,
            std::vector<int64_t> &t) {
  x = randVec(rng, N * V, -5.0f, 5.0f);
  t.resize(static_cast<size_t>(N));
  for (auto &v : t)
    v = rng.below(V);
  t[1] = kIgnore;
  t[size_t(N - 1)] = kIgnore;
  t[0] = V - 1;
}
} // namespace

TEST(CrossEntropyKernels, ForwardMatchesReference) {
  Rng rng(71);
  for (auto [N, V] : {std::pair<int64_t, int64_t>{9, 13}, {128, 301}}) {
    std::vector<float> x;
    std::vector<int64_t> t;
    makeCe(rng, N, V, x, t);
    float loss = 0;
    int64_t count = 0;
    std::vector<float> lse(static_cast<size_t>(N));
    ASSERT_TRUE(cross_entropy_forward(x.data(), t.data(), N, V, kIgnore, &loss,
                                      lse.data(), &count)
                    .ok());
    CeRef ref = refCrossEntropy(x, t, N, V);
    const std::string tag = "cross_entropy " + std::to_string(N) + "x" +
                            std::to_string(V);
    EXPECT_EQ(count, ref.count);
    EXPECT_TRUE(closeTo(tag + " loss", &loss, {ref.loss}));
    EXPECT_TRUE(closeTo(tag + " lse", lse, ref.lse));
  }
}

TEST(CrossEntropyKernels, BackwardMatchesFiniteDifferences) {
  Rng rng(72);
  const int64_t N = 7, V = 11;
  std::vector<float> x;
  std::vector<int64_t> t;
  makeCe(rng, N, V, x, t);
  x = randVec(rng, N * V, -2.0f, 2.0f);
  float loss;
  std::vector<float> lse(static_cast<size_t>(N)), dx(x.size(), 5.0f);
  ASSERT_TRUE(cross_entropy_forward(x.data(), t.data(), N, V, kIgnore, &loss,
                                    lse.data())
                  .ok());
  const float dloss = 1.7f; // upstream gradient of the scalar loss
  cross_entropy_backward(x.data(), t.data(), lse.data(), dloss, N, V, kIgnore,
                         dx.data());
  for (int64_t j = 0; j < V; ++j) // ignored rows get exactly zero
    EXPECT_EQ(dx[size_t(1 * V + j)], 0.0f);
  FdOptions o;
  o.samples = 40;
  fdCheck("cross_entropy dlogits", x, dx, [&] {
    float l;
    EXPECT_TRUE(cross_entropy_forward(x.data(), t.data(), N, V, kIgnore, &l,
                                      nullptr)
                    .ok());
    return double(dloss) * l;
  }, o);
  // In place: the gradient overwrites the logits.
  std::vector<float> inplace = x;
  cross_entropy_backward(inplace.data(), t.data(), lse.data(), dloss, N, V,
                         kIgnore, inplace.data());
  EXPECT_EQ(inplace, dx);
}

TEST(CrossEntropyKernels, AllIgnoredAndBadTargets) {
  const int64_t N = 3, V = 4;
  std::vector<float> x(size_t(N * V), 0.5f), lse(static_cast<size_t>(N)), dx(x.size(), 1.0f);
  std::vector<int64_t> t = {kIgnore, kIgnore, kIgnore};
  float loss = -1.0f;
  int64_t count = -1;
  ASSERT_TRUE(cross_entropy_forward(x.data(), t.data(), N, V, kIgnore, &loss,
                                    lse.data(), &count)
                  .ok());
  EXPECT_EQ(loss, 0.0f);
  EXPECT_EQ(count, 0);
  cross_entropy_backward(x.data(), t.data(), lse.data(), 1.0f, N, V, kIgnore,
                         dx.data());
  for (float v : dx)
    EXPECT_EQ(v, 0.0f);
  for (int64_t bad : {V, int64_t(-1)}) {
    t = {0, bad, 1};
    loss = 42.0f;
    Status s = cross_entropy_forward(x.data(), t.data(), N, V, kIgnore, &loss,
                                     lse.data());
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("row 1"), std::string::npos) << s.message();
    EXPECT_EQ(loss, 42.0f);
  }
}

TEST(AdamWKernels, HandComputedTwoSteps) {
  // lr 0.1, betas (0.9, 0.999), eps 1e-8; gradients [0.5, 0, -1] then
  // [-0.25, 2, 3]. By hand for p0 = 1 without decay:
  //   step 1: m = 0.05, v = 0.00025, m^ = 0.5, v^ = 0.25,
  //           p = 1 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.9
  //   step 2: m = 0.02, v = 0.00031225, m^ = 0.02 / 0.19, v^ = 0.00031225 /
  //           0.001999, p = 0.9 - 0.1 * 0.1052632 / 0.3952254 = 0.8733664
  // and p1 = -2: step 1 leaves it (m = v = 0); step 2 m^ = 0.2/0.19,
  // v^ = 0.004/0.001999, p = -2 - 0.1 * 1.0526316 / 1.4145690 = -2.0744138.
  // With weight decay 0.1 each step first scales p by 1 - 0.01.
  // (torch.optim.AdamW 2.x gives the same values to 1e-7.)
  const std::vector<std::vector<float>> grads = {{0.5f, 0.0f, -1.0f},
                                                 {-0.25f, 2.0f, 3.0f}};
  struct Expect {
    double wd;
    std::vector<double> p1, p2, m2, v2;
  };
  const std::vector<Expect> expects = {
      {0.0, {0.9, -2.0, 0.6}, {0.8733664, -2.0744138, 0.5505810},
       {0.02, 0.2, 0.21}, {0.00031225, 0.004, 0.009999}},
      {0.1, {0.89, -1.98, 0.595}, {0.8544664, -2.0346139, 0.5396310},
       {0.02, 0.2, 0.21}, {0.00031225, 0.004, 0.009999}},
  };
  for (const Expect &e : expects) {
    std::vector<float> p = {1.0f, -2.0f, 0.5f}, m(3, 0.0f), v(3, 0.0f);
    AdamWConfig c;
    c.lr = 0.1;
    c.beta1 = 0.9;
    c.beta2 = 0.999;
    c.eps = 1e-8;
    c.weightDecay = e.wd;
    adamw_step(p.data(), grads[0].data(), m.data(), v.data(), 3, c, 1);
    for (int i = 0; i < 3; ++i)
      EXPECT_NEAR(p[size_t(i)], e.p1[size_t(i)], 1e-6) << "wd " << e.wd;
    adamw_step(p.data(), grads[1].data(), m.data(), v.data(), 3, c, 2);
    for (int i = 0; i < 3; ++i) {
      EXPECT_NEAR(p[size_t(i)], e.p2[size_t(i)], 1e-6) << "wd " << e.wd;
      EXPECT_NEAR(m[size_t(i)], e.m2[size_t(i)], 1e-7);
      EXPECT_NEAR(v[size_t(i)], e.v2[size_t(i)], 1e-9);
    }
  }
}

TEST(AdamWKernels, MatchesFormulaWithWeightDecayAndGradScale) {
  Rng rng(73);
  const int64_t n = 40009; // multithreaded path
  auto p = randVec(rng, n), m = randVec(rng, n, -0.1f, 0.1f),
       v = randVec(rng, n, 0.0f, 0.01f);
  std::vector<double> pd(p.begin(), p.end()), md(m.begin(), m.end()),
      vd(v.begin(), v.end());
  AdamWConfig c;
  c.lr = 3e-3;
  c.beta1 = 0.85;
  c.beta2 = 0.99;
  c.eps = 1e-6;
  c.weightDecay = 0.05;
  const float scale = 0.6f;
  for (int64_t t = 5; t <= 7; ++t) { // resumed at step 5: moments non-zero
    auto g = randVec(rng, n);
    adamw_step(p.data(), g.data(), m.data(), v.data(), n, c, t, scale);
    const double bc1 = 1 - std::pow(c.beta1, double(t)),
                 bc2 = 1 - std::pow(c.beta2, double(t));
    for (int64_t i = 0; i < n; ++i) {
      const double gi = double(g[size_t(i)]) * scale;
      double &pi = pd[size_t(i)], &mi = md[size_t(i)], &vi = vd[size_t(i)];
      pi *= 1 - c.lr * c.weightDecay;
      mi = c.beta1 * mi + (1 - c.beta1) * gi;
      vi = c.beta2 * vi + (1 - c.beta2) * gi * gi;
      pi -= c.lr * (mi / bc1) / (std::sqrt(vi / bc2) + c.eps);
    }
  }
  EXPECT_TRUE(closeToSum("adamw p after 3 steps", p, pd));
  EXPECT_TRUE(closeToSum("adamw m after 3 steps", m, md));
  EXPECT_TRUE(closeToSum("adamw v after 3 steps", v, vd));
}

TEST(GlobalNormKernels, SumOfSquaresAndClip) {
  Rng rng(74);
  auto a = randVec(rng, 100003), b = randVec(rng, 17), c = randVec(rng, 1);
  double ref = 0;
  for (auto *t : {&a, &b, &c})
    for (float x : *t)
      ref += double(x) * x;
  const std::vector<const float *> ptrs = {a.data(), b.data(), c.data()};
  const std::vector<int64_t> sizes = {int64_t(a.size()), int64_t(b.size()), 1};
  const double norm = global_norm(ptrs, sizes);
  EXPECT_NEAR(norm, std::sqrt(ref), 1e-12 * std::sqrt(ref));
  EXPECT_NEAR(sum_of_squares(b.data(), 17), [&] {
    double s = 0;
    for (float x : b)
      s += double(x) * x;
    return s;
  }(), 1e-12);
  EXPECT_EQ(clip_scale(0.5, 1.0), 1.0f);
  EXPECT_FLOAT_EQ(clip_scale(4.0, 1.0), float(1.0 / (4.0 + 1e-6)));
}
