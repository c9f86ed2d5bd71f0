//===- MatmulKernelsTest.cpp - nn.matmul and nn.linear ---------------------===//

#include "KernelTestUtil.h"

#include <tuple>

using namespace wpt;

namespace {

struct MatmulCase {
  std::vector<int64_t> a, b;
};

const std::vector<MatmulCase> kCases = {
    {{5, 7}, {7, 6}},          {{3, 5, 7}, {7, 6}},       {{2, 1, 5, 7}, {3, 7, 6}},
    {{5, 7}, {2, 3, 7, 6}},    {{7}, {2, 7, 6}},          {{2, 5, 7}, {7}},
    {{7}, {7}},                {{1, 5, 7}, {4, 7, 3}},    {{4, 5, 7}, {4, 7, 3}},
    {{4, 5, 7}, {1, 7, 3}},    {{3, 1, 9}, {9, 13}},      {{67, 45}, {45, 33}},
};

/// Double reference with the promotion and broadcasting spelled out.
std::vector<double> refMatmul(const std::vector<float> &a,
                              std::vector<int64_t> as,
                              const std::vector<float> &b,
                              std::vector<int64_t> bs,
                              std::vector<int64_t> *outShape) {
  const bool aVec = as.size() == 1, bVec = bs.size() == 1;
  if (aVec)
    as.insert(as.begin(), 1);
  if (bVec)
    bs.push_back(1);
  const int64_t M = as[as.size() - 2], K = as.back(), N = bs.back();
  std::vector<int64_t> ba(as.begin(), as.end() - 2), bb(bs.begin(), bs.end() - 2);
  std::vector<int64_t> bo = bcast(ba, bb);
  std::vector<double> c(size_t(numelOf(bo) * M * N));
  for (int64_t t = 0; t < numelOf(bo); ++t) {
    auto m = unravel(t, bo);
    int64_t ia = bcastIndex(m, ba), ib = bcastIndex(m, bb);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k)
          s += double(a[size_t((ia * M + i) * K + k)]) *
               b[size_t((ib * K + k) * N + j)];
        c[size_t((t * M + i) * N + j)] = s;
      }
  }
  *outShape = bo;
  if (!aVec)
    outShape->push_back(M);
  if (!bVec)
    outShape->push_back(N);
  return c;
}

} // namespace

TEST(MatmulKernels, ForwardMatchesReference) {
  Rng rng(31);
  for (const MatmulCase &c : kCases) {
    auto a = randVec(rng, numelOf(c.a)), b = randVec(rng, numelOf(c.b));
    std::vector<int64_t> os;
    auto ref = refMatmul(a, c.a, b, c.b, &os);
    EXPECT_EQ(matmul_shape(S(c.a), S(c.b)), S(os));
    std::vector<float> out(ref.size());
    matmul_forward(a.data(), S(c.a), b.data(), S(c.b), out.data());
    EXPECT_TRUE(closeToSum("matmul " + S(c.a).str() + "x" + S(c.b).str(), out, ref));
  }
}

TEST(MatmulKernels, BackwardMatchesFiniteDifferences) {
  Rng rng(32);
  for (const MatmulCase &c : kCases) {
    if (numelOf(c.a) > 1000)
      continue;
    auto a = randVec(rng, numelOf(c.a)), b = randVec(rng, numelOf(c.b));
    const int64_t n = matmul_shape(S(c.a), S(c.b)).numel();
    auto r = randVec(rng, n);
    std::vector<float> out(static_cast<size_t>(n)), da(a.size(), 4.0f), db(b.size(), 4.0f);
    matmul_backward(a.data(), S(c.a), b.data(), S(c.b), r.data(), da.data(),
                    db.data());
    auto loss = [&] {
      matmul_forward(a.data(), S(c.a), b.data(), S(c.b), out.data());
      return dotLoss(out, r);
    };
    const std::string tag = "matmul " + S(c.a).str() + "x" + S(c.b).str();
    fdCheck(tag + " da", a, da, loss);
    fdCheck(tag + " db", b, db, loss);
    // accumulate = true adds the same gradients on top.
    std::vector<float> da2 = da, db2 = db;
    matmul_backward(a.data(), S(c.a), b.data(), S(c.b), r.data(), da2.data(),
                    db2.data(), /*accumulate=*/true);
    for (size_t i = 0; i < da.size(); ++i)
      ASSERT_NEAR(da2[i], 2.0f * da[i], 1e-5f * (1 + std::fabs(da[i])));
    for (size_t i = 0; i < db.size(); ++i)
      ASSERT_NEAR(db2[i], 2.0f * db[i], 1e-5f * (1 + std::fabs(db[i])));
  }
}

