//===- MovementKernelsTest.cpp - transpose, broadcast, concat, slice, gather -===//

#include "KernelTestUtil.h"

using namespace wpt;

TEST(TransposeKernels, ForwardAndBackward) {
  Rng rng(21);
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>>
      cases = {{{2, 3, 5, 7}, {0, 2, 1, 3}}, {{13, 17}, {1, 0}},
               {{3, 4, 5}, {2, 0, 1}},       {{2, 1, 6}, {1, 2, 0}},
               {{150, 131}, {1, 0}},         {{4}, {0}},
               // The tiled path (32 x 32 tiles, partial ones at the edges)
               // with outer axes between and around the swapped pair.
               {{2, 40, 3, 50}, {0, 3, 2, 1}}, {{5, 33, 9}, {2, 1, 0}},
               {{70, 2, 9}, {2, 1, 0}}};
  for (const auto &cs : cases) {
    const std::vector<int64_t> &xs = cs.first, &perm = cs.second;
    auto x = randVec(rng, numelOf(xs));
    const Shape ys = transpose_shape(S(xs), perm);
    std::vector<int64_t> ysv(ys.dims, ys.dims + ys.rank);
    std::vector<float> y(x.size());
    transpose(x.data(), S(xs), perm, y.data());
    std::vector<double> ref(x.size());
    for (int64_t i = 0; i < numelOf(ysv); ++i) {
      auto m = unravel(i, ysv);
      std::vector<int64_t> src(xs.size());
      for (size_t d = 0; d < xs.size(); ++d)
        src[size_t(perm[d])] = m[d];
      ref[size_t(i)] = x[size_t(ravel(src, xs))];
    }
    const std::string tag = "transpose " + S(xs).str() + " " + Shape(perm).str();
    EXPECT_TRUE(closeTo(tag, y, ref));
    auto r = randVec(rng, numelOf(xs));
    std::vector<float> dx(x.size());
    transpose_backward(r.data(), S(xs), perm, dx.data());
    fdCheck(tag, x, dx, [&] {
      transpose(x.data(), S(xs), perm, y.data());
      return dotLoss(y, r);
    });
  }
  // Integer payloads move the same way.
  std::vector<int64_t> xi = {1, 2, 3, 4, 5, 6}, yi(6);
  transpose(xi.data(), Shape{2, 3}, {1, 0}, yi.data());
  EXPECT_EQ(yi, (std::vector<int64_t>{1, 4, 2, 5, 3, 6}));
}

TEST(BroadcastKernels, ForwardAndBackward) {
  Rng rng(22);
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>>
      cases = {{{1, 8}, {3, 8}}, {{5, 1, 3}, {2, 5, 4, 3}}, {{}, {3, 2}},
               {{7}, {7}}};
  for (const auto &cs : cases) {
    const std::vector<int64_t> &xs = cs.first, &ys = cs.second;
    auto x = randVec(rng, numelOf(xs));
    std::vector<float> y(size_t(numelOf(ys)));
    broadcast_to(x.data(), S(xs), y.data(), S(ys));
    std::vector<double> ref(y.size());
    for (int64_t i = 0; i < numelOf(ys); ++i)
      ref[size_t(i)] = x[size_t(bcastIndex(unravel(i, ys), xs))];
    const std::string tag = "broadcast " + S(xs).str() + "->" + S(ys).str();
    EXPECT_TRUE(closeTo(tag, y, ref));
    auto r = randVec(rng, numelOf(ys));
    std::vector<float> dx(x.size());
    sum_to_shape(r.data(), S(ys), dx.data(), S(xs));
    fdCheck(tag, x, dx, [&] {
      broadcast_to(x.data(), S(xs), y.data(), S(ys));
      return dotLoss(y, r);
    });
  }
  std::vector<uint8_t> m = {1, 0}, mb(6);
  broadcast_to(m.data(), Shape{1, 2}, mb.data(), Shape{3, 2});
  EXPECT_EQ(mb, (std::vector<uint8_t>{1, 0, 1, 0, 1, 0}));
}

