//===- Safetensors.cpp - write and read .safetensors files ----------------===//
//
// Part of weipipe's runtime.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/train/Safetensors.h"

#include "weipipe/runtime/train/Json.h"
#include "weipipe/runtime/train/Output.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>

using namespace weipipe::rt::train;

namespace {
/// The Rust library refuses headers above 100 MB.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

uint64_t numelOf(const std::vector<int64_t> &shape) {
  uint64_t n = 1;
  for (int64_t d : shape)
    n *= uint64_t(d);
  return n;
}

/// Bytes per element of a safetensors dtype, 0 if unknown.
unsigned dtypeBytes(const std::string &d) {
  if (d == "F64" || d == "I64" || d == "U64")
    return 8;
  if (d == "F32" || d == "I32" || d == "U32")
    return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16")
    return 2;
  if (d == "I8" || d == "U8" || d == "BOOL" || d == "F8_E4M3" || d == "F8_E5M2")
    return 1;
  return 0;
}
} // namespace

std::string
weipipe::rt::train::safetensorsHeader(const std::vector<F32TensorView> &sorted,
                                      const Metadata &metadata) {
  std::string j = "{";
  if (!metadata.empty()) {
    j += "\"__metadata__\":{";
    for (size_t i = 0; i < metadata.size(); ++i)
      j += (i ? "," : "") + json::quote(metadata[i].first) + ":" +
           json::quote(metadata[i].second);
    j += "}";
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < sorted.size(); ++i) {
    const F32TensorView &t = sorted[i];
    const uint64_t bytes = numelOf(t.shape) * sizeof(float);
    if (i || !metadata.empty())
      j += ",";
    j += json::quote(t.name) + ":{\"dtype\":\"F32\",\"shape\":[";
    for (size_t d = 0; d < t.shape.size(); ++d)
      j += (d ? "," : "") + std::to_string(t.shape[d]);
    j += "],\"data_offsets\":[" + std::to_string(offset) + "," +
         std::to_string(offset + bytes) + "]}";
    offset += bytes;
  }
  j += "}";
  j.append((8 - j.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  const uint64_t n = j.size();
  for (int b = 0; b < 8; ++b)
    out[size_t(b)] = char((n >> (8 * b)) & 0xFF);
  return out + j;
}

bool weipipe::rt::train::writeSafetensors(const std::string &path,
                                          std::vector<F32TensorView> tensors,
                                          const Metadata &metadata,
                                          std::string *error) {
  OutputFile out;
  if (!out.open(path, error))
    return false;
  if (!writeSafetensors(out, std::move(tensors), metadata, error))
    return false; // `out` removes the temporary
  return out.commit(error);
}

bool weipipe::rt::train::writeSafetensors(OutputFile &out,
                                          std::vector<F32TensorView> tensors,
                                          const Metadata &metadata,
                                          std::string *error) {
  const std::string &path = out.path();
  std::sort(tensors.begin(), tensors.end(),
            [](const F32TensorView &a, const F32TensorView &b) {
              return a.name < b.name;
            });
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].name == "__metadata__") {
      *error =
          "cannot write " + path + ": a tensor may not be named __metadata__";
      return false;
    }
    if (i && tensors[i].name == tensors[i - 1].name) {
      *error = "cannot write " + path + ": two tensors named " +
               json::quote(tensors[i].name);
      return false;
    }
    for (int64_t d : tensors[i].shape)
      if (d < 0) {
        *error = "cannot write " + path + ": tensor " +
                 json::quote(tensors[i].name) + " has a negative dimension";
        return false;
      }
  }
  std::set<std::string> keys;
  for (const auto &kv : metadata)
    if (!keys.insert(kv.first).second) {
      *error = "cannot write " + path + ": two metadata entries named " +
               json::quote(kv.first);
      return false;
    }
  out.write(safetensorsHeader(tensors, metadata));
  for (const F32TensorView &t : tensors)
    out.write(t.data, numelOf(t.shape) * sizeof(float)); // host is LE
  return out.flush(error);
}

const SafetensorsEntry *SafetensorsFile::find(const std::string &name) const {
  for (const SafetensorsEntry &e : tensors)
    if (e.name == name)
      return &e;
  return nullptr;
}

std::vector<float> SafetensorsFile::f32(const SafetensorsEntry &e) const {
  if (e.dtype != "F32")
    return {};
  std::vector<float> v((e.end - e.begin) / sizeof(float));
  if (!v.empty())
    std::memcpy(v.data(), data.data() + e.begin, v.size() * sizeof(float));
  return v;
}

