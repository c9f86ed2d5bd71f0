//===- Artifact.h - the .wpp training artifact, format v3 -------*- C++ -*-===//
//
// Part of weipipe's runtime. The in-memory form of a compiled training program
// and its binary encoding. The compiler (weipipe-opt --emit=artifact) fills an
// `Artifact` and calls `writeArtifactFile`; the runtime reads it back with
// `readArtifactFile`, which validates every field before anything uses it (an
// artifact is untrusted input). No MLIR here: this library is shared by both
// sides so that there is one encoder and one decoder.
//
// The model of execution: one rank owns
//   * parameters (fp32 master values, loaded from their storage), one gradient
//     buffer per parameter (same shape), optimizer state held by the trainer;
//   * constants (small tensors stored in the artifact: rotary tables,
//     positions, masks);
//   * one arena of `arenaBytes` bytes in which every activation, saved value
//     and temporary lives at a static offset (the buffer plan);
//   * functions, each a straight-line list of instructions over TensorRefs.
// One micro-batch runs the functions listed in `microbatchProgram` in order
// (forward, then backward or backward_input + backward_weight). The plan is
// computed over that whole sequence, so a value the forward saves for the
// backward keeps its offset from one function to the next.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_ARTIFACT_H
#define WEIPIPE_RUNTIME_ARTIFACT_H

#include "weipipe/runtime/Opcodes.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace weipipe::rt {

/// "WPPA" little-endian, the first 4 bytes of every artifact.
constexpr uint32_t kArtifactMagic = 0x41505057u;
constexpr uint32_t kArtifactVersion = 3;

enum class DType : uint8_t { F32 = 0, I64 = 1, I32 = 2, Bool = 3 };
/// Bytes per element (Bool: 1).
size_t dtypeSize(DType t);
const char *dtypeName(DType t); ///< "f32", "i64", "i32", "bool"

/// An empty tensor's other dimensions may multiply to at most this. Kernels
/// loop over a tensor's dimensions, so a zero dimension next to huge ones
/// would be a loop of 2^61 turns over no data; real empty tensors (a cache
/// of length 0) are small. With it, every loop a kernel runs is bounded by
/// the elements of tensors that exist in memory.
constexpr int64_t kMaxEmptyExtent = int64_t(1) << 24;

/// Why a tensor of `shape` with `elementSize`-byte elements is not one the
/// runtime can hold ("" if it is): a negative dimension, rank over 8, more
/// than 2^62 elements or bytes, or an empty tensor over kMaxEmptyExtent. Sets
/// *numel when valid. The compiler checks every tensor type against it, so
/// that what it writes is what the runtime accepts.
std::string shapeProblem(const std::vector<int64_t> &shape, size_t elementSize,
                         int64_t *numel);

/// The bytes a buffer of `n` bytes counts for in every memory plan and check
/// (the compiler's printed peak, the load-time check, what a rank reports):
/// `n` rounded up to the 64-byte alignment buffers are allocated at, and 0
/// for nothing (an empty parameter takes no room in its block). `n` is at
/// most 2^62 (shapeProblem), so this cannot wrap.
constexpr uint64_t alignedBytes(uint64_t n) { return (n + 63) / 64 * 64; }

/// Where a tensor lives.
enum class Space : uint8_t {
  None = 0,  ///< an absent optional operand/result
  Arena = 1, ///< arena bytes [offset, offset + bytes)
  Param = 2, ///< the value of parameter `index` (offset 0)
  Grad = 3,  ///< the gradient buffer of parameter `index` (offset 0)
  Const = 4, ///< constant `index` (offset 0)
  /// The rank's scratch arena at `offset`: a pipeline stage's temporaries,
  /// live within one function run (Stage::scratchBytes).
  Scratch = 5,
};

struct TensorRef {
  Space space = Space::None;
  uint32_t index = 0;  ///< Param / Grad / Const index
  uint64_t offset = 0; ///< Arena byte offset (aligned to 64)
  DType dtype = DType::F32;
  std::vector<int64_t> shape; ///< static; empty = scalar
  int64_t numel() const;
  uint64_t bytes() const { return uint64_t(numel()) * dtypeSize(dtype); }
  bool present() const { return space != Space::None; }
};

struct Instruction {
  /// Flag bits.
  static constexpr uint8_t kAccumulate = 1; ///< ACC ops add into results
  /// This norm-gradient instruction also computes the next one, the other
  /// gradient of the same norm (normGradsFuse): one recomputation of the
  /// statistics, one pass over the rows. The compiler sets it.
  static constexpr uint8_t kFusedWithNext = 2;
  Opcode op = Opcode::Copy;
  uint8_t flags = 0;
  std::vector<TensorRef> operands;
  std::vector<TensorRef> results;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  /// Where it came from, for messages: "nn.linear at model.onnx node 'x'".
  std::string name;
};

