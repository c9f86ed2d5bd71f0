//===- NNOps.cpp - nn dialect ops -----------------------------------------===//
//
// Part of weipipe. Verifiers check every invariant that can be checked on one
// op: shapes agree with the op's semantics, element types agree, axes are in
// range, heads divide hidden sizes, and GQA groups are whole.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Dialect/NN/NNOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallSet.h"

using namespace mlir;
using namespace mlir::weipipe::nn;

//===----------------------------------------------------------------------===//
// Shape helpers
//===----------------------------------------------------------------------===//

std::optional<SmallVector<int64_t>>
mlir::weipipe::nn::broadcastShapes(ArrayRef<ArrayRef<int64_t>> shapes) {
  size_t rank = 0;
  for (ArrayRef<int64_t> s : shapes)
    rank = std::max(rank, s.size());
  SmallVector<int64_t> out(rank, 1);
  for (ArrayRef<int64_t> s : shapes) {
    size_t off = rank - s.size();
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t &o = out[off + i];
      if (s[i] == o || s[i] == 1)
        continue;
      if (o != 1)
        return std::nullopt;
      o = s[i];
    }
  }
  return out;
}

std::optional<SmallVector<int64_t>>
mlir::weipipe::nn::matmulShape(ArrayRef<int64_t> lhs, ArrayRef<int64_t> rhs,
                               std::string *why) {
  auto fail = [&](const Twine &msg) -> std::optional<SmallVector<int64_t>> {
    if (why)
      *why = msg.str();
    return std::nullopt;
  };
  if (lhs.empty() || rhs.empty())
    return fail("matmul operands must have rank >= 1");
  SmallVector<int64_t> a(lhs), b(rhs);
  bool promotedA = a.size() == 1, promotedB = b.size() == 1;
  if (promotedA)
    a.insert(a.begin(), 1);
  if (promotedB)
    b.push_back(1);
  int64_t k1 = a.back(), k2 = b[b.size() - 2];
  if (k1 != k2)
    return fail("contracting dimensions differ: " + Twine(k1) + " vs " +
                Twine(k2));
  ArrayRef<int64_t> batchA = ArrayRef<int64_t>(a).drop_back(2);
  ArrayRef<int64_t> batchB = ArrayRef<int64_t>(b).drop_back(2);
  auto batch = broadcastShapes({batchA, batchB});
  if (!batch)
    return fail("batch dimensions do not broadcast");
  SmallVector<int64_t> out = *batch;
  if (!promotedA)
    out.push_back(a[a.size() - 2]);
  if (!promotedB)
    out.push_back(b.back());
  return out;
}

int64_t mlir::weipipe::nn::sliceLength(int64_t start, int64_t end,
                                       int64_t step) {
  // ceil(distance / |step|), written so that no intermediate overflows for
  // any nonzero step (INT64_MAX, INT64_MIN included): with clamped bounds the
  // distance is at most size + 1. For a negative step, C++ division truncates
  // toward zero, so (start - end - 1) / step == -floor((start - end - 1) /
  // |step|) without negating step.
  if (step > 0)
    return end > start ? (end - start - 1) / step + 1 : 0;
  return start > end ? 1 - (start - end - 1) / step : 0;
}

namespace {
RankedTensorType tensorType(Value v) {
  return cast<RankedTensorType>(v.getType());
}

std::string shapeStr(ArrayRef<int64_t> shape) {
  std::string s = "[";
  llvm::raw_string_ostream os(s);
  llvm::interleaveComma(shape, os);
  os << "]";
  return s;
}

LogicalResult sameElementType(Operation *op, Value a, Value b, StringRef an,
                              StringRef bn) {
  Type ea = tensorType(a).getElementType(), eb = tensorType(b).getElementType();
  if (ea != eb)
    return op->emitOpError() << an << " element type " << ea << " differs from "
                             << bn << " element type " << eb;
  return success();
}

LogicalResult expectShape(Operation *op, Value v, ArrayRef<int64_t> want,
                          StringRef name) {
  ArrayRef<int64_t> got = tensorType(v).getShape();
  if (got != want)
    return op->emitOpError() << name << " shape " << shapeStr(got)
                             << " does not match expected " << shapeStr(want);
  return success();
}

LogicalResult checkAxis(Operation *op, int64_t axis, int64_t rank,
                        StringRef name = "axis") {
  if (axis < 0 || axis >= rank)
    return op->emitOpError()
           << name << " " << axis << " out of range for rank " << rank;
  return success();
}
} // namespace

//===----------------------------------------------------------------------===//
// Parameters and constants
//===----------------------------------------------------------------------===//

bool mlir::weipipe::nn::isMatrixShape(ArrayRef<int64_t> shape) {
  return llvm::count_if(shape, [](int64_t d) { return d > 1; }) >= 2;
}

bool ParameterOp::decays() {
  if (std::optional<bool> d = getDecay())
    return *d;
  return isMatrixShape(getParamType().getShape());
}

