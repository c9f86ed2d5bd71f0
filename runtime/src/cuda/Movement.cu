//===- Movement.cu - transpose, concat, slice, gather, topk, scatter ------===//
//
// Part of weipipe's runtime (CUDA backend). The "Data movement" half of
// cuda/Primitives.h (Primitives.cu holds the elementwise and reduction half).
//
// Movement copies elements without converting them, so every kernel here is
// instantiated on the element's size only (uint8_t, uint16_t, uint32_t,
// uint64_t) and serves every storage of that size; the input and output
// storages must be equal. A zero element is all-zero bits in every storage.
//
//   transpose, broadcast_to, slice: one strided gather, one thread per
//     output element; the source view (offset, per-dim strides, negative for
//     a negative slice step, 0 for a broadcast dim) travels by value in a
//     POD struct.
//   slice_backward: one thread per dx element, which either is a sliced
//     position (it copies its dy element) or is not (it writes zero): dx is
//     written once, without a separate memset.
//   concat: the inputs in groups of kConcatGroup per launch (pointers and
//     axis extents by value); each launch writes its group's slab of y.
//   gather: one thread per y element; an index outside [-n, n) records an
//     IndexOutOfRange KernelError and yields a zero element.
//   gather_backward (f32/bf16, fp32 sums): one thread per dx element loops
//     over all indices in order and adds the dy elements gathered from it:
//     deterministic, no atomics, the CPU kernel's order of additions (so
//     bitwise equal to it in fp32), at a cost of numIdx loads of idx per dx
//     element. Bad indices are skipped and recorded by dx element 0's thread.
//   trilu, band: one thread per output element.
//   topk_indices (f32/bf16 values): one thread per row, k passes of a
//     selection over the row (each pass picks the best element ordered after
//     the previous pick): O(k n) per row and no scratch; fine for the small
//     k and rows these graphs bring, slow for a large k over long rows.
//   scatter_elements: y = data (a device copy unless y aliases data), then
//     one thread per update. Only updates on the same line along `axis` can
//     target the same element; an update is written only if no later update
//     on its line targets the same element, so the CPU's "the last one wins"
//     holds without atomics (O(L) per update for lines of length L). A bad
//     index records an IndexOutOfRange KernelError and writes nothing.
//
//===----------------------------------------------------------------------===//

#include "Common.cuh"

#include "weipipe/runtime/cuda/Primitives.h"

#include <string>
#include <utility>

