//===- fuzz-safetensors.cpp - libFuzzer target: .safetensors --------------===//
//
// Part of weipipe's tests. Bytes go through parseSafetensors (and so the JSON
// parser). A file that parses must describe its data exactly (every tensor's
// byte range inside the data section, F32 values readable); one whose
// tensors are all F32 with distinct names is written again with the writer's
// header (safetensorsHeader) and must parse back to the same names, shapes,
// values and metadata. Every rejection must carry a message.
//
//===----------------------------------------------------------------------===//

#include "FuzzSupport.h"
#include "weipipe/runtime/train/Safetensors.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

using namespace weipipe::rt::train;

namespace {

using weipipe::fuzz::check;

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  weipipe::fuzz::targetName() = "fuzz-safetensors";
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string bytes(reinterpret_cast<const char *>(data), size);
  std::string error;
  std::optional<SafetensorsFile> f = parseSafetensors(bytes, "input", &error);
  if (!f) {
    check(!error.empty(), "parseSafetensors failed without a message");
    return 0;
  }
  check(f->dataOffset + f->data.size() == size, "the data section is not the "
                                                "rest of the file");
  bool allF32 = true;
  std::set<std::string> names;
  for (const SafetensorsEntry &e : f->tensors) {
    check(e.begin <= e.end && e.end <= f->data.size(),
          "a tensor's bytes lie outside the data section");
    check(f->find(e.name) != nullptr, "find() misses a tensor");
    if (e.dtype == "F32")
      check(f->f32(e).size() * 4 == e.end - e.begin, "f32() size");
    allF32 &= e.dtype == "F32";
    names.insert(e.name);
  }
  std::set<std::string> keys;
  for (const auto &kv : f->metadata)
    keys.insert(kv.first);
  if (!allF32 || names.size() != f->tensors.size() ||
      names.count("__metadata__") || keys.size() != f->metadata.size())
    return 0;

  // Written again the writer's way: sorted by name, data in that order.
  std::vector<std::vector<float>> values;
  std::vector<F32TensorView> views;
  for (const SafetensorsEntry &e : f->tensors) {
    values.push_back(f->f32(e));
    views.push_back({e.name, e.shape, nullptr});
  }
  for (size_t i = 0; i < views.size(); ++i)
    views[i].data = values[i].data();
  std::vector<size_t> order(views.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t x, size_t y) { return views[x].name < views[y].name; });
  std::vector<F32TensorView> sorted;
  std::string body;
  for (size_t i : order) {
    sorted.push_back(views[i]);
    body.append(reinterpret_cast<const char *>(values[i].data()),
                values[i].size() * sizeof(float));
  }
  const std::string again = safetensorsHeader(sorted, f->metadata) + body;
  std::optional<SafetensorsFile> g = parseSafetensors(again, "again", &error);
  if (!g) {
    std::fprintf(stderr, "%s\n", error.c_str());
    check(false, "the writer's bytes do not parse");
  }
  check(g->tensors.size() == f->tensors.size() && g->metadata == f->metadata,
        "the tensors or the metadata changed on the way back");
  for (const SafetensorsEntry &e : f->tensors) {
    const SafetensorsEntry *h = g->find(e.name);
    check(h && h->shape == e.shape && h->dtype == "F32",
          "a tensor's name or shape changed on the way back");
    check(h->end - h->begin == e.end - e.begin &&
              std::memcmp(g->data.data() + h->begin, f->data.data() + e.begin,
                          size_t(e.end - e.begin)) == 0,
          "a tensor's values changed on the way back");
  }
  return 0;
}
