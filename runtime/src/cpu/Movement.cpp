//===- Movement.cpp - transpose, broadcast, concat, slice, gather, trilu --===//
//
// Part of weipipe's runtime (CPU kernels). Data movement is one strided copy
// (Internal.h) with the right source or destination strides; the scatters of
// the backward passes write each destination element from one task, in a
// fixed order.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

namespace weipipe::rt::cpu {
using namespace detail;

namespace {

/// d[0, n) = s[0, n). Runs under 1 KiB (a head's row in a head transpose is
/// 64-128 bytes) are copied with fixed-size moves the compiler inlines: a
/// memcpy call per run cost more than the copy.
template <typename T> inline void copyRun(T *d, const T *s, int64_t n) {
  size_t bytes = size_t(n) * sizeof(T);
  if (bytes >= 1024) {
    std::memcpy(d, s, bytes);
    return;
  }
  auto *dc = reinterpret_cast<unsigned char *>(d);
  const auto *sc = reinterpret_cast<const unsigned char *>(s);
  for (; bytes >= 64; bytes -= 64, dc += 64, sc += 64)
    std::memcpy(dc, sc, 64);
  for (; bytes >= 8; bytes -= 8, dc += 8, sc += 8)
    std::memcpy(dc, sc, 8);
  for (; bytes > 0; --bytes)
    *dc++ = *sc++;
}

/// A copy whose source is contiguous along one axis and whose destination is
/// contiguous along another (a transpose that moves the last axis) reads one
/// of them with a stride at every element; in tiles of kTile x kTile both
/// sides' lines stay in L1. False (nothing copied) when the copy has no such
/// pair of axes.
template <typename T>
bool tiledTranspose(const T *src, const int64_t *ss, T *dst,
                    const int64_t *ds, const Shape &shape) {
  constexpr int64_t kTile = 32;
  const int r = shape.rank;
  int a = -1, b = -1; // src-contiguous and dst-contiguous axes
  for (int i = 0; i < r; ++i) {
    if (shape[i] < kTile / 4)
      continue;
    if (ss[i] == 1)
      a = i;
    if (ds[i] == 1)
      b = i;
  }
  if (a < 0 || b < 0 || a == b)
    return false;
  const int64_t na = shape[a], nb = shape[b];
  const int64_t tilesA = (na + kTile - 1) / kTile;
  const int64_t tasks = shape.numel() / (na * nb) * tilesA;
#pragma omp parallel for schedule(static) if (shape.numel() >= kParallelMin)
  for (int64_t t = 0; t < tasks; ++t) {
    int64_t rem = t / tilesA, so = 0, dof = 0;
    for (int d = r - 1; d >= 0; --d) { // the outer index's offsets
      if (d == a || d == b)
        continue;
      const int64_t i = rem % shape[d];
      rem /= shape[d];
      so += i * ss[d];
      dof += i * ds[d];
    }
    const int64_t a0 = t % tilesA * kTile, a1 = std::min(na, a0 + kTile);
    for (int64_t b0 = 0; b0 < nb; b0 += kTile) {
      const int64_t b1 = std::min(nb, b0 + kTile);
      for (int64_t i = a0; i < a1; ++i) {
        T *d = dst + dof + i * ds[a];
        const T *s = src + so + i;
        for (int64_t j = b0; j < b1; ++j)
          d[j] = s[j * ss[b]];
      }
    }
  }
  return true;
}

/// dst view (dstOff, dstStrides) = src view (srcOff, srcStrides) over `shape`.
template <typename T>
void stridedCopy(const T *src, int64_t srcOff, const int64_t *srcStrides,
                 T *dst, int64_t dstOff, const int64_t *dstStrides,
                 const Shape &shape) {
  if (tiledTranspose(src + srcOff, srcStrides, dst + dstOff, dstStrides,
                     shape))
    return;
  int64_t st[kMaxOps][kMaxRank];
  for (int i = 0; i < shape.rank; ++i) {
    st[0][i] = dstStrides[i];
    st[1][i] = srcStrides[i];
  }
  const StridedPlan p = makePlan(shape, 2, st);
  const int64_t sd = p.innerStride(0), ss = p.innerStride(1);
  forEachRow(p, [&](const int64_t *o, int64_t n) {
    T *d = dst + dstOff + o[0];
    const T *s = src + srcOff + o[1];
    if (sd == 1 && ss == 1) {
      copyRun(d, s, n);
    } else {
      for (int64_t i = 0; i < n; ++i)
        d[i * sd] = s[i * ss];
    }
  });
}

void checkPerm(const Shape &xs, Span<int64_t> perm) {
  WP_CHECK(int(perm.size) == xs.rank, "perm size must equal the rank");
  bool seen[kMaxRank] = {};
  for (int64_t p : perm) {
    WP_CHECK(p >= 0 && p < xs.rank && !seen[p], "perm is not a permutation");
    seen[p] = true;
  }
}

int64_t sliceCount(int64_t start, int64_t end, int64_t step) {
  WP_CHECK(step != 0, "slice step is zero");
  if (step > 0)
    return end > start ? (end - start + step - 1) / step : 0;
  return start > end ? (start - end - step - 1) / -step : 0;
}

void checkSlice(const Shape &xs, Span<int64_t> starts, Span<int64_t> ends,
                Span<int64_t> steps) {
  WP_CHECK(int(starts.size) == xs.rank && int(ends.size) == xs.rank &&
               int(steps.size) == xs.rank,
           "slice needs one start/end/step per dim of " + xs.str());
  for (int d = 0; d < xs.rank; ++d) {
    if (steps[d] > 0)
      WP_CHECK(0 <= starts[d] && starts[d] <= ends[d] && ends[d] <= xs[d],
               "slice bounds not clamped");
    else
      WP_CHECK(-1 <= ends[d] && ends[d] <= starts[d] && starts[d] < xs[d],
               "slice bounds not clamped");
  }
}

/// The source view of a slice: offset and per-dim strides.
int64_t sliceView(const Shape &xs, Span<int64_t> starts, Span<int64_t> steps,
                  int64_t *strides) {
  int64_t xst[kMaxRank];
  contiguousStrides(xs, xst);
  int64_t off = 0;
  for (int d = 0; d < xs.rank; ++d) {
    // A dim that takes no index never reads its start (which may be `size`).
    off += starts[d] * xst[d];
    strides[d] = xst[d] * steps[d];
  }
  return off;
}

struct AxisSplit {
  int64_t outer = 1, n = 1, inner = 1;
};
AxisSplit splitAt(const Shape &s, int axis) {
  WP_CHECK(axis >= 0 && axis < s.rank, "axis out of range for " + s.str());
  AxisSplit r;
  for (int i = 0; i < axis; ++i)
    r.outer *= s[i];
  for (int i = axis + 1; i < s.rank; ++i)
    r.inner *= s[i];
  r.n = s[axis];
  return r;
}

Status checkIndices(const int64_t *idx, int64_t numIdx, int64_t size,
                    const char *what) {
  for (int64_t j = 0; j < numIdx; ++j)
    if (idx[j] < -size || idx[j] >= size)
      return Status::error(std::string(what) + ": index " +
                           std::to_string(idx[j]) + " at position " +
                           std::to_string(j) + " is out of range for size " +
                           std::to_string(size));
  return Status();
}

} // namespace

Shape transpose_shape(const Shape &xs, Span<int64_t> perm) {
  checkPerm(xs, perm);
  Shape r;
  r.rank = xs.rank;
  for (int i = 0; i < xs.rank; ++i)
    r.dims[i] = xs[perm[i]];
  return r;
}

template <typename T>
void transpose(const T *x, const Shape &xs, Span<int64_t> perm, T *y) {
  const Shape ys = transpose_shape(xs, perm);
  int64_t xst[kMaxRank], src[kMaxRank], dst[kMaxRank];
  contiguousStrides(xs, xst);
  contiguousStrides(ys, dst);
  for (int i = 0; i < xs.rank; ++i)
    src[i] = xst[perm[i]];
  stridedCopy(x, 0, src, y, 0, dst, ys);
}

void transpose_backward(const float *dy, const Shape &xs, Span<int64_t> perm,
                        float *dx) {
  // dx[perm view] = dy: copy dy (contiguous in ys) into dx's permuted strides.
  const Shape ys = transpose_shape(xs, perm);
  int64_t xst[kMaxRank], src[kMaxRank], dst[kMaxRank];
  contiguousStrides(xs, xst);
  contiguousStrides(ys, src);
  for (int i = 0; i < xs.rank; ++i)
    dst[i] = xst[perm[i]];
  stridedCopy(dy, 0, src, dx, 0, dst, ys);
}

template <typename T>
void broadcast_to(const T *x, const Shape &xs, T *y, const Shape &ys) {
  int64_t src[kMaxRank], dst[kMaxRank];
  broadcastStrides(xs, ys, src);
  contiguousStrides(ys, dst);
  stridedCopy(x, 0, src, y, 0, dst, ys);
}

template <typename T>
void concat(Span<const T *> inputs, Span<Shape> shapes, int axis, T *y) {
  WP_CHECK(inputs.size == shapes.size && inputs.size > 0,
           "concat needs one shape per input");
  const int rank = shapes[0].rank;
  int64_t total = 0;
  for (const Shape &s : shapes) {
    WP_CHECK(s.rank == rank, "concat operands differ in rank");
    for (int d = 0; d < rank; ++d)
      WP_CHECK(d == axis || s[d] == shapes[0][d],
               "concat operands differ off the axis");
    total += splitAt(s, axis).n;
  }
  const AxisSplit sp = splitAt(shapes[0], axis);
  int64_t offset = 0;
  for (size_t i = 0; i < inputs.size; ++i) {
    const int64_t len = shapes[i][axis] * sp.inner;
    const T *x = inputs[i];
    const int64_t off = offset;
#pragma omp parallel for schedule(static) if (sp.outer * len >= kParallelMin)
    for (int64_t o = 0; o < sp.outer; ++o)
      std::memcpy(y + o * total * sp.inner + off, x + o * len,
                  size_t(len) * sizeof(T));
    offset += len;
  }
}

void concat_backward(const float *dy, Span<Shape> shapes, int axis,
                     Span<float *> dinputs) {
  WP_CHECK(dinputs.size == shapes.size && shapes.size > 0,
           "concat_backward needs one shape per input");
  int64_t total = 0;
  for (const Shape &s : shapes)
    total += splitAt(s, axis).n;
  const AxisSplit sp = splitAt(shapes[0], axis);
  int64_t offset = 0;
  for (size_t i = 0; i < shapes.size; ++i) {
    const int64_t len = shapes[i][axis] * sp.inner;
    float *dx = dinputs[i];
    const int64_t off = offset;
    offset += len;
    if (!dx)
      continue;
#pragma omp parallel for schedule(static) if (sp.outer * len >= kParallelMin)
    for (int64_t o = 0; o < sp.outer; ++o)
      std::memcpy(dx + o * len, dy + o * total * sp.inner + off,
                  size_t(len) * sizeof(float));
  }
}

Shape slice_shape(const Shape &xs, Span<int64_t> starts, Span<int64_t> ends,
                  Span<int64_t> steps) {
  checkSlice(xs, starts, ends, steps);
  Shape r;
  r.rank = xs.rank;
  for (int d = 0; d < xs.rank; ++d)
    r.dims[d] = sliceCount(starts[d], ends[d], steps[d]);
  return r;
}

template <typename T>
void slice(const T *x, const Shape &xs, Span<int64_t> starts,
           Span<int64_t> ends, Span<int64_t> steps, T *y) {
  const Shape ys = slice_shape(xs, starts, ends, steps);
  if (ys.numel() == 0)
    return;
  int64_t src[kMaxRank], dst[kMaxRank];
  const int64_t off = sliceView(xs, starts, steps, src);
  contiguousStrides(ys, dst);
  stridedCopy(x, off, src, y, 0, dst, ys);
}

void slice_backward(const float *dy, const Shape &xs, Span<int64_t> starts,
                    Span<int64_t> ends, Span<int64_t> steps, float *dx) {
  const Shape ys = slice_shape(xs, starts, ends, steps);
  const int r = xs.rank;
  bool unitSteps = r > 0 && ys.numel() > 0;
  for (int d = 0; d < r && unitSteps; ++d)
    unitSteps = steps[d] == 1;
  if (unitSteps && xs[r - 1] >= 16) {
    // A box: each dx row is zeros, a run of dy, zeros; written once.
    const int64_t L = xs[r - 1], a = starts[r - 1], n = ys[r - 1];
    const int64_t rows = xs.numel() / L;
#pragma omp parallel for schedule(static) if (xs.numel() >= kParallelMin)
    for (int64_t row = 0; row < rows; ++row) {
      float *d = dx + row * L;
      int64_t rem = row, src = 0, mul = 1;
      bool inside = true;
      for (int k = r - 2; k >= 0 && inside; --k) {
        const int64_t j = rem % xs[k] - starts[k];
        rem /= xs[k];
        inside = j >= 0 && j < ys[k];
        src += j * mul;
        mul *= ys[k];
      }
      if (!inside) {
        std::memset(d, 0, size_t(L) * sizeof(float));
        continue;
      }
      std::memset(d, 0, size_t(a) * sizeof(float));
      std::memcpy(d + a, dy + src * n, size_t(n) * sizeof(float));
      std::memset(d + a + n, 0, size_t(L - a - n) * sizeof(float));
    }
    return;
  }
  std::memset(dx, 0, size_t(xs.numel()) * sizeof(float));
  if (ys.numel() == 0)
    return;
  int64_t src[kMaxRank], dst[kMaxRank];
  const int64_t off = sliceView(xs, starts, steps, dst);
  contiguousStrides(ys, src);
  stridedCopy(dy, 0, src, dx, off, dst, ys);
}

template <typename T>
Status gather(const T *x, const Shape &xs, int axis, const int64_t *idx,
              int64_t numIdx, T *y) {
  const AxisSplit sp = splitAt(xs, axis);
  if (Status s = checkIndices(idx, numIdx, sp.n, "gather"); !s.ok())
    return s;
  const int64_t rows = sp.outer * numIdx;
#pragma omp parallel for schedule(static) if (rows * sp.inner >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t o = r / numIdx, j = r % numIdx;
    const int64_t i = idx[j] < 0 ? idx[j] + sp.n : idx[j];
    std::memcpy(y + r * sp.inner, x + (o * sp.n + i) * sp.inner,
                size_t(sp.inner) * sizeof(T));
  }
  return Status();
}

