//===- PipeOps.cpp - pipe dialect ops -------------------------------------===//
//
// Part of weipipe. Verifiers check what one op and its parents can show: a
// model's chunks cover its layers exactly once, chunk layer ranges and yields
// are well formed, ranks, peers and owners are in range, micro-batches and
// turns are not negative, transfers carry distinct slots, and chunk symbols
// resolve in the program's model. Slot kinds by role are ODS type
// constraints.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Dialect/Pipe/PipeOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/FunctionImplementation.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringMap.h"

using namespace mlir;
using namespace mlir::weipipe::pipe;

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

namespace {
IntegerAttr si64Attr(Builder &b, int64_t value) {
  return b.getIntegerAttr(b.getIntegerType(64, /*isSigned=*/true), value);
}

/// Attaches "chunk @c covers layers [a, b)" (or "prologue chunk @c") at the
/// chunk's location.
void noteChunk(InFlightDiagnostic &diag, ChunkOp chunk) {
  Diagnostic &note = diag.attachNote(chunk.getLoc());
  if (chunk.getKind() == ChunkKind::layers)
    note << "chunk @" << chunk.getSymName() << " covers layers ["
         << *chunk.getFirstLayer() << ", " << *chunk.getEndLayer() << ")";
  else
    note << stringifyChunkKind(chunk.getKind()) << " chunk @"
         << chunk.getSymName();
}

LogicalResult verifyNonNegative(Operation *op, int64_t value, StringRef what) {
  if (value < 0)
    return op->emitOpError() << what << " " << value << " is negative";
  return success();
}

/// Checks a step's optional turn.
LogicalResult verifyTurn(Operation *op, std::optional<int64_t> turn) {
  if (turn)
    return verifyNonNegative(op, *turn, "turn");
  return success();
}

/// Checks a compute step's micro-batch and turn.
LogicalResult verifyComputeStep(Operation *op, int64_t microbatch,
                                std::optional<int64_t> turn) {
  if (failed(verifyNonNegative(op, microbatch, "microbatch")))
    return failure();
  return verifyTurn(op, turn);
}

/// Checks that the activation slots a step reads and writes differ.
LogicalResult verifyInOut(Operation *op, Value in, Value out) {
  if (in && in == out)
    return op->emitOpError() << "expects different slots for in and out";
  return success();
}

/// Checks that `chunk` names a pipe.chunk of the model of `op`'s program. If
/// the program's model does not resolve, the program reports that.
LogicalResult verifyChunkUse(Operation *op, FlatSymbolRefAttr chunk,
                             SymbolTableCollection &symbolTable) {
  if (!chunk)
    return success();
  auto program = op->getParentOfType<ProgramOp>();
  if (!program)
    return success();
  ModelOp model = program.lookupModel(symbolTable);
  if (!model)
    return success();
  if (!program.lookupChunk(symbolTable, chunk))
    return op->emitOpError() << chunk << " does not name a pipe.chunk of model "
                             << program.getModelAttr();
  return success();
}

/// Checks the slots and peer of a send or recv.
LogicalResult verifyTransfer(Operation *op, OperandRange slots, int64_t peer,
                             int64_t turn) {
  if (slots.empty())
    return op->emitOpError() << "expects at least one slot";
  for (auto [i, slot] : llvm::enumerate(slots)) {
    for (unsigned j = 0; j < i; ++j) {
      if (slots[j] == slot)
        return op->emitOpError()
               << "operands #" << j << " and #" << i << " are the same slot";
    }
  }
  if (failed(verifyNonNegative(op, turn, "turn")))
    return failure();
  auto program = op->getParentOfType<ProgramOp>();
  if (!program)
    return success();
  int64_t ranks = program.getRanks();
  if (peer < 0 || peer >= ranks)
    return op->emitOpError()
           << "peer " << peer << " is out of range [0, " << ranks << ")";
  if (peer == program.getRank())
    return op->emitOpError() << "peer " << peer << " is the program's own rank";
  return success();
}
} // namespace

//===----------------------------------------------------------------------===//
// ModelOp
//===----------------------------------------------------------------------===//

void ModelOp::build(OpBuilder &builder, OperationState &state, StringRef name,
                    int64_t numLayers) {
  build(builder, state, builder.getStringAttr(name),
        si64Attr(builder, numLayers));
  state.regions.front()->emplaceBlock();
}

LogicalResult ModelOp::verify() {
  if (getNumLayers() < 1)
    return emitOpError() << "expects at least one layer, got "
                         << getNumLayers();
  return success();
}

