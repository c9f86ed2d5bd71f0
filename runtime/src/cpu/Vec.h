//===- Vec.h - fixed-width vector code for elementwise kernels --*- C++ -*-===//
//
// Part of weipipe's runtime. Not installed. The build targets baseline x86-64
// (SSE2), so the transcendental activations were 4 lanes wide at best; this
// header writes them once on GCC vector types of W lanes and compiles them for
// AVX-512 (16), AVX2+FMA (8) and the baseline (4), picked once from the host
// CPU.
//
// Every element goes through the same lane code: a loop's tail is padded to a
// full vector rather than run by a scalar remainder, so a result does not
// depend on where a thread's chunk starts or ends.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_CPU_VEC_H
#define WEIPIPE_RUNTIME_CPU_VEC_H

#include "Internal.h"

#include <cstring>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace weipipe::rt::cpu::detail {

#define WP_VEC_INLINE inline __attribute__((always_inline))

/// W lanes of float and of int32.
template <int W> struct Lanes {
  typedef float F __attribute__((vector_size(4 * W)));
  typedef int32_t I __attribute__((vector_size(4 * W)));
};

// The helpers take and give vectors by reference: a vector passed by value
// would make GCC note an ISA-dependent ABI, although they are always inlined.

/// x = m ? a : x per lane, m a comparison result (all bits set or clear).
template <class V, class I>
WP_VEC_INLINE void selectInto(V &x, const I &m, const V &a) {
  x = (V)(((I)a & m) | ((I)x & ~m));
}

