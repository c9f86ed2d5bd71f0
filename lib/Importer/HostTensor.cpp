//===- HostTensor.cpp - constant tensors for import-time folding ----------===//
//
// Part of weipipe.
//
//===----------------------------------------------------------------------===//

#include "HostTensor.h"

#include "weipipe/Dialect/NN/NNOps.h"

#include "llvm/ADT/APFloat.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/raw_ostream.h"

#include "onnx/onnx_pb.h"

#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <sstream>
#include <stdexcept>

using namespace mlir::weipipe::importer;
using llvm::ArrayRef;
using llvm::SmallVector;
using llvm::SmallVectorImpl;
using llvm::StringRef;

bool mlir::weipipe::importer::isFloatDType(int32_t dt) {
  return dt == kFloat || dt == kDouble || dt == kFloat16 || dt == kBFloat16;
}

bool mlir::weipipe::importer::isIntegerDType(int32_t dt) {
  switch (dt) {
  case kUInt8:
  case kInt8:
  case kUInt16:
  case kInt16:
  case kInt32:
  case kInt64:
  case kUInt32:
  case kUInt64:
    return true;
  default:
    return false;
  }
}

int64_t mlir::weipipe::importer::dtypeBytes(int32_t dt) {
  switch (dt) {
  case kBool:
  case kUInt8:
  case kInt8:
    return 1;
  case kUInt16:
  case kInt16:
  case kFloat16:
  case kBFloat16:
    return 2;
  case kFloat:
  case kInt32:
  case kUInt32:
    return 4;
  case kDouble:
  case kInt64:
  case kUInt64:
    return 8;
  default:
    return 0;
  }
}

const char *mlir::weipipe::importer::dtypeName(int32_t dt) {
  switch (dt) {
  case kFloat:
    return "float32";
  case kUInt8:
    return "uint8";
  case kInt8:
    return "int8";
  case kUInt16:
    return "uint16";
  case kInt16:
    return "int16";
  case kInt32:
    return "int32";
  case kInt64:
    return "int64";
  case kString:
    return "string";
  case kBool:
    return "bool";
  case kFloat16:
    return "float16";
  case kDouble:
    return "float64";
  case kUInt32:
    return "uint32";
  case kUInt64:
    return "uint64";
  case kBFloat16:
    return "bfloat16";
  default:
    return "unsupported element type";
  }
}

int64_t mlir::weipipe::importer::numElements(ArrayRef<int64_t> shape) {
  // Shapes come from hostile models: a product past int64 saturates (every
  // caller refuses it as too big; negative dimensions are refused apart).
  int64_t n = 1;
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, d, &n))
      return std::numeric_limits<int64_t>::max();
  return n;
}

std::string mlir::weipipe::importer::shapeString(ArrayRef<int64_t> shape) {
  std::string s = "[";
  llvm::raw_string_ostream os(s);
  llvm::interleaveComma(shape, os);
  os << "]";
  return s;
}

double mlir::weipipe::importer::roundToDType(double v, int32_t dt) {
  switch (dt) {
  case kFloat:
    return static_cast<double>(static_cast<float>(v));
  case kFloat16:
  case kBFloat16: {
    llvm::APFloat a(v);
    bool lost;
    a.convert(dt == kFloat16 ? llvm::APFloat::IEEEhalf()
                             : llvm::APFloat::BFloat(),
              llvm::APFloat::rmNearestTiesToEven, &lost);
    a.convert(llvm::APFloat::IEEEdouble(), llvm::APFloat::rmNearestTiesToEven,
              &lost);
    return a.convertToDouble();
  }
  default:
    return v;
  }
}

HostTensor::HostTensor(int32_t dtype, ArrayRef<int64_t> shape)
    : dtype(dtype), shape(shape) {
  // Import-time values are shapes, masks and tables, never weights: a
  // corrupt or hostile model must not make the importer allocate without
  // bound. The importer turns this into a diagnostic at the node.
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0)
      throw std::length_error("a constant of shape " + shapeString(shape) +
                              " has a negative dimension");
    if (d > 0 && n > kMaxFoldedElements / d)
      throw std::length_error("a constant of shape " + shapeString(shape) +
                              " is too large to compute at import time (the "
                              "limit is " +
                              std::to_string(kMaxFoldedElements) +
                              " elements)");
    n *= d;
  }
  if (isFloat())
    f.assign(numel(), 0.0);
  else
    i.assign(numel(), 0);
}

namespace {
int64_t wrapInt(int64_t v, int32_t dt) {
  switch (dt) {
  case kBool:
    return v != 0;
  case kInt32:
    return static_cast<int32_t>(v);
  case kInt16:
    return static_cast<int16_t>(v);
  case kInt8:
    return static_cast<int8_t>(v);
  case kUInt8:
    return static_cast<uint8_t>(v);
  case kUInt16:
    return static_cast<uint16_t>(v);
  case kUInt32:
    return static_cast<uint32_t>(v);
  default:
    return v;
  }
}
} // namespace

void HostTensor::setDouble(int64_t k, double v) {
  if (isFloat()) {
    f[k] = roundToDType(v, dtype);
    return;
  }
  if (dtype == kBool) {
    i[k] = v != 0.0;
    return;
  }
  if (std::isnan(v))
    v = 0;
  // Saturate instead of invoking undefined behaviour on out-of-range values.
  if (v >= 9.2233720368547758e18)
    i[k] = std::numeric_limits<int64_t>::max();
  else if (v <= -9.2233720368547758e18)
    i[k] = std::numeric_limits<int64_t>::min();
  else
    i[k] = wrapInt(static_cast<int64_t>(v), dtype);
}

void HostTensor::setInt(int64_t k, int64_t v) {
  if (isFloat())
    f[k] = roundToDType(static_cast<double>(v), dtype);
  else
    i[k] = wrapInt(v, dtype);
}

std::vector<int64_t> HostTensor::ints() const {
  std::vector<int64_t> out(numel());
  for (int64_t k = 0, e = numel(); k < e; ++k)
    out[k] = getInt(k);
  return out;
}

HostTensor HostTensor::scalarInt(int64_t v, int32_t dtype) {
  HostTensor t(dtype, {});
  t.setInt(0, v);
  return t;
}

HostTensor HostTensor::vectorInt(ArrayRef<int64_t> v) {
  HostTensor t(kInt64, {static_cast<int64_t>(v.size())});
  for (size_t k = 0; k < v.size(); ++k)
    t.i[k] = v[k];
  return t;
}

//===----------------------------------------------------------------------===//
// Attribute and shape helpers
//===----------------------------------------------------------------------===//

const onnx::AttributeProto *
mlir::weipipe::importer::findAttr(const onnx::NodeProto &node, StringRef name) {
  for (const auto &a : node.attribute())
    if (a.name() == name)
      return &a;
  return nullptr;
}

int64_t mlir::weipipe::importer::attrInt(const onnx::NodeProto &node,
                                         StringRef name, int64_t dflt) {
  const auto *a = findAttr(node, name);
  return a ? a->i() : dflt;
}

