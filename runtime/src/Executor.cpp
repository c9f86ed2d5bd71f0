//===- Executor.cpp - runs a .wpp artifact on the CPU ---------------------===//
//
// Part of weipipe's runtime. `create` validates the artifact (it may never
// have gone through the decoder), allocates the plan, loads the parameters,
// and resolves every instruction once into a Step: raw pointers, kernel
// Shapes and derived sizes. Running a function is then one switch per
// instruction with no allocation in the executor itself; scratch for the
// statistics the backward ops recompute (norm mean/rstd, cross-entropy
// logsumexp) is sized for the largest user at creation.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/Executor.h"

#include "ArtifactInternal.h"
#include "ExecutorInternal.h"
#include "weipipe/runtime/Crc32c.h"
#include "weipipe/runtime/FileKind.h"
#include "weipipe/runtime/RankMemory.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <new>
#include <sys/stat.h>
#include <tuple>
#include <type_traits>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "parameter files and artifacts are little-endian; this host is not"
#endif

namespace weipipe::rt {

using detail::DeviceBackend;
using detail::Ref;
using detail::Step;

namespace {

constexpr size_t kAlign = 64;

size_t roundUp(uint64_t n) { return size_t(alignedBytes(n)); }

/// One 64-byte-aligned allocation.
class AlignedBuffer {
public:
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer &) = delete;
  AlignedBuffer &operator=(const AlignedBuffer &) = delete;
  AlignedBuffer(AlignedBuffer &&o) noexcept : p_(o.p_) { o.p_ = nullptr; }
  ~AlignedBuffer() { std::free(p_); }

  bool allocate(uint64_t bytes) {
    p_ = std::aligned_alloc(kAlign, roundUp(bytes ? bytes : 1));
    return p_ != nullptr;
  }
  uint8_t *data() const { return static_cast<uint8_t *>(p_); }

private:
  void *p_ = nullptr;
};

std::string bytesText(uint64_t b) {
  char buf[32];
  const double d = double(b);
  if (b < 1024)
    std::snprintf(buf, sizeof(buf), "%llu B", (unsigned long long)b);
  else if (b < (uint64_t(1) << 20))
    std::snprintf(buf, sizeof(buf), "%.1f KiB", d / 1024.0);
  else if (b < (uint64_t(1) << 30))
    std::snprintf(buf, sizeof(buf), "%.1f MiB", d / 1048576.0);
  else
    std::snprintf(buf, sizeof(buf), "%.1f GiB", d / 1073741824.0);
  return buf;
}

std::string gibText(uint64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f GiB", double(b) / 1073741824.0);
  return buf;
}

} // namespace

/// MemAvailable from /proc/meminfo in bytes, or 0 if it cannot be read.
uint64_t availableMemoryBytes() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  uint64_t kb;
  std::string unit;
  while (f >> key >> kb) {
    std::getline(f, unit);
    if (key == "MemAvailable:")
      return kb * 1024;
  }
  return 0;
}

namespace {

std::string crcText(uint32_t crc) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", crc);
  return buf;
}

std::string shapeText(const std::vector<int64_t> &s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i)
    r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

std::string instrText(const Function &f, size_t i) {
  const Instruction &in = f.body[i];
  std::string s = "function '" + f.name + "', instruction " +
                  std::to_string(i) + " (" + opcodeName(in.op);
  if (!in.name.empty())
    s += " '" + in.name + "'";
  return s + ")";
}

/// Calls f(T()) with the C++ type of `t`.
template <class F> void withType(DType t, F &&f) {
  switch (t) {
  case DType::F32:
    return f(float());
  case DType::I64:
    return f(int64_t());
  case DType::I32:
    return f(int32_t());
  case DType::Bool:
    return f(uint8_t());
  }
}

template <class S, class D> void castLoop(const S *x, D *y, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    y[i] = std::is_same_v<D, uint8_t> ? D(x[i] != 0) : D(x[i]);
}

/// nn.cast for every pair of dtypes: the kernels' conversions where they
/// exist, a copy for equal types, a plain loop for i32 <-> bool.
void castAny(DType from, const void *x, DType to, void *y, int64_t n) {
  if (from == to) {
    std::memmove(y, x, size_t(n) * dtypeSize(from));
    return;
  }
  withType(from, [&](auto fromTag) {
    using S = decltype(fromTag);
    withType(to, [&](auto toTag) {
      using D = decltype(toTag);
      const S *xs = static_cast<const S *>(x);
      D *yd = static_cast<D *>(y);
      if constexpr (std::is_same_v<S, D>)
        return;
      else if constexpr ((std::is_same_v<S, int32_t> &&
                          std::is_same_v<D, uint8_t>) ||
                         (std::is_same_v<S, uint8_t> &&
                          std::is_same_v<D, int32_t>))
        castLoop(xs, yd, n);
      else
        cpu::cast(xs, yd, n);
    });
  });
}

/// Concat's inputs as the kernel's pointer lists, from the resolved refs.
void concatPointers(Step &s) {
  auto fill = [&](auto &list, auto tag) {
    using T = decltype(tag);
    list.clear();
    for (const Ref &r : s.in)
      list.push_back(r.as<const T>());
  };
  fill(std::get<0>(s.ptrs), float());
  fill(std::get<1>(s.ptrs), int64_t());
  fill(std::get<2>(s.ptrs), int32_t());
  fill(std::get<3>(s.ptrs), uint8_t());
}

/// The product of s[from, to).
int64_t dimProduct(const std::vector<int64_t> &s, size_t from, size_t to) {
  int64_t n = 1;
  for (size_t i = from; i < to; ++i)
    n *= s[i];
  return n;
}

/// The kernels' two arrays of row statistics (kernelScratchFloats).
constexpr int kScratch = 2;

cpu::AttentionParams attentionParams(const Instruction &I) {
  const TensorRef &q = I.operands[0], &k = I.operands[1], &v = I.operands[2];
  cpu::AttentionParams p;
  p.H = I.ints[0];
  p.Hkv = I.ints[1];
  p.causal = I.ints[2] != 0;
  p.scale = float(I.floats[0]);
  p.B = q.shape[0];
  if (q.shape.size() == 4) {
    p.layout = cpu::AttentionLayout::BHSD;
    p.Sq = q.shape[2];
    p.D = q.shape[3];
    p.Sk = k.shape[2];
    p.Dv = v.shape[3];
  } else {
    p.layout = cpu::AttentionLayout::BSHD;
    p.Sq = q.shape[1];
    p.D = q.shape[2] / p.H;
    p.Sk = k.shape[1];
    p.Dv = v.shape[2] / p.Hkv;
  }
  return p;
}


} // namespace

