//===- Elementwise.cpp - broadcast binary, unary, activations -------------===//
//
// Part of weipipe's runtime (CPU kernels). Every broadcast op runs on the
// strided engine of Internal.h; backward computes the full-size local gradient
// and sums it down to the operand's shape when the operand was broadcast.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"
#include "Vec.h"

#include <cmath>
#include <cstring>
#include <type_traits>
#include <limits>

namespace weipipe::rt::cpu {
using namespace detail;

namespace {

Shape broadcastOrDie(const Shape &a, const Shape &b) {
  Shape s;
  WP_CHECK(broadcast_shape(a, b, &s),
           a.str() + " and " + b.str() + " do not broadcast");
  return s;
}

/// out[i] = op(a[i], b[i]) over the broadcast shape of as and bs.
template <class TIn, class TOut, class Op>
void runBinary(const TIn *a, const Shape &as, const TIn *b, const Shape &bs,
               TOut *out, Op op) {
  Shape os = broadcastOrDie(as, bs);
  int64_t st[kMaxOps][kMaxRank];
  contiguousStrides(os, st[0]);
  broadcastStrides(as, os, st[1]);
  broadcastStrides(bs, os, st[2]);
  StridedPlan p = makePlan(os, 3, st);
  const int64_t sa = p.innerStride(1), sb = p.innerStride(2);
  forEachRow(p, [&](const int64_t *o, int64_t n) {
    TOut *y = out + o[0];
    const TIn *x1 = a + o[1], *x2 = b + o[2];
    if (sa == 1 && sb == 1) {
      for (int64_t i = 0; i < n; ++i)
        y[i] = op(x1[i], x2[i]);
    } else if (sa == 1 && sb == 0) {
      const TIn v = x2[0];
      for (int64_t i = 0; i < n; ++i)
        y[i] = op(x1[i], v);
    } else if (sa == 0 && sb == 1) {
      const TIn v = x1[0];
      for (int64_t i = 0; i < n; ++i)
        y[i] = op(v, x2[i]);
    } else {
      for (int64_t i = 0; i < n; ++i)
        y[i] = op(x1[i * sa], x2[i * sb]);
    }
  });
}

template <class T> T divide(T a, T b) {
  if constexpr (std::is_integral_v<T>)
    return b == 0 ? T(0) : T(a / b); // ONNX leaves x/0 undefined; never trap
  else
    return a / b;
}

// NaN-propagating max/min (torch.maximum/minimum).
template <class T> T maxOf(T a, T b) { return (a > b || a != a) ? a : b; }
template <class T> T minOf(T a, T b) { return (a < b || a != a) ? a : b; }

/// Local derivatives d(a op b)/da and /db times the upstream gradient g.
struct BinaryGrad {
  BinaryOp op;
  float da(float a, float b, float g) const {
    switch (op) {
    case BinaryOp::Add:
    case BinaryOp::Sub:
      return g;
    case BinaryOp::Mul:
      return g * b;
    case BinaryOp::Div:
      return g / b;
    case BinaryOp::Pow:
      return b == 0.0f ? 0.0f : g * b * std::pow(a, b - 1.0f);
    case BinaryOp::Max:
      return a > b ? g : (a == b ? 0.5f * g : 0.0f);
    case BinaryOp::Min:
      return a < b ? g : (a == b ? 0.5f * g : 0.0f);
    case BinaryOp::BitAnd:
    case BinaryOp::BitOr:
    case BinaryOp::BitXor:
      break; // integer-only: never differentiated
    }
    return 0.0f;
  }
  float db(float a, float b, float g) const {
    switch (op) {
    case BinaryOp::Add:
      return g;
    case BinaryOp::Sub:
      return -g;
    case BinaryOp::Mul:
      return g * a;
    case BinaryOp::Div:
      return -g * a / (b * b);
    case BinaryOp::Pow:
      return (a == 0.0f && b >= 0.0f) ? 0.0f
                                       : g * std::pow(a, b) * std::log(a);
    case BinaryOp::Max:
      return b > a ? g : (a == b ? 0.5f * g : 0.0f);
    case BinaryOp::Min:
      return b < a ? g : (a == b ? 0.5f * g : 0.0f);
    case BinaryOp::BitAnd:
    case BinaryOp::BitOr:
    case BinaryOp::BitXor:
      break;
    }
    return 0.0f;
  }
};

/// Writes dst[i] = f(i) over `os` for operands a (as), b (bs), g (os), then
/// sums the result down to `target` if target is smaller than os.
template <class F>
void gradToOperand(const float *a, const Shape &as, const float *b,
                   const Shape &bs, const float *g, const Shape &os,
                   const Shape &target, float *out, F f) {
  const bool direct = target.numel() == os.numel();
  std::vector<float> tmp;
  float *dst = out;
  if (!direct) {
    tmp.resize(size_t(os.numel()));
    dst = tmp.data();
  }
  int64_t st[kMaxOps][kMaxRank];
  contiguousStrides(os, st[0]);
  broadcastStrides(as, os, st[1]);
  broadcastStrides(bs, os, st[2]);
  contiguousStrides(os, st[3]);
  StridedPlan p = makePlan(os, 4, st);
  const int64_t sa = p.innerStride(1), sb = p.innerStride(2);
  forEachRow(p, [&](const int64_t *o, int64_t n) {
    float *y = dst + o[0];
    const float *x1 = a + o[1], *x2 = b + o[2], *gg = g + o[3];
    for (int64_t i = 0; i < n; ++i)
      y[i] = f(x1[i * sa], x2[i * sb], gg[i]);
  });
  if (!direct)
    sum_to_shape(dst, os, out, target);
}

} // namespace

template <typename T>
void binary_forward(BinaryOp op, const T *a, const Shape &as, const T *b,
                    const Shape &bs, T *out) {
  switch (op) {
  case BinaryOp::Add:
    return runBinary(a, as, b, bs, out, [](T x, T y) { return T(x + y); });
  case BinaryOp::Sub:
    return runBinary(a, as, b, bs, out, [](T x, T y) { return T(x - y); });
  case BinaryOp::Mul:
    return runBinary(a, as, b, bs, out, [](T x, T y) { return T(x * y); });
  case BinaryOp::Div:
    return runBinary(a, as, b, bs, out, [](T x, T y) { return divide(x, y); });
  case BinaryOp::Pow:
    if constexpr (std::is_floating_point_v<T>)
      return runBinary(a, as, b, bs, out,
                       [](T x, T y) { return T(std::pow(x, y)); });
    WP_CHECK(false, "pow is only defined on floats");
  case BinaryOp::Max:
    return runBinary(a, as, b, bs, out, [](T x, T y) { return maxOf(x, y); });
  case BinaryOp::Min:
    return runBinary(a, as, b, bs, out, [](T x, T y) { return minOf(x, y); });
  case BinaryOp::BitAnd:
  case BinaryOp::BitOr:
  case BinaryOp::BitXor:
    if constexpr (std::is_integral_v<T>) {
      if (op == BinaryOp::BitAnd)
        return runBinary(a, as, b, bs, out, [](T x, T y) { return T(x & y); });
      if (op == BinaryOp::BitOr)
        return runBinary(a, as, b, bs, out, [](T x, T y) { return T(x | y); });
      return runBinary(a, as, b, bs, out, [](T x, T y) { return T(x ^ y); });
    }
    WP_CHECK(false, "bitwise ops are only defined on integers");
  }
}

template void binary_forward<float>(BinaryOp, const float *, const Shape &,
                                    const float *, const Shape &, float *);
template void binary_forward<int64_t>(BinaryOp, const int64_t *, const Shape &,
                                      const int64_t *, const Shape &,
                                      int64_t *);
template void binary_forward<int32_t>(BinaryOp, const int32_t *, const Shape &,
                                      const int32_t *, const Shape &,
                                      int32_t *);

void binary_backward(BinaryOp op, const float *a, const Shape &as,
                     const float *b, const Shape &bs, const float *dout,
                     float *da, float *db) {
  Shape os = broadcastOrDie(as, bs);
  BinaryGrad bg{op};
  if (da)
    gradToOperand(a, as, b, bs, dout, os, as, da,
                  [bg](float x, float y, float g) { return bg.da(x, y, g); });
  if (db)
    gradToOperand(a, as, b, bs, dout, os, bs, db,
                  [bg](float x, float y, float g) { return bg.db(x, y, g); });
}

template <typename T>
void compare_forward(CompareOp op, const T *a, const Shape &as, const T *b,
                     const Shape &bs, uint8_t *out) {
  switch (op) {
  case CompareOp::Equal:
    return runBinary(a, as, b, bs, out,
                     [](T x, T y) { return uint8_t(x == y); });
  case CompareOp::Less:
    return runBinary(a, as, b, bs, out,
                     [](T x, T y) { return uint8_t(x < y); });
  case CompareOp::Greater:
    return runBinary(a, as, b, bs, out,
                     [](T x, T y) { return uint8_t(x > y); });
  }
}

#define WP_INSTANTIATE_COMPARE(T)                                              \
  template void compare_forward<T>(CompareOp, const T *, const Shape &,        \
                                   const T *, const Shape &, uint8_t *);
WP_INSTANTIATE_COMPARE(float)
WP_INSTANTIATE_COMPARE(int64_t)
WP_INSTANTIATE_COMPARE(int32_t)
WP_INSTANTIATE_COMPARE(uint8_t)
#undef WP_INSTANTIATE_COMPARE

void logic_forward(LogicOp op, const uint8_t *a, const Shape &as,
                   const uint8_t *b, const Shape &bs, uint8_t *out) {
  if (op == LogicOp::And)
    runBinary(a, as, b, bs, out,
              [](uint8_t x, uint8_t y) { return uint8_t(x && y); });
  else
    runBinary(a, as, b, bs, out,
              [](uint8_t x, uint8_t y) { return uint8_t(x || y); });
}

void not_forward(const uint8_t *x, uint8_t *y, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i)
    y[i] = x[i] ? 0 : 1;
}

