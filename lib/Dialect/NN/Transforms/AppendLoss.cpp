//===- AppendLoss.cpp - the nn-append-loss pass ---------------------------===//
//
// Part of weipipe. Turns a function that returns logits into one that
// returns the next-token cross-entropy loss (see Passes.td).
//
//===----------------------------------------------------------------------===//

#include "weipipe/Dialect/NN/NNOps.h"
#include "weipipe/Dialect/NN/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace mlir::weipipe {
#define GEN_PASS_DEF_NNAPPENDLOSSPASS
#include "weipipe/Dialect/NN/Transforms/Passes.h.inc"
} // namespace mlir::weipipe

using namespace mlir;
using namespace mlir::weipipe;

namespace {
struct NNAppendLossPass
    : weipipe::impl::NNAppendLossPassBase<NNAppendLossPass> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp fn =
        lookupFunctionWithBody(getOperation(), function, "nn-append-loss");
    if (!fn)
      return signalPassFailure();
    auto ret = cast<func::ReturnOp>(fn.getBody().back().getTerminator());
    // A model that computes its own loss keeps it.
    for (Value v : ret.getOperands()) {
      auto t = cast<RankedTensorType>(v.getType());
      if (t.getRank() == 0 && t.getElementType().isF32() &&
          ret.getNumOperands() == 1) {
        mlir::emitRemark(fn.getLoc())
            << "the model already returns a scalar loss; keeping it";
        return;
      }
    }
    auto logitsType =
        ret.getNumOperands() >= 1
            ? dyn_cast<RankedTensorType>(ret.getOperand(0).getType())
            : RankedTensorType();
    if (!logitsType || logitsType.getRank() != 3 ||
        !isa<FloatType>(logitsType.getElementType())) {
      auto diag = fn.emitError()
                  << "nn-append-loss: the first result must be logits "
                     "[batch, sequence, vocab] or the function must return "
                     "one f32 scalar loss; results are:";
      for (Type t : fn.getResultTypes())
        diag << " " << t;
      return signalPassFailure();
    }
    ArrayRef<int64_t> bs = logitsType.getShape().drop_back();
    bool hasIds = llvm::any_of(fn.getArgumentTypes(), [&](Type t) {
      auto rt = cast<RankedTensorType>(t);
      return rt.getShape() == bs && isa<IntegerType>(rt.getElementType());
    });
    if (!hasIds) {
      fn.emitError() << "nn-append-loss: logits " << logitsType
                     << " need an integer token-id input of shape [" << bs[0]
                     << ", " << bs[1] << "] to be next-token logits";
      return signalPassFailure();
    }

    MLIRContext *ctx = &getContext();
    auto targetsType = RankedTensorType::get(bs, IntegerType::get(ctx, 64));
    unsigned argIndex = fn.getNumArguments();
    if (failed(fn.insertArgument(
            argIndex, targetsType,
            DictionaryAttr::get(
                ctx,
                {NamedAttribute(nn::NNDialect::NameAttrHelper(ctx).getName(),
                                StringAttr::get(ctx, "targets"))}),
            fn.getLoc()))) {
      fn.emitError() << "nn-append-loss: cannot add the targets argument";
      return signalPassFailure();
    }
    OpBuilder b(ret);
    Value logits = ret.getOperand(0);
    auto lossType = RankedTensorType::get({}, Float32Type::get(ctx));
    Value loss = nn::CrossEntropyOp::create(b, ret.getLoc(), lossType, logits,
                                            fn.getArgument(argIndex),
                                            b.getI64IntegerAttr(ignoreIndex));
    SmallVector<Value> results = {loss};
    if (keepLogits)
      results.push_back(logits);
    func::ReturnOp::create(b, ret.getLoc(), results);
    ret.erase();
    SmallVector<Type> resultTypes;
    for (Value v : results)
      resultTypes.push_back(v.getType());
    fn.setFunctionType(
        FunctionType::get(ctx, fn.getArgumentTypes(), resultTypes));
  }
};
} // namespace
