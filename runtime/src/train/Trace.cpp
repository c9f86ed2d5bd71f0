//===- Trace.cpp - timelines as Chrome trace JSON -------------------------===//
//
// Part of weipipe's runtime. See include/weipipe/runtime/train/Trace.h.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/train/Trace.h"

#include "weipipe/runtime/train/Json.h"

using namespace weipipe::rt::train;

std::string weipipe::rt::train::traceActionName(const std::string &category,
                                                int chunk, int microbatch) {
  const char *letter = category == "forward"           ? "F"
                       : category == "backward_input"  ? "B"
                       : category == "backward_weight" ? "W"
                       : category == "backward"        ? "BW"
                                                       : "opt";
  return std::string(letter) + " c" + std::to_string(chunk) +
         (microbatch >= 0 ? " m" + std::to_string(microbatch) : "");
}

std::string weipipe::rt::train::chromeTrace(
    const std::vector<TraceEvent> &events, int ranks,
    const std::vector<std::pair<std::string, std::string>> &info,
    const std::vector<InstructionSample> &instructions) {
  using json::number;
  using json::quote;
  std::string out = "{\"displayTimeUnit\": \"ms\", \"otherData\": {";
  for (size_t i = 0; i < info.size(); ++i)
    out +=
        (i ? ", " : "") + quote(info[i].first) + ": " + quote(info[i].second);
  out += "},\n";
  if (!instructions.empty()) {
    out += "\"weipipeInstructions\": [";
    for (size_t i = 0; i < instructions.size(); ++i)
      out += std::string(i ? ",\n  [" : "\n  [") +
             std::to_string(instructions[i].function) + ", " +
             std::to_string(instructions[i].instruction) + ", " +
             number(instructions[i].seconds) + ", " +
             std::to_string(instructions[i].runs) + ", " +
             number(instructions[i].fastest) + "]";
    out += "],\n";
  }
  out += "\"traceEvents\": [\n";
  bool first = true;
  auto add = [&](const std::string &event) {
    out += (first ? "" : ",\n") + event;
    first = false;
  };
  // Names for the processes and threads, in rank order.
  for (int r = 0; r < ranks; ++r) {
    const std::string pid = std::to_string(r);
    add("{\"ph\": \"M\", \"name\": \"process_name\", \"pid\": " + pid +
        ", \"args\": {\"name\": \"rank " + pid + "\"}}");
    add("{\"ph\": \"M\", \"name\": \"process_sort_index\", \"pid\": " + pid +
        ", \"args\": {\"sort_index\": " + pid + "}}");
    add("{\"ph\": \"M\", \"name\": \"thread_name\", \"pid\": " + pid +
        ", \"tid\": 0, \"args\": {\"name\": \"compute\"}}");
    add("{\"ph\": \"M\", \"name\": \"thread_name\", \"pid\": " + pid +
        ", \"tid\": 1, \"args\": {\"name\": \"send\"}}");
  }
  for (const TraceEvent &e : events) {
    std::string ev = "{\"ph\": \"X\", \"pid\": " + std::to_string(e.rank) +
                     ", \"tid\": " + (e.transfer ? "1" : "0") +
                     ", \"name\": " + quote(e.name) +
                     ", \"cat\": " + quote(e.category) +
                     ", \"ts\": " + number(e.start * 1e6) +
                     ", \"dur\": " + number(e.duration * 1e6) + ", \"args\": {";
    std::string args;
    auto arg = [&](const char *key, const std::string &value) {
      args +=
          (args.empty() ? "\"" : ", \"") + std::string(key) + "\": " + value;
    };
    if (e.chunk >= 0)
      arg("chunk", std::to_string(e.chunk));
    if (e.microbatch >= 0)
      arg("microbatch", std::to_string(e.microbatch));
    if (e.turn >= 0)
      arg("turn", std::to_string(e.turn));
    if (e.transfer) {
      arg("peer", std::to_string(e.peer));
      arg("bytes", number(e.bytes));
    }
    add(ev + args + "}}");
  }
  out += "\n]}\n";
  return out;
}
