//===- PrimitivesTest.cpp - CUDA primitive ops against the CPU kernels ----===//
//
// Part of weipipe's runtime tests. The elementwise, reduction, softmax and
// cumsum ops of cuda/Primitives.h run on the GPU and are compared with the
// CPU kernel each mirrors, on the same inputs: f32 storage at 1e-5 of
// max|reference| (see kF32Tol), integer results, comparisons and casts bit
// for bit, and a few ops with bf16 inputs against the CPU kernel on the
// bf16-rounded inputs.
//
// Every device test uses the CudaPrimitives fixture, which skips (never
// passes) where deviceCount() finds no GPU. Tests without a fixture need
// none.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/cuda/Primitives.h"
#include "CudaTestUtil.h"
#include "weipipe/runtime/cpu/Kernels.h"
#include "weipipe/runtime/cuda/Device.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace cpu = weipipe::rt::cpu;
namespace cu = weipipe::rt::cuda;
using cpu::Shape;
using cu::bf16;
using cu::DevTensor;
using cu::Storage;
using weipipe::rt::BinaryOp;
using weipipe::rt::CompareOp;
using weipipe::rt::LogicOp;
using weipipe::rt::ReduceOp;
using weipipe::rt::Status;
using weipipe::rt::UnaryOp;
using namespace weipipe::rt::cuda::test;

namespace {

/// f32 storage. The GPU evaluates the CPU kernels' formulas in fp32 on the
/// same inputs; they differ in the last bits of powf/expf/logf/erff/tanhf
/// (a few ulp), and where sums are taken, in fp32 (GPU: fixed order, block
/// trees for softmax rows) against the CPU's double or fp32 loops over at
/// most a few hundred terms here: a few units of 2^-24 of max|ref|. 1e-5 is
/// two orders of magnitude above that.
constexpr double kF32Tol = 1e-5;
/// bf16 inputs, f32 outputs: both sides see the same bf16-rounded inputs and
/// compute in fp32, so the f32 tolerance holds unchanged.
constexpr double kBf16InTol = kF32Tol;

/// A device tensor that owns its buffer.
struct DT {
  std::unique_ptr<cu::DeviceBuffer> buf;
  DevTensor d;
};

DT alloc(Storage t, const Shape &s) {
  DT r;
  r.buf = std::make_unique<cu::DeviceBuffer>();
  const uint64_t bytes = uint64_t(s.numel()) * cu::storageSize(t);
  must(r.buf->allocate(bytes, "a test buffer"), "allocate");
  r.d.p = r.buf->data();
  r.d.t = t;
  r.d.s = s;
  return r;
}

DT uploadBytes(const void *h, Storage t, const Shape &s, cudaStream_t st) {
  DT r = alloc(t, s);
  const uint64_t bytes = uint64_t(s.numel()) * cu::storageSize(t);
  if (bytes)
    must(cu::copyToDevice(r.d.p, h, bytes, st), "copyToDevice");
  sync(st);
  return r;
}

/// Floats stored as F32 or BF16.
DT upF(const std::vector<float> &v, const Shape &s, cudaStream_t st,
       Storage t = Storage::F32) {
  if (t == Storage::BF16) {
    const auto b = toBf16(v);
    return uploadBytes(b.data(), t, s, st);
  }
  return uploadBytes(v.data(), t, s, st);
}

template <class T>
DT up(const std::vector<T> &v, Storage t, const Shape &s, cudaStream_t st) {
  return uploadBytes(v.data(), t, s, st);
}

template <class T> std::vector<T> downRaw(const DT &x, cudaStream_t st) {
  sync(st);
  std::vector<T> h(size_t(x.d.s.numel()));
  if (!h.empty())
    must(cu::copyToHost(h.data(), x.d.p, h.size() * sizeof(T), st),
         "copyToHost");
  sync(st);
  return h;
}

std::vector<float> downF(const DT &x, cudaStream_t st) {
  if (x.d.t == Storage::BF16)
    return widen(downRaw<bf16>(x, st));
  return downRaw<float>(x, st);
}

/// Small integers as floats: ties and exact equalities occur.
std::vector<float> randSmall(std::mt19937 &rng, size_t n, int lo, int hi) {
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<float> v(n);
  for (float &x : v)
    x = float(d(rng));
  return v;
}

size_t count(const Shape &s) { return size_t(s.numel()); }

std::string opName(const char *family, int op) {
  return std::string(family) + " " + std::to_string(op);
}

class CudaPrimitives : public CudaTest {};

const BinaryOp kFloatOps[] = {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul,
                              BinaryOp::Div, BinaryOp::Pow, BinaryOp::Max,
                              BinaryOp::Min};

/// Inputs valid for `op`: a > 0 for Pow, |b| >= 0.5 for Div, small integers
/// (ties) for Max and Min.
void binaryInputs(BinaryOp op, std::mt19937 &rng, size_t na, size_t nb,
                  std::vector<float> *a, std::vector<float> *b) {
  if (op == BinaryOp::Max || op == BinaryOp::Min) {
    *a = randSmall(rng, na, -2, 2);
    *b = randSmall(rng, nb, -2, 2);
    return;
  }
  *a = randVec(rng, na, op == BinaryOp::Pow ? 0.25f : -2.0f, 2.0f);
  *b = randVec(rng, nb, 0.5f, 2.0f);
  if (op != BinaryOp::Pow)
    for (float &x : *b)
      if (rng() % 2)
        x = -x;
}

} // namespace

