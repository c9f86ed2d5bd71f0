//===- ImporterImpl.h - ONNX importer internals -----------------*- C++ -*-===//
//
// Part of weipipe. The importer walks the ONNX graph in order. Every ONNX
// value is known as one of: an SSA value in the function being built, a host
// constant (folded at import time), an initializer not yet touched (loaded
// lazily: a parameter becomes an `nn.parameter` symbol, anything else a host
// constant), or a poisoned value that reports an error when used.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_LIB_IMPORTER_IMPORTERIMPL_H
#define WEIPIPE_LIB_IMPORTER_IMPORTERIMPL_H

#include "HostTensor.h"

#include "weipipe/Dialect/NN/NNOps.h"
#include "weipipe/Importer/OnnxImporter.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Regex.h"

#include "onnx/onnx_pb.h"

#include <map>
#include <memory>
#include <optional>
#include <set>

namespace mlir::weipipe::importer {

/// "element type X is not supported in computed tensors (supported: ...)",
/// with an unknown number named as such.
std::string elementTypeError(int32_t dtype);

/// Where an inline initializer's bytes sit in the model file.
struct RawLocation {
  uint64_t offset = 0;
  uint64_t length = 0;
};

/// Whether an initializer is trained, and why (the compile summary says it).
struct Decision {
  bool trained = false;
  std::string reason;
  /// The stored tensor is one slice repeated along its first `repeated` axes
  /// (the exporter folded a broadcast or a gather of a parameter): the
  /// parameter is that slice, broadcast where it is read.
  int repeated = 0;
};

/// Field numbers of `metadata_props` (ONNX IR 10), which torch's dynamo
/// exporter fills: a value_info's graph-signature kind, a node's FX node.
inline constexpr int kValueInfoMetadataField = 4;
inline constexpr int kNodeMetadataField = 9;

/// The value of `key` in the `metadata_props` (field number `field`) of `m`.
/// The ONNX 1.12 headers this builds against predate the field, so protobuf
/// keeps it among the unknown fields; a newer onnx.proto declares it, and
/// reflection finds it there.
std::optional<std::string> metadataOf(const google::protobuf::Message &m,
                                      int field, llvm::StringRef key);

/// "a, b, c, ... (N in all)": at most `max` names.
std::string joinNames(llvm::ArrayRef<std::string> names, size_t max = 8);

struct ValueInfo {
  int32_t dtype = kUndefined;
  llvm::SmallVector<int64_t> shape;
  Value value;                                    // materialized SSA value
  std::shared_ptr<const HostTensor> constant;     // known at import time
  const onnx::TensorProto *initializer = nullptr; // not yet loaded
  std::string poison; // non-empty: using this value is an error
};

class Importer {
public:
  Importer(MLIRContext *ctx, llvm::StringRef path,
           const OnnxImportOptions &options);
  OwningOpRef<ModuleOp> run();

  // Used by the op emitters (NodeImporter.cpp).
  /// For a value no earlier node defines: why, if a later node does (a
  /// cycle, or nodes out of order); "" otherwise.
  std::string usedBeforeDefined(llvm::StringRef user, llvm::StringRef name);
  LogicalResult importNode(const onnx::NodeProto &node, int64_t index);

private:
  friend class NodeEmitter;

  //--- Loading -------------------------------------------------------------
  LogicalResult load();
  LogicalResult scanRawOffsets(llvm::StringRef bytes);
  LogicalResult declareInputs();
  LogicalResult declareOutputs();
  /// Decides which floating-point initializers are trained (Trainability.cpp).
  LogicalResult decideTrainable();
  /// Records the frozen ones on the module for the compile summary.
  void recordFrozen();

  //--- Values --------------------------------------------------------------
  /// The value named `name`, or null with an error emitted at `loc`.
  ValueInfo *lookup(llvm::StringRef name, Location loc);
  /// Host constant for `v`, loading a non-parameter initializer; null if
  /// the value is only known at run time (or is a parameter).
  const HostTensor *constantOf(ValueInfo &v, Location loc, bool &failed);
  /// SSA value for `v`, materializing constants and parameters.
  Value materialize(ValueInfo &v, Location loc);
  Value materializeConstant(const HostTensor &t, Location loc);
  bool isParameter(const onnx::TensorProto &t) const;
  /// Decodes `t`; `what` names it in messages (default: "initializer 'n'").
  LogicalResult readInitializer(const onnx::TensorProto &t, HostTensor &out,
                                Location loc, llvm::StringRef what = {});
  FailureOr<nn::ParameterOp> declareParameter(const onnx::TensorProto &t,
                                              Location loc);

