//===- NodeImporter.cpp - ONNX nodes to nn ops ----------------------------===//
//
// Part of weipipe. One emitter per ONNX op family, for nodes with at least
// one input known only at run time. Each emitter computes its result shape
// itself (static shapes throughout); the nn verifiers check it again.
//
//===----------------------------------------------------------------------===//

#include "ImporterImpl.h"

#include "llvm/ADT/STLExtras.h"

#include <cmath>
#include <numeric>

using namespace mlir;
using namespace mlir::weipipe;
using namespace mlir::weipipe::importer;
using llvm::ArrayRef;
using llvm::SmallVector;
using llvm::StringRef;

//===----------------------------------------------------------------------===//
// Operands and results
//===----------------------------------------------------------------------===//

ValueInfo *NodeEmitter::in(size_t k) {
  if (k >= static_cast<size_t>(node.input_size()) || node.input(k).empty())
    return nullptr;
  return im.lookup(node.input(k), loc);
}

LogicalResult NodeEmitter::needInputs(size_t n) {
  for (size_t k = 0; k < n; ++k)
    if (!in(k))
      return fail() << "input " << k << " is missing";
  return success();
}

Value NodeEmitter::operand(size_t k) {
  ValueInfo *v = in(k);
  if (!v) {
    fail() << "input " << k << " is missing";
    return nullptr;
  }
  Value value = im.materialize(*v, loc);
  if (!value)
    fail() << "input " << k << " ('" << node.input(k)
           << "') cannot be used as a tensor";
  return value;
}

const HostTensor *NodeEmitter::constInput(size_t k, StringRef what) {
  // Callers of optional inputs check in(k) first: absent here is an error.
  if (k >= static_cast<size_t>(node.input_size()) || node.input(k).empty()) {
    fail() << "input " << k << " (the " << what << ") is missing";
    return nullptr;
  }
  ValueInfo *v = in(k);
  if (!v) // an undefined name, reported by lookup
    return nullptr;
  bool failedRead;
  const HostTensor *c = im.constantOf(*v, loc, failedRead);
  if (!c && !failedRead)
    fail() << "input " << k << " ('" << node.input(k) << "', the " << what
           << ") must be known at compile time, but it is computed at run "
              "time";
  return c;
}

FailureOr<std::vector<int64_t>> NodeEmitter::intsInput(size_t k,
                                                       StringRef what) {
  if (!in(k))
    return std::vector<int64_t>();
  const HostTensor *c = constInput(k, what);
  if (!c)
    return failure();
  // ONNX types these int64 (some also int32); a float one would be truncated.
  if (c->isFloat())
    return fail() << "input " << k << " ('" << node.input(k) << "', the "
                  << what << ") must be an integer tensor, got "
                  << dtypeName(c->dtype);
  return c->ints();
}

FailureOr<std::vector<int64_t>> NodeEmitter::axesArg(bool &present) {
  std::vector<int64_t> axes;
  present = attrInts(node, "axes", axes);
  if (present || !in(1))
    return axes;
  present = true;
  return intsInput(1, "axes");
}

void NodeEmitter::setOut(size_t k, Value v) {
  if (k < static_cast<size_t>(node.output_size()))
    im.setValue(node.output(k), v, im.dtypeOf(typeOf(v).getElementType()));
}

Value NodeEmitter::reshape(Value v, ArrayRef<int64_t> shape) {
  if (typeOf(v).getShape() == shape)
    return v;
  return nn::ReshapeOp::create(b, loc, withShape(v, shape), v);
}

Value NodeEmitter::transpose(Value v, ArrayRef<int64_t> perm) {
  SmallVector<int64_t> shape;
  bool identity = true;
  for (auto [k, p] : llvm::enumerate(perm)) {
    shape.push_back(typeOf(v).getDimSize(p));
    identity &= static_cast<int64_t>(k) == p;
  }
  if (identity)
    return v;
  return nn::TransposeOp::create(b, loc, withShape(v, shape), v, perm);
}

Value NodeEmitter::broadcastTo(Value v, ArrayRef<int64_t> shape) {
  if (typeOf(v).getShape() == shape)
    return v;
  return nn::BroadcastOp::create(b, loc, withShape(v, shape), v);
}

Value NodeEmitter::castTo(Value v, Type elem) {
  if (typeOf(v).getElementType() == elem)
    return v;
  return nn::CastOp::create(
      b, loc, RankedTensorType::get(typeOf(v).getShape(), elem), v);
}

Value NodeEmitter::scalar(double value, Type elem) {
  HostTensor t(im.dtypeOf(elem), {});
  t.setDouble(0, value);
  return im.materializeConstant(t, loc);
}

FailureOr<std::pair<Value, Value>> NodeEmitter::unifyBinary(size_t a,
                                                            size_t bIdx) {
  ValueInfo *x = in(a), *y = in(bIdx);
  if (!x || !y)
    return fail() << "needs inputs " << a << " and " << bIdx;
  if (x->dtype == y->dtype) {
    Value vx = operand(a), vy = operand(bIdx);
    if (!vx || !vy)
      return failure();
    return std::make_pair(vx, vy);
  }
  // ONNX lets a few ops (Pow) mix element types; a constant side converts
  // to the other side's type at import time.
  auto convert = [&](ValueInfo *c, int32_t to) -> Value {
    bool failedRead;
    const HostTensor *known = im.constantOf(*c, loc, failedRead);
    if (!known)
      return nullptr;
    HostTensor h = known->densified();
    HostTensor t(to, h.shape);
    for (int64_t k = 0, n = t.numel(); k < n; ++k) {
      if (h.isFloat())
        t.setDouble(k, h.f[k]);
      else
        t.setInt(k, h.i[k]);
    }
    return im.materializeConstant(t, loc);
  };
  Value vx, vy;
  bool failedRead;
  if (im.constantOf(*y, loc, failedRead)) {
    vx = operand(a);
    vy = convert(y, x->dtype);
  } else if (im.constantOf(*x, loc, failedRead)) {
    vx = convert(x, y->dtype);
    vy = operand(bIdx);
  } else if (node.op_type() == "Pow") {
    // Pow's exponent may be of another type (an int64 power of a float).
    vx = operand(a);
    vy = operand(bIdx);
    if (vx && vy)
      vy = castTo(vy, typeOf(vx).getElementType());
  } else {
    return fail() << "inputs have different element types ("
                  << dtypeName(x->dtype) << " and " << dtypeName(y->dtype)
                  << ")";
  }
  if (!vx || !vy)
    return failure();
  return std::make_pair(vx, vy);
}

//===----------------------------------------------------------------------===//
// Families
//===----------------------------------------------------------------------===//

template <typename OpT> LogicalResult NodeEmitter::binary() {
  auto operands = unifyBinary(0, 1);
  if (failed(operands))
    return failure();
  auto [x, y] = *operands;
  SmallVector<int64_t> shape;
  if (!importer::broadcastTo(typeOf(x).getShape(), typeOf(y).getShape(), shape))
    return fail() << "input shapes " << shapeString(typeOf(x).getShape())
                  << " and " << shapeString(typeOf(y).getShape())
                  << " do not broadcast";
  constexpr bool isPredicate =
      std::is_same_v<OpT, nn::EqualOp> || std::is_same_v<OpT, nn::LessOp> ||
      std::is_same_v<OpT, nn::GreaterOp> || std::is_same_v<OpT, nn::AndOp> ||
      std::is_same_v<OpT, nn::OrOp>;
  Type elem = isPredicate ? Type(b.getI1Type()) : typeOf(x).getElementType();
  setOut(0, OpT::create(b, loc, RankedTensorType::get(shape, elem), x, y));
  return success();
}

LogicalResult NodeEmitter::compareNot(bool less) {
  // a <= b is not(a > b); a >= b is not(a < b).
  auto operands = unifyBinary(0, 1);
  if (failed(operands))
    return failure();
  auto [x, y] = *operands;
  SmallVector<int64_t> shape;
  if (!importer::broadcastTo(typeOf(x).getShape(), typeOf(y).getShape(), shape))
    return fail() << "input shapes do not broadcast";
  auto type = RankedTensorType::get(shape, b.getI1Type());
  Value cmp = less ? Value(nn::LessOp::create(b, loc, type, x, y))
                   : Value(nn::GreaterOp::create(b, loc, type, x, y));
  setOut(0, nn::NotOp::create(b, loc, type, cmp));
  return success();
}

LogicalResult NodeEmitter::variadic(StringRef op) {
  // Sum/Max/Min with any number of inputs: a chain of binary ops.
  Value acc = operand(0);
  if (!acc)
    return failure();
  for (int k = 1; k < node.input_size(); ++k) {
    Value next = operand(k);
    if (!next)
      return failure();
    SmallVector<int64_t> shape;
    if (!importer::broadcastTo(typeOf(acc).getShape(), typeOf(next).getShape(),
                               shape))
      return fail() << "input shapes do not broadcast";
    auto type = withShape(acc, shape);
    if (op == "Sum")
      acc = nn::AddOp::create(b, loc, type, acc, next);
    else if (op == "Max")
      acc = nn::MaxOp::create(b, loc, type, acc, next);
    else
      acc = nn::MinOp::create(b, loc, type, acc, next);
  }
  setOut(0, acc);
  return success();
}

template <typename OpT> LogicalResult NodeEmitter::unary() {
  Value x = operand(0);
  if (!x)
    return failure();
  setOut(0, OpT::create(b, loc, x.getType(), x));
  return success();
}

FailureOr<NodeEmitter::Reduction> NodeEmitter::reduction(Value x) {
  bool present;
  auto axesOr = axesArg(present);
  if (failed(axesOr))
    return failure();
  Reduction r;
  r.axes = *axesOr;
  int64_t rank = typeOf(x).getRank();
  if (r.axes.empty()) {
    if (attrInt(node, "noop_with_empty_axes", 0)) {
      r.noop = true;
      return r;
    }
    r.axes.resize(rank);
    std::iota(r.axes.begin(), r.axes.end(), 0);
  }
  for (int64_t &a : r.axes)
    if (!normalizeAxis(a, rank))
      return fail() << "axis " << a << " out of range for rank " << rank;
  llvm::sort(r.axes);
  r.axes.erase(std::unique(r.axes.begin(), r.axes.end()), r.axes.end());
  r.keep = attrInt(node, "keepdims", 1) != 0;
  for (int64_t d = 0; d < rank; ++d) {
    bool reduced = llvm::is_contained(r.axes, d);
    if (!reduced)
      r.shape.push_back(typeOf(x).getDimSize(d));
    else if (r.keep)
      r.shape.push_back(1);
    r.keptShape.push_back(reduced ? 1 : typeOf(x).getDimSize(d));
  }
  return r;
}

