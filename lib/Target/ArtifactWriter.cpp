//===- ArtifactWriter.cpp - lowers a differentiated module to .wpp --------===//
//
// Part of weipipe. The micro-batch program is the forward followed by the
// fused backward (or B then W). Every SSA value of it gets a storage node:
// a parameter, a parameter's gradient buffer, a constant, or an arena slot.
// Values that are the same bytes share a node: a forward result and the
// backward argument it is passed to, a reshape and its input. Arena slots
// get static offsets by first-fit over their live ranges in program order,
// so the plan's size is the rank's activation peak.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Target/ArtifactWriter.h"
#include "weipipe/Dialect/NN/NNOps.h"
#include "weipipe/runtime/Artifact.h"
#include "weipipe/runtime/Crc32c.h"
#include "weipipe/runtime/RankMemory.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <set>

using namespace mlir;
using namespace mlir::weipipe;
namespace rt = ::weipipe::rt;

namespace {
constexpr uint64_t kAlign = 64;

/// An enum value as an instruction's int (Opcodes.h's numbers).
template <class E> int64_t code(E e) { return static_cast<int64_t>(e); }

// nn's enum attributes as the runtime's enums, case by case: the two are
// declared apart (ODS, Opcodes.h) and must not be kept equal by hand.
rt::UnaryOp runtimeEnum(nn::UnaryFunction f) {
  using F = nn::UnaryFunction;
  using U = rt::UnaryOp;
  switch (f) {
  case F::neg:
    return U::Neg;
  case F::abs:
    return U::Abs;
  case F::sqrt:
    return U::Sqrt;
  case F::reciprocal:
    return U::Reciprocal;
  case F::exp:
    return U::Exp;
  case F::log:
    return U::Log;
  case F::erf:
    return U::Erf;
  case F::tanh:
    return U::Tanh;
  case F::sigmoid:
    return U::Sigmoid;
  case F::relu:
    return U::Relu;
  case F::sin:
    return U::Sin;
  case F::cos:
    return U::Cos;
  }
  llvm_unreachable("unknown nn.UnaryFunction");
}

rt::BinaryOp runtimeEnum(nn::BinaryFunction f) {
  using F = nn::BinaryFunction;
  using B = rt::BinaryOp;
  switch (f) {
  case F::add:
    return B::Add;
  case F::sub:
    return B::Sub;
  case F::mul:
    return B::Mul;
  case F::div:
    return B::Div;
  case F::pow:
    return B::Pow;
  case F::max:
    return B::Max;
  case F::min:
    return B::Min;
  }
  llvm_unreachable("unknown nn.BinaryFunction");
}

rt::ReduceOp runtimeEnum(nn::ReduceFunction f) {
  switch (f) {
  case nn::ReduceFunction::sum:
    return rt::ReduceOp::Sum;
  case nn::ReduceFunction::mean:
    return rt::ReduceOp::Mean;
  case nn::ReduceFunction::max:
    return rt::ReduceOp::Max;
  }
  llvm_unreachable("unknown nn.ReduceFunction");
}

rt::GeluApprox runtimeEnum(nn::GeluApproximation a) {
  switch (a) {
  case nn::GeluApproximation::none:
    return rt::GeluApprox::None;
  case nn::GeluApproximation::tanh:
    return rt::GeluApprox::Tanh;
  }
  llvm_unreachable("unknown nn.GeluApproximation");
}

struct Node {
  rt::Space space = rt::Space::Arena;
  uint32_t index = 0;
  uint64_t bytes = 0;
  int64_t first = INT64_MAX, last = -1;
  uint64_t offset = 0;
  /// A stage's temporary, live within one of its functions only: it lives
  /// in the rank's scratch arena, not in the micro-batch's instance.
  bool scratch = false;
};

/// nn.saved of a backward function: its leading arguments that the forward
/// saved (or, with recompute, the forward's arguments).
int64_t savedCount(func::FuncOp f) {
  return nn::NNDialect::SavedAttrHelper(f.getContext()).getAttr(f).getInt();
}

class Writer {
public:
  /// `constants`: the constant table shared by the stages written into one
  /// artifact (null: this writer's own).
  Writer(ModuleOp m, const ArtifactOptions &o, rt::Artifact &a,
         llvm::DenseMap<Attribute, uint32_t> *constants = nullptr)
      : module(m), opt(o), a(a),
        constIndex(constants ? *constants : ownConstants) {}

  /// Writes the stage whose differentiated functions are
  /// `nn.autodiff_of = opt.function` into `a` (functions appended) and
  /// describes it in `out`: a pipeline stage with its own arena.
  LogicalResult runStage(rt::Stage &out);

  /// The buffer plan: binds every value to its storage, folds gradient
  /// accumulation, and places the arena values.
  LogicalResult plan();
  /// plan(), then records it in the IR (nn.arena, nn.arena_bytes).
  LogicalResult annotate();
  LogicalResult run();

private:
  ModuleOp module;
  const ArtifactOptions &opt;
  rt::Artifact &a;

  std::vector<Node> nodes;
  llvm::DenseMap<Value, int> nodeOf;
  llvm::StringMap<uint32_t> paramIndex;
  llvm::DenseMap<Attribute, uint32_t> ownConstants;
  llvm::DenseMap<Attribute, uint32_t> &constIndex;
  uint64_t arenaBytes = 0, scratchBytes = 0;
  /// Function indices in `a.functions`, by role, once emitted.
  llvm::DenseMap<unsigned, int32_t> emitted;
  /// Stage mode: functions are not the single-rank micro-batch program.
  bool stageMode = false;
  llvm::DenseSet<Operation *> skipped; // folded into another instruction
  llvm::DenseSet<Operation *> accumulating;
  /// Every op's instruction (opcode and attributes; refs come at emit).
  llvm::DenseMap<Operation *, rt::Instruction> encoded;
  /// Storage the IR does not name: an attention's log-sum-exp, written by
  /// the forward op (an extra result) and read by its gradient op (an extra
  /// operand), so the backward need not recompute it.
  struct Extra {
    int node;
    SmallVector<int64_t> shape; // f32
  };
  llvm::DenseMap<Operation *, Extra> extraResult, extraOperand;
  SmallVector<func::FuncOp> program;
  int64_t position = 0;
  /// The last position of each function of the program (liveRanges).
  SmallVector<int64_t> functionEnds;

  int newNode(Type t) {
    Node n;
    auto rtt = cast<RankedTensorType>(t);
    n.bytes = rtt.getNumElements() *
              std::max<unsigned>(1, rtt.getElementTypeBitWidth() / 8);
    nodes.push_back(n);
    return static_cast<int>(nodes.size()) - 1;
  }
  int node(Value v) {
    auto it = nodeOf.find(v);
    if (it != nodeOf.end())
      return it->second;
    int n = newNode(v.getType());
    nodeOf[v] = n;
    return n;
  }

