//===- NormKernelsTest.cpp - nn.layer_norm and nn.rms_norm ----------------===//

#include "KernelTestUtil.h"

using namespace wpt;

namespace {

struct NormRef {
  std::vector<double> y, mean, rstd;
};

NormRef refLayerNorm(const std::vector<float> &x, const std::vector<float> &g,
                     const float *b, int64_t rows, int64_t n, double eps) {
  NormRef r;
  r.y.resize(x.size());
  for (int64_t i = 0; i < rows; ++i) {
    double m = 0, v = 0;
    for (int64_t j = 0; j < n; ++j)
      m += x[size_t(i * n + j)];
    m /= double(n);
    for (int64_t j = 0; j < n; ++j)
      v += (x[size_t(i * n + j)] - m) * (x[size_t(i * n + j)] - m);
    v /= double(n);
    const double rs = 1.0 / std::sqrt(v + eps);
    for (int64_t j = 0; j < n; ++j)
      r.y[size_t(i * n + j)] =
          (x[size_t(i * n + j)] - m) * rs * g[size_t(j)] + (b ? b[j] : 0.0);
    r.mean.push_back(m);
    r.rstd.push_back(rs);
  }
  return r;
}

NormRef refRmsNorm(const std::vector<float> &x, const std::vector<float> &g,
                   int64_t rows, int64_t n, double eps) {
  NormRef r;
  r.y.resize(x.size());
  for (int64_t i = 0; i < rows; ++i) {
    double ss = 0;
    for (int64_t j = 0; j < n; ++j)
      ss += double(x[size_t(i * n + j)]) * x[size_t(i * n + j)];
    const double rs = 1.0 / std::sqrt(ss / double(n) + eps);
    for (int64_t j = 0; j < n; ++j)
      r.y[size_t(i * n + j)] = x[size_t(i * n + j)] * rs * g[size_t(j)];
    r.rstd.push_back(rs);
  }
  return r;
}

} // namespace

TEST(LayerNormKernels, ForwardMatchesReference) {
  Rng rng(41);
  for (auto [rows, n] : {std::pair<int64_t, int64_t>{1, 1}, {7, 13}, {600, 67}})
    for (bool withBias : {false, true}) {
      auto x = randVec(rng, rows * n, -2.0f, 3.0f); // nonzero mean
      auto g = randVec(rng, n, 0.5f, 1.5f), b = randVec(rng, n);
      std::vector<float> y(x.size()), mean(static_cast<size_t>(rows)), rstd(static_cast<size_t>(rows));
      layer_norm_forward(x.data(), g.data(), withBias ? b.data() : nullptr,
                         y.data(), mean.data(), rstd.data(), rows, n, 1e-5f);
      auto ref = refLayerNorm(x, g, withBias ? b.data() : nullptr, rows, n, 1e-5);
      const std::string tag = "layer_norm " + std::to_string(rows) + "x" +
                              std::to_string(n) + (withBias ? " +b" : "");
      EXPECT_TRUE(closeTo(tag + " y", y, ref.y));
      EXPECT_TRUE(closeToSum(tag + " mean", mean, ref.mean));
      EXPECT_TRUE(closeTo(tag + " rstd", rstd, ref.rstd));
    }
}

TEST(LayerNormKernels, BackwardMatchesFiniteDifferences) {
  Rng rng(42);
  for (auto rn : {std::pair<int64_t, int64_t>{5, 13}, {150, 37}}) {
    const int64_t rows = rn.first, n = rn.second;
    auto x = randVec(rng, rows * n, -2.0f, 3.0f);
    auto g = randVec(rng, n, 0.5f, 1.5f), b = randVec(rng, n);
    auto r = randVec(rng, rows * n);
    std::vector<float> y(x.size()), mean(static_cast<size_t>(rows)), rstd(static_cast<size_t>(rows));
    layer_norm_forward(x.data(), g.data(), b.data(), y.data(), mean.data(),
                       rstd.data(), rows, n, 1e-5f);
    const float w0 = -0.5f; // dscale/dbias accumulate onto this
    std::vector<float> dx(x.size(), 3.0f), dg(g.size(), w0), db(b.size(), w0);
    layer_norm_backward(x.data(), g.data(), mean.data(), rstd.data(), r.data(),
                        dx.data(), dg.data(), db.data(), rows, n);
    for (auto &v : dg)
      v -= w0;
    for (auto &v : db)
      v -= w0;
    auto loss = [&] {
      layer_norm_forward(x.data(), g.data(), b.data(), y.data(), nullptr,
                         nullptr, rows, n, 1e-5f);
      return dotLoss(y, r);
    };
    const std::string tag = "layer_norm " + std::to_string(rows) + "x" +
                            std::to_string(n);
    fdCheck(tag + " dx", x, dx, loss);
    fdCheck(tag + " dscale", g, dg, loss);
    fdCheck(tag + " dbias", b, db, loss);
  }
}

