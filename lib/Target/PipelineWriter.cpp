//===- PipelineWriter.cpp - compiles a model for a pipeline ---------------===//
//
// Part of weipipe. See PipelineWriter.h.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Target/PipelineWriter.h"
#include "weipipe/Dialect/NN/NNOps.h"
#include "weipipe/Dialect/NN/Transforms/Passes.h"
#include "weipipe/Dialect/Pipe/PipeOps.h"
#include "weipipe/Dialect/Pipe/Transforms/Passes.h"
#include "weipipe/Target/ArtifactWriter.h"
#include "weipipe/runtime/Artifact.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;
using namespace mlir::weipipe;
namespace rt = ::weipipe::rt;
namespace sched = ::weipipe::schedule;

namespace {

/// Every parameter of a layer chunk belongs to that chunk alone: it travels
/// with the chunk (WeiPipe's rings) or lives on the chunk's rank, and one
/// owner steps it. A parameter the replicated ends share with each other (a
/// tied embedding and head) is fine: every rank holds both.
LogicalResult checkParameterPlacement(ModuleOp module, const rt::Artifact &a) {
  std::vector<int> stageOf(a.params.size(), -1);
  for (size_t s = 0; s < a.stages.size(); ++s) {
    const bool end = a.stages[s].kind != rt::StageKind::Layers;
    for (uint32_t p : a.stages[s].params) {
      int &at = stageOf[p];
      if (at >= 0) {
        const bool otherEnd =
            a.stages[size_t(at)].kind != rt::StageKind::Layers;
        if (end && otherEnd)
          continue;
        if (at == 0 && s + 1 == a.stages.size())
          return module.emitError()
                 << "parameter '" << a.params[p].name
                 << "' is read by the first chunk and the last (a tied "
                    "embedding and head), which --ends=owned puts on "
                    "different chunks; use --ends=replicated (the default) "
                    "or --keep-ties-separate";
        return module.emitError()
               << "parameter '" << a.params[p].name << "' is read by stages '"
               << a.stages[size_t(at)].name << "' and '" << a.stages[s].name
               << "'; a pipeline gives each parameter to one chunk (an "
                  "initializer shared by several layers, such as norm scales "
                  "an exporter stored once, cannot be split across ranks; "
                  "train it on one rank, or export with distinct "
                  "initializers)";
      }
      at = int(s);
    }
  }
  return success();
}

uint64_t contentBytes(const rt::Artifact &a, const sched::Content &c) {
  if (c.chunk < 0 || size_t(c.chunk) >= a.numChunks())
    return 0;
  const rt::Stage &st = a.stages[a.chunkStage(size_t(c.chunk))];
  switch (c.kind) {
  case sched::Content::Weights:
  case sched::Content::Grads:
    return rt::stageSlotLayout(a, st, nullptr);
  case sched::Content::Activation:
    return rt::boundaryLayout(st.out, nullptr);
  case sched::Content::ActivationGrad:
    return rt::boundaryLayout(st.din, nullptr);
  case sched::Content::Undefined:
    return 0;
  }
  return 0;
}

rt::ActionOp runtimeOp(sched::Op op) {
  switch (op) {
  case sched::Op::LoadMaster:
    return rt::ActionOp::LoadMaster;
  case sched::Op::Zero:
    return rt::ActionOp::Zero;
  case sched::Op::Swap:
    return rt::ActionOp::Swap;
  case sched::Op::AddInto:
    return rt::ActionOp::AddInto;
  case sched::Op::Forward:
    return rt::ActionOp::Forward;
  case sched::Op::BackwardInput:
    return rt::ActionOp::BackwardInput;
  case sched::Op::BackwardWeight:
    return rt::ActionOp::BackwardWeight;
  case sched::Op::Backward:
    return rt::ActionOp::Backward;
  case sched::Op::OptimizerStep:
    return rt::ActionOp::OptimizerStep;
  case sched::Op::Send:
    return rt::ActionOp::Send;
  case sched::Op::Recv:
    return rt::ActionOp::Recv;
  case sched::Op::Wait:
    return rt::ActionOp::Wait;
  }
  return rt::ActionOp::Wait;
}

} // namespace

