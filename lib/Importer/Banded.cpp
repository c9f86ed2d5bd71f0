//===- Banded.cpp - masks kept as one value per diagonal ------------------===//
//
// Part of weipipe. Exporters build the causal (and sliding-window) mask of
// every attention from position aranges: `kv_idx <= q_idx` over [1, 1, S, S],
// or Trilu of a [S, S] splat for the SDPA decomposition, then Where, And,
// Expand. Folding that densely costs S^2 values per tensor and per layer (16K
// tokens: 2 GiB each). Such tensors depend only on the diagonal j - i of
// their last two axes, so they are kept banded (HostTensor::banded): one
// value per diagonal, O(S). A fold produces a banded result when its output
// is big and its inputs allow it:
//   - elementwise ops (and Where) whose inputs are splats or banded tensors
//     of the output's last two dimensions;
//   - comparisons and subtractions of a row arange [.., S, 1] and a column
//     arange [.., 1, S] of integers with the same step (a function of j - i);
//   - ConstantOfShape and Expand of a splat, Trilu, Expand and reshapes that
//     keep the last two dimensions, and Slice with unit steps.
// The per-diagonal values are computed by the ordinary folders on 1-D inputs
// of one value per diagonal, so every op keeps its exact semantics. Anything
// else densifies (and a genuinely dense S^2 mask still hits the fold limit).
//
//===----------------------------------------------------------------------===//

#include "HostTensor.h"

#include "llvm/ADT/StringSet.h"

#include "onnx/onnx_pb.h"

#include <cmath>
#include <optional>

using namespace mlir::weipipe::importer;
using llvm::ArrayRef;
using llvm::SmallVector;
using llvm::StringRef;

namespace {
/// Outputs at least this big are kept banded when they can be.
constexpr int64_t kBandedMin = int64_t(1) << 20;

/// How one input reads at element (i, j) of the output's last two axes.
struct View {
  enum Kind { Splat, Diag, Row, Col } kind;
  const HostTensor *t;
  double at(int64_t i, int64_t j, int64_t m) const {
    switch (kind) {
    case Splat:
      return t->getDouble(0);
    case Diag:
      return t->getDouble(j - i + m - 1);
    case Row:
      return t->getDouble(i);
    case Col:
      return t->getDouble(j);
    }
    return 0;
  }
};

bool constantValued(const HostTensor &t) {
  for (int64_t k = 1, n = t.numel(); k < n; ++k)
    if (t.getDouble(k) != t.getDouble(0))
      return false;
  return t.numel() > 0;
}

/// `t` as read by an output whose last two dimensions are [m, n]; none when
/// it varies along leading dimensions or along both of the last two.
std::optional<View> viewOf(const HostTensor *t, int64_t m, int64_t n) {
  if (!t)
    return std::nullopt;
  if (t->banded) {
    size_t r = t->shape.size();
    if (t->shape[r - 2] != m || t->shape[r - 1] != n)
      return std::nullopt;
    return View{View::Diag, t};
  }
  if (constantValued(*t))
    return View{View::Splat, t};
  SmallVector<int64_t> s(t->shape.begin(), t->shape.end());
  while (s.size() < 2)
    s.insert(s.begin(), 1);
  for (size_t d = 0; d + 2 < s.size(); ++d)
    if (s[d] != 1)
      return std::nullopt;
  int64_t mi = s[s.size() - 2], nj = s.back();
  if (mi == m && nj == 1)
    return View{View::Row, t};
  if (mi == 1 && nj == n)
    return View{View::Col, t};
  return std::nullopt;
}

/// An arange of integers: its step, or none.
std::optional<double> integerStep(const HostTensor &t) {
  int64_t n = t.numel();
  if (n < 2)
    return std::nullopt;
  double step = t.getDouble(1) - t.getDouble(0);
  for (int64_t k = 0; k < n; ++k) {
    double v = t.getDouble(k);
    if (v != std::floor(v) || std::fabs(v) > 9.0e15 ||
        (k && v - t.getDouble(k - 1) != step))
      return std::nullopt;
  }
  return step;
}

/// Ops computed element by element (all inputs broadcast to the output).
bool isElementwise(StringRef op) {
  static const llvm::StringSet<> ops = {
      "Add",        "Sub",        "Mul",         "Div",        "Pow",
      "Max",        "Min",        "Mod",         "Equal",      "Less",
      "LessOrEqual", "Greater",   "GreaterOrEqual", "And",     "Or",
      "Xor",        "Not",        "Neg",         "Abs",        "Sqrt",
      "Reciprocal", "Exp",        "Log",         "Sin",        "Cos",
      "Tanh",       "Erf",        "Sigmoid",     "Relu",       "Floor",
      "Ceil",       "Sign",       "IsNaN",       "IsInf",      "Identity",
      "Dropout",    "Cast",       "CastLike",    "Where",      "BitwiseAnd",
      "BitwiseOr",  "BitwiseXor", "BitwiseNot"};
  return ops.contains(op);
}

/// Functions of b - a: a row arange against a column arange depends only on
/// j - i when both have the same step.
bool isDifferenceOp(StringRef op) {
  return op == "Sub" || op == "Equal" || op == "Less" ||
         op == "LessOrEqual" || op == "Greater" || op == "GreaterOrEqual";
}

/// The diagonal d of [m, n] read at its first element.
std::pair<int64_t, int64_t> firstOf(int64_t d) {
  int64_t i = std::max<int64_t>(0, -d);
  return {i, i + d};
}

/// `values` (one per diagonal) as a banded tensor of `shape`.
HostTensor banded(HostTensor values, ArrayRef<int64_t> shape) {
  values.shape.assign(shape.begin(), shape.end());
  values.banded = true;
  return values;
}

class BandedFolder {
public:
  BandedFolder(const onnx::NodeProto &node, ArrayRef<const HostTensor *> in,
               int64_t opset)
      : node(node), in(in), opset(opset), op(node.op_type()) {}

