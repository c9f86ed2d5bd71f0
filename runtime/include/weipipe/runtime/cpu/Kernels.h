//===- Kernels.h - CPU fp32 kernels for the nn dialect ----------*- C++ -*-===//
//
// Part of weipipe's runtime. The CPU backend's compute: one forward function
// (and, where the op is differentiable, one backward function) per op of the
// compiler's `nn` dialect (dialects/NN/NNOps.td is the contract; each comment
// below restates the math the function implements).
//
// Conventions, stated once (runtime/README.md has the long form):
//
//  * Tensors are raw, dense, row-major pointers plus explicit sizes or a
//    `Shape`. Outputs are caller-allocated; a kernel allocates only scratch
//    that it frees before returning. Inputs and outputs must not alias unless
//    a function says so.
//  * Element types: f32 compute is `float`; index tensors are `int64_t`; i1
//    predicates are `uint8_t` holding 0 or 1 (any nonzero byte reads as true).
//  * Backward functions WRITE (`=`) the gradients of activations/inputs
//    ("dx") and ACCUMULATE (`+=`) into the gradients of weights ("dW": the
//    linear weight and bias, the layer_norm/rms_norm scale and bias, the
//    embedding table), so that gradient accumulation across micro-batches needs
//    no extra pass. A few functions take `accumulate = true` to add into an
//    input gradient instead (matmul, gather) where that is free. Any gradient
//    output may be nullptr to skip it.
//  * Forward functions that backward needs statistics from write them to
//    caller-provided buffers: layer_norm mean/rstd, rms_norm rstd, attention
//    per-row logsumexp, cross_entropy per-row logsumexp. Softmax backward uses
//    the forward output.
//  * Shape errors are programming errors (the compiler verified the IR): they
//    abort with a message. Data-dependent errors (an index out of range) are
//    reported through `Status`, before anything is written.
//  * Threads: OpenMP `parallel for` over rows/heads/chunks (small problems
//    stay on the calling thread). Every GEMM goes through cblas_sgemm: big
//    ones from the calling thread (OpenBLAS threads them), and the small
//    block GEMMs of attention and of small batched matmuls from inside an
//    OpenMP region, sized so that OpenBLAS runs each on its caller.
//  * Determinism: every output element is produced by one task and reduced in
//    a fixed order; cross-thread partial sums use fixed chunk boundaries and
//    are added in chunk order; no atomics. So results are bitwise identical
//    from run to run and do not depend on the OpenMP thread count (the tests
//    check 1 vs 2 threads). OpenBLAS splits M and N, not K, over its
//    threads, so its GEMMs are reproducible too on a given machine and build.
//  * Elementwise kernels (same index in and out) may write in place over an
//    input that has the output's shape.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_CPU_KERNELS_H
#define WEIPIPE_RUNTIME_CPU_KERNELS_H

