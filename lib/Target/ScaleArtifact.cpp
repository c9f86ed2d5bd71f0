//===- ScaleArtifact.cpp - a deeper model priced from its layers ----------===//
//
// Part of weipipe. See scaleArtifact in PipelineWriter.h. The paper's models
// (32 layers of width 4096: 6.7 B parameters) do not fit a small machine's
// exporter or compiler, but their layers are alike: one compiled layer and
// the compiled ends say what every action costs and holds.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Target/PipelineWriter.h"
#include "weipipe/runtime/Artifact.h"

#include <algorithm>
#include <string>

namespace rt = ::weipipe::rt;
namespace sched = ::weipipe::schedule;

namespace {

/// What makes two layer stages alike for scaling: parameter shapes, stored
/// activations, instruction counts.
std::string layerDifference(const rt::Artifact &a, const rt::Stage &x,
                            const rt::Stage &y) {
  if (x.params.size() != y.params.size())
    return std::to_string(x.params.size()) + " vs " +
           std::to_string(y.params.size()) + " parameters";
  for (size_t i = 0; i < x.params.size(); ++i)
    if (a.params[x.params[i]].shape != a.params[y.params[i]].shape)
      return "parameter '" + a.params[x.params[i]].name + "' and '" +
             a.params[y.params[i]].name + "' differ in shape";
  if (x.arenaBytes != y.arenaBytes)
    return std::to_string(x.arenaBytes) + " vs " +
           std::to_string(y.arenaBytes) + " bytes of activations";
  for (auto fn : {&rt::Stage::forward, &rt::Stage::backward,
                  &rt::Stage::backwardInput, &rt::Stage::backwardWeight}) {
    const int32_t f = x.*fn, g = y.*fn;
    if ((f < 0) != (g < 0) ||
        (f >= 0 && a.functions[size_t(f)].body.size() !=
                       a.functions[size_t(g)].body.size()))
      return "different programs";
  }
  return "";
}

} // namespace

std::string mlir::weipipe::scaleArtifact(const rt::Artifact &probe,
                                         const rt::Artifact &whole,
                                         const sched::Schedule &target,
                                         int layers, rt::Artifact *out) {
  const int pro = probe.prologueStage(), epi = probe.epilogueStage();
  if (!probe.isPipeline() || pro < 0 || epi < 0 || probe.numChunks() < 2 ||
      whole.numChunks() != 1)
    return "the model must be compiled with replicated ends (--ends="
           "replicated) and have at least two layers";
  const rt::Stage &layer = probe.stages[probe.chunkStage(0)];
  for (size_t c = 1; c < probe.numChunks(); ++c)
    if (std::string d =
            layerDifference(probe, layer, probe.stages[probe.chunkStage(c)]);
        !d.empty())
      return "the model's layers are not alike (layer 0 and layer " +
             std::to_string(c) + ": " + d +
             "); scaling repeats its first layer";
  if (layers < 1 || target.chunks < 1 || layers % target.chunks != 0)
    return std::to_string(layers) + " layers do not split evenly into the " +
           "schedule's " + std::to_string(target.chunks) + " chunks";
  const int perChunk = layers / target.chunks;

  rt::Artifact a;
  a.producer = probe.producer;
  a.sourceModel = probe.sourceModel;
  a.batch = probe.batch;
  a.seq = probe.seq;
  a.vocab = probe.vocab;
  a.ignoreIndex = probe.ignoreIndex;
  // The probe's parameters stay where its instructions point; its layers'
  // are held by no stage, so no rank counts them.
  a.params = probe.params;
  a.constants = probe.constants;
  auto copyFunction = [&](int32_t f, int times, const std::string &name) {
    if (f < 0)
      return int32_t(-1);
    const rt::Function &src = probe.functions[size_t(f)];
    rt::Function fn;
    fn.name = name.empty() ? src.name : name + "_" + src.name;
    fn.kind = src.kind;
    for (int t = 0; t < times; ++t)
      fn.body.insert(fn.body.end(), src.body.begin(), src.body.end());
    a.functions.push_back(std::move(fn));
    return int32_t(a.functions.size() - 1);
  };
  auto copyStage = [&](const rt::Stage &src, int times,
                       const std::string &name) {
    rt::Stage st = src;
    st.forward = copyFunction(src.forward, times, name);
    st.backward = copyFunction(src.backward, times, name);
    st.backwardInput = copyFunction(src.backwardInput, times, name);
    st.backwardWeight = copyFunction(src.backwardWeight, times, name);
    return st;
  };
  a.stages.push_back(copyStage(probe.stages[size_t(pro)], 1, ""));
  for (int c = 0; c < target.chunks; ++c) {
    const std::string name = "chunk" + std::to_string(c);
    rt::Stage st = copyStage(layer, perChunk, name);
    st.name = name;
    st.params.clear();
    for (int l = 0; l < perChunk; ++l)
      for (uint32_t p : layer.params) {
        rt::Parameter param = probe.params[p];
        param.name =
            "layers." + std::to_string(c * perChunk + l) + "/" + param.name;
        param.storage = {};
        param.aliases.clear();
        st.params.push_back(uint32_t(a.params.size()));
        a.params.push_back(std::move(param));
      }
    // What a chunk stores and its temporaries grow by what one more layer
    // adds: the whole model in one chunk against one layer (the boundary
    // tensors and a recomputing chunk's input are there once).
    const uint64_t n = probe.numChunks();
    const rt::Stage &all = whole.stages[whole.chunkStage(0)];
    auto grow = [&](uint64_t one, uint64_t every) {
      const double step = (double(every) - double(one)) / double(n - 1);
      return uint64_t(
          std::max(double(one), double(one) + (perChunk - 1) * step));
    };
    st.arenaBytes = grow(layer.arenaBytes, all.arenaBytes);
    st.scratchBytes = grow(layer.scratchBytes, all.scratchBytes);
    a.stages.push_back(std::move(st));
  }
  a.stages.push_back(copyStage(probe.stages[size_t(epi)], 1, ""));
  std::string error;
  if (!lowerSchedule(target, a, &error))
    return error;
  *out = std::move(a);
  return "";
}