/// Operand 0 reduced as the node's axes say: `build(x, r)` makes the result,
/// unless the reduction is a no-op (noop_with_empty_axes), which forwards x.
template <typename BuildFn>
LogicalResult NodeEmitter::reduceWith(BuildFn build) {
  Value x = operand(0);
  if (!x)
    return failure();
  FailureOr<Reduction> r = reduction(x);
  if (failed(r))
    return failure();
  setOut(0, r->noop ? x : build(x, *r));
  return success();
}

template <typename OpT> LogicalResult NodeEmitter::reduce() {
  return reduceWith([&](Value x, const Reduction &r) -> Value {
    return OpT::create(b, loc, withShape(x, r.shape), x, r.axes, r.keep);
  });
}

LogicalResult NodeEmitter::reduceLogSumExp() {
  // max + log(sum(exp(x - max))): exp never overflows.
  return reduceWith([&](Value x, const Reduction &r) -> Value {
    Value m = nn::ReduceMaxOp::create(b, loc, withShape(x, r.keptShape), x,
                                      r.axes, true);
    Value e = nn::ExpOp::create(
        b, loc, typeOf(x), nn::SubOp::create(b, loc, typeOf(x), x, m));
    Value s = nn::ReduceSumOp::create(b, loc, withShape(x, r.shape), e, r.axes,
                                      r.keep);
    Value l = nn::LogOp::create(b, loc, typeOf(s), s);
    return nn::AddOp::create(b, loc, typeOf(s), l, reshape(m, r.shape));
  });
}

LogicalResult NodeEmitter::reduceNorm(StringRef op) {
  return reduceWith([&](Value x, const Reduction &r) -> Value {
    Type t = typeOf(x);
    Value terms = op == "ReduceL1" ? Value(nn::AbsOp::create(b, loc, t, x))
                                   : Value(nn::MulOp::create(b, loc, t, x, x));
    Value sum = nn::ReduceSumOp::create(b, loc, withShape(x, r.shape), terms,
                                        r.axes, r.keep);
    return op == "ReduceL2" ? Value(nn::SqrtOp::create(b, loc, typeOf(sum), sum))
                            : sum;
  });
}

Value NodeEmitter::topkIndices(Value x, int64_t k, bool largest) {
  // Integers (expert ids a router sorts) are ranked as float32, exact below
  // 2^24; TopK's values are gathered from the integers themselves.
  Value keys = typeOf(x).getElementType().isInteger()
                   ? castTo(x, b.getF32Type())
                   : x;
  SmallVector<int64_t> shape(typeOf(x).getShape());
  shape.back() = k;
  return nn::TopKIndicesOp::create(
      b, loc, RankedTensorType::get(shape, b.getI64Type()), keys,
      b.getI64IntegerAttr(k), b.getBoolAttr(largest));
}

// ArgMax/ArgMin: TopK's indices with k = 1 along the axis moved last (ties:
// the first index, ONNX's default), the axis of one put back by a reshape.
LogicalResult NodeEmitter::argExtreme(bool largest) {
  Value x = operand(0);
  if (!x)
    return failure();
  RankedTensorType xt = typeOf(x);
  int64_t rank = xt.getRank(), axis = attrInt(node, "axis", 0);
  if (!normalizeAxis(axis, rank))
    return fail() << "axis out of range for rank " << rank;
  if (attrInt(node, "select_last_index", 0) != 0)
    return fail() << "select_last_index = 1 is not supported";
  SmallVector<int64_t> perm;
  for (int64_t d = 0; d < rank; ++d)
    if (d != axis)
      perm.push_back(d);
  perm.push_back(axis);
  Value idx = topkIndices(transpose(x, perm), 1, largest);
  SmallVector<int64_t> out(xt.getShape());
  if (attrInt(node, "keepdims", 1) != 0)
    out[axis] = 1;
  else
    out.erase(out.begin() + axis);
  setOut(0, reshape(idx, out));
  return success();
}

LogicalResult NodeEmitter::softplus() {
  // log(1 + exp(x)) = relu(x) + log(1 + exp(-|x|)): exp never overflows.
  Value x = operand(0);
  if (!x)
    return failure();
  Type t = typeOf(x), elem = typeOf(x).getElementType();
  Value negAbs = nn::NegOp::create(b, loc, t, nn::AbsOp::create(b, loc, t, x));
  Value tail = nn::LogOp::create(
      b, loc, t,
      nn::AddOp::create(b, loc, t, nn::ExpOp::create(b, loc, t, negAbs),
                        scalar(1.0, elem)));
  setOut(0, nn::AddOp::create(b, loc, t, nn::ReluOp::create(b, loc, t, x),
                              tail));
  return success();
}

template <typename OpT> LogicalResult NodeEmitter::softmax() {
  Value x = operand(0);
  if (!x)
    return failure();
  int64_t rank = typeOf(x).getRank();
  int64_t axis = attrInt(node, "axis", im.opset >= 13 ? -1 : 1);
  if (!normalizeAxis(axis, rank))
    return fail() << "axis out of range for rank " << rank;
  if (im.opset < 13 && axis != rank - 1)
    return fail() << "before opset 13, softmax over a non-last axis flattens "
                     "the input; only the last axis is supported";
  setOut(0, OpT::create(b, loc, x.getType(), x, axis));
  return success();
}

//===----------------------------------------------------------------------===//
// Individual ops
//===----------------------------------------------------------------------===//

LogicalResult NodeEmitter::gemm() {
  Value a = operand(0), w = operand(1);
  if (!a || !w)
    return failure();
  if (typeOf(a).getRank() != 2 || typeOf(w).getRank() != 2)
    return fail() << "Gemm needs rank-2 inputs";
  float alpha = attrFloat(node, "alpha", 1.0f),
        beta = attrFloat(node, "beta", 1.0f);
  bool transA = attrInt(node, "transA", 0), transB = attrInt(node, "transB", 0);
  if (transA)
    a = transpose(a, {1, 0});
  int64_t n = transB ? typeOf(w).getDimSize(0) : typeOf(w).getDimSize(1);
  int64_t m = typeOf(a).getDimSize(0);
  Value c = in(2) ? operand(2) : Value();
  if (in(2) && !c)
    return failure();
  if (alpha == 1.0f &&
      (!c || (beta == 1.0f && typeOf(c).getShape() == ArrayRef<int64_t>{n}))) {
    setOut(0,
           nn::LinearOp::create(b, loc, withShape(a, {m, n}), a, w, c, transB));
    return success();
  }
  if (transB)
    w = transpose(w, {1, 0});
  auto type = withShape(a, {m, n});
  Value y = nn::MatmulOp::create(b, loc, type, a, w);
  Type elem = type.getElementType();
  if (alpha != 1.0f)
    y = nn::MulOp::create(b, loc, type, y, scalar(alpha, elem));
  if (c) {
    if (beta != 1.0f)
      c = nn::MulOp::create(b, loc, typeOf(c), c, scalar(beta, elem));
    SmallVector<int64_t> shape;
    if (!importer::broadcastTo({m, n}, typeOf(c).getShape(), shape) ||
        shape != SmallVector<int64_t>{m, n})
      return fail() << "C of shape " << shapeString(typeOf(c).getShape())
                    << " does not broadcast to [" << m << ", " << n << "]";
    y = nn::AddOp::create(b, loc, type, y, c);
  }
  setOut(0, y);
  return success();
}

LogicalResult NodeEmitter::reshapeLike() {
  Value x = operand(0);
  if (!x)
    return failure();
  const HostTensor *arg = nullptr;
  StringRef op = node.op_type();
  if (in(1)) {
    arg = constInput(1, op == "Reshape" ? "shape" : "axes");
    if (!arg)
      return failure();
  }
  SmallVector<int64_t> shape;
  std::string why;
  if (!reshapeLikeShape(node, typeOf(x).getShape(), arg, shape, why))
    return fail() << why;
  setOut(0, reshape(x, shape));
  return success();
}

LogicalResult NodeEmitter::transposeOp() {
  Value x = operand(0);
  if (!x)
    return failure();
  std::vector<int64_t> perm;
  std::string why;
  if (!transposePerm(node, typeOf(x).getRank(), perm, why))
    return fail() << why;
  setOut(0, transpose(x, perm));
  return success();
}

/// PyTorch's nn.Embedding(padding_idx) as torch's dynamo exporter records it:
/// the node's FX node, `aten.embedding.default](args = (%w, %ids, 0), ...`,
/// whose third argument is padding_idx (-1 or absent: none) and fourth
/// scale_grad_by_freq. ONNX's Gather itself has no such notion.
struct EmbeddingRecord {
  std::optional<int64_t> paddingIdx;
  bool scaleGradByFreq = false;
};
static EmbeddingRecord embeddingRecord(const onnx::NodeProto &node) {
  EmbeddingRecord r;
  std::optional<std::string> fx =
      metadataOf(node, kNodeMetadataField, "pkg.torch.onnx.fx_node");
  if (!fx)
    return r;
  StringRef s(*fx);
  constexpr StringRef kCall = "aten.embedding.default](args = (";
  size_t at = s.find(kCall);
  if (at == StringRef::npos)
    return r;
  s = s.drop_front(at + kCall.size());
  s = s.take_until([](char c) { return c == ')'; });
  SmallVector<StringRef> args;
  s.split(args, ",");
  int64_t pad;
  if (args.size() > 2 && !args[2].trim().getAsInteger(10, pad) && pad >= 0)
    r.paddingIdx = pad;
  r.scaleGradByFreq = args.size() > 3 && args[3].trim() == "True";
  return r;
}