struct Executor::Impl {
  const Artifact &a;
  ExecutorOptions options;
  bool profiling = false;
  std::vector<std::vector<Executor::InstructionTime>> profile;
  // Host memory (CPU), or the device backend's (which owns it).
  AlignedBuffer arenaHost, valuesHost, gradsHost, stageScratchHost;
  std::vector<AlignedBuffer> constantsHost;
  std::unique_ptr<DeviceBackend> device;
  uint8_t *arena = nullptr, *values = nullptr, *grads = nullptr,
          *stageScratch = nullptr;
  std::vector<uint8_t *> constants;
  mutable std::vector<float> logitsHost; // logits() of a device executor
  uint64_t bytes = 0;
  Executor::Allocation allocation;
  std::vector<std::vector<Step>> fns;   // by function index
  std::vector<float> scratch[kScratch]; // see kScratch
  // The parameter table: where parameter i's value and gradient are now
  // (bindParam), and every resolved ref that points there, to repoint.
  struct Use {
    Step *step;
    Ref *ref;
  };
  std::vector<float *> valueOf, gradOf;
  std::vector<std::vector<Use>> valueUses, gradUses;
  // Per function, every resolved arena ref and its offset: a pipeline stage
  // runs its functions on whichever arena instance holds the micro-batch.
  struct ArenaUse {
    Step *step;
    Ref *ref;
    uint64_t offset;
  };
  std::vector<std::vector<ArenaUse>> arenaUses;

  explicit Impl(const Artifact &art) : a(art) {}

  void *resolve(const TensorRef &r, std::vector<ParamBuffers> &params) {
    switch (r.space) {
    case Space::None:
      return nullptr;
    case Space::Arena:
      return arena + r.offset;
    case Space::Scratch:
      return stageScratch + r.offset;
    case Space::Param:
      return params[r.index].value;
    case Space::Grad:
      return params[r.index].grad;
    case Space::Const:
      return constants[r.index];
    }
    return nullptr;
  }

  Ref ref(const TensorRef &r, std::vector<ParamBuffers> &params) {
    Ref x;
    x.p = resolve(r, params);
    x.s = cpu::Shape(r.shape);
    x.n = r.numel();
    x.dt = r.dtype;
    return x;
  }

  void prepare(std::vector<ParamBuffers> &params);
  void rebind(std::vector<Use> &uses, void *to);
  void pairNormGrads(std::vector<Step> &steps);
  void normGrad(const Step &s);
  cpu::Status exec(Step &s);

  /// What an instruction's kernel binding reads.
  struct Ctx {
    Impl &impl;
    const Step &s;
    const Instruction &I;
    const std::vector<Ref> &in, &out;
    cpu::Span<int64_t> span(size_t from, size_t n) const {
      return cpu::Span<int64_t>(I.ints.data() + from, n);
    }
  };
  using Handler = cpu::Status (*)(const Ctx &);
  template <Opcode Op> static cpu::Status run(const Ctx &c);
  static Handler handlerFor(Opcode op);
  cpu::Status runFunction(size_t f, std::string *nonFinite);
  Status writeInputs(const int64_t *ids, const int64_t *targets);
  /// Host <-> executor memory (a plain copy on the CPU).
  Status store(void *dst, const void *src, uint64_t bytes);
  Status fetch(void *dst, const void *src, uint64_t bytes) const;
  /// n floats at p readable on the host (p itself on the CPU, else a copy in
  /// tmp; NaNs if the copy fails).
  const float *hostFloats(const float *p, int64_t n,
                          std::vector<float> &tmp) const;
  /// The Accumulating results an instruction writes, zeroed.
  Status zeroWritten(const Step &s);
  /// Runs the functions of the micro-batch program, then (on a device)
  /// waits and reports the data errors.
  Status runProgram(std::string *nonFinite);
};

void Executor::Impl::prepare(std::vector<ParamBuffers> &params) {
  fns.resize(a.functions.size());
  for (size_t f = 0; f < a.functions.size(); ++f) {
    const Function &fn = a.functions[f];
    std::vector<Step> &steps = fns[f];
    steps.resize(fn.body.size());
    for (size_t i = 0; i < fn.body.size(); ++i) {
      const Instruction &I = fn.body[i];
      Step &s = steps[i];
      s.ins = &I;
      s.function = uint32_t(f);
      s.index = uint32_t(i);
      for (const TensorRef &r : I.operands)
        s.in.push_back(ref(r, params));
      for (const TensorRef &r : I.results)
        s.out.push_back(ref(r, params));
      switch (I.op) {
      case Opcode::Linear: { // (x, w) -> y
        const auto &xs = I.operands[0].shape;
        s.d0 = dimProduct(xs, 0, xs.size() - 1);
        s.d1 = xs.back();
        s.d2 = I.results[0].shape.back();
        break;
      }
      case Opcode::LinearGradWeight: { // (x, dy) -> dw
        const auto &xs = I.operands[0].shape;
        s.d0 = dimProduct(xs, 0, xs.size() - 1);
        s.d1 = xs.back();
        s.d2 = I.operands[1].shape.back();
        break;
      }
      case Opcode::LayerNorm:
      case Opcode::RMSNorm:
      case Opcode::LayerNormGradInput:
      case Opcode::LayerNormGradParams:
      case Opcode::RMSNormGradInput:
      case Opcode::RMSNormGradScale: {
        const auto &xs = I.operands[0].shape;
        const size_t axis = size_t(I.ints[0]);
        s.d0 = dimProduct(xs, 0, axis);
        s.d1 = dimProduct(xs, axis, xs.size());
        break;
      }
      case Opcode::Attention:
      case Opcode::AttentionGrad: {
        s.attn = attentionParams(I);
        const Ref &m = s.in[I.op == Opcode::Attention ? 3 : 5];
        if (m.p) {
          s.attn.mask.kind = m.dt == DType::F32 ? cpu::MaskKind::Additive
                                                : cpu::MaskKind::Keep;
          s.attn.mask.additive = m.dt == DType::F32 ? m.f() : nullptr;
          s.attn.mask.keep = m.dt == DType::Bool ? m.as<uint8_t>() : nullptr;
          s.attn.mask.shape = m.s;
        }
        break;
      }
      case Opcode::Rotary: {
        const auto &xs = I.operands[0].shape;
        s.rotary.B = xs[0];
        s.rotary.H = xs[1];
        s.rotary.S = xs[2];
        s.rotary.D = xs[3];
        s.rotary.interleaved = I.ints[0] != 0;
        s.rotary.rotaryDim = I.ints[1];
        s.rotary.tableHasBatch = I.operands[1].shape.size() == 3;
        break;
      }
      case Opcode::Concat:
        for (const Ref &r : s.in)
          s.shapes.push_back(r.s);
        concatPointers(s);
        break;
      default:
        break;
      }
    }
    pairNormGrads(steps);
  }
  // Parameter refs, recorded once all steps are in place (their addresses
  // are stable from here on).
  valueOf.resize(params.size());
  gradOf.resize(params.size());
  valueUses.assign(params.size(), {});
  gradUses.assign(params.size(), {});
  for (size_t i = 0; i < params.size(); ++i) {
    valueOf[i] = params[i].value;
    gradOf[i] = params[i].grad;
  }
  for (std::vector<Step> &steps : fns)
    for (Step &s : steps) {
      auto record = [&](const std::vector<TensorRef> &refs,
                        std::vector<Ref> &resolved) {
        for (size_t k = 0; k < refs.size(); ++k) {
          if (refs[k].space == Space::Param)
            valueUses[refs[k].index].push_back({&s, &resolved[k]});
          else if (refs[k].space == Space::Grad)
            gradUses[refs[k].index].push_back({&s, &resolved[k]});
        }
      };
      record(s.ins->operands, s.in);
      record(s.ins->results, s.out);
    }
  arenaUses.assign(fns.size(), {});
  for (size_t f = 0; f < fns.size(); ++f)
    for (Step &s : fns[f]) {
      auto record = [&](const std::vector<TensorRef> &refs,
                        std::vector<Ref> &resolved) {
        for (size_t k = 0; k < refs.size(); ++k)
          if (refs[k].space == Space::Arena)
            arenaUses[f].push_back({&s, &resolved[k], refs[k].offset});
      };
      record(s.ins->operands, s.in);
      record(s.ins->results, s.out);
    }
}

