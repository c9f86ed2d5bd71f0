//===- MovementTest.cpp - CUDA data movement against the CPU kernels ------===//
//
// Part of weipipe's runtime tests. The "Data movement" ops of
// cuda/Primitives.h run on the GPU and are compared with the CPU kernels
// they mirror on the same random inputs, BITWISE: movement copies elements
// without arithmetic, so nothing may differ. Each op runs over the storages
// F32, I64 and Bool (elements of 4, 8 and 1 bytes); the float-only ops
// (slice_backward, gather_backward) over F32 and BF16, against the fp32 CPU
// kernel on the bf16-rounded values. gather_backward sums in fp32 in the CPU
// kernel's order (zero or the old dx, then each index's dy in index order),
// so it is bitwise too, and a bf16 dx is the CPU's fp32 sum rounded once.
//
// Outputs are prefilled with a byte pattern so that an element the kernel
// does not write shows up as a mismatch.
//
// Every device test uses the CudaMovement fixture, which skips (never
// passes) where deviceCount() finds no GPU.
//
//===----------------------------------------------------------------------===//

#include "CudaTestUtil.h"

#include "weipipe/runtime/cpu/Kernels.h"
#include "weipipe/runtime/cuda/Device.h"
#include "weipipe/runtime/cuda/Primitives.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace cpu = weipipe::rt::cpu;
namespace cu = weipipe::rt::cuda;
using cpu::Shape;
using cu::bf16;
using cu::DevTensor;
using cu::KernelError;
using cu::Storage;
using weipipe::rt::Status;
using namespace weipipe::rt::cuda::test;

namespace {

//===----------------------------------------------------------------------===//
// Device arrays and copies
//===----------------------------------------------------------------------===//

template <class T> Storage storageOf() {
  if constexpr (std::is_same_v<T, float>)
    return Storage::F32;
  else if constexpr (std::is_same_v<T, bf16>)
    return Storage::BF16;
  else if constexpr (std::is_same_v<T, int64_t>)
    return Storage::I64;
  else if constexpr (std::is_same_v<T, int32_t>)
    return Storage::I32;
  else
    return Storage::Bool;
}

/// A device tensor of T and the allocation behind it.
template <class T> class Arr {
public:
  Arr(const Shape &s, cudaStream_t st) {
    const size_t n = size_t(s.numel());
    must(buf_.allocate(uint64_t(n) * sizeof(T), "a test buffer"), "allocate");
    t_.p = buf_.data();
    t_.t = storageOf<T>();
    t_.s = s;
    // A pattern no kernel writes: unwritten elements show as mismatches.
    if (n > 0)
      mustCuda(cudaMemsetAsync(buf_.data(), 0x5a, n * sizeof(T), st),
               "cudaMemsetAsync");
    sync(st);
  }
  DevTensor t() const { return t_; }
  size_t size() const { return size_t(t_.s.numel()); }
  T *get() const { return buf_.as<T>(); }

private:
  cu::DeviceBuffer buf_;
  DevTensor t_;
};

template <class T>
Arr<T> up(const std::vector<T> &h, const Shape &s, cudaStream_t st) {
  if (int64_t(h.size()) != s.numel())
    throw std::logic_error("up: " + std::to_string(h.size()) +
                           " elements for " + s.str());
  Arr<T> a(s, st);
  if (!h.empty())
    must(cu::copyToDevice(a.get(), h.data(), h.size() * sizeof(T), st),
         "copyToDevice");
  sync(st);
  return a;
}

/// The array after everything enqueued on `st` so far.
template <class T> std::vector<T> down(const Arr<T> &a, cudaStream_t st) {
  sync(st);
  std::vector<T> h(a.size());
  if (!h.empty())
    must(cu::copyToHost(h.data(), a.get(), h.size() * sizeof(T), st),
         "copyToHost");
  sync(st);
  return h;
}

//===----------------------------------------------------------------------===//
// Data
//===----------------------------------------------------------------------===//

/// n random elements of T (f32 and bf16 in [-4, 4), wide i64s, bools 0/1).
template <class T> std::vector<T> randomData(std::mt19937 &rng, size_t n) {
  std::vector<T> v(n);
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, bf16>) {
    std::uniform_real_distribution<float> d(-4.0f, 4.0f);
    for (T &x : v)
      x = fromFloat<T>(d(rng));
  } else if constexpr (std::is_same_v<T, int64_t>) {
    std::uniform_int_distribution<int64_t> d(-(int64_t(1) << 40), int64_t(1)
                                                                      << 40);
    for (T &x : v)
      x = d(rng);
  } else {
    std::uniform_int_distribution<int> d(0, 1);
    for (T &x : v)
      x = T(d(rng));
  }
  return v;
}

