//===- EmulatorTest.cpp - the emulator's own checks -----------------------===//
//
// Part of weipipe's runtime tests. That the CUDA emulator runs what the
// kernels rely on (dim3 grids and blocks, barriers, shuffles, dynamic shared
// memory, launch limits) and catches what it claims to catch: divergent
// __syncthreads, shuffles in divergent code, a missing barrier (the two
// thread orders give different results), out-of-bounds device accesses, and
// a missing event between two streams (streams run late).
//
//===----------------------------------------------------------------------===//

#include "Emulator.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <vector>

namespace {

__global__ void indices(int *out) {
  const unsigned t =
      threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned b =
      blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned n = blockDim.x * blockDim.y * blockDim.z;
  out[b * n + t] = int(b * 1000 + t);
}

__global__ void blockSum(const float *x, float *out) {
  __shared__ float part[32];
  const int t = threadIdx.x, lane = t % 32, warp = t / 32;
  float v = x[blockIdx.x * blockDim.x + t];
  for (int o = 16; o > 0; o /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  if (lane == 0)
    part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < int(blockDim.x / 32) ? part[lane] : 0.0f;
    for (int o = 16; o > 0; o /= 2)
      v += __shfl_down_sync(0xffffffffu, v, o);
    if (lane == 0)
      out[blockIdx.x] = v;
  }
}

__global__ void divergentSync(int *out) {
  if (threadIdx.x < 16)
    __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void divergentShuffle(float *out) {
  float v = float(threadIdx.x);
  if (threadIdx.x % 2)
    v = __shfl_xor_sync(0xffffffffu, v, 1);
  out[threadIdx.x] = v;
}

/// Reverses through shared memory; `sync` false drops the barrier.
__global__ void reverse(const float *x, float *y, bool sync) {
  float *s = static_cast<float *>(weipipe::emu::dynamicShared());
  const int t = threadIdx.x, n = blockDim.x;
  s[t] = x[blockIdx.x * n + t];
  if (sync)
    __syncthreads();
  y[blockIdx.x * n + t] = s[n - 1 - t];
}

__global__ void readAt(const float *x, int64_t i, float *out) { *out = x[i]; }

template <class T> std::vector<T> down(const T *d, size_t n) {
  std::vector<T> h(n);
  cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost);
  return h;
}

TEST(CudaEmulator, ThreeDimensionalGridsAndBlocks) {
  const dim3 grid(3, 2, 2), block(4, 3, 2);
  const size_t n = 12 * 24;
  int *d = nullptr;
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void **>(&d), n * sizeof(int)),
            cudaSuccess);
  weipipe::emu::launch(indices, grid, block, 0, nullptr, d);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const std::vector<int> h = down(d, n);
  for (size_t i = 0; i < n; ++i)
    EXPECT_EQ(h[i], int(i / 24 * 1000 + i % 24)) << i;
  cudaFree(d);
}

TEST(CudaEmulator, BarriersAndShufflesReduce) {
  const int blocks = 3, threads = 256;
  std::vector<float> x(blocks * threads);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = float(i % 7);
  float *dx = nullptr, *dout = nullptr;
  cudaMalloc(reinterpret_cast<void **>(&dx), x.size() * sizeof(float));
  cudaMalloc(reinterpret_cast<void **>(&dout), blocks * sizeof(float));
  cudaMemcpy(dx, x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice);
  weipipe::emu::launch(blockSum, blocks, threads, 0, nullptr, dx, dout);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const std::vector<float> h = down(dout, blocks);
  for (int b = 0; b < blocks; ++b) {
    float want = 0.0f;
    for (int t = 0; t < threads; ++t)
      want += x[size_t(b * threads + t)];
    EXPECT_EQ(h[size_t(b)], want) << b;
  }
  cudaFree(dx);
  cudaFree(dout);
}

TEST(CudaEmulator, MissingBarrierShowsInOneOfTheOrders) {
  const int blocks = 2, threads = 64; // block 0 forward, block 1 reverse
  std::vector<float> x(blocks * threads);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = float(i);
  float *dx = nullptr, *dy = nullptr;
  cudaMalloc(reinterpret_cast<void **>(&dx), x.size() * sizeof(float));
  cudaMalloc(reinterpret_cast<void **>(&dy), x.size() * sizeof(float));
  cudaMemcpy(dx, x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice);
  auto wrong = [&](bool sync) {
    weipipe::emu::launch(reverse, blocks, threads, threads * sizeof(float),
                         nullptr, static_cast<const float *>(dx), dy, sync);
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);
    const std::vector<float> y = down(dy, x.size());
    int bad = 0;
    for (int b = 0; b < blocks; ++b)
      for (int t = 0; t < threads; ++t)
        bad += y[size_t(b * threads + t)] !=
               x[size_t(b * threads + threads - 1 - t)];
    return bad;
  };
  EXPECT_EQ(wrong(true), 0);
  EXPECT_GT(wrong(false), 0);
  cudaFree(dx);
  cudaFree(dy);
}

__global__ void fill(float *x, float v) { x[threadIdx.x] = v; }
__global__ void copyOf(const float *x, float *y) {
  y[threadIdx.x] = x[threadIdx.x];
}

