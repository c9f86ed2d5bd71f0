//===- ArtifactValidate.cpp - what the executor relies on -----------------===//
//
// Part of weipipe's runtime. An artifact is untrusted input and the kernels
// trust every size they are given (a shape mismatch aborts, a wrong size
// reads out of bounds), so every instruction is checked here against its
// opcode's contract (Opcodes.def): operand and result counts, dtypes, shapes
// as the kernel will read and write them, attribute ranges. A valid artifact
// runs without a kernel abort; only data (token ids) can still be wrong, and
// the kernels report that through Status.
//
//===----------------------------------------------------------------------===//

#include "ArtifactInternal.h"
#include "weipipe/runtime/RankMemory.h"

#include <algorithm>
#include <limits>
#include <utility>

namespace weipipe::rt::detail {

using Dims = std::vector<int64_t>;

bool checkedNumel(const Dims &s, size_t elementSize, int64_t *numel) {
  return shapeProblem(s, elementSize, numel).empty();
}

namespace {

std::string str(const Dims &s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i)
    r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

int64_t prod(const Dims &s, size_t from, size_t to) {
  int64_t n = 1;
  for (size_t i = from; i < to && i < s.size(); ++i)
    n *= s[i];
  return n;
}

constexpr int64_t kMaxStep = int64_t(1) << 62;
/// Micro-batches per step: the trainer keeps per-micro-batch state, and no
/// schedule needs more.
constexpr uint32_t kMaxMicrobatches = 1u << 20;

/// cblas_sgemm takes int sizes.
bool gemmFits(int64_t M, int64_t K, int64_t N) {
  constexpr int64_t kMax = std::numeric_limits<int>::max();
  return M <= kMax && K <= kMax && N <= kMax;
}

/// NumPy broadcasting, trailing-aligned.
bool broadcastDims(const Dims &a, const Dims &b, Dims *out) {
  const size_t r = std::max(a.size(), b.size());
  out->assign(r, 1);
  for (size_t i = 0; i < r; ++i) {
    const int64_t da = i + a.size() >= r ? a[i + a.size() - r] : 1;
    const int64_t db = i + b.size() >= r ? b[i + b.size() - r] : 1;
    if (da != db && da != 1 && db != 1)
      return false;
    (*out)[i] = da == 1 ? db : da;
  }
  return true;
}

/// `in` stretches to exactly `out` (no dim of `out` grows `in`'s rank past
/// it, each aligned dim equal or 1).
bool broadcastsTo(const Dims &in, const Dims &out) {
  if (in.size() > out.size())
    return false;
  const size_t off = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i)
    if (in[i] != out[off + i] && in[i] != 1)
      return false;
  return true;
}

/// ONNX/NumPy matmul result shape, or false.
bool matmulDims(const Dims &a, const Dims &b, Dims *out) {
  if (a.empty() || b.empty())
    return false;
  const bool aVec = a.size() == 1, bVec = b.size() == 1;
  const int64_t K = a.back();
  const int64_t kb = bVec ? b[0] : b[b.size() - 2];
  if (K != kb)
    return false;
  Dims ba(a.begin(), aVec ? a.begin() : a.end() - 2);
  Dims bb(b.begin(), bVec ? b.begin() : b.end() - 2);
  if (!broadcastDims(ba, bb, out))
    return false;
  if (!aVec)
    out->push_back(a[a.size() - 2]);
  if (!bVec)
    out->push_back(b.back());
  return out->size() <= size_t(kMaxRank);
}

/// Checks one instruction against its opcode's contract; refs are already
/// known to be valid (inside their buffers, shapes of rank <= 8).
class InstrCheck {
public:
  explicit InstrCheck(const Instruction &in) : I(in) {}
  std::string problem() {
    check();
    return err_;
  }

private:
  struct Slot {
    const TensorRef &r;
    std::string label;
    const Dims &shape() const { return r.shape; }
  };

  const Instruction &I;
  std::string err_;

  bool fail(const std::string &m) {
    if (err_.empty())
      err_ = m;
    return false;
  }
  // Slots past the end read as absent, so that a check chain may name its
  // slots before its arity check has run.
  static const TensorRef &absent() {
    static const TensorRef r;
    return r;
  }
  Slot O(size_t i, const char *role) const {
    return {i < I.operands.size() ? I.operands[i] : absent(),
            "operand " + std::to_string(i) + " (" + role + ")"};
  }
  Slot R(size_t i, const char *role) const {
    return {i < I.results.size() ? I.results[i] : absent(),
            "result " + std::to_string(i) + " (" + role + ")"};
  }

  bool arity(size_t nOps, size_t nRes) {
    if (I.operands.size() != nOps || I.results.size() != nRes)
      return fail("expected " + std::to_string(nOps) + " operands and " +
                  std::to_string(nRes) + " results, got " +
                  std::to_string(I.operands.size()) + " and " +
                  std::to_string(I.results.size()));
    return true;
  }
  bool attrs(size_t nInts, size_t nFloats) {
    if (I.ints.size() != nInts || I.floats.size() != nFloats)
      return fail("expected " + std::to_string(nInts) + " ints and " +
                  std::to_string(nFloats) + " floats, got " +
                  std::to_string(I.ints.size()) + " and " +
                  std::to_string(I.floats.size()));
    return true;
  }
  bool enumInt(size_t i, int64_t count, const char *what) {
    if (I.ints[i] < 0 || I.ints[i] >= count)
      return fail(std::string(what) + " " + std::to_string(I.ints[i]) +
                  " is out of range [0, " + std::to_string(count) + ")");
    return true;
  }
  bool boolInt(size_t i, const char *what) { return enumInt(i, 2, what); }
  bool axisInt(size_t i, size_t rank) {
    if (I.ints[i] < 0 || I.ints[i] >= int64_t(rank))
      return fail("axis " + std::to_string(I.ints[i]) +
                  " is out of range [0, " + std::to_string(rank) + ")");
    return true;
  }
  bool cond(bool c, const std::string &msg) { return c || fail(msg); }

  bool req(const Slot &s) {
    return s.r.present() || fail(s.label + " is missing");
  }
  bool is(const Slot &s, DType t) {
    return s.r.dtype == t || fail(s.label + " is " + dtypeName(s.r.dtype) +
                                  ", expected " + dtypeName(t));
  }
  /// Present with dtype t.
  bool req(const Slot &s, DType t) { return req(s) && is(s, t); }
  bool f32(const Slot &s) { return req(s, DType::F32); }
  bool sameDtype(const Slot &s, const Slot &like) {
    return is(s, like.r.dtype);
  }
  bool shapeIs(const Slot &s, const Dims &want) {
    return s.shape() == want || fail(s.label + " has shape " + str(s.shape()) +
                                     ", expected " + str(want));
  }
  bool sameShape(const Slot &s, const Slot &like) {
    return shapeIs(s, like.shape());
  }
  bool rankAtLeast(const Slot &s, size_t r) {
    return s.shape().size() >= r ||
           fail(s.label + " has rank " + std::to_string(s.shape().size()) +
                ", needs at least " + std::to_string(r));
  }
  /// An optional f32 gradient: absent, or f32 with `like`'s shape.
  bool optGrad(const Slot &s, const Slot &like) {
    return !s.r.present() || (is(s, DType::F32) && sameShape(s, like));
  }
  bool broadcastTo(const Slot &s, const Dims &to) {
    return broadcastsTo(s.shape(), to) ||
           fail(s.label + " " + str(s.shape()) + " does not broadcast to " +
                str(to));
  }
  bool bcast(const Slot &a, const Slot &b, Dims *out) {
    return broadcastDims(a.shape(), b.shape(), out) ||
           fail(a.label + " " + str(a.shape()) + " and " + b.label + " " +
                str(b.shape()) + " do not broadcast");
  }
  /// Same dtype, present; dtype one of f32, i64, i32 (and bool if allowed).
  bool numericDtype(const Slot &s, bool allowBool) {
    return cond(s.r.dtype != DType::Bool || allowBool,
                s.label + " is bool, which this instruction does not take");
  }