float mlir::weipipe::importer::attrFloat(const onnx::NodeProto &node,
                                         StringRef name, float dflt) {
  const auto *a = findAttr(node, name);
  return a ? a->f() : dflt;
}

std::string mlir::weipipe::importer::attrString(const onnx::NodeProto &node,
                                                StringRef name,
                                                StringRef dflt) {
  const auto *a = findAttr(node, name);
  return a ? a->s() : dflt.str();
}

bool mlir::weipipe::importer::attrInts(const onnx::NodeProto &node,
                                       StringRef name,
                                       std::vector<int64_t> &out) {
  const auto *a = findAttr(node, name);
  if (!a)
    return false;
  out.assign(a->ints().begin(), a->ints().end());
  return true;
}

bool mlir::weipipe::importer::normalizeAxis(int64_t &axis, int64_t rank) {
  if (axis < -rank || axis >= rank)
    return false;
  if (axis < 0)
    axis += rank;
  return true;
}

bool mlir::weipipe::importer::broadcastTo(ArrayRef<int64_t> a,
                                          ArrayRef<int64_t> b,
                                          SmallVectorImpl<int64_t> &out) {
  size_t rank = std::max(a.size(), b.size());
  out.assign(rank, 1);
  for (size_t k = 0; k < rank; ++k) {
    int64_t da = k + a.size() >= rank ? a[k + a.size() - rank] : 1;
    int64_t db = k + b.size() >= rank ? b[k + b.size() - rank] : 1;
    if (da < 0 || db < 0 || (da != db && da != 1 && db != 1))
      return false;
    out[k] = da == 1 ? db : da;
  }
  return true;
}

bool mlir::weipipe::importer::reshapeTarget(ArrayRef<int64_t> in,
                                            std::vector<int64_t> spec,
                                            bool allowZero,
                                            SmallVectorImpl<int64_t> &out,
                                            std::string &why) {
  int64_t inferAt = -1, known = 1;
  out.clear();
  for (size_t k = 0; k < spec.size(); ++k) {
    int64_t d = spec[k];
    if (d == 0 && !allowZero) {
      if (k >= in.size()) {
        why = "shape entry " + std::to_string(k) +
              " is 0 (copy) but the input has rank " +
              std::to_string(in.size());
        return false;
      }
      d = in[k];
    }
    if (d == -1) {
      if (inferAt >= 0) {
        why = "shape has more than one -1";
        return false;
      }
      inferAt = k;
      out.push_back(1);
      continue;
    }
    if (d < 0) {
      why = "shape entry " + std::to_string(d) + " is negative";
      return false;
    }
    if (d != 0 && known > std::numeric_limits<int64_t>::max() / d) {
      why = "target shape has more than 2^63 elements";
      return false;
    }
    known *= d;
    out.push_back(d);
  }
  int64_t total = numElements(in);
  if (inferAt >= 0) {
    if (known == 0 || total % known != 0) {
      why = "cannot infer -1: " + std::to_string(total) +
            " elements do not divide by " + std::to_string(known);
      return false;
    }
    out[inferAt] = total / known;
  } else if (known != total) {
    why = "input has " + std::to_string(total) + " elements, target shape " +
          shapeString(out) + " has " + std::to_string(known);
    return false;
  }
  return true;
}

bool mlir::weipipe::importer::sliceBounds(
    ArrayRef<int64_t> in, ArrayRef<int64_t> starts, ArrayRef<int64_t> ends,
    ArrayRef<int64_t> axesIn, ArrayRef<int64_t> stepsIn,
    SmallVectorImpl<SliceDim> &dims, std::string &why) {
  int64_t rank = in.size();
  dims.clear();
  for (int64_t d = 0; d < rank; ++d)
    dims.push_back({0, in[d], 1});
  if (starts.size() != ends.size()) {
    why = "starts and ends differ in length";
    return false;
  }
  std::vector<int64_t> axes(axesIn.begin(), axesIn.end());
  if (axes.empty()) {
    axes.resize(starts.size());
    std::iota(axes.begin(), axes.end(), 0);
  }
  if (axes.size() != starts.size() ||
      (!stepsIn.empty() && stepsIn.size() != starts.size())) {
    why = "starts, ends, axes and steps differ in length";
    return false;
  }
  std::vector<bool> seen(rank, false);
  for (size_t k = 0; k < axes.size(); ++k) {
    int64_t axis = axes[k];
    if (!normalizeAxis(axis, rank) || seen[axis]) {
      why = "slice axis " + std::to_string(axes[k]) +
            " is out of range or repeated for rank " + std::to_string(rank);
      return false;
    }
    seen[axis] = true;
    int64_t step = stepsIn.empty() ? 1 : stepsIn[k];
    if (step == 0) {
      why = "slice step is zero";
      return false;
    }
    int64_t size = in[axis];
    int64_t start = starts[k], end = ends[k];
    // ONNX clamping rules: negative values count from the end; positive
    // steps clamp to [0, size], negative steps to [-1, size - 1].
    if (start < 0)
      start = start < -size ? (step > 0 ? 0 : -1) : start + size;
    if (end < 0)
      end = end < -size ? -1 : end + size;
    if (step > 0) {
      start = std::clamp<int64_t>(start, 0, size);
      end = std::clamp<int64_t>(end, 0, size);
      if (end < start)
        end = start;
    } else {
      start = std::clamp<int64_t>(start, -1, size - 1);
      end = std::clamp<int64_t>(end, -1, size - 1);
      if (end > start)
        end = start;
    }
    dims[axis] = {start, end, step};
  }
  return true;
}

bool mlir::weipipe::importer::transposePerm(const onnx::NodeProto &node,
                                            int64_t rank,
                                            std::vector<int64_t> &perm,
                                            std::string &why) {
  perm.clear();
  if (!attrInts(node, "perm", perm))
    for (int64_t d = rank - 1; d >= 0; --d)
      perm.push_back(d);
  if (static_cast<int64_t>(perm.size()) != rank) {
    why = "perm has " + std::to_string(perm.size()) + " entries for rank " +
          std::to_string(rank);
    return false;
  }
  std::vector<bool> seen(rank, false);
  for (int64_t p : perm) {
    if (p < 0 || p >= rank || seen[p]) {
      why = "perm " + shapeString(perm) + " is not a permutation";
      return false;
    }
    seen[p] = true;
  }
  return true;
}

