//===- Machine.cpp - machine models for the timing simulator --------------===//
//
// Part of weipipe. Reads the JSON machine models (machines/README.md is the
// format) with llvm::json, checking every field: a model with a typo or a
// unit mistake would give plausible and wrong predictions, so unknown fields
// and values out of range are errors that name the field.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Simulate/Machine.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

#ifndef WEIPIPE_MACHINES_DIR
#define WEIPIPE_MACHINES_DIR "machines"
#endif

namespace weipipe::simulate {

const char *precisionName(Precision p) {
  return p == Precision::Bf16 ? "bf16" : "fp32";
}

double EfficiencyCurve::at(double x) const {
  if (points.empty())
    return 1;
  if (x <= points.front().first)
    return points.front().second;
  if (x >= points.back().first)
    return points.back().second;
  auto hi = std::upper_bound(
      points.begin(), points.end(), x,
      [](double v, const std::pair<double, double> &p) { return v < p.first; });
  auto lo = hi - 1;
  const double t = (std::log(x) - std::log(lo->first)) /
                   (std::log(hi->first) - std::log(lo->first));
  return lo->second + t * (hi->second - lo->second);
}

std::string machinesDir() {
  if (const char *env = std::getenv("WEIPIPE_MACHINES_DIR"); env && *env)
    return env;
  return WEIPIPE_MACHINES_DIR;
}

std::vector<std::string> shippedMachineNames() {
  std::vector<std::string> names;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(machinesDir(), ec), end;
       !ec && it != end; it.increment(ec)) {
    llvm::StringRef file = llvm::sys::path::filename(it->path());
    if (file.ends_with(".json"))
      names.push_back(file.drop_back(5).str());
  }
  std::sort(names.begin(), names.end());
  return names;
}

namespace {

/// Reads one JSON object, remembering which keys were read so that the
/// rest can be reported as unknown. Errors name the field by its path.
class Fields {
public:
  Fields(const llvm::json::Object &o, std::string path, std::string *error)
      : o_(o), path_(std::move(path)), error_(error) {}

