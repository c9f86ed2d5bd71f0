//===- ArtifactTest.cpp - the .wpp encoding and its validation ------------===//
//
// Part of weipipe's runtime tests. A small artifact built by hand
// round-trips bit for bit; truncations, byte flips, corrupt counts under
// valid checksums, and semantically invalid artifacts are all rejected with
// a message and without crashing or allocating from a corrupt count.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/Artifact.h"
#include "weipipe/runtime/Crc32c.h"

#include "ArtifactTestUtil.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace weipipe::rt;
using namespace weipipe::rt::test;

namespace {

/// Embedding -> linear -> cross-entropy over B=2, S=3, V=8, H=4, with a
/// backward, a constant and an alias: every section of the format is used.
Artifact makeArtifact() {
  Artifact a;
  a.producer = "ArtifactTest";
  a.sourceModel = "tiny.onnx";
  a.schedule = "single";
  a.batch = 2;
  a.seq = 3;
  a.vocab = 8;
  Parameter emb;
  emb.name = "emb";
  emb.shape = {8, 4};
  emb.storage = {"weights.bin", 16, 128, 4096};
  emb.aliases.push_back({"lm_head.weight", false});
  Parameter w;
  w.name = "w";
  w.shape = {8, 4};
  w.storage = {"/abs/weights.bin", 160, 128, 0};
  w.storage.checksummed = true;
  w.storage.crc32c = 0x89abcdefu;
  w.decay = false;
  a.params = {emb, w};
  Constant c;
  c.dtype = DType::F32;
  c.shape = {2};
  float cv[2] = {0.5f, -1.25f};
  c.bytes.assign(reinterpret_cast<const char *>(cv), sizeof(cv));
  a.constants = {c};

  const TensorRef ids = arenaAt(0, DType::I64, {2, 3});
  const TensorRef tgt = arenaAt(64, DType::I64, {2, 3});
  const TensorRef h = arenaAt(128, DType::F32, {2, 3, 4});
  const TensorRef logits = arenaAt(256, DType::F32, {2, 3, 8});
  const TensorRef loss = arenaAt(448, DType::F32, {});
  const TensorRef dloss = arenaAt(512, DType::F32, {});
  const TensorRef dlogits = arenaAt(576, DType::F32, {2, 3, 8});
  const TensorRef cexp = arenaAt(768, DType::F32, {2});
  a.arenaBytes = 832;
  a.peakBytes = 832 + 4 * 2 * 32 * 4;
  a.inputs = {{"input_ids", InputRole::Tokens, ids},
              {"targets", InputRole::Targets, tgt}};
  a.loss = loss;
  a.dloss = dloss;
  a.logits = logits;

  Function fwd;
  fwd.name = "forward";
  fwd.body.push_back(instr(Opcode::Embedding,
                           {entry(Space::Param, 0, {8, 4}), ids}, {h}, {}, {},
                           "nn.embedding 'wte'"));
  fwd.body.push_back(instr(Opcode::Linear,
                           {h, entry(Space::Param, 1, {8, 4}), TensorRef()},
                           {logits}, {1}));
  fwd.body.push_back(
      instr(Opcode::CrossEntropy, {logits, tgt}, {loss}, {-100}));
  fwd.body.push_back(instr(Opcode::Unary, {entry(Space::Const, 0, {2})}, {cexp},
                           {int64_t(4)}, {}, "exp"));
  Function bwd;
  bwd.name = "backward";
  bwd.kind = FunctionKind::Backward;
  bwd.body.push_back(
      instr(Opcode::CrossEntropyGrad, {logits, tgt, dloss}, {dlogits}, {-100}));
  Instruction gw = instr(Opcode::LinearGradWeight, {h, dlogits},
                         {entry(Space::Grad, 1, {8, 4})}, {1});
  gw.flags = Instruction::kAccumulate;
  bwd.body.push_back(gw);
  bwd.body.push_back(instr(Opcode::LayerNorm,
                           {h, arenaAt(768, DType::F32, {4}), TensorRef()},
                           {arenaAt(576, DType::F32, {2, 3, 4})}, {2}, {1e-5}));
  a.functions = {fwd, bwd};
  a.microbatchProgram = {0, 1};
  return a;
}

/// Recomputes both checksums after a deliberate edit, so that the decoder's
/// own checks (not the CRCs) are what is tested.
void reseal(std::string &b) {
  auto put = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i)
      b[at + i] = char((v >> (8 * i)) & 0xff);
  };
  put(24, crc32c(b.data() + 32, b.size() - 32));
  put(28, crc32c(b.data(), 28));
}

