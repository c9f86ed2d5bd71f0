//===- FusionPatterns.cpp - raise nn primitives to fused ops --------------===//
//
// Part of weipipe. Each pattern recognises one primitive form that ONNX
// exporters emit (after import and folding) and rewrites it into the fused
// `nn` op. Patterns match on structure and on the values of the constants
// involved (0.5, sqrt(2), the tanh-GELU coefficients, epsilons); anything
// else is left alone and keeps training through the primitives.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Dialect/NN/NNOps.h"
#include "weipipe/Dialect/NN/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/STLExtras.h"

#include <cmath>

using namespace mlir;
using namespace mlir::weipipe;
using namespace mlir::weipipe::nn;

namespace {

//===----------------------------------------------------------------------===//
// Matching helpers
//===----------------------------------------------------------------------===//

RankedTensorType typeOf(Value v) { return cast<RankedTensorType>(v.getType()); }

/// The value of a constant whose elements are all equal.
std::optional<double> splatValue(Value v) {
  auto c = v.getDefiningOp<ConstantOp>();
  if (!c)
    return std::nullopt;
  auto attr = dyn_cast<DenseElementsAttr>(c.getValue());
  if (!attr || !attr.isSplat())
    return std::nullopt;
  Type e = attr.getElementType();
  if (isa<FloatType>(e))
    return attr.getSplatValue<APFloat>().convertToDouble();
  if (e.isInteger(1))
    return attr.getSplatValue<bool>() ? 1.0 : 0.0;
  if (isa<IntegerType>(e))
    return static_cast<double>(attr.getSplatValue<APInt>().getSExtValue());
  return std::nullopt;
}

bool isSplat(Value v, double want, double relTol = 1e-5) {
  std::optional<double> got = splatValue(v);
  return got &&
         std::fabs(*got - want) <= relTol * std::max(1.0, std::fabs(want));
}

/// Flattens a tree of `nn.mul` into its factors. Interior products must have
/// no other user, so that the fused op can replace the whole tree.
void productFactors(Value v, SmallVectorImpl<Value> &out, bool root = true) {
  auto mul = v.getDefiningOp<MulOp>();
  if (mul && (root || mul->hasOneUse())) {
    productFactors(mul.getLhs(), out, false);
    productFactors(mul.getRhs(), out, false);
    return;
  }
  out.push_back(v);
}

/// Removes the first factor satisfying `pred` from `factors` and returns it.
template <typename Pred>
Value takeFactor(SmallVectorImpl<Value> &factors, Pred pred) {
  for (auto *it = factors.begin(); it != factors.end(); ++it)
    if (pred(*it)) {
      Value v = *it;
      factors.erase(it);
      return v;
    }
  return nullptr;
}

/// `a + b` in either order with `b` a splat equal to `c`: returns `a`.
Value addOfSplat(Value v, double c) {
  auto add = v.getDefiningOp<AddOp>();
  if (!add)
    return nullptr;
  if (isSplat(add.getRhs(), c))
    return add.getLhs();
  if (isSplat(add.getLhs(), c))
    return add.getRhs();
  return nullptr;
}

/// `x^2` written as pow(x, 2) or x * x.
Value squareOf(Value v) {
  if (auto pow = v.getDefiningOp<PowOp>())
    if (isSplat(pow.getRhs(), 2.0))
      return pow.getLhs();
  if (auto mul = v.getDefiningOp<MulOp>())
    if (mul.getLhs() == mul.getRhs())
      return mul.getLhs();
  return nullptr;
}

/// True when `axes` are the trailing dimensions [first, rank).
std::optional<int64_t> trailingAxes(ArrayRef<int64_t> axes, int64_t rank) {
  if (axes.empty())
    return std::nullopt;
  for (auto [k, a] : llvm::enumerate(axes))
    if (a != rank - static_cast<int64_t>(axes.size()) + static_cast<int64_t>(k))
      return std::nullopt;
  return axes.front();
}

/// Mean over trailing axes with keepdims: returns (input, first axis).
std::optional<std::pair<Value, int64_t>> trailingMean(Value v) {
  auto mean = v.getDefiningOp<ReduceMeanOp>();
  if (!mean || !mean.getKeepdims())
    return std::nullopt;
  auto axis = trailingAxes(mean.getAxes(), typeOf(mean.getInput()).getRank());
  if (!axis)
    return std::nullopt;
  return std::make_pair(mean.getInput(), *axis);
}

/// `sqrt(mean + eps)`: returns (mean value, eps). A bare `sqrt(mean)` is
/// epsilon 0 (torch.onnx's optimizer removes an epsilon of 1e-8 or less as
/// if it were zero; nn-fuse warns about such norms).
std::optional<std::pair<Value, double>> sqrtPlusEps(Value v) {
  auto sqrt = v.getDefiningOp<SqrtOp>();
  if (!sqrt)
    return std::nullopt;
  auto add = sqrt.getInput().getDefiningOp<AddOp>();
  if (!add)
    return std::make_pair(sqrt.getInput(), 0.0);
  for (auto [m, e] : {std::pair{add.getLhs(), add.getRhs()},
                      std::pair{add.getRhs(), add.getLhs()}})
    if (std::optional<double> eps = splatValue(e))
      if (typeOf(e).getNumElements() == 1 && *eps >= 0)
        return std::make_pair(m, *eps);
  return std::nullopt;
}

/// A scale or shift for a norm over `normalized`: a tensor whose shape,
/// without leading 1s, is the normalized shape. Returns it reshaped to the
/// normalized shape, or null.
Value normParam(PatternRewriter &rewriter, Location loc, Value v,
                ArrayRef<int64_t> normalized, Type elem) {
  RankedTensorType t = typeOf(v);
  if (t.getElementType() != elem)
    return nullptr;
  ArrayRef<int64_t> shape = t.getShape();
  while (!shape.empty() && shape.front() == 1 &&
         shape.size() > normalized.size())
    shape = shape.drop_front();
  if (shape != normalized)
    return nullptr;
  if (t.getShape() == normalized)
    return v;
  return ReshapeOp::create(rewriter, loc,
                           RankedTensorType::get(normalized, elem), v);
}

Value splatConstant(PatternRewriter &rewriter, Location loc,
                    ArrayRef<int64_t> shape, Type elem, double value) {
  auto type = RankedTensorType::get(shape, elem);
  auto attr = DenseElementsAttr::get(
      type, rewriter.getFloatAttr(elem, value).getValue());
  return ConstantOp::create(rewriter, loc, type, attr);
}

//===----------------------------------------------------------------------===//
// linear and embedding
//===----------------------------------------------------------------------===//

/// matmul(x, W) with W rank 2, or matmul(x, transpose(W)) -> linear.
struct MatmulToLinear : OpRewritePattern<MatmulOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(MatmulOp op,
                                PatternRewriter &rewriter) const override {
    Value x = op.getLhs(), w = op.getRhs();
    if (typeOf(x).getRank() < 2 || typeOf(w).getRank() != 2)
      return failure();
    bool transposed = false;
    if (auto t = w.getDefiningOp<TransposeOp>())
      if (t.getPerm() == ArrayRef<int64_t>{1, 0}) {
        w = t.getInput();
        transposed = true;
      }
    rewriter.replaceOpWithNewOp<LinearOp>(op, op.getType(), x, w, Value(),
                                          transposed);
    return success();
  }
};

