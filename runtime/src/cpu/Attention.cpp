//===- Attention.cpp - nn.attention forward and backward ------------------===//
//
// Part of weipipe's runtime (CPU kernels). Exact softmax attention, tiled over
// query rows so that scratch is TQ x Sk per call, never Sq x Sk:
//
//   forward, per (b, h, query tile): S = scale Q K^T (sgemm, causal tiles stop
//   at the last key any of their rows may see), mask, row softmax with
//   lse = max + log(sum), O = P V (sgemm).
//   backward (FlashAttention-2's math): Dr = rowsum(dO * O); per (b, h, tile):
//   recompute P = exp(S - lse), dV += P^T dO, dP = dO V^T,
//   dS = P (dP - Dr), dQ = scale dS K, dK += scale dS^T Q.
//
// Heads and tiles run in order and only the row loops are OpenMP-parallel, so
// the GQA sums into dK/dV have a fixed order (query heads of the group, then
// tiles) and no GEMM is ever issued from inside an OpenMP region.
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

/// Number of keys a tile of rows [i0, i0 + rows) may see.
int64_t keysForTile(const AttentionParams &p, int64_t i0, int64_t rows) {
  return p.causal ? std::min(p.Sk, i0 + rows) : p.Sk;
}

/// s[j] for j < kEnd: the scaled score plus mask; -inf where masked (causal
/// j > i, keep-mask false). Returns the number of leading keys not cut off by
/// causality.
int64_t applyMask(const AttentionParams &p, const MaskStrides &ms, int64_t b,
                  int64_t h, int64_t i, float *s, int64_t kEnd) {
  const int64_t jmax = p.causal ? std::min(kEnd, i + 1) : kEnd;
  for (int64_t j = jmax; j < kEnd; ++j)
    s[j] = kNegInf;
  const int64_t mbase = b * ms.b + h * ms.h + i * ms.q;
  if (p.mask.kind == MaskKind::Additive) {
    const float *m = p.mask.additive + mbase;
    for (int64_t j = 0; j < jmax; ++j)
      s[j] += m[j * ms.k];
  } else if (p.mask.kind == MaskKind::Keep) {
    const uint8_t *m = p.mask.keep + mbase;
    for (int64_t j = 0; j < jmax; ++j)
      if (!m[j * ms.k])
        s[j] = kNegInf;
  }
  return jmax;
}

} // namespace

void attention_forward(const AttentionParams &p, const float *q,
                       const float *k, const float *v, float *out,
                       float *lse) {
  checkParams(p);
  const MaskStrides ms = maskStrides(p);
  const int64_t G = p.H / p.Hkv;
  std::vector<float> S(size_t(std::min(TQ, std::max<int64_t>(p.Sq, 1)) *
                              std::max<int64_t>(p.Sk, 1)));
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t h = 0; h < p.H; ++h) {
      const int64_t hk = h / G;
      const View qv = headView(p.layout, b, h, p.H, p.Sq, p.D);
      const View kv = headView(p.layout, b, hk, p.Hkv, p.Sk, p.D);
      const View vv = headView(p.layout, b, hk, p.Hkv, p.Sk, p.Dv);
      const View ov = headView(p.layout, b, h, p.H, p.Sq, p.Dv);
      float *lseHead = lse ? lse + (b * p.H + h) * p.Sq : nullptr;
      for (int64_t i0 = 0; i0 < p.Sq; i0 += TQ) {
        const int64_t rows = std::min(TQ, p.Sq - i0);
        const int64_t kEnd = keysForTile(p, i0, rows);
        float *o = out + ov.base + i0 * ov.stride;
        if (kEnd == 0) {
          for (int64_t r = 0; r < rows; ++r) {
            std::memset(o + r * ov.stride, 0, size_t(p.Dv) * sizeof(float));
            if (lseHead)
              lseHead[i0 + r] = kNegInf;
          }
          continue;
        }
        gemm(false, true, rows, kEnd, p.D, p.scale, q + qv.base + i0 * qv.stride,
             qv.stride, k + kv.base, kv.stride, 0.0f, S.data(), kEnd);
#pragma omp parallel for schedule(static) if (rows * kEnd >= kParallelMin)
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t i = i0 + r;
          float *s = S.data() + r * kEnd;
          const int64_t jmax = applyMask(p, ms, b, h, i, s, kEnd);
          float mx = kNegInf;
          for (int64_t j = 0; j < jmax; ++j)
            mx = std::max(mx, s[j]);
          if (mx == kNegInf) { // no key allowed: zero output row
            std::memset(s, 0, size_t(kEnd) * sizeof(float));
            if (lseHead)
              lseHead[i] = kNegInf;
            continue;
          }
          float sum = 0.0f;
          for (int64_t j = 0; j < kEnd; ++j) {
            const float e = j < jmax ? std::exp(s[j] - mx) : 0.0f;
            s[j] = e;
            sum += e;
          }
          const float inv = 1.0f / sum;
          for (int64_t j = 0; j < jmax; ++j)
            s[j] *= inv;
          if (lseHead)
            lseHead[i] = mx + std::log(sum);
        }
        gemm(false, false, rows, p.Dv, kEnd, 1.0f, S.data(), kEnd,
             v + vv.base, vv.stride, 0.0f, o, ov.stride);
      }
    }
}