TEST(LinearKernels, ForwardMatchesReference) {
  Rng rng(33);
  for (bool tw : {false, true})
    for (bool withBias : {false, true})
      for (auto [M, K, N] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1},
                             {13, 19, 7}, {70, 33, 129}}) {
        auto x = randVec(rng, M * K), w = randVec(rng, K * N),
             bias = randVec(rng, N);
        std::vector<float> y(size_t(M * N));
        linear_forward(x.data(), w.data(), withBias ? bias.data() : nullptr,
                       y.data(), M, K, N, tw);
        std::vector<double> ref(y.size());
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) {
            double s = withBias ? bias[size_t(j)] : 0.0;
            for (int64_t k = 0; k < K; ++k)
              s += double(x[size_t(i * K + k)]) *
                   w[size_t(tw ? j * K + k : k * N + j)];
            ref[size_t(i * N + j)] = s;
          }
        EXPECT_TRUE(closeToSum("linear M=" + std::to_string(M) +
                                " K=" + std::to_string(K) +
                                " N=" + std::to_string(N) +
                                (tw ? " [N,K]" : " [K,N]") +
                                (withBias ? " +b" : ""),
                            y, ref));
      }
}

TEST(LinearKernels, BackwardMatchesFiniteDifferencesAndAccumulates) {
  Rng rng(34);
  const int64_t M = 11, K = 9, N = 6;
  for (bool tw : {false, true}) {
    auto x = randVec(rng, M * K), w = randVec(rng, K * N), b = randVec(rng, N);
    auto r = randVec(rng, M * N);
    std::vector<float> y(size_t(M * N)), dx(x.size(), 8.0f);
    // Weight gradients accumulate: start from a known nonzero value.
    const float w0 = 0.25f;
    std::vector<float> dw(w.size(), w0), db(b.size(), w0);
    linear_backward(x.data(), w.data(), r.data(), dx.data(), dw.data(),
                    db.data(), M, K, N, tw);
    for (auto &v : dw)
      v -= w0;
    for (auto &v : db)
      v -= w0;
    auto loss = [&] {
      linear_forward(x.data(), w.data(), b.data(), y.data(), M, K, N, tw);
      return dotLoss(y, r);
    };
    const std::string tag = std::string("linear ") + (tw ? "[N,K]" : "[K,N]");
    fdCheck(tag + " dx", x, dx, loss);
    fdCheck(tag + " dW", w, dw, loss);
    fdCheck(tag + " db", b, db, loss);
  }
}

TEST(LinearKernels, BiasGradientOverManyRows) {
  // Enough rows for the chunked, multithreaded column sum.
  Rng rng(35);
  const int64_t M = 517, N = 77;
  auto dy = randVec(rng, M * N);
  std::vector<float> db(size_t(N), 1.0f);
  std::vector<double> ref(size_t(N), 1.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j)
      ref[size_t(j)] += dy[size_t(i * N + j)];
  linear_backward(nullptr, nullptr, dy.data(), nullptr, nullptr, db.data(), M,
                  3, N, false);
  EXPECT_TRUE(closeToSum("linear db (517 rows)", db, ref));
}