// Streams run late: a reader on another stream that does not wait for the
// writer's event sees what was there before; one that waits sees the write.
// (The pipeline's transfer streams are checked by exactly this.)
TEST(CudaEmulator, StreamsNeedEventsBetweenThem) {
  if (std::getenv("WEIPIPE_CUDA_EMU_STREAMS"))
    GTEST_SKIP() << "WEIPIPE_CUDA_EMU_STREAMS set: streams run at once";
  float *x = nullptr, *y = nullptr;
  cudaMalloc(reinterpret_cast<void **>(&x), 32 * sizeof(float));
  cudaMalloc(reinterpret_cast<void **>(&y), 32 * sizeof(float));
  cudaMemset(x, 0, 32 * sizeof(float));
  cudaStream_t writer, reader;
  cudaStreamCreate(&writer);
  cudaStreamCreate(&reader);
  cudaEvent_t written;
  cudaEventCreate(&written);

  weipipe::emu::launch(fill, 1, 32, 0, writer, x, 1.0f);
  weipipe::emu::launch(copyOf, 1, 32, 0, reader, static_cast<const float *>(x),
                       y);
  cudaStreamSynchronize(reader); // the reader alone: no order with the writer
  EXPECT_EQ(down(y, 32)[5], 0.0f) << "the unordered read saw the write";

  weipipe::emu::launch(fill, 1, 32, 0, writer, x, 2.0f);
  cudaEventRecord(written, writer);
  weipipe::emu::launch(fill, 1, 32, 0, writer, x, 3.0f); // after the event
  cudaStreamWaitEvent(reader, written, 0);
  weipipe::emu::launch(copyOf, 1, 32, 0, reader, static_cast<const float *>(x),
                       y);
  cudaStreamSynchronize(reader);
  EXPECT_EQ(down(y, 32)[5], 2.0f) << "the read after the event";

  // A stream-ordered free happens when its stream gets there.
  float *z = nullptr;
  cudaMallocAsync(reinterpret_cast<void **>(&z), 32 * sizeof(float), writer);
  weipipe::emu::launch(fill, 1, 32, 0, writer, z, 4.0f);
  cudaFreeAsync(z, writer);
  cudaStreamSynchronize(writer);

  cudaEventDestroy(written);
  cudaStreamDestroy(writer);
  cudaStreamDestroy(reader);
  cudaFree(x);
  cudaFree(y);
}

TEST(CudaEmulator, LaunchLimits) {
  int *d = nullptr;
  cudaMalloc(reinterpret_cast<void **>(&d), 4096 * sizeof(int));
  weipipe::emu::launch(indices, 1, 2048, 0, nullptr, d);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  weipipe::emu::launch(indices, 0, 32, 0, nullptr, d);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess); // cleared by the read
  // Above 48 KiB of dynamic shared memory only after opting in.
  weipipe::emu::launch(indices, 1, 32, 64 * 1024, nullptr, d);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  ASSERT_EQ(cudaFuncSetAttribute(indices,
                                 cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 64 * 1024),
            cudaSuccess);
  weipipe::emu::launch(indices, 1, 32, 64 * 1024, nullptr, d);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  cudaFree(d);
}

// Fork-and-exec death tests: the CPU kernels' OpenMP threads may be running.
class CudaEmulatorDeathTest : public ::testing::Test {
protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(CudaEmulatorDeathTest, DivergentSyncthreads) {
  int *d = nullptr;
  cudaMalloc(reinterpret_cast<void **>(&d), 64 * sizeof(int));
  // A launch runs when its stream is drained (EmuStreams.h).
  EXPECT_DEATH(
      {
        weipipe::emu::launch(divergentSync, 1, 64, 0, nullptr, d);
        cudaDeviceSynchronize();
      },
      "__syncthreads not reached by every thread");
  cudaFree(d);
}

TEST_F(CudaEmulatorDeathTest, ShuffleInDivergentCode) {
  float *d = nullptr;
  cudaMalloc(reinterpret_cast<void **>(&d), 64 * sizeof(float));
  EXPECT_DEATH(
      {
        weipipe::emu::launch(divergentShuffle, 1, 64, 0, nullptr, d);
        cudaDeviceSynchronize();
      },
      "divergent warp");
  cudaFree(d);
}

TEST_F(CudaEmulatorDeathTest, OutOfBoundsRead) {
  float *d = nullptr, *out = nullptr;
  cudaMalloc(reinterpret_cast<void **>(&d), 1000 * sizeof(float));
  cudaMalloc(reinterpret_cast<void **>(&out), sizeof(float));
  weipipe::emu::launch(readAt, 1, 1, 0, nullptr, static_cast<const float *>(d),
                       int64_t(999), out);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  EXPECT_TRUE(std::isnan(down(out, 1)[0])); // allocations start as NaN
  EXPECT_DEATH(
      {
        weipipe::emu::launch(readAt, 1, 1, 0, nullptr,
                             static_cast<const float *>(d),
                             int64_t(1000 + 1024), out);
        cudaDeviceSynchronize();
      },
      "invalid memory access");
  cudaFree(d);
  cudaFree(out);
}

} // namespace
