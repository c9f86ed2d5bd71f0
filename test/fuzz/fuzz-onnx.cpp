//===- fuzz-onnx.cpp - libFuzzer target: the ONNX importer ----------------===//
//
// Part of weipipe's tests. Builds two targets: fuzz-onnx (the bytes are a
// binary protobuf ModelProto, model.onnx) and fuzz-onnx-text
// (WEIPIPE_FUZZ_ONNX_TEXT: ONNX text, model.onnxtext). The bytes are written
// to a temporary directory of their own (external data resolves there) and
// imported with importOnnxFile into a fresh MLIRContext; the importer
// verifies what it built. A model that names `input_ids` gets it pinned to
// [2, 8], as the seeds (exported test models) need. A rejected model must
// come with an error diagnostic, and no diagnostic may be an internal error.
//
//===----------------------------------------------------------------------===//

#include "FuzzSupport.h"
#include "weipipe/Importer/OnnxImporter.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>

namespace {

#ifdef WEIPIPE_FUZZ_ONNX_TEXT
constexpr const char *kName = "/model.onnxtext";
constexpr const char *kTarget = "fuzz-onnx-text";
#else
constexpr const char *kName = "/model.onnx";
constexpr const char *kTarget = "fuzz-onnx";
#endif

std::string dir;

using weipipe::fuzz::check;

} // namespace

/// LLVM's BumpPtrAllocator poisons its fresh slabs when compiled with ASan
/// and unpoisons what it hands out; the MLIR libraries are not instrumented,
/// so a slab poisoned by an instrumented copy of the template and filled by
/// an uninstrumented one reads as use-after-poison. No user poisoning, then.
extern "C" const char *__asan_default_options() {
  return "allow_user_poisoning=0";
}

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  dir = weipipe::fuzz::makeTempDir(kTarget);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string path = dir + kName;
  FILE *f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(data, 1, size, f) != size || std::fclose(f) != 0) {
    std::perror(path.c_str());
    std::abort();
  }

  mlir::weipipe::OnnxImportOptions options;
  if (memmem(data, size, "input_ids", 9))
    options.inputShapes["input_ids"] = {2, 8};

  // A fresh context per input: types and attributes are never freed, so a
  // shared one would grow without bound.
  mlir::MLIRContext context(mlir::MLIRContext::Threading::DISABLED);
  bool errors = false, internal = false;
  std::string log; // the first diagnostics, shown when a check fails
  mlir::ScopedDiagnosticHandler handler(&context, [&](mlir::Diagnostic &d) {
    std::string text = d.str();
    if (log.size() < 4096)
      log += text + "\n";
    if (d.getSeverity() == mlir::DiagnosticSeverity::Error) {
      errors = true;
      // At the start: a message may quote the input, which may say anything.
      internal |= text.rfind("internal error", 0) == 0;
    }
    return mlir::success();
  });
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::weipipe::importOnnxFile(path, &context, options);
  if (internal)
    std::fprintf(stderr, "%s", log.c_str());
  check(!internal, "the importer reported an internal error");
  if (!module) {
    check(errors, "the importer failed without an error");
    return 0;
  }
  check(mlir::succeeded(mlir::verify(*module)), "the import does not verify");
  return 0;
}
