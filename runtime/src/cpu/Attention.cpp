//===- Attention.cpp - nn.attention forward and backward ------------------===//
//
// Part of weipipe's runtime (CPU kernels). FlashAttention-2's algorithm on the
// CPU, in fp32, with cblas_sgemm on blocks of TQ query rows:
//
//   forward, one task per (b, h, query tile): for each block of up to
//     kMaxKeyBlock keys, S = scale Q K^T + mask, online softmax (running max
//     m and sum l, the output rescaled by exp(m_old - m_new)), O += P V; at
//     the end O /= l and lse = m + log l. Causal tiles stop at their last
//     visible key.
//   backward, one task per (b, kv head) when there are enough of them: for
//     each query head of the GQA group and each query tile, over all the
//     visible keys at once: P = exp(S - lse) (or softmax(S) when no lse is
//     given), Dr = rowsum(dO * O), dS = P (dO V^T - Dr), dV += P^T dO,
//     dK += scale dS^T Q, dQ = scale dS K. Beyond kMaxFusedKeys keys the
//     same in blocks of kMaxKeyBlock keys, after a sweep that computes the
//     tile's lse when none is given (so memory stays flat in the length).
//     With few kv heads, two passes that recompute P block by block:
//     dK/dV, one task per (b, kv head, key block), and dQ, one task per
//     (b, h, query tile).
//
// Every output row/block belongs to exactly one task and is accumulated in a
// fixed order, so results do not depend on the thread count or the schedule;
// the GQA sum into a shared kv head runs over query heads in order (no
// atomics). Which algorithm runs depends only on the sizes. Tasks run in one
// OpenMP region; OpenBLAS computes each block GEMM on the calling thread. The
// exponentials run on the lane code of Vec.h.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"
#include "Vec.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace weipipe::rt::cpu {
using namespace detail;

