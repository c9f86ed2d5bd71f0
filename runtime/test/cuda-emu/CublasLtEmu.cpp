//===- CublasLtEmu.cpp - a cuBLASLt stand-in for the CUDA emulator --------===//
//
// Part of weipipe's runtime tests. Host implementations of the part of the
// cuBLASLt API that src/cuda/Blas.cpp calls, so that Blas.cpp (and the
// executor's CUDA backend on it) run under the CUDA emulation (Emulator.h).
//
// Written from cuBLASLt's documented semantics, independently of Blas.cpp
// and of cpu::gemm: matrices are COLUMN-MAJOR (element (r, c) of a layout
// with leading dimension ld at r + c * ld), and
//
//   D = alpha op(A) op(B) + beta C (+ bias, one value per row of D: m values)
//
// with op(A) m x k, op(B) k x n, C and D m x n, per batch of a strided batch
// (a batch stride of 0 repeats one matrix for every batch). Blas.cpp's
// row-major products reach this through its operand swap, which is what its
// tests then check. Types: A/B fp32 or bf16, C/D fp32 (or bf16 with bf16
// A/B); compute CUBLAS_COMPUTE_32F, or CUBLAS_COMPUTE_32F_FAST_16BF (fp32
// A/B rounded to bf16, to nearest even, before multiplying); scale type
// fp32, alpha and beta host pointers. Each element's products are summed in
// fp32 in k order, one rounding per operation (compiled with
// -ffp-contract=off), so results are deterministic; beta = 0 never reads C
// (C starts NaN-filled in the emulation, as nothing guarantees otherwise).
//
// Arguments are checked as cuBLASLt checks them (CUBLAS_STATUS_INVALID_VALUE
// for a null or impossible argument: ld < rows, mismatched dimensions,
// types or batch counts, an attribute of the wrong size, an in-place C == D
// with different layouts, a bias epilogue without a bias, a GELU_AUX one
// without its aux or with an aux leading dimension that is not a multiple
// of 8), and a little more strictly where a real GPU would misbehave
// silently: an algorithm is bound to the problem it was found for (its
// fingerprint is checked by cublasLtMatmul) and to the pointer alignment its
// preference promised (256 bytes unless the MIN_ALIGNMENT preferences say
// less; a less aligned pointer gives CUBLAS_STATUS_NOT_SUPPORTED), and the
// batches of D must not overlap. Unsupported attributes and epilogues give
// CUBLAS_STATUS_NOT_SUPPORTED. Every failure is also printed to stderr
// ("cuBLASLt emulation: ..."), to say which check refused it.
//
//===----------------------------------------------------------------------===//

#include "EmuStreams.h"

#include <cublasLt.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace {

struct Handle {
  uint32_t magic = 0x4c74486e; // "nHtL"
};

struct MatmulDesc {
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  cudaDataType_t scale = CUDA_R_32F;
  int32_t transA = CUBLAS_OP_N, transB = CUBLAS_OP_N;
  uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void *bias = nullptr;
  int32_t biasType = -1; // -1: unset (D's type)
  void *aux = nullptr;   // GELU_AUX(_BIAS): the pre-activation, D's type
  int64_t auxLd = 0;
};

bool hasBias(uint32_t e) {
  return e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
}
bool hasGeluAux(uint32_t e) {
  return e == CUBLASLT_EPILOGUE_GELU_AUX ||
         e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
}

struct Layout {
  cudaDataType_t type = CUDA_R_32F;
  uint64_t rows = 0, cols = 0;
  int64_t ld = 0;
  int32_t batch = 1;
  int64_t stride = 0;
};

struct Preference {
  uint64_t maxWorkspace = 0;
  uint32_t align[4] = {256, 256, 256, 256}; // A, B, C, D
};

cublasStatus_t refuse(cublasStatus_t s, const std::string &why) {
  std::fprintf(stderr, "cuBLASLt emulation: %s\n", why.c_str());
  return s;
}
cublasStatus_t invalid(const std::string &why) {
  return refuse(CUBLAS_STATUS_INVALID_VALUE, why);
}

size_t elementBytes(cudaDataType_t t) {
  return t == CUDA_R_16BF ? 2 : t == CUDA_R_32F ? 4 : 0;
}