//===----------------------------------------------------------------------===//
// Without a GPU
//===----------------------------------------------------------------------===//

TEST(CudaPrimitivesHost, StorageSizesAndNames) {
  EXPECT_EQ(cu::storageSize(Storage::F32), 4);
  EXPECT_EQ(cu::storageSize(Storage::BF16), 2);
  EXPECT_EQ(cu::storageSize(Storage::I64), 8);
  EXPECT_EQ(cu::storageSize(Storage::I32), 4);
  EXPECT_EQ(cu::storageSize(Storage::Bool), 1);
  EXPECT_STREQ(cu::storageName(Storage::F32), "f32");
  EXPECT_STREQ(cu::storageName(Storage::BF16), "bf16");
  EXPECT_STREQ(cu::storageName(Storage::I64), "i64");
  EXPECT_STREQ(cu::storageName(Storage::I32), "i32");
  EXPECT_STREQ(cu::storageName(Storage::Bool), "bool");
}

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

TEST_F(CudaPrimitives, BinaryForwardFloatBroadcasts) {
  const std::pair<Shape, Shape> shapes[] = {{{4, 1, 5}, {3, 1}},
                                            {{2, 3}, {2, 3}},
                                            {{5}, {2, 1, 5}},
                                            {{}, {3}},
                                            {{2, 1, 3, 1}, {4, 1, 1}}};
  std::mt19937 rng(1);
  for (BinaryOp op : kFloatOps)
    for (const auto &[as, bs] : shapes) {
      Shape os;
      ASSERT_TRUE(cpu::broadcast_shape(as, bs, &os));
      std::vector<float> a, b;
      binaryInputs(op, rng, count(as), count(bs), &a, &b);
      std::vector<float> want(count(os));
      cpu::binary_forward<float>(op, a.data(), as, b.data(), bs, want.data());
      auto da = upF(a, as, s()), db = upF(b, bs, s());
      auto out = alloc(Storage::F32, os);
      ASSERT_OK(cu::binary_forward(op, da.d, db.d, out.d, s()));
      EXPECT_TRUE(
          relClose(opName("binary", int(op)) + " " + as.str() + " " + bs.str(),
                   downF(out, s()), want, kF32Tol));
    }
}

TEST_F(CudaPrimitives, BinaryForwardBf16InputsF32Output) {
  std::mt19937 rng(2);
  const Shape as{4, 1, 5}, bs{3, 1}, os{4, 3, 5};
  for (BinaryOp op : kFloatOps) {
    std::vector<float> a, b;
    binaryInputs(op, rng, count(as), count(bs), &a, &b);
    a = asStored<bf16>(a);
    b = asStored<bf16>(b);
    std::vector<float> want(count(os));
    cpu::binary_forward<float>(op, a.data(), as, b.data(), bs, want.data());
    auto da = upF(a, as, s(), Storage::BF16),
         db = upF(b, bs, s(), Storage::BF16);
    auto out = alloc(Storage::F32, os);
    ASSERT_OK(cu::binary_forward(op, da.d, db.d, out.d, s()));
    EXPECT_TRUE(relClose(opName("binary bf16->f32", int(op)), downF(out, s()),
                         want, kBf16InTol));
  }
}

