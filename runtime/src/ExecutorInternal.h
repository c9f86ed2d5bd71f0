//===- ExecutorInternal.h - the executor's resolved steps -------*- C++ -*-===//
//
// Part of weipipe's runtime. Not installed. What the executor resolves every
// instruction into once (pointers, kernel shapes, derived sizes), shared by
// its CPU bindings (Executor.cpp) and a device backend's (the CUDA one,
// src/cuda/Backend.cpp), and the interface such a backend implements: the
// executor keeps one resolution, one parameter table and one memory plan
// whatever runs the kernels.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_EXECUTORINTERNAL_H
#define WEIPIPE_RUNTIME_EXECUTORINTERNAL_H

#include "weipipe/runtime/Artifact.h"
#include "weipipe/runtime/Executor.h"
#include "weipipe/runtime/cpu/Kernels.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

namespace weipipe::rt::detail {

/// A resolved TensorRef: p is nullptr when the ref is absent.
struct Ref {
  void *p = nullptr;
  cpu::Shape s;
  int64_t n = 0;
  DType dt = DType::F32;
  template <class T> T *as() const { return static_cast<T *>(p); }
  float *f() const { return static_cast<float *>(p); }
  const int64_t *ids() const { return static_cast<const int64_t *>(p); }
};

/// One instruction, resolved.
struct Step {
  const Instruction *ins = nullptr;
  std::vector<Ref> in, out;
  // Where it is (messages), and a device backend's record of its data
  // errors (-1: none).
  uint32_t function = 0, index = 0;
  int errorSlot = -1;
  // A norm's input-gradient and parameter-gradient ops that the compiler
  // marked (Instruction::kFusedWithNext): the first runs both in one kernel
  // call (one recomputation of the statistics, one pass over the rows) and
  // the second does nothing.
  const Step *partner = nullptr;
  bool doneByPrevious = false;
  // Sizes derived once: linear M, K, N; norm rows, normSize.
  int64_t d0 = 0, d1 = 0, d2 = 0;
  cpu::AttentionParams attn;
  cpu::RotaryDims rotary;
  // Concat's inputs as the kernel's Span wants them (the one of its dtype).
  std::vector<cpu::Shape> shapes;
  std::tuple<std::vector<const float *>, std::vector<const int64_t *>,
             std::vector<const int32_t *>, std::vector<const uint8_t *>>
      ptrs;
};

/// The step's attention problem with the mask pointer of its mask operand as
/// bound now: a rebound arena (Executor::bindArena) moves a mask computed in
/// it, and the problem resolved at load time would still point at the old
/// place.
inline cpu::AttentionParams attentionNow(const Step &s, size_t maskOperand) {
  cpu::AttentionParams p = s.attn;
  const Ref &m = s.in[maskOperand];
  p.mask.additive = m.dt == DType::F32 ? m.f() : nullptr;
  p.mask.keep = m.dt == DType::Bool ? m.as<uint8_t>() : nullptr;
  return p;
}

/// What a norm-gradient kernel call takes, from an input-gradient op
/// (x, scale, dy) -> dx or a parameter-gradient op (x, dy) -> (dscale[,
/// dbias]) and its fused partner (Instruction::kFusedWithNext), which the
/// one call also computes. Absent results are nullptr.
struct NormGradCall {
  bool layerNorm = false;
  const float *x = nullptr, *scale = nullptr, *dy = nullptr;
  float *dx = nullptr, *dscale = nullptr, *dbias = nullptr;
  float eps = 0.0f;
};
inline NormGradCall normGradCall(const Step &s) {
  const Opcode op = s.ins->op;
  const bool input =
      op == Opcode::LayerNormGradInput || op == Opcode::RMSNormGradInput;
  const Step *gin = input ? &s : s.partner;
  const Step *gpar = input ? s.partner : &s;
  NormGradCall c;
  c.layerNorm =
      op == Opcode::LayerNormGradInput || op == Opcode::LayerNormGradParams;
  c.x = s.in[0].f();
  c.dy = s.in[input ? 2 : 1].f();
  c.scale = gin ? gin->in[1].f() : nullptr;
  c.dx = gin ? gin->out[0].f() : nullptr;
  c.dscale = gpar ? gpar->out[0].f() : nullptr;
  c.dbias = gpar && c.layerNorm ? gpar->out[1].f() : nullptr;
  c.eps = float(s.ins->floats[0]);
  return c;
}

/// Where a device executor's buffers live and its instructions run (the CPU
/// executor needs none of this: its memory is the host's and its bindings
/// are in Executor.cpp). Pointers it hands out are device addresses; the
/// executor resolves refs into them exactly as into host buffers.
class DeviceBackend {
public:
  virtual ~DeviceBackend() = default;
  /// "cuda: NVIDIA H100 80GB HBM3 (sm_90)".
  virtual std::string describe() const = 0;
  /// Makes the backend's device the calling thread's current one (CUDA's
  /// current device is per thread: a pipeline rank's thread is not the
  /// one that made its executor).
  virtual Status bindThread() = 0;
  /// Memory the device can still give, in bytes.
  virtual uint64_t availableBytes() const = 0;
  /// `bytes` of zeroed device memory that lives as long as the backend.
  virtual Status allocate(uint64_t bytes, const std::string &what,
                          uint8_t **out) = 0;
  /// Host -> device, device -> host (both complete before returning), and
  /// zeroing (ordered with the instructions).
  virtual Status upload(void *dst, const void *src, uint64_t bytes) = 0;
  virtual Status download(void *dst, const void *src, uint64_t bytes) = 0;
  virtual Status zero(void *dst, uint64_t bytes) = 0;
  /// Once, after resolution: sizes workspaces, makes GEMM plans, gives the
  /// instructions that can meet data errors their error records.
  virtual Status prepare(std::vector<std::vector<Step>> &functions) = 0;
  /// Enqueues one instruction (its accumulating results already zeroed
  /// where the instruction writes them).
  virtual Status run(Step &s) = 0;
  /// Waits for everything enqueued; then the first data error an
  /// instruction recorded (an id out of range), in program order, as
  /// "function F, instruction I (NAME): ..." with the records cleared.
  virtual Status finish(const Artifact &a) = 0;
  /// The AdamW moments of `n` floats per parameter and the optimizer step
  /// over the executor's parameters (the trainer's, on the device).
  virtual Status optimizerStep(std::vector<ParamBuffers> &params,
                               const std::vector<cpu::AdamWConfig> &configs,
                               int64_t step, double gradClip,
                               double *gradNorm) = 0;

