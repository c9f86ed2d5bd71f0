//===- Kernels.h - CUDA kernels for the nn dialect --------------*- C++ -*-===//
//
// Part of weipipe's runtime (CUDA backend). The GPU counterpart of
// cpu/Kernels.h: the same ops, the same math (each comment there is the
// contract; here only what differs is stated), on device pointers, enqueued
// on a stream.
//
// Conventions, stated once:
//
//  * Every function only enqueues work on `stream` and returns the launch
//    error, if any; nothing synchronizes with the host.
//  * Storage type T is `float` (--precision fp32) or `bf16` (--precision
//    bf16) for activations, their gradients and the compute copy of the
//    weights. Arithmetic is fp32 throughout; statistics (norm mean/rstd,
//    attention and cross-entropy logsumexp), losses and every parameter
//    GRADIENT are fp32, whatever T is, so that accumulation over
//    micro-batches does not round to bf16 each time.
//  * The write/accumulate rule of cpu/Kernels.h holds: activation gradients
//    are WRITTEN, parameter gradients ACCUMULATED.
//  * Data-dependent errors (an id out of range) cannot be returned from a
//    kernel: the kernel records one of them (whichever thread gets there
//    first) in a device `KernelError` and leaves the offending element's
//    output as zero; the executor reads the
//    record where it synchronizes (once per step) and reports it.
//  * Deterministic: no floating-point atomics. Cross-block sums go through
//    per-block partials summed in block order by one block, so a result is
//    bitwise the same from run to run on a given GPU.
//  * Kernels that need temporary device memory take a `workspace` sized by
//    the matching *WorkspaceBytes function (the executor sizes one for the
//    largest user at load time, as the CPU executor does with its scratch).
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_CUDA_KERNELS_H
#define WEIPIPE_RUNTIME_CUDA_KERNELS_H

#include "weipipe/runtime/Opcodes.h"
#include "weipipe/runtime/Status.h"
#include "weipipe/runtime/cpu/Kernels.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