Status gather_backward(const float *dy, const Shape &xs, int axis,
                       const int64_t *idx, int64_t numIdx, float *dx,
                       bool accumulate) {
  const AxisSplit sp = splitAt(xs, axis);
  if (Status s = checkIndices(idx, numIdx, sp.n, "gather backward"); !s.ok())
    return s;
  if (!accumulate)
    std::memset(dx, 0, size_t(xs.numel()) * sizeof(float));
  // One task per (outer, strip of inner): it owns those dx elements and adds
  // the gathered rows in index order.
  constexpr int64_t CH = 256;
  const int64_t perOuter = (sp.inner + CH - 1) / CH;
  const int64_t tasks = sp.outer * perOuter;
#pragma omp parallel for schedule(static) if (sp.outer * numIdx * sp.inner >= kParallelMin)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t o = t / perOuter, c0 = (t % perOuter) * CH;
    const int64_t n = std::min(CH, sp.inner - c0);
    for (int64_t j = 0; j < numIdx; ++j) {
      const int64_t i = idx[j] < 0 ? idx[j] + sp.n : idx[j];
      float *d = dx + (o * sp.n + i) * sp.inner + c0;
      const float *g = dy + (o * numIdx + j) * sp.inner + c0;
      for (int64_t c = 0; c < n; ++c)
        d[c] += g[c];
    }
  }
  return Status();
}