std::string str(const std::vector<int64_t> &v) {
  std::string s = "{";
  for (size_t i = 0; i < v.size(); ++i)
    s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "}";
}

class CudaMovement : public CudaTest {
protected:
  std::mt19937 rng_{1234};
};

//===----------------------------------------------------------------------===//
// Checks, one per op, over a storage T
//===----------------------------------------------------------------------===//

template <class T>
void checkTranspose(std::mt19937 &rng, cudaStream_t st, const Shape &xs,
                    const std::vector<int64_t> &perm) {
  SCOPED_TRACE(std::string(typeName<T>()) + " " + xs.str() + " perm " +
               str(perm));
  const std::vector<T> xh = randomData<T>(rng, size_t(xs.numel()));
  const Shape ys = cpu::transpose_shape(xs, perm);
  std::vector<T> ref(size_t(ys.numel()));
  cpu::transpose(xh.data(), xs, perm, ref.data());
  Arr<T> x = up(xh, xs, st);
  Arr<T> y(ys, st);
  ASSERT_OK(cu::transpose(x.t(), perm, y.t(), st));
  EXPECT_TRUE(sameBits("transpose", down(y, st), ref));
}

template <class T>
void checkBroadcast(std::mt19937 &rng, cudaStream_t st, const Shape &xs,
                    const Shape &ys) {
  SCOPED_TRACE(std::string(typeName<T>()) + " " + xs.str() + " to " + ys.str());
  const std::vector<T> xh = randomData<T>(rng, size_t(xs.numel()));
  std::vector<T> ref(size_t(ys.numel()));
  cpu::broadcast_to(xh.data(), xs, ref.data(), ys);
  Arr<T> x = up(xh, xs, st);
  Arr<T> y(ys, st);
  ASSERT_OK(cu::broadcast_to(x.t(), y.t(), st));
  EXPECT_TRUE(sameBits("broadcast_to", down(y, st), ref));
}

/// Inputs of shape `base` with dim `axis` = extents[i].
template <class T>
void checkConcat(std::mt19937 &rng, cudaStream_t st, const Shape &base,
                 int axis, const std::vector<int64_t> &extents) {
  SCOPED_TRACE(std::string(typeName<T>()) + " " +
               std::to_string(extents.size()) + " inputs of " + base.str() +
               " on axis " + std::to_string(axis));
  std::vector<std::vector<T>> hosts;
  std::vector<Shape> shapes;
  std::vector<Arr<T>> devs;
  std::vector<DevTensor> tensors;
  Shape ys = base;
  ys.dims[axis] = 0;
  for (int64_t e : extents) {
    Shape s = base;
    s.dims[axis] = e;
    ys.dims[axis] += e;
    shapes.push_back(s);
    hosts.push_back(randomData<T>(rng, size_t(s.numel())));
    devs.push_back(up(hosts.back(), s, st));
  }
  std::vector<const T *> ptrs;
  for (size_t i = 0; i < extents.size(); ++i) {
    ptrs.push_back(hosts[i].data());
    tensors.push_back(devs[i].t());
  }
  std::vector<T> ref(size_t(ys.numel()));
  cpu::concat(cpu::Span<const T *>(ptrs), cpu::Span<Shape>(shapes), axis,
              ref.data());
  Arr<T> y(ys, st);
  ASSERT_OK(cu::concat(cu::Span<DevTensor>(tensors), axis, y.t(), st));
  EXPECT_TRUE(sameBits("concat", down(y, st), ref));
}

