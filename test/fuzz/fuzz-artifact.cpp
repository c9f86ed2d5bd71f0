//===- fuzz-artifact.cpp - libFuzzer target: the .wpp artifact ------------===//
//
// Part of weipipe's tests. Bytes go through parseArtifact (the decoder and the
// validator); an artifact that validates is re-encoded (the same payload must
// come back) and, when small, run: Executor::create, a forward, one training
// step (single rank: Trainer; a pipeline: PipelineTrainer, ranks as threads).
// Every rejection must carry a message.
//
// Byte mutations never get past the checksums, so this target has a
// structure-aware mutator: it decodes the input without validating it
// (detail::decodeArtifact), edits fields of the Artifact (header sizes,
// shapes, offsets, indices, dtypes, opcodes, ints and floats, counts by
// duplicating and dropping elements, stages and rank programs, one dimension
// replaced everywhere it occurs) and re-encodes it with serializeArtifact, so
// that the checksums are right. An input that does not decode is mutated as
// bytes and its header resealed.
//
// Parameter storage resolves by file name (the path's last component) in
// $WEIPIPE_FUZZ_WEIGHTS (default "."), where scripts/fuzz.sh puts the seeds'
// weights; the fuzzer never opens a file outside it.
//
//===----------------------------------------------------------------------===//

#include "ArtifactInternal.h"
#include "FuzzSupport.h"
#include "weipipe/runtime/Artifact.h"
#include "weipipe/runtime/Crc32c.h"
#include "weipipe/runtime/Executor.h"
#include "weipipe/runtime/train/Data.h"
#include "weipipe/runtime/train/Pipeline.h"
#include "weipipe/runtime/train/Trainer.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <unistd.h>
#include <vector>

using namespace weipipe::rt;

extern "C" size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t maxSize);

namespace {

// What the harness runs: bounded so that a legitimate artifact finishes in
// well under libFuzzer's -timeout, and a slow or stuck one is a finding.
constexpr uint64_t kMemoryLimit = uint64_t(256) << 20;
constexpr int64_t kMaxTokens = int64_t(1) << 14; // batch x seq x microbatches
constexpr size_t kMaxInstructions = 20000;
constexpr uint32_t kMaxRanks = 8;
constexpr uint64_t kTokenCount = uint64_t(1) << 16;

constexpr size_t kHeaderBytes = 32;

std::string weightsDir = ".";
bool verbose = false; ///< $WEIPIPE_FUZZ_VERBOSE: print why inputs fail
std::string tokenDir;
std::unique_ptr<train::TokenFile> tokensWide;   ///< ids 0..6, for vocab >= 7
std::unique_ptr<train::TokenFile> tokensNarrow; ///< ids 0, for vocab >= 1

using weipipe::fuzz::check;

std::unique_ptr<train::TokenFile> writeTokens(const std::string &path,
                                              uint32_t modulus) {
  std::vector<uint32_t> ids(kTokenCount);
  for (uint64_t i = 0; i < kTokenCount; ++i)
    ids[i] = uint32_t((i * 5 + i / 7) % modulus);
  FILE *f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(ids.data(), 4, ids.size(), f) != ids.size() ||
      std::fclose(f) != 0) {
    std::perror(path.c_str());
    std::exit(1);
  }
  std::string error;
  auto t = train::TokenFile::load(path, modulus, train::TokenDType::U32,
                                  train::DataFormat::Bin, &error);
  if (!t) {
    std::fprintf(stderr, "fuzz-artifact: %s\n", error.c_str());
    std::exit(1);
  }
  return t;
}

//===----------------------------------------------------------------------===//
// Running
//===----------------------------------------------------------------------===//

/// a * b, or false on overflow or a negative factor.
bool mulBounded(int64_t a, int64_t b, int64_t limit, int64_t *out) {
  if (a < 0 || b < 0)
    return false;
  if (a != 0 && b > limit / a)
    return false;
  *out = a * b;
  return *out <= limit;
}