LogicalResult ModelOp::verifyRegions() {
  // The chunks are verified by now: every layers chunk has a non-empty range
  // that starts at 0 or later.
  ChunkOp prologue, epilogue;
  SmallVector<ChunkOp> layers;
  for (auto chunk : getBody()->getOps<ChunkOp>()) {
    ChunkOp *single = nullptr;
    switch (chunk.getKind()) {
    case ChunkKind::layers:
      layers.push_back(chunk);
      continue;
    case ChunkKind::prologue:
      single = &prologue;
      break;
    case ChunkKind::epilogue:
      single = &epilogue;
      break;
    }
    if (*single) {
      InFlightDiagnostic diag =
          emitOpError() << "has more than one "
                        << stringifyChunkKind(chunk.getKind()) << " chunk";
      noteChunk(diag, *single);
      noteChunk(diag, chunk);
      return diag;
    }
    *single = chunk;
  }

  // Walk the layer ranges in order of their first layer: each must start
  // where the layers covered so far end.
  llvm::stable_sort(layers, [](ChunkOp a, ChunkOp b) {
    return *a.getFirstLayer() < *b.getFirstLayer();
  });
  int64_t numLayers = getNumLayers();
  int64_t covered = 0; // layers [0, covered) are covered
  ChunkOp last;        // the chunk that ends at `covered`
  for (ChunkOp chunk : layers) {
    int64_t first = *chunk.getFirstLayer(), end = *chunk.getEndLayer();
    if (first > covered) {
      InFlightDiagnostic diag = emitOpError()
                                << "layers [" << covered << ", " << first
                                << ") are not covered by any chunk";
      noteChunk(diag, chunk);
      return diag;
    }
    if (first < covered) {
      InFlightDiagnostic diag =
          emitOpError() << "chunks @" << last.getSymName() << " and @"
                        << chunk.getSymName() << " overlap on layers [" << first
                        << ", " << std::min(covered, end) << ")";
      noteChunk(diag, last);
      noteChunk(diag, chunk);
      return diag;
    }
    if (end > numLayers) {
      InFlightDiagnostic diag =
          emitOpError() << "layers [" << numLayers << ", " << end
                        << ") are past the model's " << numLayers << " layers";
      noteChunk(diag, chunk);
      return diag;
    }
    covered = end;
    last = chunk;
  }
  if (covered < numLayers) {
    InFlightDiagnostic diag = emitOpError()
                              << "layers [" << covered << ", " << numLayers
                              << ") are not covered by any chunk";
    if (last)
      noteChunk(diag, last);
    return diag;
  }
  return success();
}

//===----------------------------------------------------------------------===//
// ChunkOp
//===----------------------------------------------------------------------===//

void ChunkOp::build(OpBuilder &builder, OperationState &state, StringRef name,
                    ChunkKind kind, FunctionType type,
                    std::optional<int64_t> firstLayer,
                    std::optional<int64_t> numLayers) {
  state.addAttribute(getSymNameAttrName(state.name),
                     builder.getStringAttr(name));
  state.addAttribute(getFunctionTypeAttrName(state.name), TypeAttr::get(type));
  state.addAttribute(getKindAttrName(state.name),
                     ChunkKindAttr::get(builder.getContext(), kind));
  if (firstLayer)
    state.addAttribute(getFirstLayerAttrName(state.name),
                       si64Attr(builder, *firstLayer));
  if (numLayers)
    state.addAttribute(getNumLayersAttrName(state.name),
                       si64Attr(builder, *numLayers));
  state.addRegion();
}

// pipe.chunk <kind> ([<first>, <end>))? <function-op>
ParseResult ChunkOp::parse(OpAsmParser &parser, OperationState &result) {
  Builder &builder = parser.getBuilder();
  SMLoc kindLoc = parser.getCurrentLocation();
  StringRef keyword;
  if (parser.parseKeyword(&keyword))
    return failure();
  std::optional<ChunkKind> kind = symbolizeChunkKind(keyword);
  if (!kind)
    return parser.emitError(kindLoc)
           << "expected chunk kind 'prologue', 'layers' or 'epilogue', got '"
           << keyword << "'";
  result.addAttribute(getKindAttrName(result.name),
                      ChunkKindAttr::get(builder.getContext(), *kind));

  if (succeeded(parser.parseOptionalLSquare())) {
    int64_t first, end;
    if (parser.parseInteger(first) || parser.parseComma() ||
        parser.parseInteger(end) || parser.parseRParen())
      return failure();
    result.addAttribute(getFirstLayerAttrName(result.name),
                        si64Attr(builder, first));
    result.addAttribute(getNumLayersAttrName(result.name),
                        si64Attr(builder, end - first));
  }

  auto buildFuncType =
      [](Builder &builder, ArrayRef<Type> argTypes, ArrayRef<Type> results,
         function_interface_impl::VariadicFlag,
         std::string &) { return builder.getFunctionType(argTypes, results); };
  return function_interface_impl::parseFunctionOp(
      parser, result, /*allowVariadic=*/false,
      getFunctionTypeAttrName(result.name), buildFuncType,
      getArgAttrsAttrName(result.name), getResAttrsAttrName(result.name));
}