LogicalResult ParameterOp::verify() {
  if (getFile().has_value() != getOffset().has_value() ||
      getFile().has_value() != getLength().has_value())
    return emitOpError() << "file, offset and length must be given together";
  if (getAliases().has_value() != getAliasesTransposed().has_value() ||
      (getAliases() && getAliases()->size() != getAliasesTransposed()->size()))
    return emitOpError()
           << "aliases and aliases_transposed must have the same length";
  if (!getLength())
    return success();
  auto type = cast<RankedTensorType>(getParamType());
  int64_t bytes = type.getNumElements() * (type.getElementTypeBitWidth() / 8);
  if (static_cast<int64_t>(*getLength()) != bytes)
    return emitOpError() << "storage length " << *getLength()
                         << " does not match " << bytes << " bytes of " << type;
  return success();
}

LogicalResult ParamOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  auto param =
      symbolTable.lookupNearestSymbolFrom<ParameterOp>(*this, getNameAttr());
  if (!param)
    return emitOpError() << "'" << getName()
                         << "' does not name an nn.parameter";
  if (param.getParamType() != getType())
    return emitOpError() << "result type " << getType()
                         << " does not match parameter type "
                         << param.getParamType();
  return success();
}

LogicalResult ConstantOp::verify() {
  if (!isa<ElementsAttr>(getValue()))
    return emitOpError() << "value must be an elements attribute";
  return success();
}

OpFoldResult ConstantOp::fold(FoldAdaptor) { return getValue(); }

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

namespace {
LogicalResult verifyBroadcastResult(Operation *op, ArrayRef<Value> operands,
                                    Value result) {
  SmallVector<ArrayRef<int64_t>> shapes;
  for (Value v : operands)
    shapes.push_back(tensorType(v).getShape());
  auto want = broadcastShapes(shapes);
  if (!want) {
    auto diag = op->emitOpError() << "operand shapes";
    for (ArrayRef<int64_t> s : shapes)
      diag << " " << shapeStr(s);
    return diag << " do not broadcast";
  }
  return expectShape(op, result, *want, "result");
}

template <typename OpT> LogicalResult verifyBinary(OpT op) {
  if (failed(sameElementType(op, op.getLhs(), op.getRhs(), "lhs", "rhs")))
    return failure();
  Type resultElem = op.getType().getElementType();
  if (!resultElem.isInteger(1) &&
      failed(sameElementType(op, op.getLhs(), op.getResult(), "lhs", "result")))
    return failure();
  return verifyBroadcastResult(op, {op.getLhs(), op.getRhs()}, op.getResult());
}
} // namespace

#define WEIPIPE_NN_BINARY_VERIFIER(OP)                                         \
  LogicalResult OP::verify() { return verifyBinary(*this); }
WEIPIPE_NN_BINARY_VERIFIER(AddOp)
WEIPIPE_NN_BINARY_VERIFIER(SubOp)
WEIPIPE_NN_BINARY_VERIFIER(MulOp)
WEIPIPE_NN_BINARY_VERIFIER(DivOp)
WEIPIPE_NN_BINARY_VERIFIER(PowOp)
WEIPIPE_NN_BINARY_VERIFIER(MaxOp)
WEIPIPE_NN_BINARY_VERIFIER(MinOp)
WEIPIPE_NN_BINARY_VERIFIER(EqualOp)
WEIPIPE_NN_BINARY_VERIFIER(LessOp)
WEIPIPE_NN_BINARY_VERIFIER(GreaterOp)
WEIPIPE_NN_BINARY_VERIFIER(AndOp)
WEIPIPE_NN_BINARY_VERIFIER(OrOp)
WEIPIPE_NN_BINARY_VERIFIER(BitwiseAndOp)
WEIPIPE_NN_BINARY_VERIFIER(BitwiseOrOp)
WEIPIPE_NN_BINARY_VERIFIER(BitwiseXorOp)
#undef WEIPIPE_NN_BINARY_VERIFIER

LogicalResult WhereOp::verify() {
  if (failed(sameElementType(*this, getLhs(), getResult(), "lhs", "result")) ||
      failed(sameElementType(*this, getRhs(), getResult(), "rhs", "result")))
    return failure();
  return verifyBroadcastResult(*this, {getCondition(), getLhs(), getRhs()},
                               getResult());
}

//===----------------------------------------------------------------------===//
// Shape and data movement
//===----------------------------------------------------------------------===//

LogicalResult ReshapeOp::verify() {
  if (failed(
          sameElementType(*this, getInput(), getResult(), "input", "result")))
    return failure();
  int64_t in = getInput().getType().getNumElements();
  int64_t out = getType().getNumElements();
  if (in != out)
    return emitOpError() << "input has " << in << " elements but result has "
                         << out;
  return success();
}

LogicalResult TransposeOp::verify() {
  if (failed(
          sameElementType(*this, getInput(), getResult(), "input", "result")))
    return failure();
  ArrayRef<int64_t> in = getInput().getType().getShape();
  ArrayRef<int64_t> perm = getPerm();
  if (perm.size() != in.size())
    return emitOpError() << "perm has " << perm.size() << " entries for rank "
                         << in.size();
  SmallVector<bool> seen(in.size(), false);
  SmallVector<int64_t> want;
  for (int64_t p : perm) {
    if (p < 0 || p >= static_cast<int64_t>(in.size()) || seen[p])
      return emitOpError() << "perm " << shapeStr(perm)
                           << " is not a permutation of [0, " << in.size()
                           << ")";
    seen[p] = true;
    want.push_back(in[p]);
  }
  return expectShape(*this, getResult(), want, "result");
}

