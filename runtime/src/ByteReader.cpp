//===- ByteReader.cpp - bounds-checked reads of untrusted bytes -----------===//
//
// Part of weipipe's runtime.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/ByteReader.h"

#include <cstring>

using namespace weipipe::rt;

bool ByteReader::need(size_t n, const char *field) {
  if (!ok())
    return false;
  if (n > remaining()) {
    error_ = what_ + ": truncated at byte " + std::to_string(offset_) +
             ": reading " + field + " needs " + std::to_string(n) +
             " bytes, " + std::to_string(remaining()) + " left";
    return false;
  }
  return true;
}

namespace {
template <typename T> T loadLE(const uint8_t *p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i)
    v |= static_cast<T>(p[i]) << (8 * i);
  return v;
}
} // namespace

std::optional<uint8_t> ByteReader::u8() {
  if (!need(1, "u8"))
    return std::nullopt;
  return data_[offset_++];
}

std::optional<uint32_t> ByteReader::u32() {
  if (!need(4, "u32"))
    return std::nullopt;
  uint32_t v = loadLE<uint32_t>(data_ + offset_);
  offset_ += 4;
  return v;
}

std::optional<uint64_t> ByteReader::u64() {
  if (!need(8, "u64"))
    return std::nullopt;
  uint64_t v = loadLE<uint64_t>(data_ + offset_);
  offset_ += 8;
  return v;
}

std::optional<std::string_view> ByteReader::bytes(size_t n) {
  if (!need(n, "bytes"))
    return std::nullopt;
  std::string_view v(reinterpret_cast<const char *>(data_ + offset_), n);
  offset_ += n;
  return v;
}

std::optional<std::string_view> ByteReader::string(size_t maxLength) {
  size_t at = offset_;
  auto n = u32();
  if (!n)
    return std::nullopt;
  if (*n > maxLength) {
    error_ = what_ + ": string at byte " + std::to_string(at) + " claims " +
             std::to_string(*n) + " bytes, more than the limit of " +
             std::to_string(maxLength);
    return std::nullopt;
  }
  return bytes(*n);
}

bool ByteReader::seek(size_t offset) {
  if (!ok())
    return false;
  if (offset > size_) {
    error_ = what_ + ": offset " + std::to_string(offset) +
             " is past the end (" + std::to_string(size_) + " bytes)";
    return false;
  }
  offset_ = offset;
  return true;
}