void is_nan_forward(const float *x, uint8_t *y, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i)
    y[i] = std::isnan(x[i]) ? 1 : 0;
}

template <typename T>
void where_forward(const uint8_t *cond, const Shape &cs, const T *a,
                   const Shape &as, const T *b, const Shape &bs, T *out,
                   const Shape &outShape) {
  int64_t st[kMaxOps][kMaxRank];
  contiguousStrides(outShape, st[0]);
  broadcastStrides(cs, outShape, st[1]);
  broadcastStrides(as, outShape, st[2]);
  broadcastStrides(bs, outShape, st[3]);
  StridedPlan p = makePlan(outShape, 4, st);
  const int64_t sc = p.innerStride(1), sa = p.innerStride(2),
                sb = p.innerStride(3);
  forEachRow(p, [&](const int64_t *o, int64_t n) {
    T *y = out + o[0];
    const uint8_t *c = cond + o[1];
    const T *x1 = a + o[2], *x2 = b + o[3];
    for (int64_t i = 0; i < n; ++i)
      y[i] = c[i * sc] ? x1[i * sa] : x2[i * sb];
  });
}

#define WP_INSTANTIATE_WHERE(T)                                                \
  template void where_forward<T>(const uint8_t *, const Shape &, const T *,    \
                                 const Shape &, const T *, const Shape &, T *, \
                                 const Shape &);
