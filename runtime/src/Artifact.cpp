//===- Artifact.cpp - the .wpp training artifact, format v3 ---------------===//
//
// Part of weipipe's runtime. One encoder and one decoder for both sides.
//
// Payload layout (all little-endian; str = u32 length + bytes; shape = u32
// rank + rank x i64; ref = space u8, index u32, offset u64, dtype u8, shape):
//   version u32, producer str, sourceModel str, rank u32, ranks u32,
//   schedule str, microbatches u32, batch i64, seq i64, vocab i64,
//   ignoreIndex i64,
//   params: u32 count x {name str, dtype u8, shape, file str, offset u64,
//           length u64, fileSize u64, checksummed u8, crc32c u32, decay u8,
//           aliases: u32 count x {name str, transposed u8}},
//   constants: u32 count x {dtype u8, shape, u64 length + bytes},
//   inputs: u32 count x {name str, role u8, ref},
//   loss ref, dloss ref, logits ref, arenaBytes u64, peakBytes u64,
//   functions: u32 count x {name str, kind u8,
//              body: u32 count x {opcode u32, flags u8, u32 count x operand
//              ref, u32 count x result ref, u32 count x i64 ints, u32 count x
//              f64 floats, name str}},
//   microbatchProgram: u32 count x u32,
//   stages: u32 count x {name str, kind u8, forward i32, backward i32,
//           backwardInput i32, backwardWeight i32, arenaBytes u64,
//           scratchBytes u64,
//           inputs (as above), in, out, din, dout: u32 count x ref each,
//           loss ref, dloss ref, logits ref, params: u32 count x u32},
//   owner: u32 count x i32,
//   programs: u32 count x {slots: u32 count x {kind u8, label str, bytes
//             u64}, actions: u32 count x {op u8, turn i32, chunk i32,
//             microbatch i32, weights i32, grads i32, in i32, out i32,
//             peer i32, token i32, slots: u32 count x i32, tokens: u32
//             count x i32, bytes: u32 count x u64}}.
//
// Decoding is in two passes: a structural one that bounds every count by the
// bytes left (so a corrupt count never allocates), then validateArtifact,
// which checks what the executor and the kernels rely on.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/Artifact.h"
#include "weipipe/runtime/OutputFile.h"

#include "ArtifactInternal.h"
#include "weipipe/runtime/ByteReader.h"
#include "weipipe/runtime/Crc32c.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace weipipe::rt {

size_t dtypeSize(DType t) {
  switch (t) {
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::I64:
    return 8;
  case DType::Bool:
    return 1;
  }
  return 0;
}

const char *dtypeName(DType t) {
  switch (t) {
  case DType::F32:
    return "f32";
  case DType::I64:
    return "i64";
  case DType::I32:
    return "i32";
  case DType::Bool:
    return "bool";
  }
  return "?";
}

const char *functionKindName(FunctionKind k) {
  switch (k) {
  case FunctionKind::Forward:
    return "forward";
  case FunctionKind::Backward:
    return "backward";
  case FunctionKind::BackwardInput:
    return "backward_input";
  case FunctionKind::BackwardWeight:
    return "backward_weight";
  }
  return "?";
}

namespace {
int64_t product(const std::vector<int64_t> &s) {
  int64_t n = 1;
  for (int64_t d : s)
    n *= d;
  return n;
}
} // namespace

int64_t TensorRef::numel() const { return product(shape); }
int64_t Parameter::numel() const { return product(shape); }

const char *stageKindName(StageKind k) {
  switch (k) {
  case StageKind::Prologue:
    return "prologue";
  case StageKind::Layers:
    return "layers";
  case StageKind::Epilogue:
    return "epilogue";
  }
  return "?";
}

const char *actionOpName(ActionOp op) {
  static const char *const names[] = {"load_master",
                                      "zero",
                                      "swap",
                                      "add_into",
                                      "forward",
                                      "backward_input",
                                      "backward_weight",
                                      "backward",
                                      "optimizer_step",
                                      "send",
                                      "recv",
                                      "wait"};
  return uint8_t(op) <= uint8_t(ActionOp::Wait) ? names[uint8_t(op)] : "?";
}