#include "weipipe/runtime/Opcodes.h"
#include "weipipe/runtime/Status.h"

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace weipipe::rt::cpu {

//===----------------------------------------------------------------------===//
// Small helpers: Shape, Span, Status, threads
//===----------------------------------------------------------------------===//

using rt::kMaxRank;

/// A static shape of rank 0..kMaxRank. Rank 0 is a scalar (one element).
struct Shape {
  int rank = 0;
  int64_t dims[kMaxRank] = {};

  Shape() = default;
  Shape(std::initializer_list<int64_t> d);
  Shape(const int64_t *d, int rank);
  explicit Shape(const std::vector<int64_t> &d)
      : Shape(d.data(), int(d.size())) {}

  int64_t operator[](int i) const { return dims[i]; }
  int64_t numel() const;
  bool operator==(const Shape &o) const;
  bool operator!=(const Shape &o) const { return !(*this == o); }
  std::string str() const; ///< "[2, 3, 4]"
};

/// A read-only view of `size` elements (an attribute array, a list of
/// pointers). Converts from std::vector and from a braced list (the list must
/// outlive the call, which a temporary argument does).
template <typename T> struct Span {
  const T *data = nullptr;
  size_t size = 0;
  Span() = default;
  Span(const T *d, size_t n) : data(d), size(n) {}
  Span(const std::vector<T> &v) : data(v.data()), size(v.size()) {}
  // Safe for arguments: a braced list lives until the end of the full
  // expression, i.e. the whole kernel call. Never store a Span built this way.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winit-list-lifetime"
#endif
  Span(const std::initializer_list<T> &l) : data(l.begin()), size(l.size()) {}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
  const T &operator[](size_t i) const { return data[i]; }
  const T *begin() const { return data; }
  const T *end() const { return data + size; }
};

using rt::Status; // Status.h

/// OpenMP thread count used by the kernels (1 without OpenMP).
int num_threads();
/// Sets the OpenMP thread count for later kernel calls (no-op without OpenMP).
void set_num_threads(int n);

//===----------------------------------------------------------------------===//
// Elementwise: broadcast binary ops (nn.add sub mul div pow max min)
//===----------------------------------------------------------------------===//

/// NumPy broadcasting: aligned at the trailing dimension, a 1 stretches.
/// Returns false if the shapes do not broadcast.
bool broadcast_shape(const Shape &a, const Shape &b, Shape *out);

using rt::BinaryOp; // Opcodes.h, as the instructions carry them

/// out = a OP b elementwise with broadcasting; `out` has
/// broadcast_shape(as, bs). Pow is float-only, the bitwise ops integer-only;
/// Div on integers truncates toward zero. Defined for T = float, int64_t,
/// int32_t.
template <typename T>
void binary_forward(BinaryOp op, const T *a, const Shape &as, const T *b,
                    const Shape &bs, T *out);

/// Gradients of L through out = a OP b: da (shape as) and db (shape bs) are
/// WRITTEN, summing dout over the dimensions each operand was broadcast along.
///   add: da = dout, db = dout          sub: da = dout, db = -dout
///   mul: da = dout*b, db = dout*a      div: da = dout/b, db = -dout*a/b^2
///   pow: da = dout*b*a^(b-1) (0 where b == 0),
///        db = dout*a^b*log(a)  (0 where a == 0 and b >= 0)     [PyTorch]
///   max: the larger operand gets dout; on a tie each gets dout/2 [PyTorch]
///   min: the smaller operand gets dout; on a tie each gets dout/2
void binary_backward(BinaryOp op, const float *a, const Shape &as,
                     const float *b, const Shape &bs, const float *dout,
                     float *da, float *db);

//===----------------------------------------------------------------------===//
// Elementwise: comparisons, logic, where, is_nan, cast (forward only unless
// stated)
//===----------------------------------------------------------------------===//

using rt::CompareOp;

/// out[i] = (a OP b) ? 1 : 0 with broadcasting. T = float, int64_t, int32_t,
/// uint8_t (bool equal).
template <typename T>
void compare_forward(CompareOp op, const T *a, const Shape &as, const T *b,
                     const Shape &bs, uint8_t *out);

using rt::LogicOp;

/// nn.and / nn.or on i1 with broadcasting; inputs nonzero = true, output 0/1.
void logic_forward(LogicOp op, const uint8_t *a, const Shape &as,
                   const uint8_t *b, const Shape &bs, uint8_t *out);
/// nn.not: y = !x (0/1).
void not_forward(const uint8_t *x, uint8_t *y, int64_t n);
/// nn.is_nan: y = isnan(x) (0/1).
void is_nan_forward(const float *x, uint8_t *y, int64_t n);

/// nn.where: out = cond ? a : b, all three broadcast to `outShape` (which
/// must be their common broadcast shape). T = float, int64_t, int32_t, uint8_t.
template <typename T>
void where_forward(const uint8_t *cond, const Shape &cs, const T *a,
                   const Shape &as, const T *b, const Shape &bs, T *out,
                   const Shape &outShape);

/// Backward of where: da = sum_to_shape(cond ? dout : 0, as),
/// db = sum_to_shape(cond ? 0 : dout, bs); both WRITTEN.
void where_backward(const uint8_t *cond, const Shape &cs, const Shape &as,
                    const Shape &bs, const float *dout, const Shape &outShape,
                    float *da, float *db);

/// nn.cast between the types the CPU backend uses. Float to integer truncates
/// toward zero (NaN and out-of-range values are undefined, as in C);
/// anything to bool is `x != 0`; bool to float/int is 0 or 1.
void cast(const float *x, int64_t *y, int64_t n);
void cast(const int64_t *x, float *y, int64_t n);
void cast(const float *x, int32_t *y, int64_t n);
void cast(const int32_t *x, float *y, int64_t n);
void cast(const int32_t *x, int64_t *y, int64_t n);
void cast(const int64_t *x, int32_t *y, int64_t n);
void cast(const float *x, uint8_t *y, int64_t n);
void cast(const uint8_t *x, float *y, int64_t n);
void cast(const int64_t *x, uint8_t *y, int64_t n);
void cast(const uint8_t *x, int64_t *y, int64_t n);

//===----------------------------------------------------------------------===//
// Elementwise: unary ops and activations (same shape in and out)
//===----------------------------------------------------------------------===//

using rt::UnaryOp;

/// y = f(x) for n elements; y may alias x.
void unary_forward(UnaryOp op, const float *x, float *y, int64_t n);
/// dx = dy * f'(x), WRITTEN. `y` is the forward output (used by exp, sqrt,
/// reciprocal, tanh, sigmoid; may be nullptr for the others). Conventions at
/// the kinks follow PyTorch: abs'(0) = 0, relu'(0) = 0.
void unary_backward(UnaryOp op, const float *x, const float *y, const float *dy,
                    float *dx, int64_t n);

using rt::GeluApprox;

/// None: y = 0.5 x (1 + erf(x / sqrt 2)).
/// Tanh: y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
void gelu_forward(const float *x, float *y, int64_t n, GeluApprox approx);
/// dx = dy * gelu'(x), WRITTEN.
void gelu_backward(const float *x, const float *dy, float *dx, int64_t n,
                   GeluApprox approx);

/// y = x * sigmoid(x).
void silu_forward(const float *x, float *y, int64_t n);
/// dx = dy * sigmoid(x) * (1 + x (1 - sigmoid(x))), WRITTEN.
void silu_backward(const float *x, const float *dy, float *dx, int64_t n);

/// nn.swiglu: y = silu(gate) * up.
void swiglu_forward(const float *gate, const float *up, float *y, int64_t n);
/// dgate = dy * up * silu'(gate), dup = dy * silu(gate); both WRITTEN.
void swiglu_backward(const float *gate, const float *up, const float *dy,
                     float *dgate, float *dup, int64_t n);

//===----------------------------------------------------------------------===//
// Reductions, softmax
//===----------------------------------------------------------------------===//

using rt::ReduceOp;

/// The result shape of a reduction over `axes` (sorted, unique, in
/// [0, rank)). `keepdims` only changes the shape, never the data layout.
Shape reduce_shape(const Shape &xs, Span<int64_t> axes, bool keepdims);

/// nn.reduce_sum / reduce_mean / reduce_max over `axes`; y has
/// reduce_shape(xs, axes, *) elements.
void reduce_forward(ReduceOp op, const float *x, const Shape &xs,
                    Span<int64_t> axes, float *y);
/// The same on integers (counts and lengths computed from token ids): Sum and
/// Max only, exact, serial. Defined for T = int64_t, int32_t.
template <typename T>
void reduce_forward_int(ReduceOp op, const T *x, const Shape &xs,
                        Span<int64_t> axes, T *y);
/// dx (shape xs), WRITTEN: sum: dy broadcast back; mean: dy / count; max: dy
/// to the elements equal to the maximum, split evenly among ties (PyTorch's
/// amax rule). `x` and `y` are only read for Max (may be nullptr otherwise).
void reduce_backward(ReduceOp op, const float *x, const Shape &xs,
                     Span<int64_t> axes, const float *y, const float *dy,
                     float *dx);

/// dst = src summed down to `ds` (dst WRITTEN). `ds` must broadcast to `ss`
/// (trailing-aligned, each dim 1 or equal): this is the backward of
/// broadcast_to and of broadcasting in general.
void sum_to_shape(const float *src, const Shape &ss, float *dst,
                  const Shape &ds);

/// y = softmax(x) along `axis`: exp(x - max) / sum exp(x - max). A row of all
/// -inf gives NaN (as PyTorch).
void softmax_forward(const float *x, const Shape &s, int axis, float *y);
/// dx = y * (dy - sum(dy * y)) along axis, WRITTEN.
void softmax_backward(const float *y, const float *dy, const Shape &s, int axis,
                      float *dx);
/// y = x - max - log(sum exp(x - max)) along `axis`.
void log_softmax_forward(const float *x, const Shape &s, int axis, float *y);
/// dx = dy - exp(y) * sum(dy) along axis, WRITTEN.
void log_softmax_backward(const float *y, const float *dy, const Shape &s,
                          int axis, float *dx);

//===----------------------------------------------------------------------===//
// Data movement (templates are instantiated for float, int64_t, int32_t and
// uint8_t). nn.reshape is a no-op on the data: the same buffer, reinterpreted.
//===----------------------------------------------------------------------===//

/// Result dim i is input dim perm[i].
Shape transpose_shape(const Shape &xs, Span<int64_t> perm);
template <typename T>
void transpose(const T *x, const Shape &xs, Span<int64_t> perm, T *y);
/// dx = transpose(dy, inverse(perm)), WRITTEN. `xs` is the forward input's
/// shape.
void transpose_backward(const float *dy, const Shape &xs, Span<int64_t> perm,
                        float *dx);

/// nn.broadcast: y (shape ys) = x stretched by NumPy rules. Backward is
/// sum_to_shape(dy, ys, dx, xs).
template <typename T>
void broadcast_to(const T *x, const Shape &xs, T *y, const Shape &ys);

/// nn.concat: inputs (all dims equal but `axis`) joined along `axis`.
template <typename T>
void concat(Span<const T *> inputs, Span<Shape> shapes, int axis, T *y);
/// The split: dinputs[i] = the slice of dy that input i filled, WRITTEN
/// (nullptr entries skipped).
void concat_backward(const float *dy, Span<Shape> shapes, int axis,
                     Span<float *> dinputs);

/// nn.slice with per-dim starts/ends/steps, already clamped as the op
/// requires (step > 0: 0 <= start <= end <= size; step < 0:
/// -1 <= end <= start < size). Result dim = number of indices taken.
Shape slice_shape(const Shape &xs, Span<int64_t> starts, Span<int64_t> ends,
                  Span<int64_t> steps);
template <typename T>
void slice(const T *x, const Shape &xs, Span<int64_t> starts,
           Span<int64_t> ends, Span<int64_t> steps, T *y);
/// dx = zeros(xs) with dy scattered to the sliced positions, WRITTEN.
void slice_backward(const float *dy, const Shape &xs, Span<int64_t> starts,
                    Span<int64_t> ends, Span<int64_t> steps, float *dx);

/// nn.gather (ONNX Gather): y[i.., j.., k..] = x[i.., idx[j..], k..] with
/// `axis` the gathered dim; `idx` has numIdx elements (its shape is irrelevant
/// to the data layout). Negative indices count from the end. An index outside
/// [-size, size) is an error (nothing written).
template <typename T>
Status gather(const T *x, const Shape &xs, int axis, const int64_t *idx,
              int64_t numIdx, T *y);
/// dx = zeros(xs) with dy scatter-added to the gathered positions (repeated
/// indices add up, in index order). WRITTEN, or added to dx with accumulate.
Status gather_backward(const float *dy, const Shape &xs, int axis,
                       const int64_t *idx, int64_t numIdx, float *dx,
                       bool accumulate = false);

/// nn.trilu over the last two dims [M, N] (rank >= 2): lower (upper = false)
/// keeps (i, j) with j <= i + k, upper keeps j >= i + k; the rest become 0.
/// It is linear and self-adjoint: the backward is trilu(dy) with the same
/// arguments.
template <typename T>
void trilu(const T *x, const Shape &xs, bool upper, int64_t k, T *y);

/// nn.band: y[.., i, j] = diagonals[j - i + M - 1] over the last two dims
/// [M, N] of ys, the same for every leading index.
template <typename T> void band(const T *diagonals, const Shape &ys, T *y);

/// nn.topk_indices: for each row of the last axis of x (shape xs), the
/// indices of the k largest (smallest) values in order, ties broken by the
/// lower index; NaN counts as the largest.
void topk_indices(const float *x, const Shape &xs, int64_t k, bool largest,
                  int64_t *y);

/// nn.scatter_elements: y = data (shape ds), then y[.., idx[p], ..] =
/// updates[p] along `axis` for every position p of idx (shape is, the
/// updates' shape). Fails on an index out of range.
template <typename T>
Status scatter_elements(const T *data, const Shape &ds, const int64_t *idx,
                        const Shape &is, const T *updates, int axis, T *y);

/// nn.cumsum (ONNX CumSum): y[.., i, ..] = sum of x[.., j, ..] over j <= i
/// along `axis` (j < i when `exclusive`; j >= i, j > i when `reverse`),
/// summed in order in T. Its gradient is the cumsum of dy with `reverse`
/// flipped.
template <typename T>
void cumsum(const T *x, const Shape &xs, int axis, bool exclusive, bool reverse,
            T *y);

//===----------------------------------------------------------------------===//
// GEMM, matmul, linear
//===----------------------------------------------------------------------===//

/// C[M,N] = alpha * op(A) op(B) + beta * C, row-major, op = transpose if the
/// flag is set (A is [K,M] when transA, B is [N,K] when transB), by
/// cblas_sgemm; with beta == 0, C is not read. Large ones run as blocks of
/// rows or columns whose sizes depend on M, N and K alone (threaded unless
/// called inside a parallel region), so the result is the same on any
/// thread count.
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K,
          float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
          float beta, float *C, int64_t ldc);
