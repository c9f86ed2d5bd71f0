//===- SweepOptions.h - one schedule's options at benchmark scale -*- C++
//-*-===//
//
// Part of weipipe. What bench_schedule and bench_simulate ask of every
// schedule for a model of `layers` layers on P ranks with N micro-batches:
// single on one rank, WZB2 with N = P (one round per step), TawPipe in
// nodes of 8, interleaved 1F1B with two chunks per rank where the layers
// allow.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_BENCH_SWEEPOPTIONS_H
#define WEIPIPE_BENCH_SWEEPOPTIONS_H

#include "weipipe/Schedule/Schedule.h"

namespace weipipe::schedule {

inline Options sweepOptions(const std::string &name, int layers, int P, int N) {
  Options o;
  o.name = name;
  o.ranks = name == "single" ? 1 : P;
  o.microbatches = name == "weipipe-zb2" ? o.ranks : N;
  o.nodeSize = name == "tawpipe" ? 8 : 1;
  if (name == "interleaved-1f1b")
    o.chunksPerRank = layers / P >= 2 ? 2 : 1;
  return o;
}

} // namespace weipipe::schedule

#endif // WEIPIPE_BENCH_SWEEPOPTIONS_H