/// linear(x, W) + b with b of shape [N] -> linear(x, W, b).
struct BiasIntoLinear : OpRewritePattern<AddOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AddOp op,
                                PatternRewriter &rewriter) const override {
    for (auto [l, b] : {std::pair{op.getLhs(), op.getRhs()},
                        std::pair{op.getRhs(), op.getLhs()}}) {
      auto linear = l.getDefiningOp<LinearOp>();
      if (!linear || linear.getBias() || !linear->hasOneUse() ||
          linear.getType() != op.getType())
        continue;
      int64_t n = linear.getType().getShape().back();
      Value bias = normParam(rewriter, op.getLoc(), b, {n},
                             linear.getType().getElementType());
      if (!bias)
        continue;
      rewriter.replaceOpWithNewOp<LinearOp>(op, op.getType(), linear.getInput(),
                                            linear.getWeight(), bias,
                                            linear.getTransposeWeight());
      return success();
    }
    return failure();
  }
};

/// gather(table [V, H], ids, axis 0) -> embedding.
struct GatherToEmbedding : OpRewritePattern<GatherOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(GatherOp op,
                                PatternRewriter &rewriter) const override {
    RankedTensorType table = typeOf(op.getInput());
    if (op.getAxis() != 0 || table.getRank() != 2 ||
        !isa<FloatType>(table.getElementType()))
      return failure();
    rewriter.replaceOpWithNewOp<EmbeddingOp>(op, op.getType(), op.getInput(),
                                             op.getIndices(), IntegerAttr());
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Activations
//===----------------------------------------------------------------------===//

/// 0.5 * x * (1 + erf(x / sqrt(2)))  and
/// 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))) -> gelu.
struct GeluPattern : OpRewritePattern<MulOp> {
  using OpRewritePattern::OpRewritePattern;

  static bool isErfArg(Value z, Value x) {
    if (auto div = z.getDefiningOp<DivOp>())
      return div.getLhs() == x && isSplat(div.getRhs(), M_SQRT2, 1e-4);
    SmallVector<Value> f;
    productFactors(z, f);
    return f.size() == 2 && llvm::is_contained(f, x) &&
           llvm::any_of(f, [](Value v) { return isSplat(v, M_SQRT1_2, 1e-4); });
  }

  static bool isCube(Value t, Value x) {
    SmallVector<Value> f;
    productFactors(t, f);
    if (!takeFactor(f, [](Value v) { return isSplat(v, 0.044715, 1e-4); }))
      return false;
    if (f.size() == 1)
      if (auto pow = f[0].getDefiningOp<PowOp>())
        return pow.getLhs() == x && isSplat(pow.getRhs(), 3.0);
    return f.size() == 3 && llvm::all_of(f, [&](Value v) { return v == x; });
  }

  static bool isTanhArg(Value w, Value x) {
    SmallVector<Value> f;
    productFactors(w, f);
    const double c = std::sqrt(2.0 / M_PI);
    if (!takeFactor(f, [&](Value v) { return isSplat(v, c, 1e-4); }) ||
        f.size() != 1)
      return false;
    auto add = f[0].getDefiningOp<AddOp>();
    if (!add)
      return false;
    return (add.getLhs() == x && isCube(add.getRhs(), x)) ||
           (add.getRhs() == x && isCube(add.getLhs(), x));
  }

  LogicalResult matchAndRewrite(MulOp op,
                                PatternRewriter &rewriter) const override {
    SmallVector<Value> f;
    productFactors(op.getResult(), f);
    if (f.size() != 3 ||
        !takeFactor(f, [](Value v) { return isSplat(v, 0.5); }))
      return failure();
    for (auto [x, y] : {std::pair{f[0], f[1]}, std::pair{f[1], f[0]}}) {
      if (x.getType() != op.getType())
        continue;
      Value e = addOfSplat(y, 1.0);
      if (!e)
        continue;
      if (auto erf = e.getDefiningOp<ErfOp>();
          erf && isErfArg(erf.getInput(), x)) {
        rewriter.replaceOpWithNewOp<GeluOp>(op, op.getType(), x,
                                            GeluApproximation::none);
        return success();
      }
      if (auto tanh = e.getDefiningOp<TanhOp>();
          tanh && isTanhArg(tanh.getInput(), x)) {
        rewriter.replaceOpWithNewOp<GeluOp>(op, op.getType(), x,
                                            GeluApproximation::tanh);
        return success();
      }
    }
    return failure();
  }
};

/// x * sigmoid(x) -> silu(x); silu(g) * u -> swiglu(g, u).
struct SiluPattern : OpRewritePattern<MulOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(MulOp op,
                                PatternRewriter &rewriter) const override {
    for (auto [a, b] : {std::pair{op.getLhs(), op.getRhs()},
                        std::pair{op.getRhs(), op.getLhs()}}) {
      if (auto sig = b.getDefiningOp<SigmoidOp>();
          sig && sig.getInput() == a && a.getType() == op.getType()) {
        rewriter.replaceOpWithNewOp<SiluOp>(op, op.getType(), a);
        return success();
      }
      if (auto silu = a.getDefiningOp<SiluOp>(); silu && silu->hasOneUse() &&
                                                 b.getType() == op.getType() &&
                                                 a.getType() == op.getType()) {
        rewriter.replaceOpWithNewOp<SwigluOp>(op, op.getType(), silu.getInput(),
                                              b);
        return success();
      }
    }
    return failure();
  }
};