namespace {

/// Query rows per tile. Every tile streams (and OpenBLAS packs) the key and
/// value blocks it sees, so the rows per tile set how often K and V are
/// read: at 16K keys a head's K and V (8 MiB) no longer stay in the L3 next
/// to another thread's, and 64-row tiles ran 0.90x PyTorch's SDPA where 256
/// run 1.04x (bench/attention-cpu, one thread).
constexpr int64_t TQ = 256;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
/// Keys per block: with TQ rows, the S/P and dS buffers (TQ x this each) and
/// a key and a value block stay within a core's 1 MiB L2.
constexpr int64_t kMaxKeyBlock = 512;
/// Longest key range the one-pass backward holds per query tile at once (two
/// TQ x Sk buffers per thread); longer ones go in blocks of kMaxKeyBlock
/// keys, whose buffers stay in cache (faster from 2K keys on: the
/// long-context rows of bench/train-cpu).
constexpr int64_t kMaxFusedKeys = kMaxKeyBlock;
/// The one-pass backward parallelizes over (b, kv head) only: it needs this
/// many of them when the problem is big enough to run threaded.
constexpr int64_t kMinFusedTasks = 4;

/// Keys per block: the largest of 16..64 keeping every block GEMM
/// (TQ x TK x D, TQ x Dv x TK, ...) under kSmallGemm.
int64_t keyBlock(const AttentionParams &p) {
  const int64_t d = std::max(p.D, p.Dv);
  int64_t tk = kSmallGemm / (TQ * d);
  tk = std::max<int64_t>(16, std::min<int64_t>(64, tk));
  return std::max<int64_t>(1, std::min(tk, p.Sk));
}

struct View {
  int64_t base, stride; // element offset of row 0 and distance between rows
};

View headView(AttentionLayout l, int64_t b, int64_t h, int64_t heads, int64_t S,
              int64_t dim) {
  if (l == AttentionLayout::BHSD)
    return {(b * heads + h) * S * dim, dim};
  return {(b * S * heads + h) * dim, heads * dim};
}

struct MaskStrides {
  int64_t b = 0, h = 0, q = 0, k = 0;
};

MaskStrides maskStrides(const AttentionParams &p) {
  MaskStrides m;
  if (p.mask.kind == MaskKind::None)
    return m;
  WP_CHECK(p.mask.shape.rank <= 4, "attention mask rank must be <= 4");
  WP_CHECK(p.mask.kind == MaskKind::Additive ? p.mask.additive != nullptr
                                             : p.mask.keep != nullptr,
           "attention mask data missing");
  int64_t st[kMaxRank];
  broadcastStrides(p.mask.shape, Shape{p.B, p.H, p.Sq, p.Sk}, st);
  m.b = st[0];
  m.h = st[1];
  m.q = st[2];
  m.k = st[3];
  return m;
}

void checkParams(const AttentionParams &p) {
  WP_CHECK(p.B >= 0 && p.H > 0 && p.Hkv > 0 && p.Sq >= 0 && p.Sk >= 0 &&
               p.D > 0 && p.Dv > 0,
           "bad attention sizes");
  WP_CHECK(p.H % p.Hkv == 0, "num_heads must be a multiple of num_kv_heads");
}

/// Number of keys the query rows [i0, i0 + rows) may see.
int64_t keysForTile(const AttentionParams &p, int64_t i0, int64_t rows) {
  return p.causal ? std::min(p.Sk, i0 + rows) : p.Sk;
}

/// Query tile `t` of the B * H * nqt tiles (forward and dQ tasks): its batch,
/// query head, key/value head, first row and row count, the keys it sees,
/// and the four head views.
struct QueryTile {
  int64_t b, h, hk, i0, rows, kEnd;
  View q, k, v, o;
  QueryTile(const AttentionParams &p, int64_t t, int64_t nqt) {
    b = t / (p.H * nqt);
    h = (t / nqt) % p.H;
    hk = h / (p.H / p.Hkv);
    i0 = (t % nqt) * TQ;
    rows = std::min(TQ, p.Sq - i0);
    kEnd = keysForTile(p, i0, rows);
    q = headView(p.layout, b, h, p.H, p.Sq, p.D);
    k = headView(p.layout, b, hk, p.Hkv, p.Sk, p.D);
    v = headView(p.layout, b, hk, p.Hkv, p.Sk, p.Dv);
    o = headView(p.layout, b, h, p.H, p.Sq, p.Dv);
  }
};

/// Adds the mask to the scaled scores s[0, n) of query row i against keys
/// [j0, j0 + n); masked entries (causal j > i, keep-mask false) become -inf.
void maskBlock(const AttentionParams &p, const MaskStrides &ms, int64_t b,
               int64_t h, int64_t i, int64_t j0, float *s, int64_t n) {
  const int64_t allowed =
      p.causal ? std::max<int64_t>(0, std::min(n, i - j0 + 1)) : n;
  for (int64_t j = allowed; j < n; ++j)
    s[j] = kNegInf;
  const int64_t mbase = b * ms.b + h * ms.h + i * ms.q + j0 * ms.k;
  if (p.mask.kind == MaskKind::Additive) {
    const float *m = p.mask.additive + mbase;
    for (int64_t j = 0; j < allowed; ++j)
      s[j] += m[j * ms.k];
  } else if (p.mask.kind == MaskKind::Keep) {
    const uint8_t *m = p.mask.keep + mbase;
    for (int64_t j = 0; j < allowed; ++j)
      if (!m[j * ms.k])
        s[j] = kNegInf;
  }
}

void zeroRows(float *x, int64_t rows, int64_t stride, int64_t n) {
  for (int64_t r = 0; r < rows; ++r)
    std::memset(x + r * stride, 0, size_t(n) * sizeof(float));
}

/// Block probabilities P = exp(S - lse) for rows [i0, i0 + rows) against keys
/// [j0, j0 + n), from the already computed scaled scores in P; row r's lse is
/// lseHead[i0 + r], its query position i0 + r + rowBase.
void recomputeP(const AttentionParams &p, const MaskStrides &ms, int64_t b,
                int64_t h, int64_t i0, int64_t rows, int64_t j0, int64_t n,
                const float *lseHead, float *P, int64_t rowBase = 0) {
  for (int64_t r = 0; r < rows; ++r) {
    float *s = P + r * n;
    maskBlock(p, ms, b, h, rowBase + i0 + r, j0, s, n);
    const float l = lseHead[i0 + r];
    if (l == kNegInf)
      std::memset(s, 0, size_t(n) * sizeof(float));
    else
      exp_shifted(s, n, l);
  }
}

/// dr[r] = sum_d o[r][d] * g[r][d] over `rows` rows of `dim` (Dr =
/// rowsum(dO * O)), accumulated in double.
void rowDot(const float *o, const float *g, int64_t stride, int64_t rows,
            int64_t dim, float *dr) {
  for (int64_t r = 0; r < rows; ++r) {
    double acc = 0.0;
    for (int64_t d = 0; d < dim; ++d)
      acc += double(o[r * stride + d]) * g[r * stride + d];
    dr[r] = float(acc);
  }
}

/// dS = P (dP - Dr) in place in dP.
void softmaxGrad(const float *P, float *dP, const float *dr, int64_t rows,
                 int64_t n) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j)
      dP[r * n + j] = P[r * n + j] * (dP[r * n + j] - dr[r]);
}

