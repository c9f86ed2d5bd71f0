//===- Blas.cpp - GEMMs through cuBLASLt with plans cached per shape ------===//
//
// Part of weipipe's runtime (CUDA backend). cuBLASLt is column-major; a
// row-major C[M, N] is the column-major C^T[N, M] = op(B)^T op(A)^T, so
// every product runs with the operands swapped: cuBLASLt's A is our B and
// its m is our N. A row-major matrix with r rows and c columns is the
// column-major c x r matrix over the same memory and leading dimension.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/cuda/Blas.h"
#include "weipipe/runtime/cuda/Device.h"

#include <cublasLt.h>

#include <algorithm>
#include <map>
#include <string>

namespace weipipe::rt::cuda {

namespace {

Status blasError(cublasStatus_t s, const char *call, const std::string &what) {
  return Status::error(std::string(call) + " failed for " + what + ": " +
                       cublasLtGetStatusName(s) + " (" +
                       cublasLtGetStatusString(s) + ")");
}

#define WP_BLAS_TRY(call, what)                                                \
  do {                                                                         \
    cublasStatus_t wpBs_ = (call);                                             \
    if (wpBs_ != CUBLAS_STATUS_SUCCESS)                                        \
      return blasError(wpBs_, #call, what);                                    \
  } while (0)

cudaDataType_t dataType(ElementType t) {
  return t == ElementType::BF16 ? CUDA_R_16BF : CUDA_R_32F;
}
const char *typeName(ElementType t) {
  return t == ElementType::BF16 ? "bf16" : "f32";
}

/// Alignments the plans distinguish: cuBLASLt's fast kernels want 16 bytes
/// and nothing more, so every buffer aligned to 16 (artifact buffers are
/// 64-aligned, cudaMalloc's 256) shares one plan per shape, and a plan made
/// at load time serves every call.
constexpr unsigned kPlanAlignment = 16;

/// The largest power of two up to kPlanAlignment dividing the address.
unsigned alignmentOf(const void *p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  unsigned al = kPlanAlignment;
  while (al > 1 && (a % al) != 0)
    al /= 2;
  return al;
}

/// One shape's descriptors and algorithm.
struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  Plan() = default;
  Plan(const Plan &) = delete;
  Plan &operator=(const Plan &) = delete;
  ~Plan() {
    if (a)
      cublasLtMatrixLayoutDestroy(a);
    if (b)
      cublasLtMatrixLayoutDestroy(b);
    if (c)
      cublasLtMatrixLayoutDestroy(c);
    if (op)
      cublasLtMatmulDescDestroy(op);
  }
};

Status makeLayout(cublasLtMatrixLayout_t *l, ElementType t, int64_t rows,
                  int64_t cols, int64_t ld, int64_t batch, int64_t stride,
                  const std::string &what) {
  WP_BLAS_TRY(cublasLtMatrixLayoutCreate(l, dataType(t), uint64_t(rows),
                                         uint64_t(cols), ld),
              what);
  if (batch > 1) {
    int32_t count = int32_t(batch);
    WP_BLAS_TRY(
        cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                         &count, sizeof(count)),
        what);
    WP_BLAS_TRY(cublasLtMatrixLayoutSetAttribute(
                    *l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                    sizeof(stride)),
                what);
  }
  return Status();
}

} // namespace

std::string GemmShape::str() const {
  std::string s = std::to_string(M) + " x " + std::to_string(N) + " x " +
                  std::to_string(K) + " (" + typeName(a) + " x " + typeName(b) +
                  " -> " + typeName(c);
  if (transA)
    s += ", transA";
  if (transB)
    s += ", transB";
  if (batch > 1)
    s += ", " + std::to_string(batch) + " batches";
  if (bias)
    s += ", bias";
  if (accumulate)
    s += ", accumulate";
  if (fastBf16)
    s += ", bf16 products";
  if (geluAux)
    s += ", gelu epilogue";
  return s + ")";
}

GemmShape denseGemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K,
                    ElementType ab, ElementType c) {
  GemmShape g;
  g.transA = transA;
  g.transB = transB;
  g.M = M;
  g.N = N;
  g.K = K;
  g.lda = transA ? M : K;
  g.ldb = transB ? K : N;
  g.ldc = N;
  g.a = g.b = ab;
  g.c = c;
  return g;
}

struct Blas::Impl {
  cublasLtHandle_t handle = nullptr;
  DeviceBuffer workspace;
  // Keyed by the shape and the alignment class of A, B, C and the bias.
  using Key = std::tuple<decltype(GemmShape().key()), unsigned>;
  std::map<Key, std::unique_ptr<Plan>> plans;

  ~Impl() {
    if (handle)
      cublasLtDestroy(handle);
  }