//===----------------------------------------------------------------------===//
// Norms
//===----------------------------------------------------------------------===//

/// The single user of `v` if it is an `OpT` with `v` as one operand; sets
/// `other` to the other operand.
template <typename OpT> OpT soleBinaryUser(Value v, Value &other) {
  if (!v.hasOneUse())
    return nullptr;
  auto user = dyn_cast<OpT>(*v.getUsers().begin());
  if (!user)
    return nullptr;
  other = user.getLhs() == v ? user.getRhs() : user.getLhs();
  return user;
}

/// (x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) [* g] [+ b]
///   -> layer_norm(x, g, b).
struct LayerNormPattern : OpRewritePattern<DivOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(DivOp op,
                                PatternRewriter &rewriter) const override {
    auto sub = op.getLhs().getDefiningOp<SubOp>();
    if (!sub)
      return failure();
    auto mean = trailingMean(sub.getRhs());
    Value x = sub.getLhs();
    if (!mean || mean->first != x || x.getType() != op.getType())
      return failure();
    auto denom = sqrtPlusEps(op.getRhs());
    if (!denom)
      return failure();
    auto var = trailingMean(denom->first);
    if (!var || var->second != mean->second ||
        squareOf(var->first) != sub.getResult())
      return failure();

    int64_t axis = mean->second;
    ArrayRef<int64_t> normalized = typeOf(x).getShape().drop_front(axis);
    Type elem = typeOf(x).getElementType();
    Location loc = op.getLoc();
    Operation *last = op;
    Value scale, bias, other;
    if (auto mul = soleBinaryUser<MulOp>(op.getResult(), other)) {
      if ((scale = normParam(rewriter, loc, other, normalized, elem))) {
        last = mul;
        if (auto add = soleBinaryUser<AddOp>(mul.getResult(), other))
          if ((bias = normParam(rewriter, loc, other, normalized, elem)))
            last = add;
      }
    }
    if (!scale)
      scale = splatConstant(rewriter, loc, normalized, elem, 1.0);
    rewriter.setInsertionPoint(last);
    Value ln = LayerNormOp::create(rewriter, loc, x.getType(), x, scale, bias,
                                   axis, APFloat(float(denom->second)));
    rewriter.replaceOp(last, ln);
    return success();
  }
};