bool small(const Artifact &a) {
  int64_t rows, tokens;
  if (!mulBounded(a.batch, a.seq, kMaxTokens, &rows) ||
      !mulBounded(rows, std::max<int64_t>(a.microbatches, 1), kMaxTokens,
                  &tokens))
    return false;
  if (a.vocab < 1 || a.seq < 1 || a.ranks > kMaxRanks)
    return false;
  size_t n = 0;
  for (const Function &f : a.functions)
    n += f.body.size();
  return n <= kMaxInstructions;
}

void run(Artifact a) {
  if (!small(a))
    return;
  // Storage by file name inside the weights directory.
  for (Parameter &p : a.params) {
    std::string &f = p.storage.file;
    f = f.substr(f.find_last_of('/') + 1);
    if (f == "." || f == "..")
      return;
  }
  const train::TokenFile &tokens = a.vocab >= 7 ? *tokensWide : *tokensNarrow;
  std::string error;
  auto windows = train::Windows::create(
      tokens, a.seq, train::DataOrder::Sequential, 0, &error);
  if (!windows)
    return;
  train::OptimizerConfig config;
  config.schedule.steps = 1;
  config.gradClip = 1.0;

  if (a.isPipeline()) {
    auto trainer = train::PipelineTrainer::create(
        a, weightsDir, *windows, config, int(a.ranks), &error, kMemoryLimit);
    if (!trainer) {
      check(!error.empty(), "PipelineTrainer::create failed without a message");
      if (verbose)
        std::fprintf(stderr, "%s\n", error.c_str());
      return;
    }
    Status st = trainer->train(
        0, 1, [](const train::StepRecord &) { return Status(); });
    check(st.ok() || !st.message().empty(), "a pipeline step failed silently");
    if (verbose)
      std::fprintf(stderr, "pipeline step: %s\n",
                   st.ok() ? "ok" : st.message().c_str());
    return;
  }

  auto ex = Executor::create(a, weightsDir, &error, nullptr, kMemoryLimit);
  if (!ex) {
    check(!error.empty(), "Executor::create failed without a message");
    if (verbose)
      std::fprintf(stderr, "%s\n", error.c_str());
    return;
  }
  std::vector<int64_t> ids(size_t(a.batch * a.seq)),
      targets(size_t(a.batch * a.seq));
  windows->fillMicrobatch(0, 0, 1, a.batch, ids.data(), targets.data());
  float loss = 0;
  (void)ex->runForward(ids.data(), targets.data(), &loss);
  (void)ex->logits();
  auto trainer = train::Trainer::create(*ex, a, *windows, config, &error);
  if (!trainer) {
    check(!error.empty(), "Trainer::create failed without a message");
    return;
  }
  train::StepRecord record;
  Status st = trainer->step(0, &record);
  if (verbose)
    std::fprintf(stderr, "step: %s\n", st.ok() ? "ok" : st.message().c_str());
}

//===----------------------------------------------------------------------===//
// The structure-aware mutator
//===----------------------------------------------------------------------===//

constexpr uint16_t kOpcodes[] = {
#define WP_OPCODE(Name, Id, ...) Id,
#include "weipipe/runtime/Opcodes.def"
};

const char *const kSchedules[] = {
    "single",      "gpipe",       "1f1b",          "interleaved-1f1b",
    "zb-h1",       "fsdp",        "weipipe-naive", "weipipe-interleave",
    "weipipe-zb1", "weipipe-zb2", "tawpipe",       "bogus"};

/// Pointers to every mutable field of one Artifact, collected afresh before
/// each edit (an edit that resizes a vector moves its elements).
struct Fields {
  enum Width : uint8_t { I8, I32, U32, I64, U64, U16 };
  struct Int {
    void *p;
    Width w;
    uint32_t enumMax = 0; ///< enums: the largest value the decoder accepts
    bool isBool = false;  ///< a bool: only 0 and 1 are values
  };
  struct Vec {
    std::function<size_t()> size;
    std::function<void(size_t)> dup, drop;
    std::function<void(size_t, size_t)> swap;
    std::function<void()> grow;
  };
  std::vector<Int> header, ints;
  std::vector<std::vector<int64_t> *> shapes;
  std::vector<TensorRef *> refs;
  std::vector<double *> floats;
  std::vector<Opcode *> opcodes;
  std::vector<std::string *> blobs;
  std::vector<Vec> vecs;

