//===- Common.cpp - Shape, threads and the strided iteration engine -------===//
//
// Part of weipipe's runtime (CPU kernels).
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include <cstdio>
#include <cstdlib>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace weipipe::rt::cpu {

Shape::Shape(std::initializer_list<int64_t> d) : Shape(d.begin(), int(d.size())) {}

Shape::Shape(const int64_t *d, int r) : rank(r) {
  WP_CHECK(r >= 0 && r <= kMaxRank, "rank out of range");
  for (int i = 0; i < r; ++i) {
    WP_CHECK(d[i] >= 0, "negative dimension");
    dims[i] = d[i];
  }
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank; ++i)
    n *= dims[i];
  return n;
}

bool Shape::operator==(const Shape &o) const {
  if (rank != o.rank)
    return false;
  for (int i = 0; i < rank; ++i)
    if (dims[i] != o.dims[i])
      return false;
  return true;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < rank; ++i) {
    if (i)
      s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

int num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void set_num_threads(int n) {
#ifdef _OPENMP
  if (n > 0)
    omp_set_num_threads(n);
#else
  (void)n;
#endif
}

bool broadcast_shape(const Shape &a, const Shape &b, Shape *out) {
  Shape r;
  r.rank = std::max(a.rank, b.rank);
  for (int i = 0; i < r.rank; ++i) {
    int ia = a.rank - r.rank + i, ib = b.rank - r.rank + i;
    int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da != db && da != 1 && db != 1)
      return false;
    r.dims[i] = da == 1 ? db : da;
  }
  *out = r;
  return true;
}

namespace detail {

void checkFailed(const char *file, int line, const char *cond,
                 const std::string &message) {
  std::fprintf(stderr, "weipipe cpu kernel: %s:%d: check `%s` failed: %s\n",
               file, line, cond, message.c_str());
  std::fflush(stderr);
  std::abort();
}

void contiguousStrides(const Shape &s, int64_t *strides) {
  int64_t st = 1;
  for (int i = s.rank - 1; i >= 0; --i) {
    strides[i] = st;
    st *= s[i];
  }
}

Shape padLeft(const Shape &s, int rank) {
  WP_CHECK(s.rank <= rank, "cannot pad " + s.str() + " to a lower rank");
  Shape r;
  r.rank = rank;
  for (int i = 0; i < rank; ++i) {
    int j = s.rank - rank + i;
    r.dims[i] = j >= 0 ? s[j] : 1;
  }
  return r;
}

void broadcastStrides(const Shape &in, const Shape &out, int64_t *strides) {
  WP_CHECK(in.rank <= out.rank,
           in.str() + " does not broadcast to " + out.str());
  int64_t st[kMaxRank];
  contiguousStrides(in, st);
  for (int i = 0; i < out.rank; ++i) {
    int j = in.rank - out.rank + i;
    if (j < 0) {
      strides[i] = 0;
      continue;
    }
    WP_CHECK(in[j] == out[i] || in[j] == 1,
             in.str() + " does not broadcast to " + out.str());
    strides[i] = (in[j] == 1 && out[i] != 1) ? 0 : st[j];
  }
}

StridedPlan makePlan(const Shape &shape, int nops,
                     const int64_t (*strides)[kMaxRank]) {
  WP_CHECK(nops >= 1 && nops <= kMaxOps, "bad operand count");
  StridedPlan p;
  p.nops = nops;
  p.numel = shape.numel();
  int r = 0;
  for (int d = 0; d < shape.rank; ++d) {
    if (shape[d] == 1)
      continue;
    if (r > 0) {
      bool merge = true;
      for (int k = 0; k < nops; ++k)
        if (p.strides[k][r - 1] != strides[k][d] * shape[d])
          merge = false;
      if (merge) {
        p.dims[r - 1] *= shape[d];
        for (int k = 0; k < nops; ++k)
          p.strides[k][r - 1] = strides[k][d];
        continue;
      }
    }
    p.dims[r] = shape[d];
    for (int k = 0; k < nops; ++k)
      p.strides[k][r] = strides[k][d];
    ++r;
  }
  if (r == 0) {
    p.dims[0] = 1;
    for (int k = 0; k < nops; ++k)
      p.strides[k][0] = 0;
    r = 1;
  }
  p.rank = r;
  return p;
}

} // namespace detail
} // namespace weipipe::rt::cpu