  bool unaryF32() { // (x) -> y, f32, same shape
    Slot x = O(0, "x"), y = R(0, "y");
    return f32(x) && f32(y) && sameShape(y, x);
  }
  bool gradF32() { // (x, dy) -> dx, f32, same shape
    Slot x = O(0, "x"), dy = O(1, "dy"), dx = R(0, "dx");
    return f32(x) && f32(dy) && f32(dx) && sameShape(dy, x) && sameShape(dx, x);
  }
  /// Slice bounds of ints (starts ++ ends ++ steps) against `xs`, as the
  /// kernel requires them clamped; the sliced shape in *out.
  bool slice(const Slot &x, Dims *out) {
    const Dims &xs = x.shape();
    const size_t r = xs.size();
    if (!attrs(3 * r, 0))
      return false;
    out->assign(r, 0);
    for (size_t d = 0; d < r; ++d) {
      const int64_t s = I.ints[d], e = I.ints[r + d], st = I.ints[2 * r + d];
      const std::string at = "slice dim " + std::to_string(d) + " (start " +
                             std::to_string(s) + ", end " + std::to_string(e) +
                             ", step " + std::to_string(st) + ") of " + str(xs);
      // |step| <= 2^62 keeps the kernel's count arithmetic in range.
      if (st == 0 || st > kMaxStep || st < -kMaxStep)
        return fail(at + ": bad step");
      if (st > 0) {
        if (!(0 <= s && s <= e && e <= xs[d]))
          return fail(at + ": bounds are not clamped");
        (*out)[d] = e > s ? (e - s + st - 1) / st : 0;
      } else {
        if (!(-1 <= e && e <= s && s < xs[d]))
          return fail(at + ": bounds are not clamped");
        (*out)[d] = s > e ? (s - e - st - 1) / -st : 0;
      }
    }
    return true;
  }
  /// ints [axis]: gather of x along axis by idx; result shape in *out.
  bool gather(const Slot &x, const Slot &idx, Dims *out) {
    if (!(rankAtLeast(x, 1) && axisInt(0, x.shape().size())))
      return false;
    const size_t axis = size_t(I.ints[0]);
    out->assign(x.shape().begin(), x.shape().begin() + axis);
    out->insert(out->end(), idx.shape().begin(), idx.shape().end());
    out->insert(out->end(), x.shape().begin() + axis + 1, x.shape().end());
    return cond(out->size() <= size_t(kMaxRank),
                "gather result rank exceeds 8");
  }
  /// ints [ReduceOp, axes...] over x's shape; the reduced element count.
  bool reduceAxes(const Dims &xs, int64_t *reducedNumel) {
    int64_t prev = -1, n = 1;
    std::vector<bool> reduced(xs.size(), false);
    for (size_t i = 1; i < I.ints.size(); ++i) {
      const int64_t a = I.ints[i];
      if (a <= prev || a >= int64_t(xs.size()))
        return fail("reduction axes must be sorted, unique and in [0, " +
                    std::to_string(xs.size()) + ")");
      reduced[size_t(a)] = true;
      prev = a;
    }
    for (size_t i = 0; i < xs.size(); ++i)
      if (!reduced[i])
        n *= xs[i];
    *reducedNumel = n;
    return true;
  }
  bool numelIs(const Slot &s, int64_t n) {
    return s.r.numel() == n ||
           fail(s.label + " has " + std::to_string(s.r.numel()) +
                " elements, expected " + std::to_string(n));
  }
  /// ints [axis]; floats [eps]: x f32 rank >= 1; the normalized size.
  bool norm(const Slot &x, int64_t *normSize) {
    if (!(f32(x) && rankAtLeast(x, 1) && axisInt(0, x.shape().size())))
      return false;
    *normSize = prod(x.shape(), size_t(I.ints[0]), x.shape().size());
    return true;
  }
  bool matmul(const Slot &a, const Slot &b, Dims *out) {
    if (!matmulDims(a.shape(), b.shape(), out))
      return fail("matmul of " + str(a.shape()) + " and " + str(b.shape()) +
                  " is not defined");
    // The kernel may run all rows of a as one GEMM.
    const Dims &as = a.shape();
    return cond(
        gemmFits(prod(as, 0, as.size() - 1), as.back(), b.shape().back()),
        "matmul too large for BLAS");
  }
  bool attention(bool grad);
  bool contract(const OpcodeInfo &c);
  bool check();
};

bool InstrCheck::attention(bool grad) {
  // The log-sum-exp of the scores: an optional extra result of the forward
  // and operand of the backward (without it the backward recomputes it);
  // the counts are Opcodes.def's.
  const bool withLse = grad ? I.operands.size() == 7 : I.results.size() == 2;
  const int64_t H = I.ints[0], Hkv = I.ints[1];
  Slot q = O(0, "q"), k = O(1, "k"), v = O(2, "v");
  if (!(cond(H > 0 && Hkv > 0 && H % Hkv == 0,
             "num_heads " + std::to_string(H) +
                 " is not a positive multiple "
                 "of num_kv_heads " +
                 std::to_string(Hkv)) &&
        boolInt(2, "causal") && f32(q) && f32(k) && f32(v)))
    return false;
  const size_t rank = q.shape().size();
  if (!cond((rank == 3 || rank == 4) && k.shape().size() == rank &&
                v.shape().size() == rank,
            "q, k and v must all have rank 3 or all rank 4"))
    return false;
  const Dims &qs = q.shape(), &ks = k.shape(), &vs = v.shape();
  int64_t B = qs[0], Sq, Sk = ks[rank == 4 ? 2 : 1], D, Dv;
  Dims wantK, wantV, wantOut;
  if (rank == 4) {
    Sq = qs[2];
    D = qs[3];
    Dv = vs[3];
    if (!cond(qs[1] == H, "q has " + std::to_string(qs[1]) +
                              " heads, num_heads is " + std::to_string(H)))
      return false;
    wantK = {B, Hkv, Sk, D};
    wantV = {B, Hkv, Sk, Dv};
    wantOut = {B, H, Sq, Dv};
  } else {
    Sq = qs[1];
    if (!cond(qs[2] % H == 0 && vs[2] % Hkv == 0,
              "hidden sizes are not divisible by the head counts"))
      return false;
    D = qs[2] / H;
    Dv = vs[2] / Hkv;
    if (!cond(Dv <= std::numeric_limits<int64_t>::max() / H,
              "attention output size overflows"))
      return false;
    wantK = {B, Sk, Hkv * D};
    wantV = {B, Sk, Hkv * Dv};
    wantOut = {B, Sq, H * Dv};
  }
  if (!(cond(D > 0 && Dv > 0, "attention head sizes must be positive") &&
        shapeIs(k, wantK) && shapeIs(v, wantV)))
    return false;
  Slot mask = O(grad ? 5 : 3, "mask");
  if (mask.r.present()) {
    if (!(cond(mask.r.dtype == DType::F32 || mask.r.dtype == DType::Bool,
               mask.label + " must be f32 (additive) or bool (keep)") &&
          cond(mask.shape().size() <= 4, mask.label + " has rank > 4") &&
          broadcastTo(mask, {B, H, Sq, Sk})))
      return false;
  }
  if (withLse) {
    Slot lse = grad ? O(6, "lse") : R(1, "lse");
    if (!(f32(lse) && shapeIs(lse, {B, H, Sq})))
      return false;
  }
  if (!grad) {
    Slot out = R(0, "out");
    return f32(out) && shapeIs(out, wantOut);
  }
  Slot out = O(3, "out"), dout = O(4, "dout");
  return f32(out) && shapeIs(out, wantOut) && f32(dout) &&
         shapeIs(dout, wantOut) && optGrad(R(0, "dq"), q) &&
         optGrad(R(1, "dk"), k) && optGrad(R(2, "dv"), v);
}

/// "n", "lo to hi" or "at least lo".
std::string countRange(uint32_t lo, uint32_t hi) {
  if (lo == hi)
    return std::to_string(lo);
  if (hi == OpcodeInfo::kMany)
    return "at least " + std::to_string(lo);
  return std::to_string(lo) + " to " + std::to_string(hi);
}

bool InstrCheck::contract(const OpcodeInfo &c) {
  auto within = [](size_t n, uint32_t lo, uint32_t hi) {
    return n >= lo && (hi == OpcodeInfo::kMany || n <= hi);
  };
  if (!within(I.operands.size(), c.minOperands, c.maxOperands) ||
      !within(I.results.size(), c.minResults, c.maxResults))
    return fail("expected " + countRange(c.minOperands, c.maxOperands) +
                " operands and " + countRange(c.minResults, c.maxResults) +
                " results, got " + std::to_string(I.operands.size()) + " and " +
                std::to_string(I.results.size()));
  if (!within(I.ints.size(), c.minInts, c.maxInts) ||
      I.floats.size() != c.floats)
    return fail("expected " + countRange(c.minInts, c.maxInts) + " ints and " +
                std::to_string(c.floats) + " floats, got " +
                std::to_string(I.ints.size()) + " and " +
                std::to_string(I.floats.size()));
  if (c.intsEnum != OpEnum::None &&
      !enumInt(0, enumSize(c.intsEnum), enumName(c.intsEnum)))
    return false;
  if (I.flags & ~(Instruction::kAccumulate | Instruction::kFusedWithNext))
    return fail("unknown flag bits " + std::to_string(I.flags));
  if ((I.flags & Instruction::kAccumulate) && !c.mayAccumulate())
    return fail("the accumulate flag is set on an instruction that cannot "
                "accumulate");
  if ((I.flags & Instruction::kFusedWithNext) &&
      !(c.flags & OpcodeInfo::kFusesWithNext))
    return fail("the fused-with-next flag is set on an instruction that "
                "cannot run another");
  for (size_t i = 0; i < I.results.size(); ++i) {
    const Space s = I.results[i].space;
    if (s == Space::Param || s == Space::Const)
      return fail("result " + std::to_string(i) + " writes " +
                  (s == Space::Param ? "a parameter's value" : "a constant"));
    if (s == Space::None && !(c.flags & OpcodeInfo::kOptionalResults))
      return fail("result " + std::to_string(i) + " is missing");
  }
  return true;
}

bool InstrCheck::check() {
  const OpcodeInfo *info = opcodeInfo(I.op);
  if (!info)
    return fail("unknown opcode " + std::to_string(unsigned(I.op)));
  if (!contract(*info))
    return false;
  Dims t;
  int64_t n = 0;
  switch (I.op) {
  case Opcode::Binary: {
    Slot a = O(0, "a"), b = O(1, "b"), y = R(0, "out");
    return req(a) && req(b) && req(y) && sameDtype(b, a) && sameDtype(y, a) &&
           numericDtype(a, false) &&
           cond(BinaryOp(I.ints[0]) != BinaryOp::Pow || a.r.dtype == DType::F32,
                "pow is only defined on f32") &&
           cond(BinaryOp(I.ints[0]) < BinaryOp::BitAnd ||
                    a.r.dtype != DType::F32,
                "the bitwise ops are only defined on integers") &&
           bcast(a, b, &t) && shapeIs(y, t);
  }
  case Opcode::Compare: {
    Slot a = O(0, "a"), b = O(1, "b"), y = R(0, "out");
    return req(a) && req(b) && sameDtype(b, a) && req(y, DType::Bool) &&
           bcast(a, b, &t) && shapeIs(y, t);
  }
  case Opcode::Logic: {
    Slot a = O(0, "a"), b = O(1, "b"), y = R(0, "out");
    return req(a, DType::Bool) && req(b, DType::Bool) && req(y, DType::Bool) &&
           bcast(a, b, &t) && shapeIs(y, t);
  }
  case Opcode::Not: {
    Slot x = O(0, "x"), y = R(0, "y");
    return req(x, DType::Bool) && req(y, DType::Bool) && sameShape(y, x);
  }
  case Opcode::IsNan: {
    Slot x = O(0, "x"), y = R(0, "y");
    return f32(x) && req(y, DType::Bool) && sameShape(y, x);
  }
  case Opcode::Cast: {
    Slot x = O(0, "x"), y = R(0, "y");
    return req(x) && req(y) && sameShape(y, x);
  }
  case Opcode::Where: {
    Slot c = O(0, "cond"), a = O(1, "a"), b = O(2, "b"), y = R(0, "out");
    Dims ab;
    return req(c, DType::Bool) && req(a) && req(b) && req(y) &&
           sameDtype(b, a) && sameDtype(y, a) && bcast(a, b, &ab) &&
           cond(broadcastDims(c.shape(), ab, &t),
                "cond " + str(c.shape()) + " does not broadcast with " +
                    str(ab)) &&
           shapeIs(y, t);
  }
  case Opcode::Unary: {
    return unaryF32();
  }
  case Opcode::Copy: {
    Slot x = O(0, "x"), y = R(0, "y");
    return req(x) && req(y) &&
           cond(x.r.bytes() == y.r.bytes(),
                "copy between " + std::to_string(x.r.bytes()) + " and " +
                    std::to_string(y.r.bytes()) + " bytes");
  }
  case Opcode::Transpose: {
    Slot x = O(0, "x"), y = R(0, "y");
    if (!(req(x) && req(y) && sameDtype(y, x) && attrs(x.shape().size(), 0)))
      return false;
    std::vector<bool> seen(x.shape().size(), false);
    t.clear();
    for (int64_t p : I.ints) {
      if (p < 0 || p >= int64_t(seen.size()) || seen[size_t(p)])
        return fail("perm is not a permutation of the dims");
      seen[size_t(p)] = true;
      t.push_back(x.shape()[size_t(p)]);
    }
    return shapeIs(y, t);
  }
  case Opcode::Broadcast: {
    Slot x = O(0, "x"), y = R(0, "y");
    return req(x) && req(y) && sameDtype(y, x) && broadcastTo(x, y.shape());
  }
  case Opcode::Concat: {
    Slot x0 = O(0, "x"), y = R(0, "y");
    if (!(req(x0) && req(y) && sameDtype(y, x0) && rankAtLeast(x0, 1) &&
          axisInt(0, x0.shape().size())))
      return false;
    const size_t axis = size_t(I.ints[0]);
    t = x0.shape();
    t[axis] = 0;
    for (size_t i = 0; i < I.operands.size(); ++i) {
      Slot xi = O(i, "x");
      if (!(req(xi) && sameDtype(xi, x0)))
        return false;
      Dims want = x0.shape();
      want[axis] = xi.shape().size() == want.size() ? xi.shape()[axis] : 0;
      if (!shapeIs(xi, want))
        return false;
      t[axis] += want[axis];
      if (!cond(t[axis] <= kMaxStep, "concat result is too large"))
        return false;
    }
    return shapeIs(y, t);
  }
  case Opcode::Slice: {
    Slot x = O(0, "x"), y = R(0, "y");
    return req(x) && req(y) && sameDtype(y, x) && slice(x, &t) && shapeIs(y, t);
  }
  case Opcode::Gather: {
    Slot x = O(0, "x"), idx = O(1, "indices"), y = R(0, "y");
    return req(x) && req(idx, DType::I64) && req(y) && sameDtype(y, x) &&
           gather(x, idx, &t) && shapeIs(y, t);
  }
  case Opcode::ScatterElements: {
    Slot d = O(0, "data"), idx = O(1, "indices"), u = O(2, "updates"),
         y = R(0, "y");
    if (!(req(d) && req(idx, DType::I64) && req(u) && req(y) &&
          sameDtype(u, d) && sameDtype(y, d) && sameShape(y, d) &&
          sameShape(u, idx) && rankAtLeast(d, 1) &&
          axisInt(0, d.shape().size())))
      return false;
    const Dims &ds = d.shape(), &is = idx.shape();
    if (!cond(is.size() == ds.size(), "indices must have the data's rank"))
      return false;
    for (size_t k = 0; k < ds.size(); ++k)
      if (!cond(int64_t(k) == I.ints[0] || is[k] <= ds[k],
                "indices exceed the data in dimension " + std::to_string(k)))
        return false;
    return true;
  }
  case Opcode::TopK: {
    Slot x = O(0, "x"), y = R(0, "indices");
    if (!(f32(x) && req(y, DType::I64) && rankAtLeast(x, 1) &&
          boolInt(1, "largest")))
      return false;
    Dims want = x.shape();
    if (!cond(I.ints[0] >= 1 && I.ints[0] <= want.back(),
              "k = " + std::to_string(I.ints[0]) + " out of [1, " +
                  std::to_string(want.back()) + "]"))
      return false;
    want.back() = I.ints[0];
    return shapeIs(y, want);
  }
  case Opcode::Band: {
    Slot d = O(0, "diagonals"), y = R(0, "y");
    if (!(req(d) && req(y) && sameDtype(y, d) && rankAtLeast(y, 2)))
      return false;
    const Dims &ys = y.shape();
    const int64_t m = ys[ys.size() - 2], k = ys.back();
    return shapeIs(d, {std::max<int64_t>(m + k - 1, 0)});
  }
  case Opcode::CumSum: {
    Slot x = O(0, "x"), y = R(0, "y");
    return req(x) && req(y) && numericDtype(x, /*allowBool=*/false) &&
           sameDtype(y, x) && rankAtLeast(x, 1) &&
           axisInt(0, x.shape().size()) && boolInt(1, "exclusive") &&
           boolInt(2, "reverse") && sameShape(y, x);
  }
  case Opcode::Trilu: {
    Slot x = O(0, "x"), y = R(0, "y");
    return boolInt(0, "upper") && req(x) && req(y) && sameDtype(y, x) &&
           rankAtLeast(x, 2) && sameShape(y, x);
  }
  case Opcode::Reduce: {
    Slot x = O(0, "x"), y = R(0, "y");
    // Integers: sum and max (counts, lengths).
    return req(x) && req(y) && numericDtype(x, false) && sameDtype(y, x) &&
           reduceAxes(x.shape(), &n) && numelIs(y, n) &&
           cond(x.r.dtype == DType::F32 ||
                    ReduceOp(I.ints[0]) != ReduceOp::Mean,
                "reduce_mean is only defined on f32");
  }
  case Opcode::Softmax:
  case Opcode::LogSoftmax: {
    Slot x = O(0, "x");
    return unaryF32() && rankAtLeast(x, 1) && axisInt(0, x.shape().size());
  }
  case Opcode::SoftmaxGrad:
  case Opcode::LogSoftmaxGrad: {
    Slot y = O(0, "y");
    return gradF32() && rankAtLeast(y, 1) && axisInt(0, y.shape().size());
  }
  case Opcode::Matmul: {
    Slot a = O(0, "a"), b = O(1, "b"), c = R(0, "c");
    return f32(a) && f32(b) && f32(c) && matmul(a, b, &t) && shapeIs(c, t);
  }
  case Opcode::MatmulGrad: {
    Slot a = O(0, "a"), b = O(1, "b"), dc = O(2, "dc");
    return f32(a) && f32(b) && f32(dc) && matmul(a, b, &t) && shapeIs(dc, t) &&
           optGrad(R(0, "da"), a) && optGrad(R(1, "db"), b);
  }
  case Opcode::Linear: {
    Slot x = O(0, "x"), w = O(1, "w"), bias = O(2, "bias"), y = R(0, "y");
    if (!(boolInt(0, "transpose_weight") && f32(x) && f32(w) && f32(y) &&
          rankAtLeast(x, 1) &&
          cond(w.shape().size() == 2, w.label + " must have rank 2")))
      return false;
    const int64_t K = x.shape().back();
    const int64_t N = I.ints[0] ? w.shape()[0] : w.shape()[1];
    t = x.shape();
    t.back() = N;
    return cond(gemmFits(prod(t, 0, t.size() - 1), K, N),
                "linear too large for BLAS") &&
           shapeIs(w, I.ints[0] ? Dims{N, K} : Dims{K, N}) &&
           (!bias.r.present() ||
            (is(bias, DType::F32) && shapeIs(bias, {N}))) &&
           shapeIs(y, t);
  }
  case Opcode::LinearGradWeight: {
    Slot x = O(0, "x"), dy = O(1, "dy"), dw = R(0, "dw");
    if (!(boolInt(0, "transpose_weight") && f32(x) && f32(dy) && f32(dw) &&
          rankAtLeast(x, 1) && rankAtLeast(dy, 1)))
      return false;
    const int64_t K = x.shape().back(), N = dy.shape().back();
    const int64_t M = prod(x.shape(), 0, x.shape().size() - 1);
    return cond(prod(dy.shape(), 0, dy.shape().size() - 1) == M,
                "x and dy have different numbers of rows") &&
           cond(gemmFits(M, K, N), "linear too large for BLAS") &&
           shapeIs(dw, I.ints[0] ? Dims{N, K} : Dims{K, N});
  }
  case Opcode::LayerNorm: {
    Slot x = O(0, "x"), scale = O(1, "scale"), bias = O(2, "bias"),
         y = R(0, "y");
    return norm(x, &n) && f32(scale) && numelIs(scale, n) &&
           (!bias.r.present() || (is(bias, DType::F32) && numelIs(bias, n))) &&
           f32(y) && sameShape(y, x);
  }
  case Opcode::RMSNorm: {
    Slot x = O(0, "x"), scale = O(1, "scale"), y = R(0, "y");
    return norm(x, &n) && f32(scale) && numelIs(scale, n) && f32(y) &&
           sameShape(y, x);
  }
  case Opcode::LayerNormGradInput:
  case Opcode::RMSNormGradInput: {
    Slot x = O(0, "x"), scale = O(1, "scale"), dy = O(2, "dy"), dx = R(0, "dx");
    return norm(x, &n) && f32(scale) && numelIs(scale, n) && f32(dy) &&
           sameShape(dy, x) && f32(dx) && sameShape(dx, x);
  }
  case Opcode::LayerNormGradParams: {
    Slot x = O(0, "x"), dy = O(1, "dy"), ds = R(0, "dscale"),
         db = R(1, "dbias");
    return norm(x, &n) && f32(dy) && sameShape(dy, x) && f32(ds) &&
           numelIs(ds, n) &&
           (!db.r.present() || (is(db, DType::F32) && numelIs(db, n)));
  }
  case Opcode::RMSNormGradScale: {
    Slot x = O(0, "x"), dy = O(1, "dy"), ds = R(0, "dscale");
    return norm(x, &n) && f32(dy) && sameShape(dy, x) && f32(ds) &&
           numelIs(ds, n);
  }
  case Opcode::Attention:
    return attention(false);
  case Opcode::AttentionGrad:
    return attention(true);
  case Opcode::Rotary: {
    Slot x = O(0, "x"), c = O(1, "cos"), s = O(2, "sin"), y = R(0, "y");
    if (!(boolInt(0, "interleaved") && f32(x) && f32(c) && f32(s) && f32(y) &&
          sameShape(y, x) &&
          cond(x.shape().size() == 4, "rotary input must be [B, H, S, D]")))
      return false;
    const Dims &xs = x.shape();
    const int64_t r = I.ints[1];
    if (!cond(r > 0 && r % 2 == 0 && r <= xs[3],
              "rotary_dim " + std::to_string(r) +
                  " must be even, positive and <= the head size " +
                  std::to_string(xs[3])))
      return false;
    const bool batched = c.shape().size() == 3;
    return shapeIs(c,
                   batched ? Dims{xs[0], xs[2], r / 2} : Dims{xs[2], r / 2}) &&
           sameShape(s, c);
  }
  case Opcode::Gelu:
    return unaryF32();
  case Opcode::GeluGrad:
    return gradF32();
  case Opcode::Silu:
    return unaryF32();
  case Opcode::SiluGrad:
    return gradF32();
  case Opcode::Swiglu: {
    Slot g = O(0, "gate"), u = O(1, "up"), y = R(0, "y");
    return f32(g) && f32(u) && f32(y) && sameShape(u, g) && sameShape(y, g);
  }
  case Opcode::SwigluGrad: {
    Slot g = O(0, "gate"), u = O(1, "up"), dy = O(2, "dy");
    return f32(g) && f32(u) && f32(dy) && sameShape(u, g) && sameShape(dy, g) &&
           optGrad(R(0, "dgate"), g) && optGrad(R(1, "dup"), g);
  }
  case Opcode::Embedding: {
    Slot table = O(0, "table"), ids = O(1, "ids"), y = R(0, "y");
    if (!(f32(table) && req(ids, DType::I64) && f32(y) &&
          cond(table.shape().size() == 2, "the table must be [V, H]")))
      return false;
    t = ids.shape();
    t.push_back(table.shape()[1]);
    return shapeIs(y, t);
  }
  case Opcode::EmbeddingGrad: {
    Slot ids = O(0, "ids"), dout = O(1, "dout"), dt = R(0, "dtable");
    // ints: [] or [padding_idx] (format v1 artifacts have none).
    if (!(req(ids, DType::I64) && f32(dout) && f32(dt) &&
          cond(dt.shape().size() == 2, "the table must be [V, H]") &&
          cond(I.ints.empty() || (I.ints[0] >= 0 && I.ints[0] < dt.shape()[0]),
               "padding_idx is outside the table's rows")))
      return false;
    t = ids.shape();
    t.push_back(dt.shape()[1]);
    return shapeIs(dout, t);
  }
  case Opcode::CrossEntropy:
  case Opcode::CrossEntropyGrad: {
    const bool grad = I.op == Opcode::CrossEntropyGrad;
    Slot logits = O(0, "logits"), tg = O(1, "targets");
    if (!(f32(logits) && req(tg, DType::I64) && rankAtLeast(logits, 1) &&
          cond(logits.shape().back() > 0, "logits have no classes")))
      return false;
    t.assign(logits.shape().begin(), logits.shape().end() - 1);
    if (!shapeIs(tg, t))
      return false;
    if (!grad) {
      Slot loss = R(0, "loss");
      return f32(loss) && numelIs(loss, 1);
    }
    Slot dloss = O(2, "dloss"), dl = R(0, "dlogits");
    return f32(dloss) && numelIs(dloss, 1) && f32(dl) && sameShape(dl, logits);
  }
  case Opcode::BinaryGrad: {
    Slot a = O(0, "a"), b = O(1, "b"), dy = O(2, "dy");
    return enumInt(0, int64_t(BinaryOp::Min) + 1, "BinaryOp") && f32(a) &&
           f32(b) && f32(dy) && bcast(a, b, &t) && shapeIs(dy, t) &&
           optGrad(R(0, "da"), a) && optGrad(R(1, "db"), b);
  }
  case Opcode::UnaryGrad: {
    Slot x = O(0, "x"), y = O(1, "y"), dy = O(2, "dy"), dx = R(0, "dx");
    if (!( // The piecewise-constant ones (Floor, Ceil, Sign) have none.
            enumInt(0, int64_t(UnaryOp::Cos) + 1, "UnaryOp") && f32(x) &&
            f32(dy) && f32(dx) && sameShape(dy, x) && sameShape(dx, x)))
      return false;
    const auto op = UnaryOp(I.ints[0]);
    const bool needsY = op == UnaryOp::Sqrt || op == UnaryOp::Reciprocal ||
                        op == UnaryOp::Exp || op == UnaryOp::Tanh ||
                        op == UnaryOp::Sigmoid;
    if (!y.r.present())
      return cond(!needsY, "this unary gradient needs the forward output y");
    return is(y, DType::F32) && sameShape(y, x);
  }
  case Opcode::ReduceGrad: {
    Slot x = O(0, "x"), y = O(1, "y"), dy = O(2, "dy"), dx = R(0, "dx");
    if (!(f32(dx) && reduceAxes(dx.shape(), &n) && f32(dy) && numelIs(dy, n)))
      return false;
    const bool isMax = ReduceOp(I.ints[0]) == ReduceOp::Max;
    if (isMax && !(req(x) && req(y)))
      return false;
    return (!x.r.present() || (is(x, DType::F32) && sameShape(x, dx))) &&
           (!y.r.present() || (is(y, DType::F32) && numelIs(y, n)));
  }
  case Opcode::WhereGrad: {
    Slot c = O(0, "cond"), dy = O(1, "dy"), da = R(0, "da"), db = R(1, "db");
    return req(c, DType::Bool) && f32(dy) && broadcastTo(c, dy.shape()) &&
           (!da.r.present() ||
            (is(da, DType::F32) && broadcastTo(da, dy.shape()))) &&
           (!db.r.present() ||
            (is(db, DType::F32) && broadcastTo(db, dy.shape())));
  }
  case Opcode::SumToShape: {
    Slot x = O(0, "x"), y = R(0, "y");
    return f32(x) && f32(y) && broadcastTo(y, x.shape());
  }
  case Opcode::SliceGrad: {
    Slot dy = O(0, "dy"), dx = R(0, "dx");
    return f32(dy) && f32(dx) && slice(dx, &t) && shapeIs(dy, t);
  }
  case Opcode::GatherGrad: {
    Slot idx = O(0, "indices"), dy = O(1, "dy"), dx = R(0, "dx");
    return req(idx, DType::I64) && f32(dy) && f32(dx) && gather(dx, idx, &t) &&
           shapeIs(dy, t);
  }
  case Opcode::Accumulate: {
    Slot g = O(0, "g"), dst = R(0, "dst");
    return f32(g) && f32(dst) && sameShape(dst, g);
  }
  }
  return fail("unknown opcode " + std::to_string(unsigned(I.op)));
}

/// A ref's own validity: inside its buffer, matching its entry.
std::string checkRef(const Artifact &a, const TensorRef &r, uint64_t arenaBytes,
                     uint64_t scratchBytes = 0) {
  if (uint8_t(r.space) > uint8_t(Space::Scratch))
    return "unknown tensor space " + std::to_string(unsigned(r.space));
  if (uint8_t(r.dtype) > uint8_t(DType::Bool))
    return "unknown dtype " + std::to_string(unsigned(r.dtype));
  int64_t n;
  if (std::string e = shapeProblem(r.shape, dtypeSize(r.dtype), &n); !e.empty())
    return "shape " + str(r.shape) + " is invalid: " + e;
  const uint64_t bytes = uint64_t(n) * dtypeSize(r.dtype);
  switch (r.space) {
  case Space::None:
    return "";
  case Space::Scratch:
  case Space::Arena: {
    const bool arena = r.space == Space::Arena;
    const char *what = arena ? "arena" : "scratch";
    const uint64_t size = arena ? arenaBytes : scratchBytes;
    if (r.offset % dtypeSize(r.dtype) != 0)
      return std::string(what) + " offset " + std::to_string(r.offset) +
             " is not aligned for " + dtypeName(r.dtype);
    if (r.offset > size || bytes > size - r.offset)
      return std::string(what) + " bytes [" + std::to_string(r.offset) + ", " +
             std::to_string(r.offset + bytes) + ") exceed the " + what +
             " of " + std::to_string(size) + " bytes";
    return "";
  }
  case Space::Param:
  case Space::Grad: {
    const char *what = r.space == Space::Param ? "parameter" : "gradient";
    if (r.index >= a.params.size())
      return std::string(what) + " index " + std::to_string(r.index) +
             " is out of range (" + std::to_string(a.params.size()) +
             " parameters)";
    const Parameter &p = a.params[r.index];
    if (r.dtype != p.dtype || r.shape != p.shape)
      return std::string(what) + " ref " + dtypeName(r.dtype) + str(r.shape) +
             " differs from parameter '" + p.name + "' " + dtypeName(p.dtype) +
             str(p.shape);
    return "";
  }
  case Space::Const: {
    if (r.index >= a.constants.size())
      return "constant index " + std::to_string(r.index) +
             " is out of range (" + std::to_string(a.constants.size()) +
             " constants)";
    const Constant &c = a.constants[r.index];
    if (r.dtype != c.dtype || r.shape != c.shape)
      return "constant ref " + std::string(dtypeName(r.dtype)) + str(r.shape) +
             " differs from constant " + std::to_string(r.index) + " " +
             dtypeName(c.dtype) + str(c.shape);
    return "";
  }
  }
  return "unknown tensor space";
}

/// Whether two refs share memory, and whether exactly the same bytes.
bool overlap(const TensorRef &x, const TensorRef &y, bool *identical) {
  if (!x.present() || !y.present() || x.space != y.space)
    return false;
  if (x.space != Space::Arena && x.space != Space::Scratch) { // whole buffers
    *identical = true;
    return x.index == y.index;
  }
  const uint64_t xb = x.bytes(), yb = y.bytes();
  *identical = x.offset == y.offset && xb == yb;
  return xb && yb && x.offset < y.offset + yb && y.offset < x.offset + xb;
}

/// The kernels' no-aliasing contract. Beyond wrong numbers, a result written
/// over an index operand (ids, targets) while the kernel reads it could send
/// a later read out of bounds.
std::string checkAliasing(const Instruction &in) {
  const OpcodeInfo &info = *opcodeInfo(in.op);
  bool same = false;
  for (size_t r = 0; r < in.results.size(); ++r) {
    for (size_t o = 0; o < in.operands.size(); ++o)
      if (overlap(in.results[r], in.operands[o], &same) &&
          !(same && info.mayRunInPlace(o)))
        return "result " + std::to_string(r) + " overlaps operand " +
               std::to_string(o);
    for (size_t q = 0; q < r; ++q)
      if (overlap(in.results[r], in.results[q], &same))
        return "results " + std::to_string(q) + " and " + std::to_string(r) +
               " overlap";
  }
  return "";
}

/// A program-level scalar or tensor: absent, or an arena f32 ref (scalar
/// when `scalar`).
std::string checkF32Slot(const Artifact &a, const TensorRef &r, bool scalar,
                         uint64_t arenaBytes) {
  if (!r.present())
    return "";
  if (std::string e = checkRef(a, r, arenaBytes); !e.empty())
    return e;
  if (r.space != Space::Arena || r.dtype != DType::F32)
    return "must be an f32 arena ref";
  if (scalar && r.numel() != 1)
    return "must be an f32 scalar, has shape " + str(r.shape);
  return "";
}

/// Stages: functions of the right kinds, refs inside the stage's arena, and
/// the boundaries of neighbours equal.
template <class CheckInputs>
std::string checkStages(const Artifact &a, const CheckInputs &checkInputs,
                        std::vector<uint64_t> *arenaOf,
                        std::vector<uint64_t> *scratchOf) {
  std::vector<int> owner(a.functions.size(), -1);
  for (size_t i = 0; i < a.stages.size(); ++i) {
    const Stage &st = a.stages[i];
    const std::string at =
        "stage " + std::to_string(i) + " '" + st.name + "': ";
    if (uint8_t(st.kind) > uint8_t(StageKind::Epilogue))
      return at + "unknown kind";
    if ((st.kind == StageKind::Prologue && i != 0) ||
        (st.kind == StageKind::Epilogue && i + 1 != a.stages.size()))
      return at + "a " + stageKindName(st.kind) + " stage must come " +
             (i ? "last" : "first");
    if (st.arenaBytes > (uint64_t(1) << 62) ||
        st.scratchBytes > (uint64_t(1) << 62))
      return at + "arena of " + std::to_string(st.arenaBytes) +
             " bytes is too large";
    const std::pair<int32_t, FunctionKind> fns[] = {
        {st.forward, FunctionKind::Forward},
        {st.backward, FunctionKind::Backward},
        {st.backwardInput, FunctionKind::BackwardInput},
        {st.backwardWeight, FunctionKind::BackwardWeight}};
    for (auto [f, kind] : fns) {
      if (f < 0)
        continue;
      if (size_t(f) >= a.functions.size())
        return at + "names function " + std::to_string(f) + ", but there are " +
               std::to_string(a.functions.size());
      if (a.functions[size_t(f)].kind != kind)
        return at + "function " + std::to_string(f) + " is a " +
               functionKindName(a.functions[size_t(f)].kind) + ", not a " +
               functionKindName(kind);
      if (owner[size_t(f)] >= 0)
        return at + "function " + std::to_string(f) +
               " belongs to another stage too";
      owner[size_t(f)] = int(i);
      (*arenaOf)[size_t(f)] = st.arenaBytes;
      (*scratchOf)[size_t(f)] = st.scratchBytes;
    }
    if (st.forward < 0 || (st.backward < 0) == (st.backwardInput < 0) ||
        (st.backwardInput < 0) != (st.backwardWeight < 0))
      return at + "needs a forward and either a fused backward or B and W";
    if (std::string e = checkInputs(st.inputs, st.arenaBytes, at); !e.empty())
      return e;
    // A stage's input waits in the instance between actions; its outputs,
    // input gradients and output gradients may instead lie in the scratch,
    // which the runtime copies them out of (into) right after (before) the
    // function that writes (reads) them.
    auto boundaryRefs = [&](const std::vector<TensorRef> &refs,
                            const char *what, bool optional,
                            bool scratchOk) -> std::string {
      for (size_t k = 0; k < refs.size(); ++k) {
        const TensorRef &r = refs[k];
        if (!r.present() && optional)
          continue;
        std::string e = checkRef(a, r, st.arenaBytes, st.scratchBytes);
        if (e.empty() && r.space != Space::Arena &&
            !(scratchOk && r.space == Space::Scratch))
          e = scratchOk ? "must be an arena or scratch ref"
                        : "must be an arena ref";
        if (!e.empty())
          return at + what + " " + std::to_string(k) + ": " + e;
      }
      return "";
    };
    for (std::string e : {boundaryRefs(st.in, "input", false, false),
                          boundaryRefs(st.out, "output", false, true),
                          boundaryRefs(st.din, "input gradient", true, true),
                          boundaryRefs(st.dout, "output gradient", true, true)})
      if (!e.empty())
        return e;
    auto gradsMatch = [&](const std::vector<TensorRef> &xs,
                          const std::vector<TensorRef> &ds,
                          const char *what) -> std::string {
      if (xs.size() != ds.size())
        return at + std::to_string(ds.size()) + " " + what + " gradients for " +
               std::to_string(xs.size()) + " " + what + "s";
      for (size_t k = 0; k < xs.size(); ++k) {
        const bool f = xs[k].dtype == DType::F32;
        if (ds[k].present() != f ||
            (f && (ds[k].dtype != DType::F32 || ds[k].shape != xs[k].shape)))
          return at + what + " " + std::to_string(k) +
                 ": its gradient must be present, f32 and of its shape "
                 "exactly when it is f32";
      }
      return "";
    };
    for (std::string e : {gradsMatch(st.in, st.din, "input"),
                          gradsMatch(st.out, st.dout, "output")})
      if (!e.empty())
        return e;
    if (i + 1 < a.stages.size()) {
      const Stage &next = a.stages[i + 1];
      bool same = st.out.size() == next.in.size();
      for (size_t k = 0; same && k < st.out.size(); ++k)
        same = st.out[k].dtype == next.in[k].dtype &&
               st.out[k].shape == next.in[k].shape;
      if (!same)
        return at + "its outputs differ from the inputs of stage '" +
               next.name + "'";
    }
    if (std::string e = checkF32Slot(a, st.loss, true, st.arenaBytes);
        !e.empty())
      return at + "loss " + e;
    if (std::string e = checkF32Slot(a, st.dloss, true, st.arenaBytes);
        !e.empty())
      return at + "dloss " + e;
    if (std::string e = checkF32Slot(a, st.logits, false, st.arenaBytes);
        !e.empty())
      return at + "logits " + e;
    for (size_t k = 0; k < st.params.size(); ++k)
      if (st.params[k] >= a.params.size() ||
          (k && st.params[k] <= st.params[k - 1]))
        return at + "parameter list entry " + std::to_string(k) +
               " is out of range or out of order";
    // A rank binds only the listed parameters to its slots: any other would
    // be read unbound.
    for (auto [f, kind] : fns) {
      if (f < 0)
        continue;
      const Function &fn = a.functions[size_t(f)];
      for (const Instruction &in : fn.body)
        for (const auto *refs : {&in.operands, &in.results})
          for (const TensorRef &r : *refs)
            if ((r.space == Space::Param || r.space == Space::Grad) &&
                !std::binary_search(st.params.begin(), st.params.end(),
                                    r.index))
              return at + "function '" + fn.name + "' uses parameter " +
                     std::to_string(r.index) +
                     ", which the stage does not list";
    }
  }
  return "";
}

/// Rank programs: one per rank, indices in range, transfers within their
/// slots. What the programs mean together is the compiler's verifier's to
/// prove; this only keeps the runtime inside its buffers.
std::string checkPrograms(const Artifact &a) {
  if (a.programs.empty())
    return a.stages.empty() && a.owner.empty()
               ? ""
               : "pipeline stages without rank programs";
  if (a.programs.size() != a.ranks)
    return std::to_string(a.programs.size()) + " rank programs for " +
           std::to_string(a.ranks) + " ranks";
  if (a.stages.empty() || a.numChunks() == 0)
    return "rank programs without pipeline stages";
  const size_t C = a.numChunks();
  if (a.owner.size() != C)
    return std::to_string(a.owner.size()) + " chunk owners for " +
           std::to_string(C) + " chunks";
  for (size_t c = 0; c < C; ++c)
    if (a.owner[c] < 0 || uint32_t(a.owner[c]) >= a.ranks)
      return "chunk " + std::to_string(c) + " is owned by rank " +
             std::to_string(a.owner[c]) + " of " + std::to_string(a.ranks);
  // What each rank holds (RankMemory.h), once the chunks are known valid.
  std::vector<std::vector<bool>> holds;
  for (size_t r = 0; r < a.programs.size(); ++r)
    holds.push_back(rankParameters(a, r));
  for (size_t r = 0; r < a.programs.size(); ++r) {
    const RankProgram &p = a.programs[r];
    for (size_t k = 0; k < p.actions.size(); ++k) {
      const Action &ac = p.actions[k];
      const std::string at = "rank " + std::to_string(r) + ", action " +
                             std::to_string(k) + " (" + actionOpName(ac.op) +
                             "): ";
      auto slotOk = [&](int32_t s, bool optional,
                        std::optional<SlotKind> kind) {
        if (s < 0)
          return optional;
        return size_t(s) < p.slots.size() &&
               (!kind || p.slots[size_t(s)].kind == *kind);
      };
      const bool compute =
          ac.op == ActionOp::Forward || ac.op == ActionOp::BackwardInput ||
          ac.op == ActionOp::BackwardWeight || ac.op == ActionOp::Backward;
      const bool chunked = compute || ac.op == ActionOp::LoadMaster ||
                           ac.op == ActionOp::Zero ||
                           ac.op == ActionOp::OptimizerStep;
      if (chunked && (ac.chunk < 0 || size_t(ac.chunk) >= C))
        return at + "chunk " + std::to_string(ac.chunk) + " of " +
               std::to_string(C);
      if (compute &&
          (ac.microbatch < 0 || uint32_t(ac.microbatch) >= a.microbatches))
        return at + "micro-batch " + std::to_string(ac.microbatch) + " of " +
               std::to_string(a.microbatches);
      const bool needsWeights = ac.op == ActionOp::Forward ||
                                ac.op == ActionOp::BackwardInput ||
                                ac.op == ActionOp::Backward;
      const bool needsGrads = ac.op == ActionOp::BackwardWeight ||
                              ac.op == ActionOp::Backward ||
                              ac.op == ActionOp::OptimizerStep;
      if (!slotOk(ac.weights, !needsWeights, SlotKind::Weights) ||
          !slotOk(ac.grads, !needsGrads, SlotKind::Grads) ||
          !slotOk(ac.in, true, SlotKind::Activations) ||
          !slotOk(ac.out, true, SlotKind::Activations))
        return at + "a slot index is out of range or of the wrong kind";
      for (int32_t s : ac.slots)
        if (!slotOk(s, false, std::nullopt))
          return at + "slot " + std::to_string(s) + " of " +
                 std::to_string(p.slots.size());
      const bool transfer = ac.op == ActionOp::Send || ac.op == ActionOp::Recv;
      if (transfer) {
        if (ac.peer < 0 || uint32_t(ac.peer) >= a.ranks ||
            uint32_t(ac.peer) == r)
          return at + "peer " + std::to_string(ac.peer);
        if (ac.slots.empty() || ac.bytes.size() != ac.slots.size())
          return at + "one byte count per slot, at least one slot";
        for (size_t i = 0; i < ac.slots.size(); ++i)
          if (ac.bytes[i] > p.slots[size_t(ac.slots[i])].bytes)
            return at + std::to_string(ac.bytes[i]) + " bytes exceed slot '" +
                   p.slots[size_t(ac.slots[i])].label + "' of " +
                   std::to_string(p.slots[size_t(ac.slots[i])].bytes);
      }
      const size_t wantSlots =
          ac.op == ActionOp::LoadMaster || ac.op == ActionOp::Zero ? 1
          : ac.op == ActionOp::Swap || ac.op == ActionOp::AddInto  ? 2
                                                                   : 0;
      if (!transfer && ac.slots.size() != wantSlots)
        return at + std::to_string(ac.slots.size()) + " slots, expected " +
               std::to_string(wantSlots);
      if (ac.op == ActionOp::Wait && ac.tokens.empty())
        return at + "waits for nothing";
      // What the runtime reads and writes through the slots: the chunk's
      // function, its parameters' layout, its boundary values.
      if (!chunked && !(ac.op == ActionOp::AddInto && ac.chunk >= 0)) {
        if (ac.op == ActionOp::AddInto &&
            p.slots[size_t(ac.slots[1])].bytes <
                p.slots[size_t(ac.slots[0])].bytes)
          return at + "adds a smaller slot into a larger one";
        if (ac.op == ActionOp::Swap && p.slots[size_t(ac.slots[0])].bytes !=
                                           p.slots[size_t(ac.slots[1])].bytes)
          return at + "swaps slots of different sizes";
        continue;
      }
      if (ac.chunk < 0 || size_t(ac.chunk) >= C)
        return at + "chunk " + std::to_string(ac.chunk) + " of " +
               std::to_string(C);
      const Stage &st = a.stages[a.chunkStage(size_t(ac.chunk))];
      const int32_t fn = ac.op == ActionOp::Forward          ? st.forward
                         : ac.op == ActionOp::Backward       ? st.backward
                         : ac.op == ActionOp::BackwardInput  ? st.backwardInput
                         : ac.op == ActionOp::BackwardWeight ? st.backwardWeight
                                                             : 0;
      if (fn < 0)
        return at + "stage '" + st.name + "' has no " + actionOpName(ac.op) +
               " function";
      const uint64_t params = stageSlotLayout(a, st, nullptr);
      auto fits = [&](int32_t s, uint64_t need) {
        return s < 0 || p.slots[size_t(s)].bytes >= need;
      };
      const bool backward =
          ac.op == ActionOp::Backward || ac.op == ActionOp::BackwardInput;
      const bool ok =
          fits(ac.weights, params) && fits(ac.grads, params) &&
          (ac.op == ActionOp::LoadMaster || ac.op == ActionOp::AddInto
               ? fits(ac.slots[0], params) &&
                     (ac.slots.size() < 2 || fits(ac.slots[1], params))
               : true) &&
          (ac.op == ActionOp::Forward
               ? fits(ac.in, boundaryLayout(st.in, nullptr)) &&
                     fits(ac.out, boundaryLayout(st.out, nullptr))
           : backward ? fits(ac.in, boundaryLayout(st.dout, nullptr)) &&
                            fits(ac.out, boundaryLayout(st.din, nullptr))
                      : true);
      if (!ok)
        return at + "a slot is smaller than what stage '" + st.name +
               "' keeps in it";
      // Values and gradients the action gives no slot for are the rank's
      // own buffers (a forward's gradients always): only what it holds.
      if (!compute)
        continue;
      const bool ownValues = ac.weights < 0,
                 ownGrads = ac.grads < 0 || ac.op == ActionOp::Forward;
      for (const Instruction &in : a.functions[size_t(fn)].body)
        for (const auto *refs : {&in.operands, &in.results})
          for (const TensorRef &ref : *refs) {
            const bool value = ref.space == Space::Param && ownValues,
                       grad = ref.space == Space::Grad && ownGrads;
            if ((value || grad) && ref.index < a.params.size() &&
                !holds[r][ref.index])
              return at + "function '" + a.functions[size_t(fn)].name +
                     "' uses the " + (value ? "value" : "gradient") +
                     " of parameter " + std::to_string(ref.index) +
                     ", which rank " + std::to_string(r) +
                     " does not hold and the action gives no slot for";
          }
    }
  }
  return "";
}

} // namespace