  LogicalResult collectParameters();
  void warnSharedNormParameters();
  LogicalResult bind();
  void keepAttentionLse();
  /// The nodes an op reads and writes, the extra ones included.
  SmallVector<int> operandNodes(Operation *op) {
    SmallVector<int> ns;
    for (Value v : op->getOperands())
      ns.push_back(node(v));
    if (auto it = extraOperand.find(op); it != extraOperand.end())
      ns.push_back(it->second.node);
    return ns;
  }
  SmallVector<int> resultNodes(Operation *op) {
    SmallVector<int> ns;
    for (Value v : op->getResults())
      ns.push_back(node(v));
    if (auto it = extraResult.find(op); it != extraResult.end())
      ns.push_back(it->second.node);
    return ns;
  }
  rt::TensorRef extraRef(const Extra &e) const {
    rt::TensorRef r;
    r.space = nodes[e.node].scratch ? rt::Space::Scratch : rt::Space::Arena;
    r.offset = nodes[e.node].offset;
    r.dtype = rt::DType::F32;
    r.shape.assign(e.shape.begin(), e.shape.end());
    return r;
  }
  LogicalResult encodeAll();
  static const rt::OpcodeInfo &contract(const rt::Instruction &inst) {
    return *rt::opcodeInfo(inst.op);
  }
  void foldAccumulation();
  void liveRanges();
  LogicalResult assignOffsets();
  /// First-fit over the live ranges of the arena nodes that are (or are
  /// not) scratch; returns the region's size.
  uint64_t placeNodes(bool scratch);
  LogicalResult emit();
  LogicalResult checkPlan();
  /// A pipeline stage that does not compute the loss: its outputs and
  /// input gradients are handed on as soon as they are made, and its output
  /// gradients handed in just before its backward (rt::instanceEffects).
  bool handedOn() {
    bool loss = false;
    program.front().walk([&](nn::CrossEntropyOp) { loss = true; });
    return stageMode && !loss;
  }
  /// Per seed of the backward (an output's gradient: dloss for a loss), its
  /// node.
  SmallVector<int> seedNodes;
  /// The first backward function's seed arguments (after the saved values):
  /// the loss gradient, or a stage's output gradients.
  SmallVector<Value> seedArguments() {
    func::FuncOp b = program[1];
    SmallVector<Value> seeds;
    for (unsigned i = savedCount(b), n = b.getNumArguments(); i < n; ++i)
      seeds.push_back(b.getArgument(i));
    return seeds;
  }
  Value dlossArgument() { return seedArguments().front(); }
  /// The forward's outputs (before the saved values).
  SmallVector<Value> forwardOutputs() {
    func::FuncOp fwd = program.front();
    Operation *ret = fwd.getBody().front().getTerminator();
    return SmallVector<Value>(
        ret->getOperands().take_front(fwd.getNumResults() - savedCount(fwd)));
  }
  /// B's results that are the gradients of the forward's float arguments
  /// (the rest are B-to-W transfers).
  SmallVector<Value> inputGradients() {
    func::FuncOp b = program[1];
    Operation *ret = b.getBody().front().getTerminator();
    int64_t transfers = *nn::autodiffRole(b) == nn::AutodiffRole::BackwardInput
                            ? nn::NNDialect::TransferAttrHelper(b.getContext())
                                  .getAttr(b)
                                  .getInt()
                            : 0;
    return SmallVector<Value>(ret->getOperands().drop_back(size_t(transfers)));
  }
  FailureOr<rt::TensorRef> ref(Operation *at, Value v);
  LogicalResult encode(Operation *op, rt::Instruction &inst);
};

FailureOr<rt::DType> dtypeOf(Operation *at, Type t) {
  Type e = cast<RankedTensorType>(t).getElementType();
  if (e.isF32())
    return rt::DType::F32;
  if (e.isInteger(64))
    return rt::DType::I64;
  if (e.isInteger(32))
    return rt::DType::I32;
  if (e.isInteger(1))
    return rt::DType::Bool;
  return at->emitError() << "the CPU runtime trains f32 models; element type "
                         << e << " is not supported yet";
}

/// "nn.linear (node 'fc1', model.onnx)" or "nn.add (model.mlir:12:5)": the
/// op and where it came from, for the runtime's messages.
std::string describe(Operation *op) {
  std::string node, file;
  int line = 0;
  op->getLoc()->walk([&](Location l) {
    if (auto n = dyn_cast<NameLoc>(l); n && node.empty())
      node = n.getName().str();
    if (auto f = dyn_cast<FileLineColLoc>(l); f && file.empty()) {
      file = llvm::sys::path::filename(f.getFilename().getValue()).str();
      line = f.getLine();
    }
    return WalkResult::advance();
  });
  std::string s = op->getName().getStringRef().str();
  if (!node.empty())
    return s + " (node '" + node + "'" + (file.empty() ? "" : ", " + file) +
           ")";
  if (!file.empty())
    return s + " (" + file + ":" + std::to_string(line) + ")";
  return s;
}

LogicalResult Writer::collectParameters() {
  // The stages of one artifact share its parameter table.
  if (!a.params.empty()) {
    for (auto [i, p] : llvm::enumerate(a.params))
      paramIndex[p.name] = i;
    return success();
  }
  for (auto p : module.getOps<nn::ParameterOp>()) {
    rt::Parameter param;
    param.name = p.getSymName().str();
    auto type = p.getParamType();
    if (!type.getElementType().isF32())
      return p.emitError() << "parameter '" << param.name << "' is "
                           << type.getElementType()
                           << "; the CPU runtime trains f32 parameters";
    param.dtype = rt::DType::F32;
    param.shape.assign(type.getShape().begin(), type.getShape().end());
    param.decay = p.decays();
    if (!p.getFile() || !p.getOffset() || !p.getLength())
      return p.emitError() << "parameter '" << param.name
                           << "' has no stored bytes to train from (an "
                              "initializer written with typed fields); save "
                              "the model with raw_data";
    SmallString<256> path(*p.getFile());
    if (std::error_code ec = llvm::sys::fs::make_absolute(path))
      return p.emitError() << "cannot resolve '" << *p.getFile()
                           << "': " << ec.message();
    uint64_t size = 0;
    if (std::error_code ec = llvm::sys::fs::file_size(path, size))
      return p.emitError() << "parameter '" << param.name << "': cannot read '"
                           << path << "': " << ec.message();
    param.storage = {std::string(path), *p.getOffset(), *p.getLength(), size};
    // The bytes' checksum, so that an in-place edit is caught at load.
    std::string error;
    std::optional<uint32_t> crc = rt::crc32cOfFileRange(
        param.storage.file, param.storage.offset, param.storage.length, &error);
    if (!crc)
      return p.emitError() << "parameter '" << param.name << "': " << error;
    param.storage.checksummed = true;
    param.storage.crc32c = *crc;
    if (auto aliases = p.getAliases()) {
      auto transposed = p.getAliasesTransposed();
      for (auto [i, name] : llvm::enumerate(*aliases))
        param.aliases.push_back(
            {cast<StringAttr>(name).str(), transposed && (*transposed)[i]});
    }
    paramIndex[param.name] = a.params.size();
    a.params.push_back(std::move(param));
  }
  warnSharedNormParameters();
  return success();
}

/// Exporters store initializers that hold equal values once (freshly
/// initialized norm scales of ones, zero biases), so one ONNX initializer can
/// feed the norms of every layer although PyTorch had a parameter per
/// layer. Training it as one parameter then diverges from PyTorch; nothing
/// in the file tells the two cases apart, so say so.
void Writer::warnSharedNormParameters() {
  llvm::StringMap<llvm::SmallPtrSet<Operation *, 4>> normsUsing;
  llvm::StringMap<Location> firstUse;
  program.front().walk([&](nn::ParamOp read) {
    for (Operation *user : read->getUsers()) {
      bool weightOfNorm = false;
      if (auto ln = dyn_cast<nn::LayerNormOp>(user))
        weightOfNorm = ln.getScale() == read || ln.getBias() == read;
      else if (auto rms = dyn_cast<nn::RMSNormOp>(user))
        weightOfNorm = rms.getScale() == read;
      if (weightOfNorm) {
        normsUsing[read.getName()].insert(user);
        firstUse.try_emplace(read.getName(), user->getLoc());
      }
    }
  });
  for (auto &[name, norms] : normsUsing)
    if (norms.size() > 1)
      mlir::emitWarning(firstUse.find(name)->second)
          << "parameter '" << name << "' is the scale or bias of "
          << norms.size()
          << " normalization layers and is trained as one parameter; "
             "exporters merge initializers that hold equal values (such as "
             "freshly initialized norm scales), so these may have been "
             "separate parameters in PyTorch. Export weights that differ "
             "(trained, or randomized) to train them separately";
}

/// Gives every value of the program its node: links arguments to the values
/// passed in, aliases reshapes, binds parameter reads and constants.
LogicalResult Writer::bind() {
  func::FuncOp fwd = program.front();
  auto fwdRet = cast<func::ReturnOp>(fwd.getBody().front().getTerminator());
  func::ReturnOp bRet;
  int64_t numDargs = 0;
  const int64_t numOutputs = fwd.getNumResults() - savedCount(fwd);
  for (func::FuncOp f : program) {
    const nn::AutodiffRole role = *nn::autodiffRole(f);
    if (role != nn::AutodiffRole::Forward) {
      const int64_t saved = savedCount(f);
      auto recomputeAttr = nn::NNDialect::RecomputeAttrHelper(f.getContext());
      const bool recompute = recomputeAttr.getAttr(f).getValue();
      for (BlockArgument arg : f.getArguments()) {
        int64_t i = arg.getArgNumber();
        Value from;
        if (i < saved)
          from = recompute ? Value(fwd.getArgument(i))
                           : fwdRet.getOperand(numOutputs + i);
        else if (role == nn::AutodiffRole::BackwardWeight)
          from = bRet.getOperand(numDargs + (i - saved));
        if (from) {
          nodeOf[arg] = node(from);
          continue;
        }
        // An output's gradient (the loss's: dloss): one node per seed that
        // the trainer, or the next stage's backward, writes.
        const size_t seed = size_t(i - saved);
        if (seedNodes.size() <= seed)
          seedNodes.resize(seed + 1, -1);
        if (seedNodes[seed] < 0)
          seedNodes[seed] = node(arg);
        nodeOf[arg] = seedNodes[seed];
      }
      if (role == nn::AutodiffRole::BackwardInput) {
        bRet = cast<func::ReturnOp>(f.getBody().front().getTerminator());
        numDargs = f.getNumResults() -
                   nn::NNDialect::TransferAttrHelper(f.getContext())
                       .getAttr(f)
                       .getInt();
      }
    }
    for (Operation &op : f.getBody().front()) {
      if (auto p = dyn_cast<nn::ParamOp>(op)) {
        auto it = paramIndex.find(p.getName());
        if (it == paramIndex.end())
          return p.emitError() << "no parameter '" << p.getName() << "'";
        int n = node(p.getResult());
        nodes[n].space = rt::Space::Param;
        nodes[n].index = it->second;
        continue;
      }
      if (auto c = dyn_cast<nn::ConstantOp>(op)) {
        auto [it, inserted] = constIndex.try_emplace(c.getValue(), 0);
        if (inserted) {
          auto attr = dyn_cast<DenseElementsAttr>(c.getValue());
          if (!attr)
            return c.emitError() << "constant is not dense elements";
          FailureOr<rt::DType> dt = dtypeOf(c, c.getType());
          if (failed(dt))
            return failure();
          rt::Constant k;
          k.dtype = *dt;
          auto shape = c.getType().getShape();
          k.shape.assign(shape.begin(), shape.end());
          auto append = [&](const auto &x) {
            k.bytes.append(reinterpret_cast<const char *>(&x), sizeof(x));
          };
          switch (*dt) {
          case rt::DType::F32:
            for (float x : attr.getValues<float>())
              append(x);
            break;
          case rt::DType::I64:
            for (int64_t x : attr.getValues<int64_t>())
              append(x);
            break;
          case rt::DType::I32:
            for (int32_t x : attr.getValues<int32_t>())
              append(x);
            break;
          case rt::DType::Bool:
            for (bool x : attr.getValues<bool>())
              append(static_cast<uint8_t>(x));
            break;
          }
          it->second = a.constants.size();
          a.constants.push_back(std::move(k));
        }
        int n = node(c.getResult());
        nodes[n].space = rt::Space::Const;
        nodes[n].index = it->second;
        continue;
      }
      if (auto r = dyn_cast<nn::ReshapeOp>(op)) {
        int in = node(r.getInput());
        if (nodes[in].space == rt::Space::Arena) {
          nodeOf[r.getResult()] = in; // the same bytes, another shape
          skipped.insert(&op);
          continue;
        }
      }
      for (Value v : op.getResults())
        node(v);
    }
  }
  if (seedNodes.empty())
    return fwd.emitError() << "the program has no backward taking dloss";
  return success();
}

/// [B, H, Sq] of an attention's log-sum-exp.
SmallVector<int64_t> lseShape(nn::AttentionOp op) {
  ArrayRef<int64_t> q = op.getQuery().getType().getShape();
  int64_t h = static_cast<int64_t>(op.getNumHeads());
  return {q[0], h, q.size() == 4 ? q[2] : q[1]};
}

/// The gradient op's forward attention is the one whose output it reads
/// (the same node: a saved value, or the recomputed op in the backward).
void Writer::keepAttentionLse() {
  llvm::DenseMap<int, nn::AttentionOp> byOutput;
  for (func::FuncOp f : program)
    f.walk([&](nn::AttentionOp op) { byOutput[node(op.getResult())] = op; });
  for (func::FuncOp f : program)
    f.walk([&](nn::AttentionGradOp grad) {
      auto fwd = byOutput.lookup(node(grad.getOutput()));
      if (!fwd)
        return;
      auto it = extraResult.find(fwd);
      if (it == extraResult.end()) {
        Extra e{static_cast<int>(nodes.size()), lseShape(fwd)};
        Node n;
        n.bytes = 4;
        for (int64_t d : e.shape)
          n.bytes *= d;
        nodes.push_back(n);
        it = extraResult.try_emplace(fwd, e).first;
      }
      extraOperand[grad] = it->second;
    });
}

/// A weight-gradient op whose every used result only feeds
/// nn.accumulate_grad writes straight into the gradient buffers (its kernel
/// accumulates), and the accumulate ops disappear.
void Writer::foldAccumulation() {
  for (func::FuncOp f : program)
    for (Operation &op : f.getBody().front()) {
      auto enc = encoded.find(&op);
      if (enc == encoded.end() ||
          !(contract(enc->second).flags & rt::OpcodeInfo::kAccumulates))
        continue;
      bool foldable = true, any = false;
      for (Value r : op.getResults()) {
        if (r.use_empty())
          continue;
        auto acc = r.hasOneUse()
                       ? dyn_cast<nn::AccumulateGradOp>(*r.getUsers().begin())
                       : nn::AccumulateGradOp();
        if (!acc || !paramIndex.count(acc.getName())) {
          foldable = false;
          break;
        }
        any = true;
      }
      if (!foldable || !any)
        continue;
      for (Value r : op.getResults()) {
        if (r.use_empty())
          continue;
        auto acc = cast<nn::AccumulateGradOp>(*r.getUsers().begin());
        Node &n = nodes[node(r)];
        n.space = rt::Space::Grad;
        n.index = paramIndex[acc.getName()];
        skipped.insert(acc);
      }
      accumulating.insert(&op);
    }
}

void Writer::liveRanges() {
  position = 0;
  functionEnds.clear();
  int64_t fwdEnd = 0;
  for (func::FuncOp f : program) {
    for (Operation &op : f.getBody().front()) {
      ++position;
      SmallVector<int> touched = operandNodes(&op);
      llvm::append_range(touched, resultNodes(&op));
      for (int i : touched) {
        Node &n = nodes[i];
        n.first = std::min(n.first, position);
        n.last = std::max(n.last, position);
      }
    }
    if (f == program.front())
      fwdEnd = position;
    functionEnds.push_back(position);
  }
  int64_t end = position + 1;
  auto pin = [&](Value v, int64_t from, int64_t to) {
    Node &n = nodes[node(v)];
    n.first = std::min(n.first, from);
    n.last = std::max(n.last, to);
  };
  func::FuncOp fwd = program.front();
  // Inputs are written before the program and the outputs (the loss, a
  // stage's activations) read after it; the seeds are written from outside
  // (the trainer's dloss, the next stage's input gradients) and a stage's
  // input gradients read after it by the previous stage.
  for (BlockArgument arg : fwd.getArguments())
    pin(arg, 0, end);
  // A pipeline stage's outputs and input gradients go on (to a slot, the
  // next or previous chunk's instance) as soon as the function that makes
  // them returns, and its output gradients are copied in just before the
  // backward that reads them runs (rt::instanceEffects): they are scratch
  // unless another function reads them too, and an instance keeps only its
  // input and what the backward saved. A loss stage keeps its loss and
  // its gradient in the instance, where the trainer reads and writes them.
  const int64_t backwardStart = functionEnds.front() + 1;
  for (Value v : seedArguments())
    if (handedOn()) // from its backward's start (even unread), written before
      pin(v, backwardStart, std::max(nodes[node(v)].last, backwardStart));
    else
      pin(v, 0, end);
  if (!handedOn())
    for (Value v : forwardOutputs())
      pin(v, 0, end);
  if (!stageMode)
    for (Value v : inputGradients())
      pin(v, 0, end);
  // The logits stay readable until the forward ends (--dump-logits).
  fwd.walk([&](nn::CrossEntropyOp ce) { pin(ce.getLogits(), 0, fwdEnd); });
  // A stage's instance holds one micro-batch from its forward to its last
  // backward step, while the rank runs other work in between: only what
  // lives across its functions (its input, saved values, B-to-W transfers,
  // an output gradient W reads) belongs there. The rest lives within one
  // function, which runs alone on the rank, so one scratch arena per rank
  // serves every stage. With recompute nearly everything is scratch: that
  // is what recompute saves.
  if (!stageMode)
    return;
  for (Node &n : nodes) {
    if (n.space != rt::Space::Arena || n.last < 0 || n.first < 1 ||
        n.last >= end)
      continue;
    auto fnOf = [&](int64_t pos) {
      return llvm::upper_bound(functionEnds, pos - 1) - functionEnds.begin();
    };
    n.scratch = fnOf(n.first) == fnOf(n.last);
  }
}

LogicalResult Writer::assignOffsets() {
  arenaBytes = placeNodes(false);
  scratchBytes = placeNodes(true);
  // Every tensor is under 2^62 bytes (ref()); their sum need not be.
  constexpr uint64_t kMax = uint64_t(1) << 62;
  if (arenaBytes > kMax || scratchBytes > kMax)
    return module.emitError()
           << "the activations need more than 2^62 bytes at once ("
           << (arenaBytes > kMax ? "arena" : "scratch") << ")";
  return success();
}

uint64_t Writer::placeNodes(bool scratch) {
  SmallVector<int> order;
  for (auto [i, n] : llvm::enumerate(nodes))
    if (n.space == rt::Space::Arena && n.last >= 0 && n.scratch == scratch)
      order.push_back(static_cast<int>(i));
  llvm::stable_sort(
      order, [&](int x, int y) { return nodes[x].first < nodes[y].first; });
  // Placed nodes sorted by offset; first-fit into the lowest gap among the
  // ones whose live ranges overlap.
  std::vector<int> placed;
  uint64_t top = 0;
  for (int id : order) {
    Node &n = nodes[id];
    uint64_t size =
        (std::max<uint64_t>(n.bytes, 1) + kAlign - 1) / kAlign * kAlign;
    std::vector<std::pair<uint64_t, uint64_t>> busy;
    for (int p : placed) {
      const Node &m = nodes[p];
      if (m.last >= n.first && m.first <= n.last)
        busy.push_back({m.offset, m.offset + (std::max<uint64_t>(m.bytes, 1) +
                                              kAlign - 1) /
                                                 kAlign * kAlign});
    }
    llvm::sort(busy);
    uint64_t at = 0;
    // Saturating: an arena past 2^64 must be reported, not wrapped.
    auto end = [&](uint64_t x) {
      return x > UINT64_MAX - size ? UINT64_MAX : x + size;
    };
    for (auto [b, e] : busy) {
      if (end(at) <= b)
        break;
      at = std::max(at, e);
    }
    n.offset = at;
    top = std::max(top, end(at));
    placed.push_back(id);
  }
  return top;
}

/// A graph input the trainer fills: [batch, seq] with at least one of each,
/// since a micro-batch without tokens trains nothing.
LogicalResult checkMicrobatchInput(Operation *at, const rt::Input &in) {
  const std::vector<int64_t> &s = in.ref.shape;
  if (s.size() == 2 && s[0] >= 1 && s[1] >= 1)
    return success();
  std::string shape;
  for (int64_t d : s)
    shape += (shape.empty() ? "" : ", ") + std::to_string(d);
  return at->emitError() << "input '" << in.name << "' is [" << shape
                         << "]; a micro-batch needs at least one row and one "
                            "token (--input-shape="
                         << in.name << "=BATCH,SEQ with both >= 1)";
}

FailureOr<rt::TensorRef> Writer::ref(Operation *at, Value v) {
  rt::TensorRef r;
  if (!v)
    return r; // Space::None
  const Node &n = nodes[node(v)];
  FailureOr<rt::DType> dt = dtypeOf(at, v.getType());
  if (failed(dt))
    return failure();
  r.space = n.scratch ? rt::Space::Scratch : n.space;
  r.index = n.index;
  r.offset = n.space == rt::Space::Arena ? n.offset : 0;
  r.dtype = *dt;
  auto shape = cast<RankedTensorType>(v.getType()).getShape();
  r.shape.assign(shape.begin(), shape.end());
  int64_t numel;
  if (std::string why =
          rt::shapeProblem(r.shape, rt::dtypeSize(r.dtype), &numel);
      !why.empty())
    return at->emitError() << "a tensor of type " << v.getType()
                           << " is too large for the runtime: " << why;
  return r;
}

LogicalResult Writer::encode(Operation *op, rt::Instruction &inst) {
  using rt::Opcode;
  auto &ints = inst.ints;
  auto &floats = inst.floats;
  auto init = [&](Opcode code, std::initializer_list<int64_t> i = {},
                  std::initializer_list<double> f = {}) {
    inst.op = code;
    ints.assign(i.begin(), i.end());
    floats.assign(f.begin(), f.end());
  };
  auto set = [&](Opcode code, std::initializer_list<int64_t> i = {},
                 std::initializer_list<double> f = {}) -> LogicalResult {
    init(code, i, f);
    return success();
  };
  auto requireFloat = [&](Value v) -> LogicalResult {
    if (isa<FloatType>(cast<RankedTensorType>(v.getType()).getElementType()))
      return success();
    return op->emitError()
           << "the CPU runtime runs this op on floating-point tensors only";
  };
  auto unaryCode = [&](rt::UnaryOp kind) -> LogicalResult {
    if (failed(requireFloat(op->getOperand(0))))
      return failure();
    return set(Opcode::Unary, {code(kind)});
  };
  auto binary = [&](rt::BinaryOp kind) {
    return set(Opcode::Binary, {code(kind)});
  };
  // The ops with the same attributes share their encoding.
  auto norm = [&](Opcode code, auto o) {
    return set(code, {static_cast<int64_t>(o.getAxis())},
               {o.getEpsilon().convertToDouble()});
  };
  auto attention = [&](Opcode code, auto o) {
    return set(code,
               {static_cast<int64_t>(o.getNumHeads()),
                static_cast<int64_t>(o.getNumKvHeads()), o.getCausal() ? 1 : 0},
               {o.getScale().convertToDouble()});
  };
  auto sliceInts = [&](ArrayRef<int64_t> s, ArrayRef<int64_t> e,
                       ArrayRef<int64_t> st) {
    ints.assign(s.begin(), s.end());
    ints.insert(ints.end(), e.begin(), e.end());
    ints.insert(ints.end(), st.begin(), st.end());
  };
  return llvm::TypeSwitch<Operation *, LogicalResult>(op)
      .Case([&](nn::AddOp) { return binary(rt::BinaryOp::Add); })
      .Case([&](nn::SubOp) { return binary(rt::BinaryOp::Sub); })
      .Case([&](nn::MulOp) { return binary(rt::BinaryOp::Mul); })
      .Case([&](nn::DivOp) { return binary(rt::BinaryOp::Div); })
      .Case([&](nn::PowOp) { return binary(rt::BinaryOp::Pow); })
      .Case([&](nn::MaxOp) { return binary(rt::BinaryOp::Max); })
      .Case([&](nn::MinOp) { return binary(rt::BinaryOp::Min); })
      .Case([&](nn::BitwiseAndOp) { return binary(rt::BinaryOp::BitAnd); })
      .Case([&](nn::BitwiseOrOp) { return binary(rt::BinaryOp::BitOr); })
      .Case([&](nn::BitwiseXorOp) { return binary(rt::BinaryOp::BitXor); })
      .Case([&](nn::EqualOp) {
        return set(Opcode::Compare, {code(rt::CompareOp::Equal)});
      })
      .Case([&](nn::LessOp) {
        return set(Opcode::Compare, {code(rt::CompareOp::Less)});
      })
      .Case([&](nn::GreaterOp) {
        return set(Opcode::Compare, {code(rt::CompareOp::Greater)});
      })
      .Case([&](nn::AndOp) {
        return set(Opcode::Logic, {code(rt::LogicOp::And)});
      })
      .Case(
          [&](nn::OrOp) { return set(Opcode::Logic, {code(rt::LogicOp::Or)}); })
      .Case([&](nn::NotOp) { return set(Opcode::Not); })
      .Case([&](nn::IsNanOp) { return set(Opcode::IsNan); })
      .Case([&](nn::CastOp) { return set(Opcode::Cast); })
      .Case([&](nn::WhereOp) { return set(Opcode::Where); })
      .Case([&](nn::NegOp) { return unaryCode(rt::UnaryOp::Neg); })
      .Case([&](nn::AbsOp) { return unaryCode(rt::UnaryOp::Abs); })
      .Case([&](nn::SqrtOp) { return unaryCode(rt::UnaryOp::Sqrt); })
      .Case(
          [&](nn::ReciprocalOp) { return unaryCode(rt::UnaryOp::Reciprocal); })
      .Case([&](nn::ExpOp) { return unaryCode(rt::UnaryOp::Exp); })
      .Case([&](nn::LogOp) { return unaryCode(rt::UnaryOp::Log); })
      .Case([&](nn::ErfOp) { return unaryCode(rt::UnaryOp::Erf); })
      .Case([&](nn::TanhOp) { return unaryCode(rt::UnaryOp::Tanh); })
      .Case([&](nn::SigmoidOp) { return unaryCode(rt::UnaryOp::Sigmoid); })
      .Case([&](nn::ReluOp) { return unaryCode(rt::UnaryOp::Relu); })
      .Case([&](nn::SinOp) { return unaryCode(rt::UnaryOp::Sin); })
      .Case([&](nn::CosOp) { return unaryCode(rt::UnaryOp::Cos); })
      .Case([&](nn::FloorOp) { return unaryCode(rt::UnaryOp::Floor); })
      .Case([&](nn::CeilOp) { return unaryCode(rt::UnaryOp::Ceil); })
      .Case([&](nn::SignOp) { return unaryCode(rt::UnaryOp::Sign); })
      .Case([&](nn::ReshapeOp) { return set(Opcode::Copy); })
      .Case([&](nn::TransposeOp o) {
        init(Opcode::Transpose);
        ints.assign(o.getPerm().begin(), o.getPerm().end());
        return success();
      })
      .Case([&](nn::BroadcastOp) { return set(Opcode::Broadcast); })
      .Case([&](nn::ConcatOp o) {
        return set(Opcode::Concat, {static_cast<int64_t>(o.getAxis())});
      })
      .Case([&](nn::SliceOp o) {
        init(Opcode::Slice);
        sliceInts(o.getStarts(), o.getEnds(), o.getSteps());
        return success();
      })
      .Case([&](nn::GatherOp o) {
        return set(Opcode::Gather, {static_cast<int64_t>(o.getAxis())});
      })
      .Case([&](nn::BandOp) { return set(Opcode::Band); })
      .Case([&](nn::ScatterElementsOp o) {
        return set(Opcode::ScatterElements,
                   {static_cast<int64_t>(o.getAxis())});
      })
      .Case([&](nn::TopKIndicesOp o) {
        return set(Opcode::TopK, {static_cast<int64_t>(o.getK()),
                                  static_cast<int64_t>(o.getLargest())});
      })
      .Case([&](nn::CumSumOp o) {
        return set(Opcode::CumSum,
                   {static_cast<int64_t>(o.getAxis()), o.getExclusive() ? 1 : 0,
                    o.getReverse() ? 1 : 0});
      })
      .Case([&](nn::TriluOp o) {
        return set(Opcode::Trilu,
                   {o.getUpper() ? 1 : 0, o.getKAttr().getInt()});
      })
      .Case([&](nn::ReduceSumOp o) {
        init(Opcode::Reduce, {code(rt::ReduceOp::Sum)});
        ints.insert(ints.end(), o.getAxes().begin(), o.getAxes().end());
        return success();
      })
      .Case([&](nn::ReduceMeanOp o) {
        init(Opcode::Reduce, {code(rt::ReduceOp::Mean)});
        ints.insert(ints.end(), o.getAxes().begin(), o.getAxes().end());
        return success();
      })
      .Case([&](nn::ReduceMaxOp o) {
        init(Opcode::Reduce, {code(rt::ReduceOp::Max)});
        ints.insert(ints.end(), o.getAxes().begin(), o.getAxes().end());
        return success();
      })
      .Case([&](nn::SoftmaxOp o) {
        return set(Opcode::Softmax, {static_cast<int64_t>(o.getAxis())});
      })
      .Case([&](nn::LogSoftmaxOp o) {
        return set(Opcode::LogSoftmax, {static_cast<int64_t>(o.getAxis())});
      })
      .Case([&](nn::MatmulOp) { return set(Opcode::Matmul); })
      .Case([&](nn::LinearOp o) {
        return set(Opcode::Linear, {o.getTransposeWeight() ? 1 : 0});
      })
      .Case([&](nn::LayerNormOp o) { return norm(Opcode::LayerNorm, o); })
      .Case([&](nn::RMSNormOp o) { return norm(Opcode::RMSNorm, o); })
      .Case([&](nn::AttentionOp o) { return attention(Opcode::Attention, o); })
      .Case([&](nn::RotaryOp o) {
        return set(Opcode::Rotary, {o.getInterleaved() ? 1 : 0,
                                    static_cast<int64_t>(o.getRotaryDim())});
      })
      .Case([&](nn::GeluOp o) {
        return set(Opcode::Gelu, {code(runtimeEnum(o.getApproximate()))});
      })
      .Case([&](nn::SiluOp) { return set(Opcode::Silu); })
      .Case([&](nn::SwigluOp) { return set(Opcode::Swiglu); })
      .Case([&](nn::EmbeddingOp) { return set(Opcode::Embedding); })
      .Case([&](nn::CrossEntropyOp o) {
        return set(Opcode::CrossEntropy, {o.getIgnoreIndexAttr().getInt()});
      })
      // Backward ops.
      .Case([&](nn::BinaryGradOp o) {
        return set(Opcode::BinaryGrad, {code(runtimeEnum(o.getFn()))});
      })
      .Case([&](nn::UnaryGradOp o) {
        return set(Opcode::UnaryGrad, {code(runtimeEnum(o.getFn()))});
      })
      .Case([&](nn::ReduceGradOp o) {
        init(Opcode::ReduceGrad, {code(runtimeEnum(o.getFn()))});
        ints.insert(ints.end(), o.getAxes().begin(), o.getAxes().end());
        return success();
      })
      .Case([&](nn::WhereGradOp) { return set(Opcode::WhereGrad); })
      .Case([&](nn::SumToShapeOp) { return set(Opcode::SumToShape); })
      .Case([&](nn::SliceGradOp o) {
        init(Opcode::SliceGrad);
        sliceInts(o.getStarts(), o.getEnds(), o.getSteps());
        return success();
      })
      .Case([&](nn::GatherGradOp o) {
        return set(Opcode::GatherGrad, {static_cast<int64_t>(o.getAxis())});
      })
      .Case([&](nn::MatmulGradOp) { return set(Opcode::MatmulGrad); })
      .Case([&](nn::LinearGradWeightOp o) {
        return set(Opcode::LinearGradWeight, {o.getTransposeWeight() ? 1 : 0});
      })
      .Case([&](nn::LayerNormGradInputOp o) {
        return norm(Opcode::LayerNormGradInput, o);
      })
      .Case([&](nn::LayerNormGradParamsOp o) {
        return norm(Opcode::LayerNormGradParams, o);
      })
      .Case([&](nn::RMSNormGradInputOp o) {
        return norm(Opcode::RMSNormGradInput, o);
      })
      .Case([&](nn::RMSNormGradScaleOp o) {
        return norm(Opcode::RMSNormGradScale, o);
      })
      .Case([&](nn::AttentionGradOp o) {
        return attention(Opcode::AttentionGrad, o);
      })
      .Case([&](nn::GeluGradOp o) {
        return set(Opcode::GeluGrad, {code(runtimeEnum(o.getApproximate()))});
      })
      .Case([&](nn::SiluGradOp) { return set(Opcode::SiluGrad); })
      .Case([&](nn::SwigluGradOp) { return set(Opcode::SwigluGrad); })
      .Case([&](nn::EmbeddingGradOp o) {
        if (auto pad = o.getPaddingIdx())
          return set(Opcode::EmbeddingGrad, {static_cast<int64_t>(*pad)});
        return set(Opcode::EmbeddingGrad);
      })
      .Case([&](nn::CrossEntropyGradOp o) {
        return set(Opcode::CrossEntropyGrad, {o.getIgnoreIndexAttr().getInt()});
      })
      .Case([&](nn::SoftmaxGradOp o) {
        return set(Opcode::SoftmaxGrad, {static_cast<int64_t>(o.getAxis())});
      })
      .Case([&](nn::LogSoftmaxGradOp o) {
        return set(Opcode::LogSoftmaxGrad, {static_cast<int64_t>(o.getAxis())});
      })
      .Case([&](nn::AccumulateGradOp) { return set(Opcode::Accumulate); })
      .Default([&](Operation *other) {
        return other->emitError()
               << "cannot be lowered to the runtime: no instruction for it";
      });
}

LogicalResult Writer::encodeAll() {
  for (func::FuncOp f : program)
    for (Operation &op : f.getBody().front()) {
      if (isa<nn::ParamOp, nn::ConstantOp, func::ReturnOp>(op))
        continue;
      rt::Instruction inst;
      if (failed(encode(&op, inst)))
        return failure();
      encoded[&op] = std::move(inst);
    }
  return success();
}

LogicalResult Writer::emit() {
  for (func::FuncOp f : program) {
    rt::Function fn;
    fn.name = f.getName().str();
    switch (*nn::autodiffRole(f)) {
    case nn::AutodiffRole::Forward:
      fn.kind = rt::FunctionKind::Forward;
      break;
    case nn::AutodiffRole::Backward:
      fn.kind = rt::FunctionKind::Backward;
      break;
    case nn::AutodiffRole::BackwardInput:
      fn.kind = rt::FunctionKind::BackwardInput;
      break;
    case nn::AutodiffRole::BackwardWeight:
      fn.kind = rt::FunctionKind::BackwardWeight;
      break;
    }
    for (Operation &op : f.getBody().front()) {
      if (isa<nn::ParamOp, nn::ConstantOp, func::ReturnOp>(op) ||
          skipped.count(&op))
        continue;
      rt::Instruction inst = std::move(encoded[&op]);
      const rt::OpcodeInfo &info = contract(inst);
      inst.name = describe(&op);
      for (Value v : op.getOperands()) {
        FailureOr<rt::TensorRef> r = ref(&op, v);
        if (failed(r))
          return failure();
        inst.operands.push_back(*r);
      }
      // Optional operands the op does not have (linear bias, norm bias,
      // attention mask: nn's optional operands are trailing) are explicit
      // Nones up to the instruction's operand count.
      while (inst.operands.size() < info.minOperands)
        inst.operands.emplace_back();
      if (auto it = extraOperand.find(&op); it != extraOperand.end())
        inst.operands.push_back(extraRef(it->second));
      if (auto acc = dyn_cast<nn::AccumulateGradOp>(op)) {
        rt::TensorRef dst = inst.operands[0];
        dst.space = rt::Space::Grad;
        dst.index = paramIndex[acc.getName()];
        dst.offset = 0;
        inst.results.push_back(dst);
      }
      for (Value v : op.getResults()) {
        if (v.use_empty() && (info.flags & rt::OpcodeInfo::kOptionalResults)) {
          inst.results.emplace_back();
          continue;
        }
        FailureOr<rt::TensorRef> r = ref(&op, v);
        if (failed(r))
          return failure();
        inst.results.push_back(*r);
      }
      if (auto it = extraResult.find(&op); it != extraResult.end())
        inst.results.push_back(extraRef(it->second));
      if (accumulating.count(&op))
        inst.flags |= rt::Instruction::kAccumulate;
      fn.body.push_back(std::move(inst));
    }
    // The two gradients of one norm, adjacent, run as one kernel call.
    for (size_t i = 0; i + 1 < fn.body.size(); ++i)
      if (rt::normGradsFuse(fn.body[i], fn.body[i + 1]))
        fn.body[i++].flags |= rt::Instruction::kFusedWithNext;
    emitted[unsigned(*nn::autodiffRole(f))] = int32_t(a.functions.size());
    if (!stageMode)
      a.microbatchProgram.push_back(a.functions.size());
    a.functions.push_back(std::move(fn));
  }
  return success();
}

/// Replays the program over the arena: every operand must still hold the
/// bytes its producer wrote (no other value's write overlapped them since).
/// A plan bug would otherwise train silently wrong, so this always runs.
LogicalResult Writer::checkPlan() {
  struct Write {
    int node;
    uint64_t begin, end;
  };
  std::vector<Write> writes;             // in program order
  llvm::DenseMap<int, size_t> writtenAt; // node -> index in `writes`
  auto span = [&](int n) {
    uint64_t size =
        (std::max<uint64_t>(nodes[n].bytes, 1) + kAlign - 1) / kAlign * kAlign;
    return std::make_pair(nodes[n].offset, nodes[n].offset + size);
  };
  auto write = [&](int n) {
    if (nodes[n].space != rt::Space::Arena)
      return;
    auto [b, e] = span(n);
    writtenAt[n] = writes.size();
    writes.push_back({n, b, e});
  };
  func::FuncOp fwd = program.front();
  for (BlockArgument arg : fwd.getArguments())
    write(node(arg));
  // Seeds are written before the program, or, when a stage's output
  // gradients are handed on (liveRanges), just before its backward runs.
  const bool seedsAtBackward = handedOn();
  if (!seedsAtBackward)
    for (Value v : seedArguments())
      write(node(v));
  for (func::FuncOp f : program) {
    if (seedsAtBackward && f == program[1])
      for (Value v : seedArguments())
        write(node(v));
    // A function's results are read when it returns: a stage's outputs
    // and input gradients in the scratch must last until then.
    for (Operation &op : f.getBody().front()) {
      if (skipped.count(&op))
        continue;
      for (int n : operandNodes(&op)) {
        if (nodes[n].space != rt::Space::Arena)
          continue;
        auto it = writtenAt.find(n);
        if (it == writtenAt.end())
          return op.emitError() << "internal error: the memory plan reads a "
                                   "value before it is written";
        auto [b, e] = span(n);
        for (size_t w = it->second + 1; w < writes.size(); ++w)
          if (writes[w].node != n &&
              nodes[writes[w].node].scratch == nodes[n].scratch &&
              writes[w].begin < e && b < writes[w].end)
            return op.emitError()
                   << "internal error: the memory plan overwrites an operand "
                      "of this op before it is read";
      }
      for (int n : resultNodes(&op))
        write(n);
    }
  }
  return success();
}

LogicalResult Writer::plan() {
  std::string base = opt.function;
  auto lookup = [&](nn::AutodiffRole role) {
    return cast_or_null<func::FuncOp>(
        nn::lookupAutodiffFunction(module, base, role));
  };
  func::FuncOp fwd = lookup(nn::AutodiffRole::Forward);
  if (!fwd)
    return module.emitError()
           << "no forward function of '" << base
           << "': the module was not differentiated (-nn-autodiff)";
  program.push_back(fwd);
  if (opt.splitBackward) {
    program.push_back(lookup(nn::AutodiffRole::BackwardInput));
    program.push_back(lookup(nn::AutodiffRole::BackwardWeight));
  } else {
    program.push_back(lookup(nn::AutodiffRole::Backward));
  }
  if (llvm::is_contained(program, func::FuncOp()))
    return module.emitError()
           << "the backward functions of '" << base << "' are missing";

  if (failed(collectParameters()) || failed(bind()) || failed(encodeAll()))
    return failure();
  keepAttentionLse();
  foldAccumulation();
  liveRanges();
  return assignOffsets();
}

LogicalResult Writer::annotate() {
  if (failed(plan()))
    return failure();
  MLIRContext *ctx = module.getContext();
  nn::NNDialect::ArenaAttrHelper arena(ctx);
  auto offsetOf = [&](int id) -> int64_t {
    const Node &n = nodes[id];
    return n.space == rt::Space::Arena ? int64_t(n.offset) : -1;
  };
  for (func::FuncOp f : program)
    for (Operation &op : f.getBody().front()) {
      if (op.getNumResults() == 0 || isa<nn::ParamOp, nn::ConstantOp>(op) ||
          skipped.count(&op))
        continue;
      SmallVector<int64_t> offsets;
      for (int id : resultNodes(&op))
        offsets.push_back(offsetOf(id));
      arena.setAttr(&op, DenseI64ArrayAttr::get(ctx, offsets));
    }
  nn::NNDialect::ArenaBytesAttrHelper(ctx).setAttr(
      program.front(),
      IntegerAttr::get(IntegerType::get(ctx, 64), int64_t(arenaBytes)));
  return success();
}

LogicalResult Writer::run() {
  a.producer = opt.producer;
  a.sourceModel = opt.sourceModel;
  a.microbatches = opt.microbatches;
  if (failed(plan()))
    return failure();
  a.arenaBytes = arenaBytes;
  func::FuncOp fwd = program.front();

  // Inputs, loss, logits.
  for (BlockArgument arg : fwd.getArguments()) {
    auto name = fwd.getArgAttrOfType<StringAttr>(
        arg.getArgNumber(), nn::NNDialect::NameAttrHelper::getNameStr());
    auto type = cast<RankedTensorType>(arg.getType());
    if (!type.getElementType().isInteger(64) || type.getRank() != 2)
      return fwd.emitError()
             << "input '" << (name ? name.str() : "?") << "' is " << type
             << "; training takes [batch, seq] i64 token ids "
                "(fold the other inputs at import with "
                "--fold-inputs)";
    rt::Input in;
    in.name = name ? name.str() : "input" + std::to_string(arg.getArgNumber());
    in.role =
        in.name == "targets" ? rt::InputRole::Targets : rt::InputRole::Tokens;
    FailureOr<rt::TensorRef> r = ref(fwd, arg);
    if (failed(r))
      return failure();
    in.ref = *r;
    if (failed(checkMicrobatchInput(fwd, in)))
      return failure();
    a.batch = type.getDimSize(0);
    a.seq = type.getDimSize(1);
    a.inputs.push_back(std::move(in));
  }
  if (a.inputs.size() != 2 || a.inputs[0].role == a.inputs[1].role)
    return fwd.emitError() << "training needs exactly one token-id input and "
                              "the targets (-nn-append-loss); the forward "
                              "takes "
                           << fwd.getNumArguments() << " inputs";
  Value loss = fwd.getBody().front().getTerminator()->getOperand(0);
  FailureOr<rt::TensorRef> lossRef = ref(fwd, loss);
  if (failed(lossRef))
    return failure();
  a.loss = *lossRef;
  nn::CrossEntropyOp ce;
  fwd.walk([&](nn::CrossEntropyOp op) { ce = op; });
  if (ce) {
    FailureOr<rt::TensorRef> l = ref(fwd, ce.getLogits());
    if (failed(l))
      return failure();
    a.logits = *l;
    a.vocab = a.logits.shape.empty() ? 0 : a.logits.shape.back();
    a.ignoreIndex = ce.getIgnoreIndexAttr().getInt();
  }
  FailureOr<rt::TensorRef> dl = ref(program[1], dlossArgument());
  if (failed(dl))
    return failure();
  a.dloss = *dl;

  if (failed(emit()) || failed(checkPlan()))
    return failure();
  // What the runtime allocates and checks at load (one definition).
  a.peakBytes = rt::planRankMemory(a, 0).total();
  return success();
}
LogicalResult Writer::runStage(rt::Stage &st) {
  stageMode = true;
  if (failed(plan()))
    return failure();
  st.arenaBytes = arenaBytes;
  st.scratchBytes = scratchBytes;
  func::FuncOp fwd = program.front(), back = program[1];
  auto nameAttr = nn::NNDialect::NameAttrHelper::getNameStr();
  SmallVector<Value> dargs = inputGradients();
  size_t nextGrad = 0;
  for (BlockArgument arg : fwd.getArguments()) {
    FailureOr<rt::TensorRef> r = ref(fwd, arg);
    if (failed(r))
      return failure();
    if (auto name =
            fwd.getArgAttrOfType<StringAttr>(arg.getArgNumber(), nameAttr)) {
      rt::Input in;
      in.name = name.str();
      in.role =
          in.name == "targets" ? rt::InputRole::Targets : rt::InputRole::Tokens;
      in.ref = *r;
      if (failed(checkMicrobatchInput(fwd, in)))
        return failure();
      st.inputs.push_back(std::move(in));
      continue;
    }
    st.in.push_back(*r);
    rt::TensorRef g;
    if (r->dtype == rt::DType::F32) {
      if (nextGrad >= dargs.size())
        return fwd.emitError() << "internal error: no gradient for input "
                               << arg.getArgNumber();
      FailureOr<rt::TensorRef> d = ref(back, dargs[nextGrad++]);
      if (failed(d))
        return failure();
      g = *d;
    }
    st.din.push_back(g);
  }
  SmallVector<Value> outputs = forwardOutputs(), seeds = seedArguments();
  nn::CrossEntropyOp ce;
  fwd.walk([&](nn::CrossEntropyOp op) { ce = op; });
  if (ce) {
    // The stage that ends the model: its one output is the loss.
    FailureOr<rt::TensorRef> loss = ref(fwd, outputs.front());
    FailureOr<rt::TensorRef> dloss = ref(back, seeds.front());
    FailureOr<rt::TensorRef> logits = ref(fwd, ce.getLogits());
    if (outputs.size() != 1 || failed(loss) || failed(dloss) || failed(logits))
      return fwd.emitError() << "the last stage must return the loss alone";
    st.loss = *loss;
    st.dloss = *dloss;
    st.logits = *logits;
  } else {
    size_t nextSeed = 0;
    for (Value v : outputs) {
      FailureOr<rt::TensorRef> r = ref(fwd, v);
      if (failed(r))
        return failure();
      st.out.push_back(*r);
      rt::TensorRef g;
      if (r->dtype == rt::DType::F32) {
        FailureOr<rt::TensorRef> d = ref(back, seeds[nextSeed++]);
        if (failed(d))
          return failure();
        g = *d;
      }
      st.dout.push_back(g);
    }
  }
  std::set<uint32_t> params;
  for (func::FuncOp f : program)
    f.walk([&](nn::ParamOp p) { params.insert(paramIndex[p.getName()]); });
  st.params.assign(params.begin(), params.end());
  if (failed(emit()) || failed(checkPlan()))
    return failure();
  auto index = [&](nn::AutodiffRole role) {
    auto it = emitted.find(unsigned(role));
    return it == emitted.end() ? -1 : it->second;
  };
  st.forward = index(nn::AutodiffRole::Forward);
  st.backward = index(nn::AutodiffRole::Backward);
  st.backwardInput = index(nn::AutodiffRole::BackwardInput);
  st.backwardWeight = index(nn::AutodiffRole::BackwardWeight);
  return success();
}

} // namespace

LogicalResult mlir::weipipe::buildStage(
    ModuleOp module, const ArtifactOptions &options, rt::Artifact &out,
    llvm::DenseMap<Attribute, uint32_t> &constants, rt::Stage &stage) {
  return Writer(module, options, out, &constants).runStage(stage);
}

LogicalResult mlir::weipipe::buildArtifact(ModuleOp module,
                                           const ArtifactOptions &options,
                                           rt::Artifact &out) {
  out = rt::Artifact();
  return Writer(module, options, out).run();
}

LogicalResult
mlir::weipipe::annotateMemoryPlan(ModuleOp module,
                                  const ArtifactOptions &options) {
  rt::Artifact scratch;
  return Writer(module, options, scratch).annotate();
}
