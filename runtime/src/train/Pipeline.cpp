//===- Pipeline.cpp - training a pipeline artifact on several ranks -------===//
//
// Part of weipipe's runtime. See Pipeline.h.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/train/Pipeline.h"

#include "../ExecutorInternal.h"
#include "weipipe/runtime/RankMemory.h"
#include "weipipe/runtime/transport/Transport.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

namespace weipipe::rt::train {

namespace {

/// A block of a rank's memory (a slot, an arena instance): host memory, or
/// device memory that the executor's backend owns. Memory allocates it.
struct Buffer {
  uint8_t *p = nullptr;
  uint64_t size = 0;
  uint8_t *data() const { return p; }
  float *f() const { return reinterpret_cast<float *>(p); }
};

/// Where a rank's blocks live and how their bytes move: host memory and
/// memcpy, or the GPU of the rank's executor (detail::DeviceBackend), where
/// every copy is enqueued on its compute stream in order with the
/// instructions and the host does not wait.
class Memory {
public:
  explicit Memory(detail::DeviceBackend *device) : dev_(device) {}
  Memory(const Memory &) = delete;
  Memory &operator=(const Memory &) = delete;
  ~Memory() {
    for (void *p : host_)
      std::free(p);
  }
  detail::DeviceBackend *device() const { return dev_; }

  /// `bytes` zeroed bytes, 64-byte aligned (256 on a device).
  Status allocate(uint64_t bytes, const std::string &what, Buffer *b) {
    b->size = bytes;
    if (dev_)
      return dev_->allocate(std::max<uint64_t>(bytes, 1), what, &b->p);
    const uint64_t n = alignedBytes(std::max<uint64_t>(bytes, 1));
    b->p = static_cast<uint8_t *>(std::aligned_alloc(64, n));
    if (!b->p)
      return Status::error("cannot allocate " + what + " of " +
                           std::to_string(bytes) + " bytes");
    host_.push_back(b->p);
    std::memset(b->p, 0, n);
    return {};
  }
  Status copy(void *dst, const void *src, uint64_t bytes) {
    if (dev_)
      return dev_->copy(dst, src, bytes);
    if (bytes)
      std::memmove(dst, src, size_t(bytes));
    return {};
  }
  Status zero(void *dst, uint64_t bytes) {
    if (dev_)
      return dev_->zero(dst, bytes);
    std::memset(dst, 0, size_t(bytes));
    return {};
  }
  /// dst[i] += src[i] for n floats.
  Status add(float *dst, const float *src, uint64_t n) {
    if (dev_)
      return dev_->accumulate(dst, src, int64_t(n));
    for (uint64_t i = 0; i < n; ++i)
      dst[i] += src[i];
    return {};
  }
  /// Host memory into the rank's, and back; both complete on return.
  Status upload(void *dst, const void *host, uint64_t bytes) {
    return dev_ ? dev_->upload(dst, host, bytes) : copy(dst, host, bytes);
  }
  Status download(void *host, const void *src, uint64_t bytes) {
    return dev_ ? dev_->download(host, src, bytes) : copy(host, src, bytes);
  }

private:
  detail::DeviceBackend *dev_;
  std::vector<void *> host_;
};

/// What a device rank sends through the transport in place of the bytes:
/// a staged copy of them on the same GPU, and the fence of that copy,
/// which the receiver takes over (detail::DeviceBackend::stageOut).
struct Handoff {
  void *staging = nullptr;
  uint64_t bytes = 0;
  detail::DeviceBackend::Fence *ready = nullptr; ///< owned by the receiver
};

/// One posted transfer of a program (a token): its requests and, on a
/// device, where its receives go and what its sends must finish before the
/// slots they read are written again.
struct Transfer {
  std::vector<transport::Request> reqs;
  std::vector<Handoff> handoffs; ///< a device receive's, filled by the wait
  /// A device receive over another process's transport: the bytes, which
  /// the wait uploads.
  std::vector<std::vector<uint8_t>> host;
  std::vector<Buffer *> into;
  std::vector<uint64_t> bytes;
  std::vector<detail::DeviceBackend::Fence> fences; ///< sends' copies
  detail::DeviceBackend::Fence posted; ///< receives: the slots were free
};

double seconds(std::chrono::steady_clock::time_point a,
               std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

} // namespace

/// Seconds on the steady clock, the timeline's time base.
double clockSeconds() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// One rank: its executor, slots, arena instances and program.
class Rank {
public:
  Rank(const Artifact &a, int rank, Executor &ex, OptimizerConfig config)
      : a_(a), r_(rank), prog_(a.programs[size_t(rank)]), ex_(ex),
        config_(config), mem_(detail::deviceBackend(ex)) {}

  Status init();
  /// One optimizer step; `counts[m]` the targets micro-batch m counts, the
  /// data of every micro-batch in `ids`/`targets` ([N][B*S]).
  Status step(transport::Transport &t, int64_t step,
              const std::vector<int64_t> &counts, int64_t total,
              const std::vector<std::vector<int64_t>> &ids,
              const std::vector<std::vector<int64_t>> &targets,
              StepRecord *rec);

  /// Moves device slots over NCCL channels (opened at the first step) in a
  /// world of processes.
  void useChannels(const WorldOptions &w) { world_ = w; }

  RankStats stats;
  /// Whether step() records its timeline (compute actions, sends and the
  /// closing reductions and optimizer, in steady_clock seconds); each step
  /// replaces the last one's.
  bool tracing = false;
  std::vector<TraceEvent> timeline;
  double timelineBegin = 0; ///< when the traced step began
  int tracedSteps = 0;      ///< steps traced so far
  /// Whether this rank updates parameter i (and so holds its current value).
  std::vector<bool> ownsParam;
  Executor &executor() { return ex_; }
  uint64_t bytes() const;

private:
  const Artifact &a_;
  const int r_;
  const RankProgram &prog_;
  Executor &ex_;
  OptimizerConfig config_;
  Memory mem_;
  WorldOptions world_;
  bool channelsOpen_ = false;
  std::map<int, int> sendChannel_, recvChannel_; // by peer
  int worldChannel_ = -1;
  std::vector<std::unique_ptr<Buffer>> slotStore_;
  std::vector<Buffer *> slots_; // what each slot label holds now (Swap)
  std::vector<std::vector<uint64_t>> layout_; // per stage: slot offsets
  // Per stage: where its boundary tensors go in an activation slot.
  std::vector<std::vector<uint64_t>> inLayout_, outLayout_, dinLayout_,
      doutLayout_;
  // Arena instances: per stage, free ones and the micro-batch's.
  std::vector<std::vector<std::unique_ptr<Buffer>>> free_;
  std::map<std::pair<size_t, int>, std::unique_ptr<Buffer>> live_;
  InstanceLifetimes lifetimes_;
  /// (stage, micro-batch) whose output gradient the next stage's backward
  /// (or the epilogue) handed to its instance here, not yet consumed.
  std::set<std::pair<size_t, int>> doutReady_;
  /// Output gradients waiting apart from their instance (a scratch dout,
  /// RankMemory.h): free buffers by size, and each (stage, micro-batch)'s.
  std::map<uint64_t, std::vector<std::unique_ptr<Buffer>>> waitFree_;
  std::map<std::pair<size_t, int>, std::unique_ptr<Buffer>> waiting_;
  RankStats stepStart_; // the figures when the step began
  std::map<int, Transfer> tokens_;
  std::vector<uint64_t> sendSeq_, recvSeq_; // per peer: message tags
  // The step's data in the rank's memory, written once per step: every
  // micro-batch's token ids and targets, its loss weight (its share of the
  // step's targets), and the losses the forwards compute.
  Buffer stepData_;
  uint64_t idsAt_ = 0, targetsAt_ = 0, weightsAt_ = 0, lossesAt_ = 0;
  std::vector<bool> lossHere_;              // per micro-batch: ours
  std::vector<float> losses_;               // per micro-batch (NaN: not ours)
  std::vector<std::vector<float>> m_, v_;   // AdamW state of owned params
  std::vector<bool> gradsStaged_; // params whose step gradient is in place

