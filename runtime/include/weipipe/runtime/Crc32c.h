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
#include <optional>
#include <string>

namespace weipipe::rt {

/// Extends `crc` (0 for a new checksum) over `size` bytes at `data`.
uint32_t crc32c(const void *data, size_t size, uint32_t crc = 0);

/// The CRC-32C of bytes [offset, offset + length) of the file at `path`,
/// read in blocks; nullopt with *error set ("cannot open ...", "... ended at
/// byte N") when they cannot be read. What the compiler records for each
/// parameter, so that the runtime can tell that a model changed in place.
std::optional<uint32_t> crc32cOfFileRange(const std::string &path,
                                          uint64_t offset, uint64_t length,
                                          std::string *error);

} // namespace weipipe::rt

#endif // WEIPIPE_RUNTIME_CRC32C_H