struct SliceCase {
  Shape xs;
  std::vector<int64_t> starts, ends, steps;
  std::string name() const {
    return xs.str() + " starts " + str(starts) + " ends " + str(ends) +
           " steps " + str(steps);
  }
};

std::vector<SliceCase> sliceCases() {
  return {
      {Shape{5, 6, 7}, {1, 0, 2}, {4, 6, 7}, {1, 2, 3}},
      {Shape{5, 6, 7}, {4, 5, 6}, {-1, 0, 1}, {-1, -2, -3}},
      {Shape{5, 6, 7}, {0, 5, 1}, {5, -1, 6}, {2, -1, 4}},
      {Shape{40, 33}, {3, 32}, {37, -1}, {1, -1}},
      // Empty results: start == end, and a dim taking no index at `size`.
      {Shape{5, 6, 7}, {2, 0, 0}, {2, 6, 7}, {1, 1, 1}},
      {Shape{5, 6, 7}, {0, 6, 0}, {5, 6, 7}, {1, 1, 1}},
      {Shape{5, 6}, {3, 0}, {3, 6}, {-1, 1}},
  };
}

template <class T>
void checkSlice(std::mt19937 &rng, cudaStream_t st, const SliceCase &c) {
  SCOPED_TRACE(std::string(typeName<T>()) + " " + c.name());
  const std::vector<T> xh = randomData<T>(rng, size_t(c.xs.numel()));
  const Shape ys = cpu::slice_shape(c.xs, c.starts, c.ends, c.steps);
  std::vector<T> ref(size_t(ys.numel()));
  cpu::slice(xh.data(), c.xs, c.starts, c.ends, c.steps, ref.data());
  Arr<T> x = up(xh, c.xs, st);
  Arr<T> y(ys, st);
  ASSERT_OK(cu::slice(x.t(), c.starts, c.ends, c.steps, y.t(), st));
  EXPECT_TRUE(sameBits("slice", down(y, st), ref));
}

/// T float or bf16: against the fp32 CPU kernel on the stored dy.
template <class T>
void checkSliceBackward(std::mt19937 &rng, cudaStream_t st,
                        const SliceCase &c) {
  SCOPED_TRACE(std::string(typeName<T>()) + " " + c.name());
  const Shape ys = cpu::slice_shape(c.xs, c.starts, c.ends, c.steps);
  const std::vector<T> dyh = randomData<T>(rng, size_t(ys.numel()));
  std::vector<float> dyf(dyh.size());
  for (size_t i = 0; i < dyh.size(); ++i)
    dyf[i] = toFloat(dyh[i]);
  std::vector<float> ref(size_t(c.xs.numel()));
  cpu::slice_backward(dyf.data(), c.xs, c.starts, c.ends, c.steps, ref.data());
  Arr<T> dy = up(dyh, ys, st);
  Arr<T> dx(c.xs, st);
  ASSERT_OK(cu::slice_backward(dy.t(), c.starts, c.ends, c.steps, dx.t(), st));
  const std::vector<T> got = down(dx, st);
  std::vector<float> gotf(got.size());
  for (size_t i = 0; i < got.size(); ++i)
    gotf[i] = toFloat(got[i]);
  EXPECT_TRUE(sameBits("slice_backward", gotf, ref));
}

template <class T>
void checkGather(std::mt19937 &rng, cudaStream_t st, const Shape &xs, int axis,
                 const std::vector<int64_t> &idx, const Shape &is) {
  SCOPED_TRACE(std::string(typeName<T>()) + " " + xs.str() + " axis " +
               std::to_string(axis) + " idx " + str(idx));
  const std::vector<T> xh = randomData<T>(rng, size_t(xs.numel()));
  // y: xs[:axis] + is + xs[axis+1:]
  Shape ys;
  for (int d = 0; d < axis; ++d)
    ys.dims[ys.rank++] = xs.dims[d];
  for (int d = 0; d < is.rank; ++d)
    ys.dims[ys.rank++] = is.dims[d];
  for (int d = axis + 1; d < xs.rank; ++d)
    ys.dims[ys.rank++] = xs.dims[d];
  std::vector<T> ref(size_t(ys.numel()));
  ASSERT_OK(cpu::gather(xh.data(), xs, axis, idx.data(), int64_t(idx.size()),
                        ref.data()));
  Arr<T> x = up(xh, xs, st);
  Arr<int64_t> id = up(idx, is, st);
  Arr<T> y(ys, st);
  Dev<KernelError> err = zeroedError(st);
  ASSERT_OK(cu::gather(x.t(), axis, id.t(), y.t(), err.get(), st));
  EXPECT_TRUE(sameBits("gather", down(y, st), ref));
  EXPECT_EQ(readError(err, st).code, KernelError::None);
}