/// x * 1/sqrt(mean(x^2) + eps) [* g], or x / sqrt(...) [* g] -> rms_norm.
struct RMSNormPattern : RewritePattern {
  RMSNormPattern(MLIRContext *ctx)
      : RewritePattern(MatchAnyOpTypeTag(), /*benefit=*/1, ctx) {}

  /// 1/sqrt(mean(x^2) + eps): returns (x, axis, eps).
  static std::optional<std::tuple<Value, int64_t, double>> inverseRms(Value r) {
    Value s;
    if (auto rec = r.getDefiningOp<ReciprocalOp>())
      s = rec.getInput();
    else if (auto div = r.getDefiningOp<DivOp>();
             div && isSplat(div.getLhs(), 1.0))
      s = div.getRhs();
    else
      return std::nullopt;
    return rms(s);
  }

  /// sqrt(mean(x^2) + eps): returns (x, axis, eps).
  static std::optional<std::tuple<Value, int64_t, double>> rms(Value s) {
    auto denom = sqrtPlusEps(s);
    if (!denom)
      return std::nullopt;
    auto ms = trailingMean(denom->first);
    if (!ms)
      return std::nullopt;
    Value x = squareOf(ms->first);
    if (!x)
      return std::nullopt;
    return std::make_tuple(x, ms->second, denom->second);
  }

  LogicalResult matchAndRewrite(Operation *op,
                                PatternRewriter &rewriter) const override {
    Value x, scaleIn;
    int64_t axis;
    double eps;
    if (auto div = dyn_cast<DivOp>(op)) {
      auto m = rms(div.getRhs());
      if (!m || std::get<0>(*m) != div.getLhs())
        return failure();
      std::tie(x, axis, eps) = *m;
    } else if (auto mul = dyn_cast<MulOp>(op)) {
      // Only the outermost product of a chain: let the enclosing one match.
      Value other;
      if (auto outer = soleBinaryUser<MulOp>(mul.getResult(), other))
        (void)outer;
      SmallVector<Value> f;
      productFactors(mul.getResult(), f);
      std::optional<std::tuple<Value, int64_t, double>> m;
      Value r = takeFactor(
          f, [&](Value v) { return (m = inverseRms(v)).has_value(); });
      if (!r)
        return failure();
      std::tie(x, axis, eps) = *m;
      if (!takeFactor(f, [&](Value v) { return v == x; }) || f.size() > 1)
        return failure();
      if (f.size() == 1)
        scaleIn = f[0];
    } else {
      return failure();
    }
    if (x.getType() != op->getResult(0).getType())
      return failure();
    Location loc = op->getLoc();
    ArrayRef<int64_t> normalized = typeOf(x).getShape().drop_front(axis);
    Type elem = typeOf(x).getElementType();
    Value scale;
    if (scaleIn &&
        !(scale = normParam(rewriter, loc, scaleIn, normalized, elem)))
      return failure();
    if (!scale)
      scale = splatConstant(rewriter, loc, normalized, elem, 1.0);
    rewriter.replaceOpWithNewOp<RMSNormOp>(op, x.getType(), x, scale, axis,
                                           APFloat(float(eps)));
    return success();
  }
};

