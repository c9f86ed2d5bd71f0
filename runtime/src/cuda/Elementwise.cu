//===- Elementwise.cu - casts, activations, accumulation ------------------===//
//
// Part of weipipe's runtime (CUDA backend). One grid-stride map kernel over
// n elements, instantiated per operation: each element is loaded as fp32,
// computed in fp32 with the CPU kernels' formulas (the same cancellation-free
// forms: 0.5 erfc(-x / sqrt 2) for the GELU cdf, sigmoid(2u) for
// 0.5 (1 + tanh u)), and stored as T. Same index in and out, so every output
// may alias an input.
//
//===----------------------------------------------------------------------===//

#include "Common.cuh"

namespace weipipe::rt::cuda {
using namespace detail;

namespace {

constexpr int kThreads = 256;
constexpr float kSqrt1_2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;
constexpr float kSqrt2OverPi = 0.79788456080286536f;
constexpr float kGeluC = 0.044715f;

__device__ __forceinline__ float sigmoid(float x) {
  return 1.0f / (1.0f + expf(-x));
}

/// Applies `op(in[0..NIn), out[0..NOut))` at every index; null outputs are
/// skipped (swiglu's optional gradients).
template <class Op, class In, class Out, int NIn, int NOut> struct MapArgs {
  const In *in[NIn];
  Out *out[NOut];
};

template <class Op, class In, class Out, int NIn, int NOut>
__global__ void mapKernel(MapArgs<Op, In, Out, NIn, NOut> a, int64_t n, Op op) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    float x[NIn], y[NOut];
#pragma unroll
    for (int k = 0; k < NIn; ++k)
      x[k] = toFloat(a.in[k][i]);
    op(x, y);
#pragma unroll
    for (int k = 0; k < NOut; ++k)
      if (a.out[k])
        a.out[k][i] = fromFloat<Out>(y[k]);
  }
}

template <class Op, class In, class Out, int NIn, int NOut>
Status map(const char *name, MapArgs<Op, In, Out, NIn, NOut> a, int64_t n,
           cudaStream_t stream, Op op = Op()) {
  if (n <= 0)
    return Status();
  launch(mapKernel<Op, In, Out, NIn, NOut>, blocksFor(n, kThreads, 4), kThreads,
         0, stream, a, n, op);
  return launched(name);
}

struct Identity {
  __device__ void operator()(const float *x, float *y) const { y[0] = x[0]; }
};

struct GeluErf {
  __device__ void operator()(const float *x, float *y) const {
    y[0] = x[0] * 0.5f * erfcf(-x[0] * kSqrt1_2);
  }
};
struct GeluErfGrad { // (x, dy) -> dx = dy (cdf + x pdf)
  __device__ void operator()(const float *a, float *b) const {
    const float v = a[0];
    b[0] = a[1] * (0.5f * erfcf(-v * kSqrt1_2) +
                   v * kInvSqrt2Pi * expf(-0.5f * v * v));
  }
};
struct GeluTanh {
  __device__ void operator()(const float *x, float *y) const {
    const float v = x[0];
    y[0] = v * sigmoid(2.0f * (kSqrt2OverPi * (v + kGeluC * v * v * v)));
  }
};
struct GeluTanhGrad {
  __device__ void operator()(const float *a, float *b) const {
    const float v = a[0];
    const float s = sigmoid(2.0f * (kSqrt2OverPi * (v + kGeluC * v * v * v)));
    const float du = kSqrt2OverPi * (1.0f + 3.0f * kGeluC * v * v);
    b[0] = a[1] * (s + v * 2.0f * s * (1.0f - s) * du);
  }
};
struct Silu {
  __device__ void operator()(const float *x, float *y) const {
    y[0] = x[0] * sigmoid(x[0]);
  }
};
struct SiluGrad {
  __device__ void operator()(const float *a, float *b) const {
    const float s = sigmoid(a[0]);
    b[0] = a[1] * s * (1.0f + a[0] * (1.0f - s));
  }
};
struct Swiglu { // (gate, up) -> y
  __device__ void operator()(const float *a, float *b) const {
    b[0] = a[0] * sigmoid(a[0]) * a[1];
  }
};
struct SwigluGrad { // (gate, up, dy) -> (dgate, dup)
  __device__ void operator()(const float *a, float *b) const {
    const float s = sigmoid(a[0]);
    b[0] = a[2] * a[1] * s * (1.0f + a[0] * (1.0f - s));
    b[1] = a[2] * a[0] * s;
  }
};
struct Add { // (src, dst) -> dst
  __device__ void operator()(const float *a, float *b) const {
    b[0] = a[1] + a[0];
  }
};

} // namespace

