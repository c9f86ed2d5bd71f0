//===- weipipe-opt.cpp - the weipipe compiler driver ----------------------===//
//
// Part of weipipe. An mlir-opt for weipipe IR that also accepts ONNX models:
// an input ending in `.onnx` or `.onnxtext` is imported into the `nn`
// dialect first, then every pass and option of mlir-opt applies as usual.
//
//===----------------------------------------------------------------------===//

#include "AutoSchedule.h"
#include "weipipe/Dialect/NN/NNOps.h"
#include "weipipe/Dialect/NN/Transforms/Passes.h"
#include "weipipe/Dialect/Pipe/Transforms/Passes.h"
#include "weipipe/Importer/OnnxImporter.h"
#include "weipipe/InitAllDialects.h"
#include "weipipe/Simulate/Calibrate.h"
#include "weipipe/Simulate/Predict.h"
#include "weipipe/Target/ArtifactWriter.h"
#include "weipipe/Target/PipelineWriter.h"
#include "weipipe/Target/TrainingSummary.h"
#include "weipipe/runtime/Artifact.h"
#include "weipipe/runtime/OutputFile.h"
#include "weipipe/runtime/RankMemory.h"

#include "mlir/Bytecode/BytecodeWriter.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
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
                   "buffers, not trainable parameters, whatever the evidence "
                   "in the file says (rotary frequencies by default)"),
    llvm::cl::init(mlir::weipipe::OnnxImportOptions().frozenInitializers),
    llvm::cl::cat(importCategory));

llvm::cl::opt<std::string> trainableInitializers(
    "trainable-initializers",
    llvm::cl::desc("Regex of initializers to train whatever the evidence in "
                   "the file says (wins over --frozen-initializers' default); "
                   "the compile summary lists what is trained and why"),
    llvm::cl::init(""), llvm::cl::cat(importCategory));

llvm::cl::opt<std::string>
    functionName("import-function-name",
                 llvm::cl::desc("Name of the function the ONNX graph becomes"),
                 llvm::cl::init("main"), llvm::cl::cat(importCategory));

llvm::cl::OptionCategory trainCategory(
    "Training compilation options",
    "Apply with --emit=artifact: compile the model for training and write a "
    ".wpp artifact for weipipe-run");

enum class EmitKind { MLIR, Artifact };
llvm::cl::opt<EmitKind> emitKind(
    "emit", llvm::cl::desc("What to write to -o"),
    llvm::cl::values(
        clEnumValN(EmitKind::MLIR, "mlir",
                   "the IR after the given passes (default, as mlir-opt)"),
        clEnumValN(EmitKind::Artifact, "artifact",
                   "a training artifact (.wpp): ties parameters, fuses, "
                   "appends the loss, differentiates, plans memory")),
    llvm::cl::init(EmitKind::MLIR), llvm::cl::cat(trainCategory));

llvm::cl::opt<unsigned> microbatches(
    "microbatches",
    llvm::cl::desc("Micro-batches per optimizer step (gradient accumulation); "
                   "each is one [batch, seq] input"),
    llvm::cl::init(1), llvm::cl::cat(trainCategory));

llvm::cl::opt<std::string>
    backwardKind("backward",
                 llvm::cl::desc("fused: one backward per micro-batch; split: "
                                "backward-input (B) then backward-weight (W)"),
                 llvm::cl::init("fused"), llvm::cl::cat(trainCategory));

llvm::cl::opt<bool> recomputeForward(
    "recompute",
    llvm::cl::desc("Activation checkpointing: the backward recomputes the "
                   "forward instead of keeping its activations"),
    llvm::cl::init(false), llvm::cl::cat(trainCategory));

llvm::cl::opt<bool> keepTiesSeparate(
    "keep-ties-separate",
    llvm::cl::desc("Train parameters with equal stored values (a tied "
                   "embedding and head) as separate parameters"),
    llvm::cl::init(false), llvm::cl::cat(trainCategory));

llvm::cl::opt<bool> noFuse("no-fuse",
                           llvm::cl::desc("Train the primitive ops as "
                                          "imported (slower; for testing)"),
                           llvm::cl::init(false), llvm::cl::cat(trainCategory));

llvm::cl::OptionCategory pipelineCategory(
    "Pipeline options",
    "Apply with --emit=artifact: compile for several ranks with a schedule");

llvm::cl::opt<unsigned>
    ranks("ranks",
          llvm::cl::desc("Pipeline ranks P (1: single-rank training unless "
                         "--schedule is given)"),
          llvm::cl::init(1), llvm::cl::cat(pipelineCategory));

llvm::cl::opt<std::string> scheduleName(
    "schedule",
    llvm::cl::desc("Pipeline schedule: single, gpipe, 1f1b, interleaved-1f1b, "
                   "zb-h1, fsdp, weipipe-naive, weipipe-interleave, "
                   "weipipe-zb1, weipipe-zb2, tawpipe (default with --ranks "
                   "> 1: weipipe-interleave); auto: compile and simulate "
                   "every schedule, chunks per rank, micro-batch count and "
                   "size, recompute and --ends on --machine and take the "
                   "fastest plan that fits in memory"),
    llvm::cl::init(""), llvm::cl::cat(pipelineCategory));

llvm::cl::opt<unsigned> chunksPerRank(
    "chunks-per-rank",
    llvm::cl::desc("Model chunks per rank for interleaved-1f1b (v)"),
    llvm::cl::init(1), llvm::cl::cat(pipelineCategory));

llvm::cl::opt<unsigned>
    nodeSize("node-size",
             llvm::cl::desc("Ranks per node for tawpipe and fsdp (must divide "
                            "--ranks; fsdp relays its gathers through a rank "
                            "of each node)"),
             llvm::cl::init(1), llvm::cl::cat(pipelineCategory));

