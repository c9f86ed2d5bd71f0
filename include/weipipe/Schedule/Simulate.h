//===- Simulate.h - timing simulation of per-rank programs ------*- C++ -*-===//
//
// Part of weipipe. Runs every rank's program of a Schedule (the programs the
// runtime executes, not a re-derivation of the schedule) against a cost
// model and reports when each step runs: the iteration time, the bubble
// ratio, the bytes on each link, and every compute step and transfer as a
// timeline.
//
// Timing semantics, the runtime's (src/train/Pipeline.cpp):
//   * A rank runs its actions in order, one at a time. Forward, B, W, the
//     fused backward and OptimizerStep take their cost from the model
//     (compute). LoadMaster (a copy of the chunk's weight bytes), Zero (a
//     write) and AddInto (two reads and a write) take those bytes at the
//     model's memory bandwidth, Swap nothing; they are not compute, so the
//     bubble ratio counts them as time not computing.
//   * Send posts the slots' bytes on the link to its peer and does not
//     block (sends are buffered: the bytes are captured at once). A channel
//     carries its messages one after the other in posting order (FIFO), each
//     taking latency + bytes / bandwidth from when it is posted or when the
//     channel frees, whichever is later. A message between two ranks of one
//     node takes the intra-node link, otherwise the inter-node one; a link
//     that is not shared gives every ordered pair of ranks its own channel
//     (NVLink through a switch, one NIC per GPU), a shared one gives each
//     node one channel for all such messages it sends (PCIe through the
//     host, one NIC per node). A synchronous link's sender moves the bytes
//     itself (the local transport's copy on the CPU): its rank is busy until
//     the message has arrived.
//   * Recv posts a receive; its transfer completes when the matching send
//     (the k-th from that peer) has arrived. Wait blocks the rank until all
//     its tokens are complete (a send's at once).
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_SCHEDULE_SIMULATE_H
#define WEIPIPE_SCHEDULE_SIMULATE_H

#include "weipipe/Schedule/Schedule.h"

#include <cstddef>
#include <string>
#include <vector>

namespace weipipe::schedule {

/// What each step of an iteration costs. Times are in any one unit (seconds
/// for a machine model), bytes in bytes.
struct CostModel {
  /// Per chunk, for one micro-batch: the forward, the input-gradient pass
  /// (B) and the weight-gradient pass (W); the fused backward costs B + W.
  /// Per chunk, the optimizer step.
  std::vector<double> forward, backwardInput, backwardWeight, optimizerStep;
  /// Per chunk: the bytes of its weights (a weights or grads slot), and of
  /// one micro-batch's activation at its output (and of that activation's
  /// gradient, which chunk + 1's backward sends).
  std::vector<double> weightBytes, activationBytes;
  /// Per chunk, the fused backward when it differs from B + W (a stage
  /// compiled both ways); empty: B + W.
  std::vector<double> backward;
  /// A message takes latency + bytes / bandwidth (bandwidth in bytes per
  /// time unit; 0: transfers take latency alone).
  struct Link {
    double latency = 0, bandwidth = 0;
    bool shared = false; ///< one channel per sending node, not per pair
    bool synchronous = false; ///< the sender waits until it arrives
  };
  /// Rank r is on node r / ranksPerNode (0: every rank on one node).
  Link intraNode, interNode;
  int ranksPerNode = 0;
  /// LoadMaster, Zero and AddInto move their chunk's weight bytes at this
  /// rate (bytes per time unit; 0: they take no time).
  double memoryBandwidth = 0;
  /// Time after the last rank finishes that still belongs to the iteration
  /// (the collectives that close it: the replicated ends' gradients).
  double tail = 0;

  /// Whole-model pass times T_F, T_B, T_W split evenly over `chunks`;
  /// transfers free, optimizer steps free.
  static CostModel uniform(int chunks, double tf, double tb, double tw);
};

/// One compute step or transfer on the timeline.
struct TimedAction {
  int rank = 0;        ///< the rank that ran it (a transfer: the sender)
  size_t action = 0;   ///< its index in that rank's program
  int peer = -1;       ///< a transfer's receiver
  double bytes = 0;    ///< a transfer's size
  double start = 0, end = 0;
};

struct Simulation {
  double iterationTime = 0; ///< when the last rank finishes, plus the tail
  /// 1 - (compute time of all ranks) / (ranks x iterationTime).
  double bubbleRatio = 0;
  std::vector<double> busy;   ///< per rank: its compute time
  std::vector<double> finish; ///< per rank: when its program ends
  /// Bytes sent per directed link, [from * ranks + to].
  std::vector<double> linkBytes;
  std::vector<TimedAction> compute, transfers;
};

/// Simulates one iteration of `s`, which verifySchedule has checked (it
/// fills what each message carries). Returns "" or what stopped it: a cost
/// model of the wrong size, a schedule not verified, or a deadlock ("deadlock:
/// rank R, step K (wait at turn T): waits for a receive that no send
/// matches; ..." for every rank that waits).
std::string simulateSchedule(const Schedule &s, const CostModel &m,
                             Simulation *out);

} // namespace weipipe::schedule

#endif // WEIPIPE_SCHEDULE_SIMULATE_H