template <typename T>
void trilu(const T *x, const Shape &xs, bool upper, int64_t k, T *y) {
  WP_CHECK(xs.rank >= 2, "trilu needs rank >= 2");
  const int64_t M = xs[xs.rank - 2], N = xs[xs.rank - 1];
  const int64_t rows = xs.numel() / std::max<int64_t>(N, 1);
#pragma omp parallel for schedule(static) if (rows * N >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = r % M;
    for (int64_t j = 0; j < N; ++j) {
      const bool keep = upper ? j >= i + k : j <= i + k;
      y[r * N + j] = keep ? x[r * N + j] : T(0);
    }
  }
}

template <typename T> void band(const T *diagonals, const Shape &ys, T *y) {
  WP_CHECK(ys.rank >= 2, "band needs rank >= 2");
  const int64_t M = ys[ys.rank - 2], N = ys[ys.rank - 1];
  const int64_t rows = ys.numel() / std::max<int64_t>(N, 1);
  // Row i is diagonals[M - 1 - i .. M - 1 - i + N): one copy per row.
#pragma omp parallel for schedule(static) if (rows * N >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(y + r * N, diagonals + (M - 1 - r % M), size_t(N) * sizeof(T));
}

void topk_indices(const float *x, const Shape &xs, int64_t k, bool largest,
                  int64_t *y) {
  WP_CHECK(xs.rank >= 1, "topk needs rank >= 1");
  const int64_t n = xs[xs.rank - 1];
  WP_CHECK(k >= 1 && k <= n, "topk: k out of range");
  const int64_t rows = xs.numel() / std::max<int64_t>(n, 1);
#pragma omp parallel for schedule(static) if (rows * n >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float *row = x + r * n;
    std::vector<int64_t> idx(static_cast<size_t>(n));
    std::iota(idx.begin(), idx.end(), int64_t(0));
    // NaN first (the largest), then by value, then the lower index.
    auto before = [&](int64_t a, int64_t b) {
      const float va = row[a], vb = row[b];
      const bool na = std::isnan(va), nb = std::isnan(vb);
      if (na != nb)
        return largest ? na : nb;
      if (!na && va != vb)
        return largest ? va > vb : va < vb;
      return a < b;
    };
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), before);
    std::copy(idx.begin(), idx.begin() + k, y + r * k);
  }
}

