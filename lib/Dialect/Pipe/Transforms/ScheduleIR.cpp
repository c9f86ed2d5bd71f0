//===- ScheduleIR.cpp - schedules as pipe.program ops and back -----------===//
//
// Part of weipipe. writeSchedule prints a schedule (Schedule.h) as one
// pipe.program per rank; readSchedule reads the programs back. The IR is
// where a schedule lives between the generator, the verifier pass and the
// artifact writer, so the two are exact inverses on everything the verifier
// and the lowering read (see Passes.h for the mapping).
//
//===----------------------------------------------------------------------===//

#include "weipipe/Dialect/Pipe/PipeOps.h"
#include "weipipe/Dialect/Pipe/Transforms/Passes.h"
#include "weipipe/Schedule/Schedule.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::weipipe;
namespace sched = ::weipipe::schedule;

namespace {

IntegerAttr si64Attr(Builder &b, int64_t value) {
  return b.getIntegerAttr(b.getIntegerType(64, /*isSigned=*/true), value);
}

/// The layers chunks of `model` in layer order: chunk c of a schedule.
SmallVector<pipe::ChunkOp> layersChunks(pipe::ModelOp model) {
  SmallVector<pipe::ChunkOp> chunks;
  for (auto chunk : model.getBodyRegion().front().getOps<pipe::ChunkOp>())
    if (chunk.getKind() == pipe::ChunkKind::layers)
      chunks.push_back(chunk);
  llvm::stable_sort(chunks, [](pipe::ChunkOp a, pipe::ChunkOp b) {
    return *a.getFirstLayer() < *b.getFirstLayer();
  });
  return chunks;
}

pipe::SlotKind slotKind(sched::SlotKind kind) {
  switch (kind) {
  case sched::SlotKind::Weights:
    return pipe::SlotKind::weights;
  case sched::SlotKind::Grads:
    return pipe::SlotKind::grads;
  case sched::SlotKind::Activations:
    return pipe::SlotKind::activations;
  }
  return pipe::SlotKind::weights;
}

sched::SlotKind slotKind(pipe::SlotKind kind) {
  switch (kind) {
  case pipe::SlotKind::weights:
    return sched::SlotKind::Weights;
  case pipe::SlotKind::grads:
    return sched::SlotKind::Grads;
  case pipe::SlotKind::activations:
    return sched::SlotKind::Activations;
  }
  return sched::SlotKind::Weights;
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

/// Writes the program of one rank into `program`'s body.
class ProgramWriter {
public:
  ProgramWriter(pipe::ModelOp model, ArrayRef<pipe::ChunkOp> chunks,
                const sched::Schedule &s, int rank)
      : model(model), chunks(chunks), s(s), rank(rank),
        prog(s.programs[size_t(rank)]) {}

  LogicalResult write(pipe::ProgramOp program);

private:
  InFlightDiagnostic fail(size_t k, const Twine &why) {
    return model.emitError()
           << "cannot write the " << s.name << " schedule: rank " << rank
           << ", step " << k << ": " << why;
  }
  FailureOr<FlatSymbolRefAttr> chunk(size_t k, int c);
  FailureOr<Value> slot(size_t k, int x);
  /// `x`, or a null value for -1 (an optional activation slot).
  FailureOr<Value> optionalSlot(size_t k, int x) {
    if (x < 0)
      return Value();
    return slot(k, x);
  }
  FailureOr<SmallVector<Value>> slotList(size_t k, ArrayRef<int> xs);
  LogicalResult writeAction(OpBuilder &b, size_t k, const sched::Action &a,
                            IntegerAttr turn);

  pipe::ModelOp model;
  ArrayRef<pipe::ChunkOp> chunks;
  const sched::Schedule &s;
  int rank;
  const sched::RankProgram &prog;
  SmallVector<Value> slots;
  DenseMap<int, Value> tokens;
};

FailureOr<FlatSymbolRefAttr> ProgramWriter::chunk(size_t k, int c) {
  if (c < 0 || size_t(c) >= chunks.size()) {
    fail(k, "chunk " + Twine(c) + " is not a layers chunk of @" +
                model.getSymName());
    return failure();
  }
  pipe::ChunkOp op = chunks[size_t(c)];
  return FlatSymbolRefAttr::get(op.getSymNameAttr());
}

FailureOr<Value> ProgramWriter::slot(size_t k, int x) {
  if (x < 0 || size_t(x) >= slots.size()) {
    fail(k, "slot " + Twine(x) + " is not declared");
    return failure();
  }
  return slots[size_t(x)];
}

FailureOr<SmallVector<Value>> ProgramWriter::slotList(size_t k,
                                                      ArrayRef<int> xs) {
  SmallVector<Value> values;
  for (int x : xs) {
    FailureOr<Value> v = slot(k, x);
    if (failed(v))
      return failure();
    values.push_back(*v);
  }
  return values;
}

LogicalResult ProgramWriter::writeAction(OpBuilder &b, size_t k,
                                         const sched::Action &a,
                                         IntegerAttr turn) {
  Location loc = model.getLoc();
  auto mb = [&] { return si64Attr(b, a.microbatch); };
  switch (a.op) {
  case sched::Op::LoadMaster:
  case sched::Op::Zero: {
    FailureOr<FlatSymbolRefAttr> c = chunk(k, a.chunk);
    if (a.slots.size() != 1)
      return fail(k, "expects one slot");
    FailureOr<Value> x = slot(k, a.slots[0]);
    if (failed(c) || failed(x))
      return failure();
    if (a.op == sched::Op::LoadMaster)
      pipe::LoadMasterOp::create(b, loc, *c, *x, turn);
    else
      pipe::ZeroOp::create(b, loc, *c, *x, turn);
    return success();
  }
  case sched::Op::Swap:
  case sched::Op::AddInto: {
    if (a.slots.size() != 2)
      return fail(k, "expects two slots");
    FailureOr<Value> x = slot(k, a.slots[0]), y = slot(k, a.slots[1]);
    if (failed(x) || failed(y))
      return failure();
    if (a.op == sched::Op::Swap) {
      pipe::SwapOp::create(b, loc, *x, *y, turn);
      return success();
    }
    FailureOr<FlatSymbolRefAttr> c = chunk(k, a.chunk);
    if (failed(c))
      return failure();
    // slots[0] is the accumulator, slots[1] the partial sum added in.
    pipe::AddIntoOp::create(b, loc, *c, *y, *x, turn);
    return success();
  }
  case sched::Op::Forward:
  case sched::Op::BackwardInput:
  case sched::Op::Backward: {
    FailureOr<FlatSymbolRefAttr> c = chunk(k, a.chunk);
    FailureOr<Value> w = slot(k, a.weights), in = optionalSlot(k, a.in),
                     out = optionalSlot(k, a.out);
    if (failed(c) || failed(w) || failed(in) || failed(out))
      return failure();
    if (a.op == sched::Op::Forward) {
      pipe::ForwardOp::create(b, loc, *c, *w, mb(), *in, *out, turn);
    } else if (a.op == sched::Op::BackwardInput) {
      pipe::BackwardInputOp::create(b, loc, *c, *w, mb(), *in, *out, turn);
    } else {
      FailureOr<Value> g = slot(k, a.grads);
      if (failed(g))
        return failure();
      pipe::BackwardOp::create(b, loc, *c, *w, mb(), *g, *in, *out, turn);
    }
    return success();
  }
  case sched::Op::BackwardWeight: {
    FailureOr<FlatSymbolRefAttr> c = chunk(k, a.chunk);
    FailureOr<Value> g = slot(k, a.grads);
    if (failed(c) || failed(g))
      return failure();
    pipe::BackwardWeightOp::create(b, loc, *c, mb(), *g, turn);
    return success();
  }
  case sched::Op::OptimizerStep: {
    FailureOr<FlatSymbolRefAttr> c = chunk(k, a.chunk);
    FailureOr<Value> g = slot(k, a.grads);
    if (failed(c) || failed(g))
      return failure();
    pipe::OptimizerStepOp::create(b, loc, *c, *g, turn);
    return success();
  }
  case sched::Op::Send:
  case sched::Op::Recv: {
    FailureOr<SmallVector<Value>> xs = slotList(k, a.slots);
    if (failed(xs))
      return failure();
    if (tokens.count(a.token))
      return fail(k, "token " + Twine(a.token) + " is yielded twice");
    // Send and recv say their turn always: it is part of their syntax.
    Value token;
    if (a.op == sched::Op::Send)
      token = pipe::SendOp::create(b, loc, ValueRange(*xs), int64_t(a.peer),
                                   int64_t(a.turn));
    else
      token = pipe::RecvOp::create(b, loc, ValueRange(*xs), int64_t(a.peer),
                                   int64_t(a.turn));
    tokens[a.token] = token;
    return success();
  }
  case sched::Op::Wait: {
    SmallVector<Value> waited;
    for (int t : a.tokens) {
      Value token = tokens.lookup(t);
      if (!token)
        return fail(k, "token " + Twine(t) + " is not yielded before");
      waited.push_back(token);
    }
    pipe::WaitOp::create(b, loc, waited, turn);
    return success();
  }
  }
  return fail(k, "unknown action");
}

LogicalResult ProgramWriter::write(pipe::ProgramOp program) {
  OpBuilder b = OpBuilder::atBlockEnd(&program.getBodyRegion().front());
  for (const sched::Slot &sl : prog.slots)
    slots.push_back(
        pipe::SlotOp::create(b, model.getLoc(), slotKind(sl.kind), sl.label));
  // A step says its turn only where it starts a new one: the others are in
  // the turn of the step before them (as readSchedule reads them).
  int64_t turn = 0;
  for (auto [k, a] : llvm::enumerate(prog.actions)) {
    IntegerAttr turnAttr;
    if (a.turn != turn)
      turnAttr = si64Attr(b, a.turn);
    if (failed(writeAction(b, k, a, turnAttr)))
      return failure();
    turn = a.turn;
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Reading
//===----------------------------------------------------------------------===//

/// Reads the steps of one program into a RankProgram.
class ProgramReader {
public:
  ProgramReader(pipe::ModelOp model, const DenseMap<StringAttr, int> &chunks,
                sched::RankProgram &prog, SmallVectorImpl<Operation *> &stepOps)
      : model(model), chunks(chunks), prog(prog), stepOps(stepOps) {}

  LogicalResult read(pipe::ProgramOp program);

private:
  FailureOr<int> chunk(Operation *op, FlatSymbolRefAttr name);
  /// The index of slot `v` (-1 for a null optional slot).
  int slot(Value v) { return v ? slots.lookup(v) : -1; }
  LogicalResult readStep(Operation *op, sched::Action &a);

  pipe::ModelOp model;
  const DenseMap<StringAttr, int> &chunks;
  sched::RankProgram &prog;
  SmallVectorImpl<Operation *> &stepOps;
  DenseMap<Value, int> slots, tokens;
};

FailureOr<int> ProgramReader::chunk(Operation *op, FlatSymbolRefAttr name) {
  auto it = chunks.find(name.getAttr());
  if (it != chunks.end())
    return it->second;
  auto other = SymbolTable::lookupSymbolIn(model, name.getAttr());
  if (auto c = dyn_cast_or_null<pipe::ChunkOp>(other)) {
    InFlightDiagnostic diag =
        op->emitError() << "names the " << stringifyChunkKind(c.getKind())
                        << " chunk " << name
                        << ", but a schedule places layers chunks only (the "
                           "runtime runs the prologue and the epilogue next "
                           "to the first and the last layers chunk)";
    diag.attachNote(c.getLoc()) << "chunk " << name;
    return failure();
  }
  op->emitError() << name << " does not name a chunk of @"
                  << model.getSymName();
  return failure();
}

LogicalResult ProgramReader::readStep(Operation *op, sched::Action &a) {
  auto setChunk = [&](FlatSymbolRefAttr name) {
    FailureOr<int> c = chunk(op, name);
    if (failed(c))
      return failure();
    a.chunk = *c;
    return success();
  };
  auto token = [&](Value v) {
    a.token = int(tokens.size());
    tokens[v] = a.token;
  };
  return TypeSwitch<Operation *, LogicalResult>(op)
      .Case([&](pipe::LoadMasterOp o) {
        a.op = sched::Op::LoadMaster;
        a.slots = {slot(o.getSlot())};
        return setChunk(o.getChunkAttr());
      })
      .Case([&](pipe::ZeroOp o) -> LogicalResult {
        a.op = sched::Op::Zero;
        a.slots = {slot(o.getSlot())};
        if (!o.getChunkAttr())
          return o.emitError() << "needs a chunk in a schedule (pipe.zero "
                                  "@c %D): it makes %D the empty "
                                  "accumulator of that chunk";
        return setChunk(o.getChunkAttr());
      })
      .Case([&](pipe::SwapOp o) {
        a.op = sched::Op::Swap;
        a.slots = {slot(o.getLhs()), slot(o.getRhs())};
        return success();
      })
      .Case([&](pipe::AddIntoOp o) {
        a.op = sched::Op::AddInto;
        a.slots = {slot(o.getAccumulator()), slot(o.getSource())};
        return setChunk(o.getChunkAttr());
      })
      .Case([&](pipe::ForwardOp o) {
        a.op = sched::Op::Forward;
        a.microbatch = int(o.getMicrobatch());
        a.weights = slot(o.getWeights());
        a.in = slot(o.getIn());
        a.out = slot(o.getOut());
        return setChunk(o.getChunkAttr());
      })
      .Case([&](pipe::BackwardInputOp o) {
        a.op = sched::Op::BackwardInput;
        a.microbatch = int(o.getMicrobatch());
        a.weights = slot(o.getWeights());
        a.in = slot(o.getIn());
        a.out = slot(o.getOut());
        return setChunk(o.getChunkAttr());
      })
      .Case([&](pipe::BackwardWeightOp o) {
        a.op = sched::Op::BackwardWeight;
        a.microbatch = int(o.getMicrobatch());
        a.grads = slot(o.getAccumulate());
        return setChunk(o.getChunkAttr());
      })
      .Case([&](pipe::BackwardOp o) {
        a.op = sched::Op::Backward;
        a.microbatch = int(o.getMicrobatch());
        a.weights = slot(o.getWeights());
        a.grads = slot(o.getAccumulate());
        a.in = slot(o.getIn());
        a.out = slot(o.getOut());
        return setChunk(o.getChunkAttr());
      })
      .Case([&](pipe::OptimizerStepOp o) {
        a.op = sched::Op::OptimizerStep;
        a.grads = slot(o.getGrads());
        return setChunk(o.getChunkAttr());
      })
      .Case([&](pipe::SendOp o) {
        a.op = sched::Op::Send;
        a.peer = int(o.getPeer());
        for (Value v : o.getSlots())
          a.slots.push_back(slot(v));
        token(o.getToken());
        return success();
      })
      .Case([&](pipe::RecvOp o) {
        a.op = sched::Op::Recv;
        a.peer = int(o.getPeer());
        for (Value v : o.getSlots())
          a.slots.push_back(slot(v));
        token(o.getToken());
        return success();
      })
      .Case([&](pipe::WaitOp o) {
        a.op = sched::Op::Wait;
        for (Value v : o.getTokens())
          a.tokens.push_back(tokens.lookup(v));
        return success();
      })
      .Case([&](pipe::LossOp o) -> LogicalResult {
        return o.emitError()
               << "has no place in a schedule: the runtime computes the "
                  "loss with the epilogue, next to the last chunk's forward";
      })
      .Default([&](Operation *o) -> LogicalResult {
        return o->emitError() << "is not a step of a schedule";
      });
}

LogicalResult ProgramReader::read(pipe::ProgramOp program) {
  int turn = 0;
  for (Operation &op : program.getBodyRegion().front()) {
    if (auto s = dyn_cast<pipe::SlotOp>(op)) {
      slots[s.getResult()] = int(prog.slots.size());
      prog.slots.push_back(
          {slotKind(cast<pipe::SlotType>(s.getType()).getKind()),
           s.getLabel().str()});
      continue;
    }
    sched::Action a;
    if (failed(readStep(&op, a)))
      return failure();
    // Send and recv always say their turn; other steps may.
    if (auto attr = op.getAttrOfType<IntegerAttr>("turn"))
      turn = int(attr.getInt());
    a.turn = turn;
    prog.actions.push_back(std::move(a));
    stepOps.push_back(&op);
  }
  return success();
}

/// Checks that `program` agrees with `first` on an attribute of the
/// schedule as a whole.
template <typename T>
LogicalResult agree(pipe::ProgramOp program, pipe::ProgramOp first,
                    StringRef what, const T &here, const T &there) {
  if (here == there)
    return success();
  InFlightDiagnostic diag = program.emitError()
                            << "disagrees with @" << first.getSymName()
                            << " on the schedule's " << what
                            << "; the programs of one schedule share it";
  diag.attachNote(first.getLoc()) << "@" << first.getSymName();
  return diag;
}

} // namespace

LogicalResult mlir::weipipe::writeSchedule(OpBuilder &b, pipe::ModelOp model,
                                           const sched::Schedule &s) {
  SmallVector<pipe::ChunkOp> chunks = layersChunks(model);
  if (int64_t(chunks.size()) != s.chunks)
    return model.emitError()
           << "cannot write the " << s.name << " schedule: it places "
           << s.chunks << " chunks, @" << model.getSymName() << " has "
           << chunks.size() << " layers chunks";
  if (int64_t(s.programs.size()) != s.ranks ||
      int64_t(s.owner.size()) != s.chunks)
    return model.emitError()
           << "cannot write the " << s.name << " schedule: it has "
           << s.programs.size() << " programs for " << s.ranks << " ranks and "
           << s.owner.size() << " owners for " << s.chunks << " chunks";
  Operation *symbolTable = model->getParentOp();
  SmallVector<int64_t> owners(s.owner.begin(), s.owner.end());
  for (int r = 0; r < s.ranks; ++r) {
    std::string name = "rank" + std::to_string(r);
    if (SymbolTable::lookupSymbolIn(symbolTable, name))
      name = (model.getSymName() + "_" + name).str();
    if (Operation *taken = SymbolTable::lookupSymbolIn(symbolTable, name)) {
      InFlightDiagnostic diag = model.emitError()
                                << "cannot write the program of rank " << r
                                << ": the name @" << name << " is taken";
      diag.attachNote(taken->getLoc()) << "@" << name;
      return diag;
    }
    auto program = pipe::ProgramOp::create(
        b, model.getLoc(), name, model.getSymName(), r, s.ranks, s.name);
    program.setMicrobatchesAttr(si64Attr(b, s.microbatches));
    program.setOwners(owners);
    if (s.nodeSize != 1)
      program.setNodeSizeAttr(si64Attr(b, s.nodeSize));
    b.setInsertionPointAfter(program);
    if (failed(ProgramWriter(model, chunks, s, r).write(program)))
      return failure();
  }
  return success();
}

/// readSchedule, into `s`.
static LogicalResult
readScheduleInto(ModuleOp module, pipe::ModelOp model,
                 SmallVectorImpl<SmallVector<Operation *>> *steps,
                 sched::Schedule &s) {
  SmallVector<pipe::ChunkOp> chunkOps = layersChunks(model);
  DenseMap<StringAttr, int> chunks;
  for (auto [c, chunk] : llvm::enumerate(chunkOps))
    chunks[chunk.getSymNameAttr()] = int(c);

  SmallVector<pipe::ProgramOp> programs;
  for (auto program : module.getBody()->getOps<pipe::ProgramOp>())
    if (program.getModel() == model.getSymName())
      programs.push_back(program);
  if (programs.empty())
    return model.emitError() << "no pipe.program runs @" << model.getSymName();

  // The schedule as a whole: every program says the same.
  pipe::ProgramOp first = programs.front();
  s.name = first.getSchedule().str();
  s.ranks = int(first.getRanks());
  s.chunks = int(chunkOps.size());
  std::optional<int64_t> microbatches = first.getMicrobatches();
  std::optional<ArrayRef<int64_t>> owners = first.getOwners();
  std::optional<int64_t> nodeSize = first.getNodeSize();
  for (pipe::ProgramOp program : programs) {
    if (!program.getMicrobatches())
      return program.emitError()
             << "says no `microbatches`: a schedule's programs say how many "
                "micro-batches one iteration runs";
    if (!program.getOwners())
      return program.emitError()
             << "says no `owners`: a schedule's programs say which rank "
                "steps each layers chunk of @"
             << model.getSymName();
    if (failed(agree(program, first, "number of ranks", program.getRanks(),
                     first.getRanks())) ||
        failed(agree(program, first, "name", program.getSchedule(),
                     first.getSchedule())) ||
        failed(agree(program, first, "micro-batches", program.getMicrobatches(),
                     microbatches)) ||
        failed(
            agree(program, first, "owners", *program.getOwners(), *owners)) ||
        failed(agree(program, first, "node size", program.getNodeSize(),
                     nodeSize)))
      return failure();
  }
  s.microbatches = int(*microbatches);
  s.nodeSize = int(nodeSize.value_or(1));
  if (owners->size() != chunkOps.size())
    return first.emitError()
           << "lists " << owners->size() << " owners, but @"
           << model.getSymName() << " has " << chunkOps.size()
           << " layers chunks (one owner per layers chunk, in layer order)";
  s.owner.assign(owners->begin(), owners->end());

  // One program per rank (a map: `ranks` may be far more than there are
  // programs).
  DenseMap<int64_t, pipe::ProgramOp> byRank;
  for (pipe::ProgramOp program : programs) {
    auto [it, inserted] = byRank.try_emplace(program.getRank(), program);
    if (!inserted) {
      InFlightDiagnostic diag = program.emitError()
                                << "is a second program for rank "
                                << program.getRank() << " of @"
                                << model.getSymName();
      diag.attachNote(it->second.getLoc())
          << "the first, @" << it->second.getSymName();
      return diag;
    }
  }
  for (int r = 0; r < s.ranks; ++r)
    if (!byRank.count(r))
      return first.emitError() << "the " << s.name << " schedule of @"
                               << model.getSymName() << " runs on " << s.ranks
                               << " ranks, but no program is for rank " << r;

  s.programs.resize(size_t(s.ranks));
  SmallVector<SmallVector<Operation *>> stepOps(size_t(s.ranks));
  for (int r = 0; r < s.ranks; ++r)
    if (failed(ProgramReader(model, chunks, s.programs[r], stepOps[r])
                   .read(byRank.lookup(r))))
      return failure();
  if (steps)
    *steps = std::move(stepOps);
  return success();
}

FailureOr<sched::Schedule>
mlir::weipipe::readSchedule(ModuleOp module, pipe::ModelOp model,
                            SmallVectorImpl<SmallVector<Operation *>> *steps) {
  sched::Schedule s;
  if (failed(readScheduleInto(module, model, steps, s)))
    return failure();
  return s;
}
