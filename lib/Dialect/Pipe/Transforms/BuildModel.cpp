//===- BuildModel.cpp - the pipe-build-model pass -------------------------===//
//
// Part of weipipe. Cuts a model function into a pipe.model along the layers
// that nn-discover-layers finds: prologue, one chunk per layer, epilogue.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Dialect/NN/NNOps.h"
#include "weipipe/Dialect/NN/Transforms/Passes.h"
#include "weipipe/Dialect/Pipe/PipeOps.h"
#include "weipipe/Dialect/Pipe/Transforms/Passes.h"

#include "mlir/IR/IRMapping.h"
#include "mlir/Transforms/RegionUtils.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/MapVector.h"

namespace mlir::weipipe {
#define GEN_PASS_DEF_PIPEBUILDMODELPASS
#include "weipipe/Dialect/Pipe/Transforms/Passes.h.inc"
} // namespace mlir::weipipe

using namespace mlir;
using namespace mlir::weipipe;

namespace {

/// Builds the chunks of `fn`, cut as `layers` says.
class ModelBuilder {
public:
  ModelBuilder(func::FuncOp fn, const LayerStructure &layers)
      : fn_(fn), s_(layers) {
    const size_t numParts = s_.layerBegins.size() + 2;
    parts_.resize(numParts);
    for (size_t i = 0; i < s_.ops.size(); ++i) {
      size_t p = partAt(i);
      partOf_[s_.ops[i]] = p;
      parts_[p].push_back(s_.ops[i]);
    }
  }

  LogicalResult build(OpBuilder &b) {
    auto model =
        pipe::ModelOp::create(b, fn_.getLoc(), (fn_.getName() + "_model").str(),
                              int64_t(s_.layerBegins.size()));
    OpBuilder inside = OpBuilder::atBlockEnd(&model.getBodyRegion().front());
    for (size_t p = 0; p < parts_.size(); ++p)
      if (failed(buildChunk(inside, p)))
        return failure();
    return success();
  }

private:
  /// 0: prologue, 1..L: layer l - 1, L + 1: epilogue.
  size_t partAt(size_t i) const {
    if (i < s_.prologueEnd)
      return 0;
    if (i >= s_.epilogueBegin)
      return s_.layerBegins.size() + 1;
    size_t l = 0;
    while (l + 1 < s_.layerBegins.size() && i >= s_.layerBegins[l + 1])
      ++l;
    return l + 1;
  }

  /// Computed from constants alone (no argument, no parameter): cloned into
  /// each chunk that reads it instead of sent between stages.
  bool constantOnly(Operation *op) {
    auto it = constantOnly_.find(op);
    if (it != constantOnly_.end())
      return it->second;
    bool result = !isa<nn::ParamOp>(op);
    for (Value v : op->getOperands()) {
      Operation *def = v.getDefiningOp();
      if (!result || !def || !constantOnly(def)) {
        result = false;
        break;
      }
    }
    return constantOnly_[op] = result;
  }