WP_INSTANTIATE_WHERE(float)
WP_INSTANTIATE_WHERE(int64_t)
WP_INSTANTIATE_WHERE(int32_t)
WP_INSTANTIATE_WHERE(uint8_t)
#undef WP_INSTANTIATE_WHERE

void where_backward(const uint8_t *cond, const Shape &cs, const Shape &as,
                    const Shape &bs, const float *dout, const Shape &outShape,
                    float *da, float *db) {
  for (int which = 0; which < 2; ++which) {
    float *out = which == 0 ? da : db;
    const Shape &target = which == 0 ? as : bs;
    if (!out)
      continue;
    const bool direct = target.numel() == outShape.numel();
    std::vector<float> tmp;
    float *dst = out;
    if (!direct) {
      tmp.resize(size_t(outShape.numel()));
      dst = tmp.data();
    }
    int64_t st[kMaxOps][kMaxRank];
    contiguousStrides(outShape, st[0]);
    broadcastStrides(cs, outShape, st[1]);
    contiguousStrides(outShape, st[2]);
    StridedPlan p = makePlan(outShape, 3, st);
    const int64_t sc = p.innerStride(1);
    const bool takeTrue = which == 0;
    forEachRow(p, [&](const int64_t *o, int64_t n) {
      float *y = dst + o[0];
      const uint8_t *c = cond + o[1];
      const float *g = dout + o[2];
      for (int64_t i = 0; i < n; ++i)
        y[i] = (c[i * sc] != 0) == takeTrue ? g[i] : 0.0f;
    });
    if (!direct)
      sum_to_shape(dst, outShape, out, target);
  }
}

namespace {
template <class From, class To, class F>
void castLoop(const From *x, To *y, int64_t n, F f) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i)
    y[i] = f(x[i]);
}
} // namespace

