//===- Autodiff.cpp - the pipe-autodiff pass ------------------------------===//
//
// Part of weipipe. Differentiates each chunk of a pipe.model on its own, so
// that a schedule can place every chunk's F, B and W: the chunk becomes a
// function of its activations (weights read by nn.param, as in the model
// function) and nn's differentiate() does the rest.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Dialect/NN/NNOps.h"
#include "weipipe/Dialect/NN/Transforms/Passes.h"
#include "weipipe/Dialect/Pipe/PipeOps.h"
#include "weipipe/Dialect/Pipe/Transforms/Passes.h"

#include "mlir/IR/IRMapping.h"

namespace mlir::weipipe {
#define GEN_PASS_DEF_PIPEAUTODIFFPASS
#include "weipipe/Dialect/Pipe/Transforms/Passes.h.inc"
} // namespace mlir::weipipe

using namespace mlir;
using namespace mlir::weipipe;

std::string mlir::weipipe::chunkFunctionName(pipe::ModelOp model,
                                             pipe::ChunkOp chunk) {
  return (model.getSymName() + "_" + chunk.getSymName()).str();
}

pipe::ModelOp mlir::weipipe::lookupModel(ModuleOp module, StringRef name,
                                         StringRef pass) {
  auto model = module.lookupSymbol<pipe::ModelOp>(name);
  if (!model)
    module.emitError() << pass << ": no pipe.model '" << name << "'";
  return model;
}

namespace {

/// `chunk` as a func.func of its activation arguments.
func::FuncOp outlineChunk(OpBuilder &b, pipe::ModelOp model,
                          pipe::ChunkOp chunk) {
  MLIRContext *ctx = chunk.getContext();
  pipe::PipeDialect::ParamAttrHelper paramAttr(ctx);
  Block &body = chunk.getBody().front();
  SmallVector<Type> argTypes;
  SmallVector<unsigned> activationArgs;
  for (BlockArgument arg : body.getArguments())
    if (!chunk.getArgAttr(arg.getArgNumber(), paramAttr.getName())) {
      activationArgs.push_back(arg.getArgNumber());
      argTypes.push_back(arg.getType());
    }
  auto fn = func::FuncOp::create(
      b, chunk.getLoc(), chunkFunctionName(model, chunk),
      FunctionType::get(ctx, argTypes, chunk.getResultTypes()));
  Block *entry = fn.addEntryBlock();
  IRMapping map;
  for (auto [i, a] : llvm::enumerate(activationArgs)) {
    map.map(body.getArgument(a), entry->getArgument(i));
    if (DictionaryAttr attrs = chunk.getArgAttrDict(a))
      fn.setArgAttrs(i, attrs);
  }
  OpBuilder inner = OpBuilder::atBlockEnd(entry);
  for (BlockArgument arg : body.getArguments())
    if (auto name = chunk.getArgAttrOfType<FlatSymbolRefAttr>(
            arg.getArgNumber(), paramAttr.getName()))
      map.map(arg, nn::ParamOp::create(inner, arg.getLoc(), arg.getType(), name)
                       .getResult());
  for (Operation &op : body.without_terminator())
    inner.clone(op, map);
  SmallVector<Value> results;
  for (Value v : body.getTerminator()->getOperands())
    results.push_back(map.lookup(v));
  func::ReturnOp::create(inner, chunk.getLoc(), results);
  return fn;
}

struct PipeAutodiffPass
    : mlir::weipipe::impl::PipeAutodiffPassBase<PipeAutodiffPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    pipe::ModelOp modelOp = lookupModel(module, model, "pipe-autodiff");
    if (!modelOp)
      return signalPassFailure();
    OpBuilder b(module.getContext());
    b.setInsertionPointAfter(modelOp);
    for (auto chunk : modelOp.getBodyRegion().front().getOps<pipe::ChunkOp>()) {
      func::FuncOp fn = outlineChunk(b, modelOp, chunk);
      if (failed(differentiate(fn, recompute)))
        return signalPassFailure();
    }
  }
};

} // namespace
