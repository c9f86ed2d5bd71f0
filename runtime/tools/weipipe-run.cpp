//===- weipipe-run.cpp - train a compiled .wpp artifact on the CPU --------===//
//
// Part of weipipe's runtime. Loads an artifact (weipipe-opt --emit=artifact),
// runs it with the CPU executor and the step loop of train/Trainer.h (data
// order, AdamW state, the LR schedule, gradient clipping), and owns the
// command line, logging and outputs. Everything follows the reference trainer's
// contract (python/weipipe/reference/README.md) so that both give the same
// losses and weights to 1e-5; runtime/README.md documents the CLI.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/Artifact.h"
#include "weipipe/runtime/Executor.h"
#include "weipipe/runtime/RankMemory.h"
#include "weipipe/runtime/cpu/Kernels.h"
#include "weipipe/runtime/train/Data.h"
#include "weipipe/runtime/train/Json.h"
#include "weipipe/runtime/train/LrSchedule.h"
#include "weipipe/runtime/train/Output.h"
#include "weipipe/runtime/train/Pipeline.h"
#include "weipipe/runtime/train/Progress.h"
#include "weipipe/runtime/train/Safetensors.h"
#include "weipipe/runtime/train/Trace.h"
#include "weipipe/runtime/train/Trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

// OpenBLAS's pool size; weak so that other BLAS vendors link too.

using namespace weipipe::rt;
using namespace weipipe::rt::train;

namespace {

const char *kUsage =
    R"(usage: weipipe-run OUT.wpp --data FILE --steps N [options]

Trains the compiled artifact OUT.wpp on the CPU (or a GPU, --device cuda)
under the reference trainer's contract (python/weipipe/reference/README.md).

  --data FILE              token file (raw or llm.c .bin) or text (.txt)
  --steps N                optimizer steps (0: only --dump-logits/--save-weights)
  --lr X                   peak learning rate (default 1e-3)
  --weight-decay X         AdamW decay of matrices (>= 2 axes > 1; default 0.01)
  --betas B1,B2            AdamW betas (default 0.9,0.999)
  --eps X                  AdamW epsilon (default 1e-8)
  --grad-clip X            max global gradient norm, 0 = off (default 0)
  --warmup-steps N         linear warm-up steps (default 0)
  --lr-schedule S          constant | cosine (default constant)
  --min-lr X               cosine floor (default 0)
  --seed N                 shuffle seed (default 0)
  --data-seed N            shuffle seed overriding --seed (as the reference)
  --data-order O           sequential | shuffle (default sequential)
  --data-format F          auto | bin | text (default auto: .txt is text)
  --token-dtype T          uint16 | uint32 (raw files; default by vocabulary)
  --log FILE.jsonl         one JSON object per step
  --save-weights FILE      final parameters as .safetensors (ONNX names)
  --dump-logits FILE.npy   logits [B, S, V] of step 0's first micro-batch,
                           before training
  --trace FILE.json        the last step's timeline as a Chrome trace (every
                           rank's compute actions and sends, with bytes; the
                           format of weipipe-opt --simulate-trace) and every
                           instruction's time (steps after the first, for
                           weipipe-opt --calibrate-from): a
                           pipeline artifact (--schedule=single for one
                           rank), --device cpu, --transport local
  --threads N              kernel threads (default: the number of cores),
                           divided among the ranks of a pipeline artifact
  --device D               cpu | cuda (default cpu): where the kernels run;
                           on cuda every rank of a pipeline shares the one
                           GPU (LOCAL_RANK picks it)
  --precision P            fp32 | bf16 (default: bf16 on cuda, fp32 on cpu):
                           bf16 multiplies on bf16 tensor cores, keeping fp32
                           weights, gradients, AdamW state and losses
  --ranks P                check that the artifact is compiled for P ranks
  --transport T            local | tcp | nccl (default: tcp where WORLD_SIZE
                           is set, else local): local runs every rank of a
                           pipeline as threads of this process; tcp runs one
                           rank per process, started as torchrun starts them
                           (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
                           MASTER_PORT; e.g. torchrun --no-python
                           --nproc-per-node 4 weipipe-run -- m.wpp ...);
                           nccl too, moving the GPU's slots with NCCL (one GPU
                           per process, --device cuda); rank 0 writes the
                           outputs
  --timeout S              tcp, nccl: seconds to wait for the other processes
                           at start-up, for any message, and for the GPU at
                           the end of a step (default 600)
  --memory-limit BYTES     refuse a plan (AdamW state included; all ranks of
                           a pipeline together) over BYTES (8G, 512M, ...)
  --quiet                  no summary, no progress
  --help                   this text
)";

