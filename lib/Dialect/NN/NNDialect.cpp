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
