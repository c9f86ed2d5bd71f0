//===- AttentionMma.cu - nn.attention on bf16 tensor cores ----------------===//
//
// Part of weipipe's runtime (CUDA backend). The attention of --precision
// bf16 (AttentionMath::TensorCoresBf16): the algorithm of Attention.cu
// (FlashAttention-2's order, the Triton tutorial's deterministic backward),
// with every product on tensor cores - mma.sync m16n8k16, bf16 operands,
// fp32 accumulation - and everything else in fp32: scores, the online
// softmax (running max and sum), lse, Dr, and the accumulators of out, dQ,
// dK and dV. The operands rounded to bf16 are Q, K, V, dO as tiles load, and
// P and dS before they multiply (as FlashAttention-2 does).
//
// Each block is 4 warps; each warp owns 16 rows of the block's 64 (query
// rows, or keys in dK/dV) and keeps its scores and accumulators in mma
// fragments, so the online softmax runs in registers: a row's 64 keys are
// spread over the 4 lanes of a quad (2 shuffles for its max and its sum),
// and a score fragment is, packed to bf16, the A fragment of the next
// product (no trip through shared memory). Tiles in shared memory are bf16,
// rows padded by 8 elements (16 bytes) so that the fragment loads of the 8
// row groups hit 32 different banks; operands that the products read along
// the other axis are stored transposed as they load (V in the forward; Q and
// dO in dK/dV; K in dQ), so every fragment load is one aligned 32-bit load.
//
//   forward, per (b, h, 64 query rows), for each tile of 64 keys:
//     S = Q K^T, online softmax, O += P V; out = O / l, lse = m + log l.
//   dK/dV, per (b, kv head, 64 keys), for each query head of the group and
//     each tile of Bq query rows: S^T = K Q^T, P^T = exp(scale S^T - lse),
//     dV += P^T dO, dP^T = V dO^T, dS^T = P^T (dP^T - Dr), dK += dS^T Q.
//   dQ, per (b, h, 64 query rows), for each tile of Bk keys: S = Q K^T,
//     dP = dO V^T, dS = P (dP - Dr), dQ += dS K.
// Warps whose rows see none of a tile's keys (causal) or do not exist (the
// last tile of a sequence) skip its products; the tiles that need the mask,
// the causal rule or the sequence ends apply them element by element
// (maskedScore), the others only scale.
//
// Head dims are padded to 64 or 128 with zeros (which add nothing). Shared
// memory at head dim 128: forward 52 KiB, dK/dV 74 KiB (Bq = 32), dQ 62 KiB
// (Bk = 32). Deterministic: one warp owns each output element and adds in a
// fixed order; no atomics.
//
// Needs sm_80 (mma.sync with bf16). Under emulation (test/cuda-emu) the mma
// is Emulator.cpp's, on the PTX ISA's fragment layouts.
//
//===----------------------------------------------------------------------===//

#include "AttentionCommon.cuh"

#include <algorithm>

