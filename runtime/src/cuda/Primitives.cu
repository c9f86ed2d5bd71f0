//===- Primitives.cu - broadcast elementwise, reductions, softmax ---------===//
//
// Part of weipipe's runtime (CUDA backend). The compute half of
// cuda/Primitives.h (Movement.cu has the data movement):
//
//  * Every operand is a DevTensor whose storage is known only at run time:
//    loadF/loadI/storeF/storeI switch on it per element (these ops are
//    memory-bound and rare). Float math is fp32 when an operand is stored as
//    f32 or bf16, integer math int64 otherwise (bool reads as 0/1).
//  * Broadcasting and summing over broadcast dimensions share one host-built
//    `Plan`: the output (target) shape aligned to a full-size shape `os`,
//    each operand's element strides over the dims of `os` (0 where the
//    operand is 1 or missing), and the dims of `os` the target is 1 along
//    (the reduced dims). One thread per target element computes its
//    operands' base offsets, then walks the reduced dims in row-major order
//    (increasing source order), accumulating in fp32: deterministic, no
//    atomics. Plain broadcasts are the plans with nothing reduced.
//  * binary_backward has no workspace: each da (db) element evaluates the
//    local derivative at every dout position that maps to it, on the fly.
//  * reduce max backward: one thread per reduced (y) element counts the ties,
//    then writes each dx element of its group once.
//  * softmax / log-softmax view the tensor as [outer, n, inner]: one block
//    per row with block reductions when inner == 1, else one thread per
//    (outer, inner) line. cumsum: one thread per line, in order.
//
//===----------------------------------------------------------------------===//

#include "Common.cuh"

#include "weipipe/runtime/cuda/Primitives.h"

#include <cmath>
#include <string>