int64_t work(const AttentionParams &p) {
  return p.B * p.H * p.Sq * std::max<int64_t>(p.Sk, 1) * p.D;
}

/// One block of a row's online softmax: the masked scores s[0, n) become
/// exp(s - m_new) (0 while nothing is visible), the running max m and sum l
/// advance. Returns the factor exp(m_old - m_new) that earlier terms scale by.
float onlineSoftmaxBlock(float *s, int64_t n, float &m, float &l) {
  const float mn = std::max(m, row_max(s, n));
  if (mn == kNegInf) { // nothing visible yet
    std::memset(s, 0, size_t(n) * sizeof(float));
    return 1.0f;
  }
  const float alpha = std::exp(m - mn); // 0 when m was -inf
  const float sum = exp_shifted(s, n, mn);
  l = l * alpha + sum;
  m = mn;
  return alpha;
}

/// The online softmax of one query tile (rows [i0, i0 + rows) of head (b, h),
/// query rows qt) over key blocks of TK keys (kh): for each block, S (TQ x TK)
/// gets exp(scale Q K^T + mask - m) and `block(j0, n, alpha)` runs, with
/// alpha[r] the factor earlier blocks' terms of row r scale by. Leaves each
/// row's max in m and sum in l (0 where no key is visible).
template <typename BlockFn>
void onlineSoftmaxTile(const AttentionParams &p, const MaskStrides &ms,
                       int64_t b, int64_t h, int64_t i0, int64_t rows,
                       int64_t kEnd, int64_t TK, const float *qt,
                       const View &qv, const float *kh, const View &kv,
                       float *S, float *m, float *l, BlockFn block) {
  float alpha[TQ];
  for (int64_t r = 0; r < rows; ++r) {
    m[r] = kNegInf;
    l[r] = 0.0f;
  }
  for (int64_t j0 = 0; j0 < kEnd; j0 += TK) {
    const int64_t n = std::min(TK, kEnd - j0);
    gemmInTask(false, true, rows, n, p.D, p.scale, qt, qv.stride,
         kh + j0 * kv.stride, kv.stride, 0.0f, S, n);
    for (int64_t r = 0; r < rows; ++r) {
      float *s = S + r * n;
      maskBlock(p, ms, b, h, i0 + r, j0, s, n);
      alpha[r] = onlineSoftmaxBlock(s, n, m[r], l[r]);
    }
    block(j0, n, alpha);
  }
}

/// A row's log-sum-exp from its online-softmax max and sum.
float lseOf(float m, float l) {
  return l == 0.0f ? kNegInf : m + std::log(l);
}

} // namespace

