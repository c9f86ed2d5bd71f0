//===- DataTest.cpp - token files, windows, the data order ----------------===//
//
// The rules and messages of python/weipipe/reference/README.md, "Data". The
// lit test test/runtime/data-order.test compares the whole order with the
// reference's own `batches` output.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/train/Data.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <sys/stat.h>
#include <unistd.h>

using namespace weipipe::rt::train;

namespace {

class DataTest : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/weipipe-data-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::string cmd = "rm -rf '" + dir_ + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }
  std::string write(const std::string &name, const std::string &bytes) {
    std::string p = dir_ + "/" + name;
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
  template <typename T>
  std::string writeTokens(const std::string &name, const std::vector<T> &t,
                          const std::string &prefix = "") {
    std::string b = prefix;
    for (T v : t)
      for (size_t i = 0; i < sizeof(T); ++i)
        b += char((uint64_t(v) >> (8 * i)) & 0xFF);
    return write(name, b);
  }
  static std::string llmcHeader(int32_t version, int32_t count) {
    std::string h(1024, '\0');
    auto put = [&](int idx, int32_t v) {
      for (int i = 0; i < 4; ++i)
        h[size_t(idx * 4 + i)] = char((uint32_t(v) >> (8 * i)) & 0xFF);
    };
    put(0, kLlmcMagic);
    put(1, version);
    put(2, count);
    return h;
  }
  std::unique_ptr<TokenFile> load(const std::string &p, int64_t vocab,
                                  std::optional<TokenDType> dt = std::nullopt,
                                  DataFormat f = DataFormat::Auto) {
    error_.clear();
    return TokenFile::load(p, vocab, dt, f, &error_);
  }
  bool errorHas(const std::string &s) const {
    return error_.find(s) != std::string::npos;
  }

  std::string dir_, error_;
};

std::vector<uint16_t> iota16(size_t n, uint16_t mod) {
  std::vector<uint16_t> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = uint16_t(i % mod);
  return v;
}

} // namespace

TEST(SplitMix64, MatchesPublishedOutputs) {
  // splitmix64.c (Vigna) from state 0.
  SplitMix64 g(0);
  EXPECT_EQ(g.next(), 0xE220A8397B1DCDAFull);
  EXPECT_EQ(g.next(), 0x6E789E6AA1B965F4ull);
  EXPECT_EQ(g.next(), 0x06C45D188009454Full);
}

TEST(SplitMix64, ShuffleMatchesReference) {
  // python: SplitMix64(7); shuffled(10, rng) twice (weipipe.reference.data).
  SplitMix64 g(7);
  std::vector<uint64_t> p;
  shufflePermutation(10, g, p);
  EXPECT_EQ(p, (std::vector<uint64_t>{8, 1, 5, 9, 0, 4, 3, 2, 6, 7}));
  shufflePermutation(10, g, p);
  EXPECT_EQ(p, (std::vector<uint64_t>{3, 2, 8, 9, 0, 7, 6, 4, 1, 5}));
  // A negative seed is taken mod 2^64 (SplitMix64(-1) in Python).
  SplitMix64 h(uint64_t(int64_t(-1)));
  shufflePermutation(5, h, p);
  EXPECT_EQ(p, (std::vector<uint64_t>{2, 0, 3, 4, 1}));
  shufflePermutation(1, h, p);
  EXPECT_EQ(p, (std::vector<uint64_t>{0}));
  shufflePermutation(0, h, p);
  EXPECT_TRUE(p.empty());
}

TEST_F(DataTest, RawUint16) {
  auto t = iota16(100, 50);
  auto tf = load(writeTokens("a.bin", t), 50);
  ASSERT_TRUE(tf) << error_;
  EXPECT_EQ(tf->size(), 100u);
  EXPECT_STREQ(tf->format(), "raw");
  EXPECT_STREQ(tf->dtype(), "uint16");
  EXPECT_EQ((*tf)[57], 7u);
  EXPECT_EQ(tf->describe(), dir_ + "/a.bin: 100 tokens, raw uint16");
}

