//===- ElementwiseKernelsTest.cpp - broadcast binary, unary, where, cast --===//

#include "KernelTestUtil.h"

#include <cstring>
#include <limits>

using namespace wpt;

namespace {

struct ShapePair {
  std::vector<int64_t> a, b;
};

// Awkward sizes, every broadcasting pattern, and one pair large enough for the
// multithreaded path.
const std::vector<ShapePair> kPairs = {
    {{2, 1, 5}, {3, 5}},   {{7}, {4, 1}},         {{3, 4, 5}, {3, 4, 5}},
    {{}, {2, 3}},          {{6, 1, 1, 9}, {1, 5, 9}}, {{5, 3}, {}},
    {{1, 13}, {11, 1}},    {{160, 211}, {160, 1}},
};

const char *name(BinaryOp op) {
  switch (op) {
  case BinaryOp::Add: return "add";
  case BinaryOp::Sub: return "sub";
  case BinaryOp::Mul: return "mul";
  case BinaryOp::Div: return "div";
  case BinaryOp::Pow: return "pow";
  case BinaryOp::Max: return "max";
  case BinaryOp::Min: return "min";
  case BinaryOp::BitAnd: return "bitwise_and";
  case BinaryOp::BitOr: return "bitwise_or";
  case BinaryOp::BitXor: return "bitwise_xor";
  }
  return "?";
}

double refBinary(BinaryOp op, double a, double b) {
  switch (op) {
  case BinaryOp::Add: return a + b;
  case BinaryOp::Sub: return a - b;
  case BinaryOp::Mul: return a * b;
  case BinaryOp::Div: return a / b;
  case BinaryOp::Pow: return std::pow(a, b);
  case BinaryOp::Max: return std::max(a, b);
  case BinaryOp::Min: return std::min(a, b);
  default: return 0; // the bitwise ops: integers only
  }
}

/// Operands in the op's comfortable domain: pow base positive, divisor away
/// from 0, max/min operands never within 0.04 of each other.
void makeOperands(BinaryOp op, Rng &rng, int64_t na, int64_t nb,
                  std::vector<float> &a, std::vector<float> &b) {
  switch (op) {
  case BinaryOp::Pow:
    a = randVec(rng, na, 0.5f, 2.0f);
    b = randVec(rng, nb, -1.5f, 1.5f);
    return;
  case BinaryOp::Div:
    a = randVec(rng, na);
    b = randAwayFromZero(rng, nb, 0.5f, 2.0f);
    return;
  case BinaryOp::Max:
  case BinaryOp::Min:
    // a on a grid of 0.2, b on the grid shifted by 0.1: |a - b| >= 0.06.
    a = randVec(rng, na);
    b = randVec(rng, nb);
    for (auto &v : a)
      v = 0.2f * std::round(v * 10.0f) + rng.uniform(-0.02f, 0.02f);
    for (auto &v : b)
      v = 0.2f * std::round(v * 10.0f) + 0.1f + rng.uniform(-0.02f, 0.02f);
    return;
  default:
    a = randVec(rng, na);
    b = randVec(rng, nb);
  }
}

const BinaryOp kBinaryOps[] = {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul,
                               BinaryOp::Div, BinaryOp::Pow, BinaryOp::Max,
                               BinaryOp::Min};

} // namespace

TEST(BinaryKernels, ForwardMatchesReference) {
  Rng rng(1);
  for (BinaryOp op : kBinaryOps)
    for (const ShapePair &sp : kPairs) {
      std::vector<float> a, b;
      makeOperands(op, rng, numelOf(sp.a), numelOf(sp.b), a, b);
      const auto os = bcast(sp.a, sp.b);
      Shape got;
      ASSERT_TRUE(broadcast_shape(S(sp.a), S(sp.b), &got));
      ASSERT_EQ(got, S(os));
      std::vector<float> out(size_t(numelOf(os)));
      binary_forward(op, a.data(), S(sp.a), b.data(), S(sp.b), out.data());
      std::vector<double> ref(out.size());
      for (int64_t i = 0; i < numelOf(os); ++i) {
        auto m = unravel(i, os);
        ref[size_t(i)] = refBinary(op, a[size_t(bcastIndex(m, sp.a))],
                                   b[size_t(bcastIndex(m, sp.b))]);
      }
      EXPECT_TRUE(closeTo(std::string(name(op)) + " " + S(sp.a).str() + "x" +
                              S(sp.b).str(),
                          out, ref));
    }
}

