//===- Backend.cpp - the executor's CUDA backend --------------------------===//
//
// Part of weipipe's runtime (CUDA backend). The DeviceBackend the executor
// runs on with --device cuda: its memory (device buffers, zeroed), one
// stream every instruction and copy is ordered on, one cuBLASLt object, one
// workspace sized at load time for the largest kernel that needs one, and a
// KernelError record per instruction that can meet a data error, read where
// the executor synchronizes (the end of a micro-batch). Storage is the
// artifact's (fp32 activations at the CPU's offsets); --precision bf16
// multiplies on bf16 tensor cores (GemmShape::fastBf16).
//
// One binding per opcode, `bind<Opcode::X>`, and the switch that calls them
// generated from Opcodes.def, as the CPU executor's: an opcode without a
// CUDA binding does not compile, so none can fall back to the CPU silently.
//
//===----------------------------------------------------------------------===//

#include "../ExecutorInternal.h"
#include "weipipe/runtime/cuda/Blas.h"
#include "weipipe/runtime/cuda/Channels.h"
#include "weipipe/runtime/cuda/Device.h"
#include "weipipe/runtime/cuda/Kernels.h"
#include "weipipe/runtime/cuda/Primitives.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace weipipe::rt {

namespace cuda {
namespace {

using detail::attentionNow;
using detail::Ref;
using detail::Step;

Storage storageOf(DType t) {
  switch (t) {
  case DType::F32:
    return Storage::F32;
  case DType::I64:
    return Storage::I64;
  case DType::I32:
    return Storage::I32;
  case DType::Bool:
    return Storage::Bool;
  }
  return Storage::F32;
}

DevTensor dev(const Ref &r) { return DevTensor{r.p, storageOf(r.dt), r.s}; }

/// Whether an instruction's kernel records data errors.
bool recordsErrors(Opcode op) {
  switch (op) {
  case Opcode::Embedding:
  case Opcode::EmbeddingGrad:
  case Opcode::CrossEntropy:
  case Opcode::Gather:
  case Opcode::GatherGrad:
  case Opcode::ScatterElements:
    return true;
  default:
    return false;
  }
}

/// A kernel's data error in the words the CPU kernel uses for it (the same
/// bad input reads the same on either device).
std::string dataErrorText(const Step &s, const KernelError &e) {
  const std::string v = std::to_string(e.value),
                    at = std::to_string(e.position),
                    n = std::to_string(e.bound);
  switch (s.ins->op) {
  case Opcode::Embedding:
  case Opcode::EmbeddingGrad:
    return std::string(s.ins->op == Opcode::Embedding ? "embedding"
                                                      : "embedding backward") +
           ": id " + v + " at position " + at + " is outside the table of " +
           n + " rows";
  case Opcode::CrossEntropy:
    return "cross_entropy: target " + v + " at row " + at + " is outside [0, " +
           n + ") and is not ignore_index " + std::to_string(s.ins->ints[0]);
  case Opcode::Gather:
  case Opcode::GatherGrad:
    return std::string(s.ins->op == Opcode::Gather ? "gather"
                                                   : "gather backward") +
           ": index " + v + " at position " + at +
           " is out of range for size " + n;
  case Opcode::ScatterElements:
    return "scatter_elements: index " + v + " out of range for axis " +
           std::to_string(s.ins->ints[0]) + " of size " + n;
  default:
    return describe(e, "value");
  }
}

class CudaBackend;

/// What an instruction's binding reads.
struct Ctx {
  CudaBackend &b;
  Step &s;
  const Instruction &I;
  const std::vector<Ref> &in, &out;
  cudaStream_t stream;
  Span<int64_t> span(size_t from, size_t n) const {
    return Span<int64_t>(I.ints.data() + from, n);
  }
};

template <Opcode Op> Status bind(Ctx &c);

class CudaBackend final : public detail::DeviceBackend {
public:
  Status init(Precision precision) {
    precision_ = precision;
    int index = 0;
    // torchrun's LOCAL_RANK picks the GPU of a rank on a node.
    if (const char *lr = std::getenv("LOCAL_RANK"))
      index = std::atoi(lr);
    WP_TRY(selectDevice(index, &info_));
    WP_TRY(stream_.create());
    WP_TRY(Blas::create(&blas_));
    return Status();
  }

  std::string describe() const override {
    std::string d = "cuda: " + info_.name + " (sm_" +
                    std::to_string(info_.major) + std::to_string(info_.minor) +
                    ", device " + std::to_string(info_.index) + ")";
    if (geluEpilogues_)
      d += "; " + std::to_string(geluEpilogues_) +
           " linear + gelu pair(s) on cuBLASLt's GELU epilogue";
    return d;
  }

  Status bindThread() override {
    WP_CUDA_TRY(cudaSetDevice(info_.index));
    return Status();
  }