bool mlir::weipipe::importer::reshapeLikeShape(const onnx::NodeProto &node,
                                               ArrayRef<int64_t> in,
                                               const HostTensor *arg,
                                               SmallVectorImpl<int64_t> &out,
                                               std::string &why) {
  StringRef op = node.op_type();
  out.clear();
  if (op == "Reshape") {
    if (!arg) {
      why = "Reshape needs a shape input";
      return false;
    }
    return reshapeTarget(in, arg->ints(), attrInt(node, "allowzero", 0) != 0,
                         out, why);
  }
  if (op == "Flatten") {
    int64_t axis = attrInt(node, "axis", 1), rank = in.size();
    if (axis < 0)
      axis += rank;
    if (axis < 0 || axis > rank) {
      why = "axis out of range";
      return false;
    }
    out.push_back(numElements(in.take_front(axis)));
    out.push_back(numElements(in.drop_front(axis)));
    return true;
  }
  std::vector<int64_t> axes;
  bool present = attrInts(node, "axes", axes);
  if (!present && arg) {
    axes = arg->ints();
    present = true;
  }
  if (op == "Unsqueeze") {
    int64_t rank = in.size() + axes.size();
    std::vector<bool> inserted(rank, false);
    for (int64_t ax : axes) {
      if (!normalizeAxis(ax, rank) || inserted[ax]) {
        why = "Unsqueeze axis " + std::to_string(ax) +
              " is out of range or repeated for result rank " +
              std::to_string(rank);
        return false;
      }
      inserted[ax] = true;
    }
    for (int64_t d = 0, j = 0; d < rank; ++d)
      out.push_back(inserted[d] ? 1 : in[j++]);
    return true;
  }
  // Squeeze: the given axes (each of size 1), or every size-1 dimension.
  int64_t rank = in.size();
  std::vector<bool> drop(rank, !present);
  if (present) {
    for (int64_t ax : axes) {
      if (!normalizeAxis(ax, rank) || in[ax] != 1) {
        why = "Squeeze axis " + std::to_string(ax) +
              " is out of range or not of size 1 in " + shapeString(in);
        return false;
      }
      drop[ax] = true;
    }
  }
  for (int64_t d = 0; d < rank; ++d)
    if (!drop[d] || in[d] != 1)
      out.push_back(in[d]);
  return true;
}

//===----------------------------------------------------------------------===//
// Folding
//===----------------------------------------------------------------------===//

namespace {
/// Flat index into `t` for each flat index of `outShape` under broadcasting.
std::vector<int64_t> broadcastIndex(ArrayRef<int64_t> inShape,
                                    ArrayRef<int64_t> outShape) {
  int64_t n = numElements(outShape);
  std::vector<int64_t> idx(n);
  int64_t rank = outShape.size();
  int64_t off = rank - inShape.size();
  SmallVector<int64_t> stride(inShape.size(), 0);
  for (int64_t d = inShape.size() - 1, s = 1; d >= 0; --d) {
    stride[d] = inShape[d] == 1 ? 0 : s;
    s *= inShape[d];
  }
  SmallVector<int64_t> pos(rank, 0);
  for (int64_t k = 0; k < n; ++k) {
    int64_t src = 0;
    for (int64_t d = off; d < rank; ++d)
      src += pos[d] * stride[d - off];
    idx[k] = src;
    for (int64_t d = rank - 1; d >= 0; --d) {
      if (++pos[d] < outShape[d])
        break;
      pos[d] = 0;
    }
  }
  return idx;
}

std::vector<int64_t> strides(ArrayRef<int64_t> shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (int64_t d = static_cast<int64_t>(shape.size()) - 2; d >= 0; --d)
    s[d] = s[d + 1] * shape[d + 1];
  return s;
}

/// A tensor of `shape` whose element at each position is `a`'s element at the
/// flat index `source(position)`: the one loop behind transpose, slice and
/// tile.
HostTensor remap(const HostTensor &a, ArrayRef<int64_t> shape,
                 llvm::function_ref<int64_t(ArrayRef<int64_t>)> source) {
  HostTensor out(a.dtype, shape);
  int64_t rank = shape.size();
  SmallVector<int64_t> pos(rank, 0);
  for (int64_t k = 0, e = out.numel(); k < e; ++k) {
    int64_t src = source(pos);
    if (a.isFloat())
      out.f[k] = a.f[src];
    else
      out.i[k] = a.i[src];
    for (int64_t d = rank - 1; d >= 0; --d) {
      if (++pos[d] < shape[d])
        break;
      pos[d] = 0;
    }
  }
  return out;
}

struct Folder {
  const onnx::NodeProto &node;
  ArrayRef<const HostTensor *> in;
  int64_t opset;
  FoldResult result;

  // Moved out: a folded tensor may be a GiB (kMaxFoldedElements doubles).
  FoldResult fail(const std::string &msg) {
    result.error = msg;
    return std::move(result);
  }
  const HostTensor *input(size_t k) const {
    return k < in.size() ? in[k] : nullptr;
  }
  FoldResult one(HostTensor t) {
    result.outputs.push_back(std::move(t));
    return std::move(result);
  }

  using BinaryFn = std::function<double(double, double)>;
  using BinaryIntFn = std::function<int64_t(int64_t, int64_t)>;

  FoldResult binary(int32_t outType, const BinaryFn &fn,
                    const BinaryIntFn &ifn = nullptr) {
    const HostTensor *a = input(0), *b = input(1);
    if (!a || !b)
      return fail("needs two inputs");
    SmallVector<int64_t> shape;
    if (!broadcastTo(a->shape, b->shape, shape))
      return fail("input shapes " + shapeString(a->shape) + " and " +
                  shapeString(b->shape) + " do not broadcast");
    HostTensor out(outType, shape);
    auto ia = broadcastIndex(a->shape, shape),
         ib = broadcastIndex(b->shape, shape);
    bool useInt = ifn && !a->isFloat() && !b->isFloat();
    for (int64_t k = 0, e = out.numel(); k < e; ++k) {
      if (useInt)
        out.setInt(k, ifn(a->getInt(ia[k]), b->getInt(ib[k])));
      else
        out.setDouble(k, fn(a->getDouble(ia[k]), b->getDouble(ib[k])));
    }
    return one(std::move(out));
  }

  FoldResult unary(const std::function<double(double)> &fn) {
    const HostTensor *a = input(0);
    HostTensor out(a->dtype, a->shape);
    for (int64_t k = 0, e = out.numel(); k < e; ++k)
      out.setDouble(k, fn(a->getDouble(k)));
    return one(std::move(out));
  }

  FoldResult cast(const HostTensor &a, int32_t to) {
    HostTensor out(to, a.shape);
    for (int64_t k = 0, e = out.numel(); k < e; ++k) {
      if (a.isFloat())
        out.setDouble(k, a.f[k]);
      else
        out.setInt(k, a.i[k]);
    }
    return one(std::move(out));
  }

  FoldResult reshape(const HostTensor &a, ArrayRef<int64_t> shape) {
    HostTensor out = a;
    out.shape.assign(shape.begin(), shape.end());
    return one(std::move(out));
  }

  // Axes from the attribute (older opsets) or the second input.
  bool axesOf(std::vector<int64_t> &axes, bool &present) {
    present = attrInts(node, "axes", axes);
    if (!present && input(1)) {
      axes = input(1)->ints();
      present = true;
    }
    return true;
  }