template <typename T>
Status scatter_elements(const T *data, const Shape &ds, const int64_t *idx,
                        const Shape &is, const T *updates, int axis, T *y) {
  std::copy(data, data + ds.numel(), y);
  const int rank = ds.rank;
  std::vector<int64_t> pos(size_t(rank), 0);
  for (int64_t p = 0, n = is.numel(); p < n; ++p) {
    int64_t rem = p;
    for (int d = rank - 1; d >= 0; --d) {
      pos[size_t(d)] = rem % is[d];
      rem /= is[d];
    }
    int64_t v = idx[p];
    if (v < 0)
      v += ds[axis];
    if (v < 0 || v >= ds[axis])
      return Status::error("scatter_elements: index " +
                           std::to_string(idx[p]) + " out of range for axis " +
                           std::to_string(axis) + " of size " +
                           std::to_string(ds[axis]));
    pos[size_t(axis)] = v;
    int64_t flat = 0;
    for (int d = 0; d < rank; ++d)
      flat = flat * ds[d] + pos[size_t(d)];
    y[flat] = updates[p];
  }
  return {};
}

template <typename T>
void cumsum(const T *x, const Shape &xs, int axis, bool exclusive,
            bool reverse, T *y) {
  const AxisSplit sp = splitAt(xs, axis);
  const int64_t lines = sp.outer * sp.inner;
#pragma omp parallel for schedule(static) if (lines * sp.n >= kParallelMin)
  for (int64_t l = 0; l < lines; ++l) {
    const int64_t o = l / sp.inner, in = l % sp.inner;
    const int64_t base = o * sp.n * sp.inner + in;
    T sum = T(0);
    for (int64_t step = 0; step < sp.n; ++step) {
      const int64_t i = reverse ? sp.n - 1 - step : step;
      const T v = x[base + i * sp.inner];
      if (!exclusive)
        sum += v;
      y[base + i * sp.inner] = sum;
      if (exclusive)
        sum += v;
    }
  }
}

