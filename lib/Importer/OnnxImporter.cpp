#include "weipipe/Importer/OnnxImporter.h"
using namespace mlir;
bool mlir::weipipe::isOnnxFile(llvm::StringRef path) {
  return path.ends_with(".onnx") || path.ends_with(".onnxtext");
}
llvm::ArrayRef<llvm::StringRef> mlir::weipipe::supportedOnnxOps() { return {}; }
OwningOpRef<ModuleOp> mlir::weipipe::importOnnxFile(llvm::StringRef, MLIRContext *, const OnnxImportOptions &) { return {}; }