std::string parseError(const std::string &bytes) {
  std::string err;
  auto a = parseArtifact(bytes.data(), bytes.size(), "test.wpp", &err);
  if (a)
    return "";
  EXPECT_FALSE(err.empty());
  return err;
}

std::string structError(const Artifact &a) {
  return parseError(serializeArtifact(a));
}

#define EXPECT_HAS(haystack, needle)                                           \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos)             \
      << "'" << (haystack) << "' lacks '" << (needle) << "'"

std::string tempDir() {
  std::string t = ::testing::TempDir() + "wpp-artifact-XXXXXX";
  char *d = ::mkdtemp(t.data());
  EXPECT_NE(d, nullptr);
  return t;
}

std::vector<std::string> listDir(const std::string &dir) {
  std::vector<std::string> names;
  if (DIR *d = ::opendir(dir.c_str())) {
    while (dirent *e = ::readdir(d))
      if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, ".."))
        names.push_back(e->d_name);
    ::closedir(d);
  }
  return names;
}

} // namespace

TEST(Artifact, NamesAndSizes) {
  EXPECT_EQ(dtypeSize(DType::F32), 4u);
  EXPECT_EQ(dtypeSize(DType::I64), 8u);
  EXPECT_EQ(dtypeSize(DType::I32), 4u);
  EXPECT_EQ(dtypeSize(DType::Bool), 1u);
  EXPECT_STREQ(dtypeName(DType::Bool), "bool");
  EXPECT_STREQ(opcodeName(Opcode::LinearGradWeight), "linear_grad_weight");
  EXPECT_STREQ(opcodeName(Opcode::Accumulate), "accumulate");
  EXPECT_EQ(opcodeName(Opcode(99)), nullptr);
  EXPECT_TRUE(isKnownOpcode(1));
  EXPECT_TRUE(isKnownOpcode(70));
  EXPECT_FALSE(isKnownOpcode(0));
  EXPECT_TRUE(isKnownOpcode(30)); // cumsum
  EXPECT_TRUE(isKnownOpcode(31)); // band
  EXPECT_TRUE(isKnownOpcode(32)); // topk
  EXPECT_TRUE(isKnownOpcode(33)); // scatter_elements
  EXPECT_FALSE(isKnownOpcode(34));
  EXPECT_STREQ(functionKindName(FunctionKind::BackwardWeight),
               "backward_weight");
  TensorRef r = arenaAt(0, DType::I64, {2, 3});
  EXPECT_EQ(r.numel(), 6);
  EXPECT_EQ(r.bytes(), 48u);
  EXPECT_EQ(arenaAt(0, DType::F32, {}).numel(), 1);
}

// Opcodes.def is the one definition of every instruction's contract: the
// table is complete, and the validator applies each entry's counts and flags
// to every opcode, not only to the ones a hand-written check remembers.
TEST(Artifact, EveryOpcodeFollowsItsTableEntry) {
  int known = 0;
  for (uint32_t id = 0; id <= 0xffff; ++id) {
    if (!isKnownOpcode(uint16_t(id))) {
      EXPECT_EQ(opcodeInfo(Opcode(id)), nullptr);
      continue;
    }
    ++known;
    const OpcodeInfo *info = opcodeInfo(Opcode(id));
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(uint32_t(info->op), id);
    SCOPED_TRACE(info->mnemonic);
    // An instruction with the entry's smallest counts: absent operands,
    // present results, zero ints.
    Instruction in;
    in.op = info->op;
    in.operands.assign(info->minOperands, TensorRef());
    in.results.assign(info->minResults, arenaAt(0, DType::F32, {1}));
    in.ints.assign(info->minInts, 0);
    in.floats.assign(info->floats, 0.0);
    auto errorOf = [&](const Instruction &i) {
      Artifact a = makeArtifact();
      a.functions[0].body[1] = i;
      return structError(a);
    };
    if (info->maxOperands != OpcodeInfo::kMany) {
      Instruction more = in;
      more.operands.resize(info->maxOperands + 1);
      EXPECT_HAS(errorOf(more), "operands and");
    }
    Instruction noResults = in;
    noResults.results.clear();
    EXPECT_HAS(errorOf(noResults), "results, got");
    Instruction floats = in;
    floats.floats.push_back(1.0);
    EXPECT_HAS(errorOf(floats), " floats, got ");
    if (info->intsEnum != OpEnum::None) {
      Instruction bad = in;
      bad.ints[0] = enumSize(info->intsEnum);
      EXPECT_HAS(errorOf(bad), std::string(enumName(info->intsEnum)) + " " +
                                   std::to_string(enumSize(info->intsEnum)) +
                                   " is out of range");
    }
    Instruction acc = in;
    acc.flags = Instruction::kAccumulate;
    const std::string accError = errorOf(acc);
    EXPECT_EQ(accError.find("cannot accumulate") == std::string::npos,
              info->mayAccumulate())
        << accError;
    Instruction fused = in;
    fused.flags = Instruction::kFusedWithNext;
    const std::string fusedError = errorOf(fused);
    EXPECT_EQ(fusedError.find("cannot run another") == std::string::npos,
              bool(info->flags & OpcodeInfo::kFusesWithNext))
        << fusedError;
    if (!(info->flags & OpcodeInfo::kOptionalResults)) {
      Instruction absent = in;
      absent.results[0] = TensorRef();
      EXPECT_HAS(errorOf(absent), "result 0 is missing");
    }
  }
  EXPECT_EQ(known, 55);
}

