//===- OnnxImporter.h - ONNX to the nn dialect ------------------*- C++ -*-===//
//
// Part of weipipe. Imports an ONNX model (binary protobuf or the ONNX text
// format) into a `func.func` over `nn` ops with static shapes. Shape
// subgraphs fold to constants; parameters are `nn.parameter` symbols that
// reference their bytes by file and offset. No protobuf or ONNX type appears
// in this header: the importer is built with exceptions and RTTI, the rest of
// the compiler is not.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_IMPORTER_ONNXIMPORTER_H
#define WEIPIPE_IMPORTER_ONNXIMPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"

#include <map>
#include <string>
#include <vector>

namespace mlir::weipipe {

struct OnnxImportOptions {
  /// Static shapes for graph inputs, replacing dynamic dimensions
  /// (`--input-shape name=d0,d1,...`).
  std::map<std::string, llvm::SmallVector<int64_t>> inputShapes;
  /// Inputs that training fixes, replaced by constants: `attention_mask`
  /// becomes all ones (packed batches) and `position_ids` becomes 0..S-1.
  std::vector<std::string> foldInputs = {"attention_mask", "position_ids"};
  /// Outputs whose name matches this regex are dropped (key/value caches
  /// exported for inference).
  std::string dropOutputs = "^(present|past_key_values)";
  /// Floating-point initializers whose name matches this regex are constant
  /// buffers, not trainable parameters (rotary frequencies and caches). A
  /// flag overrides the evidence in the file (docs/architecture.md).
  std::string frozenInitializers = kDefaultFrozenInitializers;
  static constexpr const char *kDefaultFrozenInitializers =
      "(^|[._/])(inv_freq|cos_cached|sin_cached|masked_bias)$";
  /// Initializers whose name matches this regex are trained whatever the
  /// evidence says (empty: none). Wins over `frozenInitializers`.
  std::string trainableInitializers;
  /// Name of the imported function.
  std::string functionName = "main";
};

/// The model property (ModelProto.metadata_props) in which weipipe's export
/// helper records the trained initializers as a JSON object {initializer:
/// PyTorch parameter name}. When present, the importer trains exactly these.
/// python/weipipe/models/export.py writes it under the same key.
inline constexpr const char *kTrainableMetadataKey = "weipipe.trainable";

/// The ONNX operator types the importer accepts (default domain).
llvm::ArrayRef<llvm::StringRef> supportedOnnxOps();

/// Imports the model at `path` (`.onnx` binary or `.onnxtext`). On failure,
/// emits diagnostics on `context` and returns null.
OwningOpRef<ModuleOp> importOnnxFile(llvm::StringRef path, MLIRContext *context,
                                     const OnnxImportOptions &options);

/// True when `path` names an ONNX model by its extension.
bool isOnnxFile(llvm::StringRef path);

} // namespace mlir::weipipe

#endif // WEIPIPE_IMPORTER_ONNXIMPORTER_H