uint64_t stageSlotLayout(const Artifact &a, const Stage &s,
                         std::vector<uint64_t> *offsets) {
  uint64_t at = 0; // floats
  if (offsets)
    offsets->clear();
  for (uint32_t p : s.params) {
    at = (at + 15) / 16 * 16;
    if (offsets)
      offsets->push_back(at);
    at += p < a.params.size() ? uint64_t(a.params[p].numel()) : 0;
  }
  return at * sizeof(float);
}

uint64_t boundaryLayout(const std::vector<TensorRef> &refs,
                        std::vector<uint64_t> *offsets) {
  uint64_t at = 0;
  if (offsets)
    offsets->clear();
  for (const TensorRef &r : refs) {
    at = (at + 63) / 64 * 64;
    if (offsets)
      offsets->push_back(at);
    if (r.present())
      at += r.bytes();
  }
  return at;
}

size_t Artifact::numChunks() const {
  return stages.size() - (prologueStage() >= 0) - (epilogueStage() >= 0);
}
size_t Artifact::chunkStage(size_t c) const {
  return c + (prologueStage() >= 0 ? 1 : 0);
}
int Artifact::prologueStage() const {
  return !stages.empty() && stages.front().kind == StageKind::Prologue ? 0 : -1;
}
int Artifact::epilogueStage() const {
  return !stages.empty() && stages.back().kind == StageKind::Epilogue
             ? int(stages.size()) - 1
             : -1;
}

//===----------------------------------------------------------------------===//
// Encoding
//===----------------------------------------------------------------------===//

namespace {

constexpr size_t kHeaderBytes = 32;

class Writer {
public:
  std::string buf;

  void u8(uint8_t v) { buf.push_back(char(v)); }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i)
      buf.push_back(char((v >> (8 * i)) & 0xff));
  }
  void u64(uint64_t v) {
    for (int i = 0; i < 8; ++i)
      buf.push_back(char((v >> (8 * i)) & 0xff));
  }
  void i64(int64_t v) { u64(uint64_t(v)); }
  void i32(int32_t v) { u32(uint32_t(v)); }
  void f64(double v) {
    uint64_t b;
    std::memcpy(&b, &v, 8);
    u64(b);
  }
  void count(size_t n) { u32(uint32_t(n)); }
  void str(const std::string &s) {
    count(s.size());
    buf.append(s);
  }
  void shape(const std::vector<int64_t> &s) {
    count(s.size());
    for (int64_t d : s)
      i64(d);
  }
  void ref(const TensorRef &r) {
    u8(uint8_t(r.space));
    u32(r.index);
    u64(r.offset);
    u8(uint8_t(r.dtype));
    shape(r.shape);
  }
  void inputs(const std::vector<Input> &ins) {
    count(ins.size());
    for (const Input &in : ins) {
      str(in.name);
      u8(uint8_t(in.role));
      ref(in.ref);
    }
  }
};

