//===- Opcodes.h - the instruction set, derived from Opcodes.def -*- C++
//-*-===//
//
// Part of weipipe's runtime. The opcode enum, the enums that instructions
// carry in their `ints`, and each opcode's contract as data (OpcodeInfo), all
// from the one table in Opcodes.def. Shared by the compiler's artifact writer,
// the artifact library and every backend; no kernels here.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_OPCODES_H
#define WEIPIPE_RUNTIME_OPCODES_H

#include <cstddef>
#include <cstdint>

namespace weipipe::rt {

/// The highest rank of a tensor an instruction reads or writes.
constexpr int kMaxRank = 8;

// The enums an instruction's ints[0] holds (Opcodes.def's Enum column). Their
// values are part of artifact format v1: append, never reorder.
enum class BinaryOp {
  Add,
  Sub,
  Mul,
  Div,
  Pow,
  Max,
  Min,
  BitAnd,
  BitOr,
  BitXor
};
enum class CompareOp { Equal, Less, Greater };
enum class LogicOp { And, Or };
/// Floor, Ceil and Sign are piecewise constant: no unary_grad instruction
/// uses them (autodiff gives them no gradient, as PyTorch's zero one).
enum class UnaryOp {
  Neg,
  Abs,
  Sqrt,
  Reciprocal,
  Exp,
  Log,
  Erf,
  Tanh,
  Sigmoid,
  Relu,
  Sin,
  Cos,
  Floor,
  Ceil,
  Sign
};
/// Values match nn.gelu's NN_GeluApproximationAttr.
enum class GeluApprox { None = 0, Tanh = 1 };
enum class ReduceOp { Sum, Mean, Max };

/// Which enum an instruction's ints[0] holds.
enum class OpEnum : uint8_t {
  None,
  BinaryOp,
  CompareOp,
  LogicOp,
  UnaryOp,
  GeluApprox,
  ReduceOp
};
/// The number of values of `e` (0 for None).
constexpr int64_t enumSize(OpEnum e) {
  switch (e) {
  case OpEnum::None:
    return 0;
  case OpEnum::BinaryOp:
    return int64_t(BinaryOp::BitXor) + 1;
  case OpEnum::CompareOp:
    return int64_t(CompareOp::Greater) + 1;
  case OpEnum::LogicOp:
    return int64_t(LogicOp::Or) + 1;
  case OpEnum::UnaryOp:
    return int64_t(UnaryOp::Sign) + 1;
  case OpEnum::GeluApprox:
    return int64_t(GeluApprox::Tanh) + 1;
  case OpEnum::ReduceOp:
    return int64_t(ReduceOp::Max) + 1;
  }
  return 0;
}
const char *enumName(OpEnum e); ///< "BinaryOp", ...

enum class Opcode : uint16_t {
#define WP_OPCODE(Name, Id, ...) Name = Id,
#include "weipipe/runtime/Opcodes.def"
};

/// One opcode's contract (Opcodes.def's columns).
struct OpcodeInfo {
  /// Flag bits.
  static constexpr uint8_t kAccumulates = 1;       ///< adds when flagged
  static constexpr uint8_t kAlwaysAccumulates = 2; ///< always adds
  static constexpr uint8_t kOptionalResults = 4;   ///< results may be None
  static constexpr uint8_t kInPlace = 8;           ///< result = any operand
  static constexpr uint8_t kInPlaceFirst = 16;     ///< result = operand 0
  static constexpr uint8_t kFusesWithNext = 32;    ///< kFusedWithNext ok
  static constexpr uint32_t kMany = ~uint32_t(0);  ///< no upper bound

  Opcode op;
  const char *mnemonic;
  uint32_t minOperands, maxOperands;
  uint32_t minResults, maxResults;
  uint32_t minInts, maxInts;
  uint32_t floats;
  OpEnum intsEnum;
  uint8_t flags;

  /// The instruction may add into its results (kAccumulate is allowed).
  bool mayAccumulate() const {
    return flags & (kAccumulates | kAlwaysAccumulates);
  }
  /// A result may occupy exactly the bytes of operand `i`.
  bool mayRunInPlace(size_t i) const {
    return (flags & kInPlace) || ((flags & kInPlaceFirst) && i == 0);
  }
};

/// The contract of a known opcode, or nullptr.
const OpcodeInfo *opcodeInfo(Opcode op);
/// The mnemonic of a known opcode, or nullptr.
const char *opcodeName(Opcode op);
bool isKnownOpcode(uint16_t op);

} // namespace weipipe::rt

#endif // WEIPIPE_RUNTIME_OPCODES_H