/// rms_norm(x, 1) * g -> rms_norm(x, g): the scale of a norm matched before
/// the product around it.
struct ScaleIntoRMSNorm : OpRewritePattern<MulOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(MulOp op,
                                PatternRewriter &rewriter) const override {
    for (auto [a, g] : {std::pair{op.getLhs(), op.getRhs()},
                        std::pair{op.getRhs(), op.getLhs()}}) {
      auto norm = a.getDefiningOp<RMSNormOp>();
      if (!norm || !norm->hasOneUse() || !isSplat(norm.getScale(), 1.0) ||
          norm.getType() != op.getType())
        continue;
      ArrayRef<int64_t> normalized =
          norm.getType().getShape().drop_front(norm.getAxis());
      Value scale = normParam(rewriter, op.getLoc(), g, normalized,
                              norm.getType().getElementType());
      if (!scale)
        continue;
      rewriter.replaceOpWithNewOp<RMSNormOp>(op, op.getType(), norm.getInput(),
                                             scale, norm.getAxis(),
                                             norm.getEpsilon());
      return success();
    }
    return failure();
  }
};

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

/// A splat at or below -1e30 (or -inf): a masked score.
bool isMaskedScore(Value v) {
  std::optional<double> x = splatValue(v);
  return x && *x <= -1e30;
}

/// The permutation of transpose(transpose(x, inner), outer).
SmallVector<int64_t> composePerm(ArrayRef<int64_t> inner,
                                 ArrayRef<int64_t> outer) {
  SmallVector<int64_t> perm;
  for (int64_t p : outer)
    perm.push_back(inner[p]);
  return perm;
}

/// transpose(v, perm), folding into a transpose that produces v.
Value transposed(PatternRewriter &rewriter, Location loc, Value v,
                 ArrayRef<int64_t> perm) {
  SmallVector<int64_t> total(perm);
  if (auto t = v.getDefiningOp<TransposeOp>()) {
    total = composePerm(t.getPerm(), perm);
    v = t.getInput();
  }
  if (llvm::equal(total, llvm::seq<int64_t>(0, total.size())))
    return v;
  SmallVector<int64_t> shape;
  for (int64_t p : total)
    shape.push_back(typeOf(v).getDimSize(p));
  return TransposeOp::create(
      rewriter, loc, RankedTensorType::get(shape, typeOf(v).getElementType()),
      v, total);
}

/// True unless `mask` is a constant in which every query row keeps at least
/// one key. Softmax over a fully masked row is NaN, which exporters guard
/// with where(isnan(p), 0, p); the fused op may drop that guard only when no
/// row is fully masked.
bool mayMaskWholeRow(Value mask) {
  if (!mask)
    return false;
  std::optional<MaskPattern> pattern = constantMaskPattern(mask);
  return !pattern || !pattern->everyRowKeeps;
}

/// True if a parameter is read anywhere in the computation of `v`. The
/// attention op takes no gradient for its mask, so a score bias computed from
/// parameters (Doge's learned dynamic mask) must stay unfused to be trained.
bool dependsOnParameter(Value v) {
  SmallVector<Operation *> work;
  llvm::SmallPtrSet<Operation *, 32> seen;
  if (Operation *def = v.getDefiningOp())
    work.push_back(def);
  while (!work.empty()) {
    Operation *op = work.pop_back_val();
    if (!seen.insert(op).second)
      continue;
    if (isa<ParamOp>(op))
      return true;
    for (Value operand : op->getOperands())
      if (Operation *def = operand.getDefiningOp())
        work.push_back(def);
  }
  return false;
}