  std::string field(llvm::StringRef key) const {
    return path_.empty() ? key.str() : path_ + "." + key.str();
  }
  bool fail(llvm::StringRef key, const std::string &what) {
    if (error_->empty())
      *error_ = "field '" + field(key) + "': " + what;
    return false;
  }
  const llvm::json::Value *get(llvm::StringRef key, bool required = true) {
    seen_.insert(key.str());
    const llvm::json::Value *v = o_.get(key);
    if (!v && required)
      fail(key, "missing");
    return v;
  }
  bool string(llvm::StringRef key, std::string *out, bool required = true) {
    const llvm::json::Value *v = get(key, required);
    if (!v)
      return !required;
    if (auto s = v->getAsString()) {
      *out = s->str();
      return true;
    }
    return fail(key, "expected a string");
  }
  /// A number in (lo, hi] (lo < v when open, else lo <= v).
  bool number(llvm::StringRef key, double *out, double lo, double hi,
              bool open = true, bool required = true) {
    const llvm::json::Value *v = get(key, required);
    if (!v)
      return !required;
    std::optional<double> d = v->getAsNumber();
    if (!d || !std::isfinite(*d))
      return fail(key, "expected a number");
    if ((open ? *d <= lo : *d < lo) || *d > hi)
      return fail(key, std::to_string(*d) + " is out of range (" +
                           (open ? "more than " : "at least ") +
                           std::to_string(lo) + ", at most " +
                           std::to_string(hi) + ")");
    *out = *d;
    return true;
  }
  bool boolean(llvm::StringRef key, bool *out) {
    const llvm::json::Value *v = get(key, false);
    if (!v)
      return true;
    if (auto b = v->getAsBoolean()) {
      *out = *b;
      return true;
    }
    return fail(key, "expected true or false");
  }
  const llvm::json::Object *object(llvm::StringRef key, bool required = true) {
    const llvm::json::Value *v = get(key, required);
    if (!v)
      return nullptr;
    if (const llvm::json::Object *o = v->getAsObject())
      return o;
    fail(key, "expected an object");
    return nullptr;
  }
  /// [[x, efficiency], ...], x > 0 ascending, 0 < efficiency <= 1.
  bool curve(llvm::StringRef key, EfficiencyCurve *out) {
    const llvm::json::Value *v = get(key);
    if (!v)
      return false;
    const llvm::json::Array *a = v->getAsArray();
    if (!a || a->empty())
      return fail(key, "expected a non-empty array of [size, efficiency] "
                       "pairs");
    for (size_t i = 0; i < a->size(); ++i) {
      const llvm::json::Array *p = (*a)[i].getAsArray();
      std::optional<double> x, e;
      if (p && p->size() == 2) {
        x = (*p)[0].getAsNumber();
        e = (*p)[1].getAsNumber();
      }
      const std::string at = "entry " + std::to_string(i) + ": ";
      if (!x || !e)
        return fail(key, at + "expected [size, efficiency]");
      if (!(*x > 0) || !std::isfinite(*x))
        return fail(key, at + "the size must be a positive number");
      if (!(*e > 0 && *e <= 1))
        return fail(key, at + "the efficiency must be in (0, 1]");
      if (i > 0 && !(*x > out->points.back().first))
        return fail(key, at + "sizes must ascend");
      out->points.push_back({*x, *e});
    }
    return true;
  }
  /// Every key not read is a typo or a field of another version.
  bool noOthers() {
    for (const auto &kv : o_)
      if (!seen_.count(kv.first.str()))
        return fail(kv.first, "unknown field (machines/README.md lists the "
                              "fields)");
    return true;
  }

private:
  const llvm::json::Object &o_;
  std::string path_;
  std::string *error_;
  std::set<std::string> seen_;
};

bool readLink(Fields &parent, llvm::StringRef key, const llvm::json::Object &o,
              LinkModel *out, std::string *error) {
  Fields f(o, parent.field(key), error);
  double gbs = 0, efficiency = 1, us = 0;
  bool ok = f.string("kind", &out->kind) &&
            f.number("bandwidth_gb_s", &gbs, 0, 1e6) &&
            f.number("efficiency", &efficiency, 0, 1) &&
            f.number("latency_us", &us, 0, 1e6, false) &&
            f.boolean("shared", &out->shared) &&
            f.boolean("synchronous", &out->synchronous) && f.noOthers();
  out->bandwidth = gbs * 1e9 * efficiency;
  out->latency = us * 1e-6;
  return ok;
}

} // namespace