// The compiler marks the two gradients of one norm to run as one kernel
// call; the mark is checked against the next instruction.
TEST(Artifact, FusedNormGradientsAreChecked) {
  auto withPair = [](const TensorRef &dyOfSecond, uint8_t secondFlags) {
    Artifact a = makeArtifact();
    const TensorRef x = arenaAt(128, DType::F32, {2, 3, 4});
    const TensorRef dy = arenaAt(576, DType::F32, {2, 3, 4});
    Function f;
    f.name = "norm_grads";
    f.kind = FunctionKind::Backward;
    f.body = {
        instr(Opcode::RMSNormGradInput, {x, arenaAt(896, DType::F32, {4}), dy},
              {arenaAt(960, DType::F32, {2, 3, 4})}, {2}, {1e-5}, "",
              Instruction::kFusedWithNext),
        instr(Opcode::RMSNormGradScale, {x, dyOfSecond},
              {arenaAt(1088, DType::F32, {4})}, {2}, {1e-5}, "", secondFlags)};
    a.functions.push_back(f);
    a.arenaBytes = 1152;
    return a;
  };
  Artifact ok = withPair(arenaAt(576, DType::F32, {2, 3, 4}), 0);
  EXPECT_TRUE(normGradsFuse(ok.functions[2].body[0], ok.functions[2].body[1]));
  EXPECT_EQ(structError(ok), "");
  // Another dy: not the same norm's gradient.
  Artifact other = withPair(arenaAt(128, DType::F32, {2, 3, 4}), 0);
  EXPECT_FALSE(
      normGradsFuse(other.functions[2].body[0], other.functions[2].body[1]));
  EXPECT_HAS(structError(other), "the next instruction is not the other "
                                 "gradient of the same norm");
  // The partner may not pass the flag on.
  Artifact chained = withPair(arenaAt(576, DType::F32, {2, 3, 4}),
                              Instruction::kFusedWithNext);
  EXPECT_HAS(structError(chained), "not the other gradient of the same norm");
  Artifact last = makeArtifact();
  last.functions[1].body.push_back(last.functions[1].body[0]);
  last.functions[1].body.back() =
      instr(Opcode::RMSNormGradScale,
            {arenaAt(128, DType::F32, {2, 3, 4}),
             arenaAt(576, DType::F32, {2, 3, 4})},
            {arenaAt(768, DType::F32, {4})}, {2}, {1e-5}, "",
            Instruction::kFusedWithNext);
  EXPECT_HAS(structError(last), "set on the last instruction");
}

