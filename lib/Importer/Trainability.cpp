//===- Trainability.cpp - which initializers are trained ------------------===//
//
// Part of weipipe. An ONNX file does not say which initializers are trained
// parameters and which are buffers: exporters fold buffers (rotary tables,
// masks) into initializers with generated names, and rename weights they
// transpose. Training a buffer is silently wrong, so every floating-point
// initializer is decided from evidence, strongest first (the rules and their
// reasons are in docs/architecture.md, "What is trained"):
//
//   1. flags: --trainable-initializers, then --frozen-initializers;
//   2. metadata: the `weipipe.trainable` model property that weipipe's export
//      helper writes (initializer -> PyTorch parameter), trusted when present;
//      else the kind torch's dynamo exporter records per initializer
//      (PARAMETER, BUFFER, CONSTANT_TENSOR), where it recorded one;
//   3. structure: no gradient path (it only feeds shapes, indices, sin/cos,
//      or decides indices: a router's bias seen by TopK's indices alone),
//      a rotary cos/sin table (two tables whose squares sum to one), an
//      attention mask (every value 0 or <= -1e4, or 0/1), a weightless norm's
//      constant scale or bias with an exporter-made name;
//   4. otherwise a floating-point tensor of more than one element is trained.
//
// The decisions become the `evidence` of each nn.parameter and the module's
// `nn.frozen_initializers`, which the compile summary prints; ambiguous ones
// are warned about with the flag that settles them.
//
//===----------------------------------------------------------------------===//

#include "ImporterImpl.h"

#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Regex.h"

#include <cmath>

using namespace mlir;
using namespace mlir::weipipe;
using namespace mlir::weipipe::importer;
using llvm::ArrayRef;
using llvm::StringRef;