void ChunkOp::print(OpAsmPrinter &p) {
  p << ' ' << stringifyChunkKind(getKind());
  if (getFirstLayer() && getNumLayers())
    p << " [" << *getFirstLayer() << ", " << *getEndLayer() << ")";
  p << ' ';
  if (auto visibility = getSymVisibilityAttr())
    p << visibility.getValue() << ' ';
  p.printSymbolName(getSymName());
  function_interface_impl::printFunctionSignature(
      p, *this, getArgumentTypes(), /*isVariadic=*/false, getResultTypes());
  function_interface_impl::printFunctionAttributes(
      p, *this,
      {getSymNameAttrName(), getSymVisibilityAttrName(),
       getFunctionTypeAttrName(), getArgAttrsAttrName(), getResAttrsAttrName(),
       getKindAttrName(), getFirstLayerAttrName(), getNumLayersAttrName()});
  Region &body = getBody();
  if (!body.empty()) {
    p << ' ';
    p.printRegion(body, /*printEntryBlockArgs=*/false,
                  /*printBlockTerminators=*/true);
  }
}

LogicalResult ChunkOp::verify() {
  if (getBody().empty())
    return emitOpError() << "expects a body";
  std::optional<int64_t> first = getFirstLayer(), num = getNumLayers();
  if (getKind() != ChunkKind::layers) {
    if (first || num)
      return emitOpError() << (getKind() == ChunkKind::epilogue ? "an " : "a ")
                           << stringifyChunkKind(getKind())
                           << " chunk has no layer range";
    return success();
  }
  if (!first || !num)
    return emitOpError() << "a layers chunk needs first_layer and num_layers";
  if (*num <= 0)
    return emitOpError() << "expects a non-empty layer range, got [" << *first
                         << ", " << *first + *num << ")";
  if (*first < 0)
    return emitOpError() << "layer range [" << *first << ", " << *first + *num
                         << ") starts before layer 0";
  return success();
}

//===----------------------------------------------------------------------===//
// YieldOp
//===----------------------------------------------------------------------===//

LogicalResult YieldOp::verify() {
  auto chunk = (*this)->getParentOfType<ChunkOp>();
  ArrayRef<Type> results = chunk.getResultTypes();
  if (getNumOperands() != results.size())
    return emitOpError() << "expects " << results.size()
                         << " operands to match the results of chunk @"
                         << chunk.getSymName() << ", got " << getNumOperands();
  for (auto [i, operand, result] :
       llvm::enumerate(getOperandTypes(), results)) {
    if (operand != result)
      return emitOpError() << "operand #" << i << " type " << operand
                           << " does not match result type " << result
                           << " of chunk @" << chunk.getSymName();
  }
  return success();
}

//===----------------------------------------------------------------------===//
// ProgramOp
//===----------------------------------------------------------------------===//

void ProgramOp::build(OpBuilder &builder, OperationState &state, StringRef name,
                      StringRef model, int64_t rank, int64_t ranks,
                      StringRef schedule) {
  build(builder, state, builder.getStringAttr(name),
        FlatSymbolRefAttr::get(builder.getContext(), model),
        si64Attr(builder, rank), si64Attr(builder, ranks),
        builder.getStringAttr(schedule), /*microbatches=*/nullptr,
        /*owners=*/nullptr, /*node_size=*/nullptr);
  state.regions.front()->emplaceBlock();
}

ModelOp ProgramOp::lookupModel(SymbolTableCollection &symbolTable) {
  return symbolTable.lookupNearestSymbolFrom<ModelOp>(*this, getModelAttr());
}

ChunkOp ProgramOp::lookupChunk(SymbolTableCollection &symbolTable,
                               FlatSymbolRefAttr name) {
  ModelOp model = lookupModel(symbolTable);
  if (!model)
    return nullptr;
  return symbolTable.lookupSymbolIn<ChunkOp>(model, name.getAttr());
}

LogicalResult ProgramOp::verify() {
  int64_t rank = getRank(), ranks = getRanks();
  if (ranks < 1)
    return emitOpError() << "expects at least one rank, got " << ranks;
  if (rank < 0 || rank >= ranks)
    return emitOpError() << "rank " << rank << " is out of range [0, " << ranks
                         << ")";
  if (std::optional<int64_t> n = getMicrobatches(); n && *n < 1)
    return emitOpError() << "expects at least one micro-batch, got " << *n;
  if (std::optional<int64_t> n = getNodeSize(); n && *n < 1)
    return emitOpError() << "expects a node size of at least 1, got " << *n;
  if (std::optional<ArrayRef<int64_t>> owners = getOwners()) {
    for (auto [chunk, owner] : llvm::enumerate(*owners))
      if (owner < 0 || owner >= ranks)
        return emitOpError() << "owner " << owner << " of chunk #" << chunk
                             << " is out of range [0, " << ranks << ")";
  }
  return success();
}

