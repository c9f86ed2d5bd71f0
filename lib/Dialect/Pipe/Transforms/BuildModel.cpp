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
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/MapVector.h"

namespace mlir::weipipe {
#define GEN_PASS_DEF_PIPEBUILDMODELPASS
#include "weipipe/Dialect/Pipe/Transforms/Passes.h.inc"
} // namespace mlir::weipipe

using namespace mlir;
using namespace mlir::weipipe;

namespace {

/// The forward work of one op, in floating-point operations: 2 per
/// multiply-add of a matmul, linear or attention (causal attention does
/// half), one per element of a result for everything else. Enough to
/// balance chunks: every layer of a model costs the same, and what differs
/// (embedding, head) is dominated by its matmuls.
int64_t forwardFlops(Operation *op) {
  auto numel = [](Value v) {
    return cast<ShapedType>(v.getType()).getNumElements();
  };
  if (auto l = dyn_cast<nn::LinearOp>(op)) {
    auto w = cast<ShapedType>(l.getWeight().getType());
    return 2 * numel(l.getResult()) *
           (l.getTransposeWeight() ? w.getDimSize(1) : w.getDimSize(0));
  }
  if (auto m = dyn_cast<nn::MatmulOp>(op)) {
    auto a = cast<ShapedType>(m.getLhs().getType());
    return 2 * numel(m.getResult()) * a.getShape().back();
  }
  if (auto a = dyn_cast<nn::AttentionOp>(op)) {
    // Scores and weighted sum: 2 x [Sq, Sk] x D per head, for q and out.
    auto q = cast<ShapedType>(a.getQuery().getType());
    auto k = cast<ShapedType>(a.getKey().getType());
    const int64_t Sk = k.getRank() == 4 ? k.getDimSize(2) : k.getDimSize(1);
    const int64_t flops = 2 * 2 * q.getNumElements() * Sk;
    return a.getCausal() ? flops / 2 : flops;
  }
  int64_t n = 0;
  for (Value r : op->getResults())
    n += numel(r);
  return n;
}

/// Contiguous groups of `costs` (one per layer) into `groups` groups whose
/// largest total is as small as it can be; returns each group's first layer.
/// Among equal maxima the later cut wins: the first groups take the extra
/// layers and the last, which feeds the head, the fewest (6 equal layers in
/// 4 groups: 2, 2, 1, 1).
SmallVector<size_t> balance(ArrayRef<int64_t> costs, size_t groups) {
  const size_t L = costs.size();
  SmallVector<int64_t> prefix(L + 1, 0);
  for (size_t i = 0; i < L; ++i)
    prefix[i + 1] = prefix[i] + costs[i];
  // best[g][i]: the smallest largest group of layers [0, i) in g groups.
  const int64_t inf = INT64_MAX;
  std::vector<std::vector<int64_t>> best(groups + 1,
                                         std::vector<int64_t>(L + 1, inf));
  std::vector<std::vector<size_t>> cut(groups + 1,
                                       std::vector<size_t>(L + 1, 0));
  best[0][0] = 0;
  for (size_t g = 1; g <= groups; ++g)
    for (size_t i = g; i <= L; ++i)
      for (size_t j = i - 1; j + 1 >= g && j < i; --j) {
        if (best[g - 1][j] == inf)
          continue;
        const int64_t m = std::max(best[g - 1][j], prefix[i] - prefix[j]);
        if (m < best[g][i] || (m == best[g][i] && j > cut[g][i])) {
          best[g][i] = m;
          cut[g][i] = j;
        }
        if (j == 0)
          break;
      }
  SmallVector<size_t> firsts(groups);
  for (size_t g = groups, i = L; g > 0; --g) {
    firsts[g - 1] = cut[g][i];
    i = cut[g][i];
  }
  return firsts;
}

/// Builds the chunks of `fn`, cut as `layers` says.
class ModelBuilder {
public:
  /// `firsts`: the first layer of each layers chunk, in order. With
  /// `ownedEnds` the prologue's ops go into the first layers chunk and the
  /// epilogue's into the last, and there are no prologue and epilogue chunks.
  ModelBuilder(func::FuncOp fn, const LayerStructure &layers,
               ArrayRef<size_t> firsts, bool ownedEnds)
      : fn_(fn), s_(layers), firsts_(firsts), ownedEnds_(ownedEnds) {
    const size_t numParts = firsts_.size() + 2;
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
    for (size_t p = 0; p < parts_.size(); ++p) {
      const bool end = p == 0 || p + 1 == parts_.size();
      if (end && ownedEnds_)
        continue;
      if (failed(buildChunk(inside, p)))
        return failure();
    }
    return success();
  }

private:
  /// 0: prologue, 1..C: layers chunk c - 1, C + 1: epilogue.
  size_t partAt(size_t i) const {
    if (i < s_.prologueEnd)
      return ownedEnds_ ? 1 : 0;
    if (i >= s_.epilogueBegin)
      return ownedEnds_ ? firsts_.size() : firsts_.size() + 1;
    size_t l = 0;
    while (l + 1 < s_.layerBegins.size() && i >= s_.layerBegins[l + 1])
      ++l;
    size_t c = 0;
    while (c + 1 < firsts_.size() && l >= firsts_[c + 1])
      ++c;
    return c + 1;
  }
  /// The first part that becomes a chunk.
  size_t firstPart() const { return ownedEnds_ ? 1 : 0; }
  size_t chunkLayers(size_t c) const {
    return (c + 1 < firsts_.size() ? firsts_[c + 1] : s_.layerBegins.size()) -
           firsts_[c];
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

  /// The values that cross from part p to part p + 1, in program order:
  /// computed in a part <= p (not from constants alone) and read by a part
  /// > p or returned. Every boundary is complete, so the chunks form a chain:
  /// a chunk passes on what it does not read itself, and a schedule only
  /// ever moves activations from one chunk to the next.
  SmallVector<Value> boundary(size_t p) {
    Operation *ret = fn_.getBody().front().getTerminator();
    SmallVector<Value> values;
    for (size_t d = 0; d <= p; ++d)
      for (Operation *op : parts_[d]) {
        if (constantOnly(op))
          continue;
        for (Value r : op->getResults())
          if (llvm::any_of(r.getUsers(), [&](Operation *u) {
                if (u == ret)
                  return true;
                auto it = partOf_.find(u);
                return it != partOf_.end() && it->second > p;
              }))
            values.push_back(r);
      }
    return values;
  }

  LogicalResult buildChunk(OpBuilder &b, size_t p) {
    ArrayRef<Operation *> ops = parts_[p];
    // Inputs: the boundary from the previous part, then the function's
    // arguments it reads (token ids, targets: the trainer fills them on
    // every rank), then weights, each once, in first-use order.
    llvm::SetVector<Value> activations;
    if (p > firstPart())
      for (Value v : boundary(p - 1))
        activations.insert(v);
    llvm::MapVector<StringAttr, Value> weights;
    for (Operation *op : ops)
      for (Value v : op->getOperands()) {
        Operation *def = v.getDefiningOp();
        if (auto param = dyn_cast_or_null<nn::ParamOp>(def))
          weights.insert({param.getNameAttr().getAttr(), v});
        else if (!def)
          activations.insert(v);
      }
    // Outputs: the boundary to the next part (the loss for the last).
    SmallVector<Value> outputs = boundary(p);
    SmallVector<Type> argTypes, resultTypes;
    for (Value v : activations)
      argTypes.push_back(v.getType());
    for (auto &w : weights)
      argTypes.push_back(w.second.getType());
    for (Value v : outputs)
      resultTypes.push_back(v.getType());
    const size_t C = firsts_.size();
    std::string name = p == 0       ? "prologue"
                       : p == C + 1 ? "epilogue"
                                    : "chunk" + std::to_string(p - 1);
    pipe::ChunkKind kind = p == 0       ? pipe::ChunkKind::prologue
                           : p == C + 1 ? pipe::ChunkKind::epilogue
                                        : pipe::ChunkKind::layers;
    std::optional<int64_t> first, count;
    if (kind == pipe::ChunkKind::layers) {
      first = int64_t(firsts_[p - 1]);
      count = int64_t(chunkLayers(p - 1));
    }
    auto chunk = pipe::ChunkOp::create(
        b, fn_.getLoc(), name, kind,
        FunctionType::get(b.getContext(), argTypes, resultTypes), first, count);
    int64_t cost = 0;
    for (Operation *op : ops)
      cost += forwardFlops(op);
    pipe::PipeDialect::CostAttrHelper(b.getContext())
        .setAttr(chunk, b.getI64IntegerAttr(cost));
    Block *body = new Block();
    chunk.getBody().push_back(body);
    IRMapping map;
    for (Value v : activations) {
      map.map(v, body->addArgument(v.getType(), v.getLoc()));
      // A graph input keeps its name (nn.name): the trainer fills it.
      if (auto arg = dyn_cast<BlockArgument>(v))
        if (DictionaryAttr attrs = fn_.getArgAttrDict(arg.getArgNumber()))
          chunk.setArgAttrs(body->getNumArguments() - 1, attrs);
    }
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
  ArrayRef<size_t> firsts_;
  bool ownedEnds_;
  std::vector<SmallVector<Operation *>> parts_;
  llvm::DenseMap<Operation *, size_t> partOf_;
  llvm::DenseMap<Operation *, bool> constantOnly_;
};

struct PipeBuildModelPass
    : mlir::weipipe::impl::PipeBuildModelPassBase<PipeBuildModelPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    func::FuncOp fn =
        lookupFunctionWithBody(module, function, "pipe-build-model");
    if (!fn)
      return signalPassFailure();
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
    const size_t L = layers->layerBegins.size();
    const size_t groups = chunks == 0 ? L : size_t(chunks);
    if (groups > L) {
      fn.emitError() << "pipe-build-model: cannot cut " << L << " layers into "
                     << groups << " chunks: there are more chunks than layers";
      return signalPassFailure();
    }
    if (ends != "chunks" && ends != "owned") {
      module.emitError() << "pipe-build-model: ends='" << ends
                         << "': expected chunks or owned";
      return signalPassFailure();
    }
    const bool owned = ends == "owned";
    auto flops = [&](size_t begin, size_t end) {
      int64_t c = 0;
      for (size_t i = begin; i < end; ++i)
        c += forwardFlops(layers->ops[i]);
      return c;
    };
    SmallVector<int64_t> costs;
    for (size_t l = 0; l < L; ++l)
      costs.push_back(flops(layers->layerBegins[l], layers->layerEnd(l)));
    // Owned ends weigh on the first and the last chunk.
    if (owned) {
      costs.front() += flops(0, layers->prologueEnd);
      costs.back() += flops(layers->epilogueBegin, layers->ops.size());
    }
    SmallVector<size_t> firsts = balance(costs, groups);
    OpBuilder b(module.getContext());
    b.setInsertionPointAfter(fn);
    if (failed(ModelBuilder(fn, *layers, firsts, owned).build(b)))
      return signalPassFailure();
  }
};

} // namespace
