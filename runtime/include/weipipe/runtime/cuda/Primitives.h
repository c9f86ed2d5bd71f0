//===- Primitives.h - the CUDA backend's primitive ops ----------*- C++ -*-===//
//
// Part of weipipe's runtime (CUDA backend). The ops that are not a model's
// hot path (ONNX graphs bring them: masks built from ids, shape arithmetic
// left after folding, broadcasts, reductions, softmax written out, ...): the
// CPU kernels' contracts (cpu/Kernels.h, each function named after the CPU
// one it mirrors) on device tensors.
//
// Unlike cuda/Kernels.h, these take each operand's storage type at run time
// (`DevTensor`): in --precision bf16 an op may read bf16 activations and
// write an fp32 parameter gradient, and one kernel per op family loads and
// stores any storage (a switch per element; these ops are memory-bound and
// rare). Floating-point math is fp32 (f32 and bf16 storage alike), integer
// math int64. Conventions otherwise as cuda/Kernels.h: enqueue only,
// deterministic without floating-point atomics (every output element is
// produced by one thread, summing in a fixed order), data errors through a
// KernelError, activation gradients WRITTEN.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_CUDA_PRIMITIVES_H
#define WEIPIPE_RUNTIME_CUDA_PRIMITIVES_H

#include "weipipe/runtime/cuda/Kernels.h"

#include <cstdint>

