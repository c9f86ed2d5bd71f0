//===- bench_attention.cpp - the CPU attention kernels, timed -------------===//
//
// Part of weipipe's benchmarks (bench/attention-cpu/README.md). Times
// attention_forward (keeping lse) and attention_backward on one causal
// problem and prints one JSON line; bench_attention.py runs it next to
// PyTorch's scaled_dot_product_attention on the same shapes and threads.
//
//   bench_attention B H HKV S D REPEATS
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/cpu/Kernels.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

using namespace weipipe::rt::cpu;

int main(int argc, char **argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: bench_attention B H HKV S D REPEATS\n");
    return 2;
  }
  AttentionParams p;
  p.B = std::atoll(argv[1]);
  p.H = std::atoll(argv[2]);
  p.Hkv = std::atoll(argv[3]);
  p.Sq = p.Sk = std::atoll(argv[4]);
  p.D = p.Dv = std::atoll(argv[5]);
  const int repeats = std::atoi(argv[6]);
  if (p.B < 1 || p.H < 1 || p.Hkv < 1 || p.H % p.Hkv || p.Sq < 1 || p.D < 1 ||
      repeats < 1) {
    std::fprintf(stderr, "bench_attention: bad sizes\n");
    return 2;
  }
  p.causal = true;
  p.scale = 1.0f / std::sqrt(float(p.D));
  const size_t nq = size_t(p.B * p.H * p.Sq * p.D),
               nk = size_t(p.B * p.Hkv * p.Sk * p.D);
  std::mt19937 rng(0);
  std::normal_distribution<float> normal;
  auto randn = [&](size_t n) {
    std::vector<float> v(n);
    for (float &x : v)
      x = normal(rng);
    return v;
  };
  std::vector<float> q = randn(nq), k = randn(nk), v = randn(nk),
                     dout = randn(nq), out(nq), lse(size_t(p.B * p.H * p.Sq)),
                     dq(nq), dk(nk), dv(nk);
  using clock = std::chrono::steady_clock;
  double fwd = 1e30, bwd = 1e30; // best of the repeats
  for (int r = 0; r < repeats; ++r) {
    auto t0 = clock::now();
    attention_forward(p, q.data(), k.data(), v.data(), out.data(), lse.data());
    auto t1 = clock::now();
    attention_backward(p, q.data(), k.data(), v.data(), out.data(), lse.data(),
                       dout.data(), dq.data(), dk.data(), dv.data());
    auto t2 = clock::now();
    fwd = std::min(fwd, std::chrono::duration<double>(t1 - t0).count());
    bwd = std::min(bwd, std::chrono::duration<double>(t2 - t1).count());
  }
  double check = 0;
  for (float x : dq)
    check += x;
  std::printf("{\"forward_s\": %.6f, \"backward_s\": %.6f, \"dq_sum\": %.6g}\n",
              fwd, bwd, check);
  return 0;
}
