//===- Autodiff.cpp - the nn-autodiff pass --------------------------------===//
//
// Part of weipipe. Reverse-mode differentiation of a loss function into the
// forward F, the input-gradient pass B, the weight-gradient pass W and the
// fused backward BW (see Passes.td). The gradient of each op comes from
// nn::buildGradient; this file only orders, splits and links.
//
// How: the function is cloned into a scratch function, the backward ops are
// appended to it (seeded by a `dloss` argument), and the ops are then
// partitioned: W is every backward op whose results feed only weight-gradient
// accumulation, B is the rest. Each output function is cut out of the
// scratch function; a value it uses but does not compute becomes an argument
// (saved activations, B-to-W transfers), except parameter reads and
// constants, which are re-emitted, and, with `recompute`, forward values,
// which are recomputed from the function's arguments.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Dialect/NN/NNGradients.h"
#include "weipipe/Dialect/NN/NNOps.h"
#include "weipipe/Dialect/NN/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringSet.h"

namespace mlir::weipipe {
#define GEN_PASS_DEF_NNAUTODIFFPASS
#include "weipipe/Dialect/NN/Transforms/Passes.h.inc"
} // namespace mlir::weipipe

using namespace mlir;
using namespace mlir::weipipe;

namespace {
bool isFloatTensor(Type t) {
  auto rt = dyn_cast<RankedTensorType>(t);
  return rt && isa<FloatType>(rt.getElementType());
}

/// Cheap to re-emit in any function instead of passing it along.
bool isRematerializable(Operation *op) {
  return isa<nn::ParamOp, nn::ConstantOp>(op);
}

/// The axis along which the unit-step slices that are `v`'s only uses
/// partition it, if they do (at least two of them, full range elsewhere).
std::optional<int64_t> tiledAxis(Value v) {
  auto type = dyn_cast<RankedTensorType>(v.getType());
  if (!type || !isa<FloatType>(type.getElementType()))
    return std::nullopt;
  ArrayRef<int64_t> shape = type.getShape();
  SmallVector<nn::SliceOp> slices;
  for (Operation *user : v.getUsers()) {
    auto s = dyn_cast<nn::SliceOp>(user);
    if (!s || llvm::any_of(s.getSteps(), [](int64_t st) { return st != 1; }))
      return std::nullopt;
    slices.push_back(s);
  }
  if (slices.size() < 2)
    return std::nullopt;
  std::optional<int64_t> axis;
  for (nn::SliceOp s : slices)
    for (size_t d = 0; d < shape.size(); ++d)
      if (s.getStarts()[d] != 0 || s.getEnds()[d] != shape[d]) {
        if (axis && *axis != int64_t(d))
          return std::nullopt;
        axis = d;
      }
  if (!axis)
    return std::nullopt;
  SmallVector<std::pair<int64_t, int64_t>> ranges;
  for (nn::SliceOp s : slices)
    ranges.push_back({s.getStarts()[*axis], s.getEnds()[*axis]});
  llvm::sort(ranges);
  int64_t at = 0;
  for (auto [lo, hi] : ranges) {
    if (lo != at)
      return std::nullopt;
    at = hi;
  }
  if (at != shape[*axis])
    return std::nullopt;
  return axis;
}

LogicalResult differentiateBody(func::FuncOp fn, bool recompute) {
  MLIRContext *ctx = fn.getContext();
  OpBuilder mb(fn);
  // Scratch function: the forward, then the backward appended to it.
  auto scratch = cast<func::FuncOp>(mb.clone(*fn.getOperation()));
  scratch.setName((fn.getName() + "_autodiff_scratch").str());
  Block &body = scratch.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  // Every float result gets a seed argument, the gradient of the loss with
  // respect to it: `dloss` for a loss function, the output gradients a
  // later pipeline chunk sends back for a chunk.
  SmallVector<Value> outputs(ret.getOperands());
  unsigned numArgs = body.getNumArguments();
  SmallVector<Value> seeds;
  for (Value v : outputs)
    if (isFloatTensor(v.getType()))
      seeds.push_back(body.addArgument(v.getType(), fn.getLoc()));

  SmallVector<Operation *> forward;
  for (Operation &op : body.without_terminator())
    forward.push_back(&op);
  llvm::DenseSet<Operation *> forwardSet(forward.begin(), forward.end());

  // Activity: a value needs a gradient only if it depends on a parameter
  // (or a float argument) through ops that pass gradients. Constants, such
  // as frozen norm scales, rotary tables and masks, get none.
  llvm::DenseSet<Value> active;
  for (unsigned i = 0; i < numArgs; ++i)
    if (isFloatTensor(body.getArgument(i).getType()))
      active.insert(body.getArgument(i));
  for (Operation *op : forward) {
    bool dependent =
        isa<nn::ParamOp>(op) || (!nn::hasNoGradient(op) &&
                                 llvm::any_of(op->getOperands(), [&](Value v) {
                                   return active.contains(v);
                                 }));
    if (dependent)
      for (Value r : op->getResults())
        if (isFloatTensor(r.getType()))
          active.insert(r);
  }

  OpBuilder b(ret);
  llvm::DenseMap<Value, Value> grads;
  {
    size_t k = 0;
    for (Value v : outputs)
      if (isFloatTensor(v.getType())) {
        Value &acc = grads[v];
        Value seed = seeds[k++];
        // A value returned twice: both seeds add up.
        acc = acc ? nn::AddOp::create(b, fn.getLoc(), v.getType(), acc, seed)
                        .getResult()
                  : seed;
      }
  }
  SmallVector<Value> dOperands;
  // A value consumed only by slices that tile one axis (a fused qkv
  // projection split three ways) gets the concat of its pieces' gradients,
  // not a zero-filled scatter and an add per piece.
  llvm::DenseMap<Value, SmallVector<std::pair<nn::SliceOp, Value>>> pieces;
  auto joinPieces = [&](Value v) {
    auto it = pieces.find(v);
    if (it == pieces.end())
      return;
    int64_t axis = *tiledAxis(v);
    SmallVector<nn::SliceOp> slices;
    for (Operation *user : v.getUsers())
      slices.push_back(cast<nn::SliceOp>(user));
    llvm::sort(slices, [&](nn::SliceOp x, nn::SliceOp y) {
      return x.getStarts()[axis] < y.getStarts()[axis];
    });
    SmallVector<Value> parts;
    for (nn::SliceOp slice : slices) {
      Value g;
      for (auto &[sl, grad] : it->second)
        if (sl == slice)
          g = grad;
      if (!g) {
        auto t = cast<RankedTensorType>(slice.getType());
        g = nn::ConstantOp::create(
            b, slice.getLoc(),
            DenseElementsAttr::get(t, b.getZeroAttr(t.getElementType())));
      }
      parts.push_back(g);
    }
    Value joined = nn::ConcatOp::create(b, v.getLoc(), v.getType(), parts,
                                        static_cast<uint64_t>(axis));
    Value &acc = grads[v];
    acc = acc ? nn::AddOp::create(b, v.getLoc(), v.getType(), acc, joined)
                    .getResult()
              : joined;
    pieces.erase(it);
  };
  for (Operation *op : llvm::reverse(forward)) {
    if (op->getNumResults() != 1)
      continue;
    joinPieces(op->getResult(0));
    Value dy = grads.lookup(op->getResult(0));
    if (!dy)
      continue;
    if (auto param = dyn_cast<nn::ParamOp>(op)) {
      // Read only through slices that tile it (a depthwise kernel's taps,
      // a fused weight split three ways): the joined gradient.
      nn::AccumulateGradOp::create(b, op->getLoc(), param.getNameAttr(), dy);
      continue;
    }
    if (auto slice = dyn_cast<nn::SliceOp>(op);
        slice && tiledAxis(slice.getInput())) {
      pieces[slice.getInput()].push_back({slice, dy});
      continue;
    }
    SmallVector<bool> needed;
    for (Value operand : op->getOperands())
      needed.push_back(active.contains(operand));
    if (failed(nn::buildGradient(b, op, dy, needed, dOperands)))
      return failure();
    for (auto [operand, g, want] :
         llvm::zip(op->getOperands(), dOperands, needed)) {
      if (!g || !want)
        continue;
      if (auto param = operand.getDefiningOp<nn::ParamOp>()) {
        // Every use adds its part: tied parameters sum all their uses.
        nn::AccumulateGradOp::create(b, op->getLoc(), param.getNameAttr(), g);
        continue;
      }
      Value &acc = grads[operand];
      acc = acc ? nn::AddOp::create(b, op->getLoc(), g.getType(), acc, g)
                      .getResult()
                : g;
    }
  }
  for (unsigned i = 0; i < numArgs; ++i)
    joinPieces(body.getArgument(i));
  SmallVector<Value> dargs;
  for (unsigned i = 0; i < numArgs; ++i) {
    BlockArgument a = body.getArgument(i);
    if (!isFloatTensor(a.getType()))
      continue;
    Value g = grads.lookup(a);
    if (!g) // No path from this argument to the loss: a zero gradient.
      g = nn::ConstantOp::create(
          b, fn.getLoc(),
          DenseElementsAttr::get(
              cast<ShapedType>(a.getType()),
              b.getZeroAttr(cast<ShapedType>(a.getType()).getElementType())));
    dargs.push_back(g);
  }

  // Drop backward ops that no gradient output needs (a multi-result rule
  // whose other results were wanted leaves them behind), and the gradients
  // that only fed them.
  llvm::DenseSet<Operation *> live;
  {
    SmallVector<Operation *> work;
    auto keep = [&](Value v) {
      Operation *def = v.getDefiningOp();
      if (def && !forwardSet.count(def) && live.insert(def).second)
        work.push_back(def);
    };
    body.walk([&](nn::AccumulateGradOp acc) {
      keep(acc.getGrad());
      live.insert(acc);
    });
    for (Value v : dargs)
      keep(v);
    while (!work.empty())
      for (Value v : work.pop_back_val()->getOperands())
        keep(v);
  }
  SmallVector<Value> liveGrads;
  for (auto &entry : grads) {
    Operation *def = entry.second.getDefiningOp();
    if (!def || forwardSet.count(def) || live.count(def))
      liveGrads.push_back(entry.second);
  }
  for (Operation &op :
       llvm::make_early_inc_range(llvm::reverse(body.without_terminator())))
    if (!forwardSet.count(&op) && !live.count(&op))
      op.erase();

  // A trained parameter that no gradient reaches would still be changed
  // by weight decay, which PyTorch never does to a parameter without a
  // gradient: it is a buffer the importer took for a weight.
  llvm::StringSet<> reached;
  body.walk([&](nn::AccumulateGradOp acc) { reached.insert(acc.getName()); });
  llvm::StringSet<> warned;
  for (Operation *op : forward)
    if (auto read = dyn_cast<nn::ParamOp>(op))
      if (!reached.contains(read.getName()) &&
          warned.insert(read.getName()).second)
        fn.emitWarning()
            << "nn-autodiff: no gradient reaches parameter '" << read.getName()
            << "' (it only feeds constant positions: rotary tables, masks, "
               "indices); it would change only by weight decay. It is "
               "probably a buffer: freeze it with --frozen-initializers";

  // Partition the backward. B computes the gradients of activations (every
  // value in `grads`, which the next rule down consumes) and what they
  // need; W is the rest: weight gradients and their accumulation.
  SmallVector<Operation *> backward;
  for (Operation &op : body.without_terminator())
    if (!forwardSet.count(&op))
      backward.push_back(&op);
  llvm::DenseSet<Operation *> bSet;
  SmallVector<Operation *> worklist;
  auto markB = [&](Value v) {
    Operation *def = v.getDefiningOp();
    if (def && !forwardSet.count(def) && bSet.insert(def).second)
      worklist.push_back(def);
  };
  for (Value v : liveGrads)
    markB(v);
  for (Value v : dargs)
    markB(v);
  while (!worklist.empty())
    for (Value v : worklist.pop_back_val()->getOperands())
      markB(v);
  llvm::DenseSet<Operation *> wSet;
  for (Operation *op : backward)
    if (!bSet.count(op) && !isRematerializable(op))
      wSet.insert(op);
  SmallVector<Operation *> bOps, wOps;
  for (Operation *op : backward)
    if (!isRematerializable(op))
      (wSet.count(op) ? wOps : bOps).push_back(op);

  // Values each part takes from elsewhere.
  auto isForwardValue = [&](Value v) {
    Operation *def = v.getDefiningOp();
    return def ? forwardSet.count(def) > 0
               : cast<BlockArgument>(v).getArgNumber() < numArgs;
  };
  llvm::SetVector<Value> saved;
  llvm::SetVector<Value> transfer;
  for (Operation *op : backward)
    for (Value v : op->getOperands()) {
      Operation *def = v.getDefiningOp();
      if (def && isRematerializable(def))
        continue;
      if (isForwardValue(v)) {
        if (!recompute)
          saved.insert(v);
      } else if (wSet.count(op) && (!def || !wSet.count(def))) {
        // B's results or a seed (a chunk whose output gradient feeds a
        // weight gradient directly: the embedding's) reach W as transfers.
        transfer.insert(v);
      }
    }
  if (recompute) {
    for (unsigned i = 0; i < numArgs; ++i)
      saved.insert(body.getArgument(i));
  }
  // Keep saved values in forward order (arguments first).
  SmallVector<Value> savedList(saved.begin(), saved.end());
  auto position = [&](Value v) -> int64_t {
    if (auto a = dyn_cast<BlockArgument>(v))
      return -int64_t(numArgs) + a.getArgNumber();
    return std::find(forward.begin(), forward.end(), v.getDefiningOp()) -
           forward.begin();
  };
  llvm::stable_sort(
      savedList, [&](Value a, Value b) { return position(a) < position(b); });

  std::string base = fn.getName().str();
  SmallVector<Type> savedTypes, transferTypes, dargTypes;
  for (Value v : savedList)
    savedTypes.push_back(v.getType());
  for (Value v : transfer)
    transferTypes.push_back(v.getType());
  for (Value v : dargs)
    dargTypes.push_back(v.getType());

  mb.setInsertionPoint(fn);
  // Each function is named after its role (for people) and marked with it
  // (for the compiler, which finds them by nn.autodiff / nn.autodiff_of).
  auto makeFn = [&](nn::AutodiffRole role, ArrayRef<Type> args,
                    ArrayRef<Type> results) {
    auto f = func::FuncOp::create(mb, fn.getLoc(),
                                  base + "_" + nn::autodiffRoleName(role).str(),
                                  FunctionType::get(ctx, args, results));
    nn::setAutodiffRole(f, role, base);
    f.addEntryBlock();
    return f;
  };

  // Clones `ops` into `f` (whose arguments are mapped already); pulls in
  // parameter reads and constants, and with recompute forward values, for
  // the ops and for the `results` the function returns (a zero gradient of
  // an input the loss does not read is a constant no op computes).
  auto fill = [&](func::FuncOp f, ArrayRef<Operation *> ops, IRMapping &map,
                  ArrayRef<Value> results) -> LogicalResult {
    OpBuilder fb = OpBuilder::atBlockEnd(&f.getBody().front());
    std::function<LogicalResult(Value)> resolve =
        [&](Value v) -> LogicalResult {
      if (map.contains(v))
        return success();
      Operation *def = v.getDefiningOp();
      if (def &&
          (isRematerializable(def) || (recompute && forwardSet.count(def)))) {
        for (Value o : def->getOperands())
          if (failed(resolve(o)))
            return failure();
        fb.clone(*def, map);
        return success();
      }
      return emitError(v.getLoc())
             << "nn-autodiff: internal error: a value of " << f.getName()
             << " is neither computed nor passed in: " << v;
    };
    for (Operation *op : ops) {
      for (Value v : op->getOperands())
        if (failed(resolve(v)))
          return failure();
      fb.clone(*op, map);
    }
    for (Value v : results)
      if (failed(resolve(v)))
        return failure();
    return success();
  };
  auto finish = [&](func::FuncOp f, IRMapping &map, ArrayRef<Value> results) {
    OpBuilder fb = OpBuilder::atBlockEnd(&f.getBody().front());
    SmallVector<Value> mapped;
    for (Value v : results)
      mapped.push_back(map.lookup(v));
    func::ReturnOp::create(fb, fn.getLoc(), mapped);
  };

  // F: args -> (outputs..., saved...). With recompute the saved values are the
  // arguments themselves, which the caller has.
  SmallVector<Type> fResults(fn.getFunctionType().getResults());
  SmallVector<Value> fReturned(outputs);
  if (!recompute) {
    llvm::append_range(fResults, savedTypes);
    llvm::append_range(fReturned, savedList);
  }
  auto fF = makeFn(nn::AutodiffRole::Forward, fn.getFunctionType().getInputs(),
                   fResults);
  {
    IRMapping map;
    for (unsigned i = 0; i < numArgs; ++i)
      map.map(body.getArgument(i), fF.getArgument(i));
    if (failed(fill(fF, forward, map, fReturned)))
      return failure();
    finish(fF, map, fReturned);
  }
  nn::NNDialect::SavedAttrHelper savedAttr(ctx);
  savedAttr.setAttr(fF, mb.getI64IntegerAttr(recompute ? 0 : saved.size()));
  // Copy the argument names (nn.name) so the artifact knows the inputs.
  for (unsigned i = 0; i < numArgs; ++i)
    if (DictionaryAttr attrs = fn.getArgAttrDict(i))
      fF.setArgAttrs(i, attrs);

  auto backwardFn = [&](nn::AutodiffRole role, ArrayRef<Operation *> ops,
                        bool takesSeeds, ArrayRef<Value> extraArgs,
                        ArrayRef<Value> results) -> func::FuncOp {
    SmallVector<Type> args(savedTypes);
    if (takesSeeds)
      for (Value s : seeds)
        args.push_back(s.getType());
    for (Value v : extraArgs)
      args.push_back(v.getType());
    SmallVector<Type> resultTypes;
    for (Value v : results)
      resultTypes.push_back(v.getType());
    auto f = makeFn(role, args, resultTypes);
    IRMapping map;
    unsigned i = 0;
    for (Value v : savedList)
      map.map(v, f.getArgument(i++));
    if (takesSeeds)
      for (Value s : seeds)
        map.map(s, f.getArgument(i++));
    for (Value v : extraArgs)
      map.map(v, f.getArgument(i++));
    if (failed(fill(f, ops, map, results)))
      return nullptr;
    finish(f, map, results);
    savedAttr.setAttr(f, mb.getI64IntegerAttr(saved.size()));
    nn::NNDialect::RecomputeAttrHelper(ctx).setAttr(f,
                                                    mb.getBoolAttr(recompute));
    return f;
  };

  SmallVector<Value> bResults(dargs);
  llvm::append_range(bResults, transfer);
  if (!backwardFn(nn::AutodiffRole::Backward, backward, true, {}, dargs))
    return failure();
  auto fB =
      backwardFn(nn::AutodiffRole::BackwardInput, bOps, true, {}, bResults);
  if (!fB)
    return failure();
  nn::NNDialect::TransferAttrHelper(ctx).setAttr(
      fB, mb.getI64IntegerAttr(transfer.size()));
  if (!backwardFn(nn::AutodiffRole::BackwardWeight, wOps, false,
                  transfer.getArrayRef(), {}))
    return failure();

  scratch.erase();
  fn.erase();
  return success();
}
} // namespace