/// The same as one cblas_sgemm call on the calling thread: for kernels that
/// divide their work into tasks themselves (attention's blocks).
void gemmInTask(bool transA, bool transB, int64_t M, int64_t N, int64_t K,
                float alpha, const float *A, int64_t lda, const float *B,
                int64_t ldb, float beta, float *C, int64_t ldc);

/// nn.matmul result shape (ONNX/NumPy): [..., M, K] x [..., K, N] with the
/// batch dims broadcast; a rank-1 lhs is [1, K] and a rank-1 rhs [K, 1], the
/// promoted dim removed from the result.
Shape matmul_shape(const Shape &as, const Shape &bs);
/// c = a @ b. Unbatched rhs ([K,N] or [K]) runs as one GEMM over all rows of
/// a; otherwise one GEMM per result batch.
void matmul_forward(const float *a, const Shape &as, const float *b,
                    const Shape &bs, float *c);
/// da = dc @ b^T and db = a^T @ dc, each summed over the batch dims its
/// operand was broadcast along. WRITTEN (added with accumulate).
void matmul_backward(const float *a, const Shape &as, const float *b,
                     const Shape &bs, const float *dc, float *da, float *db,
                     bool accumulate = false);

/// nn.linear over M rows: y[M,N] = x[M,K] W (+ bias[N]). W is [K,N], or [N,K]
/// (PyTorch's layout, used transposed) with transposeWeight. bias may be
/// nullptr.
void linear_forward(const float *x, const float *w, const float *bias, float *y,
                    int64_t M, int64_t K, int64_t N, bool transposeWeight);