/// softmax(q kᵀ · scale + mask) v, as matmul/scale/mask/softmax/matmul
/// primitives (with the exporters' NaN guard) -> attention.
struct AttentionPattern : OpRewritePattern<MatmulOp> {
  using OpRewritePattern::OpRewritePattern;

  struct Scores {
    Value query, keyT;
    double scale = 1.0;
  };

  /// q kᵀ with scalar factors on either side or on the product.
  static std::optional<Scores> scores(Value t) {
    Scores s;
    while (true) {
      if (auto mul = t.getDefiningOp<MulOp>()) {
        if (auto c = splatValue(mul.getRhs());
            c && typeOf(mul.getRhs()).getNumElements() == 1) {
          s.scale *= *c;
          t = mul.getLhs();
          continue;
        }
        if (auto c = splatValue(mul.getLhs());
            c && typeOf(mul.getLhs()).getNumElements() == 1) {
          s.scale *= *c;
          t = mul.getRhs();
          continue;
        }
        return std::nullopt;
      }
      if (auto div = t.getDefiningOp<DivOp>()) {
        auto c = splatValue(div.getRhs());
        if (!c || *c == 0 || typeOf(div.getRhs()).getNumElements() != 1)
          return std::nullopt;
        s.scale /= *c;
        t = div.getLhs();
        continue;
      }
      break;
    }
    auto mm = t.getDefiningOp<MatmulOp>();
    if (!mm)
      return std::nullopt;
    auto strip = [&](Value v) -> Value {
      auto mul = v.getDefiningOp<MulOp>();
      if (!mul)
        return v;
      for (auto [x, c] : {std::pair{mul.getLhs(), mul.getRhs()},
                          std::pair{mul.getRhs(), mul.getLhs()}})
        if (auto k = splatValue(c); k && typeOf(c).getNumElements() == 1 &&
                                    x.getType() == v.getType()) {
          s.scale *= *k;
          return x;
        }
      return v;
    };
    s.query = strip(mm.getLhs());
    s.keyT = strip(mm.getRhs());
    return s;
  }

