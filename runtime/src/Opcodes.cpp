//===- Opcodes.cpp - the opcode table, from Opcodes.def -------------------===//
//
// Part of weipipe's runtime.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/Opcodes.h"

#include <vector>

namespace weipipe::rt {
namespace {

#define WP_N(n) n, n
#define WP_RANGE(lo, hi) lo, hi
#define WP_MANY OpcodeInfo::kMany
#define WP_ACCUMULATES OpcodeInfo::kAccumulates
#define WP_ALWAYS_ACCUMULATES OpcodeInfo::kAlwaysAccumulates
#define WP_OPTIONAL_RESULTS OpcodeInfo::kOptionalResults
#define WP_INPLACE OpcodeInfo::kInPlace
#define WP_INPLACE_FIRST OpcodeInfo::kInPlaceFirst
#define WP_FUSES_WITH_NEXT OpcodeInfo::kFusesWithNext

constexpr OpcodeInfo kOpcodes[] = {
#define WP_OPCODE(Name, Id, Mnemonic, Operands, Results, Ints, Floats, Enum,   \
                  Flags)                                                       \
  {Opcode::Name, Mnemonic, Operands,     Results,                              \
   Ints,         Floats,   OpEnum::Enum, uint8_t(Flags)},
#include "weipipe/runtime/Opcodes.def"
};

#undef WP_N
#undef WP_RANGE
#undef WP_MANY
#undef WP_ACCUMULATES
#undef WP_ALWAYS_ACCUMULATES
#undef WP_OPTIONAL_RESULTS
#undef WP_INPLACE
#undef WP_INPLACE_FIRST
#undef WP_FUSES_WITH_NEXT

// The table's own consistency, checked once at compile time.
constexpr bool wellFormed() {
  for (const OpcodeInfo &i : kOpcodes) {
    if (i.minOperands > i.maxOperands || i.minResults > i.maxResults ||
        i.minInts > i.maxInts || i.maxResults == 0)
      return false;
    if (i.intsEnum != OpEnum::None && i.minInts == 0)
      return false;
    if ((i.flags & OpcodeInfo::kInPlace) &&
        (i.flags & OpcodeInfo::kInPlaceFirst))
      return false;
  }
  for (const OpcodeInfo &a : kOpcodes)
    for (const OpcodeInfo &b : kOpcodes)
      if (&a != &b && a.op == b.op)
        return false;
  return true;
}
static_assert(wellFormed(), "Opcodes.def: a contract is inconsistent");

} // namespace

const OpcodeInfo *opcodeInfo(Opcode op) {
  // Indexed by id: the executor asks for every instruction it runs.
  static const std::vector<const OpcodeInfo *> byId = [] {
    std::vector<const OpcodeInfo *> t;
    for (const OpcodeInfo &i : kOpcodes) {
      const size_t id = size_t(i.op);
      if (id >= t.size())
        t.resize(id + 1, nullptr);
      t[id] = &i;
    }
    return t;
  }();
  const size_t id = size_t(op);
  return id < byId.size() ? byId[id] : nullptr;
}

const char *opcodeName(Opcode op) {
  const OpcodeInfo *i = opcodeInfo(op);
  return i ? i->mnemonic : nullptr;
}

bool isKnownOpcode(uint16_t op) { return opcodeInfo(Opcode(op)) != nullptr; }

const char *enumName(OpEnum e) {
  switch (e) {
  case OpEnum::None:
    return "none";
  case OpEnum::BinaryOp:
    return "BinaryOp";
  case OpEnum::CompareOp:
    return "CompareOp";
  case OpEnum::LogicOp:
    return "LogicOp";
  case OpEnum::UnaryOp:
    return "UnaryOp";
  case OpEnum::GeluApprox:
    return "GeluApprox";
  case OpEnum::ReduceOp:
    return "ReduceOp";
  }
  return "?";
}

} // namespace weipipe::rt
