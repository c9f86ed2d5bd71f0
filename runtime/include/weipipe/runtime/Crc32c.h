//===- Crc32c.h - CRC-32C checksums -----------------------------*- C++ -*-===//
//
// Part of weipipe's runtime. CRC-32C (Castagnoli), the checksum the artifact
// format uses for its header and sections.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_CRC32C_H
#define WEIPIPE_RUNTIME_CRC32C_H

#include <cstddef>
#include <cstdint>

namespace weipipe::rt {

/// Extends `crc` (0 for a new checksum) over `size` bytes at `data`.
uint32_t crc32c(const void *data, size_t size, uint32_t crc = 0);

} // namespace weipipe::rt

#endif // WEIPIPE_RUNTIME_CRC32C_H
