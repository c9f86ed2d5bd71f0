//===- ReduceKernelsTest.cpp - reductions, sum_to_shape, softmax ----------===//

#include "KernelTestUtil.h"

using namespace wpt;

namespace {

struct ReduceCase {
  std::vector<int64_t> shape, axes;
};

// Leading, trailing, middle and alternating axis sets; all axes; a long
// trailing reduction that takes the chunked path; a wide one that is parallel.
const std::vector<ReduceCase> kReduceCases = {
    {{3, 5, 7}, {2}},     {{3, 5, 7}, {0}},        {{3, 5, 7}, {1}},
    {{3, 5, 7}, {0, 2}},  {{2, 3, 4, 5}, {1, 3}},  {{4, 6}, {0, 1}},
    {{9}, {0}},           {{2, 1, 3}, {1}},        {{3, 20000}, {1}},
    {{71, 523}, {0}},     {{5, 3, 7}, {}},
};

const char *name(ReduceOp op) {
  return op == ReduceOp::Sum ? "sum" : op == ReduceOp::Mean ? "mean" : "max";
}

/// Double reference: y (keepdims layout) over `axes`.
std::vector<double> refReduce(ReduceOp op, const std::vector<float> &x,
                              const std::vector<int64_t> &shape,
                              const std::vector<int64_t> &axes) {
  std::vector<int64_t> ks = shape;
  for (int64_t a : axes)
    ks[size_t(a)] = 1;
  std::vector<double> y(size_t(numelOf(ks)),
                        op == ReduceOp::Max ? -INFINITY : 0.0);
  std::vector<int64_t> cnt(y.size(), 0);
  for (int64_t i = 0; i < numelOf(shape); ++i) {
    auto m = unravel(i, shape);
    for (int64_t a : axes)
      m[size_t(a)] = 0;
    size_t o = size_t(ravel(m, ks));
    if (op == ReduceOp::Max)
      y[o] = std::max(y[o], double(x[size_t(i)]));
    else
      y[o] += x[size_t(i)];
    ++cnt[o];
  }
  if (op == ReduceOp::Mean)
    for (size_t o = 0; o < y.size(); ++o)
      y[o] /= double(cnt[o]);
  return y;
}

} // namespace

TEST(ReduceKernels, ShapeWithAndWithoutKeepdims) {
  EXPECT_EQ(reduce_shape(Shape{2, 8, 32}, {2}, true), (Shape{2, 8, 1}));
  EXPECT_EQ(reduce_shape(Shape{2, 8, 32}, {0, 2}, false), (Shape{8}));
  EXPECT_EQ(reduce_shape(Shape{2, 8}, {0, 1}, false), Shape{});
}

TEST(ReduceKernels, ForwardMatchesReference) {
  Rng rng(11);
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max})
    for (const ReduceCase &c : kReduceCases) {
      auto x = randVec(rng, numelOf(c.shape));
      std::vector<float> y(size_t(reduce_shape(S(c.shape), c.axes, true).numel()));
      reduce_forward(op, x.data(), S(c.shape), c.axes, y.data());
      EXPECT_TRUE(closeToSum(std::string("reduce_") + name(op) + " " +
                              S(c.shape).str() + " axes " +
                              Shape(c.axes).str(),
                          y, refReduce(op, x, c.shape, c.axes)));
    }
}

// Integer sums and maxima (token counts) are exact, over every axis set,
// negative values included.
TEST(ReduceKernels, IntegerForwardIsExact) {
  Rng rng(12);
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max})
    for (const ReduceCase &c : kReduceCases) {
      const int64_t n = numelOf(c.shape);
      std::vector<int64_t> x(static_cast<size_t>(n));
      std::vector<float> xf(x.size());
      for (size_t i = 0; i < x.size(); ++i)
        xf[i] = float(x[i] = rng.below(2001) - 1000);
      std::vector<int64_t> y(
          size_t(reduce_shape(S(c.shape), c.axes, true).numel()));
      reduce_forward_int(op, x.data(), S(c.shape), c.axes, y.data());
      std::vector<double> ref = refReduce(op, xf, c.shape, c.axes);
      ASSERT_EQ(y.size(), ref.size());
      for (size_t o = 0; o < y.size(); ++o)
        ASSERT_EQ(double(y[o]), ref[o])
            << name(op) << " " << S(c.shape).str() << " at " << o;
    }
  std::vector<int32_t> x32 = {3, -1, 4, 1, -5, 9}, y32(2);
  reduce_forward_int(ReduceOp::Max, x32.data(), Shape{2, 3}, {1}, y32.data());
  EXPECT_EQ(y32, (std::vector<int32_t>{4, 9}));
}

TEST(ReduceKernels, BackwardMatchesFiniteDifferences) {
  Rng rng(12);
  const std::vector<ReduceCase> cases = {{{3, 5, 7}, {2}},
                                         {{3, 5, 7}, {0, 2}},
                                         {{2, 3, 4, 5}, {1, 3}},
                                         {{4, 6}, {0, 1}},
                                         {{4, 6}, {0}}};
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max})
    for (const ReduceCase &c : cases) {
      // Distinct values 0.05 apart: the argmax never flips under h = 0.01.
      auto x = randDistinct(rng, numelOf(c.shape));
      const int64_t ny = reduce_shape(S(c.shape), c.axes, true).numel();
      auto r = randVec(rng, ny);
      std::vector<float> y(static_cast<size_t>(ny)), dx(x.size(), 3.0f);
      reduce_forward(op, x.data(), S(c.shape), c.axes, y.data());
      reduce_backward(op, x.data(), S(c.shape), c.axes, y.data(), r.data(),
                      dx.data());
      fdCheck(std::string("reduce_") + name(op) + " " + S(c.shape).str() +
                  " axes " + Shape(c.axes).str(),
              x, dx, [&] {
                reduce_forward(op, x.data(), S(c.shape), c.axes, y.data());
                return dotLoss(y, r);
              });
    }
}