TEST(BinaryKernels, IncompatibleShapesDoNotBroadcast) {
  Shape out;
  EXPECT_FALSE(broadcast_shape(Shape{3, 4}, Shape{5}, &out));
  EXPECT_FALSE(broadcast_shape(Shape{2, 3}, Shape{3, 3}, &out));
}

TEST(BinaryKernels, IntegerForwardIsExact) {
  Rng rng(2);
  const std::vector<int64_t> as = {3, 1, 5}, bs = {4, 1};
  const auto os = bcast(as, bs);
  std::vector<int64_t> a(size_t(numelOf(as))), b(size_t(numelOf(bs)));
  for (auto &v : a)
    v = rng.below(41) - 20;
  for (auto &v : b)
    v = rng.below(9) + 1;
  b[0] = -7;
  for (BinaryOp op :
       {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div,
        BinaryOp::Max, BinaryOp::Min, BinaryOp::BitAnd, BinaryOp::BitOr,
        BinaryOp::BitXor}) {
    std::vector<int64_t> out(size_t(numelOf(os)));
    binary_forward(op, a.data(), S(as), b.data(), S(bs), out.data());
    for (int64_t i = 0; i < numelOf(os); ++i) {
      auto m = unravel(i, os);
      int64_t x = a[size_t(bcastIndex(m, as))], y = b[size_t(bcastIndex(m, bs))];
      int64_t want = op == BinaryOp::Add   ? x + y
                     : op == BinaryOp::Sub ? x - y
                     : op == BinaryOp::Mul ? x * y
                     : op == BinaryOp::Div ? x / y // C++ truncates, as ONNX
                     : op == BinaryOp::Max ? std::max(x, y)
                     : op == BinaryOp::Min ? std::min(x, y)
                     : op == BinaryOp::BitAnd ? (x & y)
                     : op == BinaryOp::BitOr  ? (x | y)
                                              : (x ^ y);
      ASSERT_EQ(out[size_t(i)], want) << name(op) << " at " << i;
    }
  }
  std::vector<int32_t> a32 = {7, -7, 9}, b32 = {2}, o32(3);
  binary_forward(BinaryOp::Div, a32.data(), Shape{3}, b32.data(), Shape{1},
                 o32.data());
  EXPECT_EQ(o32, (std::vector<int32_t>{3, -3, 4}));
}

TEST(BinaryKernels, BackwardMatchesFiniteDifferences) {
  Rng rng(3);
  const std::vector<ShapePair> pairs = {
      {{2, 1, 5}, {3, 5}}, {{7}, {4, 1}}, {{}, {2, 3}}, {{3, 4}, {3, 4}}};
  for (BinaryOp op : kBinaryOps)
    for (const ShapePair &sp : pairs) {
      std::vector<float> a, b;
      makeOperands(op, rng, numelOf(sp.a), numelOf(sp.b), a, b);
      const auto os = bcast(sp.a, sp.b);
      const auto r = randVec(rng, numelOf(os));
      std::vector<float> out(r.size()), da(a.size(), 7.0f), db(b.size(), 7.0f);
      auto loss = [&] {
        binary_forward(op, a.data(), S(sp.a), b.data(), S(sp.b), out.data());
        return dotLoss(out, r);
      };
      binary_backward(op, a.data(), S(sp.a), b.data(), S(sp.b), r.data(),
                      da.data(), db.data());
      const std::string tag = std::string(name(op)) + " " + S(sp.a).str() +
                              "x" + S(sp.b).str();
      fdCheck(tag + " da", a, da, loss);
      fdCheck(tag + " db", b, db, loss);
    }
}

TEST(BinaryKernels, MaxMinTiesSplitTheGradient) {
  const std::vector<float> a = {1.0f, 2.0f, 3.0f}, b = {1.0f, 5.0f, 0.0f};
  const std::vector<float> g = {4.0f, 4.0f, 4.0f};
  std::vector<float> da(3), db(3);
  binary_backward(BinaryOp::Max, a.data(), Shape{3}, b.data(), Shape{3},
                  g.data(), da.data(), db.data());
  EXPECT_EQ(da, (std::vector<float>{2.0f, 0.0f, 4.0f}));
  EXPECT_EQ(db, (std::vector<float>{2.0f, 4.0f, 0.0f}));
  binary_backward(BinaryOp::Min, a.data(), Shape{3}, b.data(), Shape{3},
                  g.data(), da.data(), db.data());
  EXPECT_EQ(da, (std::vector<float>{2.0f, 4.0f, 0.0f}));
  EXPECT_EQ(db, (std::vector<float>{2.0f, 0.0f, 4.0f}));
}