  const Stage &stage(size_t s) const { return a_.stages[s]; }
  /// Appends action `ac`, begun at `begin`, to the timeline if it is one
  /// the trace shows.
  void record(const Action &ac, double begin);
  Status acquire(size_t s, int m);
  /// A new arena instance of stage s, counted in the stats.
  Status newInstance(size_t s, std::unique_ptr<Buffer> *out);
  uint8_t *instance(size_t s, int m) {
    auto it = live_.find({s, m});
    return it == live_.end() ? nullptr : it->second->data();
  }
  void release(size_t s, int m);
  /// A new buffer of `bytes` for an output gradient waiting apart.
  Status newWaitBuffer(uint64_t bytes, std::unique_ptr<Buffer> *out);
  /// Hands `grads` (at `from`) over to stage s's output gradient of
  /// micro-batch m: into its instance, or into a buffer where it waits
  /// (`apart`, instanceEffects' hold).
  Status handOver(const std::vector<TensorRef> &grads, uint8_t *from, size_t s,
                  int m, bool apart);
  /// Stage s's output gradient of micro-batch m into its place (at `base`
  /// or in the scratch): copied in from where it waits, or already in the
  /// instance.
  Status takeOver(size_t s, int m, uint8_t *base);
  void bindParams(size_t s, Buffer *weights, Buffer *grads);
  Status writeInputs(size_t s, uint8_t *base, int m);
  Status run(size_t s, int32_t fn, int m);
  /// Where `r` lies: in the instance at `base`, or (a boundary value on its
  /// way out of the function that wrote it) in the stage scratch.
  uint8_t *where(const TensorRef &r, uint8_t *base) {
    return (r.space == Space::Scratch ? ex_.stageScratch() : base) + r.offset;
  }
  /// Copies `fromRefs` of the instance at `from` into `to` at the places of
  /// `toRefs` (another stage's, equal shapes).
  Status copyRefs(const std::vector<TensorRef> &fromRefs, uint8_t *from,
                  const std::vector<TensorRef> &toRefs, uint8_t *to);
  /// Copies `refs` of the instance at `base` into a slot laid out by
  /// `layout` (intoSlot), or back.
  Status boundary(const std::vector<TensorRef> &refs,
                  const std::vector<uint64_t> &layout, uint8_t *base,
                  uint8_t *slot, bool intoSlot);
  Status forward(const Action &ac);
  Status backward(const Action &ac, bool input, bool weight);
  Status runEnd(size_t s, int m, bool input, bool weight);
  /// Opens the NCCL channels: the ids of the links this rank sends on and
  /// of the world's (rank 0's) go to the other ends over `t`.
  Status openChannels(transport::Transport &t);
  /// The step's per-parameter sums of squares, and each micro-batch's loss
  /// (NaN where another rank computed it), summed over the ranks on the
  /// device: each entry is one rank's number and zeros elsewhere, so the
  /// sum is that number exactly.
  Status channelSums(transport::Transport &t, std::vector<double> *ss,
                     std::vector<float> *losses);
  /// Posts the sends or receives of a Send/Recv action.
  Status post(transport::Transport &t, const Action &ac);
  /// Completes a token's transfers.
  Status complete(transport::Transport &t, Transfer &x);
  /// Frees the instances `effects` settle for good.
  void settle(const InstanceEffects &effects, int m);
  Status finishStep(transport::Transport &t, int64_t step,
                    const std::vector<int64_t> &counts, int64_t total,
                    StepRecord *rec);
  Status exchange(transport::Transport &t, const void *mine, void *all,
                  size_t bytes);
  Status sumOverRanks(transport::Transport &t, float *g, size_t n);
};

uint64_t Rank::bytes() const {
  return stats.allocated.total();
}

Status Rank::init() {
  for (const Slot &s : prog_.slots) {
    auto b = std::make_unique<Buffer>();
    if (Status e = mem_.allocate(s.bytes, "slot '" + s.label + "'", b.get());
        !e.ok())
      return e;
    stats.allocated.slotBytes += s.bytes;
    slots_.push_back(b.get());
    slotStore_.push_back(std::move(b));
  }
  layout_.resize(a_.stages.size());
  for (auto *l : {&inLayout_, &outLayout_, &dinLayout_, &doutLayout_})
    l->resize(a_.stages.size());
  free_.resize(a_.stages.size());
  for (size_t s = 0; s < a_.stages.size(); ++s) {
    stageSlotLayout(a_, stage(s), &layout_[s]);
    boundaryLayout(stage(s).in, &inLayout_[s]);
    boundaryLayout(stage(s).out, &outLayout_[s]);
    boundaryLayout(stage(s).din, &dinLayout_[s]);
    boundaryLayout(stage(s).dout, &doutLayout_[s]);
  }
  // What this rank owns: the chunks it steps, and every replicated end.
  ownsParam = rankParameters(a_, size_t(r_));
  stats.allocated.instances.assign(a_.stages.size(), 0);
  const Executor::Allocation &ea = ex_.allocation();
  stats.allocated.parameterBytes = ea.parameters;
  stats.allocated.gradientBytes = ea.gradients;
  stats.allocated.constantBytes = ea.constants;
  stats.allocated.activationBytes = ea.arena; // arena instances add to it
  stats.allocated.kernelScratchBytes = ea.scratch;
  stats.allocated.scratchBytes = ea.stageScratch;
  m_.resize(a_.params.size());
  v_.resize(a_.params.size());
  for (size_t i = 0; i < a_.params.size(); ++i)
    if (ownsParam[i])
      stats.allocated.optimizerBytes +=
          2 * uint64_t(a_.params[i].numel()) * sizeof(float);
  // On a device the backend keeps the moments (made at the first step).
  if (!mem_.device())
    if (Status e = allocating("the AdamW state", stats.allocated.optimizerBytes,
                              [&] {
                                for (size_t i = 0; i < a_.params.size(); ++i)
                                  if (ownsParam[i]) {
                                    const size_t n =
                                        size_t(a_.params[i].numel());
                                    m_[i].assign(n, 0.0f);
                                    v_[i].assign(n, 0.0f);
                                  }
                              });
        !e.ok())
      return e;
  const uint64_t N = a_.microbatches, T = uint64_t(a_.batch * a_.seq);
  idsAt_ = 0;
  targetsAt_ = alignedBytes(N * T * sizeof(int64_t));
  weightsAt_ = targetsAt_ + alignedBytes(N * T * sizeof(int64_t));
  lossesAt_ = weightsAt_ + alignedBytes(N * sizeof(float));
  if (Status e =
          mem_.allocate(lossesAt_ + N * sizeof(float),
                        "the step's token ids, targets and losses", &stepData_);
      !e.ok())
    return e;
  // On a device every arena instance the plan counts is made now: an
  // allocation synchronizes the device, which a step must not do (a rank
  // would wait there for transfers its peers have not posted yet).
  if (mem_.device()) {
    const RankMemoryPlan plan = planRankMemory(a_, size_t(r_));
    for (size_t s = 0; s < a_.stages.size() && s < plan.instances.size(); ++s)
      for (uint32_t k = 0; k < plan.instances[s]; ++k) {
        std::unique_ptr<Buffer> b;
        if (Status e = newInstance(s, &b); !e.ok())
          return e;
        free_[s].push_back(std::move(b));
      }
    for (auto [bytes, count] : plan.waiting)
      for (uint32_t k = 0; k < count; ++k) {
        std::unique_ptr<Buffer> b;
        if (Status e = newWaitBuffer(bytes, &b); !e.ok())
          return e;
        waitFree_[bytes].push_back(std::move(b));
      }
  }
  sendSeq_.assign(a_.ranks, 0);
  recvSeq_.assign(a_.ranks, 0);
  // A W step without weights must not read any (a recomputing W would).
  for (size_t k = 0; k < prog_.actions.size(); ++k) {
    const Action &ac = prog_.actions[k];
    if (ac.op != ActionOp::BackwardWeight || ac.weights >= 0)
      continue;
    const Stage &st = stage(a_.chunkStage(size_t(ac.chunk)));
    for (const Instruction &in : a_.functions[size_t(st.backwardWeight)].body)
      for (const TensorRef &r : in.operands)
        if (r.space == Space::Param)
          return Status::error("action " + std::to_string(k) +
                               ": the weight gradient of chunk " +
                               std::to_string(ac.chunk) +
                               " reads weights, but the schedule gives it "
                               "none");
  }
  return {};
}

Status Rank::acquire(size_t s, int m) {
  if (instance(s, m))
    return Status::error("stage '" + stage(s).name + "' runs micro-batch " +
                         std::to_string(m) + " forward twice");
  std::unique_ptr<Buffer> b;
  if (!free_[s].empty()) {
    b = std::move(free_[s].back());
    free_[s].pop_back();
  } else if (Status e = newInstance(s, &b); !e.ok()) {
    return e;
  }
  live_[{s, m}] = std::move(b);
  return {};
}

Status Rank::newInstance(size_t s, std::unique_ptr<Buffer> *out) {
  auto b = std::make_unique<Buffer>();
  if (Status e = mem_.allocate(
          stage(s).arenaBytes,
          "an arena instance of stage '" + stage(s).name + "'", b.get());
      !e.ok())
    return e;
  ++stats.allocated.instances[s];
  stats.allocated.activationBytes += stage(s).arenaBytes;
  *out = std::move(b);
  return {};
}

Status Rank::newWaitBuffer(uint64_t bytes, std::unique_ptr<Buffer> *out) {
  auto b = std::make_unique<Buffer>();
  if (Status e = mem_.allocate(bytes, "a waiting output gradient", b.get());
      !e.ok())
    return e;
  ++stats.allocated.waiting[bytes];
  stats.allocated.activationBytes += bytes;
  *out = std::move(b);
  return {};
}

Status Rank::handOver(const std::vector<TensorRef> &grads, uint8_t *from,
                      size_t s, int m, bool apart) {
  auto twice = [&] {
    return Status::error("the output gradient of stage '" + stage(s).name +
                         "' for micro-batch " + std::to_string(m) +
                         " is handed over twice");
  };
  if (!apart) {
    uint8_t *to = instance(s, m);
    if (!to)
      return Status::error(
          "stage '" + stage(s).name + "' has no activations of micro-batch " +
          std::to_string(m) + " on this rank for its output gradient");
    if (Status e = copyRefs(grads, from, stage(s).dout, to); !e.ok())
      return e;
    if (!doutReady_.insert({s, m}).second)
      return twice();
    return {};
  }
  if (waiting_.count({s, m}))
    return twice();
  std::unique_ptr<Buffer> b;
  std::vector<std::unique_ptr<Buffer>> &free =
      waitFree_[boundaryLayout(stage(s).dout, nullptr)];
  if (!free.empty()) {
    b = std::move(free.back());
    free.pop_back();
  } else if (Status e =
                 newWaitBuffer(boundaryLayout(stage(s).dout, nullptr), &b);
             !e.ok()) {
    return e;
  }
  if (Status e = boundary(grads, doutLayout_[s], from, b->data(), true);
      !e.ok())
    return e;
  waiting_[{s, m}] = std::move(b);
  return {};
}

Status Rank::takeOver(size_t s, int m, uint8_t *base) {
  auto w = waiting_.find({s, m});
  if (w != waiting_.end()) {
    if (Status e = boundary(stage(s).dout, doutLayout_[s], base,
                            w->second->data(), false);
        !e.ok())
      return e;
    waitFree_[boundaryLayout(stage(s).dout, nullptr)].push_back(
        std::move(w->second));
    waiting_.erase(w);
    return {};
  }
  if (doutReady_.erase({s, m}))
    return {};
  return Status::error("stage '" + stage(s).name +
                       "' has no output gradient of micro-batch " +
                       std::to_string(m) + " on this rank");
}

void Rank::release(size_t s, int m) {
  auto it = live_.find({s, m});
  if (it == live_.end())
    return;
  free_[s].push_back(std::move(it->second));
  live_.erase(it);
}

void Rank::bindParams(size_t s, Buffer *weights, Buffer *grads) {
  const Stage &st = stage(s);
  for (size_t k = 0; k < st.params.size(); ++k)
    ex_.bindParam(st.params[k],
                  weights ? weights->f() + layout_[s][k] : nullptr,
                  grads ? grads->f() + layout_[s][k] : nullptr);
}

Status Rank::writeInputs(size_t s, uint8_t *base, int m) {
  const uint64_t T = uint64_t(a_.batch * a_.seq);
  for (const Input &in : stage(s).inputs) {
    const uint64_t at = (in.role == InputRole::Tokens ? idsAt_ : targetsAt_) +
                        uint64_t(m) * T * sizeof(int64_t);
    if (Status e = mem_.copy(base + in.ref.offset, stepData_.data() + at,
                             uint64_t(in.ref.numel()) * sizeof(int64_t));
        !e.ok())
      return e;
  }
  return {};
}

Status Rank::run(size_t s, int32_t fn, int m) {
  uint8_t *base = instance(s, m);
  if (!base)
    return Status::error("stage '" + stage(s).name +
                         "' has no activations of "
                         "micro-batch " +
                         std::to_string(m));
  ex_.bindArena(size_t(fn), base);
  return ex_.runFunction(size_t(fn));
}

Status Rank::copyRefs(const std::vector<TensorRef> &fromRefs, uint8_t *from,
                      const std::vector<TensorRef> &toRefs, uint8_t *to) {
  for (size_t k = 0; k < fromRefs.size() && k < toRefs.size(); ++k)
    if (fromRefs[k].present() && toRefs[k].present())
      if (Status e = mem_.copy(where(toRefs[k], to), where(fromRefs[k], from),
                               fromRefs[k].bytes());
          !e.ok())
        return e;
  return {};
}

Status Rank::boundary(const std::vector<TensorRef> &refs,
                      const std::vector<uint64_t> &layout, uint8_t *base,
                      uint8_t *slot, bool intoSlot) {
  for (size_t k = 0; k < refs.size(); ++k) {
    if (!refs[k].present())
      continue;
    uint8_t *inSlot = slot + layout[k], *inBase = where(refs[k], base);
    if (Status e = mem_.copy(intoSlot ? inSlot : inBase,
                             intoSlot ? inBase : inSlot, refs[k].bytes());
        !e.ok())
      return e;
  }
  return {};
}

Status Rank::runEnd(size_t s, int m, bool input, bool weight) {
  const Stage &st = stage(s);
  bindParams(s, nullptr, nullptr); // replicated: the rank's own buffers
  if (st.backward >= 0 && input && weight)
    return run(s, st.backward, m);
  if (input && st.backwardInput >= 0)
    if (Status e = run(s, st.backwardInput, m); !e.ok())
      return e;
  if (weight && st.backwardWeight >= 0)
    return run(s, st.backwardWeight, m);
  return {};
}

Status Rank::forward(const Action &ac) {
  const int m = ac.microbatch;
  const size_t c = size_t(ac.chunk), C = a_.numChunks();
  const size_t s = a_.chunkStage(c);
  const int pro = a_.prologueStage(), epi = a_.epilogueStage();
  const InstanceEffects effects = instanceEffects(a_, ac);
  for (size_t st : effects.acquire)
    if (Status e = acquire(st, m); !e.ok())
      return e;
  uint8_t *base = instance(s, m);
  if (c == 0 && pro >= 0 && ac.in < 0) {
    uint8_t *pb = instance(size_t(pro), m);
    if (Status e = writeInputs(size_t(pro), pb, m); !e.ok())
      return e;
    bindParams(size_t(pro), nullptr, nullptr);
    if (Status e = run(size_t(pro), stage(size_t(pro)).forward, m); !e.ok())
      return e;
  }
  const Stage &st = stage(s);
  if (!base) // made by the previous chunk's forward, with the input in it
    return Status::error("chunk " + std::to_string(c) + " of micro-batch " +
                         std::to_string(m) +
                         " has no input: its previous stage did not run "
                         "here");
  if (ac.in >= 0) {
    if (Status e = boundary(st.in, inLayout_[s], base,
                            slots_[size_t(ac.in)]->data(), false);
        !e.ok())
      return e;
  } else if (c == 0 && pro >= 0) {
    if (Status e = copyRefs(stage(size_t(pro)).out, instance(size_t(pro), m),
                            st.in, base);
        !e.ok())
      return e;
  }
  if (Status e = writeInputs(s, base, m); !e.ok())
    return e;
  bindParams(s, slots_[size_t(ac.weights)], nullptr);
  if (Status e = run(s, st.forward, m); !e.ok())
    return e;
  if (ac.out >= 0) {
    if (Status e = boundary(st.out, outLayout_[s], base,
                            slots_[size_t(ac.out)]->data(), true);
        !e.ok())
      return e;
  } else if (c + 1 < C) {
    if (Status e = copyRefs(st.out, base, stage(s + 1).in, instance(s + 1, m));
        !e.ok())
      return e;
  }
  // The loss into the step's losses; the loss's gradient seed (this
  // micro-batch's share of the step's targets) from the step's weights.
  auto lossOf = [&](size_t ls, uint8_t *lb) -> Status {
    lossHere_[size_t(m)] = true;
    uint8_t *d = stepData_.data();
    if (Status e = mem_.copy(d + lossesAt_ + size_t(m) * sizeof(float),
                             lb + stage(ls).loss.offset, sizeof(float));
        !e.ok())
      return e;
    return mem_.copy(lb + stage(ls).dloss.offset,
                     d + weightsAt_ + size_t(m) * sizeof(float), sizeof(float));
  };
  if (c + 1 == C) {
    if (epi >= 0) {
      uint8_t *eb = instance(size_t(epi), m);
      if (Status e = copyRefs(st.out, base, stage(size_t(epi)).in, eb); !e.ok())
        return e;
      if (Status e = writeInputs(size_t(epi), eb, m); !e.ok())
        return e;
      bindParams(size_t(epi), nullptr, nullptr);
      if (Status e = run(size_t(epi), stage(size_t(epi)).forward, m); !e.ok())
        return e;
      if (Status e = lossOf(size_t(epi), eb); !e.ok())
        return e;
      // The loss's gradient right away, handed over to this chunk's output
      // gradient before the epilogue's W (if split) reuses the scratch; the
      // epilogue's instance (the logits) is freed when this ends.
      const bool split = stage(size_t(epi)).backward < 0;
      if (Status e = runEnd(size_t(epi), m, true, !split); !e.ok())
        return e;
      if (Status e =
              handOver(stage(size_t(epi)).din, eb, s, m, !effects.hold.empty());
          !e.ok())
        return e;
      if (split)
        if (Status e = runEnd(size_t(epi), m, false, true); !e.ok())
          return e;
    } else if (Status e = lossOf(s, base); !e.ok()) {
      return e;
    }
  }
  settle(effects, m);
  return {};
}

void Rank::settle(const InstanceEffects &effects, int m) {
  for (const InstanceEffects::Settle &st : effects.settle)
    if (lifetimes_.settle(st.stage, m, st.backwardDone, st.inputGradTaken))
      release(st.stage, m);
}

Status Rank::backward(const Action &ac, bool input, bool weight) {
  const int m = ac.microbatch;
  const size_t c = size_t(ac.chunk), C = a_.numChunks();
  const size_t s = a_.chunkStage(c);
  const Stage &st = stage(s);
  const int pro = a_.prologueStage(), epi = a_.epilogueStage();
  uint8_t *base = instance(s, m);
  if (!base)
    return Status::error("chunk " + std::to_string(c) +
                         " runs the backward "
                         "of micro-batch " +
                         std::to_string(m) +
                         " before its forward on this rank");
  if (input) {
    // The output's gradient: received, from the next stage here, or the
    // loss's (written at the forward when this stage ends the model).
    if (ac.in >= 0) {
      if (Status e = boundary(st.dout, doutLayout_[s], base,
                              slots_[size_t(ac.in)]->data(), false);
          !e.ok())
        return e;
    } else if (c + 1 < C || epi >= 0) {
      if (Status e = takeOver(s, m, base); !e.ok())
        return e;
    }
  }
  Buffer *w = ac.weights >= 0 ? slots_[size_t(ac.weights)] : nullptr;
  Buffer *g = ac.grads >= 0 ? slots_[size_t(ac.grads)] : nullptr;
  bindParams(s, w, g);
  const bool fused = input && weight && st.backward >= 0;
  if (fused) {
    if (Status e = run(s, st.backward, m); !e.ok())
      return e;
  } else if (input && st.backwardInput >= 0) {
    if (Status e = run(s, st.backwardInput, m); !e.ok())
      return e;
  }
  // The input gradient goes on before anything else runs (it may lie in
  // the scratch, which W's temporaries reuse).
  if (input) {
    if (ac.out >= 0)
      if (Status e = boundary(st.din, dinLayout_[s], base,
                              slots_[size_t(ac.out)]->data(), true);
          !e.ok())
        return e;
    if (c == 0 && pro >= 0) {
      uint8_t *pb = instance(size_t(pro), m);
      if (!pb)
        return Status::error("no prologue of micro-batch " + std::to_string(m) +
                             " on this rank");
      // Two scratch values may overlap: through a waiting buffer then.
      if (outputGradWaitsApart(stage(size_t(pro)))) {
        if (Status e = handOver(st.din, base, size_t(pro), m, true); !e.ok())
          return e;
        if (Status e = takeOver(size_t(pro), m, pb); !e.ok())
          return e;
      } else if (Status e = copyRefs(st.din, base, stage(size_t(pro)).dout, pb);
                 !e.ok()) {
        return e;
      }
      if (Status e = runEnd(size_t(pro), m, true, true); !e.ok())
        return e;
      bindParams(s, w, g); // for W: the prologue's may share a parameter
    } else if (c > 0 && ac.out < 0) {
      // The previous chunk's output gradient, which waits for its backward.
      if (Status e = handOver(st.din, base, s - 1, m,
                              outputGradWaitsApart(stage(s - 1)));
          !e.ok())
        return e;
    }
  }
  if (!fused && weight && st.backwardWeight >= 0)
    if (Status e = run(s, st.backwardWeight, m); !e.ok())
      return e;
  settle(instanceEffects(a_, ac), m);
  return {};
}

Status Rank::openChannels(transport::Transport &t) {
  detail::DeviceBackend *dev = mem_.device();
  if (!dev)
    return Status::error("NCCL moves GPU memory: the ranks must run on a GPU "
                         "(--device cuda)");
  std::set<int> to, from;
  for (const Action &ac : prog_.actions) {
    if (ac.op == ActionOp::Send)
      to.insert(ac.peer);
    if (ac.op == ActionOp::Recv)
      from.insert(ac.peer);
  }
  const int P = t.size();
  // Tags past any a step or the gathering uses.
  const uint64_t linkTag = (uint64_t(1) << 61), worldTag = linkTag + 1;
  constexpr size_t kId = 128;
  std::vector<std::vector<uint8_t>> ids;
  std::vector<int> sizes, index;
  std::vector<transport::Request> reqs;
  reqs.reserve(to.size() + from.size() + size_t(P));
  // The world's communicator: rank 0 makes its id.
  std::vector<uint8_t> worldId(kId);
  if (r_ == 0) {
    if (Status e = dev->newChannelId(&worldId); !e.ok())
      return e;
    for (int p = 1; p < P; ++p) {
      reqs.emplace_back();
      if (Status e = t.send(p, worldTag, worldId.data(), kId, &reqs.back());
          !e.ok())
        return e;
    }
  } else {
    reqs.emplace_back();
    if (Status e = t.recv(0, worldTag, worldId.data(), kId, &reqs.back());
        !e.ok())
      return e;
  }
  // A link's sender makes its id.
  std::vector<std::vector<uint8_t>> fromIds(from.size(),
                                            std::vector<uint8_t>(kId));
  std::vector<std::vector<uint8_t>> toIds;
  for (int p : to) {
    toIds.emplace_back();
    if (Status e = dev->newChannelId(&toIds.back()); !e.ok())
      return e;
    reqs.emplace_back();
    if (Status e = t.send(p, linkTag, toIds.back().data(), kId, &reqs.back());
        !e.ok())
      return e;
  }
  size_t k = 0;
  for (int p : from) {
    reqs.emplace_back();
    if (Status e = t.recv(p, linkTag, fromIds[k++].data(), kId, &reqs.back());
        !e.ok())
      return e;
  }
  for (transport::Request &q : reqs)
    if (Status e = t.wait(q); !e.ok())
      return e;
  ids.push_back(worldId);
  sizes.push_back(P);
  index.push_back(r_);
  worldChannel_ = 0;
  k = 0;
  for (int p : to) {
    sendChannel_[p] = int(ids.size());
    ids.push_back(toIds[k++]);
    sizes.push_back(2);
    index.push_back(0);
  }
  k = 0;
  for (int p : from) {
    recvChannel_[p] = int(ids.size());
    ids.push_back(fromIds[k++]);
    sizes.push_back(2);
    index.push_back(1);
  }
  return dev->openChannels(ids, sizes, index);
}

Status Rank::channelSums(transport::Transport &t, std::vector<double> *ss,
                         std::vector<float> *losses) {
  const size_t np = ss->size(), N = losses->size();
  std::vector<double> x(np + 2 * N, 0.0);
  std::copy(ss->begin(), ss->end(), x.begin());
  for (size_t m = 0; m < N; ++m)
    if (!std::isnan((*losses)[m])) {
      x[np + m] = double((*losses)[m]); // exact: a float as a double
      x[np + N + m] = 1.0;
    }
  if (Status e = mem_.device()->channelSum(
          worldChannel_, x.data(), x.size(), [&] { return t.check(); },
          world_.timeoutSeconds);
      !e.ok())
    return e;
  std::copy(x.begin(), x.begin() + long(np), ss->begin());
  for (size_t m = 0; m < N; ++m)
    (*losses)[m] = x[np + N + m] > 0 ? float(x[np + m]) : std::nanf("");
  return {};
}

Status Rank::post(transport::Transport &t, const Action &ac) {
  if (tokens_.count(ac.token))
    return Status::error("posts token " + std::to_string(ac.token) +
                         " again before waiting for it");
  Transfer &x = tokens_[ac.token];
  const size_t n = ac.slots.size();
  x.reqs.resize(n);
  x.handoffs.resize(n);
  x.host.resize(n);
  x.into.assign(n, nullptr);
  x.bytes = ac.bytes;
  detail::DeviceBackend *dev = mem_.device();
  // Device slots between processes travel through host memory: the send
  // downloads (waiting for the compute that wrote the slot), the wait
  // uploads. Between ranks of one process, as handoffs on the device.
  const bool viaHost = dev && !t.sharesAddressSpace() && !world_.nccl;
  const bool channel = dev && world_.nccl;
  // A device receive's slots are free from here on (the schedule neither
  // reads nor writes them until the wait): its copy may land any time.
  if (dev && !viaHost && ac.op == ActionOp::Recv)
    if (Status e = dev->fence(&x.posted); !e.ok())
      return e;
  if (channel) {
    auto &links = ac.op == ActionOp::Send ? sendChannel_ : recvChannel_;
    auto link = links.find(ac.peer);
    if (link == links.end())
      return Status::error(
          "no NCCL channel " +
          std::string(ac.op == ActionOp::Send ? "to" : "from") + " rank " +
          std::to_string(ac.peer));
    for (size_t i = 0; i < n; ++i) {
      Buffer *b = slots_[size_t(ac.slots[i])];
      detail::DeviceBackend::Fence done;
      Status st =
          ac.op == ActionOp::Send
              ? dev->channelSend(link->second, b->data(), ac.bytes[i], &done)
              : dev->channelRecv(link->second, b->data(), ac.bytes[i], x.posted,
                                 &done);
      if (!st.ok())
        return st;
      x.fences.push_back(std::move(done));
      x.reqs[i] = transport::Request{ac.peer, 0, nullptr, ac.bytes[i], true};
      if (ac.op == ActionOp::Send) {
        stats.bytesSent += ac.bytes[i];
        ++stats.messagesSent;
      }
    }
    return {};
  }
  for (size_t i = 0; i < n; ++i) {
    Buffer *b = slots_[size_t(ac.slots[i])];
    const uint64_t bytes = ac.bytes[i];
    const uint64_t tag = ac.op == ActionOp::Recv ? recvSeq_[size_t(ac.peer)]++
                                                 : sendSeq_[size_t(ac.peer)]++;
    Status st;
    if (ac.op == ActionOp::Recv) {
      x.into[i] = b;
      if (viaHost) {
        x.host[i].resize(size_t(bytes));
        st = t.recv(ac.peer, tag, x.host[i].data(), size_t(bytes), &x.reqs[i]);
      } else {
        st = dev ? t.recv(ac.peer, tag, &x.handoffs[i], sizeof(Handoff),
                          &x.reqs[i])
                 : t.recv(ac.peer, tag, b->data(), size_t(bytes), &x.reqs[i]);
      }
    } else if (viaHost) {
      std::vector<uint8_t> bytesHere(static_cast<size_t>(bytes));
      st = mem_.download(bytesHere.data(), b->data(), bytes);
      if (st.ok())
        st = t.send(ac.peer, tag, bytesHere.data(), size_t(bytes), &x.reqs[i]);
    } else if (dev) {
      // The bytes staged on the transfer stream after what the compute
      // stream wrote; the receiver copies them out.
      Handoff h;
      detail::DeviceBackend::Fence done;
      st = dev->stageOut(b->data(), bytes, &h.staging, &done);
      if (st.ok()) {
        h.bytes = bytes;
        h.ready = new detail::DeviceBackend::Fence(done);
        x.fences.push_back(std::move(done));
        st = t.send(ac.peer, tag, &h, sizeof h, &x.reqs[i]);
        if (!st.ok())
          delete h.ready;
      }
    } else {
      st = t.send(ac.peer, tag, b->data(), size_t(bytes), &x.reqs[i]);
    }
    if (!st.ok())
      return st;
    if (ac.op == ActionOp::Send) {
      stats.bytesSent += bytes;
      ++stats.messagesSent;
    }
  }
  return {};
}

Status Rank::complete(transport::Transport &t, Transfer &x) {
  detail::DeviceBackend *dev = mem_.device();
  for (size_t i = 0; i < x.reqs.size(); ++i) {
    if (Status e = t.wait(x.reqs[i]); !e.ok())
      return e;
    if (!dev || !x.into[i])
      continue;
    if (world_.nccl) // the channel's fence, with the sends' below
      continue;
    if (!t.sharesAddressSpace()) { // from another process, in host memory
      if (Status e =
              mem_.upload(x.into[i]->data(), x.host[i].data(), x.bytes[i]);
          !e.ok())
        return e;
      continue;
    }
    // A device receive: copy the staged bytes into the slot, then the
    // compute stream waits for that copy (the host does not).
    Handoff &h = x.handoffs[i];
    std::unique_ptr<detail::DeviceBackend::Fence> ready(h.ready);
    h.ready = nullptr;
    if (!ready || h.bytes != x.bytes[i])
      return Status::error("rank " + std::to_string(r_) + " received " +
                           std::to_string(h.bytes) + " bytes from rank " +
                           std::to_string(x.reqs[i].peer) + " (tag " +
                           std::to_string(x.reqs[i].tag) + "), expected " +
                           std::to_string(x.bytes[i]));
    detail::DeviceBackend::Fence done;
    if (Status e = dev->stageIn(x.into[i]->data(), h.staging, h.bytes,
                                {*ready, x.posted}, &done);
        !e.ok())
      return e;
    if (Status e = dev->await(done); !e.ok())
      return e;
  }
  // A sent slot may be written after the wait: once its bytes are staged
  // (or, over NCCL, sent; a received one read once it has arrived).
  for (const detail::DeviceBackend::Fence &f : x.fences)
    if (Status e = dev->await(f); !e.ok())
      return e;
  return {};
}

Status Rank::exchange(transport::Transport &t, const void *mine, void *all,
                      size_t bytes) {
  // Every rank sends its block to every other; block r of `all` is rank r's.
  const int P = t.size();
  std::memcpy(static_cast<uint8_t *>(all) + size_t(r_) * bytes, mine, bytes);
  std::vector<transport::Request> reqs(size_t(2 * P));
  for (int p = 0; p < P; ++p) {
    if (p == r_)
      continue;
    if (Status e =
            t.send(p, sendSeq_[size_t(p)]++, mine, bytes, &reqs[size_t(p)]);
        !e.ok())
      return e;
    if (Status e = t.recv(p, recvSeq_[size_t(p)]++,
                          static_cast<uint8_t *>(all) + size_t(p) * bytes,
                          bytes, &reqs[size_t(P + p)]);
        !e.ok())
      return e;
  }
  const auto w0 = std::chrono::steady_clock::now();
  for (int p = 0; p < P; ++p) {
    if (p == r_)
      continue;
    if (Status e = t.wait(reqs[size_t(P + p)]); !e.ok())
      return e;
    if (Status e = t.wait(reqs[size_t(p)]); !e.ok())
      return e;
  }
  stats.waitSeconds += seconds(w0, std::chrono::steady_clock::now());
  stats.bytesSent += uint64_t(bytes) * uint64_t(P - 1);
  stats.messagesSent += uint64_t(P - 1);
  return {};
}

Status Rank::sumOverRanks(transport::Transport &t, float *g, size_t n) {
  // A reduce-scatter, then an all-gather, by direct messages: rank q adds
  // block q (of P near-equal blocks) over the ranks in rank order, as one
  // rank adding every rank's copy in order would (so the sum is the same to
  // the bit), and sends the sum to every other rank. Each rank moves
  // 2 (P - 1) / P of the gradient, as a ring all-reduce does, instead of
  // P - 1 whole copies.
  const int P = t.size();
  auto begin = [&](int q) { return n * size_t(q) / size_t(P); };
  auto size = [&](int q) { return begin(q + 1) - begin(q); };
  const size_t mine = size(r_);
  std::vector<float> parts(mine * size_t(P));
  std::vector<transport::Request> reqs(size_t(2 * P));
  auto finish = [&]() -> Status {
    const auto w0 = std::chrono::steady_clock::now();
    for (transport::Request &q : reqs)
      if (q.peer >= 0) // posted
        if (Status e = t.wait(q); !e.ok())
          return e;
    stats.waitSeconds += seconds(w0, std::chrono::steady_clock::now());
    reqs.assign(size_t(2 * P), transport::Request());
    return {};
  };
  // Both sides skip an empty block alike, so the message sequences match.
  auto move = [&](int p, const float *out, size_t outN, float *in,
                  size_t inN) -> Status {
    if (outN > 0) {
      if (Status e = t.send(p, sendSeq_[size_t(p)]++, out, outN * sizeof(float),
                            &reqs[size_t(p)]);
          !e.ok())
        return e;
      stats.bytesSent += uint64_t(outN * sizeof(float));
      ++stats.messagesSent;
    }
    if (inN > 0)
      return t.recv(p, recvSeq_[size_t(p)]++, in, inN * sizeof(float),
                    &reqs[size_t(P + p)]);
    return {};
  };
  for (int p = 0; p < P; ++p)
    if (p != r_)
      if (Status e = move(p, g + begin(p), size(p),
                          parts.data() + size_t(p) * mine, mine);
          !e.ok())
        return e;
  if (Status e = finish(); !e.ok())
    return e;
  if (mine > 0)
    std::memcpy(parts.data() + size_t(r_) * mine, g + begin(r_),
                mine * sizeof(float));
  float *sum = g + begin(r_);
  for (size_t i = 0; i < mine; ++i) {
    float v = parts[i];
    for (int q = 1; q < P; ++q)
      v += parts[size_t(q) * mine + i];
    sum[i] = v;
  }
  for (int p = 0; p < P; ++p)
    if (p != r_)
      if (Status e = move(p, sum, mine, g + begin(p), size(p)); !e.ok())
        return e;
  return finish();
}

Status Rank::finishStep(transport::Transport &t, int64_t step,
                        const std::vector<int64_t> &counts, int64_t total,
                        StepRecord *rec) {
  const int P = t.size();
  const size_t N = counts.size();
  std::vector<ParamBuffers> &params = ex_.params();
  detail::DeviceBackend *dev = mem_.device();
  // 0. Every rank's figures of this step's program, for the log.
  struct Figures {
    uint64_t bytes;
    double wait;
  };
  Figures mine{stats.bytesSent - stepStart_.bytesSent,
               stats.waitSeconds - stepStart_.waitSeconds};
  std::vector<Figures> all(static_cast<size_t>(P));
  if (P > 1) {
    if (Status e = exchange(t, &mine, all.data(), sizeof(Figures)); !e.ok())
      return e;
  } else {
    all[0] = mine;
  }
  for (const Figures &f : all) {
    rec->rankBytesSent.push_back(f.bytes);
    rec->rankWaitSeconds.push_back(f.wait);
  }
  // 1. The replicated ends' gradients, summed over ranks in rank order.
  std::vector<uint32_t> ends;
  for (int s : {a_.prologueStage(), a_.epilogueStage()})
    if (s >= 0)
      for (uint32_t p : stage(size_t(s)).params)
        if (std::find(ends.begin(), ends.end(), p) == ends.end())
          ends.push_back(p);
  std::sort(ends.begin(), ends.end());
  size_t n = 0;
  for (uint32_t p : ends)
    n += size_t(params[p].numel);
  // n = 0 (owned or empty ends): nothing to sum.
  if (P > 1 && n > 0) {
    std::vector<float> sum(n);
    size_t at = 0;
    for (uint32_t p : ends) {
      const size_t k = size_t(params[p].numel);
      if (Status e =
              mem_.download(sum.data() + at, params[p].grad, k * sizeof(float));
          !e.ok())
        return e;
      at += k;
    }
    // rank 0's, then the others' added
    if (Status e = sumOverRanks(t, sum.data(), n); !e.ok())
      return e;
    at = 0;
    for (uint32_t p : ends) {
      const size_t k = size_t(params[p].numel);
      if (Status e =
              mem_.upload(params[p].grad, sum.data() + at, k * sizeof(float));
          !e.ok())
        return e;
      at += k;
    }
  }
  // 2. Per-parameter sums of squares from the owners (the ends: rank 0's),
  //    added in parameter order.
  const size_t np = params.size();
  std::vector<double> ss(np, 0.0), allSs(np * size_t(P), 0.0);
  std::vector<size_t> mineSs;
  for (size_t i = 0; i < np; ++i) {
    const bool end = std::binary_search(ends.begin(), ends.end(), uint32_t(i));
    if (ownsParam[i] && (!end || r_ == 0))
      mineSs.push_back(i);
  }
  if (dev) {
    std::vector<const float *> grads;
    std::vector<int64_t> sizes;
    for (size_t i : mineSs) {
      grads.push_back(params[i].grad);
      sizes.push_back(params[i].numel);
    }
    std::vector<double> sums;
    if (Status e = dev->sumsOfSquares(grads, sizes, &sums); !e.ok())
      return e;
    for (size_t k = 0; k < mineSs.size(); ++k)
      ss[mineSs[k]] = sums[k];
  } else {
    for (size_t i : mineSs)
      ss[i] = cpu::sum_of_squares(params[i].grad, params[i].numel);
  }
  // 3. The losses of the micro-batches, from whichever rank ran them.
  if (Status e = mem_.download(losses_.data(), stepData_.data() + lossesAt_,
                               N * sizeof(float));
      !e.ok())
    return e;
  for (size_t m = 0; m < N; ++m)
    if (!lossHere_[m])
      losses_[m] = std::nanf("");
  std::vector<float> allLoss(N * size_t(P));
  if (world_.nccl) {
    // Summed on the devices: rank 0's block holds the totals, the others
    // stay zero (NaN for the losses), which the reading below expects.
    if (Status e = channelSums(t, &ss, &losses_); !e.ok())
      return e;
    std::fill(allLoss.begin(), allLoss.end(), std::nanf(""));
    std::copy(ss.begin(), ss.end(), allSs.begin());
    std::copy(losses_.begin(), losses_.end(), allLoss.begin());
  } else if (P > 1) {
    if (Status e = exchange(t, ss.data(), allSs.data(), np * sizeof(double));
        !e.ok())
      return e;
    if (Status e =
            exchange(t, losses_.data(), allLoss.data(), N * sizeof(float));
        !e.ok())
      return e;
  } else {
    allSs = ss;
    allLoss = losses_;
  }
  double sum = 0;
  for (size_t i = 0; i < np; ++i) {
    double v = 0;
    for (int q = 0; q < P; ++q)
      if (allSs[size_t(q) * np + i] != 0.0)
        v = allSs[size_t(q) * np + i];
    sum += v;
  }
  rec->gradNorm = std::sqrt(sum);
  double lossSum = 0;
  for (size_t m = 0; m < N; ++m) {
    float l = std::nanf("");
    for (int q = 0; q < P; ++q)
      if (!std::isnan(allLoss[size_t(q) * N + m]))
        l = allLoss[size_t(q) * N + m];
    if (std::isnan(l))
      return Status::error("step " + std::to_string(step) +
                           ": no rank computed the loss of micro-batch " +
                           std::to_string(m));
    if (!std::isfinite(l))
      return Status::error("step " + std::to_string(step) + ": loss is " +
                           (std::isinf(l) ? "inf" : "nan") +
                           " at micro-batch " + std::to_string(m));
    lossSum += double(l) * double(counts[m]);
  }
  rec->loss = lossSum / double(std::max<int64_t>(total, 1));
  // 4. AdamW on what this rank owns.
  const float scale = config_.gradClip > 0
                          ? cpu::clip_scale(rec->gradNorm, config_.gradClip)
                          : 1.0f;
  std::vector<cpu::AdamWConfig> configs;
  for (const ParamBuffers &p : params)
    configs.push_back({rec->lr, config_.beta1, config_.beta2, config_.eps,
                       p.desc->decay ? config_.weightDecay : 0.0});
  if (dev) // the backend steps the parameters this rank holds: its own
    return dev->adamw(params, configs, step + 1, scale);
  for (size_t i = 0; i < np; ++i) {
    if (!ownsParam[i])
      continue;
    ParamBuffers &p = params[i];
    cpu::adamw_step(p.value, p.grad, m_[i].data(), v_[i].data(), p.numel,
                    configs[i], step + 1, scale);
  }
  return {};
}

Status Rank::step(transport::Transport &t, int64_t step,
                  const std::vector<int64_t> &counts, int64_t total,
                  const std::vector<std::vector<int64_t>> &ids,
                  const std::vector<std::vector<int64_t>> &targets,
                  StepRecord *rec) {
  if (world_.nccl && !channelsOpen_) {
    if (Status e = openChannels(t); !e.ok())
      return Status::error("opening the NCCL channels: " + e.message());
    channelsOpen_ = true;
  }
  const double begin = clockSeconds();
  if (tracing) {
    timeline.clear();
    timelineBegin = begin;
    // Instruction times add up over every traced step but the first (which
    // allocates and warms the caches): less noise to fit.
    ex_.profileInstructions(true);
    if (tracedSteps++ < 2)
      ex_.resetInstructionTimes();
  }
  ex_.zeroGrads();
  stepStart_ = stats;
  losses_.assign(counts.size(), std::nanf(""));
  lossHere_.assign(counts.size(), false);
  tokens_.clear();
  lifetimes_.clear();
  doutReady_.clear();
  for (auto &[key, b] : waiting_) // a failed step's leftovers
    waitFree_[boundaryLayout(stage(key.first).dout, nullptr)].push_back(
        std::move(b));
  waiting_.clear();
  // The step's data into the rank's memory, once.
  {
    const size_t T = size_t(a_.batch * a_.seq);
    std::vector<uint8_t> host(size_t(lossesAt_), 0);
    for (size_t m = 0; m < counts.size(); ++m) {
      std::memcpy(host.data() + idsAt_ + m * T * sizeof(int64_t), ids[m].data(),
                  T * sizeof(int64_t));
      std::memcpy(host.data() + targetsAt_ + m * T * sizeof(int64_t),
                  targets[m].data(), T * sizeof(int64_t));
      const float w =
          float(double(counts[m]) / double(std::max<int64_t>(total, 1)));
      std::memcpy(host.data() + weightsAt_ + m * sizeof(float), &w, sizeof w);
    }
    if (Status e = mem_.upload(stepData_.data(), host.data(), host.size());
        !e.ok())
      return Status::error("step " + std::to_string(step) + ": " + e.message());
  }
  const int C = int(a_.numChunks());
  auto where = [&](size_t k, const Action &ac) {
    std::string s = "step " + std::to_string(step) + ", action " +
                    std::to_string(k) + " (" + actionOpName(ac.op);
    if (ac.chunk >= 0 && ac.op != ActionOp::Send && ac.op != ActionOp::Recv)
      s += " chunk " + std::to_string(ac.chunk);
    if (ac.microbatch >= 0)
      s += " micro-batch " + std::to_string(ac.microbatch);
    return s + ", turn " + std::to_string(ac.turn) + ")";
  };
  for (size_t k = 0; k < prog_.actions.size(); ++k) {
    const Action &ac = prog_.actions[k];
    const double actionBegin = tracing ? clockSeconds() : 0;
    Status st;
    switch (ac.op) {
    case ActionOp::LoadMaster: {
      const size_t s = a_.chunkStage(size_t(ac.chunk));
      Buffer *dst = slots_[size_t(ac.slots[0])];
      const std::vector<ParamBuffers> &params = ex_.params();
      for (size_t i = 0; i < stage(s).params.size() && st.ok(); ++i) {
        const ParamBuffers &p = params[stage(s).params[i]];
        st = mem_.copy(dst->f() + layout_[s][i], p.value,
                       uint64_t(p.numel) * sizeof(float));
      }
      break;
    }
    case ActionOp::Zero: {
      Buffer *b = slots_[size_t(ac.slots[0])];
      st = mem_.zero(b->data(), b->size);
      break;
    }
    case ActionOp::Swap:
      std::swap(slots_[size_t(ac.slots[0])], slots_[size_t(ac.slots[1])]);
      break;
    case ActionOp::AddInto: {
      Buffer *dst = slots_[size_t(ac.slots[0])];
      const Buffer *src = slots_[size_t(ac.slots[1])];
      const uint64_t n =
          (ac.chunk >= 0 && ac.chunk < C
               ? stageSlotLayout(a_, stage(a_.chunkStage(size_t(ac.chunk))),
                                 nullptr)
               : dst->size) /
          sizeof(float);
      st = mem_.add(dst->f(), src->f(), n);
      break;
    }
    case ActionOp::Forward:
      st = forward(ac);
      break;
    case ActionOp::BackwardInput:
      st = backward(ac, true, false);
      break;
    case ActionOp::BackwardWeight:
      st = backward(ac, false, true);
      break;
    case ActionOp::Backward:
      st = backward(ac, true, true);
      break;
    case ActionOp::OptimizerStep: {
      // The complete gradient of an owned chunk: into the executor's
      // gradient buffers, which the optimizer reads after the program.
      const size_t s = a_.chunkStage(size_t(ac.chunk));
      const Buffer *g = slots_[size_t(ac.grads)];
      std::vector<ParamBuffers> &params = ex_.params();
      for (size_t i = 0; i < stage(s).params.size() && st.ok(); ++i) {
        ParamBuffers &p = params[stage(s).params[i]];
        st = mem_.copy(p.grad, g->f() + layout_[s][i],
                       uint64_t(p.numel) * sizeof(float));
      }
      break;
    }
    case ActionOp::Send:
    case ActionOp::Recv:
      st = post(t, ac);
      break;
    case ActionOp::Wait: {
      const auto w0 = std::chrono::steady_clock::now();
      for (int32_t tok : ac.tokens) {
        auto it = tokens_.find(tok);
        if (it == tokens_.end()) {
          st = Status::error("waits for token " + std::to_string(tok) +
                             ", which no transfer posted");
          break;
        }
        st = complete(t, it->second);
        tokens_.erase(it);
        if (!st.ok())
          break;
      }
      stats.waitSeconds += seconds(w0, std::chrono::steady_clock::now());
      break;
    }
    }
    if (!st.ok())
      return Status::error(where(k, ac) + ": " + st.message());
    if (tracing)
      record(ac, actionBegin);
  }
  // Every rank leaves the executor bound to its own buffers.
  for (size_t i = 0; i < a_.params.size(); ++i)
    ex_.bindParam(i, nullptr, nullptr);
  if (!live_.empty())
    return Status::error("step " + std::to_string(step) + ": " +
                         std::to_string(live_.size()) +
                         " micro-batch(es) still hold activations after the "
                         "program (a backward never ran)");
  // On a device: the program ran asynchronously; its data errors now.
  // Over NCCL the GPU may wait for a peer that is gone: not forever.
  if (world_.nccl)
    if (Status e = mem_.device()->drain([&] { return t.check(); },
                                        world_.timeoutSeconds);
        !e.ok())
      return Status::error("step " + std::to_string(step) + ": " + e.message());
  if (Status e = ex_.synchronize(); !e.ok())
    return Status::error("step " + std::to_string(step) + ": " + e.message());
  const double closing = clockSeconds();
  Status done = finishStep(t, step, counts, total, rec);
  if (tracing && done.ok()) {
    TraceEvent e;
    e.rank = r_;
    e.name = "all-reduce + AdamW";
    e.category = "all_reduce";
    e.start = closing;
    e.duration = clockSeconds() - closing;
    timeline.push_back(std::move(e));
  }
  return done;
}

void Rank::record(const Action &ac, double begin) {
  const bool send = ac.op == ActionOp::Send;
  const bool compute =
      ac.op == ActionOp::Forward || ac.op == ActionOp::BackwardInput ||
      ac.op == ActionOp::BackwardWeight || ac.op == ActionOp::Backward ||
      ac.op == ActionOp::OptimizerStep;
  if (!send && !compute)
    return;
  TraceEvent e;
  e.rank = r_;
  e.transfer = send;
  e.category = actionOpName(ac.op);
  e.start = begin;
  e.duration = clockSeconds() - begin;
  e.turn = ac.turn;
  if (send) {
    e.peer = ac.peer;
    for (uint64_t b : ac.bytes)
      e.bytes += double(b);
    e.name = "send -> " + std::to_string(ac.peer);
  } else {
    e.chunk = ac.chunk;
    e.microbatch = ac.microbatch;
    e.name = traceActionName(e.category, ac.chunk, ac.microbatch);
  }
  timeline.push_back(std::move(e));
}

//===----------------------------------------------------------------------===//
// PipelineTrainer
//===----------------------------------------------------------------------===//

struct PipelineTrainer::Impl {
  const Artifact &a;
  Windows &windows;
  OptimizerConfig config;
  int threadsPerRank = 1;
  std::vector<uint32_t> local; ///< the ranks this process runs
  std::vector<std::unique_ptr<Executor>> executors; // local's order
  std::vector<std::unique_ptr<Rank>> ranks;
  /// The local rank `r` (nullptr: another process's).
  Rank *rank(uint32_t r) {
    for (size_t k = 0; k < local.size(); ++k)
      if (local[k] == r)
        return ranks[k].get();
    return nullptr;
  }
  std::mutex dataMutex; ///< guards `windows`, which every rank reads
  Impl(const Artifact &art, Windows &w, OptimizerConfig c)
      : a(art), windows(w), config(c) {}
};

PipelineTrainer::PipelineTrainer() = default;
PipelineTrainer::~PipelineTrainer() = default;

std::unique_ptr<PipelineTrainer>
PipelineTrainer::create(const Artifact &a, const std::string &artifactDir,
                        Windows &windows, OptimizerConfig config, int threads,
                        std::string *error, uint64_t memoryLimit,
                        const ExecutorOptions &options,
                        const std::vector<uint32_t> *localRanks) {
  if (!a.isPipeline()) {
    *error = "the artifact has no pipeline programs (compile with --ranks or "
             "--schedule)";
    return nullptr;
  }
  std::vector<uint32_t> local;
  if (localRanks) {
    local = *localRanks;
  } else {
    for (uint32_t r = 0; r < a.ranks; ++r)
      local.push_back(r);
  }
  for (size_t k = 0; k < local.size(); ++k)
    if (local[k] >= a.ranks || (k && local[k] <= local[k - 1])) {
      *error = "rank " + std::to_string(local[k]) + " is not one of the " +
               std::to_string(a.ranks) + " ranks, or is given twice";
      return nullptr;
    }
  if (local.empty()) {
    *error = "no rank to run here";
    return nullptr;
  }
  // The local ranks live in this process: their plans together must fit.
  uint64_t total = 0;
  std::string perRank;
  for (uint32_t r : local) {
    const uint64_t b = planRankMemory(a, r).total();
    total += b;
    perRank += (perRank.empty() ? "" : ", ") + std::to_string(b);
  }
  // On a GPU each rank's executor checks its share against the device's
  // free memory when it is made.
  const uint64_t avail =
      options.device == Device::Cpu ? availableMemoryBytes() : 0;
  if ((memoryLimit && total > memoryLimit) || (avail && total > avail)) {
    *error = (local.size() == a.ranks
                  ? "the " + std::to_string(a.ranks) + " ranks need "
                  : "rank " + std::to_string(local[0]) + " needs ") +
             std::to_string(total) +
             (local.size() > 1 ? " bytes together (" + perRank + ")"
                               : std::string(" bytes")) +
             ", over " +
             (memoryLimit && total > memoryLimit
                  ? "--memory-limit (" + std::to_string(memoryLimit) + ")"
                  : "the " + std::to_string(avail) + " bytes available");
    return nullptr;
  }
  std::unique_ptr<PipelineTrainer> t(new PipelineTrainer());
  t->impl_ = std::make_unique<Impl>(a, windows, config);
  Impl &im = *t->impl_;
  im.threadsPerRank = std::max(1, threads / int(local.size()));
  im.local = local;
  for (uint32_t r : local) {
    const std::vector<bool> holds = rankParameters(a, r);
    std::unique_ptr<Executor> ex =
        Executor::create(a, artifactDir, error, &holds, 0, options);
    if (!ex) {
      *error = "rank " + std::to_string(r) + ": " + *error;
      return nullptr;
    }
    auto rank = std::make_unique<Rank>(a, int(r), *ex, config);
    if (Status e = rank->init(); !e.ok()) {
      *error = "rank " + std::to_string(r) + ": " + e.message();
      return nullptr;
    }
    im.executors.push_back(std::move(ex));
    im.ranks.push_back(std::move(rank));
  }
  return t;
}

Status
PipelineTrainer::train(int64_t first, int64_t count,
                       const std::function<Status(const StepRecord &)> &onStep,
                       transport::Transport *world,
                       const WorldOptions &worldOptions) {
  Impl &im = *impl_;
  const Artifact &a = im.a;
  const int64_t N = a.microbatches, B = a.batch;
  const size_t tokens = size_t(a.batch * a.seq);
  auto body = [&](transport::Transport &t) -> Status {
    cpu::set_num_threads(im.threadsPerRank);
    Rank *here = im.rank(uint32_t(t.rank()));
    if (!here)
      return Status::error("rank " + std::to_string(t.rank()) +
                           " does not run in this process");
    Rank &rank = *here;
    if (detail::DeviceBackend *dev = detail::deviceBackend(rank.executor()))
      if (Status e = dev->bindThread(); !e.ok())
        return e;
    std::vector<std::vector<int64_t>> ids, targets;
    if (Status e = allocating(
            "the step's token ids and targets",
            2 * uint64_t(N) * tokens * sizeof(int64_t),
            [&] {
              ids.assign(size_t(N), std::vector<int64_t>(tokens));
              targets.assign(size_t(N), std::vector<int64_t>(tokens));
            });
        !e.ok())
      return e;
    std::vector<int64_t> counts(static_cast<size_t>(N));
    for (int64_t step = first; step < first + count; ++step) {
      StepRecord rec;
      rec.step = step;
      rec.lr = im.config.schedule.at(step);
      std::vector<uint64_t> win(static_cast<size_t>(B));
      // Windows caches the epoch's permutation: one rank at a time.
      std::unique_lock<std::mutex> data(im.dataMutex);
      if (std::string e = im.windows.tokens().shrunk(); !e.empty())
        return Status::error("step " + std::to_string(step) + ": " + e);
      for (int64_t m = 0; m < N; ++m) {
        im.windows.fillMicrobatch(step, m, N, B, ids[size_t(m)].data(),
                                  targets[size_t(m)].data(), win.data());
        rec.windows.insert(rec.windows.end(), win.begin(), win.end());
        int64_t c = 0;
        for (int64_t v : targets[size_t(m)])
          c += v != a.ignoreIndex;
        counts[size_t(m)] = c;
        rec.tokens += c;
      }
      data.unlock();
      if (Status e = rank.step(t, step, counts, rec.tokens, ids, targets, &rec);
          !e.ok())
        return e;
      if (t.rank() == 0)
        if (Status e = onStep(rec); !e.ok())
          return e;
    }
    return {};
  };
  if (!world) {
    if (im.local.size() != a.ranks)
      return Status::error("this process runs " +
                           std::to_string(im.local.size()) + " of the " +
                           std::to_string(a.ranks) +
                           " ranks: the others need a world of processes");
    return transport::runLocalRanks(int(a.ranks), body);
  }
  if (world->size() != int(a.ranks))
    return Status::error("a world of " + std::to_string(world->size()) +
                         " processes for an artifact of " +
                         std::to_string(a.ranks) + " ranks");
  if (worldOptions.nccl)
    for (auto &r : im.ranks)
      r->useChannels(worldOptions);
  Status st = body(*world);
  if (!st.ok()) {
    world->abort(st.message());
    // Transfers this rank posted would wait for peers that stop now.
    for (auto &r : im.ranks)
      if (detail::DeviceBackend *dev = detail::deviceBackend(r->executor()))
        dev->abortChannels();
  }
  return st;
}

const std::vector<uint32_t> &PipelineTrainer::localRanks() const {
  return impl_->local;
}

Status
PipelineTrainer::gatherParameters(transport::Transport &world,
                                  std::vector<std::vector<float>> *values) {
  const Artifact &a = impl_->a;
  const int me = world.rank();
  Rank *rank = impl_->rank(uint32_t(me));
  if (!rank)
    return Status::error("rank " + std::to_string(me) +
                         " does not run in this process");
  // Each parameter from its first owner; tags past any a step uses.
  std::vector<int> owner(a.params.size(), -1);
  for (uint32_t r = 0; r < a.ranks; ++r) {
    const std::vector<bool> owns = rankParameters(a, r);
    for (size_t i = 0; i < owner.size(); ++i)
      if (owns[i] && owner[i] < 0)
        owner[i] = int(r);
  }
  const uint64_t base = uint64_t(1) << 62;
  values->clear();
  if (me == 0)
    values->resize(a.params.size());
  std::vector<transport::Request> reqs(a.params.size());
  std::vector<std::vector<float>> mine(a.params.size());
  for (size_t i = 0; i < a.params.size(); ++i) {
    const size_t n = size_t(a.params[i].numel());
    if (owner[i] == me) {
      std::vector<float> &v = me == 0 ? (*values)[i] : mine[i];
      v.resize(n);
      if (Status e = rank->executor().readParameter(i, v.data()); !e.ok())
        return e;
      reqs[i].done = me == 0; // nothing to move
      if (me != 0)
        if (Status e =
                world.send(0, base + i, v.data(), n * sizeof(float), &reqs[i]);
            !e.ok())
          return e;
    } else if (me == 0) {
      (*values)[i].resize(n);
      if (Status e = world.recv(owner[i], base + i, (*values)[i].data(),
                                n * sizeof(float), &reqs[i]);
          !e.ok())
        return e;
    }
  }
  for (size_t i = 0; i < a.params.size(); ++i)
    if (owner[i] == me || me == 0)
      if (Status e = world.wait(reqs[i]); !e.ok())
        return e;
  return {};
}

Status PipelineTrainer::readParameter(size_t index, float *dst) const {
  for (const auto &r : impl_->ranks)
    if (r->ownsParam[index])
      return r->executor().readParameter(index, dst);
  return impl_->executors.front()->readParameter(index, dst);
}

std::string PipelineTrainer::deviceDescription() const {
  return impl_->executors.front()->deviceDescription();
}

void PipelineTrainer::recordTimeline(bool on) {
  for (const auto &r : impl_->ranks)
    r->tracing = on;
}

std::vector<TraceEvent> PipelineTrainer::timeline() const {
  double begin = 0;
  bool any = false;
  for (const auto &r : impl_->ranks)
    if (!r->timeline.empty()) {
      begin = any ? std::min(begin, r->timelineBegin) : r->timelineBegin;
      any = true;
    }
  std::vector<TraceEvent> out;
  for (const auto &r : impl_->ranks)
    for (TraceEvent e : r->timeline) {
      e.start -= begin;
      out.push_back(std::move(e));
    }
  return out;
}

std::vector<InstructionSample> PipelineTrainer::instructionTimes() const {
  std::vector<InstructionSample> out;
  for (const auto &ex : impl_->executors) {
    const auto &times = ex->instructionTimes();
    for (size_t f = 0; f < times.size(); ++f)
      for (size_t i = 0; i < times[f].size(); ++i)
        if (times[f][i].runs)
          out.push_back({int(f), int(i), times[f][i].seconds, times[f][i].runs,
                         times[f][i].fastest});
  }
  // The ranks run the same functions: one sample per instruction.
  std::sort(out.begin(), out.end(),
            [](const InstructionSample &x, const InstructionSample &y) {
              return std::make_pair(x.function, x.instruction) <
                     std::make_pair(y.function, y.instruction);
            });
  std::vector<InstructionSample> merged;
  for (const InstructionSample &s : out)
    if (!merged.empty() && merged.back().function == s.function &&
        merged.back().instruction == s.instruction) {
      merged.back().seconds += s.seconds;
      merged.back().runs += s.runs;
      merged.back().fastest = std::min(merged.back().fastest, s.fastest);
    } else {
      merged.push_back(s);
    }
  return merged;
}

std::vector<RankStats> PipelineTrainer::stats() const {
  std::vector<RankStats> out;
  for (const auto &r : impl_->ranks)
    out.push_back(r->stats);
  return out;
}

uint64_t PipelineTrainer::bytesAllocated() const {
  uint64_t b = 0;
  for (const auto &r : impl_->ranks)
    b += r->bytes();
  return b;
}

} // namespace weipipe::rt::train