/// dx = dy W^T (WRITTEN), dW += x^T dy (or dy^T x for [N,K]; ACCUMULATED),
/// dbias += column sums of dy (ACCUMULATED).
void linear_backward(const float *x, const float *w, const float *dy, float *dx,
                     float *dw, float *dbias, int64_t M, int64_t K, int64_t N,
                     bool transposeWeight);

//===----------------------------------------------------------------------===//
// Normalization
//===----------------------------------------------------------------------===//

/// nn.layer_norm over the trailing normSize elements of each of `rows` rows
/// (normSize = product of input.shape[axis:]):
///   mean = sum x / n, var = sum (x - mean)^2 / n (biased),
///   rstd = 1 / sqrt(var + eps), y = (x - mean) * rstd * scale + bias.
/// scale/bias are the normalized shape flattened to [normSize]; bias may be
/// nullptr. mean/rstd [rows] are saved for backward (may be nullptr). With y
/// nullptr only the statistics are computed (scale and bias are not read).
void layer_norm_forward(const float *x, const float *scale, const float *bias,
                        float *y, float *mean, float *rstd, int64_t rows,
                        int64_t normSize, float eps);
/// With xhat = (x - mean) rstd and g = dy * scale:
///   dx = rstd (g - mean(g) - xhat mean(g xhat))         WRITTEN
///   dscale += sum_rows dy xhat, dbias += sum_rows dy    ACCUMULATED
/// Any of dx, dscale, dbias may be nullptr; scale is only read for dx.
void layer_norm_backward(const float *x, const float *scale, const float *mean,
                         const float *rstd, const float *dy, float *dx,
                         float *dscale, float *dbias, int64_t rows,
                         int64_t normSize);