TEST_F(CudaPrimitives, BinaryForwardIntegersExact) {
  const BinaryOp ops[] = {BinaryOp::Add,    BinaryOp::Sub,   BinaryOp::Mul,
                          BinaryOp::Div,    BinaryOp::Max,   BinaryOp::Min,
                          BinaryOp::BitAnd, BinaryOp::BitOr, BinaryOp::BitXor};
  const Shape as{4, 1, 5}, bs{3, 1}, os{4, 3, 5};
  std::mt19937 rng(3);
  for (BinaryOp op : ops) {
    // Negative operands and zero divisors included (x / 0 = 0).
    auto a = randInts<int64_t>(rng, count(as), -50, 50);
    auto b = randInts<int64_t>(rng, count(bs), -7, 7);
    std::vector<int64_t> want(count(os));
    cpu::binary_forward<int64_t>(op, a.data(), as, b.data(), bs, want.data());
    auto da = up(a, Storage::I64, as, s()), db = up(b, Storage::I64, bs, s());
    auto out = alloc(Storage::I64, os);
    ASSERT_OK(cu::binary_forward(op, da.d, db.d, out.d, s()));
    EXPECT_TRUE(sameBits(opName("binary i64", int(op)),
                         downRaw<int64_t>(out, s()), want));

    std::vector<int32_t> a32(a.begin(), a.end()), b32(b.begin(), b.end());
    std::vector<int32_t> want32(count(os));
    cpu::binary_forward<int32_t>(op, a32.data(), as, b32.data(), bs,
                                 want32.data());
    auto ea = up(a32, Storage::I32, as, s()),
         eb = up(b32, Storage::I32, bs, s());
    auto out32 = alloc(Storage::I32, os);
    ASSERT_OK(cu::binary_forward(op, ea.d, eb.d, out32.d, s()));
    EXPECT_TRUE(sameBits(opName("binary i32", int(op)),
                         downRaw<int32_t>(out32, s()), want32));
  }
}

TEST_F(CudaPrimitives, BinaryForwardRejectsWrongStorages) {
  auto a = alloc(Storage::F32, Shape{2}), i = alloc(Storage::I64, Shape{2});
  EXPECT_FALSE(cu::binary_forward(BinaryOp::BitAnd, a.d, a.d, a.d, s()).ok());
  EXPECT_FALSE(cu::binary_forward(BinaryOp::Pow, i.d, i.d, i.d, s()).ok());
}

TEST_F(CudaPrimitives, BinaryBackwardBothOperandsBroadcast) {
  const std::pair<Shape, Shape> shapes[] = {
      {{4, 1, 5}, {3, 1}}, {{1, 3, 1}, {2, 1, 4}}, {{2, 3}, {2, 3}}};
  std::mt19937 rng(4);
  for (BinaryOp op : kFloatOps)
    for (const auto &[as, bs] : shapes) {
      Shape os;
      ASSERT_TRUE(cpu::broadcast_shape(as, bs, &os));
      std::vector<float> a, b;
      binaryInputs(op, rng, count(as), count(bs), &a, &b);
      const auto g = randVec(rng, count(os), -1.0f, 1.0f);
      std::vector<float> wa(count(as)), wb(count(bs));
      cpu::binary_backward(op, a.data(), as, b.data(), bs, g.data(), wa.data(),
                           wb.data());
      auto da = upF(a, as, s()), db = upF(b, bs, s()), dg = upF(g, os, s());
      auto ga = alloc(Storage::F32, as), gb = alloc(Storage::F32, bs);
      ASSERT_OK(cu::binary_backward(op, da.d, db.d, dg.d, ga.d, gb.d, s()));
      const std::string w =
          opName("binary_backward", int(op)) + " " + as.str() + " " + bs.str();
      EXPECT_TRUE(relClose(w + " da", downF(ga, s()), wa, kF32Tol));
      EXPECT_TRUE(relClose(w + " db", downF(gb, s()), wb, kF32Tol));
      // One gradient absent.
      auto ga2 = alloc(Storage::F32, as);
      ASSERT_OK(
          cu::binary_backward(op, da.d, db.d, dg.d, ga2.d, DevTensor{}, s()));
      EXPECT_TRUE(relClose(w + " da only", downF(ga2, s()), wa, kF32Tol));
    }
}

TEST_F(CudaPrimitives, CompareOnFloatIntBool) {
  const Shape as{4, 1, 5}, bs{3, 1}, os{4, 3, 5};
  std::mt19937 rng(5);
  for (CompareOp op : {CompareOp::Equal, CompareOp::Less, CompareOp::Greater}) {
    const auto a = randSmall(rng, count(as), -2, 2),
               b = randSmall(rng, count(bs), -2, 2);
    std::vector<uint8_t> want(count(os));
    cpu::compare_forward<float>(op, a.data(), as, b.data(), bs, want.data());
    auto da = upF(a, as, s()), db = upF(b, bs, s());
    auto out = alloc(Storage::Bool, os);
    ASSERT_OK(cu::compare_forward(op, da.d, db.d, out.d, s()));
    EXPECT_TRUE(sameBits(opName("compare f32", int(op)),
                         downRaw<uint8_t>(out, s()), want));

    const auto ai = randInts<int64_t>(rng, count(as), -3, 3),
               bi = randInts<int64_t>(rng, count(bs), -3, 3);
    cpu::compare_forward<int64_t>(op, ai.data(), as, bi.data(), bs,
                                  want.data());
    auto ea = up(ai, Storage::I64, as, s()), eb = up(bi, Storage::I64, bs, s());
    ASSERT_OK(cu::compare_forward(op, ea.d, eb.d, out.d, s()));
    EXPECT_TRUE(sameBits(opName("compare i64", int(op)),
                         downRaw<uint8_t>(out, s()), want));
  }
  const auto ab = randInts<uint8_t>(rng, count(as), 0, 1),
             bb = randInts<uint8_t>(rng, count(bs), 0, 1);
  std::vector<uint8_t> want(count(os));
  cpu::compare_forward<uint8_t>(CompareOp::Equal, ab.data(), as, bb.data(), bs,
                                want.data());
  auto da = up(ab, Storage::Bool, as, s()), db = up(bb, Storage::Bool, bs, s());
  auto out = alloc(Storage::Bool, os);
  ASSERT_OK(cu::compare_forward(CompareOp::Equal, da.d, db.d, out.d, s()));
  EXPECT_TRUE(sameBits("compare bool equal", downRaw<uint8_t>(out, s()), want));
}

