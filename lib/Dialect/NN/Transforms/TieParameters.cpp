//===- TieParameters.cpp - the nn-tie-parameters pass ---------------------===//
//
// Part of weipipe. Finds parameters whose stored values are bitwise equal,
// directly or up to a transpose, and merges them (see Passes.td).
//
//===----------------------------------------------------------------------===//

#include "weipipe/Dialect/NN/NNOps.h"
#include "weipipe/Dialect/NN/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cstring>
#include <map>

namespace mlir::weipipe {
#define GEN_PASS_DEF_NNTIEPARAMETERSPASS
#include "weipipe/Dialect/NN/Transforms/Passes.h.inc"
} // namespace mlir::weipipe

using namespace mlir;
using namespace mlir::weipipe;
using namespace mlir::weipipe::nn;

namespace {

/// The stored bytes of a parameter, read on first use.
struct Stored {
  ParameterOp op;
  std::unique_ptr<llvm::MemoryBuffer> bytes;
  bool failed = false;
  int constant = -1; ///< unknown, 0 or 1: see isConstant
};

RankedTensorType paramType(ParameterOp p) {
  return cast<RankedTensorType>(p.getParamType());
}

/// Names exporters invent for initializers they create (folded transposes).
bool madeUpName(StringRef name) {
  return name.starts_with("val_") || name.starts_with("onnx::") ||
         name.starts_with("_v_");
}

struct NNTieParametersPass
    : weipipe::impl::NNTieParametersPassBase<NNTieParametersPass> {
  using Base::Base;

  const char *data(Stored &s) {
    if (s.failed)
      return nullptr;
    if (!s.bytes) {
      auto buf = llvm::MemoryBuffer::getFileSlice(
          *s.op.getFile(), *s.op.getLength(), *s.op.getOffset());
      if (!buf) {
        s.op.emitWarning() << "cannot read the stored values of '"
                           << s.op.getSymName() << "' from '" << *s.op.getFile()
                           << "' to look for ties: "
                           << buf.getError().message();
        s.failed = true;
        return nullptr;
      }
      s.bytes = std::move(*buf);
    }
    return s.bytes->getBufferStart();
  }

  llvm::StringMap<llvm::sys::fs::file_t> openFiles;

  /// Element k of a's stored bytes, read alone (a few bytes per call), so
  /// that sampling a tensor never reads it whole. False if unreadable.
  bool element(Stored &a, int64_t k, char *out, int64_t width) {
    if (a.bytes) {
      std::memcpy(out, a.bytes->getBufferStart() + k * width, width);
      return true;
    }
    if (a.failed)
      return false;
    // One open handle per file for the whole pass.
    auto [it, inserted] =
        openFiles.try_emplace(*a.op.getFile(), llvm::sys::fs::kInvalidFile);
    if (inserted) {
      auto file = llvm::sys::fs::openNativeFileForRead(*a.op.getFile());
      if (file)
        it->second = *file;
      else
        llvm::consumeError(file.takeError());
    }
    if (it->second == llvm::sys::fs::kInvalidFile)
      return data(a) != nullptr && element(a, k, out, width);
    auto n = llvm::sys::fs::readNativeFileSlice(
        it->second, llvm::MutableArrayRef<char>(out, width),
        *a.op.getOffset() + k * width);
    if (!n || *n != size_t(width)) {
      if (!n)
        llvm::consumeError(n.takeError());
      return data(a) != nullptr && element(a, k, out, width);
    }
    return true;
  }

  /// Whether every element of `a` is the same value: a fresh initialization
  /// (norm scales of ones, zero biases, an untrained file), not a copy of
  /// another parameter. Such parameters are never tied: PyTorch keeps them
  /// separate. Sampled elements that differ settle it with a few reads; only
  /// when they all agree is the tensor read whole (a tied embedding whose
  /// padding row is zero must not pass for constant).
  bool isConstant(Stored &a) {
    if (a.constant >= 0)
      return a.constant;
    RankedTensorType t = paramType(a.op);
    int64_t width = t.getElementTypeBitWidth() / 8, n = t.getNumElements();
    char first[8], other[8];
    if (width > 8 || !element(a, 0, first, width))
      return (a.constant = 1); // unreadable: never tied
    for (int64_t s = 1; s < kSamples && s < n; ++s) {
      if (!element(a, sampleIndex(s, n), other, width))
        return (a.constant = 1);
      if (std::memcmp(first, other, width))
        return (a.constant = 0);
    }
    const char *all = data(a);
    if (!all)
      return (a.constant = 1);
    a.constant = 1;
    for (int64_t k = 1; k < n && a.constant; ++k)
      a.constant = std::memcmp(all, all + k * width, width) == 0;
    return a.constant;
  }

  static constexpr int64_t kSamples = 64;
  /// The s-th of kSamples elements spread over n: a stride one more than
  /// n / kSamples, so that the samples of a matrix walk its columns as well
  /// as its rows.
  static int64_t sampleIndex(int64_t s, int64_t n) {
    return (s * (n / std::min(n, kSamples) + 1)) % n;
  }

  /// Whether b holds a's values (transposed: b = aᵀ for rank 2). Compares a
  /// spread of sampled elements before the whole tensor, so that distinct
  /// weights (the common case) cost a few reads.
  bool sameValues(Stored &a, Stored &b, bool transposed) {
    RankedTensorType t = paramType(a.op);
    int64_t width = t.getElementTypeBitWidth() / 8, n = t.getNumElements();
    int64_t rows = transposed ? t.getDimSize(0) : 1;
    int64_t cols = transposed ? t.getDimSize(1) : n;
    auto otherIndex = [&](int64_t k) {
      return transposed ? (k % cols) * rows + k / cols : k;
    };
    // Sampled elements first, read one by one: distinct weights differ here.
    char ea[8], eb[8];
    if (width > 8)
      return false;
    for (int64_t s = 0; s < kSamples && s < n; ++s) {
      int64_t k = sampleIndex(s, n);
      if (!element(a, k, ea, width) || !element(b, otherIndex(k), eb, width) ||
          std::memcmp(ea, eb, width))
        return false;
    }
    const char *pa = data(a), *pb = data(b);
    if (!pa || !pb)
      return false;
    auto equalAt = [&](int64_t k) {
      return std::memcmp(pa + k * width, pb + otherIndex(k) * width, width) ==
             0;
    };
    if (!transposed)
      return std::memcmp(pa, pb, n * width) == 0;
    for (int64_t k = 0; k < n; ++k)
      if (!equalAt(k))
        return false;
    return true;
  }

  void runOnOperation() override {
    tieParameters();
    for (auto &entry : openFiles)
      if (entry.second != llvm::sys::fs::kInvalidFile)
        llvm::sys::fs::closeFile(entry.second);
    openFiles.clear();
  }

  void tieParameters() {
    ModuleOp module = getOperation();
    // Candidates grouped by element type and element count.
    std::map<std::pair<std::string, int64_t>, std::vector<Stored>> groups;
    for (auto p : module.getOps<ParameterOp>()) {
      if (!p.getFile())
        continue;
      RankedTensorType t = paramType(p);
      std::string key;
      llvm::raw_string_ostream(key) << t.getElementType();
      groups[{key, t.getNumElements()}].push_back(Stored{p, nullptr, false});
    }

    llvm::DenseMap<Operation *, std::pair<ParameterOp, bool>> copyOf;
    for (auto &[key, members] : groups) {
      for (size_t i = 0; i < members.size(); ++i) {
        if (copyOf.count(members[i].op) || isConstant(members[i]))
          continue;
        for (size_t j = i + 1; j < members.size(); ++j) {
          if (copyOf.count(members[j].op) || isConstant(members[j]))
            continue;
          RankedTensorType a = paramType(members[i].op),
                           b = paramType(members[j].op);
          bool same = a.getShape() == b.getShape();
          bool transposed = !same && a.getRank() == 2 && b.getRank() == 2 &&
                            a.getDimSize(0) == b.getDimSize(1) &&
                            a.getDimSize(1) == b.getDimSize(0);
          if ((!same && !transposed) ||
              !sameValues(members[i], members[j], transposed))
            continue;
          copyOf[members[j].op] = {members[i].op, transposed};
        }
      }
    }
    if (copyOf.empty())
      return;

    // Keep the parameter with the real name; copies become aliases of it.
    llvm::DenseMap<Operation *, SmallVector<std::pair<ParameterOp, bool>>>
        copies;
    for (auto &[copy, target] : copyOf)
      copies[target.first].push_back({cast<ParameterOp>(copy), target.second});
    for (auto &[keptOp, list] : copies) {
      auto kept = cast<ParameterOp>(keptOp);
      llvm::sort(list, [](auto &x, auto &y) {
        return x.first->isBeforeInBlock(y.first);
      });
      if (madeUpName(kept.getSymName()))
        for (auto &[c, tr] : list)
          if (!madeUpName(c.getSymName()) && !tr) {
            std::swap(kept, c);
            break;
          }
      for (auto &[copy, transposed] : list) {
        InFlightDiagnostic diag = keepSeparate
                                      ? mlir::emitWarning(copy.getLoc())
                                      : mlir::emitRemark(copy.getLoc());
        diag << "parameters '" << kept.getSymName() << "' and '"
             << copy.getSymName() << "' hold the same values"
             << (transposed ? " (one is the transpose of the other)" : "")
             << (keepSeparate ? "; training them separately "
                                "(nn-tie-parameters{keep-separate})"
                              : "; training them as one parameter");
      }
      if (keepSeparate)
        continue;
      SmallVector<Attribute> names;
      SmallVector<bool> flags;
      if (kept.getAliases())
        for (auto [n, f] :
             llvm::zip(*kept.getAliases(), *kept.getAliasesTransposed())) {
          names.push_back(n);
          flags.push_back(f);
        }
      for (auto &[copy, transposed] : list) {
        names.push_back(copy.getSymNameAttr());
        flags.push_back(transposed);
        if (failed(retarget(module, copy, kept, transposed)))
          return signalPassFailure();
        copy.erase();
      }
      kept.setAliasesAttr(ArrayAttr::get(&getContext(), names));
      kept.setAliasesTransposedAttr(
          DenseBoolArrayAttr::get(&getContext(), flags));
    }
  }

  /// Makes every read of `copy` read `kept` (transposed if needed).
  LogicalResult retarget(ModuleOp module, ParameterOp copy, ParameterOp kept,
                         bool transposed) {
    SmallVector<ParamOp> reads;
    module.walk([&](ParamOp read) {
      if (read.getName() == copy.getSymName())
        reads.push_back(read);
    });
    for (ParamOp read : reads) {
      OpBuilder b(read);
      Value v =
          ParamOp::create(b, read.getLoc(), paramType(kept), kept.getSymName());
      if (transposed)
        v = TransposeOp::create(b, read.getLoc(), read.getType(), v,
                                ArrayRef<int64_t>{1, 0});
      read.replaceAllUsesWith(v);
      read.erase();
    }
    return success();
  }
};
} // namespace
