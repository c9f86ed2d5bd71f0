//===- bench_kernels.cpp - the CUDA backend's GEMMs and attention, timed --===//
//
// Part of weipipe's benchmarks (bench/gpu/README.md). Two subcommands:
//
//   bench_gpu_kernels gemm [--layers H:S,...] [--no-peak] [--target-ms MS]
//                          [--repeats R] [--finalists F] [--list]
//     Every GEMM of a Llama-style layer (forward, dX, dW) through
//     cuda::Blas::gemm, next to "cuBLASLt's best": the same descriptors,
//     up to 16 algorithms from cublasLtMatmulAlgoGetHeuristic, each timed,
//     the fastest kept. Then the bf16 GEMM peak (best of a few large
//     squares), the MFU denominator of later benchmarks.
//
//   bench_gpu_kernels attention [--cases B:H:HKV:S:D,...] [--target-ms MS]
//                               [--repeats R] [--list]
//     cuda::attention_forward and forward + attention_backward, bf16 on
//     tensor cores (what --precision bf16 runs), causal. The peer
//     (PyTorch's flash SDPA) is bench_gpu.py's.
//
// Timing (every measurement): one warm-up call, one timed call to size N
// (the iterations of a sample, about --target-ms of GPU time), then
// --repeats samples of N back-to-back calls between two CUDA events; the
// median sample / N is reported. With N = 1 the sizing call is the first
// sample; a call longer than 2 s gets that one sample alone (the budget of
// the device run). Candidates compared with each other (ours
// and cuBLASLt's finalists) are sampled in turn, so clock drift hits both.
// No L2 flush: every operand set here (40 MiB and up for the GEMMs,
// re-read many times per product) is compute-bound, far above the H100's
// ~300 FLOP/byte ridge, and ours and the peer run under the same conditions.
//
// Output: a table for people and, per measurement, one line
//   RESULT kind=K shape=S ... ms=MS tflops=T iters=N repeats=R
// for bench_gpu.py. Any CUDA, cuBLAS or runtime error is printed and ends
// the run with status 1 (2: bad arguments).
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/cuda/Blas.h"
#include "weipipe/runtime/cuda/Device.h"
#include "weipipe/runtime/cuda/Kernels.h"
#include "weipipe/runtime/cuda/Primitives.h"

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace cu = weipipe::rt::cuda;
using cu::ElementType;
using cu::GemmShape;
using weipipe::rt::Status;

namespace {

//===----------------------------------------------------------------------===//
// Errors: every failure becomes a BenchError, printed by main
//===----------------------------------------------------------------------===//

struct BenchError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void check(cudaError_t e, const char *what) {
  if (e != cudaSuccess)
    throw BenchError(std::string(what) + ": " + cudaGetErrorName(e) + " (" +
                     cudaGetErrorString(e) + ")");
}
void check(cublasStatus_t s, const char *what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw BenchError(std::string(what) + ": " + cublasLtGetStatusName(s) +
                     " (" + cublasLtGetStatusString(s) + ")");
}
void check(const Status &s, const char *what) {
  if (!s.ok())
    throw BenchError(std::string(what) + ": " + s.message());
}
#define CHECK(expr) check((expr), #expr)

/// Lines reach bench_gpu.py as they are printed (it may stop us on a time
/// limit and keeps what came).
void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void out(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vprintf(fmt, ap);
  va_end(ap);
  std::fflush(stdout);
}

//===----------------------------------------------------------------------===//
// Device memory with random contents
//===----------------------------------------------------------------------===//

struct Buffer {
  void *p = nullptr;
  size_t bytes = 0;
  Buffer() = default;
  Buffer(const Buffer &) = delete;
  Buffer &operator=(const Buffer &) = delete;
  ~Buffer() {
    if (p)
      cudaFree(p);
  }
  void allocate(size_t n, const std::string &what) {
    const cudaError_t e = cudaMalloc(&p, std::max<size_t>(n, 1));
    if (e != cudaSuccess) {
      p = nullptr;
      throw BenchError("cudaMalloc of " + what + " (" + std::to_string(n) +
                       " bytes): " + cudaGetErrorName(e) + " (" +
                       cudaGetErrorString(e) + ")");
    }
    bytes = n;
  }
  template <class T> T *as() const { return static_cast<T *>(p); }
};

uint16_t toBf16(float f) { // round to nearest even (no NaNs here)
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

/// A 32 MiB block of random bf16 values in [-1, 1) on the device; buffers
/// are tiled with it (random data: zeros would let the tensor cores run at
/// lower power, hence faster, than real data).
class Pattern {
public:
  static constexpr size_t kElems = size_t(1) << 24;
  void make(cudaStream_t s) {
    std::vector<uint16_t> h(kElems);
    std::mt19937 rng(1234);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (auto &x : h)
      x = toBf16(u(rng));
    buf_.allocate(kElems * 2, "the random pattern");
    CHECK(cudaMemcpyAsync(buf_.p, h.data(), kElems * 2, cudaMemcpyHostToDevice,
                          s));
    CHECK(cudaStreamSynchronize(s));
  }
  /// n bf16 elements at dst, a different offset into the pattern each call.
  void fillBf16(void *dst, size_t n, cudaStream_t s) {
    char *d = static_cast<char *>(dst);
    size_t done = 0;
    while (done < n) {
      offset_ = (offset_ + 7919) % (kElems / 2);
      const size_t chunk = std::min(n - done, kElems - offset_);
      CHECK(cudaMemcpyAsync(d + done * 2, buf_.as<char>() + offset_ * 2,
                            chunk * 2, cudaMemcpyDeviceToDevice, s));
      done += chunk;
    }
  }

  /// n fp32 elements at dst (the pattern's bf16 values, widened).
  void fillF32(float *dst, size_t n, cudaStream_t s) {
    size_t done = 0;
    while (done < n) {
      offset_ = (offset_ + 7919) % (kElems / 2);
      const size_t chunk = std::min(n - done, kElems - offset_);
      check(cu::cast(buf_.as<cu::bf16>() + offset_, dst + done, int64_t(chunk),
                     s),
            "widening the pattern");
      done += chunk;
    }
  }

private:
  Buffer buf_;
  size_t offset_ = 0;
};

//===----------------------------------------------------------------------===//
// Timing
//===----------------------------------------------------------------------===//

struct Options {
  double targetMs = 200; ///< GPU time of one sample
  int repeats = 3;       ///< samples; the median is reported
  int finalists = 2;     ///< cuBLASLt algorithms measured like ours
};

struct Timing {
  int iters = 0;
  std::vector<double> samples; ///< ms per call
  double median() const {
    std::vector<double> s = samples;
    std::sort(s.begin(), s.end());
    const size_t n = s.size();
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
  }
  double min() const { return *std::min_element(samples.begin(), samples.end()); }
  double max() const { return *std::max_element(samples.begin(), samples.end()); }
};

class Timer {
public:
  explicit Timer(cudaStream_t s) : s_(s) {
    CHECK(cudaEventCreate(&a_));
    CHECK(cudaEventCreate(&b_));
  }
  ~Timer() {
    cudaEventDestroy(a_);
    cudaEventDestroy(b_);
  }
  /// ms per call of `n` back-to-back calls of `fn` (which enqueues on s_).
  double time(const std::function<void()> &fn, int n) {
    CHECK(cudaEventRecord(a_, s_));
    for (int i = 0; i < n; ++i)
      fn();
    CHECK(cudaEventRecord(b_, s_));
    CHECK(cudaEventSynchronize(b_));
    CHECK(cudaGetLastError());
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, a_, b_));
    return double(ms) / n;
  }

private:
  cudaStream_t s_;
  cudaEvent_t a_ = nullptr, b_ = nullptr;
};

