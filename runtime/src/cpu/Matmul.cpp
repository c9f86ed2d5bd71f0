//===- Matmul.cpp - GEMM wrapper, nn.matmul, nn.linear --------------------===//
//
// Part of weipipe's runtime (CPU kernels). All products go through
// cblas_sgemm. OpenBLAS itself runs single-threaded: its own thread pool and
// OpenMP's would spin against each other between calls (on two cores that
// halved throughput). Big GEMMs are split by `gemm` into row or column blocks
// over the OpenMP threads instead, never along K, so every element is summed
// in the same order whatever the thread count; many small batched GEMMs are
// spread over OpenMP threads by their callers. Sums over broadcast batch dims
// run one GEMM after another in batch order, so their order is fixed.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include <cblas.h>

#include <climits>
#include <cstring>

#ifdef _OPENMP
#include <omp.h>
#endif

// OpenBLAS's own entry point; weak so that another BLAS links too.
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace weipipe::rt::cpu {
using namespace detail;

namespace {
/// Runs once at load: OpenBLAS computes on the calling thread only.
const bool kSerialBlas = [] {
  if (openblas_set_num_threads)
    openblas_set_num_threads(1);
  return true;
}();

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K,
           float alpha, const float *A, int64_t lda, const float *B,
           int64_t ldb, float beta, float *C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
              transB ? CblasTrans : CblasNoTrans, int(M), int(N), int(K),
              alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
}
} // namespace

void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K,
          float alpha, const float *A, int64_t lda, const float *B,
          int64_t ldb, float beta, float *C, int64_t ldc) {
  if (M <= 0 || N <= 0)
    return;
  WP_CHECK(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && lda <= INT_MAX &&
               ldb <= INT_MAX && ldc <= INT_MAX,
           "GEMM size exceeds the BLAS integer range");
  if (K <= 0) { // C = beta C
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j)
        C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    return;
  }
  (void)kSerialBlas;
  // Worth splitting only when each block keeps the micro-kernel busy.
  if (M * N * K < (int64_t(1) << 18)) {
    sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // Split the larger of M and N into blocks whose size depends on the sizes
  // alone, never on the thread count: OpenBLAS picks its kernel by a call's
  // shape (small-matrix kernels sum in another order), so a split by thread
  // count changed results in the last bits between 1 and 2 threads. Up to
  // kGemmBlocks blocks, multiples of 16, at least 64 wide.
  constexpr int64_t kGemmBlocks = 8;
  const bool byRows = M >= N;
  const int64_t extent = byRows ? M : N;
  int64_t block = (extent + kGemmBlocks - 1) / kGemmBlocks;
  block = std::max<int64_t>(64, (block + 15) / 16 * 16);
  const int64_t blocks = (extent + block - 1) / block;
  bool nested = false;
#ifdef _OPENMP
  nested = omp_in_parallel();
#endif
#pragma omp parallel for schedule(static) if (!nested && blocks > 1)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t lo = b * block, n = std::min(block, extent - lo);
    if (byRows)
      sgemm(transA, transB, n, N, K, alpha, transA ? A + lo : A + lo * lda,
            lda, B, ldb, beta, C + lo * ldc, ldc);
    else
      sgemm(transA, transB, M, n, K, alpha, A, lda,
            transB ? B + lo * ldb : B + lo, ldb, beta, C + lo, ldc);
  }
}