TEST_F(CudaPrimitives, LogicNotIsNan) {
  const Shape as{4, 1, 5}, bs{3, 1}, os{4, 3, 5};
  std::mt19937 rng(6);
  // Any nonzero byte reads as true.
  const auto a = randInts<uint8_t>(rng, count(as), 0, 3),
             b = randInts<uint8_t>(rng, count(bs), 0, 3);
  auto da = up(a, Storage::Bool, as, s()), db = up(b, Storage::Bool, bs, s());
  for (LogicOp op : {LogicOp::And, LogicOp::Or}) {
    std::vector<uint8_t> want(count(os));
    cpu::logic_forward(op, a.data(), as, b.data(), bs, want.data());
    auto out = alloc(Storage::Bool, os);
    ASSERT_OK(cu::logic_forward(op, da.d, db.d, out.d, s()));
    EXPECT_TRUE(
        sameBits(opName("logic", int(op)), downRaw<uint8_t>(out, s()), want));
  }
  std::vector<uint8_t> wantNot(count(as));
  cpu::not_forward(a.data(), wantNot.data(), int64_t(a.size()));
  auto notOut = alloc(Storage::Bool, as);
  ASSERT_OK(cu::not_forward(da.d, notOut.d, s()));
  EXPECT_TRUE(sameBits("not", downRaw<uint8_t>(notOut, s()), wantNot));

  std::vector<float> x = randVec(rng, 64, -1.0f, 1.0f);
  for (size_t i = 0; i < x.size(); i += 3)
    x[i] = std::numeric_limits<float>::quiet_NaN();
  x[1] = std::numeric_limits<float>::infinity();
  std::vector<uint8_t> wantNan(x.size());
  cpu::is_nan_forward(x.data(), wantNan.data(), int64_t(x.size()));
  for (Storage t : {Storage::F32, Storage::BF16}) {
    auto dx = upF(x, Shape{64}, s(), t);
    auto out = alloc(Storage::Bool, Shape{64});
    ASSERT_OK(cu::is_nan_forward(dx.d, out.d, s()));
    EXPECT_TRUE(sameBits(std::string("is_nan ") + cu::storageName(t),
                         downRaw<uint8_t>(out, s()), wantNan));
  }
}

TEST_F(CudaPrimitives, WhereForwardBackwardBroadcastCond) {
  const Shape cs{3, 1}, as{2, 3, 4}, bs{4}, os{2, 3, 4};
  std::mt19937 rng(7);
  const auto c = randInts<uint8_t>(rng, count(cs), 0, 1);
  auto dc = up(c, Storage::Bool, cs, s());
  {
    const auto a = randVec(rng, count(as), -1, 1),
               b = randVec(rng, count(bs), -1, 1);
    std::vector<float> want(count(os));
    cpu::where_forward<float>(c.data(), cs, a.data(), as, b.data(), bs,
                              want.data(), os);
    auto da = upF(a, as, s()), db = upF(b, bs, s());
    auto out = alloc(Storage::F32, os);
    ASSERT_OK(cu::where_forward(dc.d, da.d, db.d, out.d, s()));
    EXPECT_TRUE(sameBits("where f32", downRaw<float>(out, s()), want));
  }
  {
    const auto a = randInts<int64_t>(rng, count(as), -100, 100),
               b = randInts<int64_t>(rng, count(bs), -100, 100);
    std::vector<int64_t> want(count(os));
    cpu::where_forward<int64_t>(c.data(), cs, a.data(), as, b.data(), bs,
                                want.data(), os);
    auto da = up(a, Storage::I64, as, s()), db = up(b, Storage::I64, bs, s());
    auto out = alloc(Storage::I64, os);
    ASSERT_OK(cu::where_forward(dc.d, da.d, db.d, out.d, s()));
    EXPECT_TRUE(sameBits("where i64", downRaw<int64_t>(out, s()), want));
  }
  const auto g = randVec(rng, count(os), -1, 1);
  std::vector<float> wa(count(as)), wb(count(bs));
  cpu::where_backward(c.data(), cs, as, bs, g.data(), os, wa.data(), wb.data());
  auto dg = upF(g, os, s());
  auto ga = alloc(Storage::F32, as), gb = alloc(Storage::F32, bs);
  ASSERT_OK(cu::where_backward(dc.d, dg.d, ga.d, gb.d, s()));
  EXPECT_TRUE(relClose("where_backward da", downF(ga, s()), wa, kF32Tol));
  EXPECT_TRUE(relClose("where_backward db", downF(gb, s()), wb, kF32Tol));
}