LogicalResult ProgramOp::verifyRegions() {
  llvm::StringMap<SlotOp> labels;
  for (auto slot : getBody()->getOps<SlotOp>()) {
    auto [it, inserted] = labels.try_emplace(slot.getLabel(), slot);
    if (!inserted) {
      InFlightDiagnostic diag = slot.emitOpError()
                                << "label \"" << slot.getLabel()
                                << "\" is already used by another slot";
      diag.attachNote(it->second.getLoc())
          << "first slot labelled \"" << slot.getLabel() << "\"";
      return diag;
    }
  }
  return success();
}

LogicalResult ProgramOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  if (!lookupModel(symbolTable))
    return emitOpError() << getModelAttr() << " does not name a pipe.model";
  return success();
}

//===----------------------------------------------------------------------===//
// Buffers
//===----------------------------------------------------------------------===//

LogicalResult SlotOp::verify() {
  if (getLabel().empty())
    return emitOpError() << "expects a non-empty label";
  return success();
}

void SlotOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  setNameFn(getResult(), getLabel());
}

LogicalResult LoadMasterOp::verify() { return verifyTurn(*this, getTurn()); }

LogicalResult
LoadMasterOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  return verifyChunkUse(*this, getChunkAttr(), symbolTable);
}

LogicalResult ZeroOp::verify() { return verifyTurn(*this, getTurn()); }

LogicalResult ZeroOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  return verifyChunkUse(*this, getChunkAttr(), symbolTable);
}

LogicalResult SwapOp::verify() {
  if (getLhs() == getRhs())
    return emitOpError() << "expects two different slots";
  return verifyTurn(*this, getTurn());
}

LogicalResult AddIntoOp::verify() {
  if (getSource() == getAccumulator())
    return emitOpError() << "expects two different slots";
  return verifyTurn(*this, getTurn());
}

LogicalResult AddIntoOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  return verifyChunkUse(*this, getChunkAttr(), symbolTable);
}

//===----------------------------------------------------------------------===//
// Compute steps
//===----------------------------------------------------------------------===//

LogicalResult ForwardOp::verify() {
  if (failed(verifyComputeStep(*this, getMicrobatch(), getTurn())))
    return failure();
  return verifyInOut(*this, getIn(), getOut());
}

LogicalResult ForwardOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  return verifyChunkUse(*this, getChunkAttr(), symbolTable);
}

LogicalResult BackwardInputOp::verify() {
  if (failed(verifyComputeStep(*this, getMicrobatch(), getTurn())))
    return failure();
  return verifyInOut(*this, getIn(), getOut());
}

LogicalResult
BackwardInputOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  return verifyChunkUse(*this, getChunkAttr(), symbolTable);
}

LogicalResult BackwardWeightOp::verify() {
  return verifyComputeStep(*this, getMicrobatch(), getTurn());
}

LogicalResult
BackwardWeightOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  return verifyChunkUse(*this, getChunkAttr(), symbolTable);
}

LogicalResult BackwardOp::verify() {
  if (failed(verifyComputeStep(*this, getMicrobatch(), getTurn())))
    return failure();
  return verifyInOut(*this, getIn(), getOut());
}

LogicalResult BackwardOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  return verifyChunkUse(*this, getChunkAttr(), symbolTable);
}

LogicalResult LossOp::verify() {
  return verifyNonNegative(*this, getMicrobatch(), "microbatch");
}

LogicalResult OptimizerStepOp::verify() { return verifyTurn(*this, getTurn()); }

LogicalResult
OptimizerStepOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  return verifyChunkUse(*this, getChunkAttr(), symbolTable);
}

//===----------------------------------------------------------------------===//
// Transfers
//===----------------------------------------------------------------------===//

LogicalResult SendOp::verify() {
  return verifyTransfer(*this, getSlots(), getPeer(), getTurn());
}

void SendOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  setNameFn(getToken(), "send");
}

LogicalResult RecvOp::verify() {
  return verifyTransfer(*this, getSlots(), getPeer(), getTurn());
}

void RecvOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  setNameFn(getToken(), "recv");
}

LogicalResult WaitOp::verify() {
  if (getTokens().empty())
    return emitOpError() << "expects at least one token";
  return verifyTurn(*this, getTurn());
}

#define GET_OP_CLASSES
#include "weipipe/Dialect/Pipe/PipeOps.cpp.inc"
