//===- weipipe-opt.cpp - the weipipe compiler driver ----------------------===//
//
// Part of weipipe. An mlir-opt for weipipe IR that also accepts ONNX models:
// an input ending in `.onnx` or `.onnxtext` is imported into the `nn`
// dialect first, then every pass and option of mlir-opt applies as usual.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Importer/OnnxImporter.h"
#include "weipipe/InitAllDialects.h"
#include "weipipe/Transforms/Passes.h"

#include "mlir/Bytecode/BytecodeWriter.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

using namespace mlir;

namespace {
llvm::cl::OptionCategory importCategory(
    "ONNX import options",
    "Apply when the input is an ONNX model (.onnx binary protobuf or "
    ".onnxtext text format)");

llvm::cl::list<std::string> inputShapes(
    "input-shape",
    llvm::cl::desc("Static shape for a graph input, replacing its dynamic "
                   "dimensions: --input-shape=input_ids=2,128. Repeat the "
                   "flag for several inputs"),
    llvm::cl::value_desc("name=d0,d1,..."), llvm::cl::cat(importCategory));

llvm::cl::opt<std::string> foldInputs(
    "fold-inputs",
    llvm::cl::desc("Comma-separated graph inputs to replace by their training "
                   "values: attention_mask becomes all ones (packed batches), "
                   "position_ids becomes 0..S-1. Empty keeps every input"),
    llvm::cl::init("attention_mask,position_ids"),
    llvm::cl::cat(importCategory));

llvm::cl::opt<std::string> dropOutputs(
    "drop-outputs",
    llvm::cl::desc("Regex of graph outputs that training does not need "
                   "(key/value caches); matching outputs are dropped with a "
                   "note. Empty keeps every output"),
    llvm::cl::init(mlir::weipipe::OnnxImportOptions().dropOutputs),
    llvm::cl::cat(importCategory));

llvm::cl::opt<std::string> frozenInitializers(
    "frozen-initializers",
    llvm::cl::desc("Regex of floating-point initializers that are constant "
                   "buffers (rotary frequencies), not trainable parameters"),
    llvm::cl::init(mlir::weipipe::OnnxImportOptions().frozenInitializers),
    llvm::cl::cat(importCategory));

llvm::cl::opt<std::string>
    functionName("import-function-name",
                 llvm::cl::desc("Name of the function the ONNX graph becomes"),
                 llvm::cl::init("main"), llvm::cl::cat(importCategory));

/// Turns the import flags into options; reports malformed flags.
std::optional<weipipe::OnnxImportOptions> importOptionsFromCL() {
  weipipe::OnnxImportOptions options;
  for (const std::string &spec : inputShapes) {
    auto [name, dims] = llvm::StringRef(spec).split('=');
    if (name.empty() || dims.empty()) {
      llvm::WithColor::error(llvm::errs(), "weipipe-opt")
          << "--input-shape='" << spec << "' must be name=d0,d1,...\n";
      return std::nullopt;
    }
    llvm::SmallVector<int64_t> shape;
    llvm::SmallVector<llvm::StringRef> parts;
    dims.split(parts, ',');
    for (llvm::StringRef p : parts) {
      int64_t d;
      if (p.trim().getAsInteger(10, d) || d < 0) {
        llvm::WithColor::error(llvm::errs(), "weipipe-opt")
            << "--input-shape='" << spec << "': '" << p
            << "' is not a non-negative dimension\n";
        return std::nullopt;
      }
      shape.push_back(d);
    }
    options.inputShapes[name.str()] = shape;
  }
  options.foldInputs.clear();
  llvm::SmallVector<llvm::StringRef> names;
  llvm::StringRef(foldInputs).split(names, ',', -1, /*KeepEmpty=*/false);
  for (llvm::StringRef n : names)
    options.foldInputs.push_back(n.trim().str());
  options.dropOutputs = dropOutputs;
  options.frozenInitializers = frozenInitializers;
  options.functionName = functionName;
  return options;
}
} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM y(argc, argv);
  // libLLVM.so registers Polly's ~100 options; they say nothing about this
  // tool and bury the import options in --help.
  for (auto &entry : llvm::cl::getRegisteredOptions())
    if (entry.first.starts_with("polly"))
      entry.second->setHiddenFlag(llvm::cl::ReallyHidden);
  registerTransformsPasses();
  weipipe::registerWeiPipePasses();
  DialectRegistry registry;
  weipipe::registerAllDialects(registry);

  auto [inputFilename, outputFilename] =
      registerAndParseCLIOptions(argc, argv,
                                 "weipipe compiler driver\n\n"
                                 "  weipipe-opt model.onnx [options]\n"
                                 "  weipipe-opt input.mlir [options]\n",
                                 registry);
  MlirOptMainConfig config = MlirOptMainConfig::createFromCLOptions();

  std::unique_ptr<llvm::MemoryBuffer> input;
  std::string errorMessage;
  if (weipipe::isOnnxFile(inputFilename)) {
    auto options = importOptionsFromCL();
    if (!options)
      return 1;
    MLIRContext context(registry);
    context.loadAllAvailableDialects();
    // Import diagnostics read "model.onnx: error: node 'x' (Op): ...": ONNX
    // has no line numbers to point at.
    ScopedDiagnosticHandler handler(&context, [](Diagnostic &diag) {
      auto print = [](Diagnostic &d) {
        std::string file;
        d.getLocation()->walk([&](Location l) {
          if (auto f = dyn_cast<FileLineColLoc>(l))
            file = f.getFilename().str();
          return file.empty() ? WalkResult::advance() : WalkResult::interrupt();
        });
        llvm::raw_ostream &os = llvm::errs();
        if (!file.empty())
          os << file << ": ";
        switch (d.getSeverity()) {
        case DiagnosticSeverity::Error:
          llvm::WithColor(os, llvm::HighlightColor::Error) << "error: ";
          break;
        case DiagnosticSeverity::Warning:
          llvm::WithColor(os, llvm::HighlightColor::Warning) << "warning: ";
          break;
        case DiagnosticSeverity::Note:
          llvm::WithColor(os, llvm::HighlightColor::Note) << "note: ";
          break;
        case DiagnosticSeverity::Remark:
          llvm::WithColor(os, llvm::HighlightColor::Remark) << "remark: ";
          break;
        }
        os << d.str() << "\n";
      };
      print(diag);
      for (Diagnostic &note : diag.getNotes())
        print(note);
      return success();
    });
    OwningOpRef<ModuleOp> module =
        weipipe::importOnnxFile(inputFilename, &context, *options);
    if (!module)
      return 1;
    // Hand the module to MlirOptMain as bytecode: it keeps locations and
    // parses fast, and every mlir-opt option then works on ONNX input.
    std::string bytes;
    llvm::raw_string_ostream os(bytes);
    if (failed(writeBytecodeToFile(*module, os)))
      return 1;
    input = llvm::MemoryBuffer::getMemBufferCopy(bytes, inputFilename);
  } else {
    input = openInputFile(inputFilename, &errorMessage);
    if (!input) {
      llvm::WithColor::error(llvm::errs(), "weipipe-opt")
          << errorMessage << "\n";
      return 1;
    }
  }

  auto output = openOutputFile(outputFilename, &errorMessage);
  if (!output) {
    llvm::WithColor::error(llvm::errs(), "weipipe-opt") << errorMessage << "\n";
    return 1;
  }
  if (failed(MlirOptMain(output->os(), std::move(input), registry, config)))
    return 1;
  output->keep();
  return 0;
}