TEST(ReduceKernels, MaxBackwardSplitsTies) {
  const std::vector<float> x = {1, 3, 3, 2, 0, 0}, dy = {6, 4};
  std::vector<float> y(2), dx(6);
  reduce_forward(ReduceOp::Max, x.data(), Shape{2, 3}, {1}, y.data());
  EXPECT_EQ(y, (std::vector<float>{3, 2}));
  reduce_backward(ReduceOp::Max, x.data(), Shape{2, 3}, {1}, y.data(),
                  dy.data(), dx.data());
  EXPECT_EQ(dx, (std::vector<float>{0, 3, 3, 4, 0, 0}));
}

TEST(ReduceKernels, SumToShapeMatchesReference) {
  Rng rng(13);
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>>
      cases = {{{4, 5, 6}, {6}},       {{4, 5, 6}, {5, 1}}, {{4, 5, 6}, {4, 1, 6}},
               {{4, 5, 6}, {}},        {{4, 5, 6}, {1, 1, 1}}, {{7, 300}, {300}},
               {{3, 2, 5, 2}, {2, 1, 2}}, {{4, 5, 6}, {4, 5, 6}}};
  for (const auto &[ss, ds] : cases) {
    auto x = randVec(rng, numelOf(ss));
    std::vector<float> y(size_t(numelOf(ds)));
    sum_to_shape(x.data(), S(ss), y.data(), S(ds));
    std::vector<double> ref(y.size(), 0.0);
    for (int64_t i = 0; i < numelOf(ss); ++i)
      ref[size_t(bcastIndex(unravel(i, ss), ds))] += x[size_t(i)];
    EXPECT_TRUE(closeToSum("sum_to_shape " + S(ss).str() + "->" + S(ds).str(), y,
                        ref));
  }
}

TEST(SoftmaxKernels, ForwardMatchesReference) {
  Rng rng(14);
  const std::vector<std::pair<std::vector<int64_t>, int>> cases = {
      {{3, 17}, 1}, {{3, 17}, 0}, {{2, 5, 7}, 1}, {{37}, 0}, {{128, 301}, 1}};
  for (bool log : {false, true})
    for (const auto &[shape, axis] : cases) {
      auto x = randVec(rng, numelOf(shape), -4.0f, 4.0f);
      std::vector<float> y(x.size());
      (log ? log_softmax_forward : softmax_forward)(x.data(), S(shape), axis,
                                                    y.data());
      // One line per (outer, inner) index pair around the axis.
      int64_t outer = 1, inner = 1;
      const int64_t n = shape[size_t(axis)];
      for (int d = 0; d < axis; ++d)
        outer *= shape[size_t(d)];
      for (size_t d = size_t(axis) + 1; d < shape.size(); ++d)
        inner *= shape[d];
      std::vector<double> ref(x.size());
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t in = 0; in < inner; ++in) {
          auto at = [&](int64_t j) { return size_t((o * n + j) * inner + in); };
          double mx = -INFINITY, sum = 0.0;
          for (int64_t j = 0; j < n; ++j)
            mx = std::max(mx, double(x[at(j)]));
          for (int64_t j = 0; j < n; ++j)
            sum += std::exp(x[at(j)] - mx);
          for (int64_t j = 0; j < n; ++j)
            ref[at(j)] = log ? x[at(j)] - mx - std::log(sum)
                             : std::exp(x[at(j)] - mx) / sum;
        }
      EXPECT_TRUE(closeTo(std::string(log ? "log_softmax " : "softmax ") +
                              S(shape).str() + " axis " + std::to_string(axis),
                          y, ref));
    }
}

TEST(SoftmaxKernels, BackwardMatchesFiniteDifferences) {
  Rng rng(15);
  const std::vector<std::pair<std::vector<int64_t>, int>> cases = {
      {{3, 11}, 1}, {{2, 5, 7}, 1}, {{4, 3}, 0}};
  for (bool log : {false, true})
    for (const auto &c : cases) {
      const std::vector<int64_t> &shape = c.first;
      const int axis = c.second;
      auto x = randVec(rng, numelOf(shape), -2.0f, 2.0f);
      auto r = randVec(rng, numelOf(shape));
      std::vector<float> y(x.size()), dx(x.size());
      auto fwd = log ? log_softmax_forward : softmax_forward;
      fwd(x.data(), S(shape), axis, y.data());
      (log ? log_softmax_backward : softmax_backward)(y.data(), r.data(),
                                                      S(shape), axis, dx.data());
      fdCheck(std::string(log ? "log_softmax " : "softmax ") + S(shape).str() +
                  " axis " + std::to_string(axis),
              x, dx, [&] {
                fwd(x.data(), S(shape), axis, y.data());
                return dotLoss(y, r);
              });
    }
}