  LogicalResult buildChunk(OpBuilder &b, size_t p) {
    ArrayRef<Operation *> ops = parts_[p];
    llvm::SetVector<Operation *> mine(ops.begin(), ops.end());
    // Inputs: activations from outside (earlier chunks, the function's
    // arguments), then weights, each once, in first-use order.
    llvm::SetVector<Value> activations;
    llvm::MapVector<StringAttr, Value> weights;
    for (Operation *op : ops)
      for (Value v : op->getOperands()) {
        Operation *def = v.getDefiningOp();
        if (auto param = dyn_cast_or_null<nn::ParamOp>(def))
          weights.insert({param.getNameAttr().getAttr(), v});
        else if (!def || (!mine.contains(def) && !constantOnly(def)))
          activations.insert(v);
      }
    // Outputs: what later chunks (unless they recompute it from constants)
    // or the function's result read.
    Operation *ret = fn_.getBody().front().getTerminator();
    SmallVector<Value> outputs;
    for (Operation *op : ops)
      for (Value r : op->getResults())
        if (llvm::any_of(r.getUsers(), [&](Operation *u) {
              if (u == ret)
                return true;
              auto it = partOf_.find(u);
              return it != partOf_.end() && it->second > p &&
                     !constantOnly(op);
            }))
          outputs.push_back(r);

    SmallVector<Type> argTypes, resultTypes;
    for (Value v : activations)
      argTypes.push_back(v.getType());
    for (auto &w : weights)
      argTypes.push_back(w.second.getType());
    for (Value v : outputs)
      resultTypes.push_back(v.getType());
    const size_t L = s_.layerBegins.size();
    std::string name = p == 0       ? "prologue"
                       : p == L + 1 ? "epilogue"
                                    : "layer" + std::to_string(p - 1);
    pipe::ChunkKind kind = p == 0       ? pipe::ChunkKind::prologue
                           : p == L + 1 ? pipe::ChunkKind::epilogue
                                        : pipe::ChunkKind::layers;
    std::optional<int64_t> first, count;
    if (kind == pipe::ChunkKind::layers) {
      first = int64_t(p - 1);
      count = 1;
    }
    auto chunk = pipe::ChunkOp::create(
        b, fn_.getLoc(), name, kind,
        FunctionType::get(b.getContext(), argTypes, resultTypes), first, count);
    Block *body = new Block();
    chunk.getBody().push_back(body);
    IRMapping map;
    for (Value v : activations)
      map.map(v, body->addArgument(v.getType(), v.getLoc()));
    pipe::PipeDialect::ParamAttrHelper paramAttr(b.getContext());
    for (auto &w : weights) {
      map.map(w.second,
              body->addArgument(w.second.getType(), w.second.getLoc()));
      chunk.setArgAttr(body->getNumArguments() - 1, paramAttr.getName(),
                       FlatSymbolRefAttr::get(w.first));
    }
    OpBuilder inner = OpBuilder::atBlockEnd(body);
    // Constants and what is computed from them alone: cloned where read.
    std::function<void(Value)> materialize = [&](Value v) {
      if (map.contains(v))
        return;
      Operation *def = v.getDefiningOp();
      for (Value o : def->getOperands())
        materialize(o);
      inner.clone(*def, map);
    };
    for (Operation *op : ops) {
      for (Value v : op->getOperands())
        materialize(v);
      inner.clone(*op, map);
    }
    SmallVector<Value> yielded;
    for (Value v : outputs)
      yielded.push_back(map.lookup(v));
    pipe::YieldOp::create(inner, fn_.getLoc(), yielded);
    // What only later chunks read and they recompute (a value made from
    // constants) is dead here.
    for (Operation &op : llvm::make_early_inc_range(llvm::reverse(*body)))
      if (isOpTriviallyDead(&op))
        op.erase();
    return success();
  }

  func::FuncOp fn_;
  const LayerStructure &s_;
  std::vector<SmallVector<Operation *>> parts_;
  llvm::DenseMap<Operation *, size_t> partOf_;
  llvm::DenseMap<Operation *, bool> constantOnly_;
};

struct PipeBuildModelPass
    : mlir::weipipe::impl::PipeBuildModelPassBase<PipeBuildModelPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto fn = module.lookupSymbol<func::FuncOp>(function);
    if (!fn || fn.isExternal()) {
      module.emitError() << "pipe-build-model: no function '" << function
                         << "' with a body";
      return signalPassFailure();
    }
    FailureOr<LayerStructure> layers = discoverLayers(fn);
    if (failed(layers))
      return signalPassFailure();
    if (layers->layerBegins.empty()) {
      fn.emitError() << "pipe-build-model: '" << fn.getName()
                     << "' has no repeated block (" << layers->ops.size()
                     << " ops), so it has no layers to distribute over "
                        "ranks; it trains on one rank";
      return signalPassFailure();
    }
    OpBuilder b(module.getContext());
    b.setInsertionPointAfter(fn);
    if (failed(ModelBuilder(fn, *layers).build(b)))
      return signalPassFailure();
  }
};

} // namespace
