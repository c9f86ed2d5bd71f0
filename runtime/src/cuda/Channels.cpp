//===- Channels.cpp - NCCL between processes, one GPU each ----------------===//
//
// Part of weipipe's runtime (CUDA backend). See cuda/Channels.h.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/cuda/Channels.h"

#include <algorithm>

#ifdef WEIPIPE_HAVE_NCCL
#include <nccl.h>
#endif

namespace weipipe::rt::cuda {

#ifdef WEIPIPE_HAVE_NCCL

namespace {
Status ncclError(const char *call, ncclResult_t r) {
  return Status::error(std::string(call) + ": " + ncclGetErrorString(r) +
                       " (NCCL " + std::to_string(NCCL_VERSION_CODE) +
                       "; NCCL_DEBUG=INFO says more)");
}
} // namespace

#define WP_NCCL_TRY(call)                                                      \
  do {                                                                         \
    ncclResult_t wpR_ = (call);                                                \
    if (wpR_ != ncclSuccess && wpR_ != ncclInProgress)                         \
      return ncclError(#call, wpR_);                                           \
  } while (0)

struct Channels::Impl {
  struct Channel {
    ncclComm_t comm = nullptr;
    int size = 0, index = 0;
    Stream stream;
  };
  std::vector<std::unique_ptr<Channel>> channels;
};

Channels::Channels() : impl_(std::make_unique<Impl>()) {}

Channels::~Channels() {
  for (auto &c : impl_->channels)
    if (c->comm)
      ncclCommDestroy(c->comm);
}

std::string Channels::unavailable() { return ""; }

Status Channels::newId(std::vector<uint8_t> *id) {
  ncclUniqueId u;
  WP_NCCL_TRY(ncclGetUniqueId(&u));
  id->assign(reinterpret_cast<const uint8_t *>(u.internal),
             reinterpret_cast<const uint8_t *>(u.internal) + sizeof u.internal);
  return Status();
}

Status Channels::open(const std::vector<std::vector<uint8_t>> &ids,
                      const std::vector<int> &sizes,
                      const std::vector<int> &index) {
  const size_t first = impl_->channels.size();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i].size() != NCCL_UNIQUE_ID_BYTES)
      return Status::error("an NCCL unique id of " +
                           std::to_string(ids[i].size()) + " bytes, not " +
                           std::to_string(NCCL_UNIQUE_ID_BYTES));
    impl_->channels.push_back(std::make_unique<Impl::Channel>());
    WP_TRY(impl_->channels.back()->stream.createUrgent());
  }
  // Every communicator of this process at once: another process may open
  // the same ones in another order.
  WP_NCCL_TRY(ncclGroupStart());
  for (size_t i = 0; i < ids.size(); ++i) {
    ncclUniqueId u;
    std::copy(ids[i].begin(), ids[i].end(), u.internal);
    Impl::Channel &c = *impl_->channels[first + i];
    c.size = sizes[i];
    c.index = index[i];
    const ncclResult_t r = ncclCommInitRank(&c.comm, sizes[i], u, index[i]);
    if (r != ncclSuccess && r != ncclInProgress) {
      ncclGroupEnd();
      return ncclError("ncclCommInitRank", r);
    }
  }
  WP_NCCL_TRY(ncclGroupEnd());
  return Status();
}

/// A send (src) or a receive (dst) on channel c's stream, between events.
static Status transfer(Channels::Impl &impl, int c, const void *src, void *dst,
                       uint64_t bytes, cudaEvent_t after, cudaEvent_t done) {
  Channels::Impl::Channel &ch = *impl.channels.at(size_t(c));
  const int peer = ch.size == 1 ? 0 : 1 - ch.index;
  WP_CUDA_TRY(cudaStreamWaitEvent(ch.stream.get(), after, 0));
  if (src)
    WP_NCCL_TRY(
        ncclSend(src, bytes, ncclUint8, peer, ch.comm, ch.stream.get()));
  else
    WP_NCCL_TRY(
        ncclRecv(dst, bytes, ncclUint8, peer, ch.comm, ch.stream.get()));
  WP_CUDA_TRY(cudaEventRecord(done, ch.stream.get()));
  return Status();
}

Status Channels::send(int c, const void *src, uint64_t bytes, cudaEvent_t after,
                      cudaEvent_t done) {
  return transfer(*impl_, c, src, nullptr, bytes, after, done);
}

Status Channels::recv(int c, void *dst, uint64_t bytes, cudaEvent_t after,
                      cudaEvent_t done) {
  return transfer(*impl_, c, nullptr, dst, bytes, after, done);
}

Status Channels::release(int c, void *p) {
  WP_CUDA_TRY(cudaFreeAsync(p, impl_->channels.at(size_t(c))->stream.get()));
  return Status();
}

Status Channels::sum(int c, double *x, size_t n, cudaStream_t stream) {
  Impl::Channel &ch = *impl_->channels.at(size_t(c));
  WP_NCCL_TRY(ncclAllReduce(x, x, n, ncclFloat64, ncclSum, ch.comm, stream));
  return Status();
}

Status Channels::check() const {
  for (const auto &c : impl_->channels) {
    ncclResult_t e = ncclSuccess;
    if (c->comm && ncclCommGetAsyncError(c->comm, &e) == ncclSuccess &&
        e != ncclSuccess && e != ncclInProgress)
      return ncclError("an NCCL communicator", e);
  }
  return Status();
}

void Channels::abort() {
  for (auto &c : impl_->channels)
    if (c->comm) {
      ncclCommAbort(c->comm);
      c->comm = nullptr;
    }
}

#else // no NCCL in this build

struct Channels::Impl {};
Channels::Channels() : impl_(std::make_unique<Impl>()) {}
Channels::~Channels() = default;
std::string Channels::unavailable() {
  return "this build of weipipe has no NCCL (the emulated GPU, or nccl.h "
         "and libnccl were not found next to the CUDA toolkit when it was "
         "configured)";
}
Status Channels::newId(std::vector<uint8_t> *) {
  return Status::error(unavailable());
}
Status Channels::open(const std::vector<std::vector<uint8_t>> &,
                      const std::vector<int> &, const std::vector<int> &) {
  return Status::error(unavailable());
}
Status Channels::send(int, const void *, uint64_t, cudaEvent_t, cudaEvent_t) {
  return Status::error(unavailable());
}
Status Channels::recv(int, void *, uint64_t, cudaEvent_t, cudaEvent_t) {
  return Status::error(unavailable());
}
Status Channels::release(int, void *) { return Status::error(unavailable()); }
Status Channels::sum(int, double *, size_t, cudaStream_t) {
  return Status::error(unavailable());
}
Status Channels::check() const { return Status(); }
void Channels::abort() {}

#endif

} // namespace weipipe::rt::cuda
