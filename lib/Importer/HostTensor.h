//===- HostTensor.h - constant tensors for import-time folding --*- C++ -*-===//
//
// Part of weipipe. The importer folds everything it can compute at import
// time (shape subgraphs, masks, position ids, rotary tables) on host tensors.
// Floating-point values are held as double and rounded to their ONNX element
// type after every op, so folded values equal what an fp32 runtime computes
// to the last bit where the op is exact and to rounding otherwise. Integer and
// bool values are held as int64.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_LIB_IMPORTER_HOSTTENSOR_H
#define WEIPIPE_LIB_IMPORTER_HOSTTENSOR_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <string>
#include <vector>

namespace onnx {
class NodeProto;
class AttributeProto;
} // namespace onnx

namespace mlir::weipipe::importer {

/// ONNX TensorProto.DataType codes used here.
enum DType : int32_t {
  kUndefined = 0,
  kFloat = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kUInt16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,
  kBool = 9,
  kFloat16 = 10,
  kDouble = 11,
  kUInt32 = 12,
  kUInt64 = 13,
  kBFloat16 = 16,
};

bool isFloatDType(int32_t dtype);
bool isIntegerDType(int32_t dtype); // excludes bool
/// Bytes per element, 0 for types we cannot hold.
int64_t dtypeBytes(int32_t dtype);
const char *dtypeName(int32_t dtype);

/// The product of the dimensions, saturating at INT64_MAX where it overflows.
int64_t numElements(llvm::ArrayRef<int64_t> shape);
std::string shapeString(llvm::ArrayRef<int64_t> shape);

/// The largest tensor the importer computes on the host, and the most values
/// all the tensors it computes may hold together (1 GiB as doubles): a model
/// whose constants would need more is refused at the node that passes it,
/// not allowed to take the machine's memory.
constexpr int64_t kMaxFoldedElements = int64_t(1) << 27;

struct HostTensor {
  int32_t dtype = kUndefined;
  llvm::SmallVector<int64_t> shape;
  std::vector<double> f;  // when isFloatDType(dtype)
  std::vector<int64_t> i; // integers and bools

  HostTensor() = default;
  HostTensor(int32_t dtype, llvm::ArrayRef<int64_t> shape);

  bool isFloat() const { return isFloatDType(dtype); }
  int64_t numel() const { return numElements(shape); }
  double getDouble(int64_t k) const { return isFloat() ? f[k] : double(i[k]); }
  /// Floats truncate toward zero; NaN reads as 0 and values beyond int64
  /// saturate (a cast would be undefined).
  int64_t getInt(int64_t k) const {
    if (!isFloat())
      return i[k];
    const double v = f[k];
    if (!(v == v))
      return 0;
    if (v >= 9223372036854775807.0)
      return INT64_MAX;
    if (v <= -9223372036854775808.0)
      return INT64_MIN;
    return static_cast<int64_t>(v);
  }
  /// Stores `v` converted to this tensor's type (rounded for floats,
  /// truncated toward zero for integers, `!= 0` for bool).
  void setDouble(int64_t k, double v);
  void setInt(int64_t k, int64_t v);
  /// Values as int64 (for shapes, axes, indices).
  std::vector<int64_t> ints() const;

  static HostTensor scalarInt(int64_t v, int32_t dtype = kInt64);
  static HostTensor vectorInt(llvm::ArrayRef<int64_t> v);

