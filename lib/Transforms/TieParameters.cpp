//===- TieParameters.cpp - the nn-tie-parameters pass ---------------------===//
//
// Part of weipipe. Finds parameters whose stored values are bitwise equal,
// directly or up to a transpose, and merges them (see Passes.td).
//
//===----------------------------------------------------------------------===//

#include "weipipe/Dialect/NN/NNOps.h"
#include "weipipe/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cstring>
#include <map>

namespace mlir::weipipe {
#define GEN_PASS_DEF_NNTIEPARAMETERSPASS
#include "weipipe/Transforms/Passes.h.inc"
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

  /// Whether b holds a's values (transposed: b = aᵀ for rank 2). Compares a
  /// spread of sampled elements before the whole tensor, so that distinct
  /// weights (the common case) cost a few reads.
  bool sameValues(Stored &a, Stored &b, bool transposed) {
    const char *pa = data(a), *pb = data(b);
    if (!pa || !pb)
      return false;
    RankedTensorType t = paramType(a.op);
    int64_t width = t.getElementTypeBitWidth() / 8, n = t.getNumElements();
    int64_t rows = transposed ? t.getDimSize(0) : 1;
    int64_t cols = transposed ? t.getDimSize(1) : n;
    auto equalAt = [&](int64_t k) {
      int64_t other = transposed ? (k % cols) * rows + k / cols : k;
      return std::memcmp(pa + k * width, pb + other * width, width) == 0;
    };
    const int64_t samples = 64;
    for (int64_t s = 0; s < samples && s < n; ++s)
      if (!equalAt(s * (n / std::min(n, samples))))
        return false;
    if (!transposed)
      return std::memcmp(pa, pb, n * width) == 0;
    for (int64_t k = 0; k < n; ++k)
      if (!equalAt(k))
        return false;
    return true;
  }

  void runOnOperation() override {
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
        if (copyOf.count(members[i].op))
          continue;
        for (size_t j = i + 1; j < members.size(); ++j) {
          if (copyOf.count(members[j].op))
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
