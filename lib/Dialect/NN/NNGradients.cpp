//===- NNGradients.cpp - the gradient of every nn op ----------------------===//
//
// Part of weipipe. Reverse-mode rules, one per op family. Each rule receives
// the gradient of the op's result and emits the gradients of its operands.
// Weight-gradient ops (linear_grad_weight, *_grad_params, *_grad_scale,
// embedding_grad) are separate from input-gradient ops so that the
// autodiff can split B from W.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Dialect/NN/NNGradients.h"
#include "weipipe/Dialect/NN/NNOps.h"

#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::weipipe::nn;

namespace {
bool isFloatTensor(Value v) {
  return isa<FloatType>(cast<RankedTensorType>(v.getType()).getElementType());
}

/// `dy` summed down to `v`'s shape if the op broadcast `v`, else `dy`.
Value sumTo(OpBuilder &b, Location loc, Value dy, Value v) {
  if (dy.getType() == v.getType())
    return dy;
  return SumToShapeOp::create(b, loc, v.getType(), dy);
}

LogicalResult binary(OpBuilder &b, Operation *op, BinaryFunction fn, Value dy,
                     ArrayRef<bool> needed, SmallVectorImpl<Value> &d) {
  Location loc = op->getLoc();
  Value lhs = op->getOperand(0), rhs = op->getOperand(1);
  if (!isFloatTensor(lhs))
    return success();
  // Adds and subtracts are the common residual and bias case: no kernel,
  // only a reduction where an operand was broadcast.
  if (fn == BinaryFunction::add) {
    if (needed[0])
      d[0] = sumTo(b, loc, dy, lhs);
    if (needed[1])
      d[1] = sumTo(b, loc, dy, rhs);
    return success();
  }
  if (fn == BinaryFunction::sub) {
    if (needed[0])
      d[0] = sumTo(b, loc, dy, lhs);
    if (needed[1]) {
      Value neg = NegOp::create(b, loc, dy.getType(), dy);
      d[1] = sumTo(b, loc, neg, rhs);
    }
    return success();
  }
  // One kernel computes both; the artifact leaves out the unused result.
  auto g = BinaryGradOp::create(b, loc, lhs.getType(), rhs.getType(), lhs, rhs,
                                dy, fn);
  if (needed[0])
    d[0] = g.getGradLhs();
  if (needed[1])
    d[1] = g.getGradRhs();
  return success();
}

/// The elements of `dy` at the positions nn.scatter_elements(axis) wrote
/// through `idx` (GatherElements): one gather from the flattened dy, at
/// idx * stride(axis) plus each position's other coordinates.
Value gatherElements(OpBuilder &b, Location loc, Value dy, Value idx,
                     int64_t axis) {
  auto dt = cast<RankedTensorType>(dy.getType());
  auto it = cast<RankedTensorType>(idx.getType());
  ArrayRef<int64_t> ds = dt.getShape(), is = it.getShape();
  const int64_t rank = ds.size();
  SmallVector<int64_t> strides(rank, 1);
  for (int64_t d = rank - 2; d >= 0; --d)
    strides[d] = strides[d + 1] * ds[d + 1];
  SmallVector<int64_t> offsets(it.getNumElements()), pos(rank, 0);
  for (int64_t &o : offsets) {
    o = 0;
    for (int64_t d = 0; d < rank; ++d)
      if (d != axis)
        o += pos[d] * strides[d];
    for (int64_t d = rank - 1; d >= 0 && ++pos[d] == is[d]; --d)
      pos[d] = 0;
  }
  auto scalar = [&](int64_t v) {
    auto t = RankedTensorType::get({}, it.getElementType());
    return ConstantOp::create(b, loc, DenseElementsAttr::get(t, v));
  };
  // Negative indices count from the end.
  Value negative = LessOp::create(
      b, loc, RankedTensorType::get(is, b.getI1Type()), idx, scalar(0));
  Value wrapped = AddOp::create(b, loc, it, idx, scalar(ds[axis]));
  Value flat = WhereOp::create(b, loc, it, negative, wrapped, idx);
  if (strides[axis] != 1)
    flat = MulOp::create(b, loc, it, flat, scalar(strides[axis]));
  flat = AddOp::create(
      b, loc, it, flat,
      ConstantOp::create(b, loc,
                         DenseElementsAttr::get(it, ArrayRef<int64_t>(offsets))));
  Value dyFlat = ReshapeOp::create(
      b, loc, RankedTensorType::get({dt.getNumElements()}, dt.getElementType()),
      dy);
  return GatherOp::create(
      b, loc, RankedTensorType::get(is, dt.getElementType()), dyFlat, flat, 0);
}

Value unary(OpBuilder &b, Operation *op, UnaryFunction fn, Value dy) {
  return UnaryGradOp::create(b, op->getLoc(), dy.getType(), op->getOperand(0),
                             op->getResult(0), dy, fn);
}

template <typename ReduceOpT>
Value reduce(OpBuilder &b, ReduceOpT op, ReduceFunction fn, Value dy) {
  return ReduceGradOp::create(b, op.getLoc(), op.getInput().getType(),
                              op.getInput(), op.getResult(), dy, fn,
                              op.getAxes());
}
} // namespace