llvm::cl::opt<std::string> ends(
    "ends",
    llvm::cl::desc("Embedding, final norm and head: replicated (every rank "
                   "runs them for its micro-batches; gradients summed over "
                   "ranks) or owned (inside the first and the last chunk)"),
    llvm::cl::init("replicated"), llvm::cl::cat(pipelineCategory));

llvm::cl::opt<std::string> memoryLimit(
    "memory-limit",
    llvm::cl::desc("Refuse a plan in which a rank (the only one, without "
                   "--ranks) needs more than this many bytes (suffixes K, M, "
                   "G, T: powers of 1024); nothing is written"),
    llvm::cl::value_desc("BYTES"), llvm::cl::init(""),
    llvm::cl::cat(pipelineCategory));

llvm::cl::opt<bool> printSchedule(
    "print-schedule",
    llvm::cl::desc("Print every rank's program as a table of turns"),
    llvm::cl::init(false), llvm::cl::cat(pipelineCategory));

llvm::cl::opt<std::string> exportSchedule(
    "export-schedule",
    llvm::cl::desc("Write the schedule in torch.distributed.pipelining's CSV "
                   "form (one row per rank: 0F1, 1I0, 2W3, 1B0)"),
    llvm::cl::value_desc("FILE.csv"), llvm::cl::init(""),
    llvm::cl::cat(pipelineCategory));

llvm::cl::OptionCategory simulateCategory(
    "Simulation options",
    "Apply with --emit=artifact: predict an iteration's time on a machine "
    "model (machines/README.md)");

llvm::cl::opt<std::string> simulateMachine(
    "simulate",
    llvm::cl::desc("Simulate one iteration of the compiled per-rank programs "
                   "on a machine model and print the report (iteration time, "
                   "tokens/s per device, bubble ratio, bytes per link, peak "
                   "memory); a shipped model's name (a800-nvlink-10gbe, "
                   "a800-pcie-10gbe, a800-nvlink-8, h100-nvlink-ib, "
                   "cpu-local) or a file's path. -o is then optional"),
    llvm::cl::value_desc("MACHINE"), llvm::cl::init(""),
    llvm::cl::cat(simulateCategory));

llvm::cl::opt<std::string> machineName(
    "machine",
    llvm::cl::desc("With --schedule=auto: the machine model to plan for (a "
                   "shipped name or a file; default: --simulate's)"),
    llvm::cl::value_desc("MACHINE"), llvm::cl::init(""),
    llvm::cl::cat(simulateCategory));

llvm::cl::opt<std::string> autoSchedules(
    "auto-schedules",
    llvm::cl::desc("With --schedule=auto: the schedules to search, "
                   "comma-separated (default: all)"),
    llvm::cl::init(""), llvm::cl::cat(simulateCategory));

llvm::cl::opt<std::string> simulateTrace(
    "simulate-trace",
    llvm::cl::desc("With --simulate: write the simulated timeline as a Chrome "
                   "trace (open in Perfetto or chrome://tracing)"),
    llvm::cl::value_desc("FILE.json"), llvm::cl::init(""),
    llvm::cl::cat(simulateCategory));

llvm::cl::opt<std::string> calibrateFrom(
    "calibrate-from",
    llvm::cl::desc("With --simulate: first fit the machine model to a trace "
                   "of this artifact measured on the machine (weipipe-run "
                   "--trace), then simulate with the fitted model"),
    llvm::cl::value_desc("TRACE.json"), llvm::cl::init(""),
    llvm::cl::cat(simulateCategory));

llvm::cl::opt<std::string> calibratedMachine(
    "calibrated-machine",
    llvm::cl::desc("With --calibrate-from: write the fitted machine model "
                   "(a machine file for --simulate)"),
    llvm::cl::value_desc("FILE.json"), llvm::cl::init(""),
    llvm::cl::cat(simulateCategory));

llvm::cl::opt<std::string> simulateStorage(
    "simulate-storage",
    llvm::cl::desc("With --simulate or --schedule=auto: fp32 (default: what "
                   "weipipe's runtime allocates and sends) or mixed (16-bit "
                   "activations, slots and messages next to fp32 masters, "
                   "gradients and AdamW state, as Megatron-LM, DeepSpeed "
                   "and the WeiPipe paper train)"),
    llvm::cl::init(""), llvm::cl::cat(simulateCategory));

llvm::cl::opt<std::string> simulateSends(
    "simulate-sends",
    llvm::cl::desc("With --simulate: the links' own behaviour (default), or "
                   "blocking: every sender waits until its message has "
                   "arrived, as the blocking point-to-point of Megatron-LM's "
                   "pipeline schedules does (every link `synchronous`)"),
    llvm::cl::init(""), llvm::cl::cat(simulateCategory));

llvm::cl::opt<unsigned> simulateLayers(
    "simulate-layers",
    llvm::cl::desc("With --simulate: price a model of N layers like the "
                   "input's (for models too big to export whole, such as "
                   "the paper's): the input is compiled one chunk per "
                   "layer, and each of the schedule's chunks runs and holds "
                   "N / chunks copies of its first layer; nothing is "
                   "written (no -o)"),
    llvm::cl::value_desc("N"), llvm::cl::init(0),
    llvm::cl::cat(simulateCategory));

llvm::cl::opt<std::string> simulatePrecision(
    "simulate-precision",
    llvm::cl::desc("With --simulate: bf16 or fp32 compute (default: the "
                   "machine's default_precision)"),
    llvm::cl::init(""), llvm::cl::cat(simulateCategory));

std::string formatBytes(uint64_t b) {
  return ::weipipe::simulate::formatBytes(double(b));
}