namespace weipipe::rt::cuda::detail {

namespace {

using u32 = uint32_t;

constexpr int kMmaWarps = 4;
constexpr int kMmaThreads = kMmaWarps * kWarp;
/// Rows each warp owns of the block's kOwn.
constexpr int kWarpRows = kOwn / kMmaWarps;
static_assert(kWarpRows == 16, "a warp owns one m16 fragment of rows");

/// Streamed rows per tile: keys in the forward, query rows in dK/dV, keys
/// in dQ (smaller at head dim 128, for registers and shared memory).
template <int DP> __host__ __device__ constexpr int forwardStream() {
  return 64;
}
template <int DP> __host__ __device__ constexpr int backwardStream() {
  return DP == 128 ? 32 : 64;
}

/// Row pitch (elements) of a bf16 tile of rows of `cols` elements.
__host__ __device__ constexpr int pitch(int cols) { return cols + 8; }

//===----------------------------------------------------------------------===//
// Fragments (PTX ISA, mma.m16n8k16 with .bf16; g = lane / 4, t = lane % 4)
//===----------------------------------------------------------------------===//

/// Two floats as a bf16 pair (lo in the low half), rounded to nearest even.
__device__ __forceinline__ u32 pack(float lo, float hi) {
  const __nv_bfloat16_raw l = __float2bfloat16_rn(lo),
                          h = __float2bfloat16_rn(hi);
  return u32(l.x) | (u32(h.x) << 16);
}

__device__ __forceinline__ u32 load32(const bf16 *p) {
  return *reinterpret_cast<const u32 *>(p);
}
__device__ __forceinline__ void store32(bf16 *p, u32 x) {
  *reinterpret_cast<u32 *>(p) = x;
}

/// A (16 x 16, row-major) at rows [r0, r0 + 16), columns [k0, k0 + 16) of a
/// row-major tile of pitch P.
template <int P>
__device__ __forceinline__ void loadA(u32 (&a)[4], const bf16 *X, int r0,
                                      int k0) {
  const int g = int(threadIdx.x % kWarp) / 4, t = int(threadIdx.x % 4);
  const bf16 *lo = X + (r0 + g) * P + k0 + 2 * t, *hi = lo + 8 * P;
  a[0] = load32(lo);
  a[1] = load32(hi);
  a[2] = load32(lo + 8);
  a[3] = load32(hi + 8);
}

/// B (16 x 8, "col") with B[k][n] = Y[n0 + n][k0 + k]: Y holds B's columns
/// as rows of pitch P.
template <int P>
__device__ __forceinline__ void loadB(u32 (&b)[2], const bf16 *Y, int n0,
                                      int k0) {
  const int g = int(threadIdx.x % kWarp) / 4, t = int(threadIdx.x % 4);
  const bf16 *p = Y + (n0 + g) * P + k0 + 2 * t;
  b[0] = load32(p);
  b[1] = load32(p + 8);
}

/// The A fragment of k-step kk from the C fragments of n-tiles 2kk, 2kk + 1
/// (a score tile, rounded to bf16, as the left operand of the next product).
template <int NN>
__device__ __forceinline__ void packA(u32 (&a)[4], const float (&c)[NN][4],
                                      int kk) {
  a[0] = pack(c[2 * kk][0], c[2 * kk][1]);
  a[1] = pack(c[2 * kk][2], c[2 * kk][3]);
  a[2] = pack(c[2 * kk + 1][0], c[2 * kk + 1][1]);
  a[3] = pack(c[2 * kk + 1][2], c[2 * kk + 1][3]);
}

/// c += A B.
__device__ __forceinline__ void mma(float (&c)[4], const u32 (&a)[4],
                                    const u32 (&b)[2]) {
#ifdef WEIPIPE_CUDA_EMULATION
  ::weipipe::emu::mmaBf16(c, a, b);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
               "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
               "{%0, %1, %2, %3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]),
                 "r"(b[1]));
#elif defined(__CUDA_ARCH__)
  __trap(); // bf16 mma needs sm_80: the build targets sm_80 and up
#endif
}

/// C (rows 16 x NN n-tiles of 8) += A B over KS k-steps: A's fragments from
/// rows [r0, r0 + 16) of the row-major tile X (pitch PX), B's from the
/// transposed-storage tile Y (pitch PY, B[k][n] = Y[n][k]).
template <int KS, int NN, int PX, int PY>
__device__ __forceinline__ void mmaTiles(float (&c)[NN][4], const bf16 *X,
                                         int r0, const bf16 *Y) {
#pragma unroll
  for (int kk = 0; kk < KS; ++kk) {
    u32 a[4];
    loadA<PX>(a, X, r0, kk * 16);
#pragma unroll
    for (int n = 0; n < NN; ++n) {
      u32 b[2];
      loadB<PY>(b, Y, n * 8, kk * 16);
      mma(c[n], a, b);
    }
  }
}

/// C (NN n-tiles) += A B where A's KS k-steps are the score fragments s
/// (packed to bf16) and B[k][n] = Y[n][k] (pitch PY).
template <int KS, int NN, int NS, int PY>
__device__ __forceinline__ void
mmaScores(float (&c)[NN][4], const float (&s)[NS][4], const bf16 *Y) {
  static_assert(NS == 2 * KS, "a k-step of 16 is two score n-tiles of 8");
#pragma unroll
  for (int kk = 0; kk < KS; ++kk) {
    u32 a[4];
    packA(a, s, kk);
#pragma unroll
    for (int n = 0; n < NN; ++n) {
      u32 b[2];
      loadB<PY>(b, Y, n * 8, kk * 16);
      mma(c[n], a, b);
    }
  }
}

template <int NN> __device__ __forceinline__ void zero(float (&c)[NN][4]) {
#pragma unroll
  for (int n = 0; n < NN; ++n)
#pragma unroll
    for (int i = 0; i < 4; ++i)
      c[n][i] = 0.0f;
}

/// The max (sum) over the 4 lanes of a quad: one row of a fragment.
__device__ __forceinline__ float quadMax(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quadSum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

/// exp(s - lse) with the fast exponential; 0 where masked or lse = -inf.
__device__ __forceinline__ float fastProbability(float s, float lse) {
  return (s == -INFINITY || lse == -INFINITY) ? 0.0f : __expf(s - lse);
}

/// Rows [row0, row0 + N) of one head (`valid` of them, `dim` columns, rows
/// `rowStride` apart) as bf16 tiles: row-major [N][pitch(DP)] into rowMajor
/// and/or transposed [DP][pitch(N)] into transposed (either may be
/// nullptr), zero beyond the valid rows and columns. Each thread converts a
/// 2 x 2 block, so both layouts store whole 32-bit pairs.
template <class T, int DP, int N>
__device__ __forceinline__ void loadTile(bf16 *rowMajor, bf16 *transposed,
                                         const T *head, int64_t rowStride,
                                         int64_t row0, int valid, int dim) {
  constexpr int P = pitch(DP), PT = pitch(N);
  for (int idx = threadIdx.x; idx < (N / 2) * (DP / 2); idx += kMmaThreads) {
    const int r = idx / (DP / 2) * 2, d = idx % (DP / 2) * 2;
    float x[2][2];
#pragma unroll
    for (int a = 0; a < 2; ++a)
#pragma unroll
      for (int e = 0; e < 2; ++e)
        x[a][e] = r + a < valid && d + e < dim
                      ? toFloat(head[(row0 + r + a) * rowStride + d + e])
                      : 0.0f;
    if (rowMajor) {
      store32(rowMajor + r * P + d, pack(x[0][0], x[0][1]));
      store32(rowMajor + (r + 1) * P + d, pack(x[1][0], x[1][1]));
    }
    if (transposed) {
      store32(transposed + d * PT + r, pack(x[0][0], x[1][0]));
      store32(transposed + (d + 1) * PT + r, pack(x[0][1], x[1][1]));
    }
  }
}

/// Scales a score fragment tile and applies the mask where it must: element
/// (n, i) is row rows[i >> 1], column col0 + 8n + 2t + (i & 1); `rowsAreKeys`
/// swaps the two for the transposed scores of dK/dV. `plain`: every element
/// exists and is allowed (no mask), so scaling is all.
template <int NN>
__device__ __forceinline__ void
maskScores(float (&s)[NN][4], const Problem &p, int64_t b, int64_t h,
           const int64_t (&rows)[2], int64_t col0, bool rowsAreKeys,
           bool plain) {
  const int t = int(threadIdx.x % 4);
#pragma unroll
  for (int n = 0; n < NN; ++n)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float x = s[n][i] * p.scale;
      if (plain) {
        s[n][i] = x;
        continue;
      }
      const int64_t r = rows[i >> 1], c = col0 + 8 * n + 2 * t + (i & 1);
      s[n][i] = rowsAreKeys ? maskedScore(p, b, h, c, r, x)
                            : maskedScore(p, b, h, r, c, x);
    }
}

/// Queries [q0, q0 + nq) against keys [k0, k0 + nk): whether the causal
/// rule allows no pair (a warp skips such a tile), and whether every pair
/// exists and is allowed with no mask (scaling is all).
__device__ __forceinline__ bool seesNone(const Problem &p, int64_t q0, int nq,
                                         int64_t k0) {
  return p.causal && k0 > q0 + nq - 1;
}
__device__ __forceinline__ bool plainBlock(const Problem &p, int64_t q0,
                                           int nq, int64_t k0, int nk) {
  return p.mask == kNoMask && q0 + nq <= p.Sq && k0 + nk <= p.Sk &&
         !(p.causal && k0 + nk - 1 > q0);
}

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

/// Forward (kOut) or lse alone (!kOut: no V, no P V).
template <class T, int DP, bool kOut>
__global__ void __launch_bounds__(kMmaThreads)
    mmaForwardKernel(const Problem p, const T *q, const T *k, const T *v,
                     T *out, float *lse) {
  constexpr int BN = forwardStream<DP>(), P = pitch(DP), PT = pitch(BN);
  constexpr int KD = DP / 16, ND = DP / 8, NN = BN / 8, KN = BN / 16;
  WP_DYNAMIC_SHARED(float4, smemRaw);
  bf16 *Qs = reinterpret_cast<bf16 *>(smemRaw); // [64][P]
  bf16 *Ks = Qs + kOwn * P;                     // [BN][P]
  bf16 *Vt = Ks + BN * P;                       // [DP][PT] (kOut)

  const int warp = int(threadIdx.x) / kWarp, g = int(threadIdx.x % kWarp) / 4,
            t = int(threadIdx.x % 4);
  const QueryTile qt = queryTile(p);
  const int64_t b = qt.b, h = qt.h, hk = qt.hk, i0 = qt.i0, kEnd = qt.kEnd;
  const int64_t w0 = i0 + warp * kWarpRows; // the warp's first row
  const int64_t rows[2] = {w0 + g, w0 + g + 8};
  const bool warpRows = w0 < p.Sq;

  const T *kh = k + b * p.k.b + hk * p.k.h;
  const T *vh = v + b * p.v.b + hk * p.v.h;
  loadTile<T, DP, kOwn>(Qs, nullptr, q + b * p.q.b + h * p.q.h, p.q.s, i0,
                        qt.rows, p.D);

  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}, o[ND][4];
  zero(o);
  for (int64_t j0 = 0; j0 < kEnd; j0 += BN) {
    const int nk = int(minI64(BN, p.Sk - j0));
    __syncthreads(); // the previous tile's K and V are no longer read
    loadTile<T, DP, BN>(Ks, nullptr, kh, p.k.s, j0, nk, p.D);
    if (kOut)
      loadTile<T, DP, BN>(nullptr, Vt, vh, p.v.s, j0, nk, p.Dv);
    __syncthreads();
    if (!warpRows || seesNone(p, w0, kWarpRows, j0))
      continue; // no row of the warp sees a key of this tile

    float s[NN][4];
    zero(s);
    mmaTiles<KD, NN, P, P>(s, Qs, warp * kWarpRows, Ks);
    maskScores(s, p, b, h, rows, j0, false,
               plainBlock(p, w0, kWarpRows, j0, BN));

    // Online softmax over the row's keys (the 4 lanes of a quad).
    float alpha[2];
#pragma unroll
    for (int x = 0; x < 2; ++x) {
      float mx = m[x];
#pragma unroll
      for (int n = 0; n < NN; ++n)
        mx = fmaxf(mx, fmaxf(s[n][2 * x], s[n][2 * x + 1]));
      mx = quadMax(mx);
      alpha[x] = mx == -INFINITY ? 1.0f : __expf(m[x] - mx); // 0 from -inf
      m[x] = mx;
      l[x] *= alpha[x];
#pragma unroll
      for (int n = 0; n < NN; ++n)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float &y = s[n][2 * x + e];
          y = mx == -INFINITY ? 0.0f : __expf(y - mx); // exp(-inf) = 0
          l[x] += y;
        }
    }
    if (kOut) {
#pragma unroll
      for (int n = 0; n < ND; ++n) {
        o[n][0] *= alpha[0];
        o[n][1] *= alpha[0];
        o[n][2] *= alpha[1];
        o[n][3] *= alpha[1];
      }
      mmaScores<KN, ND, NN, PT>(o, s, Vt);
    }
  }