LogicalResult NodeEmitter::gather() {
  Value data = operand(0);
  if (!data)
    return failure();
  int64_t rank = typeOf(data).getRank();
  int64_t axis = attrInt(node, "axis", 0);
  if (!normalizeAxis(axis, rank))
    return fail() << "axis out of range for rank " << rank;
  int64_t dim = typeOf(data).getDimSize(axis);
  ValueInfo *idxInfo = in(1);
  if (!idxInfo)
    return fail() << "indices are missing";
  Value idx;
  bool failedRead;
  if (const HostTensor *c = im.constantOf(*idxInfo, loc, failedRead)) {
    // Constant indices: check them and make them non-negative now.
    if (!isIntegerDType(c->dtype))
      return fail() << "indices must be int32 or int64";
    HostTensor t(kInt64, c->shape);
    for (int64_t k = 0, n = c->numel(); k < n; ++k) {
      int64_t v = c->getInt(k);
      if (v < -dim || v >= dim)
        return fail() << "index " << v << " out of range for dimension " << axis
                      << " of size " << dim;
      t.i[k] = v < 0 ? v + dim : v;
    }
    idx = im.materializeConstant(t, loc);
  } else if (failedRead) {
    return failure();
  } else {
    idx = operand(1);
  }
  if (!idx)
    return failure();
  if (!isa<IntegerType>(typeOf(idx).getElementType()) ||
      typeOf(idx).getElementType().isInteger(1))
    return fail() << "indices must be int32 or int64";
  idx = castTo(idx, b.getI64Type()); // the runtime reads int64 indices
  ArrayRef<int64_t> ds = typeOf(data).getShape();
  SmallVector<int64_t> shape(ds.take_front(axis));
  llvm::append_range(shape, typeOf(idx).getShape());
  llvm::append_range(shape, ds.drop_front(axis + 1));
  EmbeddingRecord rec = embeddingRecord(node);
  if (rec.scaleGradByFreq)
    return fail() << "nn.Embedding(scale_grad_by_freq=True) is not supported: "
                     "its gradient depends on how often each id occurs";
  if (rec.paddingIdx) {
    // Rows of padding_idx get no gradient, as in PyTorch.
    if (axis != 0 || rank != 2 || !isa<FloatType>(typeOf(data).getElementType()))
      return fail() << "padding_idx recorded on a gather that is no embedding "
                       "lookup (axis "
                    << axis << " of a rank-" << rank << " table)";
    if (*rec.paddingIdx >= dim)
      return fail() << "padding_idx " << *rec.paddingIdx
                    << " is not a row of the " << dim << "-row table";
    setOut(0, nn::EmbeddingOp::create(b, loc, withShape(data, shape), data,
                                      idx,
                                      b.getI64IntegerAttr(*rec.paddingIdx)));
    return success();
  }
  setOut(0,
         nn::GatherOp::create(b, loc, withShape(data, shape), data, idx, axis));
  return success();
}

LogicalResult NodeEmitter::cumsum() {
  Value x = operand(0);
  if (!x)
    return failure();
  if (typeOf(x).getElementType().isInteger(1))
    return fail() << "CumSum of bool is not defined";
  const HostTensor *axisIn = constInput(1, "axis");
  if (!axisIn)
    return failure();
  if (axisIn->numel() != 1 || axisIn->isFloat())
    return fail() << "axis must be one integer";
  int64_t axis = axisIn->getInt(0), rank = typeOf(x).getRank();
  if (!normalizeAxis(axis, rank))
    return fail() << "axis " << axisIn->getInt(0) << " out of range for rank "
                  << rank;
  setOut(0, nn::CumSumOp::create(
                b, loc, typeOf(x), x, b.getI64IntegerAttr(axis),
                b.getBoolAttr(attrInt(node, "exclusive", 0) != 0),
                b.getBoolAttr(attrInt(node, "reverse", 0) != 0)));
  return success();
}

LogicalResult NodeEmitter::clip() {
  // max(x, lo) then min(., hi); before opset 11 the bounds are attributes.
  Value x = operand(0);
  if (!x)
    return failure();
  Type elem = typeOf(x).getElementType();
  auto bound = [&](size_t k, StringRef attr) -> Value {
    if (im.opset < 11) {
      for (const auto &a : node.attribute())
        if (a.name() == attr)
          return scalar(a.f(), elem);
      return nullptr;
    }
    return in(k) ? operand(k) : nullptr;
  };
  if (Value lo = bound(1, "min"))
    x = nn::MaxOp::create(b, loc, typeOf(x), x, castTo(lo, elem));
  if (Value hi = bound(2, "max"))
    x = nn::MinOp::create(b, loc, typeOf(x), x, castTo(hi, elem));
  setOut(0, x);
  return success();
}

FailureOr<Value> NodeEmitter::padAxis(Value x, int64_t axis, int64_t before,
                                      int64_t after, double value) {
  SmallVector<int64_t> shape(typeOf(x).getShape());
  int64_t rank = shape.size();
  if (before < 0 || after < 0) { // negative pads crop
    SmallVector<int64_t> starts(rank, 0), ends(shape), steps(rank, 1);
    starts[axis] = std::max<int64_t>(0, -before);
    ends[axis] = shape[axis] - std::max<int64_t>(0, -after);
    if (ends[axis] < starts[axis])
      return fail() << "pads " << before << ", " << after << " crop more than "
                    << "the " << shape[axis] << " elements of axis " << axis;
    shape[axis] = ends[axis] - starts[axis];
    x = nn::SliceOp::create(b, loc, withShape(x, shape), x, starts, ends,
                            steps);
    before = std::max<int64_t>(0, before);
    after = std::max<int64_t>(0, after);
  }
  if (before == 0 && after == 0)
    return x;
  auto fill = [&](int64_t n) {
    SmallVector<int64_t> s(shape);
    s[axis] = n;
    HostTensor h(im.dtypeOf(typeOf(x).getElementType()), s);
    for (int64_t k = 0, e = h.numel(); k < e; ++k)
      h.setDouble(k, value);
    return im.materializeConstant(h, loc);
  };
  SmallVector<Value> parts;
  if (before)
    parts.push_back(fill(before));
  parts.push_back(x);
  if (after)
    parts.push_back(fill(after));
  shape[axis] += before + after;
  return Value(
      nn::ConcatOp::create(b, loc, withShape(x, shape), parts, axis));
}

LogicalResult NodeEmitter::pad() {
  // Constant padding as a concatenation with constants (negative pads
  // crop): its gradient is the slice back, which autodiff derives.
  Value x = operand(0);
  if (!x)
    return failure();
  std::string mode = attrString(node, "mode", "constant");
  if (mode != "constant")
    return fail() << "mode '" << mode << "' is not supported (only constant)";
  int64_t rank = typeOf(x).getRank();
  std::vector<int64_t> pads, axes;
  double value = 0;
  if (im.opset < 11) {
    attrInts(node, "pads", pads);
    value = attrFloat(node, "value", 0.0f);
  } else {
    auto p = intsInput(1, "pads");
    if (failed(p))
      return failure();
    pads = *p;
    if (in(2)) {
      const HostTensor *v = constInput(2, "constant value");
      if (!v)
        return failure();
      if (v->numel() != 1)
        return fail() << "the constant value must be one element";
      value = v->getDouble(0);
    }
    auto a = intsInput(3, "axes");
    if (failed(a))
      return failure();
    axes = *a;
  }
  if (axes.empty())
    for (int64_t d = 0; d < rank; ++d)
      axes.push_back(d);
  if (pads.size() != 2 * axes.size())
    return fail() << pads.size() << " pads for " << axes.size()
                  << " axes (need two per axis)";
  for (size_t k = 0; k < axes.size(); ++k) {
    int64_t axis = axes[k];
    if (!normalizeAxis(axis, rank))
      return fail() << "axis " << axes[k] << " out of range for rank " << rank;
    FailureOr<Value> padded =
        padAxis(x, axis, pads[k], pads[k + axes.size()], value);
    if (failed(padded))
      return failure();
    x = *padded;
  }
  setOut(0, x);
  return success();
}

LogicalResult NodeEmitter::conv() {
  // A depthwise 1-D convolution (Mamba's and LFM's causal conv: one group
  // per channel, stride and dilation 1) as the sum over the kernel taps of
  // the padded input's shifted window times that tap's weights: K slices,
  // products and sums whose gradients autodiff derives, cheap for the short
  // kernels these models use.
  constexpr int64_t kMaxTaps = 16;
  Value x = operand(0), w = operand(1);
  if (!x || !w)
    return failure();
  RankedTensorType xt = typeOf(x), wt = typeOf(w);
  if (xt.getRank() != 3 || wt.getRank() != 3)
    return fail() << "only 1-D convolutions ([N, C, L] input) are supported";
  int64_t n = xt.getDimSize(0), c = xt.getDimSize(1), l = xt.getDimSize(2),
          k = wt.getDimSize(2);
  int64_t group = attrInt(node, "group", 1);
  std::vector<int64_t> strides, dilations, pads;
  attrInts(node, "strides", strides);
  attrInts(node, "dilations", dilations);
  attrInts(node, "pads", pads);
  std::string autoPad = attrString(node, "auto_pad", "NOTSET");
  if (group != c || wt.getDimSize(0) != c || wt.getDimSize(1) != 1)
    return fail() << "only depthwise convolutions (group = channels = " << c
                  << ", weight [C, 1, K]) are supported; this one has group "
                  << group << " and weight " << shapeString(wt.getShape());
  if (llvm::any_of(strides, [](int64_t s) { return s != 1; }) ||
      llvm::any_of(dilations, [](int64_t d) { return d != 1; }))
    return fail() << "only stride 1 and dilation 1 are supported";
  if (autoPad != "NOTSET")
    return fail() << "auto_pad '" << autoPad << "' is not supported";
  if (k > kMaxTaps)
    return fail() << "a kernel of " << k << " taps (at most " << kMaxTaps
                  << ")";
  int64_t before = pads.size() == 2 ? pads[0] : 0,
          after = pads.size() == 2 ? pads[1] : 0;
  int64_t out = l + before + after - k + 1;
  if (out < 1)
    return fail() << "the kernel of " << k << " taps is longer than the "
                  << "padded input";
  FailureOr<Value> xp = padAxis(x, 2, before, after, 0.0);
  if (failed(xp))
    return failure();
  RankedTensorType yt = withShape(x, {n, c, out});
  Value y;
  for (int64_t tap = 0; tap < k; ++tap) {
    Value window = nn::SliceOp::create(
        b, loc, yt, *xp, SmallVector<int64_t>{0, 0, tap},
        SmallVector<int64_t>{n, c, tap + out}, SmallVector<int64_t>{1, 1, 1});
    Value wk = reshape(
        nn::SliceOp::create(b, loc, withShape(w, {c, 1, 1}), w,
                            SmallVector<int64_t>{0, 0, tap},
                            SmallVector<int64_t>{c, 1, tap + 1},
                            SmallVector<int64_t>{1, 1, 1}),
        {c, 1});
    Value term = nn::MulOp::create(b, loc, yt, window, wk);
    y = y ? Value(nn::AddOp::create(b, loc, yt, y, term)) : term;
  }
  if (in(2)) {
    Value bias = operand(2);
    if (!bias)
      return failure();
    if (typeOf(bias).getNumElements() != c)
      return fail() << "bias " << shapeString(typeOf(bias).getShape())
                    << " for " << c << " channels";
    y = nn::AddOp::create(b, loc, yt, y, reshape(bias, {c, 1}));
  }
  setOut(0, y);
  return success();
}