template <class T> cublasStatus_t setValue(T *field, const void *buf,
                                           size_t size, const char *what) {
  if (!buf)
    return invalid(std::string(what) + ": null buffer");
  if (size != sizeof(T))
    return invalid(std::string(what) + ": " + std::to_string(size) +
                   " bytes given, the attribute has " +
                   std::to_string(sizeof(T)));
  std::memcpy(field, buf, sizeof(T));
  return CUBLAS_STATUS_SUCCESS;
}

/// The problem a descriptor set describes, checked; m, n, k out.
cublasStatus_t checkProblem(const MatmulDesc *op, const Layout *a,
                            const Layout *b, const Layout *c, const Layout *d,
                            uint64_t *m, uint64_t *n, uint64_t *k) {
  if (!op || !a || !b || !c || !d)
    return invalid("a null descriptor");
  if (op->compute != CUBLAS_COMPUTE_32F &&
      op->compute != CUBLAS_COMPUTE_32F_FAST_16BF)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                  "compute type " + std::to_string(int(op->compute)) +
                      " is not emulated");
  if (op->scale != CUDA_R_32F)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "scale type is not fp32");
  for (int32_t t : {op->transA, op->transB})
    if (t != CUBLAS_OP_N && t != CUBLAS_OP_T)
      return invalid("transpose " + std::to_string(t));
  if (op->epilogue != CUBLASLT_EPILOGUE_DEFAULT && !hasBias(op->epilogue) &&
      !hasGeluAux(op->epilogue))
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                  "epilogue " + std::to_string(op->epilogue) +
                      " is not emulated");
  const Layout *all[] = {a, b, c, d};
  const char *names = "ABCD";
  for (int i = 0; i < 4; ++i) {
    const Layout *l = all[i];
    const std::string who = std::string("matrix ") + names[i];
    if (elementBytes(l->type) == 0)
      return refuse(CUBLAS_STATUS_NOT_SUPPORTED, who + ": type not emulated");
    if (l->rows == 0 || l->cols == 0)
      return refuse(CUBLAS_STATUS_NOT_SUPPORTED, who + ": an empty matrix");
    if (l->ld < 1 || uint64_t(l->ld) < l->rows)
      return invalid(who + ": leading dimension " + std::to_string(l->ld) +
                     " < rows " + std::to_string(l->rows));
    if (l->batch < 1)
      return invalid(who + ": batch count " + std::to_string(l->batch));
    if (l->batch != d->batch)
      return invalid(who + ": batch count " + std::to_string(l->batch) +
                     ", D has " + std::to_string(d->batch));
    if (l->batch > 1 && l->stride < 0)
      return invalid(who + ": negative batch stride");
  }
  *m = d->rows;
  *n = d->cols;
  const bool ta = op->transA == CUBLAS_OP_T, tb = op->transB == CUBLAS_OP_T;
  const uint64_t am = ta ? a->cols : a->rows, ak = ta ? a->rows : a->cols;
  const uint64_t bk = tb ? b->cols : b->rows, bn = tb ? b->rows : b->cols;
  *k = ak;
  if (am != *m || bn != *n || bk != ak)
    return invalid("op(A) is " + std::to_string(am) + " x " +
                   std::to_string(ak) + ", op(B) " + std::to_string(bk) +
                   " x " + std::to_string(bn) + ", D " + std::to_string(*m) +
                   " x " + std::to_string(*n));
  if (c->rows != d->rows || c->cols != d->cols)
    return invalid("C and D differ in shape");
  if (c->type != d->type)
    return invalid("C and D differ in type");
  if (a->type != b->type)
    return invalid("A and B differ in type");
  if (op->compute == CUBLAS_COMPUTE_32F_FAST_16BF) {
    if (a->type != CUDA_R_32F || d->type != CUDA_R_32F)
      return invalid("CUBLAS_COMPUTE_32F_FAST_16BF takes fp32 A, B, C, D");
  } else if (a->type == CUDA_R_32F && d->type != CUDA_R_32F) {
    return invalid("fp32 A and B need an fp32 D");
  }
  if (hasGeluAux(op->epilogue)) {
    // The documented rules for the aux matrix (laid out as D).
    if (op->auxLd < int64_t(d->rows) || op->auxLd % 8 != 0)
      return invalid("CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD " +
                     std::to_string(op->auxLd) +
                     ": below D's rows or not a multiple of 8");
    if (d->batch != 1)
      return refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                    "a batched GELU_AUX epilogue is not emulated");
  }
  if (hasBias(op->epilogue) && op->biasType != -1 && op->biasType != d->type &&
      op->biasType != CUDA_R_32F)
    return invalid("bias type " + std::to_string(op->biasType));
  // D's batches must not overlap (each is written once).
  if (d->batch > 1 &&
      uint64_t(d->stride) < uint64_t(d->ld) * (d->cols - 1) + d->rows)
    return invalid("D's batches overlap (stride " + std::to_string(d->stride) +
                   ")");
  return CUBLAS_STATUS_SUCCESS;
}