/// Whether `a` and `b` are the input-gradient and parameter-gradient
/// instructions of one norm (either order) over the same x, dy, axis and
/// epsilon, neither writing what the other reads: then one kernel call can
/// run both (Instruction::kFusedWithNext).
bool normGradsFuse(const Instruction &a, const Instruction &b);

enum class FunctionKind : uint8_t {
  Forward = 0,
  Backward = 1,       ///< fused B+W
  BackwardInput = 2,  ///< B
  BackwardWeight = 3, ///< W
};
const char *functionKindName(FunctionKind k);

struct Function {
  std::string name;
  FunctionKind kind = FunctionKind::Forward;
  std::vector<Instruction> body;
};

/// Initial values of a parameter: `length` little-endian bytes at `offset` of
/// `file` (an ONNX model, its external-data file, or a safetensors file).
/// `file` is absolute, or relative to the artifact's directory.
/// `fileSize` is the file's size when compiled (0 = unknown); a different
/// size at load time, or different bytes (`crc32c`), means the model changed
/// since it was compiled.
struct Storage {
  std::string file;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t fileSize = 0;
  /// The CRC-32C of the `length` bytes when compiled, if recorded: a model
  /// edited in place at the same size is detected at load, at the cost of
  /// one checksum pass over the bytes read (8 GB/s measured: 0.13 s per GiB).
  bool checksummed = false;
  uint32_t crc32c = 0;
};

/// Another name the source model stores this parameter under (a tied copy);
/// `transposed`: that copy holds the transpose (2-D).
struct Alias {
  std::string name;
  bool transposed = false;
};

struct Parameter {
  std::string name; ///< the ONNX initializer name
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  Storage storage;
  bool decay = true; ///< AdamW weight decay applies (>= 2 axes > 1)
  std::vector<Alias> aliases;
  int64_t numel() const;
};

struct Constant {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::string bytes; ///< numel * dtypeSize bytes, little-endian
};

/// A graph input the trainer fills per micro-batch (int64, [B, S]).
enum class InputRole : uint8_t { Tokens = 0, Targets = 1 };
struct Input {
  std::string name; ///< the ONNX input name ("input_ids"), or "targets"
  InputRole role = InputRole::Tokens;
  TensorRef ref; ///< Arena, i64
};

struct Artifact;

/// A piece of the model that a pipeline places on its own: the prologue
/// (embedding), a chunk of layers, or the epilogue (final norm, head, loss),
/// compiled apart (pipe-autodiff) with its own arena. One arena instance
/// holds one micro-batch of the stage from its forward to its last backward
/// step; a rank has as many instances as it has micro-batches of the stage
/// in flight.
enum class StageKind : uint8_t { Prologue = 0, Layers = 1, Epilogue = 2 };
const char *stageKindName(StageKind k);

struct Stage {
  std::string name; ///< "prologue", "chunk0", "epilogue"
  StageKind kind = StageKind::Layers;
  /// Function indices (-1: none).
  int32_t forward = -1, backward = -1, backwardInput = -1, backwardWeight = -1;
  uint64_t arenaBytes = 0;
  /// Its functions' temporaries (Space::Scratch), shared by all instances:
  /// a rank runs one function at a time.
  uint64_t scratchBytes = 0;
  std::vector<Input> inputs; ///< graph inputs it reads (token ids, targets)
  /// The boundary with the previous stage (`in`, whose refs equal that
  /// stage's `out` in dtype and shape) and the next (`out`). `din[i]` is the
  /// gradient B writes for a float `in[i]`, `dout[i]` the one B reads for a
  /// float `out[i]` (absent for integer tensors).
  std::vector<TensorRef> in, out, din, dout;
  TensorRef loss, dloss, logits; ///< the epilogue's (or the last chunk's)
  std::vector<uint32_t> params;  ///< parameters it reads, ascending
};