// Large GEMMs run in blocks sized by M, N, K alone: the bits of the result
// do not depend on the thread count (OpenBLAS picks its kernel by a call's
// shape, so a split by thread count changed them).
TEST(GemmKernel, SameBitsOnAnyThreadCount) {
  Rng rng(31);
  const int saved = num_threads();
  const int64_t shapes[][3] = {{64, 4096, 64}, {40, 300, 200}, {128, 128, 128},
                               {33, 1000, 17}, {500, 40, 64}, {16, 16384, 32}};
  for (const auto &s : shapes) {
    const int64_t M = s[0], N = s[1], K = s[2];
    auto a = randVec(rng, M * K), b = randVec(rng, K * N);
    std::vector<float> c[3];
    for (int threads : {1, 2, 3}) {
      set_num_threads(threads);
      c[threads - 1].assign(size_t(M * N), 0.0f);
      gemm(false, false, M, N, K, 1.0f, a.data(), K, b.data(), N, 0.0f,
           c[threads - 1].data(), N);
    }
    EXPECT_EQ(c[0], c[1]) << M << "x" << N << "x" << K;
    EXPECT_EQ(c[0], c[2]) << M << "x" << N << "x" << K;
  }
  set_num_threads(saved);
}

TEST(GemmKernel, TransposesAndBeta) {
  // C = 2 A^T B^T + 0.5 C on 2x2.
  const std::vector<float> A = {1, 2, 3, 4}, B = {5, 6, 7, 8};
  std::vector<float> C = {1, 1, 1, 1};
  gemm(true, true, 2, 2, 2, 2.0f, A.data(), 2, B.data(), 2, 0.5f, C.data(), 2);
  // A^T = [[1,3],[2,4]], B^T = [[5,7],[6,8]]: A^T B^T = [[23,31],[34,46]].
  EXPECT_EQ(C, (std::vector<float>{46.5f, 62.5f, 68.5f, 92.5f}));
}

TEST(MatmulKernels, BatchedBackwardMatchesReference) {
  // Larger batched cases (too big for a full finite-difference sweep): the
  // small-GEMM-per-thread path and the ordered sums over broadcast batches,
  // against dA = dC B^T and dB = A^T dC summed in double.
  Rng rng(36);
  const std::vector<MatmulCase> cases = {{{24, 32, 40}, {24, 40, 48}},
                                         {{2, 12, 32, 40}, {12, 40, 48}},
                                         {{12, 32, 40}, {2, 12, 40, 48}}};
  for (const MatmulCase &c : cases) {
    auto a = randVec(rng, numelOf(c.a)), b = randVec(rng, numelOf(c.b));
    std::vector<int64_t> os;
    auto fwd = refMatmul(a, c.a, b, c.b, &os);
    std::vector<float> out(fwd.size());
    matmul_forward(a.data(), S(c.a), b.data(), S(c.b), out.data());
    const std::string tag = "matmul " + S(c.a).str() + "x" + S(c.b).str();
    EXPECT_TRUE(closeToSum(tag, out, fwd));
    auto g = randVec(rng, int64_t(out.size()));
    std::vector<float> da(a.size()), db(b.size());
    matmul_backward(a.data(), S(c.a), b.data(), S(c.b), g.data(), da.data(),
                    db.data());
    const int64_t M = c.a[c.a.size() - 2], K = c.a.back(), N = c.b.back();
    std::vector<int64_t> ba(c.a.begin(), c.a.end() - 2),
        bb(c.b.begin(), c.b.end() - 2), bo(os.begin(), os.end() - 2);
    std::vector<double> rda(a.size(), 0.0), rdb(b.size(), 0.0);
    for (int64_t t = 0; t < numelOf(bo); ++t) {
      auto m = unravel(t, bo);
      const int64_t ia = bcastIndex(m, ba), ib = bcastIndex(m, bb);
      for (int64_t i = 0; i < M; ++i)
        for (int64_t k = 0; k < K; ++k)
          for (int64_t j = 0; j < N; ++j) {
            const double gv = g[size_t((t * M + i) * N + j)];
            rda[size_t((ia * M + i) * K + k)] += gv * b[size_t((ib * K + k) * N + j)];
            rdb[size_t((ib * K + k) * N + j)] += gv * a[size_t((ia * M + i) * K + k)];
          }
    }
    EXPECT_TRUE(closeToSum(tag + " da", da, rda));
    EXPECT_TRUE(closeToSum(tag + " db", db, rdb));
  }
}