  /// False: not a banded fold.
  bool run(FoldResult &out) {
    bool anyBanded = llvm::any_of(in, [](const HostTensor *t) {
      return t && t->banded;
    });
    if (isElementwise(op))
      return elementwise(anyBanded, out);
    if (op == "ConstantOfShape")
      return constantOfShape(out);
    if (op == "Expand")
      return expand(anyBanded, out);
    if (!anyBanded || !input(0) || !input(0)->banded)
      return false;
    if (op == "Trilu")
      return trilu(out);
    if (op == "Reshape" || op == "Squeeze" || op == "Unsqueeze" ||
        op == "Flatten")
      return reshape(out);
    if (op == "Slice")
      return slice(out);
    return false;
  }

private:
  const onnx::NodeProto &node;
  ArrayRef<const HostTensor *> in;

  /// Input k, or nullptr where the node has fewer inputs (a malformed
  /// model reaches here before any op checks its arity).
  const HostTensor *input(size_t k) const {
    return k < in.size() ? in[k] : nullptr;
  }
  int64_t opset;
  StringRef op;

  static bool big(ArrayRef<int64_t> shape) {
    return shape.size() >= 2 && numElements(shape) >= kBandedMin;
  }

  bool fail(FoldResult &out, const std::string &why) {
    out.error = why;
    return true;
  }

  bool elementwise(bool anyBanded, FoldResult &out) {
    // CastLike's second input only gives the type.
    size_t arity = op == "CastLike" ? 1 : in.size();
    SmallVector<int64_t> shape;
    for (size_t k = 0; k < arity; ++k) {
      if (!in[k])
        return false;
      SmallVector<int64_t> next;
      if (!broadcastTo(shape, in[k]->shape, next))
        return false;
      shape = next;
    }
    if (!anyBanded && !big(shape))
      return false;
    if (shape.size() < 2)
      return false;
    int64_t m = shape[shape.size() - 2], n = shape.back();
    SmallVector<View> views;
    for (size_t k = 0; k < arity; ++k) {
      std::optional<View> v = viewOf(in[k], m, n);
      if (!v)
        return false;
      views.push_back(*v);
    }
    // Rows and columns combine only as aranges of one step under a function
    // of their difference.
    int rows = 0, cols = 0;
    for (const View &v : views)
      rows += v.kind == View::Row, cols += v.kind == View::Col;
    if (rows || cols) {
      if (rows != 1 || cols != 1 || views.size() != 2 || !isDifferenceOp(op))
        return false;
      std::optional<double> s0 = integerStep(*views[0].t),
                            s1 = integerStep(*views[1].t);
      if (!s0 || !s1 || *s0 != *s1)
        return false;
    }
    // One value per diagonal for each input, then the ordinary folder.
    int64_t diagonals = m + n - 1;
    std::vector<HostTensor> perDiag;
    perDiag.reserve(in.size());
    SmallVector<const HostTensor *> args(in.begin(), in.end());
    HostTensor like;
    if (arity < in.size() && input(1)) { // CastLike: only the type matters
      like = HostTensor(input(1)->dtype, {0});
      args[1] = &like;
    }
    for (size_t k = 0; k < arity; ++k) {
      HostTensor t(in[k]->dtype, {diagonals});
      for (int64_t d = 1 - m; d < n; ++d) {
        auto [i, j] = firstOf(d);
        double v = views[k].at(i, j, m);
        if (t.isFloat())
          t.f[d + m - 1] = v;
        else
          t.i[d + m - 1] = static_cast<int64_t>(v);
      }
      perDiag.push_back(std::move(t));
      args[k] = &perDiag.back();
    }
    FoldResult r = foldNode(node, args, opset);
    if (!r.ok())
      return fail(out, r.error);
    out.outputs.push_back(banded(std::move(r.outputs[0]), shape));
    return true;
  }