void writePayload(Writer &w, const Artifact &a) {
  w.u32(a.version);
  w.str(a.producer);
  w.str(a.sourceModel);
  w.u32(a.rank);
  w.u32(a.ranks);
  w.str(a.schedule);
  w.u32(a.microbatches);
  w.i64(a.batch);
  w.i64(a.seq);
  w.i64(a.vocab);
  w.i64(a.ignoreIndex);
  w.count(a.params.size());
  for (const Parameter &p : a.params) {
    w.str(p.name);
    w.u8(uint8_t(p.dtype));
    w.shape(p.shape);
    w.str(p.storage.file);
    w.u64(p.storage.offset);
    w.u64(p.storage.length);
    w.u64(p.storage.fileSize);
    w.u8(p.storage.checksummed ? 1 : 0);
    w.u32(p.storage.crc32c);
    w.u8(p.decay ? 1 : 0);
    w.count(p.aliases.size());
    for (const Alias &al : p.aliases) {
      w.str(al.name);
      w.u8(al.transposed ? 1 : 0);
    }
  }
  w.count(a.constants.size());
  for (const Constant &c : a.constants) {
    w.u8(uint8_t(c.dtype));
    w.shape(c.shape);
    w.u64(c.bytes.size());
    w.buf.append(c.bytes);
  }
  w.inputs(a.inputs);
  w.ref(a.loss);
  w.ref(a.dloss);
  w.ref(a.logits);
  w.u64(a.arenaBytes);
  w.u64(a.peakBytes);
  w.count(a.functions.size());
  for (const Function &f : a.functions) {
    w.str(f.name);
    w.u8(uint8_t(f.kind));
    w.count(f.body.size());
    for (const Instruction &in : f.body) {
      w.u32(uint32_t(in.op));
      w.u8(in.flags);
      w.count(in.operands.size());
      for (const TensorRef &r : in.operands)
        w.ref(r);
      w.count(in.results.size());
      for (const TensorRef &r : in.results)
        w.ref(r);
      w.count(in.ints.size());
      for (int64_t v : in.ints)
        w.i64(v);
      w.count(in.floats.size());
      for (double v : in.floats)
        w.f64(v);
      w.str(in.name);
    }
  }
  w.count(a.microbatchProgram.size());
  for (uint32_t f : a.microbatchProgram)
    w.u32(f);
  auto refs = [&](const std::vector<TensorRef> &rs) {
    w.count(rs.size());
    for (const TensorRef &r : rs)
      w.ref(r);
  };
  w.count(a.stages.size());
  for (const Stage &st : a.stages) {
    w.str(st.name);
    w.u8(uint8_t(st.kind));
    w.i32(st.forward);
    w.i32(st.backward);
    w.i32(st.backwardInput);
    w.i32(st.backwardWeight);
    w.u64(st.arenaBytes);
    w.u64(st.scratchBytes);
    w.inputs(st.inputs);
    refs(st.in);
    refs(st.out);
    refs(st.din);
    refs(st.dout);
    w.ref(st.loss);
    w.ref(st.dloss);
    w.ref(st.logits);
    w.count(st.params.size());
    for (uint32_t p : st.params)
      w.u32(p);
  }
  w.count(a.owner.size());
  for (int32_t o : a.owner)
    w.i32(o);
  w.count(a.programs.size());
  for (const RankProgram &prog : a.programs) {
    w.count(prog.slots.size());
    for (const Slot &sl : prog.slots) {
      w.u8(uint8_t(sl.kind));
      w.str(sl.label);
      w.u64(sl.bytes);
    }
    w.count(prog.actions.size());
    for (const Action &ac : prog.actions) {
      w.u8(uint8_t(ac.op));
      for (int32_t v : {ac.turn, ac.chunk, ac.microbatch, ac.weights, ac.grads,
                        ac.in, ac.out, ac.peer, ac.token})
        w.i32(v);
      w.count(ac.slots.size());
      for (int32_t v : ac.slots)
        w.i32(v);
      w.count(ac.tokens.size());
      for (int32_t v : ac.tokens)
        w.i32(v);
      w.count(ac.bytes.size());
      for (uint64_t v : ac.bytes)
        w.u64(v);
    }
  }
}

} // namespace

std::string serializeArtifact(const Artifact &a) {
  Writer payload;
  writePayload(payload, a);
  Writer h;
  h.u32(kArtifactMagic);
  h.u32(a.version);
  h.u32(0); // flags
  h.u32(0); // reserved
  h.u64(payload.buf.size());
  h.u32(crc32c(payload.buf.data(), payload.buf.size()));
  h.u32(crc32c(h.buf.data(), h.buf.size()));
  return h.buf + payload.buf;
}

//===----------------------------------------------------------------------===//
// Decoding
//===----------------------------------------------------------------------===//

namespace {

// Smallest encodings, to bound counts by the bytes left before allocating.
constexpr size_t kMinRef = 1 + 4 + 8 + 1 + 4;
constexpr size_t kMinParam = 4 + 1 + 4 + 4 + 8 + 8 + 8 + 1 + 4;
constexpr size_t kMinAlias = 4 + 1;
constexpr size_t kMinConstant = 1 + 4 + 8;
constexpr size_t kMinInput = 4 + 1 + kMinRef;
constexpr size_t kMinFunction = 4 + 1 + 4;
constexpr size_t kMinInstruction = 4 + 1 + 4 + 4 + 4 + 4 + 4;
constexpr size_t kMinStage = 4 + 1 + 4 * 4 + 2 * 8 + 5 * 4 + 3 * kMinRef + 4;

class Decoder {
public:
  Decoder(const void *data, size_t size, const std::string &what)
      : r_(data, size, what), what_(what) {}

  ByteReader &reader() { return r_; }
  bool ok() const { return r_.ok() && err_.empty(); }
  std::string error() const { return err_.empty() ? r_.error() : err_; }