/// What an algorithm was found for (everything but pointers).
uint64_t fingerprint(const MatmulDesc *op, const Layout *const *ls) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  };
  mix(uint64_t(op->compute));
  mix(uint64_t(op->scale));
  mix(uint64_t(op->transA));
  mix(uint64_t(op->transB));
  mix(uint64_t(op->epilogue));
  mix(uint64_t(int64_t(op->biasType)));
  mix(uint64_t(op->auxLd));
  for (int i = 0; i < 4; ++i) {
    mix(uint64_t(ls[i]->type));
    mix(ls[i]->rows);
    mix(ls[i]->cols);
    mix(uint64_t(ls[i]->ld));
    mix(uint64_t(ls[i]->batch));
    mix(uint64_t(ls[i]->batch > 1 ? ls[i]->stride : 0));
  }
  return h;
}

constexpr uint64_t kAlgoMagic = 0x656d754c74416c67ull; // "emuLtAlg"

float load(const void *base, cudaDataType_t t, uint64_t at) {
  if (t == CUDA_R_16BF) {
    __nv_bfloat16 v;
    std::memcpy(&v, static_cast<const char *>(base) + 2 * at, 2);
    return __bfloat162float(v);
  }
  float v;
  std::memcpy(&v, static_cast<const char *>(base) + 4 * at, 4);
  return v;
}

void store(void *base, cudaDataType_t t, uint64_t at, float v) {
  if (t == CUDA_R_16BF) {
    const __nv_bfloat16 b = __float2bfloat16(v); // to nearest even
    std::memcpy(static_cast<char *>(base) + 2 * at, &b, 2);
  } else {
    std::memcpy(static_cast<char *>(base) + 4 * at, &v, 4);
  }
}

float toBf16(float v) { return __bfloat162float(__float2bfloat16(v)); }

/// D = alpha op(A) op(B) + beta C (+ bias), column-major (cublasLtMatmul's
/// computation, run when the stream gets to it).
void matmul(const MatmulDesc &opv, const Layout &av, const Layout &bv,
            const Layout &cv, const Layout &dv, float al, float be, bool bias,
            cudaDataType_t biasType, const void *A, const void *B,
            const void *C, void *D, uint64_t m, uint64_t n, uint64_t k);

} // namespace

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle) {
  if (!handle)
    return invalid("cublasLtCreate: null handle pointer");
  *handle = reinterpret_cast<cublasLtHandle_t>(new Handle);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  if (!handle)
    return refuse(CUBLAS_STATUS_NOT_INITIALIZED, "cublasLtDestroy: null");
  delete reinterpret_cast<Handle *>(handle);
  return CUBLAS_STATUS_SUCCESS;
}