namespace weipipe::rt::cuda {
using namespace detail;

namespace {

constexpr int kThreads = 256;
constexpr int kConcatGroup = 16;

/// A strided view over `dims` (the output's shape, row-major): element at
/// multi-index i is src[offset + sum i_d strides_d].
struct View {
  int rank = 0;
  int64_t dims[kMaxRank] = {};
  int64_t strides[kMaxRank] = {};
  int64_t offset = 0;
};

/// Where slice_backward's dx positions come from.
struct SliceMap {
  int rank = 0;
  int64_t dims[kMaxRank] = {};   ///< dx's shape
  int64_t starts[kMaxRank] = {}; ///< clamped starts
  int64_t steps[kMaxRank] = {};
  int64_t counts[kMaxRank] = {}; ///< dy's shape
};

/// One launch's inputs of a concat: x[i] holds `outer` rows of len[i]
/// elements (its axis extent times the inner size).
struct ConcatGroup {
  const void *x[kConcatGroup] = {};
  int64_t len[kConcatGroup] = {};
  int count = 0;
};

#define WP_GRID_STRIDE(e, n)                                                   \
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < (n);    \
       e += int64_t(gridDim.x) * blockDim.x)

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

template <class E>
__global__ void stridedGather(const E *x, E *y, View v, int64_t n) {
  WP_GRID_STRIDE(e, n) {
    int64_t rem = e, off = v.offset;
    for (int d = v.rank - 1; d >= 0; --d) {
      const int64_t i = rem % v.dims[d];
      rem /= v.dims[d];
      off += i * v.strides[d];
    }
    y[e] = x[off];
  }
}

template <class E>
__global__ void sliceBackwardKernel(const E *dy, E *dx, SliceMap m, int64_t n) {
  WP_GRID_STRIDE(e, n) {
    int64_t rem = e, src = 0, mul = 1;
    bool inside = true;
    for (int d = m.rank - 1; d >= 0; --d) {
      const int64_t i = rem % m.dims[d];
      rem /= m.dims[d];
      const int64_t rel = i - m.starts[d], step = m.steps[d];
      // rel = q step for a q in [0, count)
      const int64_t q = rel / step;
      if (rel % step != 0 || q < 0 || q >= m.counts[d]) {
        inside = false;
        break;
      }
      src += q * mul;
      mul *= m.counts[d];
    }
    dx[e] = inside ? dy[src] : E(0);
  }
}

/// y's rows are `outer` rows of `row` elements; this group fills the
/// `width` elements from `at` in each.
template <class E>
__global__ void concatKernel(ConcatGroup g, E *y, int64_t outer, int64_t row,
                             int64_t at, int64_t width) {
  const int64_t n = outer * width;
  WP_GRID_STRIDE(e, n) {
    const int64_t o = e / width;
    int64_t r = e % width;
    int i = 0;
    while (r >= g.len[i]) {
      r -= g.len[i];
      ++i;
    }
    y[o * row + at + e % width] =
        static_cast<const E *>(g.x[i])[o * g.len[i] + r];
  }
}

__device__ __forceinline__ int64_t wrapIndex(int64_t v, int64_t n) {
  return v < 0 ? v + n : v;
}

template <class E>
__global__ void gatherKernel(const E *x, const int64_t *idx, E *y,
                             int64_t outer, int64_t size, int64_t numIdx,
                             int64_t inner, KernelError *err) {
  const int64_t n = outer * numIdx * inner;
  WP_GRID_STRIDE(e, n) {
    const int64_t c = e % inner, j = e / inner % numIdx;
    const int64_t o = e / (inner * numIdx);
    const int64_t v = wrapIndex(idx[j], size);
    if (v < 0 || v >= size) {
      if (o == 0 && c == 0)
        recordError(err, KernelError::IndexOutOfRange, idx[j], j, size);
      y[e] = E(0);
      continue;
    }
    y[e] = x[(o * size + v) * inner + c];
  }
}

template <class TY, class TX>
__global__ void gatherBackwardKernel(const int64_t *idx, const TY *dy, TX *dx,
                                     int64_t outer, int64_t size,
                                     int64_t numIdx, int64_t inner,
                                     bool accumulate, KernelError *err) {
  const int64_t n = outer * size * inner;
  WP_GRID_STRIDE(e, n) {
    const int64_t c = e % inner, i = e / inner % size;
    const int64_t o = e / (inner * size);
    float s = accumulate ? toFloat(dx[e]) : 0.0f;
    for (int64_t j = 0; j < numIdx; ++j) {
      const int64_t v = wrapIndex(idx[j], size);
      if (v < 0 || v >= size) {
        if (e == 0)
          recordError(err, KernelError::IndexOutOfRange, idx[j], j, size);
        continue;
      }
      if (v == i)
        s += toFloat(dy[(o * numIdx + j) * inner + c]);
    }
    dx[e] = fromFloat<TX>(s);
  }
}

template <class E>
__global__ void triluKernel(const E *x, E *y, int64_t M, int64_t N, bool upper,
                            int64_t k, int64_t n) {
  WP_GRID_STRIDE(e, n) {
    const int64_t j = e % N, i = e / N % M;
    const bool keep = upper ? j >= i + k : j <= i + k;
    y[e] = keep ? x[e] : E(0);
  }
}

template <class E>
__global__ void bandKernel(const E *diagonals, E *y, int64_t M, int64_t N,
                           int64_t n) {
  WP_GRID_STRIDE(e, n) {
    const int64_t j = e % N, i = e / N % M;
    y[e] = diagonals[j - i + M - 1];
  }
}

/// a goes before b in the CPU's order: NaN largest, then by value, then the
/// lower index.
__device__ __forceinline__ bool topkBefore(float va, int64_t a, float vb,
                                           int64_t b, bool largest) {
  const bool na = isnan(va), nb = isnan(vb);
  if (na != nb)
    return largest ? na : nb;
  if (!na && va != vb)
    return largest ? va > vb : va < vb;
  return a < b;
}

template <class T>
__global__ void topkKernel(const T *x, int64_t *y, int64_t rows, int64_t n,
                           int64_t k, bool largest) {
  WP_GRID_STRIDE(r, rows) {
    const T *row = x + r * n;
    int64_t prev = -1;
    float prevV = 0.0f;
    for (int64_t t = 0; t < k; ++t) {
      int64_t best = -1;
      float bestV = 0.0f;
      for (int64_t e = 0; e < n; ++e) {
        const float v = toFloat(row[e]);
        if (prev >= 0 && !topkBefore(prevV, prev, v, e, largest))
          continue;
        if (best < 0 || topkBefore(v, e, bestV, best, largest)) {
          best = e;
          bestV = v;
        }
      }
      y[r * k + t] = best;
      prev = best;
      prevV = bestV;
    }
  }
}

/// `is` is the updates' (and idx's) shape, `dims` data's.
struct ScatterShape {
  int rank = 0;
  int64_t is[kMaxRank] = {};
  int64_t dims[kMaxRank] = {};
};

template <class E>
__global__ void scatterKernel(const int64_t *idx, const E *updates, E *y,
                              ScatterShape s, int axis, int64_t n,
                              KernelError *err) {
  WP_GRID_STRIDE(p, n) {
    const int64_t size = s.dims[axis];
    const int64_t v = wrapIndex(idx[p], size);
    if (v < 0 || v >= size) {
      recordError(err, KernelError::IndexOutOfRange, idx[p], p, size);
      continue;
    }
    // p's multi-index in is; the stride of `axis` in is.
    int64_t pos[kMaxRank];
    int64_t rem = p, axisStride = 1;
    for (int d = s.rank - 1; d >= 0; --d) {
      pos[d] = rem % s.is[d];
      rem /= s.is[d];
      if (d > axis)
        axisStride *= s.is[d];
    }
    bool overwritten = false;
    for (int64_t q = pos[axis] + 1, at = p + axisStride; q < s.is[axis];
         ++q, at += axisStride)
      if (wrapIndex(idx[at], size) == v) {
        overwritten = true;
        break;
      }
    if (overwritten)
      continue;
    int64_t flat = 0;
    for (int d = 0; d < s.rank; ++d)
      flat = flat * s.dims[d] + (d == axis ? v : pos[d]);
    y[flat] = updates[p];
  }
}

#undef WP_GRID_STRIDE

//===----------------------------------------------------------------------===//
// Host helpers
//===----------------------------------------------------------------------===//

template <class E> struct Tag { using type = E; };

/// Calls f(Tag<E>{}) with E the unsigned integer of `t`'s element size.
template <class F> Status bySize(Storage t, const char *op, F &&f) {
  switch (storageSize(t)) {
  case 1:
    f(Tag<uint8_t>{});
    break;
  case 2:
    f(Tag<uint16_t>{});
    break;
  case 4:
    f(Tag<uint32_t>{});
    break;
  case 8:
    f(Tag<uint64_t>{});
    break;
  default:
    return Status::error(std::string(op) + ": unsupported storage " +
                         storageName(t));
  }
  return launched(op);
}

/// Calls f(Tag<T>{}) with T float or bf16 for an F32 or BF16 storage.
template <class F> bool byFloat(Storage t, F &&f) {
  if (t == Storage::F32) {
    f(Tag<float>{});
    return true;
  }
  if (t == Storage::BF16) {
    f(Tag<bf16>{});
    return true;
  }
  return false;
}

Status fail(const char *op, const std::string &why) {
  return Status::error(std::string(op) + ": " + why);
}

Status sameStorage(const char *op, const DevTensor &a, const DevTensor &b) {
  if (a.t == b.t)
    return Status();
  return fail(op, std::string("storages differ (") + storageName(a.t) +
                      " and " + storageName(b.t) + ")");
}

Status shapeIs(const char *op, const char *what, const cpu::Shape &got,
               const cpu::Shape &want) {
  if (got == want)
    return Status();
  return fail(op, std::string(what) + " has shape " + got.str() +
                      ", expected " + want.str());
}

void contiguous(const cpu::Shape &s, int64_t *st) {
  int64_t m = 1;
  for (int d = s.rank - 1; d >= 0; --d) {
    st[d] = m;
    m *= s.dims[d];
  }
}

struct AxisSplit {
  int64_t outer = 1, n = 1, inner = 1;
};
AxisSplit splitAt(const cpu::Shape &s, int axis) {
  AxisSplit r;
  for (int i = 0; i < axis; ++i)
    r.outer *= s.dims[i];
  for (int i = axis + 1; i < s.rank; ++i)
    r.inner *= s.dims[i];
  r.n = s.dims[axis];
  return r;
}

Status checkAxis(const char *op, const cpu::Shape &s, int axis) {
  if (axis >= 0 && axis < s.rank)
    return Status();
  return fail(op,
              "axis " + std::to_string(axis) + " out of range for " + s.str());
}

Status gatherView(const char *op, const DevTensor &x, const View &v,
                  const DevTensor &y, cudaStream_t stream) {
  const int64_t n = y.numel();
  if (n == 0)
    return Status();
  return bySize(y.t, op, [&](auto tag) {
    using E = typename decltype(tag)::type;
    launch(stridedGather<E>, blocksFor(n, kThreads), kThreads, 0, stream,
           static_cast<const E *>(x.p), static_cast<E *>(y.p), v, n);
  });
}

/// The CPU's slice checks, and the result shape.
Status sliceShape(const char *op, const cpu::Shape &xs, Span<int64_t> starts,
                  Span<int64_t> ends, Span<int64_t> steps, cpu::Shape *ys) {
  if (int(starts.size) != xs.rank || int(ends.size) != xs.rank ||
      int(steps.size) != xs.rank)
    return fail(op, "needs one start/end/step per dim of " + xs.str());
  ys->rank = xs.rank;
  for (int d = 0; d < xs.rank; ++d) {
    const int64_t a = starts[d], b = ends[d], st = steps[d];
    if (st == 0)
      return fail(op, "step is zero");
    const bool ok = st > 0 ? 0 <= a && a <= b && b <= xs.dims[d]
                           : -1 <= b && b <= a && a < xs.dims[d];
    if (!ok)
      return fail(op, "bounds not clamped in dim " + std::to_string(d));
    ys->dims[d] = st > 0 ? (b > a ? (b - a + st - 1) / st : 0)
                         : (a > b ? (a - b - st - 1) / -st : 0);
  }
  return Status();
}

} // namespace