  void setValue(llvm::StringRef name, Value v, int32_t dtype);
  void setConstant(llvm::StringRef name, HostTensor t);

public:
  //--- Types ---------------------------------------------------------------
  /// The MLIR element type of an ONNX one, or failure (elementTypeError
  /// says why; the caller names what has the type).
  FailureOr<Type> elementType(int32_t dtype);
  RankedTensorType tensorType(llvm::ArrayRef<int64_t> shape, Type elem) {
    return RankedTensorType::get(shape, elem);
  }
  int32_t dtypeOf(Type elem) const;

  /// The node's name, or "OpType#index" for an unnamed node.
  static std::string nodeName(const onnx::NodeProto &node, int64_t index);
  Location nodeLoc(const onnx::NodeProto &node, int64_t index);
  /// The node name a node location carries; empty for other locations.
  static std::string locName(Location loc);
  /// Starts an error about a node: "node 'NAME' (OpType): ".
  InFlightDiagnostic nodeError(Location loc, const onnx::NodeProto &node,
                               llvm::StringRef name) {
    return emitError(loc) << "node '" << name << "' (" << node.op_type()
                          << "): ";
  }
  InFlightDiagnostic error(Location loc) { return emitError(loc); }

  MLIRContext *ctx;
  std::string path;
  std::string modelDir;
  const OnnxImportOptions &options;
  onnx::ModelProto model;
  std::unique_ptr<llvm::MemoryBuffer> fileBuffer;
  bool isText = false;
  int64_t opset = 0;
  std::map<std::string, RawLocation> rawLocations;
  llvm::Regex frozenRegex, trainableRegex, dropRegex;

  OwningOpRef<ModuleOp> module;
  func::FuncOp func;
  OpBuilder builder;
  OpBuilder moduleBuilder;
  llvm::StringMap<ValueInfo> values;
  /// The tensors of each sequence SplitToSequence made, by the sequence's
  /// name: only SequenceAt at a known position reads them.
  llvm::StringMap<llvm::SmallVector<Value>> sequences;
  llvm::StringMap<nn::ParameterOp> parameters;
  /// Values of every tensor folded so far (bounded by kMaxFoldedElements).
  int64_t foldedValues = 0;
  /// Every floating-point initializer (and any a flag names): trained or not.
  std::map<std::string, Decision> trainability;
  std::map<std::string, int64_t> dimValues;
};

/// Emits the `nn` ops for one ONNX node whose inputs are not all constant.
class NodeEmitter {
public:
  NodeEmitter(Importer &im, const onnx::NodeProto &node, std::string name,
              Location loc)
      : im(im), node(node), name(std::move(name)), loc(loc), b(im.builder) {}
  LogicalResult emit();

  /// Op types with an emitter, sorted.
  static std::vector<llvm::StringRef> emittedOps();
  static bool isEmitted(llvm::StringRef op);

  using Handler = LogicalResult (*)(NodeEmitter &);

private:
  static const llvm::StringMap<Handler> &handlers();
  /// Input 0 is bool (else an error says what the bitwise ops support).
  /// Whether input `k` is a bool tensor (no diagnostic).
  bool isBool(int k);
  bool boolInput();
  LogicalResult isNaN();
  LogicalResult identity();
  LogicalResult matmul();

  // Operands.
  ValueInfo *in(size_t k);
  Value operand(size_t k);
  const HostTensor *constInput(size_t k, llvm::StringRef what);
  LogicalResult needInputs(size_t n);
  FailureOr<std::vector<int64_t>> intsInput(size_t k, llvm::StringRef what);
  FailureOr<std::vector<int64_t>> axesArg(bool &present);