LogicalResult mlir::weipipe::differentiate(func::FuncOp fn, bool recompute) {
  StringRef name = fn.getName();
  // A loss function returns one f32 scalar; a pipeline chunk returns the
  // tensors the next chunk reads. Either way something must carry a
  // gradient.
  if (!llvm::any_of(fn.getResultTypes(), isFloatTensor) ||
      !llvm::all_of(fn.getResultTypes(), llvm::IsaPred<RankedTensorType>))
    return fn.emitError() << "nn-autodiff: '" << name
                          << "' must return one f32 scalar loss (run "
                             "-nn-append-loss first) or the float tensors of "
                             "a pipeline chunk; it returns "
                          << fn.getFunctionType().getResults();
  if (!fn.getBody().hasOneBlock())
    return fn.emitError() << "nn-autodiff: '" << name
                          << "' must be one straight-line block";
  return differentiateBody(fn, recompute);
}

namespace {
struct NNAutodiffPass : weipipe::impl::NNAutodiffPassBase<NNAutodiffPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    func::FuncOp fn = lookupFunctionWithBody(module, function, "nn-autodiff");
    if (!fn)
      return signalPassFailure();
    auto lossType = fn.getFunctionType().getNumResults() == 1
                        ? dyn_cast<RankedTensorType>(fn.getResultTypes()[0])
                        : RankedTensorType();
    if (!lossType || lossType.getRank() != 0 ||
        !lossType.getElementType().isF32()) {
      fn.emitError() << "nn-autodiff: '" << fn.getName()
                     << "' must return one f32 scalar loss (run "
                        "-nn-append-loss first); it returns "
                     << fn.getFunctionType().getResults();
      return signalPassFailure();
    }
    if (failed(differentiate(fn, recompute)))
      return signalPassFailure();
  }
};
} // namespace