bool mlir::weipipe::lowerSchedule(const sched::Schedule &s, rt::Artifact &a,
                                  std::string *error) {
  const size_t C = a.numChunks();
  if (size_t(s.chunks) != C) {
    *error = "the schedule places " + std::to_string(s.chunks) +
             " chunks, the model has " + std::to_string(C);
    return false;
  }
  // Slots hold the largest chunk (weights, gradients) or boundary
  // (activations, their gradients) of the model.
  uint64_t chunkBytes = 0, boundaryBytes = 0;
  for (size_t c = 0; c < C; ++c) {
    const rt::Stage &st = a.stages[a.chunkStage(c)];
    chunkBytes = std::max(chunkBytes, rt::stageSlotLayout(a, st, nullptr));
    boundaryBytes =
        std::max({boundaryBytes, rt::boundaryLayout(st.out, nullptr),
                  rt::boundaryLayout(st.din, nullptr)});
  }
  a.ranks = uint32_t(s.ranks);
  a.schedule = s.name;
  a.microbatches = uint32_t(s.microbatches);
  a.owner.assign(s.owner.begin(), s.owner.end());
  a.programs.clear();
  for (const sched::RankProgram &p : s.programs) {
    rt::RankProgram rp;
    for (const sched::Slot &sl : p.slots) {
      rt::Slot slot;
      slot.label = sl.label;
      switch (sl.kind) {
      case sched::SlotKind::Weights:
        slot.kind = rt::SlotKind::Weights;
        slot.bytes = chunkBytes;
        break;
      case sched::SlotKind::Grads:
        slot.kind = rt::SlotKind::Grads;
        slot.bytes = chunkBytes;
        break;
      case sched::SlotKind::Activations:
        slot.kind = rt::SlotKind::Activations;
        slot.bytes = boundaryBytes;
        break;
      }
      rp.slots.push_back(std::move(slot));
    }
    for (const sched::Action &ac : p.actions) {
      rt::Action r;
      r.op = runtimeOp(ac.op);
      r.turn = ac.turn;
      r.chunk = ac.chunk;
      r.microbatch = ac.microbatch;
      r.weights = ac.weights;
      r.grads = ac.grads;
      r.in = ac.in;
      r.out = ac.out;
      r.peer = ac.peer;
      r.token = ac.token;
      r.slots.assign(ac.slots.begin(), ac.slots.end());
      r.tokens.assign(ac.tokens.begin(), ac.tokens.end());
      if (ac.op == sched::Op::Send || ac.op == sched::Op::Recv) {
        if (ac.contents.size() != ac.slots.size()) {
          *error = "internal error: a transfer of the schedule was not "
                   "verified (no contents)";
          return false;
        }
        for (const sched::Content &c : ac.contents)
          r.bytes.push_back(contentBytes(a, c));
      }
      rp.actions.push_back(std::move(r));
    }
    a.programs.push_back(std::move(rp));
  }
  return true;
}