template <class T>
void checkTrilu(std::mt19937 &rng, cudaStream_t st, const Shape &xs, bool upper,
                int64_t k) {
  SCOPED_TRACE(std::string(typeName<T>()) + " " + xs.str() +
               (upper ? " upper" : " lower") + " k " + std::to_string(k));
  const std::vector<T> xh = randomData<T>(rng, size_t(xs.numel()));
  std::vector<T> ref(xh.size());
  cpu::trilu(xh.data(), xs, upper, k, ref.data());
  Arr<T> x = up(xh, xs, st);
  Arr<T> y(xs, st);
  ASSERT_OK(cu::trilu(x.t(), upper, k, y.t(), st));
  EXPECT_TRUE(sameBits("trilu", down(y, st), ref));
}

template <class T>
void checkBand(std::mt19937 &rng, cudaStream_t st, const Shape &ys) {
  SCOPED_TRACE(std::string(typeName<T>()) + " " + ys.str());
  const int64_t M = ys.dims[ys.rank - 2], N = ys.dims[ys.rank - 1];
  const Shape ds{M + N - 1};
  const std::vector<T> dh = randomData<T>(rng, size_t(ds.numel()));
  std::vector<T> ref(size_t(ys.numel()));
  cpu::band(dh.data(), ys, ref.data());
  Arr<T> d = up(dh, ds, st);
  Arr<T> y(ys, st);
  ASSERT_OK(cu::band(d.t(), y.t(), st));
  EXPECT_TRUE(sameBits("band", down(y, st), ref));
}

/// Indices in [-size, size) for scatter_elements along `axis`.
template <class T>
void checkScatter(std::mt19937 &rng, cudaStream_t st, const Shape &ds,
                  const Shape &is, int axis, bool inPlace) {
  SCOPED_TRACE(std::string(typeName<T>()) + " data " + ds.str() + " idx " +
               is.str() + " axis " + std::to_string(axis) +
               (inPlace ? " in place" : ""));
  const int64_t size = ds.dims[axis];
  std::uniform_int_distribution<int64_t> pick(-size, size - 1);
  std::vector<int64_t> idx(size_t(is.numel()));
  for (int64_t &v : idx)
    v = pick(rng);
  const std::vector<T> dh = randomData<T>(rng, size_t(ds.numel()));
  const std::vector<T> uh = randomData<T>(rng, size_t(is.numel()));
  std::vector<T> ref(dh.size());
  ASSERT_OK(cpu::scatter_elements(dh.data(), ds, idx.data(), is, uh.data(),
                                  axis, ref.data()));
  Arr<T> d = up(dh, ds, st);
  Arr<int64_t> id = up(idx, is, st);
  Arr<T> u = up(uh, is, st);
  Arr<T> yOwn(ds, st);
  const DevTensor y = inPlace ? d.t() : yOwn.t();
  Dev<KernelError> err = zeroedError(st);
  ASSERT_OK(cu::scatter_elements(d.t(), id.t(), u.t(), axis, y, err.get(), st));
  EXPECT_TRUE(sameBits("scatter_elements", down(inPlace ? d : yOwn, st), ref));
  EXPECT_EQ(readError(err, st).code, KernelError::None);
}

} // namespace

//===----------------------------------------------------------------------===//
// No device needed: the launchers' checks come before any CUDA call
//===----------------------------------------------------------------------===//