namespace weipipe::rt::cuda {
using namespace detail;

namespace {

constexpr int kThreads = 256;
constexpr int kOps = 3; ///< operands a plan carries strides for

/// A device operand without its shape (the plan carries the strides).
struct Ref {
  void *p;
  Storage t;
};

Ref ref(const DevTensor &d) { return Ref{d.p, d.t}; }

bool isFloat(Storage t) { return t == Storage::F32 || t == Storage::BF16; }

//===----------------------------------------------------------------------===//
// Element loads and stores
//===----------------------------------------------------------------------===//

__device__ __forceinline__ float loadF(Ref r, int64_t i) {
  switch (r.t) {
  case Storage::F32:
    return static_cast<const float *>(r.p)[i];
  case Storage::BF16:
    return __bfloat162float(static_cast<const bf16 *>(r.p)[i]);
  case Storage::I64:
    return float(static_cast<const int64_t *>(r.p)[i]);
  case Storage::I32:
    return float(static_cast<const int32_t *>(r.p)[i]);
  case Storage::Bool:
    return static_cast<const uint8_t *>(r.p)[i] ? 1.0f : 0.0f;
  }
  return 0.0f;
}

__device__ __forceinline__ int64_t loadI(Ref r, int64_t i) {
  switch (r.t) {
  case Storage::F32:
    return int64_t(static_cast<const float *>(r.p)[i]);
  case Storage::BF16:
    return int64_t(__bfloat162float(static_cast<const bf16 *>(r.p)[i]));
  case Storage::I64:
    return static_cast<const int64_t *>(r.p)[i];
  case Storage::I32:
    return static_cast<const int32_t *>(r.p)[i];
  case Storage::Bool:
    return static_cast<const uint8_t *>(r.p)[i] ? 1 : 0;
  }
  return 0;
}

__device__ __forceinline__ void storeF(Ref r, int64_t i, float v) {
  switch (r.t) {
  case Storage::F32:
    static_cast<float *>(r.p)[i] = v;
    return;
  case Storage::BF16:
    static_cast<bf16 *>(r.p)[i] = __float2bfloat16_rn(v);
    return;
  case Storage::I64:
    static_cast<int64_t *>(r.p)[i] = int64_t(v);
    return;
  case Storage::I32:
    static_cast<int32_t *>(r.p)[i] = int32_t(v);
    return;
  case Storage::Bool:
    static_cast<uint8_t *>(r.p)[i] = v != 0.0f ? 1 : 0;
    return;
  }
}

__device__ __forceinline__ void storeI(Ref r, int64_t i, int64_t v) {
  switch (r.t) {
  case Storage::F32:
    static_cast<float *>(r.p)[i] = float(v);
    return;
  case Storage::BF16:
    static_cast<bf16 *>(r.p)[i] = __float2bfloat16_rn(float(v));
    return;
  case Storage::I64:
    static_cast<int64_t *>(r.p)[i] = v;
    return;
  case Storage::I32:
    static_cast<int32_t *>(r.p)[i] = int32_t(v);
    return;
  case Storage::Bool:
    static_cast<uint8_t *>(r.p)[i] = v != 0 ? 1 : 0;
    return;
  }
}

//===----------------------------------------------------------------------===//
// Plans: broadcast strides and reduced dims
//===----------------------------------------------------------------------===//

struct Plan {
  int rank;                   ///< rank of os
  int64_t tdims[kMaxRank];    ///< target dims over os (1: reduced)
  int64_t st[kOps][kMaxRank]; ///< operand strides over os
  int nred;                   ///< reduced dims, outermost first
  int64_t rdims[kMaxRank];
  int64_t rst[kOps][kMaxRank]; ///< operand strides along them
  int64_t count;               ///< product of rdims
};

/// Operand element offsets of target element i (the reduction's start).
template <int N>
__device__ __forceinline__ void baseOffsets(const Plan &p, int64_t i,
                                            int64_t *off) {
#pragma unroll
  for (int k = 0; k < N; ++k)
    off[k] = 0;
  for (int d = p.rank - 1; d >= 0; --d) {
    const int64_t s = p.tdims[d];
    const int64_t c = i % s;
    i /= s;
#pragma unroll
    for (int k = 0; k < N; ++k)
      off[k] += c * p.st[k][d];
  }
}

/// Operand offsets of the j-th reduced position (row-major) from `base`.
template <int N>
__device__ __forceinline__ void redOffsets(const Plan &p, int64_t j,
                                           const int64_t *base, int64_t *off) {
#pragma unroll
  for (int k = 0; k < N; ++k)
    off[k] = base[k];
  for (int d = p.nred - 1; d >= 0; --d) {
    const int64_t s = p.rdims[d];
    const int64_t c = j % s;
    j /= s;
#pragma unroll
    for (int k = 0; k < N; ++k)
      off[k] += c * p.rst[k][d];
  }
}

/// Element strides of `s` (trailing-aligned) over `os`; false if `s` does not
/// broadcast to `os`.
bool broadcastStrides(const cpu::Shape &s, const cpu::Shape &os, int64_t *st) {
  if (s.rank > os.rank)
    return false;
  const int lead = os.rank - s.rank;
  int64_t stride = 1;
  for (int d = os.rank - 1; d >= 0; --d) {
    if (d < lead) {
      st[d] = 0;
      continue;
    }
    const int64_t n = s.dims[d - lead];
    if (n != 1 && n != os.dims[d])
      return false;
    st[d] = n == 1 ? 0 : stride;
    stride *= n;
  }
  return true;
}

/// A plan over `os` producing `target` (which must broadcast to os), with
/// the operands `ops` (each broadcasting to os).
bool makePlan(const cpu::Shape &os, const cpu::Shape &target,
              const cpu::Shape *ops, int nops, Plan *p) {
  *p = Plan{};
  p->rank = os.rank;
  int64_t tst[kMaxRank];
  if (!broadcastStrides(target, os, tst))
    return false;
  for (int k = 0; k < nops; ++k)
    if (!broadcastStrides(ops[k], os, p->st[k]))
      return false;
  const int lead = os.rank - target.rank;
  p->count = 1;
  for (int d = 0; d < os.rank; ++d) {
    const int64_t t = d < lead ? 1 : target.dims[d - lead];
    if (t == os.dims[d]) {
      p->tdims[d] = t;
      continue;
    }
    p->tdims[d] = 1; // t == 1 along a dim of os that is not 1: reduced
    p->rdims[p->nred] = os.dims[d];
    for (int k = 0; k < nops; ++k)
      p->rst[k][p->nred] = p->st[k][d];
    ++p->nred;
    p->count *= os.dims[d];
  }
  return true;
}

Status shapeError(const char *op, const cpu::Shape &a, const cpu::Shape &b) {
  return Status::error(std::string("cuda ") + op + ": " + a.str() + " and " +
                       b.str() + " do not broadcast");
}

Status storageError(const char *op, Storage t) {
  return Status::error(std::string("cuda ") + op + ": storage " +
                       storageName(t) + " is not supported");
}

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

/// f(plan, i, base offsets) for every target element i.
template <int N, class F> __global__ void planKernel(Plan p, int64_t n, F f) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    int64_t base[N];
    baseOffsets<N>(p, i, base);
    f(p, i, base);
  }
}

/// f(i) for every element i.
template <class F> __global__ void mapKernel(int64_t n, F f) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    f(i);
}

template <int N, class F>
Status runPlan(const char *name, const Plan &p, int64_t n, cudaStream_t s,
               F f) {
  if (n <= 0)
    return Status();
  launch(planKernel<N, F>, blocksFor(n, kThreads), kThreads, 0, s, p, n, f);
  return launched(name);
}

template <class F>
Status runMap(const char *name, int64_t n, cudaStream_t s, F f) {
  if (n <= 0)
    return Status();
  launch(mapKernel<F>, blocksFor(n, kThreads), kThreads, 0, s, n, f);
  return launched(name);
}

// NaN-propagating max/min, as the CPU kernels.
__device__ __forceinline__ float maxOf(float a, float b) {
  return (a > b || a != a) ? a : b;
}
__device__ __forceinline__ float minOf(float a, float b) {
  return (a < b || a != a) ? a : b;
}

__device__ __forceinline__ float binaryF(BinaryOp op, float a, float b) {
  switch (op) {
  case BinaryOp::Add:
    return a + b;
  case BinaryOp::Sub:
    return a - b;
  case BinaryOp::Mul:
    return a * b;
  case BinaryOp::Div:
    return a / b;
  case BinaryOp::Pow:
    return powf(a, b);
  case BinaryOp::Max:
    return maxOf(a, b);
  case BinaryOp::Min:
    return minOf(a, b);
  default: // bitwise: rejected on the host
    return 0.0f;
  }
}