  FoldResult gatherElems(const HostTensor &data, const HostTensor &idx,
                         int64_t axis) {
    int64_t rank = data.shape.size();
    if (!normalizeAxis(axis, rank))
      return fail("axis out of range");
    if (!isIntegerDType(idx.dtype))
      return fail("indices must be int32 or int64");
    SmallVector<int64_t> shape(data.shape.begin(), data.shape.begin() + axis);
    shape.append(idx.shape.begin(), idx.shape.end());
    shape.append(data.shape.begin() + axis + 1, data.shape.end());
    HostTensor out(data.dtype, shape);
    int64_t outer = numElements(ArrayRef<int64_t>(data.shape).take_front(axis));
    int64_t inner =
        numElements(ArrayRef<int64_t>(data.shape).drop_front(axis + 1));
    int64_t dim = data.shape[axis], nIdx = idx.numel();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < nIdx; ++j) {
        int64_t g = idx.getInt(j);
        if (g < 0)
          g += dim;
        if (g < 0 || g >= dim)
          return fail("gather index " + std::to_string(idx.getInt(j)) +
                      " out of range for dimension of size " +
                      std::to_string(dim));
        for (int64_t n = 0; n < inner; ++n) {
          int64_t src = (o * dim + g) * inner + n;
          int64_t dst = (o * nIdx + j) * inner + n;
          if (data.isFloat())
            out.f[dst] = data.f[src];
          else
            out.i[dst] = data.i[src];
        }
      }
    return one(std::move(out));
  }

  FoldResult reduce(StringRef op) {
    const HostTensor &a = *input(0);
    int64_t rank = a.shape.size();
    std::vector<int64_t> axes;
    bool present;
    axesOf(axes, present);
    bool keep = attrInt(node, "keepdims", 1) != 0;
    if (axes.empty()) {
      if (attrInt(node, "noop_with_empty_axes", 0))
        return one(a);
      axes.resize(rank);
      std::iota(axes.begin(), axes.end(), 0);
    }
    std::vector<bool> red(rank, false);
    for (int64_t ax : axes) {
      if (!normalizeAxis(ax, rank))
        return fail("reduction axis out of range");
      red[ax] = true;
    }
    SmallVector<int64_t> keptShape, outShape;
    for (int64_t d = 0; d < rank; ++d) {
      keptShape.push_back(red[d] ? 1 : a.shape[d]);
      if (!red[d] || keep)
        outShape.push_back(red[d] ? 1 : a.shape[d]);
    }
    int64_t n = numElements(keptShape);
    std::vector<double> acc(n, op == "ReduceMax"    ? -INFINITY
                               : op == "ReduceMin"  ? INFINITY
                               : op == "ReduceProd" ? 1.0
                                                    : 0.0);
    std::vector<int64_t> inStr = strides(a.shape), outStr = strides(keptShape);
    int64_t count = 0;
    SmallVector<int64_t> pos(rank, 0);
    for (int64_t k = 0, e = a.numel(); k < e; ++k) {
      int64_t dst = 0;
      for (int64_t d = 0; d < rank; ++d)
        dst += (red[d] ? 0 : pos[d]) * outStr[d];
      double v = a.getDouble(k);
      double &t = acc[dst];
      if (op == "ReduceMax")
        t = std::max(t, v);
      else if (op == "ReduceMin")
        t = std::min(t, v);
      else if (op == "ReduceProd")
        t *= v;
      else
        t += v;
      for (int64_t d = rank - 1; d >= 0; --d) {
        if (++pos[d] < a.shape[d])
          break;
        pos[d] = 0;
      }
    }
    (void)inStr;
    count = n ? a.numel() / n : 0;
    HostTensor out(a.dtype, outShape);
    for (int64_t k = 0; k < n; ++k)
      out.setDouble(k, op == "ReduceMean" ? acc[k] / count : acc[k]);
    return one(std::move(out));
  }

  FoldResult transpose(const HostTensor &a) {
    int64_t rank = a.shape.size();
    std::vector<int64_t> perm;
    std::string why;
    if (!transposePerm(node, rank, perm, why))
      return fail(why);
    SmallVector<int64_t> shape;
    for (int64_t p : perm)
      shape.push_back(a.shape[p]);
    std::vector<int64_t> inStr = strides(a.shape);
    return one(remap(a, shape, [&](ArrayRef<int64_t> pos) {
      int64_t src = 0;
      for (int64_t d = 0; d < rank; ++d)
        src += pos[d] * inStr[perm[d]];
      return src;
    }));
  }

  FoldResult slice(const HostTensor &a, ArrayRef<SliceDim> dims) {
    int64_t rank = a.shape.size();
    SmallVector<int64_t> shape;
    for (const SliceDim &s : dims)
      shape.push_back(mlir::weipipe::nn::sliceLength(s.start, s.end, s.step));
    std::vector<int64_t> inStr = strides(a.shape);
    return one(remap(a, shape, [&](ArrayRef<int64_t> pos) {
      int64_t src = 0;
      for (int64_t d = 0; d < rank; ++d)
        src += (dims[d].start + pos[d] * dims[d].step) * inStr[d];
      return src;
    }));
  }

  FoldResult concat(int64_t axis) {
    std::vector<const HostTensor *> parts;
    for (const HostTensor *t : in)
      if (t)
        parts.push_back(t);
    if (parts.empty())
      return fail("no inputs");
    int64_t rank = parts[0]->shape.size();
    if (!normalizeAxis(axis, rank))
      return fail("axis out of range");
    SmallVector<int64_t> shape = parts[0]->shape;
    shape[axis] = 0;
    for (const HostTensor *t : parts) {
      if (static_cast<int64_t>(t->shape.size()) != rank)
        return fail("inputs differ in rank");
      for (int64_t d = 0; d < rank; ++d)
        if (d != axis && t->shape[d] != shape[d])
          return fail("inputs differ outside the concatenation axis");
      shape[axis] += t->shape[axis];
    }
    HostTensor out(parts[0]->dtype, shape);
    int64_t outer = numElements(ArrayRef<int64_t>(shape).take_front(axis));
    int64_t inner = numElements(ArrayRef<int64_t>(shape).drop_front(axis + 1));
    int64_t dst = 0;
    for (int64_t o = 0; o < outer; ++o)
      for (const HostTensor *t : parts) {
        int64_t chunk = t->shape[axis] * inner;
        for (int64_t k = 0; k < chunk; ++k, ++dst) {
          if (t->isFloat() == out.isFloat() && out.isFloat())
            out.f[dst] = t->f[o * chunk + k];
          else if (out.isFloat())
            out.setDouble(dst, t->getDouble(o * chunk + k));
          else
            out.setInt(dst, t->getInt(o * chunk + k));
        }
      }
    return one(std::move(out));
  }