//===----------------------------------------------------------------------===//
// Launchers
//===----------------------------------------------------------------------===//

Status transpose(DevTensor x, Span<int64_t> perm, DevTensor y,
                 cudaStream_t stream) {
  const char *op = "transpose";
  WP_TRY(sameStorage(op, x, y));
  const int r = x.s.rank;
  if (int(perm.size) != r)
    return fail(op, "perm size must equal the rank of " + x.s.str());
  bool seen[kMaxRank] = {};
  cpu::Shape ys;
  ys.rank = r;
  View v;
  v.rank = r;
  int64_t xst[kMaxRank];
  contiguous(x.s, xst);
  for (int i = 0; i < r; ++i) {
    const int64_t p = perm[i];
    if (p < 0 || p >= r || seen[p])
      return fail(op, "perm is not a permutation");
    seen[p] = true;
    ys.dims[i] = x.s.dims[p];
    v.dims[i] = x.s.dims[p];
    v.strides[i] = xst[p];
  }
  WP_TRY(shapeIs(op, "y", y.s, ys));
  return gatherView(op, x, v, y, stream);
}

Status broadcast_to(DevTensor x, DevTensor y, cudaStream_t stream) {
  const char *op = "broadcast_to";
  WP_TRY(sameStorage(op, x, y));
  const int r = y.s.rank, lead = r - x.s.rank;
  if (lead < 0)
    return fail(op, x.s.str() + " does not broadcast to " + y.s.str());
  int64_t xst[kMaxRank];
  contiguous(x.s, xst);
  View v;
  v.rank = r;
  for (int d = 0; d < r; ++d) {
    v.dims[d] = y.s.dims[d];
    if (d < lead)
      continue; // stride 0
    const int64_t xd = x.s.dims[d - lead];
    if (xd != 1 && xd != y.s.dims[d])
      return fail(op, x.s.str() + " does not broadcast to " + y.s.str());
    v.strides[d] = xd == 1 ? 0 : xst[d - lead];
  }
  return gatherView(op, x, v, y, stream);
}

