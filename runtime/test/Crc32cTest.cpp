#include "weipipe/runtime/Crc32c.h"

#include <gtest/gtest.h>

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