bool validateArtifact(const Artifact &a, const std::string &what,
                      std::string *error,
                      const std::vector<std::vector<size_t>> *instrOffsets) {
  auto fail = [&](const std::string &msg) {
    if (error)
      *error = what + ": " + msg;
    return false;
  };
  if (a.version != kArtifactVersion)
    return fail("artifact format version " + std::to_string(a.version) +
                ", this runtime reads version " +
                std::to_string(kArtifactVersion));
  if (a.ranks == 0 || a.rank >= a.ranks)
    return fail("rank " + std::to_string(a.rank) + " of " +
                std::to_string(a.ranks) + " ranks");
  if (a.arenaBytes > (uint64_t(1) << 62))
    return fail("arena of " + std::to_string(a.arenaBytes) +
                " bytes is too large");
  // The header's sizes: every one bounded, and batch x seq tied to the
  // program below (an input of that many tokens lies in an arena), since the
  // trainer allocates by them.
  if (a.microbatches == 0 || a.microbatches > kMaxMicrobatches)
    return fail(std::to_string(a.microbatches) +
                " micro-batches per step; expected 1 to " +
                std::to_string(kMaxMicrobatches));
  int64_t tokens, stepTokens;
  if (!checkedNumel({a.batch, a.seq}, 8, &tokens))
    return fail("bad micro-batch size " + std::to_string(a.batch) + " x " +
                std::to_string(a.seq));
  if (!checkedNumel({int64_t(a.microbatches), a.batch, a.seq}, 8, &stepTokens))
    return fail(std::to_string(a.microbatches) + " micro-batches of " +
                std::to_string(a.batch) + " x " + std::to_string(a.seq) +
                " tokens overflow a step");
  if (a.vocab < 0 ||
      (a.vocab > 0 && a.logits.present() && !a.logits.shape.empty() &&
       a.logits.shape.back() != a.vocab))
    return fail("vocabulary " + std::to_string(a.vocab) +
                (a.vocab < 0 ? std::string(" is negative")
                             : " differs from the logits' last dimension " +
                                   std::to_string(a.logits.shape.back())));

  for (size_t i = 0; i < a.params.size(); ++i) {
    const Parameter &p = a.params[i];
    int64_t n;
    const std::string at =
        "parameter " + std::to_string(i) + " '" + p.name + "': ";
    if (p.dtype != DType::F32)
      return fail(at + "dtype " + dtypeName(p.dtype) +
                  "; parameters are f32 master values");
    if (!checkedNumel(p.shape, 4, &n))
      return fail(at + "bad shape " + str(p.shape));
  }
  for (size_t i = 0; i < a.constants.size(); ++i) {
    const Constant &c = a.constants[i];
    int64_t n;
    const std::string at = "constant " + std::to_string(i) + ": ";
    if (uint8_t(c.dtype) > uint8_t(DType::Bool))
      return fail(at + "unknown dtype");
    if (!checkedNumel(c.shape, dtypeSize(c.dtype), &n))
      return fail(at + "bad shape " + str(c.shape));
    if (uint64_t(c.bytes.size()) != uint64_t(n) * dtypeSize(c.dtype))
      return fail(at + "holds " + std::to_string(c.bytes.size()) +
                  " bytes, but " + dtypeName(c.dtype) + str(c.shape) +
                  " needs " + std::to_string(uint64_t(n) * dtypeSize(c.dtype)));
  }
  auto checkInputs = [&](const std::vector<Input> &inputs, uint64_t arenaBytes,
                         const std::string &where) {
    for (const Input &in : inputs) {
      const std::string at = where + "input '" + in.name + "': ";
      if (uint8_t(in.role) > uint8_t(InputRole::Targets))
        return at + "unknown role";
      if (std::string e = checkRef(a, in.ref, arenaBytes); !e.empty())
        return at + e;
      if (in.ref.space != Space::Arena || in.ref.dtype != DType::I64)
        return at + "must be an i64 arena ref";
      if (in.ref.numel() != tokens)
        return at + "has " + std::to_string(in.ref.numel()) +
               " elements, but a micro-batch is " + std::to_string(a.batch) +
               " x " + std::to_string(a.seq) + " tokens";
    }
    return std::string();
  };
  if (std::string e = checkInputs(a.inputs, a.arenaBytes, ""); !e.empty())
    return fail(e);
  if (std::string e = checkF32Slot(a, a.loss, true, a.arenaBytes); !e.empty())
    return fail("loss " + e);
  if (std::string e = checkF32Slot(a, a.dloss, true, a.arenaBytes); !e.empty())
    return fail("dloss " + e);
  if (std::string e = checkF32Slot(a, a.logits, false, a.arenaBytes);
      !e.empty())
    return fail("logits " + e);
  // Each function's arena: its stage's, or the single-rank program's.
  std::vector<uint64_t> arenaOf(a.functions.size(), a.arenaBytes),
      scratchOf(a.functions.size(), 0);
  if (std::string e = checkStages(a, checkInputs, &arenaOf, &scratchOf);
      !e.empty())
    return fail(e);
  if (std::string e = checkPrograms(a); !e.empty())
    return fail(e);
  bool anyInput = !a.inputs.empty();
  for (const Stage &st : a.stages)
    anyInput |= !st.inputs.empty();
  // (An artifact without inputs runs functions only, as in the executor's
  // tests; weipipe-run refuses it.)
  if (!anyInput && tokens != 0)
    return fail("micro-batches of " + std::to_string(a.batch) + " x " +
                std::to_string(a.seq) + " tokens, but no input reads them");
  if (anyInput && tokens == 0)
    return fail("empty micro-batches of " + std::to_string(a.batch) + " x " +
                std::to_string(a.seq) + " tokens");

  for (size_t f = 0; f < a.functions.size(); ++f) {
    const Function &fn = a.functions[f];
    if (uint8_t(fn.kind) > uint8_t(FunctionKind::BackwardWeight))
      return fail("function '" + fn.name + "' has an unknown kind");
    for (size_t i = 0; i < fn.body.size(); ++i) {
      const Instruction &in = fn.body[i];
      std::string at =
          "function '" + fn.name + "', instruction " + std::to_string(i);
      const char *mnemonic = opcodeName(in.op);
      at += mnemonic ? std::string(" (") + mnemonic : std::string(" (?");
      if (!in.name.empty())
        at += " '" + in.name + "'";
      at += ")";
      std::string problem;
      if (!mnemonic)
        problem = "unknown opcode " + std::to_string(unsigned(in.op));
      for (size_t k = 0; problem.empty() && k < in.operands.size(); ++k)
        if (std::string e =
                checkRef(a, in.operands[k], arenaOf[f], scratchOf[f]);
            !e.empty())
          problem = "operand " + std::to_string(k) + ": " + e;
      for (size_t k = 0; problem.empty() && k < in.results.size(); ++k)
        if (std::string e =
                checkRef(a, in.results[k], arenaOf[f], scratchOf[f]);
            !e.empty())
          problem = "result " + std::to_string(k) + ": " + e;
      if (problem.empty())
        problem = InstrCheck(in).problem();
      if (problem.empty())
        problem = checkAliasing(in);
      // The partner of a fused pair is the next instruction, which must be
      // the other gradient of the same norm and not itself run another.
      if (problem.empty() && (in.flags & Instruction::kFusedWithNext)) {
        if (i + 1 == fn.body.size())
          problem = "the fused-with-next flag is set on the last instruction";
        else if (!normGradsFuse(in, fn.body[i + 1]) ||
                 (fn.body[i + 1].flags & Instruction::kFusedWithNext))
          problem = "the fused-with-next flag is set, but the next "
                    "instruction is not the other gradient of the same norm";
      }
      if (!problem.empty()) {
        std::string msg = at + ": " + problem;
        if (instrOffsets && f < instrOffsets->size() &&
            i < (*instrOffsets)[f].size())
          msg += " (at byte " + std::to_string((*instrOffsets)[f][i]) + ")";
        return fail(msg);
      }
    }
  }
  for (size_t i = 0; i < a.microbatchProgram.size(); ++i)
    if (a.microbatchProgram[i] >= a.functions.size())
      return fail("microbatch program step " + std::to_string(i) +
                  " names function " + std::to_string(a.microbatchProgram[i]) +
                  ", but there are " + std::to_string(a.functions.size()));
  return true;
}

} // namespace weipipe::rt::detail

