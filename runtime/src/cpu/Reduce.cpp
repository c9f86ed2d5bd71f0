//===- Reduce.cpp - sum_to_shape, reduce_*, softmax, log_softmax ----------===//
//
// Part of weipipe's runtime (CPU kernels). Sums accumulate in double. Every
// output element is reduced in increasing source order (long trailing runs in fixed chunks, then the chunk
// partials in order), so results do not depend on the thread count.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace weipipe::rt::cpu {
using namespace detail;

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct Groups {
  int n = 0;
  int64_t size[kMaxRank];
  int64_t stride[kMaxRank]; // in src elements
  bool reduced[kMaxRank];
};

/// Offset in src of the `idx`-th combination (row-major) of the groups
/// listed in `list`.
int64_t offsetOf(int64_t idx, const Groups &g, const int *list, int count) {
  int64_t off = 0;
  for (int k = count - 1; k >= 0; --k) {
    int64_t s = g.size[list[k]];
    off += (idx % s) * g.stride[list[k]];
    idx /= s;
  }
  return off;
}

/// Sums accumulate in double, maxima in float (exact either way).
inline double combine(Combine op, double acc, float v) {
  if (op == Combine::Sum)
    return acc + v;
  return (v > acc || v != v) ? double(v) : acc; // NaN propagates
}

/// outer x n x inner decomposition of `s` around `axis`.
void splitAxis(const Shape &s, int axis, int64_t *outer, int64_t *n,
               int64_t *inner) {
  WP_CHECK(axis >= 0 && axis < s.rank, "axis out of range for " + s.str());
  *outer = 1;
  *inner = 1;
  for (int i = 0; i < axis; ++i)
    *outer *= s[i];
  for (int i = axis + 1; i < s.rank; ++i)
    *inner *= s[i];
  *n = s[axis];
}

} // namespace

namespace detail {

void reduceToShape(const float *src, const Shape &ss, float *dst,
                   const Shape &ds, Combine op) {
  const Shape dp = padLeft(ds, ss.rank);
  for (int i = 0; i < ss.rank; ++i)
    WP_CHECK(dp[i] == 1 || dp[i] == ss[i],
             ds.str() + " does not broadcast to " + ss.str());
  const float init = op == Combine::Sum ? 0.0f : kNegInf;
  const int64_t dstNumel = dp.numel();
  if (ss.numel() == 0) {
    std::fill(dst, dst + dstNumel, init);
    return;
  }
  Groups g;
  for (int i = 0; i < ss.rank; ++i) {
    if (ss[i] == 1)
      continue;
    bool red = dp[i] == 1;
    if (g.n > 0 && g.reduced[g.n - 1] == red) {
      g.size[g.n - 1] *= ss[i];
    } else {
      g.size[g.n] = ss[i];
      g.reduced[g.n] = red;
      ++g.n;
    }
  }
  int kept[kMaxRank], red[kMaxRank], nk = 0, nr = 0;
  for (int i = 0; i < g.n; ++i)
    (g.reduced[i] ? red[nr++] : kept[nk++]) = i;
  if (nr == 0) { // nothing reduced: same layout
    std::memcpy(dst, src, size_t(dstNumel) * sizeof(float));
    return;
  }
  int64_t st = 1;
  for (int i = g.n - 1; i >= 0; --i) {
    g.stride[i] = st;
    st *= g.size[i];
  }
  [[maybe_unused]] const int64_t total = ss.numel();

  if (!g.reduced[g.n - 1]) {
    // Trailing dims kept: each task adds whole source rows (contiguous runs of
    // I) into a strip of CH accumulators of one destination row.
    constexpr int64_t CH = 256;
    const int64_t I = g.size[g.n - 1];
    const int nkRows = nk - 1; // kept groups before the trailing one
    int64_t rcount = 1;
    for (int k = 0; k < nr; ++k)
      rcount *= g.size[red[k]];
    const int64_t dstRows = dstNumel / I;
    const int64_t perRow = (I + CH - 1) / CH;
#pragma omp parallel for schedule(static) if (total >= kParallelMin)
    for (int64_t t = 0; t < dstRows * perRow; ++t) {
      const int64_t dr = t / perRow, c0 = (t % perRow) * CH;
      const int64_t n = std::min(CH, I - c0);
      const int64_t base = offsetOf(dr, g, kept, nkRows) + c0;
      double acc[CH];
      for (int64_t c = 0; c < n; ++c)
        acc[c] = init;
      for (int64_t r = 0; r < rcount; ++r) {
        const float *s = src + base + offsetOf(r, g, red, nr);
        for (int64_t c = 0; c < n; ++c)
          acc[c] = combine(op, acc[c], s[c]);
      }
      float *d = dst + dr * I + c0;
      for (int64_t c = 0; c < n; ++c)
        d[c] = float(acc[c]);
    }
    return;
  }

  // Trailing dims reduced: each destination element reduces contiguous runs
  // of Rin, cut into fixed chunks when long.
  constexpr int64_t CH = 8192;
  const int64_t Rin = g.size[g.n - 1];
  const int nrOuter = nr - 1;
  int64_t rOuter = 1;
  for (int k = 0; k < nrOuter; ++k)
    rOuter *= g.size[red[k]];
  const int64_t nChunks = (Rin + CH - 1) / CH;
  std::vector<double> partial(size_t(dstNumel * nChunks));
#pragma omp parallel for schedule(static) if (total >= kParallelMin)
  for (int64_t t = 0; t < dstNumel * nChunks; ++t) {
    const int64_t d = t / nChunks, j0 = (t % nChunks) * CH;
    const int64_t j1 = std::min(Rin, j0 + CH);
    const int64_t base = offsetOf(d, g, kept, nk);
    double acc = init;
    for (int64_t r = 0; r < rOuter; ++r) {
      const float *s = src + base + offsetOf(r, g, red, nrOuter);
      for (int64_t j = j0; j < j1; ++j)
        acc = combine(op, acc, s[j]);
    }
    partial[size_t(t)] = acc;
  }
  for (int64_t d = 0; d < dstNumel; ++d) {
    double acc = partial[size_t(d * nChunks)];
    for (int64_t c = 1; c < nChunks; ++c)
      acc = op == Combine::Sum ? acc + partial[size_t(d * nChunks + c)]
                               : combine(op, acc, float(partial[size_t(d * nChunks + c)]));
    dst[d] = float(acc);
  }
}

} // namespace detail

