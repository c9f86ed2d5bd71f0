//===- NNDialect.cpp - the nn dialect -------------------------------------===//
//
// Part of weipipe.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Dialect/NN/NNDialect.h"
#include "weipipe/Dialect/NN/NNOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::weipipe::nn;

#include "weipipe/Dialect/NN/NNDialect.cpp.inc"
#include "weipipe/Dialect/NN/NNEnums.cpp.inc"

void NNDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "weipipe/Dialect/NN/NNOps.cpp.inc"
      >();
}

Operation *NNDialect::materializeConstant(OpBuilder &builder, Attribute value,
                                          Type type, Location loc) {
  auto typed = dyn_cast<TypedAttr>(value);
  if (!typed || typed.getType() != type || !isa<ElementsAttr>(value))
    return nullptr;
  return ConstantOp::create(builder, loc, type, typed);
}

//===----------------------------------------------------------------------===//
// Discardable attributes
//===----------------------------------------------------------------------===//

namespace mlir::weipipe::nn {

StringRef autodiffRoleName(AutodiffRole role) {
  switch (role) {
  case AutodiffRole::Forward:
    return "forward";
  case AutodiffRole::Backward:
    return "backward";
  case AutodiffRole::BackwardInput:
    return "backward_input";
  case AutodiffRole::BackwardWeight:
    return "backward_weight";
  }
  llvm_unreachable("unknown AutodiffRole");
}

std::optional<AutodiffRole> parseAutodiffRole(StringRef name) {
  for (AutodiffRole r :
       {AutodiffRole::Forward, AutodiffRole::Backward,
        AutodiffRole::BackwardInput, AutodiffRole::BackwardWeight})
    if (autodiffRoleName(r) == name)
      return r;
  return std::nullopt;
}

std::optional<AutodiffRole> autodiffRole(Operation *op) {
  if (StringAttr a =
          NNDialect::AutodiffAttrHelper(op->getContext()).getAttr(op))
    return parseAutodiffRole(a.getValue());
  return std::nullopt;
}

void setAutodiffRole(Operation *op, AutodiffRole role, StringRef of) {
  MLIRContext *ctx = op->getContext();
  NNDialect::AutodiffAttrHelper(ctx).setAttr(
      op, StringAttr::get(ctx, autodiffRoleName(role)));
  NNDialect::AutodiffOfAttrHelper(ctx).setAttr(op, StringAttr::get(ctx, of));
}

Operation *lookupAutodiffFunction(Operation *module, StringRef of,
                                  AutodiffRole role) {
  NNDialect::AutodiffOfAttrHelper ofHelper(module->getContext());
  for (Region &r : module->getRegions())
    for (Operation &op : r.getOps())
      if (autodiffRole(&op) == role) {
        StringAttr a = ofHelper.getAttr(&op);
        if (a && a.getValue() == of)
          return &op;
      }
  return nullptr;
}

} // namespace mlir::weipipe::nn

namespace {
/// The declared type of a discardable attribute, checked by name.
LogicalResult checkNNAttribute(Operation *op, NamedAttribute attr,
                               bool onArgument) {
  MLIRContext *ctx = op->getContext();
  StringAttr name = attr.getName();
  Attribute v = attr.getValue();
  auto expect = [&](bool ok, StringRef what) -> LogicalResult {
    if (ok)
      return success();
    return op->emitOpError()
           << "'" << name.getValue() << "' must be " << what << ", got " << v;
  };
  if (onArgument) {
    if (name == NNDialect::NameAttrHelper(ctx).getName())
      return expect(isa<StringAttr>(v), "a string");
    return op->emitOpError()
           << "unknown nn argument attribute '" << name.getValue() << "'";
  }
  if (name == NNDialect::FrozenInitializersAttrHelper(ctx).getName())
    return expect(isa<DictionaryAttr>(v), "a dictionary");
  if (name == NNDialect::SourceAttrHelper(ctx).getName() ||
      name == NNDialect::AutodiffOfAttrHelper(ctx).getName())
    return expect(isa<StringAttr>(v), "a string");
  if (name == NNDialect::AutodiffAttrHelper(ctx).getName()) {
    auto s = dyn_cast<StringAttr>(v);
    return expect(s && parseAutodiffRole(s.getValue()),
                  "forward, backward, backward_input or backward_weight");
  }
  if (name == NNDialect::SavedAttrHelper(ctx).getName() ||
      name == NNDialect::TransferAttrHelper(ctx).getName()) {
    auto i = dyn_cast<IntegerAttr>(v);
    return expect(i && !i.getValue().isNegative(), "a non-negative integer");
  }
  if (name == NNDialect::RecomputeAttrHelper(ctx).getName())
    return expect(isa<BoolAttr>(v), "a bool");
  if (name == NNDialect::ArenaAttrHelper(ctx).getName()) {
    auto a = dyn_cast<DenseI64ArrayAttr>(v);
    return expect(
        a && a.size() >= int64_t(op->getNumResults()) &&
            llvm::all_of(a.asArrayRef(), [](int64_t o) { return o >= -1; }),
        "an array of offsets >= -1, one per result at least");
  }
  if (name == NNDialect::LayerAttrHelper(ctx).getName()) {
    auto i = dyn_cast<IntegerAttr>(v);
    return expect(i && i.getInt() >= -2,
                  "a layer index, -1 (prologue) or -2 (epilogue)");
  }
  if (name == NNDialect::ArenaBytesAttrHelper(ctx).getName()) {
    auto i = dyn_cast<IntegerAttr>(v);
    return expect(i && !i.getValue().isNegative(), "a non-negative integer");
  }
  return op->emitOpError() << "unknown nn attribute '" << name.getValue()
                           << "'";
}
} // namespace

LogicalResult NNDialect::verifyOperationAttribute(Operation *op,
                                                  NamedAttribute attr) {
  return checkNNAttribute(op, attr, /*onArgument=*/false);
}

LogicalResult NNDialect::verifyRegionArgAttribute(Operation *op,
                                                  unsigned /*regionIndex*/,
                                                  unsigned /*argIndex*/,
                                                  NamedAttribute attr) {
  return checkNNAttribute(op, attr, /*onArgument=*/true);
}
