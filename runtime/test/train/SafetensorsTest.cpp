//===- SafetensorsTest.cpp - safetensors, .npy, JSON, output files --------===//
//
// The Python `safetensors` library reads what the writer writes in the lit
// test test/runtime/safetensors.test; here: exact bytes, round trips, and
// that failures leave no file behind.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/train/Safetensors.h"
#include "weipipe/runtime/train/Json.h"
#include "weipipe/runtime/train/Output.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <iterator>
#include <sys/stat.h>
#include <unistd.h>

using namespace weipipe::rt::train;

namespace {

class TempDir : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/weipipe-st-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    ::chmod(dir_.c_str(), 0700);
    std::string cmd = "rm -rf '" + dir_ + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }
  std::vector<std::string> files() const {
    std::vector<std::string> names;
    DIR *d = ::opendir(dir_.c_str());
    while (dirent *e = d ? ::readdir(d) : nullptr)
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..")
        names.push_back(e->d_name);
    if (d)
      ::closedir(d);
    std::sort(names.begin(), names.end());
    return names;
  }
  static std::string slurp(const std::string &p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)),
                       std::istreambuf_iterator<char>());
  }
  std::string dir_;
};

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i)
    s[size_t(i)] = char((n >> (8 * i)) & 0xFF);
  return s;
}

} // namespace

TEST(SafetensorsHeader, ExactBytes) {
  const float a[2] = {1, 2};
  std::string h =
      safetensorsHeader({{"a", {2}, a}, {"b", {}, a}}, {{"k", "v\"1"}});
  const std::string json =
      "{\"__metadata__\":{\"k\":\"v\\\"1\"},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[8,12]}}";
  const size_t padded = (json.size() + 7) / 8 * 8;
  EXPECT_EQ(h, le64(padded) + json + std::string(padded - json.size(), ' '));
  // No metadata: no __metadata__ key.
  EXPECT_EQ(safetensorsHeader({}, {}), le64(8) + "{}      ");
}

TEST_F(TempDir, RoundTripSortedAndAligned) {
  std::vector<float> w(12), b(3), s(1, 42.5f);
  for (size_t i = 0; i < w.size(); ++i)
    w[i] = float(i) * 0.25f - 1.0f;
  for (size_t i = 0; i < b.size(); ++i)
    b[i] = -float(i);
  const std::string p = dir_ + "/w.safetensors";
  std::string error;
  // Given out of order; "B.upper" sorts before "a" bytewise.
  ASSERT_TRUE(writeSafetensors(p,
                               {{"z.weight", {3, 4}, w.data()},
                                {"a.bias", {3}, b.data()},
                                {"B.upper", {}, s.data()},
                                {"empty", {0, 5}, nullptr}},
                               {{"weipipe.run", "{\"steps\": 3}"}}, &error))
      << error;
  EXPECT_EQ(files(), std::vector<std::string>{"w.safetensors"});
  const std::string bytes = slurp(p);
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = n << 8 | uint8_t(bytes[size_t(i)]);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + n + (12 + 3 + 1) * 4);

  auto f = readSafetensors(p, &error);
  ASSERT_TRUE(f) << error;
  ASSERT_EQ(f->tensors.size(), 4u);
  EXPECT_EQ(f->tensors[0].name, "B.upper");
  EXPECT_EQ(f->tensors[1].name, "a.bias");
  EXPECT_EQ(f->tensors[2].name, "empty");
  EXPECT_EQ(f->tensors[3].name, "z.weight");
  EXPECT_EQ(f->tensors[3].shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(f->tensors[3].dtype, "F32");
  EXPECT_EQ(f->f32(*f->find("z.weight")), w);
  EXPECT_EQ(f->f32(*f->find("a.bias")), b);
  EXPECT_EQ(f->f32(*f->find("B.upper")), s);
  EXPECT_TRUE(f->f32(*f->find("empty")).empty());
  EXPECT_EQ(f->find("empty")->shape, (std::vector<int64_t>{0, 5}));
  ASSERT_EQ(f->metadata.size(), 1u);
  EXPECT_EQ(f->metadata[0].first, "weipipe.run");
  EXPECT_EQ(f->metadata[0].second, "{\"steps\": 3}");
  // Data in name order, right after the header.
  EXPECT_EQ(f->find("B.upper")->begin, 0u);
  EXPECT_EQ(f->find("a.bias")->begin, 4u);
  EXPECT_EQ(f->find("z.weight")->begin, 16u);
}