OpFoldResult ReshapeOp::fold(FoldAdaptor) {
  if (getInput().getType() == getType())
    return getInput();
  // reshape(reshape(x)) is one reshape of x.
  if (auto inner = getInput().getDefiningOp<ReshapeOp>()) {
    getInputMutable().assign(inner.getInput());
    return getResult();
  }
  return {};
}

namespace {
/// reshape(transpose(reshape(x, merge leading dims), perm fixing dim 0),
/// split them again) is a transpose of x: exporters write a transpose of the
/// last two dimensions of a 4-D tensor this way through a 3-D batched form.
/// When the split differs from x's own leading dims (keys repeated for
/// grouped-query attention, [B, Hkv, G, S, D] -> [B*H, S, D] -> [B, H, D,
/// S]), it is a transpose of x reshaped to the new leading dims.
struct MergedBatchTranspose : OpRewritePattern<ReshapeOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(ReshapeOp op,
                                PatternRewriter &rewriter) const override {
    auto t = op.getInput().getDefiningOp<TransposeOp>();
    if (!t)
      return failure();
    auto merge = t.getInput().getDefiningOp<ReshapeOp>();
    if (!merge)
      return failure();
    ArrayRef<int64_t> x = merge.getInput().getType().getShape();
    ArrayRef<int64_t> mid = merge.getType().getShape();
    ArrayRef<int64_t> perm = t.getPerm();
    // x = [lead..., rest...] merged to [prod(lead), rest...].
    int64_t restRank = static_cast<int64_t>(mid.size()) - 1;
    int64_t leadRank = static_cast<int64_t>(x.size()) - restRank;
    if (restRank < 1 || leadRank < 1 || perm.empty() || perm[0] != 0 ||
        x.drop_front(leadRank) != mid.drop_front())
      return failure();
    // The result: [lead'..., rest permuted], prod(lead') = prod(lead).
    ArrayRef<int64_t> out = op.getType().getShape();
    int64_t outLead = static_cast<int64_t>(out.size()) - restRank;
    if (outLead < 1)
      return failure();
    int64_t merged = 1, split = 1;
    for (int64_t d : x.take_front(leadRank))
      merged *= d;
    for (int64_t d : out.take_front(outLead))
      split *= d;
    if (merged != split)
      return failure();
    SmallVector<int64_t> newPerm;
    for (int64_t k = 0; k < outLead; ++k)
      newPerm.push_back(k);
    for (int64_t p : perm.drop_front())
      newPerm.push_back(outLead + p - 1);
    SmallVector<int64_t> source(out.take_front(outLead));
    llvm::append_range(source, x.drop_front(leadRank));
    for (auto [k, p] : llvm::enumerate(newPerm))
      if (out[k] != source[p])
        return failure();
    Value in = merge.getInput();
    if (ArrayRef<int64_t>(source) != x)
      in = ReshapeOp::create(
          rewriter, op.getLoc(),
          RankedTensorType::get(source, op.getType().getElementType()), in);
    rewriter.replaceOpWithNewOp<TransposeOp>(op, op.getType(), in, newPerm);
    return success();
  }
};
} // namespace

void ReshapeOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                            MLIRContext *context) {
  results.add<MergedBatchTranspose>(context);
}

OpFoldResult TransposeOp::fold(FoldAdaptor) {
  ArrayRef<int64_t> perm = getPerm();
  if (llvm::equal(perm, llvm::seq<int64_t>(0, perm.size())))
    return getInput();
  // transpose(transpose(x, p), q) with p∘q the identity.
  if (auto inner = getInput().getDefiningOp<TransposeOp>()) {
    ArrayRef<int64_t> p = inner.getPerm();
    bool identity = true;
    for (size_t k = 0; k < perm.size(); ++k)
      identity &= p[perm[k]] == static_cast<int64_t>(k);
    if (identity)
      return inner.getInput();
  }
  return {};
}

LogicalResult BroadcastOp::verify() {
  if (failed(
          sameElementType(*this, getInput(), getResult(), "input", "result")))
    return failure();
  ArrayRef<int64_t> in = getInput().getType().getShape();
  ArrayRef<int64_t> out = getType().getShape();
  auto want = broadcastShapes({in, out});
  if (!want || ArrayRef<int64_t>(*want) != out)
    return emitOpError() << "input shape " << shapeStr(in)
                         << " does not broadcast to " << shapeStr(out);
  return success();
}

LogicalResult ConcatOp::verify() {
  if (getInputs().empty())
    return emitOpError() << "needs at least one input";
  Value first = getInputs().front();
  int64_t rank = tensorType(first).getRank();
  int64_t axis = getAxis();
  if (failed(checkAxis(*this, axis, rank)))
    return failure();
  SmallVector<int64_t> want(tensorType(first).getShape());
  want[axis] = 0;
  for (auto [i, v] : llvm::enumerate(getInputs())) {
    if (failed(sameElementType(*this, v, getResult(), "input", "result")))
      return failure();
    ArrayRef<int64_t> s = tensorType(v).getShape();
    if (static_cast<int64_t>(s.size()) != rank)
      return emitOpError() << "input " << i << " has rank " << s.size()
                           << ", expected " << rank;
    for (int64_t d = 0; d < rank; ++d)
      if (d != axis && s[d] != want[d])
        return emitOpError() << "input " << i << " dimension " << d << " is "
                             << s[d] << ", expected " << want[d];
    want[axis] += s[axis];
  }
  return expectShape(*this, getResult(), want, "result");
}

