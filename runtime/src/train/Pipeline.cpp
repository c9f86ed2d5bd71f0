//===- Pipeline.cpp - training a pipeline artifact on several ranks -------===//
//
// Part of weipipe's runtime. See Pipeline.h.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/train/Pipeline.h"

#include "weipipe/runtime/RankMemory.h"
#include "weipipe/runtime/transport/Transport.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

namespace weipipe::rt::train {

namespace {

/// A 64-byte aligned block of bytes, zero-filled.
class Buffer {
public:
  Buffer() = default;
  Buffer(const Buffer &) = delete;
  Buffer &operator=(const Buffer &) = delete;
  ~Buffer() { std::free(p_); }
  bool allocate(uint64_t bytes) {
    const uint64_t n = alignedBytes(std::max<uint64_t>(bytes, 1));
    p_ = static_cast<uint8_t *>(std::aligned_alloc(64, n));
    if (p_)
      std::memset(p_, 0, n);
    size_ = bytes;
    return p_ != nullptr;
  }
  uint8_t *data() const { return p_; }
  float *f() const { return reinterpret_cast<float *>(p_); }
  uint64_t size() const { return size_; }

private:
  uint8_t *p_ = nullptr;
  uint64_t size_ = 0;
};

double seconds(std::chrono::steady_clock::time_point a,
               std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::string bytesText(uint64_t b) { return std::to_string(b) + " bytes"; }

} // namespace

/// One rank: its executor, slots, arena instances and program.
class Rank {
public:
  Rank(const Artifact &a, int rank, Executor &ex, OptimizerConfig config)
      : a_(a), r_(rank), prog_(a.programs[size_t(rank)]), ex_(ex),
        config_(config) {}

  Status init();
  /// One optimizer step; `counts[m]` the targets micro-batch m counts, the
  /// data of every micro-batch in `ids`/`targets` ([N][B*S]).
  Status step(transport::Transport &t, int64_t step,
              const std::vector<int64_t> &counts, int64_t total,
              const std::vector<std::vector<int64_t>> &ids,
              const std::vector<std::vector<int64_t>> &targets,
              StepRecord *rec);

  RankStats stats;
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
  RankStats stepStart_; // the figures when the step began
  std::map<int, std::vector<transport::Request>> tokens_;
  std::vector<uint64_t> sendSeq_, recvSeq_; // per peer: message tags
  std::vector<float> losses_;               // per micro-batch (NaN: not ours)
  std::vector<std::vector<float>> m_, v_;   // AdamW state of owned params
  std::vector<bool> gradsStaged_; // params whose step gradient is in place

