//===- Internal.h - helpers shared by the CPU kernels -----------*- C++ -*-===//
//
// Part of weipipe's runtime. Not installed: the check macro, the strided
// iteration engine every elementwise/data-movement kernel runs on, and the
// fixed-chunk column reduction that keeps weight-gradient sums deterministic
// whatever the thread count.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_CPU_INTERNAL_H
#define WEIPIPE_RUNTIME_CPU_INTERNAL_H

#include "weipipe/runtime/cpu/Kernels.h"

#include <algorithm>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace weipipe::rt::cpu::detail {

[[noreturn]] void checkFailed(const char *file, int line, const char *cond,
                              const std::string &message);

/// Aborts with file:line, the condition and `message` when `cond` is false.
/// For shape contracts the compiler already verified: a failure is a bug.
#define WP_CHECK(cond, message)                                                \
  do {                                                                         \
    if (!(cond))                                                               \
      ::weipipe::rt::cpu::detail::checkFailed(__FILE__, __LINE__, #cond,       \
                                              (message));                     \
  } while (0)

/// Loops over fewer elements than this run on one thread: below it an OpenMP
/// region costs more than it saves, and far more on a loaded machine, where
/// every region's barrier waits for its slowest (descheduled) thread.
constexpr int64_t kParallelMin = 1 << 15;
/// The same for attention, counted in multiply-adds (B H Sq Sk D).
constexpr int64_t kParallelMinMacs = 1 << 20;
/// Longest contiguous run one task of forEachRow handles.
constexpr int64_t kRowChunk = 4096;
/// Number of fixed row chunks for column reductions (weight gradients).
constexpr int64_t kColumnChunks = 64;
/// OpenBLAS runs a GEMM with M*N*K at most this on the calling thread
/// (SMP_THRESHOLD_MIN 65536 x GEMM_MULTITHREAD_THRESHOLD 4 in
/// interface/gemm.c). Attention's two-pass backward sizes its key blocks
/// under it, so that even a threaded OpenBLAS never competes with OpenMP (this
/// runtime sets OpenBLAS serial; see Matmul.cpp); its GEMMs run by
/// gemmInTask, one call each, on the task's thread. Only speed depends on
/// this.
constexpr int64_t kSmallGemm = 262144;

/// Row-major strides of `s`.
void contiguousStrides(const Shape &s, int64_t *strides);
/// Strides (in elements) of a tensor of shape `in` read as if it had shape
/// `out` under NumPy broadcasting: 0 along stretched or missing dims. Aborts if
/// `in` does not broadcast to `out`.
void broadcastStrides(const Shape &in, const Shape &out, int64_t *strides);
/// `s` padded with leading 1s to `rank`.
Shape padLeft(const Shape &s, int rank);

constexpr int kMaxOps = 4; // operands of one StridedPlan

/// Iteration over a shape for up to kMaxOps operands, each with its own
/// element strides. Size-1 dims are dropped and dims that are contiguous for
/// every operand are merged, so the innermost loop is as long as possible.
struct StridedPlan {
  int rank = 1;
  int nops = 0;
  int64_t numel = 0;
  int64_t dims[kMaxRank] = {};
  int64_t strides[kMaxOps][kMaxRank] = {};
  int64_t innerStride(int op) const { return strides[op][rank - 1]; }
};

StridedPlan makePlan(const Shape &shape, int nops,
                     const int64_t (*strides)[kMaxRank]);