  uint64_t availableBytes() const override {
    size_t freeBytes = 0, total = 0;
    if (cudaMemGetInfo(&freeBytes, &total) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return freeBytes;
  }

  Status allocate(uint64_t bytes, const std::string &what,
                  uint8_t **out) override {
    DeviceBuffer b;
    WP_TRY(b.allocate(bytes, what));
    WP_CUDA_TRY(cudaMemsetAsync(b.data(), 0, bytes ? bytes : 1, stream()));
    WP_TRY(stream_.synchronize());
    *out = b.as<uint8_t>();
    buffers_.push_back(std::move(b));
    return Status();
  }

  Status upload(void *dst, const void *src, uint64_t bytes) override {
    if (bytes == 0)
      return Status();
    WP_TRY(copyToDevice(dst, src, bytes, stream()));
    return stream_.synchronize(); // the host side may go away on return
  }

  Status download(void *dst, const void *src, uint64_t bytes) override {
    if (bytes == 0)
      return Status();
    WP_TRY(copyToHost(dst, src, bytes, stream()));
    return stream_.synchronize();
  }

  Status zero(void *dst, uint64_t bytes) override {
    if (bytes)
      WP_CUDA_TRY(cudaMemsetAsync(dst, 0, bytes, stream()));
    return Status();
  }

  Status prepare(std::vector<std::vector<Step>> &functions) override {
    uint64_t ws = 0;
    for (std::vector<Step> &steps : functions)
      for (size_t i = 0; i + 1 < steps.size(); ++i)
        if (geluEpilogueFits(steps[i], steps[i + 1])) {
          steps[i].partner = &steps[i + 1];
          steps[i + 1].doneByPrevious = true;
          ++geluEpilogues_;
        }
    for (std::vector<Step> &steps : functions)
      for (Step &s : steps) {
        ws = std::max(ws, workspaceFor(s));
        if (recordsErrors(s.ins->op)) {
          s.errorSlot = int(slots_.size());
          slots_.push_back(&s);
        }
        if (s.ins->op == Opcode::Attention ||
            s.ins->op == Opcode::AttentionGrad)
          WP_TRY(attentionSupported(s.attn));
      }
    uint8_t *p = nullptr;
    WP_TRY(allocate(std::max<uint64_t>(ws, 1), "the kernels' workspace", &p));
    workspace_ = p;
    WP_TRY(allocate(std::max<size_t>(slots_.size(), 1) * sizeof(KernelError),
                    "the kernels' error records", &p));
    errors_ = reinterpret_cast<KernelError *>(p);
    return Status();
  }

  Status run(Step &s) override;

  Status finish(const Artifact &a) override {
    WP_TRY(stream_.synchronize());
    if (slots_.empty())
      return Status();
    std::vector<KernelError> got(slots_.size());
    WP_TRY(download(got.data(), errors_, got.size() * sizeof(KernelError)));
    for (size_t i = 0; i < got.size(); ++i) {
      if (got[i].code == KernelError::None)
        continue;
      const Step &s = *slots_[i];
      WP_TRY(zero(errors_, got.size() * sizeof(KernelError)));
      std::string at = "function '" + a.functions[s.function].name +
                       "', instruction " + std::to_string(s.index) + " (" +
                       opcodeName(s.ins->op);
      if (!s.ins->name.empty())
        at += " '" + s.ins->name + "'";
      return Status::error(at + "): " + dataErrorText(s, got[i]));
    }
    return Status();
  }

  Status optimizerStep(std::vector<ParamBuffers> &params,
                       const std::vector<cpu::AdamWConfig> &configs,
                       int64_t step, double gradClip,
                       double *gradNorm) override;

  Status copy(void *dst, const void *src, uint64_t bytes) override {
    if (bytes && dst != src)
      WP_CUDA_TRY(
          cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()));
    return Status();
  }

  Status accumulate(float *dst, const float *src, int64_t n) override {
    return cuda::accumulate(src, dst, n, stream());
  }

  Status sumsOfSquares(const std::vector<const float *> &tensors,
                       const std::vector<int64_t> &n,
                       std::vector<double> *sums) override;
  Status adamw(std::vector<ParamBuffers> &params,
               const std::vector<cpu::AdamWConfig> &configs, int64_t step,
               float scale) override;

  Status fence(Fence *out) override { return fence(stream(), out); }

  Status await(const Fence &f) override {
    return f ? static_cast<const Event *>(f.get())->makeWait(stream())
             : Status();
  }

  Status stageOut(const void *src, uint64_t bytes, void **staging,
                  Fence *done) override {
    Fence computed;
    WP_TRY(fence(&computed));
    WP_TRY(transferAfter({computed}));
    WP_CUDA_TRY(cudaMallocAsync(staging, std::max<uint64_t>(bytes, 1),
                                transfer_.get()));
    if (bytes)
      WP_CUDA_TRY(cudaMemcpyAsync(*staging, src, bytes,
                                  cudaMemcpyDeviceToDevice, transfer_.get()));
    return fence(transfer_.get(), done);
  }

  Status stageIn(void *dst, void *staging, uint64_t bytes,
                 const std::vector<Fence> &after, Fence *done) override {
    WP_TRY(transferAfter(after));
    if (bytes)
      WP_CUDA_TRY(cudaMemcpyAsync(dst, staging, bytes, cudaMemcpyDeviceToDevice,
                                  transfer_.get()));
    WP_CUDA_TRY(cudaFreeAsync(staging, transfer_.get()));
    return fence(transfer_.get(), done);
  }

  /// Whether `gelu` (the next step) can run as the GELU epilogue of the
  /// GEMM of `linear`: --precision bf16 (fp32 keeps the CPU's GELU to the
  /// last bits), the tanh approximation (cuBLASLt's), gelu reading exactly
  /// linear's result, and an output that is none of linear's operands (it
  /// is written at linear's turn). N a multiple of 8 (the aux rule);
  /// the binding checks the pointers again, as bound then.
  bool geluEpilogueFits(const Step &linear, const Step &gelu) const {
    if (!fastBf16() || linear.ins->op != Opcode::Linear ||
        gelu.ins->op != Opcode::Gelu || linear.partner ||
        linear.doneByPrevious ||
        GeluApprox(gelu.ins->ints[0]) != GeluApprox::Tanh ||
        gelu.in[0].p != linear.out[0].p || gelu.in[0].n != linear.out[0].n ||
        linear.d0 <= 0 || linear.d1 <= 0 || linear.d2 % 8 != 0 ||
        !geluOutputIsFree(linear, gelu))
      return false;
    // cuBLASLt may have no algorithm with this epilogue for the shape: then
    // the pair runs as two instructions.
    GemmShape g = linearShape(linear);
    g.geluAux = true;
    return blas_->plan(g, 16).ok();
  }
  /// The GEMM of a linear step.
  GemmShape linearShape(const Step &s) const {
    return gemmShape(false, s.ins->ints[0] != 0, s.d0, s.d2, s.d1, false,
                     s.in.size() > 2 && s.in[2].p);
  }
  /// A dense row-major GEMM with this run's precision.
  GemmShape gemmShape(bool transA, bool transB, int64_t M, int64_t N, int64_t K,
                      bool accumulate, bool bias) const {
    GemmShape g = denseGemm(transA, transB, M, N, K);
    g.accumulate = accumulate;
    g.bias = bias;
    g.fastBf16 = fastBf16();
    return g;
  }
  static bool geluOutputIsFree(const Step &linear, const Step &gelu) {
    if (gelu.in[0].p != linear.out[0].p)
      return false;
    const Ref &y = gelu.out[0];
    auto overlaps = [&](const Ref &r) {
      if (!r.p || !y.p)
        return false;
      const char *a = static_cast<const char *>(y.p),
                 *b = static_cast<const char *>(r.p);
      return a < b + r.n * 4 && b < a + y.n * 4;
    };
    for (const Ref &r : linear.in)
      if (overlaps(r))
        return false;
    return !overlaps(linear.out[0]) &&
           reinterpret_cast<uintptr_t>(linear.out[0].p) % 16 == 0;
  }