void Executor::Impl::rebind(std::vector<Use> &uses, void *to) {
  for (const Use &u : uses) {
    u.ref->p = to;
    if (u.step->ins->op == Opcode::Concat) // the kernel's pointer lists
      concatPointers(*u.step);
  }
}

namespace {

/// Accumulating ops without the accumulate flag write their result: zero it.
void zeroIfWritten(const Step &s) {
  if (!(opcodeInfo(s.ins->op)->flags & OpcodeInfo::kAccumulates) ||
      (s.ins->flags & Instruction::kAccumulate))
    return;
  for (const Ref &r : s.out)
    if (r.p)
      std::memset(r.p, 0, size_t(r.n) * sizeof(float));
}

} // namespace

void Executor::Impl::pairNormGrads(std::vector<Step> &steps) {
  // The compiler marks the pairs (Instruction::kFusedWithNext) and the
  // validator checked that the next instruction is the partner.
  for (size_t i = 0; i + 1 < steps.size(); ++i)
    if (steps[i].ins->flags & Instruction::kFusedWithNext) {
      steps[i].partner = &steps[i + 1];
      steps[i + 1].doneByPrevious = true;
    }
}

void Executor::Impl::normGrad(const Step &s) {
  using namespace cpu;
  // The forward saved no statistics: recompute them.
  if (s.partner)
    zeroIfWritten(*s.partner);
  const detail::NormGradCall c = detail::normGradCall(s);
  float *stat0 = scratch[0].data(), *stat1 = scratch[1].data();
  if (c.layerNorm) {
    layer_norm_forward(c.x, nullptr, nullptr, nullptr, stat0, stat1, s.d0,
                       s.d1, c.eps);
    layer_norm_backward(c.x, c.scale, stat0, stat1, c.dy, c.dx, c.dscale,
                        c.dbias, s.d0, s.d1);
  } else {
    rms_norm_forward(c.x, nullptr, nullptr, stat0, s.d0, s.d1, c.eps);
    rms_norm_backward(c.x, c.scale, stat0, c.dy, c.dx, c.dscale, s.d0, s.d1);
  }
}

// The CPU kernel binding of every opcode, one specialization per entry of
// Opcodes.def: handlerFor() is generated from the table, so an opcode
// without a binding does not compile.
template <Opcode Op> cpu::Status Executor::Impl::run(const Ctx &) {
  static_assert(Op != Op, "an opcode of Opcodes.def has no CPU kernel binding");
  return {};
}

using namespace cpu; // the kernels' names in the bindings below

