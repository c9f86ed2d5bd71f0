//===- Attention.cpp - nn.attention forward and backward ------------------===//
//
// Part of weipipe's runtime (CPU kernels). FlashAttention-2's algorithm on the
// CPU, in fp32, with cblas_sgemm on TQ x TK blocks:
//
//   forward, one task per (b, h, query tile): for each key block,
//     S = scale Q K^T + mask, online softmax (running max m and sum l, the
//     output rescaled by exp(m_old - m_new)), O += P V; at the end O /= l and
//     lse = m + log l. Causal tiles stop at their last visible key.
//   backward: Dr = rowsum(dO * O), then two passes that recompute
//     P = exp(S - lse) block by block:
//     dK/dV, one task per (b, kv head, key block): loops over the query heads
//       of its GQA group and the query tiles that can see the block,
//       dV += P^T dO, dS = P (dO V^T - Dr), dK += scale dS^T Q;
//     dQ, one task per (b, h, query tile): loops over key blocks,
//       dQ += scale dS K.
//
// Every output row/block belongs to exactly one task and is accumulated in a
// fixed order, so results do not depend on the thread count or the schedule;
// the GQA sum into a shared kv head runs over query heads in order (no
// atomics). Tasks run in one OpenMP region; each calls gemm() on blocks small
// enough (kSmallGemm) that OpenBLAS computes them on the calling thread.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace weipipe::rt::cpu {
using namespace detail;