  bool fail(const std::string &msg, size_t at) {
    if (err_.empty() && r_.ok())
      err_ = what_ + ": " + msg + " (at byte " + std::to_string(at) + ")";
    return false;
  }

  bool u8(uint8_t &v) { return get(r_.u8(), v); }
  bool u32(uint32_t &v) { return get(r_.u32(), v); }
  bool u64(uint64_t &v) { return get(r_.u64(), v); }
  bool i64(int64_t &v) {
    uint64_t u;
    if (!u64(u))
      return false;
    v = int64_t(u);
    return true;
  }
  bool i32(int32_t &v) {
    uint32_t u;
    if (!u32(u))
      return false;
    v = int32_t(u);
    return true;
  }
  bool f64(double &v) {
    uint64_t u;
    if (!u64(u))
      return false;
    std::memcpy(&v, &u, 8);
    return true;
  }
  bool flag(bool &v, const char *field) {
    size_t at = r_.offset();
    uint8_t b;
    if (!u8(b))
      return false;
    if (b > 1)
      return fail(
          std::string(field) + " is " + std::to_string(b) + ", not 0 or 1", at);
    v = b != 0;
    return true;
  }
  bool str(std::string &s) {
    auto v = r_.string();
    if (!v)
      return false;
    s.assign(v->data(), v->size());
    return true;
  }
  /// A u32 count of items of at least `minItem` bytes each.
  bool count(uint32_t &n, size_t minItem, const char *field) {
    size_t at = r_.offset();
    if (!u32(n))
      return false;
    if (uint64_t(n) * minItem > r_.remaining())
      return fail(std::string(field) + " count " + std::to_string(n) +
                      " needs at least " +
                      std::to_string(uint64_t(n) * minItem) + " bytes, " +
                      std::to_string(r_.remaining()) + " left",
                  at);
    return true;
  }
  bool dtype(DType &t) {
    size_t at = r_.offset();
    uint8_t b;
    if (!u8(b))
      return false;
    if (b > uint8_t(DType::Bool))
      return fail("unknown dtype " + std::to_string(b), at);
    t = DType(b);
    return true;
  }
  bool shape(std::vector<int64_t> &s) {
    size_t at = r_.offset();
    uint32_t rank;
    if (!u32(rank))
      return false;
    if (rank > uint32_t(kMaxRank))
      return fail("shape rank " + std::to_string(rank) + " exceeds " +
                      std::to_string(kMaxRank),
                  at);
    s.resize(rank);
    for (int64_t &d : s) {
      size_t dimAt = r_.offset();
      if (!i64(d))
        return false;
      if (d < 0)
        return fail("negative dimension " + std::to_string(d), dimAt);
    }
    return true;
  }
  bool ref(TensorRef &t) {
    size_t at = r_.offset();
    uint8_t space;
    if (!u8(space))
      return false;
    if (space > uint8_t(Space::Scratch))
      return fail("unknown tensor space " + std::to_string(space), at);
    t.space = Space(space);
    return u32(t.index) && u64(t.offset) && dtype(t.dtype) && shape(t.shape);
  }

private:
  template <typename T> bool get(std::optional<T> v, T &out) {
    if (!v)
      return false;
    out = *v;
    return true;
  }