/// One rank's program in a pipeline: the pipe.program the schedule wrote,
/// as data. Slots are the rank's ring and transfer buffers; each action is
/// one pipe op (see include/weipipe/Schedule/Schedule.h for the semantics).
enum class SlotKind : uint8_t { Weights = 0, Grads = 1, Activations = 2 };
struct Slot {
  SlotKind kind = SlotKind::Weights;
  std::string label;
  uint64_t bytes = 0; ///< capacity: the largest content it ever holds
};
enum class ActionOp : uint8_t {
  LoadMaster = 0,
  Zero = 1,
  Swap = 2,
  AddInto = 3,
  Forward = 4,
  BackwardInput = 5,
  BackwardWeight = 6,
  Backward = 7,
  OptimizerStep = 8,
  Send = 9,
  Recv = 10,
  Wait = 11,
};
const char *actionOpName(ActionOp op);
struct Action {
  ActionOp op = ActionOp::Wait;
  int32_t turn = 0;
  int32_t chunk = -1, microbatch = -1;
  int32_t weights = -1, grads = -1, in = -1, out = -1;
  int32_t peer = -1, token = -1;
  std::vector<int32_t> slots, tokens;
  std::vector<uint64_t> bytes; ///< Send, Recv: bytes moved per slot
};
struct RankProgram {
  std::vector<Slot> slots;
  std::vector<Action> actions;
};

/// Where parameter k of `s.params` lives in a weights or grads slot that
/// holds the stage (offsets in floats, each aligned to 16), and the slot's
/// size in bytes. The compiler sizes slots and the runtime binds them with
/// this one layout.
uint64_t stageSlotLayout(const Artifact &a, const Stage &s,
                         std::vector<uint64_t> *offsets);
/// Where each of `refs` lives in an activation slot (byte offsets, each
/// aligned to 64; absent refs take no room), and the slot's size in bytes.
uint64_t boundaryLayout(const std::vector<TensorRef> &refs,
                        std::vector<uint64_t> *offsets);

struct Artifact {
  uint32_t version = kArtifactVersion;
  std::string producer;    ///< "weipipe-opt (weipipe 0.1)"
  std::string sourceModel; ///< the ONNX file compiled, as given
  uint32_t rank = 0, ranks = 1;
  std::string schedule = "single"; ///< the schedule name
  uint32_t microbatches = 1;       ///< per optimizer step
  int64_t batch = 0, seq = 0;      ///< micro-batch rows and tokens per row
  int64_t vocab = 0;               ///< logits' last dimension
  int64_t ignoreIndex = -100;

  std::vector<Parameter> params;
  std::vector<Constant> constants;
  std::vector<Input> inputs;
  TensorRef loss;   ///< f32 scalar written by the forward (Arena)
  TensorRef dloss;  ///< f32 scalar the trainer writes before the backward
  TensorRef logits; ///< [B, S, V] in the arena, valid after the forward

  uint64_t arenaBytes = 0;
  /// Peak bytes of the rank: arena + parameters + gradients + AdamW state
  /// (2 x parameters) + constants.
  uint64_t peakBytes = 0;

  std::vector<Function> functions;
  /// Indices into `functions`, run in order for every micro-batch.
  std::vector<uint32_t> microbatchProgram;

  /// Pipelines (empty for a single-rank artifact): the stages in model
  /// order (a prologue and an epilogue stage when the ends are replicated
  /// on every rank; then the layer chunks between them), the owner rank of
  /// each chunk, and every rank's program.
  std::vector<Stage> stages;
  std::vector<int32_t> owner;
  std::vector<RankProgram> programs;

  bool isPipeline() const { return !programs.empty(); }
  /// Layer chunks (stages that are not replicated ends).
  size_t numChunks() const;
  /// The stage of chunk c.
  size_t chunkStage(size_t c) const;
  /// The replicated prologue / epilogue stage, or -1.
  int prologueStage() const;
  int epilogueStage() const;
};

/// The encoding (little-endian):
///   header (32 bytes): magic u32, version u32, flags u32 (0), reserved u32,
///                      payload size u64, payload CRC-32C u32, header CRC-32C
///                      u32 (of the 28 bytes before it)
///   payload: the fields of Artifact in declaration order (see Artifact.cpp).
std::string serializeArtifact(const Artifact &a);
/// Decodes and validates: magic, version, checksums, every count and size
/// bounded by the input, opcodes known, operand/result counts and dtypes as
/// Opcodes.def says, arena refs inside [0, arenaBytes), Param/Grad/Const refs
/// to existing entries with matching shape, shapes non-negative. On failure
/// returns nullopt and sets *error to "WHAT: <problem> (at byte N)".
std::optional<Artifact> parseArtifact(const void *data, size_t size,
                                      const std::string &what,
                                      std::string *error);
/// Writes to PATH.tmp.<pid> and renames over `path`, so a failure never leaves
/// a half-written file.
bool writeArtifactFile(const Artifact &a, const std::string &path,
                       std::string *error);
std::optional<Artifact> readArtifactFile(const std::string &path,
                                         std::string *error);

} // namespace weipipe::rt

#endif // WEIPIPE_RUNTIME_ARTIFACT_H