  void i32(int32_t *p) { ints.push_back({p, I32}); }
  void u32(uint32_t *p) { ints.push_back({p, U32}); }
  void i64(int64_t *p) { ints.push_back({p, I64}); }
  void u64(uint64_t *p) { ints.push_back({p, U64}); }
  void u8(uint8_t *p) { ints.push_back({p, I8}); }
  template <class E> void enm(E *p, E max) {
    static_assert(sizeof(E) == 1);
    ints.push_back({p, I8, uint32_t(max)});
  }
  void flag(bool *p) { ints.push_back({p, I8, 1, true}); }
  template <class T> void vec(std::vector<T> &v) {
    vecs.push_back({[&v] { return v.size(); },
                    [&v](size_t i) {
                      T copy = v[i];
                      v.insert(v.begin() + i, std::move(copy));
                    },
                    [&v](size_t i) { v.erase(v.begin() + i); },
                    [&v](size_t i, size_t j) { std::swap(v[i], v[j]); },
                    [&v] { v.emplace_back(); }});
  }
  void shape(std::vector<int64_t> &s) { shapes.push_back(&s); }
  void ref(TensorRef &r) {
    refs.push_back(&r);
    enm(&r.space, Space::Scratch);
    u32(&r.index);
    u64(&r.offset);
    enm(&r.dtype, DType::Bool);
    shape(r.shape);
  }
  void refList(std::vector<TensorRef> &v) {
    vec(v);
    for (TensorRef &r : v)
      ref(r);
  }
  void inputs(std::vector<Input> &v) {
    vec(v);
    for (Input &in : v) {
      enm(&in.role, InputRole::Targets);
      ref(in.ref);
    }
  }

  explicit Fields(Artifact &a) {
    header = {
        {&a.rank, U32},        {&a.ranks, U32},      {&a.microbatches, U32},
        {&a.batch, I64},       {&a.seq, I64},        {&a.vocab, I64},
        {&a.ignoreIndex, I64}, {&a.arenaBytes, U64}, {&a.peakBytes, U64}};
    vec(a.params);
    for (Parameter &p : a.params) {
      enm(&p.dtype, DType::Bool);
      shape(p.shape);
      u64(&p.storage.offset);
      u64(&p.storage.length);
      u64(&p.storage.fileSize);
      flag(&p.storage.checksummed);
      u32(&p.storage.crc32c);
      flag(&p.decay);
      vec(p.aliases);
      for (Alias &al : p.aliases)
        flag(&al.transposed);
    }
    vec(a.constants);
    for (Constant &c : a.constants) {
      enm(&c.dtype, DType::Bool);
      shape(c.shape);
      blobs.push_back(&c.bytes);
    }
    inputs(a.inputs);
    ref(a.loss);
    ref(a.dloss);
    ref(a.logits);
    vec(a.functions);
    for (Function &f : a.functions) {
      enm(&f.kind, FunctionKind::BackwardWeight);
      vec(f.body);
      for (Instruction &in : f.body) {
        opcodes.push_back(&in.op);
        u8(&in.flags);
        refList(in.operands);
        refList(in.results);
        vec(in.ints);
        for (int64_t &v : in.ints)
          i64(&v);
        vec(in.floats);
        for (double &v : in.floats)
          floats.push_back(&v);
      }
    }
    vec(a.microbatchProgram);
    for (uint32_t &f : a.microbatchProgram)
      u32(&f);
    vec(a.stages);
    for (Stage &st : a.stages) {
      enm(&st.kind, StageKind::Epilogue);
      for (int32_t *p :
           {&st.forward, &st.backward, &st.backwardInput, &st.backwardWeight})
        i32(p);
      u64(&st.arenaBytes);
      u64(&st.scratchBytes);
      inputs(st.inputs);
      for (auto *v : {&st.in, &st.out, &st.din, &st.dout})
        refList(*v);
      ref(st.loss);
      ref(st.dloss);
      ref(st.logits);
      vec(st.params);
      for (uint32_t &p : st.params)
        u32(&p);
    }
    vec(a.owner);
    for (int32_t &o : a.owner)
      i32(&o);
    vec(a.programs);
    for (RankProgram &p : a.programs) {
      vec(p.slots);
      for (Slot &sl : p.slots) {
        enm(&sl.kind, SlotKind::Activations);
        u64(&sl.bytes);
      }
      vec(p.actions);
      for (Action &ac : p.actions) {
        enm(&ac.op, ActionOp::Wait);
        for (int32_t *v : {&ac.turn, &ac.chunk, &ac.microbatch, &ac.weights,
                           &ac.grads, &ac.in, &ac.out, &ac.peer, &ac.token})
          i32(v);
        vec(ac.slots);
        for (int32_t &v : ac.slots)
          i32(&v);
        vec(ac.tokens);
        for (int32_t &v : ac.tokens)
          i32(&v);
        vec(ac.bytes);
        for (uint64_t &v : ac.bytes)
          u64(&v);
      }
    }
  }
};