std::optional<SafetensorsFile> weipipe::rt::train::parseSafetensors(
    const std::string &bytes, const std::string &what, std::string *error) {
  auto fail = [&](const std::string &m) -> std::optional<SafetensorsFile> {
    *error = what + ": " + m;
    return std::nullopt;
  };
  if (bytes.size() < 8)
    return fail("shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int b = 7; b >= 0; --b)
    n = n << 8 | uint64_t(static_cast<unsigned char>(bytes[size_t(b)]));
  if (n > kMaxHeaderBytes)
    return fail("header length " + std::to_string(n) +
                " is over the 100 MB limit");
  if (n > bytes.size() - 8)
    return fail("header length " + std::to_string(n) + " runs past the end (" +
                std::to_string(bytes.size()) + " bytes)");
  const std::string_view text(bytes.data() + 8, n);
  if (text.empty() || text[0] != '{')
    return fail("the header does not start with '{'");
  std::string jerr;
  auto root = json::parse(text, &jerr);
  if (!root)
    return fail("bad JSON header: " + jerr);
  if (!root->isObject())
    return fail("the header is not a JSON object");

  SafetensorsFile f;
  f.dataOffset = 8 + n;
  const uint64_t dataBytes = bytes.size() - f.dataOffset;
  for (const auto &[key, v] : root->object) {
    if (key == "__metadata__") {
      if (!v.isObject())
        return fail("__metadata__ is not an object");
      for (const auto &[mk, mv] : v.object) {
        if (!mv.isString())
          return fail("__metadata__ value of " + json::quote(mk) +
                      " is not a string");
        f.metadata.emplace_back(mk, mv.text);
      }
      continue;
    }
    const std::string tn = "tensor " + json::quote(key);
    if (!v.isObject())
      return fail(tn + " is not an object");
    const json::Value *dt = v.get("dtype"), *sh = v.get("shape"),
                      *off = v.get("data_offsets");
    if (!dt || !dt->isString() || !sh || !sh->isArray() || !off ||
        !off->isArray())
      return fail(tn + " needs dtype (string), shape and data_offsets "
                       "(arrays)");
    SafetensorsEntry e;
    e.name = key;
    e.dtype = dt->text;
    const unsigned item = dtypeBytes(e.dtype);
    if (!item)
      return fail(tn + " has unknown dtype " + json::quote(e.dtype));
    uint64_t numel = 1;
    for (const json::Value &d : sh->array) {
      auto x = d.asUint64();
      if (!x || *x > uint64_t(INT64_MAX))
        return fail(tn + ": shape entries must be non-negative integers");
      e.shape.push_back(int64_t(*x));
      if (*x && numel > UINT64_MAX / *x)
        return fail(tn + ": shape overflows");
      numel *= *x;
    }
    auto b = off->array.size() == 2 ? off->array[0].asUint64() : std::nullopt;
    auto en = off->array.size() == 2 ? off->array[1].asUint64() : std::nullopt;
    if (!b || !en || *b > *en)
      return fail(tn + ": data_offsets must be [BEGIN, END] with BEGIN <= END");
    if (numel > UINT64_MAX / item || *en - *b != numel * item)
      return fail(tn + ": data_offsets [" + std::to_string(*b) + ", " +
                  std::to_string(*en) + "] hold " + std::to_string(*en - *b) +
                  " bytes, but " + e.dtype + " x " + std::to_string(numel) +
                  " elements need " + std::to_string(numel * item));
    e.begin = *b;
    e.end = *en;
    f.tensors.push_back(std::move(e));
  }
  // Contiguous, no holes, the data section exactly covered.
  std::vector<const SafetensorsEntry *> byOffset;
  for (const auto &e : f.tensors)
    byOffset.push_back(&e);
  std::stable_sort(byOffset.begin(), byOffset.end(),
                   [](const SafetensorsEntry *a, const SafetensorsEntry *b) {
                     return a->begin < b->begin ||
                            (a->begin == b->begin && a->end < b->end);
                   });
  uint64_t at = 0;
  for (const SafetensorsEntry *e : byOffset) {
    if (e->begin != at)
      return fail("tensor " + json::quote(e->name) + " starts at data byte " +
                  std::to_string(e->begin) + ", expected " +
                  std::to_string(at) + " (offsets must be contiguous)");
    at = e->end;
  }
  if (at != dataBytes)
    return fail("the tensors cover " + std::to_string(at) +
                " data bytes but the file holds " + std::to_string(dataBytes));
  f.data = bytes.substr(size_t(f.dataOffset));
  return f;
}

std::optional<SafetensorsFile>
weipipe::rt::train::readSafetensors(const std::string &path,
                                    std::string *error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = path + ": cannot open: " + std::strerror(errno);
    return std::nullopt;
  }
  std::string bytes((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  if (in.bad()) {
    *error = path + ": read failed";
    return std::nullopt;
  }
  return parseSafetensors(bytes, path, error);
}