void cast(const float *x, int64_t *y, int64_t n) {
  castLoop(x, y, n, [](float v) { return int64_t(v); });
}
void cast(const int64_t *x, float *y, int64_t n) {
  castLoop(x, y, n, [](int64_t v) { return float(v); });
}
void cast(const float *x, int32_t *y, int64_t n) {
  castLoop(x, y, n, [](float v) { return int32_t(v); });
}
void cast(const int32_t *x, float *y, int64_t n) {
  castLoop(x, y, n, [](int32_t v) { return float(v); });
}
void cast(const int32_t *x, int64_t *y, int64_t n) {
  castLoop(x, y, n, [](int32_t v) { return int64_t(v); });
}
void cast(const int64_t *x, int32_t *y, int64_t n) {
  castLoop(x, y, n, [](int64_t v) { return int32_t(v); });
}
void cast(const float *x, uint8_t *y, int64_t n) {
  castLoop(x, y, n, [](float v) { return uint8_t(v != 0.0f); });
}
void cast(const uint8_t *x, float *y, int64_t n) {
  castLoop(x, y, n, [](uint8_t v) { return v ? 1.0f : 0.0f; });
}
void cast(const int64_t *x, uint8_t *y, int64_t n) {
  castLoop(x, y, n, [](int64_t v) { return uint8_t(v != 0); });
}
void cast(const uint8_t *x, int64_t *y, int64_t n) {
  castLoop(x, y, n, [](uint8_t v) { return int64_t(v ? 1 : 0); });
}

//===----------------------------------------------------------------------===//
// Unary ops
//===----------------------------------------------------------------------===//

namespace {

/// y = sigmoid(x) on the lanes of Vec.h.
struct SigmoidOp {
  static constexpr int kIn = 1, kOut = 1;
  template <class V, class I>
  static WP_VEC_INLINE void apply(const V *a, V *b) {
    sigmoidLanes<V, I>(a[0], b[0]);
  }
};

template <class F> void mapLoop(const float *x, float *y, int64_t n, F f) {
#pragma omp parallel for simd schedule(simd : static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i)
    y[i] = f(x[i]);
}

template <class F>
void gradLoop(const float *x, const float *y, const float *dy, float *dx,
              int64_t n, F f) {
  if (x && y) {
#pragma omp parallel for simd schedule(simd : static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i)
      dx[i] = f(x[i], y[i], dy[i]);
  } else if (x) {
#pragma omp parallel for simd schedule(simd : static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i)
      dx[i] = f(x[i], 0.0f, dy[i]);
  } else {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i)
      dx[i] = f(0.0f, y ? y[i] : 0.0f, dy[i]);
  }
}

} // namespace

void unary_forward(UnaryOp op, const float *x, float *y, int64_t n) {
  switch (op) {
  case UnaryOp::Neg:
    return mapLoop(x, y, n, [](float v) { return -v; });
  case UnaryOp::Abs:
    return mapLoop(x, y, n, [](float v) { return std::fabs(v); });
  case UnaryOp::Sqrt:
    return mapLoop(x, y, n, [](float v) { return std::sqrt(v); });
  case UnaryOp::Reciprocal:
    return mapLoop(x, y, n, [](float v) { return 1.0f / v; });
  case UnaryOp::Exp:
    return mapLoop(x, y, n, [](float v) { return std::exp(v); });
  case UnaryOp::Log:
    return mapLoop(x, y, n, [](float v) { return std::log(v); });
  case UnaryOp::Erf:
    return mapLoop(x, y, n, [](float v) { return std::erf(v); });
  case UnaryOp::Tanh:
    return mapLoop(x, y, n, [](float v) { return std::tanh(v); });
  case UnaryOp::Sigmoid:
    return laneMap<SigmoidOp>(&x, &y, n);
  case UnaryOp::Relu:
    return mapLoop(x, y, n, [](float v) { return v > 0.0f ? v : 0.0f; });
  case UnaryOp::Sin:
    return mapLoop(x, y, n, [](float v) { return std::sin(v); });
  case UnaryOp::Cos:
    return mapLoop(x, y, n, [](float v) { return std::cos(v); });
  case UnaryOp::Floor:
    return mapLoop(x, y, n, [](float v) { return std::floor(v); });
  case UnaryOp::Ceil:
    return mapLoop(x, y, n, [](float v) { return std::ceil(v); });
  case UnaryOp::Sign: // NaN stays NaN, as ONNX's and PyTorch's sign
    return mapLoop(x, y, n, [](float v) {
      return v > 0.0f ? 1.0f : v < 0.0f ? -1.0f : v;
    });
  }
}