/// nn.rms_norm: rstd = 1 / sqrt(mean(x^2) + eps), y = x rstd scale.
/// rstd [rows] is saved (may be nullptr). With y nullptr only rstd is
/// computed.
void rms_norm_forward(const float *x, const float *scale, float *y, float *rstd,
                      int64_t rows, int64_t normSize, float eps);
/// With xhat = x rstd and g = dy * scale:
///   dx = rstd (g - xhat mean(g xhat))   WRITTEN
///   dscale += sum_rows dy xhat          ACCUMULATED
/// dx or dscale may be nullptr; scale is only read for dx.
void rms_norm_backward(const float *x, const float *scale, const float *rstd,
                       const float *dy, float *dx, float *dscale, int64_t rows,
                       int64_t normSize);

//===----------------------------------------------------------------------===//
// Embedding, rotary
//===----------------------------------------------------------------------===//

/// nn.embedding: out[i, :] = table[ids[i], :], table [V, H], out [numIds, H].
/// An id outside [0, V) is an error (nothing written).
Status embedding_forward(const float *table, const int64_t *ids, float *out,
                         int64_t numIds, int64_t V, int64_t H);
/// dtable[ids[i], :] += dout[i, :] (ACCUMULATED; repeated ids add up in id
/// order), except for ids equal to `paddingIdx` (-1: none), as PyTorch's
/// nn.Embedding(padding_idx). Out-of-range ids are an error (nothing
/// written).
Status embedding_backward(const int64_t *ids, const float *dout, float *dtable,
                          int64_t numIds, int64_t V, int64_t H,
                          int64_t paddingIdx = -1);