TEST(Artifact, RoundTripIsBitExact) {
  const Artifact a = makeArtifact();
  const std::string bytes = serializeArtifact(a);
  std::string err;
  auto b = parseArtifact(bytes.data(), bytes.size(), "test.wpp", &err);
  ASSERT_TRUE(b) << err;
  EXPECT_EQ(serializeArtifact(*b), bytes);
  EXPECT_EQ(b->producer, "ArtifactTest");
  ASSERT_EQ(b->params.size(), 2u);
  EXPECT_EQ(b->params[0].aliases.size(), 1u);
  EXPECT_EQ(b->params[0].aliases[0].name, "lm_head.weight");
  EXPECT_EQ(b->params[1].storage.offset, 160u);
  EXPECT_FALSE(b->params[0].storage.checksummed);
  EXPECT_TRUE(b->params[1].storage.checksummed);
  EXPECT_EQ(b->params[1].storage.crc32c, 0x89abcdefu);
  EXPECT_FALSE(b->params[1].decay);
  EXPECT_EQ(b->constants[0].bytes, a.constants[0].bytes);
  ASSERT_EQ(b->functions.size(), 2u);
  EXPECT_EQ(b->functions[1].kind, FunctionKind::Backward);
  EXPECT_EQ(b->functions[1].body[1].flags, Instruction::kAccumulate);
  EXPECT_EQ(b->functions[1].body[2].floats[0], 1e-5);
  EXPECT_EQ(b->functions[0].body[0].name, "nn.embedding 'wte'");
  EXPECT_EQ(b->ignoreIndex, -100);
  EXPECT_EQ(b->microbatchProgram, (std::vector<uint32_t>{0, 1}));
}

TEST(Artifact, EveryTruncationIsRejected) {
  const std::string bytes = serializeArtifact(makeArtifact());
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::string cut = bytes.substr(0, n);
    EXPECT_NE(parseError(cut), "") << "accepted a cut at " << n;
  }
  // Truncated and resealed: the payload size in the header still disagrees.
  std::string cut = bytes.substr(0, bytes.size() - 5);
  reseal(cut);
  EXPECT_HAS(parseError(cut), "truncated");
  // Bytes appended are not a truncation.
  const std::string longer = bytes + "extra";
  EXPECT_HAS(parseError(longer), "trailing bytes after the payload: the "
                                 "header announces");
  EXPECT_EQ(parseError(longer).find("truncated"), std::string::npos);
}

TEST(Artifact, ByteFlipsAreRejected) {
  const std::string bytes = serializeArtifact(makeArtifact());
  for (uint32_t k = 0; k < 400; ++k) {
    std::string b = bytes;
    const size_t at = (k * 7919u + k / 8) % b.size();
    b[at] = char(b[at] ^ (1 << (k % 8)));
    EXPECT_NE(parseError(b), "") << "accepted a flip at byte " << at;
  }
}

TEST(Artifact, ResealedByteFlipsNeverCrash) {
  // Under valid checksums the decoder itself must hold: any flip either
  // parses into something valid (which round-trips) or is rejected.
  const std::string bytes = serializeArtifact(makeArtifact());
  int rejected = 0;
  for (uint32_t k = 0; k < 600; ++k) {
    std::string b = bytes;
    const size_t at = 32 + (k * 104729u) % (b.size() - 32);
    b[at] = char(b[at] ^ (k % 3 == 0 ? 0xff : 1 << (k % 8)));
    reseal(b);
    std::string err;
    auto a = parseArtifact(b.data(), b.size(), "test.wpp", &err);
    if (a)
      EXPECT_EQ(serializeArtifact(*a), b);
    else
      ++rejected;
  }
  EXPECT_GT(rejected, 300);
}

TEST(Artifact, CorruptCountsAllocateNothing) {
  const std::string bytes = serializeArtifact(makeArtifact());
  // The parameter count follows version, producer, sourceModel, rank, ranks,
  // schedule, microbatches and four i64s.
  const Artifact a = makeArtifact();
  const size_t at = 32 + 4 + 4 + a.producer.size() + 4 + a.sourceModel.size() +
                    4 + 4 + 4 + a.schedule.size() + 4 + 4 * 8;
  std::string b = bytes;
  std::memset(&b[at], 0xff, 4);
  reseal(b);
  EXPECT_HAS(parseError(b), "count 4294967295");
}

TEST(Artifact, WrongVersionAndMagic) {
  std::string b = serializeArtifact(makeArtifact());
  b[4] = 2; // the format before parameter checksums
  reseal(b);
  EXPECT_HAS(parseError(b), "artifact format version 2, this runtime reads "
                            "version 3; recompile with weipipe-opt");
  b = serializeArtifact(makeArtifact());
  b[0] = 'X';
  EXPECT_HAS(parseError(b), "not a weipipe artifact");
  EXPECT_HAS(parseError("hello world, this is not an artifact at all"),
             "not a weipipe artifact");
  b = serializeArtifact(makeArtifact());
  b[b.size() - 3] ^= 0x10;
  EXPECT_HAS(parseError(b), "checksum mismatch: the file is corrupt");
  b = serializeArtifact(makeArtifact());
  b[13] ^= 0x10; // reserved: covered by the header checksum
  EXPECT_HAS(parseError(b), "checksum mismatch: the file is corrupt");
}