  /// A big matrix constant along its diagonals: the causal and sliding-window
  /// masks that exporters compute from position aranges, O(S^2) elements
  /// that are O(S) values. When `banded`, `f`/`i` hold one value per
  /// diagonal of the last two dimensions [M, N] (M + N - 1 values, lowest
  /// diagonal first: element (i, j) is value j - i + M - 1), the same for
  /// every leading index. Only the banded folds (Banded.cpp) and
  /// materializeConstant read that form; everything else reads `densified()`.
  bool banded = false;
  /// A banded tensor of `shape` (rank >= 2) with zeroed diagonals.
  static HostTensor makeBanded(int32_t dtype, llvm::ArrayRef<int64_t> shape);
  /// Every element stored: a copy when banded (std::length_error past
  /// kMaxFoldedElements, which the importer reports at the node).
  HostTensor densified() const;
};

/// Folds `node` keeping banded inputs banded and making big masks banded,
/// when the op and its inputs allow it (Banded.cpp). False: not handled.
bool foldBanded(const onnx::NodeProto &node,
                llvm::ArrayRef<const HostTensor *> inputs, int64_t opset,
                struct FoldResult &out);

/// Rounds `v` to the precision of a float dtype.
double roundToDType(double v, int32_t dtype);

/// The result of folding one node: its outputs, or an error message (the op
/// is not foldable, or its inputs are invalid).
struct FoldResult {
  std::vector<HostTensor> outputs;
  std::string error;
  bool ok() const { return error.empty(); }
};

/// Ops `foldNode` can evaluate.
bool isFoldableOp(llvm::StringRef opType);

/// Evaluates `node` on constant inputs (an absent optional input is a null
/// pointer). `opset` is the default-domain opset version.
FoldResult foldNode(const onnx::NodeProto &node,
                    llvm::ArrayRef<const HostTensor *> inputs, int64_t opset);

//===----------------------------------------------------------------------===//
// Attribute and shape helpers shared with the op importers
//===----------------------------------------------------------------------===//

const onnx::AttributeProto *findAttr(const onnx::NodeProto &node,
                                     llvm::StringRef name);
int64_t attrInt(const onnx::NodeProto &node, llvm::StringRef name,
                int64_t dflt);
float attrFloat(const onnx::NodeProto &node, llvm::StringRef name, float dflt);
std::string attrString(const onnx::NodeProto &node, llvm::StringRef name,
                       llvm::StringRef dflt);
bool attrInts(const onnx::NodeProto &node, llvm::StringRef name,
              std::vector<int64_t> &out);

/// Normalizes a possibly negative axis; false if out of range.
bool normalizeAxis(int64_t &axis, int64_t rank);

/// NumPy broadcast of two shapes; false if they do not broadcast.
bool broadcastTo(llvm::ArrayRef<int64_t> a, llvm::ArrayRef<int64_t> b,
                 llvm::SmallVectorImpl<int64_t> &out);

/// ONNX Reshape target shape: resolves 0 (copy, unless allowzero) and -1.
bool reshapeTarget(llvm::ArrayRef<int64_t> in, std::vector<int64_t> spec,
                   bool allowZero, llvm::SmallVectorImpl<int64_t> &out,
                   std::string &why);

/// Result shape of Reshape, Squeeze, Unsqueeze or Flatten `node` applied to
/// `in`; `arg` is the node's second input when it has one (shape or axes).
bool reshapeLikeShape(const onnx::NodeProto &node, llvm::ArrayRef<int64_t> in,
                      const HostTensor *arg,
                      llvm::SmallVectorImpl<int64_t> &out, std::string &why);

/// The permutation of ONNX Transpose `node` for an input of `rank`: its
/// `perm` attribute, or the reversed dimensions when it has none; false with
/// `why` set when it is not a permutation of [0, rank).
bool transposePerm(const onnx::NodeProto &node, int64_t rank,
                   std::vector<int64_t> &perm, std::string &why);

/// A clamped ONNX Slice over one dimension.
struct SliceDim {
  int64_t start = 0, end = 0, step = 1;
};
/// Resolves ONNX Slice inputs for a tensor of shape `in` into per-dimension
/// clamped bounds.
bool sliceBounds(llvm::ArrayRef<int64_t> in, llvm::ArrayRef<int64_t> starts,
                 llvm::ArrayRef<int64_t> ends, llvm::ArrayRef<int64_t> axes,
                 llvm::ArrayRef<int64_t> steps,
                 llvm::SmallVectorImpl<SliceDim> &dims, std::string &why);

/// GatherND and GatherElements as one Gather along axis 0 of a flattened
/// view of the data: the view's shape, the result's shape, and each result
/// element's row of the view. The rows are exact when the indices are known
/// (`idx`); with `idx` null they hold only the part that does not depend on
/// the indices (the batch and position terms), and the caller adds
/// `idx[..., t] * strides[t]` at run time (indices normalized to >= 0).
struct FlatGather {
  llvm::SmallVector<int64_t> viewShape;   // of the data
  llvm::SmallVector<int64_t> resultShape; // of the op
  HostTensor rows;                        // int64, the Gather's indices
  std::vector<int64_t> indexedDims;       // sizes of the indexed dimensions
  std::vector<int64_t> indexStrides;      // their strides in rows
};
/// GatherND(batch_dims) of data of shape `data` by indices of shape `idxShape`.
bool flatGatherND(llvm::ArrayRef<int64_t> data, llvm::ArrayRef<int64_t> idxShape,
                  const HostTensor *idx, int64_t batchDims, FlatGather &out,
                  std::string &why);
/// GatherElements(axis) of data of shape `data` by indices of shape `idxShape`.
bool flatGatherElements(llvm::ArrayRef<int64_t> data,
                        llvm::ArrayRef<int64_t> idxShape, const HostTensor *idx,
                        int64_t axis, FlatGather &out, std::string &why);

} // namespace mlir::weipipe::importer

#endif // WEIPIPE_LIB_IMPORTER_HOSTTENSOR_H