#pragma unroll
  for (int x = 0; x < 2; ++x) {
    const float sum = quadSum(l[x]); // all lanes, before any exit
    const int64_t i = rows[x];
    if (i >= p.Sq)
      continue;
    const bool empty = sum == 0.0f; // no allowed key: out 0, lse -inf
    if (kOut) {
      const float inv = empty ? 0.0f : 1.0f / sum;
      T *orow = out + b * p.o.b + h * p.o.h + i * p.o.s;
#pragma unroll
      for (int n = 0; n < ND; ++n)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int d = 8 * n + 2 * t + e;
          if (d < p.Dv)
            orow[d] = fromFloat<T>(empty ? 0.0f : o[n][2 * x + e] * inv);
        }
    }
    if (lse && t == 0)
      lse[(b * p.H + h) * p.Sq + i] = empty ? -INFINITY : m[x] + logf(sum);
  }
}

/// dK and dV of one tile of 64 keys of kv head hk (either may be nullptr),
/// written once after the sum over the group's query heads and query tiles.
template <class T, int DP>
__global__ void __launch_bounds__(kMmaThreads)
    mmaBackwardKvKernel(const Problem p, const T *q, const T *k, const T *v,
                        const T *dout, const float *lse, const float *Dr, T *dk,
                        T *dv) {
  constexpr int BQ = backwardStream<DP>(), P = pitch(DP), PT = pitch(BQ);
  constexpr int KD = DP / 16, ND = DP / 8, NQ = BQ / 8, KQ = BQ / 16;
  WP_DYNAMIC_SHARED(float4, smemRaw);
  bf16 *Ks = reinterpret_cast<bf16 *>(smemRaw);           // [64][P]
  bf16 *Vs = Ks + kOwn * P;                               // [64][P]
  bf16 *Qs = Vs + kOwn * P;                               // [BQ][P]
  bf16 *dOs = Qs + BQ * P;                                // [BQ][P]
  bf16 *Qt = dOs + BQ * P;                                // [DP][PT]
  bf16 *dOt = Qt + DP * PT;                               // [DP][PT]
  float *lseS = reinterpret_cast<float *>(dOt + DP * PT); // [BQ]
  float *DrS = lseS + BQ;                                 // [BQ]

  const int warp = int(threadIdx.x) / kWarp, g = int(threadIdx.x % kWarp) / 4,
            t = int(threadIdx.x % 4);
  const int64_t nkt = (p.Sk + kOwn - 1) / kOwn;
  const int64_t bhk = int64_t(blockIdx.x) / nkt;
  const int64_t j0 = (int64_t(blockIdx.x) - bhk * nkt) * kOwn;
  const int64_t b = bhk / p.Hkv, hk = bhk % p.Hkv;
  const int nk = int(minI64(kOwn, p.Sk - j0));
  const int64_t w0 = j0 + warp * kWarpRows; // the warp's first key
  const int64_t keys[2] = {w0 + g, w0 + g + 8};
  const bool warpKeys = w0 < p.Sk;
  const bool wantDk = dk != nullptr, wantDv = dv != nullptr;

  loadTile<T, DP, kOwn>(Ks, nullptr, k + b * p.k.b + hk * p.k.h, p.k.s, j0, nk,
                        p.D);
  loadTile<T, DP, kOwn>(Vs, nullptr, v + b * p.v.b + hk * p.v.h, p.v.s, j0, nk,
                        p.Dv);

  float dkAcc[ND][4], dvAcc[ND][4];
  zero(dkAcc);
  zero(dvAcc);
  // Causal: query rows before j0 see none of these keys (BQ divides 64).
  const int64_t iStart = p.causal ? j0 : 0;
  for (int64_t gi = 0; gi < p.G; ++gi) {
    const int64_t h = hk * p.G + gi;
    const T *qh = q + b * p.q.b + h * p.q.h;
    const T *oh = dout + b * p.o.b + h * p.o.h;
    const float *lseH = lse + (b * p.H + h) * p.Sq;
    const float *DrH = Dr + (b * p.H + h) * p.Sq;
    for (int64_t i0 = iStart; i0 < p.Sq; i0 += BQ) {
      const int nq = int(minI64(BQ, p.Sq - i0));
      __syncthreads(); // the previous tile is no longer read
      loadTile<T, DP, BQ>(Qs, Qt, qh, p.q.s, i0, nq, p.D);
      loadTile<T, DP, BQ>(dOs, dOt, oh, p.o.s, i0, nq, p.Dv);
      loadRowStats<BQ>(lseS, DrS, lseH, DrH, i0, nq);
      __syncthreads();
      if (!warpKeys || seesNone(p, i0, BQ, w0))
        continue; // no query of the tile sees a key of the warp

      // P^T[key][query] = exp(scale K Q^T + mask - lse).
      float pt[NQ][4];
      zero(pt);
      mmaTiles<KD, NQ, P, P>(pt, Ks, warp * kWarpRows, Qs);
      maskScores(pt, p, b, h, keys, i0, true,
                 plainBlock(p, i0, BQ, w0, kWarpRows));
#pragma unroll
      for (int n = 0; n < NQ; ++n)
#pragma unroll
        for (int i = 0; i < 4; ++i)
          pt[n][i] = fastProbability(pt[n][i], lseS[8 * n + 2 * t + (i & 1)]);

      if (wantDv) // dV += P^T dO
        mmaScores<KQ, ND, NQ, PT>(dvAcc, pt, dOt);
      if (wantDk) { // dS^T = P^T (V dO^T - Dr); dK += dS^T Q (scaled last)
        float ds[NQ][4];
        zero(ds);
        mmaTiles<KD, NQ, P, P>(ds, Vs, warp * kWarpRows, dOs);
#pragma unroll
        for (int n = 0; n < NQ; ++n)
#pragma unroll
          for (int i = 0; i < 4; ++i)
            ds[n][i] = pt[n][i] * (ds[n][i] - DrS[8 * n + 2 * t + (i & 1)]);
        mmaScores<KQ, ND, NQ, PT>(dkAcc, ds, Qt);
      }
    }
  }

#pragma unroll
  for (int x = 0; x < 2; ++x) {
    const int64_t j = keys[x];
    if (j >= p.Sk)
      continue;
#pragma unroll
    for (int n = 0; n < ND; ++n)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int d = 8 * n + 2 * t + e;
        if (wantDk && d < p.D)
          dk[b * p.k.b + hk * p.k.h + j * p.k.s + d] =
              fromFloat<T>(dkAcc[n][2 * x + e] * p.scale);
        if (wantDv && d < p.Dv)
          dv[b * p.v.b + hk * p.v.h + j * p.v.s + d] =
              fromFloat<T>(dvAcc[n][2 * x + e]);
      }
  }
}