  const Stage &stage(size_t s) const { return a_.stages[s]; }
  Status acquire(size_t s, int m);
  uint8_t *instance(size_t s, int m) {
    auto it = live_.find({s, m});
    return it == live_.end() ? nullptr : it->second->data();
  }
  void release(size_t s, int m);
  void bindParams(size_t s, Buffer *weights, Buffer *grads);
  void writeInputs(size_t s, uint8_t *base, int m,
                   const std::vector<std::vector<int64_t>> &ids,
                   const std::vector<std::vector<int64_t>> &targets);
  Status run(size_t s, int32_t fn, int m);
  Status forward(const Action &ac, const std::vector<int64_t> &counts,
                 int64_t total, const std::vector<std::vector<int64_t>> &ids,
                 const std::vector<std::vector<int64_t>> &targets);
  Status backward(const Action &ac, bool input, bool weight);
  Status runEnd(size_t s, int m, bool input, bool weight);
  /// Frees the instances `effects` settle for good.
  void settle(const InstanceEffects &effects, int m);
  Status finishStep(transport::Transport &t, int64_t step,
                    const std::vector<int64_t> &counts, int64_t total,
                    StepRecord *rec);
  Status exchange(transport::Transport &t, const void *mine, void *all,
                  size_t bytes);
};

uint64_t Rank::bytes() const {
  return stats.allocated.total();
}

Status Rank::init() {
  for (const Slot &s : prog_.slots) {
    auto b = std::make_unique<Buffer>();
    if (!b->allocate(s.bytes))
      return Status::error("cannot allocate slot '" + s.label + "' of " +
                           bytesText(s.bytes));
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
  if (Status e = allocating("the AdamW state", stats.allocated.optimizerBytes,
                            [&] {
                              for (size_t i = 0; i < a_.params.size(); ++i)
                                if (ownsParam[i]) {
                                  const size_t n = size_t(a_.params[i].numel());
                                  m_[i].assign(n, 0.0f);
                                  v_[i].assign(n, 0.0f);
                                }
                            });
      !e.ok())
    return e;
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
  } else {
    b = std::make_unique<Buffer>();
    if (!b->allocate(stage(s).arenaBytes))
      return Status::error("cannot allocate an arena instance of stage '" +
                           stage(s).name + "' (" +
                           bytesText(stage(s).arenaBytes) + ")");
    ++stats.allocated.instances[s];
    stats.allocated.activationBytes += stage(s).arenaBytes;
  }
  live_[{s, m}] = std::move(b);
  return {};
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

void Rank::writeInputs(size_t s, uint8_t *base, int m,
                       const std::vector<std::vector<int64_t>> &ids,
                       const std::vector<std::vector<int64_t>> &targets) {
  for (const Input &in : stage(s).inputs) {
    const std::vector<int64_t> &src =
        in.role == InputRole::Tokens ? ids[size_t(m)] : targets[size_t(m)];
    std::memcpy(base + in.ref.offset, src.data(),
                size_t(in.ref.numel()) * sizeof(int64_t));
  }
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

/// Copies `refs` of the instance at `from` into `to` at the same refs'
/// places of another stage (`toRefs`, equal shapes).
void copyRefs(const std::vector<TensorRef> &fromRefs, const uint8_t *from,
              const std::vector<TensorRef> &toRefs, uint8_t *to) {
  for (size_t k = 0; k < fromRefs.size() && k < toRefs.size(); ++k)
    if (fromRefs[k].present() && toRefs[k].present())
      std::memcpy(to + toRefs[k].offset, from + fromRefs[k].offset,
                  fromRefs[k].bytes());
}

/// Packs `refs` of an instance into a slot laid out by `layout`, or back.
void pack(const std::vector<TensorRef> &refs,
          const std::vector<uint64_t> &layout, const uint8_t *base,
          uint8_t *slot) {
  for (size_t k = 0; k < refs.size(); ++k)
    if (refs[k].present())
      std::memcpy(slot + layout[k], base + refs[k].offset, refs[k].bytes());
}
void unpack(const std::vector<TensorRef> &refs,
            const std::vector<uint64_t> &layout, const uint8_t *slot,
            uint8_t *base) {
  for (size_t k = 0; k < refs.size(); ++k)
    if (refs[k].present())
      std::memcpy(base + refs[k].offset, slot + layout[k], refs[k].bytes());
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

Status Rank::forward(const Action &ac, const std::vector<int64_t> &counts,
                     int64_t total,
                     const std::vector<std::vector<int64_t>> &ids,
                     const std::vector<std::vector<int64_t>> &targets) {
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
    writeInputs(size_t(pro), pb, m, ids, targets);
    bindParams(size_t(pro), nullptr, nullptr);
    if (Status e = run(size_t(pro), stage(size_t(pro)).forward, m); !e.ok())
      return e;
  }
  const Stage &st = stage(s);
  if (ac.in >= 0) {
    unpack(st.in, inLayout_[s], slots_[size_t(ac.in)]->data(), base);
  } else if (s > 0) {
    uint8_t *prev = instance(s - 1, m);
    if (!prev)
      return Status::error("chunk " + std::to_string(c) + " of micro-batch " +
                           std::to_string(m) +
                           " has no input: its previous stage did not run "
                           "here");
    copyRefs(stage(s - 1).out, prev, st.in, base);
  }
  writeInputs(s, base, m, ids, targets);
  bindParams(s, slots_[size_t(ac.weights)], nullptr);
  if (Status e = run(s, st.forward, m); !e.ok())
    return e;
  if (ac.out >= 0)
    pack(st.out, outLayout_[s], base, slots_[size_t(ac.out)]->data());
  const float weight =
      float(double(counts[size_t(m)]) / double(std::max<int64_t>(total, 1)));
  auto lossOf = [&](size_t ls, uint8_t *lb) {
    float loss;
    std::memcpy(&loss, lb + stage(ls).loss.offset, sizeof loss);
    losses_[size_t(m)] = loss;
    std::memcpy(lb + stage(ls).dloss.offset, &weight, sizeof weight);
  };
  if (c + 1 == C) {
    if (epi >= 0) {
      uint8_t *eb = instance(size_t(epi), m);
      copyRefs(st.out, base, stage(size_t(epi)).in, eb);
      writeInputs(size_t(epi), eb, m, ids, targets);
      bindParams(size_t(epi), nullptr, nullptr);
      if (Status e = run(size_t(epi), stage(size_t(epi)).forward, m); !e.ok())
        return e;
      lossOf(size_t(epi), eb);
      // The loss's gradient right away: the epilogue's instance then holds
      // only the gradient the last chunk's backward reads.
      if (Status e = runEnd(size_t(epi), m, true, true); !e.ok())
        return e;
    } else {
      lossOf(s, base);
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
      unpack(st.dout, doutLayout_[s], slots_[size_t(ac.in)]->data(), base);
    } else if (c + 1 < C || epi >= 0) {
      uint8_t *next = instance(s + 1, m);
      if (!next)
        return Status::error("chunk " + std::to_string(c) +
                             " has no output gradient of micro-batch " +
                             std::to_string(m) + " on this rank");
      copyRefs(stage(s + 1).din, next, st.dout, base);
    }
  }
  Buffer *w = ac.weights >= 0 ? slots_[size_t(ac.weights)] : nullptr;
  Buffer *g = ac.grads >= 0 ? slots_[size_t(ac.grads)] : nullptr;
  bindParams(s, w, g);
  if (input && weight && st.backward >= 0) {
    if (Status e = run(s, st.backward, m); !e.ok())
      return e;
  } else {
    if (input && st.backwardInput >= 0)
      if (Status e = run(s, st.backwardInput, m); !e.ok())
        return e;
    if (weight && st.backwardWeight >= 0)
      if (Status e = run(s, st.backwardWeight, m); !e.ok())
        return e;
  }
  if (input) {
    if (ac.out >= 0)
      pack(st.din, dinLayout_[s], base, slots_[size_t(ac.out)]->data());
    if (c == 0 && pro >= 0) {
      uint8_t *pb = instance(size_t(pro), m);
      if (!pb)
        return Status::error("no prologue of micro-batch " + std::to_string(m) +
                             " on this rank");
      copyRefs(st.din, base, stage(size_t(pro)).dout, pb);
      if (Status e = runEnd(size_t(pro), m, true, true); !e.ok())
        return e;
    }
  }
  settle(instanceEffects(a_, ac), m);
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

Status Rank::finishStep(transport::Transport &t, int64_t step,
                        const std::vector<int64_t> &counts, int64_t total,
                        StepRecord *rec) {
  const int P = t.size();
  const size_t N = counts.size();
  std::vector<ParamBuffers> &params = ex_.params();
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
  // n = 0 (ends of empty tensors): nothing to sum, and mine.data() is null.
  if (P > 1 && n > 0) {
    std::vector<float> mine(n), all(n * size_t(P));
    size_t at = 0;
    for (uint32_t p : ends) {
      std::memcpy(mine.data() + at, params[p].grad,
                  size_t(params[p].numel) * sizeof(float));
      at += size_t(params[p].numel);
    }
    if (Status e = exchange(t, mine.data(), all.data(), n * sizeof(float));
        !e.ok())
      return e;
    at = 0;
    for (uint32_t p : ends) {
      float *g = params[p].grad;
      const size_t k = size_t(params[p].numel);
      std::memcpy(g, all.data() + at, k * sizeof(float));
      for (int q = 1; q < P; ++q) {
        const float *o = all.data() + size_t(q) * n + at;
        for (size_t i = 0; i < k; ++i)
          g[i] += o[i];
      }
      at += k;
    }
  }
  // 2. Per-parameter sums of squares from the owners (the ends: rank 0's),
  //    added in parameter order.
  const size_t np = params.size();
  std::vector<double> ss(np, 0.0), allSs(np * size_t(P), 0.0);
  for (size_t i = 0; i < np; ++i) {
    const bool end = std::binary_search(ends.begin(), ends.end(), uint32_t(i));
    if (ownsParam[i] && (!end || r_ == 0))
      ss[i] = cpu::sum_of_squares(params[i].grad, params[i].numel);
  }
  // 3. The losses of the micro-batches, from whichever rank ran them.
  std::vector<float> allLoss(N * size_t(P));
  if (P > 1) {
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
  for (size_t i = 0; i < np; ++i) {
    if (!ownsParam[i])
      continue;
    ParamBuffers &p = params[i];
    cpu::AdamWConfig c{rec->lr, config_.beta1, config_.beta2, config_.eps,
                       p.desc->decay ? config_.weightDecay : 0.0};
    cpu::adamw_step(p.value, p.grad, m_[i].data(), v_[i].data(), p.numel, c,
                    step + 1, scale);
  }
  return {};
}

Status Rank::step(transport::Transport &t, int64_t step,
                  const std::vector<int64_t> &counts, int64_t total,
                  const std::vector<std::vector<int64_t>> &ids,
                  const std::vector<std::vector<int64_t>> &targets,
                  StepRecord *rec) {
  ex_.zeroGrads();
  stepStart_ = stats;
  losses_.assign(counts.size(), std::nanf(""));
  tokens_.clear();
  lifetimes_.clear();
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
    Status st;
    switch (ac.op) {
    case ActionOp::LoadMaster: {
      const size_t s = a_.chunkStage(size_t(ac.chunk));
      Buffer *dst = slots_[size_t(ac.slots[0])];
      const std::vector<ParamBuffers> &params = ex_.params();
      for (size_t i = 0; i < stage(s).params.size(); ++i) {
        const ParamBuffers &p = params[stage(s).params[i]];
        std::memcpy(dst->f() + layout_[s][i], p.value,
                    size_t(p.numel) * sizeof(float));
      }
      break;
    }
    case ActionOp::Zero: {
      Buffer *b = slots_[size_t(ac.slots[0])];
      std::memset(b->data(), 0, b->size());
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
               : dst->size()) /
          sizeof(float);
      for (uint64_t i = 0; i < n; ++i)
        dst->f()[i] += src->f()[i];
      break;
    }
    case ActionOp::Forward:
      st = forward(ac, counts, total, ids, targets);
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
      for (size_t i = 0; i < stage(s).params.size(); ++i) {
        ParamBuffers &p = params[stage(s).params[i]];
        std::memcpy(p.grad, g->f() + layout_[s][i],
                    size_t(p.numel) * sizeof(float));
      }
      break;
    }
    case ActionOp::Send:
    case ActionOp::Recv: {
      std::vector<transport::Request> &reqs = tokens_[ac.token];
      reqs.resize(ac.slots.size());
      for (size_t i = 0; i < ac.slots.size() && st.ok(); ++i) {
        Buffer *b = slots_[size_t(ac.slots[i])];
        if (ac.op == ActionOp::Send) {
          st = t.send(ac.peer, sendSeq_[size_t(ac.peer)]++, b->data(),
                      size_t(ac.bytes[i]), &reqs[i]);
          stats.bytesSent += ac.bytes[i];
          ++stats.messagesSent;
        } else {
          st = t.recv(ac.peer, recvSeq_[size_t(ac.peer)]++, b->data(),
                      size_t(ac.bytes[i]), &reqs[i]);
        }
      }
      break;
    }
    case ActionOp::Wait: {
      const auto w0 = std::chrono::steady_clock::now();
      for (int32_t tok : ac.tokens) {
        auto it = tokens_.find(tok);
        if (it == tokens_.end()) {
          st = Status::error("waits for token " + std::to_string(tok) +
                             ", which no transfer posted");
          break;
        }
        for (transport::Request &rq : it->second)
          if (st.ok())
            st = t.wait(rq);
        tokens_.erase(it);
      }
      stats.waitSeconds += seconds(w0, std::chrono::steady_clock::now());
      break;
    }
    }
    if (!st.ok())
      return Status::error(where(k, ac) + ": " + st.message());
  }
  // Every rank leaves the executor bound to its own buffers.
  for (size_t i = 0; i < a_.params.size(); ++i)
    ex_.bindParam(i, nullptr, nullptr);
  if (!live_.empty())
    return Status::error("step " + std::to_string(step) + ": " +
                         std::to_string(live_.size()) +
                         " micro-batch(es) still hold activations after the "
                         "program (a backward never ran)");
  return finishStep(t, step, counts, total, rec);
}

//===----------------------------------------------------------------------===//
// PipelineTrainer
//===----------------------------------------------------------------------===//

struct PipelineTrainer::Impl {
  const Artifact &a;
  Windows &windows;
  OptimizerConfig config;
  int threadsPerRank = 1;
  std::vector<std::unique_ptr<Executor>> executors;
  std::vector<std::unique_ptr<Rank>> ranks;
  std::mutex dataMutex; ///< guards `windows`, which every rank reads
  Impl(const Artifact &art, Windows &w, OptimizerConfig c)
      : a(art), windows(w), config(c) {}
};

PipelineTrainer::PipelineTrainer() = default;
PipelineTrainer::~PipelineTrainer() = default;

std::unique_ptr<PipelineTrainer>
PipelineTrainer::create(const Artifact &a, const std::string &artifactDir,
                        Windows &windows, OptimizerConfig config, int threads,
                        std::string *error, uint64_t memoryLimit) {
  if (!a.isPipeline()) {
    *error = "the artifact has no pipeline programs (compile with --ranks or "
             "--schedule)";
    return nullptr;
  }
  // All ranks live in this process: their plans together must fit.
  uint64_t total = 0;
  std::string perRank;
  for (uint32_t r = 0; r < a.ranks; ++r) {
    const uint64_t b = planRankMemory(a, r).total();
    total += b;
    perRank += (r ? ", " : "") + std::to_string(b);
  }
  const uint64_t avail = availableMemoryBytes();
  if ((memoryLimit && total > memoryLimit) || (avail && total > avail)) {
    *error = "the " + std::to_string(a.ranks) + " ranks need " +
             std::to_string(total) + " bytes together (" + perRank +
             "), over " +
             (memoryLimit && total > memoryLimit
                  ? "--memory-limit (" + std::to_string(memoryLimit) + ")"
                  : "the " + std::to_string(avail) + " bytes available");
    return nullptr;
  }
  std::unique_ptr<PipelineTrainer> t(new PipelineTrainer());
  t->impl_ = std::make_unique<Impl>(a, windows, config);
  Impl &im = *t->impl_;
  im.threadsPerRank = std::max(1, threads / int(a.ranks));
  for (uint32_t r = 0; r < a.ranks; ++r) {
    const std::vector<bool> holds = rankParameters(a, r);
    std::unique_ptr<Executor> ex =
        Executor::create(a, artifactDir, error, &holds);
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

Status PipelineTrainer::train(
    int64_t first, int64_t count,
    const std::function<Status(const StepRecord &)> &onStep) {
  Impl &im = *impl_;
  const Artifact &a = im.a;
  const int64_t N = a.microbatches, B = a.batch;
  const size_t tokens = size_t(a.batch * a.seq);
  Status result = transport::runLocalRanks(
      int(a.ranks), [&](transport::Transport &t) -> Status {
        cpu::set_num_threads(im.threadsPerRank);
        Rank &rank = *im.ranks[size_t(t.rank())];
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
          if (Status e =
                  rank.step(t, step, counts, rec.tokens, ids, targets, &rec);
              !e.ok())
            return e;
          if (t.rank() == 0)
            if (Status e = onStep(rec); !e.ok())
              return e;
        }
        return {};
      });
  return result;
}

const float *PipelineTrainer::paramValue(size_t index) const {
  for (const auto &r : impl_->ranks)
    if (r->ownsParam[index])
      return r->executor().params()[index].value;
  return impl_->executors.front()->params()[index].value;
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