/// e^x per lane, in place: Cephes' single-precision algorithm, x = n ln2 + r
/// with |r| <= ln2/2, a degree-6 polynomial for e^r, 2^n by building the
/// exponent bits; relative error about 1e-7 (a few ulp). x is clamped to
/// [-87.3, 88.7], where e^x is a normal float, so the result is never 0 or
/// inf (the sigmoid forms below saturate correctly); NaN stays NaN.
template <class V, class I> WP_VEC_INLINE void expLanes(V &x) {
  const V lo = V{} - 87.3f, hi = V{} + 88.7f;
  selectInto<V, I>(x, x < lo, lo);
  selectInto<V, I>(x, x > hi, hi);
  // Round x / ln2 to nearest with the 1.5 * 2^23 trick (no SSE4.1 needed).
  const float magic = 12582912.0f;
  const V n = (x * 1.44269504088896341f + magic) - magic;
  V r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  V p = V{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const V e = p * r * r + r + 1.0f;
  const I bits = (__builtin_convertvector(n, I) + 127) << 23;
  x = e * (V)bits;
}

/// y = erfc(x) per lane: Cephes' single-precision erfcf. |x| < 1: 1 - erf(x)
/// with erf an odd polynomial; beyond, e^(-x^2) / |x| times a polynomial in
/// 1 / x^2 (one for |x| < 2, one past it), reflected as 2 - erfc(|x|) for
/// x < 0. Relative error about 3e-8 in exact arithmetic, a few ulp in float
/// (e^(-x^2) carries x^2's rounding); past |x| ~ 9.3, where erfc underflows,
/// tiny rather than 0. NaN stays NaN.
/// c[0] z^(N-1) + ... + c[N-1] per lane (Horner).
template <class V, size_t N>
WP_VEC_INLINE V polyLanes(const V &z, const float (&c)[N]) {
  V p = V{} + c[0];
#pragma GCC unroll 16
  for (size_t k = 1; k < N; ++k)
    p = p * z + c[k];
  return p;
}

template <class V, class I> WP_VEC_INLINE void erfcLanes(const V &x, V &y) {
  static constexpr float kErf[] = {
      7.853861353153693e-5f,  -8.010193625184903e-4f, 5.188327685732524e-3f,
      -2.685381193529856e-2f, 1.128358514861418e-1f,  -3.761262582423300e-1f,
      1.128379165726710e+0f};
  static constexpr float kNear[] = { // 1 <= |x| < 2
      2.326819970068386e-2f,  -1.387039388740657e-1f, 3.687424674597105e-1f,
      -5.824733027278666e-1f, 6.210004621745983e-1f,  -4.944515323274145e-1f,
      3.404879937665872e-1f,  -2.741127028184656e-1f, 5.638259427386472e-1f};
  static constexpr float kFar[] = { // |x| >= 2
      -1.047766399936249e+1f, 1.297719955372516e+1f,  -7.495518717768503e+0f,
      2.921019019210786e+0f,  -1.015265279202700e+0f, 4.218463358204948e-1f,
      -2.820767439740514e-1f, 5.641895067754075e-1f};
  const V a = (V)((I)x & 0x7fffffff);
  const V x2 = x * x;
  const V small = 1.0f - x * polyLanes(x2, kErf);
  V am = a;
  selectInto<V, I>(am, a < 1.0f, V{} + 1.0f);
  const V q = 1.0f / am, z = q * q;
  V p = polyLanes(z, kNear);
  selectInto<V, I>(p, a >= 2.0f, polyLanes(z, kFar));
  V e = -x2;
  expLanes<V, I>(e);
  V large = e * q * p;
  selectInto<V, I>(large, x < 0.0f, 2.0f - large);
  y = large;
  selectInto<V, I>(y, a < 1.0f, small);
}

/// s = 1 / (1 + e^-x), saturating to 0 and 1 without inf or NaN.
template <class V, class I> WP_VEC_INLINE void sigmoidLanes(const V &x, V &s) {
  s = -x;
  expLanes<V, I>(s);
  s = 1.0f / (1.0f + s);
}

/// Runs Op over [lo, hi) of up to 3 inputs and 2 outputs, W lanes at a time;
/// the tail is zero-padded to a full vector. Op::apply<V, I>(const V *in,
/// V *out) computes one vector; Op::kIn and Op::kOut count the operands.
template <int W, class Op>
WP_VEC_INLINE void laneLoop(const float *const *in, float *const *out,
                            int64_t lo, int64_t hi) {
  using V = typename Lanes<W>::F;
  using I = typename Lanes<W>::I;
  // Local copies: the stores through y cannot then alias the pointers.
  const float *x[3] = {};
  float *y[2] = {};
  for (int k = 0; k < Op::kIn; ++k)
    x[k] = in[k];
  for (int k = 0; k < Op::kOut; ++k)
    y[k] = out[k];
  V a[3], b[2];
  int64_t i = lo;
  for (; i + W <= hi; i += W) {
    for (int k = 0; k < Op::kIn; ++k)
      std::memcpy(&a[k], x[k] + i, sizeof(V));
    Op::template apply<V, I>(a, b);
    for (int k = 0; k < Op::kOut; ++k)
      std::memcpy(y[k] + i, &b[k], sizeof(V));
  }
  if (i < hi) {
    const size_t bytes = size_t(hi - i) * sizeof(float);
    for (int k = 0; k < Op::kIn; ++k) {
      a[k] = V{};
      std::memcpy(&a[k], x[k] + i, bytes);
    }
    Op::template apply<V, I>(a, b);
    for (int k = 0; k < Op::kOut; ++k)
      std::memcpy(y[k] + i, &b[k], bytes);
  }
}

using LaneFn = void (*)(const float *const *, float *const *, int64_t, int64_t);

template <class Op>
void laneLoopBase(const float *const *in, float *const *out, int64_t lo,
                  int64_t hi) {
  laneLoop<4, Op>(in, out, lo, hi);
}

#if defined(__x86_64__) && defined(__GNUC__)
template <class Op>
__attribute__((target("avx2,fma"))) void laneLoopAvx2(const float *const *in,
                                                      float *const *out,
                                                      int64_t lo, int64_t hi) {
  laneLoop<8, Op>(in, out, lo, hi);
}

template <class Op>
__attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma"))) void
laneLoopAvx512(const float *const *in, float *const *out, int64_t lo,
               int64_t hi) {
  laneLoop<16, Op>(in, out, lo, hi);
}
#endif

/// The widest vectors the lane code uses on this CPU: 512, 256 or 128 bits.
/// WEIPIPE_CPU_VECTOR_BITS=128 or 256 caps it (to test the narrower paths).
int hostVectorBits();

/// The largest of x[0, n) (-inf for n == 0); NaN entries are skipped.
float row_max(const float *x, int64_t n);
/// x[j] = e^(x[j] - shift) (expLanes' accuracy), exactly 0 where x[j] is
/// -inf; returns the sum of the new x[0, n) (per-lane partial sums, added in
/// lane order: fixed for a given CPU). shift must be finite.
float exp_shifted(float *x, int64_t n, float shift);

/// Op's lane loop for this CPU.
template <class Op> LaneFn laneFn() {
#if defined(__x86_64__) && defined(__GNUC__)
  switch (hostVectorBits()) {
  case 512:
    return laneLoopAvx512<Op>;
  case 256:
    return laneLoopAvx2<Op>;
  default:
    break;
  }
#endif
  return laneLoopBase<Op>;
}

/// Runs Op over n elements, split over threads at multiples of 64 elements
/// (whole vectors for every width) when n is large enough.
template <class Op>
void laneMap(const float *const *in, float *const *out, int64_t n) {
  static const LaneFn fn = laneFn<Op>();
  if (n <= 0)
    return;
  constexpr int64_t kAlign = 64;
  const int64_t blocks = (n + kAlign - 1) / kAlign;
#pragma omp parallel if (n >= kParallelMin)
  {
    int64_t t = 0, nt = 1;
#ifdef _OPENMP
    t = omp_get_thread_num();
    nt = omp_get_num_threads();
#endif
    const int64_t per = (blocks + nt - 1) / nt;
    const int64_t lo = std::min(n, t * per * kAlign);
    const int64_t hi = std::min(n, (t + 1) * per * kAlign);
    if (lo < hi)
      fn(in, out, lo, hi);
  }
}

} // namespace weipipe::rt::cpu::detail

#endif // WEIPIPE_RUNTIME_CPU_VEC_H