/// dQ of one tile of 64 query rows, written once after the key tiles.
template <class T, int DP>
__global__ void __launch_bounds__(kMmaThreads)
    mmaBackwardQKernel(const Problem p, const T *q, const T *k, const T *v,
                       const T *dout, const float *lse, const float *Dr,
                       T *dq) {
  constexpr int BK = backwardStream<DP>(), P = pitch(DP), PT = pitch(BK);
  constexpr int KD = DP / 16, ND = DP / 8, NK = BK / 8, KK = BK / 16;
  WP_DYNAMIC_SHARED(float4, smemRaw);
  bf16 *Qs = reinterpret_cast<bf16 *>(smemRaw); // [64][P]
  bf16 *dOs = Qs + kOwn * P;                    // [64][P]
  bf16 *Ks = dOs + kOwn * P;                    // [BK][P]
  bf16 *Vs = Ks + BK * P;                       // [BK][P]
  bf16 *Kt = Vs + BK * P;                       // [DP][PT]

  const int warp = int(threadIdx.x) / kWarp, g = int(threadIdx.x % kWarp) / 4,
            t = int(threadIdx.x % 4);
  const QueryTile qt = queryTile(p);
  const int64_t b = qt.b, h = qt.h, hk = qt.hk, i0 = qt.i0, kEnd = qt.kEnd;
  const int64_t w0 = i0 + warp * kWarpRows;
  const int64_t rows[2] = {w0 + g, w0 + g + 8};
  const bool warpRows = w0 < p.Sq;

  const T *kh = k + b * p.k.b + hk * p.k.h;
  const T *vh = v + b * p.v.b + hk * p.v.h;
  loadTile<T, DP, kOwn>(Qs, nullptr, q + b * p.q.b + h * p.q.h, p.q.s, i0,
                        qt.rows, p.D);
  loadTile<T, DP, kOwn>(dOs, nullptr, dout + b * p.o.b + h * p.o.h, p.o.s, i0,
                        qt.rows, p.Dv);
  float L[2], R[2], dqAcc[ND][4];
#pragma unroll
  for (int x = 0; x < 2; ++x) {
    const bool in = rows[x] < p.Sq;
    L[x] = in ? lse[(b * p.H + h) * p.Sq + rows[x]] : -INFINITY;
    R[x] = in ? Dr[(b * p.H + h) * p.Sq + rows[x]] : 0.0f;
  }
  zero(dqAcc);

  for (int64_t j0 = 0; j0 < kEnd; j0 += BK) {
    const int nk = int(minI64(BK, p.Sk - j0));
    __syncthreads(); // the previous tile's K and V are no longer read
    loadTile<T, DP, BK>(Ks, Kt, kh, p.k.s, j0, nk, p.D);
    loadTile<T, DP, BK>(Vs, nullptr, vh, p.v.s, j0, nk, p.Dv);
    __syncthreads();
    if (!warpRows || seesNone(p, w0, kWarpRows, j0))
      continue;

    float s[NK][4], dp[NK][4];
    zero(s);
    zero(dp);
    mmaTiles<KD, NK, P, P>(s, Qs, warp * kWarpRows, Ks);
    mmaTiles<KD, NK, P, P>(dp, dOs, warp * kWarpRows, Vs);
    maskScores(s, p, b, h, rows, j0, false,
               plainBlock(p, w0, kWarpRows, j0, BK));
#pragma unroll
    for (int n = 0; n < NK; ++n)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int x = i >> 1;
        s[n][i] = fastProbability(s[n][i], L[x]) * (dp[n][i] - R[x]);
      }
    mmaScores<KK, ND, NK, PT>(dqAcc, s, Kt);
  }