LogicalResult SliceOp::verify() {
  if (failed(
          sameElementType(*this, getInput(), getResult(), "input", "result")))
    return failure();
  ArrayRef<int64_t> in = getInput().getType().getShape();
  size_t rank = in.size();
  if (getStarts().size() != rank || getEnds().size() != rank ||
      getSteps().size() != rank)
    return emitOpError() << "starts, ends and steps need " << rank
                         << " entries each";
  SmallVector<int64_t> want;
  for (size_t d = 0; d < rank; ++d) {
    int64_t start = getStarts()[d], end = getEnds()[d], step = getSteps()[d];
    if (step == 0)
      return emitOpError() << "step of dimension " << d << " is zero";
    bool ok = step > 0 ? (0 <= start && start <= end && end <= in[d])
                       : (-1 <= end && end <= start && start < in[d]);
    if (!ok)
      return emitOpError() << "bounds [" << start << ", " << end << ") step "
                           << step << " are not clamped to dimension " << d
                           << " of size " << in[d];
    want.push_back(sliceLength(start, end, step));
  }
  return expectShape(*this, getResult(), want, "result");
}

LogicalResult GatherOp::verify() {
  if (failed(
          sameElementType(*this, getInput(), getResult(), "input", "result")))
    return failure();
  ArrayRef<int64_t> in = getInput().getType().getShape();
  int64_t axis = getAxis();
  if (failed(checkAxis(*this, axis, in.size())))
    return failure();
  SmallVector<int64_t> want(in.begin(), in.begin() + axis);
  llvm::append_range(want, getIndices().getType().getShape());
  want.append(in.begin() + axis + 1, in.end());
  return expectShape(*this, getResult(), want, "result");
}

LogicalResult TriluOp::verify() {
  if (getInput().getType().getRank() < 2)
    return emitOpError() << "needs rank >= 2";
  return success();
}

//===----------------------------------------------------------------------===//
// Reductions, softmax, matmul
//===----------------------------------------------------------------------===//

namespace {
template <typename OpT> LogicalResult verifyReduce(OpT op) {
  if (failed(sameElementType(op, op.getInput(), op.getResult(), "input",
                             "result")))
    return failure();
  ArrayRef<int64_t> in = op.getInput().getType().getShape();
  ArrayRef<int64_t> axes = op.getAxes();
  int64_t prev = -1;
  for (int64_t a : axes) {
    if (failed(checkAxis(op, a, in.size())))
      return failure();
    if (a <= prev)
      return op.emitOpError()
             << "axes " << shapeStr(axes) << " must be sorted and unique";
    prev = a;
  }
  SmallVector<int64_t> want;
  for (int64_t d = 0, e = in.size(); d < e; ++d) {
    if (llvm::is_contained(axes, d)) {
      if (op.getKeepdims())
        want.push_back(1);
    } else {
      want.push_back(in[d]);
    }
  }
  return expectShape(op, op.getResult(), want, "result");
}
} // namespace

LogicalResult ReduceMeanOp::verify() { return verifyReduce(*this); }
LogicalResult ReduceSumOp::verify() { return verifyReduce(*this); }
LogicalResult ReduceMaxOp::verify() { return verifyReduce(*this); }

LogicalResult ScatterElementsOp::verify() {
  auto d = getData().getType(), i = getIndices().getType(),
       u = getUpdates().getType();
  if (getType() != d || u.getElementType() != d.getElementType())
    return emitOpError() << "result and updates must have the data's type";
  if (i.getShape() != u.getShape() || i.getRank() != d.getRank())
    return emitOpError() << "indices and updates must have one shape, of the "
                            "data's rank";
  if (static_cast<int64_t>(getAxis()) >= d.getRank())
    return emitOpError() << "axis " << getAxis() << " out of range";
  for (int64_t k = 0; k < d.getRank(); ++k)
    if (k != static_cast<int64_t>(getAxis()) &&
        i.getDimSize(k) > d.getDimSize(k))
      return emitOpError() << "indices exceed the data in dimension " << k;
  return success();
}

LogicalResult TopKIndicesOp::verify() {
  auto x = getInput().getType(), r = getType();
  if (x.getRank() < 1)
    return emitOpError() << "input must have rank >= 1";
  SmallVector<int64_t> want(x.getShape());
  if (getK() > want.back())
    return emitOpError() << "k = " << getK() << " exceeds the last dimension "
                         << want.back();
  want.back() = getK();
  if (r.getShape() != ArrayRef<int64_t>(want))
    return emitOpError() << "result shape must be the input's with k last";
  return success();
}