__device__ __forceinline__ int64_t binaryI(BinaryOp op, int64_t a, int64_t b) {
  // Add/Sub/Mul wrap (two's complement, through unsigned: no UB).
  const uint64_t ua = uint64_t(a), ub = uint64_t(b);
  switch (op) {
  case BinaryOp::Add:
    return int64_t(ua + ub);
  case BinaryOp::Sub:
    return int64_t(ua - ub);
  case BinaryOp::Mul:
    return int64_t(ua * ub);
  case BinaryOp::Div: // truncating; x / 0 = 0 as the CPU kernel
    if (b == 0)
      return 0;
    if (b == -1)
      return int64_t(uint64_t(0) - ua);
    return a / b;
  case BinaryOp::Max:
    return a > b ? a : b;
  case BinaryOp::Min:
    return a < b ? a : b;
  case BinaryOp::BitAnd:
    return a & b;
  case BinaryOp::BitOr:
    return a | b;
  case BinaryOp::BitXor:
    return a ^ b;
  default: // Pow: rejected on the host
    return 0;
  }
}

/// d(a op b)/da * g (the CPU kernel's BinaryGrad::da).
__device__ __forceinline__ float gradA(BinaryOp op, float a, float b, float g) {
  switch (op) {
  case BinaryOp::Add:
  case BinaryOp::Sub:
    return g;
  case BinaryOp::Mul:
    return g * b;
  case BinaryOp::Div:
    return g / b;
  case BinaryOp::Pow:
    return b == 0.0f ? 0.0f : g * b * powf(a, b - 1.0f);
  case BinaryOp::Max:
    return a > b ? g : (a == b ? 0.5f * g : 0.0f);
  case BinaryOp::Min:
    return a < b ? g : (a == b ? 0.5f * g : 0.0f);
  default:
    return 0.0f;
  }
}

/// d(a op b)/db * g (BinaryGrad::db).
__device__ __forceinline__ float gradB(BinaryOp op, float a, float b, float g) {
  switch (op) {
  case BinaryOp::Add:
    return g;
  case BinaryOp::Sub:
    return -g;
  case BinaryOp::Mul:
    return g * a;
  case BinaryOp::Div:
    return -g * a / (b * b);
  case BinaryOp::Pow:
    return (a == 0.0f && b >= 0.0f) ? 0.0f : g * powf(a, b) * logf(a);
  case BinaryOp::Max:
    return b > a ? g : (a == b ? 0.5f * g : 0.0f);
  case BinaryOp::Min:
    return b < a ? g : (a == b ? 0.5f * g : 0.0f);
  default:
    return 0.0f;
  }
}

struct BinaryFwd {
  BinaryOp op;
  Ref a, b, out;
  bool floats;
  __device__ void operator()(const Plan &, int64_t i, const int64_t *o) const {
    if (floats)
      storeF(out, i, binaryF(op, loadF(a, o[0]), loadF(b, o[1])));
    else
      storeI(out, i, binaryI(op, loadI(a, o[0]), loadI(b, o[1])));
  }
};

/// One element of da (wantA) or db: the derivative summed over the dout
/// positions that map to it. Operands: a, b, dout.
struct BinaryGradSum {
  BinaryOp op;
  bool wantA;
  Ref a, b, dout, dst;
  __device__ void operator()(const Plan &p, int64_t i,
                             const int64_t *base) const {
    float acc = 0.0f;
    for (int64_t j = 0; j < p.count; ++j) {
      int64_t o[3];
      redOffsets<3>(p, j, base, o);
      const float x = loadF(a, o[0]), y = loadF(b, o[1]), g = loadF(dout, o[2]);
      acc += wantA ? gradA(op, x, y, g) : gradB(op, x, y, g);
    }
    storeF(dst, i, acc);
  }
};

struct CompareFwd {
  CompareOp op;
  Ref a, b, out;
  bool floats;
  __device__ void operator()(const Plan &, int64_t i, const int64_t *o) const {
    bool r;
    if (floats) {
      const float x = loadF(a, o[0]), y = loadF(b, o[1]);
      r = op == CompareOp::Equal ? x == y
                                 : (op == CompareOp::Less ? x < y : x > y);
    } else {
      const int64_t x = loadI(a, o[0]), y = loadI(b, o[1]);
      r = op == CompareOp::Equal ? x == y
                                 : (op == CompareOp::Less ? x < y : x > y);
    }
    storeI(out, i, r ? 1 : 0);
  }
};

struct LogicFwd {
  LogicOp op;
  Ref a, b, out;
  __device__ void operator()(const Plan &, int64_t i, const int64_t *o) const {
    const bool x = loadI(a, o[0]) != 0, y = loadI(b, o[1]) != 0;
    storeI(out, i, (op == LogicOp::And ? (x && y) : (x || y)) ? 1 : 0);
  }
};

/// Operands: cond, a, b.
struct WhereFwd {
  Ref cond, a, b, out;
  bool floats;
  __device__ void operator()(const Plan &, int64_t i, const int64_t *o) const {
    const bool c = loadI(cond, o[0]) != 0;
    if (floats)
      storeF(out, i, c ? loadF(a, o[1]) : loadF(b, o[2]));
    else
      storeI(out, i, c ? loadI(a, o[1]) : loadI(b, o[2]));
  }
};