void sum_to_shape(const float *src, const Shape &ss, float *dst,
                  const Shape &ds) {
  reduceToShape(src, ss, dst, ds, Combine::Sum);
}

Shape reduce_shape(const Shape &xs, Span<int64_t> axes, bool keepdims) {
  bool red[kMaxRank] = {};
  int64_t prev = -1;
  for (int64_t a : axes) {
    WP_CHECK(a > prev && a < xs.rank,
             "reduction axes must be sorted, unique and < rank of " + xs.str());
    red[a] = true;
    prev = a;
  }
  Shape r;
  for (int i = 0; i < xs.rank; ++i) {
    if (!red[i])
      r.dims[r.rank++] = xs[i];
    else if (keepdims)
      r.dims[r.rank++] = 1;
  }
  return r;
}

void reduce_forward(ReduceOp op, const float *x, const Shape &xs,
                    Span<int64_t> axes, float *y) {
  const Shape ks = reduce_shape(xs, axes, /*keepdims=*/true);
  reduceToShape(x, xs, y, ks, op == ReduceOp::Max ? Combine::Max : Combine::Sum);
  if (op == ReduceOp::Mean) {
    const int64_t n = ks.numel();
    const float count = float(xs.numel() / std::max<int64_t>(n, 1));
    for (int64_t i = 0; i < n; ++i)
      y[i] /= count;
  }
}

template <typename T>
void reduce_forward_int(ReduceOp op, const T *x, const Shape &xs,
                        Span<int64_t> axes, T *y) {
  WP_CHECK(op != ReduceOp::Mean, "reduce_mean is not defined on integers");
  const Shape ks = reduce_shape(xs, axes, /*keepdims=*/true);
  const bool max = op == ReduceOp::Max;
  std::fill(y, y + ks.numel(), max ? std::numeric_limits<T>::lowest() : T(0));
  int64_t sy[kMaxRank], idx[kMaxRank] = {};
  broadcastStrides(ks, xs, sy);
  const int r = xs.rank;
  for (int64_t i = 0, n = xs.numel(), at = 0; i < n; ++i) {
    y[at] = max ? std::max(y[at], x[i]) : T(y[at] + x[i]);
    for (int d = r - 1; d >= 0; --d) { // next index, row-major
      at += sy[d];
      if (++idx[d] < xs[d])
        break;
      at -= sy[d] * idx[d];
      idx[d] = 0;
    }
  }
}
template void reduce_forward_int<int64_t>(ReduceOp, const int64_t *,
                                          const Shape &, Span<int64_t>,
                                          int64_t *);
template void reduce_forward_int<int32_t>(ReduceOp, const int32_t *,
                                          const Shape &, Span<int64_t>,
                                          int32_t *);