  LogicalResult matchAndRewrite(MatmulOp op,
                                PatternRewriter &rewriter) const override {
    Value p = op.getLhs(), v = op.getRhs();
    if (typeOf(p).getRank() != 4 || typeOf(v).getRank() != 4)
      return failure();
    bool nanGuard = false;
    if (auto w = p.getDefiningOp<WhereOp>()) {
      auto isNan = w.getCondition().getDefiningOp<IsNanOp>();
      if (!isNan || isNan.getInput() != w.getRhs() || !isSplat(w.getLhs(), 0.0))
        return failure();
      p = w.getRhs();
      nanGuard = true;
    }
    auto softmax = p.getDefiningOp<SoftmaxOp>();
    if (!softmax || softmax.getAxis() != 3)
      return failure();
    Value s = softmax.getInput();
    Location loc = op.getLoc();

    // The mask: where(masked, -inf, t), where(keep, t, -inf) or t + mask.
    Value mask, negate;
    std::optional<Scores> sc;
    if (auto w = s.getDefiningOp<WhereOp>()) {
      if (isMaskedScore(w.getLhs()) && (sc = scores(w.getRhs())))
        negate = w.getCondition();
      else if (isMaskedScore(w.getRhs()) && (sc = scores(w.getLhs())))
        mask = w.getCondition();
      else
        return failure();
    } else if (auto add = s.getDefiningOp<AddOp>()) {
      if ((sc = scores(add.getLhs())))
        mask = add.getRhs();
      else if ((sc = scores(add.getRhs())))
        mask = add.getLhs();
      else
        return failure();
    } else if (!(sc = scores(s))) {
      return failure();
    }

    Value q = sc->query;
    RankedTensorType qt = typeOf(q), kt = typeOf(sc->keyT), vt = typeOf(v);
    if (qt.getRank() != 4 || kt.getRank() != 4)
      return failure();
    int64_t b = qt.getDimSize(0), h = qt.getDimSize(1), sq = qt.getDimSize(2),
            d = qt.getDimSize(3);
    if (kt.getShape() != ArrayRef<int64_t>{b, h, d, kt.getDimSize(3)} ||
        vt.getDimSize(0) != b || vt.getDimSize(1) != h ||
        vt.getDimSize(2) != kt.getDimSize(3) ||
        op.getType().getShape() !=
            ArrayRef<int64_t>{b, h, sq, vt.getDimSize(3)})
      return failure();
    if (mask) {
      Type me = typeOf(mask).getElementType();
      if (!me.isInteger(1) && me != qt.getElementType())
        return failure();
      if (!me.isInteger(1) && dependsOnParameter(mask))
        return failure();
    }
    if (negate) {
      // A where-true-means-masked condition becomes a keep-mask, a constant
      // one (dense or banded) negated at compile time.
      auto band = negate.getDefiningOp<BandOp>();
      Value values = band ? band.getDiagonals() : negate;
      auto c = values.getDefiningOp<ConstantOp>();
      if (auto attr = c ? dyn_cast<DenseElementsAttr>(c.getValue()) : nullptr) {
        SmallVector<bool> keep;
        for (bool m : attr.getValues<bool>())
          keep.push_back(!m);
        mask = ConstantOp::create(rewriter, loc, typeOf(values),
                                  DenseElementsAttr::get(typeOf(values), keep));
        if (band)
          mask = BandOp::create(rewriter, loc, typeOf(negate), mask);
      } else {
        mask = NotOp::create(rewriter, loc, typeOf(negate), negate);
      }
    }
    if (nanGuard && mayMaskWholeRow(mask))
      return failure();
    Value key = transposed(rewriter, loc, sc->keyT, {0, 1, 3, 2});
    rewriter.replaceOpWithNewOp<AttentionOp>(op, op.getType(), q, key, v, mask,
                                             h, h, /*causal=*/false,
                                             APFloat(float(sc->scale)));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Rotary
//===----------------------------------------------------------------------===//

/// Float values of a constant, or nullopt.
std::optional<std::vector<double>> constantValues(Value v) {
  auto c = v.getDefiningOp<ConstantOp>();
  if (!c)
    return std::nullopt;
  auto attr = dyn_cast<DenseElementsAttr>(c.getValue());
  if (!attr || !isa<FloatType>(attr.getElementType()))
    return std::nullopt;
  std::vector<double> out;
  out.reserve(typeOf(v).getNumElements());
  if (attr.isSplat()) {
    out.assign(typeOf(v).getNumElements(),
               attr.getSplatValue<APFloat>().convertToDouble());
    return out;
  }
  for (APFloat f : attr.getValues<APFloat>())
    out.push_back(f.convertToDouble());
  return out;
}

/// x * cos + rotate_half(x) * sin, with rotate_half(x) = concat(-x2, x1)
/// over the last dimension and cos/sin constants whose two halves are equal
/// -> rotary(x, cos[..., :R/2], sin[..., :R/2]).
struct RotaryPattern : OpRewritePattern<AddOp> {
  using OpRewritePattern::OpRewritePattern;

  /// concat(neg(slice(x, upper half)), slice(x, lower half)) -> x.
  static Value rotateHalfOf(Value v) {
    auto cat = v.getDefiningOp<ConcatOp>();
    if (!cat || cat.getInputs().size() != 2 ||
        static_cast<int64_t>(cat.getAxis()) != typeOf(v).getRank() - 1)
      return nullptr;
    auto neg = cat.getInputs()[0].getDefiningOp<NegOp>();
    if (!neg)
      return nullptr;
    auto hi = neg.getInput().getDefiningOp<SliceOp>();
    auto lo = cat.getInputs()[1].getDefiningOp<SliceOp>();
    if (!hi || !lo || hi.getInput() != lo.getInput())
      return nullptr;
    Value x = hi.getInput();
    if (x.getType() != v.getType())
      return nullptr;
    int64_t rank = typeOf(x).getRank(), r = typeOf(x).getShape().back();
    for (int64_t dim = 0; dim < rank; ++dim) {
      int64_t size = typeOf(x).getDimSize(dim);
      bool last = dim == rank - 1;
      int64_t loStart = 0, loEnd = last ? r / 2 : size;
      int64_t hiStart = last ? r / 2 : 0, hiEnd = size;
      if (lo.getStarts()[dim] != loStart || lo.getEnds()[dim] != loEnd ||
          lo.getSteps()[dim] != 1 || hi.getStarts()[dim] != hiStart ||
          hi.getEnds()[dim] != hiEnd || hi.getSteps()[dim] != 1)
        return nullptr;
    }
    return r % 2 == 0 ? x : nullptr;
  }

  /// A [.., S, R] table broadcast over heads with equal halves, as an
  /// [S, R/2] or [B, S, R/2] constant.
  static Value halfTable(PatternRewriter &rewriter, Location loc, Value table,
                         RankedTensorType x) {
    auto values = constantValues(table);
    if (!values || typeOf(table).getElementType() != x.getElementType())
      return nullptr;
    ArrayRef<int64_t> ts = typeOf(table).getShape();
    if (ts.size() > 4 || ts.size() < 2)
      return nullptr;
    SmallVector<int64_t> t4(4 - ts.size(), 1);
    t4.append(ts.begin(), ts.end());
    int64_t b = x.getDimSize(0), s = x.getDimSize(2), r = x.getDimSize(3);
    if (t4[1] != 1 || t4[2] != s || t4[3] != r || (t4[0] != 1 && t4[0] != b))
      return nullptr;
    int64_t half = r / 2, batches = t4[0];
    for (int64_t i = 0; i < batches * s; ++i)
      for (int64_t j = 0; j < half; ++j)
        if ((*values)[i * r + j] != (*values)[i * r + j + half])
          return nullptr;
    bool sameBatches = true;
    for (int64_t i = s * r; i < batches * s * r && sameBatches; ++i)
      sameBatches = (*values)[i] == (*values)[i % (s * r)];
    if (sameBatches)
      batches = 1;
    SmallVector<int64_t> shape = batches == 1
                                     ? SmallVector<int64_t>{s, half}
                                     : SmallVector<int64_t>{batches, s, half};
    SmallVector<APFloat> halves;
    const llvm::fltSemantics &sem =
        cast<FloatType>(x.getElementType()).getFloatSemantics();
    for (int64_t i = 0; i < batches * s; ++i)
      for (int64_t j = 0; j < half; ++j) {
        APFloat f((*values)[i * r + j]);
        bool lost;
        f.convert(sem, APFloat::rmNearestTiesToEven, &lost);
        halves.push_back(f);
      }
    auto type = RankedTensorType::get(shape, x.getElementType());
    return ConstantOp::create(rewriter, loc, type,
                              DenseElementsAttr::get(type, halves));
  }

  LogicalResult matchAndRewrite(AddOp op,
                                PatternRewriter &rewriter) const override {
    RankedTensorType xt = op.getType();
    if (xt.getRank() != 4)
      return failure();
    for (auto [a, b] : {std::pair{op.getLhs(), op.getRhs()},
                        std::pair{op.getRhs(), op.getLhs()}}) {
      auto mc = a.getDefiningOp<MulOp>(), ms = b.getDefiningOp<MulOp>();
      if (!mc || !ms)
        continue;
      for (auto [x, cos] : {std::pair{mc.getLhs(), mc.getRhs()},
                            std::pair{mc.getRhs(), mc.getLhs()}}) {
        if (x.getType() != xt)
          continue;
        for (auto [rh, sin] : {std::pair{ms.getLhs(), ms.getRhs()},
                               std::pair{ms.getRhs(), ms.getLhs()}}) {
          if (rotateHalfOf(rh) != x)
            continue;
          Location loc = op.getLoc();
          Value c = halfTable(rewriter, loc, cos, xt);
          Value sn = c ? halfTable(rewriter, loc, sin, xt) : Value();
          if (!c || !sn)
            return failure();
          rewriter.replaceOpWithNewOp<RotaryOp>(op, xt, x, c, sn,
                                                /*interleaved=*/false,
                                                xt.getDimSize(3));
          return success();
        }
      }
    }
    return failure();
  }
};

} // namespace

void mlir::weipipe::populateNNFusionPatterns(RewritePatternSet &patterns,
                                             ArrayRef<std::string> which) {
  MLIRContext *ctx = patterns.getContext();
  auto want = [&](StringRef name) {
    return which.empty() || llvm::is_contained(which, name.str());
  };
  if (want("linear"))
    patterns.add<MatmulToLinear, BiasIntoLinear>(ctx);
  if (want("embedding"))
    patterns.add<GatherToEmbedding>(ctx);
  if (want("gelu"))
    patterns.add<GeluPattern>(ctx);
  if (want("silu"))
    patterns.add<SiluPattern>(ctx);
  if (want("layer_norm"))
    patterns.add<LayerNormPattern>(ctx);
  if (want("rms_norm"))
    patterns.add<RMSNormPattern, ScaleIntoRMSNorm>(ctx);
  if (want("attention"))
    patterns.add<AttentionPattern>(ctx);
  if (want("rotary"))
    patterns.add<RotaryPattern>(ctx);
}