[[noreturn]] void usageError(const std::string &m) {
  std::fprintf(stderr,
               "weipipe-run: error: %s\nusage: weipipe-run OUT.wpp --data "
               "FILE --steps N [options] (--help lists them)\n",
               m.c_str());
  std::exit(2);
}

/// The open outputs: std::exit skips destructors, and a signal skips
/// everything, so both remove the temporaries through this list.
OutputFile *gOutputs[4] = {};
/// The world of processes (--transport tcp): a failure here is told to the
/// other ranks before this process ends, so that none waits for it.
std::unique_ptr<transport::Transport> gWorld;
std::string gRankPrefix; ///< "rank R: " in a world of processes

[[noreturn]] void fail(const std::string &m) {
  for (OutputFile *f : gOutputs)
    if (f)
      f->discard();
  std::fprintf(stderr, "weipipe-run: %serror: %s\n", gRankPrefix.c_str(),
               m.c_str());
  if (gWorld) {
    gWorld->abort(m);
    gWorld.reset(); // flushes the abort to the peers (bounded)
  }
  std::exit(1);
}

/// What the run is doing, for the message of an exception no caller turned
/// into an error (an allocation inside a kernel's parallel region, say).
const char *gPhase = "starting";

[[noreturn]] void onTerminate() {
  std::string what = "an unexpected error";
  try {
    if (std::exception_ptr e = std::current_exception())
      std::rethrow_exception(e);
  } catch (const std::bad_alloc &) {
    what = "out of memory";
  } catch (const std::exception &x) {
    what = std::string("an unexpected error (") + x.what() + ")";
  } catch (...) {
  }
  fail(what + " while " + gPhase);
}

extern "C" void onSignal(int sig) {
  for (OutputFile *f : gOutputs) // unlink is async-signal-safe
    if (f && !f->tempPath().empty())
      ::unlink(f->tempPath().c_str());
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

/// The token file's mapping: a SIGBUS inside it is the file shrinking under
/// the run between the trainers' checks (TokenFile::shrunk). The message is
/// built before the handler can run; the handler only writes it.
const char *gDataBegin = nullptr;
size_t gDataBytes = 0;
std::string gDataMessage;

extern "C" void onBus(int sig, siginfo_t *info, void *) {
  const char *p = static_cast<const char *>(info->si_addr);
  if (gDataBegin && p >= gDataBegin && p < gDataBegin + gDataBytes) {
    for (OutputFile *f : gOutputs)
      if (f && !f->tempPath().empty())
        ::unlink(f->tempPath().c_str());
    ssize_t ignored = ::write(2, gDataMessage.data(), gDataMessage.size());
    (void)ignored;
    ::_exit(1);
  }
  onSignal(sig);
}

struct Options {
  std::string artifact, data, log, saveWeights, dumpLogits, trace;
  int64_t steps = 0;
  bool stepsGiven = false; ///< --steps is required
  double lr = 1e-3, weightDecay = 0.01, beta1 = 0.9, beta2 = 0.999, eps = 1e-8,
         gradClip = 0.0, minLr = 0.0;
  int64_t warmupSteps = 0;
  LrScheduleKind schedule = LrScheduleKind::Constant;
  int64_t seed = 0;
  std::optional<int64_t> dataSeed;
  DataOrder order = DataOrder::Sequential;
  DataFormat format = DataFormat::Auto;
  std::optional<TokenDType> tokenDType;
  int threads = 0;          ///< 0 = the number of cores
  int64_t ranks = 0;        ///< 0 = whatever the artifact has
  uint64_t memoryLimit = 0; ///< 0 = none
  Device device = Device::Cpu;
  std::optional<Precision> precision; ///< default: by device
  std::string transport;              ///< "local" or "tcp"
  double timeout = 600;
  bool quiet = false;
};

int64_t parseInt(const std::string &flag, const std::string &v) {
  errno = 0;
  char *end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end || errno)
    usageError(flag + ": expected an integer, got '" + v + "'");
  return x;
}

double parseDouble(const std::string &flag, const std::string &v) {
  errno = 0;
  char *end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end || errno || !std::isfinite(x))
    usageError(flag + ": expected a finite number, got '" + v + "'");
  return x;
}