class Mutator {
public:
  Mutator(Artifact &a, unsigned seed) : a_(a), rng_(seed) {}

  void mutate() {
    int edits = 1 + int(below(4));
    for (int i = 0; i < edits; ++i)
      edit();
  }

  /// Copies one piece of `other` into this artifact.
  void crossOver(const Artifact &other) {
    switch (below(6)) {
    case 0:
      if (!other.functions.empty() && !a_.functions.empty()) {
        const Function &from = other.functions[below(other.functions.size())];
        Function &to = a_.functions[below(a_.functions.size())];
        if (from.body.empty())
          return;
        size_t at = below(to.body.size() + 1);
        size_t n = 1 + below(std::min<size_t>(from.body.size(), 8));
        size_t start = below(from.body.size() - n + 1);
        to.body.insert(to.body.begin() + at, from.body.begin() + start,
                       from.body.begin() + start + n);
      }
      return;
    case 1:
      a_.params = other.params;
      return;
    case 2:
      a_.constants = other.constants;
      return;
    case 3:
      a_.stages = other.stages;
      a_.owner = other.owner;
      return;
    case 4:
      a_.programs = other.programs;
      return;
    default:
      a_.batch = other.batch;
      a_.seq = other.seq;
      a_.vocab = other.vocab;
      a_.microbatches = other.microbatches;
      a_.arenaBytes = other.arenaBytes;
      return;
    }
  }

private:
  uint64_t below(uint64_t n) { return n ? rng_() % n : 0; }
  bool oneIn(uint64_t n) { return below(n) == 0; }

  int64_t interesting(int64_t signedOld) {
    // Wrapping arithmetic: mutations must not be undefined themselves.
    const uint64_t old = uint64_t(signedOld);
    switch (below(16)) {
    case 0:
      return 0;
    case 1:
      return 1;
    case 2:
      return -1;
    case 3:
      return int64_t(old + 1);
    case 4:
      return int64_t(old - 1);
    case 5:
      return int64_t(old * 2);
    case 6:
      return signedOld / 2;
    case 7:
      return int64_t(1) << below(63);
    case 8:
      return (int64_t(1) << below(63)) - 1;
    case 9: {
      const int64_t big[] = {INT32_MAX,
                             INT32_MIN,
                             int64_t(UINT32_MAX),
                             int64_t(1) << 32,
                             int64_t(1) << 61,
                             int64_t(1) << 62,
                             std::numeric_limits<int64_t>::max(),
                             std::numeric_limits<int64_t>::min()};
      return big[below(std::size(big))];
    }
    case 10:
      return int64_t(below(17));
    case 11:
      return int64_t(old + 64 * (below(9) - 4));
    case 12:
      return int64_t(0 - old);
    case 13:
      return int64_t(rng_());
    default:
      return 2 + int64_t(below(7));
    }
  }

