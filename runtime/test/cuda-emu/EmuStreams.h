//===- EmuStreams.h - the emulated CUDA streams -----------------*- C++ -*-===//
//
// Part of weipipe's runtime tests (test/cuda-emu). Work enqueued on an
// emulated stream runs late: not when it is enqueued but when something
// needs it done - a synchronisation of its stream or of an event recorded
// after it, a synchronous copy, set or free (which drain every stream), or
// another stream reaching a cudaStreamWaitEvent on such an event. So work
// that another stream uses without waiting for it (a missing event) has not
// run yet, and the user reads what was there before: the ordering between
// streams is checked, not only the data each kernel computes.
// WEIPIPE_CUDA_EMU_STREAMS chooses which streams run late:
//   late (the default)  all of them;
//   eager               none (everything at once: tells a kernel's bug from
//                       an ordering bug);
//   split               the prioritised streams (the backend's transfer
//                       streams, Stream::createUrgent) late, the others at
//                       once: a write enqueued after a transfer that reads
//                       the buffer, without waiting for it, runs first;
//   split-reverse       the reverse: a transfer that does not wait for the
//                       compute that writes its source runs first.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_CUDA_EMU_STREAMS_H
#define WEIPIPE_CUDA_EMU_STREAMS_H

#include <cuda_runtime.h>

#include <functional>

namespace weipipe::emu {

/// Enqueues `work` on `stream` (nullptr: the legacy default stream).
void enqueue(cudaStream_t stream, std::function<void()> work);

} // namespace weipipe::emu

#endif // WEIPIPE_CUDA_EMU_STREAMS_H