  cudaStream_t stream() const { return stream_.get(); }
  Blas &blas() { return *blas_; }
  bool fastBf16() const { return precision_ == Precision::Bf16; }
  /// Attention multiplies as the GEMMs do: bf16 tensor cores, or fp32.
  AttentionMath attentionMath() const {
    return fastBf16() ? AttentionMath::TensorCoresBf16 : AttentionMath::Fp32;
  }
  void *workspace() const { return workspace_; }
  KernelError *errorOf(const Step &s) const {
    return s.errorSlot < 0 ? nullptr : errors_ + s.errorSlot;
  }

  /// A dense row-major GEMM with this run's precision; with `geluOut`, C
  /// is the pre-activation and geluOut gets gelu(C) (the epilogue).
  Status gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K,
              const float *A, const float *B, float *C, bool accumulate,
              const float *bias = nullptr, float *geluOut = nullptr) {
    if (M <= 0 || N <= 0)
      return Status();
    if (K <= 0) // C = 0 (or C unchanged with accumulate)
      return accumulate ? Status()
                        : zero(C, uint64_t(M) * uint64_t(N) * sizeof(float));
    GemmShape g =
        gemmShape(transA, transB, M, N, K, accumulate, bias != nullptr);
    g.geluAux = geluOut != nullptr;
    // cuBLASLt's D is the epilogue's output, its aux the value before it.
    if (geluOut)
      return blas_->gemm(g, 1.0f, A, B, geluOut, bias, stream(), C);
    return blas_->gemm(g, 1.0f, A, B, C, bias, stream());
  }

