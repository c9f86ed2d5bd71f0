//===- DiscoverLayers.cpp - the nn-discover-layers pass -------------------===//
//
// Part of weipipe. Finds the repeated blocks of a model function (the layers
// a pipeline distributes): the longest run of consecutive copies of one op
// sequence, compared by structure, not by names. An op's signature is its
// name, attributes and result types, and for each operand what it is: a
// parameter or constant of a type (never which one: every layer reads its
// own weights, and the exporter renames them), a function argument, or the
// value of the op so many ops back. Block boundaries are then placed where
// the fewest values cross them (the residual stream), which is where a
// pipeline cuts.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Dialect/NN/NNOps.h"
#include "weipipe/Dialect/NN/Transforms/Passes.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/Hashing.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringExtras.h"

namespace mlir::weipipe {
#define GEN_PASS_DEF_NNDISCOVERLAYERSPASS
#include "weipipe/Dialect/NN/Transforms/Passes.h.inc"
} // namespace mlir::weipipe

using namespace mlir;
using namespace mlir::weipipe;

namespace {

bool isLeaf(Operation *op) { return isa<nn::ParamOp, nn::ConstantOp>(op); }

/// An op alone: name, attributes and result types.
llvm::hash_code looseSignature(Operation *op) {
  llvm::hash_code h = llvm::hash_value(op->getName().getStringRef());
  for (NamedAttribute a : op->getAttrs())
    if (!a.getName().getValue().starts_with("nn."))
      h = llvm::hash_combine(h, a.getName(), a.getValue());
  for (Type t : op->getResultTypes())
    h = llvm::hash_combine(h, t);
  return h;
}

/// An op and what its operands are: a parameter or constant of a type (never
/// which one), a function argument, or a computed value of a type (never
/// which op: layer 0 reads the embedding where the others read a layer, and
/// every layer reads values the prologue computes once, such as a mask).
llvm::hash_code signature(Operation *op,
                          const llvm::DenseMap<Operation *, size_t> &position,
                          ArrayRef<llvm::hash_code> loose) {
  llvm::hash_code h = loose[position.lookup(op)];
  for (Value v : op->getOperands()) {
    h = llvm::hash_combine(h, v.getType());
    Operation *def = v.getDefiningOp();
    if (!def)
      h = llvm::hash_combine(h, 1, cast<BlockArgument>(v).getArgNumber());
    else if (isLeaf(def))
      h = llvm::hash_combine(h, 2, def->getName().getStringRef());
    else
      h = llvm::hash_combine(h, 3);
  }
  return h;
}

} // namespace

FailureOr<LayerStructure> mlir::weipipe::discoverLayers(func::FuncOp fn) {
  if (!fn.getBody().hasOneBlock())
    return fn.emitError() << "nn-discover-layers: '" << fn.getName()
                          << "' must be one straight-line block";
  LayerStructure s;
  llvm::DenseMap<Operation *, size_t> position;
  for (Operation &op : fn.getBody().front().without_terminator())
    if (!isLeaf(&op)) {
      position[&op] = s.ops.size();
      s.ops.push_back(&op);
    }
  const size_t n = s.ops.size();
  std::vector<llvm::hash_code> loose(n), sig(n);
  for (size_t i = 0; i < n; ++i)
    loose[i] = looseSignature(s.ops[i]);
  for (size_t i = 0; i < n; ++i)
    sig[i] = signature(s.ops[i], position, loose);

  // The longest stretch with a period b repeated at least twice: a run of m
  // positions with sig[i] == sig[i + b] is m + b ops of period b. Ties go to
  // the smaller period: 4 layers, not 2 pairs of layers.
  size_t bestStart = 0, bestPeriod = 0, bestCover = 0;
  for (size_t b = 1; 2 * b <= n; ++b) {
    size_t run = 0;
    for (size_t i = 0; i + b <= n; ++i) {
      const bool match = i + b < n && sig[i] == sig[i + b];
      if (match) {
        ++run;
        continue;
      }
      if (run >= b) {
        const size_t start = i - run, count = (run + b) / b;
        if (count * b > bestCover) {
          bestCover = count * b;
          bestStart = start;
          bestPeriod = b;
        }
      }
      run = 0;
    }
  }
  if (bestPeriod == 0) {
    s.prologueEnd = s.epilogueBegin = n;
    return s; // no repeated block
  }
  // The boundary the fewest values cross (the residual stream), among the
  // rotations of the period that leave two whole blocks; then whole blocks
  // that match op for op (their operands may come from elsewhere: layer 0
  // reads the embedding, not a layer) join at either end. Ties go to the
  // shortest prologue.
  auto crossing = [&](size_t at) {
    size_t count = 0;
    for (size_t i = 0; i < at; ++i)
      for (Value r : s.ops[i]->getResults())
        if (llvm::any_of(r.getUsers(), [&](Operation *u) {
              auto it = position.find(u);
              return it == position.end() || it->second >= at;
            }))
          ++count;
    return count;
  };
  const size_t b = bestPeriod;
  auto sameOps = [&](size_t x, size_t y) { // blocks at x and y, loosely
    for (size_t k = 0; k < b; ++k)
      if (loose[x + k] != loose[y + k])
        return false;
    return true;
  };
  const size_t end = bestStart + bestCover;
  size_t fewest = SIZE_MAX, first = 0, last = 0;
  for (size_t at = bestStart; at < bestStart + b && at + 2 * b <= end; ++at) {
    const size_t c = crossing(at);
    if (c > fewest)
      continue;
    size_t lo = at, hi = at + (end - at) / b * b;
    while (lo >= b && sameOps(lo - b, lo))
      lo -= b;
    while (hi + b <= n && sameOps(hi - b, hi))
      hi += b;
    if (c < fewest || lo < first) {
      fewest = c;
      first = lo;
      last = hi;
    }
  }
  // The first and the last layer may carry one op more than the others
  // (an exporter's cast or scale where a value is first or last used): a
  // block of b + 1 ops that is its neighbour with one op inserted is a
  // layer too, not prologue or epilogue.
  auto oneExtra = [&](size_t x, size_t y) { // [x, x+b+1) vs block at y
    size_t skipped = 0;
    for (size_t i = 0, j = 0; i < b + 1; ++i) {
      if (j < b && loose[x + i] == loose[y + j]) {
        ++j;
        continue;
      }
      if (++skipped > 1)
        return false;
    }
    return skipped == 1;
  };
  const bool extraFirst = first >= b + 1 && oneExtra(first - b - 1, first);
  const bool extraLast = last + b + 1 <= n && oneExtra(last, last - b);
  if (extraFirst)
    s.layerBegins.push_back(first - b - 1);
  s.prologueEnd = extraFirst ? first - b - 1 : first;
  for (size_t at = first; at < last; at += b)
    s.layerBegins.push_back(at);
  if (extraLast)
    s.layerBegins.push_back(last);
  s.epilogueBegin = extraLast ? last + b + 1 : last;
  return s;
}