  FoldResult matmul(HostTensor a, HostTensor b) {
    // NumPy's vector rules: a 1-D lhs is a row [1, k], a 1-D rhs a column
    // [k, 1], and the added dimension is dropped from the result.
    if (a.shape.empty() || b.shape.empty())
      return fail("MatMul operands must have rank >= 1");
    bool rowVector = a.shape.size() == 1, columnVector = b.shape.size() == 1;
    if (rowVector)
      a.shape.insert(a.shape.begin(), 1);
    if (columnVector)
      b.shape.push_back(1);
    int64_t m = a.shape[a.shape.size() - 2], k = a.shape.back();
    int64_t k2 = b.shape[b.shape.size() - 2], n = b.shape.back();
    if (k != k2)
      return fail("contracting dimensions differ");
    SmallVector<int64_t> batch;
    if (!broadcastTo(ArrayRef<int64_t>(a.shape).drop_back(2),
                     ArrayRef<int64_t>(b.shape).drop_back(2), batch))
      return fail("batch dimensions do not broadcast");
    SmallVector<int64_t> shape = batch;
    shape.push_back(m);
    shape.push_back(n);
    HostTensor out(a.dtype, shape);
    SmallVector<int64_t> aBatch(ArrayRef<int64_t>(a.shape).drop_back(2));
    SmallVector<int64_t> bBatch(ArrayRef<int64_t>(b.shape).drop_back(2));
    auto ia = broadcastIndex(aBatch, batch), ib = broadcastIndex(bBatch, batch);
    for (size_t bi = 0; bi < ia.size(); ++bi)
      for (int64_t r = 0; r < m; ++r)
        for (int64_t c = 0; c < n; ++c) {
          double s = 0;
          for (int64_t j = 0; j < k; ++j)
            s += a.getDouble(ia[bi] * m * k + r * k + j) *
                 b.getDouble(ib[bi] * k * n + j * n + c);
          out.setDouble((bi * m + r) * n + c, s);
        }
    if (columnVector)
      out.shape.pop_back();
    if (rowVector)
      out.shape.erase(out.shape.end() - (columnVector ? 1 : 2));
    return one(std::move(out));
  }

  FoldResult run();
};