TEST(ConcatKernels, ForwardAndSplitBackward) {
  Rng rng(23);
  for (int axis : {0, 1, 2}) {
    std::vector<std::vector<int64_t>> shapes = {{2, 3, 4}, {2, 3, 4}, {2, 3, 4}};
    shapes[1][size_t(axis)] = 5;
    shapes[2][size_t(axis)] = 1;
    std::vector<std::vector<float>> xs;
    std::vector<Shape> ss;
    std::vector<const float *> ptrs;
    for (auto &s : shapes) {
      xs.push_back(randVec(rng, numelOf(s)));
      ss.push_back(S(s));
    }
    for (auto &x : xs)
      ptrs.push_back(x.data());
    std::vector<int64_t> os = shapes[0];
    os[size_t(axis)] = shapes[0][size_t(axis)] + 5 + 1;
    std::vector<float> y(size_t(numelOf(os)));
    concat<float>(ptrs, ss, axis, y.data());
    std::vector<double> ref(y.size());
    for (int64_t i = 0; i < numelOf(os); ++i) {
      auto m = unravel(i, os);
      size_t k = 0;
      while (m[size_t(axis)] >= shapes[k][size_t(axis)]) {
        m[size_t(axis)] -= shapes[k][size_t(axis)];
        ++k;
      }
      ref[size_t(i)] = xs[k][size_t(ravel(m, shapes[k]))];
    }
    const std::string tag = "concat axis " + std::to_string(axis);
    EXPECT_TRUE(closeTo(tag, y, ref));
    auto r = randVec(rng, numelOf(os));
    std::vector<std::vector<float>> dxs;
    for (auto &x : xs)
      dxs.push_back(std::vector<float>(x.size()));
    std::vector<float *> dptrs = {dxs[0].data(), dxs[1].data(), dxs[2].data()};
    concat_backward(r.data(), ss, axis, dptrs);
    for (size_t k = 0; k < xs.size(); ++k)
      fdCheck(tag + " input " + std::to_string(k), xs[k], dxs[k], [&] {
        concat<float>(ptrs, ss, axis, y.data());
        return dotLoss(y, r);
      });
  }
}

TEST(SliceKernels, ForwardAndScatterBackward) {
  Rng rng(24);
  struct Case {
    std::vector<int64_t> xs, starts, ends, steps;
  };
  const std::vector<Case> cases = {
      {{2, 8}, {0, 0}, {2, 4}, {1, 1}},
      {{5, 9, 4}, {1, 2, 0}, {5, 9, 4}, {2, 3, 1}},
      {{7, 6}, {6, 5}, {-1, 0}, {-2, -1}}, // negative steps, end -1 = through 0
      {{10}, {9}, {2}, {-3}},
      {{4, 5}, {1, 5}, {3, 5}, {1, 1}}, // empty along dim 1
      // Boxes with rows of >= 16: the backward writes each row once.
      {{3, 5, 40}, {1, 0, 8}, {3, 4, 30}, {1, 1, 1}},
      {{2, 32}, {0, 0}, {2, 32}, {1, 1}},
      {{4, 20}, {1, 5}, {3, 5}, {1, 1}},
  };
  for (const Case &c : cases) {
    auto x = randVec(rng, numelOf(c.xs));
    const Shape ys = slice_shape(S(c.xs), c.starts, c.ends, c.steps);
    std::vector<int64_t> ysv(ys.dims, ys.dims + ys.rank);
    // Reference: walk the index lists per dim.
    std::vector<std::vector<int64_t>> idx(c.xs.size());
    for (size_t d = 0; d < c.xs.size(); ++d)
      for (int64_t i = c.starts[d];
           c.steps[d] > 0 ? i < c.ends[d] : i > c.ends[d]; i += c.steps[d])
        idx[d].push_back(i);
    for (size_t d = 0; d < c.xs.size(); ++d)
      ASSERT_EQ(int64_t(idx[d].size()), ysv[d]);
    std::vector<float> y(size_t(numelOf(ysv)));
    slice(x.data(), S(c.xs), c.starts, c.ends, c.steps, y.data());
    std::vector<double> ref(y.size());
    for (int64_t i = 0; i < numelOf(ysv); ++i) {
      auto m = unravel(i, ysv);
      for (size_t d = 0; d < m.size(); ++d)
        m[d] = idx[d][size_t(m[d])];
      ref[size_t(i)] = x[size_t(ravel(m, c.xs))];
    }
    const std::string tag = "slice " + S(c.xs).str() + " -> " + ys.str();
    EXPECT_TRUE(closeTo(tag, y, ref));
    auto r = randVec(rng, numelOf(ysv));
    std::vector<float> dx(x.size(), 5.0f);
    slice_backward(r.data(), S(c.xs), c.starts, c.ends, c.steps, dx.data());
    std::vector<float> dref(x.size(), 0.0f); // every element, exactly
    for (int64_t i = 0; i < numelOf(ysv); ++i) {
      auto m = unravel(i, ysv);
      for (size_t d = 0; d < m.size(); ++d)
        m[d] = idx[d][size_t(m[d])];
      dref[size_t(ravel(m, c.xs))] = r[size_t(i)];
    }
    EXPECT_EQ(dx, dref) << tag;
    fdCheck(tag, x, dx, [&] {
      slice(x.data(), S(c.xs), c.starts, c.ends, c.steps, y.data());
      return dotLoss(y, r);
    });
  }
}

