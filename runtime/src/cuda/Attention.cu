//===- Attention.cu - nn.attention forward and backward -------------------===//
//
// Part of weipipe's runtime (CUDA backend). FlashAttention-2's algorithm in
// fp32 arithmetic (Triton tutorial structure: no atomics), on tiles in shared
// memory; storage T is float or bf16, converted to fp32 as tiles load and
// back once per output element.
//
//   forward, one block per (b, h, query tile of 64 rows): for each tile of
//     Bc keys, S = scale Q K^T + mask, online softmax (running max m and sum
//     l per row, the accumulator rescaled by exp(m_old - m_new)), O += P V;
//     at the end O /= l and lse = m + log l. Causal tiles stop at the last
//     key their last row sees; the diagonal tile is masked element-wise. The
//     same kernel without P V computes lse alone (the backward without lse).
//   backward, three kernels:
//     Dr[b, h, i] = sum_d dO O (one warp per row, into the workspace);
//     dK/dV, one block per (b, kv head, tile of 64 keys): for each query
//       head of the GQA group in head order and each tile of Bc query rows
//       (causal: from the first tile that sees the keys), S^T = scale K Q^T,
//       P^T = exp(S^T - lse), dV += P^T dO, dP^T = V dO^T,
//       dS^T = P^T (dP^T - Dr), dK += scale dS^T Q;
//     dQ, one block per (b, h, query tile of 64 rows): for each tile of Bc
//       keys, P = exp(S - lse), dS = P (dO V^T - Dr), dQ += scale dS K.
//   Rows whose lse is -inf (no allowed key) have P = 0 and contribute
//   nothing.
//
// Tiles: 256 threads as 16 x 16; a block owns 64 rows (query rows, or keys
// in dK/dV) and streams tiles of Bc rows; thread (ty, tx) holds rows
// ty + 16a (a < 4) against streamed rows tx + 16c and head dims tx + 16e,
// so a row's softmax reduction stays in one half-warp (4 shuffles) and the
// shared-memory reads are conflict-free (row pitch DP + 1, odd). The head dim
// is padded to DP = 32, 64 or 128 (zeros, which add exactly nothing), Bc =
// 64 for DP <= 64 and 32 for DP = 128, which keeps the largest kernel (dK/dV
// at DP = 128) at 109 KiB of dynamic shared memory: two blocks per H100 SM,
// one per A100 SM. The products are fp32 FMA loops: this is the attention
// of --precision fp32 (AttentionMath::Fp32), held to the CPU's; --precision
// bf16 runs the tensor-core kernels of AttentionMma.cu (same algorithm,
// same Dr pass and entry points here).
// Supported (attentionSupported): D, Dv <= 128, any Sq and Sk (tile tails
// are zero-filled and masked), both layouts, GQA; element offsets are
// int64, so B H S D may exceed 2^31.
//
// Deterministic: every output element is owned by one thread of one block
// and summed in a fixed order (the dK/dV sum over the GQA group included);
// no atomics, no Sq x Sk buffer, the same result from run to run.
//
//===----------------------------------------------------------------------===//

#include "AttentionCommon.cuh"

#include <algorithm>
#include <climits>
#include <cmath>
#include <string>