namespace weipipe::rt::cuda {

using bf16 = __nv_bfloat16;
using rt::Status;

/// The first data error a kernel met (zeroed by the executor; code 0: none).
struct KernelError {
  enum Code : int { None = 0, IndexOutOfRange = 1, TargetOutOfRange = 2 };
  int code = None;
  int64_t value = 0;    ///< the offending id / target
  int64_t position = 0; ///< its element index in the ids / targets
  int64_t bound = 0;    ///< the valid range is [0, bound)
};
/// "id 70000 at position 17 is outside [0, 50257)" (empty for None).
std::string describe(const KernelError &e, const char *what);

//===----------------------------------------------------------------------===//
// Casts and activations (same shape in and out; y may alias x)
//===----------------------------------------------------------------------===//

/// y = T(x): fp32 <-> bf16 (round to nearest even), float <-> float copies.
template <class S, class D>
Status cast(const S *x, D *y, int64_t n, cudaStream_t stream);

/// nn.gelu (cpu::gelu_forward's two forms); backward WRITES dx.
template <class T>
Status gelu_forward(const T *x, T *y, int64_t n, GeluApprox approx,
                    cudaStream_t stream);
template <class T>
Status gelu_backward(const T *x, const T *dy, T *dx, int64_t n,
                     GeluApprox approx, cudaStream_t stream);
/// nn.silu.
template <class T>
Status silu_forward(const T *x, T *y, int64_t n, cudaStream_t stream);
template <class T>
Status silu_backward(const T *x, const T *dy, T *dx, int64_t n,
                     cudaStream_t stream);
/// nn.swiglu: y = silu(gate) * up; backward WRITES dgate and dup (either may
/// be nullptr; either may alias gate/up/dy).
template <class T>
Status swiglu_forward(const T *gate, const T *up, T *y, int64_t n,
                      cudaStream_t stream);
template <class T>
Status swiglu_backward(const T *gate, const T *up, const T *dy, T *dgate,
                       T *dup, int64_t n, cudaStream_t stream);

/// dst += src (fp32 gradients: the Accumulate instruction, and the ring's
/// gradient sums).
Status accumulate(const float *src, float *dst, int64_t n, cudaStream_t stream);

//===----------------------------------------------------------------------===//
// Normalization: one warp per row for the statistics and dx; the parameter
// gradients through per-block partial sums (normBackwardWorkspaceBytes).
//===----------------------------------------------------------------------===//

/// cpu::layer_norm_forward with T storage; mean/rstd fp32 (may be nullptr).
/// scale/bias are T (the compute copy), bias may be nullptr.
template <class T>
Status layer_norm_forward(const T *x, const T *scale, const T *bias, T *y,
                          float *mean, float *rstd, int64_t rows,
                          int64_t normSize, float eps, cudaStream_t stream);
/// cpu::layer_norm_backward; recomputes the statistics (the forward's are
/// not kept: Opcodes.def's norm gradients take x alone). dx WRITTEN,
/// dscale/dbias fp32 ACCUMULATED; any may be nullptr.
template <class T>
Status layer_norm_backward(const T *x, const T *scale, const T *dy, T *dx,
                           float *dscale, float *dbias, int64_t rows,
                           int64_t normSize, float eps, void *workspace,
                           cudaStream_t stream);
template <class T>
Status rms_norm_forward(const T *x, const T *scale, T *y, float *rstd,
                        int64_t rows, int64_t normSize, float eps,
                        cudaStream_t stream);
template <class T>
Status rms_norm_backward(const T *x, const T *scale, const T *dy, T *dx,
                         float *dscale, int64_t rows, int64_t normSize,
                         float eps, void *workspace, cudaStream_t stream);
/// Workspace of either norm backward.
uint64_t normBackwardWorkspaceBytes(int64_t rows, int64_t normSize);

//===----------------------------------------------------------------------===//
// Embedding, rotary
//===----------------------------------------------------------------------===//

/// out[i, :] = table[ids[i], :]; an id outside [0, V) gives a zero row and a
/// KernelError.
template <class T>
Status embedding_forward(const T *table, const int64_t *ids, T *out,
                         int64_t numIds, int64_t V, int64_t H, KernelError *err,
                         cudaStream_t stream);
/// dtable[ids[i], :] += dout[i, :] (fp32, ACCUMULATED), repeated ids summed
/// in position order (a stable sort of the ids, then one pass per distinct
/// id: deterministic without atomics); ids equal to paddingIdx skipped; ids
/// out of range skipped with a KernelError. The workspace has
/// `workspaceBytes` (at least embeddingBackwardWorkspaceBytes(numIds), asked
/// on the device that runs it: CUB's sort sizes its own part).
template <class T>
Status embedding_backward(const int64_t *ids, const T *dout, float *dtable,
                          int64_t numIds, int64_t V, int64_t H,
                          int64_t paddingIdx, void *workspace,
                          uint64_t workspaceBytes, KernelError *err,
                          cudaStream_t stream);
uint64_t embeddingBackwardWorkspaceBytes(int64_t numIds);

/// cpu::rotary_forward / rotary_backward; cos/sin are fp32 tables. y may
/// alias x, dx may alias dy. A rotaryDim that is odd, not positive or above D
/// is an error.
template <class T>
Status rotary_forward(const T *x, const float *cos, const float *sin, T *y,
                      const cpu::RotaryDims &d, cudaStream_t stream);
template <class T>
Status rotary_backward(const T *dy, const float *cos, const float *sin, T *dx,
                       const cpu::RotaryDims &d, cudaStream_t stream);

//===----------------------------------------------------------------------===//
// Attention (flash style: tiled, online softmax in fp32, no Sq x Sk matrix in
// memory; causal tiles skipped; GQA by head-index mapping)
//===----------------------------------------------------------------------===//

/// The CPU kernels' AttentionParams with the mask pointers on the device.
using AttentionParams = cpu::AttentionParams;

/// How attention multiplies. Fp32: fp32 FMA, the CPU's arithmetic (to
/// ~1e-6, --precision fp32). TensorCoresBf16: bf16 tensor cores with fp32
/// accumulation (--precision bf16): Q, K, V, dO, and P and dS before their
/// products, rounded to bf16; softmax statistics, lse and accumulators fp32.
enum class AttentionMath { Fp32, TensorCoresBf16 };

/// cpu::attention_forward: out T, lse fp32 [B, H, Sq] (may be nullptr). A row
/// with no allowed key gets out = 0, lse = -inf. Head dims up to 128.
template <class T>
Status attention_forward(const AttentionParams &p, const T *q, const T *k,
                         const T *v, T *out, float *lse, cudaStream_t stream,
                         AttentionMath math = AttentionMath::Fp32);
/// cpu::attention_backward: dq, dk, dv WRITTEN (any may be nullptr); dk/dv
/// sum the GQA group's query heads in head order. Without lse the backward
/// recomputes it into the workspace (with the same math).
template <class T>
Status attention_backward(const AttentionParams &p, const T *q, const T *k,
                          const T *v, const T *out, const float *lse,
                          const T *dout, T *dq, T *dk, T *dv, void *workspace,
                          cudaStream_t stream,
                          AttentionMath math = AttentionMath::Fp32);
uint64_t attentionBackwardWorkspaceBytes(const AttentionParams &p);
/// Whether the kernels take this problem (head dims, sizes); the message
/// says what is not supported.
Status attentionSupported(const AttentionParams &p);

//===----------------------------------------------------------------------===//
// Loss: softmax cross-entropy fused over the vocabulary (one block per row,
// an online max/sum pass; no probabilities and no fp32 copy of the logits)
//===----------------------------------------------------------------------===//

/// cpu::cross_entropy_forward. loss (device, fp32 scalar) = the mean over
/// valid rows, summed in double in a fixed order (one block's strided sums,
/// then its tree); lse [N] (may be nullptr) every row's
/// logsumexp; numValid (device, may be nullptr) the rows counted. A target
/// out of range counts as ignored and records a KernelError.
template <class T>
Status cross_entropy_forward(const T *logits, const int64_t *targets, int64_t N,
                             int64_t V, int64_t ignoreIndex, float *loss,
                             float *lse, int64_t *numValid, void *workspace,
                             KernelError *err, cudaStream_t stream);
uint64_t crossEntropyWorkspaceBytes(int64_t N);
/// cpu::cross_entropy_backward with dloss a device scalar; recomputes lse
/// and the valid-row count (both cheap next to the pass over the logits).
/// dlogits may alias logits (each row is read before it is written).
template <class T>
Status cross_entropy_backward(const T *logits, const int64_t *targets,
                              const float *dloss, int64_t N, int64_t V,
                              int64_t ignoreIndex, T *dlogits, void *workspace,
                              cudaStream_t stream);

//===----------------------------------------------------------------------===//
// Optimizer over flat fp32 buffers
//===----------------------------------------------------------------------===//

/// cpu::adamw_step's scalars, computed once per step on the host in double
/// and rounded to float exactly as the CPU kernel does, so that the
/// elementwise update is the same float arithmetic.
struct AdamWCoefficients {
  float decay = 1;    ///< 1 - lr wd
  float w1 = 0.1f;    ///< 1 - beta1 (the lerp weight)
  float b2 = 0.999f;  ///< beta2
  float w2 = 0.001f;  ///< 1 - beta2
  float stepSize = 0; ///< lr / (1 - beta1^t)
  float bc2Sqrt = 1;  ///< sqrt(1 - beta2^t)
  float eps = 1e-8f;
};
AdamWCoefficients adamwCoefficients(const cpu::AdamWConfig &c, int64_t step);
/// One AdamW step on n fp32 master weights p with fp32 moments m, v; the
/// gradient is scaled by *gradScale (device scalar, nullptr: 1) first, as
/// clipping wants. `compute` (may be nullptr) receives the bf16 copy of the
/// updated weights.
Status adamw_step(float *p, const float *g, float *m, float *v, int64_t n,
                  const AdamWCoefficients &c, const float *gradScale,
                  bf16 *compute, cudaStream_t stream);

/// *sumsq (device double) += sum x^2, in a fixed order (per-block partials,
/// then one block).
Status sum_of_squares(const float *x, int64_t n, double *sumsq, void *workspace,
                      cudaStream_t stream);
uint64_t sumOfSquaresWorkspaceBytes();
/// *scale = cpu::clip_scale(sqrt(*sumsq), maxNorm) on the device; *norm
/// (may be nullptr) = sqrt(*sumsq).
Status clip_scale(const double *sumsq, double maxNorm, float *scale,
                  double *norm, cudaStream_t stream);

} // namespace weipipe::rt::cuda

#endif // WEIPIPE_RUNTIME_CUDA_KERNELS_H