TEST_F(TempDir, WriteFailuresLeaveNothing) {
  const float x = 1;
  std::string error;
  EXPECT_FALSE(writeSafetensors(dir_ + "/d.safetensors",
                                {{"a", {1}, &x}, {"a", {1}, &x}}, {}, &error));
  EXPECT_NE(error.find("two tensors named \"a\""), std::string::npos) << error;
  EXPECT_FALSE(writeSafetensors(dir_ + "/m.safetensors",
                                {{"__metadata__", {1}, &x}}, {}, &error));
  EXPECT_FALSE(writeSafetensors(dir_ + "/k.safetensors", {{"a", {1}, &x}},
                                {{"k", "1"}, {"k", "2"}}, &error));
  EXPECT_FALSE(
      writeSafetensors(dir_ + "/no/such/dir/x.safetensors", {}, {}, &error));
  EXPECT_NE(error.find("cannot write " + dir_ + "/no/such/dir/x.safetensors"),
            std::string::npos)
      << error;
  EXPECT_FALSE(writeSafetensors(dir_, {}, {}, &error));
  EXPECT_EQ(error, "cannot write " + dir_ + ": it is a directory");
  EXPECT_TRUE(files().empty());
  if (::geteuid() != 0) { // root writes anywhere
    ::chmod(dir_.c_str(), 0500);
    EXPECT_FALSE(writeSafetensors(dir_ + "/ro.safetensors", {}, {}, &error));
    ::chmod(dir_.c_str(), 0700);
  }
}

TEST(SafetensorsRead, RejectsBadFiles) {
  std::string error;
  auto parse = [&](const std::string &json, const std::string &data) {
    error.clear();
    return parseSafetensors(le64(json.size()) + json + data, "f", &error)
        .has_value();
  };
  const std::string ok =
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  EXPECT_TRUE(parse(ok, std::string(8, '\0'))) << error;
  EXPECT_FALSE(parse(ok, std::string(7, '\0')));
  EXPECT_FALSE(parse(ok, std::string(9, '\0')));
  EXPECT_NE(error.find("cover 8 data bytes but the file holds 9"),
            std::string::npos)
      << error;
  EXPECT_FALSE(
      parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
            std::string(8, '\0')));
  EXPECT_NE(error.find("need 12"), std::string::npos) << error;
  EXPECT_FALSE(parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
                     "\"data_offsets\":[4,8]}}",
                     std::string(8, '\0')));
  EXPECT_NE(error.find("contiguous"), std::string::npos) << error;
  EXPECT_FALSE(parse("{\"a\":{\"dtype\":\"X9\",\"shape\":[1],"
                     "\"data_offsets\":[0,4]}}",
                     std::string(4, '\0')));
  EXPECT_FALSE(parse("{\"a\":1", ""));
  EXPECT_NE(error.find("bad JSON header"), std::string::npos) << error;
  EXPECT_FALSE(parse("[]", ""));
  EXPECT_FALSE(parse("{\"__metadata__\":{\"k\":1}}", ""));
  EXPECT_FALSE(parseSafetensors("abc", "f", &error));
  EXPECT_FALSE(parseSafetensors(le64(100) + "{}", "f", &error));
  EXPECT_NE(error.find("runs past the end"), std::string::npos) << error;
  // Other dtypes and padding are accepted.
  EXPECT_TRUE(parse("{\"i\":{\"dtype\":\"I64\",\"shape\":[1,1],"
                    "\"data_offsets\":[0,8]}}   ",
                    std::string(8, '\0')))
      << error;
}

