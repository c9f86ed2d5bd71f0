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
// Arguments
//===----------------------------------------------------------------------===//

const char *kUsage =
    "usage: bench_gpu_kernels gemm [--layers H:S,...] [--no-peak] "
    "[--target-ms MS] [--repeats R] [--finalists F] [--list]\n"
    "       bench_gpu_kernels attention [--cases B:H:HKV:S:D,...] "
    "[--target-ms MS] [--repeats R] [--list]\n"
    "--list prints the problems and exits (no device needed)\n"
    "defaults: --layers 2048:4096,4096:16384; --cases "
    "1:16:4:4096:128,1:32:32:16384:128,1:32:32:65536:128; --target-ms 200; "
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
  if (cmd != "gemm" && cmd != "attention")
    throw UsageError("unknown subcommand '" + cmd + "'");
  Options opt;
  bool peak = true, list = false;
  std::vector<LayerConfig> layers = {{2048, 4096}, {4096, 16384}};
  std::vector<AttnCase> cases = {{1, 16, 4, 4096, 128},
                                 {1, 32, 32, 16384, 128},
                                 {1, 32, 32, 65536, 128}};
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
    else
      for (const AttnCase &c : cases)
        out("%s\n", attnName(c).c_str());
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
  } else {
    runAttention(stream, opt, cases);
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