/// The per-rank memory plan as a table.
void printMemoryTable(const std::vector<::weipipe::rt::RankMemoryPlan> &plans,
                      llvm::raw_ostream &os) {
  os << llvm::formatv("    {0,4} {1,11} {2,11} {3,11} {4,11} {5,11} {6,11} "
                      "{7}\n",
                      "rank", "weights", "gradients", "optimizer", "ring/slots",
                      "activations", "peak", "peak bytes");
  for (size_t r = 0; r < plans.size(); ++r) {
    const auto &p = plans[r];
    os << llvm::formatv("    {0,4} {1,11} {2,11} {3,11} {4,11} {5,11} {6,11} "
                        "{7}\n",
                        r, formatBytes(p.parameterBytes + p.constantBytes),
                        formatBytes(p.gradientBytes),
                        formatBytes(p.optimizerBytes), formatBytes(p.slotBytes),
                        formatBytes(p.activationBytes + p.scratchBytes +
                                    p.kernelScratchBytes),
                        formatBytes(p.total()), p.total());
  }
}

/// Whether `out` and `in` name the same file however spelled (links, "./",
/// symlinks, dangling ones too): rt::fileIdentity, as weipipe-run compares
/// its outputs.
bool sameFile(StringRef out, StringRef in) {
  const std::string a = ::weipipe::rt::fileIdentity(out.str());
  return !a.empty() && a == ::weipipe::rt::fileIdentity(in.str());
}

/// The files a module's parameters load from (nn.parameter storage).
std::vector<std::string> parameterFiles(ModuleOp module) {
  std::vector<std::string> files;
  module.walk([&](mlir::weipipe::nn::ParameterOp p) {
    if (auto f = p.getFileAttr())
      files.push_back(f.str());
  });
  return files;
}

/// The storage files an MLIR text input names (`at "FILE"[...]` of
/// nn.parameter), found without parsing it: MlirOptMain parses it later, and
/// the input may be one that must fail to parse (-verify-diagnostics).
std::vector<std::string> parameterFilesInText(StringRef text) {
  std::vector<std::string> files;
  for (size_t at = text.find("at \""); at != StringRef::npos;
       at = text.find("at \"", at + 4)) {
    const size_t end = text.find('"', at + 4);
    if (end != StringRef::npos && text.substr(end + 1).starts_with("["))
      files.push_back(text.slice(at + 4, end).str());
  }
  return files;
}

/// Refuses writing `flag` `out` when it is one of the compile's inputs (the
/// model, or a file its parameters load from: the only copies of the
/// weights) or another of its outputs.
bool refuseOverwriting(StringRef flag, StringRef out, StringRef source,
                       ArrayRef<std::string> weights,
                       ArrayRef<std::pair<StringRef, StringRef>> outputs = {}) {
  auto refuse = [&](StringRef in, StringRef what) {
    llvm::WithColor::error(llvm::errs(), "weipipe-opt")
        << flag << " " << out << " is " << in << ", " << what
        << "; it would be overwritten\n";
    return true;
  };
  if (out == "-") // standard output
    return false;
  if (source != "-" && sameFile(out, source))
    return refuse(source, "the model this compile reads");
  for (const std::string &w : weights)
    if (sameFile(out, w))
      return refuse(w, "a file the model's parameters load from");
  for (auto [otherFlag, other] : outputs)
    if (sameFile(out, other))
      return refuse(other, ("also the output of " + otherFlag).str());
  return false;
}

std::vector<std::string>
artifactParameterFiles(const ::weipipe::rt::Artifact &a) {
  std::vector<std::string> files;
  for (const auto &p : a.params)
    files.push_back(p.storage.file);
  return files;
}

/// Storage paths inside the artifact's own folder become relative to it (the
/// runtime resolves relative paths against the artifact's folder), so that
/// the folder can be moved, or carried to another machine, whole; a model
/// elsewhere keeps its absolute path.
void relativizeStorage(::weipipe::rt::Artifact &a, StringRef out) {
  if (out == "-")
    return;
  SmallString<256> dir(out);
  if (llvm::sys::fs::make_absolute(dir))
    return;
  llvm::sys::path::remove_filename(dir);
  llvm::sys::path::remove_dots(dir, /*remove_dot_dot=*/true);
  dir += llvm::sys::path::get_separator();
  for (auto &p : a.params) {
    SmallString<256> file(p.storage.file);
    llvm::sys::path::remove_dots(file, /*remove_dot_dot=*/true);
    if (StringRef(file).starts_with(dir))
      p.storage.file = StringRef(file).drop_front(dir.size()).str();
  }
}

/// Writes `bytes` to `path` through a temporary renamed over it (a device or
/// FIFO in place); reports a failure.
bool writeOutput(StringRef path, StringRef bytes) {
  std::string error;
  if (::weipipe::rt::writeFileAtomically(path.str(), bytes, &error))
    return true;
  llvm::WithColor::error(llvm::errs(), "weipipe-opt") << error << "\n";
  return false;
}

/// --memory-limit as bytes: nullopt without one; exits 2 (a usage error)
/// through `usage` when it is not a byte count.
std::optional<uint64_t> memoryLimitBytes(bool &usage) {
  usage = false;
  if (memoryLimit.empty())
    return std::nullopt;
  std::optional<uint64_t> limit = ::weipipe::rt::parseByteCount(memoryLimit);
  if (!limit) {
    llvm::WithColor::error(llvm::errs(), "weipipe-opt")
        << "--memory-limit='" << memoryLimit
        << "': expected a byte count such as 8G, 512M or 1073741824\n";
    usage = true;
  }
  return limit;
}