Status concat(Span<DevTensor> inputs, int axis, DevTensor y,
              cudaStream_t stream) {
  const char *op = "concat";
  if (inputs.size == 0)
    return fail(op, "no inputs");
  const cpu::Shape &s0 = inputs[0].s;
  WP_TRY(checkAxis(op, s0, axis));
  int64_t total = 0;
  for (const DevTensor &in : inputs) {
    WP_TRY(sameStorage(op, in, y));
    if (in.s.rank != s0.rank)
      return fail(op, "operands differ in rank");
    for (int d = 0; d < s0.rank; ++d)
      if (d != axis && in.s.dims[d] != s0.dims[d])
        return fail(op, "operands differ off the axis (" + in.s.str() +
                            " and " + s0.str() + ")");
    total += in.s.dims[axis];
  }
  cpu::Shape ys = s0;
  ys.dims[axis] = total;
  WP_TRY(shapeIs(op, "y", y.s, ys));
  if (y.numel() == 0)
    return Status();
  const AxisSplit sp = splitAt(s0, axis);
  const int64_t row = total * sp.inner;
  int64_t at = 0;
  size_t next = 0;
  while (next < inputs.size) {
    ConcatGroup g;
    int64_t width = 0;
    for (; next < inputs.size && g.count < kConcatGroup; ++next) {
      const int64_t len = inputs[next].s.dims[axis] * sp.inner;
      if (len == 0)
        continue;
      g.x[g.count] = inputs[next].p;
      g.len[g.count] = len;
      ++g.count;
      width += len;
    }
    if (g.count == 0)
      break;
    const int64_t n = sp.outer * width;
    WP_TRY(bySize(y.t, op, [&](auto tag) {
      using E = typename decltype(tag)::type;
      launch(concatKernel<E>, blocksFor(n, kThreads), kThreads, 0, stream, g,
             static_cast<E *>(y.p), sp.outer, row, at, width);
    }));
    at += width;
  }
  return Status();
}

