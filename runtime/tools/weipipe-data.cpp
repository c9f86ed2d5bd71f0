//===- weipipe-data.cpp - weipipe-run's data path, for checking -----------===//
//
// Part of weipipe's runtime. A small helper for tests: it prints, as JSON,
// the exact windows, inputs and targets weipipe-run feeds each step (the same
// code, train/Data.h), so that they can be compared with the reference
// trainer's `python -m weipipe.reference batches`; and it writes a fixed
// safetensors file for Python's `safetensors` to read back.
//
//   weipipe-data --data FILE --vocab V --batch B --seq S --steps N
//       [--microbatches 1] [--data-order sequential|shuffle] [--seed 0]
//       [--data-seed SEED] [--data-format auto|bin|text]
//       [--token-dtype uint16|uint32]
//     stdout: {"describe": "...", "n": windows,
//              "windows": [N][M][B], "inputs": [N][M][B][S],
//              "targets": [N][M][B][S]}
//   weipipe-data --write-safetensors-test FILE
//   weipipe-data --read-safetensors FILE   (prints name, dtype, shape, sum)
//   weipipe-data --write-tiny-artifact DIR --vocab V --batch B --seq S
//       [--microbatches M] [--hidden H] [--logits keep|none]
//     DIR/tiny.wpp and DIR/init.safetensors: a hand-built language model
//     (embedding -> linear with bias -> cross-entropy, and its backward) so
//     that weipipe-run's training loop can be checked against PyTorch without
//     the compiler (test/runtime/train-tiny.test).
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/Artifact.h"
#include "weipipe/runtime/Crc32c.h"
#include "weipipe/runtime/RankMemory.h"
#include "weipipe/runtime/train/Data.h"
#include "weipipe/runtime/train/Json.h"
#include "weipipe/runtime/train/Safetensors.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

using namespace weipipe::rt::train;

namespace {

const char *kUsage =
    "usage: weipipe-data --data FILE --vocab V --batch B --seq S --steps N\n"
    "           [--microbatches M] [--data-order sequential|shuffle] "
    "[--seed N]\n"
    "           [--data-seed N] [--data-format auto|bin|text] "
    "[--token-dtype uint16|uint32]\n"
    "       weipipe-data --write-safetensors-test FILE\n"
    "       weipipe-data --read-safetensors FILE\n"
    "       weipipe-data --write-tiny-artifact DIR --vocab V --batch B --seq "
    "S\n"
    "           [--microbatches M] [--hidden H] [--logits keep|none]\n";

[[noreturn]] void usageError(const std::string &m) {
  std::fprintf(stderr, "weipipe-data: error: %s\n(--help for usage)\n",
               m.c_str());
  std::exit(2);
}

[[noreturn]] void fail(const std::string &m) {
  std::fprintf(stderr, "weipipe-data: error: %s\n", m.c_str());
  std::exit(1);
}

int64_t toInt(const std::string &flag, const std::string &v) {
  errno = 0;
  char *end = nullptr;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end || errno)
    usageError(flag + ": expected an integer, got '" + v + "'");
  return x;
}

/// The test tensors: names that need sorting and escaping, scalar, empty,
/// 1-3 D; value i of tensor t is t + i / 8 - 1 (exact in float).
int writeTest(const std::string &path) {
  struct T {
    const char *name;
    std::vector<int64_t> shape;
  };
  const std::vector<T> specs = {{"wte.weight", {5, 3}},
                                {"h.0.attn.bias", {3}},
                                {"Upper.scalar", {}},
                                {"empty", {0, 4}},
                                {"n\"q\\uo\xc3\xa9te", {2, 1, 2}}};
  std::vector<std::vector<float>> data;
  std::vector<F32TensorView> views;
  for (size_t t = 0; t < specs.size(); ++t) {
    int64_t n = 1;
    for (int64_t d : specs[t].shape)
      n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
      v[size_t(i)] = float(t) + float(i) / 8.0f - 1.0f;
    data.push_back(std::move(v));
  }
  for (size_t t = 0; t < specs.size(); ++t)
    views.push_back({specs[t].name, specs[t].shape, data[t].data()});
  std::string error;
  if (!writeSafetensors(
          path, views, {{"weipipe.run", "{\"a\": 1}"}, {"other", "x"}}, &error))
    fail(error);
  return 0;
}