/// --emit=artifact with --ranks/--schedule: chunks, stages, the schedule.
/// The model imported again at another micro-batch size (--schedule=auto),
/// and the size it was imported at; `fn` is null when the input cannot be
/// (MLIR input, or no --input-shape).
struct Reimport {
  std::function<OwningOpRef<ModuleOp>(int64_t batch)> fn;
  int64_t batch = 1;
};

int emitPipelineArtifact(ModuleOp module, StringRef source,
                         StringRef outputFilename,
                         const ::weipipe::simulate::Machine *machine,
                         ::weipipe::simulate::Precision precision,
                         ::weipipe::simulate::Storage storage,
                         const ::weipipe::simulate::Machine *planMachine,
                         const Reimport &reimport) {
  module.getContext()->printOpOnDiagnostic(false);
  mlir::weipipe::PipelineOptions options;
  options.schedule.name = !scheduleName.empty() ? scheduleName.getValue()
                          : ranks > 1 ? std::string("weipipe-interleave")
                                      : std::string("single");
  options.schedule.ranks = int(ranks);
  options.schedule.microbatches = int(microbatches);
  options.schedule.chunksPerRank = int(chunksPerRank);
  options.schedule.nodeSize = int(nodeSize);
  options.ends = ends;
  options.keepTiesSeparate = keepTiesSeparate;
  options.fuse = !noFuse;
  options.recompute = recomputeForward;
  options.sourceModel = source.str();
  options.producer = "weipipe-opt (weipipe 0.1)";
  if (backwardKind != "fused")
    llvm::WithColor::note(llvm::errs(), "weipipe-opt")
        << "--backward is the schedule's choice with --schedule; ignored\n";
  OwningOpRef<ModuleOp> resized; // the chosen plan's micro-batch size
  if (options.schedule.name == "auto") {
    bool usage;
    ::weipipe::opt::AutoSearch search;
    search.base = options;
    search.memoryLimit = memoryLimitBytes(usage);
    if (usage)
      return 2;
    search.batch = reimport.batch;
    search.microbatches = int(microbatches);
    search.reimport = reimport.fn;
    search.machine = planMachine;
    search.precision = precision;
    llvm::SmallVector<llvm::StringRef> names;
    llvm::StringRef(autoSchedules).split(names, ',', -1, false);
    for (llvm::StringRef n : names)
      search.schedules.push_back(n.trim().str());
    llvm::errs() << "weipipe-opt: --schedule=auto: compiling and simulating "
                    "every plan of the search on "
                 << planMachine->name << "...\n";
    std::string report;
    ::weipipe::opt::AutoChoice best;
    if (std::string e =
            ::weipipe::opt::searchSchedules(module, search, &report, &best);
        !e.empty()) {
      llvm::WithColor::error(llvm::errs(), "weipipe-opt")
          << "--schedule=auto: " << e << "\n";
      return 1;
    }
    llvm::outs() << report;
    options = best.options;
    if (best.batch != reimport.batch) {
      resized = reimport.fn(best.batch);
      if (!resized)
        return 1;
      module = *resized;
    }
  }
  ::weipipe::schedule::Schedule schedule;
  ::weipipe::rt::Artifact artifact;
  if (simulateLayers) {
    // The layer probe, then the schedule's programs over the grown model.
    if (options.ends != "replicated") {
      llvm::WithColor::error(llvm::errs(), "weipipe-opt")
          << "--simulate-layers grows the layers between replicated ends; "
             "not with --ends="
          << options.ends << "\n";
      return 2;
    }
    const bool split =
        ::weipipe::schedule::splitsBackward(options.schedule.name);
    if (split && options.recompute) {
      llvm::WithColor::error(llvm::errs(), "weipipe-opt")
          << "--recompute with " << options.schedule.name
          << ": its weight-gradient passes (W) run apart from B, without "
             "the weights that recomputing the forward needs\n";
      return 1;
    }
    // The target's programs first: bad schedule options fail before any
    // compile, in the schedule's own words.
    std::string error;
    if (::weipipe::schedule::generateSchedule(options.schedule, &schedule,
                                              &error))
      error = ::weipipe::schedule::verifySchedule(schedule);
    if (!error.empty()) {
      llvm::WithColor::error(llvm::errs(), "weipipe-opt") << error << "\n";
      return 1;
    }
    mlir::weipipe::PipelineOptions probe = options;
    probe.schedule = {};
    probe.schedule.name = "1f1b";
    probe.schedule.ranks = 0; // one chunk per layer
    probe.splitBackward = split;
    // The same layers as one chunk (one rank): what each layer adds to a
    // chunk's stored activations. Compiling changes the module: a copy.
    mlir::weipipe::PipelineOptions one = probe;
    one.schedule.ranks = 1;
    OwningOpRef<ModuleOp> copy = module.clone();
    ::weipipe::schedule::Schedule probeSchedule;
    ::weipipe::rt::Artifact probeArtifact, wholeArtifact;
    if (failed(mlir::weipipe::buildPipelineArtifact(*copy, one, probeSchedule,
                                                    wholeArtifact)) ||
        failed(mlir::weipipe::buildPipelineArtifact(
            module, probe, probeSchedule, probeArtifact)))
      return 1;
    error = mlir::weipipe::scaleArtifact(probeArtifact, wholeArtifact, schedule,
                                         int(simulateLayers), &artifact);
    if (!error.empty()) {
      llvm::WithColor::error(llvm::errs(), "weipipe-opt")
          << "--simulate-layers=" << simulateLayers << ": " << error << "\n";
      return 1;
    }
  } else if (failed(mlir::weipipe::buildPipelineArtifact(module, options,
                                                         schedule, artifact))) {
    return 1;
  }
  // Every rank's memory, as the runtime will allocate it (RankMemory.h).
  bool usage;
  std::optional<uint64_t> limit = memoryLimitBytes(usage);
  if (usage)
    return 2;
  std::vector<::weipipe::rt::RankMemoryPlan> plans;
  for (size_t r = 0; r < artifact.ranks; ++r)
    plans.push_back(::weipipe::rt::planRankMemory(artifact, r));
  artifact.peakBytes = 0;
  for (const auto &p : plans)
    artifact.peakBytes = std::max(artifact.peakBytes, p.total());
  if (printSchedule)
    llvm::outs() << ::weipipe::schedule::formatTable(schedule);
  // Every check before anything is written.
  const std::vector<std::string> weights = artifactParameterFiles(artifact);
  const bool writeArtifact = !outputFilename.empty() && outputFilename != "-";
  if ((writeArtifact &&
       refuseOverwriting("-o", outputFilename, source, weights)) ||
      (!exportSchedule.empty() &&
       refuseOverwriting("--export-schedule", exportSchedule, source, weights,
                         {{"-o", outputFilename}})) ||
      (!simulateTrace.empty() &&
       refuseOverwriting("--simulate-trace", simulateTrace, source, weights,
                         {{"-o", outputFilename},
                          {"--export-schedule", exportSchedule},
                          {"--calibrate-from", calibrateFrom}})) ||
      (!calibratedMachine.empty() &&
       refuseOverwriting("--calibrated-machine", calibratedMachine, source,
                         weights,
                         {{"-o", outputFilename},
                          {"--export-schedule", exportSchedule},
                          {"--simulate-trace", simulateTrace},
                          {"--calibrate-from", calibrateFrom}})))
    return 1;
  if (limit)
    for (size_t r = 0; r < plans.size(); ++r)
      if (uint64_t need = ::weipipe::simulate::storedBytes(plans[r], storage);
          need > *limit) {
        llvm::WithColor::error(llvm::errs(), "weipipe-opt")
            << "rank " << r << " needs " << formatBytes(need) << " (" << need
            << " bytes), over --memory-limit=" << memoryLimit << " (" << *limit
            << " bytes); the plan of every rank:\n";
        printMemoryTable(plans, llvm::errs());
        return 1;
      }
  ::weipipe::simulate::Calibration calibration;
  if (machine && !calibrateFrom.empty()) {
    ::weipipe::simulate::MeasuredRun measured;
    std::string error =
        ::weipipe::simulate::readTrace(calibrateFrom, &measured);
    if (error.empty())
      error = ::weipipe::simulate::calibrate(
          artifact, measured, *machine, precision, calibrateFrom, &calibration);
    if (!error.empty()) {
      llvm::WithColor::error(llvm::errs(), "weipipe-opt")
          << "--calibrate-from=" << calibrateFrom << ": " << error << "\n";
      return 1;
    }
    llvm::errs() << calibration.summary;
    machine = &calibration.machine;
    // What is written must load: a fit gone wrong is an error, not a file
    // the next --simulate refuses.
    ::weipipe::simulate::Machine reread;
    if (std::string e = ::weipipe::simulate::parseMachine(
            ::weipipe::simulate::formatMachine(*machine), calibratedMachine,
            &reread);
        !e.empty()) {
      llvm::WithColor::error(llvm::errs(), "weipipe-opt")
          << "--calibrate-from=" << calibrateFrom
          << ": the fitted model is not valid: " << e << "\n";
      return 1;
    }
  }
  if (machine) {
    std::vector<uint64_t> peaks;
    for (const auto &p : plans)
      peaks.push_back(::weipipe::simulate::storedBytes(p, storage));
    ::weipipe::simulate::Prediction prediction;
    std::string error =
        ::weipipe::simulate::predict(artifact, schedule, *machine, precision,
                                     storage, std::move(peaks), &prediction);
    if (!error.empty()) {
      llvm::WithColor::error(llvm::errs(), "weipipe-opt")
          << "--simulate=" << simulateMachine << ": " << error << "\n";
      return 1;
    }
    llvm::outs() << ::weipipe::simulate::formatPrediction(prediction, schedule);
    if (simulateLayers)
      llvm::outs() << "  priced at " << simulateLayers
                   << " layers (--simulate-layers), each like the input "
                      "model's first\n";
    if (!simulateTrace.empty() &&
        !writeOutput(
            simulateTrace,
            ::weipipe::rt::train::chromeTrace(
                ::weipipe::simulate::traceEvents(prediction, schedule),
                int(artifact.ranks),
                {{"source", "simulator"},
                 {"machine", machine->name},
                 {"precision", ::weipipe::simulate::precisionName(precision)},
                 {"schedule", artifact.schedule},
                 {"model", source.str()},
                 {"iteration_seconds",
                  std::to_string(prediction.sim.iterationTime)},
                 {"bubble_ratio",
                  std::to_string(prediction.sim.bubbleRatio)}})))
      return 1;
    if (!calibratedMachine.empty() &&
        !writeOutput(calibratedMachine,
                     ::weipipe::simulate::formatMachine(*machine)))
      return 1;
    if (!writeArtifact) {
      if (!exportSchedule.empty() &&
          !writeOutput(exportSchedule,
                       ::weipipe::schedule::formatCsv(schedule)))
        return 1;
      return 0;
    }
  }
  relativizeStorage(artifact, outputFilename);
  std::string error;
  if (!::weipipe::rt::writeArtifactFile(artifact, outputFilename.str(),
                                        &error)) {
    llvm::WithColor::error(llvm::errs(), "weipipe-opt") << error << "\n";
    return 1;
  }
  if (!exportSchedule.empty() &&
      !writeOutput(exportSchedule, ::weipipe::schedule::formatCsv(schedule)))
    return 1;
  uint64_t numel = 0;
  for (const auto &p : artifact.params)
    numel += p.numel();
  llvm::errs() << "weipipe-opt: wrote " << outputFilename << "\n"
               << "  parameters: " << artifact.params.size() << " tensors, "
               << numel << " values (" << formatBytes(numel * 4) << ")\n"
               << "  schedule: " << artifact.schedule << " on "
               << artifact.ranks << " rank(s), " << artifact.microbatches
               << " micro-batch(es) of [" << artifact.batch << ", "
               << artifact.seq << "] tokens per step\n  stages:";
  for (const auto &st : artifact.stages) {
    uint64_t n = 0;
    for (uint32_t p : st.params)
      n += artifact.params[p].numel();
    llvm::errs() << " " << st.name << " (" << n << " values, activations "
                 << formatBytes(st.arenaBytes) << ")";
  }
  llvm::errs() << "\n  memory plan per rank:\n";
  printMemoryTable(plans, llvm::errs());
  return 0;
}