TEST(CudaMovementChecks, RejectsMismatchedStorages) {
  DevTensor x, y;
  x.t = Storage::F32;
  y.t = Storage::I64;
  x.s = Shape{2, 3};
  y.s = Shape{3, 2};
  const Status s = cu::transpose(x, {1, 0}, y, nullptr);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("transpose"), std::string::npos) << s.message();
}

TEST(CudaMovementChecks, RejectsWrongShapes) {
  DevTensor x, y;
  x.s = Shape{2, 3};
  y.s = Shape{2, 3};
  EXPECT_FALSE(cu::transpose(x, {1, 0}, y, nullptr).ok());
  EXPECT_FALSE(cu::transpose(x, {0, 0}, y, nullptr).ok());
  y.s = Shape{4, 3};
  EXPECT_FALSE(cu::broadcast_to(x, y, nullptr).ok());
  y.t = Storage::I64;
  y.s = Shape{2, 2};
  EXPECT_FALSE(cu::topk_indices(x, 4, true, y, nullptr).ok());
}

//===----------------------------------------------------------------------===//
// Device tests
//===----------------------------------------------------------------------===//

TEST_F(CudaMovement, TransposeMatchesCpu) {
  const std::vector<std::pair<Shape, std::vector<int64_t>>> cases = {
      {Shape{3, 5}, {1, 0}},
      {Shape{67, 129}, {1, 0}},
      {Shape{2, 3, 4}, {2, 0, 1}},
      {Shape{2, 3, 4}, {0, 2, 1}},
      {Shape{2, 3, 4}, {1, 0, 2}},
      {Shape{2, 3, 4, 5}, {0, 2, 1, 3}},
      {Shape{2, 3, 4, 5}, {3, 2, 1, 0}},
      {Shape{2, 3, 1, 4, 3}, {4, 1, 3, 0, 2}},
      {Shape{2, 3, 1, 4, 3}, {0, 1, 2, 4, 3}},
  };
  for (const auto &[xs, perm] : cases) {
    checkTranspose<float>(rng_, s(), xs, perm);
    checkTranspose<int64_t>(rng_, s(), xs, perm);
    checkTranspose<uint8_t>(rng_, s(), xs, perm);
  }
}

TEST_F(CudaMovement, BroadcastToMatchesCpu) {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {Shape{3, 1, 5}, Shape{2, 3, 4, 5}},
      {Shape{1}, Shape{7, 3}},
      {Shape{4, 1}, Shape{4, 6}},
      {Shape{2, 3}, Shape{2, 3}},
      {Shape{}, Shape{3, 2}},
  };
  for (const auto &[xs, ys] : cases) {
    checkBroadcast<float>(rng_, s(), xs, ys);
    checkBroadcast<int64_t>(rng_, s(), xs, ys);
    checkBroadcast<uint8_t>(rng_, s(), xs, ys);
  }
}

TEST_F(CudaMovement, ConcatMatchesCpu) {
  // 20 inputs: more than one launch group of 16; one input is empty.
  std::vector<int64_t> many;
  for (int i = 0; i < 20; ++i)
    many.push_back(i == 7 ? 0 : 1 + i % 4);
  for (int axis : {0, 2}) {
    const Shape base{3, 4, 5};
    checkConcat<float>(rng_, s(), base, axis, {2, 1, 3});
    checkConcat<int64_t>(rng_, s(), base, axis, {2, 1, 3});
    checkConcat<uint8_t>(rng_, s(), base, axis, {2, 1, 3});
    checkConcat<float>(rng_, s(), base, axis, many);
    checkConcat<int64_t>(rng_, s(), base, axis, many);
    checkConcat<uint8_t>(rng_, s(), base, axis, many);
  }
}

TEST_F(CudaMovement, SliceMatchesCpu) {
  for (const SliceCase &c : sliceCases()) {
    checkSlice<float>(rng_, s(), c);
    checkSlice<int64_t>(rng_, s(), c);
    checkSlice<uint8_t>(rng_, s(), c);
  }
}

TEST_F(CudaMovement, SliceBackwardMatchesCpu) {
  for (const SliceCase &c : sliceCases()) {
    checkSliceBackward<float>(rng_, s(), c);
    checkSliceBackward<bf16>(rng_, s(), c);
  }
}