namespace {
bool isTrainableDType(int32_t dt) {
  return dt == kFloat || dt == kFloat16 || dt == kBFloat16;
}

/// Whether a value entering `node` at input `k` can receive a gradient:
/// not through shapes, indices, axes, conditions, comparisons or integer
/// casts.
bool passesGradient(const onnx::NodeProto &node, size_t k) {
  static const llvm::StringSet<> none = {
      "Shape",   "Size",           "Equal",     "Less",   "LessOrEqual",
      "Greater", "GreaterOrEqual", "And",       "Or",     "Xor",
      "Not",     "IsNaN",          "IsInf",     "Sign",   "Floor",
      "Ceil",    "Round",          "ArgMax",    "ArgMin", "NonZero",
      "Range",   "ConstantOfShape", "EyeLike",  "OneHot", "RandomNormalLike",
      "RandomUniformLike", "Bernoulli"};
  static const llvm::StringSet<> firstOnly = {
      "Gather",     "GatherElements", "GatherND",   "Reshape",   "Expand",
      "Tile",       "Unsqueeze",      "Squeeze",    "Slice",     "Split",
      "CumSum",     "Trilu",          "TopK",       "ReduceMean", "ReduceSum",
      "ReduceMax",  "ReduceMin",      "ReduceProd", "ReduceL1",  "ReduceL2",
      "ReduceSumSquare", "ReduceLogSumExp", "Dropout", "Resize", "Pad",
      "Clip",       "CastLike"};
  StringRef op = node.op_type();
  if (none.contains(op))
    return false;
  if (firstOnly.contains(op))
    return k == 0;
  if (op == "Where")
    return k != 0;
  if (op == "ScatterND" || op == "ScatterElements")
    return k != 1;
  if (op == "Cast")
    return isTrainableDType(attrInt(node, "to", kFloat)) ||
           attrInt(node, "to", kFloat) == kDouble;
  return true;
}

/// Whether output `j` of `node` carries a gradient back to its inputs: not
/// TopK's indices nor Dropout's mask (ops whose inputs pass no gradient at
/// all are caught by passesGradient).
bool outputPassesGradient(const onnx::NodeProto &node, size_t j) {
  StringRef op = node.op_type();
  if (op == "TopK" || op == "Dropout" || op == "MaxPool")
    return j == 0;
  return true;
}

/// Where a weight sits: the ops whose input `k` is a learned matrix, table or
/// norm parameter. The name of the op, or empty.
StringRef weightPosition(const onnx::NodeProto &node, size_t k) {
  StringRef op = node.op_type();
  if ((op == "MatMul" || op == "Gemm" || op == "Conv" || op == "Einsum") &&
      k <= 2)
    return op;
  if (op == "Gather" && k == 0)
    return op;
  if ((op == "LayerNormalization" || op == "RMSNormalization" ||
       op == "SimplifiedLayerNormalization") &&
      k >= 1)
    return op;
  return {};
}

bool isNormPosition(StringRef where) {
  return where.ends_with("Normalization");
}

/// Whether `node` (where a tensor meets run-time data) adds it to values
/// that a Softmax then normalizes, within a few reshapes, scalings and
/// further additions: an attention score bias.
bool addsToSoftmax(
    const onnx::NodeProto &node,
    std::map<std::string,
             std::vector<std::pair<const onnx::NodeProto *, size_t>>>
        &consumers) {
  static const llvm::StringSet<> along = {
      "Add",  "Sub",       "Mul",       "Div",     "Reshape", "Where",
      "Cast", "Transpose", "Unsqueeze", "Squeeze", "Expand",  "Identity"};
  StringRef op = node.op_type();
  if (op != "Add" && op != "Sub" && op != "Where")
    return false;
  std::vector<std::pair<const onnx::NodeProto *, int>> work = {{&node, 0}};
  while (!work.empty()) {
    auto [n, depth] = work.back();
    work.pop_back();
    for (const std::string &out : n->output())
      for (auto [user, k] : consumers[out]) {
        if (user->op_type() == "Softmax")
          return true;
        if (depth < 4 && along.contains(user->op_type()))
          work.push_back({user, depth + 1});
      }
  }
  return false;
}

/// Names exporters make up for tensors they create: dynamo's `val_12` and
/// folded op outputs (`unsqueeze_14`, `repeat`, `where`, `_val_3`),
/// TorchScript's `onnx::MatMul_5` and `/model/Constant_output_0`. A module's
/// parameters have dotted names (`model.layers.0.mlp.up_proj.weight`).
bool isGeneratedName(StringRef name) {
  static const llvm::Regex generated(
      "^(onnx::.*|/.*|_*[A-Za-z]+(_[A-Za-z]+)*(_[0-9]+)*)$");
  return (!name.contains('.') || name.starts_with("onnx::") ||
          name.starts_with("/")) &&
         generated.match(name);
}

/// True when every element of `t` holds the same value.
bool constantValued(const HostTensor &t) {
  for (int64_t k = 1, n = t.numel(); k < n; ++k)
    if (t.f[k] != t.f[0])
      return false;
  return true;
}

/// The most leading axes along which `t` repeats one slice (0: none): t is
/// broadcast(t[0, ..., 0, rest]) over its first k axes, the largest such k
/// that leaves a slice of more than one element.
int repeatedLeadingAxes(const HostTensor &t) {
  int rank = static_cast<int>(t.shape.size());
  for (int k = rank - 1; k >= 1; --k) {
    int64_t inner = numElements(ArrayRef<int64_t>(t.shape).drop_front(k));
    if (inner <= 1 || inner == t.numel())
      continue;
    bool repeats = true;
    for (int64_t j = inner, n = t.numel(); j < n && repeats; ++j)
      repeats = t.f[j] == t.f[j % inner];
    if (repeats)
      return k;
  }
  return 0;
}

/// The axes from `first` on, longer than one, along which `t` is constant (it
/// equals its own slice at index 0 of that axis broadcast).
SmallVector<int> repeatedAxes(const HostTensor &t, int first) {
  SmallVector<int> out;
  ArrayRef<int64_t> shape = t.shape;
  for (int a = first, rank = shape.size(); a < rank; ++a) {
    if (shape[a] <= 1)
      continue;
    int64_t inner = numElements(shape.drop_front(a + 1));
    int64_t span = inner * shape[a];
    bool repeats = true;
    for (int64_t j = 0, n = t.numel(); j < n && repeats; ++j)
      repeats = t.f[j] == t.f[j / span * span + j % inner];
    if (repeats)
      out.push_back(a);
  }
  return out;
}

/// Tolerance of a table computed in `dtype` and rounded to it.
double roundoff(int32_t dtype) { return dtype == kFloat ? 1e-5 : 2e-2; }

/// Pairs (cos, sin) whose squares all sum to one value m^2, m > 0: 1, or
/// YaRN's attention factor that scales both tables (GPT-OSS).
class OneRadius {
public:
  explicit OneRadius(double tol) : tol(tol) {}
  bool add(double c, double s) {
    double r2 = c * c + s * s;
    if (m2 < 0) {
      m2 = r2;
      return m2 > 0.25 && m2 < 4;
    }
    return std::abs(r2 - m2) <= tol * m2;
  }

private:
  double tol, m2 = -1;
};

/// A cos/sin pair (neither one value throughout: a fresh norm scale of ones
/// and a zero bias satisfy the identity too).
bool isTrigPair(const HostTensor &c, const HostTensor &s, double tol) {
  if (c.shape != s.shape || constantValued(c) || constantValued(s))
    return false;
  OneRadius r(tol);
  for (int64_t k = 0, n = c.numel(); k < n; ++k)
    if (!r.add(c.f[k], s.f[k]))
      return false;
  return true;
}

/// GPT-J's table: sin and cos concatenated along the last axis.
bool isTrigTable(const HostTensor &t, double tol) {
  if (t.shape.empty() || t.shape.back() % 2 != 0 || constantValued(t))
    return false;
  int64_t d = t.shape.back(), h = d / 2;
  OneRadius r(tol);
  for (int64_t row = 0, n = t.numel() / d; row < n; ++row)
    for (int64_t j = 0; j < h; ++j)
      if (!r.add(t.f[row * d + j], t.f[row * d + h + j]))
        return false;
  return true;
}

/// An additive mask (0 where attended, <= -1e4 or -inf elsewhere) or a
/// multiplicative one (0 and 1), with both values present.
bool isMask(const HostTensor &t) {
  bool zero = false, other = false, additive = true, binary = true;
  for (double v : t.f) {
    if (v == 0) {
      zero = true;
      continue;
    }
    other = true;
    additive &= v <= -1e4;
    binary &= v == 1;
    if (!additive && !binary)
      return false;
  }
  return zero && other;
}

/// The key under which torch's dynamo exporter records, in the
/// `metadata_props` of an initializer's `value_info`, what the exported
/// program's graph signature calls it: PARAMETER, BUFFER or CONSTANT_TENSOR.
constexpr StringRef kInputKindKey =
    "pkg.torch.export.graph_signature.InputSpec.kind";

std::string shapeOf(const onnx::TensorProto &t) {
  return shapeString(SmallVector<int64_t>(t.dims().begin(), t.dims().end()));
}
} // namespace