/// --emit=artifact: the training pipeline, then the artifact writer.
int emitArtifact(ModuleOp module, StringRef source, StringRef outputFilename,
                 const Reimport &reimport = {}) {
  if ((outputFilename == "-" || outputFilename.empty()) &&
      simulateMachine.empty()) {
    llvm::WithColor::error(llvm::errs(), "weipipe-opt")
        << "--emit=artifact needs an output file: -o OUT.wpp\n";
    return 2; // a usage error
  }
  // The machine model before the compile: a typo fails at once.
  std::optional<::weipipe::simulate::Machine> machine;
  ::weipipe::simulate::Precision precision =
      ::weipipe::simulate::Precision::Bf16;
  if (!simulateMachine.empty()) {
    machine.emplace();
    if (std::string e =
            ::weipipe::simulate::loadMachine(simulateMachine, &*machine);
        !e.empty()) {
      llvm::WithColor::error(llvm::errs(), "weipipe-opt")
          << "--simulate: " << e << "\n";
      return 1;
    }
    precision = machine->defaultPrecision;
    if (simulatePrecision == "bf16" || simulatePrecision == "fp32") {
      precision = simulatePrecision == "bf16"
                      ? ::weipipe::simulate::Precision::Bf16
                      : ::weipipe::simulate::Precision::Fp32;
    } else if (!simulatePrecision.empty()) {
      llvm::WithColor::error(llvm::errs(), "weipipe-opt")
          << "--simulate-precision='" << simulatePrecision
          << "': expected bf16 or fp32\n";
      return 2;
    }
  } else if (!simulateTrace.empty() || simulateLayers ||
             (!simulatePrecision.empty() && scheduleName != "auto") ||
             (!simulateStorage.empty() && scheduleName != "auto") ||
             !calibrateFrom.empty()) {
    llvm::WithColor::error(llvm::errs(), "weipipe-opt")
        << (!simulateTrace.empty()     ? "--simulate-trace"
            : simulateLayers           ? "--simulate-layers"
            : !calibrateFrom.empty()   ? "--calibrate-from"
            : !simulateStorage.empty() ? "--simulate-storage"
                                       : "--simulate-precision")
        << " needs --simulate=MACHINE\n";
    return 2;
  }
  if (!simulateSends.empty()) {
    if (simulateSends != "blocking") {
      llvm::WithColor::error(llvm::errs(), "weipipe-opt")
          << "--simulate-sends='" << simulateSends << "': expected blocking\n";
      return 2;
    }
    if (!machine) {
      llvm::WithColor::error(llvm::errs(), "weipipe-opt")
          << "--simulate-sends needs --simulate=MACHINE\n";
      return 2;
    }
    machine->intraNode.synchronous = machine->interNode.synchronous = true;
  }
  ::weipipe::simulate::Storage storage = ::weipipe::simulate::Storage::Fp32;
  if (simulateStorage == "mixed") {
    storage = ::weipipe::simulate::Storage::Mixed;
  } else if (!simulateStorage.empty() && simulateStorage != "fp32") {
    llvm::WithColor::error(llvm::errs(), "weipipe-opt")
        << "--simulate-storage='" << simulateStorage
        << "': expected fp32 or mixed\n";
    return 2;
  }
  if (storage == ::weipipe::simulate::Storage::Mixed &&
      (scheduleName == "auto" ||
       (!outputFilename.empty() && outputFilename != "-"))) {
    llvm::WithColor::error(llvm::errs(), "weipipe-opt")
        << "--simulate-storage=mixed prices how other systems store a model; "
           "weipipe's runtime stores fp32, so it takes no -o or "
           "--schedule=auto\n";
    return 2;
  }
  if (simulateLayers && (scheduleName == "auto" || !calibrateFrom.empty() ||
                         (!outputFilename.empty() && outputFilename != "-"))) {
    llvm::WithColor::error(llvm::errs(), "weipipe-opt")
        << "--simulate-layers prices a model it does not compile: it takes "
           "no -o, --schedule=auto or --calibrate-from\n";
    return 2;
  }
  // --schedule=auto's machine: --machine, else --simulate's.
  std::optional<::weipipe::simulate::Machine> planMachine;
  if (scheduleName == "auto") {
    if (machineName.empty() && !machine) {
      llvm::WithColor::error(llvm::errs(), "weipipe-opt")
          << "--schedule=auto needs --machine=MACHINE (or --simulate) to "
             "plan for\n";
      return 2;
    }
    planMachine.emplace();
    if (machineName.empty()) {
      *planMachine = *machine;
    } else if (std::string e =
                   ::weipipe::simulate::loadMachine(machineName, &*planMachine);
               !e.empty()) {
      llvm::WithColor::error(llvm::errs(), "weipipe-opt")
          << "--machine: " << e << "\n";
      return 1;
    }
    if (!machine) // the precision flag for the plan's machine
      precision =
          simulatePrecision == "fp32"   ? ::weipipe::simulate::Precision::Fp32
          : simulatePrecision == "bf16" ? ::weipipe::simulate::Precision::Bf16
                                        : planMachine->defaultPrecision;
  } else if (!machineName.empty() || !autoSchedules.empty()) {
    llvm::WithColor::error(llvm::errs(), "weipipe-opt")
        << (machineName.empty() ? "--auto-schedules" : "--machine")
        << " applies with --schedule=auto\n";
    return 2;
  }
  if (!calibratedMachine.empty() && calibrateFrom.empty()) {
    llvm::WithColor::error(llvm::errs(), "weipipe-opt")
        << "--calibrated-machine needs --calibrate-from=TRACE.json\n";
    return 2;
  }
  if (microbatches == 0) {
    llvm::WithColor::error(llvm::errs(), "weipipe-opt")
        << "--microbatches must be at least 1\n";
    return 2; // a usage error
  }
  if (backwardKind != "fused" && backwardKind != "split") {
    llvm::WithColor::error(llvm::errs(), "weipipe-opt")
        << "--backward='" << backwardKind << "': expected fused or split\n";
    return 2; // a usage error
  }
  if (ranks == 0) {
    llvm::WithColor::error(llvm::errs(), "weipipe-opt")
        << "--ranks must be at least 1\n";
    return 2; // a usage error
  }
  if (machine && ranks == 1 && scheduleName.empty() &&
      !outputFilename.empty() && outputFilename != "-")
    llvm::WithColor::note(llvm::errs(), "weipipe-opt")
        << "--simulate simulates pipeline programs: -o gets the one-rank "
           "pipeline artifact of --schedule=single (weipipe-run trains it "
           "the same way)\n";
  if (ranks > 1 || !scheduleName.empty() || machine)
    return emitPipelineArtifact(
        module, source, outputFilename, machine ? &*machine : nullptr,
        precision, storage, planMachine ? &*planMachine : nullptr, reimport);
  MLIRContext *ctx = module.getContext();
  // A failing pass would print the whole module after its message.
  ctx->printOpOnDiagnostic(false);
  bool differentiated = false;
  module.walk([&](func::FuncOp f) {
    if (mlir::weipipe::nn::autodiffRole(f))
      differentiated = true;
  });
  if (!differentiated) {
    PassManager pm(ctx);
    mlir::weipipe::TrainingPipelineOptions train;
    train.keepTiesSeparate = keepTiesSeparate;
    train.fuse = !noFuse;
    train.recompute = recomputeForward;
    mlir::weipipe::buildTrainingPipeline(pm, train);
    if (failed(pm.run(module)))
      return 1;
  }
  mlir::weipipe::ArtifactOptions options;
  options.microbatches = microbatches;
  options.splitBackward = backwardKind == "split";
  options.sourceModel = source.str();
  options.producer = "weipipe-opt (weipipe 0.1)";
  bool usage;
  std::optional<uint64_t> limit = memoryLimitBytes(usage);
  if (usage)
    return 2;
  if (!exportSchedule.empty())
    llvm::WithColor::note(llvm::errs(), "weipipe-opt")
        << "--export-schedule needs --ranks or --schedule; ignored\n";
  ::weipipe::rt::Artifact artifact;
  if (failed(mlir::weipipe::buildArtifact(module, options, artifact)))
    return 1;
  if (refuseOverwriting("-o", outputFilename, source,
                        artifactParameterFiles(artifact)))
    return 1;
  if (limit && artifact.peakBytes > *limit) {
    llvm::WithColor::error(llvm::errs(), "weipipe-opt")
        << "the plan needs " << formatBytes(artifact.peakBytes) << " ("
        << artifact.peakBytes << " bytes: parameters, gradients, AdamW state, "
        << "activations, constants, scratch), over --memory-limit="
        << memoryLimit << " (" << *limit << " bytes)\n";
    return 1;
  }
  relativizeStorage(artifact, outputFilename);
  std::string error;
  if (!::weipipe::rt::writeArtifactFile(artifact, outputFilename.str(),
                                        &error)) {
    llvm::WithColor::error(llvm::errs(), "weipipe-opt") << error << "\n";
    return 1;
  }
  uint64_t paramBytes = 0, numel = 0;
  for (const auto &p : artifact.params) {
    numel += p.numel();
    paramBytes += p.numel() * 4;
  }
  llvm::errs() << "weipipe-opt: wrote " << outputFilename << "\n"
               << "  parameters: " << artifact.params.size() << " tensors, "
               << numel << " values (" << formatBytes(paramBytes) << ")\n";
  mlir::weipipe::printTrainingSummary(module, llvm::errs());
  llvm::errs() << "  step: " << artifact.microbatches << " micro-batch(es) of ["
               << artifact.batch << ", " << artifact.seq << "] tokens, vocab "
               << artifact.vocab << "\n  program:";
  for (const auto &f : artifact.functions) {
    llvm::errs() << " " << ::weipipe::rt::functionKindName(f.kind) << " ("
                 << f.body.size() << " instructions";
    size_t fused = llvm::count_if(f.body, [](const auto &in) {
      return in.flags & ::weipipe::rt::Instruction::kFusedWithNext;
    });
    if (fused)
      llvm::errs() << ", " << fused << " norm-gradient pairs fused";
    llvm::errs() << ")";
  }
  // The layers a pipeline would distribute (nn-discover-layers).
  if (auto fwd =
          cast_or_null<func::FuncOp>(mlir::weipipe::nn::lookupAutodiffFunction(
              module, "main", mlir::weipipe::nn::AutodiffRole::Forward))) {
    FailureOr<mlir::weipipe::LayerStructure> layers =
        mlir::weipipe::discoverLayers(fwd);
    if (succeeded(layers))
      llvm::errs() << "\n  layers: " << mlir::weipipe::describeLayers(*layers);
  }
  llvm::errs() << "\n  memory plan (rank 0 of 1): activations "
               << formatBytes(artifact.arenaBytes) << ", peak "
               << formatBytes(artifact.peakBytes) << " (" << artifact.peakBytes
               << " bytes: parameters, gradients, AdamW state, activations, "
                  "constants, scratch)\n";
  return 0;
}