/// Operands: cond, dout.
struct WhereGradSum {
  Ref cond, dout, dst;
  bool takeTrue;
  __device__ void operator()(const Plan &p, int64_t i,
                             const int64_t *base) const {
    float acc = 0.0f;
    for (int64_t j = 0; j < p.count; ++j) {
      int64_t o[2];
      redOffsets<2>(p, j, base, o);
      if ((loadI(cond, o[0]) != 0) == takeTrue)
        acc += loadF(dout, o[1]);
    }
    storeF(dst, i, acc);
  }
};

/// reduce_forward / sum_to_shape. Operand: x.
struct ReduceFwd {
  ReduceOp op;
  Ref x, y;
  bool floats;
  __device__ void operator()(const Plan &p, int64_t i,
                             const int64_t *base) const {
    if (floats) {
      float acc = op == ReduceOp::Max ? -INFINITY : 0.0f;
      for (int64_t j = 0; j < p.count; ++j) {
        int64_t o[1];
        redOffsets<1>(p, j, base, o);
        const float v = loadF(x, o[0]);
        acc = op == ReduceOp::Max ? ((v > acc || v != v) ? v : acc) : acc + v;
      }
      if (op == ReduceOp::Mean)
        acc /= float(p.count);
      storeF(y, i, acc);
      return;
    }
    const bool mx = op == ReduceOp::Max;
    int64_t acc = 0;
    if (mx)
      acc = x.t == Storage::I32 ? int64_t(INT32_MIN) : INT64_MIN;
    for (int64_t j = 0; j < p.count; ++j) {
      int64_t o[1];
      redOffsets<1>(p, j, base, o);
      const int64_t v = loadI(x, o[0]);
      acc = mx ? (v > acc ? v : acc) : int64_t(uint64_t(acc) + uint64_t(v));
    }
    storeI(y, i, acc);
  }
};

/// reduce max backward, one thread per y element. Operand: x (dx has its
/// layout).
struct ReduceMaxGrad {
  Ref x, y, dy, dx;
  __device__ void operator()(const Plan &p, int64_t i,
                             const int64_t *base) const {
    const float m = loadF(y, i);
    float ties = 0.0f;
    for (int64_t j = 0; j < p.count; ++j) {
      int64_t o[1];
      redOffsets<1>(p, j, base, o);
      ties += loadF(x, o[0]) == m ? 1.0f : 0.0f;
    }
    const float g = loadF(dy, i);
    for (int64_t j = 0; j < p.count; ++j) {
      int64_t o[1];
      redOffsets<1>(p, j, base, o);
      storeF(dx, o[0], loadF(x, o[0]) == m ? g / ties : 0.0f);
    }
  }
};

/// reduce sum/mean backward: dx = dy broadcast (times scale for mean).
/// Operand: dy.
struct ReduceGradBcast {
  Ref dy, dx;
  bool mean;
  float scale;
  __device__ void operator()(const Plan &, int64_t i, const int64_t *o) const {
    const float g = loadF(dy, o[0]);
    storeF(dx, i, mean ? g * scale : g);
  }
};

__device__ __forceinline__ float unaryF(UnaryOp op, float v) {
  switch (op) {
  case UnaryOp::Neg:
    return -v;
  case UnaryOp::Abs:
    return fabsf(v);
  case UnaryOp::Sqrt:
    return sqrtf(v);
  case UnaryOp::Reciprocal:
    return 1.0f / v;
  case UnaryOp::Exp:
    return expf(v);
  case UnaryOp::Log:
    return logf(v);
  case UnaryOp::Erf:
    return erff(v);
  case UnaryOp::Tanh:
    return tanhf(v);
  case UnaryOp::Sigmoid:
    return 1.0f / (1.0f + expf(-v));
  case UnaryOp::Relu:
    return v > 0.0f ? v : 0.0f;
  case UnaryOp::Sin:
    return sinf(v);
  case UnaryOp::Cos:
    return cosf(v);
  case UnaryOp::Floor:
    return floorf(v);
  case UnaryOp::Ceil:
    return ceilf(v);
  case UnaryOp::Sign: // NaN stays NaN
    return v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : v);
  }
  return 0.0f;
}

/// dy * f'(x) with r the forward output (CPU unary_backward).
__device__ __forceinline__ float unaryGrad(UnaryOp op, float v, float r,
                                           float g) {
  switch (op) {
  case UnaryOp::Neg:
    return -g;
  case UnaryOp::Abs:
    return v > 0.0f ? g : (v < 0.0f ? -g : 0.0f);
  case UnaryOp::Sqrt:
    return g * 0.5f / r;
  case UnaryOp::Reciprocal:
    return -g * r * r;
  case UnaryOp::Exp:
    return g * r;
  case UnaryOp::Log:
    return g / v;
  case UnaryOp::Erf:
    return g * 1.12837916709551257f * expf(-v * v); // 2 / sqrt(pi)
  case UnaryOp::Tanh:
    return g * (1.0f - r * r);
  case UnaryOp::Sigmoid:
    return g * r * (1.0f - r);
  case UnaryOp::Relu:
    return v > 0.0f ? g : 0.0f;
  case UnaryOp::Sin:
    return g * cosf(v);
  case UnaryOp::Cos:
    return -g * sinf(v);
  case UnaryOp::Floor:
  case UnaryOp::Ceil:
  case UnaryOp::Sign:
    return 0.0f;
  }
  return 0.0f;
}

