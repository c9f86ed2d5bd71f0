//===- KernelTestUtil.h - helpers for the CPU kernel tests ------*- C++ -*-===//
//
// Part of weipipe's runtime tests. A seeded generator (splitmix64, so the
// numbers are the same with every standard library), index helpers for the
// double-precision reference loops, the forward comparison and the
// central-difference gradient check.
//
// Forward criterion: every element satisfies
//   |got - ref| <= rtol * (|ref| + floor * max|ref|),   rtol = 1e-5,
// i.e. a relative error of 1e-5 with a floor at 1% (elementwise results) or
// 10% (sums of many products: GEMM, attention, reductions) of the tensor's
// largest magnitude, so that elements that cancel to ~0 are judged on the
// scale of the partial sums that produced them.
//
// Gradient criterion: L = sum(out * r) in double for a random r; for sampled
// coordinates, fd = (L(x + h) - L(x - h)) / (x+h - (x-h)) with h = 1e-2 and
// fp32 kernels, and |analytic - fd| <= atol + rtol * |fd| with rtol = 1e-2,
// atol = 1e-3. Worst errors are printed as "[fd] ..." / "[fwd] ..." lines.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_TEST_CPU_KERNELTESTUTIL_H
#define WEIPIPE_RUNTIME_TEST_CPU_KERNELTESTUTIL_H

#include "weipipe/runtime/cpu/Kernels.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace wpt {

using namespace weipipe::rt::cpu;

struct Rng {
  uint64_t state;
  explicit Rng(uint64_t seed) : state(seed * 0x9E3779B97F4A7C15ull + 12345) {}
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }
  float uniform(float lo, float hi) { return float(lo + (hi - lo) * uniform()); }
  int64_t below(int64_t n) { return int64_t(next() % uint64_t(n)); }
};

inline std::vector<float> randVec(Rng &rng, int64_t n, float lo = -1.0f,
                                  float hi = 1.0f) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto &x : v)
    x = rng.uniform(lo, hi);
  return v;
}

/// Values with magnitude in [lo, hi] and a random sign.
inline std::vector<float> randAwayFromZero(Rng &rng, int64_t n, float lo,
                                           float hi) {
  std::vector<float> v = randVec(rng, n, lo, hi);
  for (auto &x : v)
    if (rng.next() & 1)
      x = -x;
  return v;
}

/// Distinct values spaced at least `gap` apart (a shuffled grid plus a small
/// jitter), so max/min/argmax decisions do not flip under a perturbation
/// smaller than gap/2.
inline std::vector<float> randDistinct(Rng &rng, int64_t n, float gap = 0.05f) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[size_t(i)] = float(i - n / 2) * gap + rng.uniform(0.0f, 0.2f * gap);
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(v[size_t(i)], v[size_t(rng.below(i + 1))]);
  return v;
}

inline std::vector<double> toDouble(const std::vector<float> &v) {
  return std::vector<double>(v.begin(), v.end());
}

//===----------------------------------------------------------------------===//
// Index helpers for the reference loops (independent of the kernels' engine)
//===----------------------------------------------------------------------===//

inline int64_t numelOf(const std::vector<int64_t> &s) {
  int64_t n = 1;
  for (int64_t d : s)
    n *= d;
  return n;
}

inline std::vector<int64_t> unravel(int64_t idx, const std::vector<int64_t> &s) {
  std::vector<int64_t> r(s.size());
  for (int i = int(s.size()) - 1; i >= 0; --i) {
    r[size_t(i)] = idx % s[size_t(i)];
    idx /= s[size_t(i)];
  }
  return r;
}

inline int64_t ravel(const std::vector<int64_t> &m, const std::vector<int64_t> &s) {
  int64_t idx = 0;
  for (size_t i = 0; i < s.size(); ++i)
    idx = idx * s[i] + m[i];
  return idx;
}

/// NumPy broadcast of two shapes, written out longhand.
inline std::vector<int64_t> bcast(const std::vector<int64_t> &a,
                                  const std::vector<int64_t> &b) {
  size_t r = std::max(a.size(), b.size());
  std::vector<int64_t> out(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t da = i + a.size() >= r ? a[i + a.size() - r] : 1;
    int64_t db = i + b.size() >= r ? b[i + b.size() - r] : 1;
    out[i] = da == 1 ? db : da;
  }
  return out;
}

/// The flat index into a tensor of shape `in` that broadcasts to out index m.
inline int64_t bcastIndex(const std::vector<int64_t> &m,
                          const std::vector<int64_t> &in) {
  int64_t idx = 0;
  size_t off = m.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i)
    idx = idx * in[i] + (in[i] == 1 ? 0 : m[i + off]);
  return idx;
}

inline Shape S(const std::vector<int64_t> &v) { return Shape(v); }

//===----------------------------------------------------------------------===//
// Comparisons
//===----------------------------------------------------------------------===//

constexpr double kFwdRtol = 1e-5;