FoldResult Folder::run() {
  StringRef op = node.op_type();
  const HostTensor *a = input(0);
  if (op == "Constant")
    return fail("Constant is handled by the importer");
  if (!a && op != "Range")
    return fail("missing first input");

  auto fmod = [](double x, double y) { return std::fmod(x, y); };
  if (op == "Add")
    return binary(a->dtype, std::plus<double>(), std::plus<int64_t>());
  if (op == "Sub")
    return binary(a->dtype, std::minus<double>(), std::minus<int64_t>());
  if (op == "Mul")
    return binary(a->dtype, std::multiplies<double>(),
                  std::multiplies<int64_t>());
  if (op == "Div")
    return binary(a->dtype, std::divides<double>(),
                  [](int64_t x, int64_t y) { return y ? x / y : 0; });
  if (op == "Pow")
    return binary(a->dtype, [](double x, double y) { return std::pow(x, y); });
  if (op == "Max")
    return binary(
        a->dtype, [](double x, double y) { return std::max(x, y); },
        [](int64_t x, int64_t y) { return std::max(x, y); });
  if (op == "Min")
    return binary(
        a->dtype, [](double x, double y) { return std::min(x, y); },
        [](int64_t x, int64_t y) { return std::min(x, y); });
  if (op == "Mod") {
    if (attrInt(node, "fmod", 0))
      return binary(a->dtype, fmod);
    return binary(
        a->dtype,
        [](double x, double y) {
          double r = std::fmod(x, y);
          return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
        },
        [](int64_t x, int64_t y) {
          if (!y)
            return int64_t(0);
          int64_t r = x % y;
          return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
        });
  }
  if (op == "Equal")
    return binary(
        kBool, [](double x, double y) { return double(x == y); },
        [](int64_t x, int64_t y) { return int64_t(x == y); });
  if (op == "Less")
    return binary(
        kBool, [](double x, double y) { return double(x < y); },
        [](int64_t x, int64_t y) { return int64_t(x < y); });
  if (op == "LessOrEqual")
    return binary(
        kBool, [](double x, double y) { return double(x <= y); },
        [](int64_t x, int64_t y) { return int64_t(x <= y); });
  if (op == "Greater")
    return binary(
        kBool, [](double x, double y) { return double(x > y); },
        [](int64_t x, int64_t y) { return int64_t(x > y); });
  if (op == "GreaterOrEqual")
    return binary(
        kBool, [](double x, double y) { return double(x >= y); },
        [](int64_t x, int64_t y) { return int64_t(x >= y); });
  if (op == "And")
    return binary(kBool, [](double x, double y) { return double(x && y); });
  if (op == "Or")
    return binary(kBool, [](double x, double y) { return double(x || y); });
  if (op == "Xor")
    return binary(
        kBool, [](double x, double y) { return double((x != 0) != (y != 0)); });
  if (op == "Not")
    return unary([](double x) { return double(x == 0); });
  // The bitwise ops keep the input type (bool included, where they are the
  // logical ones).
  if (op == "BitwiseAnd" || op == "BitwiseOr" || op == "BitwiseXor") {
    if (!input(0) || input(0)->isFloat())
      return fail(op.str() + " needs integer or bool inputs");
    auto fn = [op](int64_t x, int64_t y) {
      return op == "BitwiseAnd"  ? (x & y)
             : op == "BitwiseOr" ? (x | y)
                                 : (x ^ y);
    };
    return binary(
        input(0)->dtype,
        [fn](double x, double y) { return double(fn(int64_t(x), int64_t(y))); },
        fn);
  }
  if (op == "BitwiseNot") {
    if (!input(0) || input(0)->isFloat())
      return fail("BitwiseNot needs an integer or bool input");
    bool isBool = input(0)->dtype == kBool;
    return unary([isBool](double x) {
      return isBool ? double(x == 0) : double(~int64_t(x));
    });
  }
  if (op == "Neg")
    return unary([](double x) { return -x; });
  if (op == "Abs")
    return unary([](double x) { return std::fabs(x); });
  if (op == "Sqrt")
    return unary([](double x) { return std::sqrt(x); });
  if (op == "Reciprocal")
    return unary([](double x) { return 1.0 / x; });
  if (op == "Exp")
    return unary([](double x) { return std::exp(x); });
  if (op == "Log")
    return unary([](double x) { return std::log(x); });
  if (op == "Sin")
    return unary([](double x) { return std::sin(x); });
  if (op == "Cos")
    return unary([](double x) { return std::cos(x); });
  if (op == "Tanh")
    return unary([](double x) { return std::tanh(x); });
  if (op == "Erf")
    return unary([](double x) { return std::erf(x); });
  if (op == "Sigmoid")
    return unary([](double x) { return 1.0 / (1.0 + std::exp(-x)); });
  if (op == "Relu")
    return unary([](double x) { return x > 0 ? x : 0.0; });
  if (op == "Floor")
    return unary([](double x) { return std::floor(x); });
  if (op == "Ceil")
    return unary([](double x) { return std::ceil(x); });
  if (op == "Sign")
    return unary([](double x) { return double((x > 0) - (x < 0)); });
  if (op == "IsNaN") {
    HostTensor out(kBool, a->shape);
    for (int64_t k = 0, e = out.numel(); k < e; ++k)
      out.i[k] = std::isnan(a->getDouble(k));
    return one(std::move(out));
  }
  if (op == "IsInf") {
    HostTensor out(kBool, a->shape);
    bool pos = attrInt(node, "detect_positive", 1),
         neg = attrInt(node, "detect_negative", 1);
    for (int64_t k = 0, e = out.numel(); k < e; ++k) {
      double v = a->getDouble(k);
      out.i[k] = std::isinf(v) && ((v > 0 && pos) || (v < 0 && neg));
    }
    return one(std::move(out));
  }
  if (op == "Identity" || op == "Dropout") {
    result.outputs.push_back(*a);
    if (op == "Dropout") {
      HostTensor mask(kBool, a->shape);
      std::fill(mask.i.begin(), mask.i.end(), 1);
      result.outputs.push_back(std::move(mask));
    }
    return result;
  }
  if (op == "Cast")
    return cast(*a, attrInt(node, "to", kFloat));
  if (op == "CastLike") {
    if (!input(1))
      return fail("CastLike needs two inputs");
    return cast(*a, input(1)->dtype);
  }
  if (op == "Where") {
    const HostTensor *x = input(1), *y = input(2);
    if (!x || !y)
      return fail("Where needs three inputs");
    SmallVector<int64_t> s1, shape;
    if (!broadcastTo(a->shape, x->shape, s1) ||
        !broadcastTo(s1, y->shape, shape))
      return fail("Where inputs do not broadcast");
    HostTensor out(x->dtype, shape);
    auto ic = broadcastIndex(a->shape, shape),
         ix = broadcastIndex(x->shape, shape),
         iy = broadcastIndex(y->shape, shape);
    for (int64_t k = 0, e = out.numel(); k < e; ++k) {
      const HostTensor *src = a->getInt(ic[k]) ? x : y;
      int64_t j = a->getInt(ic[k]) ? ix[k] : iy[k];
      if (out.isFloat())
        out.f[k] = src->getDouble(j);
      else
        out.i[k] = src->getInt(j);
    }
    return one(std::move(out));
  }
  if (op == "Shape") {
    int64_t rank = a->shape.size();
    int64_t start = attrInt(node, "start", 0), end = attrInt(node, "end", rank);
    if (start < 0)
      start += rank;
    if (end < 0)
      end += rank;
    start = std::clamp<int64_t>(start, 0, rank);
    end = std::clamp<int64_t>(end, start, rank);
    return one(HostTensor::vectorInt(
        ArrayRef<int64_t>(a->shape).slice(start, end - start)));
  }
  if (op == "Size")
    return one(HostTensor::scalarInt(a->numel()));
  if (op == "Reshape" || op == "Flatten" || op == "Unsqueeze" ||
      op == "Squeeze") {
    SmallVector<int64_t> shape;
    std::string why;
    if (!reshapeLikeShape(node, a->shape, input(1), shape, why))
      return fail(why);
    return reshape(*a, shape);
  }
  if (op == "Gather") {
    if (!input(1))
      return fail("Gather needs indices");
    return gatherElems(*a, *input(1), attrInt(node, "axis", 0));
  }
  if (op == "GatherND" || op == "GatherElements") {
    const HostTensor *idx = input(1);
    if (!idx)
      return fail(op.str() + " needs indices");
    if (!isIntegerDType(idx->dtype))
      return fail("indices must be int32 or int64");
    FlatGather g;
    std::string why;
    bool ok = op == "GatherND"
                  ? flatGatherND(a->shape, idx->shape, idx,
                                 attrInt(node, "batch_dims", 0), g, why)
                  : flatGatherElements(a->shape, idx->shape, idx,
                                       attrInt(node, "axis", 0), g, why);
    if (!ok)
      return fail(why);
    HostTensor out(a->dtype, g.resultShape);
    int64_t inner = numElements(ArrayRef<int64_t>(g.viewShape).drop_front());
    for (int64_t p = 0, n = g.rows.numel(); p < n; ++p)
      for (int64_t e = 0; e < inner; ++e) {
        int64_t src = g.rows.i[p] * inner + e, dst = p * inner + e;
        if (out.isFloat())
          out.f[dst] = a->f[src];
        else
          out.i[dst] = a->i[src];
      }
    return one(std::move(out));
  }
  if (op == "Concat")
    return concat(attrInt(node, "axis", 0));
  if (op == "Transpose")
    return transpose(*a);
  if (op == "Slice") {
    std::vector<int64_t> starts, ends, axes, steps;
    if (input(1)) {
      starts = input(1)->ints();
      ends = input(2) ? input(2)->ints() : std::vector<int64_t>();
      if (input(3))
        axes = input(3)->ints();
      if (input(4))
        steps = input(4)->ints();
    } else {
      attrInts(node, "starts", starts);
      attrInts(node, "ends", ends);
      attrInts(node, "axes", axes);
    }
    SmallVector<SliceDim> dims;
    std::string why;
    if (!sliceBounds(a->shape, starts, ends, axes, steps, dims, why))
      return fail(why);
    return slice(*a, dims);
  }
  if (op == "Split") {
    int64_t axis = attrInt(node, "axis", 0), rank = a->shape.size();
    if (!normalizeAxis(axis, rank))
      return fail("axis out of range");
    std::vector<int64_t> sizes;
    if (!attrInts(node, "split", sizes) && input(1))
      sizes = input(1)->ints();
    int64_t n = node.output_size();
    if (sizes.empty()) {
      int64_t dim = a->shape[axis], chunk = (dim + n - 1) / n;
      for (int64_t k = 0; k < n; ++k)
        sizes.push_back(std::min(chunk, dim - k * chunk));
    }
    int64_t total = 0;
    for (int64_t s : sizes) {
      if (s < 0)
        return fail("split sizes " + shapeString(sizes) +
                    " have a negative entry");
      total = s > a->shape[axis] - total ? a->shape[axis] + 1 : total + s;
    }
    // Checked before slicing: a size past the end would read past the data.
    if (total != a->shape[axis])
      return fail("split sizes do not add up to the dimension");
    int64_t off = 0;
    for (int64_t s : sizes) {
      SmallVector<SliceDim> dims;
      for (int64_t d = 0; d < rank; ++d)
        dims.push_back({0, a->shape[d], 1});
      dims[axis] = {off, off + s, 1};
      off += s;
      FoldResult r = Folder{node, in, opset, {}}.slice(*a, dims);
      result.outputs.push_back(std::move(r.outputs[0]));
    }
    if (off != a->shape[axis])
      return fail("split sizes do not add up to the dimension");
    return result;
  }
  if (op == "Expand") {
    if (!input(1))
      return fail("Expand needs a shape");
    SmallVector<int64_t> shape;
    if (!broadcastTo(a->shape, input(1)->ints(), shape))
      return fail("Expand shape does not broadcast");
    HostTensor out(a->dtype, shape);
    auto idx = broadcastIndex(a->shape, shape);
    for (int64_t k = 0, e = out.numel(); k < e; ++k) {
      if (out.isFloat())
        out.f[k] = a->f[idx[k]];
      else
        out.i[k] = a->i[idx[k]];
    }
    return one(std::move(out));
  }
  if (op == "Tile") {
    if (!input(1))
      return fail("Tile needs repeats");
    std::vector<int64_t> reps = input(1)->ints();
    int64_t rank = a->shape.size();
    if (static_cast<int64_t>(reps.size()) != rank)
      return fail("repeats length differs from rank");
    SmallVector<int64_t> shape;
    for (int64_t d = 0; d < rank; ++d) {
      if (reps[d] < 0)
        return fail("repeats " + shapeString(reps) + " have a negative entry");
      shape.push_back(a->shape[d] * reps[d]);
    }
    std::vector<int64_t> inStr = strides(a->shape);
    return one(remap(*a, shape, [&](ArrayRef<int64_t> pos) {
      int64_t src = 0;
      for (int64_t d = 0; d < rank; ++d)
        src += (pos[d] % a->shape[d]) * inStr[d];
      return src;
    }));
  }
  if (op == "Range") {
    const HostTensor *start = input(0), *limit = input(1), *delta = input(2);
    if (!start || !limit || !delta)
      return fail("Range needs start, limit and delta");
    if (start->numel() != 1 || limit->numel() != 1 || delta->numel() != 1)
      return fail("Range start, limit and delta must be scalars");
    double s = start->getDouble(0), l = limit->getDouble(0),
           d = delta->getDouble(0);
    if (d == 0)
      return fail("Range delta is zero");
    // The count in exact arithmetic (integers) or checked (floats), so that
    // a range past 2^63 is too large rather than wrapped to empty.
    auto number = [](double v) {
      std::ostringstream os;
      os << v;
      return os.str();
    };
    auto text = [&](const HostTensor &t) {
      return t.isFloat() ? number(t.getDouble(0)) : std::to_string(t.getInt(0));
    };
    const std::string range = "Range from " + text(*start) + " to " +
                              text(*limit) + " by " + text(*delta);
    double count;
    if (start->isFloat()) {
      count = std::ceil((l - s) / d);
      if (std::isnan(count))
        return fail(range + " has no element count");
    } else {
      const __int128 diff = __int128(limit->getInt(0)) - start->getInt(0);
      const __int128 step = delta->getInt(0);
      const __int128 num = step > 0 ? diff : -diff;
      const __int128 den = step > 0 ? step : -step;
      count = num <= 0 ? 0.0 : double((num + den - 1) / den);
    }
    if (count > double(kMaxFoldedElements))
      return fail(range + " has " + number(count) + " elements, over the " +
                  std::to_string(kMaxFoldedElements) +
                  " that can be computed at import time");
    const int64_t n = count > 0 ? static_cast<int64_t>(count) : 0;
    HostTensor out(start->dtype, {n});
    for (int64_t k = 0; k < n; ++k) {
      if (out.isFloat())
        out.setDouble(k, s + k * d);
      else
        // In uint64: k * delta may pass 2^63 while start + k * delta, the
        // value, does not.
        out.setInt(k, int64_t(uint64_t(start->getInt(0)) +
                              uint64_t(k) * uint64_t(delta->getInt(0))));
    }
    return one(std::move(out));
  }
  if (op == "ConstantOfShape") {
    std::vector<int64_t> shape = a->ints();
    if (llvm::any_of(shape, [](int64_t d) { return d < 0; }))
      return fail("shape " + shapeString(shape) + " has a negative entry");
    int32_t dtype = kFloat;
    double fv = 0;
    int64_t iv = 0;
    if (const auto *v = findAttr(node, "value")) {
      // The value is a one-element TensorProto; decoded by the importer and
      // passed as the second input.
      (void)v;
    }
    if (const HostTensor *value = input(1)) {
      if (value->numel() != 1)
        return fail("value must have one element, not " +
                    std::to_string(value->numel()));
      dtype = value->dtype;
      fv = value->getDouble(0);
      iv = value->getInt(0);
    }
    HostTensor out(dtype, shape);
    for (int64_t k = 0, e = out.numel(); k < e; ++k) {
      if (out.isFloat())
        out.setDouble(k, fv);
      else
        out.setInt(k, iv);
    }
    return one(std::move(out));
  }
  if (op == "Trilu") {
    if (a->shape.size() < 2)
      return fail("Trilu needs rank >= 2");
    if (input(1) && input(1)->numel() != 1)
      return fail("k must be a scalar");
    int64_t k = input(1) ? input(1)->getInt(0) : 0;
    bool upper = attrInt(node, "upper", 1) != 0;
    HostTensor out = *a;
    int64_t rows = a->shape[a->shape.size() - 2], cols = a->shape.back();
    for (int64_t e = 0, n = out.numel(); e < n; ++e) {
      int64_t c = e % cols, r = (e / cols) % rows;
      bool keep = upper ? (c - r >= k) : (c - r <= k);
      if (!keep)
        out.setInt(e, 0);
    }
    return one(std::move(out));
  }
  if (op == "MatMul") {
    if (!input(1))
      return fail("MatMul needs two inputs");
    return matmul(*a, *input(1));
  }
  if (op == "ReduceSum" || op == "ReduceMean" || op == "ReduceMax" ||
      op == "ReduceMin" || op == "ReduceProd")
    return reduce(op);
  if (op == "CumSum") {
    if (!input(1))
      return fail("CumSum needs an axis");
    if (input(1)->numel() != 1)
      return fail("axis must be a scalar");
    int64_t axis = input(1)->getInt(0), rank = a->shape.size();
    if (!normalizeAxis(axis, rank))
      return fail("axis out of range");
    bool exclusive = attrInt(node, "exclusive", 0),
         reverse = attrInt(node, "reverse", 0);
    HostTensor out(a->dtype, a->shape);
    int64_t inner =
        numElements(ArrayRef<int64_t>(a->shape).drop_front(axis + 1));
    int64_t dim = a->shape[axis];
    int64_t outer = a->numel() / std::max<int64_t>(dim * inner, 1);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t n = 0; n < inner; ++n) {
        double acc = 0;
        for (int64_t j = 0; j < dim; ++j) {
          int64_t jj = reverse ? dim - 1 - j : j;
          int64_t idx = (o * dim + jj) * inner + n;
          double v = a->getDouble(idx);
          if (exclusive) {
            out.setDouble(idx, acc);
            acc += v;
          } else {
            acc += v;
            out.setDouble(idx, acc);
          }
        }
      }
    return one(std::move(out));
  }
  return fail("no folder for " + op.str());
}
} // namespace

