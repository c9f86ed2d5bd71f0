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

/// The decoding half of parseArtifact (which is decodeArtifact, then
/// validateArtifact): magic, version, checksums and the payload's structure,
/// every count bounded by the input, but none of the semantic checks. Sets
/// *instrOffsets (see validateArtifact) when given. The artifact fuzzer's
/// mutator decodes with it, so that it can edit artifacts that do not
/// validate.
std::optional<Artifact>
decodeArtifact(const void *data, size_t size, const std::string &what,
               std::string *error,
               std::vector<std::vector<size_t>> *instrOffsets = nullptr);

/// shapeProblem(...).empty().
bool checkedNumel(const std::vector<int64_t> &s, size_t elementSize,
                  int64_t *numel);

} // namespace weipipe::rt::detail

#endif // WEIPIPE_RUNTIME_ARTIFACTINTERNAL_H