LogicalResult BandOp::verify() {
  auto d = getDiagonals().getType(), r = getType();
  if (failed(sameElementType(*this, getDiagonals(), getResult(), "diagonals",
                             "result")))
    return failure();
  if (r.getRank() < 2)
    return emitOpError() << "result must have rank >= 2, got " << r.getRank();
  int64_t m = r.getDimSize(r.getRank() - 2), n = r.getDimSize(r.getRank() - 1);
  if (d.getRank() != 1 || d.getDimSize(0) != std::max<int64_t>(m + n - 1, 0))
    return emitOpError() << "diagonals must be one value per diagonal of "
                            "the last two dimensions ["
                         << m << ", " << n << "]: " << m + n - 1
                         << " values, got " << d;
  return success();
}

LogicalResult CumSumOp::verify() {
  return checkAxis(*this, getAxis(), getType().getRank());
}
LogicalResult SoftmaxOp::verify() {
  return checkAxis(*this, getAxis(), getType().getRank());
}
LogicalResult LogSoftmaxOp::verify() {
  return checkAxis(*this, getAxis(), getType().getRank());
}

LogicalResult MatmulOp::verify() {
  if (failed(sameElementType(*this, getLhs(), getRhs(), "lhs", "rhs")) ||
      failed(sameElementType(*this, getLhs(), getResult(), "lhs", "result")))
    return failure();
  std::string why;
  auto want = matmulShape(getLhs().getType().getShape(),
                          getRhs().getType().getShape(), &why);
  if (!want)
    return emitOpError() << why;
  return expectShape(*this, getResult(), *want, "result");
}

//===----------------------------------------------------------------------===//
// Fused transformer ops
//===----------------------------------------------------------------------===//

LogicalResult LinearOp::verify() {
  if (failed(
          sameElementType(*this, getInput(), getWeight(), "input", "weight")) ||
      failed(
          sameElementType(*this, getInput(), getResult(), "input", "result")))
    return failure();
  ArrayRef<int64_t> x = getInput().getType().getShape();
  ArrayRef<int64_t> w = getWeight().getType().getShape();
  if (x.empty())
    return emitOpError() << "input must have rank >= 1";
  if (w.size() != 2)
    return emitOpError() << "weight must have rank 2, got " << w.size();
  int64_t k = getTransposeWeight() ? w[1] : w[0];
  int64_t n = getTransposeWeight() ? w[0] : w[1];
  if (x.back() != k)
    return emitOpError() << "input features " << x.back()
                         << " do not match weight input features " << k;
  if (Value b = getBias()) {
    if (failed(sameElementType(*this, getInput(), b, "input", "bias")) ||
        failed(expectShape(*this, b, {n}, "bias")))
      return failure();
  }
  SmallVector<int64_t> want(x.drop_back());
  want.push_back(n);
  return expectShape(*this, getResult(), want, "result");
}

namespace {
template <typename OpT> LogicalResult verifyNorm(OpT op, Value bias) {
  auto in = op.getInput().getType();
  if (op.getResult().getType() != in)
    return op.emitOpError() << "result type " << op.getResult().getType()
                            << " differs from input type " << in;
  int64_t axis = op.getAxis();
  if (failed(checkAxis(op, axis, in.getRank())))
    return failure();
  ArrayRef<int64_t> normalized = in.getShape().drop_front(axis);
  for (auto [v, name] :
       {std::pair<Value, StringRef>{op.getScale(), "scale"}, {bias, "bias"}}) {
    if (!v)
      continue;
    if (failed(sameElementType(op, op.getInput(), v, "input", name)) ||
        failed(expectShape(op, v, normalized, name)))
      return failure();
  }
  // Written as !(eps >= 0) so that NaN is rejected too.
  if (!(op.getEpsilon().convertToDouble() >= 0))
    return op.emitOpError() << "epsilon must be non-negative";
  return success();
}
} // namespace

LogicalResult LayerNormOp::verify() { return verifyNorm(*this, getBias()); }
LogicalResult RMSNormOp::verify() { return verifyNorm(*this, Value()); }