  Status newChannelId(std::vector<uint8_t> *id) override {
    return Channels::newId(id);
  }
  Status openChannels(const std::vector<std::vector<uint8_t>> &ids,
                      const std::vector<int> &sizes,
                      const std::vector<int> &index) override {
    return channels_.open(ids, sizes, index);
  }
  Status channelSend(int channel, const void *src, uint64_t bytes,
                     Fence *done) override {
    // Buffered: a copy of the bytes goes, so the slot is free once copied
    // and the sender never waits for its receiver.
    void *scratch = nullptr;
    WP_CUDA_TRY(
        cudaMallocAsync(&scratch, std::max<uint64_t>(bytes, 1), stream()));
    if (bytes)
      WP_CUDA_TRY(cudaMemcpyAsync(scratch, src, bytes, cudaMemcpyDeviceToDevice,
                                  stream()));
    WP_TRY(fence(done));
    Fence sent;
    WP_TRY(channelTransfer(channel, scratch, nullptr, bytes, *done, &sent));
    return channels_.release(channel, scratch);
  }
  Status channelRecv(int channel, void *dst, uint64_t bytes, const Fence &after,
                     Fence *done) override {
    return channelTransfer(channel, nullptr, dst, bytes, after, done);
  }
  Status channelSum(int channel, double *host, size_t n,
                    const std::function<Status()> &check,
                    double timeoutSeconds) override {
    if (sumsBuffer_.bytes() < n * sizeof(double))
      WP_TRY(sumsBuffer_.allocate(n * sizeof(double), "the summed numbers"));
    WP_TRY(upload(sumsBuffer_.data(), host, n * sizeof(double)));
    WP_TRY(channels_.sum(channel, sumsBuffer_.as<double>(), n, stream()));
    WP_TRY(drain(check, timeoutSeconds)); // a peer may never join the sum
    return download(host, sumsBuffer_.data(), n * sizeof(double));
  }
  void abortChannels() override { channels_.abort(); }
  Status drain(const std::function<Status()> &check,
               double timeoutSeconds) override {
    const auto start = std::chrono::steady_clock::now();
    auto last = start;
    for (;;) {
      const cudaError_t q = cudaStreamQuery(stream());
      if (q == cudaSuccess)
        return Status();
      if (q != cudaErrorNotReady) {
        channels_.abort();
        WP_CUDA_TRY(q);
      }
      const auto now = std::chrono::steady_clock::now();
      if (now - last >= std::chrono::milliseconds(100)) {
        last = now;
        Status st = check();
        if (st.ok())
          st = channels_.check();
        if (st.ok() &&
            now - start > std::chrono::duration<double>(timeoutSeconds))
          st = Status::error(
              "the GPU did not finish the step's work within " +
              std::to_string(int(timeoutSeconds)) +
              " s (a transfer whose peer never came?); the NCCL channels "
              "were aborted");
        if (!st.ok()) {
          channels_.abort();
          (void)stream_.synchronize(); // the aborted transfers end
          cudaGetLastError();
          return st;
        }
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

private:
  /// A fence of everything enqueued on `on` so far.
  static Status fence(cudaStream_t on, Fence *out) {
    auto e = std::make_shared<Event>();
    WP_TRY(e->create());
    WP_TRY(e->record(on));
    *out = std::move(e);
    return Status();
  }
  /// A channel's send (src) or receive (dst) after `after` (null: the
  /// compute stream so far); *done: its fence.
  Status channelTransfer(int channel, const void *src, void *dst,
                         uint64_t bytes, Fence after, Fence *done) {
    if (!after)
      WP_TRY(fence(&after));
    auto e = std::make_shared<Event>();
    WP_TRY(e->create());
    const cudaEvent_t a = static_cast<const Event *>(after.get())->get();
    WP_TRY(src ? channels_.send(channel, src, bytes, a, e->get())
               : channels_.recv(channel, dst, bytes, a, e->get()));
    *done = std::move(e);
    return Status();
  }
  /// The transfer stream (made at the first transfer) waits for `after`.
  Status transferAfter(const std::vector<Fence> &after) {
    if (!transfer_.get()) {
      WP_TRY(transfer_.createUrgent());
      // Staging buffers come from the device's stream-ordered pool; keep
      // what it frees instead of returning it at every synchronization.
      cudaMemPool_t pool;
      WP_CUDA_TRY(cudaDeviceGetDefaultMemPool(&pool, info_.index));
      uint64_t keep = UINT64_MAX;
      WP_CUDA_TRY(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold,
                                          &keep));
    }
    for (const Fence &f : after)
      if (f)
        WP_TRY(static_cast<const Event *>(f.get())->makeWait(transfer_.get()));
    return Status();
  }
  /// The AdamW moments of the parameters with values, laid out as they
  /// are (64-byte aligned each): m at moments_ + at[i], v `floats` later.
  Status momentLayout(const std::vector<ParamBuffers> &params,
                      std::vector<uint64_t> *at, uint64_t *floats);
  /// The norm's scratch: the squared norm (double), the clipping factor,
  /// the norm, then the partial sums.
  Status normSpace();
  /// AdamW over every parameter with a value and a gradient, the gradient
  /// scaled by *scale (device; nullptr: 1).
  Status adamwAll(std::vector<ParamBuffers> &params,
                  const std::vector<cpu::AdamWConfig> &configs, int64_t step,
                  const float *scale);

  uint64_t workspaceFor(const Step &s) const {
    switch (s.ins->op) {
    case Opcode::LayerNormGradInput:
    case Opcode::LayerNormGradParams:
    case Opcode::RMSNormGradInput:
    case Opcode::RMSNormGradScale:
      return normBackwardWorkspaceBytes(s.d0, s.d1);
    case Opcode::EmbeddingGrad:
      return embeddingBackwardWorkspaceBytes(s.in[0].n);
    case Opcode::AttentionGrad:
      return attentionBackwardWorkspaceBytes(s.attn);
    case Opcode::CrossEntropy:
    case Opcode::CrossEntropyGrad:
      return crossEntropyWorkspaceBytes(s.in[1].n);
    default:
      return 0;
    }
  }

  Precision precision_ = Precision::Fp32;
  DeviceInfo info_;
  Stream stream_;
  Stream transfer_; // made at the first transfer
  Channels channels_; // NCCL, between processes
  std::unique_ptr<Blas> blas_;
  std::vector<DeviceBuffer> buffers_;
  void *workspace_ = nullptr;
  KernelError *errors_ = nullptr;
  size_t geluEpilogues_ = 0; // linear + gelu pairs fused (prepare)
  std::vector<const Step *> slots_;
  // The optimizer's: the moments (laid out as the parameters) and the norm's
  // scratch, made on the first step.
  float *moments_ = nullptr;
  uint8_t *normSpace_ = nullptr;
  DeviceBuffer sumsBuffer_; // a pipeline rank's per-parameter sums
};

//===----------------------------------------------------------------------===//
// Matmul with NumPy batch broadcasting (cpu::matmul_forward's semantics)
//===----------------------------------------------------------------------===//

/// a [..., M, K] x b [..., K, N]: the matrix sizes (a rank-1 lhs is [1, K],
/// a rank-1 rhs [K, 1]) and the batch shapes of both.
struct MatmulDims {
  int64_t M = 1, K = 1, N = 1;
  std::vector<int64_t> aBatch, bBatch, batch; // batch: the broadcast
  int64_t aCount = 1, bCount = 1, count = 1;  // their element counts

  MatmulDims(const cpu::Shape &as, const cpu::Shape &bs) {
    if (as.rank == 1) {
      K = as[0];
    } else {
      M = as[as.rank - 2];
      K = as[as.rank - 1];
      aBatch.assign(as.dims, as.dims + as.rank - 2);
    }
    if (bs.rank == 1) {
      N = 1;
    } else {
      N = bs[bs.rank - 1];
      bBatch.assign(bs.dims, bs.dims + bs.rank - 2);
    }
    const size_t r = std::max(aBatch.size(), bBatch.size());
    batch.assign(r, 1);
    for (size_t i = 0; i < r; ++i) {
      const int64_t da = i + aBatch.size() >= r ? aBatch[i + aBatch.size() - r]
                                                : 1,
                    db = i + bBatch.size() >= r ? bBatch[i + bBatch.size() - r]
                                                : 1;
      batch[i] = std::max(da, db);
    }
    for (int64_t d : aBatch)
      aCount *= d;
    for (int64_t d : bBatch)
      bCount *= d;
    for (int64_t d : batch)
      count *= d;
  }

  /// The batch index of `operand`'s dims (aligned at the end) for result
  /// batch r.
  static int64_t operandBatch(const std::vector<int64_t> &dims,
                              const std::vector<int64_t> &batch, int64_t r) {
    int64_t idx = 0, stride = 1;
    for (size_t i = batch.size(); i-- > 0;) {
      const int64_t coord = r % batch[i];
      r /= batch[i];
      const size_t back = batch.size() - 1 - i;
      if (back < dims.size()) {
        const int64_t d = dims[dims.size() - 1 - back];
        idx += (d == 1 ? 0 : coord) * stride;
        stride *= d;
      }
    }
    return idx;
  }
};

Status matmulForward(CudaBackend &b, const Ref &a, const Ref &bm,
                     const Ref &c) {
  const MatmulDims d(a.s, bm.s);
  if (d.bCount == 1) // one GEMM over every row of a
    return b.gemm(false, false, d.aCount * d.M, d.N, d.K, a.f(), bm.f(), c.f(),
                  false);
  for (int64_t r = 0; r < d.count; ++r) {
    const int64_t ia = MatmulDims::operandBatch(d.aBatch, d.batch, r);
    const int64_t ib = MatmulDims::operandBatch(d.bBatch, d.batch, r);
    WP_TRY(b.gemm(false, false, d.M, d.N, d.K, a.f() + ia * d.M * d.K,
                  bm.f() + ib * d.K * d.N, c.f() + r * d.M * d.N, false));
  }
  return Status();
}

/// da = dc b^T and db = a^T dc, each summed over the batches its operand
/// was broadcast along (in result-batch order); WRITTEN.
Status matmulBackward(CudaBackend &b, const Ref &a, const Ref &bm,
                      const Ref &dc, const Ref &da, const Ref &db) {
  const MatmulDims d(a.s, bm.s);
  if (d.bCount == 1) {
    if (da.p)
      WP_TRY(b.gemm(false, true, d.aCount * d.M, d.K, d.N, dc.f(), bm.f(),
                    da.f(), false));
    if (db.p)
      WP_TRY(b.gemm(true, false, d.K, d.N, d.aCount * d.M, a.f(), dc.f(),
                    db.f(), false));
    return Status();
  }
  // Each operand batch receives its result batches in order: the first
  // writes, the later ones add.
  std::vector<char> aSeen(size_t(d.aCount), 0), bSeen(size_t(d.bCount), 0);
  for (int64_t r = 0; r < d.count; ++r) {
    const int64_t ia = MatmulDims::operandBatch(d.aBatch, d.batch, r);
    const int64_t ib = MatmulDims::operandBatch(d.bBatch, d.batch, r);
    const float *dcr = dc.f() + r * d.M * d.N;
    if (da.p) {
      WP_TRY(b.gemm(false, true, d.M, d.K, d.N, dcr, bm.f() + ib * d.K * d.N,
                    da.f() + ia * d.M * d.K, aSeen[size_t(ia)] != 0));
      aSeen[size_t(ia)] = 1;
    }
    if (db.p) {
      WP_TRY(b.gemm(true, false, d.K, d.N, d.M, a.f() + ia * d.M * d.K, dcr,
                    db.f() + ib * d.K * d.N, bSeen[size_t(ib)] != 0));
      bSeen[size_t(ib)] = 1;
    }
  }
  return Status();
}

//===----------------------------------------------------------------------===//
// The bindings, one per opcode of Opcodes.def
//===----------------------------------------------------------------------===//

template <Opcode Op> Status bind(Ctx &) {
  static_assert(Op != Op, "an opcode of Opcodes.def has no CUDA binding");
  return Status();
}

template <> Status bind<Opcode::Binary>(Ctx &c) {
  return binary_forward(BinaryOp(c.I.ints[0]), dev(c.in[0]), dev(c.in[1]),
                        dev(c.out[0]), c.stream);
}
template <> Status bind<Opcode::Compare>(Ctx &c) {
  return compare_forward(CompareOp(c.I.ints[0]), dev(c.in[0]), dev(c.in[1]),
                         dev(c.out[0]), c.stream);
}
template <> Status bind<Opcode::Logic>(Ctx &c) {
  return logic_forward(LogicOp(c.I.ints[0]), dev(c.in[0]), dev(c.in[1]),
                       dev(c.out[0]), c.stream);
}
template <> Status bind<Opcode::Not>(Ctx &c) {
  return not_forward(dev(c.in[0]), dev(c.out[0]), c.stream);
}
template <> Status bind<Opcode::IsNan>(Ctx &c) {
  return is_nan_forward(dev(c.in[0]), dev(c.out[0]), c.stream);
}
template <> Status bind<Opcode::Cast>(Ctx &c) {
  return cast_any(dev(c.in[0]), dev(c.out[0]), c.stream);
}
template <> Status bind<Opcode::Where>(Ctx &c) {
  return where_forward(dev(c.in[0]), dev(c.in[1]), dev(c.in[2]), dev(c.out[0]),
                       c.stream);
}
template <> Status bind<Opcode::Unary>(Ctx &c) {
  return unary_forward(UnaryOp(c.I.ints[0]), dev(c.in[0]), dev(c.out[0]),
                       c.stream);
}
template <> Status bind<Opcode::Copy>(Ctx &c) {
  const uint64_t bytes = c.I.operands[0].bytes();
  if (c.out[0].p == c.in[0].p || bytes == 0)
    return Status();
  WP_CUDA_TRY(cudaMemcpyAsync(c.out[0].p, c.in[0].p, bytes,
                              cudaMemcpyDeviceToDevice, c.stream));
  return Status();
}
template <> Status bind<Opcode::Transpose>(Ctx &c) {
  return transpose(dev(c.in[0]), c.span(0, c.I.ints.size()), dev(c.out[0]),
                   c.stream);
}
template <> Status bind<Opcode::Broadcast>(Ctx &c) {
  return broadcast_to(dev(c.in[0]), dev(c.out[0]), c.stream);
}
template <> Status bind<Opcode::Concat>(Ctx &c) {
  std::vector<DevTensor> inputs;
  inputs.reserve(c.in.size());
  for (const Ref &r : c.in)
    inputs.push_back(dev(r));
  return concat(Span<DevTensor>(inputs), int(c.I.ints[0]), dev(c.out[0]),
                c.stream);
}
template <> Status bind<Opcode::Slice>(Ctx &c) {
  const size_t r = size_t(c.in[0].s.rank);
  return slice(dev(c.in[0]), c.span(0, r), c.span(r, r), c.span(2 * r, r),
               dev(c.out[0]), c.stream);
}
template <> Status bind<Opcode::Gather>(Ctx &c) {
  return gather(dev(c.in[0]), int(c.I.ints[0]), dev(c.in[1]), dev(c.out[0]),
                c.b.errorOf(c.s), c.stream);
}
template <> Status bind<Opcode::Trilu>(Ctx &c) {
  return trilu(dev(c.in[0]), c.I.ints[0] != 0, c.I.ints[1], dev(c.out[0]),
               c.stream);
}
template <> Status bind<Opcode::Reduce>(Ctx &c) {
  return reduce_forward(ReduceOp(c.I.ints[0]), dev(c.in[0]),
                        c.span(1, c.I.ints.size() - 1), dev(c.out[0]),
                        c.stream);
}
template <> Status bind<Opcode::Softmax>(Ctx &c) {
  return softmax_forward(dev(c.in[0]), int(c.I.ints[0]), dev(c.out[0]),
                         c.stream);
}
template <> Status bind<Opcode::LogSoftmax>(Ctx &c) {
  return log_softmax_forward(dev(c.in[0]), int(c.I.ints[0]), dev(c.out[0]),
                             c.stream);
}
template <> Status bind<Opcode::Matmul>(Ctx &c) {
  return matmulForward(c.b, c.in[0], c.in[1], c.out[0]);
}
template <> Status bind<Opcode::Linear>(Ctx &c) {
  // y[M, N] = x[M, K] W (W [K, N], or [N, K] used transposed) + bias; with
  // a partner, the gelu after it on the GEMM's epilogue (prepare chose it;
  // the pointers as bound now decide).
  const Step *gelu = c.s.partner;
  const bool fused = gelu && CudaBackend::geluOutputIsFree(c.s, *gelu);
  WP_TRY(c.b.gemm(false, c.I.ints[0] != 0, c.s.d0, c.s.d2, c.s.d1, c.in[0].f(),
                  c.in[1].f(), c.out[0].f(), false, c.in[2].f(),
                  fused ? gelu->out[0].f() : nullptr));
  if (!gelu || fused)
    return Status();
  return gelu_forward<float>(gelu->in[0].f(), gelu->out[0].f(), gelu->in[0].n,
                             GeluApprox::Tanh, c.stream);
}
template <> Status bind<Opcode::LayerNorm>(Ctx &c) {
  return layer_norm_forward<float>(c.in[0].f(), c.in[1].f(), c.in[2].f(),
                                   c.out[0].f(), nullptr, nullptr, c.s.d0,
                                   c.s.d1, float(c.I.floats[0]), c.stream);
}
template <> Status bind<Opcode::RMSNorm>(Ctx &c) {
  return rms_norm_forward<float>(c.in[0].f(), c.in[1].f(), c.out[0].f(),
                                 nullptr, c.s.d0, c.s.d1, float(c.I.floats[0]),
                                 c.stream);
}
template <> Status bind<Opcode::Attention>(Ctx &c) {
  return attention_forward<float>(
      attentionNow(c.s, 3), c.in[0].f(), c.in[1].f(), c.in[2].f(), c.out[0].f(),
      c.out.size() > 1 ? c.out[1].f() : nullptr, c.stream, c.b.attentionMath());
}
template <> Status bind<Opcode::Rotary>(Ctx &c) {
  return rotary_forward<float>(c.in[0].f(), c.in[1].f(), c.in[2].f(),
                               c.out[0].f(), c.s.rotary, c.stream);
}
template <> Status bind<Opcode::Gelu>(Ctx &c) {
  return gelu_forward<float>(c.in[0].f(), c.out[0].f(), c.in[0].n,
                             GeluApprox(c.I.ints[0]), c.stream);
}
template <> Status bind<Opcode::Silu>(Ctx &c) {
  return silu_forward<float>(c.in[0].f(), c.out[0].f(), c.in[0].n, c.stream);
}
template <> Status bind<Opcode::Swiglu>(Ctx &c) {
  return swiglu_forward<float>(c.in[0].f(), c.in[1].f(), c.out[0].f(),
                               c.in[0].n, c.stream);
}
template <> Status bind<Opcode::Embedding>(Ctx &c) {
  return embedding_forward<float>(c.in[0].f(), c.in[1].ids(), c.out[0].f(),
                                  c.in[1].n, c.in[0].s[0], c.in[0].s[1],
                                  c.b.errorOf(c.s), c.stream);
}
template <> Status bind<Opcode::CrossEntropy>(Ctx &c) {
  return cross_entropy_forward<float>(
      c.in[0].f(), c.in[1].ids(), c.in[1].n, c.in[0].s[c.in[0].s.rank - 1],
      c.I.ints[0], c.out[0].f(), nullptr, nullptr, c.b.workspace(),
      c.b.errorOf(c.s), c.stream);
}
template <> Status bind<Opcode::CumSum>(Ctx &c) {
  return cumsum(dev(c.in[0]), int(c.I.ints[0]), c.I.ints[1] != 0,
                c.I.ints[2] != 0, dev(c.out[0]), c.stream);
}
template <> Status bind<Opcode::Band>(Ctx &c) {
  return band(dev(c.in[0]), dev(c.out[0]), c.stream);
}
template <> Status bind<Opcode::TopK>(Ctx &c) {
  return topk_indices(dev(c.in[0]), c.I.ints[0], c.I.ints[1] != 0,
                      dev(c.out[0]), c.stream);
}
template <> Status bind<Opcode::ScatterElements>(Ctx &c) {
  return scatter_elements(dev(c.in[0]), dev(c.in[1]), dev(c.in[2]),
                          int(c.I.ints[0]), dev(c.out[0]), c.b.errorOf(c.s),
                          c.stream);
}

template <> Status bind<Opcode::BinaryGrad>(Ctx &c) {
  return binary_backward(BinaryOp(c.I.ints[0]), dev(c.in[0]), dev(c.in[1]),
                         dev(c.in[2]), dev(c.out[0]), dev(c.out[1]), c.stream);
}
template <> Status bind<Opcode::UnaryGrad>(Ctx &c) {
  return unary_backward(UnaryOp(c.I.ints[0]), dev(c.in[0]), dev(c.in[1]),
                        dev(c.in[2]), dev(c.out[0]), c.stream);
}
template <> Status bind<Opcode::ReduceGrad>(Ctx &c) {
  // x is read for Max only and has dx's shape.
  DevTensor x = dev(c.in[0]);
  x.s = c.out[0].s;
  return reduce_backward(ReduceOp(c.I.ints[0]), x,
                         c.span(1, c.I.ints.size() - 1), dev(c.in[1]),
                         dev(c.in[2]), dev(c.out[0]), c.stream);
}
template <> Status bind<Opcode::WhereGrad>(Ctx &c) {
  return where_backward(dev(c.in[0]), dev(c.in[1]), dev(c.out[0]),
                        dev(c.out[1]), c.stream);
}
template <> Status bind<Opcode::SumToShape>(Ctx &c) {
  return sum_to_shape(dev(c.in[0]), dev(c.out[0]), c.stream);
}
template <> Status bind<Opcode::SliceGrad>(Ctx &c) {
  const size_t r = size_t(c.out[0].s.rank);
  return slice_backward(dev(c.in[0]), c.span(0, r), c.span(r, r),
                        c.span(2 * r, r), dev(c.out[0]), c.stream);
}
template <> Status bind<Opcode::GatherGrad>(Ctx &c) {
  return gather_backward(dev(c.in[0]), dev(c.in[1]), int(c.I.ints[0]),
                         dev(c.out[0]), false, c.b.errorOf(c.s), c.stream);
}
template <> Status bind<Opcode::MatmulGrad>(Ctx &c) {
  return matmulBackward(c.b, c.in[0], c.in[1], c.in[2], c.out[0], c.out[1]);
}
template <> Status bind<Opcode::LinearGradWeight>(Ctx &c) {
  // dW += x^T dy ([K, N]) or dy^T x ([N, K]); zeroed first unless the
  // instruction accumulates.
  const int64_t M = c.s.d0, K = c.s.d1, N = c.s.d2;
  if (c.I.ints[0] != 0)
    return c.b.gemm(true, false, N, K, M, c.in[1].f(), c.in[0].f(),
                    c.out[0].f(), true);
  return c.b.gemm(true, false, K, N, M, c.in[0].f(), c.in[1].f(), c.out[0].f(),
                  true);
}

/// The norm gradients: an input-gradient op and its parameter-gradient
/// partner (Instruction::kFusedWithNext) run as one call, which recomputes
/// the statistics once.
Status normGrad(Ctx &c) {
  const detail::NormGradCall n = detail::normGradCall(c.s);
  if (n.layerNorm)
    return layer_norm_backward<float>(n.x, n.scale, n.dy, n.dx, n.dscale,
                                      n.dbias, c.s.d0, c.s.d1, n.eps,
                                      c.b.workspace(), c.stream);
  return rms_norm_backward<float>(n.x, n.scale, n.dy, n.dx, n.dscale, c.s.d0,
                                  c.s.d1, n.eps, c.b.workspace(), c.stream);
}
template <> Status bind<Opcode::LayerNormGradInput>(Ctx &c) {
  return normGrad(c);
}
template <> Status bind<Opcode::LayerNormGradParams>(Ctx &c) {
  return normGrad(c);
}
template <> Status bind<Opcode::RMSNormGradInput>(Ctx &c) {
  return normGrad(c);
}
template <> Status bind<Opcode::RMSNormGradScale>(Ctx &c) {
  return normGrad(c);
}
template <> Status bind<Opcode::AttentionGrad>(Ctx &c) {
  // Without the forward's log-sum-exp (operand 6) the kernel recomputes it.
  return attention_backward<float>(
      attentionNow(c.s, 5), c.in[0].f(), c.in[1].f(), c.in[2].f(), c.in[3].f(),
      c.in.size() > 6 ? c.in[6].f() : nullptr, c.in[4].f(), c.out[0].f(),
      c.out[1].f(), c.out[2].f(), c.b.workspace(), c.stream,
      c.b.attentionMath());
}
template <> Status bind<Opcode::GeluGrad>(Ctx &c) {
  return gelu_backward<float>(c.in[0].f(), c.in[1].f(), c.out[0].f(), c.in[0].n,
                              GeluApprox(c.I.ints[0]), c.stream);
}
template <> Status bind<Opcode::SiluGrad>(Ctx &c) {
  return silu_backward<float>(c.in[0].f(), c.in[1].f(), c.out[0].f(), c.in[0].n,
                              c.stream);
}
template <> Status bind<Opcode::SwigluGrad>(Ctx &c) {
  return swiglu_backward<float>(c.in[0].f(), c.in[1].f(), c.in[2].f(),
                                c.out[0].f(), c.out[1].f(), c.in[0].n,
                                c.stream);
}
template <> Status bind<Opcode::EmbeddingGrad>(Ctx &c) {
  const int64_t numIds = c.in[0].n;
  return embedding_backward<float>(
      c.in[0].ids(), c.in[1].f(), c.out[0].f(), numIds, c.out[0].s[0],
      c.out[0].s[1], c.I.ints.empty() ? -1 : c.I.ints[0], c.b.workspace(),
      embeddingBackwardWorkspaceBytes(numIds), c.b.errorOf(c.s), c.stream);
}
template <> Status bind<Opcode::CrossEntropyGrad>(Ctx &c) {
  return cross_entropy_backward<float>(c.in[0].f(), c.in[1].ids(), c.in[2].f(),
                                       c.in[1].n, c.in[0].s[c.in[0].s.rank - 1],
                                       c.I.ints[0], c.out[0].f(),
                                       c.b.workspace(), c.stream);
}
template <> Status bind<Opcode::SoftmaxGrad>(Ctx &c) {
  return softmax_backward(dev(c.in[0]), dev(c.in[1]), int(c.I.ints[0]),
                          dev(c.out[0]), c.stream);
}
template <> Status bind<Opcode::LogSoftmaxGrad>(Ctx &c) {
  return log_softmax_backward(dev(c.in[0]), dev(c.in[1]), int(c.I.ints[0]),
                              dev(c.out[0]), c.stream);
}
template <> Status bind<Opcode::Accumulate>(Ctx &c) {
  return accumulate(c.in[0].f(), c.out[0].f(), c.in[0].n, c.stream);
}

Status CudaBackend::run(Step &s) {
  Ctx c{*this, s, *s.ins, s.in, s.out, stream()};
  switch (s.ins->op) {
#define WP_OPCODE(Name, ...)                                                   \
  case Opcode::Name:                                                           \
    return bind<Opcode::Name>(c);
#include "weipipe/runtime/Opcodes.def"
  }
  return Status::error("unknown opcode " + std::to_string(unsigned(s.ins->op)));
}

Status CudaBackend::momentLayout(const std::vector<ParamBuffers> &params,
                                 std::vector<uint64_t> *at, uint64_t *floats) {
  *floats = 0;
  for (const ParamBuffers &p : params) {
    at->push_back(*floats);
    if (p.value) // a pipeline rank's parameters of other ranks have none
      *floats += uint64_t(p.numel + 15) / 16 * 16; // 64-byte aligned
  }
  if (!moments_) {
    uint8_t *m = nullptr;
    WP_TRY(allocate(2 * std::max<uint64_t>(*floats, 1) * sizeof(float),
                    "the AdamW state", &m));
    moments_ = reinterpret_cast<float *>(m);
  }
  return Status();
}

Status CudaBackend::normSpace() {
  if (!normSpace_)
    WP_TRY(allocate(256 + sumOfSquaresWorkspaceBytes(), "the gradient norm",
                    &normSpace_));
  return Status();
}

Status CudaBackend::adamwAll(std::vector<ParamBuffers> &params,
                             const std::vector<cpu::AdamWConfig> &configs,
                             int64_t step, const float *scale) {
  std::vector<uint64_t> at;
  uint64_t floats = 0;
  WP_TRY(momentLayout(params, &at, &floats));
  for (size_t i = 0; i < params.size(); ++i) {
    ParamBuffers &p = params[i];
    if (!p.value || !p.grad || p.numel == 0)
      continue;
    float *m = moments_ + at[i], *v = moments_ + floats + at[i];
    WP_TRY(adamw_step(p.value, p.grad, m, v, p.numel,
                      adamwCoefficients(configs[i], step), scale, nullptr,
                      stream()));
  }
  return Status();
}

Status CudaBackend::optimizerStep(std::vector<ParamBuffers> &params,
                                  const std::vector<cpu::AdamWConfig> &configs,
                                  int64_t step, double gradClip,
                                  double *gradNorm) {
  WP_TRY(normSpace());
  double *sumsq = reinterpret_cast<double *>(normSpace_);
  float *scale = reinterpret_cast<float *>(normSpace_ + 8);
  double *norm = reinterpret_cast<double *>(normSpace_ + 16);
  void *partials = normSpace_ + 256;
  // The global norm as cpu::global_norm sums it: tensor by tensor, in order.
  WP_TRY(zero(sumsq, sizeof(double)));
  for (const ParamBuffers &p : params)
    if (p.grad)
      WP_TRY(sum_of_squares(p.grad, p.numel, sumsq, partials, stream()));
  WP_TRY(
      clip_scale(sumsq, gradClip > 0 ? gradClip : 1.0, scale, norm, stream()));
  WP_TRY(adamwAll(params, configs, step, gradClip > 0 ? scale : nullptr));
  WP_TRY(download(gradNorm, norm, sizeof(double)));
  return Status();
}

Status CudaBackend::sumsOfSquares(const std::vector<const float *> &tensors,
                                  const std::vector<int64_t> &n,
                                  std::vector<double> *sums) {
  sums->assign(tensors.size(), 0.0);
  if (tensors.empty())
    return Status();
  WP_TRY(normSpace());
  if (sumsBuffer_.bytes() < tensors.size() * sizeof(double))
    WP_TRY(sumsBuffer_.allocate(tensors.size() * sizeof(double),
                                "the gradients' sums of squares"));
  double *dev = sumsBuffer_.as<double>();
  WP_TRY(zero(dev, tensors.size() * sizeof(double)));
  // Each into its own zeroed double: the total the single-rank norm adds to
  // its running sum, so the host adds the same numbers in the same order.
  for (size_t i = 0; i < tensors.size(); ++i)
    WP_TRY(
        sum_of_squares(tensors[i], n[i], dev + i, normSpace_ + 256, stream()));
  return download(sums->data(), dev, tensors.size() * sizeof(double));
}

Status CudaBackend::adamw(std::vector<ParamBuffers> &params,
                          const std::vector<cpu::AdamWConfig> &configs,
                          int64_t step, float scale) {
  float *dev = nullptr;
  if (scale != 1.0f) {
    WP_TRY(normSpace());
    dev = reinterpret_cast<float *>(normSpace_ + 8);
    WP_TRY(upload(dev, &scale, sizeof scale));
  }
  return adamwAll(params, configs, step, dev);
}

} // namespace
} // namespace cuda

std::unique_ptr<detail::DeviceBackend>
detail::makeCudaBackend(Precision precision, std::string *error) {
  auto b = std::make_unique<cuda::CudaBackend>();
  if (Status st = b->init(precision); !st.ok()) {
    *error = "--device cuda: " + st.message();
    return nullptr;
  }
  return b;
}

} // namespace weipipe::rt