void attention_forward(const AttentionParams &p, const float *q, const float *k,
                       const float *v, float *out, float *lse) {
  checkParams(p);
  const MaskStrides ms = maskStrides(p);
  const int64_t TK = std::max<int64_t>(1, std::min(p.Sk, kMaxKeyBlock));
  const int64_t nqt = (p.Sq + TQ - 1) / TQ;
  const int64_t tasks = p.B * p.H * nqt;
#pragma omp parallel if (tasks > 1 && work(p) >= kParallelMinMacs)
  {
    std::vector<float> S(size_t(TQ * TK));
    float m[TQ], l[TQ];
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const QueryTile tile(p, t, nqt);
      const int64_t b = tile.b, h = tile.h, i0 = tile.i0, rows = tile.rows;
      const int64_t kEnd = tile.kEnd;
      const View &qv = tile.q, &kv = tile.k, &vv = tile.v, &ov = tile.o;
      const float *qt = q + qv.base + i0 * qv.stride;
      float *o = out + ov.base + i0 * ov.stride;
      zeroRows(o, rows, ov.stride, p.Dv);
      // O = sum over key blocks of P V, rescaled as the row maxima grow.
      onlineSoftmaxTile(
          p, ms, b, h, i0, rows, kEnd, TK, qt, qv, k + kv.base, kv, S.data(), m,
          l, [&](int64_t j0, int64_t n, const float *alpha) {
            for (int64_t r = 0; r < rows; ++r)
              if (alpha[r] != 1.0f) {
                float *orow = o + r * ov.stride;
                for (int64_t d = 0; d < p.Dv; ++d)
                  orow[d] *= alpha[r];
              }
            gemmInTask(false, false, rows, p.Dv, n, 1.0f, S.data(), n,
                 v + vv.base + j0 * vv.stride, vv.stride, 1.0f, o, ov.stride);
          });
      float *lseRow = lse ? lse + (b * p.H + h) * p.Sq + i0 : nullptr;
      for (int64_t r = 0; r < rows; ++r) {
        float *orow = o + r * ov.stride;
        if (l[r] == 0.0f) { // no visible key: output 0, lse -inf
          std::memset(orow, 0, size_t(p.Dv) * sizeof(float));
          if (lseRow)
            lseRow[r] = kNegInf;
          continue;
        }
        const float inv = 1.0f / l[r];
        for (int64_t d = 0; d < p.Dv; ++d)
          orow[d] *= inv;
        if (lseRow)
          lseRow[r] = lseOf(m[r], l[r]);
      }
    }
  }
}

namespace {

/// The two-pass backward (see the file comment); lse is given.
void twoPassBackward(const AttentionParams &p, const MaskStrides &ms,
                     bool parallel, const float *q, const float *k,
                     const float *v, const float *out, const float *lse,
                     const float *dout, float *dq, float *dk, float *dv) {
  const int64_t G = p.H / p.Hkv, TK = keyBlock(p);

  // Dr[b, h, i] = sum_d dO * O, accumulated in double.
  const int64_t allRows = p.B * p.H * p.Sq;
  std::vector<float> Dr(static_cast<size_t>(allRows));
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t row = 0; row < allRows; ++row) {
    const int64_t b = row / (p.H * p.Sq), h = (row / p.Sq) % p.H,
                  i = row % p.Sq;
    const View ov = headView(p.layout, b, h, p.H, p.Sq, p.Dv);
    rowDot(out + ov.base + i * ov.stride, dout + ov.base + i * ov.stride,
           ov.stride, 1, p.Dv, &Dr[size_t(row)]);
  }