TEST(Artifact, InvalidContentIsRejected) {
  {
    Artifact a = makeArtifact(); // dlogits ends at 576 + 192 > 700
    a.arenaBytes = 700;
    a.functions[0].body.pop_back();
    a.functions[1].body.pop_back();
    std::string e = structError(a);
    EXPECT_HAS(e, "function 'backward', instruction 0 (cross_entropy_grad)");
    EXPECT_HAS(e, "exceed the arena of 700 bytes");
    EXPECT_HAS(e, "(at byte ");
  }
  {
    Artifact a = makeArtifact();
    a.functions[0].body[0].operands[0].index = 5;
    std::string e = structError(a);
    EXPECT_HAS(e, "instruction 0 (embedding 'nn.embedding 'wte'')");
    EXPECT_HAS(e, "parameter index 5 is out of range");
  }
  {
    Artifact a = makeArtifact();
    a.functions[0].body[1].operands[1].shape = {4, 8};
    EXPECT_HAS(structError(a), "differs from parameter 'w'");
  }
  {
    Artifact a = makeArtifact();
    a.functions[0].body[1].op = Opcode(99);
    EXPECT_HAS(structError(a), "unknown opcode 99");
  }
  {
    Artifact a = makeArtifact();
    a.functions[0].body[1].operands.pop_back(); // linear's optional bias
    EXPECT_HAS(structError(a),
               "expected 3 operands and 1 results, got 2 and 1");
  }
  {
    Artifact a = makeArtifact();
    a.functions[0].body[1].results[0].shape = {2, 3, 7};
    EXPECT_HAS(structError(a), "has shape [2, 3, 7], expected [2, 3, 8]");
  }
  {
    Artifact a = makeArtifact();
    a.functions[0].body[1].ints = {2};
    EXPECT_HAS(structError(a), "transpose_weight 2 is out of range");
  }
  {
    Artifact a = makeArtifact();
    a.functions[0].body[3].ints = {15}; // one past UnaryOp::Sign
    EXPECT_HAS(structError(a), "UnaryOp 15 is out of range");
  }
  {
    Artifact a = makeArtifact();
    a.functions[0].body[0].operands[1].dtype = DType::I32;
    a.functions[0].body[0].operands[1].shape = {2, 3};
    EXPECT_HAS(structError(a), "operand 1 (ids) is i32, expected i64");
  }
  {
    Artifact a = makeArtifact();
    a.functions[0].body[2].flags = Instruction::kAccumulate;
    EXPECT_HAS(structError(a), "cannot accumulate");
  }
  {
    Artifact a = makeArtifact();
    a.functions[0].body[2].results[0] = entry(Space::Param, 0, {8, 4});
    EXPECT_HAS(structError(a), "writes a parameter's value");
  }
  {
    Artifact a = makeArtifact();
    a.constants[0].bytes.pop_back();
    EXPECT_HAS(structError(a), "constant 0: holds 7 bytes");
  }
  {
    Artifact a = makeArtifact();
    a.inputs[0].ref.dtype = DType::F32;
    EXPECT_HAS(structError(a), "input 'input_ids': must be an i64 arena ref");
  }
  {
    Artifact a = makeArtifact();
    a.inputs[1].ref.shape = {2, 4};
    EXPECT_HAS(structError(a), "a micro-batch is 2 x 3 tokens");
  }
  {
    // The header's sizes: bounded, and consistent with the program.
    Artifact a = makeArtifact();
    a.microbatches = 1u << 21;
    EXPECT_HAS(structError(a), "2097152 micro-batches per step; expected 1 to "
                               "1048576");
    a = makeArtifact();
    a.microbatches = 1u << 20;
    a.batch = a.seq = int64_t(1) << 20;
    EXPECT_HAS(structError(a), "tokens overflow a step");
    a = makeArtifact();
    a.vocab = 9;
    EXPECT_HAS(structError(a),
               "vocabulary 9 differs from the logits' last dimension 8");
    a = makeArtifact();
    a.inputs.clear();
    EXPECT_HAS(structError(a),
               "micro-batches of 2 x 3 tokens, but no input reads them");
  }
  {
    Artifact a = makeArtifact();
    a.loss.shape = {2};
    EXPECT_HAS(structError(a), "loss must be an f32 scalar");
  }
  {
    Artifact a = makeArtifact();
    a.microbatchProgram.push_back(2);
    EXPECT_HAS(structError(a), "names function 2, but there are 2");
  }
  {
    Artifact a = makeArtifact();
    a.params[1].shape = {8, 4, 1, 1, 1, 1, 1, 1, 1};
    EXPECT_HAS(structError(a), "shape rank 9 exceeds 8");
  }
  {
    Artifact a = makeArtifact();
    a.functions[0].body[1].results[0].shape = {2, -3, 8};
    EXPECT_HAS(structError(a), "negative dimension -3");
  }
  {
    Artifact a = makeArtifact();
    a.functions[0].body[1].results[0].offset = 258;
    EXPECT_HAS(structError(a), "not aligned");
  }
  {
    Artifact a = makeArtifact();
    a.functions[1].body[2].ints = {3};
    EXPECT_HAS(structError(a), "axis 3 is out of range [0, 3)");
  }
  {
    // Results may not overlap operands, except where a kernel runs in place.
    Artifact a = makeArtifact();
    a.functions[0].body[0].results[0].offset = 32; // h over the token ids
    EXPECT_HAS(structError(a), "result 0 overlaps operand 1");
    a = makeArtifact();
    a.functions[0].body[3].results[0] = a.functions[0].body[3].operands[0];
    a.functions[0].body[3].results[0].space = Space::Arena;
    a.functions[0].body[3].results[0].offset = 768;
    a.functions[0].body[3].operands[0] = a.functions[0].body[3].results[0];
    EXPECT_EQ(structError(a), ""); // exp in place
    a = makeArtifact();
    a.functions[1].body[0].results[0] = a.functions[1].body[0].operands[1];
    a.functions[1].body[0].results[0].dtype = DType::F32;
    a.functions[1].body[0].results[0].shape = {2, 3, 8};
    EXPECT_HAS(structError(a), "result 0 overlaps operand 1");
  }
}