  // Results.
  void setOut(size_t k, Value v);
  RankedTensorType typeOf(Value v) {
    return cast<RankedTensorType>(v.getType());
  }
  RankedTensorType withShape(Value v, llvm::ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, typeOf(v).getElementType());
  }

  // Helpers that build ops.
  Value reshape(Value v, llvm::ArrayRef<int64_t> shape);
  Value transpose(Value v, llvm::ArrayRef<int64_t> perm);
  Value broadcastTo(Value v, llvm::ArrayRef<int64_t> shape);
  Value castTo(Value v, Type elem);
  Value scalar(double value, Type elem);
  FailureOr<std::pair<Value, Value>> unifyBinary(size_t a, size_t b);
  InFlightDiagnostic fail() { return im.nodeError(loc, node, name); }

  // Op families.
  template <typename OpT> LogicalResult binary();
  template <typename OpT> LogicalResult unary();
  /// A reduction's axes (sorted, non-negative), keepdims, result shape and
  /// the shape with the reduced axes kept as 1; `noop` for empty axes with
  /// noop_with_empty_axes.
  struct Reduction {
    std::vector<int64_t> axes;
    bool keep = true, noop = false;
    SmallVector<int64_t> shape, keptShape;
  };
  FailureOr<Reduction> reduction(Value x);
  template <typename BuildFn> LogicalResult reduceWith(BuildFn build);
  template <typename OpT> LogicalResult reduce();
  LogicalResult reduceLogSumExp();
  /// ReduceL1, ReduceL2, ReduceSumSquare: a sum of |x| or x*x (then sqrt).
  LogicalResult reduceNorm(llvm::StringRef op);
  LogicalResult argExtreme(bool largest);
  /// nn.topk_indices of the k largest (or smallest) along the last axis.
  Value topkIndices(Value x, int64_t k, bool largest);
  LogicalResult softplus();
  template <typename OpT> LogicalResult softmax();
  LogicalResult compareNot(bool less);
  LogicalResult variadic(llvm::StringRef op);
  LogicalResult gemm();
  LogicalResult reshapeLike();
  LogicalResult gather();
  /// GatherND (`nd`) or GatherElements as a gather of a flattened view.
  LogicalResult flatGather(bool nd);
  LogicalResult cumsum();
  LogicalResult clip();
  LogicalResult pad();
  LogicalResult conv();
  LogicalResult einsum();
  LogicalResult scatter(bool nd);
  LogicalResult tile();
  LogicalResult topk();
  FailureOr<Value> gatherFlat(Value data, Value idx,
                              llvm::ArrayRef<int64_t> idxShape,
                              const HostTensor *known, bool nd,
                              int64_t axisOrBatchDims);
  /// The rows of the flattened view of the data that GatherND or
  /// GatherElements reads (`g` says the view's shape), computed at run time
  /// from `idx` unless the indices are `known`.
  FailureOr<Value> flatRows(llvm::ArrayRef<int64_t> dataShape, Value idx,
                            llvm::ArrayRef<int64_t> idxShape,
                            const HostTensor *known, bool nd,
                            int64_t axisOrBatchDims, FlatGather &g);
  FailureOr<Value> padAxis(Value x, int64_t axis, int64_t before, int64_t after,
                           double value);
  LogicalResult concat();
  LogicalResult split();
  /// The pieces of `x` cut along `axis` into `sizes` (which must add up).
  FailureOr<llvm::SmallVector<Value>> cut(Value x, int64_t axis,
                                          llvm::ArrayRef<int64_t> sizes);
  LogicalResult splitToSequence();
  LogicalResult sequenceAt();
  LogicalResult slice();
  LogicalResult expand();
  LogicalResult where();
  LogicalResult castOp(bool like);
  LogicalResult trilu();
  LogicalResult gelu();
  LogicalResult softmaxCrossEntropy();
  LogicalResult layerNorm(bool rms);
  LogicalResult attention();
  LogicalResult rotary();
  LogicalResult transposeOp();

  Importer &im;
  const onnx::NodeProto &node;
  std::string name; // for messages
  Location loc;
  OpBuilder &b;
};

} // namespace mlir::weipipe::importer

#endif // WEIPIPE_LIB_IMPORTER_IMPORTERIMPL_H