struct UnaryFwd {
  UnaryOp op;
  Ref x, y;
  __device__ void operator()(int64_t i) const {
    storeF(y, i, unaryF(op, loadF(x, i)));
  }
};

struct UnaryBwd {
  UnaryOp op;
  Ref x, y, dy, dx; // x or y may be null where not read
  __device__ void operator()(int64_t i) const {
    const float v = x.p ? loadF(x, i) : 0.0f;
    const float r = y.p ? loadF(y, i) : 0.0f;
    storeF(dx, i, unaryGrad(op, v, r, loadF(dy, i)));
  }
};

struct CastAny {
  Ref x, y;
  __device__ void operator()(int64_t i) const {
    if (isFloatDev(x.t))
      storeF(y, i, loadF(x, i));
    else
      storeI(y, i, loadI(x, i));
  }
  __device__ static bool isFloatDev(Storage t) {
    return t == Storage::F32 || t == Storage::BF16;
  }
};

struct NotFwd {
  Ref x, y;
  __device__ void operator()(int64_t i) const {
    storeI(y, i, loadI(x, i) != 0 ? 0 : 1);
  }
};

struct IsNanFwd {
  Ref x, y;
  bool floats;
  __device__ void operator()(int64_t i) const {
    storeI(y, i, floats && isnan(loadF(x, i)) ? 1 : 0);
  }
};

//===----------------------------------------------------------------------===//
// Softmax and cumsum: [outer, n, inner]
//===----------------------------------------------------------------------===//

enum class SoftKind { Softmax, LogSoftmax, SoftmaxGrad, LogSoftmaxGrad };

/// One row (inner == 1) per block, grid-stride over rows. Forward: in = x,
/// out = y. Backward: in = y, in2 = dy, out = dx.
template <SoftKind K>
__global__ void softRowKernel(Ref in, Ref in2, Ref out, int64_t rows,
                              int64_t n) {
  __shared__ float shared[kWarp];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t base = r * n;
    if (K == SoftKind::Softmax || K == SoftKind::LogSoftmax) {
      float m = -INFINITY;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        m = fmaxf(m, loadF(in, base + j));
      m = blockMax(m, shared);
      float s = 0.0f;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        s += expf(loadF(in, base + j) - m);
      s = blockSum(s, shared);
      if (K == SoftKind::LogSoftmax) {
        const float off = m + logf(s);
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
          storeF(out, base + j, loadF(in, base + j) - off);
      } else {
        const float inv = 1.0f / s;
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
          storeF(out, base + j, expf(loadF(in, base + j) - m) * inv);
      }
    } else {
      float s = 0.0f;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        s += K == SoftKind::SoftmaxGrad
                 ? loadF(in2, base + j) * loadF(in, base + j)
                 : loadF(in2, base + j);
      s = blockSum(s, shared);
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        const float yv = loadF(in, base + j), g = loadF(in2, base + j);
        storeF(out, base + j,
               K == SoftKind::SoftmaxGrad ? yv * (g - s) : g - expf(yv) * s);
      }
    }
  }
}

/// One thread per (outer, inner) line, stride `inner` along the axis.
template <SoftKind K>
__global__ void softLineKernel(Ref in, Ref in2, Ref out, int64_t lines,
                               int64_t n, int64_t inner) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t l = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; l < lines;
       l += stride) {
    const int64_t base = (l / inner) * n * inner + l % inner;
    if (K == SoftKind::Softmax || K == SoftKind::LogSoftmax) {
      float m = -INFINITY;
      for (int64_t j = 0; j < n; ++j)
        m = fmaxf(m, loadF(in, base + j * inner));
      float s = 0.0f;
      for (int64_t j = 0; j < n; ++j)
        s += expf(loadF(in, base + j * inner) - m);
      const float off = m + logf(s), inv = 1.0f / s;
      for (int64_t j = 0; j < n; ++j) {
        const int64_t i = base + j * inner;
        storeF(out, i,
               K == SoftKind::LogSoftmax ? loadF(in, i) - off
                                         : expf(loadF(in, i) - m) * inv);
      }
    } else {
      float s = 0.0f;
      for (int64_t j = 0; j < n; ++j) {
        const int64_t i = base + j * inner;
        s += K == SoftKind::SoftmaxGrad ? loadF(in2, i) * loadF(in, i)
                                        : loadF(in2, i);
      }
      for (int64_t j = 0; j < n; ++j) {
        const int64_t i = base + j * inner;
        const float yv = loadF(in, i), g = loadF(in2, i);
        storeF(out, i,
               K == SoftKind::SoftmaxGrad ? yv * (g - s) : g - expf(yv) * s);
      }
    }
  }
}

