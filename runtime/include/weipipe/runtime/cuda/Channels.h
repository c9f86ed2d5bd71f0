//===- Channels.h - NCCL between processes, one GPU each --------*- C++ -*-===//
//
// Part of weipipe's runtime (CUDA backend). The device side of the `nccl`
// transport: communicators made from unique ids that the processes exchange
// over the tcp transport (the torchrun-style bootstrap), each with a stream
// of its own, so that a send waits only for its receiver and never behind
// another link's traffic. A pipeline opens one two-rank communicator per
// link it uses (a -> b: a is index 0), whose stream carries that link's
// messages in order (the FIFO order the transport contract promises), and
// one communicator of the whole world for sums. Built without NCCL (the
// emulated build; a machine without it), every call fails saying so.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_CUDA_CHANNELS_H
#define WEIPIPE_RUNTIME_CUDA_CHANNELS_H

#include "weipipe/runtime/cuda/Device.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace weipipe::rt::cuda {

class Channels {
public:
  Channels();
  ~Channels(); ///< destroys the communicators (aborts them after abort())
  Channels(const Channels &) = delete;
  Channels &operator=(const Channels &) = delete;

  /// Whether this build has NCCL ("" if so, else why not).
  static std::string unavailable();
  /// A new unique id (NCCL's 128 bytes) for one communicator.
  static Status newId(std::vector<uint8_t> *id);
  /// Makes one communicator per id, of sizes[i] ranks with this process at
  /// index[i], all in one NCCL group (each process must open the same
  /// communicators, in any order). Channel i is ids[i]'s.
  Status open(const std::vector<std::vector<uint8_t>> &ids,
              const std::vector<int> &sizes, const std::vector<int> &index);
  /// On channel c's stream, after `after`: sends `bytes` at src to the
  /// other end (index 1 - own, or itself in a one-rank channel), or
  /// receives them into dst; `done` is recorded after.
  Status send(int c, const void *src, uint64_t bytes, cudaEvent_t after,
              cudaEvent_t done);
  Status recv(int c, void *dst, uint64_t bytes, cudaEvent_t after,
              cudaEvent_t done);
  /// Frees `p` (from cudaMallocAsync) once channel c's stream has done
  /// what is enqueued on it so far.
  Status release(int c, void *p);
  /// x[0..n) := the sum over channel c's ranks, on `stream`.
  Status sum(int c, double *x, size_t n, cudaStream_t stream);
  /// The first asynchronous error of any communicator (a peer gone), or ok.
  Status check() const;
  /// Stops every communicator now: pending operations end (with errors);
  /// what was enqueued behind them then runs.
  void abort();

  struct Impl; // the communicators and their streams

private:
  std::unique_ptr<Impl> impl_;
};

} // namespace weipipe::rt::cuda

#endif // WEIPIPE_RUNTIME_CUDA_CHANNELS_H