TEST(Artifact, Files) {
  const std::string dir = tempDir();
  const Artifact a = makeArtifact();
  std::string err;
  const std::string path = dir + "/model.wpp";
  ASSERT_TRUE(writeArtifactFile(a, path, &err)) << err;
  EXPECT_EQ(listDir(dir), std::vector<std::string>{"model.wpp"});
  auto b = readArtifactFile(path, &err);
  ASSERT_TRUE(b) << err;
  EXPECT_EQ(serializeArtifact(*b), serializeArtifact(a));

  // A missing directory: an error naming the path, and no file anywhere.
  const std::string missing = dir + "/no-such-dir/model.wpp";
  EXPECT_FALSE(writeArtifactFile(a, missing, &err));
  EXPECT_HAS(err, missing);
  EXPECT_EQ(listDir(dir), std::vector<std::string>{"model.wpp"});

  // A directory is refused before anything is written.
  const std::string sub = dir + "/sub";
  ASSERT_EQ(::mkdir(sub.c_str(), 0755), 0);
  EXPECT_FALSE(writeArtifactFile(a, sub, &err));
  EXPECT_HAS(err, "cannot write " + sub + ": it is a directory");
  auto names = listDir(dir);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"model.wpp", "sub"}));

  EXPECT_FALSE(readArtifactFile(dir + "/absent.wpp", &err));
  EXPECT_HAS(err, dir + "/absent.wpp");
  const std::string empty = dir + "/empty.wpp";
  std::ofstream(empty).close();
  EXPECT_FALSE(readArtifactFile(empty, &err));
  EXPECT_HAS(err, "is empty");
  EXPECT_HAS(err, empty);
  EXPECT_FALSE(readArtifactFile(sub, &err));
  EXPECT_HAS(err, "not a regular file");

  std::remove(path.c_str());
  std::remove(empty.c_str());
  ::rmdir(sub.c_str());
  ::rmdir(dir.c_str());
}