void attention_backward(const AttentionParams &p, const float *q,
                        const float *k, const float *v, const float *out,
                        const float *lse, const float *dout, float *dq,
                        float *dk, float *dv) {
  checkParams(p);
  const MaskStrides ms = maskStrides(p);
  const int64_t G = p.H / p.Hkv;
  // Dr[b, h, i] = sum_d dO * O.
  std::vector<float> Dr(size_t(p.B * p.H * p.Sq));
  const int64_t allRows = p.B * p.H * p.Sq;
#pragma omp parallel for schedule(static) if (allRows * p.Dv >= kParallelMin)
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
  if (dk)
    std::memset(dk, 0, size_t(p.B * p.Hkv * p.Sk * p.D) * sizeof(float));
  if (dv)
    std::memset(dv, 0, size_t(p.B * p.Hkv * p.Sk * p.Dv) * sizeof(float));
  const size_t tile =
      size_t(std::min(TQ, std::max<int64_t>(p.Sq, 1)) * std::max<int64_t>(p.Sk, 1));
  std::vector<float> P(tile), dP(tile);
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t h = 0; h < p.H; ++h) {
      const int64_t hk = h / G;
      const View qv = headView(p.layout, b, h, p.H, p.Sq, p.D);
      const View kv = headView(p.layout, b, hk, p.Hkv, p.Sk, p.D);
      const View vv = headView(p.layout, b, hk, p.Hkv, p.Sk, p.Dv);
      const View ov = headView(p.layout, b, h, p.H, p.Sq, p.Dv);
      const float *lseHead = lse + (b * p.H + h) * p.Sq;
      const float *drHead = Dr.data() + (b * p.H + h) * p.Sq;
      for (int64_t i0 = 0; i0 < p.Sq; i0 += TQ) {
        const int64_t rows = std::min(TQ, p.Sq - i0);
        const int64_t kEnd = keysForTile(p, i0, rows);
        const float *qt = q + qv.base + i0 * qv.stride;
        const float *got = dout + ov.base + i0 * ov.stride;
        float *dqt = dq ? dq + qv.base + i0 * qv.stride : nullptr;
        if (kEnd == 0) {
          if (dqt)
            for (int64_t r = 0; r < rows; ++r)
              std::memset(dqt + r * qv.stride, 0, size_t(p.D) * sizeof(float));
          continue;
        }
        gemm(false, true, rows, kEnd, p.D, p.scale, qt, qv.stride,
             k + kv.base, kv.stride, 0.0f, P.data(), kEnd);
#pragma omp parallel for schedule(static) if (rows * kEnd >= kParallelMin)
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t i = i0 + r;
          float *s = P.data() + r * kEnd;
          const int64_t jmax = applyMask(p, ms, b, h, i, s, kEnd);
          const float l = lseHead[i];
          for (int64_t j = 0; j < kEnd; ++j)
            s[j] = (j < jmax && l != kNegInf) ? std::exp(s[j] - l) : 0.0f;
        }
        if (dv) // dV[:kEnd] += P^T dO
          gemm(true, false, kEnd, p.Dv, rows, 1.0f, P.data(), kEnd, got,
               ov.stride, 1.0f, dv + vv.base, vv.stride);
        if (!dq && !dk)
          continue;
        // dP = dO V^T, then dS = P (dP - Dr) in place.
        gemm(false, true, rows, kEnd, p.Dv, 1.0f, got, ov.stride,
             v + vv.base, vv.stride, 0.0f, dP.data(), kEnd);
#pragma omp parallel for schedule(static) if (rows * kEnd >= kParallelMin)
        for (int64_t r = 0; r < rows; ++r) {
          const float *pr = P.data() + r * kEnd;
          float *d = dP.data() + r * kEnd;
          const float dr = drHead[i0 + r];
          for (int64_t j = 0; j < kEnd; ++j)
            d[j] = pr[j] * (d[j] - dr);
        }
        if (dqt) // dQ = scale dS K
          gemm(false, false, rows, p.D, kEnd, p.scale, dP.data(), kEnd,
               k + kv.base, kv.stride, 0.0f, dqt, qv.stride);
        if (dk) // dK[:kEnd] += scale dS^T Q
          gemm(true, false, kEnd, p.D, rows, p.scale, dP.data(), kEnd, qt,
               qv.stride, 1.0f, dk + kv.base, kv.stride);
      }
    }
}

} // namespace weipipe::rt::cpu