  ByteReader r_;
  std::string what_;
  std::string err_;
};

bool decodeParam(Decoder &d, Parameter &p) {
  uint32_t n;
  if (!(d.str(p.name) && d.dtype(p.dtype) && d.shape(p.shape) &&
        d.str(p.storage.file) && d.u64(p.storage.offset) &&
        d.u64(p.storage.length) && d.u64(p.storage.fileSize) &&
        d.flag(p.storage.checksummed, "checksummed") &&
        d.u32(p.storage.crc32c) && d.flag(p.decay, "decay") &&
        d.count(n, kMinAlias, "alias")))
    return false;
  p.aliases.resize(n);
  for (Alias &al : p.aliases)
    if (!(d.str(al.name) && d.flag(al.transposed, "alias transposed")))
      return false;
  return true;
}

bool decodeConstant(Decoder &d, Constant &c) {
  if (!(d.dtype(c.dtype) && d.shape(c.shape)))
    return false;
  size_t at = d.reader().offset();
  uint64_t n;
  if (!d.u64(n))
    return false;
  if (n > d.reader().remaining())
    return d.fail("constant of " + std::to_string(n) + " bytes, " +
                      std::to_string(d.reader().remaining()) + " left",
                  at);
  auto bytes = d.reader().bytes(size_t(n));
  if (!bytes)
    return false;
  c.bytes.assign(bytes->data(), bytes->size());
  return true;
}

bool decodeRefs(Decoder &d, std::vector<TensorRef> &refs, const char *field) {
  uint32_t n;
  if (!d.count(n, kMinRef, field))
    return false;
  refs.resize(n);
  for (TensorRef &r : refs)
    if (!d.ref(r))
      return false;
  return true;
}

bool decodeInstruction(Decoder &d, Instruction &in) {
  size_t at = d.reader().offset();
  uint32_t op;
  if (!d.u32(op))
    return false;
  if (op > 0xffff || !isKnownOpcode(uint16_t(op)))
    return d.fail("unknown opcode " + std::to_string(op), at);
  in.op = Opcode(op);
  uint32_t n;
  if (!(d.u8(in.flags) && decodeRefs(d, in.operands, "operand") &&
        decodeRefs(d, in.results, "result") && d.count(n, 8, "ints")))
    return false;
  in.ints.resize(n);
  for (int64_t &v : in.ints)
    if (!d.i64(v))
      return false;
  if (!d.count(n, 8, "floats"))
    return false;
  in.floats.resize(n);
  for (double &v : in.floats)
    if (!d.f64(v))
      return false;
  return d.str(in.name);
}

bool decodeFunction(Decoder &d, Function &f, std::vector<size_t> &offsets) {
  size_t at = d.reader().offset();
  uint8_t kind;
  if (!(d.str(f.name) && d.u8(kind)))
    return false;
  if (kind > uint8_t(FunctionKind::BackwardWeight))
    return d.fail("function '" + f.name + "' has unknown kind " +
                      std::to_string(kind),
                  at);
  f.kind = FunctionKind(kind);
  uint32_t n;
  if (!d.count(n, kMinInstruction, "instruction"))
    return false;
  f.body.resize(n);
  offsets.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    offsets[i] = d.reader().offset();
    if (!decodeInstruction(d, f.body[i]))
      return false;
  }
  return true;
}

bool decodeInputs(Decoder &d, std::vector<Input> &inputs) {
  uint32_t n;
  if (!d.count(n, kMinInput, "input"))
    return false;
  inputs.resize(n);
  for (Input &in : inputs) {
    if (!d.str(in.name))
      return false;
    size_t roleAt = d.reader().offset();
    uint8_t role;
    if (!d.u8(role))
      return false;
    if (role > uint8_t(InputRole::Targets))
      return d.fail("input '" + in.name + "' has unknown role " +
                        std::to_string(role),
                    roleAt);
    in.role = InputRole(role);
    if (!d.ref(in.ref))
      return false;
  }
  return true;
}

bool decodeStage(Decoder &d, Stage &st) {
  size_t at = d.reader().offset();
  uint8_t kind;
  if (!(d.str(st.name) && d.u8(kind)))
    return false;
  if (kind > uint8_t(StageKind::Epilogue))
    return d.fail(
        "stage '" + st.name + "' has unknown kind " + std::to_string(kind), at);
  st.kind = StageKind(kind);
  uint32_t n;
  if (!(d.i32(st.forward) && d.i32(st.backward) && d.i32(st.backwardInput) &&
        d.i32(st.backwardWeight) && d.u64(st.arenaBytes) &&
        d.u64(st.scratchBytes) && decodeInputs(d, st.inputs) &&
        decodeRefs(d, st.in, "stage input") &&
        decodeRefs(d, st.out, "stage output") &&
        decodeRefs(d, st.din, "stage input gradient") &&
        decodeRefs(d, st.dout, "stage output gradient") && d.ref(st.loss) &&
        d.ref(st.dloss) && d.ref(st.logits) &&
        d.count(n, 4, "stage parameter")))
    return false;
  st.params.resize(n);
  for (uint32_t &p : st.params)
    if (!d.u32(p))
      return false;
  return true;
}