bool mlir::weipipe::importer::isFoldableOp(StringRef op) {
  return llvm::StringSwitch<bool>(op)
      .Cases({"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mod"}, true)
      .Cases({"Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"},
             true)
      .Cases({"And", "Or", "Xor", "Not", "Neg", "Abs", "Sqrt", "Reciprocal"},
             true)
      .Cases({"BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot"}, true)
      .Cases({"Exp", "Log", "Sin", "Cos", "Tanh", "Erf", "Sigmoid", "Relu"},
             true)
      .Cases({"Floor", "Ceil", "Sign", "IsNaN", "IsInf", "Identity", "Dropout",
              "Cast", "CastLike"},
             true)
      .Cases({"Where", "Shape", "Size", "Reshape", "Flatten", "Unsqueeze",
              "Squeeze", "Gather", "GatherND", "GatherElements", "Concat"},
             true)
      .Cases({"Transpose", "Slice", "Split", "Expand", "Tile", "Range",
              "ConstantOfShape", "Trilu", "MatMul"},
             true)
      .Cases({"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd",
              "CumSum"},
             true)
      .Default(false);
}

FoldResult
mlir::weipipe::importer::foldNode(const onnx::NodeProto &node,
                                  ArrayRef<const HostTensor *> inputs,
                                  int64_t opset) {
  FoldResult banded;
  if (foldBanded(node, inputs, opset, banded))
    return banded;
  // The folders below read every element.
  std::vector<HostTensor> dense;
  dense.reserve(inputs.size());
  SmallVector<const HostTensor *> ins(inputs.begin(), inputs.end());
  for (const HostTensor *&t : ins)
    if (t && t->banded) {
      dense.push_back(t->densified());
      t = &dense.back();
    }
  Folder f{node, ins, opset, {}};
  return f.run();
}