LogicalResult NodeEmitter::einsum() {
  // One or two operands, each index at most once per operand, no ellipsis
  // (the state-space scans of Mamba-2 hybrids, ProphetNet's relative
  // positions): indices in one operand only and not in the output are summed
  // first, then the product is a batched matmul [batch, free_a, contracted] x
  // [batch, contracted, free_b], reshaped and transposed to the output.
  std::string eq = attrString(node, "equation", "");
  eq.erase(llvm::remove_if(eq, [](char ch) { return ch == ' '; }), eq.end());
  if (eq.find("...") != std::string::npos)
    return fail() << "equation '" << eq << "': ellipsis is not supported";
  StringRef lhs = eq, out;
  size_t arrow = eq.find("->");
  if (arrow != std::string::npos) {
    lhs = StringRef(eq).take_front(arrow);
    out = StringRef(eq).drop_front(arrow + 2);
  }
  SmallVector<StringRef> terms;
  lhs.split(terms, ',');
  if (terms.size() != static_cast<size_t>(node.input_size()) ||
      terms.size() > 2)
    return fail() << "equation '" << eq << "' for " << node.input_size()
                  << " inputs (one or two are supported)";
  SmallVector<Value> xs;
  std::map<char, int64_t> size;
  for (auto [k, term] : llvm::enumerate(terms)) {
    Value x = operand(k);
    if (!x)
      return failure();
    if (typeOf(x).getRank() != static_cast<int64_t>(term.size()))
      return fail() << "term '" << term << "' for an operand of rank "
                    << typeOf(x).getRank();
    for (auto [d, ch] : llvm::enumerate(term)) {
      if (term.count(ch) != 1)
        return fail() << "index '" << ch << "' repeats in term '" << term
                      << "' (diagonals are not supported)";
      int64_t n = typeOf(x).getDimSize(d);
      auto [it, fresh] = size.emplace(ch, n);
      if (!fresh && it->second != n)
        return fail() << "index '" << ch << "' has sizes " << it->second
                      << " and " << n;
    }
    xs.push_back(x);
  }
  std::string output = out.str();
  if (arrow == std::string::npos) // implicit: indices seen once, sorted
    for (auto [ch, n] : size)
      if (llvm::count_if(terms, [&](StringRef t) { return t.contains(ch); }) ==
          1)
        output.push_back(ch);
  for (char ch : output)
    if (!size.count(ch) || llvm::count(output, ch) != 1)
      return fail() << "output index '" << ch << "' is not an input index "
                    << "or repeats";
  auto inOutput = [&](char ch) { return output.find(ch) != std::string::npos; };
  auto dims = [&](StringRef s) {
    SmallVector<int64_t> d;
    for (char ch : s)
      d.push_back(size[ch]);
    return d;
  };
  // Sum the indices of one operand that appear nowhere else.
  SmallVector<std::string> labels;
  for (auto [k, term] : llvm::enumerate(terms)) {
    std::string keep;
    SmallVector<int64_t> axes;
    for (auto [d, ch] : llvm::enumerate(term)) {
      bool elsewhere = inOutput(ch) ||
                       (terms.size() == 2 && terms[1 - k].contains(ch));
      if (elsewhere)
        keep.push_back(ch);
      else
        axes.push_back(d);
    }
    if (!axes.empty())
      xs[k] = nn::ReduceSumOp::create(b, loc, withShape(xs[k], dims(keep)),
                                      xs[k], axes, false);
    labels.push_back(keep);
  }
  auto permute = [&](Value x, StringRef from, StringRef to) {
    SmallVector<int64_t> perm;
    for (char ch : to)
      perm.push_back(from.find(ch));
    return transpose(x, perm);
  };
  if (xs.size() == 1) {
    setOut(0, permute(xs[0], labels[0], output));
    return success();
  }
  std::string batch, freeA, freeB, contracted;
  for (char ch : labels[0]) {
    bool inB = labels[1].find(ch) != std::string::npos;
    (inB ? (inOutput(ch) ? batch : contracted) : freeA).push_back(ch);
  }
  for (char ch : labels[1])
    if (labels[0].find(ch) == std::string::npos)
      freeB.push_back(ch);
  auto product = [&](StringRef s) {
    int64_t n = 1;
    for (char ch : s)
      n *= size[ch];
    return n;
  };
  int64_t nb = product(batch), m = product(freeA), kk = product(contracted),
          n = product(freeB);
  Value a = reshape(permute(xs[0], labels[0], batch + freeA + contracted),
                    {nb, m, kk});
  Value bm = reshape(permute(xs[1], labels[1], batch + contracted + freeB),
                     {nb, kk, n});
  Value y = nn::MatmulOp::create(b, loc, withShape(a, {nb, m, n}), a, bm);
  std::string yLabels = batch + freeA + freeB;
  y = reshape(y, dims(yLabels));
  setOut(0, permute(y, yLabels, output));
  return success();
}

LogicalResult NodeEmitter::tile() {
  // A run-time input with known repeats (DiffLlama repeats its heads): each
  // axis d of size n becomes [r, n] by a broadcast of [1, n], then r * n;
  // the broadcast's gradient sums the copies.
  Value x = operand(0);
  if (!x)
    return failure();
  auto reps = intsInput(1, "repeats");
  if (failed(reps))
    return failure();
  ArrayRef<int64_t> shape = typeOf(x).getShape();
  if (reps->size() != shape.size() ||
      llvm::any_of(*reps, [](int64_t r) { return r < 0; }))
    return fail() << "repeats " << shapeString(*reps) << " for an input of "
                  << "rank " << shape.size();
  SmallVector<int64_t> split, tiled, out;
  for (auto [n, r] : llvm::zip(shape, *reps)) {
    split.append({1, n});
    tiled.append({r, n});
    out.push_back(r * n);
  }
  if (ArrayRef<int64_t>(out) == shape) {
    setOut(0, x);
    return success();
  }
  setOut(0, reshape(broadcastTo(reshape(x, split), tiled), out));
  return success();
}