#define WP_INSTANTIATE_MOVEMENT(T)                                             \
  template void transpose<T>(const T *, const Shape &, Span<int64_t>, T *);    \
  template void broadcast_to<T>(const T *, const Shape &, T *, const Shape &); \
  template void concat<T>(Span<const T *>, Span<Shape>, int, T *);             \
  template void slice<T>(const T *, const Shape &, Span<int64_t>,              \
                         Span<int64_t>, Span<int64_t>, T *);                   \
  template Status gather<T>(const T *, const Shape &, int, const int64_t *,    \
                            int64_t, T *);                                     \
  template void trilu<T>(const T *, const Shape &, bool, int64_t, T *);        \
  template void band<T>(const T *, const Shape &, T *);                         \
  template Status scatter_elements<T>(const T *, const Shape &,                \
                                      const int64_t *, const Shape &,          \
                                      const T *, int, T *);
WP_INSTANTIATE_MOVEMENT(float)
WP_INSTANTIATE_MOVEMENT(int64_t)
WP_INSTANTIATE_MOVEMENT(int32_t)
WP_INSTANTIATE_MOVEMENT(uint8_t)
#undef WP_INSTANTIATE_MOVEMENT
template void cumsum<float>(const float *, const Shape &, int, bool, bool,
                            float *);
template void cumsum<int64_t>(const int64_t *, const Shape &, int, bool, bool,
                              int64_t *);
template void cumsum<int32_t>(const int32_t *, const Shape &, int, bool, bool,
                              int32_t *);

} // namespace weipipe::rt::cpu