/// Times each of `fns` (see the file comment), samples taken in turn.
std::vector<Timing> measure(Timer &timer,
                            const std::vector<std::function<void()>> &fns,
                            const Options &o) {
  std::vector<Timing> t(fns.size());
  std::vector<int> repeats(fns.size(), o.repeats);
  for (size_t i = 0; i < fns.size(); ++i) {
    timer.time(fns[i], 1); // warm-up: plans, lazy module loading, clocks
    const double est = timer.time(fns[i], 1);
    t[i].iters = int(std::clamp(o.targetMs / std::max(est, 1e-3), 1.0, 1e5));
    if (t[i].iters == 1) {
      t[i].samples.push_back(est); // a sample of one call, after a warm-up
      if (est > 2000)
        repeats[i] = 1;
    }
  }
  for (int r = 0; r < o.repeats; ++r)
    for (size_t i = 0; i < fns.size(); ++i)
      if (int(t[i].samples.size()) < repeats[i])
        t[i].samples.push_back(timer.time(fns[i], t[i].iters));
  return t;
}

double tflops(double flop, double ms) { return flop / (ms * 1e-3) / 1e12; }

//===----------------------------------------------------------------------===//
// cuBLASLt's best: the descriptors Blas.cpp makes, every heuristic algorithm
//===----------------------------------------------------------------------===//

constexpr uint64_t kWorkspaceBytes = uint64_t(32) << 20; // Blas's default
constexpr int kMaxAlgos = 16;