void unary_backward(UnaryOp op, const float *x, const float *y,
                    const float *dy, float *dx, int64_t n) {
  const bool needsY = op == UnaryOp::Sqrt || op == UnaryOp::Reciprocal ||
                      op == UnaryOp::Exp || op == UnaryOp::Tanh ||
                      op == UnaryOp::Sigmoid;
  WP_CHECK(!needsY || y, "this unary backward needs the forward output");
  WP_CHECK(needsY || op == UnaryOp::Neg || x,
           "this unary backward needs the forward input");
  switch (op) {
  case UnaryOp::Neg:
    return gradLoop(x, y, dy, dx, n, [](float, float, float g) { return -g; });
  case UnaryOp::Abs:
    return gradLoop(x, y, dy, dx, n, [](float v, float, float g) {
      return v > 0.0f ? g : (v < 0.0f ? -g : 0.0f);
    });
  case UnaryOp::Sqrt:
    return gradLoop(x, y, dy, dx, n,
                    [](float, float r, float g) { return g * 0.5f / r; });
  case UnaryOp::Reciprocal:
    return gradLoop(x, y, dy, dx, n,
                    [](float, float r, float g) { return -g * r * r; });
  case UnaryOp::Exp:
    return gradLoop(x, y, dy, dx, n,
                    [](float, float r, float g) { return g * r; });
  case UnaryOp::Log:
    return gradLoop(x, y, dy, dx, n,
                    [](float v, float, float g) { return g / v; });
  case UnaryOp::Erf:
    return gradLoop(x, y, dy, dx, n, [](float v, float, float g) {
      constexpr float k = 1.12837916709551257f; // 2 / sqrt(pi)
      return g * k * std::exp(-v * v);
    });
  case UnaryOp::Tanh:
    return gradLoop(x, y, dy, dx, n,
                    [](float, float r, float g) { return g * (1.0f - r * r); });
  case UnaryOp::Sigmoid:
    return gradLoop(x, y, dy, dx, n,
                    [](float, float r, float g) { return g * r * (1.0f - r); });
  case UnaryOp::Relu:
    return gradLoop(x, y, dy, dx, n,
                    [](float v, float, float g) { return v > 0.0f ? g : 0.0f; });
  case UnaryOp::Sin:
    return gradLoop(x, y, dy, dx, n,
                    [](float v, float, float g) { return g * std::cos(v); });
  case UnaryOp::Cos:
    return gradLoop(x, y, dy, dx, n,
                    [](float v, float, float g) { return -g * std::sin(v); });
  case UnaryOp::Floor:
  case UnaryOp::Ceil:
  case UnaryOp::Sign: // zero almost everywhere
    return gradLoop(x, y, dy, dx, n, [](float, float, float) { return 0.0f; });
  }
}

//===----------------------------------------------------------------------===//
// Activations
//===----------------------------------------------------------------------===//

namespace {
constexpr float kSqrt1_2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f; // 1 / sqrt(2 pi)
constexpr float kSqrt2OverPi = 0.79788456080286536f;
constexpr float kGeluC = 0.044715f;
} // namespace