namespace {

constexpr int64_t TQ = 64; // query rows per tile
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

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

View headView(AttentionLayout l, int64_t b, int64_t h, int64_t heads,
              int64_t S, int64_t dim) {
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
/// [j0, j0 + n), from the already computed scaled scores in P.
void recomputeP(const AttentionParams &p, const MaskStrides &ms, int64_t b,
                int64_t h, int64_t i0, int64_t rows, int64_t j0, int64_t n,
                const float *lseHead, float *P) {
  for (int64_t r = 0; r < rows; ++r) {
    float *s = P + r * n;
    maskBlock(p, ms, b, h, i0 + r, j0, s, n);
    const float l = lseHead[i0 + r];
    for (int64_t j = 0; j < n; ++j)
      s[j] = (l != kNegInf && s[j] != kNegInf) ? std::exp(s[j] - l) : 0.0f;
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

} // namespace

void attention_forward(const AttentionParams &p, const float *q,
                       const float *k, const float *v, float *out,
                       float *lse) {
  checkParams(p);
  const MaskStrides ms = maskStrides(p);
  const int64_t G = p.H / p.Hkv, TK = keyBlock(p);
  const int64_t nqt = (p.Sq + TQ - 1) / TQ;
  const int64_t tasks = p.B * p.H * nqt;
#pragma omp parallel if (tasks > 1 && work(p) >= kParallelMinMacs)
  {
    std::vector<float> S(size_t(TQ * TK));
    float m[TQ], l[TQ];
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t b = t / (p.H * nqt), h = (t / nqt) % p.H;
      const int64_t i0 = (t % nqt) * TQ, rows = std::min(TQ, p.Sq - i0);
      const int64_t hk = h / G, kEnd = keysForTile(p, i0, rows);
      const View qv = headView(p.layout, b, h, p.H, p.Sq, p.D);
      const View kv = headView(p.layout, b, hk, p.Hkv, p.Sk, p.D);
      const View vv = headView(p.layout, b, hk, p.Hkv, p.Sk, p.Dv);
      const View ov = headView(p.layout, b, h, p.H, p.Sq, p.Dv);
      const float *qt = q + qv.base + i0 * qv.stride;
      float *o = out + ov.base + i0 * ov.stride;
      zeroRows(o, rows, ov.stride, p.Dv);
      for (int64_t r = 0; r < rows; ++r) {
        m[r] = kNegInf;
        l[r] = 0.0f;
      }
      for (int64_t j0 = 0; j0 < kEnd; j0 += TK) {
        const int64_t n = std::min(TK, kEnd - j0);
        gemm(false, true, rows, n, p.D, p.scale, qt, qv.stride,
             k + kv.base + j0 * kv.stride, kv.stride, 0.0f, S.data(), n);
        for (int64_t r = 0; r < rows; ++r) {
          float *s = S.data() + r * n;
          maskBlock(p, ms, b, h, i0 + r, j0, s, n);
          float bm = kNegInf;
          for (int64_t j = 0; j < n; ++j)
            bm = std::max(bm, s[j]);
          const float mn = std::max(m[r], bm);
          if (mn == kNegInf) { // nothing visible yet: P row is 0
            std::memset(s, 0, size_t(n) * sizeof(float));
            continue;
          }
          const float alpha = std::exp(m[r] - mn); // 0 when m was -inf
          float sum = 0.0f;
          for (int64_t j = 0; j < n; ++j) {
            const float e = s[j] == kNegInf ? 0.0f : std::exp(s[j] - mn);
            s[j] = e;
            sum += e;
          }
          l[r] = l[r] * alpha + sum;
          m[r] = mn;
          if (alpha != 1.0f) {
            float *orow = o + r * ov.stride;
            for (int64_t d = 0; d < p.Dv; ++d)
              orow[d] *= alpha;
          }
        }
        gemm(false, false, rows, p.Dv, n, 1.0f, S.data(), n,
             v + vv.base + j0 * vv.stride, vv.stride, 1.0f, o, ov.stride);
      }
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
          lseRow[r] = m[r] + std::log(l[r]);
      }
    }
  }
}

void attention_backward(const AttentionParams &p, const float *q,
                        const float *k, const float *v, const float *out,
                        const float *lse, const float *dout, float *dq,
                        float *dk, float *dv) {
  checkParams(p);
  const MaskStrides ms = maskStrides(p);
  const int64_t G = p.H / p.Hkv, TK = keyBlock(p);
  [[maybe_unused]] const bool parallel = work(p) >= kParallelMinMacs;

  // Dr[b, h, i] = sum_d dO * O, accumulated in double.
  const int64_t allRows = p.B * p.H * p.Sq;
  std::vector<float> Dr(static_cast<size_t>(allRows));
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t row = 0; row < allRows; ++row) {
    const int64_t b = row / (p.H * p.Sq), h = (row / p.Sq) % p.H,
                  i = row % p.Sq;
    const View ov = headView(p.layout, b, h, p.H, p.Sq, p.Dv);
    const float *o = out + ov.base + i * ov.stride;
    const float *g = dout + ov.base + i * ov.stride;
    double s = 0.0;
    for (int64_t d = 0; d < p.Dv; ++d)
      s += double(o[d]) * g[d];
    Dr[size_t(row)] = float(s);
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
          gemm(false, true, rows, n, p.D, p.scale, qt, qv.stride, kb,
               kv.stride, 0.0f, P.data(), n);
          recomputeP(p, ms, b, h, i0, rows, j0, n, lseHead, P.data());
          if (dvb) // dV += P^T dO
            gemm(true, false, n, p.Dv, rows, 1.0f, P.data(), n, got,
                 ov.stride, 1.0f, dvb, vv.stride);
          if (dkb) { // dK += scale dS^T Q, dS = P (dO V^T - Dr)
            gemm(false, true, rows, n, p.Dv, 1.0f, got, ov.stride, vb,
                 vv.stride, 0.0f, dP.data(), n);
            softmaxGrad(P.data(), dP.data(), drHead + i0, rows, n);
            gemm(true, false, n, p.D, rows, p.scale, dP.data(), n, qt,
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
      const int64_t b = t / (p.H * nqt), h = (t / nqt) % p.H;
      const int64_t i0 = (t % nqt) * TQ, rows = std::min(TQ, p.Sq - i0);
      const int64_t hk = h / G, kEnd = keysForTile(p, i0, rows);
      const View qv = headView(p.layout, b, h, p.H, p.Sq, p.D);
      const View kv = headView(p.layout, b, hk, p.Hkv, p.Sk, p.D);
      const View vv = headView(p.layout, b, hk, p.Hkv, p.Sk, p.Dv);
      const View ov = headView(p.layout, b, h, p.H, p.Sq, p.Dv);
      const float *lseHead = lse + (b * p.H + h) * p.Sq;
      const float *drHead = Dr.data() + (b * p.H + h) * p.Sq;
      const float *qt = q + qv.base + i0 * qv.stride;
      const float *got = dout + ov.base + i0 * ov.stride;
      float *dqt = dq + qv.base + i0 * qv.stride;
      zeroRows(dqt, rows, qv.stride, p.D);
      for (int64_t j0 = 0; j0 < kEnd; j0 += TK) {
        const int64_t n = std::min(TK, kEnd - j0);
        const float *kb = k + kv.base + j0 * kv.stride;
        gemm(false, true, rows, n, p.D, p.scale, qt, qv.stride, kb,
             kv.stride, 0.0f, P.data(), n);
        recomputeP(p, ms, b, h, i0, rows, j0, n, lseHead, P.data());
        gemm(false, true, rows, n, p.Dv, 1.0f, got, ov.stride,
             v + vv.base + j0 * vv.stride, vv.stride, 0.0f, dP.data(), n);
        softmaxGrad(P.data(), dP.data(), drHead + i0, rows, n);
        gemm(false, false, rows, p.D, n, p.scale, dP.data(), n, kb,
             kv.stride, 1.0f, dqt, qv.stride);
      }
    }
  }
}

} // namespace weipipe::rt::cpu