cudaDataType_t dataType(ElementType t) {
  return t == ElementType::BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

/// One dense, unbatched, bias-free row-major product as Blas.cpp describes it
/// to cuBLASLt (operands swapped: the column-major C^T = op(B)^T op(A)^T).
class LtProduct {
public:
  LtProduct(cublasLtHandle_t h, const GemmShape &g) : h_(h), g_(g) {
    CHECK(cublasLtMatmulDescCreate(&op_, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t ta = g.transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t tb = g.transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    CHECK(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSA, &ta,
                                         sizeof(ta)));
    CHECK(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSB, &tb,
                                         sizeof(tb)));
    CHECK(cublasLtMatrixLayoutCreate(&a_, dataType(g.b),
                                     uint64_t(g.transB ? g.K : g.N),
                                     uint64_t(g.transB ? g.N : g.K), g.ldb));
    CHECK(cublasLtMatrixLayoutCreate(&b_, dataType(g.a),
                                     uint64_t(g.transA ? g.M : g.K),
                                     uint64_t(g.transA ? g.K : g.M), g.lda));
    CHECK(cublasLtMatrixLayoutCreate(&c_, dataType(g.c), uint64_t(g.N),
                                     uint64_t(g.M), g.ldc));
  }
  ~LtProduct() {
    if (a_)
      cublasLtMatrixLayoutDestroy(a_);
    if (b_)
      cublasLtMatrixLayoutDestroy(b_);
    if (c_)
      cublasLtMatrixLayoutDestroy(c_);
    if (op_)
      cublasLtMatmulDescDestroy(op_);
  }
  LtProduct(const LtProduct &) = delete;
  LtProduct &operator=(const LtProduct &) = delete;

  /// Up to kMaxAlgos algorithms for a 32 MiB workspace (buffers from
  /// cudaMalloc: the heuristic's default 256-byte alignment holds).
  std::vector<cublasLtMatmulHeuristicResult_t> algorithms() const {
    cublasLtMatmulPreference_t pref = nullptr;
    CHECK(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = kWorkspaceBytes;
    cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
    std::vector<cublasLtMatmulHeuristicResult_t> r(kMaxAlgos);
    int found = 0;
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulAlgoGetHeuristic(h_, op_, a_, b_, c_, c_, pref,
                                          kMaxAlgos, r.data(), &found);
    cublasLtMatmulPreferenceDestroy(pref);
    check(st, "cublasLtMatmulAlgoGetHeuristic");
    r.resize(size_t(std::max(found, 0)));
    return r;
  }

  cublasStatus_t run(const cublasLtMatmulAlgo_t &algo, const void *A,
                     const void *B, void *C, void *ws, cudaStream_t s) const {
    const float alpha = 1.0f, beta = g_.accumulate ? 1.0f : 0.0f;
    return cublasLtMatmul(h_, op_, &alpha, B, a_, A, b_, &beta, C, c_, C, c_,
                          &algo, ws, kWorkspaceBytes, s);
  }

private:
  cublasLtHandle_t h_;
  GemmShape g_;
  cublasLtMatmulDesc_t op_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, c_ = nullptr;
};

struct Best {
  Timing timing;
  int index = -1;  ///< in the heuristic's order (0: its first choice)
  int tried = 0;   ///< algorithms that ran
  int skipped = 0; ///< algorithms cuBLASLt refused to run
};

struct GemmContext {
  cudaStream_t stream = nullptr;
  cublasLtHandle_t lt = nullptr;
  std::unique_ptr<cu::Blas> blas;
  Buffer ltWorkspace;
  Pattern pattern;
  Options opt;
};

/// Operands for a dense product; C zeroed (dW accumulates into it).
struct Operands {
  Buffer A, B, C;
  Operands(GemmContext &cx, const GemmShape &g) {
    const size_t ea = 2, ec = g.c == ElementType::BF16 ? 2 : 4;
    A.allocate(size_t(g.M * g.K) * ea, "A of " + g.str());
    B.allocate(size_t(g.K * g.N) * ea, "B of " + g.str());
    C.allocate(size_t(g.M * g.N) * ec, "C of " + g.str());
    cx.pattern.fillBf16(A.p, size_t(g.M * g.K), cx.stream);
    cx.pattern.fillBf16(B.p, size_t(g.K * g.N), cx.stream);
    CHECK(cudaMemsetAsync(C.p, 0, C.bytes, cx.stream));
    CHECK(cudaStreamSynchronize(cx.stream));
  }
};

/// Screens every algorithm with a short burst (~20 ms), then measures the
/// `opt.finalists` fastest with the full protocol, in turn with `others`
/// (ours), whose timings come back in `othersOut`.
Best ltBest(GemmContext &cx, Timer &timer, const GemmShape &g, Operands &ops,
            const std::vector<std::function<void()>> &others,
            std::vector<Timing> *othersOut) {
  LtProduct prod(cx.lt, g);
  const auto algos = prod.algorithms();
  if (algos.empty())
    throw BenchError("cuBLASLt's heuristic found no algorithm for " + g.str());
  Best best;
  std::vector<std::pair<double, int>> screened; // (ms, index)
  for (size_t i = 0; i < algos.size(); ++i) {
    if (algos[i].state != CUBLAS_STATUS_SUCCESS) {
      ++best.skipped;
      continue;
    }
    const cublasStatus_t st = prod.run(algos[i].algo, ops.A.p, ops.B.p, ops.C.p,
                                       cx.ltWorkspace.p, cx.stream);
    if (st != CUBLAS_STATUS_SUCCESS) { // an algorithm it offered, then refused
      out("  note: %s: heuristic algorithm %zu refused: %s (skipped)\n",
          g.str().c_str(), i, cublasLtGetStatusName(st));
      ++best.skipped;
      continue;
    }
    auto fn = [&, i] {
      check(prod.run(algos[i].algo, ops.A.p, ops.B.p, ops.C.p,
                     cx.ltWorkspace.p, cx.stream),
            "cublasLtMatmul (cuBLASLt's best)");
    };
    const double one = timer.time(fn, 1);
    const int n = int(std::clamp(20.0 / std::max(one, 1e-3), 2.0, 1000.0));
    screened.emplace_back(timer.time(fn, n), int(i));
    ++best.tried;
  }
  if (screened.empty())
    throw BenchError("cuBLASLt ran none of its algorithms for " + g.str());
  std::sort(screened.begin(), screened.end());
  screened.resize(std::min(screened.size(), size_t(cx.opt.finalists)));

  std::vector<std::function<void()>> fns = others;
  for (const auto &[ms, i] : screened) {
    (void)ms;
    fns.push_back([&, i = i] {
      check(prod.run(algos[size_t(i)].algo, ops.A.p, ops.B.p, ops.C.p,
                     cx.ltWorkspace.p, cx.stream),
            "cublasLtMatmul (cuBLASLt's best)");
    });
  }
  const std::vector<Timing> t = measure(timer, fns, cx.opt);
  if (othersOut)
    othersOut->assign(t.begin(), t.begin() + long(others.size()));
  for (size_t j = others.size(); j < t.size(); ++j)
    if (best.index < 0 || t[j].median() < best.timing.median()) {
      best.timing = t[j];
      best.index = screened[j - others.size()].second;
    }
  return best;
}

//===----------------------------------------------------------------------===//
// gemm
//===----------------------------------------------------------------------===//

struct LayerConfig {
  int64_t H, S;
};

struct NamedGemm {
  std::string name;
  GemmShape g;
};

/// A Llama-style layer at batch 1 (T = S tokens): head dim 128, kv heads =
/// heads / 4, MLP width 8/3 H rounded up to a multiple of 256; weights in
/// PyTorch's [out, in] layout (nn.linear with transposeWeight). Per linear
/// [K -> N]: forward Y[T,N] = X W^T (bf16 out), dX[T,K] = dY W (bf16 out),
/// dW[N,K] += dY^T X (fp32 out, accumulated). Gate and up share a shape:
/// timed once.
std::vector<NamedGemm> layerGemms(const LayerConfig &c) {
  const int64_t heads = c.H / 128, kvHeads = std::max<int64_t>(heads / 4, 1);
  const int64_t qkvN = c.H + 2 * kvHeads * 128;
  const int64_t I = (8 * c.H / 3 + 255) / 256 * 256;
  const int64_t T = c.S;
  const std::string tag =
      "h" + std::to_string(c.H) + "_s" + std::to_string(c.S) + ".";
  struct Linear {
    const char *name;
    int64_t K, N;
  };
  const Linear linears[] = {{"qkv", c.H, qkvN},
                            {"out", c.H, c.H},
                            {"gate_up", c.H, I},
                            {"down", I, c.H}};
  std::vector<NamedGemm> r;
  for (const Linear &l : linears) {
    const std::string base = tag + l.name;
    r.push_back({base + ".fwd", cu::denseGemm(false, true, T, l.N, l.K,
                                              ElementType::BF16,
                                              ElementType::BF16)});
    r.push_back({base + ".dx", cu::denseGemm(false, false, T, l.K, l.N,
                                             ElementType::BF16,
                                             ElementType::BF16)});
    GemmShape dw = cu::denseGemm(true, false, l.N, l.K, T, ElementType::BF16,
                                 ElementType::F32);
    dw.accumulate = true;
    r.push_back({base + ".dw", dw});
  }
  return r;
}

std::string mnk(const GemmShape &g) {
  return std::to_string(g.M) + "x" + std::to_string(g.N) + "x" +
         std::to_string(g.K);
}

void runGemm(GemmContext &cx, const std::vector<LayerConfig> &layers,
             bool peak) {
  Timer timer(cx.stream);
  out("GEMMs: ours = cuda::Blas::gemm (bf16 inputs, fp32 compute and scale); "
      "best = the fastest of cuBLASLt's heuristic algorithms (up to %d) for "
      "the same descriptors; %d finalist(s) measured like ours, in turn; "
      "median of %d samples of N calls, ~%.0f ms each\n",
      kMaxAlgos, cx.opt.finalists, cx.opt.repeats, cx.opt.targetMs);
  out("%-26s %-18s %5s %9s %9s %5s %9s %9s %4s %7s\n", "shape", "MxNxK",
      "N", "ours ms", "ours TF/s", "Nbest", "best ms", "best TF/s", "alg",
      "ratio");
  for (const LayerConfig &c : layers)
    for (const NamedGemm &ng : layerGemms(c)) {
      const GemmShape &g = ng.g;
      Operands ops(cx, g);
      CHECK(cx.blas->plan(g, 256)); // load time in the runtime: not timed
      auto ours = [&] {
        check(cx.blas->gemm(g, 1.0f, ops.A.p, ops.B.p, ops.C.p, nullptr,
                            cx.stream),
              "Blas::gemm");
      };
      std::vector<Timing> mine;
      const Best best = ltBest(cx, timer, g, ops, {ours}, &mine);
      const double flop = 2.0 * double(g.M) * double(g.N) * double(g.K);
      const double om = mine[0].median(), bm = best.timing.median();
      out("%-26s %-18s %5d %9.3f %9.1f %5d %9.3f %9.1f %4d %6.3fx\n",
          ng.name.c_str(), mnk(g).c_str(), mine[0].iters, om,
          tflops(flop, om), best.timing.iters, bm, tflops(flop, bm), best.index,
          bm / om);
      out("RESULT kind=gemm_ours shape=%s mnk=%s ms=%.5f tflops=%.2f "
          "iters=%d repeats=%zu min_ms=%.5f max_ms=%.5f\n",
          ng.name.c_str(), mnk(g).c_str(), om, tflops(flop, om),
          mine[0].iters, mine[0].samples.size(), mine[0].min(), mine[0].max());
      out("RESULT kind=gemm_best shape=%s mnk=%s ms=%.5f tflops=%.2f "
          "iters=%d repeats=%zu min_ms=%.5f max_ms=%.5f algo=%d tried=%d "
          "skipped=%d\n",
          ng.name.c_str(), mnk(g).c_str(), bm, tflops(flop, bm),
          best.timing.iters, best.timing.samples.size(), best.timing.min(),
          best.timing.max(), best.index, best.tried, best.skipped);
    }
  if (!peak)
    return;
  // The GPU's bf16 GEMM peak: cuBLASLt's best on large products.
  out("bf16 GEMM peak (cuBLASLt's best, bf16 out, X W^T):\n");
  double peakTf = 0;
  std::string peakShape;
  const int64_t squares[][3] = {
      {8192, 8192, 8192}, {16384, 8192, 8192}, {8192, 16384, 8192}};
  for (const auto &s : squares) {
    const GemmShape g = cu::denseGemm(false, true, s[0], s[1], s[2],
                                      ElementType::BF16, ElementType::BF16);
    Operands ops(cx, g);
    const Best best = ltBest(cx, timer, g, ops, {}, nullptr);
    const double flop = 2.0 * double(g.M) * double(g.N) * double(g.K);
    const double bm = best.timing.median(), tf = tflops(flop, bm);
    out("  %-18s N=%d %9.3f ms %9.1f TFLOP/s (algorithm %d)\n", mnk(g).c_str(),
        best.timing.iters, bm, tf, best.index);
    out("RESULT kind=gemm_square shape=%s mnk=%s ms=%.5f tflops=%.2f iters=%d "
        "repeats=%zu algo=%d\n",
        mnk(g).c_str(), mnk(g).c_str(), bm, tf, best.timing.iters,
        best.timing.samples.size(), best.index);
    if (tf > peakTf) {
      peakTf = tf;
      peakShape = mnk(g);
    }
  }
  out("bf16 GEMM peak: %.1f TFLOP/s (%s)\n", peakTf, peakShape.c_str());
  out("RESULT kind=gemm_peak shape=%s tflops=%.2f\n", peakShape.c_str(),
      peakTf);
}

//===----------------------------------------------------------------------===//
// attention
//===----------------------------------------------------------------------===//

struct AttnCase {
  int64_t B, H, Hkv, S, D;
};

std::string attnName(const AttnCase &c) {
  return "b" + std::to_string(c.B) + "_h" + std::to_string(c.H) + "_hkv" +
         std::to_string(c.Hkv) + "_s" + std::to_string(c.S) + "_d" +
         std::to_string(c.D) + "_causal";
}

void runAttention(cudaStream_t stream, const Options &opt,
                  const std::vector<AttnCase> &cases) {
  Timer timer(stream);
  Pattern pattern;
  pattern.make(stream);
  // What --precision bf16 runs.
  constexpr cu::AttentionMath kMath = cu::AttentionMath::TensorCoresBf16;
  out("attention: cuda::attention_forward (with lse) and forward + "
      "attention_backward, bf16 on tensor cores, causal; FLOPs: forward 4 B H "
      "S^2 D / 2, "
      "backward 2.5x forward; median of %d samples of N calls, ~%.0f ms each "
      "(one sample when a call takes over 2 s)\n",
      opt.repeats, opt.targetMs);
  out("%-36s %4s %10s %9s %4s %10s %9s\n", "shape", "N", "fwd ms", "fwd TF/s",
      "N", "fwd+bwd ms", "TF/s");
  for (const AttnCase &c : cases) {
    cu::AttentionParams p;
    p.B = c.B;
    p.H = c.H;
    p.Hkv = c.Hkv;
    p.Sq = p.Sk = c.S;
    p.D = p.Dv = c.D;
    p.causal = true;
    p.scale = 1.0f / std::sqrt(float(c.D));
    const std::string name = attnName(c);
    check(cu::attentionSupported(p), name.c_str());
    const size_t nq = size_t(c.B * c.H * c.S * c.D),
                 nk = size_t(c.B * c.Hkv * c.S * c.D),
                 rows = size_t(c.B * c.H * c.S);
    Buffer q, k, v, o, lse, dout, dq, dk, dv, ws;
    q.allocate(nq * 2, "q");
    k.allocate(nk * 2, "k");
    v.allocate(nk * 2, "v");
    o.allocate(nq * 2, "out");
    lse.allocate(rows * 4, "lse");
    dout.allocate(nq * 2, "dout");
    dq.allocate(nq * 2, "dq");
    dk.allocate(nk * 2, "dk");
    dv.allocate(nk * 2, "dv");
    ws.allocate(cu::attentionBackwardWorkspaceBytes(p), "the workspace");
    pattern.fillBf16(q.p, nq, stream);
    pattern.fillBf16(k.p, nk, stream);
    pattern.fillBf16(v.p, nk, stream);
    pattern.fillBf16(dout.p, nq, stream);
    CHECK(cudaStreamSynchronize(stream));
    using cu::bf16;
    auto fwd = [&] {
      check(cu::attention_forward<bf16>(p, q.as<bf16>(), k.as<bf16>(),
                                        v.as<bf16>(), o.as<bf16>(),
                                        lse.as<float>(), stream, kMath),
            "attention_forward");
    };
    auto fwdBwd = [&] {
      fwd();
      check(cu::attention_backward<bf16>(
                p, q.as<bf16>(), k.as<bf16>(), v.as<bf16>(), o.as<bf16>(),
                lse.as<float>(), dout.as<bf16>(), dq.as<bf16>(), dk.as<bf16>(),
                dv.as<bf16>(), ws.p, stream, kMath),
            "attention_backward");
    };
    const double flopF = 4.0 * double(c.B) * double(c.H) * double(c.S) *
                         double(c.S) * double(c.D) / 2;
    const double flopFB = flopF * 3.5;
    const Timing tf = measure(timer, {fwd}, opt)[0];
    out("RESULT kind=attn_fwd shape=%s ms=%.4f tflops=%.2f iters=%d "
        "repeats=%zu min_ms=%.4f max_ms=%.4f\n",
        name.c_str(), tf.median(), tflops(flopF, tf.median()), tf.iters,
        tf.samples.size(), tf.min(), tf.max());
    const Timing tb = measure(timer, {fwdBwd}, opt)[0];
    out("RESULT kind=attn_fwdbwd shape=%s ms=%.4f tflops=%.2f iters=%d "
        "repeats=%zu min_ms=%.4f max_ms=%.4f\n",
        name.c_str(), tb.median(), tflops(flopFB, tb.median()), tb.iters,
        tb.samples.size(), tb.min(), tb.max());
    out("%-36s %4d %10.3f %9.1f %4d %10.3f %9.1f\n", name.c_str(), tf.iters,
        tf.median(), tflops(flopF, tf.median()), tb.iters, tb.median(),
        tflops(flopFB, tb.median()));
  }
}

//===----------------------------------------------------------------------===//
// layer
//===----------------------------------------------------------------------===//

struct LayerCase {
  int64_t H, S, G; ///< hidden, tokens, query heads per kv head
};

std::string layerName(const LayerCase &c) {
  return "h" + std::to_string(c.H) + "_s" + std::to_string(c.S) + "_g" +
         std::to_string(c.G);
}

/// A Llama layer's sizes: head dim 128, MLP width 8/3 H rounded up to 256.
struct LayerDims {
  int64_t T, H, nh, nkv, D = 128, F;
  explicit LayerDims(const LayerCase &c)
      : T(c.S), H(c.H), nh(c.H / 128), nkv(c.H / 128 / c.G),
        F((8 * c.H / 3 + 255) / 256 * 256) {}
  /// Model FLOPs of forward + backward: 3x the forward's GEMMs (2 M N K
  /// each), 3.5x its causal attention (4 S^2 D per head, halved).
  double flops() const {
    const double gemm = 2.0 * double(T) *
                        (double(H) * double(nh * D + 2 * nkv * D) +
                         double(nh * D) * double(H) + 3.0 * double(H) * F);
    const double attn = 4.0 * double(T) * double(T) * double(D) * nh / 2;
    return 3.0 * gemm + 3.5 * attn;
  }
};

/// One Llama-style layer, forward then backward, as the executor runs
/// --precision bf16 today: fp32 activations and weights in memory, every
/// product on bf16 tensor cores (GemmShape::fastBf16, attention's
/// TensorCoresBf16), the layer's ops as the compiler emits them (rms_norm,
/// linear q/k/v, reshape+transpose to [B, H, S, D], rotate-half rotary,
/// causal GQA attention, transpose back, linear, residual add, rms_norm,
/// gate/up linears, swiglu, down linear, add) and their gradients
/// (dX = dY W, dW += dY^T X).
class LayerRun {
public:
  LayerRun(cudaStream_t s, Pattern &pat, const LayerCase &c) : s_(s), d_(c) {
    check(cu::Blas::create(&blas_, kWorkspaceBytes), "Blas::create");
    const int64_t T = d_.T, H = d_.H, Q = d_.nh * d_.D, KV = d_.nkv * d_.D,
                  F = d_.F;
    struct Alloc {
      Buffer *b;
      int64_t n;
      const char *name;
    };
    const Alloc all[] = {
        {&x_, T * H, "x"},
        {&w1_, H, "w1"},
        {&w2_, H, "w2"},
        {&wq_, Q * H, "wq"},
        {&wk_, KV * H, "wk"},
        {&wv_, KV * H, "wv"},
        {&wo_, H * Q, "wo"},
        {&wg_, F * H, "wg"},
        {&wu_, F * H, "wu"},
        {&wd_, H * F, "wd"},
        {&cos_, T * d_.D / 2, "cos"},
        {&sin_, T * d_.D / 2, "sin"},
        {&dy_, T * H, "dy"},
        {&h1_, T * H, "h1"},
        {&q_, T * Q, "q"},
        {&k_, T * KV, "k"},
        {&v_, T * KV, "v"},
        {&qt_, T * Q, "qT"},
        {&kt_, T * KV, "kT"},
        {&vt_, T * KV, "vT"},
        {&ot_, T * Q, "oT"},
        {&lse_, d_.nh * T, "lse"},
        {&o_, T * Q, "o"},
        {&x2_, T * H, "x2"},
        {&h2_, T * H, "h2"},
        {&gate_, T * F, "gate"},
        {&up_, T * F, "up"},
        {&act_, T * F, "act"},
        {&y_, T * H, "y"},
        {&dact_, T * F, "dact"},
        {&dgate_, T * F, "dgate"},
        {&dup_, T * F, "dup"},
        {&dh_, T * H, "dh"},
        {&dx2_, T * H, "dx2"},
        {&do_, T * Q, "do"},
        {&dot_, T * Q, "doT"},
        {&dqt_, T * Q, "dqT"},
        {&dkt_, T * KV, "dkT"},
        {&dvt_, T * KV, "dvT"},
        {&dq_, T * Q, "dq"},
        {&dk_, T * KV, "dk"},
        {&dv_, T * KV, "dv"},
        {&dx_, T * H, "dx"},
        {&dw1_, H, "dw1"},
        {&dw2_, H, "dw2"},
        {&dwq_, Q * H, "dwq"},
        {&dwk_, KV * H, "dwk"},
        {&dwv_, KV * H, "dwv"},
        {&dwo_, H * Q, "dwo"},
        {&dwg_, F * H, "dwg"},
        {&dwu_, F * H, "dwu"},
        {&dwd_, H * F, "dwd"},
    };
    for (const Alloc &a : all) {
      a.b->allocate(size_t(a.n) * 4, a.name);
      pat.fillF32(a.b->as<float>(), size_t(a.n), s);
    }
    attn_.B = 1;
    attn_.H = d_.nh;
    attn_.Hkv = d_.nkv;
    attn_.Sq = attn_.Sk = T;
    attn_.D = attn_.Dv = d_.D;
    attn_.layout = weipipe::rt::cpu::AttentionLayout::BHSD;
    attn_.causal = true;
    attn_.scale = 1.0f / std::sqrt(float(d_.D));
    check(cu::attentionSupported(attn_), layerName(c).c_str());
    rot_.B = 1;
    rot_.S = T;
    rot_.D = d_.D;
    rot_.rotaryDim = d_.D;
    ws_.allocate(std::max({cu::attentionBackwardWorkspaceBytes(attn_),
                           cu::normBackwardWorkspaceBytes(T, H), uint64_t(1)}),
                 "the workspace");
    CHECK(cudaStreamSynchronize(s));
  }

  void forward() {
    const int64_t T = d_.T, H = d_.H, Q = d_.nh * d_.D, KV = d_.nkv * d_.D;
    rms(x_, w1_, h1_);
    linear(h1_, wq_, q_, T, Q, H);
    linear(h1_, wk_, k_, T, KV, H);
    linear(h1_, wv_, v_, T, KV, H);
    toHeads(q_, qt_, d_.nh);
    toHeads(k_, kt_, d_.nkv);
    toHeads(v_, vt_, d_.nkv);
    rotary(qt_, d_.nh, false);
    rotary(kt_, d_.nkv, false);
    check(cu::attention_forward<float>(attn_, qt_.as<float>(), kt_.as<float>(),
                                       vt_.as<float>(), ot_.as<float>(),
                                       lse_.as<float>(), s_, kMath),
          "attention_forward");
    fromHeads(ot_, o_, d_.nh);
    linear(o_, wo_, x2_, T, H, Q);
    add(x_, x2_, T * H); // x2 = x + o Wo^T
    rms(x2_, w2_, h2_);
    linear(h2_, wg_, gate_, T, d_.F, H);
    linear(h2_, wu_, up_, T, d_.F, H);
    check(cu::swiglu_forward<float>(gate_.as<float>(), up_.as<float>(),
                                    act_.as<float>(), T * d_.F, s_),
          "swiglu_forward");
    linear(act_, wd_, y_, T, H, d_.F);
    add(x2_, y_, T * H);
  }

  void backward() {
    const int64_t T = d_.T, H = d_.H, Q = d_.nh * d_.D, KV = d_.nkv * d_.D,
                  F = d_.F;
    // MLP: dact = dy Wd, dWd += dy^T act; swiglu; dh2 = dgate Wg + dup Wu.
    linearGrads(dy_, act_, wd_, dact_, dwd_, T, H, F, false);
    check(cu::swiglu_backward<float>(gate_.as<float>(), up_.as<float>(),
                                     dact_.as<float>(), dgate_.as<float>(),
                                     dup_.as<float>(), T * F, s_),
          "swiglu_backward");
    linearGrads(dgate_, h2_, wg_, dh_, dwg_, T, F, H, false);
    linearGrads(dup_, h2_, wu_, dh_, dwu_, T, F, H, true);
    rmsGrad(x2_, w2_, dh_, dx2_, dw2_);
    add(dy_, dx2_, T * H); // the residual
    // Attention: do = dx2 Wo, dWo += dx2^T o; to heads; attention; rotary.
    linearGrads(dx2_, o_, wo_, do_, dwo_, T, H, Q, false);
    toHeads(do_, dot_, d_.nh);
    check(cu::attention_backward<float>(attn_, qt_.as<float>(), kt_.as<float>(),
                                        vt_.as<float>(), ot_.as<float>(),
                                        lse_.as<float>(), dot_.as<float>(),
                                        dqt_.as<float>(), dkt_.as<float>(),
                                        dvt_.as<float>(), ws_.p, s_, kMath),
          "attention_backward");
    rotary(dqt_, d_.nh, true);
    rotary(dkt_, d_.nkv, true);
    fromHeads(dqt_, dq_, d_.nh);
    fromHeads(dkt_, dk_, d_.nkv);
    fromHeads(dvt_, dv_, d_.nkv);
    linearGrads(dq_, h1_, wq_, dh_, dwq_, T, Q, H, false);
    linearGrads(dk_, h1_, wk_, dh_, dwk_, T, KV, H, true);
    linearGrads(dv_, h1_, wv_, dh_, dwv_, T, KV, H, true);
    rmsGrad(x_, w1_, dh_, dx_, dw1_);
    add(dx2_, dx_, T * H);
  }

  const LayerDims &dims() const { return d_; }

private:
  static constexpr cu::AttentionMath kMath = cu::AttentionMath::TensorCoresBf16;

  /// y[M, N] = x[M, K] W^T (W [N, K]).
  void linear(const Buffer &x, const Buffer &w, Buffer &y, int64_t M, int64_t N,
              int64_t K) {
    GemmShape g = cu::denseGemm(false, true, M, N, K);
    g.fastBf16 = true;
    check(blas_->gemm(g, 1.0f, x.p, w.p, y.p, nullptr, s_), "linear");
  }
  /// dx[M, K] (+)= dy[M, N] W (W [N, K]); dW[N, K] += dy^T x.
  void linearGrads(const Buffer &dy, const Buffer &x, const Buffer &w,
                   Buffer &dx, Buffer &dw, int64_t M, int64_t N, int64_t K,
                   bool accumulateDx) {
    GemmShape g = cu::denseGemm(false, false, M, K, N);
    g.fastBf16 = true;
    g.accumulate = accumulateDx;
    check(blas_->gemm(g, 1.0f, dy.p, w.p, dx.p, nullptr, s_), "linear dX");
    GemmShape gw = cu::denseGemm(true, false, N, K, M);
    gw.fastBf16 = true;
    gw.accumulate = true;
    check(blas_->gemm(gw, 1.0f, dy.p, x.p, dw.p, nullptr, s_), "linear dW");
  }
  void rms(const Buffer &x, const Buffer &w, Buffer &y) {
    check(cu::rms_norm_forward<float>(x.as<float>(), w.as<float>(),
                                      y.as<float>(), nullptr, d_.T, d_.H, 1e-5f,
                                      s_),
          "rms_norm_forward");
  }
  void rmsGrad(const Buffer &x, const Buffer &w, const Buffer &dy, Buffer &dx,
               Buffer &dw) {
    check(cu::rms_norm_backward<float>(
              x.as<float>(), w.as<float>(), dy.as<float>(), dx.as<float>(),
              dw.as<float>(), d_.T, d_.H, 1e-5f, ws_.p, s_),
          "rms_norm_backward");
  }
  void add(const Buffer &src, Buffer &dst, int64_t n) {
    check(cu::accumulate(src.as<float>(), dst.as<float>(), n, s_), "add");
  }
  /// [1, T, heads, D] <-> [1, heads, T, D].
  void toHeads(const Buffer &x, Buffer &y, int64_t heads) {
    move(x, y, {1, d_.T, heads, d_.D}, {1, heads, d_.T, d_.D});
  }
  void fromHeads(const Buffer &x, Buffer &y, int64_t heads) {
    move(x, y, {1, heads, d_.T, d_.D}, {1, d_.T, heads, d_.D});
  }
  void move(const Buffer &x, Buffer &y, weipipe::rt::cpu::Shape from,
            weipipe::rt::cpu::Shape to) {
    cu::DevTensor a{x.p, cu::Storage::F32, from}, b{y.p, cu::Storage::F32, to};
    check(cu::transpose(a, {0, 2, 1, 3}, b, s_), "transpose");
  }
  void rotary(Buffer &x, int64_t heads, bool backward) {
    rot_.H = heads;
    if (backward)
      check(cu::rotary_backward<float>(x.as<float>(), cos_.as<float>(),
                                       sin_.as<float>(), x.as<float>(), rot_,
                                       s_),
            "rotary_backward");
    else
      check(cu::rotary_forward<float>(x.as<float>(), cos_.as<float>(),
                                      sin_.as<float>(), x.as<float>(), rot_,
                                      s_),
            "rotary_forward");
  }

  cudaStream_t s_;
  LayerDims d_;
  std::unique_ptr<cu::Blas> blas_;
  cu::AttentionParams attn_;
  weipipe::rt::cpu::RotaryDims rot_;
  Buffer x_, w1_, w2_, wq_, wk_, wv_, wo_, wg_, wu_, wd_, cos_, sin_, dy_, h1_,
      q_, k_, v_, qt_, kt_, vt_, ot_, lse_, o_, x2_, h2_, gate_, up_, act_, y_,
      dact_, dgate_, dup_, dh_, dx2_, do_, dot_, dqt_, dkt_, dvt_, dq_, dk_,
      dv_, dx_, dw1_, dw2_, dwq_, dwk_, dwv_, dwo_, dwg_, dwu_, dwd_, ws_;
};

void runLayer(cudaStream_t stream, const Options &opt,
              const std::vector<LayerCase> &cases) {
  Timer timer(stream);
  Pattern pattern;
  pattern.make(stream);
  out("layer: a Llama layer (head dim 128, MLP 8/3 H), forward + backward, "
      "batch 1, fp32 activations, bf16 tensor cores (--precision bf16); "
      "FLOPs: 3x the forward GEMMs + 3.5x causal attention; median of %d "
      "samples of N calls, ~%.0f ms each\n",
      opt.repeats, opt.targetMs);
  out("%-24s %4s %12s %9s\n", "shape", "N", "fwd+bwd ms", "TF/s");
  for (const LayerCase &c : cases) {
    const std::string name = layerName(c);
    LayerRun layer(stream, pattern, c);
    const Timing t = measure(timer, {[&] {
                               layer.forward();
                               layer.backward();
                             }},
                             opt)[0];
    const double flop = layer.dims().flops();
    out("RESULT kind=layer_fwdbwd shape=%s ms=%.4f tflops=%.2f iters=%d "
        "repeats=%zu min_ms=%.4f max_ms=%.4f\n",
        name.c_str(), t.median(), tflops(flop, t.median()), t.iters,
        t.samples.size(), t.min(), t.max());
    out("%-24s %4d %12.3f %9.1f\n", name.c_str(), t.iters, t.median(),
        tflops(flop, t.median()));
  }
}

//===----------------------------------------------------------------------===//
// Arguments
//===----------------------------------------------------------------------===//

const char *kUsage =
    "usage: bench_gpu_kernels gemm [--layers H:S,...] [--no-peak] "
    "[--target-ms MS] [--repeats R] [--finalists F] [--list]\n"
    "       bench_gpu_kernels attention [--cases B:H:HKV:S:D,...] "
    "[--target-ms MS] [--repeats R] [--list]\n"
    "       bench_gpu_kernels layer [--cases H:S:G,...] [--target-ms MS] "
    "[--repeats R] [--list]\n"
    "--list prints the problems and exits (no device needed)\n"
    "defaults: --layers 2048:4096,4096:16384; --cases "
    "1:16:4:4096:128,1:32:32:16384:128,1:32:32:65536:128 (attention), "
    "2048:4096:4,4096:16384:1,4096:65536:1 (layer); --target-ms 200; "
    "--repeats 3; --finalists 2\n";

std::vector<std::vector<int64_t>> parseList(const std::string &s, size_t n,
                                            const char *flag) {
  std::vector<std::vector<int64_t>> r;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t end = s.find(',', pos);
    if (end == std::string::npos)
      end = s.size();
    const std::string item = s.substr(pos, end - pos);
    std::vector<int64_t> v;
    size_t ip = 0;
    while (ip <= item.size()) {
      size_t ie = item.find(':', ip);
      if (ie == std::string::npos)
        ie = item.size();
      const std::string num = item.substr(ip, ie - ip);
      char *e = nullptr;
      const long long x = std::strtoll(num.c_str(), &e, 10);
      if (num.empty() || *e || x <= 0)
        throw UsageError(std::string(flag) + ": bad item '" + item + "'");
      v.push_back(x);
      ip = ie + 1;
    }
    if (v.size() != n)
      throw UsageError(std::string(flag) + ": '" + item + "' needs " +
                       std::to_string(n) + " numbers");
    r.push_back(v);
    pos = end + 1;
  }
  return r;
}

double parseNumber(const char *s, const char *flag) {
  char *e = nullptr;
  const double x = std::strtod(s, &e);
  if (!*s || *e || !(x > 0))
    throw UsageError(std::string(flag) + ": bad value '" + s + "'");
  return x;
}

int run(int argc, char **argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") ||
      !std::strcmp(argv[1], "-h")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  if (cmd != "gemm" && cmd != "attention" && cmd != "layer")
    throw UsageError("unknown subcommand '" + cmd + "'");
  Options opt;
  bool peak = true, list = false;
  std::vector<LayerConfig> layers = {{2048, 4096}, {4096, 16384}};
  std::vector<AttnCase> cases = {{1, 16, 4, 4096, 128},
                                 {1, 32, 32, 16384, 128},
                                 {1, 32, 32, 65536, 128}};
  std::vector<LayerCase> layerCases = {
      {2048, 4096, 4}, {4096, 16384, 1}, {4096, 65536, 1}};
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char * {
      if (i + 1 >= argc)
        throw UsageError(a + " needs a value");
      return argv[++i];
    };
    if (a == "--list")
      list = true;
    else if (a == "--target-ms")
      opt.targetMs = parseNumber(value(), "--target-ms");
    else if (a == "--repeats")
      opt.repeats = int(parseNumber(value(), "--repeats"));
    else if (cmd == "gemm" && a == "--finalists")
      opt.finalists = int(parseNumber(value(), "--finalists"));
    else if (cmd == "gemm" && a == "--no-peak")
      peak = false;
    else if (cmd == "gemm" && a == "--layers") {
      layers.clear();
      for (const auto &v : parseList(value(), 2, "--layers")) {
        if (v[0] % 512 != 0)
          throw UsageError("--layers: H must be a multiple of 512 (head dim "
                           "128, kv heads = heads / 4)");
        layers.push_back({v[0], v[1]});
      }
    } else if (cmd == "attention" && a == "--cases") {
      cases.clear();
      for (const auto &v : parseList(value(), 5, "--cases")) {
        if (v[1] % v[2] != 0)
          throw UsageError("--cases: H must be a multiple of HKV");
        cases.push_back({v[0], v[1], v[2], v[3], v[4]});
      }
    } else if (cmd == "layer" && a == "--cases") {
      layerCases.clear();
      for (const auto &v : parseList(value(), 3, "--cases")) {
        if (v[0] % 128 != 0 || (v[0] / 128) % v[2] != 0)
          throw UsageError("--cases: H must be a multiple of 128 whose heads "
                           "(H / 128) G divides");
        layerCases.push_back({v[0], v[1], v[2]});
      }
    } else
      throw UsageError("unknown option '" + a + "' for " + cmd);
  }
  if (opt.repeats < 1 || opt.finalists < 1)
    throw UsageError("--repeats and --finalists must be at least 1");

  if (list) { // the problems, no device needed
    if (cmd == "gemm")
      for (const LayerConfig &c : layers)
        for (const NamedGemm &ng : layerGemms(c))
          out("%-26s %s\n", ng.name.c_str(), ng.g.str().c_str());
    else if (cmd == "attention")
      for (const AttnCase &c : cases)
        out("%s\n", attnName(c).c_str());
    else
      for (const LayerCase &c : layerCases) {
        const LayerDims d(c);
        out("%s: %lld heads, %lld kv heads, MLP %lld, %.3g FLOPs\n",
            layerName(c).c_str(), (long long)d.nh, (long long)d.nkv,
            (long long)d.F, d.flops());
      }
    return 0;
  }
  std::string why;
  if (cu::deviceCount(&why) == 0) {
    std::fprintf(stderr, "bench_gpu_kernels: no CUDA device (%s)\n",
                 why.c_str());
    return 1;
  }
  cu::DeviceInfo info;
  check(cu::selectDevice(0, &info), "selecting device 0");
  int driver = 0, runtime = 0;
  CHECK(cudaDriverGetVersion(&driver));
  CHECK(cudaRuntimeGetVersion(&runtime));
  out("device: %s (sm_%d%d, %d SMs, %.1f GiB), CUDA driver %d, runtime %d, "
      "cuBLASLt %zu\n",
      info.name.c_str(), info.major, info.minor, info.multiprocessors,
      double(info.totalBytes) / double(1 << 30), driver, runtime,
      cublasLtGetVersion());

  cudaStream_t stream = nullptr;
  CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  struct StreamGuard {
    cudaStream_t s;
    ~StreamGuard() { cudaStreamDestroy(s); }
  } guard{stream};

  if (cmd == "gemm") {
    GemmContext cx;
    cx.stream = stream;
    cx.opt = opt;
    CHECK(cublasLtCreate(&cx.lt));
    struct LtGuard {
      cublasLtHandle_t h;
      ~LtGuard() { cublasLtDestroy(h); }
    } ltGuard{cx.lt};
    check(cu::Blas::create(&cx.blas, kWorkspaceBytes), "Blas::create");
    cx.ltWorkspace.allocate(kWorkspaceBytes, "cuBLASLt's workspace");
    cx.pattern.make(stream);
    runGemm(cx, layers, peak);
  } else if (cmd == "attention") {
    runAttention(stream, opt, cases);
  } else {
    runLayer(stream, opt, layerCases);
  }
  CHECK(cudaStreamSynchronize(stream));
  CHECK(cudaGetLastError());
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  try {
    return run(argc, argv);
  } catch (const UsageError &e) {
    std::fprintf(stderr, "bench_gpu_kernels: %s\n%s", e.what(), kUsage);
    return 2;
  } catch (const std::exception &e) {
    std::fflush(stdout);
    std::fprintf(stderr, "bench_gpu_kernels: error: %s\n", e.what());
    std::printf("ERROR %s\n", e.what());
    std::fflush(stdout);
    return 1;
  }
}