void gemmInTask(bool transA, bool transB, int64_t M, int64_t N, int64_t K,
                float alpha, const float *A, int64_t lda, const float *B,
                int64_t ldb, float beta, float *C, int64_t ldc) {
  if (M <= 0 || N <= 0)
    return;
  if (K <= 0)
    return gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  WP_CHECK(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && lda <= INT_MAX &&
               ldb <= INT_MAX && ldc <= INT_MAX,
           "GEMM size exceeds the BLAS integer range");
  sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

namespace {

struct MatmulDims {
  int64_t M = 1, K = 1, N = 1;
  bool aVec = false, bVec = false;
  Shape batchA, batchB, batchOut;
};

MatmulDims analyze(const Shape &as, const Shape &bs) {
  WP_CHECK(as.rank >= 1 && bs.rank >= 1, "matmul operands need rank >= 1");
  MatmulDims d;
  int64_t kb;
  if (as.rank == 1) {
    d.aVec = true;
    d.K = as[0];
  } else {
    d.M = as[as.rank - 2];
    d.K = as[as.rank - 1];
    d.batchA = Shape(as.dims, as.rank - 2);
  }
  if (bs.rank == 1) {
    d.bVec = true;
    kb = bs[0];
  } else {
    kb = bs[bs.rank - 2];
    d.N = bs[bs.rank - 1];
    d.batchB = Shape(bs.dims, bs.rank - 2);
  }
  WP_CHECK(kb == d.K, "matmul inner dims differ: " + as.str() + " x " +
                          bs.str());
  WP_CHECK(broadcast_shape(d.batchA, d.batchB, &d.batchOut),
           "matmul batch dims do not broadcast: " + as.str() + " x " +
               bs.str());
  return d;
}

/// Matrix offsets (in matrices) of a and b for result batch `o`.
void batchOffsets(const MatmulDims &d, const int64_t *sa, const int64_t *sb,
                  int64_t o, int64_t *ia, int64_t *ib) {
  int64_t rem = o;
  *ia = *ib = 0;
  for (int i = d.batchOut.rank - 1; i >= 0; --i) {
    const int64_t idx = rem % d.batchOut[i];
    rem /= d.batchOut[i];
    *ia += idx * sa[i];
    *ib += idx * sb[i];
  }
}

/// Calls f(outBatch, aBatch, bBatch) for every result batch. In batch order
/// on this thread when `ordered` (the calls accumulate into shared outputs) or
/// when the GEMMs are big enough for OpenBLAS to thread them; otherwise the
/// batches (each writing its own output) are spread over OpenMP threads and
/// each small GEMM runs on its calling thread (kSmallGemm).
template <class F> void forEachBatch(const MatmulDims &d, bool ordered, F f) {
  int64_t sa[kMaxRank], sb[kMaxRank];
  broadcastStrides(d.batchA, d.batchOut, sa);
  broadcastStrides(d.batchB, d.batchOut, sb);
  const int64_t nb = d.batchOut.numel();
  const int64_t macs = d.M * d.N * d.K;
  [[maybe_unused]] const bool spread = !ordered && nb > 1 && macs <= kSmallGemm &&
                      nb * macs >= kParallelMinMacs;
#pragma omp parallel for schedule(static) if (spread)
  for (int64_t o = 0; o < nb; ++o) {
    int64_t ia, ib;
    batchOffsets(d, sa, sb, o, &ia, &ib);
    f(o, ia, ib);
  }
}

} // namespace

Shape matmul_shape(const Shape &as, const Shape &bs) {
  const MatmulDims d = analyze(as, bs);
  Shape r = d.batchOut;
  if (!d.aVec)
    r.dims[r.rank++] = d.M;
  if (!d.bVec)
    r.dims[r.rank++] = d.N;
  return r;
}

void matmul_forward(const float *a, const Shape &as, const float *b,
                    const Shape &bs, float *c) {
  const MatmulDims d = analyze(as, bs);
  const int64_t M = d.M, K = d.K, N = d.N;
  if (d.batchB.numel() == 1) {
    // [..., M, K] x [K, N]: all rows of a in one GEMM.
    gemm(false, false, d.batchA.numel() * M, N, K, 1.0f, a, K, b, N, 0.0f, c,
         N);
    return;
  }
  forEachBatch(d, /*ordered=*/false, [&](int64_t o, int64_t ia, int64_t ib) {
    gemm(false, false, M, N, K, 1.0f, a + ia * M * K, K, b + ib * K * N, N,
         0.0f, c + o * M * N, N);
  });
}

void matmul_backward(const float *a, const Shape &as, const float *b,
                     const Shape &bs, const float *dc, float *da, float *db,
                     bool accumulate) {
  const MatmulDims d = analyze(as, bs);
  const int64_t M = d.M, K = d.K, N = d.N;
  const float beta = accumulate ? 1.0f : 0.0f;
  if (d.batchB.numel() == 1) {
    const int64_t rows = d.batchA.numel() * M;
    if (da) // dA[rows, K] = dC[rows, N] B^T
      gemm(false, true, rows, K, N, 1.0f, dc, N, b, N, beta, da, K);
    if (db) // dB[K, N] = A^T[K, rows] dC[rows, N]
      gemm(true, false, K, N, rows, 1.0f, a, K, dc, N, beta, db, N);
    return;
  }
  const bool aBroadcast = d.batchA.numel() != d.batchOut.numel();
  if (da) {
    if (!accumulate && aBroadcast)
      std::memset(da, 0, size_t(as.numel()) * sizeof(float));
    const float bt = aBroadcast ? 1.0f : beta;
    forEachBatch(d, aBroadcast, [&](int64_t o, int64_t ia, int64_t ib) {
      gemm(false, true, M, K, N, 1.0f, dc + o * M * N, N, b + ib * K * N, N,
           bt, da + ia * M * K, K);
    });
  }
  if (db) {
    // batchB has more than one matrix, so it is broadcast only if it has
    // fewer than the result.
    const bool bBroadcast = d.batchB.numel() != d.batchOut.numel();
    if (!accumulate && bBroadcast)
      std::memset(db, 0, size_t(bs.numel()) * sizeof(float));
    const float bt = bBroadcast ? 1.0f : beta;
    forEachBatch(d, bBroadcast, [&](int64_t o, int64_t ia, int64_t ib) {
      gemm(true, false, K, N, M, 1.0f, a + ia * M * K, K, dc + o * M * N, N,
           bt, db + ib * K * N, N);
    });
  }
}

void linear_forward(const float *x, const float *w, const float *bias,
                    float *y, int64_t M, int64_t K, int64_t N,
                    bool transposeWeight) {
  if (bias) {
#pragma omp parallel for schedule(static) if (M * N >= kParallelMin)
    for (int64_t i = 0; i < M; ++i)
      std::memcpy(y + i * N, bias, size_t(N) * sizeof(float));
  }
  gemm(false, transposeWeight, M, N, K, 1.0f, x, K, w,
       transposeWeight ? K : N, bias ? 1.0f : 0.0f, y, N);
}

void linear_backward(const float *x, const float *w, const float *dy,
                     float *dx, float *dw, float *dbias, int64_t M, int64_t K,
                     int64_t N, bool transposeWeight) {
  if (dx) {
    if (transposeWeight) // dx = dy[M,N] W[N,K]
      gemm(false, false, M, K, N, 1.0f, dy, N, w, K, 0.0f, dx, K);
    else // dx = dy[M,N] W[K,N]^T
      gemm(false, true, M, K, N, 1.0f, dy, N, w, N, 0.0f, dx, K);
  }
  if (dw) {
    if (transposeWeight) // dW[N,K] += dy^T x
      gemm(true, false, N, K, M, 1.0f, dy, N, x, K, 1.0f, dw, K);
    else // dW[K,N] += x^T dy
      gemm(true, false, K, N, M, 1.0f, x, K, dy, N, 1.0f, dw, N);
  }
  if (dbias) {
    float *outs[1] = {dbias};
    chunkedColumnSums(M, N, 1, outs, [&](int64_t r0, int64_t r1, float **ps) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t j = 0; j < N; ++j)
          ps[0][j] += dy[r * N + j];
    });
  }
}

} // namespace weipipe::rt::cpu