namespace {

// 0.5 (1 + tanh u) = sigmoid(2u), without 1 + tanh cancellation for x < 0.
struct GeluTanhOp {
  static constexpr int kIn = 1, kOut = 1;
  template <class V, class I>
  static WP_VEC_INLINE void apply(const V *a, V *b) {
    const V v = a[0];
    const V u2 = 2.0f * (kSqrt2OverPi * (v + kGeluC * v * v * v));
    V s;
    sigmoidLanes<V, I>(u2, s);
    b[0] = v * s;
  }
};

/// (x, dy) -> dx.
struct GeluTanhGradOp {
  static constexpr int kIn = 2, kOut = 1;
  template <class V, class I>
  static WP_VEC_INLINE void apply(const V *a, V *b) {
    const V v = a[0];
    const V u2 = 2.0f * (kSqrt2OverPi * (v + kGeluC * v * v * v));
    const V du = kSqrt2OverPi * (1.0f + 3.0f * kGeluC * v * v);
    V s;
    sigmoidLanes<V, I>(u2, s); // 0.5 (1 + tanh u)
    // d/dx [x s] with ds/dx = 2 s (1 - s) du.
    b[0] = a[1] * (s + v * 2.0f * s * (1.0f - s) * du);
  }
};

// 0.5 (1 + erf(x / sqrt2)) = 0.5 erfc(-x / sqrt2): no 1 + erf cancellation
// for x < 0.
struct GeluErfOp {
  static constexpr int kIn = 1, kOut = 1;
  template <class V, class I>
  static WP_VEC_INLINE void apply(const V *a, V *b) {
    const V v = a[0];
    V c;
    erfcLanes<V, I>(-v * kSqrt1_2, c);
    b[0] = v * 0.5f * c;
  }
};

/// (x, dy) -> dx = dy (cdf + x pdf).
struct GeluErfGradOp {
  static constexpr int kIn = 2, kOut = 1;
  template <class V, class I>
  static WP_VEC_INLINE void apply(const V *a, V *b) {
    const V v = a[0];
    V c;
    erfcLanes<V, I>(-v * kSqrt1_2, c);
    V e = -0.5f * v * v;
    expLanes<V, I>(e);
    b[0] = a[1] * (0.5f * c + v * kInvSqrt2Pi * e);
  }
};

struct SiluOp {
  static constexpr int kIn = 1, kOut = 1;
  template <class V, class I>
  static WP_VEC_INLINE void apply(const V *a, V *b) {
    V s;
    sigmoidLanes<V, I>(a[0], s);
    b[0] = a[0] * s;
  }
};

/// (x, dy) -> dx.
struct SiluGradOp {
  static constexpr int kIn = 2, kOut = 1;
  template <class V, class I>
  static WP_VEC_INLINE void apply(const V *a, V *b) {
    V s;
    sigmoidLanes<V, I>(a[0], s);
    b[0] = a[1] * s * (1.0f + a[0] * (1.0f - s));
  }
};

/// (gate, up) -> y.
struct SwigluOp {
  static constexpr int kIn = 2, kOut = 1;
  template <class V, class I>
  static WP_VEC_INLINE void apply(const V *a, V *b) {
    V s;
    sigmoidLanes<V, I>(a[0], s);
    b[0] = a[0] * s * a[1];
  }
};

/// (gate, up, dy) -> dgate (kGate), dup (kUp), in that order.
template <bool kGate, bool kUp> struct SwigluGradOp {
  static constexpr int kIn = 3, kOut = int(kGate) + int(kUp);
  template <class V, class I>
  static WP_VEC_INLINE void apply(const V *a, V *b) {
    const V gv = a[0];
    V s;
    sigmoidLanes<V, I>(gv, s);
    if (kGate)
      b[0] = a[2] * a[1] * s * (1.0f + gv * (1.0f - s));
    if (kUp)
      b[kGate ? 1 : 0] = a[2] * gv * s;
  }
};

} // namespace

void gelu_forward(const float *x, float *y, int64_t n, GeluApprox approx) {
  if (approx == GeluApprox::None)
    return laneMap<GeluErfOp>(&x, &y, n);
  laneMap<GeluTanhOp>(&x, &y, n);
}

void gelu_backward(const float *x, const float *dy, float *dx, int64_t n,
                   GeluApprox approx) {
  const float *in[2] = {x, dy};
  if (approx == GeluApprox::None)
    return laneMap<GeluErfGradOp>(in, &dx, n);
  laneMap<GeluTanhGradOp>(in, &dx, n);
}

void silu_forward(const float *x, float *y, int64_t n) {
  laneMap<SiluOp>(&x, &y, n);
}

void silu_backward(const float *x, const float *dy, float *dx, int64_t n) {
  const float *in[2] = {x, dy};
  laneMap<SiluGradOp>(in, &dx, n);
}

void swiglu_forward(const float *gate, const float *up, float *y, int64_t n) {
  const float *in[2] = {gate, up};
  laneMap<SwigluOp>(in, &y, n);
}

void swiglu_backward(const float *gate, const float *up, const float *dy,
                     float *dgate, float *dup, int64_t n) {
  const float *in[3] = {gate, up, dy};
  if (dgate && dup) {
    float *out[2] = {dgate, dup};
    laneMap<SwigluGradOp<true, true>>(in, out, n);
  } else if (dgate) {
    laneMap<SwigluGradOp<true, false>>(in, &dgate, n);
  } else if (dup) {
    laneMap<SwigluGradOp<false, true>>(in, &dup, n);
  }
}

} // namespace weipipe::rt::cpu