LogicalResult mlir::weipipe::buildPipelineArtifact(ModuleOp module,
                                                   const PipelineOptions &opt,
                                                   sched::Schedule &schedule,
                                                   rt::Artifact &out) {
  MLIRContext *ctx = module.getContext();
  if (opt.ends != "replicated" && opt.ends != "owned")
    return module.emitError()
           << "--ends='" << opt.ends << "': expected replicated or owned";
  std::string error;
  // A layer probe (ranks 0): one chunk per layer (build-model's chunks=0),
  // then 1F1B over as many ranks as there are chunks.
  const bool probe = opt.schedule.ranks == 0;
  if (probe && opt.schedule.name != "1f1b")
    return module.emitError() << "internal error: a layer probe is 1f1b";
  const int chunks = probe ? 0 : sched::chunksFor(opt.schedule, &error);
  if (chunks < 0)
    return module.emitError() << error;

  PassManager pm(ctx);
  buildLossPipeline(pm, opt.keepTiesSeparate, opt.fuse);
  PipeBuildModelPassOptions build;
  build.chunks = unsigned(chunks);
  build.ends = opt.ends == "owned" ? "owned" : "chunks";
  pm.addPass(createPipeBuildModelPass(build));
  PipeAutodiffPassOptions ad;
  ad.recompute = opt.recompute;
  pm.addPass(createPipeAutodiffPass(ad));
  pm.addPass(createCSEPass());
  if (failed(pm.run(module)))
    return failure();
  int ranks = opt.schedule.ranks;
  if (probe) {
    auto model = module.lookupSymbol<pipe::ModelOp>("main_model");
    if (!model)
      return module.emitError() << "internal error: no pipe.model";
    ranks = 0;
    for (auto chunk : model.getBodyRegion().front().getOps<pipe::ChunkOp>())
      ranks += chunk.getKind() == pipe::ChunkKind::layers;
  }
  // The schedule lives in the IR: written as pipe.programs, read back and
  // verified below for the artifact.
  pm.clear();
  PipeSchedulePassOptions sp;
  sp.schedule = opt.schedule.name;
  sp.ranks = ranks;
  sp.microbatches = opt.schedule.microbatches;
  sp.chunksPerRank = opt.schedule.chunksPerRank;
  sp.nodeSize = opt.schedule.nodeSize;
  pm.addPass(createPipeSchedulePass(sp));
  if (failed(pm.run(module)))
    return failure();

  auto model = module.lookupSymbol<pipe::ModelOp>("main_model");
  if (!model)
    return module.emitError() << "internal error: no pipe.model";
  out = rt::Artifact();
  out.producer = opt.producer;
  out.sourceModel = opt.sourceModel;
  llvm::DenseMap<Attribute, uint32_t> constants;
  const bool split =
      opt.splitBackward || sched::splitsBackward(opt.schedule.name);
  if (split && opt.recompute)
    return module.emitError()
           << "--recompute with " << opt.schedule.name
           << ": its weight-gradient passes (W) run apart from B, without "
              "the weights that recomputing the forward needs; use a "
              "schedule with a fused backward (1f1b, weipipe-interleave, ...)";
  for (auto chunk : model.getBodyRegion().front().getOps<pipe::ChunkOp>()) {
    ArtifactOptions so;
    so.function = chunkFunctionName(model, chunk);
    so.splitBackward = split;
    rt::Stage stage;
    stage.name = chunk.getSymName().str();
    switch (chunk.getKind()) {
    case pipe::ChunkKind::prologue:
      stage.kind = rt::StageKind::Prologue;
      break;
    case pipe::ChunkKind::layers:
      stage.kind = rt::StageKind::Layers;
      break;
    case pipe::ChunkKind::epilogue:
      stage.kind = rt::StageKind::Epilogue;
      break;
    }
    if (failed(buildStage(module, so, out, constants, stage)))
      return failure();
    out.stages.push_back(std::move(stage));
  }
  if (failed(checkParameterPlacement(module, out)))
    return failure();
  const rt::Stage &last = out.stages.back();
  if (!last.loss.present())
    return module.emitError() << "internal error: the last stage has no loss";
  for (const rt::Stage &st : out.stages)
    for (const rt::Input &in : st.inputs) {
      out.batch = in.ref.shape[0];
      out.seq = in.ref.shape[1];
    }
  out.vocab = last.logits.shape.empty() ? 0 : last.logits.shape.back();
  module.walk([&](nn::CrossEntropyOp ce) {
    out.ignoreIndex = ce.getIgnoreIndexAttr().getInt();
  });

  FailureOr<sched::Schedule> read = readVerifiedSchedule(module, model);
  if (failed(read))
    return failure();
  schedule = std::move(*read);
  if (!lowerSchedule(schedule, out, &error))
    return module.emitError() << error;
  return success();
}