/// Calls f(offsets, n) for runs of the innermost dim: operand k's elements are
/// offsets[k] + i * plan.innerStride(k) for i in [0, n). Runs are independent
/// (distinct output elements), so they are spread over threads: each takes a
/// contiguous range of runs and steps through it with an odometer (no
/// division per run: short runs, such as a head-transpose's, are common).
template <class F> void forEachRow(const StridedPlan &p, F &&f) {
  if (p.numel == 0)
    return;
  const int r = p.rank;
  const int64_t inner = p.dims[r - 1];
  const int64_t rows = p.numel / inner;
  const int64_t chunk = inner > kRowChunk ? kRowChunk : inner;
  const int64_t perRow = (inner + chunk - 1) / chunk;
  const int64_t tasks = rows * perRow;
  const int nops = p.nops;
  auto run = [&](int64_t t0, int64_t t1) {
    int64_t idx[kMaxRank] = {}, base[kMaxOps] = {0, 0, 0, 0};
    int64_t rem = t0 / perRow, c = t0 % perRow;
    for (int d = r - 2; d >= 0; --d) {
      idx[d] = rem % p.dims[d];
      rem /= p.dims[d];
      for (int k = 0; k < nops; ++k)
        base[k] += idx[d] * p.strides[k][d];
    }
    for (int64_t t = t0; t < t1; ++t) {
      int64_t offs[kMaxOps];
      for (int k = 0; k < nops; ++k)
        offs[k] = base[k] + c * chunk * p.strides[k][r - 1];
      f(offs, std::min(chunk, inner - c * chunk));
      if (++c < perRow)
        continue;
      c = 0;
      for (int d = r - 2; d >= 0; --d) {
        for (int k = 0; k < nops; ++k)
          base[k] += p.strides[k][d];
        if (++idx[d] < p.dims[d])
          break;
        for (int k = 0; k < nops; ++k)
          base[k] -= p.dims[d] * p.strides[k][d];
        idx[d] = 0;
      }
    }
  };
  if (p.numel < kParallelMin || tasks < 2) {
    run(0, tasks);
    return;
  }
#pragma omp parallel
  {
    int64_t t = 0, nt = 1;
#ifdef _OPENMP
    t = omp_get_thread_num();
    nt = omp_get_num_threads();
#endif
    const int64_t t0 = tasks * t / nt, t1 = tasks * (t + 1) / nt;
    if (t0 < t1)
      run(t0, t1);
  }
}

/// sum_{i < n} f(i) in double, as 8 interleaved partial sums added in a fixed
/// order at the end: independent chains instead of one long dependent one
/// (row statistics were latency-bound), and the same result on any thread.
template <class F> double rowSum(int64_t n, F &&f) {
  double acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j)
      acc[j] += f(i + j);
  for (int j = 0; i < n; ++i, ++j)
    acc[j] += f(i);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) +
         ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/// Column sums over `rows` rows that do not depend on the thread count:
/// [0, rows) is cut into at most kColumnChunks fixed chunks; body(r0, r1,
/// partials) adds the rows [r0, r1) into partials[v][0, cols) (zeroed, one
/// per output vector v < nvec); then outs[v][c] += the chunk partials added in
/// chunk order. nullptr entries of `outs` are skipped. The body may also write
/// per-row outputs (dx) for its rows.
template <class Body>
void chunkedColumnSums(int64_t rows, int64_t cols, int nvec,
                       float *const *outs, Body &&body) {
  if (rows <= 0 || cols <= 0)
    return;
  int64_t nChunks = std::min(rows, kColumnChunks);
  const int64_t perChunk = (rows + nChunks - 1) / nChunks;
  nChunks = (rows + perChunk - 1) / perChunk;
  std::vector<float> partial(size_t(nChunks * nvec * cols), 0.0f);
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t ch = 0; ch < nChunks; ++ch) {
    float *ps[kMaxOps];
    for (int v = 0; v < nvec; ++v)
      ps[v] = partial.data() + (ch * nvec + v) * cols;
    body(ch * perChunk, std::min(rows, (ch + 1) * perChunk), ps);
  }
#pragma omp parallel for schedule(static) if (nChunks * cols >= kParallelMin)
  for (int64_t c = 0; c < cols; ++c)
    for (int v = 0; v < nvec; ++v) {
      if (!outs[v])
        continue;
      float s = 0.0f;
      for (int64_t ch = 0; ch < nChunks; ++ch)
        s += partial[size_t((ch * nvec + v) * cols + c)];
      outs[v][c] += s;
    }
}

/// Reduction of `src` (shape ss) down to `ds` (broadcastable to ss) with a
/// binary op; shared by sum_to_shape and reduce_max.
enum class Combine { Sum, Max };
void reduceToShape(const float *src, const Shape &ss, float *dst,
                   const Shape &ds, Combine op);

} // namespace weipipe::rt::cpu::detail

#endif // WEIPIPE_RUNTIME_CPU_INTERNAL_H