bool decodeProgram(Decoder &d, RankProgram &p) {
  uint32_t n;
  if (!d.count(n, 1 + 4 + 8, "slot"))
    return false;
  p.slots.resize(n);
  for (Slot &sl : p.slots) {
    size_t at = d.reader().offset();
    uint8_t kind;
    if (!d.u8(kind))
      return false;
    if (kind > uint8_t(SlotKind::Activations))
      return d.fail("slot of unknown kind " + std::to_string(kind), at);
    sl.kind = SlotKind(kind);
    if (!(d.str(sl.label) && d.u64(sl.bytes)))
      return false;
  }
  if (!d.count(n, 1 + 9 * 4 + 3 * 4, "action"))
    return false;
  p.actions.resize(n);
  for (Action &ac : p.actions) {
    size_t at = d.reader().offset();
    uint8_t op;
    if (!d.u8(op))
      return false;
    if (op > uint8_t(ActionOp::Wait))
      return d.fail("unknown action " + std::to_string(op), at);
    ac.op = ActionOp(op);
    for (int32_t *v : {&ac.turn, &ac.chunk, &ac.microbatch, &ac.weights,
                       &ac.grads, &ac.in, &ac.out, &ac.peer, &ac.token})
      if (!d.i32(*v))
        return false;
    uint32_t k;
    if (!d.count(k, 4, "action slot"))
      return false;
    ac.slots.resize(k);
    for (int32_t &v : ac.slots)
      if (!d.i32(v))
        return false;
    if (!d.count(k, 4, "action token"))
      return false;
    ac.tokens.resize(k);
    for (int32_t &v : ac.tokens)
      if (!d.i32(v))
        return false;
    if (!d.count(k, 8, "action bytes"))
      return false;
    ac.bytes.resize(k);
    for (uint64_t &v : ac.bytes)
      if (!d.u64(v))
        return false;
  }
  return true;
}

bool decodePayload(Decoder &d, Artifact &a,
                   std::vector<std::vector<size_t>> &instrOffsets) {
  size_t at = d.reader().offset();
  if (!d.u32(a.version))
    return false;
  if (a.version != kArtifactVersion)
    return d.fail("payload version " + std::to_string(a.version) +
                      " differs from the header's",
                  at);
  uint32_t n;
  if (!(d.str(a.producer) && d.str(a.sourceModel) && d.u32(a.rank) &&
        d.u32(a.ranks) && d.str(a.schedule) && d.u32(a.microbatches) &&
        d.i64(a.batch) && d.i64(a.seq) && d.i64(a.vocab) &&
        d.i64(a.ignoreIndex) && d.count(n, kMinParam, "parameter")))
    return false;
  a.params.resize(n);
  for (Parameter &p : a.params)
    if (!decodeParam(d, p))
      return false;
  if (!d.count(n, kMinConstant, "constant"))
    return false;
  a.constants.resize(n);
  for (Constant &c : a.constants)
    if (!decodeConstant(d, c))
      return false;
  if (!decodeInputs(d, a.inputs))
    return false;
  if (!(d.ref(a.loss) && d.ref(a.dloss) && d.ref(a.logits) &&
        d.u64(a.arenaBytes) && d.u64(a.peakBytes) &&
        d.count(n, kMinFunction, "function")))
    return false;
  a.functions.resize(n);
  instrOffsets.resize(n);
  for (uint32_t f = 0; f < n; ++f)
    if (!decodeFunction(d, a.functions[f], instrOffsets[f]))
      return false;
  if (!d.count(n, 4, "microbatch program"))
    return false;
  a.microbatchProgram.resize(n);
  for (uint32_t &f : a.microbatchProgram)
    if (!d.u32(f))
      return false;
  if (!d.count(n, kMinStage, "stage"))
    return false;
  a.stages.resize(n);
  for (Stage &st : a.stages)
    if (!decodeStage(d, st))
      return false;
  if (!d.count(n, 4, "owner"))
    return false;
  a.owner.resize(n);
  for (int32_t &o : a.owner)
    if (!d.i32(o))
      return false;
  if (!d.count(n, 8, "rank program"))
    return false;
  a.programs.resize(n);
  for (RankProgram &p : a.programs)
    if (!decodeProgram(d, p))
      return false;
  if (d.reader().remaining() != 0)
    return d.fail(std::to_string(d.reader().remaining()) +
                      " unexpected bytes after the payload",
                  d.reader().offset());
  return true;
}