TEST(BinaryKernels, MaxPropagatesNaN) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> a = {nan, 1.0f}, b = {0.0f, nan};
  std::vector<float> out(2);
  binary_forward(BinaryOp::Max, a.data(), Shape{2}, b.data(), Shape{2},
                 out.data());
  EXPECT_TRUE(std::isnan(out[0]) && std::isnan(out[1]));
  binary_forward(BinaryOp::Min, a.data(), Shape{2}, b.data(), Shape{2},
                 out.data());
  EXPECT_TRUE(std::isnan(out[0]) && std::isnan(out[1]));
}

TEST(CompareKernels, ComparisonsLogicNotIsNan) {
  Rng rng(4);
  const std::vector<int64_t> as = {3, 1, 4}, bs = {5, 1};
  const auto os = bcast(as, bs);
  std::vector<float> a(size_t(numelOf(as))), b(size_t(numelOf(bs)));
  for (auto &v : a)
    v = float(rng.below(3));
  for (auto &v : b)
    v = float(rng.below(3));
  for (CompareOp op : {CompareOp::Equal, CompareOp::Less, CompareOp::Greater}) {
    std::vector<uint8_t> out(size_t(numelOf(os)), 9);
    compare_forward(op, a.data(), S(as), b.data(), S(bs), out.data());
    std::vector<int64_t> ai(a.begin(), a.end()), bi(b.begin(), b.end());
    std::vector<uint8_t> outi(out.size(), 9);
    compare_forward(op, ai.data(), S(as), bi.data(), S(bs), outi.data());
    for (int64_t i = 0; i < numelOf(os); ++i) {
      auto m = unravel(i, os);
      float x = a[size_t(bcastIndex(m, as))], y = b[size_t(bcastIndex(m, bs))];
      uint8_t want = op == CompareOp::Equal ? x == y
                     : op == CompareOp::Less ? x < y
                                             : x > y;
      ASSERT_EQ(out[size_t(i)], want);
      ASSERT_EQ(outi[size_t(i)], want);
    }
  }
  const std::vector<uint8_t> p = {0, 1, 0, 2}, q = {1, 0};
  std::vector<uint8_t> o(8);
  logic_forward(LogicOp::And, p.data(), Shape{4, 1}, q.data(), Shape{2},
                o.data());
  EXPECT_EQ(o, (std::vector<uint8_t>{0, 0, 1, 0, 0, 0, 1, 0}));
  logic_forward(LogicOp::Or, p.data(), Shape{4, 1}, q.data(), Shape{2},
                o.data());
  EXPECT_EQ(o, (std::vector<uint8_t>{1, 0, 1, 1, 1, 0, 1, 1}));
  std::vector<uint8_t> n(4);
  not_forward(p.data(), n.data(), 4);
  EXPECT_EQ(n, (std::vector<uint8_t>{1, 0, 1, 0}));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> f = {0.0f, nan, INFINITY, -nan};
  is_nan_forward(f.data(), n.data(), 4);
  EXPECT_EQ(n, (std::vector<uint8_t>{0, 1, 0, 1}));
}