namespace {

/// The source values of the cast test: some exact in every storage, some
/// that truncate (to integers) or round (to bf16: 0.1, 1 + 2^-8 and
/// 1 + 3 2^-8 are ties or inexact, 257 rounds to 256).
const double kCastValues[] = {0.0,   1.0,  -1.0,       2.5,        -2.5,  0.75,
                              -0.75, 3.0,  100.0,      -128.0,     7.0,   256.0,
                              0.1,   -3.3, 1.00390625, 1.01171875, 257.0, 1e6};

/// The element of storage t holding v (v fits every storage exactly, but
/// fractions truncate in integer storages).
void putValue(Storage t, double v, std::vector<uint8_t> &bytes, size_t i) {
  uint8_t *p = bytes.data() + i * size_t(cu::storageSize(t));
  switch (t) {
  case Storage::F32: {
    const float f = float(v);
    std::memcpy(p, &f, 4);
    return;
  }
  case Storage::BF16: {
    const bf16 h = __float2bfloat16(float(v));
    std::memcpy(p, &h, 2);
    return;
  }
  case Storage::I64: {
    const int64_t x = int64_t(v);
    std::memcpy(p, &x, 8);
    return;
  }
  case Storage::I32: {
    const int32_t x = int32_t(v);
    std::memcpy(p, &x, 4);
    return;
  }
  case Storage::Bool:
    *p = v != 0.0 ? 1 : 0;
    return;
  }
}

/// The element as a double (exact for every storage).
double getValue(Storage t, const std::vector<uint8_t> &bytes, size_t i) {
  const uint8_t *p = bytes.data() + i * size_t(cu::storageSize(t));
  switch (t) {
  case Storage::F32: {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  case Storage::BF16: {
    bf16 h;
    std::memcpy(&h, p, 2);
    return __bfloat162float(h);
  }
  case Storage::I64: {
    int64_t x;
    std::memcpy(&x, p, 8);
    return double(x);
  }
  case Storage::I32: {
    int32_t x;
    std::memcpy(&x, p, 4);
    return x;
  }
  case Storage::Bool:
    return *p ? 1.0 : 0.0;
  }
  return 0.0;
}

} // namespace

TEST_F(CudaPrimitives, CastAnyAllStoragePairsBitwise) {
  const Storage all[] = {Storage::F32, Storage::BF16, Storage::I64,
                         Storage::I32, Storage::Bool};
  const size_t n = sizeof(kCastValues) / sizeof(kCastValues[0]);
  for (Storage from : all)
    for (Storage to : all) {
      std::vector<uint8_t> src(n * size_t(cu::storageSize(from)));
      for (size_t i = 0; i < n; ++i)
        putValue(from, kCastValues[i], src, i);
      // The host rule (cpu::cast's): float to integer truncates, anything to
      // bool is x != 0, to bf16 rounds to nearest even. Every source value
      // (a double here) converts exactly to the intermediate double.
      std::vector<uint8_t> want(n * size_t(cu::storageSize(to)));
      for (size_t i = 0; i < n; ++i)
        putValue(to, getValue(from, src, i), want, i);
      auto dx = uploadBytes(src.data(), from, Shape{int64_t(n)}, s());
      auto dy = alloc(to, Shape{int64_t(n)});
      ASSERT_OK(cu::cast_any(dx.d, dy.d, s()));
      const auto got =
          downRaw<uint8_t>(DT{nullptr, DevTensor{dy.d.p, Storage::Bool,
                                                 Shape{int64_t(want.size())}}},
                           s());
      EXPECT_TRUE(sameBits(std::string("cast ") + cu::storageName(from) +
                               " -> " + cu::storageName(to),
                           got, want));
    }
  // Against the CPU casts themselves, on values that need truncation.
  const std::vector<float> x = {0.0f, -0.0f, 1.9f, -1.9f, 3.5f, -1e6f, 7e8f};
  std::vector<int64_t> want(x.size());
  cpu::cast(x.data(), want.data(), int64_t(x.size()));
  auto dx = upF(x, Shape{int64_t(x.size())}, s());
  auto dy = alloc(Storage::I64, Shape{int64_t(x.size())});
  ASSERT_OK(cu::cast_any(dx.d, dy.d, s()));
  EXPECT_TRUE(
      sameBits("cast f32 -> i64 (cpu::cast)", downRaw<int64_t>(dy, s()), want));
  std::vector<uint8_t> wantB(x.size());
  cpu::cast(x.data(), wantB.data(), int64_t(x.size()));
  auto db = alloc(Storage::Bool, Shape{int64_t(x.size())});
  ASSERT_OK(cu::cast_any(dx.d, db.d, s()));
  EXPECT_TRUE(sameBits("cast f32 -> bool (cpu::cast)",
                       downRaw<uint8_t>(db, s()), wantB));
}

TEST_F(CudaPrimitives, UnaryForwardBackwardEveryOp) {
  const UnaryOp ops[] = {UnaryOp::Neg,        UnaryOp::Abs,  UnaryOp::Sqrt,
                         UnaryOp::Reciprocal, UnaryOp::Exp,  UnaryOp::Log,
                         UnaryOp::Erf,        UnaryOp::Tanh, UnaryOp::Sigmoid,
                         UnaryOp::Relu,       UnaryOp::Sin,  UnaryOp::Cos,
                         UnaryOp::Floor,      UnaryOp::Ceil, UnaryOp::Sign};
  const size_t n = 1000;
  const Shape sh{int64_t(n)};
  std::mt19937 rng(8);
  for (UnaryOp op : ops) {
    const bool positive =
        op == UnaryOp::Sqrt || op == UnaryOp::Log || op == UnaryOp::Reciprocal;
    auto x = randVec(rng, n, positive ? 0.25f : -3.0f, 3.0f);
    if (!positive)
      x[0] = 0.0f; // the kinks: abs'(0) = relu'(0) = 0, sign(0) = 0
    const auto g = randVec(rng, n, -1.0f, 1.0f);
    std::vector<float> y(n), dx(n);
    cpu::unary_forward(op, x.data(), y.data(), int64_t(n));
    cpu::unary_backward(op, x.data(), y.data(), g.data(), dx.data(),
                        int64_t(n));
    auto dX = upF(x, sh, s()), dG = upF(g, sh, s());
    auto dY = alloc(Storage::F32, sh);
    ASSERT_OK(cu::unary_forward(op, dX.d, dY.d, s()));
    EXPECT_TRUE(
        relClose(opName("unary_forward", int(op)), downF(dY, s()), y, kF32Tol));
    auto dYref = upF(y, sh, s()); // the backward reads the CPU's y
    auto dDx = alloc(Storage::F32, sh);
    ASSERT_OK(cu::unary_backward(op, dX.d, dYref.d, dG.d, dDx.d, s()));
    EXPECT_TRUE(relClose(opName("unary_backward", int(op)), downF(dDx, s()), dx,
                         kF32Tol));
    // In place: y over x.
    auto dIn = upF(x, sh, s());
    ASSERT_OK(cu::unary_forward(op, dIn.d, dIn.d, s()));
    EXPECT_TRUE(relClose(opName("unary_forward in place", int(op)),
                         downF(dIn, s()), y, kF32Tol));
  }
}

//===----------------------------------------------------------------------===//
// Reductions, softmax, cumsum
//===----------------------------------------------------------------------===//

TEST_F(CudaPrimitives, ReduceForwardFloatAndInt) {
  const Shape xs{3, 4, 5};
  const std::vector<std::vector<int64_t>> axesSets = {
      {0}, {1}, {2}, {0, 2}, {1, 2}, {0, 1, 2}};
  std::mt19937 rng(9);
  const auto x = randVec(rng, count(xs), -2.0f, 2.0f);
  const auto xi = randInts<int64_t>(rng, count(xs), -1000, 1000);
  const std::vector<int32_t> xi32(xi.begin(), xi.end());
  auto dx = upF(x, xs, s());
  auto dxb = upF(x, xs, s(), Storage::BF16);
  const auto xr = asStored<bf16>(x);
  auto di = up(xi, Storage::I64, xs, s());
  auto di32 = up(xi32, Storage::I32, xs, s());
  for (const auto &axes : axesSets) {
    const Shape ys = cpu::reduce_shape(xs, axes, /*keepdims=*/false);
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max}) {
      std::vector<float> want(count(ys));
      cpu::reduce_forward(op, x.data(), xs, axes, want.data());
      auto y = alloc(Storage::F32, ys);
      ASSERT_OK(cu::reduce_forward(op, dx.d, axes, y.d, s()));
      const std::string w = opName("reduce", int(op)) + " axes " +
                            std::to_string(axes.size()) + "/" +
                            std::to_string(axes.back());
      EXPECT_TRUE(relClose(w, downF(y, s()), want, kF32Tol));
      cpu::reduce_forward(op, xr.data(), xs, axes, want.data());
      ASSERT_OK(cu::reduce_forward(op, dxb.d, axes, y.d, s()));
      EXPECT_TRUE(relClose(w + " bf16 in", downF(y, s()), want, kBf16InTol));
    }
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max}) {
      std::vector<int64_t> want(count(ys));
      cpu::reduce_forward_int<int64_t>(op, xi.data(), xs, axes, want.data());
      auto y = alloc(Storage::I64, ys);
      ASSERT_OK(cu::reduce_forward(op, di.d, axes, y.d, s()));
      EXPECT_TRUE(sameBits(opName("reduce i64", int(op)),
                           downRaw<int64_t>(y, s()), want));
      std::vector<int32_t> want32(count(ys));
      cpu::reduce_forward_int<int32_t>(op, xi32.data(), xs, axes,
                                       want32.data());
      auto y32 = alloc(Storage::I32, ys);
      ASSERT_OK(cu::reduce_forward(op, di32.d, axes, y32.d, s()));
      EXPECT_TRUE(sameBits(opName("reduce i32", int(op)),
                           downRaw<int32_t>(y32, s()), want32));
    }
  }
}

