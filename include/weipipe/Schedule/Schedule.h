//===- Schedule.h - per-rank pipeline programs, as data ---------*- C++ -*-===//
//
// Part of weipipe. A training iteration of a pipeline schedule as one
// straight-line program per rank, in plain C++ (no MLIR): what the schedule
// generators write, what the verifier executes symbolically, what the
// `pipe.program` ops of the IR print and what the artifact writer lowers to
// the runtime's steps. The vocabulary is the pipe dialect's (pipe.slot,
// pipe.forward, pipe.send, ...), one action per op.
//
// The model as a schedule sees it: `chunks` layer chunks 0..C-1, run in order
// for the forward and in reverse for the backward. A model's prologue
// (embedding) and epilogue (final norm, head, loss) are not chunks here: when
// they are replicated, the runtime runs them next to chunk 0 and chunk C-1 of
// each micro-batch on the rank that runs those, and reduces their gradients
// over all ranks after the iteration; when they are owned, they are inside
// chunk 0 and chunk C-1. Either way a schedule only places chunks.
//
// Semantics of one iteration (what the verifier checks, see Verify.cpp):
//   * Global micro-batch m (0..N-1) runs forward through chunks 0..C-1 and
//     backward through C-1..0, each chunk's F and B (or fused backward) of m
//     on one rank, which keeps the activations in between (they never move
//     unless an activation slot carries them).
//   * A compute step uses the weights of its chunk in a weights slot, at the
//     version the iteration started with; B/W/fused backward add the chunk's
//     weight gradient of m into a grads slot that accumulates that chunk.
//   * Every chunk's accumulator collects each micro-batch's contribution
//     exactly once and reaches owner[c], which runs OptimizerStep(c) once.
//   * Sends are buffered: they complete at once (the bytes are captured) and
//     never block; a receive completes when the matching send was posted;
//     Wait blocks on receives. Between two ranks, the k-th send of a to b
//     matches the k-th receive of b from a (FIFO per link).
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_SCHEDULE_SCHEDULE_H
#define WEIPIPE_SCHEDULE_SCHEDULE_H

#include <cstdint>
#include <string>
#include <vector>

namespace weipipe::schedule {

enum class SlotKind : uint8_t {
  Weights,     ///< one chunk's weights (its parameters, flat)
  Grads,       ///< one chunk's weight-gradient accumulator
  Activations, ///< one micro-batch's activation (or activation gradient)
               ///< at a chunk boundary
};

struct Slot {
  SlotKind kind = SlotKind::Weights;
  std::string label; ///< unique within the rank: "F", "B", "D", "A"
};

enum class Op : uint8_t {
  LoadMaster,     ///< slots[0] (weights) := this rank's master of `chunk`
  Zero,           ///< slots[0] (grads) := 0, an empty accumulator of `chunk`
  Swap,           ///< exchange slots[0] and slots[1] (same kind)
  AddInto,        ///< slots[0] (grads) += slots[1], both of `chunk`
  Forward,        ///< F of `chunk` for `microbatch` with `weights`
  BackwardInput,  ///< B: input gradient, keeps what W needs
  BackwardWeight, ///< W: adds the weight gradient into `grads`
  Backward,       ///< B and W in one step
  OptimizerStep,  ///< updates this rank's master of `chunk` from `grads`
  Send,           ///< posts a send of `slots` to `peer`; yields `token`
  Recv,           ///< posts a receive into `slots` from `peer`; yields `token`
  Wait,           ///< blocks until the transfers of `tokens` complete
};
const char *opName(Op op); ///< "forward", "send", ... (the pipe op names)

/// What a slot holds, as the verifier works it out.
struct Content {
  enum Kind : uint8_t {
    Undefined,      ///< nothing written yet
    Weights,        ///< weights of `chunk`
    Grads,          ///< gradient accumulator of `chunk`
    Activation,     ///< output of `chunk` for `microbatch` (input of chunk+1)
    ActivationGrad, ///< gradient of the input of `chunk` for `microbatch`
  };
  Kind kind = Undefined;
  int chunk = -1;
  int microbatch = -1;
};

struct Action {
  Op op = Op::Wait;
  int turn = 0;        ///< the ring turn (or time step) it belongs to, for
                       ///< tables and traces; non-decreasing per rank
  int chunk = -1;      ///< compute steps, LoadMaster, Zero, AddInto,
                       ///< OptimizerStep
  int microbatch = -1; ///< compute steps (global index)
  int weights = -1;    ///< slot index: Forward, BackwardInput, Backward
  int grads = -1;      ///< slot index: BackwardWeight, Backward, OptimizerStep
  int in = -1;  ///< activation slot: F reads its input from it, B its output
                ///< gradient; -1: this rank's own previous result
  int out = -1; ///< activation slot: F writes its output, B its input
                ///< gradient there (as well as keeping it); -1: none
  std::vector<int> slots;  ///< LoadMaster, Zero: 1; Swap, AddInto: 2;
                           ///< Send, Recv: one or more, distinct
  int peer = -1;           ///< Send, Recv
  int token = -1;          ///< Send, Recv: an id unique within the rank
  std::vector<int> tokens; ///< Wait: one or more
  /// Send, Recv: what each of `slots` carries (filled by verifySchedule).
  std::vector<Content> contents;
};

struct RankProgram {
  std::vector<Slot> slots;
  std::vector<Action> actions;
};

struct Schedule {
  std::string name; ///< "weipipe-interleave", "1f1b", ...
  int ranks = 1;
  int microbatches = 1;   ///< N, per iteration, all ranks together
  int chunks = 1;         ///< C
  int nodeSize = 1;       ///< ranks per node (tawpipe, fsdp)
  std::vector<int> owner; ///< owner[c]: the rank with chunk c's master
  std::vector<RankProgram> programs; ///< one per rank
};

/// What the user asks for (weipipe-opt's flags).
struct Options {
  std::string name = "single";
  int ranks = 1;
  int microbatches = 1;
  int chunksPerRank = 1; ///< interleaved-1f1b's v
  int nodeSize = 1;      ///< tawpipe, fsdp
};

/// The schedule names, in the order `--help` lists them.
const std::vector<std::string> &scheduleNames();
/// Whether schedule `name` runs B and W apart (its stages are compiled with
/// a split backward): zb-h1, weipipe-zb1, weipipe-zb2.
bool splitsBackward(const std::string &name);
/// How many layer chunks `o` cuts the model into (P, v*P, or 1), or -1 with
/// *error set when the options are invalid for the schedule (unknown name,
/// listing the known ones; N not divisible by P where needed; ...).
int chunksFor(const Options &o, std::string *error);
/// Writes the programs of every rank for a model of `chunksFor(o)` chunks.
/// Returns false with *error set on invalid options.
bool generateSchedule(const Options &o, Schedule *out, std::string *error);

/// Executes every rank's program together, symbolically, and checks the
/// semantics above. On success fills every Send/Recv action's `contents` and
/// returns ""; otherwise returns "rank R, step K (ACTION at turn T): REASON".
std::string verifySchedule(Schedule &s);

/// `--print-schedule`: a table with one row per turn and one column per rank
/// ("F0.4+B3.0" style), then each rank's message count.
std::string formatTable(const Schedule &s);
/// `--export-schedule`: torch.distributed.pipelining's CSV form, one row per
/// rank, compute actions only: "0F1" (stage 0, forward, micro-batch 1),
/// "1I0" (backward input), "2W3" (backward weight), "1B0" (full backward).
std::string formatCsv(const Schedule &s);

} // namespace weipipe::schedule

#endif // WEIPIPE_SCHEDULE_SCHEDULE_H
