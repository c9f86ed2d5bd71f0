//===- Safetensors.h - write and read .safetensors files --------*- C++ -*-===//
//
// Part of weipipe's runtime. The format (huggingface/safetensors):
//
//   8 bytes   N, the header length, unsigned little-endian
//   N bytes   a UTF-8 JSON object: for each tensor
//               "NAME": {"dtype": "F32", "shape": [d0, ...],
//                        "data_offsets": [BEGIN, END]}
//             (offsets relative to the data section, END exclusive), and
//             optionally "__metadata__": {"key": "value", ...} (strings only);
//             padded with spaces so that 8 + N is a multiple of 8
//   the data  every tensor's bytes, little-endian, row-major, contiguous and
//             without holes, in offset order
//
// The writer emits "__metadata__" first (as the Python library does), then
// the tensors sorted by name (bytewise), their data in that same order, so
// the same tensors always give the same bytes. It writes atomically (see
// Output.h). The reader checks what the Rust library checks (offsets
// contiguous, sizes matching dtype x shape, the data section exactly
// covered) and is used by tests and tools; the executor loads parameter
// storage by file offset itself.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_TRAIN_SAFETENSORS_H
#define WEIPIPE_RUNTIME_TRAIN_SAFETENSORS_H

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace weipipe::rt {
class OutputFile;
} // namespace weipipe::rt

namespace weipipe::rt::train {

using rt::OutputFile;

/// A float32 tensor to write; `data` holds numel(shape) floats.
struct F32TensorView {
  std::string name;
  std::vector<int64_t> shape;
  const float *data = nullptr;
};

using Metadata = std::vector<std::pair<std::string, std::string>>;

/// The header bytes (length prefix included) for `tensors` already sorted by
/// name; exposed for tests.
std::string safetensorsHeader(const std::vector<F32TensorView> &sorted,
                              const Metadata &metadata);

/// Writes `tensors` (any order; names unique, not "__metadata__") and
/// `metadata` (keys unique) to `path` atomically. On failure returns false
/// with *error set, and no file is left behind.
bool writeSafetensors(const std::string &path,
                      std::vector<F32TensorView> tensors,
                      const Metadata &metadata, std::string *error);
/// The same into an open OutputFile, left uncommitted (so that several
/// outputs can be renamed into place together).
bool writeSafetensors(OutputFile &out, std::vector<F32TensorView> tensors,
                      const Metadata &metadata, std::string *error);

struct SafetensorsEntry {
  std::string name;
  std::string dtype; ///< "F32", "F16", "BF16", "F64", "I64", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0; ///< byte range in SafetensorsFile::data
};

struct SafetensorsFile {
  std::vector<SafetensorsEntry> tensors; ///< in header order
  Metadata metadata;                     ///< in header order
  std::string data;                      ///< the data section
  uint64_t dataOffset = 0; ///< where the data section starts in the file

  const SafetensorsEntry *find(const std::string &name) const;
  /// The values of an F32 tensor (empty if it is not F32).
  std::vector<float> f32(const SafetensorsEntry &e) const;
};

/// Reads and validates a whole file. On failure returns nullopt and sets
/// *error to "PATH: <problem>".
std::optional<SafetensorsFile> readSafetensors(const std::string &path,
                                               std::string *error);
/// The same on bytes already in memory (`what` names them in errors).
std::optional<SafetensorsFile> parseSafetensors(const std::string &bytes,
                                                const std::string &what,
                                                std::string *error);

} // namespace weipipe::rt::train

#endif // WEIPIPE_RUNTIME_TRAIN_SAFETENSORS_H