/// Floor of the forward criterion, as a fraction of max|ref|: 1% for
/// elementwise results, 10% for results that are sums of many products
/// (GEMM, attention, reductions), whose fp32 rounding is a few ulps of the
/// largest partial sum, not of the element.
constexpr double kFloorElementwise = 0.01;
constexpr double kFloorSum = 0.1;

inline ::testing::AssertionResult closeTo(const std::string &what,
                                          const float *got,
                                          const std::vector<double> &ref,
                                          double floorFrac = kFloorElementwise,
                                          double rtol = kFwdRtol) {
  double scale = 0.0;
  for (double r : ref)
    scale = std::max(scale, std::fabs(r));
  double worst = 0.0;
  size_t worstAt = 0, bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    double err = std::fabs(double(got[i]) - ref[i]) /
                 (std::fabs(ref[i]) + floorFrac * scale + 1e-300);
    if (!(err <= rtol))
      ++bad;
    if (!(err <= worst)) {
      worst = err;
      worstAt = i;
    }
  }
  std::printf("[fwd] %-44s n=%-6zu worst rel err %.2e (floor %g max)\n",
              what.c_str(), ref.size(), worst, floorFrac);
  if (bad == 0)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": " << bad << " of " << ref.size()
         << " elements off; worst at " << worstAt << ": got "
         << got[worstAt] << ", want " << ref[worstAt] << " (rel err " << worst
         << ")";
}

inline ::testing::AssertionResult closeTo(const std::string &what,
                                          const std::vector<float> &got,
                                          const std::vector<double> &ref,
                                          double floorFrac = kFloorElementwise,
                                          double rtol = kFwdRtol) {
  if (got.size() != ref.size())
    return ::testing::AssertionFailure()
           << what << ": size " << got.size() << " vs " << ref.size();
  return closeTo(what, got.data(), ref, floorFrac, rtol);
}

/// closeTo with the floor for sums of many products (kFloorSum).
template <class Got>
::testing::AssertionResult closeToSum(const std::string &what, const Got &got,
                                      const std::vector<double> &ref) {
  return closeTo(what, got, ref, kFloorSum);
}

/// L = sum(out * r) in double.
inline double dotLoss(const float *out, const std::vector<float> &r) {
  double s = 0.0;
  for (size_t i = 0; i < r.size(); ++i)
    s += double(out[i]) * double(r[i]);
  return s;
}
inline double dotLoss(const std::vector<float> &out,
                      const std::vector<float> &r) {
  return dotLoss(out.data(), r);
}

struct FdOptions {
  int samples = 24;
  double h = 1e-2;
  double rtol = 1e-2;
  double atol = 1e-3;
};

/// Central-difference check of `analytic` = dL/dx. `x` is perturbed in place
/// (and restored); `loss` recomputes L from the current x. Coordinates are
/// all of x when it is small, else `samples` drawn with a seed from `what`.
inline void fdCheck(const std::string &what, std::vector<float> &x,
                    const std::vector<float> &analytic,
                    const std::function<double()> &loss,
                    FdOptions o = FdOptions()) {
  ASSERT_EQ(x.size(), analytic.size()) << what;
  std::vector<size_t> coords;
  if (x.size() <= size_t(o.samples)) {
    for (size_t i = 0; i < x.size(); ++i)
      coords.push_back(i);
  } else {
    uint64_t seed = 1469598103934665603ull;
    for (char c : what)
      seed = (seed ^ uint8_t(c)) * 1099511628211ull;
    Rng rng(seed);
    for (int k = 0; k < o.samples; ++k)
      coords.push_back(size_t(rng.below(int64_t(x.size()))));
  }
  double worstAbs = 0.0, worstRatio = 0.0, worstRel = 0.0;
  for (size_t i : coords) {
    const float orig = x[i];
    const float xp = float(orig + o.h), xm = float(orig - o.h);
    x[i] = xp;
    const double lp = loss();
    x[i] = xm;
    const double lm = loss();
    x[i] = orig;
    const double fd = (lp - lm) / (double(xp) - double(xm));
    const double an = analytic[i];
    const double err = std::fabs(an - fd);
    const double allowed = o.atol + o.rtol * std::fabs(fd);
    worstAbs = std::max(worstAbs, err);
    worstRatio = std::max(worstRatio, err / allowed);
    if (std::fabs(fd) > 1e-2)
      worstRel = std::max(worstRel, err / std::fabs(fd));
    EXPECT_LE(err, allowed) << what << " coordinate " << i << ": analytic "
                            << an << ", finite difference " << fd;
  }
  std::printf("[fd]  %-44s n=%-3zu worst abs %.2e  rel(|fd|>1e-2) %.2e  "
              "err/allowed %.2f\n",
              what.c_str(), coords.size(), worstAbs, worstRel, worstRatio);
}

} // namespace wpt

#endif // WEIPIPE_RUNTIME_TEST_CPU_KERNELTESTUTIL_H