LogicalResult AttentionOp::verify() {
  auto q = getQuery().getType(), k = getKey().getType(),
       v = getValue().getType();
  for (auto [val, name] : {std::pair<Value, StringRef>{getKey(), "key"},
                           {getValue(), "value"},
                           {getResult(), "result"}})
    if (failed(sameElementType(*this, getQuery(), val, "query", name)))
      return failure();
  int64_t rank = q.getRank();
  if (rank != 3 && rank != 4)
    return emitOpError() << "query must have rank 3 or 4, got " << rank;
  if (k.getRank() != rank || v.getRank() != rank)
    return emitOpError() << "query, key and value must have the same rank";
  int64_t h = getNumHeads(), hkv = getNumKvHeads();
  if (h % hkv != 0)
    return emitOpError() << "num_heads " << h
                         << " is not a multiple of num_kv_heads " << hkv;
  int64_t b = q.getDimSize(0);
  if (k.getDimSize(0) != b || v.getDimSize(0) != b)
    return emitOpError() << "batch sizes of query, key and value differ";
  int64_t sq, sk, d, dk, dv;
  SmallVector<int64_t> want;
  if (rank == 4) {
    if (q.getDimSize(1) != h)
      return emitOpError() << "query has " << q.getDimSize(1)
                           << " heads, num_heads is " << h;
    if (k.getDimSize(1) != hkv || v.getDimSize(1) != hkv)
      return emitOpError() << "key/value have " << k.getDimSize(1) << "/"
                           << v.getDimSize(1) << " heads, num_kv_heads is "
                           << hkv;
    sq = q.getDimSize(2), sk = k.getDimSize(2), d = q.getDimSize(3),
    dk = k.getDimSize(3), dv = v.getDimSize(3);
    if (v.getDimSize(2) != sk)
      return emitOpError() << "key and value sequence lengths differ";
    want = {b, h, sq, dv};
  } else {
    int64_t hq = q.getDimSize(2), hk = k.getDimSize(2), hv = v.getDimSize(2);
    if (hq % h != 0)
      return emitOpError() << "query hidden size " << hq
                           << " is not divisible by num_heads " << h;
    if (hk % hkv != 0 || hv % hkv != 0)
      return emitOpError() << "key/value hidden sizes " << hk << "/" << hv
                           << " are not divisible by num_kv_heads " << hkv;
    sq = q.getDimSize(1), sk = k.getDimSize(1), d = hq / h, dk = hk / hkv,
    dv = hv / hkv;
    if (v.getDimSize(1) != sk)
      return emitOpError() << "key and value sequence lengths differ";
    want = {b, sq, h * dv};
  }
  if (d != dk)
    return emitOpError() << "query head size " << d
                         << " differs from key head size " << dk;
  if (Value mask = getMask()) {
    ArrayRef<int64_t> m = tensorType(mask).getShape();
    SmallVector<int64_t> full = {b, h, sq, sk};
    auto bc = broadcastShapes({m, full});
    if (m.size() > 4 || !bc || ArrayRef<int64_t>(*bc) != ArrayRef(full))
      return emitOpError() << "mask shape " << shapeStr(m)
                           << " does not broadcast to " << shapeStr(full);
    Type me = tensorType(mask).getElementType();
    if (!me.isInteger(1) && me != q.getElementType())
      return emitOpError() << "mask element type " << me
                           << " must be i1 or the query element type";
  }
  return expectShape(*this, getResult(), want, "result");
}

namespace {
/// Each value of a constant mask: kept (1), masked (0), or an additive bias
/// that keeps the key but is no mask value (2): a keep-mask's true/false, an
/// additive 0 / -1e30 or below / anything else.
SmallVector<int8_t> keptValues(DenseElementsAttr attr, bool isBool) {
  SmallVector<int8_t> kept;
  if (isBool) {
    for (bool k : attr.getValues<bool>())
      kept.push_back(k);
    return kept;
  }
  for (APFloat v : attr.getValues<APFloat>()) {
    double x = v.convertToDouble();
    kept.push_back(x == 0.0 ? 1 : x <= -1e30 ? 0 : 2);
  }
  return kept;
}
} // namespace

std::optional<MaskPattern> mlir::weipipe::nn::constantMaskPattern(Value mask) {
  auto type = dyn_cast<RankedTensorType>(mask.getType());
  if (!type || type.getRank() < 2)
    return std::nullopt;
  bool isBool = type.getElementType().isInteger(1);
  MaskPattern p;
  p.rows = type.getShape()[type.getRank() - 2];
  p.cols = type.getShape().back();
  p.causal = p.rows > 1 || p.cols > 1;
  if (auto band = mask.getDefiningOp<BandOp>()) {
    // One value per diagonal d = j - i in [1 - rows, cols - 1].
    auto c = band.getDiagonals().getDefiningOp<ConstantOp>();
    auto attr = c ? dyn_cast<DenseElementsAttr>(c.getValue()) : nullptr;
    if (!attr)
      return std::nullopt;
    SmallVector<int8_t> kept = keptValues(attr, isBool);
    if (attr.isSplat())
      kept.assign(p.rows + p.cols - 1, kept.front());
    SmallVector<int64_t> prefix = {0};
    for (auto [k, v] : llvm::enumerate(kept)) {
      int64_t d = static_cast<int64_t>(k) - (p.rows - 1);
      p.pattern &= v != 2;
      p.allKept &= v == 1;
      p.causal &= v == (d <= 0 ? 1 : 0);
      prefix.push_back(prefix.back() + (v != 0));
    }
    // Row i reads the diagonals [rows - 1 - i, rows - 1 - i + cols).
    for (int64_t i = 0; i < p.rows && p.everyRowKeeps; ++i)
      p.everyRowKeeps = prefix[p.rows - 1 - i + p.cols] > prefix[p.rows - 1 - i];
    return p;
  }
  auto c = mask.getDefiningOp<ConstantOp>();
  auto attr = c ? dyn_cast<DenseElementsAttr>(c.getValue()) : nullptr;
  if (!attr)
    return std::nullopt;
  SmallVector<int8_t> kept = keptValues(attr, isBool);
  if (attr.isSplat())
    kept.assign(type.getNumElements(), kept.front());
  int64_t rowKept = 0;
  for (size_t k = 0; k < kept.size(); ++k) {
    int64_t i = (k / p.cols) % p.rows, j = k % p.cols;
    p.pattern &= kept[k] != 2;
    p.allKept &= kept[k] == 1;
    p.causal &= kept[k] == (j <= i ? 1 : 0);
    rowKept += kept[k] != 0;
    if ((k + 1) % p.cols == 0) {
      p.everyRowKeeps &= rowKept > 0;
      rowKept = 0;
    }
  }
  return p;
}