TEST_F(CudaMovement, GatherMatchesCpu) {
  const Shape xs{4, 5, 3};
  const std::vector<int64_t> idx = {3, -1, 0, -5, 2, 2};
  const Shape is{2, 3};
  for (int axis : {0, 1, 2}) {
    std::vector<int64_t> id = idx;
    for (int64_t &v : id) // within [-size, size) of the axis
      v = v % xs.dims[axis];
    checkGather<float>(rng_, s(), xs, axis, id, is);
    checkGather<int64_t>(rng_, s(), xs, axis, id, is);
    checkGather<uint8_t>(rng_, s(), xs, axis, id, is);
  }
  // A scalar index (rank-0 idx) removes the axis.
  checkGather<float>(rng_, s(), xs, 1, {-2}, Shape{});
}

TEST_F(CudaMovement, GatherOutOfRangeRecordsErrorAndZero) {
  const Shape xs{4, 5, 3};
  const int axis = 1;
  const std::vector<float> xh = randomData<float>(rng_, size_t(xs.numel()));
  for (int64_t badValue : {int64_t(5), int64_t(-6)}) {
    SCOPED_TRACE("bad index " + std::to_string(badValue));
    const std::vector<int64_t> idx = {1, badValue, -1};
    // The reference with the bad index replaced, its slots zeroed.
    std::vector<int64_t> good = idx;
    good[1] = 0;
    const Shape ys{4, 3, 3};
    std::vector<float> ref(size_t(ys.numel()));
    ASSERT_OK(cpu::gather(xh.data(), xs, axis, good.data(), 3, ref.data()));
    for (int64_t o = 0; o < 4; ++o)
      for (int64_t c = 0; c < 3; ++c)
        ref[size_t((o * 3 + 1) * 3 + c)] = 0.0f;
    Arr<float> x = up(xh, xs, s());
    Arr<int64_t> id = up(idx, Shape{3}, s());
    Arr<float> y(ys, s());
    Dev<KernelError> err = zeroedError(s());
    ASSERT_OK(cu::gather(x.t(), axis, id.t(), y.t(), err.get(), s()));
    EXPECT_TRUE(sameBits("gather", down(y, s()), ref));
    const KernelError e = readError(err, s());
    EXPECT_EQ(e.code, KernelError::IndexOutOfRange);
    EXPECT_EQ(e.value, badValue);
    EXPECT_EQ(e.position, 1);
    EXPECT_EQ(e.bound, 5);
  }
}

namespace {

/// gather_backward with dy of TY and dx of TX (float or bf16) against the
/// fp32 CPU kernel on the stored values, the result rounded to TX once.
template <class TY, class TX>
void checkGatherBackward(std::mt19937 &rng, cudaStream_t st, const Shape &xs,
                         int axis, const std::vector<int64_t> &idx,
                         bool accumulate) {
  SCOPED_TRACE(std::string("dy ") + typeName<TY>() + ", dx " + typeName<TX>() +
               " " + xs.str() + " axis " + std::to_string(axis) + " idx " +
               str(idx) + (accumulate ? " accumulate" : ""));
  Shape dys = xs;
  dys.dims[axis] = int64_t(idx.size());
  const std::vector<TY> dyh = randomData<TY>(rng, size_t(dys.numel()));
  const std::vector<TX> dx0 = randomData<TX>(rng, size_t(xs.numel()));
  std::vector<float> dyf(dyh.size()), ref(dx0.size());
  for (size_t i = 0; i < dyh.size(); ++i)
    dyf[i] = toFloat(dyh[i]);
  for (size_t i = 0; i < dx0.size(); ++i)
    ref[i] = toFloat(dx0[i]);
  ASSERT_OK(cpu::gather_backward(dyf.data(), xs, axis, idx.data(),
                                 int64_t(idx.size()), ref.data(), accumulate));
  std::vector<TX> want(ref.size());
  for (size_t i = 0; i < ref.size(); ++i)
    want[i] = fromFloat<TX>(ref[i]);
  Arr<int64_t> id = up(idx, Shape{int64_t(idx.size())}, st);
  Arr<TY> dy = up(dyh, dys, st);
  Arr<TX> dx = up(dx0, xs, st);
  Dev<KernelError> err = zeroedError(st);
  ASSERT_OK(cu::gather_backward(id.t(), dy.t(), axis, dx.t(), accumulate,
                                err.get(), st));
  EXPECT_TRUE(sameBits("gather_backward", down(dx, st), want));
  EXPECT_EQ(readError(err, st).code, KernelError::None);
}

} // namespace