LogicalResult NodeEmitter::scatter(bool nd) {
  // With known indices (slice assignments, select_scatter), every output
  // element reads one element of the data or of the updates: one nn.gather
  // of known rows from their concatenation, whose gradient (a scatter-add)
  // sends each element's gradient to the one it read.
  Value data = operand(0), updates = operand(2);
  if (!data || !updates)
    return failure();
  std::string reduction = attrString(node, "reduction", "none");
  if (reduction != "none")
    return fail() << "reduction '" << reduction
                  << "' is not supported (only none)";
  if (in(1)) {
    // Run-time indices (DeepSeek's group mask, Phi-MoE's masked score,
    // JetMoE's expert outputs put back in token order): nn.scatter_elements,
    // whose gradient reaches the data and the updates.
    bool failedRead;
    if (!im.constantOf(*in(1), loc, failedRead)) {
      if (failedRead)
        return failure();
      Value idx = operand(1);
      if (!idx)
        return failure();
      if (nd) {
        // ScatterND replaces rows of a flattened view of the data, the rows
        // GatherND would read: a scatter_elements along axis 0 of the view,
        // each update row's index repeated along the row.
        FlatGather g;
        ArrayRef<int64_t> ds = typeOf(data).getShape();
        FailureOr<Value> rows = flatRows(ds, idx, typeOf(idx).getShape(),
                                         nullptr, true, 0, g);
        if (failed(rows))
          return failure();
        if (ArrayRef<int64_t>(g.resultShape) != typeOf(updates).getShape())
          return fail() << "updates must have shape "
                        << shapeString(g.resultShape) << ", got "
                        << shapeString(typeOf(updates).getShape());
        int64_t nUpdates = numElements(typeOf(*rows).getShape());
        int64_t rowSize = numElements(ArrayRef<int64_t>(g.viewShape).drop_front());
        SmallVector<int64_t> flat = {nUpdates, rowSize};
        Value perRow = reshape(*rows, {nUpdates, 1});
        Value perElement = nn::BroadcastOp::create(
            b, loc, RankedTensorType::get(flat, b.getI64Type()), perRow);
        Value view = reshape(data, {g.viewShape[0], rowSize});
        Value y = nn::ScatterElementsOp::create(
            b, loc, typeOf(view), view, perElement, reshape(updates, flat),
            b.getI64IntegerAttr(0));
        setOut(0, reshape(y, ds));
        return success();
      }
      int64_t rank = typeOf(data).getRank(), axis = attrInt(node, "axis", 0);
      if (!normalizeAxis(axis, rank))
        return fail() << "axis out of range for rank " << rank;
      if (typeOf(idx).getShape() != typeOf(updates).getShape() ||
          typeOf(idx).getRank() != rank)
        return fail() << "indices and updates must have one shape, of the "
                      << "data's rank";
      setOut(0, nn::ScatterElementsOp::create(
                    b, loc, typeOf(data), data, castTo(idx, b.getI64Type()),
                    updates, b.getI64IntegerAttr(axis)));
      return success();
    }
  }
  const HostTensor *idx = constInput(1, "indices");
  if (!idx)
    return failure();
  ArrayRef<int64_t> ds = typeOf(data).getShape(),
                    us = typeOf(updates).getShape(), is = idx->shape;
  std::vector<int64_t> iv = idx->ints();
  int64_t rank = ds.size();
  auto wrap = [&](int64_t v, int64_t dim, int64_t &out) {
    out = v < 0 ? v + dim : v;
    return out >= 0 && out < dim;
  };
  int64_t rowSize = 1, nRows = numElements(ds), nUpdates = 0;
  std::vector<int64_t> target; // the data row each update row replaces
  if (nd) {
    int64_t q = is.empty() ? 0 : is.back();
    if (is.empty() || q < 1 || q > rank)
      return fail() << "indices " << shapeString(is) << " for data of rank "
                    << rank;
    SmallVector<int64_t> want(is.drop_back());
    llvm::append_range(want, ds.drop_front(q));
    if (us != ArrayRef<int64_t>(want))
      return fail() << "updates " << shapeString(us) << ", expected "
                    << shapeString(want);
    rowSize = numElements(ds.drop_front(q));
    nRows = numElements(ds.take_front(q));
    nUpdates = numElements(is.drop_back());
    for (int64_t u = 0; u < nUpdates; ++u) {
      int64_t flat = 0;
      for (int64_t t = 0; t < q; ++t) {
        int64_t v;
        if (!wrap(iv[u * q + t], ds[t], v))
          return fail() << "index " << iv[u * q + t] << " out of range for "
                        << "dimension " << t << " of size " << ds[t];
        flat = flat * ds[t] + v;
      }
      target.push_back(flat);
    }
  } else {
    int64_t axis = attrInt(node, "axis", 0);
    if (!normalizeAxis(axis, rank))
      return fail() << "axis out of range for rank " << rank;
    if (is != us || static_cast<int64_t>(us.size()) != rank)
      return fail() << "indices " << shapeString(is) << " and updates "
                    << shapeString(us) << " must have one shape, of the data's "
                    << "rank";
    nUpdates = numElements(us);
    SmallVector<int64_t> pos(rank, 0);
    for (int64_t e = 0; e < nUpdates; ++e) {
      for (int64_t d = rank - 1, r = e; d >= 0; r /= us[d], --d)
        pos[d] = r % us[d];
      if (!wrap(iv[e], ds[axis], pos[axis]))
        return fail() << "index " << iv[e] << " out of range for axis "
                      << axis << " of size " << ds[axis];
      int64_t flat = 0;
      for (int64_t d = 0; d < rank; ++d) {
        if (pos[d] >= ds[d])
          return fail() << "updates " << shapeString(us)
                        << " exceed the data " << shapeString(ds);
        flat = flat * ds[d] + pos[d];
      }
      target.push_back(flat);
    }
  }
  HostTensor rows(kInt64, {nRows});
  for (int64_t p = 0; p < nRows; ++p)
    rows.i[p] = p;
  for (int64_t u = 0; u < nUpdates; ++u)
    rows.i[target[u]] = nRows + u;
  Value sources = nn::ConcatOp::create(
      b, loc, withShape(data, {nRows + nUpdates, rowSize}),
      ValueRange{reshape(data, {nRows, rowSize}),
                 reshape(updates, {nUpdates, rowSize})},
      0);
  Value y = nn::GatherOp::create(b, loc, withShape(data, {nRows, rowSize}),
                                 sources, im.materializeConstant(rows, loc),
                                 0);
  setOut(0, reshape(y, ds));
  return success();
}

LogicalResult NodeEmitter::flatGather(bool nd) {
  // One nn.gather along axis 0 of a flattened view of the data, whose
  // gradient (a scatter-add) nn already has. The rows are constants when the
  // indices are known; otherwise the index terms are added at run time.
  Value data = operand(0);
  ValueInfo *idxInfo = in(1);
  if (!data)
    return failure();
  if (!idxInfo)
    return fail() << "indices are missing";
  if (!isIntegerDType(idxInfo->dtype))
    return fail() << "indices must be int32 or int64";
  bool failedRead;
  const HostTensor *known = im.constantOf(*idxInfo, loc, failedRead);
  if (failedRead)
    return failure();
  Value idx = known ? Value() : operand(1);
  if (!known && !idx)
    return failure();
  FailureOr<Value> y =
      gatherFlat(data, idx, idxInfo->shape, known, nd,
                 attrInt(node, nd ? "batch_dims" : "axis", 0));
  if (failed(y))
    return failure();
  setOut(0, *y);
  return success();
}

FailureOr<Value> NodeEmitter::gatherFlat(Value data, Value idx,
                                         ArrayRef<int64_t> idxShape,
                                         const HostTensor *known, bool nd,
                                         int64_t axisOrBatchDims) {
  FlatGather g;
  FailureOr<Value> rows = flatRows(typeOf(data).getShape(), idx, idxShape,
                                   known, nd, axisOrBatchDims, g);
  if (failed(rows))
    return failure();
  Value view = reshape(data, g.viewShape);
  return Value(nn::GatherOp::create(b, loc, withShape(data, g.resultShape),
                                    view, *rows, 0));
}

FailureOr<Value> NodeEmitter::flatRows(ArrayRef<int64_t> ds, Value idx,
                                       ArrayRef<int64_t> idxShape,
                                       const HostTensor *known, bool nd,
                                       int64_t axisOrBatchDims,
                                       FlatGather &g) {
  std::string why;
  bool ok = nd ? flatGatherND(ds, idxShape, known, axisOrBatchDims, g, why)
               : flatGatherElements(ds, idxShape, known, axisOrBatchDims, g,
                                    why);
  if (!ok)
    return fail() << why;
  Value rows = im.materializeConstant(g.rows, loc);
  if (!known) {
    if (!rows)
      return failure();
    Type i64 = b.getI64Type();
    idx = castTo(idx, i64);
    ArrayRef<int64_t> is = typeOf(idx).getShape();
    auto rowsType = cast<RankedTensorType>(rows.getType());
    Value zero = scalar(0, i64);
    for (auto [t, dim] : llvm::enumerate(g.indexedDims)) {
      Value term = idx;
      if (nd) { // idx[..., t]
        SmallVector<int64_t> starts(is.size(), 0), ends(is), steps(is.size(), 1);
        starts.back() = t;
        ends.back() = t + 1;
        SmallVector<int64_t> sliced(is);
        sliced.back() = 1;
        term = nn::SliceOp::create(b, loc, withShape(idx, sliced), idx,
                                   b.getDenseI64ArrayAttr(starts),
                                   b.getDenseI64ArrayAttr(ends),
                                   b.getDenseI64ArrayAttr(steps));
        term = reshape(term, rowsType.getShape());
      }
      // Negative indices count from the end.
      Value negative = nn::LessOp::create(
          b, loc, RankedTensorType::get(rowsType.getShape(), b.getI1Type()),
          term, zero);
      Value wrapped = nn::AddOp::create(b, loc, rowsType, term,
                                        scalar(double(dim), i64));
      term = nn::WhereOp::create(b, loc, rowsType, negative, wrapped, term);
      if (g.indexStrides[t] != 1)
        term = nn::MulOp::create(b, loc, rowsType, term,
                                 scalar(double(g.indexStrides[t]), i64));
      rows = nn::AddOp::create(b, loc, rowsType, rows, term);
    }
  }
  if (!rows)
    return failure();
  return rows;
}

LogicalResult NodeEmitter::topk() {
  // The indices from nn.topk_indices; the values a gather of the input at
  // them (GatherElements along the axis), whose gradient is the scatter-add.
  Value x = operand(0);
  if (!x)
    return failure();
  RankedTensorType xt = typeOf(x);
  int64_t rank = xt.getRank(), axis = attrInt(node, "axis", -1);
  if (!normalizeAxis(axis, rank) || axis != rank - 1)
    return fail() << "only TopK along the last axis is supported";
  int64_t k = 0;
  if (im.opset < 10) {
    k = attrInt(node, "k", 0);
  } else {
    auto kIn = intsInput(1, "k");
    if (failed(kIn))
      return failure();
    if (kIn->size() != 1)
      return fail() << "k must be one integer";
    k = (*kIn)[0];
  }
  int64_t n = xt.getDimSize(axis);
  if (k < 1 || k > n)
    return fail() << "k = " << k << " out of [1, " << n << "]";
  SmallVector<int64_t> shape(xt.getShape());
  shape.back() = k;
  Value idx = topkIndices(x, k, attrInt(node, "largest", 1) != 0);
  FailureOr<Value> values = gatherFlat(x, idx, shape, nullptr, false, axis);
  if (failed(values))
    return failure();
  setOut(0, *values);
  setOut(1, idx);
  return success();
}

LogicalResult NodeEmitter::concat() {
  SmallVector<Value> parts;
  for (int k = 0; k < node.input_size(); ++k) {
    if (node.input(k).empty())
      continue;
    Value v = operand(k);
    if (!v)
      return failure();
    if (typeOf(v).getNumElements() == 0)
      continue; // empty tensors contribute nothing
    parts.push_back(v);
  }
  if (parts.empty())
    return fail() << "all inputs are empty";
  int64_t rank = typeOf(parts[0]).getRank();
  int64_t axis = attrInt(node, "axis", 0);
  if (!normalizeAxis(axis, rank))
    return fail() << "axis out of range for rank " << rank;
  SmallVector<int64_t> shape(typeOf(parts[0]).getShape());
  shape[axis] = 0;
  for (Value v : parts) {
    if (typeOf(v).getRank() != rank ||
        typeOf(v).getElementType() != typeOf(parts[0]).getElementType())
      return fail() << "inputs differ in rank or element type";
    for (int64_t d = 0; d < rank; ++d)
      if (d != axis && typeOf(v).getDimSize(d) != shape[d])
        return fail() << "inputs differ in dimension " << d;
    shape[axis] += typeOf(v).getDimSize(axis);
  }
  if (parts.size() == 1) {
    setOut(0, parts[0]);
    return success();
  }
  setOut(0,
         nn::ConcatOp::create(b, loc, withShape(parts[0], shape), parts, axis));
  return success();
}