#pragma unroll
  for (int x = 0; x < 2; ++x) {
    if (rows[x] >= p.Sq)
      continue;
    T *row = dq + b * p.q.b + h * p.q.h + rows[x] * p.q.s;
#pragma unroll
    for (int n = 0; n < ND; ++n)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int d = 8 * n + 2 * t + e;
        if (d < p.D)
          row[d] = fromFloat<T>(dqAcc[n][2 * x + e] * p.scale);
      }
  }
}

//===----------------------------------------------------------------------===//
// Launchers
//===----------------------------------------------------------------------===//

/// Shared memory of each kernel, in bytes (the layouts in the kernels).
template <int DP> constexpr size_t forwardSmem(bool out) {
  constexpr int BN = forwardStream<DP>();
  return sizeof(bf16) *
         size_t(kOwn * pitch(DP) + BN * pitch(DP) + (out ? DP * pitch(BN) : 0));
}
template <int DP> constexpr size_t backwardKvSmem() {
  constexpr int BQ = backwardStream<DP>();
  return sizeof(bf16) * size_t(2 * kOwn * pitch(DP) + 2 * BQ * pitch(DP) +
                               2 * DP * pitch(BQ)) +
         sizeof(float) * 2 * BQ;
}
template <int DP> constexpr size_t backwardQSmem() {
  constexpr int BK = backwardStream<DP>();
  return sizeof(bf16) *
         size_t(2 * kOwn * pitch(DP) + 2 * BK * pitch(DP) + DP * pitch(BK));
}
static_assert(backwardKvSmem<128>() <= 100 * 1024 &&
                  backwardQSmem<128>() <= 100 * 1024 &&
                  forwardSmem<128>(true) <= 100 * 1024,
              "two blocks of each kernel must fit an H100 SM");