TEST_F(CudaMovement, GatherBackwardMatchesCpu) {
  const Shape xs{3, 6, 4};
  const std::vector<int64_t> idx = {2, -1, 2, 0, 5, 2, -4};
  for (bool acc : {false, true}) {
    checkGatherBackward<float, float>(rng_, s(), xs, 1, idx, acc);
    checkGatherBackward<bf16, bf16>(rng_, s(), xs, 1, idx, acc);
    checkGatherBackward<bf16, float>(rng_, s(), xs, 1, idx, acc);
    checkGatherBackward<float, float>(rng_, s(), Shape{6, 5}, 0, idx, acc);
    checkGatherBackward<float, float>(rng_, s(), Shape{4, 6}, 1, idx, acc);
  }
}

TEST_F(CudaMovement, GatherBackwardOutOfRangeRecordsError) {
  const Shape xs{2, 4};
  const std::vector<int64_t> idx = {1, 9, 1};
  const std::vector<float> dyh = randomData<float>(rng_, 6);
  // The valid indices' sums: dx[o, 1] = dy[o, 0] + dy[o, 2].
  std::vector<float> ref(8, 0.0f);
  for (int o = 0; o < 2; ++o)
    ref[size_t(o * 4 + 1)] = dyh[size_t(o * 3)] + dyh[size_t(o * 3 + 2)];
  Arr<int64_t> id = up(idx, Shape{3}, s());
  Arr<float> dy = up(dyh, Shape{2, 3}, s());
  Arr<float> dx(xs, s());
  Dev<KernelError> err = zeroedError(s());
  ASSERT_OK(
      cu::gather_backward(id.t(), dy.t(), 1, dx.t(), false, err.get(), s()));
  EXPECT_TRUE(sameBits("gather_backward", down(dx, s()), ref));
  const KernelError e = readError(err, s());
  EXPECT_EQ(e.code, KernelError::IndexOutOfRange);
  EXPECT_EQ(e.value, 9);
  EXPECT_EQ(e.position, 1);
  EXPECT_EQ(e.bound, 4);
}

TEST_F(CudaMovement, TriluMatchesCpu) {
  for (const Shape &xs : {Shape{2, 4, 5}, Shape{5, 3}, Shape{3, 33, 70}})
    for (bool upper : {false, true})
      for (int64_t k : {-1, 0, 2}) {
        checkTrilu<float>(rng_, s(), xs, upper, k);
        checkTrilu<int64_t>(rng_, s(), xs, upper, k);
        checkTrilu<uint8_t>(rng_, s(), xs, upper, k);
      }
}

TEST_F(CudaMovement, BandMatchesCpu) {
  for (const Shape &ys : {Shape{2, 3, 4}, Shape{4, 2}, Shape{1, 1}}) {
    checkBand<float>(rng_, s(), ys);
    checkBand<int64_t>(rng_, s(), ys);
    checkBand<uint8_t>(rng_, s(), ys);
  }
}

namespace {

template <class T>
void checkTopk(cudaStream_t st, const std::vector<float> &xf, const Shape &xs,
               int64_t k, bool largest) {
  SCOPED_TRACE(std::string(typeName<T>()) + " " + xs.str() + " k " +
               std::to_string(k) + (largest ? " largest" : " smallest"));
  std::vector<T> xh(xf.size());
  std::vector<float> stored(xf.size());
  for (size_t i = 0; i < xf.size(); ++i) {
    xh[i] = fromFloat<T>(xf[i]);
    stored[i] = toFloat(xh[i]);
  }
  Shape ys = xs;
  ys.dims[ys.rank - 1] = k;
  std::vector<int64_t> ref(size_t(ys.numel()));
  cpu::topk_indices(stored.data(), xs, k, largest, ref.data());
  Arr<T> x = up(xh, xs, st);
  Arr<int64_t> y(ys, st);
  ASSERT_OK(cu::topk_indices(x.t(), k, largest, y.t(), st));
  EXPECT_TRUE(sameBits("topk_indices", down(y, st), ref));
}

} // namespace

