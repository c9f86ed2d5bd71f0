//===- Json.h - the little JSON the trainer reads and writes ----*- C++ -*-===//
//
// Part of weipipe's runtime. Writing: quoted strings and numbers for the JSONL
// log, safetensors headers and tool output. Reading: a strict RFC 8259 parser
// for safetensors headers (untrusted input: depth and size bounded, errors
// name the byte offset). Numbers keep their text so that 64-bit offsets are
// read exactly.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_TRAIN_JSON_H
#define WEIPIPE_RUNTIME_TRAIN_JSON_H

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace weipipe::rt::train::json {

/// `s` as a JSON string literal ("\"...\""), escaping '"', '\\' and control
/// characters; other bytes (UTF-8) pass through.
std::string quote(std::string_view s);
/// The shortest text that reads back as `v` (std::to_chars), with ".0" added
/// to integral values so that readers see a float; NaN and infinities as
/// Python's json.dumps writes them (NaN, Infinity, -Infinity).
std::string number(double v);

struct Value {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  std::string text; ///< String: the decoded string; Number: its literal text
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>> object; ///< in file order

  bool isObject() const { return kind == Kind::Object; }
  bool isArray() const { return kind == Kind::Array; }
  bool isString() const { return kind == Kind::String; }
  bool isNumber() const { return kind == Kind::Number; }
  /// The member `key` of an object, or nullptr (first one if repeated).
  const Value *get(std::string_view key) const;
  /// A Number that is a non-negative integer literal fitting in uint64.
  std::optional<uint64_t> asUint64() const;
  std::optional<double> asDouble() const;
};

/// Parses one JSON value (surrounding whitespace allowed). Duplicate object
/// keys are an error. On failure sets *error to "<problem> at byte N".
std::optional<Value> parse(std::string_view text, std::string *error);

} // namespace weipipe::rt::train::json

#endif // WEIPIPE_RUNTIME_TRAIN_JSON_H