namespace {
SmallVector<int64_t> fullStarts(int64_t rank) {
  return SmallVector<int64_t>(rank, 0);
}

/// Whether `sizes`, none negative, add up to `dim` (hostile sizes may
/// overflow int64 on the way: then they do not).
bool cutsExactly(ArrayRef<int64_t> sizes, int64_t dim) {
  int64_t total = 0;
  for (int64_t s : sizes)
    if (s < 0 || __builtin_add_overflow(total, s, &total))
      return false;
  return total == dim;
}
} // namespace

LogicalResult NodeEmitter::split() {
  Value x = operand(0);
  if (!x)
    return failure();
  int64_t rank = typeOf(x).getRank();
  int64_t axis = attrInt(node, "axis", 0);
  if (!normalizeAxis(axis, rank))
    return fail() << "axis out of range for rank " << rank;
  int64_t dim = typeOf(x).getDimSize(axis);
  std::vector<int64_t> sizes;
  if (!attrInts(node, "split", sizes)) {
    auto s = intsInput(1, "split sizes");
    if (failed(s))
      return failure();
    sizes = *s;
  }
  int64_t n = node.output_size();
  if (sizes.empty()) {
    int64_t chunk = (dim + n - 1) / n;
    for (int64_t k = 0; k < n; ++k)
      sizes.push_back(std::max<int64_t>(0, std::min(chunk, dim - k * chunk)));
  }
  if (static_cast<int64_t>(sizes.size()) != n || !cutsExactly(sizes, dim))
    return fail() << "split sizes " << shapeString(sizes) << " do not cut "
                  << "dimension " << axis << " of size " << dim << " into " << n
                  << " outputs";
  auto parts = cut(x, axis, sizes);
  if (failed(parts))
    return failure();
  for (auto [k, part] : llvm::enumerate(*parts))
    setOut(k, part);
  return success();
}

FailureOr<SmallVector<Value>> NodeEmitter::cut(Value x, int64_t axis,
                                               ArrayRef<int64_t> sizes) {
  ArrayRef<int64_t> in = typeOf(x).getShape();
  int64_t rank = in.size(), dim = in[axis];
  if (!cutsExactly(sizes, dim))
    return fail() << "split sizes " << shapeString(sizes) << " do not add up "
                  << "to dimension " << axis << " of size " << dim;
  SmallVector<Value> parts;
  int64_t off = 0;
  for (int64_t size : sizes) {
    SmallVector<int64_t> starts = fullStarts(rank), ends(in), steps(rank, 1);
    starts[axis] = off;
    ends[axis] = off + size;
    SmallVector<int64_t> shape(in);
    shape[axis] = size;
    off += size;
    parts.push_back(size == dim ? x
                                : Value(nn::SliceOp::create(
                                      b, loc, withShape(x, shape), x, starts,
                                      ends, steps)));
  }
  return parts;
}

// The exporter without its optimizer (optimize=False, which keeps functions
// of parameters such as Mamba's -exp(A_log) unfolded) writes torch.split as
// SplitToSequence read by SequenceAt at constant positions: the pieces of a
// Split, kept by the sequence's name.
LogicalResult NodeEmitter::splitToSequence() {
  Value x = operand(0);
  if (!x)
    return failure();
  int64_t rank = typeOf(x).getRank();
  int64_t axis = attrInt(node, "axis", 0);
  if (!normalizeAxis(axis, rank))
    return fail() << "axis out of range for rank " << rank;
  int64_t dim = typeOf(x).getDimSize(axis);
  bool keepDims = attrInt(node, "keepdims", 1) != 0;
  std::vector<int64_t> sizes;
  if (in(1)) {
    const HostTensor *split = constInput(1, "split sizes");
    if (!split)
      return failure();
    sizes = split->ints();
    if (split->shape.empty()) { // one chunk size: the last may be shorter
      int64_t chunk = sizes.empty() ? 0 : sizes[0];
      if (chunk <= 0)
        return fail() << "split chunk size " << chunk << " is not positive";
      sizes.clear();
      for (int64_t off = 0; off < dim; off += chunk)
        sizes.push_back(std::min(chunk, dim - off));
    }
    keepDims = true; // keepdims applies only without `split`
  } else {
    sizes.assign(dim, 1);
  }
  auto parts = cut(x, axis, sizes);
  if (failed(parts))
    return failure();
  if (!keepDims)
    for (Value &part : *parts) {
      SmallVector<int64_t> shape(typeOf(part).getShape());
      shape.erase(shape.begin() + axis);
      part = reshape(part, shape);
    }
  StringRef seq = node.output(0);
  im.sequences[seq] = std::move(*parts);
  ValueInfo &info = im.values[seq];
  info = ValueInfo();
  info.poison = "'" + seq.str() +
                "' is a sequence (made by SplitToSequence); only SequenceAt "
                "at a position known at compile time can read it";
  return success();
}

LogicalResult NodeEmitter::sequenceAt() {
  if (node.input_size() < 2)
    return fail() << "needs a sequence and a position";
  auto it = im.sequences.find(node.input(0));
  if (it == im.sequences.end())
    return fail() << "input 0 ('" << node.input(0)
                  << "') is not a sequence made by SplitToSequence (the only "
                     "sequences supported)";
  const HostTensor *pos = constInput(1, "position");
  if (!pos)
    return failure();
  std::vector<int64_t> p = pos->ints();
  int64_t n = it->second.size();
  if (p.size() != 1 || p[0] < -n || p[0] >= n)
    return fail() << "position " << shapeString(p) << " is outside the "
                  << n << " tensors of sequence '" << node.input(0) << "'";
  setOut(0, it->second[p[0] < 0 ? p[0] + n : p[0]]);
  return success();
}

LogicalResult NodeEmitter::slice() {
  Value x = operand(0);
  if (!x)
    return failure();
  std::vector<int64_t> starts, ends, axes, steps;
  if (node.input_size() > 1) {
    auto s = intsInput(1, "starts"), e = intsInput(2, "ends"),
         a = intsInput(3, "axes"), st = intsInput(4, "steps");
    if (failed(s) || failed(e) || failed(a) || failed(st))
      return failure();
    starts = *s, ends = *e, axes = *a, steps = *st;
  } else {
    attrInts(node, "starts", starts);
    attrInts(node, "ends", ends);
    attrInts(node, "axes", axes);
  }
  SmallVector<SliceDim> dims;
  std::string why;
  ArrayRef<int64_t> shapeIn = typeOf(x).getShape();
  if (!sliceBounds(shapeIn, starts, ends, axes, steps, dims, why))
    return fail() << why;
  SmallVector<int64_t> s, e, st, shape;
  bool identity = true;
  for (auto [d, dim] : llvm::enumerate(dims)) {
    s.push_back(dim.start);
    e.push_back(dim.end);
    st.push_back(dim.step);
    shape.push_back(nn::sliceLength(dim.start, dim.end, dim.step));
    identity &= dim.start == 0 && dim.step == 1 && dim.end == shapeIn[d];
  }
  if (identity) {
    setOut(0, x);
    return success();
  }
  setOut(0, nn::SliceOp::create(b, loc, withShape(x, shape), x, s, e, st));
  return success();
}

LogicalResult NodeEmitter::expand() {
  Value x = operand(0);
  if (!x)
    return failure();
  auto target = intsInput(1, "shape");
  if (failed(target))
    return failure();
  SmallVector<int64_t> shape;
  if (!importer::broadcastTo(typeOf(x).getShape(), *target, shape))
    return fail() << "input shape " << shapeString(typeOf(x).getShape())
                  << " does not broadcast with " << shapeString(*target);
  setOut(0, broadcastTo(x, shape));
  return success();
}

LogicalResult NodeEmitter::where() {
  Value cond = operand(0);
  if (!cond)
    return failure();
  cond = castTo(cond, b.getI1Type());
  auto operands = unifyBinary(1, 2);
  if (failed(operands))
    return failure();
  auto [x, y] = *operands;
  SmallVector<int64_t> s1, shape;
  if (!importer::broadcastTo(typeOf(cond).getShape(), typeOf(x).getShape(),
                             s1) ||
      !importer::broadcastTo(s1, typeOf(y).getShape(), shape))
    return fail() << "condition and values do not broadcast";
  setOut(0, nn::WhereOp::create(b, loc, withShape(x, shape), cond, x, y));
  return success();
}

LogicalResult NodeEmitter::castOp(bool like) {
  Value x = operand(0);
  if (!x)
    return failure();
  int32_t to;
  if (like) {
    ValueInfo *target = in(1);
    if (!target)
      return fail() << "target_type input is missing";
    to = target->dtype;
  } else {
    to = attrInt(node, "to", kFloat);
  }
  FailureOr<Type> elem = im.elementType(to);
  if (failed(elem))
    return fail() << "cannot cast: " << elementTypeError(to);
  setOut(0, castTo(x, *elem));
  return success();
}

LogicalResult NodeEmitter::trilu() {
  Value x = operand(0);
  if (!x)
    return failure();
  if (typeOf(x).getRank() < 2)
    return fail() << "input must have rank >= 2";
  int64_t k = 0;
  if (in(1)) {
    const HostTensor *c = constInput(1, "diagonal offset k");
    if (!c)
      return failure();
    if (c->numel() != 1)
      return fail() << "k must be a scalar, not of shape "
                    << shapeString(c->shape);
    k = c->getInt(0);
  }
  setOut(0, nn::TriluOp::create(b, loc, x.getType(), x,
                                b.getBoolAttr(attrInt(node, "upper", 1) != 0),
                                b.getI64IntegerAttr(k)));
  return success();
}

LogicalResult NodeEmitter::gelu() {
  Value x = operand(0);
  if (!x)
    return failure();
  std::string approx = attrString(node, "approximate", "none");
  if (approx != "none" && approx != "tanh")
    return fail() << "unknown approximate='" << approx << "'";
  setOut(0, nn::GeluOp::create(b, loc, x.getType(), x,
                               approx == "tanh" ? nn::GeluApproximation::tanh
                                                : nn::GeluApproximation::none));
  return success();
}