TEST_F(CudaPrimitives, ReduceBackwardIncludingMaxTies) {
  const Shape xs{3, 4, 5};
  const std::vector<std::vector<int64_t>> axesSets = {
      {0}, {2}, {0, 2}, {0, 1, 2}};
  std::mt19937 rng(10);
  const auto x = randSmall(rng, count(xs), 0, 2); // many ties
  auto dx = upF(x, xs, s());
  for (const auto &axes : axesSets) {
    const Shape ys = cpu::reduce_shape(xs, axes, /*keepdims=*/true);
    const auto g = randVec(rng, count(ys), -1.0f, 1.0f);
    auto dg = upF(g, ys, s());
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max}) {
      std::vector<float> y(count(ys)), want(count(xs));
      cpu::reduce_forward(op, x.data(), xs, axes, y.data());
      cpu::reduce_backward(op, x.data(), xs, axes, y.data(), g.data(),
                           want.data());
      auto dy = upF(y, ys, s());
      auto out = alloc(Storage::F32, xs);
      ASSERT_OK(cu::reduce_backward(op, dx.d, axes, dy.d, dg.d, out.d, s()));
      EXPECT_TRUE(relClose(opName("reduce_backward", int(op)) + " axes " +
                               std::to_string(axes.size()),
                           downF(out, s()), want, kF32Tol));
    }
  }
}