__global__ void cumsumKernel(Ref x, Ref y, int64_t lines, int64_t n,
                             int64_t inner, bool exclusive, bool reverse,
                             bool floats) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t l = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; l < lines;
       l += stride) {
    const int64_t base = (l / inner) * n * inner + l % inner;
    float sf = 0.0f;
    int64_t si = 0;
    for (int64_t step = 0; step < n; ++step) {
      const int64_t i = base + (reverse ? n - 1 - step : step) * inner;
      if (floats) {
        const float v = loadF(x, i);
        if (!exclusive)
          sf += v;
        storeF(y, i, sf);
        if (exclusive)
          sf += v;
      } else {
        const int64_t v = loadI(x, i);
        if (!exclusive)
          si = int64_t(uint64_t(si) + uint64_t(v));
        storeI(y, i, si);
        if (exclusive)
          si = int64_t(uint64_t(si) + uint64_t(v));
      }
    }
  }
}

/// outer x n x inner around `axis`; false if the axis is out of range.
bool splitAxis(const cpu::Shape &s, int axis, int64_t *outer, int64_t *n,
               int64_t *inner) {
  if (axis < 0 || axis >= s.rank)
    return false;
  *outer = 1;
  *inner = 1;
  for (int i = 0; i < axis; ++i)
    *outer *= s.dims[i];
  for (int i = axis + 1; i < s.rank; ++i)
    *inner *= s.dims[i];
  *n = s.dims[axis];
  return true;
}

template <SoftKind K>
Status runSoft(const char *name, DevTensor in, DevTensor in2, DevTensor out,
               int axis, cudaStream_t stream) {
  int64_t outer, n, inner;
  if (!splitAxis(in.s, axis, &outer, &n, &inner))
    return Status::error(std::string("cuda ") + name + ": axis " +
                         std::to_string(axis) + " out of range for " +
                         in.s.str());
  if (!isFloat(in.t) || !isFloat(out.t) || (in2.p && !isFloat(in2.t)))
    return storageError(name, isFloat(in.t) ? out.t : in.t);
  if (out.numel() != in.numel() || (in2.p && in2.numel() != in.numel()))
    return Status::error(std::string("cuda ") + name +
                         ": element counts differ");
  if (in.numel() == 0)
    return Status();
  const int64_t lines = outer * inner;
  if (inner == 1) {
    const int64_t grid = lines < (int64_t(1) << 20) ? lines : (1 << 20);
    launch(softRowKernel<K>, unsigned(grid), kThreads, 0, stream, ref(in),
           ref(in2), ref(out), lines, n);
  } else {
    launch(softLineKernel<K>, blocksFor(lines, kThreads), kThreads, 0, stream,
           ref(in), ref(in2), ref(out), lines, n, inner);
  }
  return launched(name);
}

/// sum_to_shape's body (src summed down to dst).
Status sumTo(const char *name, DevTensor src, DevTensor dst,
             cudaStream_t stream) {
  if (!isFloat(src.t))
    return storageError(name, src.t);
  Plan p;
  if (!makePlan(src.s, dst.s, &src.s, 1, &p))
    return shapeError(name, dst.s, src.s);
  return runPlan<1>(name, p, dst.numel(), stream,
                    ReduceFwd{ReduceOp::Sum, ref(src), ref(dst), true});
}

/// The keepdims reduced shape, or false if the axes are not sorted, unique
/// and in range.
bool keptShape(const cpu::Shape &xs, Span<int64_t> axes, cpu::Shape *ks) {
  *ks = xs;
  int64_t prev = -1;
  for (int64_t a : axes) {
    if (a <= prev || a >= xs.rank)
      return false;
    ks->dims[a] = 1;
    prev = a;
  }
  return true;
}

Status axesError(const char *name, const cpu::Shape &xs) {
  return Status::error(std::string("cuda ") + name +
                       ": axes must be sorted, unique and < rank of " +
                       xs.str());
}

} // namespace

//===----------------------------------------------------------------------===//
// Launchers
//===----------------------------------------------------------------------===//

int storageSize(Storage t) {
  switch (t) {
  case Storage::F32:
    return 4;
  case Storage::BF16:
    return 2;
  case Storage::I64:
    return 8;
  case Storage::I32:
    return 4;
  case Storage::Bool:
    return 1;
  }
  return 0;
}

const char *storageName(Storage t) {
  switch (t) {
  case Storage::F32:
    return "f32";
  case Storage::BF16:
    return "bf16";
  case Storage::I64:
    return "i64";
  case Storage::I32:
    return "i32";
  case Storage::Bool:
    return "bool";
  }
  return "?";
}

Status binary_forward(BinaryOp op, DevTensor a, DevTensor b, DevTensor out,
                      cudaStream_t stream) {
  const char *name = "binary_forward";
  const bool floats = isFloat(a.t) || isFloat(b.t);
  const bool bitwise =
      op == BinaryOp::BitAnd || op == BinaryOp::BitOr || op == BinaryOp::BitXor;
  if (floats && bitwise)
    return storageError("binary_forward (bitwise op)",
                        isFloat(a.t) ? a.t : b.t);
  if (!floats && op == BinaryOp::Pow)
    return storageError("binary_forward (pow)", a.t);
  const cpu::Shape ops[2] = {a.s, b.s};
  Plan p;
  if (!makePlan(out.s, out.s, ops, 2, &p))
    return shapeError(name, a.s, b.s);
  return runPlan<2>(name, p, out.numel(), stream,
                    BinaryFwd{op, ref(a), ref(b), ref(out), floats});
}