TEST(RmsNormKernels, ForwardMatchesReference) {
  Rng rng(43);
  for (auto [rows, n] : {std::pair<int64_t, int64_t>{1, 1}, {7, 13}, {600, 67}}) {
    auto x = randVec(rng, rows * n, -2.0f, 3.0f);
    auto g = randVec(rng, n, 0.5f, 1.5f);
    std::vector<float> y(x.size()), rstd(static_cast<size_t>(rows));
    rms_norm_forward(x.data(), g.data(), y.data(), rstd.data(), rows, n, 1e-6f);
    auto ref = refRmsNorm(x, g, rows, n, 1e-6);
    const std::string tag = "rms_norm " + std::to_string(rows) + "x" +
                            std::to_string(n);
    EXPECT_TRUE(closeTo(tag + " y", y, ref.y));
    EXPECT_TRUE(closeTo(tag + " rstd", rstd, ref.rstd));
  }
}

TEST(RmsNormKernels, BackwardMatchesFiniteDifferences) {
  Rng rng(44);
  for (auto rn : {std::pair<int64_t, int64_t>{5, 13}, {150, 37}}) {
    const int64_t rows = rn.first, n = rn.second;
    auto x = randVec(rng, rows * n, -2.0f, 3.0f);
    auto g = randVec(rng, n, 0.5f, 1.5f);
    auto r = randVec(rng, rows * n);
    std::vector<float> y(x.size()), rstd(static_cast<size_t>(rows));
    rms_norm_forward(x.data(), g.data(), y.data(), rstd.data(), rows, n, 1e-6f);
    const float w0 = 2.0f;
    std::vector<float> dx(x.size(), 3.0f), dg(g.size(), w0);
    rms_norm_backward(x.data(), g.data(), rstd.data(), r.data(), dx.data(),
                      dg.data(), rows, n);
    for (auto &v : dg)
      v -= w0;
    auto loss = [&] {
      rms_norm_forward(x.data(), g.data(), y.data(), nullptr, rows, n, 1e-6f);
      return dotLoss(y, r);
    };
    const std::string tag = "rms_norm " + std::to_string(rows) + "x" +
                            std::to_string(n);
    fdCheck(tag + " dx", x, dx, loss);
    fdCheck(tag + " dscale", g, dg, loss);
  }
}

TEST(NormKernels, PartialOutputsMatchTheFullCall) {
  // The executor asks for statistics only (y nullptr), dx only, or the
  // parameter gradients only; each must be bitwise what the full call gives.
  Rng rng(45);
  const int64_t rows = 600, n = 67; // over the threading threshold
  auto x = randVec(rng, rows * n, -2.0f, 3.0f), dy = randVec(rng, rows * n);
  auto g = randVec(rng, n, 0.5f, 1.5f), b = randVec(rng, n);
  const size_t R = static_cast<size_t>(rows), N = static_cast<size_t>(n);
  std::vector<float> y(x.size()), mean(R), rstd(R), mean2(R), rstd2(R);
  layer_norm_forward(x.data(), g.data(), b.data(), y.data(), mean.data(),
                     rstd.data(), rows, n, 1e-5f);
  layer_norm_forward(x.data(), nullptr, nullptr, nullptr, mean2.data(),
                     rstd2.data(), rows, n, 1e-5f);
  EXPECT_EQ(mean, mean2);
  EXPECT_EQ(rstd, rstd2);
  std::vector<float> dx(x.size()), dg(N, 1.0f), db(N, 1.0f);
  layer_norm_backward(x.data(), g.data(), mean.data(), rstd.data(), dy.data(),
                      dx.data(), dg.data(), db.data(), rows, n);
  std::vector<float> dx2(x.size()), dg2(N, 1.0f), db2(N, 1.0f);
  layer_norm_backward(x.data(), g.data(), mean.data(), rstd.data(), dy.data(),
                      dx2.data(), nullptr, nullptr, rows, n);
  layer_norm_backward(x.data(), nullptr, mean.data(), rstd.data(), dy.data(),
                      nullptr, dg2.data(), db2.data(), rows, n);
  EXPECT_EQ(dx, dx2);
  EXPECT_EQ(dg, dg2);
  EXPECT_EQ(db, db2);

  rms_norm_forward(x.data(), g.data(), y.data(), rstd.data(), rows, n, 1e-6f);
  rms_norm_forward(x.data(), nullptr, nullptr, rstd2.data(), rows, n, 1e-6f);
  EXPECT_EQ(rstd, rstd2);
  std::fill(dg.begin(), dg.end(), 1.0f);
  std::fill(dg2.begin(), dg2.end(), 1.0f);
  rms_norm_backward(x.data(), g.data(), rstd.data(), dy.data(), dx.data(),
                    dg.data(), rows, n);
  rms_norm_backward(x.data(), g.data(), rstd.data(), dy.data(), dx2.data(),
                    nullptr, rows, n);
  rms_norm_backward(x.data(), nullptr, rstd.data(), dy.data(), nullptr,
                    dg2.data(), rows, n);
  EXPECT_EQ(dx, dx2);
  EXPECT_EQ(dg, dg2);
}