  void setInt(const Fields::Int &f) {
    if (f.isBool) {
      *static_cast<bool *>(f.p) = !*static_cast<bool *>(f.p);
      return;
    }
    if (f.enumMax) {
      *static_cast<uint8_t *>(f.p) =
          oneIn(16) ? uint8_t(rng_()) : uint8_t(below(f.enumMax + 1));
      return;
    }
    // An interesting value in the field's own width.
    auto edit = [&](auto *p) {
      *p = std::remove_reference_t<decltype(*p)>(interesting(int64_t(*p)));
    };
    switch (f.w) {
    case Fields::I8:
      return edit(static_cast<uint8_t *>(f.p));
    case Fields::U16:
      return edit(static_cast<uint16_t *>(f.p));
    case Fields::I32:
      return edit(static_cast<int32_t *>(f.p));
    case Fields::U32:
      return edit(static_cast<uint32_t *>(f.p));
    case Fields::I64:
      return edit(static_cast<int64_t *>(f.p));
    case Fields::U64:
      return edit(static_cast<uint64_t *>(f.p));
    }
  }

  int64_t dim(int64_t old) {
    // The decoder rejects negative dimensions: rarely try one anyway.
    if (oneIn(32))
      return -1 - int64_t(below(2));
    const int64_t picks[] = {0,
                             1,
                             2,
                             3,
                             int64_t(uint64_t(old) + 1),
                             std::max<int64_t>(old, 1) - 1,
                             int64_t(uint64_t(old) * 2),
                             old / 2,
                             int64_t(1) << below(62),
                             int64_t(1) << 61,
                             int64_t(1) << 31,
                             int64_t(1) << 32};
    return picks[below(std::size(picks))];
  }

  void editShape(std::vector<int64_t> &s) {
    switch (below(6)) {
    case 0:
    case 1:
    case 2:
      if (!s.empty()) {
        int64_t &d = s[below(s.size())];
        d = dim(d);
        return;
      }
      [[fallthrough]];
    case 3:
      s.insert(s.begin() + below(s.size() + 1), oneIn(2) ? 1 : dim(1));
      return;
    case 4:
      if (!s.empty())
        s.erase(s.begin() + below(s.size()));
      return;
    default:
      if (oneIn(4))
        s.assign(kMaxRank + 1, 1); // one axis too many
      else
        s.clear();
      return;
    }
  }

  double real(double old) {
    const double picks[] = {0.0,
                            -0.0,
                            1.0,
                            -1.0,
                            std::nan(""),
                            std::numeric_limits<double>::infinity(),
                            -std::numeric_limits<double>::infinity(),
                            1e-30,
                            1e30,
                            std::numeric_limits<double>::max(),
                            std::numeric_limits<double>::denorm_min(),
                            old * 2,
                            -old,
                            old + 1,
                            1e-5,
                            0.5};
    return picks[below(std::size(picks))];
  }

