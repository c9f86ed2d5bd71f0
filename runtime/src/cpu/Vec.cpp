//===- Vec.cpp - host vector width and lane row helpers -------------------===//
//
// Part of weipipe's runtime (CPU kernels). See Vec.h.
//
//===----------------------------------------------------------------------===//

#include "Vec.h"

#include <cstdlib>
#include <limits>

namespace weipipe::rt::cpu::detail {

int hostVectorBits() {
  static const int bits = [] {
    int b = 128;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
      b = 512;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
      b = 256;
#endif
    if (const char *e = std::getenv("WEIPIPE_CPU_VECTOR_BITS"))
      b = std::min(b, std::max(128, std::atoi(e)));
    return b >= 512 ? 512 : b >= 256 ? 256 : 128;
  }();
  return bits;
}

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

template <int W> WP_VEC_INLINE float rowMaxLanes(const float *x, int64_t n) {
  using V = typename Lanes<W>::F;
  using I = typename Lanes<W>::I;
  V m = V{} + kNegInf, a;
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    std::memcpy(&a, x + i, sizeof(V));
    selectInto<V, I>(m, a > m, a);
  }
  if (i < n) {
    a = V{} + kNegInf;
    std::memcpy(&a, x + i, size_t(n - i) * sizeof(float));
    selectInto<V, I>(m, a > m, a);
  }
  float r = kNegInf;
  for (int k = 0; k < W; ++k)
    r = m[k] > r ? m[k] : r;
  return r;
}

/// v = e^(v - shift), 0 where v is -inf; acc += v.
template <class V, class I>
WP_VEC_INLINE void expShiftedStep(V &v, V &acc, float shift) {
  const I masked = v == kNegInf;
  v -= shift;
  expLanes<V, I>(v);
  selectInto<V, I>(v, masked, V{});
  acc += v;
}

template <int W>
WP_VEC_INLINE float expShiftedLanes(float *x, int64_t n, float shift) {
  using V = typename Lanes<W>::F;
  using I = typename Lanes<W>::I;
  V acc = V{}, a;
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    std::memcpy(&a, x + i, sizeof(V));
    expShiftedStep<V, I>(a, acc, shift);
    std::memcpy(x + i, &a, sizeof(V));
  }
  if (i < n) { // padded with -inf, which adds 0
    const size_t bytes = size_t(n - i) * sizeof(float);
    a = V{} + kNegInf;
    std::memcpy(&a, x + i, bytes);
    expShiftedStep<V, I>(a, acc, shift);
    std::memcpy(x + i, &a, bytes);
  }
  float s = 0.0f;
  for (int k = 0; k < W; ++k)
    s += acc[k];
  return s;
}

/// name##4, name##8, name##16: name##Lanes<W>(args) compiled for the
/// baseline, AVX2 and AVX-512.
#if defined(__x86_64__) && defined(__GNUC__)
#define WP_LANE_VARIANTS(Ret, name, params, args)                              \
  Ret name##4 params { return name##Lanes<4> args; }                           \
  __attribute__((target("avx2,fma"))) Ret name##8 params {                     \
    return name##Lanes<8> args;                                                \
  }                                                                            \
  __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma")))                \
  Ret name##16 params {                                                        \
    return name##Lanes<16> args;                                               \
  }
#else
#define WP_LANE_VARIANTS(Ret, name, params, args)                              \
  Ret name##4 params { return name##Lanes<4> args; }                           \
  Ret name##8 params { return name##Lanes<4> args; }                           \
  Ret name##16 params { return name##Lanes<4> args; }
#endif

WP_LANE_VARIANTS(float, rowMax, (const float *x, int64_t n), (x, n))
WP_LANE_VARIANTS(float, expShifted, (float *x, int64_t n, float shift),
                 (x, n, shift))

#undef WP_LANE_VARIANTS

/// The variant of this CPU's width.
template <class Fn> Fn pick(Fn f4, Fn f8, Fn f16) {
  const int bits = hostVectorBits();
  return bits == 512 ? f16 : bits == 256 ? f8 : f4;
}

} // namespace

float row_max(const float *x, int64_t n) {
  static const auto fn = pick(rowMax4, rowMax8, rowMax16);
  return fn(x, n);
}

float exp_shifted(float *x, int64_t n, float shift) {
  static const auto fn = pick(expShifted4, expShifted8, expShifted16);
  return fn(x, n, shift);
}

} // namespace weipipe::rt::cpu::detail