int readFile(const std::string &path) {
  std::string error;
  auto f = readSafetensors(path, &error);
  if (!f)
    fail(error);
  for (const auto &[k, v] : f->metadata)
    std::printf("metadata %s = %s\n", json::quote(k).c_str(),
                json::quote(v).c_str());
  for (const SafetensorsEntry &e : f->tensors) {
    std::string shape;
    for (size_t i = 0; i < e.shape.size(); ++i)
      shape += (i ? "," : "") + std::to_string(e.shape[i]);
    std::printf("%s %s [%s]", json::quote(e.name).c_str(), e.dtype.c_str(),
                shape.c_str());
    if (e.dtype == "F32") {
      double s = 0;
      for (float x : f->f32(e))
        s += x;
      std::printf(" sum %.6g", s);
    }
    std::printf("\n");
  }
  return 0;
}

/// Deterministic values in [-scale, scale) (an LCG; Python reads them back
/// from init.safetensors, so only determinism matters).
std::vector<float> lcgValues(size_t n, uint64_t seed, float scale) {
  std::vector<float> v(n);
  for (float &x : v) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    x = scale * float(double(seed >> 40) / double(1ull << 24) * 2.0 - 1.0);
  }
  return v;
}

/// logits = emb[ids] @ w^T + bias; loss = cross-entropy. `emb` [V, H] also
/// has the alias "lm_head.weight" and `w` [V, H] the transposed alias "w_T",
/// so --save-weights writes five tensors; `bias` is 1-D (no weight decay).
int writeTinyArtifact(const std::string &dir, int64_t B, int64_t S, int64_t V,
                      int64_t H, int64_t M, bool keepLogits) {
  using namespace weipipe::rt;
  auto emb = lcgValues(size_t(V * H), 1, 1.0f),
       w = lcgValues(size_t(V * H), 2, 0.5f),
       bias = lcgValues(size_t(V), 3, 0.1f);
  const std::string st = dir + "/init.safetensors";
  std::string error;
  if (!writeSafetensors(st,
                        {{"emb", {V, H}, emb.data()},
                         {"w", {V, H}, w.data()},
                         {"bias", {V}, bias.data()}},
                        {}, &error))
    fail(error);
  auto f = readSafetensors(st, &error);
  if (!f)
    fail(error);
  const uint64_t fileSize = f->dataOffset + f->data.size();
  auto storage = [&](const char *name) {
    const SafetensorsEntry *e = f->find(name);
    Storage s{"init.safetensors", f->dataOffset + e->begin, e->end - e->begin,
              fileSize};
    s.checksummed = true;
    s.crc32c = crc32c(f->data.data() + e->begin, size_t(e->end - e->begin));
    return s;
  };
  Artifact a;
  a.producer = "weipipe-data --write-tiny-artifact";
  a.batch = B;
  a.seq = S;
  a.vocab = V;
  a.microbatches = uint32_t(M);
  Parameter pe, pw, pb;
  pe.name = "emb";
  pe.shape = {V, H};
  pe.storage = storage("emb");
  pe.aliases = {{"lm_head.weight", false}};
  pw.name = "w";
  pw.shape = {V, H};
  pw.storage = storage("w");
  pw.aliases = {{"w_T", true}};
  pb.name = "bias";
  pb.shape = {V};
  pb.storage = storage("bias");
  pb.decay = false;
  a.params = {pe, pw, pb};

  uint64_t next = 0; // 64-byte aligned arena offsets
  auto arena = [&](DType dt, std::vector<int64_t> shape) {
    TensorRef r;
    r.space = Space::Arena;
    r.offset = next;
    r.dtype = dt;
    r.shape = std::move(shape);
    next += (r.bytes() + 63) / 64 * 64;
    return r;
  };
  auto ref = [](Space sp, uint32_t index, std::vector<int64_t> shape) {
    TensorRef r;
    r.space = sp;
    r.index = index;
    r.shape = std::move(shape);
    return r;
  };
  auto instr = [](Opcode op, std::vector<TensorRef> in,
                  std::vector<TensorRef> out, std::vector<int64_t> ints,
                  uint8_t flags, const char *name) {
    Instruction i;
    i.op = op;
    i.operands = std::move(in);
    i.results = std::move(out);
    i.ints = std::move(ints);
    i.flags = flags;
    i.name = name;
    return i;
  };
  const TensorRef ids = arena(DType::I64, {B, S}),
                  tgt = arena(DType::I64, {B, S}),
                  h = arena(DType::F32, {B, S, H}),
                  logits = arena(DType::F32, {B, S, V}),
                  loss = arena(DType::F32, {}), dloss = arena(DType::F32, {}),
                  dlogits = arena(DType::F32, {B, S, V}),
                  dh = arena(DType::F32, {B, S, H}),
                  db = arena(DType::F32, {V});
  a.arenaBytes = next;
  a.inputs = {{"input_ids", InputRole::Tokens, ids},
              {"targets", InputRole::Targets, tgt}};
  a.loss = loss;
  a.dloss = dloss;
  if (keepLogits) // without: an artifact --dump-logits must refuse
    a.logits = logits;
  const TensorRef E = ref(Space::Param, 0, {V, H}),
                  W = ref(Space::Param, 1, {V, H}),
                  Bi = ref(Space::Param, 2, {V});
  const uint8_t acc = Instruction::kAccumulate;
  Function fwd;
  fwd.name = "forward";
  fwd.body = {
      instr(Opcode::Embedding, {E, ids}, {h}, {}, 0, "wte"),
      instr(Opcode::Linear, {h, W, Bi}, {logits}, {1}, 0, "lm_head"),
      instr(Opcode::CrossEntropy, {logits, tgt}, {loss}, {-100}, 0, "loss")};
  Function bwd;
  bwd.name = "backward";
  bwd.kind = FunctionKind::Backward;
  bwd.body = {instr(Opcode::CrossEntropyGrad, {logits, tgt, dloss}, {dlogits},
                    {-100}, 0, "loss"),
              instr(Opcode::Linear, {dlogits, W, TensorRef()}, {dh}, {0}, 0,
                    "lm_head dx"),
              instr(Opcode::LinearGradWeight, {h, dlogits},
                    {ref(Space::Grad, 1, {V, H})}, {1}, acc, "lm_head dw"),
              instr(Opcode::SumToShape, {dlogits}, {db}, {}, 0, "lm_head db"),
              instr(Opcode::Accumulate, {db}, {ref(Space::Grad, 2, {V})}, {}, 0,
                    "lm_head db"),
              instr(Opcode::EmbeddingGrad, {ids, dh},
                    {ref(Space::Grad, 0, {V, H})}, {}, acc, "wte")};
  a.functions = {fwd, bwd};
  a.microbatchProgram = {0, 1};
  a.peakBytes = planRankMemory(a, 0).total(); // what weipipe-run checks
  if (!writeArtifactFile(a, dir + "/tiny.wpp", &error))
    fail(error);
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  std::map<std::string, std::string> opt;
  static const char *valued[] = {"--data",
                                 "--vocab",
                                 "--batch",
                                 "--seq",
                                 "--steps",
                                 "--microbatches",
                                 "--data-order",
                                 "--seed",
                                 "--data-seed",
                                 "--data-format",
                                 "--token-dtype",
                                 "--write-safetensors-test",
                                 "--read-safetensors",
                                 "--write-tiny-artifact",
                                 "--hidden",
                                 "--logits"};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    std::string value;
    bool inline_ = false;
    if (auto eq = a.find('=');
        a.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      inline_ = true;
    }
    bool known = false;
    for (const char *v : valued)
      known |= a == v;
    if (!known)
      usageError("unknown argument '" + a + "'");
    if (!inline_) {
      if (i + 1 >= argc)
        usageError(a + " needs a value");
      value = argv[++i];
    }
    opt[a] = value;
  }
  if (opt.count("--write-safetensors-test"))
    return writeTest(opt["--write-safetensors-test"]);
  if (opt.count("--read-safetensors"))
    return readFile(opt["--read-safetensors"]);
  if (opt.count("--write-tiny-artifact")) {
    for (const char *req : {"--vocab", "--batch", "--seq"})
      if (!opt.count(req))
        usageError(std::string(req) + " is required");
    const int64_t V = toInt("--vocab", opt["--vocab"]),
                  B = toInt("--batch", opt["--batch"]),
                  S = toInt("--seq", opt["--seq"]),
                  M = opt.count("--microbatches")
                          ? toInt("--microbatches", opt["--microbatches"])
                          : 1,
                  H = opt.count("--hidden") ? toInt("--hidden", opt["--hidden"])
                                            : 8;
    if (V < 1 || B < 1 || S < 1 || M < 1 || H < 1)
      usageError("--vocab, --batch, --seq, --microbatches and --hidden must "
                 "be >= 1");
    const std::string logits = opt.count("--logits") ? opt["--logits"] : "keep";
    if (logits != "keep" && logits != "none")
      usageError("--logits: keep or none, got '" + logits + "'");
    return writeTinyArtifact(opt["--write-tiny-artifact"], B, S, V, H, M,
                             logits == "keep");
  }

  for (const char *req : {"--data", "--vocab", "--batch", "--seq", "--steps"})
    if (!opt.count(req))
      usageError(std::string(req) + " is required");
  const int64_t vocab = toInt("--vocab", opt["--vocab"]);
  const int64_t B = toInt("--batch", opt["--batch"]);
  const int64_t S = toInt("--seq", opt["--seq"]);
  const int64_t N = toInt("--steps", opt["--steps"]);
  const int64_t M = opt.count("--microbatches")
                        ? toInt("--microbatches", opt["--microbatches"])
                        : 1;
  const int64_t seed = opt.count("--seed") ? toInt("--seed", opt["--seed"]) : 0;
  const int64_t dataSeed = opt.count("--data-seed")
                               ? toInt("--data-seed", opt["--data-seed"])
                               : seed;
  if (B < 1 || S < 1 || M < 1 || N < 0)
    usageError("need --batch, --seq, --microbatches >= 1 and --steps >= 0");
  DataOrder order = DataOrder::Sequential;
  if (opt.count("--data-order")) {
    auto o = parseDataOrder(opt["--data-order"]);
    if (!o)
      usageError("--data-order: choose from sequential, shuffle");
    order = *o;
  }
  DataFormat format = DataFormat::Auto;
  if (opt.count("--data-format")) {
    auto f = parseDataFormat(opt["--data-format"]);
    if (!f)
      usageError("--data-format: choose from auto, bin, text");
    format = *f;
  }
  std::optional<TokenDType> dtype;
  if (opt.count("--token-dtype")) {
    dtype = parseTokenDType(opt["--token-dtype"]);
    if (!dtype)
      usageError("--token-dtype: choose from uint16, uint32");
  }

  std::string error;
  auto tf = TokenFile::load(opt["--data"], vocab, dtype, format, &error);
  if (!tf)
    fail(error);
  auto w = Windows::create(*tf, S, order, uint64_t(dataSeed), &error);
  if (!w)
    fail(error);

  std::vector<int64_t> ids(size_t(B * S)), tg(size_t(B * S));
  std::vector<uint64_t> win(static_cast<size_t>(B));
  std::string windows = "[", inputs = "[", targets = "[";
  auto row = [&](const int64_t *p) {
    std::string s = "[";
    for (int64_t i = 0; i < S; ++i)
      s += (i ? "," : "") + std::to_string(p[i]);
    return s + "]";
  };
  for (int64_t t = 0; t < N; ++t) {
    windows += t ? ",[" : "[";
    inputs += t ? ",[" : "[";
    targets += t ? ",[" : "[";
    for (int64_t m = 0; m < M; ++m) {
      w->fillMicrobatch(t, m, M, B, ids.data(), tg.data(), win.data());
      windows += m ? ",[" : "[";
      inputs += m ? ",[" : "[";
      targets += m ? ",[" : "[";
      for (int64_t r = 0; r < B; ++r) {
        windows += (r ? "," : "") + std::to_string(win[size_t(r)]);
        inputs += (r ? "," : "") + row(ids.data() + r * S);
        targets += (r ? "," : "") + row(tg.data() + r * S);
      }
      windows += "]";
      inputs += "]";
      targets += "]";
    }
    windows += "]";
    inputs += "]";
    targets += "]";
  }
  std::printf("{\"describe\": %s, \"n\": %llu, \"windows\": %s], \"inputs\": "
              "%s], \"targets\": %s]}\n",
              json::quote(tf->describe()).c_str(),
              (unsigned long long)w->count(), windows.c_str(), inputs.c_str(),
              targets.c_str());
  return 0;
}