  // dK, dV: one task per (b, kv head, key block).
  const int64_t nkt = (p.Sk + TK - 1) / TK;
  const int64_t kvTasks = (dk || dv) ? p.B * p.Hkv * nkt : 0;
#pragma omp parallel if (parallel && kvTasks > 1)
  {
    std::vector<float> P(size_t(TQ * TK)), dP(size_t(TQ * TK));
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < kvTasks; ++t) {
      const int64_t b = t / (p.Hkv * nkt), hk = (t / nkt) % p.Hkv;
      const int64_t j0 = (t % nkt) * TK, n = std::min(TK, p.Sk - j0);
      const View kv = headView(p.layout, b, hk, p.Hkv, p.Sk, p.D);
      const View vv = headView(p.layout, b, hk, p.Hkv, p.Sk, p.Dv);
      const float *kb = k + kv.base + j0 * kv.stride;
      const float *vb = v + vv.base + j0 * vv.stride;
      float *dkb = dk ? dk + kv.base + j0 * kv.stride : nullptr;
      float *dvb = dv ? dv + vv.base + j0 * vv.stride : nullptr;
      if (dkb)
        zeroRows(dkb, n, kv.stride, p.D);
      if (dvb)
        zeroRows(dvb, n, vv.stride, p.Dv);
      for (int64_t g = 0; g < G; ++g) {
        const int64_t h = hk * G + g;
        const View qv = headView(p.layout, b, h, p.H, p.Sq, p.D);
        const View ov = headView(p.layout, b, h, p.H, p.Sq, p.Dv);
        const float *lseHead = lse + (b * p.H + h) * p.Sq;
        const float *drHead = Dr.data() + (b * p.H + h) * p.Sq;
        // Under the causal mask, rows before j0 see none of these keys.
        const int64_t iStart = p.causal ? (j0 / TQ) * TQ : 0;
        for (int64_t i0 = iStart; i0 < p.Sq; i0 += TQ) {
          const int64_t rows = std::min(TQ, p.Sq - i0);
          const float *qt = q + qv.base + i0 * qv.stride;
          const float *got = dout + ov.base + i0 * ov.stride;
          gemmInTask(false, true, rows, n, p.D, p.scale, qt, qv.stride, kb, kv.stride,
               0.0f, P.data(), n);
          recomputeP(p, ms, b, h, i0, rows, j0, n, lseHead, P.data());
          if (dvb) // dV += P^T dO
            gemmInTask(true, false, n, p.Dv, rows, 1.0f, P.data(), n, got, ov.stride,
                 1.0f, dvb, vv.stride);
          if (dkb) { // dK += scale dS^T Q, dS = P (dO V^T - Dr)
            gemmInTask(false, true, rows, n, p.Dv, 1.0f, got, ov.stride, vb,
                 vv.stride, 0.0f, dP.data(), n);
            softmaxGrad(P.data(), dP.data(), drHead + i0, rows, n);
            gemmInTask(true, false, n, p.D, rows, p.scale, dP.data(), n, qt,
                 qv.stride, 1.0f, dkb, kv.stride);
          }
        }
      }
    }
  }

  // dQ: one task per (b, h, query tile).
  const int64_t nqt = (p.Sq + TQ - 1) / TQ;
  const int64_t qTasks = dq ? p.B * p.H * nqt : 0;
#pragma omp parallel if (parallel && qTasks > 1)
  {
    std::vector<float> P(size_t(TQ * TK)), dP(size_t(TQ * TK));
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < qTasks; ++t) {
      const QueryTile tile(p, t, nqt);
      const int64_t b = tile.b, h = tile.h, i0 = tile.i0, rows = tile.rows;
      const int64_t kEnd = tile.kEnd;
      const View &qv = tile.q, &kv = tile.k, &vv = tile.v, &ov = tile.o;
      const float *lseHead = lse + (b * p.H + h) * p.Sq;
      const float *drHead = Dr.data() + (b * p.H + h) * p.Sq;
      const float *qt = q + qv.base + i0 * qv.stride;
      const float *got = dout + ov.base + i0 * ov.stride;
      float *dqt = dq + qv.base + i0 * qv.stride;
      zeroRows(dqt, rows, qv.stride, p.D);
      for (int64_t j0 = 0; j0 < kEnd; j0 += TK) {
        const int64_t n = std::min(TK, kEnd - j0);
        const float *kb = k + kv.base + j0 * kv.stride;
        gemmInTask(false, true, rows, n, p.D, p.scale, qt, qv.stride, kb, kv.stride,
             0.0f, P.data(), n);
        recomputeP(p, ms, b, h, i0, rows, j0, n, lseHead, P.data());
        gemmInTask(false, true, rows, n, p.Dv, 1.0f, got, ov.stride,
             v + vv.base + j0 * vv.stride, vv.stride, 0.0f, dP.data(), n);
        softmaxGrad(P.data(), dP.data(), drHead + i0, rows, n);
        gemmInTask(false, false, rows, p.D, n, p.scale, dP.data(), n, kb, kv.stride,
             1.0f, dqt, qv.stride);
      }
    }
  }
}