namespace {

/// The tiny model as a two-rank pipeline: the embedding as a layers chunk
/// (stage 0, on rank 0) that passes h to the head and loss (stage 1, on
/// rank 1), with activation-passing programs.
Artifact makePipelineArtifact() {
  Artifact a = makeArtifact();
  a.microbatchProgram.clear();
  a.arenaBytes = 0;
  a.inputs.clear();
  a.loss = a.dloss = a.logits = TensorRef();
  a.ranks = 2;
  a.schedule = "gpipe";
  const TensorRef ids = arenaAt(0, DType::I64, {2, 3});
  const TensorRef tgt = arenaAt(0, DType::I64, {2, 3});
  Function f0, b0, f1, b1;
  f0.name = "chunk0_forward";
  f0.body.push_back(instr(Opcode::Embedding,
                          {entry(Space::Param, 0, {8, 4}), ids},
                          {arenaAt(64, DType::F32, {2, 3, 4})}));
  b0.name = "chunk0_backward";
  b0.kind = FunctionKind::Backward;
  Instruction eg =
      instr(Opcode::EmbeddingGrad, {ids, arenaAt(128, DType::F32, {2, 3, 4})},
            {entry(Space::Grad, 0, {8, 4})});
  eg.flags = Instruction::kAccumulate;
  b0.body.push_back(eg);
  f1.name = "chunk1_forward";
  f1.body.push_back(instr(Opcode::Linear,
                          {arenaAt(64, DType::F32, {2, 3, 4}),
                           entry(Space::Param, 1, {8, 4}), TensorRef()},
                          {arenaAt(192, DType::F32, {2, 3, 8})}, {1}));
  f1.body.push_back(instr(Opcode::CrossEntropy,
                          {arenaAt(192, DType::F32, {2, 3, 8}), tgt},
                          {arenaAt(384, DType::F32, {})}, {-100}));
  b1.name = "chunk1_backward";
  b1.kind = FunctionKind::Backward;
  a.functions = {f0, b0, f1, b1};
  Stage s0;
  s0.name = "chunk0";
  s0.forward = 0;
  s0.backward = 1;
  s0.arenaBytes = 256;
  s0.inputs = {{"input_ids", InputRole::Tokens, ids}};
  s0.out = {arenaAt(64, DType::F32, {2, 3, 4})};
  s0.dout = {arenaAt(128, DType::F32, {2, 3, 4})};
  s0.params = {0};
  Stage s1;
  s1.name = "chunk1";
  s1.forward = 2;
  s1.backward = 3;
  s1.arenaBytes = 576;
  s1.inputs = {{"targets", InputRole::Targets, tgt}};
  s1.in = {arenaAt(64, DType::F32, {2, 3, 4})};
  s1.din = {arenaAt(448, DType::F32, {2, 3, 4})};
  s1.loss = arenaAt(384, DType::F32, {});
  s1.dloss = arenaAt(388, DType::F32, {});
  s1.logits = arenaAt(192, DType::F32, {2, 3, 8});
  s1.params = {1};
  a.stages = {s0, s1};
  a.owner = {0, 1};
  RankProgram r0, r1;
  r0.slots = {{SlotKind::Weights, "W", 128},
              {SlotKind::Grads, "D", 128},
              {SlotKind::Activations, "A", 96}};
  auto act = [](ActionOp op) {
    Action x;
    x.op = op;
    return x;
  };
  Action load = act(ActionOp::LoadMaster);
  load.chunk = 0;
  load.slots = {0};
  Action fwd = act(ActionOp::Forward);
  fwd.chunk = 0;
  fwd.microbatch = 0;
  fwd.weights = 0;
  fwd.out = 2;
  Action send = act(ActionOp::Send);
  send.peer = 1;
  send.token = 0;
  send.slots = {2};
  send.bytes = {96};
  Action wait = act(ActionOp::Wait);
  wait.tokens = {0};
  r0.actions = {load, fwd, send, wait};
  r1.slots = r0.slots;
  Action recv = send;
  recv.op = ActionOp::Recv;
  recv.peer = 0;
  r1.actions = {recv, wait};
  a.programs = {r0, r1};
  return a;
}

} // namespace

TEST(Artifact, PipelineRoundTrip) {
  const Artifact a = makePipelineArtifact();
  const std::string bytes = serializeArtifact(a);
  std::string err;
  auto b = parseArtifact(bytes.data(), bytes.size(), "p.wpp", &err);
  ASSERT_TRUE(b) << err;
  EXPECT_EQ(serializeArtifact(*b), bytes);
  ASSERT_TRUE(b->isPipeline());
  EXPECT_EQ(b->numChunks(), 2u);
  EXPECT_EQ(b->prologueStage(), -1);
  EXPECT_EQ(b->stages[1].din[0].offset, 448u);
  EXPECT_EQ(b->programs[0].actions[2].bytes, (std::vector<uint64_t>{96}));
  EXPECT_EQ(b->programs[1].slots[2].label, "A");
  // Every truncation of the pipeline sections is refused too.
  for (size_t n = bytes.size() - 200; n < bytes.size(); ++n)
    EXPECT_FALSE(parseArtifact(bytes.data(), n, "p.wpp", &err)) << n;
}