const char *cublasLtGetStatusName(cublasStatus_t s) {
  switch (s) {
  case CUBLAS_STATUS_SUCCESS:
    return "CUBLAS_STATUS_SUCCESS";
  case CUBLAS_STATUS_NOT_INITIALIZED:
    return "CUBLAS_STATUS_NOT_INITIALIZED";
  case CUBLAS_STATUS_ALLOC_FAILED:
    return "CUBLAS_STATUS_ALLOC_FAILED";
  case CUBLAS_STATUS_INVALID_VALUE:
    return "CUBLAS_STATUS_INVALID_VALUE";
  case CUBLAS_STATUS_ARCH_MISMATCH:
    return "CUBLAS_STATUS_ARCH_MISMATCH";
  case CUBLAS_STATUS_MAPPING_ERROR:
    return "CUBLAS_STATUS_MAPPING_ERROR";
  case CUBLAS_STATUS_EXECUTION_FAILED:
    return "CUBLAS_STATUS_EXECUTION_FAILED";
  case CUBLAS_STATUS_INTERNAL_ERROR:
    return "CUBLAS_STATUS_INTERNAL_ERROR";
  case CUBLAS_STATUS_NOT_SUPPORTED:
    return "CUBLAS_STATUS_NOT_SUPPORTED";
  case CUBLAS_STATUS_LICENSE_ERROR:
    return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "<unknown>";
}

const char *cublasLtGetStatusString(cublasStatus_t s) {
  switch (s) {
  case CUBLAS_STATUS_SUCCESS:
    return "the operation completed successfully";
  case CUBLAS_STATUS_NOT_INITIALIZED:
    return "the library was not initialized";
  case CUBLAS_STATUS_ALLOC_FAILED:
    return "the resource allocation failed";
  case CUBLAS_STATUS_INVALID_VALUE:
    return "an invalid numeric value was used as an argument";
  case CUBLAS_STATUS_NOT_SUPPORTED:
    return "the functionality requested is not supported";
  default:
    return "an error occurred (cuBLASLt emulation)";
  }
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc,
                                        cublasComputeType_t compute,
                                        cudaDataType_t scale) {
  if (!desc)
    return invalid("cublasLtMatmulDescCreate: null pointer");
  MatmulDesc *d = new MatmulDesc;
  d->compute = compute;
  d->scale = scale;
  *desc = reinterpret_cast<cublasLtMatmulDesc_t>(d);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  delete reinterpret_cast<MatmulDesc *>(desc);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                              cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t size) {
  MatmulDesc *d = reinterpret_cast<MatmulDesc *>(desc);
  if (!d)
    return invalid("cublasLtMatmulDescSetAttribute: null descriptor");
  switch (attr) {
  case CUBLASLT_MATMUL_DESC_TRANSA:
    return setValue(&d->transA, buf, size, "CUBLASLT_MATMUL_DESC_TRANSA");
  case CUBLASLT_MATMUL_DESC_TRANSB:
    return setValue(&d->transB, buf, size, "CUBLASLT_MATMUL_DESC_TRANSB");
  case CUBLASLT_MATMUL_DESC_EPILOGUE:
    return setValue(&d->epilogue, buf, size, "CUBLASLT_MATMUL_DESC_EPILOGUE");
  case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
    return setValue(&d->bias, buf, size, "CUBLASLT_MATMUL_DESC_BIAS_POINTER");
  case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
    return setValue(&d->biasType, buf, size,
                    "CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE");
  case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER:
    return setValue(&d->aux, buf, size,
                    "CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER");
  case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD:
    return setValue(&d->auxLd, buf, size,
                    "CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD");
  default:
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                  "matmul attribute " + std::to_string(int(attr)) +
                      " is not emulated");
  }
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *layout,
                                          cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
  if (!layout)
    return invalid("cublasLtMatrixLayoutCreate: null pointer");
  Layout *l = new Layout;
  l->type = type;
  l->rows = rows;
  l->cols = cols;
  l->ld = ld;
  *layout = reinterpret_cast<cublasLtMatrixLayout_t>(l);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  delete reinterpret_cast<Layout *>(layout);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t layout,
                                 cublasLtMatrixLayoutAttribute_t attr,
                                 const void *buf, size_t size) {
  Layout *l = reinterpret_cast<Layout *>(layout);
  if (!l)
    return invalid("cublasLtMatrixLayoutSetAttribute: null descriptor");
  switch (attr) {
  case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT:
    return setValue(&l->batch, buf, size, "CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT");
  case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET:
    return setValue(&l->stride, buf, size,
                    "CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET");
  default:
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                  "layout attribute " + std::to_string(int(attr)) +
                      " is not emulated");
  }
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) {
  if (!p)
    return invalid("cublasLtMatmulPreferenceCreate: null pointer");
  *p = reinterpret_cast<cublasLtMatmulPreference_t>(new Preference);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
  delete reinterpret_cast<Preference *>(p);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                     cublasLtMatmulPreferenceAttributes_t attr,
                                     const void *buf, size_t size) {
  Preference *p = reinterpret_cast<Preference *>(pref);
  if (!p)
    return invalid("cublasLtMatmulPreferenceSetAttribute: null descriptor");
  int which = -1;
  switch (attr) {
  case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
    return setValue(&p->maxWorkspace, buf, size,
                    "CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES");
  case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
    which = 0;
    break;
  case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
    which = 1;
    break;
  case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
    which = 2;
    break;
  case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES:
    which = 3;
    break;
  default:
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                  "preference attribute " + std::to_string(int(attr)) +
                      " is not emulated");
  }
  uint32_t al = 0;
  if (cublasStatus_t s = setValue(&al, buf, size, "a MIN_ALIGNMENT preference");
      s != CUBLAS_STATUS_SUCCESS)
    return s;
  if (al == 0 || (al & (al - 1)) != 0)
    return invalid("alignment " + std::to_string(al) + " is not a power of 2");
  p->align[which] = al;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(
    cublasLtHandle_t handle, cublasLtMatmulDesc_t opDesc,
    cublasLtMatrixLayout_t aDesc, cublasLtMatrixLayout_t bDesc,
    cublasLtMatrixLayout_t cDesc, cublasLtMatrixLayout_t dDesc,
    cublasLtMatmulPreference_t pref, int requested,
    cublasLtMatmulHeuristicResult_t results[], int *returned) {
  if (!handle)
    return refuse(CUBLAS_STATUS_NOT_INITIALIZED, "heuristic: null handle");
  if (!pref || !results || !returned || requested < 1)
    return invalid("heuristic: a null or impossible argument");
  const MatmulDesc *op = reinterpret_cast<const MatmulDesc *>(opDesc);
  const Layout *ls[4] = {reinterpret_cast<const Layout *>(aDesc),
                         reinterpret_cast<const Layout *>(bDesc),
                         reinterpret_cast<const Layout *>(cDesc),
                         reinterpret_cast<const Layout *>(dDesc)};
  uint64_t m, n, k;
  if (cublasStatus_t s = checkProblem(op, ls[0], ls[1], ls[2], ls[3], &m, &n,
                                      &k);
      s != CUBLAS_STATUS_SUCCESS)
    return s;
  const Preference *p = reinterpret_cast<const Preference *>(pref);
  // One algorithm: it needs each buffer aligned as the preference promised
  // (at least to its element), and no workspace.
  std::memset(&results[0], 0, sizeof(results[0]));
  cublasLtMatmulAlgo_t &algo = results[0].algo;
  algo.data[0] = kAlgoMagic;
  algo.data[1] = fingerprint(op, ls);
  for (int i = 0; i < 4; ++i)
    algo.data[2 + i] = p->align[i];
  results[0].workspaceSize = 0;
  results[0].state = CUBLAS_STATUS_SUCCESS;
  results[0].wavesCount = 1.0f;
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t opDesc,
               const void *alpha, const void *A, cublasLtMatrixLayout_t aDesc,
               const void *B, cublasLtMatrixLayout_t bDesc, const void *beta,
               const void *C, cublasLtMatrixLayout_t cDesc, void *D,
               cublasLtMatrixLayout_t dDesc, const cublasLtMatmulAlgo_t *algo,
               void *workspace, size_t workspaceBytes, cudaStream_t stream) {
  if (!handle)
    return refuse(CUBLAS_STATUS_NOT_INITIALIZED, "cublasLtMatmul: null handle");
  if (!alpha || !beta || !A || !B || !D)
    return invalid("cublasLtMatmul: a null pointer");
  if (workspaceBytes > 0 && !workspace)
    return invalid("cublasLtMatmul: workspace size without a workspace");
  const MatmulDesc *op = reinterpret_cast<const MatmulDesc *>(opDesc);
  const Layout *a = reinterpret_cast<const Layout *>(aDesc),
               *b = reinterpret_cast<const Layout *>(bDesc),
               *c = reinterpret_cast<const Layout *>(cDesc),
               *d = reinterpret_cast<const Layout *>(dDesc);
  const Layout *ls[4] = {a, b, c, d};
  uint64_t m, n, k;
  if (cublasStatus_t s = checkProblem(op, a, b, c, d, &m, &n, &k);
      s != CUBLAS_STATUS_SUCCESS)
    return s;
  float al, be;
  std::memcpy(&al, alpha, sizeof al); // host pointer mode (the default)
  std::memcpy(&be, beta, sizeof be);
  if (be != 0.0f && !C)
    return invalid("cublasLtMatmul: beta != 0 without C");
  // In place: C and D the same buffer need the same layout.
  if (C == D && (c->type != d->type || c->ld != d->ld ||
                 c->batch != d->batch ||
                 (d->batch > 1 && c->stride != d->stride)))
    return invalid("cublasLtMatmul: C == D with different layouts");
  const bool bias = hasBias(op->epilogue);
  if (bias && !op->bias)
    return invalid("cublasLtMatmul: a bias epilogue without a bias pointer");
  if (hasGeluAux(op->epilogue) && !op->aux)
    return invalid("cublasLtMatmul: a GELU_AUX epilogue without an aux "
                   "pointer");
  if (hasGeluAux(op->epilogue) && reinterpret_cast<uintptr_t>(op->aux) % 16)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                  "cublasLtMatmul: aux is not 16-byte aligned");
  const cudaDataType_t biasType =
      op->biasType == -1 ? d->type : cudaDataType_t(op->biasType);
  // The algorithm: found for this problem, and its alignment promise kept.
  if (algo) {
    if (algo->data[0] != kAlgoMagic)
      return invalid("cublasLtMatmul: not an algorithm of the heuristic");
    if (algo->data[1] != fingerprint(op, ls))
      return invalid("cublasLtMatmul: the algorithm was found for another "
                     "problem (descriptors changed since the heuristic)");
  }
  const void *ptrs[4] = {A, B, C, D};
  const char *names = "ABCD";
  for (int i = 0; i < 4; ++i) {
    if (!ptrs[i])
      continue;
    const uint64_t need =
        algo ? std::max<uint64_t>(algo->data[2 + i], elementBytes(ls[i]->type))
             : elementBytes(ls[i]->type);
    if (reinterpret_cast<uintptr_t>(ptrs[i]) % need != 0)
      return refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                    std::string("cublasLtMatmul: matrix ") + names[i] +
                        " is not " + std::to_string(need) +
                        "-byte aligned as the algorithm needs");
  }
  if (bias && reinterpret_cast<uintptr_t>(op->bias) % elementBytes(biasType))
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                  "cublasLtMatmul: misaligned bias");

  // Computed when the stream gets to it (EmuStreams.h), from copies of
  // the descriptors (the caller may destroy its own).
  weipipe::emu::enqueue(stream, [=, opv = *op, av = *a, bv = *b, cv = *c,
                                 dv = *d] {
    matmul(opv, av, bv, cv, dv, al, be, bias, biasType, A, B, C, D, m, n, k);
  });
  return CUBLAS_STATUS_SUCCESS;
}

} // extern "C"