TEST(WhereKernels, ForwardAndBackward) {
  Rng rng(5);
  const std::vector<int64_t> cs = {4, 1, 6}, as = {3, 6}, bs = {};
  const auto os = bcast(bcast(cs, as), bs);
  std::vector<uint8_t> c(size_t(numelOf(cs)));
  for (auto &v : c)
    v = uint8_t(rng.below(2) * (1 + rng.below(3))); // nonzero counts as true
  auto a = randVec(rng, numelOf(as)), b = randVec(rng, 1);
  std::vector<float> out(size_t(numelOf(os)));
  where_forward(c.data(), S(cs), a.data(), S(as), b.data(), S(bs), out.data(),
                S(os));
  std::vector<double> ref(out.size()), ra(a.size()), rb(1);
  const auto g = randVec(rng, numelOf(os));
  for (int64_t i = 0; i < numelOf(os); ++i) {
    auto m = unravel(i, os);
    bool t = c[size_t(bcastIndex(m, cs))] != 0;
    ref[size_t(i)] = t ? a[size_t(bcastIndex(m, as))] : b[0];
    (t ? ra[size_t(bcastIndex(m, as))] : rb[0]) += g[size_t(i)];
  }
  EXPECT_TRUE(closeTo("where forward", out, ref));
  std::vector<float> da(a.size()), db(1);
  where_backward(c.data(), S(cs), S(as), S(bs), g.data(), S(os), da.data(),
                 db.data());
  EXPECT_TRUE(closeToSum("where backward da", da, ra));
  EXPECT_TRUE(closeToSum("where backward db", db, rb));
  auto loss = [&] {
    where_forward(c.data(), S(cs), a.data(), S(as), b.data(), S(bs),
                  out.data(), S(os));
    return dotLoss(out, g);
  };
  fdCheck("where da", a, da, loss);
  fdCheck("where db", b, db, loss);
  // Integer payloads select the same way.
  std::vector<int64_t> ai = {1, 2, 3}, bi = {-1}, oi(3);
  std::vector<uint8_t> ci = {1, 0, 1};
  where_forward(ci.data(), Shape{3}, ai.data(), Shape{3}, bi.data(), Shape{},
                oi.data(), Shape{3});
  EXPECT_EQ(oi, (std::vector<int64_t>{1, -1, 3}));
}

namespace {
struct UnaryCase {
  UnaryOp op;
  const char *name;
  float lo, hi;  // domain magnitude
  bool signedDomain;
  double (*f)(double);
};
double dNeg(double x) { return -x; }
double dRecip(double x) { return 1.0 / x; }
double dSigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double dRelu(double x) { return x > 0 ? x : 0; }
double dAbs(double x) { return std::fabs(x); }
double dSqrt(double x) { return std::sqrt(x); }
double dExp(double x) { return std::exp(x); }
double dLog(double x) { return std::log(x); }
double dErf(double x) { return std::erf(x); }
double dTanh(double x) { return std::tanh(x); }
double dSin(double x) { return std::sin(x); }
double dCos(double x) { return std::cos(x); }
const UnaryCase kUnary[] = {
    {UnaryOp::Neg, "neg", 0.0f, 3.0f, true, dNeg},
    {UnaryOp::Abs, "abs", 0.05f, 3.0f, true, dAbs},
    {UnaryOp::Sqrt, "sqrt", 0.2f, 3.0f, false, dSqrt},
    {UnaryOp::Reciprocal, "reciprocal", 0.3f, 3.0f, true, dRecip},
    {UnaryOp::Exp, "exp", 0.0f, 3.0f, true, dExp},
    {UnaryOp::Log, "log", 0.2f, 3.0f, false, dLog},
    {UnaryOp::Erf, "erf", 0.0f, 3.0f, true, dErf},
    {UnaryOp::Tanh, "tanh", 0.0f, 3.0f, true, dTanh},
    {UnaryOp::Sigmoid, "sigmoid", 0.0f, 8.0f, true, dSigmoid},
    {UnaryOp::Relu, "relu", 0.05f, 3.0f, true, dRelu},
    {UnaryOp::Sin, "sin", 0.0f, 4.0f, true, dSin},
    {UnaryOp::Cos, "cos", 0.0f, 4.0f, true, dCos},
};
} // namespace

TEST(UnaryKernels, ForwardMatchesReference) {
  Rng rng(6);
  for (const UnaryCase &c : kUnary)
    for (int64_t n : {1, 37, 40009}) {
      auto x = c.signedDomain ? randAwayFromZero(rng, n, c.lo, c.hi)
                              : randVec(rng, n, c.lo, c.hi);
      std::vector<float> y(x.size());
      unary_forward(c.op, x.data(), y.data(), n);
      std::vector<double> ref(x.size());
      for (size_t i = 0; i < x.size(); ++i)
        ref[i] = c.f(x[i]);
      EXPECT_TRUE(closeTo(std::string(c.name) + " n=" + std::to_string(n), y,
                          ref));
    }
}

