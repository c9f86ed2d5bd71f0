//===- Blas.h - every GEMM of the CUDA backend through cuBLASLt -*- C++ -*-===//
//
// Part of weipipe's runtime (CUDA backend). One wrapper for every matrix
// product (llm.c's matmul.cuh is the model): row-major operands as in
// cpu::gemm, transposes, strided batches (a stride of 0 broadcasts an
// operand), fp32 or bf16 storage with fp32 compute and scale (no TF32: the
// fp32 mode is the one checked tightly against the CPU; bf16 tensor-core
// products of fp32 operands on request), a bias epilogue,
// beta = 1 accumulation, and one workspace owned by the Blas object.
//
// Every shape of a run is known from the artifact, so the descriptors and
// the heuristic's algorithm are made once per distinct shape (and pointer
// alignment class) and reused: `plan` at load time, or the first `gemm`.
// A cached algorithm makes results bitwise repeatable on a given GPU.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_CUDA_BLAS_H
#define WEIPIPE_RUNTIME_CUDA_BLAS_H

#include "weipipe/runtime/Status.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>
#include <tuple>

namespace weipipe::rt::cuda {

enum class ElementType : uint8_t { F32, BF16 };

/// C[M, N] = alpha op(A) op(B) (+ C with accumulate) (+ bias[N] on every row),
/// row-major: A is [M, K] ([K, M] with transA), B is [K, N] ([N, K] with
/// transB), leading dimensions in elements. `batch` products with element
/// strides between them.
struct GemmShape {
  bool transA = false, transB = false;
  int64_t M = 0, N = 0, K = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;
  ElementType a = ElementType::F32, b = ElementType::F32, c = ElementType::F32;
  int64_t batch = 1, strideA = 0, strideB = 0, strideC = 0;
  bool bias = false;       ///< bias has c's type
  bool accumulate = false; ///< beta = 1
  /// fp32 operands multiplied on bf16 tensor cores (cuBLASLt's
  /// CUBLAS_COMPUTE_32F_FAST_16BF: inputs rounded to bf16, products summed
  /// in fp32): --precision bf16 over fp32 storage.
  bool fastBf16 = false;
  /// cuBLASLt's GELU epilogue (the tanh approximation) after the bias: C
  /// gets gelu(A B + bias), `aux` (the gemm's argument, laid out as C) the
  /// value before it, which the backward needs. Unbatched, not
  /// accumulating, ldc a multiple of 8 (cuBLASLt's rule for aux).
  bool geluAux = false;

  auto key() const {
    return std::make_tuple(transA, transB, M, N, K, lda, ldb, ldc, a, b, c,
                           batch, strideA, strideB, strideC, bias, accumulate,
                           fastBf16, geluAux);
  }
  /// "M x N x K (bf16 x bf16 -> f32, transB, 4 batches)".
  std::string str() const;
};

/// Row-major defaults: dense operands (lda = K or M, ...), no batch.
GemmShape denseGemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K,
                    ElementType ab = ElementType::F32,
                    ElementType c = ElementType::F32);

/// Not thread-safe: one per stream owner (a rank), as cuBLASLt handles are
/// used.
class Blas {
public:
  /// A cuBLASLt handle and a `workspaceBytes` workspace on the current
  /// device (32 MiB: what Hopper's best kernels ask for).
  static Status create(std::unique_ptr<Blas> *out,
                       uint64_t workspaceBytes = uint64_t(32) << 20);
  ~Blas();
  Blas(const Blas &) = delete;
  Blas &operator=(const Blas &) = delete;

  /// Enqueues the product on `stream`. Fails (never falls back) when
  /// cuBLASLt has no algorithm for the shape, naming it. `aux`: the
  /// pre-activation of a geluAux product (nullptr otherwise).
  Status gemm(const GemmShape &g, float alpha, const void *A, const void *B,
              void *C, const void *bias, cudaStream_t stream,
              void *aux = nullptr);
  /// Makes the plan of a shape whose pointers are `alignment`-byte aligned
  /// (the artifact's 64) ahead of the first call; plans tell alignments
  /// apart only up to 16 bytes, so it serves every buffer aligned that much.
  Status plan(const GemmShape &g, unsigned alignment);
  /// Distinct plans made so far.
  size_t planCount() const;

private:
  Blas();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace weipipe::rt::cuda

#endif // WEIPIPE_RUNTIME_CUDA_BLAS_H