template <> cpu::Status Executor::Impl::run<Opcode::Binary>(const Ctx &c) {
  withType(c.in[0].dt, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, uint8_t>)
      binary_forward<T>(BinaryOp(c.I.ints[0]), c.in[0].as<T>(), c.in[0].s,
                        c.in[1].as<T>(), c.in[1].s, c.out[0].as<T>());
  });
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Compare>(const Ctx &c) {
  withType(c.in[0].dt, [&](auto tag) {
    using T = decltype(tag);
    compare_forward<T>(CompareOp(c.I.ints[0]), c.in[0].as<T>(), c.in[0].s,
                       c.in[1].as<T>(), c.in[1].s, c.out[0].as<uint8_t>());
  });
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Logic>(const Ctx &c) {
  logic_forward(LogicOp(c.I.ints[0]), c.in[0].as<uint8_t>(), c.in[0].s,
                c.in[1].as<uint8_t>(), c.in[1].s, c.out[0].as<uint8_t>());
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Not>(const Ctx &c) {
  not_forward(c.in[0].as<uint8_t>(), c.out[0].as<uint8_t>(), c.in[0].n);
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::IsNan>(const Ctx &c) {
  is_nan_forward(c.in[0].f(), c.out[0].as<uint8_t>(), c.in[0].n);
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Cast>(const Ctx &c) {
  castAny(c.in[0].dt, c.in[0].p, c.out[0].dt, c.out[0].p, c.in[0].n);
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Where>(const Ctx &c) {
  withType(c.in[1].dt, [&](auto tag) {
    using T = decltype(tag);
    where_forward<T>(c.in[0].as<uint8_t>(), c.in[0].s, c.in[1].as<T>(),
                     c.in[1].s, c.in[2].as<T>(), c.in[2].s, c.out[0].as<T>(),
                     c.out[0].s);
  });
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Unary>(const Ctx &c) {
  unary_forward(UnaryOp(c.I.ints[0]), c.in[0].f(), c.out[0].f(), c.in[0].n);
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Copy>(const Ctx &c) {
  if (c.out[0].p != c.in[0].p)
    std::memmove(c.out[0].p, c.in[0].p, size_t(c.I.operands[0].bytes()));
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Transpose>(const Ctx &c) {
  withType(c.in[0].dt, [&](auto tag) {
    using T = decltype(tag);
    transpose<T>(c.in[0].as<T>(), c.in[0].s, c.I.ints, c.out[0].as<T>());
  });
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Broadcast>(const Ctx &c) {
  withType(c.in[0].dt, [&](auto tag) {
    using T = decltype(tag);
    broadcast_to<T>(c.in[0].as<T>(), c.in[0].s, c.out[0].as<T>(), c.out[0].s);
  });
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Concat>(const Ctx &c) {
  withType(c.in[0].dt, [&](auto tag) {
    using T = decltype(tag);
    concat<T>(std::get<std::vector<const T *>>(c.s.ptrs), c.s.shapes,
              int(c.I.ints[0]), c.out[0].as<T>());
  });
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Slice>(const Ctx &c) {
  const size_t r = size_t(c.in[0].s.rank);
  withType(c.in[0].dt, [&](auto tag) {
    using T = decltype(tag);
    slice<T>(c.in[0].as<T>(), c.in[0].s, c.span(0, r), c.span(r, r),
             c.span(2 * r, r), c.out[0].as<T>());
  });
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Gather>(const Ctx &c) {
  Status st;
  withType(c.in[0].dt, [&](auto tag) {
    using T = decltype(tag);
    st = gather<T>(c.in[0].as<T>(), c.in[0].s, int(c.I.ints[0]), c.in[1].ids(),
                   c.in[1].n, c.out[0].as<T>());
  });
  return st;
}

template <>
cpu::Status Executor::Impl::run<Opcode::ScatterElements>(const Ctx &c) {
  cpu::Status st;
  withType(c.in[0].dt, [&](auto tag) {
    using T = decltype(tag);
    st = scatter_elements<T>(c.in[0].as<T>(), c.in[0].s, c.in[1].as<int64_t>(),
                             c.in[1].s, c.in[2].as<T>(), int(c.I.ints[0]),
                             c.out[0].as<T>());
  });
  return st;
}

template <> cpu::Status Executor::Impl::run<Opcode::TopK>(const Ctx &c) {
  topk_indices(c.in[0].as<float>(), c.in[0].s, c.I.ints[0], c.I.ints[1] != 0,
               c.out[0].as<int64_t>());
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Band>(const Ctx &c) {
  withType(c.in[0].dt, [&](auto tag) {
    using T = decltype(tag);
    band<T>(c.in[0].as<T>(), c.out[0].s, c.out[0].as<T>());
  });
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::CumSum>(const Ctx &c) {
  withType(c.in[0].dt, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, uint8_t>)
      cumsum<T>(c.in[0].as<T>(), c.in[0].s, int(c.I.ints[0]), c.I.ints[1] != 0,
                c.I.ints[2] != 0, c.out[0].as<T>());
  });
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Trilu>(const Ctx &c) {
  withType(c.in[0].dt, [&](auto tag) {
    using T = decltype(tag);
    trilu<T>(c.in[0].as<T>(), c.in[0].s, c.I.ints[0] != 0, c.I.ints[1],
             c.out[0].as<T>());
  });
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Reduce>(const Ctx &c) {
  withType(c.in[0].dt, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float>)
      reduce_forward(ReduceOp(c.I.ints[0]), c.in[0].f(), c.in[0].s,
                     c.span(1, c.I.ints.size() - 1), c.out[0].f());
    else if constexpr (!std::is_same_v<T, uint8_t>)
      reduce_forward_int<T>(ReduceOp(c.I.ints[0]), c.in[0].as<T>(), c.in[0].s,
                            c.span(1, c.I.ints.size() - 1), c.out[0].as<T>());
  });
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Softmax>(const Ctx &c) {
  softmax_forward(c.in[0].f(), c.in[0].s, int(c.I.ints[0]), c.out[0].f());
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::LogSoftmax>(const Ctx &c) {
  log_softmax_forward(c.in[0].f(), c.in[0].s, int(c.I.ints[0]), c.out[0].f());
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Matmul>(const Ctx &c) {
  matmul_forward(c.in[0].f(), c.in[0].s, c.in[1].f(), c.in[1].s, c.out[0].f());
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Linear>(const Ctx &c) {
  linear_forward(c.in[0].f(), c.in[1].f(), c.in[2].f(), c.out[0].f(), c.s.d0,
                 c.s.d1, c.s.d2, c.I.ints[0] != 0);
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::LayerNorm>(const Ctx &c) {
  layer_norm_forward(c.in[0].f(), c.in[1].f(), c.in[2].f(), c.out[0].f(),
                     nullptr, nullptr, c.s.d0, c.s.d1, float(c.I.floats[0]));
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::RMSNorm>(const Ctx &c) {
  rms_norm_forward(c.in[0].f(), c.in[1].f(), c.out[0].f(), nullptr, c.s.d0,
                   c.s.d1, float(c.I.floats[0]));
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Attention>(const Ctx &c) {
  // The log-sum-exp is kept when the artifact gives it a buffer (for the
  // backward, which otherwise recomputes it).
  attention_forward(detail::attentionNow(c.s, 3), c.in[0].f(), c.in[1].f(),
                    c.in[2].f(), c.out[0].f(),
                    c.out.size() > 1 ? c.out[1].f() : nullptr);
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Rotary>(const Ctx &c) {
  rotary_forward(c.in[0].f(), c.in[1].f(), c.in[2].f(), c.out[0].f(),
                 c.s.rotary);
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Gelu>(const Ctx &c) {
  gelu_forward(c.in[0].f(), c.out[0].f(), c.in[0].n, GeluApprox(c.I.ints[0]));
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Silu>(const Ctx &c) {
  silu_forward(c.in[0].f(), c.out[0].f(), c.in[0].n);
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Swiglu>(const Ctx &c) {
  swiglu_forward(c.in[0].f(), c.in[1].f(), c.out[0].f(), c.in[0].n);
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Embedding>(const Ctx &c) {
  return embedding_forward(c.in[0].f(), c.in[1].ids(), c.out[0].f(), c.in[1].n,
                           c.in[0].s[0], c.in[0].s[1]);
}

template <>
cpu::Status Executor::Impl::run<Opcode::CrossEntropy>(const Ctx &c) {
  return cross_entropy_forward(c.in[0].f(), c.in[1].ids(), c.in[1].n,
                               c.in[0].s[c.in[0].s.rank - 1], c.I.ints[0],
                               c.out[0].f(), nullptr);
}

template <> cpu::Status Executor::Impl::run<Opcode::BinaryGrad>(const Ctx &c) {
  binary_backward(BinaryOp(c.I.ints[0]), c.in[0].f(), c.in[0].s, c.in[1].f(),
                  c.in[1].s, c.in[2].f(), c.out[0].f(), c.out[1].f());
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::UnaryGrad>(const Ctx &c) {
  unary_backward(UnaryOp(c.I.ints[0]), c.in[0].f(), c.in[1].f(), c.in[2].f(),
                 c.out[0].f(), c.in[0].n);
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::ReduceGrad>(const Ctx &c) {
  reduce_backward(ReduceOp(c.I.ints[0]), c.in[0].f(), c.out[0].s,
                  c.span(1, c.I.ints.size() - 1), c.in[1].f(), c.in[2].f(),
                  c.out[0].f());
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::WhereGrad>(const Ctx &c) {
  where_backward(c.in[0].as<uint8_t>(), c.in[0].s,
                 c.out[0].p ? c.out[0].s : c.in[1].s,
                 c.out[1].p ? c.out[1].s : c.in[1].s, c.in[1].f(), c.in[1].s,
                 c.out[0].f(), c.out[1].f());
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::SumToShape>(const Ctx &c) {
  sum_to_shape(c.in[0].f(), c.in[0].s, c.out[0].f(), c.out[0].s);
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::SliceGrad>(const Ctx &c) {
  const size_t r = size_t(c.out[0].s.rank);
  slice_backward(c.in[0].f(), c.out[0].s, c.span(0, r), c.span(r, r),
                 c.span(2 * r, r), c.out[0].f());
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::GatherGrad>(const Ctx &c) {
  return gather_backward(c.in[1].f(), c.out[0].s, int(c.I.ints[0]),
                         c.in[0].ids(), c.in[0].n, c.out[0].f());
}

template <> cpu::Status Executor::Impl::run<Opcode::MatmulGrad>(const Ctx &c) {
  matmul_backward(c.in[0].f(), c.in[0].s, c.in[1].f(), c.in[1].s, c.in[2].f(),
                  c.out[0].f(), c.out[1].f());
  return {};
}

template <>
cpu::Status Executor::Impl::run<Opcode::LinearGradWeight>(const Ctx &c) {
  // The weight is only read for dx, which this op does not compute.
  linear_backward(c.in[0].f(), nullptr, c.in[1].f(), nullptr, c.out[0].f(),
                  nullptr, c.s.d0, c.s.d1, c.s.d2, c.I.ints[0] != 0);
  return {};
}

template <>
cpu::Status Executor::Impl::run<Opcode::LayerNormGradInput>(const Ctx &c) {
  c.impl.normGrad(c.s);
  return {};
}

template <>
cpu::Status Executor::Impl::run<Opcode::LayerNormGradParams>(const Ctx &c) {
  return run<Opcode::LayerNormGradInput>(c);
}

template <>
cpu::Status Executor::Impl::run<Opcode::RMSNormGradInput>(const Ctx &c) {
  return run<Opcode::LayerNormGradInput>(c);
}

template <>
cpu::Status Executor::Impl::run<Opcode::RMSNormGradScale>(const Ctx &c) {
  return run<Opcode::LayerNormGradInput>(c);
}

template <>
cpu::Status Executor::Impl::run<Opcode::AttentionGrad>(const Ctx &c) {
  // Without the forward's log-sum-exp (operand 6) the kernel recomputes it.
  attention_backward(detail::attentionNow(c.s, 5), c.in[0].f(), c.in[1].f(),
                     c.in[2].f(),
                     c.in[3].f(), c.in.size() > 6 ? c.in[6].f() : nullptr,
                     c.in[4].f(), c.out[0].f(), c.out[1].f(), c.out[2].f());
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::GeluGrad>(const Ctx &c) {
  gelu_backward(c.in[0].f(), c.in[1].f(), c.out[0].f(), c.in[0].n,
                GeluApprox(c.I.ints[0]));
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::SiluGrad>(const Ctx &c) {
  silu_backward(c.in[0].f(), c.in[1].f(), c.out[0].f(), c.in[0].n);
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::SwigluGrad>(const Ctx &c) {
  swiglu_backward(c.in[0].f(), c.in[1].f(), c.in[2].f(), c.out[0].f(),
                  c.out[1].f(), c.in[0].n);
  return {};
}

template <>
cpu::Status Executor::Impl::run<Opcode::EmbeddingGrad>(const Ctx &c) {
  return embedding_backward(c.in[0].ids(), c.in[1].f(), c.out[0].f(), c.in[0].n,
                            c.out[0].s[0], c.out[0].s[1],
                            c.I.ints.empty() ? -1 : c.I.ints[0]);
}

template <>
cpu::Status Executor::Impl::run<Opcode::CrossEntropyGrad>(const Ctx &c) {
  const int64_t N = c.in[1].n, V = c.in[0].s[c.in[0].s.rank - 1];
  float *lse = c.impl.scratch[0].data(), unused;
  if (Status st = cross_entropy_forward(c.in[0].f(), c.in[1].ids(), N, V,
                                        c.I.ints[0], &unused, lse);
      !st.ok())
    return st;
  cross_entropy_backward(c.in[0].f(), c.in[1].ids(), lse, *c.in[2].f(), N, V,
                         c.I.ints[0], c.out[0].f());
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::SoftmaxGrad>(const Ctx &c) {
  softmax_backward(c.in[0].f(), c.in[1].f(), c.in[0].s, int(c.I.ints[0]),
                   c.out[0].f());
  return {};
}

template <>
cpu::Status Executor::Impl::run<Opcode::LogSoftmaxGrad>(const Ctx &c) {
  log_softmax_backward(c.in[0].f(), c.in[1].f(), c.in[0].s, int(c.I.ints[0]),
                       c.out[0].f());
  return {};
}

template <> cpu::Status Executor::Impl::run<Opcode::Accumulate>(const Ctx &c) {
  // In place is allowed for elementwise kernels.
  binary_forward<float>(BinaryOp::Add, c.out[0].f(), c.out[0].s, c.in[0].f(),
                        c.in[0].s, c.out[0].f());
  return {};
}

Executor::Impl::Handler Executor::Impl::handlerFor(Opcode op) {
  switch (op) {
#define WP_OPCODE(Name, ...)                                                   \
  case Opcode::Name:                                                           \
    return &run<Opcode::Name>;
#include "weipipe/runtime/Opcodes.def"
  }
  return nullptr;
}

Status Executor::Impl::zeroWritten(const Step &s) {
  if (!(opcodeInfo(s.ins->op)->flags & OpcodeInfo::kAccumulates) ||
      (s.ins->flags & Instruction::kAccumulate))
    return {};
  for (const Ref &r : s.out)
    if (r.p) {
      if (!device)
        std::memset(r.p, 0, size_t(r.n) * sizeof(float));
      else if (Status st = device->zero(r.p, uint64_t(r.n) * sizeof(float));
               !st.ok())
        return st;
    }
  return {};
}

cpu::Status Executor::Impl::exec(Step &s) {
  if (s.doneByPrevious)
    return {};
  if (device) {
    // The fused norm pair runs as one call: both results zeroed first.
    if (Status st = zeroWritten(s); !st.ok())
      return st;
    if (s.partner)
      if (Status st = zeroWritten(*s.partner); !st.ok())
        return st;
    return device->run(s);
  }
  zeroIfWritten(s);
  Handler run = handlerFor(s.ins->op);
  if (!run) // validation refuses unknown opcodes; never run one
    return cpu::Status::error("unknown opcode " +
                              std::to_string(unsigned(s.ins->op)));
  return run(Ctx{*this, s, *s.ins, s.in, s.out});
}

namespace {
/// Counts the non-finite values of an f32 buffer; the first one's index.
int64_t countNonFinite(const float *x, int64_t n, int64_t *first) {
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i]) && count++ == 0)
      *first = i;
  return count;
}

std::string valueText(float v) {
  if (std::isnan(v))
    return "nan";
  return v > 0 ? "inf" : "-inf";
}
} // namespace

cpu::Status Executor::Impl::runFunction(size_t f, std::string *nonFinite) {
  std::vector<Step> &steps = fns[f];
  // WEIPIPE_TRACE=1 prints every instruction with the L2 norm of each f32
  // result: the first place to look when a gradient disagrees.
  static const bool trace = std::getenv("WEIPIPE_TRACE") != nullptr;
  for (size_t i = 0; i < steps.size(); ++i) {
    const auto begin = profiling ? std::chrono::steady_clock::now()
                                 : std::chrono::steady_clock::time_point();
    cpu::Status st = exec(steps[i]);
    if (profiling) {
      Executor::InstructionTime &t = profile[f][i];
      const double s = std::chrono::duration<double>(
                           std::chrono::steady_clock::now() - begin)
                           .count();
      t.fastest = t.runs ? std::min(t.fastest, s) : s;
      t.seconds += s;
      ++t.runs;
    }
    if (!st.ok())
      return cpu::Status::error(instrText(a.functions[f], i) + ": " +
                                st.message());
    std::vector<float> tmp;
    if (trace) {
      std::fprintf(stderr, "[trace] %s:", instrText(a.functions[f], i).c_str());
      for (const Ref &r : steps[i].out)
        if (r.p && r.dt == DType::F32)
          std::fprintf(stderr, " %.9g",
                       std::sqrt(cpu::sum_of_squares(
                           hostFloats(r.f(), r.n, tmp), r.n)));
      std::fprintf(stderr, " <-");
      for (const Ref &r : steps[i].in)
        if (r.p && r.dt == DType::F32)
          std::fprintf(stderr, " %.9g",
                       std::sqrt(cpu::sum_of_squares(
                           hostFloats(r.f(), r.n, tmp), r.n)));
      std::fprintf(stderr, "\n");
    }
    if (!nonFinite)
      continue;
    const std::vector<Ref> &out = steps[i].out;
    for (size_t r = 0; r < out.size(); ++r) {
      if (!out[r].p || out[r].dt != DType::F32)
        continue;
      int64_t first = 0;
      const float *host = hostFloats(out[r].f(), out[r].n, tmp);
      const int64_t bad = countNonFinite(host, out[r].n, &first);
      if (bad == 0)
        continue;
      *nonFinite = instrText(a.functions[f], i) + ": result " +
                   std::to_string(r) + " has " + std::to_string(bad) +
                   " non-finite values (first at element " +
                   std::to_string(first) + " = " + valueText(host[first]) +
                   ")";
      return {};
    }
  }
  return {};
}

Status Executor::Impl::writeInputs(const int64_t *ids, const int64_t *targets) {
  for (const Input &in : a.inputs) {
    auto *dst = reinterpret_cast<int64_t *>(arena + in.ref.offset);
    const int64_t n = in.ref.numel();
    const int64_t *src = in.role == InputRole::Tokens ? ids : targets;
    std::vector<int64_t> fill;
    if (!src) { // no targets (evaluating logits only): every row is ignored
      fill.assign(size_t(n), in.role == InputRole::Targets ? a.ignoreIndex : 0);
      src = fill.data();
    }
    if (Status st = store(dst, src, uint64_t(n) * sizeof(int64_t)); !st.ok())
      return st;
  }
  return {};
}

Status Executor::Impl::store(void *dst, const void *src, uint64_t bytes) {
  if (device)
    return device->upload(dst, src, bytes);
  std::memcpy(dst, src, size_t(bytes));
  return {};
}

Status Executor::Impl::fetch(void *dst, const void *src, uint64_t bytes) const {
  if (device)
    return device->download(dst, src, bytes);
  std::memcpy(dst, src, size_t(bytes));
  return {};
}

const float *Executor::Impl::hostFloats(const float *p, int64_t n,
                                        std::vector<float> &tmp) const {
  if (!device)
    return p;
  tmp.resize(size_t(n));
  if (n > 0 && !fetch(tmp.data(), p, uint64_t(n) * sizeof(float)).ok())
    tmp.assign(size_t(n), std::nanf(""));
  return tmp.data();
}

//===----------------------------------------------------------------------===//
// Executor
//===----------------------------------------------------------------------===//

Executor::Executor(const Artifact &a)
    : a_(a), impl_(std::make_unique<Impl>(a)) {}

Executor::~Executor() = default;

uint64_t Executor::bytesAllocated() const { return impl_->bytes; }

const Executor::Allocation &Executor::allocation() const {
  return impl_->allocation;
}

namespace {

/// Reads every parameter's initial value from its storage file. Files are
/// opened once each and read with pread, never whole into memory.
std::string loadParameters(std::vector<ParamBuffers> &params,
                           const std::string &artifactDir) {
  struct File {
    int fd = -1;
    uint64_t size = 0;
  };
  std::map<std::string, File> files;
  struct Closer {
    std::map<std::string, File> &files;
    ~Closer() {
      for (auto &kv : files)
        if (kv.second.fd >= 0)
          ::close(kv.second.fd);
    }
  } closer{files};

  for (ParamBuffers &pb : params) {
    if (!pb.value)
      continue;
    const Parameter &p = *pb.desc;
    const Storage &st = p.storage;
    const std::string at = "parameter '" + p.name + "'";
    const uint64_t need = uint64_t(pb.numel) * sizeof(float);
    if (need == 0 && st.length == 0)
      continue;
    if (st.file.empty())
      return at + ": no storage file";
    std::string path = st.file;
    if (path[0] != '/' && !artifactDir.empty())
      path = artifactDir + "/" + path;
    auto it = files.find(path);
    if (it == files.end()) {
      File file;
      // O_NONBLOCK: opening a FIFO for reading would wait for a writer.
      file.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
      if (file.fd < 0)
        return at + ": cannot open " + path + ": " + std::strerror(errno);
      struct stat sb;
      if (::fstat(file.fd, &sb) != 0) {
        std::string e = std::strerror(errno);
        ::close(file.fd);
        return at + ": cannot read " + path + ": " + e;
      }
      // Read at offsets, with the size compiled against: a regular file.
      if (!S_ISREG(sb.st_mode)) {
        ::close(file.fd);
        return at + ": " + path + " is " + fileKindName(sb.st_mode) +
               ", not a regular file holding the parameters";
      }
      file.size = uint64_t(sb.st_size);
      it = files.emplace(path, file).first;
    }
    const File &file = it->second;
    if (st.fileSize != 0 && file.size != st.fileSize)
      return at + ": " + path + " is " + std::to_string(file.size) +
             " bytes, but the artifact was compiled against a " +
             std::to_string(st.fileSize) +
             "-byte file; the model changed since it was compiled: recompile";
    if (st.length != need)
      return at + ": its storage holds " + std::to_string(st.length) +
             " bytes, but f32" + shapeText(p.shape) + " needs " +
             std::to_string(need);
    if (st.offset > file.size || st.length > file.size - st.offset)
      return at + ": bytes [" + std::to_string(st.offset) + ", " +
             std::to_string(st.offset + st.length) + ") are outside " + path +
             " (" + std::to_string(file.size) + " bytes)";
    auto *dst = reinterpret_cast<char *>(pb.value);
    uint64_t done = 0;
    while (done < st.length) {
      const ssize_t n = ::pread(file.fd, dst + done, size_t(st.length - done),
                                off_t(st.offset + done));
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return at + ": reading " + path + ": " + std::strerror(errno);
      if (n == 0)
        return at + ": " + path + " ended at byte " +
               std::to_string(st.offset + done) + " while reading it";
      done += uint64_t(n);
    }
    if (!st.checksummed)
      continue;
    if (const uint32_t got = crc32c(dst, size_t(st.length)); got != st.crc32c)
      return at + ": bytes [" + std::to_string(st.offset) + ", " +
             std::to_string(st.offset + st.length) + ") of " + path +
             " differ from the ones compiled (CRC-32C " + crcText(got) +
             ", compiled " + crcText(st.crc32c) +
             "); the model changed since it was compiled: recompile";
  }
  return "";
}

} // namespace

const char *deviceName(Device d) { return d == Device::Cuda ? "cuda" : "cpu"; }

const char *precisionName(Precision p) {
  return p == Precision::Bf16 ? "bf16" : "fp32";
}

#ifndef WEIPIPE_HAVE_CUDA
std::unique_ptr<DeviceBackend> detail::makeCudaBackend(Precision,
                                                       std::string *error) {
  *error = "--device cuda: this build of weipipe has no CUDA backend (nvcc "
           "was not found when it was configured, or -DWEIPIPE_CUDA=OFF)";
  return nullptr;
}
#endif

std::unique_ptr<Executor> Executor::create(const Artifact &a,
                                           const std::string &artifactDir,
                                           std::string *error,
                                           const std::vector<bool> *holds,
                                           uint64_t memoryLimit,
                                           const ExecutorOptions &options) {
  auto fail = [&](const std::string &msg) -> std::unique_ptr<Executor> {
    if (error)
      *error = msg;
    return nullptr;
  };
  std::string problem;
  if (!detail::validateArtifact(a, "artifact", &problem))
    return fail(problem);
  if (options.device == Device::Cpu && options.precision != Precision::Fp32)
    return fail(std::string("--precision ") + precisionName(options.precision) +
                " needs a GPU (--device cuda): the CPU computes in fp32");
  std::unique_ptr<DeviceBackend> device;
  if (options.device == Device::Cuda) {
    device = detail::makeCudaBackend(options.precision, &problem);
    if (!device)
      return fail(problem);
  }

  // Sizes first, so that a plan too big for this machine fails with its
  // numbers before anything is touched.
  // The check covers everything the rank allocates, the trainer's AdamW
  // moments included: for one rank, the number the compiler prints as its
  // peak (planRankMemory). A pipeline's trainer checks its ranks' whole plans
  // first; here its rank's share.
  const RankMemoryPlan need = planExecutorMemory(a, holds);
  const uint64_t paramBytes = need.parameterBytes,
                 constBytes = need.constantBytes,
                 stageScratch = need.scratchBytes,
                 total = need.total();
  const std::array<int64_t, 2> scratchFloats = kernelScratchFloats(a);
  const std::string plan =
      "the plan needs " + gibText(total) + " (" + std::to_string(total) +
      " bytes: arena " + bytesText(a.arenaBytes) + ", parameters " +
      bytesText(paramBytes) + ", gradients " + bytesText(paramBytes) +
      ", AdamW state " + std::to_string(need.optimizerBytes) +
      " bytes, constants " + bytesText(constBytes) + ", scratch " +
      bytesText(need.kernelScratchBytes + stageScratch) + ")";
  if (total > (uint64_t(1) << 62))
    return fail(plan + ", more than any machine has");
  const uint64_t avail = device ? device->availableBytes()
                                : availableMemoryBytes();
  const std::string where = device ? device->describe() : "this machine";
  if (memoryLimit && total > memoryLimit)
    return fail(plan + ", over --memory-limit (" + gibText(memoryLimit) + ", " +
                std::to_string(memoryLimit) + " bytes)");
  if (avail != 0 && total > avail)
    return fail(plan + " but only " + gibText(avail) + " of memory is " +
                "available on " + where);

  std::unique_ptr<Executor> ex(new Executor(a));
  Impl &im = *ex->impl_;
  im.options = options;
  if (device) {
    im.device = std::move(device);
    DeviceBackend &d = *im.device;
    im.constants.resize(a.constants.size());
    Status st = d.allocate(a.arenaBytes, "the activation arena", &im.arena);
    if (st.ok())
      st = d.allocate(stageScratch, "the stage scratch", &im.stageScratch);
    if (st.ok())
      st = d.allocate(paramBytes, "the parameters", &im.values);
    if (st.ok())
      st = d.allocate(paramBytes, "the gradients", &im.grads);
    for (size_t i = 0; st.ok() && i < a.constants.size(); ++i) {
      st = d.allocate(a.constants[i].bytes.size(), "a constant",
                      &im.constants[i]);
      if (st.ok())
        st = d.upload(im.constants[i], a.constants[i].bytes.data(),
                      a.constants[i].bytes.size());
    }
    if (!st.ok())
      return fail(plan + ": " + st.message());
  } else {
    try {
      bool ok = im.arenaHost.allocate(a.arenaBytes) &&
                im.stageScratchHost.allocate(stageScratch) &&
                im.valuesHost.allocate(paramBytes) &&
                im.gradsHost.allocate(paramBytes);
      im.constantsHost.resize(a.constants.size());
      for (size_t i = 0; ok && i < a.constants.size(); ++i)
        ok = im.constantsHost[i].allocate(a.constants[i].bytes.size());
      for (int k = 0; ok && k < kScratch; ++k)
        im.scratch[k].assign(size_t(scratchFloats[size_t(k)]), 0.0f);
      if (!ok)
        throw std::bad_alloc();
    } catch (const std::bad_alloc &) {
      return fail(plan + " but allocating it failed" +
                  (avail ? " (" + gibText(avail) + " of memory available)"
                         : std::string()));
    }
    im.arena = im.arenaHost.data();
    im.stageScratch = im.stageScratchHost.data();
    im.values = im.valuesHost.data();
    im.grads = im.gradsHost.data();
    // Zeroed so that a read of a never-written byte is reproducible (the
    // device backend's memory comes zeroed).
    std::memset(im.arena, 0, size_t(a.arenaBytes));
    std::memset(im.stageScratch, 0, size_t(stageScratch));
    std::memset(im.grads, 0, size_t(paramBytes));
    for (size_t i = 0; i < a.constants.size(); ++i) {
      im.constants.push_back(im.constantsHost[i].data());
      std::memcpy(im.constants[i], a.constants[i].bytes.data(),
                  a.constants[i].bytes.size());
    }
  }
  im.bytes = total - need.optimizerBytes;
  im.allocation = {need.activationBytes, paramBytes,
                   paramBytes,           constBytes,
                   need.kernelScratchBytes, stageScratch};

  uint64_t offset = 0;
  ex->params_.resize(a.params.size());
  for (size_t i = 0; i < a.params.size(); ++i) {
    ParamBuffers &pb = ex->params_[i];
    pb.desc = &a.params[i];
    pb.numel = a.params[i].numel();
    if (holds && !(*holds)[i]) // a pipeline rank binds it to a slot first
      continue;
    pb.value = reinterpret_cast<float *>(im.values + offset);
    pb.grad = reinterpret_cast<float *>(im.grads + offset);
    offset += roundUp(uint64_t(pb.numel) * sizeof(float));
  }
  if (!im.device) {
    if (std::string e = loadParameters(ex->params_, artifactDir); !e.empty())
      return fail(e);
  } else {
    // Read into host memory laid out as on the device, then one copy.
    std::vector<ParamBuffers> staged = ex->params_;
    AlignedBuffer host;
    if (!host.allocate(paramBytes))
      return fail("cannot allocate the parameters' host staging (" +
                  std::to_string(paramBytes) + " bytes)");
    for (ParamBuffers &pb : staged)
      if (pb.value)
        pb.value = reinterpret_cast<float *>(
            host.data() + (reinterpret_cast<uint8_t *>(pb.value) - im.values));
    if (std::string e = loadParameters(staged, artifactDir); !e.empty())
      return fail(e);
    if (Status st = im.device->upload(im.values, host.data(), paramBytes);
        !st.ok())
      return fail("loading the parameters: " + st.message());
  }
  im.prepare(ex->params_);
  if (im.device)
    if (Status st = im.device->prepare(im.fns); !st.ok())
      return fail(st.message());
  return ex;
}

float Executor::readLoss() const {
  float loss = 0.0f;
  if (a_.loss.present() &&
      !impl_->fetch(&loss, impl_->arena + a_.loss.offset, sizeof(float)).ok())
    loss = std::nanf("");
  return loss;
}

const ExecutorOptions &Executor::options() const { return impl_->options; }

cpu::Status Executor::readParameter(size_t index, float *dst) const {
  const ParamBuffers &p = params_.at(index);
  if (!p.value)
    return cpu::Status::error("parameter '" + p.desc->name +
                              "' is not held by this executor");
  return impl_->fetch(dst, p.value, uint64_t(p.numel) * sizeof(float));
}

std::string Executor::deviceDescription() const {
  return impl_->device ? impl_->device->describe() : "cpu";
}

cpu::Status
Executor::optimizerStep(const std::vector<cpu::AdamWConfig> &configs,
                        int64_t step, double gradClip, double *gradNorm) {
  if (!impl_->device)
    return cpu::Status::error(
        "optimizerStep is the device executor's (the CPU trainer runs its "
        "own AdamW)");
  if (configs.size() != params_.size())
    return cpu::Status::error("optimizerStep: one AdamW config per parameter");
  return impl_->device->optimizerStep(params_, configs, step, gradClip,
                                      gradNorm);
}

uint8_t *Executor::stageScratch() { return impl_->stageScratch; }

void Executor::bindArena(size_t function, uint8_t *base) {
  bool concat = false;
  for (const Impl::ArenaUse &u : impl_->arenaUses[function]) {
    u.ref->p = base + u.offset;
    concat |= u.step->ins->op == Opcode::Concat;
  }
  if (concat)
    for (Step &s : impl_->fns[function])
      if (s.ins->op == Opcode::Concat)
        concatPointers(s);
}

cpu::Status Executor::runFunction(size_t function) {
  return impl_->runFunction(function, nullptr);
}

void Executor::profileInstructions(bool on) {
  Impl &im = *impl_;
  im.profiling = on;
  if (on && im.profile.empty())
    resetInstructionTimes();
}

void Executor::resetInstructionTimes() {
  Impl &im = *impl_;
  im.profile.assign(a_.functions.size(), {});
  for (size_t f = 0; f < a_.functions.size(); ++f)
    im.profile[f].resize(a_.functions[f].body.size());
}

const std::vector<std::vector<Executor::InstructionTime>> &
Executor::instructionTimes() const {
  return impl_->profile;
}

cpu::Status Executor::synchronize() {
  return impl_->device ? impl_->device->finish(a_) : cpu::Status();
}

detail::DeviceBackend *detail::deviceBackend(Executor &e) {
  return e.impl_->device.get();
}

void Executor::bindParam(size_t index, float *value, float *grad) {
  Impl &im = *impl_;
  float *v = value ? value : params_[index].value;
  float *g = grad ? grad : params_[index].grad;
  if (v != im.valueOf[index]) {
    im.valueOf[index] = v;
    im.rebind(im.valueUses[index], v);
  }
  if (g != im.gradOf[index]) {
    im.gradOf[index] = g;
    im.rebind(im.gradUses[index], g);
  }
}

float *Executor::boundValue(size_t index) const {
  return impl_->valueOf[index];
}

float *Executor::boundGrad(size_t index) const { return impl_->gradOf[index]; }

void Executor::zeroGrads() {
  uint64_t bytes = 0;
  for (const ParamBuffers &pb : params_)
    if (pb.grad)
      bytes += roundUp(uint64_t(pb.numel) * sizeof(float));
  if (!bytes)
    return;
  if (impl_->device) // an error here resurfaces at the next synchronization
    (void)impl_->device->zero(impl_->grads, bytes);
  else
    std::memset(impl_->grads, 0, size_t(bytes));
}

Status Executor::Impl::runProgram(std::string *nonFinite) {
  for (uint32_t f : a.microbatchProgram) {
    if (Status st = runFunction(f, nonFinite); !st.ok())
      return st;
    if (nonFinite && !nonFinite->empty())
      return {};
  }
  return device ? device->finish(a) : Status();
}

cpu::Status Executor::runMicrobatch(const int64_t *ids, const int64_t *targets,
                                    float dloss, float *loss) {
  Impl &im = *impl_;
  if (Status st = im.writeInputs(ids, targets); !st.ok())
    return st;
  if (a_.dloss.present())
    if (Status st = im.store(im.arena + a_.dloss.offset, &dloss, sizeof(float));
        !st.ok())
      return st;
  if (Status st = im.runProgram(nullptr); !st.ok())
    return st;
  if (loss)
    *loss = readLoss();
  return {};
}

cpu::Status Executor::runForward(const int64_t *ids, const int64_t *targets,
                                 float *loss) {
  // The first forward function of the program, else of the artifact.
  size_t f = a_.functions.size();
  for (uint32_t g : a_.microbatchProgram)
    if (a_.functions[g].kind == FunctionKind::Forward) {
      f = g;
      break;
    }
  for (size_t g = 0; f == a_.functions.size() && g < a_.functions.size(); ++g)
    if (a_.functions[g].kind == FunctionKind::Forward)
      f = g;
  if (f == a_.functions.size())
    return cpu::Status::error("the artifact has no forward function");
  if (Status st = impl_->writeInputs(ids, targets); !st.ok())
    return st;
  if (cpu::Status st = impl_->runFunction(f, nullptr); !st.ok())
    return st;
  if (impl_->device)
    if (Status st = impl_->device->finish(a_); !st.ok())
      return st;
  if (loss)
    *loss = readLoss();
  return {};
}

const float *Executor::logits() const {
  if (!a_.logits.present())
    return nullptr;
  const float *p =
      reinterpret_cast<const float *>(impl_->arena + a_.logits.offset);
  return impl_->hostFloats(p, a_.logits.numel(), impl_->logitsHost);
}

std::string Executor::findFirstNonFinite(const int64_t *ids,
                                         const int64_t *targets, float dloss) {
  // A parameter that is already non-finite would be blamed on its first
  // reader; name it instead.
  Impl &im = *impl_;
  std::vector<float> tmp;
  for (const ParamBuffers &pb : params_) {
    if (!pb.value)
      continue;
    int64_t first = 0;
    const float *host = im.hostFloats(pb.value, pb.numel, tmp);
    if (int64_t bad = countNonFinite(host, pb.numel, &first))
      return "parameter '" + pb.desc->name + "' has " + std::to_string(bad) +
             " non-finite values (first at element " + std::to_string(first) +
             " = " + valueText(host[first]) + ")";
  }
  // The gradients restart from zero: whatever the failed micro-batch left in
  // them would otherwise be blamed on the first instruction accumulating.
  zeroGrads();
  if (Status st = im.writeInputs(ids, targets); !st.ok())
    return st.message();
  if (a_.dloss.present())
    if (Status st = im.store(im.arena + a_.dloss.offset, &dloss, sizeof(float));
        !st.ok())
      return st.message();
  std::string found;
  if (Status st = im.runProgram(&found); !st.ok())
    return st.message();
  return found;
}

} // namespace weipipe::rt