  /// One dimension value replaced everywhere: as if the model had been
  /// compiled with another size, so that the artifact mostly stays valid
  /// (shrinking keeps every offset inside the arena) and reaches the kernels
  /// with odd shapes. Constant bytes and parameter storage follow.
  void substituteDim() {
    std::vector<int64_t> seen;
    for (int64_t *h : {&a_.batch, &a_.seq, &a_.vocab})
      seen.push_back(*h);
    Fields f(a_);
    for (auto *s : f.shapes)
      seen.insert(seen.end(), s->begin(), s->end());
    if (seen.empty())
      return;
    int64_t from = seen[below(seen.size())];
    const int64_t picks[] = {0,
                             1,
                             2,
                             3,
                             int64_t(uint64_t(from) - 1),
                             from / 2,
                             int64_t(uint64_t(from) + 1),
                             int64_t(uint64_t(from) * 2)};
    int64_t to = std::max<int64_t>(picks[below(std::size(picks))], 0);
    for (int64_t *h : {&a_.batch, &a_.seq, &a_.vocab})
      if (*h == from)
        *h = to;
    for (auto *s : f.shapes)
      for (int64_t &d : *s)
        if (d == from)
          d = to;
    if (oneIn(2))
      for (Function &fn : a_.functions)
        for (Instruction &in : fn.body)
          for (int64_t &v : in.ints)
            if (v == from)
              v = to;
    for (Constant &c : a_.constants) {
      int64_t n = 1;
      for (int64_t d : c.shape)
        if (!mulBounded(n, d, int64_t(1) << 24, &n))
          n = 0;
      c.bytes.resize(size_t(n) * dtypeSize(c.dtype));
    }
    for (Parameter &p : a_.params) {
      int64_t n = 1;
      for (int64_t d : p.shape)
        if (!mulBounded(n, d, int64_t(1) << 40, &n))
          n = 0;
      p.storage.length = uint64_t(n) * 4;
      p.storage.checksummed = false; // the bytes differ now
    }
  }

  void edit() {
    Fields f(a_);
    switch (below(12)) {
    case 0: // the header's sizes
      setInt(f.header[below(f.header.size())]);
      return;
    case 1:
    case 2:
      if (!f.ints.empty())
        setInt(f.ints[below(f.ints.size())]);
      return;
    case 3:
      if (!f.shapes.empty())
        editShape(*f.shapes[below(f.shapes.size())]);
      return;
    case 4:
      if (!f.refs.empty()) {
        // Another tensor's place, or a ref copied whole.
        TensorRef &r = *f.refs[below(f.refs.size())];
        const TensorRef &o = *f.refs[below(f.refs.size())];
        if (oneIn(2))
          r = o;
        else
          r.offset = o.offset;
      }
      return;
    case 5:
      if (!f.floats.empty()) {
        double &d = *f.floats[below(f.floats.size())];
        d = real(d);
      }
      return;
    case 6:
      if (!f.opcodes.empty())
        *f.opcodes[below(f.opcodes.size())] =
            oneIn(16) ? Opcode(uint16_t(rng_()))
                      : Opcode(kOpcodes[below(std::size(kOpcodes))]);
      return;
    case 7:
    case 8: { // counts: duplicate, drop, swap, append, clear
      const Fields::Vec &v = f.vecs[below(f.vecs.size())];
      size_t n = v.size();
      switch (n ? below(5) : 3) {
      case 0:
        v.dup(below(n));
        return;
      case 1:
        v.drop(below(n));
        return;
      case 2:
        v.swap(below(n), below(n));
        return;
      case 3:
        v.grow();
        return;
      default:
        if (oneIn(4))
          for (size_t i = n; i-- > 0;)
            v.drop(i);
        return;
      }
    }
    case 9:
      if (!f.blobs.empty()) {
        std::string &b = *f.blobs[below(f.blobs.size())];
        if (!b.empty() && oneIn(2)) {
          // A non-finite or extreme value at an aligned position.
          const float vals[] = {std::nanf(""), INFINITY, -INFINITY,
                                3e38f,         -1.0f,    0.0f};
          size_t at = below(b.size() / 4 + 1) * 4;
          float v = vals[below(std::size(vals))];
          if (at + 4 <= b.size())
            std::memcpy(&b[at], &v, 4);
          else
            b[below(b.size())] = char(rng_());
        } else {
          b.resize(below(b.size() + 9));
        }
      }
      return;
    case 10:
      substituteDim();
      return;
    default:
      if (oneIn(2))
        a_.schedule = kSchedules[below(std::size(kSchedules))];
      else if (!a_.params.empty())
        a_.params[below(a_.params.size())].storage.file =
            oneIn(2) ? std::string() : std::string("missing.bin");
      return;
    }
  }

