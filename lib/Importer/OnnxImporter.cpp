//===- OnnxImporter.cpp - ONNX to the nn dialect --------------------------===//
//
// Part of weipipe. The driver: reads the model, finds where inline weights sit
// in the file, pins input shapes, walks the nodes, and collects the outputs.
// Per-op emission lives in NodeImporter.cpp, import-time folding in
// HostTensor.cpp.
//
//===----------------------------------------------------------------------===//

#include "ImporterImpl.h"

#include "weipipe/runtime/Artifact.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include "onnx/defs/parser.h"
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/unknown_field_set.h>
#include <google/protobuf/wire_format_lite.h>

#include <climits>
#include <cstring>
#include <set>
#include <tuple>

using namespace mlir;
using namespace mlir::weipipe;
using namespace mlir::weipipe::importer;
using llvm::ArrayRef;
using llvm::SmallVector;
using llvm::StringRef;

bool mlir::weipipe::isOnnxFile(StringRef path) {
  return path.ends_with(".onnx") || path.ends_with(".onnxtext");
}

ArrayRef<StringRef> mlir::weipipe::supportedOnnxOps() {
  static const std::vector<StringRef> ops = [] {
    std::vector<StringRef> emitted = NodeEmitter::emittedOps();
    std::set<StringRef> all(emitted.begin(), emitted.end());
    for (StringRef op :
         {"Constant", "Shape", "Size", "Range", "ConstantOfShape", "Tile",
          "CumSum", "Mod", "IsInf", "GatherND", "ReduceMin", "ReduceProd",
          "Xor", "Flatten"})
      all.insert(op);
    return std::vector<StringRef>(all.begin(), all.end());
  }();
  return ops;
}

namespace {
void emitNote(Location loc, const Twine &msg) {
  loc.getContext()->getDiagEngine().emit(loc, DiagnosticSeverity::Note) << msg;
}

} // namespace

std::optional<std::string>
mlir::weipipe::importer::metadataOf(const google::protobuf::Message &m,
                                    int field, StringRef key) {
  const google::protobuf::Reflection *refl = m.GetReflection();
  if (const google::protobuf::FieldDescriptor *fd =
          m.GetDescriptor()->FindFieldByNumber(field)) {
    for (int i = 0, n = refl->FieldSize(m, fd); i < n; ++i) {
      const auto &entry = dynamic_cast<const onnx::StringStringEntryProto &>(
          refl->GetRepeatedMessage(m, fd, i));
      if (entry.key() == key)
        return entry.value();
    }
    return std::nullopt;
  }
  const google::protobuf::UnknownFieldSet &unknown = refl->GetUnknownFields(m);
  for (int i = 0, n = unknown.field_count(); i < n; ++i) {
    const google::protobuf::UnknownField &f = unknown.field(i);
    onnx::StringStringEntryProto entry;
    if (f.number() == field &&
        f.type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED &&
        entry.ParseFromString(f.length_delimited()) && entry.key() == key)
      return entry.value();
  }
  return std::nullopt;
}

std::string mlir::weipipe::importer::joinNames(ArrayRef<std::string> names,
                                               size_t max) {
  std::string s;
  for (size_t k = 0; k < names.size() && k < max; ++k)
    s += (k ? ", " : "") + names[k];
  if (names.size() > max)
    s += ", ... (" + std::to_string(names.size()) + " in all)";
  return s;
}

Importer::Importer(MLIRContext *ctx, StringRef path,
                   const OnnxImportOptions &options)
    : ctx(ctx), path(path.str()), options(options),
      frozenRegex(options.frozenInitializers),
      trainableRegex(options.trainableInitializers),
      dropRegex(options.dropOutputs), builder(ctx), moduleBuilder(ctx) {
  SmallVector<char> dir(path.begin(), path.end());
  llvm::sys::path::remove_filename(dir);
  modelDir = std::string(dir.begin(), dir.end());
  isText = path.ends_with(".onnxtext");
}

std::string Importer::nodeName(const onnx::NodeProto &node, int64_t index) {
  return node.name().empty() ? node.op_type() + "#" + std::to_string(index)
                             : node.name();
}

Location Importer::nodeLoc(const onnx::NodeProto &node, int64_t index) {
  return NameLoc::get(StringAttr::get(ctx, nodeName(node, index)),
                      FileLineColLoc::get(ctx, path, 0, 0));
}

std::string Importer::locName(Location loc) {
  if (auto named = dyn_cast<NameLoc>(loc))
    return named.getName().str();
  return std::string();
}

//===----------------------------------------------------------------------===//
// Loading
//===----------------------------------------------------------------------===//

LogicalResult Importer::load() {
  Location loc = FileLineColLoc::get(ctx, path, 0, 0);
  auto buf = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                         /*RequiresNullTerminator=*/isText);
  if (!buf)
    return emitError(loc) << "cannot read model: " << buf.getError().message();
  fileBuffer = std::move(*buf);
  StringRef bytes = fileBuffer->getBuffer();
  if (bytes.empty())
    return emitError(loc) << "model file is empty";

  if (isText) {
    onnx::OnnxParser parser(bytes.data());
    onnx::Common::Status status;
    try {
      status = parser.Parse(model);
    } catch (const std::exception &e) {
      // The parser converts literals with std::stof/stoll, which throw on
      // "inf", "nan" (ONNX 1.12 has no such literals) and out-of-range values.
      return emitError(loc) << "malformed ONNX text: number out of range or "
                               "not supported at "
                            << parser.GetCurrentPos() << " (" << e.what()
                            << ")\nError context: " << parser.GetErrorContext();
    }
    if (!status.IsOK())
      return emitError(loc) << "malformed ONNX text: " << status.ErrorMessage();
  } else {
    if (bytes.size() > static_cast<size_t>(INT_MAX))
      return emitError(loc)
             << "model file is " << bytes.size()
             << " bytes, over protobuf's 2 GiB limit; save the weights as "
                "ONNX external data";
    if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
      return emitError(loc) << "malformed or truncated ONNX protobuf ("
                            << bytes.size() << " bytes could not be parsed "
                            << "as a ModelProto)";
    if (failed(scanRawOffsets(bytes)))
      return failure();
  }

  if (!model.has_graph())
    return emitError(loc) << "model has no graph";
  if (model.graph().node_size() == 0)
    return emitError(loc) << "empty graph: the model has no nodes";
  for (const auto &imp : model.opset_import())
    if (imp.domain().empty() || imp.domain() == "ai.onnx")
      opset = imp.version();
  if (opset == 0)
    return emitError(loc) << "model imports no default-domain (ai.onnx) "
                             "opset";
  // Operators change meaning between opsets; the importer follows each
  // opset's definition where it knows the difference, but only 13..28 are
  // what the exporters write and what the tests cover.
  if (opset < 13 || opset > 28)
    emitRemark(loc) << "ai.onnx opset " << opset
                    << " is outside the opsets weipipe is tested with (13 to "
                       "28); compare the forward with onnxruntime (python -m "
                       "weipipe.reference forward --engine onnxruntime)";
  return success();
}