namespace {

/// "name ×k" lists of the ops in [begin, end).
std::string opCounts(ArrayRef<Operation *> ops) {
  llvm::MapVector<StringRef, int> counts;
  for (Operation *op : ops)
    ++counts[op->getName().stripDialect()];
  std::string out;
  for (auto [name, k] : counts) {
    if (!out.empty())
      out += ", ";
    out += name.str();
    if (k > 1)
      out += " x" + std::to_string(k);
  }
  return out;
}

/// The parameters the ops read, with their element counts.
void paramsOf(ArrayRef<Operation *> ops, llvm::SetVector<StringRef> &names,
              int64_t &values) {
  for (Operation *op : ops)
    for (Value v : op->getOperands())
      if (auto p = v.getDefiningOp<nn::ParamOp>())
        if (names.insert(p.getName()))
          values += cast<ShapedType>(p.getType()).getNumElements();
}

} // namespace

std::string mlir::weipipe::describeLayers(const LayerStructure &s) {
  ArrayRef<Operation *> ops(s.ops);
  if (s.layerBegins.empty())
    return "no repeated block (" + std::to_string(ops.size()) + " ops)";
  std::string text;
  llvm::raw_string_ostream os(text);
  auto part = [&](ArrayRef<Operation *> partOps,
                  llvm::SetVector<StringRef> &names) {
    int64_t values = 0;
    paramsOf(partOps, names, values);
    os << opCounts(partOps) << "; " << names.size() << " parameter(s), "
       << values << " values";
  };
  // The layers' length: a middle layer's (the first and the last may have
  // one op more).
  const size_t L = s.layerBegins.size(), mid = L / 2;
  const size_t b = s.layerEnd(mid) - s.layerBegins[mid];
  llvm::SetVector<StringRef> layer0, prologue, epilogue;
  os << L << " x layer of " << b << " ops (";
  part(ops.slice(s.layerBegins[mid], b), layer0);
  os << " each";
  for (size_t l = 0; l < L; l = l == 0 && L > 1 ? L - 1 : L)
    if (s.layerEnd(l) - s.layerBegins[l] != b)
      os << "; layer " << l << ": " << s.layerEnd(l) - s.layerBegins[l]
         << " ops";
  os << "); prologue: ";
  part(ops.take_front(s.prologueEnd), prologue);
  os << "; epilogue: ";
  part(ops.drop_front(s.epilogueBegin), epilogue);
  // A tied embedding and head: one parameter read at both ends, which a
  // pipeline must keep equal (its gradient is the sum of both uses).
  SmallVector<StringRef> tied;
  for (StringRef name : epilogue)
    if (prologue.contains(name))
      tied.push_back(name);
  if (!tied.empty())
    os << "; shared by prologue and epilogue: " << llvm::join(tied, ", ");
  return text;
}

namespace {

struct NNDiscoverLayersPass
    : weipipe::impl::NNDiscoverLayersPassBase<NNDiscoverLayersPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    func::FuncOp fn =
        lookupFunctionWithBody(module, function, "nn-discover-layers");
    if (!fn)
      return signalPassFailure();
    FailureOr<LayerStructure> found = discoverLayers(fn);
    if (failed(found))
      return signalPassFailure();
    const LayerStructure &s = *found;
    MLIRContext *ctx = &getContext();
    nn::NNDialect::LayerAttrHelper layerAttr(ctx);
    auto mark = [&](size_t begin, size_t end, int64_t layer) {
      for (size_t i = begin; i < end; ++i)
        layerAttr.setAttr(s.ops[i],
                          IntegerAttr::get(IntegerType::get(ctx, 64), layer));
    };
    ArrayRef<Operation *> ops(s.ops);
    if (s.layerBegins.empty()) {
      fn.emitRemark() << "nn-discover-layers: no repeated block in '"
                      << fn.getName() << "' (" << ops.size()
                      << " ops): it trains on one rank, not in a pipeline";
      return;
    }
    mark(0, s.prologueEnd, LayerStructure::kPrologue);
    for (size_t l = 0; l < s.layerBegins.size(); ++l)
      mark(s.layerBegins[l], s.layerEnd(l), int64_t(l));
    mark(s.epilogueBegin, ops.size(), LayerStructure::kEpilogue);

    fn.emitRemark() << "nn-discover-layers: " << describeLayers(s);
  }
};

} // namespace