/// nn.rotary sizes. Input/output [B, H, S, D]; cos/sin [S, rotaryDim/2], or
/// [B, S, rotaryDim/2] with tableHasBatch. rotaryDim is even and <= D.
struct RotaryDims {
  int64_t B = 1, H = 1, S = 1, D = 1;
  int64_t rotaryDim = 0;
  bool interleaved = false;
  bool tableHasBatch = false;
};
/// At position t, for each i in [0, rotaryDim/2) with c = cos[(b,) t, i] and
/// s = sin[(b,) t, i], the pair (x1, x2) becomes
///   y1 = x1 c - x2 s,   y2 = x2 c + x1 s.
/// Pairs are (i, i + rotaryDim/2) (rotate-half, GPT-NeoX/Llama) or
/// (2i, 2i+1) with interleaved. Features >= rotaryDim are copied. y may
/// alias x.
void rotary_forward(const float *x, const float *cos, const float *sin,
                    float *y, const RotaryDims &d);
/// dx = the transposed rotation of dy (dx1 = dy1 c + dy2 s,
/// dx2 = dy2 c - dy1 s), pass-through features copied; WRITTEN. cos/sin are
/// constants (no gradient). dx may alias dy.
void rotary_backward(const float *dy, const float *cos, const float *sin,
                     float *dx, const RotaryDims &d);

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

/// Memory layout of q, k, v and the output. BHSD: [B, H, S, D] (nn.attention
/// rank 4). BSHD: [B, S, H, D], which is the rank-3 form [B, S, H*D].
enum class AttentionLayout { BHSD, BSHD };

enum class MaskKind { None, Additive, Keep };

/// An optional mask broadcastable (NumPy rules, rank <= 4) to [B, H, Sq, Sk]:
/// Additive adds a float (possibly -inf) to the scaled scores; Keep (i1) keeps
/// the score where nonzero and masks it otherwise.
struct AttentionMask {
  MaskKind kind = MaskKind::None;
  const float *additive = nullptr;
  const uint8_t *keep = nullptr;
  Shape shape;
};