// Piecewise constant: exact values (ties and signed zeros included) and a
// zero gradient.
TEST(UnaryKernels, FloorCeilSign) {
  const std::vector<float> x = {-2.5f, -2.0f, -0.25f, -0.0f, 0.0f,
                                0.25f, 2.0f,  2.5f,   NAN};
  std::vector<float> y(x.size()), dx(x.size(), 7.0f), g(x.size(), 1.0f);
  const struct {
    UnaryOp op;
    double (*f)(double);
  } cases[] = {{UnaryOp::Floor, [](double v) { return std::floor(v); }},
               {UnaryOp::Ceil, [](double v) { return std::ceil(v); }},
               {UnaryOp::Sign, [](double v) {
                  return v > 0 ? 1.0 : v < 0 ? -1.0 : v;
                }}};
  for (const auto &c : cases) {
    unary_forward(c.op, x.data(), y.data(), int64_t(x.size()));
    for (size_t i = 0; i < x.size(); ++i) {
      const float want = float(c.f(x[i]));
      if (std::isnan(want))
        EXPECT_TRUE(std::isnan(y[i])) << int(c.op) << " at " << x[i];
      else
        EXPECT_EQ(y[i], want) << int(c.op) << " at " << x[i];
    }
    unary_backward(c.op, x.data(), y.data(), g.data(), dx.data(),
                   int64_t(x.size()));
    for (float d : dx)
      EXPECT_EQ(d, 0.0f);
  }
}

TEST(UnaryKernels, InPlaceForward) {
  std::vector<float> x = {-1.0f, 0.0f, 2.0f};
  unary_forward(UnaryOp::Relu, x.data(), x.data(), 3);
  EXPECT_EQ(x, (std::vector<float>{0.0f, 0.0f, 2.0f}));
}

TEST(UnaryKernels, BackwardMatchesFiniteDifferences) {
  Rng rng(7);
  for (const UnaryCase &c : kUnary) {
    const int64_t n = 29;
    auto x = c.signedDomain ? randAwayFromZero(rng, n, c.lo, std::min(c.hi, 3.0f))
                            : randVec(rng, n, c.lo, c.hi);
    auto r = randVec(rng, n);
    std::vector<float> y(x.size()), dx(x.size());
    unary_forward(c.op, x.data(), y.data(), n);
    unary_backward(c.op, x.data(), y.data(), r.data(), dx.data(), n);
    fdCheck(std::string(c.name) + " dx", x, dx, [&] {
      unary_forward(c.op, x.data(), y.data(), n);
      return dotLoss(y, r);
    });
  }
}

TEST(UnaryKernels, KinkConventions) {
  const std::vector<float> x = {0.0f}, g = {1.0f};
  std::vector<float> dx(1, 5.0f);
  unary_backward(UnaryOp::Relu, x.data(), nullptr, g.data(), dx.data(), 1);
  EXPECT_EQ(dx[0], 0.0f);
  unary_backward(UnaryOp::Abs, x.data(), nullptr, g.data(), dx.data(), 1);
  EXPECT_EQ(dx[0], 0.0f);
}

TEST(CastKernels, Conversions) {
  const std::vector<float> f = {-2.7f, -0.5f, 0.0f, 0.5f, 3.9f};
  std::vector<int64_t> i64(5);
  cast(f.data(), i64.data(), 5);
  EXPECT_EQ(i64, (std::vector<int64_t>{-2, 0, 0, 0, 3})); // toward zero
  std::vector<int32_t> i32(5);
  cast(f.data(), i32.data(), 5);
  EXPECT_EQ(i32, (std::vector<int32_t>{-2, 0, 0, 0, 3}));
  std::vector<float> back(5);
  cast(i64.data(), back.data(), 5);
  EXPECT_EQ(back, (std::vector<float>{-2, 0, 0, 0, 3}));
  cast(i32.data(), back.data(), 5);
  EXPECT_EQ(back, (std::vector<float>{-2, 0, 0, 0, 3}));
  std::vector<uint8_t> bits(5);
  cast(f.data(), bits.data(), 5);
  EXPECT_EQ(bits, (std::vector<uint8_t>{1, 1, 0, 1, 1}));
  cast(i64.data(), bits.data(), 5);
  EXPECT_EQ(bits, (std::vector<uint8_t>{1, 0, 0, 0, 1}));
  cast(bits.data(), back.data(), 5);
  EXPECT_EQ(back, (std::vector<float>{1, 0, 0, 0, 1}));
  std::vector<int64_t> wide(5);
  cast(bits.data(), wide.data(), 5);
  EXPECT_EQ(wide, (std::vector<int64_t>{1, 0, 0, 0, 1}));
  cast(i32.data(), wide.data(), 5);
  EXPECT_EQ(wide, (std::vector<int64_t>{-2, 0, 0, 0, 3}));
  cast(wide.data(), i32.data(), 5);
  EXPECT_EQ(i32, (std::vector<int32_t>{-2, 0, 0, 0, 3}));
}
