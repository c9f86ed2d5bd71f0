//===- Executor.h - runs a .wpp artifact on the CPU -------------*- C++ -*-===//
//
// Part of weipipe's runtime. Owns one rank's memory (arena, parameters,
// gradients, constants) as the artifact's buffer plan lays it out, and walks
// instruction lists, calling the CPU kernels (cpu/Kernels.h). The optimizer
// and the data loop live in the trainer (train/Trainer.h), which reaches the
// parameters and gradients through `params()`.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_EXECUTOR_H
#define WEIPIPE_RUNTIME_EXECUTOR_H

#include "weipipe/runtime/Artifact.h"
#include "weipipe/runtime/cpu/Kernels.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace weipipe::rt {

/// One parameter's buffers, owned by the executor.
struct ParamBuffers {
  const Parameter *desc = nullptr;
  float *value = nullptr;
  float *grad = nullptr;
  int64_t numel = 0;
};

/// The memory the system can still give (MemAvailable), or 0 if unknown.
uint64_t availableMemoryBytes();

/// Where an executor's memory lives and its kernels run.
enum class Device { Cpu, Cuda };
/// How the GPU multiplies: fp32 throughout (checked tightly against the
/// CPU), or bf16 tensor-core products over fp32 storage (docs/architecture.md,
/// "The CUDA backend"). The CPU computes in fp32 only.
enum class Precision { Fp32, Bf16 };
const char *deviceName(Device d);       ///< "cpu", "cuda"
const char *precisionName(Precision p); ///< "fp32", "bf16"

class Executor;
namespace detail {
class DeviceBackend;
/// A device executor's backend (nullptr on the CPU): the runtime's own
/// pipeline ranks move their slots with it (train/Pipeline.cpp).
DeviceBackend *deviceBackend(Executor &e);
} // namespace detail

struct ExecutorOptions {
  Device device = Device::Cpu;
  Precision precision = Precision::Fp32;
};

class Executor {
public:
  /// Allocates the plan (fails with the byte count when memory is short) and
  /// loads every parameter from its storage; relative storage paths resolve
  /// against `artifactDir`. The artifact must outlive the executor.
  /// `holds` (a pipeline rank's, rankParameters()): the parameters to
  /// allocate and load; the others have no buffers of their own and must be
  /// bound (bindParam) before any instruction that uses them runs.
  /// The plan, the trainer's AdamW state included, must fit the available
  /// memory and `memoryLimit` (bytes; 0: no limit).
  /// On Device::Cuda every buffer is on the current GPU (the plan must fit
  /// its free memory), `params()` hold device addresses, and the optimizer
  /// runs there too (optimizerStep); a pipeline rank's slots and arena
  /// instances must be device memory too (detail::deviceBackend).
  static std::unique_ptr<Executor>
  create(const Artifact &a, const std::string &artifactDir, std::string *error,
         const std::vector<bool> *holds = nullptr, uint64_t memoryLimit = 0,
         const ExecutorOptions &options = {});
  ~Executor();

  const Artifact &artifact() const { return a_; }
  /// The buffers of every parameter: host addresses on the CPU, device
  /// addresses on a GPU.
  std::vector<ParamBuffers> &params() { return params_; }
  const ExecutorOptions &options() const;
  bool onDevice() const { return options().device != Device::Cpu; }
  /// "cpu" or the GPU's description ("cuda: NVIDIA H100 ... (sm_90)").
  std::string deviceDescription() const;
  /// Copies parameter `index`'s values (its numel floats) to host memory
  /// `dst`, from the device on a GPU.
  cpu::Status readParameter(size_t index, float *dst) const;
  /// On a device executor: the global gradient norm (before clipping) into
  /// *gradNorm, then one AdamW step of every parameter with configs[i],
  /// its gradient scaled by cpu::clip_scale(norm, gradClip) when gradClip >
  /// 0 (the trainer's step, with the moments on the device).
  cpu::Status optimizerStep(const std::vector<cpu::AdamWConfig> &configs,
                            int64_t step, double gradClip, double *gradNorm);
  /// Bytes this executor allocated (arena + params + grads + constants).
  uint64_t bytesAllocated() const;
  /// The same, by kind (each buffer rounded up to 64 bytes).
  struct Allocation {
    uint64_t arena = 0, parameters = 0, gradients = 0, constants = 0,
             scratch = 0;
    uint64_t stageScratch = 0; ///< pipeline stages' temporaries
  };
  const Allocation &allocation() const;