HostTensor HostTensor::makeBanded(int32_t dtype, ArrayRef<int64_t> shape) {
  int64_t m = shape[shape.size() - 2], n = shape.back();
  HostTensor t(dtype, {std::max<int64_t>(m + n - 1, 0)});
  t.shape.assign(shape.begin(), shape.end());
  t.banded = true;
  return t;
}

HostTensor HostTensor::densified() const {
  if (!banded)
    return *this;
  HostTensor out(dtype, shape);
  int64_t m = shape[shape.size() - 2], n = shape.back();
  for (int64_t k = 0, e = out.numel(); k < e; ++k) {
    int64_t j = k % n, i = (k / n) % m;
    if (isFloat())
      out.f[k] = f[j - i + m - 1];
    else
      out.i[k] = this->i[j - i + m - 1];
  }
  return out;
}

//===----------------------------------------------------------------------===//
// GatherND and GatherElements as one flat Gather
//===----------------------------------------------------------------------===//

namespace {
/// Adds `idx[p * k + t]` (normalized against `dim`) times `stride` to row p.
bool addIndexTerm(const HostTensor &idx, int64_t k, int64_t t, int64_t dim,
                  int64_t stride, HostTensor &rows, std::string &why) {
  for (int64_t p = 0, n = rows.numel(); p < n; ++p) {
    int64_t v = idx.getInt(p * k + t);
    int64_t norm = v < 0 ? v + dim : v;
    if (norm < 0 || norm >= dim) {
      why = "index " + std::to_string(v) +
            " out of range for a dimension "
            "of size " +
            std::to_string(dim);
      return false;
    }
    rows.i[p] += norm * stride;
  }
  return true;
}
} // namespace

bool mlir::weipipe::importer::flatGatherND(ArrayRef<int64_t> data,
                                           ArrayRef<int64_t> idxShape,
                                           const HostTensor *idx,
                                           int64_t batchDims, FlatGather &out,
                                           std::string &why) {
  int64_t r = data.size(), q = idxShape.size();
  if (q < 1) {
    why = "indices must have rank >= 1";
    return false;
  }
  int64_t k = idxShape.back(), b = batchDims;
  if (b < 0 || b >= std::min(r, q)) {
    why = "batch_dims " + std::to_string(b) + " must be in [0, " +
          std::to_string(std::min(r, q)) + ")";
    return false;
  }
  if (k < 1 || b + k > r) {
    why = "the index depth " + std::to_string(k) + " must be in [1, " +
          std::to_string(r - b) + "] (data rank " + std::to_string(r) +
          ", batch_dims " + std::to_string(b) + ")";
    return false;
  }
  for (int64_t d = 0; d < b; ++d)
    if (idxShape[d] != data[d]) {
      why = "batch dimension " + std::to_string(d) + " is " +
            std::to_string(idxShape[d]) + " in the indices and " +
            std::to_string(data[d]) + " in the data";
      return false;
    }
  // View: [prod(data[:b+k]), data[b+k:]...]; row = batch * block + sum idx*s.
  int64_t block = numElements(data.slice(b, k));
  out.viewShape.assign({numElements(data.take_front(b + k))});
  llvm::append_range(out.viewShape, data.drop_front(b + k));
  out.resultShape.assign(idxShape.begin(), idxShape.end() - 1);
  llvm::append_range(out.resultShape, data.drop_front(b + k));
  out.indexedDims.assign(data.begin() + b, data.begin() + b + k);
  out.indexStrides = strides(out.indexedDims);
  out.rows = HostTensor(kInt64, ArrayRef<int64_t>(idxShape).drop_back());
  int64_t perBatch = numElements(idxShape.slice(b, q - 1 - b));
  for (int64_t p = 0, n = out.rows.numel(); p < n; ++p)
    out.rows.i[p] = (p / perBatch) * block;
  if (!idx)
    return true;
  for (int64_t t = 0; t < k; ++t)
    if (!addIndexTerm(*idx, k, t, out.indexedDims[t], out.indexStrides[t],
                      out.rows, why))
      return false;
  return true;
}

bool mlir::weipipe::importer::flatGatherElements(ArrayRef<int64_t> data,
                                                 ArrayRef<int64_t> idxShape,
                                                 const HostTensor *idx,
                                                 int64_t axis, FlatGather &out,
                                                 std::string &why) {
  int64_t r = data.size();
  if (static_cast<int64_t>(idxShape.size()) != r) {
    why = "indices have rank " + std::to_string(idxShape.size()) +
          ", the data rank " + std::to_string(r);
    return false;
  }
  if (!normalizeAxis(axis, r)) {
    why = "axis out of range for rank " + std::to_string(r);
    return false;
  }
  for (int64_t d = 0; d < r; ++d)
    if (d != axis && idxShape[d] > data[d]) {
      why = "indices dimension " + std::to_string(d) + " (" +
            std::to_string(idxShape[d]) + ") exceeds the data's (" +
            std::to_string(data[d]) + ")";
      return false;
    }
  // View: the data flattened; row = sum over d != axis of pos[d] * stride[d],
  // plus idx * stride[axis].
  std::vector<int64_t> dataStr = strides(data);
  out.viewShape.assign({numElements(data)});
  out.resultShape.assign(idxShape.begin(), idxShape.end());
  out.indexedDims.assign({data[axis]});
  out.indexStrides.assign({dataStr[axis]});
  out.rows = HostTensor(kInt64, idxShape);
  SmallVector<int64_t> pos(r, 0);
  for (int64_t p = 0, n = out.rows.numel(); p < n; ++p) {
    int64_t row = 0;
    for (int64_t d = 0; d < r; ++d)
      if (d != axis)
        row += pos[d] * dataStr[d];
    out.rows.i[p] = row;
    for (int64_t d = r - 1; d >= 0; --d) {
      if (++pos[d] < idxShape[d])
        break;
      pos[d] = 0;
    }
  }
  return !idx ||
         addIndexTerm(*idx, 1, 0, data[axis], dataStr[axis], out.rows, why);
}