std::string parseMachine(const std::string &text, const std::string &file,
                         Machine *out) {
  llvm::Expected<llvm::json::Value> json = llvm::json::parse(text);
  if (!json) {
    // llvm::json writes "[LINE:COLUMN, byte=N]: WHAT"; say it in words.
    std::string what = llvm::toString(json.takeError());
    unsigned line = 0, column = 0;
    const size_t end = what.find("]: ");
    if (std::sscanf(what.c_str(), "[%u:%u,", &line, &column) == 2 &&
        end != std::string::npos)
      what = "line " + std::to_string(line) + ", column " +
             std::to_string(column + 1) + ": " + what.substr(end + 3);
    return file + ": not JSON: " + what;
  }
  const llvm::json::Object *root = json->getAsObject();
  if (!root)
    return file + ": expected a JSON object";
  Machine m;
  m.file = file;
  std::string error;
  Fields f(*root, "", &error);
  bool ok = f.string("name", &m.name) &&
            f.string("description", &m.description, false);
  if (ok) {
    const llvm::json::Value *sources = f.get("sources");
    const llvm::json::Array *a = sources ? sources->getAsArray() : nullptr;
    if (sources && !a)
      ok = f.fail("sources", "expected an array of strings");
    for (size_t i = 0; ok && a && i < a->size(); ++i) {
      if (auto s = (*a)[i].getAsString())
        m.sources.push_back(s->str());
      else
        ok = f.fail("sources",
                    "entry " + std::to_string(i) + ": expected a string");
    }
    ok = ok && sources;
  }
  const llvm::json::Object *device = ok ? f.object("device") : nullptr;
  ok = ok && device;
  if (ok) {
    Fields d(*device, "device", &error);
    double gib = 0, gbs = 0, us = 0;
    const llvm::json::Object *peak = nullptr;
    ok = d.string("name", &m.device) && d.number("memory_gib", &gib, 0, 1e6) &&
         d.number("memory_bandwidth_gb_s", &gbs, 0, 1e6) &&
         (peak = d.object("peak_tflops")) != nullptr;
    if (ok) {
      Fields p(*peak, "device.peak_tflops", &error);
      ok = p.number("bf16", &m.peakFlops[int(Precision::Bf16)], 0, 1e6) &&
           p.number("fp32", &m.peakFlops[int(Precision::Fp32)], 0, 1e6) &&
           p.noOthers();
      for (double &v : m.peakFlops)
        v *= 1e12;
    }
    ok = ok && d.curve("gemm_efficiency", &m.gemmEfficiency) &&
         d.curve("attention_efficiency", &m.attentionEfficiency) &&
         d.number("elementwise_efficiency", &m.elementwiseEfficiency, 0, 1) &&
         d.number("launch_overhead_us", &us, 0, 1e6, false) && d.noOthers();
    m.memoryBytes = gib * double(1ull << 30);
    m.memoryBandwidth = gbs * 1e9;
    m.launchOverhead = us * 1e-6;
  }
  double perNode = 0;
  ok = ok && f.number("ranks_per_node", &perNode, 1, 1 << 20, false);
  if (ok && perNode != std::floor(perNode))
    ok = f.fail("ranks_per_node", "expected a whole number");
  m.ranksPerNode = int(perNode);
  const llvm::json::Object *intra = ok ? f.object("intra_node") : nullptr;
  ok = ok && intra && readLink(f, "intra_node", *intra, &m.intraNode, &error);
  const llvm::json::Object *inter =
      ok ? f.object("inter_node", /*required=*/false) : nullptr;
  ok = ok && error.empty();
  if (ok && inter) {
    m.hasInterNode = true;
    ok = readLink(f, "inter_node", *inter, &m.interNode, &error);
  }
  std::string precision;
  ok = ok && f.string("default_precision", &precision);
  if (ok && precision != "bf16" && precision != "fp32")
    ok = f.fail("default_precision",
                "'" + precision + "': expected bf16 or fp32");
  m.defaultPrecision = precision == "fp32" ? Precision::Fp32 : Precision::Bf16;
  ok = ok && f.noOthers();
  if (!ok)
    return file + ": " + error;
  *out = std::move(m);
  return "";
}

std::string loadMachine(const std::string &nameOrPath, Machine *out) {
  const bool isPath = nameOrPath.find('/') != std::string::npos ||
                      llvm::StringRef(nameOrPath).ends_with(".json");
  std::string path = nameOrPath;
  if (!isPath) {
    const std::vector<std::string> names = shippedMachineNames();
    if (std::find(names.begin(), names.end(), nameOrPath) == names.end()) {
      std::string list;
      for (const std::string &n : names)
        list += (list.empty() ? "" : ", ") + n;
      return "unknown machine '" + nameOrPath + "': the shipped ones are " +
             (list.empty() ? "(none found in " + machinesDir() + ")" : list) +
             "; or give the path of a machine file";
    }
    path = machinesDir() + "/" + nameOrPath + ".json";
  }
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer =
      llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buffer)
    return path +
           ": cannot read the machine file: " + buffer.getError().message();
  return parseMachine((*buffer)->getBuffer().str(), path, out);
}

} // namespace weipipe::simulate