Options parseArgs(int argc, char **argv) {
  Options o;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (a == "--quiet") {
      o.quiet = true;
      continue;
    }
    if (a.size() < 2 || a.rfind("--", 0) != 0) {
      if (!a.empty() && a[0] == '-' && a != "-")
        usageError("unknown option '" + a + "'");
      positional.push_back(a);
      continue;
    }
    std::string value;
    bool inlineValue = false;
    if (auto eq = a.find('='); eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      inlineValue = true;
    }
    auto take = [&]() -> const std::string & {
      if (!inlineValue) {
        if (i + 1 >= argc)
          usageError(a + " needs a value");
        value = argv[++i];
      }
      return value;
    };
    if (a == "--data")
      o.data = take();
    else if (a == "--steps")
      o.steps = parseInt(a, take()), o.stepsGiven = true;
    else if (a == "--lr")
      o.lr = parseDouble(a, take());
    else if (a == "--weight-decay")
      o.weightDecay = parseDouble(a, take());
    else if (a == "--betas") {
      const std::string &v = take();
      const size_t comma = v.find(',');
      if (comma == std::string::npos)
        usageError("--betas: expected B1,B2 (e.g. 0.9,0.999), got '" + v + "'");
      o.beta1 = parseDouble(a, v.substr(0, comma));
      o.beta2 = parseDouble(a, v.substr(comma + 1));
    } else if (a == "--eps")
      o.eps = parseDouble(a, take());
    else if (a == "--grad-clip")
      o.gradClip = parseDouble(a, take());
    else if (a == "--warmup-steps")
      o.warmupSteps = parseInt(a, take());
    else if (a == "--lr-schedule") {
      auto k = parseLrSchedule(take());
      if (!k)
        usageError("--lr-schedule: choose from constant, cosine (got '" +
                   value + "')");
      o.schedule = *k;
    } else if (a == "--min-lr")
      o.minLr = parseDouble(a, take());
    else if (a == "--seed")
      o.seed = parseInt(a, take());
    else if (a == "--data-seed")
      o.dataSeed = parseInt(a, take());
    else if (a == "--data-order") {
      auto d = parseDataOrder(take());
      if (!d)
        usageError("--data-order: choose from sequential, shuffle (got '" +
                   value + "')");
      o.order = *d;
    } else if (a == "--data-format") {
      auto f = parseDataFormat(take());
      if (!f)
        usageError("--data-format: choose from auto, bin, text (got '" + value +
                   "')");
      o.format = *f;
    } else if (a == "--token-dtype") {
      auto t = parseTokenDType(take());
      if (!t)
        usageError("--token-dtype: choose from uint16, uint32 (got '" + value +
                   "')");
      o.tokenDType = *t;
    } else if (a == "--log")
      o.log = take();
    else if (a == "--save-weights")
      o.saveWeights = take();
    else if (a == "--dump-logits")
      o.dumpLogits = take();
    else if (a == "--trace")
      o.trace = take();
    else if (a == "--threads") {
      const int64_t t = parseInt(a, take());
      if (t < 1 || t > 4096)
        usageError("--threads must be between 1 and 4096, got " + value);
      o.threads = int(t);
    } else if (a == "--memory-limit") {
      auto b = parseByteCount(take());
      if (!b || *b == 0)
        usageError("--memory-limit: expected a byte count such as 8G, 512M "
                   "or 1073741824, got '" +
                   value + "'");
      o.memoryLimit = *b;
    } else if (a == "--ranks") {
      o.ranks = parseInt(a, take());
      if (o.ranks < 1)
        usageError("--ranks must be >= 1, got " + value);
    } else if (a == "--transport") {
      o.transport = take();
      if (o.transport != "local" && o.transport != "tcp" &&
          o.transport != "nccl")
        usageError("--transport: choose from local, tcp, nccl (got '" +
                   o.transport + "')");
    } else if (a == "--timeout") {
      o.timeout = parseDouble(a, take());
      if (o.timeout <= 0)
        usageError("--timeout must be > 0 seconds, got " + value);
    } else if (a == "--device") {
      const std::string d = take();
      if (d == "cpu")
        o.device = Device::Cpu;
      else if (d == "cuda")
        o.device = Device::Cuda;
      else
        usageError("--device: choose from cpu, cuda (got '" + d + "')");
    } else if (a == "--precision") {
      const std::string p = take();
      if (p == "fp32")
        o.precision = Precision::Fp32;
      else if (p == "bf16")
        o.precision = Precision::Bf16;
      else
        usageError("--precision: choose from fp32, bf16 (got '" + p + "')");
    } else
      usageError("unknown option '" + a + "'");
  }
  if (positional.size() != 1)
    usageError(positional.empty()
                   ? "no artifact given"
                   : "one artifact, got " + std::to_string(positional.size()) +
                         " positional arguments");
  o.artifact = positional[0];
  if (o.data.empty())
    usageError("--data is required");
  if (!o.stepsGiven)
    usageError("--steps is required");
  if (o.steps < 0)
    usageError("--steps must be >= 0, got " + std::to_string(o.steps));
  if (!o.precision)
    o.precision = o.device == Device::Cuda ? Precision::Bf16 : Precision::Fp32;
  if (o.transport.empty())
    o.transport = std::getenv("WORLD_SIZE") ? "tcp" : "local";
  if (o.transport == "nccl" && o.device != Device::Cuda)
    usageError("--transport nccl moves GPU memory: add --device cuda (or "
               "use --transport tcp)");
  if (o.device == Device::Cpu && *o.precision != Precision::Fp32)
    usageError("--precision bf16 needs --device cuda (the CPU computes in "
               "fp32)");
  // The reference's check_config.
  for (auto [flag, v] : {std::pair<const char *, double>{"--warmup-steps",
                                                         double(o.warmupSteps)},
                         {"--grad-clip", o.gradClip},
                         {"--lr", o.lr},
                         {"--eps", o.eps}})
    if (v < 0) {
      char got[32];
      std::snprintf(got, sizeof(got), "%g", v);
      usageError(std::string(flag) + " must be >= 0, got " + got);
    }
  if (!(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1))
    usageError("--betas must be in [0, 1)");
  return o;
}

