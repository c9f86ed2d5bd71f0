//===- Device.h - CUDA devices, errors, memory, streams ---------*- C++ -*-===//
//
// Part of weipipe's runtime (CUDA backend). What every CUDA file and the
// executor share: errors as Status values that name the call, the place and
// the driver's own text; the device query that tells a GPU-less machine
// (every CI machine of this project) apart from a broken one; device memory
// and streams/events owned by RAII types. Library code returns Status; only
// tools decide to exit.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_CUDA_DEVICE_H
#define WEIPIPE_RUNTIME_CUDA_DEVICE_H

#include "weipipe/runtime/Status.h"

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace weipipe::rt::cuda {

/// "CALL failed at FILE:LINE: NAME (CODE): driver text" (no place when
/// file is nullptr: a kernel launch, named by `call`).
Status error(cudaError_t e, const char *call, const char *file, int line);

/// Returns the error of a failed CUDA runtime call from the calling function.
#define WP_CUDA_TRY(call)                                                      \
  do {                                                                         \
    cudaError_t wpErr_ = (call);                                               \
    if (wpErr_ != cudaSuccess)                                                 \
      return ::weipipe::rt::cuda::error(wpErr_, #call, __FILE__, __LINE__);    \
  } while (0)

/// Propagates a failed Status.
#define WP_TRY(expr)                                                           \
  do {                                                                         \
    ::weipipe::rt::Status wpSt_ = (expr);                                      \
    if (!wpSt_.ok())                                                           \
      return wpSt_;                                                            \
  } while (0)

/// One GPU as the runtime sees it.
struct DeviceInfo {
  int index = -1;
  std::string name;
  int major = 0, minor = 0; ///< compute capability
  int multiprocessors = 0;
  uint64_t totalBytes = 0;
};

/// The number of usable CUDA devices; 0 with `why` set ("no CUDA driver",
/// "no device") where there is none. Never fails otherwise.
int deviceCount(std::string *why = nullptr);
/// The device `index` made current, or an error naming it and the count.
Status selectDevice(int index, DeviceInfo *info = nullptr);

/// One device allocation (cudaMalloc: 256-byte aligned).
class DeviceBuffer {
public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;
  DeviceBuffer(DeviceBuffer &&o) noexcept;
  DeviceBuffer &operator=(DeviceBuffer &&o) noexcept;
  ~DeviceBuffer();

  /// Frees what it held, then allocates `bytes` (at least one byte, so that
  /// data() is never null); out of memory names `what` and the sizes.
  Status allocate(uint64_t bytes, const std::string &what);
  void reset();
  void *data() const { return p_; }
  template <class T> T *as() const { return static_cast<T *>(p_); }
  uint64_t bytes() const { return bytes_; }

private:
  void *p_ = nullptr;
  uint64_t bytes_ = 0;
};

/// A non-blocking stream (it does not synchronize with the legacy default
/// stream).
class Stream {
public:
  Stream() = default;
  Stream(const Stream &) = delete;
  Stream &operator=(const Stream &) = delete;
  ~Stream();
  Status create();
  /// A stream the device schedules ahead of default-priority ones (the
  /// highest priority it has): transfers, so that compute does not starve
  /// them.
  Status createUrgent();
  cudaStream_t get() const { return s_; }
  Status synchronize() const;

private:
  cudaStream_t s_ = nullptr;
};

/// An event without timing (the cheap kind, for ordering streams), or with
/// timing for benchmarks.
class Event {
public:
  Event() = default;
  Event(const Event &) = delete;
  Event &operator=(const Event &) = delete;
  ~Event();
  Status create(bool timing = false);
  cudaEvent_t get() const { return e_; }
  /// Records on `on`; `waiter` then waits for it without blocking the host.
  Status record(cudaStream_t on);
  Status makeWait(cudaStream_t waiter) const;

private:
  cudaEvent_t e_ = nullptr;
};

/// Host <-> device copies, asynchronous on `stream` (the host side must stay
/// alive until the stream passes the copy).
Status copyToDevice(void *dst, const void *src, uint64_t bytes,
                    cudaStream_t stream);
Status copyToHost(void *dst, const void *src, uint64_t bytes,
                  cudaStream_t stream);

} // namespace weipipe::rt::cuda

#endif // WEIPIPE_RUNTIME_CUDA_DEVICE_H