bool wideHeads(const Problem &p) { return std::max(p.D, p.Dv) > 64; }

template <class T, int DP>
Status forwardFor(const Problem &p, const T *q, const T *k, const T *v, T *out,
                  float *lse, cudaStream_t stream, const char *name) {
  const int64_t blocks = p.B * p.H * ceilDiv(p.Sq, kOwn);
  if (out)
    return launchBlocks(mmaForwardKernel<T, DP, true>, kMmaThreads,
                        forwardSmem<DP>(true), blocks, stream, name, p, q, k, v,
                        out, lse);
  return launchBlocks(mmaForwardKernel<T, DP, false>, kMmaThreads,
                      forwardSmem<DP>(false), blocks, stream, name, p, q, k, v,
                      out, lse);
}

template <class T, int DP>
Status backwardFor(const Problem &p, const T *q, const T *k, const T *v,
                   const T *dout, const float *lse, const float *Dr, T *dq,
                   T *dk, T *dv, cudaStream_t stream) {
  if (dk || dv)
    WP_TRY(launchBlocks(mmaBackwardKvKernel<T, DP>, kMmaThreads,
                        backwardKvSmem<DP>(), p.B * p.Hkv * ceilDiv(p.Sk, kOwn),
                        stream, "attention_backward (dK, dV; tensor cores)", p,
                        q, k, v, dout, lse, Dr, dk, dv));
  if (dq)
    WP_TRY(launchBlocks(mmaBackwardQKernel<T, DP>, kMmaThreads,
                        backwardQSmem<DP>(), p.B * p.H * ceilDiv(p.Sq, kOwn),
                        stream, "attention_backward (dQ; tensor cores)", p, q,
                        k, v, dout, lse, Dr, dq));
  return Status();
}

} // namespace