/// F.cross_entropy as both exporters write it: scores [N, C] (or
/// [N, C, d1, ...], classes moved last here) and integer labels, mean over
/// the labels that are not ignore_index. That is nn.cross_entropy; the sum and
/// per-element reductions and class weights are not supported.
LogicalResult NodeEmitter::softmaxCrossEntropy() {
  Value scores = operand(0), labels = operand(1);
  if (!scores || !labels)
    return failure();
  if (in(2))
    return fail() << "class weights (input 2) are not supported";
  std::string reduction = attrString(node, "reduction", "mean");
  if (reduction != "mean")
    return fail() << "reduction='" << reduction
                  << "' is not supported (only 'mean', F.cross_entropy's "
                     "default)";
  auto st = typeOf(scores), lt = typeOf(labels);
  if (!isa<FloatType>(st.getElementType()) ||
      !isa<IntegerType>(lt.getElementType()))
    return fail() << "expects float scores and integer labels";
  int64_t rank = st.getRank();
  if (rank < 2 || lt.getRank() != rank - 1)
    return fail() << "scores must be [N, C, ...] and labels [N, ...]; got "
                  << shapeString(st.getShape()) << " and "
                  << shapeString(lt.getShape());
  if (rank > 2) { // [N, C, d...] -> [N, d..., C]
    SmallVector<int64_t> perm = {0};
    for (int64_t d = 2; d < rank; ++d)
      perm.push_back(d);
    perm.push_back(1);
    SmallVector<int64_t> shape;
    for (int64_t d : perm)
      shape.push_back(st.getShape()[d]);
    scores = nn::TransposeOp::create(b, loc, withShape(scores, shape), scores,
                                     b.getDenseI64ArrayAttr(perm));
  }
  SmallVector<int64_t> want(typeOf(scores).getShape().drop_back());
  if (ArrayRef<int64_t>(want) != lt.getShape())
    return fail() << "labels " << shapeString(lt.getShape())
                  << " do not match scores " << shapeString(st.getShape());
  if (node.output_size() > 1 && !node.output(1).empty()) {
    ValueInfo poison;
    poison.poison = "output '" + node.output(1) + "' of node '" + name +
                    "' (the log-probabilities) is not supported";
    im.values[node.output(1)] = poison;
  }
  int64_t ignore = attrInt(node, "ignore_index", -100);
  auto lossType = RankedTensorType::get({}, b.getF32Type());
  setOut(0, nn::CrossEntropyOp::create(b, loc, lossType, scores, labels,
                                       b.getI64IntegerAttr(ignore)));
  return success();
}

LogicalResult NodeEmitter::layerNorm(bool rms) {
  Value x = operand(0), scale = operand(1);
  if (!x || !scale)
    return failure();
  Value bias;
  if (!rms && in(2) && !(bias = operand(2)))
    return failure();
  int64_t rank = typeOf(x).getRank();
  int64_t axis = attrInt(node, "axis", -1);
  if (!normalizeAxis(axis, rank))
    return fail() << "axis out of range for rank " << rank;
  float eps = attrFloat(node, "epsilon", 1e-5f);
  ArrayRef<int64_t> normalized = typeOf(x).getShape().drop_front(axis);
  for (Value *v : {&scale, &bias}) {
    if (!*v)
      continue;
    SmallVector<int64_t> shape;
    if (!importer::broadcastTo(normalized, typeOf(*v).getShape(), shape) ||
        ArrayRef<int64_t>(shape) != normalized)
      return fail() << "scale/bias shape " << shapeString(typeOf(*v).getShape())
                    << " does not broadcast to the normalized shape "
                    << shapeString(normalized);
    *v = broadcastTo(
        reshape(*v, SmallVector<int64_t>(typeOf(*v).getShape().drop_while(
                        [](int64_t d) { return d == 1; }))),
        normalized);
  }
  for (int k = 1; k < node.output_size(); ++k)
    if (!node.output(k).empty()) {
      ValueInfo poison;
      poison.poison = "output '" + node.output(k) + "' of node '" + name +
                      "' (the saved mean or inverse standard deviation) is "
                      "not supported";
      im.values[node.output(k)] = poison;
    }
  Value y =
      rms ? Value(nn::RMSNormOp::create(b, loc, x.getType(), x, scale, axis,
                                        llvm::APFloat(eps)))
          : Value(nn::LayerNormOp::create(b, loc, x.getType(), x, scale, bias,
                                          axis, llvm::APFloat(eps)));
  setOut(0, y);
  return success();
}

LogicalResult NodeEmitter::attention() {
  if (in(4) || in(5))
    return fail() << "past key/value inputs are an inference cache; export "
                     "the model without past key values for training";
  Value q = operand(0), k = operand(1), v = operand(2);
  if (!q || !k || !v)
    return failure();
  Value mask;
  if (in(3) && !(mask = operand(3)))
    return failure();
  if (attrFloat(node, "softcap", 0.0f) != 0.0f)
    return fail() << "softcap is not supported";
  int64_t rank = typeOf(q).getRank();
  if (typeOf(k).getRank() != rank || typeOf(v).getRank() != rank)
    return fail() << "query, key and value must have the same rank";
  int64_t h, hkv, d;
  if (rank == 4) {
    h = typeOf(q).getDimSize(1);
    hkv = typeOf(k).getDimSize(1);
    d = typeOf(q).getDimSize(3);
  } else if (rank == 3) {
    h = attrInt(node, "q_num_heads", 0);
    hkv = attrInt(node, "kv_num_heads", 0);
    if (h <= 0 || hkv <= 0)
      return fail() << "3-D inputs need q_num_heads and kv_num_heads";
    if (typeOf(q).getDimSize(2) % h != 0)
      return fail() << "query hidden size " << typeOf(q).getDimSize(2)
                    << " is not divisible by q_num_heads " << h;
    d = typeOf(q).getDimSize(2) / h;
  } else {
    return fail() << "inputs must have rank 3 or 4";
  }
  float scale = attrFloat(node, "scale", 1.0f / std::sqrt(double(d)));
  int64_t bsz = typeOf(q).getDimSize(0);
  int64_t sq = typeOf(q).getDimSize(rank == 4 ? 2 : 1);
  int64_t dv =
      rank == 4 ? typeOf(v).getDimSize(3) : typeOf(v).getDimSize(2) / hkv;
  SmallVector<int64_t> shape = rank == 4
                                   ? SmallVector<int64_t>{bsz, h, sq, dv}
                                   : SmallVector<int64_t>{bsz, sq, h * dv};
  if (mask && typeOf(mask).getElementType() != typeOf(q).getElementType() &&
      !typeOf(mask).getElementType().isInteger(1))
    mask = castTo(mask, typeOf(q).getElementType());
  setOut(0, nn::AttentionOp::create(b, loc, withShape(q, shape), q, k, v, mask,
                                    h, hkv, attrInt(node, "is_causal", 0) != 0,
                                    llvm::APFloat(scale)));
  // present_key/present_value equal K and V in [B, H, S, D] form when there
  // is no past.
  for (int idx : {1, 2}) {
    if (idx >= node.output_size() || node.output(idx).empty())
      continue;
    Value kv = idx == 1 ? k : v;
    if (rank == 3) {
      int64_t s = typeOf(kv).getDimSize(1), hd = typeOf(kv).getDimSize(2) / hkv;
      kv = transpose(reshape(kv, {bsz, s, hkv, hd}), {0, 2, 1, 3});
    }
    setOut(idx, kv);
  }
  if (node.output_size() > 3 && !node.output(3).empty()) {
    ValueInfo poison;
    poison.poison = "output '" + node.output(3) + "' of node '" + name +
                    "' (qk_matmul_output) is not supported";
    im.values[node.output(3)] = poison;
  }
  return success();
}

LogicalResult NodeEmitter::rotary() {
  Value x = operand(0);
  if (!x)
    return failure();
  int64_t rank = typeOf(x).getRank();
  if (rank != 3 && rank != 4)
    return fail() << "input must have rank 3 or 4";
  int64_t bsz = typeOf(x).getDimSize(0), h, s, d;
  if (rank == 4) {
    h = typeOf(x).getDimSize(1);
    s = typeOf(x).getDimSize(2);
    d = typeOf(x).getDimSize(3);
  } else if (rank == 3) {
    h = attrInt(node, "num_heads", 0);
    if (h <= 0)
      return fail() << "3-D input needs num_heads";
    s = typeOf(x).getDimSize(1);
    if (typeOf(x).getDimSize(2) % h != 0)
      return fail() << "hidden size " << typeOf(x).getDimSize(2)
                    << " is not divisible by num_heads " << h;
    d = typeOf(x).getDimSize(2) / h;
  } else {
    return fail() << "input must have rank 3 or 4";
  }
  int64_t r = attrInt(node, "rotary_embedding_dim", 0);
  if (r == 0)
    r = d;
  // cos/sin tables: [max_pos, R/2] indexed by position_ids, or already
  // [B, S, R/2].
  Value tables[2];
  for (int t = 0; t < 2; ++t) {
    ValueInfo *cacheInfo = in(1 + t);
    if (!cacheInfo)
      return fail() << "cos/sin cache is missing";
    if (!in(3)) {
      if (!(tables[t] = operand(1 + t)))
        return failure();
      continue;
    }
    bool failedRead;
    const HostTensor *cache = im.constantOf(*cacheInfo, loc, failedRead);
    const HostTensor *pos = im.constantOf(*in(3), loc, failedRead);
    if (failedRead)
      return failure();
    if (cache && pos) {
      onnx::NodeProto g;
      g.set_op_type("Gather");
      const HostTensor *args[] = {cache, pos};
      FoldResult res = foldNode(g, args, im.opset);
      if (!res.ok())
        return fail() << "gathering the cos/sin cache: " << res.error;
      tables[t] = im.materializeConstant(res.outputs[0], loc);
    } else {
      Value c = operand(1 + t), p = operand(3);
      if (!c || !p)
        return failure();
      if (typeOf(c).getRank() != 2)
        return fail() << "with position_ids, the cos/sin caches must be "
                         "[max_position, rotary_dim / 2], not "
                      << shapeString(typeOf(c).getShape());
      SmallVector<int64_t> shape(typeOf(p).getShape());
      shape.push_back(typeOf(c).getDimSize(1));
      tables[t] = nn::GatherOp::create(b, loc, withShape(c, shape), c, p, 0);
    }
    if (!tables[t])
      return failure();
  }
  Value heads = x;
  if (rank == 3)
    heads = transpose(reshape(x, {bsz, s, h, d}), {0, 2, 1, 3});
  for (Value &t : tables)
    t = castTo(t, typeOf(x).getElementType());
  Value y =
      nn::RotaryOp::create(b, loc, heads.getType(), heads, tables[0], tables[1],
                           attrInt(node, "interleaved", 0) != 0, r);
  if (rank == 3)
    y = reshape(transpose(y, {0, 2, 1, 3}), typeOf(x).getShape());
  setOut(0, y);
  return success();
}

