//===- Device.cpp - CUDA devices, errors, memory, streams -----------------===//
//
// Part of weipipe's runtime (CUDA backend).
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/cuda/Device.h"
#include "weipipe/runtime/cuda/Kernels.h"

#include <cstdio>
#include <utility>

namespace weipipe::rt::cuda {

Status error(cudaError_t e, const char *call, const char *file, int line) {
  std::string m = std::string(call) + " failed";
  if (file)
    m += std::string(" at ") + file + ":" + std::to_string(line);
  m += std::string(": ") + cudaGetErrorName(e) + " (" + std::to_string(int(e)) +
       "): " + cudaGetErrorString(e);
  return Status::error(m);
}

std::string describe(const KernelError &e, const char *what) {
  if (e.code == KernelError::None)
    return "";
  return std::string(what) + " " + std::to_string(e.value) + " at position " +
         std::to_string(e.position) + " is outside [0, " +
         std::to_string(e.bound) + ")";
}

int deviceCount(std::string *why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    // No driver (cudaErrorInsufficientDriver / NoDevice) is the normal case
    // on a machine without a GPU: say so, do not fail.
    if (why)
      *why = std::string("no usable CUDA device: ") + cudaGetErrorString(e);
    cudaGetLastError(); // clear the sticky-free error for later calls
    return 0;
  }
  if (n == 0 && why)
    *why = "no CUDA device on this machine";
  return n;
}

Status selectDevice(int index, DeviceInfo *info) {
  std::string why;
  const int n = deviceCount(&why);
  if (n == 0)
    return Status::error(why);
  if (index < 0 || index >= n)
    return Status::error("CUDA device " + std::to_string(index) +
                         " does not exist (this machine has " +
                         std::to_string(n) + ")");
  WP_CUDA_TRY(cudaSetDevice(index));
  if (info) {
    cudaDeviceProp p;
    WP_CUDA_TRY(cudaGetDeviceProperties(&p, index));
    info->index = index;
    info->name = p.name;
    info->major = p.major;
    info->minor = p.minor;
    info->multiprocessors = p.multiProcessorCount;
    info->totalBytes = p.totalGlobalMem;
  }
  return Status();
}

DeviceBuffer::DeviceBuffer(DeviceBuffer &&o) noexcept
    : p_(o.p_), bytes_(o.bytes_) {
  o.p_ = nullptr;
  o.bytes_ = 0;
}

DeviceBuffer &DeviceBuffer::operator=(DeviceBuffer &&o) noexcept {
  if (this != &o) {
    reset();
    std::swap(p_, o.p_);
    std::swap(bytes_, o.bytes_);
  }
  return *this;
}

DeviceBuffer::~DeviceBuffer() { reset(); }

void DeviceBuffer::reset() {
  if (p_)
    cudaFree(p_);
  p_ = nullptr;
  bytes_ = 0;
}

Status DeviceBuffer::allocate(uint64_t bytes, const std::string &what) {
  reset();
  const cudaError_t e = cudaMalloc(&p_, bytes ? bytes : 1);
  if (e != cudaSuccess) {
    p_ = nullptr;
    cudaGetLastError();
    size_t freeBytes = 0, total = 0;
    std::string have;
    if (cudaMemGetInfo(&freeBytes, &total) == cudaSuccess)
      have = " (" + std::to_string(freeBytes) + " of " + std::to_string(total) +
             " bytes free)";
    cudaGetLastError();
    return Status::error("cannot allocate " + what + " on the GPU (" +
                         std::to_string(bytes) +
                         " bytes): " + cudaGetErrorString(e) + have);
  }
  bytes_ = bytes;
  return Status();
}

Stream::~Stream() {
  if (s_)
    cudaStreamDestroy(s_);
}

Status Stream::create() {
  WP_CUDA_TRY(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking));
  return Status();
}

Status Stream::createUrgent() {
  int least = 0, greatest = 0;
  WP_CUDA_TRY(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  WP_CUDA_TRY(
      cudaStreamCreateWithPriority(&s_, cudaStreamNonBlocking, greatest));
  return Status();
}

Status Stream::synchronize() const {
  WP_CUDA_TRY(cudaStreamSynchronize(s_));
  return Status();
}

Event::~Event() {
  if (e_)
    cudaEventDestroy(e_);
}

Status Event::create(bool timing) {
  WP_CUDA_TRY(cudaEventCreateWithFlags(&e_, timing ? cudaEventDefault
                                                   : cudaEventDisableTiming));
  return Status();
}

Status Event::record(cudaStream_t on) {
  WP_CUDA_TRY(cudaEventRecord(e_, on));
  return Status();
}

Status Event::makeWait(cudaStream_t waiter) const {
  WP_CUDA_TRY(cudaStreamWaitEvent(waiter, e_, 0));
  return Status();
}

Status copyToDevice(void *dst, const void *src, uint64_t bytes,
                    cudaStream_t stream) {
  WP_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream));
  return Status();
}

Status copyToHost(void *dst, const void *src, uint64_t bytes,
                  cudaStream_t stream) {
  WP_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream));
  return Status();
}

} // namespace weipipe::rt::cuda