TEST_F(DataTest, RawUint32ByVocabOrFlag) {
  std::vector<uint32_t> t = {0, 69999, 65536, 3};
  auto p = writeTokens("big.bin", t);
  auto tf = load(p, 70000);
  ASSERT_TRUE(tf) << error_;
  EXPECT_STREQ(tf->dtype(), "uint32");
  EXPECT_EQ((*tf)[1], 69999u);
  // uint32 forced for a small vocabulary: 65536 is out of range.
  EXPECT_FALSE(load(p, 96, TokenDType::U32));
  EXPECT_EQ(error_, "data file " + p +
                        ": token 1 (byte offset 4) has id 69999, not < the "
                        "model's vocabulary size 96 (read as raw uint32; "
                        "wrong --token-dtype?)");
  // Read as uint16 (the default for 96): 8 tokens, the high halves are 0/1.
  tf = load(p, 70000, TokenDType::U16);
  ASSERT_TRUE(tf) << error_;
  EXPECT_EQ(tf->size(), 8u);
}

TEST_F(DataTest, RawErrors) {
  EXPECT_FALSE(load(dir_ + "/missing.bin", 10));
  EXPECT_EQ(error_, "data file " + dir_ + "/missing.bin: no such file");
  EXPECT_FALSE(load(dir_, 10));
  EXPECT_EQ(error_, "data file " + dir_ + " is a directory");
  auto e = write("empty.bin", "");
  EXPECT_FALSE(load(e, 10));
  EXPECT_EQ(error_, "data file " + e + " is empty");
  auto odd = write("odd.bin", std::string(5, '\0'));
  EXPECT_FALSE(load(odd, 10));
  EXPECT_EQ(error_, "data file " + odd +
                        ": size 5 bytes is not a multiple of 2 (uint16 "
                        "tokens); wrong --token-dtype, or not a token file?");
  EXPECT_FALSE(
      load(write("odd4.bin", std::string(6, '\0')), 10, TokenDType::U32));
  EXPECT_TRUE(errorHas("not a multiple of 4 (uint32 tokens)")) << error_;
  auto t = iota16(40, 10);
  t[23] = 10;
  t[30] = 99;
  auto bad = writeTokens("bad.bin", t);
  EXPECT_FALSE(load(bad, 10));
  EXPECT_EQ(error_, "data file " + bad +
                        ": token 23 (byte offset 46) has id 10, not < the "
                        "model's vocabulary size 10 (read as raw uint16; "
                        "wrong --token-dtype?)");
}

