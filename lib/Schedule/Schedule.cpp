//===- Schedule.cpp - schedule names, option checks, dispatch -------------===//
//
// Part of weipipe. What every schedule accepts (ranks, micro-batches, chunks
// per rank, node size) and how many chunks it cuts the model into; the
// programs themselves are written in Generators.cpp.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Schedule/Schedule.h"

#include <algorithm>

namespace weipipe::schedule {

// Defined in Generators.cpp: writes s->programs and s->owner for options that
// chunksFor accepted.
bool generatePrograms(const Options &o, Schedule *s, std::string *error);

const char *opName(Op op) {
  switch (op) {
  case Op::LoadMaster:
    return "load_master";
  case Op::Zero:
    return "zero";
  case Op::Swap:
    return "swap";
  case Op::AddInto:
    return "add_into";
  case Op::Forward:
    return "forward";
  case Op::BackwardInput:
    return "backward_input";
  case Op::BackwardWeight:
    return "backward_weight";
  case Op::Backward:
    return "backward";
  case Op::OptimizerStep:
    return "optimizer_step";
  case Op::Send:
    return "send";
  case Op::Recv:
    return "recv";
  case Op::Wait:
    return "wait";
  }
  return "unknown";
}

const std::vector<std::string> &scheduleNames() {
  static const std::vector<std::string> names = {
      "single",      "gpipe",       "1f1b",          "interleaved-1f1b",
      "zb-h1",       "fsdp",        "weipipe-naive", "weipipe-interleave",
      "weipipe-zb1", "weipipe-zb2", "tawpipe"};
  return names;
}

static bool fail(std::string *error, const std::string &message) {
  if (error)
    *error = message;
  return false;
}

bool splitsBackward(const std::string &name) {
  return name == "zb-h1" || name == "weipipe-zb1" || name == "weipipe-zb2";
}

int chunksFor(const Options &o, std::string *error) {
  const auto &names = scheduleNames();
  if (std::find(names.begin(), names.end(), o.name) == names.end()) {
    std::string known;
    for (const std::string &n : names)
      known += (known.empty() ? "" : ", ") + n;
    fail(error, "unknown schedule '" + o.name + "'; known schedules: " + known);
    return -1;
  }
  const std::string &n = o.name;
  const int p = o.ranks, m = o.microbatches;
  if (p < 1) {
    fail(error,
         n + ": --ranks must be at least 1 (got " + std::to_string(p) + ")");
    return -1;
  }
  if (m < 1) {
    fail(error, n + ": --microbatches must be at least 1 (got " +
                    std::to_string(m) + ")");
    return -1;
  }
  if (n != "interleaved-1f1b" && o.chunksPerRank != 1) {
    fail(error, n + ": --chunks-per-rank=" + std::to_string(o.chunksPerRank) +
                    " is only for interleaved-1f1b; this schedule places one "
                    "chunk per rank, drop the flag");
    return -1;
  }
  if (n != "tawpipe" && n != "fsdp" && o.nodeSize != 1) {
    fail(error, n + ": --node-size=" + std::to_string(o.nodeSize) +
                    " is only for tawpipe and fsdp; drop the flag");
    return -1;
  }
  if (n == "single") {
    if (p != 1) {
      fail(error, "single: runs on one rank, got --ranks=" + std::to_string(p) +
                      "; use --ranks=1 or a pipeline "
                      "schedule");
      return -1;
    }
    return 1;
  }
  // Every rank runs N/P whole micro-batches (WeiPipe, FSDP, TawPipe), or the
  // schedule cycles micro-batches in groups of P (Megatron's interleaving).
  bool needsDivisible = n.rfind("weipipe-", 0) == 0 || n == "fsdp" ||
                        n == "tawpipe" || n == "interleaved-1f1b";
  if (needsDivisible && m % p != 0) {
    fail(error, n + ": needs --microbatches divisible by --ranks (got " +
                    std::to_string(m) + " micro-batches on " +
                    std::to_string(p) + " ranks); use a multiple of " +
                    std::to_string(p));
    return -1;
  }
  if (n == "interleaved-1f1b") {
    if (o.chunksPerRank < 1) {
      fail(error, n + ": --chunks-per-rank must be at least 1 (got " +
                      std::to_string(o.chunksPerRank) + ")");
      return -1;
    }
    return o.chunksPerRank * p;
  }
  if ((n == "tawpipe" || n == "fsdp") &&
      (o.nodeSize < 1 || p % o.nodeSize != 0)) {
    fail(error, n +
                    ": --node-size must be at least 1 and divide --ranks (got "
                    "--node-size=" +
                    std::to_string(o.nodeSize) +
                    " with --ranks=" + std::to_string(p) + ")");
    return -1;
  }
  if (n == "weipipe-zb1" && p % 2 != 0) {
    fail(error, n + ": needs an even --ranks (got " + std::to_string(p) +
                    "): its backward ring carries chunks in pairs P/2 apart; "
                    "use weipipe-interleave for an odd number of ranks");
    return -1;
  }
  if (n == "weipipe-zb2" && m != p) {
    fail(error, n + ": needs --microbatches equal to --ranks (got " +
                    std::to_string(m) + " and " + std::to_string(p) +
                    "): it updates the weights after every round of one "
                    "micro-batch per rank, so an iteration is one round (and "
                    "then equals single-rank training on those micro-batches)");
    return -1;
  }
  return p;
}

bool generateSchedule(const Options &o, Schedule *out, std::string *error) {
  int chunks = chunksFor(o, error);
  if (chunks < 0)
    return false;
  Schedule s;
  s.name = o.name;
  s.ranks = o.ranks;
  s.microbatches = o.microbatches;
  s.chunks = chunks;
  s.nodeSize = o.nodeSize;
  s.programs.assign(o.ranks, RankProgram());
  if (!generatePrograms(o, &s, error))
    return false;
  *out = std::move(s);
  return true;
}

} // namespace weipipe::schedule