TEST(GatherKernels, ForwardBackwardAndErrors) {
  Rng rng(25);
  const std::vector<int64_t> xs = {4, 7, 3};
  auto x = randVec(rng, numelOf(xs));
  for (int axis : {0, 1, 2}) {
    const int64_t n = xs[size_t(axis)];
    // Repeats and negative indices.
    std::vector<int64_t> idx = {0, n - 1, -1, 1 % n, -n, 0};
    std::vector<int64_t> os;
    for (int d = 0; d < axis; ++d)
      os.push_back(xs[size_t(d)]);
    os.push_back(int64_t(idx.size()));
    for (size_t d = size_t(axis) + 1; d < xs.size(); ++d)
      os.push_back(xs[d]);
    std::vector<float> y(size_t(numelOf(os)));
    ASSERT_TRUE(gather(x.data(), S(xs), axis, idx.data(), int64_t(idx.size()),
                       y.data())
                    .ok());
    std::vector<double> ref(y.size());
    for (int64_t i = 0; i < numelOf(os); ++i) {
      auto m = unravel(i, os);
      int64_t j = idx[size_t(m[size_t(axis)])];
      m[size_t(axis)] = j < 0 ? j + n : j;
      ref[size_t(i)] = x[size_t(ravel(m, xs))];
    }
    const std::string tag = "gather axis " + std::to_string(axis);
    EXPECT_TRUE(closeTo(tag, y, ref));
    auto r = randVec(rng, numelOf(os));
    std::vector<float> dx(x.size(), 9.0f);
    ASSERT_TRUE(gather_backward(r.data(), S(xs), axis, idx.data(),
                                int64_t(idx.size()), dx.data())
                    .ok());
    fdCheck(tag, x, dx, [&] {
      EXPECT_TRUE(gather(x.data(), S(xs), axis, idx.data(),
                         int64_t(idx.size()), y.data())
                      .ok());
      return dotLoss(y, r);
    });
    // accumulate adds the same gradient on top.
    std::vector<float> acc = dx;
    ASSERT_TRUE(gather_backward(r.data(), S(xs), axis, idx.data(),
                                int64_t(idx.size()), acc.data(), true)
                    .ok());
    for (size_t i = 0; i < acc.size(); ++i)
      ASSERT_FLOAT_EQ(acc[i], 2.0f * dx[i]);
  }
  // Out of range on either side: an error naming the index, nothing written.
  std::vector<int64_t> bad = {0, 4};
  std::vector<float> y(size_t(2 * 7 * 3), -1.0f);
  Status s = gather(x.data(), S(xs), 0, bad.data(), 2, y.data());
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("index 4"), std::string::npos) << s.message();
  EXPECT_EQ(y[0], -1.0f);
  bad = {-5};
  EXPECT_FALSE(gather(x.data(), S(xs), 0, bad.data(), 1, y.data()).ok());
  std::vector<float> dx(x.size(), 2.0f);
  EXPECT_FALSE(gather_backward(y.data(), S(xs), 0, bad.data(), 1, dx.data()).ok());
  EXPECT_EQ(dx[0], 2.0f);
  // Integer table.
  std::vector<int64_t> ti = {10, 11, 12}, ii = {2, -3}, oi(2);
  ASSERT_TRUE(gather(ti.data(), Shape{3}, 0, ii.data(), 2, oi.data()).ok());
  EXPECT_EQ(oi, (std::vector<int64_t>{12, 10}));
}

