//===- ArtifactInternal.h - artifact validation, internal ----*- C++ -*-===//
//
// Part of weipipe's runtime. Not installed. The semantic checks that
// parseArtifact runs after decoding; the executor runs them too, because an
// Artifact may also be built in memory (tests, the compiler) without ever
// going through the decoder, and the kernels trust every size they are given.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_ARTIFACTINTERNAL_H
#define WEIPIPE_RUNTIME_ARTIFACTINTERNAL_H

#include "weipipe/runtime/Artifact.h"

#include <cstddef>
#include <string>
#include <vector>

namespace weipipe::rt::detail {

/// Checks everything the executor relies on: refs inside their buffers,
/// shapes and dtypes per opcode, indices in range. On failure sets *error to
/// "WHAT: <problem>"; when `instrOffsets` is given (offsets[f][i] = the byte at
/// which instruction i of function f starts), an instruction's problem ends
/// with " (at byte N)".
bool validateArtifact(
    const Artifact &a, const std::string &what, std::string *error,
    const std::vector<std::vector<size_t>> *instrOffsets = nullptr);

/// An empty tensor's other dimensions may multiply to at most this. Kernels
/// loop over a tensor's dimensions, so a zero dimension next to huge ones
/// would be a loop of 2^61 turns over no data; real empty tensors (a cache
/// of length 0) are small. With it, every loop a kernel runs is bounded by
/// the elements of tensors that exist in memory.
constexpr int64_t kMaxEmptyExtent = int64_t(1) << 24;

/// Why shape `s` is not one the runtime can hold ("" if it is): a negative
/// dim, rank over 8, more than 2^62 elements or numel * elementSize bytes, or
/// an empty tensor over kMaxEmptyExtent. Sets *numel when valid.
std::string shapeProblem(const std::vector<int64_t> &s, size_t elementSize,
                         int64_t *numel);
/// shapeProblem(...).empty().
bool checkedNumel(const std::vector<int64_t> &s, size_t elementSize,
                  int64_t *numel);

} // namespace weipipe::rt::detail

#endif // WEIPIPE_RUNTIME_ARTIFACTINTERNAL_H