namespace {

void matmul(const MatmulDesc &opv, const Layout &av, const Layout &bv,
            const Layout &cv, const Layout &dv, float al, float be, bool bias,
            cudaDataType_t biasType, const void *A, const void *B,
            const void *C, void *D, uint64_t m, uint64_t n, uint64_t k) {
  const MatmulDesc *op = &opv;
  const Layout *a = &av, *b = &bv, *c = &cv, *d = &dv;
  const bool ta = op->transA == CUBLAS_OP_T, tb = op->transB == CUBLAS_OP_T;
  const bool fast = op->compute == CUBLAS_COMPUTE_32F_FAST_16BF;
  auto batchOffset = [](const Layout *l, int32_t t) {
    return l->batch > 1 ? uint64_t(int64_t(t) * l->stride) : 0;
  };
  auto in = [&](const void *base, const Layout *l, uint64_t at) {
    const float v = load(base, l->type, at);
    return fast ? toBf16(v) : v;
  };
  for (int32_t t = 0; t < d->batch; ++t) {
    const uint64_t oa = batchOffset(a, t), ob = batchOffset(b, t),
                   oc = batchOffset(c, t), od = batchOffset(d, t);
    for (uint64_t j = 0; j < n; ++j)
      for (uint64_t i = 0; i < m; ++i) {
        float acc = 0.0f;
        for (uint64_t l = 0; l < k; ++l) {
          // op(A)(i, l) and op(B)(l, j), column-major storage.
          const uint64_t ia = ta ? l + i * uint64_t(a->ld)
                                 : i + l * uint64_t(a->ld);
          const uint64_t ib = tb ? j + l * uint64_t(b->ld)
                                 : l + j * uint64_t(b->ld);
          acc = acc + in(A, a, oa + ia) * in(B, b, ob + ib);
        }
        float r = al * acc;
        if (be != 0.0f) // beta = 0: C is not read
          r = r + be * load(C, c->type, oc + i + j * uint64_t(c->ld));
        if (bias)
          r = r + load(op->bias, biasType, i);
        if (hasGeluAux(op->epilogue)) { // the tanh approximation
          store(op->aux, d->type, i + j * uint64_t(op->auxLd), r);
          const float u = 0.7978845608f * (r + 0.044715f * r * r * r);
          r = 0.5f * r * (1.0f + std::tanh(u));
        }
        store(D, d->type, od + i + j * uint64_t(d->ld), r);
      }
  }
}

} // namespace