TEST_F(DataTest, Llmc) {
  std::vector<uint16_t> t16 = {5, 6, 7, 8, 9};
  auto p1 = writeTokens("v1.bin", t16, llmcHeader(1, 5));
  auto tf = load(p1, 10);
  ASSERT_TRUE(tf) << error_;
  EXPECT_STREQ(tf->format(), "llm.c");
  EXPECT_STREQ(tf->dtype(), "uint16");
  EXPECT_EQ(tf->size(), 5u);
  EXPECT_EQ((*tf)[0], 5u);
  EXPECT_EQ(tf->describe(), p1 + ": 5 tokens, llm.c uint16");
  // Recognised whatever the format says, except text.
  EXPECT_TRUE(load(p1, 10, std::nullopt, DataFormat::Bin));
  EXPECT_TRUE(load(p1, 10, TokenDType::U16));
  EXPECT_FALSE(load(p1, 10, TokenDType::U32));
  EXPECT_EQ(error_, "data file " + p1 +
                        ": --token-dtype uint32 contradicts the llm.c header "
                        "(version 1: uint16 tokens)");

  std::vector<uint32_t> t32 = {1, 2, 70000};
  auto p2 = writeTokens("v2.txtx", t32, llmcHeader(2, 3));
  tf = load(p2, 70001);
  ASSERT_TRUE(tf) << error_;
  EXPECT_STREQ(tf->dtype(), "uint32");
  EXPECT_EQ((*tf)[2], 70000u);
  EXPECT_FALSE(load(p2, 70000));
  // No "wrong --token-dtype" hint: the header fixes the dtype.
  EXPECT_EQ(error_, "data file " + p2 +
                        ": token 2 (byte offset 1032) has id 70000, not < "
                        "the model's vocabulary size 70000");

  auto trunc = writeTokens("trunc.bin", t16, llmcHeader(1, 6));
  EXPECT_FALSE(load(trunc, 10));
  EXPECT_EQ(error_, "data file " + trunc +
                        ": llm.c header says 6 uint16 tokens (1036 bytes with "
                        "the header) but the file has 1034 bytes (truncated)");
  auto longer = writeTokens("long.bin", t16, llmcHeader(1, 4));
  EXPECT_FALSE(load(longer, 10));
  EXPECT_TRUE(errorHas("but the file has 1034 bytes")) << error_;
  EXPECT_FALSE(errorHas("truncated")) << error_;
  EXPECT_FALSE(load(writeTokens("v3.bin", t16, llmcHeader(3, 5)), 10));
  EXPECT_TRUE(errorHas("llm.c header version 3 is not supported")) << error_;
  EXPECT_FALSE(load(write("zero.bin", llmcHeader(1, 0)), 10));
  EXPECT_TRUE(errorHas("holds no tokens (llm.c header token count 0)"))
      << error_;
  EXPECT_FALSE(load(write("neg.bin", llmcHeader(1, -2)), 10));
  EXPECT_TRUE(errorHas("negative token count -2")) << error_;
  auto shortFile = write("short.bin", llmcHeader(1, 1).substr(0, 12));
  EXPECT_FALSE(load(shortFile, 10));
  EXPECT_EQ(error_, "data file " + shortFile +
                        " starts with the llm.c magic number 20240520 but is "
                        "only 12 bytes, shorter than the 1024-byte llm.c "
                        "header");
}

TEST_F(DataTest, Text) {
  auto p = write("t.TXT", "hello\xff");
  auto tf = load(p, 256);
  ASSERT_TRUE(tf) << error_;
  EXPECT_STREQ(tf->format(), "text");
  EXPECT_STREQ(tf->dtype(), "uint8");
  EXPECT_EQ(tf->size(), 6u);
  EXPECT_EQ((*tf)[5], 255u);
  EXPECT_FALSE(load(p, 255));
  EXPECT_EQ(error_, "text data " + p +
                        " uses the byte tokenizer (ids 0..255), which needs a "
                        "vocabulary of at least 256; the model's vocabulary "
                        "is 255");
  EXPECT_FALSE(load(p, 300, TokenDType::U16));
  EXPECT_EQ(error_, "--token-dtype does not apply to text data (one byte = "
                    "one token)");
  // Format text on any name; format bin on a .txt.
  auto q = write("t.bin", "ab");
  tf = load(q, 256, std::nullopt, DataFormat::Text);
  ASSERT_TRUE(tf) << error_;
  EXPECT_EQ(tf->size(), 2u);
  tf = load(write("u.txt", "abcd"), int64_t(1) << 31, std::nullopt,
            DataFormat::Bin);
  ASSERT_TRUE(tf) << error_;
  EXPECT_STREQ(tf->dtype(), "uint32");
  EXPECT_EQ((*tf)[0], 0x64636261u);
}

