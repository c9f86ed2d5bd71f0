//===- TrainingSummary.cpp - what is trained, and why ---------------------===//
//
// Part of weipipe. See TrainingSummary.h.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Target/TrainingSummary.h"
#include "weipipe/Dialect/NN/NNDialect.h"
#include "weipipe/Dialect/NN/NNOps.h"

#include "llvm/ADT/StringExtras.h"

#include <map>

using namespace mlir;
using namespace mlir::weipipe;

namespace {
/// One line of the summary: the text with every digit run taken out, and the
/// runs, so that lines differing only in numbers (layer indices) merge.
struct Line {
  std::string pattern;                  // digit runs replaced by '\0'
  std::vector<std::vector<int64_t>> runs; // per run: the values seen
};

void split(StringRef text, std::string &pattern, std::vector<int64_t> &nums) {
  for (size_t i = 0; i < text.size();) {
    if (!llvm::isDigit(text[i])) {
      pattern += text[i++];
      continue;
    }
    size_t j = i;
    while (j < text.size() && llvm::isDigit(text[j]))
      ++j;
    int64_t v;
    // A run with a leading zero or too long to be an index stays text.
    if ((text[i] == '0' && j - i > 1) || j - i > 9 ||
        text.slice(i, j).getAsInteger(10, v)) {
      pattern += text.slice(i, j).str();
    } else {
      pattern += '\0';
      nums.push_back(v);
    }
    i = j;
  }
}

/// "3", "0..31", "113,241,377".
std::string compact(std::vector<int64_t> v) {
  llvm::sort(v);
  v.erase(std::unique(v.begin(), v.end()), v.end());
  std::string s;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1)
      ++j;
    if (!s.empty())
      s += ",";
    s += std::to_string(v[i]);
    if (j > i + 1)
      s += ".." + std::to_string(v[j]);
    else if (j == i + 1)
      s += "," + std::to_string(v[j]);
    i = j + 1;
  }
  return v.size() > 1 ? "{" + s + "}" : s;
}

/// Merges lines equal up to their numbers, in order of first appearance.
class Lines {
public:
  /// `name`, then `literal` as it is (a shape), then `tail`.
  void add(StringRef name, StringRef literal, StringRef tail) {
    std::string pattern;
    std::vector<int64_t> nums;
    split(name, pattern, nums);
    pattern += literal;
    split(tail, pattern, nums);
    auto [it, inserted] = index.try_emplace(pattern, lines.size());
    if (inserted)
      lines.push_back({pattern, std::vector<std::vector<int64_t>>(nums.size())});
    Line &l = lines[it->second];
    for (auto [k, n] : llvm::enumerate(nums))
      l.runs[k].push_back(n);
  }
  void print(llvm::raw_ostream &os, StringRef indent) const {
    for (const Line &l : lines) {
      os << indent;
      size_t run = 0;
      for (char c : l.pattern)
        if (c == '\0')
          os << compact(l.runs[run++]);
        else
          os << c;
      os << "\n";
    }
  }
  size_t size() const { return lines.size(); }

private:
  std::map<std::string, size_t> index;
  std::vector<Line> lines;
};

std::string shapeOf(Type t) {
  std::string s = "[";
  for (auto [k, d] : llvm::enumerate(cast<RankedTensorType>(t).getShape()))
    s += (k ? ", " : "") + std::to_string(d);
  return s + "]";
}
} // namespace

void mlir::weipipe::printTrainingSummary(ModuleOp module,
                                         llvm::raw_ostream &os) {
  Lines trained;
  size_t numTrained = 0;
  for (auto p : module.getOps<nn::ParameterOp>()) {
    ++numTrained;
    std::string text;
    if (std::optional<StringRef> why = p.getEvidence())
      text += ": " + why->str();
    if (ArrayAttr aliases = p.getAliasesAttr()) {
      ArrayRef<bool> transposed = p.getAliasesTransposed()
                                      ? *p.getAliasesTransposed()
                                      : ArrayRef<bool>();
      text += " (tied: also ";
      for (auto [k, a] : llvm::enumerate(aliases.getAsValueRange<StringAttr>()))
        text += (k ? ", " : "") + a.str() +
                (k < transposed.size() && transposed[k] ? " transposed" : "");
      text += ")";
    }
    trained.add(p.getSymName(), " " + shapeOf(p.getParamType()), text);
  }
  os << "  trained: " << numTrained << (numTrained == 1 ? " tensor" : " tensors")
     << ", with the evidence:\n";
  trained.print(os, "    ");

  DictionaryAttr frozen =
      nn::NNDialect::FrozenInitializersAttrHelper(module.getContext())
          .getAttr(module);
  if (!frozen || frozen.empty())
    return;
  Lines constants;
  for (NamedAttribute entry : frozen) {
    // "[1, 1, 16, 16]: reason"
    auto [shape, reason] =
        cast<StringAttr>(entry.getValue()).getValue().split("]: ");
    constants.add(entry.getName(), " " + shape.str() + "]", ": " + reason.str());
  }
  os << "  not trained: " << frozen.size() << " floating-point initializer"
     << (frozen.size() == 1 ? "" : "s") << ", with the reason:\n";
  constants.print(os, "    ");
}