TEST(Json, QuoteAndNumber) {
  EXPECT_EQ(json::quote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
  EXPECT_EQ(json::number(1.0), "1.0");
  EXPECT_EQ(json::number(0.001), "0.001");
  EXPECT_EQ(json::number(1e-8), "1e-08");
  EXPECT_EQ(json::number(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(json::number(-3.5), "-3.5");
  EXPECT_EQ(json::number(std::nan("")), "NaN");
  EXPECT_EQ(json::number(-INFINITY), "-Infinity");
}

TEST(Json, Parse) {
  std::string error;
  auto v = json::parse(
      " {\"a\": [1, -2.5e3, true, null], \"b\\u00e9\\ud83d\\ude00\": "
      "{\"c\": \"x\\/y\"}, \"n\": 18446744073709551615} ",
      &error);
  ASSERT_TRUE(v) << error;
  ASSERT_TRUE(v->isObject());
  const json::Value *a = v->get("a");
  ASSERT_TRUE(a && a->isArray());
  EXPECT_EQ(a->array[0].asUint64(), 1u);
  EXPECT_EQ(a->array[1].asDouble(), -2500.0);
  EXPECT_FALSE(a->array[1].asUint64());
  EXPECT_TRUE(a->array[2].boolean);
  EXPECT_EQ(v->get("n")->asUint64(), UINT64_MAX);
  const json::Value *b = v->get("b\xc3\xa9\xf0\x9f\x98\x80");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->get("c")->text, "x/y");
  for (const char *bad : {"", "{", "{\"a\":1,}", "[1 2]", "01", "\"\x01\"",
                          "{\"a\":1,\"a\":2}", "tru", "1 2", "\"\\ud800\""}) {
    error.clear();
    EXPECT_FALSE(json::parse(bad, &error)) << bad;
    EXPECT_NE(error.find("at byte"), std::string::npos) << bad << ": " << error;
  }
  std::string deep(200, '[');
  EXPECT_FALSE(json::parse(deep, &error));
}

TEST_F(TempDir, OutputFileCommitAndDiscard) {
  std::string error;
  {
    OutputFile f;
    ASSERT_TRUE(f.open(dir_ + "/log.jsonl", &error)) << error;
    f.write("line\n");
    ASSERT_TRUE(f.flush(&error));
    EXPECT_EQ(files().size(), 1u); // the temporary
    EXPECT_EQ(files()[0].rfind("log.jsonl.tmp.", 0), 0u) << files()[0];
  } // destroyed uncommitted
  EXPECT_TRUE(files().empty());
  OutputFile f;
  ASSERT_TRUE(f.open(dir_ + "/log.jsonl", &error)) << error;
  f.write("a\n");
  ASSERT_TRUE(f.commit(&error)) << error;
  EXPECT_EQ(files(), std::vector<std::string>{"log.jsonl"});
  EXPECT_EQ(slurp(dir_ + "/log.jsonl"), "a\n");
}

TEST_F(TempDir, Npy) {
  EXPECT_EQ(npyHeaderF32({2, 3}).size() % 64, 0u);
  const std::string h = npyHeaderF32({5});
  EXPECT_EQ(h.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  EXPECT_NE(h.find("'shape': (5,), }"), std::string::npos) << h;
  EXPECT_EQ(h.back(), '\n');
  EXPECT_NE(npyHeaderF32({2, 3, 4}).find("'shape': (2, 3, 4), }"),
            std::string::npos);
  EXPECT_NE(npyHeaderF32({}).find("'shape': (), }"), std::string::npos);
  const float d[6] = {1, 2, 3, 4, 5, 6};
  std::string error;
  ASSERT_TRUE(writeNpyF32(dir_ + "/x.npy", {2, 3}, d, &error)) << error;
  const std::string bytes = slurp(dir_ + "/x.npy");
  const size_t hl = uint8_t(bytes[8]) | size_t(uint8_t(bytes[9])) << 8;
  EXPECT_EQ(bytes.size(), 10 + hl + sizeof(d));
  EXPECT_EQ(std::memcmp(bytes.data() + 10 + hl, d, sizeof(d)), 0);
}
