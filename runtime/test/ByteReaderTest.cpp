#include "weipipe/runtime/ByteReader.h"

#include <gtest/gtest.h>

using weipipe::rt::ByteReader;

TEST(ByteReader, ReadsLittleEndian) {
  const uint8_t data[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
                          0x08, 0x09, 0x0a, 0x0b, 0x0c, 0xff};
  ByteReader r(data, sizeof(data), "test");
  EXPECT_EQ(r.u32(), 0x04030201u);
  EXPECT_EQ(r.u64(), 0x0c0b0a0908070605ull);
  EXPECT_EQ(r.u8(), 0xff);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(ByteReader, TruncationNamesInputAndOffset) {
  const uint8_t data[] = {1, 2, 3};
  ByteReader r(data, sizeof(data), "model.wpp");
  EXPECT_EQ(r.u8(), 1);
  EXPECT_FALSE(r.u32().has_value());
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.error().find("model.wpp"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("byte 1"), std::string::npos) << r.error();
  // Sticky: later reads fail too, even ones that would fit.
  EXPECT_FALSE(r.u8().has_value());
}

TEST(ByteReader, StringLengthIsBounded) {
  // Claims a 4 GiB string in a 6-byte buffer.
  const uint8_t data[] = {0xff, 0xff, 0xff, 0xff, 'a', 'b'};
  ByteReader r(data, sizeof(data), "x");
  EXPECT_FALSE(r.string().has_value());
  EXPECT_NE(r.error().find("limit"), std::string::npos) << r.error();
}

TEST(ByteReader, StringAndSeek) {
  const uint8_t data[] = {2, 0, 0, 0, 'h', 'i', 7};
  ByteReader r(data, sizeof(data), "x");
  auto s = r.string();
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(*s, "hi");
  EXPECT_TRUE(r.seek(0));
  EXPECT_EQ(r.u8(), 2);
  EXPECT_FALSE(r.seek(100));
  EXPECT_FALSE(r.ok());
}