Status binary_backward(BinaryOp op, DevTensor a, DevTensor b, DevTensor dout,
                       DevTensor da, DevTensor db, cudaStream_t stream) {
  const char *name = "binary_backward";
  if (op == BinaryOp::BitAnd || op == BinaryOp::BitOr || op == BinaryOp::BitXor)
    return Status::error("cuda binary_backward: bitwise ops have no gradient");
  if (!isFloat(a.t) || !isFloat(b.t) || !isFloat(dout.t))
    return storageError(name, !isFloat(a.t)   ? a.t
                              : !isFloat(b.t) ? b.t
                                              : dout.t);
  const cpu::Shape ops[3] = {a.s, b.s, dout.s};
  for (int which = 0; which < 2; ++which) {
    const DevTensor &d = which == 0 ? da : db;
    if (!d.p)
      continue;
    Plan p;
    if (!makePlan(dout.s, which == 0 ? a.s : b.s, ops, 3, &p))
      return shapeError(name, a.s, b.s);
    Status s = runPlan<3>(
        name, p, d.numel(), stream,
        BinaryGradSum{op, which == 0, ref(a), ref(b), ref(dout), ref(d)});
    if (!s.ok())
      return s;
  }
  return Status();
}

Status compare_forward(CompareOp op, DevTensor a, DevTensor b, DevTensor out,
                       cudaStream_t stream) {
  const char *name = "compare_forward";
  const cpu::Shape ops[2] = {a.s, b.s};
  Plan p;
  if (!makePlan(out.s, out.s, ops, 2, &p))
    return shapeError(name, a.s, b.s);
  return runPlan<2>(
      name, p, out.numel(), stream,
      CompareFwd{op, ref(a), ref(b), ref(out), isFloat(a.t) || isFloat(b.t)});
}

Status logic_forward(LogicOp op, DevTensor a, DevTensor b, DevTensor out,
                     cudaStream_t stream) {
  const char *name = "logic_forward";
  const cpu::Shape ops[2] = {a.s, b.s};
  Plan p;
  if (!makePlan(out.s, out.s, ops, 2, &p))
    return shapeError(name, a.s, b.s);
  return runPlan<2>(name, p, out.numel(), stream,
                    LogicFwd{op, ref(a), ref(b), ref(out)});
}

Status not_forward(DevTensor x, DevTensor y, cudaStream_t stream) {
  return runMap("not_forward", y.numel(), stream, NotFwd{ref(x), ref(y)});
}

Status is_nan_forward(DevTensor x, DevTensor y, cudaStream_t stream) {
  return runMap("is_nan_forward", y.numel(), stream,
                IsNanFwd{ref(x), ref(y), isFloat(x.t)});
}

Status where_forward(DevTensor cond, DevTensor a, DevTensor b, DevTensor out,
                     cudaStream_t stream) {
  const char *name = "where_forward";
  const cpu::Shape ops[3] = {cond.s, a.s, b.s};
  Plan p;
  if (!makePlan(out.s, out.s, ops, 3, &p))
    return shapeError(name, a.s, b.s);
  return runPlan<3>(
      name, p, out.numel(), stream,
      WhereFwd{ref(cond), ref(a), ref(b), ref(out), isFloat(out.t)});
}

Status where_backward(DevTensor cond, DevTensor dout, DevTensor da,
                      DevTensor db, cudaStream_t stream) {
  const char *name = "where_backward";
  if (!isFloat(dout.t))
    return storageError(name, dout.t);
  const cpu::Shape ops[2] = {cond.s, dout.s};
  for (int which = 0; which < 2; ++which) {
    const DevTensor &d = which == 0 ? da : db;
    if (!d.p)
      continue;
    Plan p;
    if (!makePlan(dout.s, d.s, ops, 2, &p))
      return shapeError(name, d.s, dout.s);
    Status s =
        runPlan<2>(name, p, d.numel(), stream,
                   WhereGradSum{ref(cond), ref(dout), ref(d), which == 0});
    if (!s.ok())
      return s;
  }
  return Status();
}

Status cast_any(DevTensor x, DevTensor y, cudaStream_t stream) {
  if (x.numel() != y.numel())
    return Status::error("cuda cast_any: element counts differ");
  return runMap("cast_any", y.numel(), stream, CastAny{ref(x), ref(y)});
}

Status unary_forward(UnaryOp op, DevTensor x, DevTensor y,
                     cudaStream_t stream) {
  if (!isFloat(x.t))
    return storageError("unary_forward", x.t);
  return runMap("unary_forward", y.numel(), stream,
                UnaryFwd{op, ref(x), ref(y)});
}

