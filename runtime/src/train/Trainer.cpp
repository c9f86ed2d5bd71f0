//===- Trainer.cpp - one rank's optimizer steps ---------------------------===//
//
// Part of weipipe's runtime.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/train/Trainer.h"

#include <algorithm>
#include <cmath>

namespace weipipe::rt::train {

Trainer::Trainer(Executor &ex, const Artifact &a, Windows &windows,
                 OptimizerConfig config)
    : ex_(ex), a_(a), windows_(windows), config_(config) {}

cpu::Status Trainer::init() {
  std::vector<ParamBuffers> &params = ex_.params();
  m_.resize(params.size());
  v_.resize(params.size());
  gradPtrs_.clear();
  gradSizes_.clear();
  optimizerBytes_ = 0;
  for (const ParamBuffers &p : params) {
    gradPtrs_.push_back(p.grad);
    gradSizes_.push_back(p.numel);
    optimizerBytes_ += 2 * uint64_t(p.numel) * sizeof(float);
  }
  // A device executor keeps the moments next to the parameters.
  if (!ex_.onDevice())
    if (cpu::Status e =
            allocating("the AdamW state", optimizerBytes_,
                       [&] {
                         for (size_t i = 0; i < params.size(); ++i) {
                           m_[i].assign(size_t(params[i].numel), 0.0f);
                           v_[i].assign(size_t(params[i].numel), 0.0f);
                         }
                       });
        !e.ok())
      return e;
  // Validation bounds batch x seq by an input in the arena.
  const size_t tokens = size_t(a_.batch * a_.seq);
  return allocating("a micro-batch's token ids and targets",
                    2 * uint64_t(tokens) * sizeof(int64_t), [&] {
                      ids_.resize(tokens);
                      targets_.resize(tokens);
                      win_.resize(size_t(a_.batch));
                    });
}

std::unique_ptr<Trainer> Trainer::create(Executor &ex, const Artifact &a,
                                         Windows &windows,
                                         OptimizerConfig config,
                                         std::string *error) {
  auto t = std::make_unique<Trainer>(ex, a, windows, config);
  if (cpu::Status e = t->init(); !e.ok()) {
    *error = e.message();
    return nullptr;
  }
  return t;
}

cpu::Status Trainer::step(int64_t step, StepRecord *out) {
  const int64_t M = a_.microbatches, B = a_.batch;
  if (std::string e = windows_.tokens().shrunk(); !e.empty())
    return cpu::Status::error("step " + std::to_string(step) + ": " + e);
  StepRecord r;
  r.step = step;
  r.lr = config_.schedule.at(step);
  ex_.zeroGrads();
  // The step's loss is the mean over all its non-ignored targets (T):
  // micro-batch m (c_m counted targets, loss_m their mean) seeds its
  // backward with c_m / T, which is 1 / M when nothing is ignored.
  std::vector<int64_t> counts(static_cast<size_t>(M));
  for (int64_t m = 0; m < M; ++m) {
    windows_.fillMicrobatch(step, m, M, B, ids_.data(), targets_.data());
    int64_t c = 0;
    for (int64_t t : targets_)
      c += t != a_.ignoreIndex;
    counts[size_t(m)] = c;
    r.tokens += c;
  }
  const double denom = double(std::max<int64_t>(r.tokens, 1));
  double lossSum = 0;
  for (int64_t m = 0; m < M; ++m) {
    windows_.fillMicrobatch(step, m, M, B, ids_.data(), targets_.data(),
                            win_.data());
    r.windows.insert(r.windows.end(), win_.begin(), win_.end());
    const float dloss = float(double(counts[size_t(m)]) / denom);
    float loss = 0;
    const std::string at =
        "step " + std::to_string(step) + ", micro-batch " + std::to_string(m);
    cpu::Status st =
        ex_.runMicrobatch(ids_.data(), targets_.data(), dloss, &loss);
    if (!st.ok())
      return cpu::Status::error(at + ": " + st.message());
    if (!std::isfinite(loss)) {
      std::string where =
          ex_.findFirstNonFinite(ids_.data(), targets_.data(), dloss);
      return cpu::Status::error(
          "step " + std::to_string(step) + ": loss is " +
          (std::isnan(loss) ? "nan" : "inf") + "; " +
          (where.empty() ? "no instruction result is non-finite on rerun"
                         : where));
    }
    lossSum += double(loss) * double(counts[size_t(m)]);
  }
  r.loss = lossSum / denom;

  // Global norm before clipping, AdamW with the clipping factor (decay on
  // the parameters marked for it).
  std::vector<ParamBuffers> &params = ex_.params();
  std::vector<cpu::AdamWConfig> configs;
  for (const ParamBuffers &p : params)
    configs.push_back({r.lr, config_.beta1, config_.beta2, config_.eps,
                       p.desc->decay ? config_.weightDecay : 0.0});
  if (ex_.onDevice()) {
    if (cpu::Status st =
            ex_.optimizerStep(configs, step + 1, config_.gradClip, &r.gradNorm);
        !st.ok())
      return cpu::Status::error("step " + std::to_string(step) +
                                ", optimizer: " + st.message());
  } else {
    r.gradNorm = cpu::global_norm(gradPtrs_, gradSizes_);
    const float scale = config_.gradClip > 0
                            ? cpu::clip_scale(r.gradNorm, config_.gradClip)
                            : 1.0f;
    for (size_t i = 0; i < params.size(); ++i)
      cpu::adamw_step(params[i].value, params[i].grad, m_[i].data(),
                      v_[i].data(), params[i].numel, configs[i], step + 1,
                      scale);
  }
  *out = std::move(r);
  return {};
}

} // namespace weipipe::rt::train
