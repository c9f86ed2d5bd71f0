//===- Output.h - the trainer's output formats ------------------*- C++ -*-===//
//
// Part of weipipe's runtime. The trainer's outputs (log, weights, logits),
// each written through an OutputFile (weipipe/runtime/OutputFile.h).
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_TRAIN_OUTPUT_H
#define WEIPIPE_RUNTIME_TRAIN_OUTPUT_H

#include "weipipe/runtime/OutputFile.h"

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace weipipe::rt::train {

using rt::fileIdentity;
using rt::OutputFile;
using rt::reserveStandardDescriptors;

/// A float32 .npy (format 1.0, '<f4', C order) of `shape`, written through an
/// OutputFile (committed here).
bool writeNpyF32(const std::string &path, const std::vector<int64_t> &shape,
                 const float *data, std::string *error);
/// The .npy 1.0 header for '<f4' and `shape`, padded so that the data starts
/// at a multiple of 64 bytes.
std::string npyHeaderF32(const std::vector<int64_t> &shape);

} // namespace weipipe::rt::train

#endif // WEIPIPE_RUNTIME_TRAIN_OUTPUT_H