struct AttentionParams {
  int64_t B = 1, H = 1, Hkv = 1, Sq = 1, Sk = 1, D = 1, Dv = 1;
  AttentionLayout layout = AttentionLayout::BHSD;
  bool causal = false; ///< key j allowed for query i iff j <= i (top-left)
  float scale = 1.0f;
  AttentionMask mask;
};

/// nn.attention: out = softmax(q k^T scale + mask) v per head, query head h
/// using kv head h / (H / Hkv). q [B,H,Sq,D], k [B,Hkv,Sk,D], v [B,Hkv,Sk,Dv],
/// out [B,H,Sq,Dv] (or the BSHD forms). lse [B, H, Sq] (always this layout;
/// may be nullptr) receives logsumexp over the allowed keys of the scaled,
/// masked scores. A row with no allowed key gets out = 0 and lse = -inf
/// (PyTorch would give NaN).
void attention_forward(const AttentionParams &p, const float *q, const float *k,
                       const float *v, float *out, float *lse);
/// dq, dk, dv WRITTEN (dk/dv sum the contributions of all query heads of the
/// GQA group, in head order). Recomputes probabilities from lse, or from q
/// and k alone when lse is nullptr (cheaper than a forward pass for it); no
/// gradient for the mask.
void attention_backward(const AttentionParams &p, const float *q,
                        const float *k, const float *v, const float *out,
                        const float *lse, const float *dout, float *dq,
                        float *dk, float *dv);

//===----------------------------------------------------------------------===//
// Loss
//===----------------------------------------------------------------------===//

/// nn.cross_entropy over N rows of V logits:
///   loss = mean over rows with target != ignoreIndex of
///          (logsumexp(logits[r]) - logits[r, target[r]]),
/// summed in double in row order. lse [N] receives every row's logsumexp.
/// numValid (optional) receives the number of rows counted. With no valid row
/// the loss is 0 (PyTorch gives NaN). A target outside [0, V) that is not
/// ignoreIndex is an error (nothing written).
Status cross_entropy_forward(const float *logits, const int64_t *targets,
                             int64_t N, int64_t V, int64_t ignoreIndex,
                             float *loss, float *lse,
                             int64_t *numValid = nullptr);
/// dlogits[r] = dloss / numValid * (softmax(logits[r]) - onehot(target[r]))
/// for valid rows, 0 for ignored rows; WRITTEN. dlogits may alias logits
/// (the gradient overwrites the logits in place).
void cross_entropy_backward(const float *logits, const int64_t *targets,
                            const float *lse, float dloss, int64_t N, int64_t V,
                            int64_t ignoreIndex, float *dlogits);

//===----------------------------------------------------------------------===//
// Optimizer
//===----------------------------------------------------------------------===//

/// Hyperparameters in double, as PyTorch holds them (Python floats).
struct AdamWConfig {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weightDecay = 1e-2;
};

/// One torch.optim.AdamW step (step >= 1 counts from 1) on n elements, with
/// g' = g * gradScale (gradient clipping):
///   p *= 1 - lr wd
///   m += (1 - beta1) (g' - m);   v = beta2 v + (1 - beta2) g'^2
///   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
/// Scalar coefficients (bias corrections, step size, 1 - lr wd) are computed in
/// double and rounded to float once; the elementwise update is float.
void adamw_step(float *p, const float *g, float *m, float *v, int64_t n,
                const AdamWConfig &c, int64_t step, float gradScale = 1.0f);

/// sum x^2 in double (fixed chunks, added in order).
double sum_of_squares(const float *x, int64_t n);
/// sqrt(sum over tensors of sum_of_squares), tensors added in order.
double global_norm(Span<const float *> tensors, Span<int64_t> sizes);
/// torch.nn.utils.clip_grad_norm_'s factor: min(1, maxNorm / (norm + 1e-6)).
float clip_scale(double norm, double maxNorm);

} // namespace weipipe::rt::cpu

#endif // WEIPIPE_RUNTIME_CPU_KERNELS_H