TEST_F(CudaPrimitives, SumToShape) {
  const Shape ss{2, 3, 4, 5};
  const Shape targets[] = {{3, 1, 5}, {5},          {1, 1},
                           {},        {2, 3, 4, 5}, {2, 1, 4, 1}};
  std::mt19937 rng(11);
  const auto x = randVec(rng, count(ss), -1.0f, 1.0f);
  auto dx = upF(x, ss, s());
  for (const Shape &ds : targets) {
    std::vector<float> want(count(ds));
    cpu::sum_to_shape(x.data(), ss, want.data(), ds);
    auto out = alloc(Storage::F32, ds);
    ASSERT_OK(cu::sum_to_shape(dx.d, out.d, s()));
    EXPECT_TRUE(
        relClose("sum_to_shape " + ds.str(), downF(out, s()), want, kF32Tol));
  }
}

TEST_F(CudaPrimitives, SoftmaxLastAndMiddleAxes) {
  const std::pair<Shape, int> cases[] = {
      {{4, 37}, 1}, {{2, 3, 300}, 2}, {{3, 7, 5}, 1}, {{6, 2}, 0}};
  std::mt19937 rng(12);
  const float ninf = -std::numeric_limits<float>::infinity();
  for (const auto &[sh, axis] : cases) {
    auto x = randVec(rng, count(sh), -4.0f, 4.0f);
    const auto g = randVec(rng, count(sh), -1.0f, 1.0f);
    const std::string w = sh.str() + " axis " + std::to_string(axis);
    std::vector<float> y(count(sh)), ly(count(sh)), d(count(sh)), ld(count(sh));
    cpu::softmax_forward(x.data(), sh, axis, y.data());
    cpu::log_softmax_forward(x.data(), sh, axis, ly.data());
    cpu::softmax_backward(y.data(), g.data(), sh, axis, d.data());
    cpu::log_softmax_backward(ly.data(), g.data(), sh, axis, ld.data());
    auto dX = upF(x, sh, s()), dG = upF(g, sh, s());
    auto dY = upF(y, sh, s()), dLY = upF(ly, sh, s());
    auto out = alloc(Storage::F32, sh);
    ASSERT_OK(cu::softmax_forward(dX.d, axis, out.d, s()));
    EXPECT_TRUE(relClose("softmax " + w, downF(out, s()), y, kF32Tol));
    ASSERT_OK(cu::log_softmax_forward(dX.d, axis, out.d, s()));
    EXPECT_TRUE(relClose("log_softmax " + w, downF(out, s()), ly, kF32Tol));
    ASSERT_OK(cu::softmax_backward(dY.d, dG.d, axis, out.d, s()));
    EXPECT_TRUE(relClose("softmax_backward " + w, downF(out, s()), d, kF32Tol));
    ASSERT_OK(cu::log_softmax_backward(dLY.d, dG.d, axis, out.d, s()));
    EXPECT_TRUE(
        relClose("log_softmax_backward " + w, downF(out, s()), ld, kF32Tol));

    // bf16 input, f32 output.
    const auto xr = asStored<bf16>(x);
    cpu::softmax_forward(xr.data(), sh, axis, y.data());
    auto dXb = upF(x, sh, s(), Storage::BF16);
    ASSERT_OK(cu::softmax_forward(dXb.d, axis, out.d, s()));
    EXPECT_TRUE(
        relClose("softmax bf16 in " + w, downF(out, s()), y, kBf16InTol));
  }
  // A row of -inf gives NaN (as the CPU and PyTorch), the other rows not.
  const Shape sh{3, 8};
  auto x = randVec(rng, count(sh), -1.0f, 1.0f);
  for (int j = 0; j < 8; ++j)
    x[size_t(8 + j)] = ninf;
  x[3] = ninf; // a single -inf in a normal row: probability 0
  std::vector<float> y(count(sh)), ly(count(sh));
  cpu::softmax_forward(x.data(), sh, 1, y.data());
  cpu::log_softmax_forward(x.data(), sh, 1, ly.data());
  ASSERT_TRUE(std::isnan(y[8]));
  auto dX = upF(x, sh, s());
  auto out = alloc(Storage::F32, sh);
  ASSERT_OK(cu::softmax_forward(dX.d, 1, out.d, s()));
  EXPECT_TRUE(relClose("softmax -inf row", downF(out, s()), y, kF32Tol));
  ASSERT_OK(cu::log_softmax_forward(dX.d, 1, out.d, s()));
  EXPECT_TRUE(relClose("log_softmax -inf row", downF(out, s()), ly, kF32Tol));
}