bool mlir::weipipe::nn::hasNoGradient(Operation *op) {
  return isa<ConstantOp, ParamOp, EqualOp, LessOp, GreaterOp, AndOp, OrOp,
             NotOp, IsNanOp, FloorOp, CeilOp, SignOp, BitwiseAndOp,
             BitwiseOrOp, BitwiseXorOp>(op);
}

LogicalResult mlir::weipipe::nn::buildGradient(OpBuilder &b, Operation *op,
                                               Value dy, ArrayRef<bool> needed,
                                               SmallVectorImpl<Value> &d) {
  d.assign(op->getNumOperands(), Value());
  assert(needed.size() == op->getNumOperands() && "one entry per operand");
  if (hasNoGradient(op) || llvm::none_of(needed, [](bool n) { return n; }))
    return success();
  Location loc = op->getLoc();
  auto unaryRule = [&](UnaryFunction fn) {
    d[0] = unary(b, op, fn, dy);
    return success();
  };
  return llvm::TypeSwitch<Operation *, LogicalResult>(op)
      // Broadcasting binary ops.
      .Case([&](AddOp) { return binary(b, op, BinaryFunction::add, dy, needed, d); })
      .Case([&](SubOp) { return binary(b, op, BinaryFunction::sub, dy, needed, d); })
      .Case([&](MulOp) { return binary(b, op, BinaryFunction::mul, dy, needed, d); })
      .Case([&](DivOp) { return binary(b, op, BinaryFunction::div, dy, needed, d); })
      .Case([&](PowOp) { return binary(b, op, BinaryFunction::pow, dy, needed, d); })
      .Case([&](MaxOp) { return binary(b, op, BinaryFunction::max, dy, needed, d); })
      .Case([&](MinOp) { return binary(b, op, BinaryFunction::min, dy, needed, d); })
      // Elementwise functions.
      .Case([&](NegOp o) {
        if (isFloatTensor(o.getInput()))
          d[0] = NegOp::create(b, loc, dy.getType(), dy);
        return success();
      })
      .Case([&](AbsOp o) {
        if (isFloatTensor(o.getInput()))
          return unaryRule(UnaryFunction::abs);
        return success();
      })
      .Case([&](SqrtOp) { return unaryRule(UnaryFunction::sqrt); })
      .Case([&](ReciprocalOp) { return unaryRule(UnaryFunction::reciprocal); })
      .Case([&](ExpOp) { return unaryRule(UnaryFunction::exp); })
      .Case([&](LogOp) { return unaryRule(UnaryFunction::log); })
      .Case([&](ErfOp) { return unaryRule(UnaryFunction::erf); })
      .Case([&](TanhOp) { return unaryRule(UnaryFunction::tanh); })
      .Case([&](SigmoidOp) { return unaryRule(UnaryFunction::sigmoid); })
      .Case([&](ReluOp) { return unaryRule(UnaryFunction::relu); })
      .Case([&](SinOp) { return unaryRule(UnaryFunction::sin); })
      .Case([&](CosOp) { return unaryRule(UnaryFunction::cos); })
      .Case([&](CastOp o) {
        // Only a float-to-float cast passes a gradient (cast back).
        if (isFloatTensor(o.getInput()) && isFloatTensor(o.getResult()))
          d[0] = CastOp::create(b, loc, o.getInput().getType(), dy);
        return success();
      })
      .Case([&](WhereOp o) {
        if (!isFloatTensor(o.getLhs()))
          return success();
        auto g =
            WhereGradOp::create(b, loc, o.getLhs().getType(),
                                o.getRhs().getType(), o.getCondition(), dy);
        if (needed[1])
          d[1] = g.getGradLhs();
        if (needed[2])
          d[2] = g.getGradRhs();
        return success();
      })
      // Data movement: mostly its own adjoint.
      .Case([&](ReshapeOp o) {
        if (isFloatTensor(o.getInput()))
          d[0] = ReshapeOp::create(b, loc, o.getInput().getType(), dy);
        return success();
      })
      .Case([&](TransposeOp o) {
        if (!isFloatTensor(o.getInput()))
          return success();
        ArrayRef<int64_t> perm = o.getPerm();
        SmallVector<int64_t> inverse(perm.size());
        for (auto [i, p] : llvm::enumerate(perm))
          inverse[p] = static_cast<int64_t>(i);
        d[0] = TransposeOp::create(b, loc, o.getInput().getType(), dy,
                                   b.getDenseI64ArrayAttr(inverse));
        return success();
      })
      .Case([&](BroadcastOp o) {
        if (isFloatTensor(o.getInput()))
          d[0] = sumTo(b, loc, dy, o.getInput());
        return success();
      })
      .Case([&](ConcatOp o) {
        if (!isFloatTensor(o.getResult()))
          return success();
        int64_t axis = static_cast<int64_t>(o.getAxis());
        ArrayRef<int64_t> full = o.getType().getShape();
        int64_t at = 0;
        for (auto [i, in] : llvm::enumerate(o.getInputs())) {
          auto t = cast<RankedTensorType>(in.getType());
          if (!needed[i]) {
            at += t.getShape()[axis];
            continue;
          }
          SmallVector<int64_t> starts(full.size(), 0), ends(full),
              steps(full.size(), 1);
          starts[axis] = at;
          ends[axis] = at + t.getShape()[axis];
          at = ends[axis];
          d[i] = SliceOp::create(b, loc, t, dy, b.getDenseI64ArrayAttr(starts),
                                 b.getDenseI64ArrayAttr(ends),
                                 b.getDenseI64ArrayAttr(steps));
        }
        return success();
      })
      .Case([&](SliceOp o) {
        if (isFloatTensor(o.getInput()))
          d[0] = SliceGradOp::create(b, loc, o.getInput().getType(), dy,
                                     o.getStartsAttr(), o.getEndsAttr(),
                                     o.getStepsAttr());
        return success();
      })
      .Case([&](GatherOp o) {
        if (isFloatTensor(o.getInput()))
          d[0] = GatherGradOp::create(b, loc, o.getInput().getType(),
                                      o.getIndices(), dy, o.getAxisAttr());
        return success();
      })
      .Case([&](CumSumOp o) {
        // Each input element reaches the outputs after it (before it, when
        // reversed): the gradient sums dy the other way.
        if (isFloatTensor(o.getInput()))
          d[0] = CumSumOp::create(b, loc, dy.getType(), dy, o.getAxisAttr(),
                                  o.getExclusiveAttr(),
                                  b.getBoolAttr(!o.getReverse()));
        return success();
      })
      .Case([&](TriluOp o) {
        if (isFloatTensor(o.getInput()))
          d[0] = TriluOp::create(b, loc, dy.getType(), dy, o.getUpperAttr(),
                                 o.getKAttr());
        return success();
      })
      // Reductions and softmax.
      .Case([&](ReduceSumOp o) {
        d[0] = reduce(b, o, ReduceFunction::sum, dy);
        return success();
      })
      .Case([&](ReduceMeanOp o) {
        d[0] = reduce(b, o, ReduceFunction::mean, dy);
        return success();
      })
      .Case([&](ReduceMaxOp o) {
        d[0] = reduce(b, o, ReduceFunction::max, dy);
        return success();
      })
      .Case([&](SoftmaxOp o) {
        d[0] = SoftmaxGradOp::create(b, loc, dy.getType(), o.getResult(), dy,
                                     o.getAxisAttr());
        return success();
      })
      .Case([&](LogSoftmaxOp o) {
        d[0] = LogSoftmaxGradOp::create(b, loc, dy.getType(), o.getResult(), dy,
                                        o.getAxisAttr());
        return success();
      })
      .Case([&](MatmulOp o) {
        auto g = MatmulGradOp::create(b, loc, o.getLhs().getType(),
                                      o.getRhs().getType(), o.getLhs(),
                                      o.getRhs(), dy);
        if (needed[0])
          d[0] = g.getGradLhs();
        if (needed[1])
          d[1] = g.getGradRhs();
        return success();
      })
      // Fused ops.
      .Case([&](LinearOp o) {
        bool t = o.getTransposeWeight();
        // dx = dy Wᵀ is a linear with the weight used the other way round.
        if (needed[0])
          d[0] = LinearOp::create(b, loc, o.getInput().getType(), dy,
                                  o.getWeight(), Value(), b.getBoolAttr(!t));
        if (needed[1])
          d[1] = LinearGradWeightOp::create(b, loc, o.getWeight().getType(),
                                            o.getInput(), dy,
                                            b.getBoolAttr(t));
        if (Value bias = o.getBias(); bias && needed[2]) {
          auto rank = o.getType().getRank();
          SmallVector<int64_t> axes;
          for (int64_t i = 0; i + 1 < rank; ++i)
            axes.push_back(i);
          d[2] = ReduceSumOp::create(b, loc, bias.getType(), dy,
                                     b.getDenseI64ArrayAttr(axes),
                                     b.getBoolAttr(false));
        }
        return success();
      })
      .Case([&](LayerNormOp o) {
        if (needed[0])
          d[0] = LayerNormGradInputOp::create(
              b, loc, dy.getType(), o.getInput(), o.getScale(), dy,
              o.getAxisAttr(), o.getEpsilonAttr());
        Value bias = o.getBias();
        bool wantBias = bias && needed[2];
        if (needed[1]) {
          Type st = o.getScale().getType();
          auto g = LayerNormGradParamsOp::create(b, loc, st, st, o.getInput(),
                                                 dy, o.getAxisAttr(),
                                                 o.getEpsilonAttr());
          d[1] = g.getGradScale();
          if (wantBias)
            d[2] = g.getGradBias();
        } else if (wantBias) {
          // A frozen scale (a weightless norm exported with a scale of
          // ones) and a trained bias: the bias gradient is dy summed over
          // the rows, no statistics needed.
          SmallVector<int64_t> rows;
          for (int64_t i = 0, e = o.getAxis(); i < e; ++i)
            rows.push_back(i);
          d[2] = ReduceSumOp::create(b, loc, bias.getType(), dy,
                                     b.getDenseI64ArrayAttr(rows),
                                     b.getBoolAttr(false));
        }
        return success();
      })
      .Case([&](RMSNormOp o) {
        if (needed[0])
          d[0] = RMSNormGradInputOp::create(b, loc, dy.getType(), o.getInput(),
                                            o.getScale(), dy, o.getAxisAttr(),
                                            o.getEpsilonAttr());
        if (needed[1])
          d[1] = RMSNormGradScaleOp::create(b, loc, o.getScale().getType(),
                                            o.getInput(), dy, o.getAxisAttr(),
                                            o.getEpsilonAttr());
        return success();
      })
      .Case([&](AttentionOp o) {
        auto g = AttentionGradOp::create(
            b, loc, o.getQuery().getType(), o.getKey().getType(),
            o.getValue().getType(), o.getQuery(), o.getKey(), o.getValue(),
            o.getResult(), dy, o.getMask(), o.getNumHeadsAttr(),
            o.getNumKvHeadsAttr(), o.getCausalAttr(), o.getScaleAttr());
        for (int i = 0; i < 3; ++i)
          if (needed[i])
            d[i] = g->getResult(i);
        return success();
      })
      .Case([&](RotaryOp o) {
        // A rotation's adjoint is the rotation by the opposite angle. The
        // tables are constants: no gradient flows into them.
        if (!needed[0])
          return success();
        Value negSin = NegOp::create(b, loc, o.getSin().getType(), o.getSin());
        d[0] = RotaryOp::create(b, loc, dy.getType(), dy, o.getCos(), negSin,
                                o.getInterleavedAttr(), o.getRotaryDimAttr());
        return success();
      })
      .Case([&](GeluOp o) {
        d[0] = GeluGradOp::create(b, loc, dy.getType(), o.getInput(), dy,
                                  o.getApproximateAttr());
        return success();
      })
      .Case([&](SiluOp o) {
        d[0] = SiluGradOp::create(b, loc, dy.getType(), o.getInput(), dy);
        return success();
      })
      .Case([&](SwigluOp o) {
        auto g = SwigluGradOp::create(b, loc, dy.getType(), dy.getType(),
                                      o.getGate(), o.getUp(), dy);
        if (needed[0])
          d[0] = g.getGradGate();
        if (needed[1])
          d[1] = g.getGradUp();
        return success();
      })
      .Case([&](EmbeddingOp o) {
        d[0] = EmbeddingGradOp::create(b, loc, o.getTable().getType(),
                                       o.getIds(), dy, o.getPaddingIdxAttr());
        return success();
      })
      .Case([&](CrossEntropyOp o) {
        d[0] = CrossEntropyGradOp::create(b, loc, o.getLogits().getType(),
                                          o.getLogits(), o.getTargets(), dy,
                                          o.getIgnoreIndexAttr());
        return success();
      })
      .Case([&](ScatterElementsOp o) -> LogicalResult {
        // The replaced elements take nothing from `data`: its gradient is dy
        // with them zeroed, a scatter of zeros (Phi-MoE masks the chosen
        // expert's score with -inf this way). Each update's is the element
        // of dy it was written to (torch.scatter's, repeated targets
        // included).
        if (!isFloatTensor(o.getData()))
          return success();
        if (needed[0]) {
          auto ut = cast<RankedTensorType>(o.getUpdates().getType());
          Value zeros = ConstantOp::create(
              b, loc,
              DenseElementsAttr::get(ut,
                                     b.getFloatAttr(ut.getElementType(), 0)));
          d[0] = ScatterElementsOp::create(b, loc, dy.getType(), dy,
                                           o.getIndices(), zeros,
                                           o.getAxisAttr());
        }
        if (needed[2])
          d[2] = gatherElements(b, loc, dy, o.getIndices(), o.getAxis());
        return success();
      })
      .Default([&](Operation *other) {
        return other->emitOpError()
               << "has no gradient rule; -nn-autodiff cannot differentiate it";
      });
}