Status slice(DevTensor x, Span<int64_t> starts, Span<int64_t> ends,
             Span<int64_t> steps, DevTensor y, cudaStream_t stream) {
  const char *op = "slice";
  WP_TRY(sameStorage(op, x, y));
  cpu::Shape ys;
  WP_TRY(sliceShape(op, x.s, starts, ends, steps, &ys));
  WP_TRY(shapeIs(op, "y", y.s, ys));
  if (ys.numel() == 0)
    return Status(); // (a dim taking no index may have start == size)
  int64_t xst[kMaxRank];
  contiguous(x.s, xst);
  View v;
  v.rank = ys.rank;
  for (int d = 0; d < ys.rank; ++d) {
    v.dims[d] = ys.dims[d];
    v.strides[d] = xst[d] * steps[d];
    v.offset += starts[d] * xst[d];
  }
  return gatherView(op, x, v, y, stream);
}

Status slice_backward(DevTensor dy, Span<int64_t> starts, Span<int64_t> ends,
                      Span<int64_t> steps, DevTensor dx, cudaStream_t stream) {
  const char *op = "slice_backward";
  WP_TRY(sameStorage(op, dy, dx));
  cpu::Shape ys;
  WP_TRY(sliceShape(op, dx.s, starts, ends, steps, &ys));
  WP_TRY(shapeIs(op, "dy", dy.s, ys));
  const int64_t n = dx.numel();
  if (n == 0)
    return Status();
  SliceMap m;
  m.rank = dx.s.rank;
  for (int d = 0; d < m.rank; ++d) {
    m.dims[d] = dx.s.dims[d];
    m.starts[d] = starts[d];
    m.steps[d] = steps[d];
    m.counts[d] = ys.dims[d];
  }
  return bySize(dx.t, op, [&](auto tag) {
    using E = typename decltype(tag)::type;
    launch(sliceBackwardKernel<E>, blocksFor(n, kThreads), kThreads, 0, stream,
           static_cast<const E *>(dy.p), static_cast<E *>(dx.p), m, n);
  });
}