TEST(TriluKernels, ForwardAndBackward) {
  Rng rng(26);
  const std::vector<int64_t> xs = {2, 4, 6};
  auto x = randVec(rng, numelOf(xs));
  for (bool upper : {false, true})
    for (int64_t k : {-1, 0, 2}) {
      std::vector<float> y(x.size());
      trilu(x.data(), S(xs), upper, k, y.data());
      std::vector<double> ref(x.size());
      for (int64_t i = 0; i < numelOf(xs); ++i) {
        auto m = unravel(i, xs);
        bool keep = upper ? m[2] - m[1] >= k : m[2] - m[1] <= k;
        ref[size_t(i)] = keep ? x[size_t(i)] : 0.0;
      }
      const std::string tag = std::string("trilu ") + (upper ? "upper" : "lower") +
                              " k=" + std::to_string(k);
      EXPECT_TRUE(closeTo(tag, y, ref));
      auto r = randVec(rng, numelOf(xs));
      std::vector<float> dx(x.size());
      trilu(r.data(), S(xs), upper, k, dx.data()); // self-adjoint
      fdCheck(tag, x, dx, [&] {
        trilu(x.data(), S(xs), upper, k, y.data());
        return dotLoss(y, r);
      });
    }
}

TEST(CumSumKernels, ForwardIntegersAndGradient) {
  Rng rng(27);
  const std::vector<int64_t> xs = {3, 5, 4};
  auto x = randVec(rng, numelOf(xs));
  std::vector<int64_t> xi(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    xi[i] = int64_t(x[i] * 10);
  for (int axis : {0, 1, 2})
    for (bool exclusive : {false, true})
      for (bool reverse : {false, true}) {
        // Reference: element i along the axis sums the elements j with
        // j <= i (j < i exclusive; mirrored when reversed).
        std::vector<double> ref(x.size());
        std::vector<int64_t> refi(x.size());
        for (int64_t i = 0; i < numelOf(xs); ++i) {
          auto m = unravel(i, xs);
          double sum = 0;
          int64_t sumi = 0;
          for (int64_t j = 0; j < numelOf(xs); ++j) {
            auto n = unravel(j, xs);
            bool line = true;
            for (int d = 0; d < 3; ++d)
              line &= d == axis || n[d] == m[d];
            int64_t a = m[size_t(axis)], b = n[size_t(axis)];
            bool in = reverse ? (exclusive ? b > a : b >= a)
                              : (exclusive ? b < a : b <= a);
            if (line && in) {
              sum += x[size_t(j)];
              sumi += xi[size_t(j)];
            }
          }
          ref[size_t(i)] = sum;
          refi[size_t(i)] = sumi;
        }
        const std::string tag = "cumsum axis " + std::to_string(axis) +
                                (exclusive ? " exclusive" : "") +
                                (reverse ? " reverse" : "");
        std::vector<float> y(x.size());
        cumsum(x.data(), S(xs), axis, exclusive, reverse, y.data());
        EXPECT_TRUE(closeTo(tag, y, ref));
        std::vector<int64_t> yi(x.size());
        cumsum(xi.data(), S(xs), axis, exclusive, reverse, yi.data());
        EXPECT_EQ(yi, refi) << tag << " (int64)";
        // The gradient rule of NNGradients.cpp: cumsum of dy the other way.
        auto r = randVec(rng, numelOf(xs));
        std::vector<float> dx(x.size());
        cumsum(r.data(), S(xs), axis, exclusive, !reverse, dx.data());
        fdCheck(tag, x, dx, [&] {
          cumsum(x.data(), S(xs), axis, exclusive, reverse, y.data());
          return dotLoss(y, r);
        });
      }
}

TEST(BandKernels, DiagonalsFillEveryLeadingIndex) {
  // [2, 3, 4]: 3 + 4 - 1 = 6 diagonals, element (i, j) = d[j - i + 2].
  const std::vector<int64_t> ys = {2, 3, 4};
  const std::vector<int64_t> d = {10, 11, 12, 13, 14, 15};
  std::vector<int64_t> y(size_t(numelOf(ys)));
  band(d.data(), S(ys), y.data());
  for (int64_t k = 0; k < numelOf(ys); ++k) {
    auto m = unravel(k, ys);
    EXPECT_EQ(y[size_t(k)], d[size_t(m[2] - m[1] + 2)]) << "element " << k;
  }
  std::vector<float> df = {-1e30f, 0, 0, 0, 0, 0}, yf(size_t(numelOf(ys)));
  band(df.data(), S({3, 4}), yf.data());
  EXPECT_EQ(yf[8], -1e30f); // (2, 0): the lowest diagonal
  EXPECT_EQ(yf[3], 0.0f);
}

TEST(TopKKernels, OrderTiesAndNaN) {
  // Two rows of 5: the k = 3 largest in order, ties to the lower index.
  const std::vector<float> x = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f,
                                3.0f, -2.0f, 0.0f, 7.0f, -5.0f};
  std::vector<int64_t> y(6);
  topk_indices(x.data(), S({2, 5}), 3, /*largest=*/true, y.data());
  EXPECT_EQ(y, (std::vector<int64_t>{1, 3, 4, 3, 0, 2})); // positions in the row
  topk_indices(x.data(), S({2, 5}), 2, /*largest=*/false, y.data());
  EXPECT_EQ(std::vector<int64_t>(y.begin(), y.begin() + 4),
            (std::vector<int64_t>{2, 0, 4, 1}));
  // NaN counts as the largest (as torch.topk).
  const std::vector<float> n = {1.0f, std::nanf(""), 3.0f};
  std::vector<int64_t> yn(2);
  topk_indices(n.data(), S({3}), 2, true, yn.data());
  EXPECT_EQ(yn, (std::vector<int64_t>{1, 2}));
}

TEST(ScatterElementsKernels, RunTimeIndices) {
  // A [2, 4] mask of zeros with ones at each row's two indices along axis 1
  // (negative from the end), and an index out of range.
  const std::vector<float> data(8, 0.0f), upd(4, 1.0f);
  const std::vector<int64_t> idx = {1, -1, 0, 2};
  std::vector<float> y(8);
  ASSERT_TRUE(scatter_elements(data.data(), S({2, 4}), idx.data(), S({2, 2}),
                               upd.data(), 1, y.data())
                  .ok());
  EXPECT_EQ(y, (std::vector<float>{0, 1, 0, 1, 1, 0, 1, 0}));
  const std::vector<int64_t> bad = {4, 0, 0, 0};
  Status st = scatter_elements(data.data(), S({2, 4}), bad.data(),
                               S({2, 2}), upd.data(), 1, y.data());
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("index 4 out of range"), std::string::npos);
}