  Status makePlan(const GemmShape &g, unsigned alignment, Plan *p) {
    const std::string what = "GEMM " + g.str();
    if (g.M <= 0 || g.N <= 0 || g.K <= 0)
      return Status::error(what + ": every dimension must be positive");
    if (g.fastBf16 && (g.a != ElementType::F32 || g.b != ElementType::F32))
      return Status::error(what + ": bf16 products are for fp32 operands");
    WP_BLAS_TRY(cublasLtMatmulDescCreate(&p->op,
                                         g.fastBf16
                                             ? CUBLAS_COMPUTE_32F_FAST_16BF
                                             : CUBLAS_COMPUTE_32F,
                                         CUDA_R_32F),
                what);
    // Swapped operands (see the file comment): cuBLASLt's A is our B.
    const cublasOperation_t ta = g.transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t tb = g.transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    WP_BLAS_TRY(cublasLtMatmulDescSetAttribute(
                    p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)),
                what);
    WP_BLAS_TRY(cublasLtMatmulDescSetAttribute(
                    p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)),
                what);
    if (g.geluAux && (g.batch != 1 || g.accumulate || g.ldc % 8 != 0))
      return Status::error(what + ": the gelu epilogue takes an unbatched, "
                                  "non-accumulating product with ldc a "
                                  "multiple of 8");
    if (g.bias || g.geluAux) {
      const cublasLtEpilogue_t e = !g.geluAux ? CUBLASLT_EPILOGUE_BIAS
                                   : g.bias   ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS
                                              : CUBLASLT_EPILOGUE_GELU_AUX;
      WP_BLAS_TRY(cublasLtMatmulDescSetAttribute(
                      p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof(e)),
                  what);
    }
    if (g.bias) {
      const cudaDataType_t bt = dataType(g.c);
      WP_BLAS_TRY(
          cublasLtMatmulDescSetAttribute(
              p->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt)),
          what);
    }
    if (g.geluAux) { // aux laid out as D (column-major N x M, ld = ldc)
      const int64_t ld = g.ldc;
      WP_BLAS_TRY(
          cublasLtMatmulDescSetAttribute(
              p->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof(ld)),
          what);
    }
    // Stored shapes, column-major: our B is [K, N] row-major = N x K here
    // ([N, K] transposed: K x N); our A likewise.
    WP_TRY(makeLayout(&p->a, g.b, g.transB ? g.K : g.N, g.transB ? g.N : g.K,
                      g.ldb, g.batch, g.strideB, what));
    WP_TRY(makeLayout(&p->b, g.a, g.transA ? g.M : g.K, g.transA ? g.K : g.M,
                      g.lda, g.batch, g.strideA, what));
    WP_TRY(makeLayout(&p->c, g.c, g.N, g.M, g.ldc, g.batch, g.strideC, what));

    cublasLtMatmulPreference_t pref = nullptr;
    WP_BLAS_TRY(cublasLtMatmulPreferenceCreate(&pref), what);
    uint64_t ws = workspace.bytes();
    cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
    // The heuristic assumes 256-byte aligned buffers unless told otherwise.
    uint32_t al = alignment;
    for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
      if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, attr, &al, sizeof(al));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulAlgoGetHeuristic(handle, p->op, p->a, p->b, p->c, p->c,
                                          pref, 1, &result, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS)
      return blasError(st, "cublasLtMatmulAlgoGetHeuristic", what);
    if (found == 0)
      return Status::error("cuBLASLt has no algorithm for " + what + " with " +
                           std::to_string(alignment) + "-byte aligned buffers");
    p->algo = result.algo;
    return Status();
  }

  Status planFor(const GemmShape &g, unsigned alignment, Plan **out) {
    Key key(g.key(), alignment);
    auto it = plans.find(key);
    if (it == plans.end()) {
      auto p = std::make_unique<Plan>();
      WP_TRY(makePlan(g, alignment, p.get()));
      it = plans.emplace(key, std::move(p)).first;
    }
    *out = it->second.get();
    return Status();
  }
};

Blas::Blas() : impl_(std::make_unique<Impl>()) {}
Blas::~Blas() = default;

Status Blas::create(std::unique_ptr<Blas> *out, uint64_t workspaceBytes) {
  std::unique_ptr<Blas> b(new Blas());
  WP_BLAS_TRY(cublasLtCreate(&b->impl_->handle), "the cuBLASLt handle");
  WP_TRY(
      b->impl_->workspace.allocate(workspaceBytes, "the cuBLASLt workspace"));
  *out = std::move(b);
  return Status();
}

Status Blas::plan(const GemmShape &g, unsigned alignment) {
  Plan *p = nullptr;
  return impl_->planFor(g, std::min(alignment, kPlanAlignment), &p);
}

size_t Blas::planCount() const { return impl_->plans.size(); }

Status Blas::gemm(const GemmShape &g, float alpha, const void *A, const void *B,
                  void *C, const void *bias, cudaStream_t stream, void *aux) {
  if (g.bias != (bias != nullptr))
    return Status::error("GEMM " + g.str() +
                         (g.bias ? ": no bias given" : ": unexpected bias"));
  if (g.geluAux != (aux != nullptr))
    return Status::error(
        "GEMM " + g.str() +
        (g.geluAux ? ": no aux output given" : ": unexpected aux output"));
  unsigned al = std::min(alignmentOf(A), alignmentOf(B));
  al = std::min(al, alignmentOf(C));
  if (bias)
    al = std::min(al, alignmentOf(bias));
  if (aux && alignmentOf(aux) < 16)
    return Status::error("GEMM " + g.str() +
                         ": the gelu epilogue's aux output must be 16-byte "
                         "aligned");
  Plan *p = nullptr;
  WP_TRY(impl_->planFor(g, al, &p));
  // (The name is only built on failure: no allocation per call.)
  if (bias)
    WP_BLAS_TRY(
        cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                       &bias, sizeof(bias)),
        "GEMM " + g.str());
  if (aux)
    WP_BLAS_TRY(cublasLtMatmulDescSetAttribute(
                    p->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux,
                    sizeof(aux)),
                "GEMM " + g.str());
  const float beta = g.accumulate ? 1.0f : 0.0f;
  WP_BLAS_TRY(cublasLtMatmul(impl_->handle, p->op, &alpha, B, p->a, A, p->b,
                             &beta, C, p->c, C, p->c, &p->algo,
                             impl_->workspace.data(), impl_->workspace.bytes(),
                             stream),
              "GEMM " + g.str());
  return Status();
}

} // namespace weipipe::rt::cuda
