//===- Format.cpp - schedules as text tables and torch CSV ----------------===//
//
// Part of weipipe. formatTable prints the compute steps per turn and rank in
// the notation of weipipe-spec.md ("F0.4+B3.0"); formatCsv writes the
// compute-only CSV that torch.distributed.pipelining's _dump_csv/_load_csv
// use, one row per rank, each action as _Action.__repr__ prints it:
// stage index (our chunk), computation type, micro-batch ("0F1", "1I0").
//
//===----------------------------------------------------------------------===//

#include "weipipe/Schedule/Schedule.h"

#include <algorithm>

namespace weipipe::schedule {

namespace {

bool isCompute(Op op) {
  return op == Op::Forward || op == Op::BackwardInput ||
         op == Op::BackwardWeight || op == Op::Backward;
}

/// The spec's letter: B for either backward that computes the input
/// gradient (fused or not), W for the weight-gradient pass.
char tableLetter(Op op) {
  switch (op) {
  case Op::Forward:
    return 'F';
  case Op::BackwardWeight:
    return 'W';
  default:
    return 'B';
  }
}

/// torch's _ComputationType letters.
char torchLetter(Op op) {
  switch (op) {
  case Op::Forward:
    return 'F';
  case Op::BackwardInput:
    return 'I';
  case Op::BackwardWeight:
    return 'W';
  default:
    return 'B';
  }
}

std::string pad(const std::string &s, size_t width, bool right = false) {
  if (s.size() >= width)
    return s;
  std::string fill(width - s.size(), ' ');
  return right ? fill + s : s + fill;
}

} // namespace

std::string formatTable(const Schedule &s) {
  int turns = 0;
  for (const RankProgram &prog : s.programs)
    for (const Action &a : prog.actions)
      turns = std::max(turns, a.turn + 1);
  const int p = int(s.programs.size());
  // cells[t][r]
  std::vector<std::vector<std::string>> cells(turns,
                                              std::vector<std::string>(p));
  std::vector<int> sends(p, 0), recvs(p, 0);
  for (int r = 0; r < p; ++r)
    for (const Action &a : s.programs[r].actions) {
      if (a.op == Op::Send)
        ++sends[r];
      if (a.op == Op::Recv)
        ++recvs[r];
      if (!isCompute(a.op))
        continue;
      std::string &cell = cells[a.turn][r];
      if (!cell.empty())
        cell += '+';
      cell += tableLetter(a.op) + std::to_string(a.chunk) + "." +
              std::to_string(a.microbatch);
    }
  std::vector<size_t> width(p);
  for (int r = 0; r < p; ++r) {
    width[r] = std::max<size_t>({2 + std::to_string(r).size(),
                                 std::to_string(sends[r]).size(),
                                 std::to_string(recvs[r]).size()});
    for (int t = 0; t < turns; ++t) {
      if (cells[t][r].empty())
        cells[t][r] = ".";
      width[r] = std::max(width[r], cells[t][r].size());
    }
  }
  const size_t first = std::max<size_t>(5, std::to_string(turns).size());
  auto row = [&](const std::string &head,
                 const std::vector<std::string> &items) {
    std::string line = pad(head, first, true);
    for (int r = 0; r < p; ++r) {
      line += " | ";
      line += r + 1 < p ? pad(items[r], width[r]) : items[r];
    }
    return line + "\n";
  };
  std::vector<std::string> items(p);
  for (int r = 0; r < p; ++r)
    items[r] = "r" + std::to_string(r);
  std::string out = row("turn", items);
  for (int t = 0; t < turns; ++t)
    out += row(std::to_string(t), cells[t]);
  for (int r = 0; r < p; ++r)
    items[r] = std::to_string(sends[r]);
  out += row("sends", items);
  for (int r = 0; r < p; ++r)
    items[r] = std::to_string(recvs[r]);
  out += row("recvs", items);
  return out;
}

std::string formatCsv(const Schedule &s) {
  std::string out;
  for (const RankProgram &prog : s.programs) {
    bool first = true;
    for (const Action &a : prog.actions) {
      if (!isCompute(a.op))
        continue;
      if (!first)
        out += ',';
      first = false;
      out += std::to_string(a.chunk);
      out += torchLetter(a.op);
      out += std::to_string(a.microbatch);
    }
    out += '\n';
  }
  return out;
}

} // namespace weipipe::schedule
