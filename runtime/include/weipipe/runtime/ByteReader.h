//===- ByteReader.h - bounds-checked reads of untrusted bytes ---*- C++ -*-===//
//
// Part of weipipe's runtime. Artifacts and token files are untrusted input:
// every read goes through a ByteReader, which checks each offset and size
// before touching memory and reports where a read would have gone out of
// bounds instead of crashing.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_BYTEREADER_H
#define WEIPIPE_RUNTIME_BYTEREADER_H

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace weipipe::rt {

class ByteReader {
public:
  ByteReader(const void *data, size_t size, std::string what)
      : data_(static_cast<const uint8_t *>(data)), size_(size),
        what_(std::move(what)) {}

  size_t offset() const { return offset_; }
  size_t remaining() const { return size_ - offset_; }
  /// The first error, naming the input and the offset; empty while all reads
  /// succeeded. After an error every read fails.
  const std::string &error() const { return error_; }
  bool ok() const { return error_.empty(); }

  std::optional<uint8_t> u8();
  std::optional<uint32_t> u32();
  std::optional<uint64_t> u64();
  /// A little-endian u32 length followed by that many bytes.
  std::optional<std::string_view> string(size_t maxLength = 1 << 20);
  /// `n` raw bytes.
  std::optional<std::string_view> bytes(size_t n);
  /// Moves to an absolute offset within the input.
  bool seek(size_t offset);

private:
  bool need(size_t n, const char *field);

  const uint8_t *data_;
  size_t size_;
  size_t offset_ = 0;
  std::string what_;
  std::string error_;
};

} // namespace weipipe::rt

#endif // WEIPIPE_RUNTIME_BYTEREADER_H