std::string dirName(const std::string &path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos)
    return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

/// No output may be another output or one of the run's inputs (the
/// artifact, the data, the files the parameters load from): compared by
/// identity, so "out/a" and "out/./a", links and symlinks are caught.
void checkOutputs(const Options &o, const Artifact *a) {
  std::vector<std::pair<std::string, std::string>> ins = {
      {"the artifact", o.artifact}, {"the data file (--data)", o.data}};
  if (a)
    for (const Parameter &p : a->params)
      ins.push_back({"the model file parameter '" + p.name + "' loads from",
                     p.storage.file[0] == '/'
                         ? p.storage.file
                         : dirName(o.artifact) + "/" + p.storage.file});
  const std::pair<const char *, const std::string *> outs[] = {
      {"--log", &o.log},
      {"--save-weights", &o.saveWeights},
      {"--dump-logits", &o.dumpLogits},
      {"--trace", &o.trace}};
  for (size_t i = 0; i < std::size(outs); ++i) {
    if (outs[i].second->empty())
      continue;
    const std::string id = fileIdentity(*outs[i].second);
    if (id.empty())
      continue; // its directory does not exist: opening it will say so
    for (size_t j = i + 1; j < std::size(outs); ++j)
      if (!outs[j].second->empty() && fileIdentity(*outs[j].second) == id)
        usageError(std::string(outs[i].first) + " and " + outs[j].first +
                   " name the same file");
    for (const auto &[what, path] : ins)
      if (fileIdentity(path) == id)
        usageError(std::string(outs[i].first) + " " + *outs[i].second + " is " +
                   what + "; it would be overwritten");
  }
}

/// The run's options as sorted JSON (the reference's "weipipe.reference"
/// metadata, here under "weipipe.run"): same options, same bytes.
std::string optionsJson(const Options &o, const Artifact &a, int64_t dataSeed) {
  using json::number;
  using json::quote;
  auto i = [](int64_t x) { return std::to_string(x); };
  const char *fmt = o.format == DataFormat::Auto  ? "auto"
                    : o.format == DataFormat::Bin ? "bin"
                                                  : "text";
  std::string dt = !o.tokenDType                      ? "null"
                   : *o.tokenDType == TokenDType::U16 ? "\"uint16\""
                                                      : "\"uint32\"";
  return "{\"artifact\": " + quote(o.artifact) + ", \"batch\": " + i(a.batch) +
         ", \"betas\": [" + number(o.beta1) + ", " + number(o.beta2) +
         "], \"data\": " + quote(o.data) + ", \"data_format\": " + quote(fmt) +
         ", \"data_order\": " + quote(dataOrderName(o.order)) +
         ", \"data_seed\": " + i(dataSeed) + ", \"eps\": " + number(o.eps) +
         ", \"grad_clip\": " + number(o.gradClip) +
         ", \"ignore_index\": " + i(a.ignoreIndex) +
         ", \"lr\": " + number(o.lr) +
         ", \"lr_schedule\": " + quote(lrScheduleName(o.schedule)) +
         ", \"microbatches\": " + i(a.microbatches) +
         ", \"min_lr\": " + number(o.minLr) + ", \"seq\": " + i(a.seq) +
         ", \"steps\": " + i(o.steps) + ", \"token_dtype\": " + dt +
         ", \"warmup_steps\": " + i(o.warmupSteps) +
         ", \"weight_decay\": " + number(o.weightDecay) + "}";
}

double seconds(std::chrono::steady_clock::time_point a,
               std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

} // namespace