TEST_F(CudaMovement, TopkIndicesMatchesCpu) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  // Row 0 random; row 1 ties; row 2 NaNs, ties and infinities; row 3 signed
  // zeros (equal, so ordered by index).
  std::vector<float> x = randomData<float>(rng_, 7);
  for (float v : {1.0f, 3.0f, 3.0f, 2.0f, 3.0f, 1.0f, 0.0f})
    x.push_back(v);
  for (float v : {0.5f, nan, 2.0f, nan, -inf, 2.0f, inf})
    x.push_back(v);
  for (float v : {0.0f, -0.0f, 1.0f, -0.0f, 0.0f, -1.0f, 0.0f})
    x.push_back(v);
  const Shape xs{4, 7};
  for (int64_t k : {1, 3, 7})
    for (bool largest : {true, false}) {
      checkTopk<float>(s(), x, xs, k, largest);
      checkTopk<bf16>(s(), x, xs, k, largest);
    }
  // Many rows with many ties (values from a small set), rank 3.
  std::uniform_int_distribution<int> few(-3, 3);
  std::vector<float> big(2 * 40 * 100);
  for (float &v : big)
    v = float(few(rng_)) * 0.25f;
  for (bool largest : {true, false})
    checkTopk<float>(s(), big, Shape{2, 40, 100}, 5, largest);
}

TEST_F(CudaMovement, ScatterElementsMatchesCpu) {
  // Index lines longer than the axis: repeated targets, the last one wins.
  for (bool inPlace : {false, true}) {
    checkScatter<float>(rng_, s(), Shape{4, 5, 3}, Shape{4, 7, 2}, 1, inPlace);
    checkScatter<int64_t>(rng_, s(), Shape{4, 5, 3}, Shape{4, 7, 2}, 1,
                          inPlace);
    checkScatter<uint8_t>(rng_, s(), Shape{4, 5, 3}, Shape{4, 7, 2}, 1,
                          inPlace);
  }
  checkScatter<float>(rng_, s(), Shape{6, 4}, Shape{9, 3}, 0, false);
  checkScatter<int64_t>(rng_, s(), Shape{3, 6}, Shape{2, 10}, 1, false);
}

TEST_F(CudaMovement, ScatterElementsOutOfRangeRecordsError) {
  const Shape ds{2, 4}, is{2, 3};
  const std::vector<int64_t> dh = {10, 11, 12, 13, 14, 15, 16, 17};
  const std::vector<int64_t> uh = {1, 2, 3, 4, 5, 6};
  const std::vector<int64_t> idx = {0, -1, 0, 2, -5, 1};
  // Row 0: y[0] = 1, y[3] = 2, y[0] = 3 (last wins). Row 1: y[2] = 4, the
  // bad index -5 at position 4 writes nothing, y[1] = 6.
  const std::vector<int64_t> ref = {3, 11, 12, 2, 14, 6, 4, 17};
  Arr<int64_t> d = up(dh, ds, s());
  Arr<int64_t> id = up(idx, is, s());
  Arr<int64_t> u = up(uh, is, s());
  Arr<int64_t> y(ds, s());
  Dev<KernelError> err = zeroedError(s());
  ASSERT_OK(
      cu::scatter_elements(d.t(), id.t(), u.t(), 1, y.t(), err.get(), s()));
  EXPECT_TRUE(sameBits("scatter_elements", down(y, s()), ref));
  const KernelError e = readError(err, s());
  EXPECT_EQ(e.code, KernelError::IndexOutOfRange);
  EXPECT_EQ(e.value, -5);
  EXPECT_EQ(e.position, 4);
  EXPECT_EQ(e.bound, 4);
}