//===----------------------------------------------------------------------===//
// Dispatch
//===----------------------------------------------------------------------===//

/// The emitter of every supported op type: the one list that both dispatch
/// and the "supported ops" of error messages come from.
const llvm::StringMap<NodeEmitter::Handler> &NodeEmitter::handlers() {
  using E = NodeEmitter;
  static const llvm::StringMap<Handler> table = [] {
    llvm::StringMap<Handler> t;
    auto add = [&](StringRef op, Handler h) { t[op] = h; };
    add("Add", [](E &e) { return e.binary<nn::AddOp>(); });
    add("Sub", [](E &e) { return e.binary<nn::SubOp>(); });
    add("Mul", [](E &e) { return e.binary<nn::MulOp>(); });
    add("Div", [](E &e) { return e.binary<nn::DivOp>(); });
    add("Pow", [](E &e) { return e.binary<nn::PowOp>(); });
    add("Equal", [](E &e) { return e.binary<nn::EqualOp>(); });
    add("Less", [](E &e) { return e.binary<nn::LessOp>(); });
    add("Greater", [](E &e) { return e.binary<nn::GreaterOp>(); });
    add("And", [](E &e) { return e.binary<nn::AndOp>(); });
    add("Or", [](E &e) { return e.binary<nn::OrOp>(); });
    // On bool (how masks are combined) the bitwise ops are the logical ops.
    add("BitwiseAnd", [](E &e) {
      return e.isBool(0) ? e.binary<nn::AndOp>() : e.binary<nn::BitwiseAndOp>();
    });
    add("BitwiseOr", [](E &e) {
      return e.isBool(0) ? e.binary<nn::OrOp>() : e.binary<nn::BitwiseOrOp>();
    });
    add("BitwiseXor", [](E &e) -> LogicalResult {
      if (e.isBool(0))
        return e.fail() << "not supported on bool tensors computed at run time";
      return e.binary<nn::BitwiseXorOp>();
    });
    add("BitwiseNot", [](E &e) {
      return e.boolInput() ? e.unary<nn::NotOp>() : failure();
    });
    add("LessOrEqual", [](E &e) { return e.compareNot(/*less=*/false); });
    add("GreaterOrEqual", [](E &e) { return e.compareNot(/*less=*/true); });
    add("Max", [](E &e) {
      return e.node.input_size() == 2 ? e.binary<nn::MaxOp>()
                                      : e.variadic("Max");
    });
    add("Min", [](E &e) {
      return e.node.input_size() == 2 ? e.binary<nn::MinOp>()
                                      : e.variadic("Min");
    });
    add("Sum", [](E &e) { return e.variadic("Sum"); });
    add("Neg", [](E &e) { return e.unary<nn::NegOp>(); });
    add("Abs", [](E &e) { return e.unary<nn::AbsOp>(); });
    add("Sqrt", [](E &e) { return e.unary<nn::SqrtOp>(); });
    add("Reciprocal", [](E &e) { return e.unary<nn::ReciprocalOp>(); });
    add("Exp", [](E &e) { return e.unary<nn::ExpOp>(); });
    add("Log", [](E &e) { return e.unary<nn::LogOp>(); });
    add("Erf", [](E &e) { return e.unary<nn::ErfOp>(); });
    add("Tanh", [](E &e) { return e.unary<nn::TanhOp>(); });
    add("Sigmoid", [](E &e) { return e.unary<nn::SigmoidOp>(); });
    add("Relu", [](E &e) { return e.unary<nn::ReluOp>(); });
    add("Sin", [](E &e) { return e.unary<nn::SinOp>(); });
    add("Floor", [](E &e) { return e.unary<nn::FloorOp>(); });
    add("Ceil", [](E &e) { return e.unary<nn::CeilOp>(); });
    add("Sign", [](E &e) { return e.unary<nn::SignOp>(); });
    add("Cos", [](E &e) { return e.unary<nn::CosOp>(); });
    add("Not", [](E &e) { return e.unary<nn::NotOp>(); });
    add("Gelu", [](E &e) { return e.gelu(); });
    add("IsNaN", [](E &e) { return e.isNaN(); });
    add("Identity", [](E &e) { return e.identity(); });
    add("Dropout", [](E &e) { return e.identity(); });
    add("Cast", [](E &e) { return e.castOp(/*like=*/false); });
    add("CastLike", [](E &e) { return e.castOp(/*like=*/true); });
    add("Where", [](E &e) { return e.where(); });
    add("MatMul", [](E &e) { return e.matmul(); });
    add("Gemm", [](E &e) { return e.gemm(); });
    add("ReduceMean", [](E &e) { return e.reduce<nn::ReduceMeanOp>(); });
    add("ReduceSum", [](E &e) { return e.reduce<nn::ReduceSumOp>(); });
    add("ReduceMax", [](E &e) { return e.reduce<nn::ReduceMaxOp>(); });
    add("ReduceLogSumExp", [](E &e) { return e.reduceLogSumExp(); });
    for (StringRef op : {"ReduceL1", "ReduceL2", "ReduceSumSquare"})
      add(op, [](E &e) { return e.reduceNorm(e.node.op_type()); });
    add("ArgMax", [](E &e) { return e.argExtreme(/*largest=*/true); });
    add("ArgMin", [](E &e) { return e.argExtreme(/*largest=*/false); });
    add("Softmax", [](E &e) { return e.softmax<nn::SoftmaxOp>(); });
    add("LogSoftmax", [](E &e) { return e.softmax<nn::LogSoftmaxOp>(); });
    add("Transpose", [](E &e) { return e.transposeOp(); });
    for (StringRef op : {"Reshape", "Squeeze", "Unsqueeze", "Flatten"})
      add(op, [](E &e) { return e.reshapeLike(); });
    add("Gather", [](E &e) { return e.gather(); });
    add("CumSum", [](E &e) { return e.cumsum(); });
    add("Clip", [](E &e) { return e.clip(); });
    add("Pad", [](E &e) { return e.pad(); });
    add("Conv", [](E &e) { return e.conv(); });
    add("Einsum", [](E &e) { return e.einsum(); });
    add("ScatterND", [](E &e) { return e.scatter(/*nd=*/true); });
    add("ScatterElements", [](E &e) { return e.scatter(/*nd=*/false); });
    add("Tile", [](E &e) { return e.tile(); });
    add("TopK", [](E &e) { return e.topk(); });
    add("Softplus", [](E &e) { return e.softplus(); });
    add("GatherND", [](E &e) { return e.flatGather(/*nd=*/true); });
    add("GatherElements", [](E &e) { return e.flatGather(/*nd=*/false); });
    add("Concat", [](E &e) { return e.concat(); });
    add("Split", [](E &e) { return e.split(); });
    add("SplitToSequence", [](E &e) { return e.splitToSequence(); });
    add("SequenceAt", [](E &e) { return e.sequenceAt(); });
    add("Slice", [](E &e) { return e.slice(); });
    add("Expand", [](E &e) { return e.expand(); });
    add("Trilu", [](E &e) { return e.trilu(); });
    add("LayerNormalization", [](E &e) { return e.layerNorm(/*rms=*/false); });
    add("RMSNormalization", [](E &e) { return e.layerNorm(/*rms=*/true); });
    add("Attention", [](E &e) { return e.attention(); });
    add("RotaryEmbedding", [](E &e) { return e.rotary(); });
    add("SoftmaxCrossEntropyLoss",
        [](E &e) { return e.softmaxCrossEntropy(); });
    return t;
  }();
  return table;
}

bool NodeEmitter::isEmitted(StringRef op) { return handlers().count(op); }

std::vector<StringRef> NodeEmitter::emittedOps() {
  std::vector<StringRef> ops;
  for (const auto &entry : handlers())
    ops.push_back(entry.getKey());
  llvm::sort(ops);
  return ops;
}

LogicalResult NodeEmitter::emit() {
  auto it = handlers().find(node.op_type());
  if (it == handlers().end())
    return fail() << "no emitter";
  return it->second(*this);
}

bool NodeEmitter::isBool(int k) {
  ValueInfo *x = in(k);
  return x && x->dtype == kBool;
}

bool NodeEmitter::boolInput() {
  ValueInfo *x = in(0);
  if (x && x->dtype == kBool)
    return true;
  fail() << "supported on bool tensors, or on integers known at compile time";
  return false;
}

LogicalResult NodeEmitter::isNaN() {
  Value x = operand(0);
  if (!x)
    return failure();
  setOut(0, nn::IsNanOp::create(
                b, loc, withShape(x, typeOf(x).getShape()).clone(b.getI1Type()),
                x));
  return success();
}

LogicalResult NodeEmitter::identity() {
  Value x = operand(0);
  if (!x)
    return failure();
  setOut(0, x);
  if (node.op_type() == "Dropout" && node.output_size() > 1 &&
      !node.output(1).empty()) {
    HostTensor mask(kBool, typeOf(x).getShape());
    std::fill(mask.i.begin(), mask.i.end(), 1);
    im.setConstant(node.output(1), std::move(mask));
  }
  return success();
}

LogicalResult NodeEmitter::matmul() {
  Value x = operand(0), y = operand(1);
  if (!x || !y)
    return failure();
  if (typeOf(x).getElementType() != typeOf(y).getElementType())
    return fail() << "inputs have different element types";
  std::string why;
  auto shape = nn::matmulShape(typeOf(x).getShape(), typeOf(y).getShape(), &why);
  if (!shape)
    return fail() << why;
  setOut(0, nn::MatmulOp::create(b, loc, withShape(x, *shape), x, y));
  return success();
}