TEST_F(CudaPrimitives, CumsumFloatAndIntAllModes) {
  const Shape xs{3, 4, 5};
  std::mt19937 rng(13);
  const auto x = randVec(rng, count(xs), -1.0f, 1.0f);
  const auto xi = randInts<int64_t>(rng, count(xs), -100, 100);
  const std::vector<int32_t> xi32(xi.begin(), xi.end());
  auto dx = upF(x, xs, s());
  auto di = up(xi, Storage::I64, xs, s());
  auto di32 = up(xi32, Storage::I32, xs, s());
  for (int axis = 0; axis < 3; ++axis)
    for (bool exclusive : {false, true})
      for (bool reverse : {false, true}) {
        const std::string w = "cumsum axis " + std::to_string(axis) +
                              (exclusive ? " exclusive" : "") +
                              (reverse ? " reverse" : "");
        std::vector<float> want(count(xs));
        cpu::cumsum<float>(x.data(), xs, axis, exclusive, reverse, want.data());
        auto y = alloc(Storage::F32, xs);
        ASSERT_OK(cu::cumsum(dx.d, axis, exclusive, reverse, y.d, s()));
        EXPECT_TRUE(relClose(w, downF(y, s()), want, kF32Tol));

        std::vector<int64_t> wantI(count(xs));
        cpu::cumsum<int64_t>(xi.data(), xs, axis, exclusive, reverse,
                             wantI.data());
        auto yi = alloc(Storage::I64, xs);
        ASSERT_OK(cu::cumsum(di.d, axis, exclusive, reverse, yi.d, s()));
        EXPECT_TRUE(sameBits(w + " i64", downRaw<int64_t>(yi, s()), wantI));

        std::vector<int32_t> want32(count(xs));
        cpu::cumsum<int32_t>(xi32.data(), xs, axis, exclusive, reverse,
                             want32.data());
        auto y32 = alloc(Storage::I32, xs);
        ASSERT_OK(cu::cumsum(di32.d, axis, exclusive, reverse, y32.d, s()));
        EXPECT_TRUE(sameBits(w + " i32", downRaw<int32_t>(y32, s()), want32));
      }
}