/// The one-pass backward (see the file comment): one task per (b, kv head)
/// owns dK, dV of that head and dQ of its query heads. lse may be nullptr.
/// Up to kMaxFusedKeys keys a query tile sees all its keys at once (without
/// lse its softmax is normalized by the row's own sum); longer rows go in
/// blocks of kMaxKeyBlock keys with the tile's lse (recomputed first when not
/// given), so the buffers stay TQ x kMaxKeyBlock at any length.
void fusedBackward(const AttentionParams &p, const MaskStrides &ms,
                   bool parallel, const float *q, const float *k,
                   const float *v, const float *out, const float *lse,
                   const float *dout, float *dq, float *dk, float *dv) {
  const int64_t G = p.H / p.Hkv;
  const int64_t tasks = p.B * p.Hkv;
  const bool blocked = p.Sk > kMaxFusedKeys;
  const int64_t KB = blocked ? kMaxKeyBlock : std::max<int64_t>(p.Sk, 1);
#pragma omp parallel if (parallel && tasks > 1)
  {
    // P and dS of one query tile against one block of its visible keys.
    std::vector<float> P(size_t(TQ * KB)), dP(P.size());
    float dr[TQ], lt[TQ];
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t b = t / p.Hkv, hk = t % p.Hkv;
      const View kv = headView(p.layout, b, hk, p.Hkv, p.Sk, p.D);
      const View vv = headView(p.layout, b, hk, p.Hkv, p.Sk, p.Dv);
      const float *kh = k + kv.base, *vh = v + vv.base;
      float *dkh = dk ? dk + kv.base : nullptr;
      float *dvh = dv ? dv + vv.base : nullptr;
      if (dkh)
        zeroRows(dkh, p.Sk, kv.stride, p.D);
      if (dvh)
        zeroRows(dvh, p.Sk, vv.stride, p.Dv);
      for (int64_t g = 0; g < G; ++g) {
        const int64_t h = hk * G + g;
        const View qv = headView(p.layout, b, h, p.H, p.Sq, p.D);
        const View ov = headView(p.layout, b, h, p.H, p.Sq, p.Dv);
        for (int64_t i0 = 0; i0 < p.Sq; i0 += TQ) {
          const int64_t rows = std::min(TQ, p.Sq - i0);
          const int64_t n = keysForTile(p, i0, rows);
          const float *qt = q + qv.base + i0 * qv.stride;
          const float *got = dout + ov.base + i0 * ov.stride;
          float *dqt = dq ? dq + qv.base + i0 * qv.stride : nullptr;
          if (n == 0) {
            if (dqt)
              zeroRows(dqt, rows, qv.stride, p.D);
            continue;
          }
          if (blocked) {
            const float *lseRows = lse ? lse + (b * p.H + h) * p.Sq + i0 : lt;
            if (!lse) {
              float m[TQ], l[TQ];
              onlineSoftmaxTile(p, ms, b, h, i0, rows, n, KB, qt, qv, kh, kv,
                                P.data(), m, l, [](int64_t, int64_t, float *) {});
              for (int64_t r = 0; r < rows; ++r)
                lt[r] = lseOf(m[r], l[r]);
            }
            rowDot(out + ov.base + i0 * ov.stride, got, ov.stride, rows, p.Dv,
                   dr);
            if (dqt)
              zeroRows(dqt, rows, qv.stride, p.D);
            for (int64_t j0 = 0; j0 < n; j0 += KB) {
              const int64_t nb = std::min(KB, n - j0);
              gemmInTask(false, true, rows, nb, p.D, p.scale, qt, qv.stride,
                   kh + j0 * kv.stride, kv.stride, 0.0f, P.data(), nb);
              recomputeP(p, ms, b, h, 0, rows, j0, nb, lseRows, P.data(), i0);
              gemmInTask(false, true, rows, nb, p.Dv, 1.0f, got, ov.stride,
                   vh + j0 * vv.stride, vv.stride, 0.0f, dP.data(), nb);
              softmaxGrad(P.data(), dP.data(), dr, rows, nb);
              if (dvh) // dV += P^T dO
                gemmInTask(true, false, nb, p.Dv, rows, 1.0f, P.data(), nb, got,
                     ov.stride, 1.0f, dvh + j0 * vv.stride, vv.stride);
              if (dkh) // dK += scale dS^T Q
                gemmInTask(true, false, nb, p.D, rows, p.scale, dP.data(), nb, qt,
                     qv.stride, 1.0f, dkh + j0 * kv.stride, kv.stride);
              if (dqt) // dQ += scale dS K
                gemmInTask(false, false, rows, p.D, nb, p.scale, dP.data(), nb,
                     kh + j0 * kv.stride, kv.stride, 1.0f, dqt, qv.stride);
            }
            continue;
          }
          gemmInTask(false, true, rows, n, p.D, p.scale, qt, qv.stride, kh, kv.stride,
               0.0f, P.data(), n);
          for (int64_t r = 0; r < rows; ++r) {
            float *s = P.data() + r * n;
            maskBlock(p, ms, b, h, i0 + r, 0, s, n);
            const float l =
                lse ? lse[(b * p.H + h) * p.Sq + i0 + r] : row_max(s, n);
            if (l == kNegInf) { // no visible key
              std::memset(s, 0, size_t(n) * sizeof(float));
            } else if (lse) {
              exp_shifted(s, n, l);
            } else { // softmax of the row: e^(s - max) / sum
              const float inv = 1.0f / exp_shifted(s, n, l);
              for (int64_t j = 0; j < n; ++j)
                s[j] *= inv;
            }
          }
          rowDot(out + ov.base + i0 * ov.stride, got, ov.stride, rows, p.Dv,
                 dr);
          gemmInTask(false, true, rows, n, p.Dv, 1.0f, got, ov.stride, vh, vv.stride,
               0.0f, dP.data(), n);
          softmaxGrad(P.data(), dP.data(), dr, rows, n);
          if (dvh) // dV += P^T dO
            gemmInTask(true, false, n, p.Dv, rows, 1.0f, P.data(), n, got, ov.stride,
                 1.0f, dvh, vv.stride);
          if (dkh) // dK += scale dS^T Q
            gemmInTask(true, false, n, p.D, rows, p.scale, dP.data(), n, qt,
                 qv.stride, 1.0f, dkh, kv.stride);
          if (dqt) // dQ = scale dS K
            gemmInTask(false, false, rows, p.D, n, p.scale, dP.data(), n, kh,
                 kv.stride, 0.0f, dqt, qv.stride);
        }
      }
    }
  }
}

} // namespace

void attention_backward(const AttentionParams &p, const float *q,
                        const float *k, const float *v, const float *out,
                        const float *lse, const float *dout, float *dq,
                        float *dk, float *dv) {
  checkParams(p);
  const MaskStrides ms = maskStrides(p);
  const bool parallel = work(p) >= kParallelMinMacs;
  // Sizes alone choose, so the result does not depend on the thread count.
  if (!parallel || p.B * p.Hkv >= kMinFusedTasks)
    return fusedBackward(p, ms, parallel, q, k, v, out, lse, dout, dq, dk, dv);
  std::vector<float> lseTmp;
  if (!lse) { // recomputed by a forward pass
    lseTmp.resize(size_t(p.B * p.H * p.Sq));
    std::vector<float> o(size_t(p.B * p.H * p.Sq * p.Dv));
    attention_forward(p, q, k, v, o.data(), lseTmp.data());
    lse = lseTmp.data();
  }
  twoPassBackward(p, ms, parallel, q, k, v, out, lse, dout, dq, dk, dv);
}

} // namespace weipipe::rt::cpu
