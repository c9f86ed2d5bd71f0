//===- ArtifactTestUtil.h - building artifacts by hand in tests -*- C++ -*-===//
//
// Part of weipipe's runtime tests: the TensorRef and Instruction builders
// that the artifact and executor tests share.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_TEST_ARTIFACTTESTUTIL_H
#define WEIPIPE_RUNTIME_TEST_ARTIFACTTESTUTIL_H

#include "weipipe/runtime/Artifact.h"

#include <string>
#include <utility>
#include <vector>

namespace weipipe::rt::test {

/// A Param, Grad or Const ref to entry `index`.
inline TensorRef entry(Space s, uint32_t index, std::vector<int64_t> shape,
                       DType t = DType::F32) {
  TensorRef r;
  r.space = s;
  r.index = index;
  r.dtype = t;
  r.shape = std::move(shape);
  return r;
}

/// An arena ref at `offset`.
inline TensorRef arenaAt(uint64_t offset, DType t, std::vector<int64_t> shape) {
  TensorRef r = entry(Space::Arena, 0, std::move(shape), t);
  r.offset = offset;
  return r;
}

inline Instruction instr(Opcode op, std::vector<TensorRef> operands,
                         std::vector<TensorRef> results,
                         std::vector<int64_t> ints = {},
                         std::vector<double> floats = {}, std::string name = "",
                         uint8_t flags = 0) {
  Instruction in;
  in.op = op;
  in.operands = std::move(operands);
  in.results = std::move(results);
  in.ints = std::move(ints);
  in.floats = std::move(floats);
  in.name = std::move(name);
  in.flags = flags;
  return in;
}

} // namespace weipipe::rt::test

#endif // WEIPIPE_RUNTIME_TEST_ARTIFACTTESTUTIL_H