Status unary_backward(UnaryOp op, DevTensor x, DevTensor y, DevTensor dy,
                      DevTensor dx, cudaStream_t stream) {
  const bool needsY = op == UnaryOp::Sqrt || op == UnaryOp::Reciprocal ||
                      op == UnaryOp::Exp || op == UnaryOp::Tanh ||
                      op == UnaryOp::Sigmoid;
  const bool constant =
      op == UnaryOp::Floor || op == UnaryOp::Ceil || op == UnaryOp::Sign;
  if (needsY && !y.p)
    return Status::error(
        "cuda unary_backward: this op needs the forward output");
  if (!needsY && !constant && op != UnaryOp::Neg && !x.p)
    return Status::error("cuda unary_backward: this op needs the forward "
                         "input");
  if (!isFloat(dy.t))
    return storageError("unary_backward", dy.t);
  // Only what the op reads is passed: an absent tensor is never loaded.
  const Ref rx = needsY || constant ? Ref{nullptr, x.t} : ref(x);
  const Ref ry = needsY ? ref(y) : Ref{nullptr, y.t};
  return runMap("unary_backward", dx.numel(), stream,
                UnaryBwd{op, rx, ry, ref(dy), ref(dx)});
}

Status reduce_forward(ReduceOp op, DevTensor x, Span<int64_t> axes, DevTensor y,
                      cudaStream_t stream) {
  const char *name = "reduce_forward";
  cpu::Shape ks;
  if (!keptShape(x.s, axes, &ks))
    return axesError(name, x.s);
  const bool floats = isFloat(x.t);
  if (!floats && (x.t == Storage::Bool || op == ReduceOp::Mean))
    return storageError(op == ReduceOp::Mean ? "reduce_forward (mean)" : name,
                        x.t);
  if (y.numel() != ks.numel())
    return Status::error("cuda reduce_forward: y has " +
                         std::to_string(y.numel()) + " elements, not " +
                         std::to_string(ks.numel()));
  Plan p;
  if (!makePlan(x.s, ks, &x.s, 1, &p))
    return axesError(name, x.s);
  return runPlan<1>(name, p, ks.numel(), stream,
                    ReduceFwd{op, ref(x), ref(y), floats});
}

Status reduce_backward(ReduceOp op, DevTensor x, Span<int64_t> axes,
                       DevTensor y, DevTensor dy, DevTensor dx,
                       cudaStream_t stream) {
  const char *name = "reduce_backward";
  const cpu::Shape &xs = dx.s;
  cpu::Shape ks;
  if (!keptShape(xs, axes, &ks))
    return axesError(name, xs);
  if (!isFloat(dy.t))
    return storageError(name, dy.t);
  Plan p;
  if (op != ReduceOp::Max) {
    if (!makePlan(xs, xs, &ks, 1, &p))
      return axesError(name, xs);
    const int64_t kn = ks.numel() > 0 ? ks.numel() : 1;
    const float scale = 1.0f / float(xs.numel() / kn);
    return runPlan<1>(
        name, p, xs.numel(), stream,
        ReduceGradBcast{ref(dy), ref(dx), op == ReduceOp::Mean, scale});
  }
  if (!x.p || !y.p)
    return Status::error("cuda reduce_backward: max needs x and y");
  if (!isFloat(x.t) || !isFloat(y.t))
    return storageError(name, isFloat(x.t) ? y.t : x.t);
  if (!makePlan(xs, ks, &xs, 1, &p))
    return axesError(name, xs);
  return runPlan<1>(name, p, ks.numel(), stream,
                    ReduceMaxGrad{ref(x), ref(y), ref(dy), ref(dx)});
}

Status sum_to_shape(DevTensor src, DevTensor dst, cudaStream_t stream) {
  return sumTo("sum_to_shape", src, dst, stream);
}

Status softmax_forward(DevTensor x, int axis, DevTensor y,
                       cudaStream_t stream) {
  return runSoft<SoftKind::Softmax>("softmax_forward", x, DevTensor{}, y, axis,
                                    stream);
}

Status softmax_backward(DevTensor y, DevTensor dy, int axis, DevTensor dx,
                        cudaStream_t stream) {
  if (!dy.p)
    return Status::error("cuda softmax_backward: dy is absent");
  return runSoft<SoftKind::SoftmaxGrad>("softmax_backward", y, dy, dx, axis,
                                        stream);
}

Status log_softmax_forward(DevTensor x, int axis, DevTensor y,
                           cudaStream_t stream) {
  return runSoft<SoftKind::LogSoftmax>("log_softmax_forward", x, DevTensor{}, y,
                                       axis, stream);
}

Status log_softmax_backward(DevTensor y, DevTensor dy, int axis, DevTensor dx,
                            cudaStream_t stream) {
  if (!dy.p)
    return Status::error("cuda log_softmax_backward: dy is absent");
  return runSoft<SoftKind::LogSoftmaxGrad>("log_softmax_backward", y, dy, dx,
                                           axis, stream);
}

Status cumsum(DevTensor x, int axis, bool exclusive, bool reverse, DevTensor y,
              cudaStream_t stream) {
  int64_t outer, n, inner;
  if (!splitAxis(x.s, axis, &outer, &n, &inner))
    return Status::error("cuda cumsum: axis " + std::to_string(axis) +
                         " out of range for " + x.s.str());
  if (x.t == Storage::Bool)
    return storageError("cumsum", x.t);
  if (y.numel() != x.numel())
    return Status::error("cuda cumsum: element counts differ");
  if (x.numel() == 0)
    return Status();
  const int64_t lines = outer * inner;
  launch(cumsumKernel, blocksFor(lines, kThreads), kThreads, 0, stream, ref(x),
         ref(y), lines, n, inner, exclusive, reverse, isFloat(x.t));
  return launched("cumsum");
}

} // namespace weipipe::rt::cuda