namespace weipipe::rt::cuda {
using namespace detail;

namespace {

constexpr int kThreads = 256;
/// Threads per row of the thread grid (16 x 16): a half-warp.
constexpr int kTx = 16;
/// Owned rows per thread.
constexpr int kNA = kOwn / kTx;
/// Blocks per SM the tiled kernels are compiled for: what their shared
/// memory allows on an H100 (at most 128 registers a thread, no spills).
constexpr int kMinBlocks = 2;

/// Streamed rows per tile (Bc) for a padded head dim; see the file comment.
__host__ __device__ constexpr int streamRows(int DP) {
  return DP == 128 ? 32 : 64;
}
/// Row pitch of the [rows][DP] tiles: odd, so column reads are conflict-free.
__host__ __device__ constexpr int tilePitch(int DP) { return DP + 1; }
/// Row pitch of the [64][Bc] score tiles: consecutive thread rows 16 banks
/// apart, so the two half-warps of a warp hit different banks.
__host__ __device__ constexpr int scorePitch(int STR) { return STR + 16; }

//===----------------------------------------------------------------------===//
// Device helpers
//===----------------------------------------------------------------------===//

__device__ __forceinline__ float halfWarpMax(float v) {
#pragma unroll
  for (int o = kTx / 2; o > 0; o /= 2)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/// A butterfly: every lane of the half-warp gets the bitwise same sum.
__device__ __forceinline__ float halfWarpSum(float v) {
#pragma unroll
  for (int o = kTx / 2; o > 0; o /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/// Rows [row0, row0 + N) of one head (`valid` of them exist, `dim` columns
/// each, rows `rowStride` apart) into an fp32 tile of N rows of DP, zero
/// beyond the valid rows and columns.
template <class T, int DP, int N>
__device__ __forceinline__ void loadTile(float *dst, const T *head,
                                         int64_t rowStride, int64_t row0,
                                         int valid, int dim) {
  constexpr int P = tilePitch(DP);
  for (int idx = threadIdx.x; idx < N * DP; idx += kThreads) {
    const int r = idx / DP, d = idx % DP;
    float x = 0.0f;
    if (r < valid && d < dim)
      x = toFloat(head[(row0 + r) * rowStride + d]);
    dst[r * P + d] = x;
  }
}

/// acc[a][c] += sum_d A[ty + 16a][d] Bt[tx + 16c][d] over d < DP: an owned
/// tile times a streamed tile transposed (both [rows][DP] tiles).
template <int DP, int NA, int NC>
__device__ __forceinline__ void dotTiles(float (&acc)[NA][NC], const float *A,
                                         const float *Bt, int ty, int tx) {
  constexpr int P = tilePitch(DP);
#pragma unroll 4
  for (int d = 0; d < DP; ++d) {
    float x[NA], y[NC];
#pragma unroll
    for (int a = 0; a < NA; ++a)
      x[a] = A[(ty + kTx * a) * P + d];
#pragma unroll
    for (int c = 0; c < NC; ++c)
      y[c] = Bt[(tx + kTx * c) * P + d];
#pragma unroll
    for (int a = 0; a < NA; ++a)
#pragma unroll
      for (int c = 0; c < NC; ++c)
        acc[a][c] = fmaf(x[a], y[c], acc[a][c]);
  }
}

/// acc[a][e] += sum_c X[ty + 16a][c] Y[c][tx + 16e] over c < N: a [64][N]
/// score tile (pitch xPitch) times a [N][DP] tile.
template <int DP, int N, int NA, int NE>
__device__ __forceinline__ void mulTile(float (&acc)[NA][NE], const float *X,
                                        int xPitch, const float *Y, int ty,
                                        int tx) {
  constexpr int P = tilePitch(DP);
#pragma unroll 4
  for (int c = 0; c < N; ++c) {
    float x[NA], y[NE];
#pragma unroll
    for (int a = 0; a < NA; ++a)
      x[a] = X[(ty + kTx * a) * xPitch + c];
#pragma unroll
    for (int e = 0; e < NE; ++e)
      y[e] = Y[c * P + tx + kTx * e];
#pragma unroll
    for (int a = 0; a < NA; ++a)
#pragma unroll
      for (int e = 0; e < NE; ++e)
        acc[a][e] = fmaf(x[a], y[e], acc[a][e]);
  }
}

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

/// Forward (kOut) or lse alone (!kOut: no V, no P V, out unused). Blocks
/// enumerate (b, h, query tile), the tiles of a head in reverse so that the
/// longest causal tiles start first.
template <class T, int DP, int STR, bool kOut>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    attentionForwardKernel(const Problem p, const T *q, const T *k, const T *v,
                           T *out, float *lse) {
  constexpr int P = tilePitch(DP), PS = scorePitch(STR);
  constexpr int NC = STR / kTx, NE = DP / kTx;
  WP_DYNAMIC_SHARED(float4, smemRaw);
  float *Qs = reinterpret_cast<float *>(smemRaw); // [64][P]
  float *Ks = Qs + kOwn * P;                      // [STR][P]
  float *Vs = Ks + STR * P;                       // [STR][P] (kOut)
  float *Ps = Vs + STR * P;                       // [64][PS] (kOut)

  const int ty = threadIdx.x / kTx, tx = threadIdx.x % kTx;
  const QueryTile qt = queryTile(p);
  const int64_t b = qt.b, h = qt.h, hk = qt.hk, i0 = qt.i0, kEnd = qt.kEnd;
  const int rows = qt.rows;

  const T *kh = k + b * p.k.b + hk * p.k.h;
  const T *vh = v + b * p.v.b + hk * p.v.h;
  loadTile<T, DP, kOwn>(Qs, q + b * p.q.b + h * p.q.h, p.q.s, i0, rows, p.D);

  float m[kNA], l[kNA], acc[kNA][NE];
#pragma unroll
  for (int a = 0; a < kNA; ++a) {
    m[a] = -INFINITY;
    l[a] = 0.0f;
#pragma unroll
    for (int e = 0; e < NE; ++e)
      acc[a][e] = 0.0f;
  }

  for (int64_t j0 = 0; j0 < kEnd; j0 += STR) {
    const int nk = int(minI64(STR, p.Sk - j0));
    __syncthreads(); // the previous tile's K, V and P are no longer read
    loadTile<T, DP, STR>(Ks, kh, p.k.s, j0, nk, p.D);
    if (kOut)
      loadTile<T, DP, STR>(Vs, vh, p.v.s, j0, nk, p.Dv);
    __syncthreads();

    float s[kNA][NC];
#pragma unroll
    for (int a = 0; a < kNA; ++a)
#pragma unroll
      for (int c = 0; c < NC; ++c)
        s[a][c] = 0.0f;
    dotTiles<DP>(s, Qs, Ks, ty, tx);

    // Online softmax; the 16 threads of a row (a half-warp) hold its keys.
#pragma unroll
    for (int a = 0; a < kNA; ++a) {
      const int64_t i = i0 + ty + kTx * a;
      float mx = -INFINITY;
#pragma unroll
      for (int c = 0; c < NC; ++c) {
        s[a][c] = maskedScore(p, b, h, i, j0 + tx + kTx * c, s[a][c] * p.scale);
        mx = fmaxf(mx, s[a][c]);
      }
      const float mNew = fmaxf(m[a], halfWarpMax(mx));
      float alpha = 1.0f, sum = 0.0f;
      if (mNew == -INFINITY) { // nothing visible yet
#pragma unroll
        for (int c = 0; c < NC; ++c)
          s[a][c] = 0.0f;
      } else {
        alpha = expf(m[a] - mNew); // 0 while m was -inf
#pragma unroll
        for (int c = 0; c < NC; ++c) {
          s[a][c] = expf(s[a][c] - mNew);
          sum += s[a][c];
        }
      }
      sum = halfWarpSum(sum); // outside the branch: all 32 lanes shuffle
      l[a] = l[a] * alpha + sum;
      m[a] = mNew;
      if (kOut) {
#pragma unroll
        for (int e = 0; e < NE; ++e)
          acc[a][e] *= alpha;
#pragma unroll
        for (int c = 0; c < NC; ++c)
          Ps[(ty + kTx * a) * PS + tx + kTx * c] = s[a][c];
      }
    }
    if (kOut) {
      __syncthreads();
      mulTile<DP, STR>(acc, Ps, PS, Vs, ty, tx);
    }
  }

#pragma unroll
  for (int a = 0; a < kNA; ++a) {
    const int r = ty + kTx * a;
    if (r >= rows)
      continue;
    const int64_t i = i0 + r;
    const bool empty = l[a] == 0.0f; // no allowed key: out 0, lse -inf
    if (kOut) {
      const float inv = empty ? 0.0f : 1.0f / l[a];
      T *orow = out + b * p.o.b + h * p.o.h + i * p.o.s;
#pragma unroll
      for (int e = 0; e < NE; ++e) {
        const int d = tx + kTx * e;
        if (d < p.Dv)
          orow[d] = fromFloat<T>(empty ? 0.0f : acc[a][e] * inv);
      }
    }
    if (lse && tx == 0)
      lse[(b * p.H + h) * p.Sq + i] = empty ? -INFINITY : m[a] + logf(l[a]);
  }
}

/// Dr[b, h, i] = sum_d dO O, one warp per row (rows in [B, H, Sq] order).
template <class T>
__global__ void attentionDrKernel(const Problem p, const T *out, const T *dout,
                                  float *Dr) {
  const int64_t total = p.B * p.H * p.Sq;
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / kWarp);
  for (int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
       row < total; row += warps) {
    const int64_t i = row % p.Sq, bh = row / p.Sq;
    const int64_t b = bh / p.H, h = bh % p.H;
    const int64_t base = b * p.o.b + h * p.o.h + i * p.o.s;
    float acc = 0.0f;
    for (int d = lane; d < p.Dv; d += kWarp)
      acc = fmaf(toFloat(out[base + d]), toFloat(dout[base + d]), acc);
    acc = warpSum(acc);
    if (lane == 0)
      Dr[row] = acc;
  }
}

/// dK and dV of one tile of 64 keys of kv head hk (each may be nullptr):
/// WRITTEN once, after the sum over the group's query heads and the query
/// tiles. Blocks enumerate (b, kv head, key tile).
template <class T, int DP, int STR>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    attentionBackwardKvKernel(const Problem p, const T *q, const T *k,
                              const T *v, const T *dout, const float *lse,
                              const float *Dr, T *dk, T *dv) {
  constexpr int P = tilePitch(DP), PS = scorePitch(STR);
  constexpr int NC = STR / kTx, NE = DP / kTx;
  WP_DYNAMIC_SHARED(float4, smemRaw);
  float *Ks = reinterpret_cast<float *>(smemRaw); // [64][P]
  float *Vs = Ks + kOwn * P;                      // [64][P]
  float *Qs = Vs + kOwn * P;                      // [STR][P]
  float *dOs = Qs + STR * P;                      // [STR][P]
  float *Ts = dOs + STR * P;                      // [64][PS]: P^T, then dS^T
  float *lseS = Ts + kOwn * PS;                   // [STR]
  float *DrS = lseS + STR;                        // [STR]

  const int ty = threadIdx.x / kTx, tx = threadIdx.x % kTx;
  const int64_t nkt = (p.Sk + kOwn - 1) / kOwn;
  const int64_t bhk = int64_t(blockIdx.x) / nkt;
  const int64_t j0 = (int64_t(blockIdx.x) - bhk * nkt) * kOwn;
  const int64_t b = bhk / p.Hkv, hk = bhk % p.Hkv;
  const int nk = int(minI64(kOwn, p.Sk - j0));
  const bool wantDk = dk != nullptr, wantDv = dv != nullptr;

  loadTile<T, DP, kOwn>(Ks, k + b * p.k.b + hk * p.k.h, p.k.s, j0, nk, p.D);
  loadTile<T, DP, kOwn>(Vs, v + b * p.v.b + hk * p.v.h, p.v.s, j0, nk, p.Dv);

  float dkAcc[kNA][NE], dvAcc[kNA][NE];
#pragma unroll
  for (int a = 0; a < kNA; ++a)
#pragma unroll
    for (int e = 0; e < NE; ++e) {
      dkAcc[a][e] = 0.0f;
      dvAcc[a][e] = 0.0f;
    }

  // Causal: query rows before j0 see none of these keys (STR divides 64).
  const int64_t iStart = p.causal ? j0 : 0;
  for (int64_t g = 0; g < p.G; ++g) {
    const int64_t h = hk * p.G + g;
    const T *qh = q + b * p.q.b + h * p.q.h;
    const T *oh = dout + b * p.o.b + h * p.o.h;
    const float *lseH = lse + (b * p.H + h) * p.Sq;
    const float *DrH = Dr + (b * p.H + h) * p.Sq;
    for (int64_t i0 = iStart; i0 < p.Sq; i0 += STR) {
      const int nq = int(minI64(STR, p.Sq - i0));
      __syncthreads(); // the previous tile's Q, dO, P^T, dS^T are not read
      loadTile<T, DP, STR>(Qs, qh, p.q.s, i0, nq, p.D);
      loadTile<T, DP, STR>(dOs, oh, p.o.s, i0, nq, p.Dv);
      loadRowStats<STR>(lseS, DrS, lseH, DrH, i0, nq);
      __syncthreads();

      // P^T[key][query] = exp(scale K Q^T + mask - lse).
      float pt[kNA][NC];
#pragma unroll
      for (int a = 0; a < kNA; ++a)
#pragma unroll
        for (int c = 0; c < NC; ++c)
          pt[a][c] = 0.0f;
      dotTiles<DP>(pt, Ks, Qs, ty, tx);
#pragma unroll
      for (int a = 0; a < kNA; ++a)
#pragma unroll
        for (int c = 0; c < NC; ++c) {
          const int qc = tx + kTx * c;
          const float s = maskedScore(p, b, h, i0 + qc, j0 + ty + kTx * a,
                                      pt[a][c] * p.scale);
          pt[a][c] = probability(s, lseS[qc]);
        }

      if (wantDv) { // dV += P^T dO
#pragma unroll
        for (int a = 0; a < kNA; ++a)
#pragma unroll
          for (int c = 0; c < NC; ++c)
            Ts[(ty + kTx * a) * PS + tx + kTx * c] = pt[a][c];
        __syncthreads();
        mulTile<DP, STR>(dvAcc, Ts, PS, dOs, ty, tx);
      }
      if (wantDk) { // dS^T = P^T (V dO^T - Dr); dK += dS^T Q (scaled last)
        float ds[kNA][NC];
#pragma unroll
        for (int a = 0; a < kNA; ++a)
#pragma unroll
          for (int c = 0; c < NC; ++c)
            ds[a][c] = 0.0f;
        dotTiles<DP>(ds, Vs, dOs, ty, tx);
        if (wantDv)
          __syncthreads(); // every thread is done reading P^T from Ts
#pragma unroll
        for (int a = 0; a < kNA; ++a)
#pragma unroll
          for (int c = 0; c < NC; ++c)
            Ts[(ty + kTx * a) * PS + tx + kTx * c] =
                pt[a][c] * (ds[a][c] - DrS[tx + kTx * c]);
        __syncthreads();
        mulTile<DP, STR>(dkAcc, Ts, PS, Qs, ty, tx);
      }
    }
  }

#pragma unroll
  for (int a = 0; a < kNA; ++a) {
    const int r = ty + kTx * a;
    if (r >= nk)
      continue;
    const int64_t j = j0 + r;
#pragma unroll
    for (int e = 0; e < NE; ++e) {
      const int d = tx + kTx * e;
      if (wantDk && d < p.D)
        dk[b * p.k.b + hk * p.k.h + j * p.k.s + d] =
            fromFloat<T>(dkAcc[a][e] * p.scale);
      if (wantDv && d < p.Dv)
        dv[b * p.v.b + hk * p.v.h + j * p.v.s + d] = fromFloat<T>(dvAcc[a][e]);
    }
  }
}

/// dQ of one query tile of 64 rows, WRITTEN once after the key tiles.
/// Blocks enumerate (b, h, query tile) as the forward does.
template <class T, int DP, int STR>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    attentionBackwardQKernel(const Problem p, const T *q, const T *k,
                             const T *v, const T *dout, const float *lse,
                             const float *Dr, T *dq) {
  constexpr int P = tilePitch(DP), PS = scorePitch(STR);
  constexpr int NC = STR / kTx, NE = DP / kTx;
  WP_DYNAMIC_SHARED(float4, smemRaw);
  float *Qs = reinterpret_cast<float *>(smemRaw); // [64][P]
  float *dOs = Qs + kOwn * P;                     // [64][P]
  float *Ks = dOs + kOwn * P;                     // [STR][P]
  float *Vs = Ks + STR * P;                       // [STR][P]
  float *Ts = Vs + STR * P;                       // [64][PS]: dS

  const int ty = threadIdx.x / kTx, tx = threadIdx.x % kTx;
  const QueryTile qt = queryTile(p);
  const int64_t b = qt.b, h = qt.h, hk = qt.hk, i0 = qt.i0, kEnd = qt.kEnd;
  const int rows = qt.rows;

  const T *kh = k + b * p.k.b + hk * p.k.h;
  const T *vh = v + b * p.v.b + hk * p.v.h;
  loadTile<T, DP, kOwn>(Qs, q + b * p.q.b + h * p.q.h, p.q.s, i0, rows, p.D);
  loadTile<T, DP, kOwn>(dOs, dout + b * p.o.b + h * p.o.h, p.o.s, i0, rows,
                        p.Dv);
  float L[kNA], R[kNA], dqAcc[kNA][NE];
#pragma unroll
  for (int a = 0; a < kNA; ++a) {
    const int r = ty + kTx * a;
    L[a] = r < rows ? lse[(b * p.H + h) * p.Sq + i0 + r] : -INFINITY;
    R[a] = r < rows ? Dr[(b * p.H + h) * p.Sq + i0 + r] : 0.0f;
#pragma unroll
    for (int e = 0; e < NE; ++e)
      dqAcc[a][e] = 0.0f;
  }

  for (int64_t j0 = 0; j0 < kEnd; j0 += STR) {
    const int nk = int(minI64(STR, p.Sk - j0));
    __syncthreads(); // the previous tile's K, V and dS are no longer read
    loadTile<T, DP, STR>(Ks, kh, p.k.s, j0, nk, p.D);
    loadTile<T, DP, STR>(Vs, vh, p.v.s, j0, nk, p.Dv);
    __syncthreads();

    float s[kNA][NC], dp[kNA][NC];
#pragma unroll
    for (int a = 0; a < kNA; ++a)
#pragma unroll
      for (int c = 0; c < NC; ++c) {
        s[a][c] = 0.0f;
        dp[a][c] = 0.0f;
      }
    dotTiles<DP>(s, Qs, Ks, ty, tx);
    dotTiles<DP>(dp, dOs, Vs, ty, tx);
#pragma unroll
    for (int a = 0; a < kNA; ++a)
#pragma unroll
      for (int c = 0; c < NC; ++c) {
        const float sc = maskedScore(p, b, h, i0 + ty + kTx * a,
                                     j0 + tx + kTx * c, s[a][c] * p.scale);
        Ts[(ty + kTx * a) * PS + tx + kTx * c] =
            probability(sc, L[a]) * (dp[a][c] - R[a]);
      }
    __syncthreads();
    mulTile<DP, STR>(dqAcc, Ts, PS, Ks, ty, tx);
  }

#pragma unroll
  for (int a = 0; a < kNA; ++a) {
    const int r = ty + kTx * a;
    if (r >= rows)
      continue;
    T *row = dq + b * p.q.b + h * p.q.h + (i0 + r) * p.q.s;
#pragma unroll
    for (int e = 0; e < NE; ++e) {
      const int d = tx + kTx * e;
      if (d < p.D)
        row[d] = fromFloat<T>(dqAcc[a][e] * p.scale);
    }
  }
}

//===----------------------------------------------------------------------===//
// Launchers
//===----------------------------------------------------------------------===//


/// Shared memory of each kernel, in bytes (the layouts in the kernels).
constexpr size_t forwardSmem(int DP, bool out) {
  const int P = tilePitch(DP), STR = streamRows(DP);
  return sizeof(float) * size_t(kOwn * P + STR * P +
                                (out ? STR * P + kOwn * scorePitch(STR) : 0));
}
constexpr size_t backwardKvSmem(int DP) {
  const int P = tilePitch(DP), STR = streamRows(DP);
  return sizeof(float) *
         size_t(2 * kOwn * P + 2 * STR * P + kOwn * scorePitch(STR) + 2 * STR);
}
constexpr size_t backwardQSmem(int DP) {
  const int P = tilePitch(DP), STR = streamRows(DP);
  return sizeof(float) *
         size_t(2 * kOwn * P + 2 * STR * P + kOwn * scorePitch(STR));
}
static_assert(backwardKvSmem(128) <= 160 * 1024,
              "the largest attention kernel must fit an A100's shared memory");

int paddedHeadDim(const AttentionParams &p) {
  const int64_t d = std::max(p.D, p.Dv);
  return d <= 32 ? 32 : d <= 64 ? 64 : 128;
}

HeadStrides headStrides(cpu::AttentionLayout l, int64_t heads, int64_t S,
                        int64_t dim) {
  if (l == cpu::AttentionLayout::BHSD)
    return {heads * S * dim, S * dim, dim};
  return {S * heads * dim, dim, heads * dim};
}

std::string shapeString(const cpu::Shape &s) {
  std::string r = "[";
  for (int i = 0; i < s.rank; ++i)
    r += (i ? ", " : "") + std::to_string(s.dims[i]);
  return r + "]";
}

/// The mask's strides against [B, H, Sq, Sk] by NumPy broadcasting (0 for
/// broadcast dims), as the CPU's maskStrides; an error if it does not
/// broadcast.
Status maskStrides(const AttentionParams &p, int64_t st[4]) {
  const cpu::Shape &s = p.mask.shape;
  const int64_t full[4] = {p.B, p.H, p.Sq, p.Sk};
  if (s.rank < 0 || s.rank > 4)
    return Status::error("attention mask rank must be <= 4, got " +
                         std::to_string(s.rank));
  int64_t contiguous[4] = {0, 0, 0, 0};
  int64_t stride = 1;
  for (int i = s.rank - 1; i >= 0; --i) {
    contiguous[i] = stride;
    stride *= s.dims[i];
  }
  for (int i = 0; i < 4; ++i) {
    const int j = s.rank - 4 + i;
    if (j < 0) {
      st[i] = 0;
      continue;
    }
    if (s.dims[j] != full[i] && s.dims[j] != 1)
      return Status::error(
          "attention mask " + shapeString(s) + " does not broadcast to [" +
          std::to_string(p.B) + ", " + std::to_string(p.H) + ", " +
          std::to_string(p.Sq) + ", " + std::to_string(p.Sk) + "]");
    st[i] = (s.dims[j] == 1 && full[i] != 1) ? 0 : contiguous[j];
  }
  return Status();
}

/// The kernels' view of a supported problem.
Problem makeProblem(const AttentionParams &p) {
  Problem k{};
  k.B = p.B;
  k.H = p.H;
  k.Hkv = p.Hkv;
  k.G = p.H / p.Hkv;
  k.Sq = p.Sq;
  k.Sk = p.Sk;
  k.D = int(p.D);
  k.Dv = int(p.Dv);
  k.q = headStrides(p.layout, p.H, p.Sq, p.D);
  k.k = headStrides(p.layout, p.Hkv, p.Sk, p.D);
  k.v = headStrides(p.layout, p.Hkv, p.Sk, p.Dv);
  k.o = headStrides(p.layout, p.H, p.Sq, p.Dv);
  k.scale = p.scale;
  k.causal = p.causal;
  k.mask = p.mask.kind == cpu::MaskKind::Additive ? kAdditive
           : p.mask.kind == cpu::MaskKind::Keep   ? kKeep
                                                  : kNoMask;
  k.additive = p.mask.additive;
  k.keep = p.mask.keep;
  if (k.mask != kNoMask) {
    int64_t st[4];
    (void)maskStrides(p, st); // checked by attentionSupported
    k.mb = st[0];
    k.mh = st[1];
    k.mq = st[2];
    k.mk = st[3];
  }
  return k;
}


/// Launches `blocks` blocks of kThreads (none: nothing to do).
template <class... KArgs, class... Args>
Status launchTiled(void (*kernel)(KArgs...), size_t smem, int64_t blocks,
                   cudaStream_t stream, const char *name, Args... args) {
  return launchBlocks(kernel, kThreads, smem, blocks, stream, name, args...);
}

template <class T, int DP>
Status forwardFor(const Problem &pr, const T *q, const T *k, const T *v, T *out,
                  float *lse, cudaStream_t stream, const char *statsName) {
  constexpr int STR = streamRows(DP);
  const int64_t blocks = pr.B * pr.H * ceilDiv(pr.Sq, kOwn);
  if (out)
    return launchTiled(attentionForwardKernel<T, DP, STR, true>,
                       forwardSmem(DP, true), blocks, stream,
                       "attention_forward", pr, q, k, v, out, lse);
  return launchTiled(attentionForwardKernel<T, DP, STR, false>,
                     forwardSmem(DP, false), blocks, stream, statsName, pr, q,
                     k, v, out, lse);
}

/// The forward (out may be nullptr: lse alone) with either math.
template <class T>
Status forward(const Problem &pr, int DP, AttentionMath math, const T *q,
               const T *k, const T *v, T *out, float *lse, cudaStream_t stream,
               const char *statsName) {
  if (math == AttentionMath::TensorCoresBf16)
    return mmaAttentionForward(pr, q, k, v, out, lse, stream,
                               out ? "attention_forward (tensor cores)"
                                   : statsName);
  switch (DP) {
  case 32:
    return forwardFor<T, 32>(pr, q, k, v, out, lse, stream, statsName);
  case 64:
    return forwardFor<T, 64>(pr, q, k, v, out, lse, stream, statsName);
  default:
    return forwardFor<T, 128>(pr, q, k, v, out, lse, stream, statsName);
  }
}

template <class T, int DP>
Status backwardFor(const Problem &pr, const T *q, const T *k, const T *v,
                   const T *dout, const float *lse, const float *Dr, T *dq,
                   T *dk, T *dv, cudaStream_t stream) {
  constexpr int STR = streamRows(DP);
  if (dk || dv)
    WP_TRY(launchTiled(attentionBackwardKvKernel<T, DP, STR>,
                       backwardKvSmem(DP), pr.B * pr.Hkv * ceilDiv(pr.Sk, kOwn),
                       stream, "attention_backward (dK, dV)", pr, q, k, v, dout,
                       lse, Dr, dk, dv));
  if (dq)
    WP_TRY(launchTiled(attentionBackwardQKernel<T, DP, STR>, backwardQSmem(DP),
                       pr.B * pr.H * ceilDiv(pr.Sq, kOwn), stream,
                       "attention_backward (dQ)", pr, q, k, v, dout, lse, Dr,
                       dq));
  return Status();
}

/// The backward: lse (when not given) and Dr into the workspace, then the
/// dK/dV and dQ passes with either math.
template <class T>
Status backward(const Problem &pr, int DP, AttentionMath math, const T *q,
                const T *k, const T *v, const T *out, const float *lse,
                const T *dout, T *dq, T *dk, T *dv, void *workspace,
                cudaStream_t stream) {
  const int64_t rows = pr.B * pr.H * pr.Sq;
  float *Dr = static_cast<float *>(workspace);
  if (rows > 0) {
    if (!lse) { // a forward pass for the statistics alone
      float *lseWs =
          reinterpret_cast<float *>(static_cast<char *>(workspace) +
                                    align256(uint64_t(rows) * sizeof(float)));
      WP_TRY(forward(pr, DP, math, q, k, v, static_cast<T *>(nullptr), lseWs,
                     stream, "attention_backward (lse)"));
      lse = lseWs;
    }
    const int64_t rowsPerBlock = kThreads / kWarp;
    const int64_t drBlocks =
        std::min<int64_t>(ceilDiv(rows, rowsPerBlock), int64_t(1) << 20);
    launch(attentionDrKernel<T>, unsigned(drBlocks), kThreads, 0, stream, pr,
           out, dout, Dr);
    WP_TRY(launched("attention_backward (Dr)"));
  }
  if (math == AttentionMath::TensorCoresBf16)
    return mmaAttentionBackward(pr, q, k, v, dout, lse,
                                static_cast<const float *>(Dr), dq, dk, dv,
                                stream);
  switch (DP) {
  case 32:
    return backwardFor<T, 32>(pr, q, k, v, dout, lse, Dr, dq, dk, dv, stream);
  case 64:
    return backwardFor<T, 64>(pr, q, k, v, dout, lse, Dr, dq, dk, dv, stream);
  default:
    return backwardFor<T, 128>(pr, q, k, v, dout, lse, Dr, dq, dk, dv, stream);
  }
}

} // namespace

Status attentionSupported(const AttentionParams &p) {
  if (p.B < 0 || p.H <= 0 || p.Hkv <= 0 || p.Sq < 0 || p.Sk < 0 || p.D <= 0 ||
      p.Dv <= 0)
    return Status::error(
        "bad attention sizes: B " + std::to_string(p.B) + ", H " +
        std::to_string(p.H) + ", Hkv " + std::to_string(p.Hkv) + ", Sq " +
        std::to_string(p.Sq) + ", Sk " + std::to_string(p.Sk) + ", D " +
        std::to_string(p.D) + ", Dv " + std::to_string(p.Dv));
  if (p.H % p.Hkv != 0)
    return Status::error("attention num_heads " + std::to_string(p.H) +
                         " is not a multiple of num_kv_heads " +
                         std::to_string(p.Hkv));
  if (p.D > kMaxHeadDim)
    return Status::error("attention head dim " + std::to_string(p.D) + " > " +
                         std::to_string(kMaxHeadDim) +
                         " is not supported by the CUDA kernels");
  if (p.Dv > kMaxHeadDim)
    return Status::error("attention value head dim " + std::to_string(p.Dv) +
                         " > " + std::to_string(kMaxHeadDim) +
                         " is not supported by the CUDA kernels");
  // One block per (b, head, 64-row tile), all in gridDim.x (< 2^31).
  const int64_t qTiles = ceilDiv(p.Sq, kOwn), kTiles = ceilDiv(p.Sk, kOwn);
  if ((qTiles > 0 && p.B > INT_MAX / p.H / qTiles) ||
      (kTiles > 0 && p.B > INT_MAX / p.Hkv / kTiles))
    return Status::error("attention of " + std::to_string(p.B) + " x " +
                         std::to_string(p.H) + " heads of " +
                         std::to_string(std::max(p.Sq, p.Sk)) +
                         " rows exceeds the CUDA kernels' grid limit");
  if (p.mask.kind != cpu::MaskKind::None) {
    if (p.mask.kind == cpu::MaskKind::Additive ? p.mask.additive == nullptr
                                               : p.mask.keep == nullptr)
      return Status::error("attention mask data missing");
    int64_t st[4];
    WP_TRY(maskStrides(p, st));
  }
  return Status();
}

uint64_t attentionBackwardWorkspaceBytes(const AttentionParams &p) {
  const uint64_t rows = uint64_t(std::max<int64_t>(p.B, 0)) *
                        uint64_t(std::max<int64_t>(p.H, 0)) *
                        uint64_t(std::max<int64_t>(p.Sq, 0));
  return 2 * align256(rows * sizeof(float)); // Dr, then lse when not given
}

template <class T>
Status attention_forward(const AttentionParams &p, const T *q, const T *k,
                         const T *v, T *out, float *lse, cudaStream_t stream,
                         AttentionMath math) {
  WP_TRY(attentionSupported(p));
  if (!out && !lse)
    return Status();
  return forward(makeProblem(p), paddedHeadDim(p), math, q, k, v, out, lse,
                 stream, "attention_forward (lse)");
}

template <class T>
Status attention_backward(const AttentionParams &p, const T *q, const T *k,
                          const T *v, const T *out, const float *lse,
                          const T *dout, T *dq, T *dk, T *dv, void *workspace,
                          cudaStream_t stream, AttentionMath math) {
  WP_TRY(attentionSupported(p));
  if (!dq && !dk && !dv)
    return Status();
  if (!workspace && p.B * p.H * p.Sq > 0)
    return Status::error("attention_backward needs a workspace of " +
                         std::to_string(attentionBackwardWorkspaceBytes(p)) +
                         " bytes");
  return backward(makeProblem(p), paddedHeadDim(p), math, q, k, v, out, lse,
                  dout, dq, dk, dv, workspace, stream);
}

template Status attention_forward<float>(const AttentionParams &, const float *,
                                         const float *, const float *, float *,
                                         float *, cudaStream_t, AttentionMath);
template Status attention_forward<bf16>(const AttentionParams &, const bf16 *,
                                        const bf16 *, const bf16 *, bf16 *,
                                        float *, cudaStream_t, AttentionMath);
template Status attention_backward<float>(const AttentionParams &,
                                          const float *, const float *,
                                          const float *, const float *,
                                          const float *, const float *, float *,
                                          float *, float *, void *,
                                          cudaStream_t, AttentionMath);
template Status attention_backward<bf16>(const AttentionParams &, const bf16 *,
                                         const bf16 *, const bf16 *,
                                         const bf16 *, const float *,
                                         const bf16 *, bf16 *, bf16 *, bf16 *,
                                         void *, cudaStream_t, AttentionMath);

} // namespace weipipe::rt::cuda