//===----------------------------------------------------------------------===//
// The decision
//===----------------------------------------------------------------------===//

bool Importer::isParameter(const onnx::TensorProto &t) const {
  auto it = trainability.find(t.name());
  return it != trainability.end() && it->second.trained;
}

LogicalResult Importer::decideTrainable() {
  Location loc = FileLineColLoc::get(ctx, path, 0, 0);
  const onnx::GraphProto &graph = model.graph();

  // Values that depend on run-time data (shapes do not: they are static).
  llvm::StringSet<> runtime;
  for (const auto &[name, info] : values)
    if (info.value)
      runtime.insert(name);
  std::map<std::string, std::vector<std::pair<const onnx::NodeProto *, size_t>>>
      consumers;
  for (const auto &node : graph.node()) {
    bool dynamic = false;
    for (auto [k, in] : llvm::enumerate(node.input())) {
      if (in.empty())
        continue;
      consumers[in].push_back({&node, k});
      dynamic |= runtime.contains(in);
    }
    if (dynamic && node.op_type() != "Shape" && node.op_type() != "Size")
      for (const std::string &out : node.output())
        runtime.insert(out);
  }

  // Values from which a gradient can flow back to a graph output: walk the
  // (topologically sorted) nodes backward from the outputs through edges
  // that pass gradients. A parameter that meets run-time data only where it
  // decides indices (DeepSeek's e_score_correction_bias picks experts through
  // TopK's indices; a sparse-attention indexer picks keys) gets no gradient,
  // and PyTorch's optimizer skips it.
  llvm::StringSet<> live;
  for (const auto &out : graph.output())
    live.insert(out.name());
  for (const auto &node : llvm::reverse(graph.node())) {
    bool reaches = false;
    for (auto [j, out] : llvm::enumerate(node.output()))
      reaches |= !out.empty() && live.contains(out) &&
                 outputPassesGradient(node, j);
    if (!reaches)
      continue;
    for (auto [k, in] : llvm::enumerate(node.input()))
      if (!in.empty() && passesGradient(node, k))
        live.insert(in);
  }

  // Structure, per floating-point initializer: where it meets run-time data.
  struct Facts {
    const onnx::TensorProto *t;
    bool gradientPath = false; // meets run-time data where gradients flow
    bool decidesOnly = false;  // ... but no gradient flows back to it
    bool trig = false;         // what it computes ends in Sin/Cos
    StringRef weightOp;        // the op it is a weight of, if any
    bool scoreBias = false;    // added to what a Softmax normalizes
    int64_t numel = 1;
  };
  std::vector<Facts> floats;
  for (const auto &t : graph.initializer()) {
    if (!isTrainableDType(t.data_type()) && t.data_type() != kDouble)
      continue;
    Facts f{&t};
    for (int64_t d : t.dims()) // saturating: a corrupt shape, not UB
      f.numel = (d > 0 && f.numel > INT64_MAX / d) ? INT64_MAX : f.numel * d;
    std::vector<std::string> work = {t.name()};
    std::set<std::string> seen;
    while (!work.empty()) {
      std::string v = work.back();
      work.pop_back();
      if (!seen.insert(v).second)
        continue;
      for (auto [n, k] : consumers[v]) {
        if (!passesGradient(*n, k))
          continue;
        if (n->op_type() == "Sin" || n->op_type() == "Cos") {
          f.trig = true;
          continue;
        }
        StringRef where = weightPosition(*n, k);
        bool meets = llvm::any_of(n->input(), [&](const std::string &in) {
          return runtime.contains(in);
        });
        if (meets) {
          f.gradientPath = true;
          if (!where.empty() && f.weightOp.empty())
            f.weightOp = where;
          f.scoreBias |= addsToSoftmax(*n, consumers);
          continue;
        }
        for (const std::string &out : n->output())
          work.push_back(out);
      }
    }
    if (f.gradientPath && !live.contains(t.name())) {
      f.gradientPath = false;
      f.decidesOnly = true;
    }
    floats.push_back(f);
  }

  // Values are read only where they decide: tables and masks (rank >= 2,
  // not a weight's operand) and the parameters of norms.
  std::map<std::string, HostTensor> read;
  auto valueOf = [&](const onnx::TensorProto &t) -> const HostTensor * {
    auto it = read.find(t.name());
    if (it != read.end())
      return &it->second;
    HostTensor h;
    if (failed(readInitializer(t, h, loc)))
      return nullptr;
    return &read.emplace(t.name(), std::move(h)).first->second;
  };
  constexpr int64_t kMaxRead = int64_t(1) << 26; // elements

  std::map<std::string, Decision> evidence; // what the file says
  std::vector<std::string> ambiguousConstant, ambiguousName, innerRepeats,
      oneElement;
  std::vector<const Facts *> tableCandidates;
  for (const Facts &f : floats) {
    const onnx::TensorProto &t = *f.t;
    Decision &d = evidence[t.name()];
    if (!isTrainableDType(t.data_type())) {
      d = {false, "float64 (not a training type)"};
      continue;
    }
    if (f.numel <= 1) {
      // PyTorch parameters of shape [1] exist (an activation's learned
      // alpha); buffers of shape [] are epsilons and scales. The exporter
      // folds its own constants under generated names.
      if (t.dims_size() == 0 || isGeneratedName(t.name()) || !f.gradientPath) {
        d = {false, "a scalar (an epsilon or a scale)"};
        continue;
      }
      d = {true, "one element with a module's name, which gradients reach"};
      oneElement.push_back(t.name());
      continue;
    }
    if (!f.gradientPath) {
      d = {false, f.trig ? "only feeds sin/cos (rotary frequencies)"
                  : f.decidesOnly
                      ? "no gradient reaches it (it only decides indices: "
                        "TopK's choices, comparisons)"
                      : "no gradient path (only feeds shapes, indices "
                        "or other constants)"};
      continue;
    }
    d = {true, f.weightOp.empty()
                   ? std::string("a floating-point tensor that gradients reach")
                   : ("the weight of a " + f.weightOp).str()};
    if (t.dims_size() >= 2 && f.weightOp.empty() && f.numel <= kMaxRead)
      tableCandidates.push_back(&f);
    bool generated = isGeneratedName(t.name());
    bool normPosition = isNormPosition(f.weightOp);
    if ((t.dims_size() == 1 || normPosition ||
         (generated && f.weightOp.empty())) &&
        f.numel <= kMaxRead) {
      const HostTensor *h = valueOf(t);
      if (!h)
        return failure();
      if (constantValued(*h)) {
        // The exporter computed it and it holds one value: a weightless
        // norm's scale (ONNX requires one), an all-zero mask of a
        // bidirectional model. A real name holding one value is a fresh
        // parameter and trained.
        if (generated && normPosition)
          d = {false, "one value in every element, made by the exporter for "
                      "a " +
                          f.weightOp.str() +
                          " without that parameter (a weightless norm)"};
        else if (generated && f.weightOp.empty())
          d = {false, "one value in every element, computed by the exporter "
                      "(a folded constant)"};
        ambiguousConstant.push_back(t.name());
        continue;
      }
      // Embedding rows gathered with constant ids (positions, token type 0)
      // and repeated over the batch: PyTorch trains the one slice.
      if (generated && f.weightOp.empty() && (d.repeated =
                                                  repeatedLeadingAxes(*h))) {
        d.reason += "; stored repeated along its first " +
                    std::to_string(d.repeated) +
                    " axes, trained as one slice";
        // Repeats along later axes cannot be a slice of the stored bytes.
        if (!repeatedAxes(*h, d.repeated).empty())
          innerRepeats.push_back(t.name());
        // Position rows, or a buffer's initial state (HRM): still ambiguous.
        ambiguousName.push_back(t.name());
        continue;
      }
      if (generated && f.weightOp.empty() && !repeatedAxes(*h, 0).empty())
        innerRepeats.push_back(t.name());
    }
    if (generated && f.weightOp.empty())
      ambiguousName.push_back(t.name());
  }

  // Rotary tables come in cos/sin pairs of one shape; masks stand alone.
  for (size_t i = 0; i < tableCandidates.size(); ++i) {
    const onnx::TensorProto &a = *tableCandidates[i]->t;
    if (!evidence[a.name()].trained)
      continue;
    const HostTensor *ha = valueOf(a);
    if (!ha)
      return failure();
    double tol = roundoff(a.data_type());
    if (isMask(*ha)) {
      evidence[a.name()] = {false, "an attention mask (every value 0 or <= "
                                   "-1e4, or 0 and 1)"};
      continue;
    }
    if (isTrigTable(*ha, tol)) {
      evidence[a.name()] = {false, "a rotary sin/cos table (the squares of "
                                   "its two halves sum to one value)"};
      continue;
    }
    for (size_t j = i + 1; j < tableCandidates.size(); ++j) {
      const onnx::TensorProto &b = *tableCandidates[j]->t;
      if (!evidence[b.name()].trained ||
          !llvm::equal(a.dims(), b.dims()))
        continue;
      const HostTensor *hb = valueOf(b);
      if (!hb)
        return failure();
      if (isTrigPair(*ha, *hb, tol)) {
        // The partner is listed too; naming it would keep the lines of
        // per-layer tables from merging in the summary.
        for (const std::string &n : {a.name(), b.name()})
          evidence[n] = {false, "a rotary cos/sin table (its squares and "
                                "those of a table of its shape sum to one "
                                "value)"};
        break;
      }
    }
  }
  // What is left of the tensors the exporter made and added to attention
  // scores (ALiBi slopes times positions, relative-position biases) is a
  // folded buffer too.
  for (const Facts &f : floats) {
    Decision &d = evidence[f.t->name()];
    if (d.trained && f.scoreBias && f.weightOp.empty() &&
        isGeneratedName(f.t->name()))
      d = {false, "an attention bias (added to the scores a Softmax "
                  "normalizes; its name is the exporter's)"};
  }
  llvm::erase_if(ambiguousName,
                 [&](const std::string &n) { return !evidence[n].trained; });

  // Metadata from weipipe's export helper: the exact set, with the names
  // PyTorch gave the parameters.
  std::map<std::string, std::string> declared;
  bool haveMetadata = false;
  for (const auto &prop : model.metadata_props()) {
    if (prop.key() != kTrainableMetadataKey)
      continue;
    haveMetadata = true;
    llvm::Expected<llvm::json::Value> json = llvm::json::parse(prop.value());
    const llvm::json::Object *obj = json ? json->getAsObject() : nullptr;
    if (!obj) {
      if (!json)
        llvm::consumeError(json.takeError());
      return emitError(loc) << "model metadata '" << kTrainableMetadataKey
                            << "' is not a JSON object {initializer: "
                               "parameter name}";
    }
    for (const auto &[key, value] : *obj) {
      auto name = value.getAsString();
      if (!name)
        return emitError(loc)
               << "model metadata '" << kTrainableMetadataKey
               << "': the value for '" << key.str() << "' is not a string";
      declared[key.str()] = name->str();
    }
  }
  // What torch's dynamo exporter recorded: the graph-signature kind of each
  // initializer it lifted from the module. Its optimizer drops the record of
  // what it folds (a parameter folded into `neg` leaves no trace), so the
  // record settles what it covers, and covers everything only in an export
  // with optimize=False.
  std::map<std::string, std::string> recorded;
  {
    std::set<std::string> isInitializer;
    for (const auto &t : graph.initializer())
      isInitializer.insert(t.name());
    for (const auto &vi : graph.value_info())
      if (isInitializer.count(vi.name()))
        if (auto kind = metadataOf(vi, kValueInfoMetadataField, kInputKindKey))
          recorded[vi.name()] = *kind;
  }
  // Float initializers it does not cover, other than weights (a transposed
  // weight is renamed `val_N` and unrecorded, and still plainly a weight).
  std::vector<std::string> unrecorded;
  if (!recorded.empty())
    for (const Facts &f : floats)
      if (!recorded.count(f.t->name()) && f.numel > 1 &&
          f.weightOp.empty() && isTrainableDType(f.t->data_type()))
        unrecorded.push_back(f.t->name());

  std::map<std::string, const onnx::TensorProto *> byName;
  for (const auto &t : graph.initializer())
    byName[t.name()] = &t;
  for (const auto &[name, param] : declared) {
    auto it = byName.find(name);
    if (it == byName.end())
      return emitError(loc) << "model metadata '" << kTrainableMetadataKey
                            << "' names initializer '" << name
                            << "', which the model lacks";
    if (!isTrainableDType(it->second->data_type()))
      return emitError(loc)
             << "model metadata '" << kTrainableMetadataKey
             << "' trains initializer '" << name << "', which is "
             << dtypeName(it->second->data_type())
             << "; only float32, float16 and bfloat16 tensors can be trained";
  }

  // Flags. A user regex that matches nothing is a mistake worth an error.
  bool userFrozen = options.frozenInitializers !=
                    OnnxImportOptions::kDefaultFrozenInitializers;
  auto trainFlag = [&](StringRef name) {
    return !options.trainableInitializers.empty() && trainableRegex.match(name);
  };
  auto freezeFlag = [&](StringRef name) {
    return !options.frozenInitializers.empty() && frozenRegex.match(name);
  };
  bool anyFrozen = false, anyTrainable = false;
  for (const auto &t : graph.initializer()) {
    bool train = trainFlag(t.name()), freeze = freezeFlag(t.name());
    anyTrainable |= train;
    anyFrozen |= freeze;
    if (train && !isTrainableDType(t.data_type()))
      return emitError(loc)
             << "--trainable-initializers='" << options.trainableInitializers
             << "' matches initializer '" << t.name() << "', which is "
             << dtypeName(t.data_type()) << " " << shapeOf(t)
             << "; only float32, float16 and bfloat16 tensors can be trained";
    if (train && freeze && userFrozen)
      return emitError(loc)
             << "initializer '" << t.name()
             << "' matches both --trainable-initializers='"
             << options.trainableInitializers << "' and --frozen-initializers='"
             << options.frozenInitializers << "'";
  }
  auto names = [&] {
    std::vector<std::string> all;
    for (const Facts &f : floats)
      all.push_back(f.t->name());
    return all;
  };
  if (!options.trainableInitializers.empty() && !anyTrainable)
    return emitError(loc) << "--trainable-initializers='"
                          << options.trainableInitializers
                          << "' matches no initializer (floating-point "
                             "initializers: "
                          << joinNames(names()) << ")";
  if (userFrozen && !options.frozenInitializers.empty() && !anyFrozen)
    return emitError(loc) << "--frozen-initializers='"
                          << options.frozenInitializers
                          << "' matches no initializer (floating-point "
                             "initializers: "
                          << joinNames(names()) << ")";

  // Combine: flags, then metadata or the exporter's record, then structure.
  for (const Facts &f : floats) {
    const std::string &name = f.t->name();
    Decision file = evidence[name];
    if (haveMetadata) {
      auto it = declared.find(name);
      file = it != declared.end()
                 ? Decision{true, "metadata " + std::string(
                                      kTrainableMetadataKey) +
                                      ": PyTorch parameter '" + it->second +
                                      "'"}
                 : Decision{false, "not a parameter in metadata " +
                                       std::string(kTrainableMetadataKey)};
    } else if (auto it = recorded.find(name); it != recorded.end()) {
      // A parameter no gradient reaches is one PyTorch's optimizer skips:
      // the structure's reason stands.
      if (it->second == "PARAMETER" && (file.trained || f.gradientPath))
        file = {true, "the exporter records it as a PyTorch parameter"};
      else if (it->second != "PARAMETER")
        file = {false, "the exporter records it as a PyTorch " +
                           std::string(it->second == "BUFFER"
                                           ? "buffer"
                                           : "tensor constant (" +
                                                 it->second + ")")};
    }
    // A flag that agrees with the file leaves the file's reason.
    Decision final = file;
    if (trainFlag(name) && !file.trained)
      final = {true, "--trainable-initializers"};
    else if (freezeFlag(name) && file.trained)
      final = {false, "--frozen-initializers"};
    if (final.trained != file.trained) {
      final.reason += " (the file's evidence would " +
                      std::string(file.trained ? "train" : "freeze") +
                      " it: " + file.reason + ")";
    } else if (!final.trained && (f.numel <= 1 || !isTrainableDType(
                                                      f.t->data_type()))) {
      continue; // scalars and float64 are constants; not worth listing
    }
    trainability[name] = final;
  }
  // Integer initializers a flag did not touch stay constants, silently.

  if (haveMetadata)
    return success(); // the metadata settles every case
  // A name a flag or the exporter's record matches is settled.
  auto flagged = [&](const std::string &n) {
    return trainFlag(n) || freezeFlag(n) || recorded.count(n);
  };
  llvm::erase_if(unrecorded, flagged);
  if (!unrecorded.empty()) {
    std::vector<std::string> trained;
    for (const std::string &n : unrecorded)
      if (trainability.count(n) && trainability[n].trained)
        trained.push_back(n);
    if (!trained.empty())
      emitWarning(loc)
          << trained.size()
          << " trained tensor(s) were computed by torch.onnx's optimizer, "
             "which records for them no PyTorch kind (parameter or buffer): "
          << joinNames(trained)
          << ". They are decided by the graph's structure, which cannot "
             "tell a folded buffer from a folded parameter. Export with "
             "torch.onnx.export(..., optimize=False): the exporter then "
             "records every initializer's kind and weipipe follows it";
    // That advice covers the generic warning below.
    llvm::erase_if(ambiguousName, [&](const std::string &n) {
      return llvm::is_contained(trained, n);
    });
  }
  llvm::erase_if(ambiguousConstant, flagged);
  llvm::erase_if(ambiguousName, flagged);
  if (!ambiguousConstant.empty()) {
    std::vector<std::string> trained, frozen;
    for (const std::string &n : ambiguousConstant)
      (trainability[n].trained ? trained : frozen).push_back(n);
    if (!trained.empty())
      emitWarning(loc)
          << trained.size()
          << " trained tensor(s) hold one value in every element: "
          << joinNames(trained)
          << ". A freshly initialized norm scale or bias looks like this and "
             "PyTorch trains it; a constant looks the same. If they are "
             "constants, freeze them with --frozen-initializers";
    if (!frozen.empty())
      emitWarning(loc)
          << frozen.size()
          << " tensor(s) with exporter-made names hold one value in every "
             "element and are no matmul's or embedding's weight: "
          << joinNames(frozen)
          << ". They are taken for constants the exporter computed (a "
             "weightless norm's scale, a mask that keeps everything) and not "
             "trained; if they are parameters, train them with "
             "--trainable-initializers";
  }
  llvm::erase_if(oneElement, flagged);
  if (!oneElement.empty())
    emitWarning(loc)
        << oneElement.size()
        << " trained tensor(s) of one element have a module's name: "
        << joinNames(oneElement)
        << ". A PyTorch parameter of shape [1] (a learned activation "
           "coefficient) looks like this and is trained; a buffer of that "
           "shape looks the same. If they are constants, freeze them with "
           "--frozen-initializers";
  llvm::erase_if(innerRepeats, flagged);
  if (!innerRepeats.empty())
    emitWarning(loc)
        << innerRepeats.size()
        << " trained tensor(s) with exporter-made names repeat one value "
           "along an inner axis: "
        << joinNames(innerRepeats)
        << ". A parameter broadcast by the exporter looks like this (Flint's "
           "attention sinks [H] stored as [1, H, S, 1]); weipipe trains every "
           "copy on its own, PyTorch trains the one value. Export with "
           "dynamic shapes or weipipe's helper (python -m weipipe.models) so "
           "that the parameter is stored as itself";
  // Dynamo names a folded value after the op that computed it: `neg`,
  // `softplus_1`. Arithmetic on a parameter folded into a constant means the
  // parameter is gone from the file (Mamba's -exp(A_log)); only the export
  // can bring it back.
  std::vector<std::string> computed;
  llvm::erase_if(ambiguousName, [&](const std::string &n) {
    static const llvm::Regex arithmetic(
        "^(neg|exp|log|softplus|sigmoid|tanh|add|sub|mul|div|pow|sqrt|rsqrt|"
        "reciprocal|sum|mean|cumsum|matmul|bmm|einsum|sin|cos|clamp|abs)"
        "(_[0-9]+)?$");
    if (!arithmetic.match(n))
      return false;
    computed.push_back(n);
    return true;
  });
  if (!computed.empty())
    emitWarning(loc)
        << computed.size()
        << " trained tensor(s) are named after the arithmetic that computed "
           "them: "
        << joinNames(computed)
        << ". torch.onnx's optimizer folds a computation on parameters into "
           "a constant named after its op, and weipipe trains the folded "
           "value. That equals PyTorch's training when the computation is a "
           "shift (Gemma's 1 + weight); otherwise (Mamba's -exp(A_log) "
           "becomes 'neg') the parameter is gone from the file and it is a "
           "different optimization: export with torch.onnx.export(..., "
           "optimize=False), which keeps the parameter. If they are buffers, "
           "freeze them with --frozen-initializers";
  if (!ambiguousName.empty())
    emitWarning(loc)
        << ambiguousName.size()
        << " trained tensor(s) have exporter-made names and are not the "
           "weight of a matmul, embedding or norm: "
        << joinNames(ambiguousName)
        << ". The file does not say whether they are parameters or folded "
           "buffers; weipipe trains them. Settle it with "
           "--frozen-initializers or --trainable-initializers, or export "
           "with weipipe's helper (python -m weipipe.models), which records "
           "the trained set";
  return success();
}

//===----------------------------------------------------------------------===//
// What the rest of the compiler sees
//===----------------------------------------------------------------------===//

void Importer::recordFrozen() {
  std::map<std::string, const onnx::TensorProto *> byName;
  for (const auto &t : model.graph().initializer())
    byName[t.name()] = &t;
  SmallVector<NamedAttribute> frozen;
  for (const auto &[name, d] : trainability)
    if (!d.trained)
      frozen.push_back(NamedAttribute(
          StringAttr::get(ctx, name),
          StringAttr::get(ctx, shapeOf(*byName.at(name)) + ": " + d.reason)));
  if (frozen.empty())
    return;
  nn::NNDialect::FrozenInitializersAttrHelper(ctx).setAttr(
      *module, DictionaryAttr::get(ctx, frozen));
}