namespace {
/// A constant mask that is exactly the causal pattern (or keeps everything)
/// becomes the `causal` flag (or nothing): the kernel then skips masked
/// blocks instead of reading a mask.
struct ConstantMaskToCausal : OpRewritePattern<AttentionOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &rewriter) const override {
    Value mask = op.getMask();
    if (!mask)
      return failure();
    std::optional<MaskPattern> pattern = constantMaskPattern(mask);
    if (!pattern || !pattern->pattern)
      return failure();
    int64_t sq = op.getType().getRank() == 4 ? op.getType().getDimSize(2)
                                             : op.getType().getDimSize(1);
    bool causal = op.getCausal();
    if (pattern->causal && pattern->rows == sq)
      causal = true;
    else if (!pattern->allKept)
      return failure();
    rewriter.modifyOpInPlace(op, [&] {
      op.getMaskMutable().clear();
      op.setCausal(causal);
    });
    return success();
  }
};

/// Keys/values repeated to every query head (reshape, broadcast, reshape)
/// become grouped-query attention on the unrepeated heads.
struct UnrepeatKeyValue : OpRewritePattern<AttentionOp> {
  using OpRewritePattern::OpRewritePattern;

  /// reshape(broadcast(reshape(kv [B,Hkv,S,D] -> [B,Hkv,1,S,D])
  ///   -> [B,Hkv,G,S,D]) -> [B,Hkv*G,S,D]): returns kv.
  static Value unrepeated(Value v) {
    auto outer = v.getDefiningOp<ReshapeOp>();
    if (!outer)
      return nullptr;
    auto bc = outer.getInput().getDefiningOp<BroadcastOp>();
    if (!bc)
      return nullptr;
    auto inner = bc.getInput().getDefiningOp<ReshapeOp>();
    if (!inner)
      return nullptr;
    Value kv = inner.getInput();
    auto kt = cast<RankedTensorType>(kv.getType());
    if (kt.getRank() != 4)
      return nullptr;
    int64_t b = kt.getDimSize(0), hkv = kt.getDimSize(1), s = kt.getDimSize(2),
            d = kt.getDimSize(3);
    auto bs = bc.getType().getShape();
    if (inner.getType().getShape() != ArrayRef<int64_t>{b, hkv, 1, s, d} ||
        bs.size() != 5 || bs[0] != b || bs[1] != hkv || bs[3] != s ||
        bs[4] != d ||
        outer.getType().getShape() != ArrayRef<int64_t>{b, hkv * bs[2], s, d})
      return nullptr;
    return kv;
  }

  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getType().getRank() != 4 || op.getNumKvHeads() != op.getNumHeads())
      return failure();
    Value k = unrepeated(op.getKey()), v = unrepeated(op.getValue());
    if (!k || !v)
      return failure();
    int64_t hkv = cast<RankedTensorType>(k.getType()).getDimSize(1);
    if (cast<RankedTensorType>(v.getType()).getDimSize(1) != hkv)
      return failure();
    rewriter.modifyOpInPlace(op, [&] {
      op.getKeyMutable().assign(k);
      op.getValueMutable().assign(v);
      op.setNumKvHeads(hkv);
    });
    return success();
  }
};
} // namespace

void AttentionOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                              MLIRContext *context) {
  results.add<ConstantMaskToCausal, UnrepeatKeyValue>(context);
}

LogicalResult RotaryOp::verify() {
  auto x = getInput().getType();
  if (getResult().getType() != x)
    return emitOpError() << "result type differs from input type";
  if (x.getRank() != 4)
    return emitOpError() << "input must be [B, H, S, D], got rank "
                         << x.getRank();
  int64_t r = getRotaryDim();
  if (r % 2 != 0 || r > x.getDimSize(3))
    return emitOpError() << "rotary_dim " << r
                         << " must be even and at most the head size "
                         << x.getDimSize(3);
  int64_t b = x.getDimSize(0), s = x.getDimSize(2);
  for (auto [v, name] :
       {std::pair<Value, StringRef>{getCos(), "cos"}, {getSin(), "sin"}}) {
    if (failed(sameElementType(*this, getInput(), v, "input", name)))
      return failure();
    ArrayRef<int64_t> shape = tensorType(v).getShape();
    SmallVector<int64_t> a = {s, r / 2}, bb = {b, s, r / 2};
    if (shape != ArrayRef(a) && shape != ArrayRef(bb))
      return emitOpError() << name << " shape " << shapeStr(shape)
                           << " must be " << shapeStr(a) << " or "
                           << shapeStr(bb);
  }
  return success();
}