TEST(Artifact, PipelineContentIsChecked) {
  {
    Artifact a = makePipelineArtifact();
    a.stages[1].in[0].shape = {2, 3, 5};
    a.functions[2].body[0].operands[0].shape = {2, 3, 5};
    EXPECT_HAS(structError(a), "differ from the inputs of stage 'chunk1'");
  }
  {
    Artifact a = makePipelineArtifact();
    a.stages[1].arenaBytes = 300; // the loss at 384 is outside
    EXPECT_HAS(structError(a), "exceed the arena of 300 bytes");
  }
  {
    Artifact a = makePipelineArtifact();
    a.stages[0].forward = 1;
    EXPECT_HAS(structError(a), "is a backward, not a forward");
  }
  {
    Artifact a = makePipelineArtifact();
    a.owner = {0, 2};
    EXPECT_HAS(structError(a), "chunk 1 is owned by rank 2 of 2");
  }
  {
    Artifact a = makePipelineArtifact();
    a.programs.pop_back();
    EXPECT_HAS(structError(a), "1 rank programs for 2 ranks");
  }
  {
    Artifact a = makePipelineArtifact();
    a.programs[0].actions[2].bytes = {200};
    EXPECT_HAS(structError(a), "200 bytes exceed slot 'A' of 96");
  }
  {
    Artifact a = makePipelineArtifact();
    a.programs[0].actions[1].weights = 1; // a grads slot
    EXPECT_HAS(structError(a), "rank 0, action 1 (forward)");
  }
  {
    Artifact a = makePipelineArtifact();
    a.programs[1].actions[0].peer = 1; // itself
    EXPECT_HAS(structError(a), "rank 1, action 0 (recv): peer 1");
  }
  {
    Artifact a = makePipelineArtifact();
    a.programs[0].actions[1].microbatch = 1; // one micro-batch per step
    EXPECT_HAS(structError(a), "micro-batch 1 of 1");
  }
  // Found by fuzz-artifact (test/fuzz/README.md): what a rank
  // binds and copies through its slots must fit them.
  {
    Artifact a = makePipelineArtifact();
    a.functions[0].body[0].operands[0] = entry(Space::Param, 1, {8, 4});
    EXPECT_HAS(structError(a), "stage 0 'chunk0': function 'chunk0_forward' "
                               "uses parameter 1, which the stage does not "
                               "list");
  }
  {
    Artifact a = makePipelineArtifact();
    a.programs[0].slots[0].bytes = 64; // the embedding table is 128 bytes
    EXPECT_HAS(structError(a), "rank 0, action 0 (load_master): a slot is "
                               "smaller than what stage 'chunk0' keeps in it");
  }
  {
    Artifact a = makePipelineArtifact();
    a.programs[0].actions[1].op = ActionOp::BackwardWeight; // fused backward
    a.programs[0].actions[1].grads = 1;
    EXPECT_HAS(structError(a), "stage 'chunk0' has no backward_weight");
  }
  {
    Artifact a = makePipelineArtifact();
    a.programs[0].slots[2].bytes = 95; // chunk 0's output is 96 bytes
    a.programs[0].actions[2].bytes = {95};
    a.programs[1].slots[2].bytes = 95;
    a.programs[1].actions[0].bytes = {95};
    EXPECT_HAS(structError(a), "rank 0, action 1 (forward): a slot is smaller");
  }
  {
    // A forward binds the rank's own gradients, and rank 0 holds none.
    Artifact a = makePipelineArtifact();
    a.functions[0].body[0].operands[0] = entry(Space::Grad, 0, {8, 4});
    EXPECT_HAS(structError(a), "rank 0, action 1 (forward): function "
                               "'chunk0_forward' uses the gradient of "
                               "parameter 0, which rank 0 does not hold and "
                               "the action gives no slot for");
  }
  {
    // The same without a weights slot for the values.
    Artifact a = makePipelineArtifact();
    a.programs[0].actions[1].weights = -1;
    EXPECT_HAS(structError(a), "a slot index is out of range or of the wrong "
                               "kind");
  }
  {
    Artifact a = makePipelineArtifact();
    a.batch = 0;
    for (Stage &st : a.stages)
      for (Input &in : st.inputs)
        in.ref.shape[0] = 0;
    EXPECT_HAS(structError(a), "empty micro-batches of 0 x 3 tokens");
  }
}