uint32_t loadU32(const uint8_t *p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
         uint32_t(p[3]) << 24;
}

} // namespace

std::optional<Artifact>
detail::decodeArtifact(const void *data, size_t size, const std::string &what,
                       std::string *error,
                       std::vector<std::vector<size_t>> *instrOffsets) {
  auto fail = [&](const std::string &msg) -> std::optional<Artifact> {
    if (error)
      *error = what + ": " + msg;
    return std::nullopt;
  };
  const auto *bytes = static_cast<const uint8_t *>(data);
  if (size < 4 || loadU32(bytes) != kArtifactMagic)
    return fail("not a weipipe artifact (no WPPA magic)");
  if (size < kHeaderBytes)
    return fail("truncated: " + std::to_string(size) +
                " bytes is less than the " + std::to_string(kHeaderBytes) +
                "-byte header");
  // The version first: a future format may lay out the rest differently.
  uint32_t version = loadU32(bytes + 4);
  if (version != kArtifactVersion)
    return fail("artifact format version " + std::to_string(version) +
                ", this runtime reads version " +
                std::to_string(kArtifactVersion) +
                "; recompile with weipipe-opt");
  if (crc32c(bytes, 28) != loadU32(bytes + 28))
    return fail("checksum mismatch: the file is corrupt (header)");
  if (loadU32(bytes + 8) != 0)
    return fail("unknown header flags " + std::to_string(loadU32(bytes + 8)));
  uint64_t payloadSize =
      uint64_t(loadU32(bytes + 16)) | uint64_t(loadU32(bytes + 20)) << 32;
  if (payloadSize != size - kHeaderBytes)
    return fail(std::string(payloadSize > size - kHeaderBytes
                                ? "truncated"
                                : "trailing bytes after the payload") +
                ": the header announces " + std::to_string(payloadSize) +
                " payload bytes, the input has " +
                std::to_string(size - kHeaderBytes));
  if (crc32c(bytes + kHeaderBytes, size - kHeaderBytes) != loadU32(bytes + 24))
    return fail("checksum mismatch: the file is corrupt (payload)");

  Decoder d(data, size, what);
  d.reader().seek(kHeaderBytes);
  Artifact a;
  std::vector<std::vector<size_t>> offsets;
  if (!decodePayload(d, a, instrOffsets ? *instrOffsets : offsets)) {
    if (error)
      *error = d.error();
    return std::nullopt;
  }
  return a;
}

std::optional<Artifact> parseArtifact(const void *data, size_t size,
                                      const std::string &what,
                                      std::string *error) {
  std::vector<std::vector<size_t>> instrOffsets;
  std::optional<Artifact> a =
      detail::decodeArtifact(data, size, what, error, &instrOffsets);
  if (!a || !detail::validateArtifact(*a, what, error, &instrOffsets))
    return std::nullopt;
  return a;
}

//===----------------------------------------------------------------------===//
// Files
//===----------------------------------------------------------------------===//

namespace {
std::string errnoText() { return std::strerror(errno); }
} // namespace

bool writeArtifactFile(const Artifact &a, const std::string &path,
                       std::string *error) {
  std::string ignored;
  return writeFileAtomically(path, serializeArtifact(a),
                             error ? error : &ignored);
}

std::optional<Artifact> readArtifactFile(const std::string &path,
                                         std::string *error) {
  auto fail = [&](const std::string &msg) -> std::optional<Artifact> {
    if (error)
      *error = msg;
    return std::nullopt;
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail("cannot open artifact " + path + ": " + errnoText());
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    std::string e = errnoText();
    ::close(fd);
    return fail("cannot read artifact " + path + ": " + e);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail("cannot read artifact " + path + ": not a regular file");
  }
  std::string bytes(size_t(st.st_size), '\0');
  size_t got = 0;
  while (got < bytes.size()) {
    ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      std::string e = errnoText();
      ::close(fd);
      return fail("cannot read artifact " + path + ": " + e);
    }
    if (n == 0)
      break; // shrank while reading: the parser reports the truncation
    got += size_t(n);
  }
  ::close(fd);
  bytes.resize(got);
  if (bytes.empty())
    return fail("artifact " + path + " is empty");
  return parseArtifact(bytes.data(), bytes.size(), path, error);
}

} // namespace weipipe::rt