  // What a pipeline rank on the device needs besides the instructions
  // (train/Pipeline.cpp): its slots and arena instances are device buffers
  // from allocate(), moved and combined on the compute stream, in order
  // with the instructions.

  /// dst := src (device to device), dst += src (n floats).
  virtual Status copy(void *dst, const void *src, uint64_t bytes) = 0;
  virtual Status accumulate(float *dst, const float *src, int64_t n) = 0;
  /// sums[i] := the sum of squares of tensors[i] (n[i] floats), each as
  /// the single-rank optimizer's norm adds it; waits for the result.
  virtual Status sumsOfSquares(const std::vector<const float *> &tensors,
                               const std::vector<int64_t> &n,
                               std::vector<double> *sums) = 0;
  /// One AdamW step of the parameters with a value and a gradient, their
  /// gradients scaled by `scale` (the clipping factor the ranks agreed on).
  virtual Status adamw(std::vector<ParamBuffers> &params,
                       const std::vector<cpu::AdamWConfig> &configs,
                       int64_t step, float scale) = 0;

  /// Transfers between ranks on one device (the `local` transport's device
  /// side): a second stream per rank carries them, ordered against the
  /// compute stream by events; the host never waits for either.
  /// A fence: everything enqueued before it (an event), complete when it
  /// is; shared by the ranks that wait for it.
  using Fence = std::shared_ptr<void>;
  /// *out: everything enqueued on the compute stream so far.
  virtual Status fence(Fence *out) = 0;
  /// Makes the compute stream wait for `f` (null: nothing).
  virtual Status await(const Fence &f) = 0;
  /// After everything enqueued on the compute stream so far: copies `bytes`
  /// at `src` into a new device buffer (*staging), on the transfer stream;
  /// *done: the copy's fence.
  virtual Status stageOut(const void *src, uint64_t bytes, void **staging,
                          Fence *done) = 0;
  /// After the fences `after` (another rank's stageOut; the point from
  /// which `dst` was free): copies `staging` into `dst` and frees it, on
  /// the transfer stream; *done: the copy's fence.
  virtual Status stageIn(void *dst, void *staging, uint64_t bytes,
                         const std::vector<Fence> &after, Fence *done) = 0;

  /// Transfers between processes, one GPU each (the `nccl` transport;
  /// cuda/Channels.h): channels opened from unique ids the processes
  /// exchanged (newChannelId on one end), all at once. A send is buffered,
  /// as the transport contract wants: its bytes are copied on the compute
  /// stream into scratch that the channel sends and frees, and its fence
  /// is that copy; a receive runs after `after` and its fence is the
  /// arrival. The compute stream awaits them where the schedule waits.
  virtual Status newChannelId(std::vector<uint8_t> *id) = 0;
  virtual Status openChannels(const std::vector<std::vector<uint8_t>> &ids,
                              const std::vector<int> &sizes,
                              const std::vector<int> &index) = 0;
  virtual Status channelSend(int channel, const void *src, uint64_t bytes,
                             Fence *done) = 0;
  virtual Status channelRecv(int channel, void *dst, uint64_t bytes,
                             const Fence &after, Fence *done) = 0;
  /// Host doubles summed over channel c's ranks (through the device),
  /// waited for as drain() waits.
  virtual Status channelSum(int channel, double *host, size_t n,
                            const std::function<Status()> &check,
                            double timeoutSeconds) = 0;
  /// Ends every channel's pending transfers (a rank that fails).
  virtual void abortChannels() = 0;
  /// Waits for the compute stream without trusting it to finish: every
  /// 100 ms `check` (the host side of the world: a peer that failed) and
  /// the channels' own errors are read, and after `timeoutSeconds` without
  /// finishing, or on an error, the channels are aborted (their pending
  /// transfers end) and the error returned.
  virtual Status drain(const std::function<Status()> &check,
                       double timeoutSeconds) = 0;
};

/// The CUDA backend on the current device, or nullptr with *error set (no
/// device, a build without CUDA).
std::unique_ptr<DeviceBackend> makeCudaBackend(Precision precision,
                                               std::string *error);

} // namespace weipipe::rt::detail

#endif // WEIPIPE_RUNTIME_EXECUTORINTERNAL_H