void reduce_backward(ReduceOp op, const float *x, const Shape &xs,
                     Span<int64_t> axes, const float *y, const float *dy,
                     float *dx) {
  const Shape ks = reduce_shape(xs, axes, /*keepdims=*/true);
  int64_t st[kMaxOps][kMaxRank];
  contiguousStrides(xs, st[0]);
  broadcastStrides(ks, xs, st[1]);
  contiguousStrides(xs, st[2]);
  const StridedPlan p = makePlan(xs, 3, st);
  const int64_t sy = p.innerStride(1);
  if (op != ReduceOp::Max) {
    const float scale =
        op == ReduceOp::Mean
            ? 1.0f / float(xs.numel() / std::max<int64_t>(ks.numel(), 1))
            : 1.0f;
    forEachRow(p, [&](const int64_t *o, int64_t n) {
      float *d = dx + o[0];
      const float *g = dy + o[1];
      for (int64_t i = 0; i < n; ++i)
        d[i] = op == ReduceOp::Mean ? g[i * sy] * scale : g[i * sy];
    });
    return;
  }
  WP_CHECK(x && y, "reduce_max backward needs x and y");
  // dx = [x == y] * dy / (number of ties).
  forEachRow(p, [&](const int64_t *o, int64_t n) {
    float *d = dx + o[0];
    const float *m = y + o[1], *v = x + o[2];
    for (int64_t i = 0; i < n; ++i)
      d[i] = v[i] == m[i * sy] ? 1.0f : 0.0f;
  });
  std::vector<float> count(size_t(ks.numel()));
  sum_to_shape(dx, xs, count.data(), ks);
  forEachRow(p, [&](const int64_t *o, int64_t n) {
    float *d = dx + o[0];
    const float *g = dy + o[1], *c = count.data() + o[1];
    for (int64_t i = 0; i < n; ++i)
      if (d[i] != 0.0f)
        d[i] = g[i * sy] / c[i * sy];
  });
}

//===----------------------------------------------------------------------===//
// Softmax
//===----------------------------------------------------------------------===//

namespace {

/// Runs f(base, stride, n) for every 1-D line along `axis`.
template <class F> void forEachLine(const Shape &s, int axis, F f) {
  int64_t outer, n, inner;
  splitAxis(s, axis, &outer, &n, &inner);
  const int64_t lines = outer * inner;
#pragma omp parallel for schedule(static) if (lines * n >= kParallelMin && lines > 1)
  for (int64_t l = 0; l < lines; ++l) {
    const int64_t o = l / inner, i = l % inner;
    f(o * n * inner + i, inner, n);
  }
}

template <bool Log>
void softmaxForward(const float *x, const Shape &s, int axis, float *y) {
  forEachLine(s, axis, [&](int64_t base, int64_t st, int64_t n) {
    const float *xr = x + base;
    float *yr = y + base;
    float mx = kNegInf;
    for (int64_t j = 0; j < n; ++j)
      mx = std::max(mx, xr[j * st]);
    float sum = 0.0f;
    for (int64_t j = 0; j < n; ++j) {
      float e = std::exp(xr[j * st] - mx);
      sum += e;
      if (!Log)
        yr[j * st] = e;
    }
    if (Log) {
      const float off = mx + std::log(sum);
      for (int64_t j = 0; j < n; ++j)
        yr[j * st] = xr[j * st] - off;
    } else {
      const float inv = 1.0f / sum;
      for (int64_t j = 0; j < n; ++j)
        yr[j * st] *= inv;
    }
  });
}

} // namespace

void softmax_forward(const float *x, const Shape &s, int axis, float *y) {
  softmaxForward<false>(x, s, axis, y);
}

void log_softmax_forward(const float *x, const Shape &s, int axis, float *y) {
  softmaxForward<true>(x, s, axis, y);
}

void softmax_backward(const float *y, const float *dy, const Shape &s,
                      int axis, float *dx) {
  forEachLine(s, axis, [&](int64_t base, int64_t st, int64_t n) {
    float dot = 0.0f;
    for (int64_t j = 0; j < n; ++j)
      dot += dy[base + j * st] * y[base + j * st];
    for (int64_t j = 0; j < n; ++j) {
      const int64_t i = base + j * st;
      dx[i] = y[i] * (dy[i] - dot);
    }
  });
}

void log_softmax_backward(const float *y, const float *dy, const Shape &s,
                          int axis, float *dx) {
  forEachLine(s, axis, [&](int64_t base, int64_t st, int64_t n) {
    float sum = 0.0f;
    for (int64_t j = 0; j < n; ++j)
      sum += dy[base + j * st];
    for (int64_t j = 0; j < n; ++j) {
      const int64_t i = base + j * st;
      dx[i] = dy[i] - std::exp(y[i]) * sum;
    }
  });
}

} // namespace weipipe::rt::cpu