  void zeroGrads();

  /// Points every instruction that reads parameter `index` at `value` and
  /// every one that writes its gradient at `grad` (each at least the
  /// parameter's numel floats, owned by the caller: a ring slot that holds
  /// the parameter this turn), until the next call; nullptr restores the
  /// executor's own buffer (`params()`, which the binding never changes).
  /// Parameter refs resolve through this table, so a pipeline rank can run
  /// the same instructions on whichever weights arrive.
  void bindParam(size_t index, float *value, float *grad);
  /// Points every arena ref of function `function` into `base`, an arena
  /// instance of at least the function's arena bytes (its pipeline stage's
  /// `arenaBytes`), until the next call. A pipeline rank keeps one instance
  /// per micro-batch of a stage in flight and runs the stage's functions on
  /// the micro-batch's instance.
  void bindArena(size_t function, uint8_t *base);
  /// The stages' shared temporaries (Space::Scratch; device memory on a
  /// device): where a stage's outputs and input gradients lie from the end
  /// of the function that writes them until the pipeline copies them on,
  /// and its output gradients from the pipeline's copy until the backward
  /// that reads them, with no other function running in between.
  uint8_t *stageScratch();
  /// Runs function `function` as bound now (on a device: enqueues it).
  cpu::Status runFunction(size_t function);
  /// On a device: waits for everything enqueued, then reports the first
  /// data error an instruction recorded (an id out of range), as
  /// runMicrobatch does. Nothing to do on the CPU, whose kernels report
  /// them as they run.
  cpu::Status synchronize();
  /// Times every instruction it runs from now on (host clock, so the CPU
  /// backend only; a device enqueues), adding up per instruction: what
  /// calibrates the simulator's machine model (weipipe-run --trace).
  void profileInstructions(bool on);
  struct InstructionTime {
    double seconds = 0; ///< all runs together
    uint64_t runs = 0;
    double fastest = 0; ///< the fastest run
  };
  /// Starts the sums over.
  void resetInstructionTimes();
  /// Per function, per instruction, since profiling was turned on or reset.
  const std::vector<std::vector<InstructionTime>> &instructionTimes() const;
  /// The buffers parameter `index` is bound to now.
  float *boundValue(size_t index) const;
  float *boundGrad(size_t index) const;

  /// Runs the micro-batch program on one micro-batch. `ids` and `targets`
  /// are [batch * seq] int64 (row-major [B, S]). `dloss` seeds the backward
  /// (1 / microbatches for a step mean). `loss` receives the forward's loss.
  /// Errors (an id out of range) name the instruction.
  cpu::Status runMicrobatch(const int64_t *ids, const int64_t *targets,
                            float dloss, float *loss);
  /// Runs only the forward function(s) (the first function of kind Forward);
  /// afterwards `logits()` is valid.
  cpu::Status runForward(const int64_t *ids, const int64_t *targets,
                         float *loss);
  const float *logits() const;

  /// After a non-finite loss: reruns the micro-batch checking every f32
  /// result, and returns "function F, instruction I (NAME): result R has
  /// N non-finite values (first at element E = nan)", or "" if none.
  /// A non-finite parameter is named instead, before running. Zeroes the
  /// gradients first, so that what earlier micro-batches left in them is not
  /// blamed on the first instruction accumulating into them.
  std::string findFirstNonFinite(const int64_t *ids, const int64_t *targets,
                                 float dloss);

private:
  friend detail::DeviceBackend *detail::deviceBackend(Executor &e);
  explicit Executor(const Artifact &a);
  /// The loss the last forward wrote (0 if the artifact has none).
  float readLoss() const;
  const Artifact &a_;
  std::vector<ParamBuffers> params_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace weipipe::rt

#endif // WEIPIPE_RUNTIME_EXECUTOR_H