namespace weipipe::rt {

bool normGradsFuse(const Instruction &a, const Instruction &b) {
  auto kind = [](Opcode op) { // 1: layer norm, 2: rms norm; input grad?
    switch (op) {
    case Opcode::LayerNormGradInput:
      return std::make_pair(1, true);
    case Opcode::LayerNormGradParams:
      return std::make_pair(1, false);
    case Opcode::RMSNormGradInput:
      return std::make_pair(2, true);
    case Opcode::RMSNormGradScale:
      return std::make_pair(2, false);
    default:
      return std::make_pair(0, false);
    }
  };
  const auto [na, inputA] = kind(a.op);
  const auto [nb, inputB] = kind(b.op);
  if (na == 0 || na != nb || inputA == inputB)
    return false;
  // (x, scale, dy) for the input gradient, (x, dy) for the parameters'.
  auto same = [](const TensorRef &x, const TensorRef &y) {
    return x.space == y.space && x.index == y.index && x.offset == y.offset &&
           x.dtype == y.dtype && x.shape == y.shape;
  };
  const size_t dyA = inputA ? 2 : 1, dyB = inputB ? 2 : 1;
  if (a.operands.size() <= dyA || b.operands.size() <= dyB ||
      !same(a.operands[0], b.operands[0]) ||
      !same(a.operands[dyA], b.operands[dyB]) || a.ints != b.ints ||
      a.floats != b.floats)
    return false;
  bool identical = false;
  for (const TensorRef &r : a.results)
    for (const TensorRef &o : b.operands)
      if (detail::overlap(r, o, &identical))
        return false;
  for (const TensorRef &r : b.results)
    for (const TensorRef &o : a.operands)
      if (detail::overlap(r, o, &identical))
        return false;
  return true;
}

std::string shapeProblem(const std::vector<int64_t> &s, size_t elementSize,
                         int64_t *numel) {
  if (s.size() > size_t(kMaxRank))
    return "rank " + std::to_string(s.size()) + " exceeds " +
           std::to_string(kMaxRank);
  constexpr int64_t kMaxBytes = int64_t(1) << 62;
  // n: the elements; extent: the same product with zeros taken as ones,
  // which is what a kernel's outer loops run over.
  int64_t n = 1, extent = 1;
  for (int64_t d : s) {
    if (d < 0)
      return "negative dimension " + std::to_string(d);
    const int64_t e = std::max<int64_t>(d, 1);
    if (extent > kMaxBytes / e)
      return "more than 2^62 elements";
    extent *= e;
    n *= d;
  }
  if (elementSize != 0 && n > kMaxBytes / int64_t(elementSize))
    return "more than 2^62 bytes";
  if (n == 0 && extent > kMaxEmptyExtent)
    return "an empty tensor whose other dimensions multiply to " +
           std::to_string(extent) + ", over " + std::to_string(kMaxEmptyExtent);
  *numel = n;
  return "";
}

} // namespace weipipe::rt