Status gather(DevTensor x, int axis, DevTensor idx, DevTensor y,
              KernelError *err, cudaStream_t stream) {
  const char *op = "gather";
  WP_TRY(sameStorage(op, x, y));
  WP_TRY(checkAxis(op, x.s, axis));
  if (idx.t != Storage::I64)
    return fail(op,
                std::string("indices must be i64, not ") + storageName(idx.t));
  const AxisSplit sp = splitAt(x.s, axis);
  const int64_t numIdx = idx.numel();
  const int64_t n = sp.outer * numIdx * sp.inner;
  if (y.numel() != n)
    return fail(op, "y has " + std::to_string(y.numel()) +
                        " elements, expected " + std::to_string(n));
  if (n == 0)
    return Status();
  return bySize(y.t, op, [&](auto tag) {
    using E = typename decltype(tag)::type;
    launch(gatherKernel<E>, blocksFor(n, kThreads), kThreads, 0, stream,
           static_cast<const E *>(x.p), static_cast<const int64_t *>(idx.p),
           static_cast<E *>(y.p), sp.outer, sp.n, numIdx, sp.inner, err);
  });
}

Status gather_backward(DevTensor idx, DevTensor dy, int axis, DevTensor dx,
                       bool accumulate, KernelError *err, cudaStream_t stream) {
  const char *op = "gather_backward";
  WP_TRY(checkAxis(op, dx.s, axis));
  if (idx.t != Storage::I64)
    return fail(op,
                std::string("indices must be i64, not ") + storageName(idx.t));
  const AxisSplit sp = splitAt(dx.s, axis);
  const int64_t numIdx = idx.numel();
  if (dy.numel() != sp.outer * numIdx * sp.inner)
    return fail(op, "dy has " + std::to_string(dy.numel()) +
                        " elements, expected " +
                        std::to_string(sp.outer * numIdx * sp.inner));
  const int64_t n = dx.numel();
  if (n == 0)
    return Status();
  bool handled = false;
  byFloat(dy.t, [&](auto ty) {
    using TY = typename decltype(ty)::type;
    handled = byFloat(dx.t, [&](auto tx) {
      using TX = typename decltype(tx)::type;
      launch(gatherBackwardKernel<TY, TX>, blocksFor(n, kThreads), kThreads, 0,
             stream, static_cast<const int64_t *>(idx.p),
             static_cast<const TY *>(dy.p), static_cast<TX *>(dx.p), sp.outer,
             sp.n, numIdx, sp.inner, accumulate, err);
    });
  });
  if (!handled)
    return fail(op, std::string("dy and dx must be f32 or bf16, not ") +
                        storageName(dy.t) + " and " + storageName(dx.t));
  return launched(op);
}

Status trilu(DevTensor x, bool upper, int64_t k, DevTensor y,
             cudaStream_t stream) {
  const char *op = "trilu";
  WP_TRY(sameStorage(op, x, y));
  if (x.s.rank < 2)
    return fail(op, "needs rank >= 2, not " + x.s.str());
  WP_TRY(shapeIs(op, "y", y.s, x.s));
  const int64_t n = y.numel();
  if (n == 0)
    return Status();
  const int64_t M = x.s.dims[x.s.rank - 2], N = x.s.dims[x.s.rank - 1];
  return bySize(y.t, op, [&](auto tag) {
    using E = typename decltype(tag)::type;
    launch(triluKernel<E>, blocksFor(n, kThreads), kThreads, 0, stream,
           static_cast<const E *>(x.p), static_cast<E *>(y.p), M, N, upper, k,
           n);
  });
}

