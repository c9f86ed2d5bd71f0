#include "weipipe/runtime/Crc32c.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

using weipipe::rt::crc32c;

// Check values from RFC 3720 (iSCSI) appendix B.4.
TEST(Crc32c, KnownVectors) {
  std::string digits = "123456789";
  EXPECT_EQ(crc32c(digits.data(), digits.size()), 0xE3069283u);
  std::string zeros(32, '\0');
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  std::string ones(32, '\xff');
  EXPECT_EQ(crc32c(ones.data(), ones.size()), 0x62A8AB43u);
}

TEST(Crc32c, IncrementalEqualsWhole) {
  std::string s = "weipipe passes weights around a ring";
  uint32_t whole = crc32c(s.data(), s.size());
  uint32_t part = crc32c(s.data(), 10);
  part = crc32c(s.data() + 10, s.size() - 10, part);
  EXPECT_EQ(whole, part);
}

// Every length and alignment against the definition, bit by bit: the eight-
// byte hardware path and its byte tail must agree with it.
TEST(Crc32c, EveryLengthAndOffsetMatchesTheDefinition) {
  auto bitwise = [](const uint8_t *p, size_t n) {
    uint32_t c = ~0u;
    for (size_t i = 0; i < n; ++i) {
      c ^= p[i];
      for (int k = 0; k < 8; ++k)
        c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
  };
  std::string buf(80, '\0');
  for (size_t i = 0; i < buf.size(); ++i)
    buf[i] = char(i * 37 + 11);
  const auto *p = reinterpret_cast<const uint8_t *>(buf.data());
  for (size_t off = 0; off < 8; ++off)
    for (size_t n = 0; off + n <= buf.size(); ++n)
      ASSERT_EQ(crc32c(p + off, n), bitwise(p + off, n))
          << "offset " << off << ", length " << n;
}

TEST(Crc32c, FileRanges) {
  std::string path = ::testing::TempDir() + "crc-range.bin";
  std::string data(3 << 20, '\0'); // more than one block of the reader
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = char(i * 131 + (i >> 9));
  FILE *f = std::fopen(path.c_str(), "wb");
  ASSERT_TRUE(f);
  std::fwrite(data.data(), 1, data.size(), f);
  std::fclose(f);
  std::string error;
  auto crc = weipipe::rt::crc32cOfFileRange(path, 1000, data.size() - 2000,
                                            &error);
  ASSERT_TRUE(crc) << error;
  EXPECT_EQ(*crc, crc32c(data.data() + 1000, data.size() - 2000));
  EXPECT_FALSE(weipipe::rt::crc32cOfFileRange(path, data.size() - 10, 20,
                                              &error));
  EXPECT_NE(error.find("ended at byte " + std::to_string(data.size())),
            std::string::npos)
      << error;
  EXPECT_FALSE(
      weipipe::rt::crc32cOfFileRange(path + ".missing", 0, 1, &error));
  EXPECT_NE(error.find("cannot open"), std::string::npos) << error;
  std::remove(path.c_str());
}