namespace weipipe::rt::cuda {

/// How a tensor's elements are stored on the device.
enum class Storage : uint8_t { F32, BF16, I64, I32, Bool };
/// Bytes per element.
int storageSize(Storage t);
const char *storageName(Storage t);

/// A dense row-major device tensor. p == nullptr: absent (an optional
/// gradient not wanted).
struct DevTensor {
  void *p = nullptr;
  Storage t = Storage::F32;
  cpu::Shape s;
  int64_t numel() const { return s.numel(); }
};

template <class T> using Span = cpu::Span<T>;

//===----------------------------------------------------------------------===//
// Elementwise with NumPy broadcasting (the output's shape is out.s)
//===----------------------------------------------------------------------===//

/// cpu::binary_forward (Pow float only, bitwise ops integer only, integer
/// Div truncating).
Status binary_forward(BinaryOp op, DevTensor a, DevTensor b, DevTensor out,
                      cudaStream_t stream);
/// cpu::binary_backward: da (a's shape) and db (b's shape) WRITTEN, dout summed
/// over the dimensions each was broadcast along; either may be absent.
Status binary_backward(BinaryOp op, DevTensor a, DevTensor b, DevTensor dout,
                       DevTensor da, DevTensor db, cudaStream_t stream);
/// cpu::compare_forward into a Bool tensor.
Status compare_forward(CompareOp op, DevTensor a, DevTensor b, DevTensor out,
                       cudaStream_t stream);
/// cpu::logic_forward, not_forward, is_nan_forward (Bool results).
Status logic_forward(LogicOp op, DevTensor a, DevTensor b, DevTensor out,
                     cudaStream_t stream);
Status not_forward(DevTensor x, DevTensor y, cudaStream_t stream);
Status is_nan_forward(DevTensor x, DevTensor y, cudaStream_t stream);
/// cpu::where_forward / where_backward (da, db WRITTEN, either absent).
Status where_forward(DevTensor cond, DevTensor a, DevTensor b, DevTensor out,
                     cudaStream_t stream);
Status where_backward(DevTensor cond, DevTensor dout, DevTensor da,
                      DevTensor db, cudaStream_t stream);
/// nn.cast between any two storages (cpu::cast's rules: float to integer
/// truncates, anything to Bool is x != 0; f32 <-> bf16 rounds to nearest
/// even). Same element count.
Status cast_any(DevTensor x, DevTensor y, cudaStream_t stream);
/// cpu::unary_forward / unary_backward (y: the forward output, may be absent
/// where the CPU kernel does not read it). y may alias x, dx may alias dy.
Status unary_forward(UnaryOp op, DevTensor x, DevTensor y, cudaStream_t stream);
Status unary_backward(UnaryOp op, DevTensor x, DevTensor y, DevTensor dy,
                      DevTensor dx, cudaStream_t stream);

//===----------------------------------------------------------------------===//
// Reductions, softmax, cumsum
//===----------------------------------------------------------------------===//

/// cpu::reduce_forward (floats) / reduce_forward_int (Sum and Max); y has
/// the reduced shape (keepdims does not change the data).
Status reduce_forward(ReduceOp op, DevTensor x, Span<int64_t> axes, DevTensor y,
                      cudaStream_t stream);
/// cpu::reduce_backward: dx WRITTEN; x and y are read for Max only.
Status reduce_backward(ReduceOp op, DevTensor x, Span<int64_t> axes,
                       DevTensor y, DevTensor dy, DevTensor dx,
                       cudaStream_t stream);
/// cpu::sum_to_shape: dst WRITTEN.
Status sum_to_shape(DevTensor src, DevTensor dst, cudaStream_t stream);
/// cpu::softmax_forward / softmax_backward / log_softmax_forward /
/// log_softmax_backward along `axis` (dx WRITTEN).
Status softmax_forward(DevTensor x, int axis, DevTensor y, cudaStream_t stream);
Status softmax_backward(DevTensor y, DevTensor dy, int axis, DevTensor dx,
                        cudaStream_t stream);
Status log_softmax_forward(DevTensor x, int axis, DevTensor y,
                           cudaStream_t stream);
Status log_softmax_backward(DevTensor y, DevTensor dy, int axis, DevTensor dx,
                            cudaStream_t stream);
/// cpu::cumsum (f32/bf16 in fp32 sums, integers in int64), in order.
Status cumsum(DevTensor x, int axis, bool exclusive, bool reverse, DevTensor y,
              cudaStream_t stream);

//===----------------------------------------------------------------------===//
// Data movement (any storage; input and output storage equal)
//===----------------------------------------------------------------------===//

/// cpu::transpose (y's shape: transpose_shape(x.s, perm)).
Status transpose(DevTensor x, Span<int64_t> perm, DevTensor y,
                 cudaStream_t stream);
/// cpu::broadcast_to (y.s the target shape).
Status broadcast_to(DevTensor x, DevTensor y, cudaStream_t stream);
/// cpu::concat: inputs (host array of device tensors) along `axis`.
Status concat(Span<DevTensor> inputs, int axis, DevTensor y,
              cudaStream_t stream);
/// cpu::slice / slice_backward (dx WRITTEN: zeros, then dy scattered).
Status slice(DevTensor x, Span<int64_t> starts, Span<int64_t> ends,
             Span<int64_t> steps, DevTensor y, cudaStream_t stream);
Status slice_backward(DevTensor dy, Span<int64_t> starts, Span<int64_t> ends,
                      Span<int64_t> steps, DevTensor dx, cudaStream_t stream);
/// cpu::gather (idx I64, negative from the end; out of range: a zero element
/// and a KernelError).
Status gather(DevTensor x, int axis, DevTensor idx, DevTensor y,
              KernelError *err, cudaStream_t stream);
/// cpu::gather_backward: dx = zeros with dy added at the gathered positions
/// (repeated indices summed in index order, by one thread per dx element:
/// deterministic); WRITTEN, or added with accumulate.
Status gather_backward(DevTensor idx, DevTensor dy, int axis, DevTensor dx,
                       bool accumulate, KernelError *err, cudaStream_t stream);
/// cpu::trilu, cpu::band, cpu::topk_indices (y I64), cpu::scatter_elements.
Status trilu(DevTensor x, bool upper, int64_t k, DevTensor y,
             cudaStream_t stream);
Status band(DevTensor diagonals, DevTensor y, cudaStream_t stream);
Status topk_indices(DevTensor x, int64_t k, bool largest, DevTensor y,
                    cudaStream_t stream);
Status scatter_elements(DevTensor data, DevTensor idx, DevTensor updates,
                        int axis, DevTensor y, KernelError *err,
                        cudaStream_t stream);

} // namespace weipipe::rt::cuda

#endif // WEIPIPE_RUNTIME_CUDA_PRIMITIVES_H