TEST_F(DataTest, WindowsSequential) {
  // 3 windows of S+1 = 4 and a partial one that is never used.
  auto tf = load(writeTokens("w.bin", iota16(14, 100)), 100);
  ASSERT_TRUE(tf) << error_;
  auto w = Windows::create(*tf, 3, DataOrder::Sequential, 0, &error_);
  ASSERT_TRUE(w) << error_;
  EXPECT_EQ(w->count(), 3u);
  // Step 1 of M = 2 micro-batches of B = 2 rows: k = 4..7 -> windows 1,2,0,1.
  std::vector<int64_t> ids(6), tg(6);
  std::vector<uint64_t> win(2);
  w->fillMicrobatch(1, 0, 2, 2, ids.data(), tg.data(), win.data());
  EXPECT_EQ(win, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(ids, (std::vector<int64_t>{4, 5, 6, 8, 9, 10}));
  EXPECT_EQ(tg, (std::vector<int64_t>{5, 6, 7, 9, 10, 11}));
  w->fillMicrobatch(1, 1, 2, 2, ids.data(), tg.data(), win.data());
  EXPECT_EQ(win, (std::vector<uint64_t>{0, 1}));
  EXPECT_EQ(ids, (std::vector<int64_t>{0, 1, 2, 4, 5, 6}));

  EXPECT_FALSE(Windows::create(*tf, 14, DataOrder::Sequential, 0, &error_));
  EXPECT_EQ(error_, "data file " + tf->path() +
                        " has 14 tokens, fewer than one window of seq+1 = 15");
  EXPECT_FALSE(Windows::create(*tf, 0, DataOrder::Sequential, 0, &error_));
  EXPECT_EQ(error_, "sequence length must be >= 1, got 0");
  // seq + 1 past int64 (found by test/fuzz): refused, not wrapped.
  EXPECT_FALSE(Windows::create(*tf, INT64_MAX, DataOrder::Sequential, 0,
                               &error_));
  EXPECT_EQ(error_, "data file " + tf->path() +
                        " has 14 tokens, fewer than one window of seq+1 = "
                        "9223372036854775808");
}

TEST_F(DataTest, WindowsShuffle) {
  auto tf = load(writeTokens("s.bin", iota16(10 * 5 + 2, 100)), 100);
  ASSERT_TRUE(tf) << error_;
  auto w = Windows::create(*tf, 4, DataOrder::Shuffle, 7, &error_);
  ASSERT_TRUE(w) << error_;
  ASSERT_EQ(w->count(), 10u);
  // The same permutations as ShuffleMatchesReference, epoch after epoch.
  const std::vector<uint64_t> e0 = {8, 1, 5, 9, 0, 4, 3, 2, 6, 7},
                              e1 = {3, 2, 8, 9, 0, 7, 6, 4, 1, 5};
  for (uint64_t k = 0; k < 20; ++k)
    EXPECT_EQ(w->index(k), k < 10 ? e0[k] : e1[k - 10]) << k;
  // Going back restarts from epoch 0; jumping ahead draws the epochs between.
  EXPECT_EQ(w->index(3), e0[3]);
  auto w2 = Windows::create(*tf, 4, DataOrder::Shuffle, 7, &error_);
  EXPECT_EQ(w2->index(15), e1[5]);
  std::vector<int64_t> ids(4), tg(4);
  uint64_t win;
  w2->fill(0, 1, ids.data(), tg.data(), &win);
  EXPECT_EQ(win, 8u);
  EXPECT_EQ(ids, (std::vector<int64_t>{40, 41, 42, 43}));
  EXPECT_EQ(tg, (std::vector<int64_t>{41, 42, 43, 44}));
}

TEST(DataParse, Spellings) {
  EXPECT_EQ(parseDataFormat("auto"), DataFormat::Auto);
  EXPECT_EQ(parseDataFormat("text"), DataFormat::Text);
  EXPECT_FALSE(parseDataFormat("txt"));
  EXPECT_EQ(parseTokenDType("uint32"), TokenDType::U32);
  EXPECT_FALSE(parseTokenDType("u16"));
  EXPECT_EQ(parseDataOrder("shuffle"), DataOrder::Shuffle);
  EXPECT_FALSE(parseDataOrder("random"));
  EXPECT_STREQ(dataOrderName(DataOrder::Sequential), "sequential");
}