LogicalResult Importer::scanRawOffsets(StringRef bytes) {
  // Protobuf parsing copies raw_data out of the file; the parameters must
  // instead point at the bytes in place. Walk the wire format once to find
  // them: ModelProto.graph (7) -> GraphProto.initializer (5) ->
  // TensorProto.{name (8), raw_data (9), float_data (4, packed)}.
  using google::protobuf::internal::WireFormatLite;
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t *>(bytes.data()),
      static_cast<int>(bytes.size()));
  in.SetTotalBytesLimit(INT_MAX);
  auto fail = [&]() {
    return emitError(FileLineColLoc::get(ctx, path, 0, 0))
           << "malformed ONNX protobuf near byte " << in.CurrentPosition();
  };
  while (uint32_t tag = in.ReadTag()) {
    if (WireFormatLite::GetTagFieldNumber(tag) != 7 ||
        WireFormatLite::GetTagWireType(tag) !=
            WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      if (!WireFormatLite::SkipField(&in, tag))
        return fail();
      continue;
    }
    uint32_t graphLen;
    if (!in.ReadVarint32(&graphLen))
      return fail();
    auto graphLimit = in.PushLimit(graphLen);
    while (uint32_t gtag = in.ReadTag()) {
      if (WireFormatLite::GetTagFieldNumber(gtag) != 5 ||
          WireFormatLite::GetTagWireType(gtag) !=
              WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
        if (!WireFormatLite::SkipField(&in, gtag))
          return fail();
        continue;
      }
      uint32_t tensorLen;
      if (!in.ReadVarint32(&tensorLen))
        return fail();
      auto tensorLimit = in.PushLimit(tensorLen);
      std::string name;
      RawLocation raw;
      bool haveRaw = false;
      while (uint32_t ttag = in.ReadTag()) {
        int field = WireFormatLite::GetTagFieldNumber(ttag);
        bool delimited = WireFormatLite::GetTagWireType(ttag) ==
                         WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
        if (delimited && field == 8) {
          if (!WireFormatLite::ReadString(&in, &name))
            return fail();
        } else if (delimited && (field == 9 || field == 4)) {
          uint32_t len;
          if (!in.ReadVarint32(&len))
            return fail();
          raw.offset = in.CurrentPosition();
          raw.length = len;
          haveRaw = true;
          if (!in.Skip(len))
            return fail();
        } else if (!WireFormatLite::SkipField(&in, ttag)) {
          return fail();
        }
      }
      in.PopLimit(tensorLimit);
      if (haveRaw && !name.empty())
        rawLocations[name] = raw;
    }
    in.PopLimit(graphLimit);
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Types
//===----------------------------------------------------------------------===//

FailureOr<Type> Importer::elementType(int32_t dtype) {
  switch (dtype) {
  case kFloat:
    return Type(Float32Type::get(ctx));
  case kFloat16:
    return Type(Float16Type::get(ctx));
  case kBFloat16:
    return Type(BFloat16Type::get(ctx));
  case kInt64:
    return Type(IntegerType::get(ctx, 64));
  case kInt32:
    return Type(IntegerType::get(ctx, 32));
  case kBool:
    return Type(IntegerType::get(ctx, 1));
  default:
    return failure();
  }
}

std::string importer::elementTypeError(int32_t dtype) {
  const std::string name = dtypeName(dtype);
  return "element type " +
         (name == "unsupported element type"
              ? std::to_string(dtype) + " (not an ONNX element type)"
              : name) +
         " is not supported in computed tensors (supported: float32, "
         "bfloat16, float16, int64, int32, bool)";
}

int32_t Importer::dtypeOf(Type elem) const {
  if (elem.isF32())
    return kFloat;
  if (elem.isF16())
    return kFloat16;
  if (elem.isBF16())
    return kBFloat16;
  if (elem.isInteger(64))
    return kInt64;
  if (elem.isInteger(32))
    return kInt32;
  if (elem.isInteger(1))
    return kBool;
  return kUndefined;
}

/// Why a tensor of this type is too large for the runtime ("" if it is
/// not): the runtime's bounds (rt::shapeProblem), so that shape arithmetic
/// that would overflow is reported where it happens, not written.
static std::string sizeProblem(ArrayRef<int64_t> shape, int64_t elementBytes) {
  int64_t numel;
  return ::weipipe::rt::shapeProblem(
      std::vector<int64_t>(shape.begin(), shape.end()),
      size_t(std::max<int64_t>(elementBytes, 1)), &numel);
}

static std::string sizeProblem(Type type) {
  auto t = dyn_cast<RankedTensorType>(type);
  if (!t || !t.hasStaticShape())
    return "";
  const Type e = t.getElementType();
  const int64_t bits = e.isIntOrFloat() ? e.getIntOrFloatBitWidth() : 32;
  return sizeProblem(t.getShape(), (bits + 7) / 8);
}

//===----------------------------------------------------------------------===//
// Values
//===----------------------------------------------------------------------===//

void Importer::setValue(StringRef name, Value v, int32_t dtype) {
  if (name.empty())
    return;
  ValueInfo info;
  info.dtype = dtype;
  auto shape = cast<RankedTensorType>(v.getType()).getShape();
  info.shape.assign(shape.begin(), shape.end());
  info.value = v;
  values[name] = std::move(info);
}

void Importer::setConstant(StringRef name, HostTensor t) {
  if (name.empty())
    return;
  ValueInfo info;
  info.dtype = t.dtype;
  info.shape = t.shape;
  info.constant = std::make_shared<const HostTensor>(std::move(t));
  values[name] = std::move(info);
}

std::string Importer::usedBeforeDefined(StringRef user, StringRef name) {
  const auto &nodes = model.graph().node();
  llvm::StringMap<int> producer;
  int userIndex = -1;
  for (int k = 0; k < nodes.size(); ++k) {
    for (const std::string &out : nodes[k].output())
      if (!out.empty())
        producer.try_emplace(out, k);
    if (userIndex < 0 && nodeName(nodes[k], k) == user)
      userIndex = k;
  }
  auto it = producer.find(name);
  if (it == producer.end() || userIndex < 0)
    return "";
  const int def = it->second;
  // Does the defining node depend on the user? Then no order can fix it.
  std::vector<int> stack = {def};
  std::vector<bool> seen(size_t(nodes.size()), false);
  bool cycle = false;
  while (!stack.empty() && !cycle) {
    const int k = stack.back();
    stack.pop_back();
    if (seen[size_t(k)])
      continue;
    seen[size_t(k)] = true;
    for (const std::string &in : nodes[k].input()) {
      auto p = producer.find(in);
      if (p == producer.end())
        continue;
      cycle |= p->second == userIndex;
      stack.push_back(p->second);
    }
  }
  const std::string head = "node '" + user.str() + "' uses value '" +
                           name.str() + "', which node '" +
                           nodeName(nodes[def], def) + "' defines";
  if (cycle)
    return head + " from the output of '" + user.str() +
           "': the graph has a cycle";
  return head + " later: the nodes are not in topological order, as ONNX "
                "requires";
}

ValueInfo *Importer::lookup(StringRef name, Location loc) {
  auto it = values.find(name);
  std::string user = locName(loc);
  if (it == values.end()) {
    if (user.empty())
      emitError(loc) << "graph output '" << name
                     << "' is not defined by any node, input or initializer";
    else if (std::string why = usedBeforeDefined(user, name); !why.empty())
      emitError(loc) << why;
    else
      emitError(loc) << "node '" << user << "' uses value '" << name
                     << "' that no node, input or initializer defines";
    return nullptr;
  }
  if (!it->second.poison.empty()) {
    if (user.empty())
      emitError(loc) << it->second.poison;
    else
      emitError(loc) << "node '" << user << "': " << it->second.poison;
    return nullptr;
  }
  return &it->second;
}

namespace {
double halfBitsToDouble(uint16_t bits, bool bf16) {
  llvm::APFloat f(bf16 ? llvm::APFloat::BFloat() : llvm::APFloat::IEEEhalf(),
                  llvm::APInt(16, bits));
  bool lost;
  f.convert(llvm::APFloat::IEEEdouble(), llvm::APFloat::rmNearestTiesToEven,
            &lost);
  return f.convertToDouble();
}

/// Decodes `n` little-endian elements of `dtype` from `p` into `out`.
void decodeRaw(const char *p, int32_t dtype, HostTensor &out) {
  int64_t n = out.numel();
  auto load = [&](int64_t k, auto tag) {
    decltype(tag) v;
    std::memcpy(&v, p + k * sizeof(v), sizeof(v));
    return v;
  };
  for (int64_t k = 0; k < n; ++k) {
    switch (dtype) {
    case kFloat:
      out.f[k] = load(k, float());
      break;
    case kDouble:
      out.f[k] = load(k, double());
      break;
    case kFloat16:
      out.f[k] = halfBitsToDouble(load(k, uint16_t()), false);
      break;
    case kBFloat16:
      out.f[k] = halfBitsToDouble(load(k, uint16_t()), true);
      break;
    case kInt64:
      out.i[k] = load(k, int64_t());
      break;
    case kUInt64:
      out.i[k] = static_cast<int64_t>(load(k, uint64_t()));
      break;
    case kInt32:
      out.i[k] = load(k, int32_t());
      break;
    case kUInt32:
      out.i[k] = load(k, uint32_t());
      break;
    case kInt16:
      out.i[k] = load(k, int16_t());
      break;
    case kUInt16:
      out.i[k] = load(k, uint16_t());
      break;
    case kInt8:
      out.i[k] = load(k, int8_t());
      break;
    case kUInt8:
    case kBool:
      out.i[k] = load(k, uint8_t());
      break;
    }
  }
}

struct ExternalRef {
  std::string location;
  int64_t offset = 0;
  int64_t length = -1;
};

/// Reads the external-data reference of `t` (named `subject` in messages)
/// and checks that its file holds `bytes` bytes (`what` describes them) at
/// its offset. Sets `filePath` to the file relative to `modelDir`.
LogicalResult externalRef(const onnx::TensorProto &t, StringRef modelDir,
                          int64_t bytes, StringRef what, StringRef subject,
                          Location loc, ExternalRef &ref,
                          std::string &filePath) {
  for (const auto &kv : t.external_data()) {
    if (kv.key() == "location") {
      ref.location = kv.value();
      continue;
    }
    if (kv.key() != "offset" && kv.key() != "length")
      continue;
    int64_t v;
    if (StringRef(kv.value()).getAsInteger(10, v) || v < 0)
      return emitError(loc) << subject << ": external data " << kv.key() << " '"
                            << kv.value() << "' is not a non-negative integer";
    (kv.key() == "offset" ? ref.offset : ref.length) = v;
  }
  if (ref.location.empty())
    return emitError(loc) << subject << " is external data without a location";
  SmallVector<char> file(modelDir.begin(), modelDir.end());
  llvm::sys::path::append(file, ref.location);
  filePath.assign(file.begin(), file.end());
  uint64_t size;
  if (std::error_code ec = llvm::sys::fs::file_size(filePath, size))
    return emitError(loc) << subject << ": external data file '" << filePath
                          << "' cannot be opened: " << ec.message();
  if (ref.length >= 0 && ref.length != bytes)
    return emitError(loc) << subject << ": external data length " << ref.length
                          << " does not match " << bytes << " bytes of "
                          << what;
  if (static_cast<uint64_t>(ref.offset) + bytes > size)
    return emitError(loc) << subject << ": bytes [" << ref.offset << ", "
                          << ref.offset + bytes << ") lie past the end of '"
                          << filePath << "' (" << size << " bytes)";
  return success();
}
} // namespace

LogicalResult Importer::readInitializer(const onnx::TensorProto &t,
                                        HostTensor &out, Location loc,
                                        StringRef what) {
  std::string subject =
      what.empty() ? "initializer '" + t.name() + "'" : what.str();
  int32_t dt = t.data_type();
  int64_t width = dtypeBytes(dt);
  if (width == 0)
    return emitError(loc) << subject << " has unsupported element type "
                          << dtypeName(dt);
  SmallVector<int64_t> shape(t.dims().begin(), t.dims().end());
  out = HostTensor(dt, shape);
  int64_t n = out.numel();
  auto countError = [&](int64_t got) {
    return emitError(loc) << subject << " holds " << got
                          << " values, its shape " << shapeString(shape)
                          << " needs " << n;
  };
  if (t.data_location() == onnx::TensorProto::EXTERNAL) {
    ExternalRef ref;
    std::string filePath;
    if (failed(
            externalRef(t, modelDir, n * width,
                        std::string(dtypeName(dt)) + " " + shapeString(shape),
                        subject, loc, ref, filePath)))
      return failure();
    auto buf =
        llvm::MemoryBuffer::getFileSlice(filePath, n * width, ref.offset);
    if (!buf)
      return emitError(loc)
             << "cannot read external data of " << subject << " from '"
             << filePath << "': " << buf.getError().message();
    decodeRaw((*buf)->getBufferStart(), dt, out);
    return success();
  }
  if (t.has_raw_data()) {
    if (static_cast<int64_t>(t.raw_data().size()) != n * width)
      return countError(t.raw_data().size() / width);
    decodeRaw(t.raw_data().data(), dt, out);
    return success();
  }
  switch (dt) {
  case kFloat:
    if (t.float_data_size() != n)
      return countError(t.float_data_size());
    for (int64_t k = 0; k < n; ++k)
      out.f[k] = t.float_data(k);
    return success();
  case kDouble:
    if (t.double_data_size() != n)
      return countError(t.double_data_size());
    for (int64_t k = 0; k < n; ++k)
      out.f[k] = t.double_data(k);
    return success();
  case kInt64:
    if (t.int64_data_size() != n)
      return countError(t.int64_data_size());
    for (int64_t k = 0; k < n; ++k)
      out.i[k] = t.int64_data(k);
    return success();
  case kUInt32:
  case kUInt64:
    if (t.uint64_data_size() != n)
      return countError(t.uint64_data_size());
    for (int64_t k = 0; k < n; ++k)
      out.i[k] = static_cast<int64_t>(t.uint64_data(k));
    return success();
  default:
    // int32_data holds int32, int16, int8, uint16, uint8, bool, and the bit
    // patterns of float16 and bfloat16.
    if (t.int32_data_size() != n)
      return countError(t.int32_data_size());
    for (int64_t k = 0; k < n; ++k) {
      if (dt == kFloat16 || dt == kBFloat16)
        out.f[k] = halfBitsToDouble(t.int32_data(k), dt == kBFloat16);
      else
        out.setInt(k, t.int32_data(k));
    }
    return success();
  }
}

FailureOr<nn::ParameterOp>
Importer::declareParameter(const onnx::TensorProto &t, Location loc) {
  auto it = parameters.find(t.name());
  if (it != parameters.end())
    return it->second;
  if (t.name() == options.functionName)
    return emitError(loc) << "parameter '" << t.name()
                          << "' has the name of the imported function; "
                             "name the function otherwise with "
                             "--import-function-name";
  FailureOr<Type> elem = elementType(t.data_type());
  if (failed(elem))
    return emitError(loc) << "parameter '" << t.name()
                          << "': " << elementTypeError(t.data_type());
  SmallVector<int64_t> shape(t.dims().begin(), t.dims().end());
  if (std::string why = sizeProblem(shape, dtypeBytes(t.data_type()));
      !why.empty())
    return emitError(loc) << "parameter '" << t.name() << "': " << why;
  // A slice repeated along the leading axes is stored first: the parameter
  // is that slice (Trainability.cpp).
  auto fullType = RankedTensorType::get(shape, *elem);
  int64_t fullBytes = numElements(shape) * dtypeBytes(t.data_type());
  int repeated = trainability.at(t.name()).repeated;
  for (int k = 0; k < repeated; ++k)
    shape[k] = 1;
  auto type = RankedTensorType::get(shape, *elem);
  int64_t bytes = numElements(shape) * dtypeBytes(t.data_type());

  StringAttr file;
  IntegerAttr offset, length;
  auto i64 = [&](int64_t v) {
    return IntegerAttr::get(IntegerType::get(ctx, 64), v);
  };
  if (t.data_location() == onnx::TensorProto::EXTERNAL) {
    ExternalRef ref;
    std::string filePath, typeStr;
    llvm::raw_string_ostream(typeStr) << fullType;
    if (failed(externalRef(t, modelDir, fullBytes, typeStr,
                           "initializer '" + t.name() + "'", loc, ref,
                           filePath)))
      return failure();
    file = StringAttr::get(ctx, filePath);
    offset = i64(ref.offset);
    length = i64(bytes);
  } else if (auto raw = rawLocations.find(t.name());
             raw != rawLocations.end()) {
    if (static_cast<int64_t>(raw->second.length) != fullBytes)
      return emitError(loc)
             << "initializer '" << t.name() << "' holds " << raw->second.length
             << " bytes, " << fullType << " needs " << fullBytes;
    file = StringAttr::get(ctx, path);
    offset = i64(raw->second.offset);
    length = i64(bytes);
  } else if (!isText) {
    emitNote(loc, "parameter '" + t.name() +
                      "' is stored in typed fields, not raw bytes; it has "
                      "no storage reference");
  }
  auto param = nn::ParameterOp::create(
      moduleBuilder, loc, t.name(), type, file, offset, length, ArrayAttr(),
      DenseBoolArrayAttr(),
      StringAttr::get(ctx, trainability.at(t.name()).reason),
      // A row stored repeated decays as the matrix it was looked up in.
      repeated ? BoolAttr::get(ctx, nn::isMatrixShape(fullType.getShape()))
               : BoolAttr());
  parameters[t.name()] = param;
  return param;
}

const HostTensor *Importer::constantOf(ValueInfo &v, Location loc,
                                       bool &failedOut) {
  failedOut = false;
  if (v.constant)
    return v.constant.get();
  if (!v.initializer || isParameter(*v.initializer))
    return nullptr;
  HostTensor t;
  if (failed(readInitializer(*v.initializer, t, loc))) {
    failedOut = true;
    return nullptr;
  }
  v.constant = std::make_shared<const HostTensor>(std::move(t));
  return v.constant.get();
}

Value Importer::materializeConstant(const HostTensor &t, Location loc) {
  FailureOr<Type> elem = elementType(t.dtype);
  if (failed(elem)) {
    emitError(loc) << "a constant of " << elementTypeError(t.dtype);
    return nullptr;
  }
  auto type = RankedTensorType::get(t.shape, *elem);
  if (t.banded) {
    // One value per diagonal, expanded by nn.band (Banded.cpp).
    HostTensor diagonals = t;
    diagonals.banded = false;
    diagonals.shape = {
        static_cast<int64_t>(t.isFloat() ? t.f.size() : t.i.size())};
    Value d = materializeConstant(diagonals, loc);
    return d ? nn::BandOp::create(builder, loc, type, d).getResult() : d;
  }
  bool splat = true;
  for (int64_t k = 1, n = t.numel(); k < n && splat; ++k)
    splat = t.isFloat() ? t.f[k] == t.f[0] : t.i[k] == t.i[0];
  int64_t count = t.numel() == 0 ? 0 : (splat ? 1 : t.numel());
  DenseElementsAttr attr;
  switch (t.dtype) {
  case kFloat: {
    std::vector<float> v(t.f.begin(), t.f.begin() + count);
    attr = DenseElementsAttr::get(type, ArrayRef<float>(v));
    break;
  }
  case kFloat16:
  case kBFloat16: {
    std::vector<llvm::APFloat> v;
    for (int64_t k = 0; k < count; ++k) {
      llvm::APFloat f(t.f[k]);
      bool lost;
      f.convert(t.dtype == kFloat16 ? llvm::APFloat::IEEEhalf()
                                    : llvm::APFloat::BFloat(),
                llvm::APFloat::rmNearestTiesToEven, &lost);
      v.push_back(f);
    }
    attr = DenseElementsAttr::get(type, v);
    break;
  }
  case kInt64: {
    std::vector<int64_t> v(t.i.begin(), t.i.begin() + count);
    attr = DenseElementsAttr::get(type, ArrayRef<int64_t>(v));
    break;
  }
  case kInt32: {
    std::vector<int32_t> v(t.i.begin(), t.i.begin() + count);
    attr = DenseElementsAttr::get(type, ArrayRef<int32_t>(v));
    break;
  }
  case kBool: {
    SmallVector<bool> v;
    for (int64_t k = 0; k < count; ++k)
      v.push_back(t.i[k] != 0);
    attr = DenseElementsAttr::get(type, ArrayRef<bool>(v));
    break;
  }
  default:
    return nullptr;
  }
  return nn::ConstantOp::create(builder, loc, type, attr);
}

Value Importer::materialize(ValueInfo &v, Location loc) {
  if (v.value)
    return v.value;
  if (v.initializer && isParameter(*v.initializer)) {
    FailureOr<nn::ParameterOp> param = declareParameter(*v.initializer, loc);
    if (failed(param))
      return nullptr;
    auto stored = cast<RankedTensorType>(param->getParamType());
    v.value = nn::ParamOp::create(builder, loc, stored, param->getSymName());
    // A slice the file repeats along its leading axes.
    auto full = RankedTensorType::get(v.shape, stored.getElementType());
    if (full != stored)
      v.value = nn::BroadcastOp::create(builder, loc, full, v.value);
    return v.value;
  }
  bool failedRead;
  const HostTensor *c = constantOf(v, loc, failedRead);
  if (!c)
    return nullptr;
  v.value = materializeConstant(*c, loc);
  return v.value;
}

//===----------------------------------------------------------------------===//
// Inputs and outputs
//===----------------------------------------------------------------------===//

LogicalResult Importer::declareInputs() {
  const onnx::GraphProto &graph = model.graph();
  Location loc = FileLineColLoc::get(ctx, path, 0, 0);
  std::set<std::string> initNames;
  for (const auto &t : graph.initializer()) {
    for (int64_t d : t.dims())
      if (d < 0)
        return emitError(loc) << "initializer '" << t.name()
                              << "' has a negative dimension " << d;
    initNames.insert(t.name());
    ValueInfo info;
    info.dtype = t.data_type();
    info.shape.assign(t.dims().begin(), t.dims().end());
    info.initializer = &t;
    values[t.name()] = std::move(info);
  }

  std::vector<const onnx::ValueInfoProto *> inputs;
  std::vector<std::string> inputNames;
  for (const auto &in : graph.input())
    if (!initNames.count(in.name())) {
      inputs.push_back(&in);
      inputNames.push_back(in.name());
    }

  // Pinned shapes, and the dim_params they resolve.
  for (const auto &[name, shape] : options.inputShapes) {
    auto it = llvm::find_if(
        inputs, [&, &name = name](auto *in) { return in->name() == name; });
    if (it == inputs.end())
      return emitError(loc) << "--input-shape names '" << name
                            << "', which is not a graph input (inputs: "
                            << joinNames(inputNames) << ")";
    const auto &dims = (*it)->type().tensor_type().shape().dim();
    if ((*it)->type().tensor_type().has_shape() &&
        dims.size() != static_cast<int>(shape.size()))
      return emitError(loc) << "--input-shape gives " << shape.size()
                            << " dimensions for input '" << name << "' of rank "
                            << dims.size();
    for (int k = 0; k < dims.size(); ++k) {
      if (dims[k].has_dim_value() && dims[k].dim_value() != shape[k])
        return emitError(loc)
               << "--input-shape sets dimension " << k << " of input '" << name
               << "' to " << shape[k] << ", but the model fixes it to "
               << dims[k].dim_value();
      if (dims[k].has_dim_param()) {
        auto [pos, inserted] = dimValues.emplace(dims[k].dim_param(), shape[k]);
        if (!inserted && pos->second != shape[k])
          return emitError(loc) << "dimension '" << dims[k].dim_param()
                                << "' is pinned to both " << pos->second
                                << " and " << shape[k];
      }
    }
  }

  SmallVector<Type> argTypes;
  SmallVector<std::pair<const onnx::ValueInfoProto *, RankedTensorType>> args;
  std::vector<std::pair<const onnx::ValueInfoProto *, SmallVector<int64_t>>>
      folded;
  for (const onnx::ValueInfoProto *in : inputs) {
    const std::string &name = in->name();
    if (!in->type().has_tensor_type())
      return emitError(loc) << "graph input '" << name
                            << "' is not a tensor (sequences, maps and "
                               "optionals are not supported)";
    const auto &tt = in->type().tensor_type();
    auto pinned = options.inputShapes.find(name);
    SmallVector<int64_t> shape;
    if (pinned != options.inputShapes.end()) {
      shape.assign(pinned->second.begin(), pinned->second.end());
    } else if (!tt.has_shape()) {
      return emitError(loc) << "graph input '" << name
                            << "' has no shape; give one with "
                               "--input-shape="
                            << name << "=d0,d1,...";
    } else {
      std::string hint;
      for (int k = 0; k < tt.shape().dim_size(); ++k) {
        const auto &d = tt.shape().dim(k);
        hint += (k ? "," : "") +
                (d.has_dim_value()
                     ? std::to_string(d.dim_value())
                     : (d.has_dim_param() ? d.dim_param() : std::string("?")));
      }
      for (int k = 0; k < tt.shape().dim_size(); ++k) {
        const auto &d = tt.shape().dim(k);
        if (d.has_dim_value()) {
          if (d.dim_value() < 0)
            return emitError(loc)
                   << "graph input '" << name << "' has a negative dimension "
                   << d.dim_value();
          shape.push_back(d.dim_value());
          continue;
        }
        auto known =
            d.has_dim_param() ? dimValues.find(d.dim_param()) : dimValues.end();
        if (known == dimValues.end())
          return emitError(loc)
                 << "graph input '" << name << "' has dynamic dimension " << k
                 << (d.has_dim_param() ? " ('" + d.dim_param() + "')"
                                       : std::string())
                 << "; pin it with --input-shape=" << name << "=" << hint;
        shape.push_back(known->second);
      }
    }
    if (std::string why = sizeProblem(shape, dtypeBytes(tt.elem_type()));
        !why.empty())
      return emitError(loc)
             << "graph input '" << name << "' of shape " << shapeString(shape)
             << (pinned != options.inputShapes.end() ? " (from --input-shape)"
                                                     : "")
             << " is too large for the runtime: " << why;
    if (llvm::is_contained(options.foldInputs, name)) {
      folded.push_back({in, shape});
      continue;
    }
    FailureOr<Type> elem = elementType(tt.elem_type());
    if (failed(elem))
      return emitError(loc) << "graph input '" << name
                            << "': " << elementTypeError(tt.elem_type());
    auto type = RankedTensorType::get(shape, *elem);
    args.push_back({in, type});
    argTypes.push_back(type);
  }

  module = ModuleOp::create(loc);
  nn::NNDialect::SourceAttrHelper(ctx).setAttr(*module,
                                               StringAttr::get(ctx, path));
  OpBuilder funcBuilder = OpBuilder::atBlockEnd(module->getBody());
  func = func::FuncOp::create(funcBuilder, loc, options.functionName,
                              FunctionType::get(ctx, argTypes, {}));
  // Parameters are declared above the function, in order of first use.
  moduleBuilder.setInsertionPoint(func);
  Block *entry = func.addEntryBlock();
  builder.setInsertionPointToStart(entry);
  for (auto [k, arg] : llvm::enumerate(args)) {
    Value v = entry->getArgument(k);
    setValue(arg.first->name(), v, arg.first->type().tensor_type().elem_type());
    func.setArgAttr(k, nn::NNDialect::NameAttrHelper(ctx).getName(),
                    StringAttr::get(ctx, arg.first->name()));
  }

  // Inputs that training fixes: a packed batch attends everywhere, and its
  // positions count from zero in every row.
  for (auto &[in, shape] : folded) {
    HostTensor t(in->type().tensor_type().elem_type(), shape);
    StringRef name = in->name();
    StringRef what;
    if (name.contains("position")) {
      int64_t s = shape.empty() ? 1 : shape.back();
      for (int64_t k = 0, n = t.numel(); k < n; ++k)
        t.setInt(k, k % s);
      what = "0..S-1 in every row";
    } else {
      for (int64_t k = 0, n = t.numel(); k < n; ++k)
        t.setInt(k, 1);
      what = "all ones";
    }
    emitNote(loc, "input '" + name + "' " + shapeString(shape) +
                      " is folded to its training value (" + what +
                      "); --fold-inputs changes which inputs are folded");
    setConstant(name, std::move(t));
  }
  return success();
}

LogicalResult Importer::declareOutputs() {
  Location loc = FileLineColLoc::get(ctx, path, 0, 0);
  SmallVector<Value> results;
  std::vector<std::string> dropped;
  for (const auto &out : model.graph().output()) {
    if (!options.dropOutputs.empty() && dropRegex.match(out.name())) {
      dropped.push_back(out.name());
      continue;
    }
    ValueInfo *v = lookup(out.name(), loc);
    if (!v)
      return failure();
    Value value = materialize(*v, loc);
    if (!value)
      return emitError(loc)
             << "output '" << out.name() << "' cannot be materialized";
    // The model's own declaration of the output is a check on our shape
    // inference: every dimension it fixes (or names with a pinned
    // dim_param) must agree.
    if (out.type().tensor_type().has_shape()) {
      ArrayRef<int64_t> got =
          cast<RankedTensorType>(value.getType()).getShape();
      const auto &dims = out.type().tensor_type().shape().dim();
      bool mismatch = dims.size() != static_cast<int>(got.size());
      for (int k = 0; !mismatch && k < dims.size(); ++k) {
        int64_t want = -1;
        if (dims[k].has_dim_value())
          want = dims[k].dim_value();
        else if (dims[k].has_dim_param())
          if (auto it = dimValues.find(dims[k].dim_param());
              it != dimValues.end())
            want = it->second;
        mismatch = want >= 0 && want != got[k];
      }
      if (mismatch) {
        std::string declared;
        for (int k = 0; k < dims.size(); ++k)
          declared += (k ? ", " : "") +
                      (dims[k].has_dim_value()
                           ? std::to_string(dims[k].dim_value())
                           : (dims[k].has_dim_param() ? dims[k].dim_param()
                                                      : std::string("?")));
        return emitError(loc)
               << "output '" << out.name() << "' is declared [" << declared
               << "] but computes to " << shapeString(got);
      }
    }
    results.push_back(value);
  }
  if (results.empty())
    return emitError(loc) << "every graph output was dropped by "
                             "--drop-outputs ("
                          << joinNames(dropped) << ")";
  if (!dropped.empty())
    emitNote(loc, "dropped " + std::to_string(dropped.size()) +
                      (dropped.size() == 1 ? " output" : " outputs") +
                      " that training does not need: " + joinNames(dropped, 4) +
                      " (--drop-outputs)");
  func::ReturnOp::create(builder, loc, results);
  SmallVector<Type> resultTypes;
  for (Value v : results)
    resultTypes.push_back(v.getType());
  func.setFunctionType(
      FunctionType::get(ctx, func.getArgumentTypes(), resultTypes));

  // Ops whose results nothing uses: the K/V reshapes of present_key outputs
  // that were dropped, constants of skipped empty inputs. Parameters are
  // declared on use, so one that only dead ops read goes too.
  Block &body = func.getBody().front();
  for (Operation &op : llvm::make_early_inc_range(llvm::reverse(body)))
    if (isOpTriviallyDead(&op))
      op.erase();
  // One walk for all parameters: asking the symbol table per parameter
  // would walk the module once per parameter.
  llvm::StringSet<> used;
  func.walk([&](nn::ParamOp read) { used.insert(read.getName()); });
  for (auto &[name, param] : parameters)
    if (!used.contains(param.getSymName()))
      param.erase();
  return success();
}

//===----------------------------------------------------------------------===//
// Nodes
//===----------------------------------------------------------------------===//

LogicalResult Importer::importNode(const onnx::NodeProto &node, int64_t index) {
  Location loc = nodeLoc(node, index);
  std::string name = nodeName(node, index);
  StringRef op = node.op_type();
  auto unsupported = [&]() {
    auto diag = emitError(loc)
                << "unsupported ONNX op '" << op << "' (node '" << name
                << "', domain '"
                << (node.domain().empty() ? "ai.onnx" : node.domain())
                << "', opset " << opset << "); supported ops: ";
    llvm::interleaveComma(supportedOnnxOps(), diag);
    return diag;
  };
  if (!node.domain().empty() && node.domain() != "ai.onnx")
    return unsupported();
  if (node.output_size() == 0)
    return nodeError(loc, node, name) << "has no outputs";

  if (op == "Constant") {
    HostTensor t;
    if (const auto *a = findAttr(node, "value")) {
      if (failed(readInitializer(a->t(), t, loc,
                                 "the value of node '" + name + "'")))
        return failure();
    } else if (const auto *a = findAttr(node, "value_float")) {
      t = HostTensor(kFloat, {});
      t.f[0] = a->f();
    } else if (const auto *a = findAttr(node, "value_floats")) {
      t = HostTensor(kFloat, {static_cast<int64_t>(a->floats_size())});
      for (int k = 0; k < a->floats_size(); ++k)
        t.f[k] = a->floats(k);
    } else if (const auto *a = findAttr(node, "value_int")) {
      t = HostTensor::scalarInt(a->i());
    } else if (const auto *a = findAttr(node, "value_ints")) {
      t = HostTensor::vectorInt(
          SmallVector<int64_t>(a->ints().begin(), a->ints().end()));
    } else {
      return nodeError(loc, node, name)
             << "only tensor, float(s) and int(s) values are supported";
    }
    setConstant(node.output(0), std::move(t));
    return success();
  }

  // Shapes are static: Shape and Size fold whatever their input is.
  std::vector<ValueInfo *> ins;
  for (const std::string &name : node.input()) {
    // A sequence is no tensor value: SequenceAt's emitter reads it.
    if (name.empty() || (op == "SequenceAt" && sequences.count(name))) {
      ins.push_back(nullptr);
      continue;
    }
    ValueInfo *v = lookup(name, loc);
    if (!v)
      return failure();
    ins.push_back(v);
  }
  if (op == "Shape" && !ins.empty() && ins[0]) {
    int64_t rank = ins[0]->shape.size();
    int64_t start = attrInt(node, "start", 0), end = attrInt(node, "end", rank);
    start = std::clamp<int64_t>(start < 0 ? start + rank : start, 0, rank);
    end = std::clamp<int64_t>(end < 0 ? end + rank : end, start, rank);
    setConstant(
        node.output(0),
        HostTensor::vectorInt(
            ArrayRef<int64_t>(ins[0]->shape).slice(start, end - start)));
    return success();
  }
  if (op == "Size" && !ins.empty() && ins[0]) {
    setConstant(node.output(0),
                HostTensor::scalarInt(numElements(ins[0]->shape)));
    return success();
  }

  if (isFoldableOp(op)) {
    std::vector<const HostTensor *> consts;
    bool allConst = true;
    for (ValueInfo *v : ins) {
      if (!v) {
        consts.push_back(nullptr);
        continue;
      }
      bool failedRead;
      const HostTensor *c = constantOf(*v, loc, failedRead);
      if (failedRead)
        return failure();
      if (!c) {
        allConst = false;
        break;
      }
      consts.push_back(c);
    }
    HostTensor attrValue;
    if (allConst && op == "ConstantOfShape") {
      if (const auto *a = findAttr(node, "value")) {
        if (failed(readInitializer(a->t(), attrValue, loc,
                                   "the value of node '" + name + "'")))
          return failure();
        consts.resize(1);
        consts.push_back(&attrValue);
      }
    }
    if (allConst) {
      FoldResult r = foldNode(node, consts, opset);
      if (!r.ok())
        return nodeError(loc, node, name) << r.error;
      for (const HostTensor &t : r.outputs)
        foldedValues += int64_t(t.f.size() + t.i.size());
      if (foldedValues > kMaxFoldedElements)
        return nodeError(loc, node, name)
               << "the constants computed at import would hold "
               << foldedValues << " values together, over the "
               << kMaxFoldedElements << " that can be";
      for (size_t k = 0;
           k < r.outputs.size() && k < static_cast<size_t>(node.output_size());
           ++k)
        setConstant(node.output(k), std::move(r.outputs[k]));
      return success();
    }
  }

  if (!NodeEmitter::isEmitted(op)) {
    if (isFoldableOp(op))
      return nodeError(loc, node, name)
             << "only supported on inputs known at compile time, but an "
                "input is computed at run time";
    return unsupported();
  }
  // The emitters check what they need to compute result shapes; the nn
  // verifiers check the rest (head counts, contracting dimensions, rotary
  // table shapes). Verify this node's ops now, so that an invalid model is
  // reported at its node rather than as an internal error at the end.
  Block *block = builder.getInsertionBlock();
  Operation *last = block->empty() ? nullptr : &block->back();
  if (failed(NodeEmitter(*this, node, name, loc).emit()))
    return failure();
  auto first = last ? std::next(last->getIterator()) : block->begin();
  for (Operation &created : llvm::make_range(first, block->end())) {
    if (failed(mlir::verify(&created, /*verifyRecursively=*/false)))
      return nodeError(loc, node, name)
             << "its inputs are not valid for the '" << created.getName()
             << "' op it imports to";
    for (Type t : created.getResultTypes())
      if (std::string why = sizeProblem(t); !why.empty())
        return nodeError(loc, node, name)
               << "its result "
               << shapeString(cast<RankedTensorType>(t).getShape())
               << " is too large for the runtime: " << why;
  }
  return success();
}

OwningOpRef<ModuleOp> Importer::run() {
  // Malformed options: an invalid regex would silently match nothing.
  Location fileLoc = FileLineColLoc::get(ctx, path, 0, 0);
  if (options.functionName.empty()) {
    emitError(fileLoc) << "the imported function needs a name "
                          "(--import-function-name is empty)";
    return nullptr;
  }
  for (auto [regex, flag, pattern] :
       {std::tuple<llvm::Regex *, StringRef, StringRef>{
            &dropRegex, "--drop-outputs", options.dropOutputs},
        {&frozenRegex, "--frozen-initializers", options.frozenInitializers},
        {&trainableRegex, "--trainable-initializers",
         options.trainableInitializers}}) {
    std::string why;
    if (!pattern.empty() && !regex->isValid(why)) {
      emitError(fileLoc) << flag << "='" << pattern
                         << "' is not a valid regex: " << why;
      return nullptr;
    }
  }
  try {
    if (failed(load()) || failed(declareInputs()) || failed(decideTrainable()))
      return nullptr;
    int64_t index = 0;
    for (const auto &node : model.graph().node()) {
      try {
        if (failed(importNode(node, index)))
          return nullptr;
      } catch (const std::exception &e) {
        nodeError(nodeLoc(node, index), node, nodeName(node, index))
            << e.what();
        return nullptr;
      }
      ++index;
    }
    if (failed(declareOutputs()))
      return nullptr;
    recordFrozen();
  } catch (const std::exception &e) {
    emitError(FileLineColLoc::get(ctx, path, 0, 0))
        << "failed to import: " << e.what();
    return nullptr;
  }
  if (failed(verify(*module))) {
    emitError(FileLineColLoc::get(ctx, path, 0, 0))
        << "internal error: the imported IR does not verify (please report "
           "this with the model)";
    return nullptr;
  }
  return std::move(module);
}

OwningOpRef<ModuleOp>
mlir::weipipe::importOnnxFile(StringRef path, MLIRContext *context,
                              const OnnxImportOptions &options) {
  context->loadDialect<func::FuncDialect, nn::NNDialect>();
  Importer importer(context, path, options);
  return importer.run();
}