Status band(DevTensor diagonals, DevTensor y, cudaStream_t stream) {
  const char *op = "band";
  WP_TRY(sameStorage(op, diagonals, y));
  if (y.s.rank < 2)
    return fail(op, "needs rank >= 2, not " + y.s.str());
  const int64_t n = y.numel();
  if (n == 0)
    return Status();
  const int64_t M = y.s.dims[y.s.rank - 2], N = y.s.dims[y.s.rank - 1];
  if (diagonals.numel() < M + N - 1)
    return fail(op, "needs " + std::to_string(M + N - 1) +
                        " diagonal values, has " +
                        std::to_string(diagonals.numel()));
  return bySize(y.t, op, [&](auto tag) {
    using E = typename decltype(tag)::type;
    launch(bandKernel<E>, blocksFor(n, kThreads), kThreads, 0, stream,
           static_cast<const E *>(diagonals.p), static_cast<E *>(y.p), M, N, n);
  });
}

Status topk_indices(DevTensor x, int64_t k, bool largest, DevTensor y,
                    cudaStream_t stream) {
  const char *op = "topk_indices";
  if (y.t != Storage::I64)
    return fail(op, std::string("y must be i64, not ") + storageName(y.t));
  if (x.s.rank < 1)
    return fail(op, "needs rank >= 1");
  const int64_t n = x.s.dims[x.s.rank - 1];
  if (k < 1 || k > n)
    return fail(op,
                "k = " + std::to_string(k) + " out of range for " + x.s.str());
  cpu::Shape ys = x.s;
  ys.dims[ys.rank - 1] = k;
  WP_TRY(shapeIs(op, "y", y.s, ys));
  const int64_t rows = x.numel() / n;
  if (rows == 0)
    return Status();
  const bool handled = byFloat(x.t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(topkKernel<T>, blocksFor(rows, 128), 128, 0, stream,
           static_cast<const T *>(x.p), static_cast<int64_t *>(y.p), rows, n, k,
           largest);
  });
  if (!handled)
    return fail(op,
                std::string("x must be f32 or bf16, not ") + storageName(x.t));
  return launched(op);
}

Status scatter_elements(DevTensor data, DevTensor idx, DevTensor updates,
                        int axis, DevTensor y, KernelError *err,
                        cudaStream_t stream) {
  const char *op = "scatter_elements";
  WP_TRY(sameStorage(op, data, y));
  WP_TRY(sameStorage(op, updates, y));
  WP_TRY(checkAxis(op, data.s, axis));
  if (idx.t != Storage::I64)
    return fail(op,
                std::string("indices must be i64, not ") + storageName(idx.t));
  WP_TRY(shapeIs(op, "y", y.s, data.s));
  WP_TRY(shapeIs(op, "updates", updates.s, idx.s));
  if (idx.s.rank != data.s.rank)
    return fail(op, "indices " + idx.s.str() + " and data " + data.s.str() +
                        " differ in rank");
  for (int d = 0; d < data.s.rank; ++d)
    if (d != axis && idx.s.dims[d] > data.s.dims[d])
      return fail(op, "indices " + idx.s.str() + " exceed data " +
                          data.s.str() + " off the axis");
  const int64_t bytes = y.numel() * storageSize(y.t);
  if (bytes > 0 && y.p != data.p)
    WP_CUDA_TRY(cudaMemcpyAsync(y.p, data.p, size_t(bytes),
                                cudaMemcpyDeviceToDevice, stream));
  const int64_t n = idx.numel();
  if (n == 0)
    return Status();
  ScatterShape s;
  s.rank = data.s.rank;
  for (int d = 0; d < s.rank; ++d) {
    s.is[d] = idx.s.dims[d];
    s.dims[d] = data.s.dims[d];
  }
  return bySize(y.t, op, [&](auto tag) {
    using E = typename decltype(tag)::type;
    launch(scatterKernel<E>, blocksFor(n, kThreads), kThreads, 0, stream,
           static_cast<const int64_t *>(idx.p),
           static_cast<const E *>(updates.p), static_cast<E *>(y.p), s, axis, n,
           err);
  });
}

} // namespace weipipe::rt::cuda