namespace {
/// Constant [B, S, R/2] tables that repeat across the batch (positions
/// 0..S-1 in every row) become [S, R/2]: one table for all rows.
struct SharedRotaryTables : OpRewritePattern<RotaryOp> {
  using OpRewritePattern::OpRewritePattern;
  static DenseElementsAttr firstRow(Value table) {
    auto c = table.getDefiningOp<ConstantOp>();
    auto attr = c ? dyn_cast<DenseElementsAttr>(c.getValue()) : nullptr;
    auto type = cast<RankedTensorType>(table.getType());
    if (!attr || type.getRank() != 3)
      return nullptr;
    auto rowType = RankedTensorType::get(type.getShape().drop_front(),
                                         type.getElementType());
    if (attr.isSplat())
      return DenseElementsAttr::get(rowType, attr.getSplatValue<Attribute>());
    SmallVector<APFloat> all(attr.getValues<APFloat>());
    int64_t row = rowType.getNumElements();
    for (size_t k = row; k < all.size(); ++k)
      if (all[k].bitwiseIsEqual(all[k % row]) == false)
        return nullptr;
    return DenseElementsAttr::get(rowType,
                                  ArrayRef<APFloat>(all).take_front(row));
  }
  LogicalResult matchAndRewrite(RotaryOp op,
                                PatternRewriter &rewriter) const override {
    DenseElementsAttr cos = firstRow(op.getCos()), sin = firstRow(op.getSin());
    if (!cos || !sin)
      return failure();
    Value c = ConstantOp::create(rewriter, op.getLoc(), cos.getType(), cos);
    Value s = ConstantOp::create(rewriter, op.getLoc(), sin.getType(), sin);
    rewriter.modifyOpInPlace(op, [&] {
      op.getCosMutable().assign(c);
      op.getSinMutable().assign(s);
    });
    return success();
  }
};
} // namespace

void RotaryOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                           MLIRContext *context) {
  results.add<SharedRotaryTables>(context);
}

LogicalResult EmbeddingOp::verify() {
  if (failed(
          sameElementType(*this, getTable(), getResult(), "table", "result")))
    return failure();
  ArrayRef<int64_t> t = getTable().getType().getShape();
  if (t.size() != 2)
    return emitOpError() << "table must be [V, H], got rank " << t.size();
  if (auto pad = getPaddingIdx(); pad && int64_t(*pad) >= t[0])
    return emitOpError() << "padding_idx " << *pad << " is not a row of the "
                         << t[0] << "-row table";
  SmallVector<int64_t> want(getIds().getType().getShape());
  want.push_back(t[1]);
  return expectShape(*this, getResult(), want, "result");
}

LogicalResult CrossEntropyOp::verify() {
  ArrayRef<int64_t> l = getLogits().getType().getShape();
  if (l.empty())
    return emitOpError() << "logits must have rank >= 1";
  return expectShape(*this, getTargets(), l.drop_back(), "targets");
}

//===----------------------------------------------------------------------===//
// Backward ops
//===----------------------------------------------------------------------===//

LogicalResult BinaryGradOp::verify() {
  auto want = broadcastShapes({getLhs().getType().getShape(),
                               getRhs().getType().getShape()});
  if (!want)
    return emitOpError() << "operands do not broadcast";
  return expectShape(*this, getGradOutput(), *want, "grad_output");
}

LogicalResult SumToShapeOp::verify() {
  ArrayRef<int64_t> in = getInput().getType().getShape();
  ArrayRef<int64_t> out = getType().getShape();
  auto b = broadcastShapes({in, out});
  if (out.size() > in.size() || !b || ArrayRef<int64_t>(*b) != in)
    return emitOpError() << "result shape must broadcast to the input shape";
  return success();
}

LogicalResult LinearGradWeightOp::verify() {
  ArrayRef<int64_t> x = getInput().getType().getShape();
  ArrayRef<int64_t> dy = getGradOutput().getType().getShape();
  if (x.empty() || dy.empty() || x.drop_back() != dy.drop_back())
    return emitOpError() << "input and grad_output must have the same rows";
  SmallVector<int64_t> want = {x.back(), dy.back()};
  if (getTransposeWeight())
    std::swap(want[0], want[1]);
  return expectShape(*this, getResult(), want, "result");
}

LogicalResult EmbeddingGradOp::verify() {
  ArrayRef<int64_t> t = getType().getShape();
  if (t.size() != 2)
    return emitOpError() << "result must be [V, H], got rank " << t.size();
  if (auto pad = getPaddingIdx(); pad && int64_t(*pad) >= t[0])
    return emitOpError() << "padding_idx " << *pad << " is not a row of the "
                         << t[0] << "-row table";
  SmallVector<int64_t> want(getIds().getType().getShape());
  want.push_back(t[1]);
  return expectShape(*this, getGradOutput(), want, "grad_output");
}

LogicalResult
AccumulateGradOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  auto param =
      symbolTable.lookupNearestSymbolFrom<ParameterOp>(*this, getNameAttr());
  if (!param)
    return emitOpError() << "'" << getName()
                         << "' does not name an nn.parameter";
  if (param.getParamType() != getGrad().getType())
    return emitOpError() << "gradient type " << getGrad().getType()
                         << " does not match parameter type "
                         << param.getParamType();
  return success();
}

#define GET_OP_CLASSES
#include "weipipe/Dialect/NN/NNOps.cpp.inc"