  bool constantOfShape(FoldResult &out) {
    if (!input(0))
      return false;
    std::vector<int64_t> shape = input(0)->ints();
    if (llvm::any_of(shape, [](int64_t d) { return d < 0; }) || !big(shape))
      return false;
    HostTensor one = HostTensor::vectorInt({1}); // the value, once
    FoldResult r = foldNode(node, {&one, input(1)},
                            opset);
    if (!r.ok())
      return fail(out, r.error);
    return splatTo(r.outputs[0], shape, out);
  }

  /// A one-element tensor `v` repeated over `shape` (rank >= 2).
  bool splatTo(const HostTensor &v, ArrayRef<int64_t> shape,
               FoldResult &out) {
    HostTensor t = HostTensor::makeBanded(v.dtype, shape);
    for (int64_t k = 0, e = static_cast<int64_t>(
                            t.isFloat() ? t.f.size() : t.i.size());
         k < e; ++k) {
      if (t.isFloat())
        t.f[k] = v.getDouble(0);
      else
        t.i[k] = v.getInt(0);
    }
    out.outputs.push_back(std::move(t));
    return true;
  }

  bool expand(bool anyBanded, FoldResult &out) {
    const HostTensor *x = input(0);
    if (!x || !input(1) || input(1)->banded)
      return false;
    SmallVector<int64_t> shape;
    if (!broadcastTo(x->shape, input(1)->ints(), shape))
      return false;
    if (!anyBanded && !big(shape))
      return false;
    if (x->banded) {
      if (shape[shape.size() - 2] != x->shape[x->shape.size() - 2] ||
          shape.back() != x->shape.back())
        return false; // the last two dimensions grow: not banded
      HostTensor t = *x;
      t.shape = shape;
      out.outputs.push_back(std::move(t));
      return true;
    }
    if (!constantValued(*x))
      return false;
    return splatTo(*x, shape, out);
  }

  bool trilu(FoldResult &out) {
    const HostTensor &x = *input(0);
    if (input(1) && input(1)->numel() != 1)
      return fail(out, "k must be a scalar");
    int64_t k = input(1) ? input(1)->getInt(0) : 0;
    bool upper = attrInt(node, "upper", 1) != 0;
    int64_t m = x.shape[x.shape.size() - 2];
    HostTensor t = x;
    for (int64_t d = 1 - m, n = x.shape.back(); d < n; ++d)
      if (!(upper ? d >= k : d <= k))
        t.setInt(d + m - 1, 0);
    out.outputs.push_back(std::move(t));
    return true;
  }

  bool reshape(FoldResult &out) {
    const HostTensor &x = *input(0);
    SmallVector<int64_t> shape;
    std::string why;
    if (!reshapeLikeShape(node, x.shape, input(1),
                          shape, why))
      return fail(out, why);
    if (shape.size() < 2 ||
        shape[shape.size() - 2] != x.shape[x.shape.size() - 2] ||
        shape.back() != x.shape.back())
      return false;
    HostTensor t = x;
    t.shape = shape;
    out.outputs.push_back(std::move(t));
    return true;
  }

  bool slice(FoldResult &out) {
    const HostTensor &x = *input(0);
    if (!input(1) || !input(2))
      return false; // attribute form (opset < 10): not from these exporters
    std::vector<int64_t> starts = input(1)->ints(), ends = input(2)->ints(),
                         axes, steps;
    if (input(3))
      axes = input(3)->ints();
    if (input(4))
      steps = input(4)->ints();
    SmallVector<SliceDim> dims;
    std::string why;
    if (!sliceBounds(x.shape, starts, ends, axes, steps, dims, why))
      return fail(out, why);
    size_t r = x.shape.size();
    SmallVector<int64_t> shape;
    for (size_t d = 0; d < r; ++d) {
      const SliceDim &s = dims[d];
      int64_t len = s.step > 0 ? (s.end - s.start + s.step - 1) / s.step
                               : (s.start - s.end - s.step - 1) / -s.step;
      shape.push_back(std::max<int64_t>(len, 0));
      if (d + 2 >= r && s.step != 1 && shape.back() > 1)
        return false;
    }
    if (numElements(shape) == 0)
      return false;
    int64_t m = x.shape[r - 2], m2 = shape[r - 2], n2 = shape[r - 1];
    int64_t shift = dims[r - 1].start - dims[r - 2].start;
    HostTensor t = HostTensor::makeBanded(x.dtype, shape);
    for (int64_t d = 1 - m2; d < n2; ++d) {
      int64_t from = d + shift + m - 1;
      if (t.isFloat())
        t.f[d + m2 - 1] = x.f[from];
      else
        t.i[d + m2 - 1] = x.i[from];
    }
    out.outputs.push_back(std::move(t));
    return true;
  }
};
} // namespace

bool mlir::weipipe::importer::foldBanded(const onnx::NodeProto &node,
                                         ArrayRef<const HostTensor *> inputs,
                                         int64_t opset, FoldResult &out) {
  return BandedFolder(node, inputs, opset).run(out);
}
