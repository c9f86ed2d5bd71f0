//===- Output.cpp - the trainer's output formats --------------------------===//
//
// Part of weipipe's runtime.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/train/Output.h"

using namespace weipipe::rt::train;

std::string
weipipe::rt::train::npyHeaderF32(const std::vector<int64_t> &shape) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i)
    dict += std::to_string(shape[i]) + (shape.size() == 1 ? "," : "") +
            (i + 1 < shape.size() ? ", " : "");
  dict += "), }";
  // magic (6) + version (2) + length (2) + dict + padding + '\n'.
  size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';
  std::string h = "\x93NUMPY";
  h += char(1);
  h += char(0);
  h += char(dict.size() & 0xFF);
  h += char((dict.size() >> 8) & 0xFF);
  return h + dict;
}

bool weipipe::rt::train::writeNpyF32(const std::string &path,
                                     const std::vector<int64_t> &shape,
                                     const float *data, std::string *error) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  OutputFile out;
  if (!out.open(path, error))
    return false;
  out.write(npyHeaderF32(shape));
  out.write(data, size_t(n) * sizeof(float)); // the host is little-endian
  return out.commit(error);
}