template <class S, class D>
Status cast(const S *x, D *y, int64_t n, cudaStream_t stream) {
  return map("cast", MapArgs<Identity, S, D, 1, 1>{{x}, {y}}, n, stream);
}

template <class T>
Status gelu_forward(const T *x, T *y, int64_t n, GeluApprox approx,
                    cudaStream_t stream) {
  if (approx == GeluApprox::Tanh)
    return map("gelu_forward", MapArgs<GeluTanh, T, T, 1, 1>{{x}, {y}}, n,
               stream);
  return map("gelu_forward", MapArgs<GeluErf, T, T, 1, 1>{{x}, {y}}, n, stream);
}

template <class T>
Status gelu_backward(const T *x, const T *dy, T *dx, int64_t n,
                     GeluApprox approx, cudaStream_t stream) {
  if (approx == GeluApprox::Tanh)
    return map("gelu_backward",
               MapArgs<GeluTanhGrad, T, T, 2, 1>{{x, dy}, {dx}}, n, stream);
  return map("gelu_backward", MapArgs<GeluErfGrad, T, T, 2, 1>{{x, dy}, {dx}},
             n, stream);
}

template <class T>
Status silu_forward(const T *x, T *y, int64_t n, cudaStream_t stream) {
  return map("silu_forward", MapArgs<Silu, T, T, 1, 1>{{x}, {y}}, n, stream);
}

template <class T>
Status silu_backward(const T *x, const T *dy, T *dx, int64_t n,
                     cudaStream_t stream) {
  return map("silu_backward", MapArgs<SiluGrad, T, T, 2, 1>{{x, dy}, {dx}}, n,
             stream);
}

template <class T>
Status swiglu_forward(const T *gate, const T *up, T *y, int64_t n,
                      cudaStream_t stream) {
  return map("swiglu_forward", MapArgs<Swiglu, T, T, 2, 1>{{gate, up}, {y}}, n,
             stream);
}

template <class T>
Status swiglu_backward(const T *gate, const T *up, const T *dy, T *dgate,
                       T *dup, int64_t n, cudaStream_t stream) {
  // Both gradients of an element are computed from its three inputs before
  // either is stored, so they may alias the inputs.
  return map("swiglu_backward",
             MapArgs<SwigluGrad, T, T, 3, 2>{{gate, up, dy}, {dgate, dup}}, n,
             stream);
}

Status accumulate(const float *src, float *dst, int64_t n,
                  cudaStream_t stream) {
  return map("accumulate", MapArgs<Add, float, float, 2, 1>{{src, dst}, {dst}},
             n, stream);
}

#define WP_INSTANTIATE(T)                                                      \
  template Status gelu_forward<T>(const T *, T *, int64_t, GeluApprox,         \
                                  cudaStream_t);                               \
  template Status gelu_backward<T>(const T *, const T *, T *, int64_t,         \
                                   GeluApprox, cudaStream_t);                  \
  template Status silu_forward<T>(const T *, T *, int64_t, cudaStream_t);      \
  template Status silu_backward<T>(const T *, const T *, T *, int64_t,         \
                                   cudaStream_t);                              \
  template Status swiglu_forward<T>(const T *, const T *, T *, int64_t,        \
                                    cudaStream_t);                             \
  template Status swiglu_backward<T>(const T *, const T *, const T *, T *,     \
                                     T *, int64_t, cudaStream_t);
WP_INSTANTIATE(float)
WP_INSTANTIATE(bf16)
#undef WP_INSTANTIATE

template Status cast<float, bf16>(const float *, bf16 *, int64_t, cudaStream_t);
template Status cast<bf16, float>(const bf16 *, float *, int64_t, cudaStream_t);
template Status cast<float, float>(const float *, float *, int64_t,
                                   cudaStream_t);
template Status cast<bf16, bf16>(const bf16 *, bf16 *, int64_t, cudaStream_t);

} // namespace weipipe::rt::cuda
