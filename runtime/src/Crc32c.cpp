//===- Crc32c.cpp - CRC-32C checksums -------------------------------------===//
//
// Part of weipipe's runtime. Table-driven, one byte at a time: checksums run
// once per artifact load, not per step.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/Crc32c.h"

#include <array>

namespace {
constexpr uint32_t kPolynomial = 0x82F63B78u; // reversed Castagnoli

constexpr std::array<uint32_t, 256> makeTable() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c & 1) ? (c >> 1) ^ kPolynomial : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kTable = makeTable();
} // namespace

uint32_t weipipe::rt::crc32c(const void *data, size_t size, uint32_t crc) {
  const auto *p = static_cast<const uint8_t *>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i)
    crc = kTable[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}