int main(int argc, char **argv) {
  // With standard error closed (2>&-), the first file opened would take
  // descriptor 2 and the progress lines would land in it.
  reserveStandardDescriptors();
  std::set_terminate(onTerminate);
  const Options o = parseArgs(argc, argv);
  checkOutputs(o, nullptr);
  const auto t0 = std::chrono::steady_clock::now();

  // Threads: the OpenMP team of the kernels (OpenBLAS stays on the calling
  // thread; the kernels split big GEMMs over the team themselves).
  int threads = o.threads;
  if (threads <= 0) {
    const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
    threads = n > 0 ? int(n) : 1;
  }
  cpu::set_num_threads(threads);

  std::string error;
  gPhase = "reading the artifact";
  std::optional<Artifact> art = readArtifactFile(o.artifact, &error);
  if (!art)
    fail(error);
  const Artifact &a = *art;
  checkOutputs(o, &a);
  const int64_t M = a.microbatches, B = a.batch, S = a.seq, V = a.vocab;
  if (M < 1 || B < 1 || S < 1 || V < 1)
    fail(o.artifact + ": needs microbatches, batch, seq and vocab >= 1 (got " +
         std::to_string(M) + ", " + std::to_string(B) + ", " +
         std::to_string(S) + ", " + std::to_string(V) + ")");

  // A pipeline artifact holds every rank's program; this process runs all
  // of them (ranks as threads, the local transport).
  const bool pipeline = a.isPipeline();
  // Ranks that wait for each other must not spin: OpenMP's default active
  // wait keeps a waiting rank's threads busy on the cores the others need.
  // libgomp reads the policy when it loads, so set it and start again.
  if (pipeline && a.ranks > 1 && !std::getenv("OMP_WAIT_POLICY") &&
      ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1) == 0) {
    ::execv("/proc/self/exe", argv);
    // Not fatal: the run is only slower.
  }
  if (o.ranks && uint32_t(o.ranks) != a.ranks)
    fail("--ranks=" + std::to_string(o.ranks) + ", but " + o.artifact +
         " is compiled for " + std::to_string(a.ranks) + " rank(s)" +
         (pipeline ? " (schedule " + a.schedule + ")"
                   : " (a single-rank artifact; compile with "
                     "weipipe-opt --ranks=" +
                         std::to_string(o.ranks) + " --schedule=...)"));
  if (!pipeline && a.ranks != 1)
    fail(o.artifact + " is rank " + std::to_string(a.rank) + " of " +
         std::to_string(a.ranks) + " without rank programs");
  // A world of processes: this one runs rank RANK; rank 0 writes the
  // outputs and reports, the others only their own errors and figures.
  const bool tcp = o.transport == "tcp" || o.transport == "nccl";
  if (!o.trace.empty() && !pipeline)
    fail("--trace records the actions of a pipeline artifact; " + o.artifact +
         " is single-rank (compile with --schedule=single for one rank)");
  if (!o.trace.empty() && o.device != Device::Cpu)
    fail("--trace times actions on the host clock, which on --device cuda "
         "would time the kernels' launches, not the kernels: use --device "
         "cpu");
  if (!o.trace.empty() && tcp)
    fail("--trace records the ranks of one process: use --transport local");
  transport::WorldEnv world;
  if (tcp) {
    if (!pipeline)
      fail("--transport " + o.transport +
           " runs one rank of a pipeline artifact per process; " + o.artifact +
           " is single-rank (compile with --ranks/--schedule)");
    if (Status st = transport::worldFromEnv(&world); !st.ok())
      fail("--transport " + o.transport + ": " + st.message());
    if (uint32_t(world.size) != a.ranks)
      fail("WORLD_SIZE=" + std::to_string(world.size) + ", but " + o.artifact +
           " is compiled for " + std::to_string(a.ranks) + " ranks (schedule " +
           a.schedule + ")");
    gRankPrefix = "rank " + std::to_string(world.rank) + ": ";
    if (!o.quiet && world.rank == 0)
      std::fprintf(stderr,
                   "weipipe-run: waiting for %d processes at %s:%d "
                   "(--timeout %g s)\n",
                   world.size, world.masterAddr.c_str(), world.masterPort,
                   o.timeout);
    gPhase = "connecting to the other ranks";
    if (Status st = transport::connectTcp(world, o.timeout, &gWorld); !st.ok())
      fail(st.message());
  }
  const bool leader = !tcp || world.rank == 0;
  if (pipeline && !o.dumpLogits.empty())
    fail("--dump-logits needs a single-rank artifact (compile without "
         "--ranks/--schedule)");
  // Before anything is opened or trained.
  if (!o.dumpLogits.empty() && !a.logits.present())
    fail("--dump-logits: " + o.artifact + " keeps no logits");
  if (!o.dumpLogits.empty() && a.logits.shape != std::vector<int64_t>{B, S, V})
    fail("--dump-logits: " + o.artifact + ": logits have " +
         std::to_string(a.logits.numel()) +
         " elements, not [batch, seq, vocab] = [" + std::to_string(B) + ", " +
         std::to_string(S) + ", " + std::to_string(V) + "]");

  // Data: checked against the artifact's vocabulary up front.
  gPhase = "reading the data";
  auto tokens = TokenFile::load(o.data, V, o.tokenDType, o.format, &error);
  if (!tokens)
    fail(error);
  const int64_t dataSeed = o.dataSeed ? *o.dataSeed : o.seed;
  auto windows =
      Windows::create(*tokens, S, o.order, uint64_t(dataSeed), &error);
  if (!windows)
    fail(error);

  // Outputs: temporaries opened now, so that an unwritable path fails before
  // any training; renamed into place only at the very end.
  OutputFile logOut, weightsOut, logitsOut, traceOut;
  gOutputs[0] = &logOut;
  gOutputs[1] = &weightsOut;
  gOutputs[2] = &logitsOut;
  gOutputs[3] = &traceOut;
  // Every signal that ends the process removes the temporaries first.
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT, SIGUSR1, SIGUSR2,
                  SIGALRM, SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ, SIGSEGV,
                  SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS})
    std::signal(sig, onSignal);
  gDataBegin = static_cast<const char *>(tokens->mapping());
  gDataBytes = tokens->mappingBytes();
  gDataMessage = "weipipe-run: error: data file " + o.data +
                 " shrank during the run (a token past its new end was "
                 "read); no output was written\n";
  struct sigaction bus = {};
  bus.sa_sigaction = onBus;
  bus.sa_flags = SA_SIGINFO;
  sigemptyset(&bus.sa_mask);
  ::sigaction(SIGBUS, &bus, nullptr);
  if (leader && !o.log.empty() && !logOut.open(o.log, &error))
    fail(error);
  if (leader && !o.saveWeights.empty() &&
      !weightsOut.open(o.saveWeights, &error))
    fail(error);
  if (!o.dumpLogits.empty() && !logitsOut.open(o.dumpLogits, &error))
    fail(error);
  if (!o.trace.empty() && !traceOut.open(o.trace, &error))
    fail(error);

  uint64_t paramValues = 0;
  for (const Parameter &p : a.params)
    paramValues += uint64_t(p.numel());
  OptimizerConfig optimizer;
  optimizer.schedule = {o.schedule, o.lr, o.minLr, o.warmupSteps, o.steps};
  optimizer.beta1 = o.beta1;
  optimizer.beta2 = o.beta2;
  optimizer.eps = o.eps;
  optimizer.weightDecay = o.weightDecay;
  optimizer.gradClip = o.gradClip;
  gPhase = "allocating the plan";
  std::unique_ptr<Executor> ex;
  std::unique_ptr<Trainer> trainer;
  std::unique_ptr<PipelineTrainer> pipe;
  if (pipeline) {
    const std::vector<uint32_t> mine{uint32_t(world.rank)};
    pipe = PipelineTrainer::create(
        a, dirName(o.artifact), *windows, optimizer, threads, &error,
        o.memoryLimit, {o.device, *o.precision}, tcp ? &mine : nullptr);
    if (!pipe)
      fail(error);
  } else {
    ex = Executor::create(a, dirName(o.artifact), &error, nullptr,
                          o.memoryLimit, {o.device, *o.precision});
    if (!ex)
      fail(error);
    trainer = Trainer::create(*ex, a, *windows, optimizer, &error);
    if (!trainer)
      fail(error);
  }
  auto bytesAllocated = [&] {
    return pipe ? pipe->bytesAllocated()
                : ex->bytesAllocated() + trainer->optimizerBytes();
  };
  // Host copies of the parameters of a device executor or of a pipeline's
  // ranks, made when they are read.
  std::vector<std::vector<float>> hostParams;
  auto paramValue = [&](size_t i) -> const float * {
    if (!pipe && !ex->onDevice())
      return ex->params()[i].value;
    hostParams.resize(a.params.size());
    hostParams[i].resize(size_t(a.params[i].numel()));
    cpu::Status st = pipe ? pipe->readParameter(i, hostParams[i].data())
                          : ex->readParameter(i, hostParams[i].data());
    if (!st.ok())
      fail("reading parameter '" + a.params[i].name + "': " + st.message());
    return hostParams[i].data();
  };
  const uint64_t tokensPerStep = uint64_t(M * B * S);

  if (!o.quiet && leader) {
    std::fprintf(
        stderr,
        "weipipe-run: %s: %s, schedule %s, rank %u of %u\n"
        "weipipe-run: parameters: %zu tensors, %llu values (%s); "
        "arena %s; plan peak %s\n"
        "weipipe-run: step: %lld micro-batches x %lld rows x %lld "
        "tokens = %llu tokens; vocabulary %lld\n"
        "weipipe-run: data %s; %llu windows of %lld (%s, seed "
        "%lld)\n"
        "weipipe-run: %d threads; %lld steps; device %s, precision %s\n",
        o.artifact.c_str(), a.producer.c_str(), a.schedule.c_str(), a.rank,
        a.ranks, a.params.size(), (unsigned long long)paramValues,
        formatBytes(paramValues * sizeof(float)).c_str(),
        formatBytes(a.arenaBytes).c_str(), formatBytes(a.peakBytes).c_str(),
        (long long)M, (long long)B, (long long)S,
        (unsigned long long)tokensPerStep, (long long)V,
        tokens->describe().c_str(), (unsigned long long)windows->count(),
        (long long)(S + 1), dataOrderName(o.order), (long long)dataSeed,
        threads, (long long)o.steps,
        (ex ? ex->deviceDescription() : pipe->deviceDescription()).c_str(),
        precisionName(*o.precision));
  }

  std::vector<int64_t> ids(size_t(B * S)), targets(size_t(B * S));

  if (logitsOut.isOpen()) {
    // Step 0's first micro-batch (windows k = 0..B-1 of the data order).
    windows->fillMicrobatch(0, 0, M, B, ids.data(), targets.data());
    float loss = 0;
    cpu::Status st = ex->runForward(ids.data(), targets.data(), &loss);
    if (!st.ok())
      fail("--dump-logits: " + st.message());
    logitsOut.write(npyHeaderF32({B, S, V}));
    logitsOut.write(ex->logits(), size_t(B * S * V) * sizeof(float));
    if (!logitsOut.flush(&error))
      fail(error);
  }

  gPhase = "training";
  Progress progress(stderr, !o.quiet && leader, ::isatty(2) != 0);
  const auto trainStart = std::chrono::steady_clock::now();
  double lastLoss = 0;
  uint64_t tokensDone = 0;
  // Pipelines: each rank's bytes sent and seconds waited in this step.
  auto rankFields = [](const StepRecord &r) -> std::string {
    if (r.rankBytesSent.empty())
      return "";
    std::string sent, wait;
    for (size_t k = 0; k < r.rankBytesSent.size(); ++k) {
      sent += (k ? ", " : "") + std::to_string(r.rankBytesSent[k]);
      wait += (k ? ", " : "") + json::number(r.rankWaitSeconds[k]);
    }
    return ", \"rank_sent_bytes\": [" + sent + "], \"rank_wait_s\": [" + wait +
           "]";
  };
  auto s0 = std::chrono::steady_clock::now();
  // After every step: the log line and the progress bar.
  auto record = [&](const StepRecord &r) -> Status {
    const int64_t step = r.step;
    const auto s1 = std::chrono::steady_clock::now();
    const double stepS = seconds(s0, s1);
    tokensDone += tokensPerStep;
    lastLoss = r.loss;
    if (logOut.isOpen()) {
      std::string w;
      for (size_t k = 0; k < r.windows.size(); ++k)
        w += (k ? ", " : "") + std::to_string(r.windows[k]);
      // The reference's fields first, in its order, then ours.
      logOut.write(
          "{\"step\": " + std::to_string(step) + ", \"loss\": " +
          json::number(r.loss) + ", \"lr\": " + json::number(r.lr) +
          ", \"grad_norm\": " + json::number(r.gradNorm) +
          ", \"tokens\": " + std::to_string(r.tokens) + ", \"windows\": [" + w +
          "], \"time_s\": " + json::number(std::round(stepS * 1e4) / 1e4) +
          ", \"ms\": " + json::number(stepS * 1e3) + ", \"tokens_per_s\": " +
          json::number(stepS > 0 ? double(tokensPerStep) / stepS : 0.0) +
          rankFields(r) + "}\n");
      if (!logOut.flush(&error))
        fail(error);
    }
    ProgressState ps;
    ps.done = step + 1;
    ps.total = o.steps;
    ps.loss = r.loss;
    ps.elapsedS = seconds(trainStart, s1);
    ps.tokensPerSec = ps.elapsedS > 0 ? double(tokensDone) / ps.elapsedS : 0;
    ps.memBytes = bytesAllocated();
    ps.rssBytes = processRssBytes();
    progress.update(ps);
    s0 = std::chrono::steady_clock::now();
    return {};
  };
  if (pipe) {
    pipe->recordTimeline(traceOut.isOpen());
    if (Status st = pipe->train(0, o.steps, record, gWorld.get(),
                                {o.transport == "nccl", o.timeout});
        !st.ok()) {
      progress.finish();
      gWorld.reset(); // the trainer told the others already
      fail(st.message());
    }
  } else {
    for (int64_t step = 0; step < o.steps; ++step) {
      StepRecord r;
      if (cpu::Status st = trainer->step(step, &r); !st.ok()) {
        progress.finish();
        fail(st.message());
      }
      if (Status st = record(r); !st.ok())
        fail(st.message());
    }
  }
  progress.finish();
  if (pipe) {
    // What each rank allocated is what the compiler planned (RankMemory.h):
    // a difference is a runtime bug, never the user's.
    const std::vector<RankStats> stats = pipe->stats();
    for (size_t k = 0; k < stats.size(); ++k) {
      const uint32_t r = pipe->localRanks()[k];
      const RankMemoryPlan plan = planRankMemory(a, r);
      const RankMemoryPlan &got = stats[k].allocated;
      if (got.total() != plan.total() || got.instances != plan.instances ||
          got.waiting != plan.waiting)
        fail("internal error: rank " + std::to_string(r) + " allocated " +
             std::to_string(got.total()) + " bytes, the plan says " +
             std::to_string(plan.total()));
    }
  }
  if (pipe && !o.quiet) {
    const std::vector<RankStats> stats = pipe->stats();
    for (size_t r = 0; r < stats.size(); ++r)
      std::fprintf(
          stderr,
          "weipipe-run: rank %u: sent %llu messages, %s; waited "
          "%.3fs; allocated %s (activations %s, slots %s; %llu "
          "bytes, as planned)\n",
          pipe->localRanks()[r], (unsigned long long)stats[r].messagesSent,
          formatBytes(stats[r].bytesSent).c_str(), stats[r].waitSeconds,
          formatBytes(stats[r].allocated.total()).c_str(),
          formatBytes(stats[r].allocated.activationBytes +
                      stats[r].allocated.scratchBytes +
                      stats[r].allocated.kernelScratchBytes)
              .c_str(),
          formatBytes(stats[r].allocated.slotBytes).c_str(),
          (unsigned long long)stats[r].allocated.total());
  }

  gPhase = "saving the weights";
  // Over processes, rank 0 saves what every rank owns.
  std::vector<std::vector<float>> gathered;
  if (tcp && !o.saveWeights.empty())
    if (Status st = pipe->gatherParameters(*gWorld, &gathered); !st.ok())
      fail("gathering the weights: " + st.message());
  if (weightsOut.isOpen()) {
    // Every parameter under its name and each alias (transposed copies
    // transposed back to the alias's layout).
    std::vector<std::vector<float>> transposed;
    transposed.reserve(a.params.size() * 2);
    std::vector<F32TensorView> views;
    for (size_t pi = 0; pi < a.params.size(); ++pi) {
      const Parameter &d = a.params[pi];
      const float *value =
          gathered.empty() ? paramValue(pi) : gathered[pi].data();
      views.push_back({d.name, d.shape, value});
      for (const Alias &al : d.aliases) {
        if (!al.transposed) {
          views.push_back({al.name, d.shape, value});
          continue;
        }
        if (d.shape.size() != 2)
          fail("parameter " + d.name + ": alias " + al.name +
               " is transposed but the parameter is not 2-D");
        const int64_t r = d.shape[0], c = d.shape[1];
        std::vector<float> t(size_t(r * c));
        for (int64_t i = 0; i < r; ++i)
          for (int64_t j = 0; j < c; ++j)
            t[size_t(j * r + i)] = value[i * c + j];
        transposed.push_back(std::move(t));
        views.push_back({al.name, {c, r}, transposed.back().data()});
      }
    }
    if (!writeSafetensors(weightsOut, views,
                          {{"weipipe.run", optionsJson(o, a, dataSeed)}},
                          &error))
      fail(error);
  }
  if (traceOut.isOpen()) {
    const std::vector<TraceEvent> events = pipe->timeline();
    double end = 0;
    for (const TraceEvent &e : events)
      end = std::max(end, e.start + e.duration);
    const std::string text = chromeTrace(
        events, int(a.ranks),
        {{"source", "weipipe-run"},
         {"artifact", o.artifact},
         {"schedule", a.schedule},
         {"step", std::to_string(std::max<int64_t>(o.steps - 1, 0))},
         {"threads", std::to_string(threads)},
         {"iteration_seconds", std::to_string(end)}},
        pipe->instructionTimes());
    traceOut.write(text);
  }
  // Everything is written: rename the outputs into place.
  for (OutputFile *f : {&logitsOut, &logOut, &weightsOut, &traceOut})
    if (f->isOpen() && !f->commit(&error))
      fail(error);
  gPhase = "waiting for the other ranks to finish";
  gWorld.reset();

  if (!o.quiet && leader) {
    const double total = seconds(t0, std::chrono::steady_clock::now());
    char buf[96];
    std::snprintf(buf, sizeof(buf), "%lld steps in %.1fs", (long long)o.steps,
                  total);
    std::string done = std::string("weipipe-run: done: ") + buf;
    if (o.steps > 0) {
      std::snprintf(buf, sizeof(buf), ", final loss %.6f", lastLoss);
      done += buf;
    }
    for (const std::string *p : {&o.log, &o.saveWeights, &o.dumpLogits})
      if (!p->empty())
        done += "; wrote " + *p;
    std::fprintf(stderr, "%s\n", done.c_str());
  }
  return 0;
}