template <class T>
Status mmaAttentionForward(const Problem &p, const T *q, const T *k, const T *v,
                           T *out, float *lse, cudaStream_t stream,
                           const char *name) {
  if (wideHeads(p))
    return forwardFor<T, 128>(p, q, k, v, out, lse, stream, name);
  return forwardFor<T, 64>(p, q, k, v, out, lse, stream, name);
}

template <class T>
Status mmaAttentionBackward(const Problem &p, const T *q, const T *k,
                            const T *v, const T *dout, const float *lse,
                            const float *Dr, T *dq, T *dk, T *dv,
                            cudaStream_t stream) {
  if (wideHeads(p))
    return backwardFor<T, 128>(p, q, k, v, dout, lse, Dr, dq, dk, dv, stream);
  return backwardFor<T, 64>(p, q, k, v, dout, lse, Dr, dq, dk, dv, stream);
}

template Status mmaAttentionForward<float>(const Problem &, const float *,
                                           const float *, const float *,
                                           float *, float *, cudaStream_t,
                                           const char *);
template Status mmaAttentionForward<bf16>(const Problem &, const bf16 *,
                                          const bf16 *, const bf16 *, bf16 *,
                                          float *, cudaStream_t, const char *);
template Status mmaAttentionBackward<float>(const Problem &, const float *,
                                            const float *, const float *,
                                            const float *, const float *,
                                            const float *, float *, float *,
                                            float *, cudaStream_t);
template Status mmaAttentionBackward<bf16>(const Problem &, const bf16 *,
                                           const bf16 *, const bf16 *,
                                           const bf16 *, const float *,
                                           const float *, bf16 *, bf16 *,
                                           bf16 *, cudaStream_t);

} // namespace weipipe::rt::cuda::detail