/// Turns the import flags into options; reports malformed flags.
std::optional<mlir::weipipe::OnnxImportOptions> importOptionsFromCL() {
  mlir::weipipe::OnnxImportOptions options;
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
  options.trainableInitializers = trainableInitializers;
  options.functionName = functionName;
  return options;
}
} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM y(argc, argv);
  // libLLVM.so registers about 450 code-generation options (AMDGPU, ARM,
  // Polly, ...) before main runs; they say nothing about this tool and bury
  // its own in --help. Every option registered by now that is not ours is
  // hidden (still accepted); MLIR's options are registered below and stay.
  for (auto &entry : llvm::cl::getRegisteredOptions()) {
    llvm::cl::Option *opt = entry.second;
    bool keep = false;
    for (llvm::cl::OptionCategory *c : opt->Categories)
      keep |= c == &importCategory || c == &trainCategory ||
              c == &pipelineCategory || c == &simulateCategory ||
              c->getName() == "Generic Options";
    if (!keep)
      opt->setHiddenFlag(llvm::cl::ReallyHidden);
  }
  registerTransformsPasses();
  mlir::weipipe::registerNNPassesAndPipelines();
  mlir::weipipe::registerTargetPasses();
  mlir::weipipe::registerPipePasses();
  DialectRegistry registry;
  mlir::weipipe::registerAllDialects(registry);

  const std::string helpHeader =
      registerCLIOptions("weipipe compiler driver\n\n"
                         "  weipipe-opt model.onnx [options]\n"
                         "  weipipe-opt input.mlir [options]\n",
                         registry);
  // LLVM's parser exits 1 on a bad flag; a usage error exits 2 here as in
  // weipipe-run. So parse once reporting into a buffer, then, if that went
  // well, again from a clean state through MLIR's own parse, which registers
  // the input file and -o itself (stand-ins take their place the first time).
  {
    llvm::cl::list<std::string> files(llvm::cl::Positional);
    llvm::cl::opt<std::string> output("o");
    std::string errors;
    llvm::raw_string_ostream os(errors);
    const bool ok =
        llvm::cl::ParseCommandLineOptions(argc, argv, helpHeader, &os);
    files.removeArgument();
    output.removeArgument();
    if (!ok) {
      llvm::errs() << errors;
      return 2; // a usage error
    }
    llvm::cl::ResetAllOptionOccurrences();
  }
  auto [inputFilename, outputFilename] =
      parseCLIOptions(argc, argv, helpHeader);
  MlirOptMainConfig config = MlirOptMainConfig::createFromCLOptions();
  // `weipipe-opt m.onnx -o m.onnx` would replace the model, the only copy of
  // its weights, with IR.
  if (refuseOverwriting("-o", outputFilename, inputFilename, {}))
    return 1;
  std::vector<std::string> weights; // of the IR output's model, checked below

  std::unique_ptr<llvm::MemoryBuffer> input;
  std::string errorMessage;
  if (mlir::weipipe::isOnnxFile(inputFilename)) {
    auto options = importOptionsFromCL();
    if (!options)
      return 2; // a usage error
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
        mlir::weipipe::importOnnxFile(inputFilename, &context, *options);
    if (!module)
      return 1;
    if (emitKind == EmitKind::Artifact) {
      // --schedule=auto tries other micro-batch sizes: the same import with
      // the inputs' first dimension changed.
      Reimport reimport;
      if (!options->inputShapes.empty() &&
          !options->inputShapes.begin()->second.empty()) {
        reimport.batch = options->inputShapes.begin()->second[0];
        reimport.fn = [&](int64_t batch) {
          mlir::weipipe::OnnxImportOptions o = *options;
          for (auto &[name, shape] : o.inputShapes)
            if (!shape.empty())
              shape[0] = batch;
          return mlir::weipipe::importOnnxFile(inputFilename, &context, o);
        };
      }
      return emitArtifact(*module, inputFilename, outputFilename, reimport);
    }
    weights = parameterFiles(*module);
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
    if (emitKind == EmitKind::Artifact) {
      MLIRContext context(registry);
      context.loadAllAvailableDialects();
      llvm::SourceMgr sourceMgr;
      sourceMgr.AddNewSourceBuffer(std::move(input), llvm::SMLoc());
      SourceMgrDiagnosticHandler handler(sourceMgr, &context);
      OwningOpRef<ModuleOp> module =
          parseSourceFile<ModuleOp>(sourceMgr, &context);
      if (!module)
        return 1;
      return emitArtifact(*module, inputFilename, outputFilename);
    }
    weights = parameterFilesInText(input->getBuffer());
  }

  if (outputFilename == "-")
    return failed(MlirOptMain(llvm::outs(), std::move(input), registry,
                              config));
  if (refuseOverwriting("-o", outputFilename, inputFilename, weights))
    return 1;
  // Into memory first: the file is replaced only by a complete result, and a
  // device or FIFO is written in place (rt::OutputFile).
  std::string text;
  llvm::raw_string_ostream os(text);
  if (failed(MlirOptMain(os, std::move(input), registry, config)))
    return 1;
  return writeOutput(outputFilename, text) ? 0 : 1;
}