  Artifact &a_;
  std::mt19937_64 rng_;
};

void storeU32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    p[i] = uint8_t(v >> (8 * i));
}

/// Makes the header describe the payload: magic, version, flags, size and
/// both checksums.
void reseal(uint8_t *data, size_t size) {
  if (size < kHeaderBytes)
    return;
  storeU32(data, kArtifactMagic);
  storeU32(data + 4, kArtifactVersion);
  storeU32(data + 8, 0);
  uint64_t payload = size - kHeaderBytes;
  storeU32(data + 16, uint32_t(payload));
  storeU32(data + 20, uint32_t(payload >> 32));
  storeU32(data + 24, crc32c(data + kHeaderBytes, payload));
  storeU32(data + 28, crc32c(data, 28));
}

std::optional<Artifact> decode(const uint8_t *data, size_t size) {
  return detail::decodeArtifact(data, size, "input", nullptr);
}

size_t emit(const Artifact &a, uint8_t *data, size_t maxSize) {
  std::string bytes = serializeArtifact(a);
  if (bytes.size() > maxSize)
    return 0;
  std::memcpy(data, bytes.data(), bytes.size());
  return bytes.size();
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  if (const char *w = std::getenv("WEIPIPE_FUZZ_WEIGHTS"))
    weightsDir = w;
  verbose = std::getenv("WEIPIPE_FUZZ_VERBOSE") != nullptr;
  tokenDir = weipipe::fuzz::makeTempDir("fuzz-artifact");
  tokensWide = writeTokens(tokenDir + "/wide.bin", 7);
  tokensNarrow = writeTokens(tokenDir + "/narrow.bin", 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string error;
  std::optional<Artifact> a = parseArtifact(data, size, "input", &error);
  if (!a) {
    check(!error.empty(), "parseArtifact failed without a message");
    if (verbose)
      std::fprintf(stderr, "%s\n", error.c_str());
    return 0;
  }
  // The encoding is canonical: a valid artifact re-encodes to its payload
  // (the header's reserved word is not checked, so it is left out).
  std::string again = serializeArtifact(*a);
  check(again.size() == size &&
            std::memcmp(again.data() + kHeaderBytes, data + kHeaderBytes,
                        size - kHeaderBytes) == 0,
        "re-encoding a valid artifact changed its payload");
  run(std::move(*a));
  return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size,
                                          size_t maxSize, unsigned seed) {
  // Mostly structural; sometimes bytes, so that the decoder's own errors and
  // the header's checks are reached too.
  std::mt19937 rng(seed);
  if (rng() % 8 != 0) {
    reseal(data, size);
    if (std::optional<Artifact> a = decode(data, size)) {
      Mutator(*a, seed).mutate();
      if (size_t n = emit(*a, data, maxSize))
        return n;
    }
  }
  size_t n = LLVMFuzzerMutate(data, size, maxSize);
  if (rng() % 16 != 0)
    reseal(data, n);
  return n;
}

extern "C" size_t LLVMFuzzerCustomCrossOver(const uint8_t *data1, size_t size1,
                                            const uint8_t *data2, size_t size2,
                                            uint8_t *out, size_t maxOutSize,
                                            unsigned seed) {
  std::optional<Artifact> a = decode(data1, size1);
  std::optional<Artifact> b = decode(data2, size2);
  if (a && b) {
    Mutator(*a, seed).crossOver(*b);
    if (size_t n = emit(*a, out, maxOutSize))
      return n;
  }
  // Bytes: a prefix of one and a suffix of the other, resealed.
  std::mt19937 rng(seed);
  size_t head = std::min(size1 ? rng() % size1 : 0, maxOutSize);
  size_t tail = std::min(size2 ? rng() % size2 : 0, maxOutSize - head);
  std::memcpy(out, data1, head);
  std::memcpy(out + head, data2 + size2 - tail, tail);
  reseal(out, head + tail);
  return head + tail;
}
