//===- Emulator.cpp - the CUDA execution model on the CPU -----------------===//
//
// Part of weipipe's runtime tests (Emulator.h says what is emulated and
// checked). The fiber scheduler, and host-memory stand-ins for the CUDA
// runtime API that the kernels, Device.cpp and the tests call; no CUDA
// library is linked.
//
//===----------------------------------------------------------------------===//

#include "Emulator.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace weipipe::emu {

Builtins current;

namespace {

//===----------------------------------------------------------------------===//
// Fibers
//===----------------------------------------------------------------------===//

#if defined(__x86_64__)
// Saves the callee-saved registers on the current stack, stores the stack
// pointer in *save, switches to `to` and restores its registers (a fiber
// switch is a function call: everything else is caller-saved).
extern "C" void weipipeEmuSwitch(void **save, void *to);
asm(R"(
  .text
  .p2align 4
  .globl weipipeEmuSwitch
  .hidden weipipeEmuSwitch
  .type weipipeEmuSwitch, @function
weipipeEmuSwitch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size weipipeEmuSwitch, .-weipipeEmuSwitch
)");
#endif

enum class State { Runnable, AtSync, AtShuffle, Done };

constexpr size_t kStackBytes = 256 * 1024;
constexpr int kMaxThreads = 1024;
constexpr size_t kSlotBytes = 32; // a shuffle's value, or an mma's operands

struct Fiber {
  char *stack = nullptr; // kStackBytes above a guard page
#if defined(__x86_64__)
  void *sp = nullptr;
#else
  ucontext_t ctx;
#endif
  State state = State::Runnable;
  unsigned shuffleMask = 0;
  const char *shuffleWhat = nullptr;
  long syncs = 0, shuffles = 0;
};

struct Block {
  const char *signature = nullptr;
  void (*body)(void *) = nullptr;
  void *ctx = nullptr;
  dim3 grid, block;
  unsigned threads = 0;
  int running = -1; // the fiber on the CPU, -1: the scheduler
  std::vector<Fiber> fibers;
#if defined(__x86_64__)
  void *schedulerSp = nullptr;
#else
  ucontext_t schedulerCtx;
#endif
  // Shuffle values, double-buffered by the shuffle's parity so that a lane
  // already at the next shuffle does not overwrite what others still read.
  alignas(16) unsigned char slots[2][kMaxThreads][kSlotBytes];
  std::vector<unsigned char> smem; // dynamic shared memory (+15 to align)
  size_t smemBytes = 0;
  long launches = 0;
};

Block &blk() {
  static Block *b = new Block; // never destroyed: fibers may be abandoned
  return *b;
}

[[noreturn]] void fail(const std::string &what) {
  Block &b = blk();
  std::fprintf(stderr,
               "\nweipipe CUDA emulator: %s\n  kernel: %s\n  block (%u, %u, "
               "%u) of grid (%u, %u, %u), block size (%u, %u, %u)\n",
               what.c_str(), b.signature ? b.signature : "?", current.block.x,
               current.block.y, current.block.z, b.grid.x, b.grid.y, b.grid.z,
               b.block.x, b.block.y, b.block.z);
  std::fflush(stderr);
  std::abort();
}

std::string threadName(unsigned t) {
  const dim3 d = blk().block;
  return "thread (" + std::to_string(t % d.x) + ", " +
         std::to_string(t / d.x % d.y) + ", " +
         std::to_string(t / (d.x * d.y)) + ") (warp " + std::to_string(t / 32) +
         ", lane " + std::to_string(t % 32) + ")";
}

void setThread(unsigned t) {
  const dim3 d = blk().block;
  current.thread = make_uint3(t % d.x, t / d.x % d.y, t / (d.x * d.y));
}

void fiberMain() {
  Block &b = blk();
  b.body(b.ctx);
  Fiber &f = b.fibers[size_t(b.running)];
  f.state = State::Done;
#if defined(__x86_64__)
  weipipeEmuSwitch(&f.sp, b.schedulerSp);
#else
  swapcontext(&f.ctx, &b.schedulerCtx);
#endif
  std::abort(); // a finished fiber is never resumed
}

#if !defined(__x86_64__)
void fiberEntry() { fiberMain(); }
#endif

/// Back to the scheduler (from a fiber at a barrier).
void yieldToScheduler() {
  Block &b = blk();
  Fiber &f = b.fibers[size_t(b.running)];
#if defined(__x86_64__)
  weipipeEmuSwitch(&f.sp, b.schedulerSp);
#else
  swapcontext(&f.ctx, &b.schedulerCtx);
#endif
}

void resume(unsigned t) {
  Block &b = blk();
  Fiber &f = b.fibers[t];
  f.state = State::Runnable;
  b.running = int(t);
  setThread(t);
#if defined(__x86_64__)
  weipipeEmuSwitch(&b.schedulerSp, f.sp);
#else
  swapcontext(&b.schedulerCtx, &f.ctx);
#endif
  b.running = -1;
}

/// A fresh fiber for thread t (its stack reused from earlier launches).
void start(unsigned t) {
  Block &b = blk();
  Fiber &f = b.fibers[t];
  if (!f.stack) {
    const size_t page = size_t(sysconf(_SC_PAGESIZE));
    void *m = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
      fail("cannot map a fiber stack");
    mprotect(m, page, PROT_NONE); // a stack overflow faults
    f.stack = static_cast<char *>(m) + page;
  }
  f.state = State::Runnable;
  f.syncs = f.shuffles = 0;
#if defined(__x86_64__)
  // The stack as weipipeEmuSwitch leaves it: six registers, then fiberMain
  // as the return address, above it a null "return address" of fiberMain
  // (which never returns) at a 16-byte boundary - 8, as at a call.
  uintptr_t top = reinterpret_cast<uintptr_t>(f.stack + kStackBytes) & ~15ull;
  void **sp = reinterpret_cast<void **>(top);
  *--sp = nullptr;
  *--sp = reinterpret_cast<void *>(&fiberMain);
  for (int i = 0; i < 6; ++i)
    *--sp = nullptr;
  f.sp = sp;
#else
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = f.stack;
  f.ctx.uc_stack.ss_size = kStackBytes;
  f.ctx.uc_link = nullptr;
  makecontext(&f.ctx, fiberEntry, 0);
#endif
}

//===----------------------------------------------------------------------===//
// The scheduler
//===----------------------------------------------------------------------===//

enum class Order { Forward, Reverse, Alternate };

Order order() {
  static const Order o = [] {
    const char *e = std::getenv("WEIPIPE_CUDA_EMU_ORDER");
    if (!e || !*e || !std::strcmp(e, "alternate"))
      return Order::Alternate;
    if (!std::strcmp(e, "forward"))
      return Order::Forward;
    if (!std::strcmp(e, "reverse"))
      return Order::Reverse;
    std::fprintf(stderr, "WEIPIPE_CUDA_EMU_ORDER must be forward, reverse or "
                         "alternate\n");
    std::abort();
  }();
  return o;
}

/// Runs one warp's lanes [first, end) until none waits at a shuffle: each
/// runnable lane runs to its next barrier; when every lane of the warp is at
/// a shuffle, the shuffle completes and they run on.
void runWarp(unsigned first, unsigned end, bool reverse) {
  Block &b = blk();
  for (;;) {
    const unsigned n = end - first;
    for (unsigned i = 0; i < n; ++i) {
      const unsigned t = reverse ? end - 1 - i : first + i;
      if (b.fibers[t].state == State::Runnable)
        resume(t);
    }
    unsigned atShuffle = 0, atSync = 0, done = 0;
    for (unsigned t = first; t < end; ++t) {
      const State s = b.fibers[t].state;
      atShuffle += s == State::AtShuffle;
      atSync += s == State::AtSync;
      done += s == State::Done;
    }
    if (atShuffle == 0)
      return;
    if (atShuffle != n) {
      // Some lanes wait at a shuffle that the others will never reach.
      unsigned waiting = first, other = first;
      for (unsigned t = first; t < end; ++t) {
        if (b.fibers[t].state == State::AtShuffle)
          waiting = t;
        else
          other = t;
      }
      current.thread = make_uint3(0, 0, 0);
      fail(std::string("divergent warp: ") + threadName(waiting) +
           " waits at " + b.fibers[waiting].shuffleWhat + " (its shuffle #" +
           std::to_string(b.fibers[waiting].shuffles) + ") while " +
           threadName(other) +
           (b.fibers[other].state == State::Done ? " has exited"
                                                 : " waits at __syncthreads") +
           " (" + std::to_string(atShuffle) + " of " + std::to_string(n) +
           " lanes at the shuffle, " + std::to_string(atSync) +
           " at __syncthreads, " + std::to_string(done) + " exited)");
    }
    const unsigned fullMask = n == 32 ? 0xffffffffu : (1u << n) - 1;
    for (unsigned t = first; t < end; ++t) {
      const Fiber &f = b.fibers[t];
      if (f.shuffleMask != fullMask)
        fail(threadName(t) + ": " + f.shuffleWhat + " with mask " +
             std::to_string(f.shuffleMask) +
             "; only whole-warp masks (the warp's existing lanes) are "
             "emulated");
      if (f.shuffles != b.fibers[first].shuffles ||
          std::strcmp(f.shuffleWhat, b.fibers[first].shuffleWhat) != 0)
        fail(std::string("divergent warp: ") + threadName(t) + " is at " +
             f.shuffleWhat + " #" + std::to_string(f.shuffles) + ", " +
             threadName(first) + " at " + b.fibers[first].shuffleWhat + " #" +
             std::to_string(b.fibers[first].shuffles));
    }
    for (unsigned t = first; t < end; ++t)
      b.fibers[t].state = State::Runnable;
  }
}

void runBlock(bool reverse) {
  Block &b = blk();
  const unsigned n = b.threads, warps = (n + 31) / 32;
  if (b.smemBytes)
    std::memset(b.smem.data(), 0xff, b.smem.size()); // NaN floats
  for (unsigned t = 0; t < n; ++t)
    start(t);
  for (;;) {
    for (unsigned i = 0; i < warps; ++i) {
      const unsigned w = reverse ? warps - 1 - i : i;
      runWarp(w * 32, std::min(n, w * 32 + 32), reverse);
    }
    unsigned atSync = 0, done = 0;
    for (unsigned t = 0; t < n; ++t) {
      atSync += b.fibers[t].state == State::AtSync;
      done += b.fibers[t].state == State::Done;
    }
    if (done == n)
      return;
    if (atSync != n) {
      unsigned waiting = 0, exited = 0;
      for (unsigned t = 0; t < n; ++t) {
        if (b.fibers[t].state == State::AtSync)
          waiting = t;
        else
          exited = t;
      }
      fail("__syncthreads not reached by every thread of the block: " +
           threadName(waiting) + " waits at its __syncthreads #" +
           std::to_string(b.fibers[waiting].syncs) + ", " + threadName(exited) +
           " has exited after " + std::to_string(b.fibers[exited].syncs) +
           " (" + std::to_string(atSync) + " of " + std::to_string(n) +
           " threads waiting, " + std::to_string(done) + " exited)");
    }
    for (unsigned t = 0; t < n; ++t)
      b.fibers[t].state = State::Runnable;
  }
}

//===----------------------------------------------------------------------===//
// The runtime's state
//===----------------------------------------------------------------------===//

// Per host thread, as the CUDA runtime's.
thread_local cudaError_t lastError = cudaSuccess;

// Several host threads may use the emulated device at once (pipeline ranks
// on one GPU): one kernel runs at a time (the scheduler's block, the
// built-ins and __shared__ statics are global), and the memory map and the
// copies are guarded alike. Recursive: a launch's body may allocate.
std::recursive_mutex &deviceMutex() {
  static std::recursive_mutex m;
  return m;
}

cudaError_t setError(cudaError_t e) {
  if (e != cudaSuccess)
    lastError = e;
  return e;
}

std::map<const void *, int> &smemOptIn() {
  static std::map<const void *, int> m;
  return m;
}

constexpr int kSmemOptIn = 227 * 1024; // an H100's per-block opt-in
constexpr int kSmemDefault = 48 * 1024;

/// A segmentation fault inside a kernel names it, the block and the thread.
void onFault(int sig, siginfo_t *info, void *) {
  Block &b = blk();
  if (b.running >= 0) {
    char msg[512];
    const int len = std::snprintf(
        msg, sizeof msg,
        "\nweipipe CUDA emulator: invalid memory access at %p (an "
        "out-of-bounds or freed device pointer, or a fiber stack overflow)\n"
        "  block (%u, %u, %u), thread (%u, %u, %u) of kernel %s\n",
        info->si_addr, current.block.x, current.block.y, current.block.z,
        current.thread.x, current.thread.y, current.thread.z,
        b.signature ? b.signature : "?");
    if (len > 0)
      (void)!write(2, msg, size_t(std::min(len, int(sizeof msg) - 1)));
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

void installFaultHandler() {
  static bool done = false;
  if (done)
    return;
  done = true;
  static std::vector<char> altStack(1 << 16);
  stack_t ss{};
  ss.ss_sp = altStack.data();
  ss.ss_size = altStack.size();
  sigaltstack(&ss, nullptr);
  struct sigaction sa {};
  sa.sa_sigaction = onFault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, nullptr);
  sigaction(SIGBUS, &sa, nullptr);
}

} // namespace

//===----------------------------------------------------------------------===//
// What Emulator.h declares
//===----------------------------------------------------------------------===//

bool launchable(const void *kernel, dim3 grid, dim3 block, size_t smem) {
  std::lock_guard<std::recursive_mutex> lock(deviceMutex());
  if (blk().running >= 0)
    fail("a kernel launched from a kernel (dynamic parallelism is not "
         "emulated)");
  const unsigned long long threads =
      (unsigned long long)block.x * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || block.x == 0 ||
      block.y == 0 || block.z == 0 || threads > kMaxThreads || block.x > 1024 ||
      block.y > 1024 || block.z > 64 || grid.x > 0x7fffffffu ||
      grid.y > 65535 || grid.z > 65535) {
    setError(cudaErrorInvalidConfiguration);
    return false;
  }
  int allowed = kSmemDefault;
  const auto it = smemOptIn().find(kernel);
  if (it != smemOptIn().end())
    allowed = std::max(allowed, it->second);
  if (smem > size_t(allowed)) {
    setError(cudaErrorInvalidValue);
    return false;
  }
  return true;
}

void run(const void *kernel, const char *signature, dim3 grid, dim3 block,
         size_t smem, void (*body)(void *), void *ctx) {
  std::lock_guard<std::recursive_mutex> lock(deviceMutex());
  if (!launchable(kernel, grid, block, smem))
    return;
  Block &b = blk();
  const unsigned long long threads =
      (unsigned long long)block.x * block.y * block.z;
  installFaultHandler();
  b.signature = signature;
  b.body = body;
  b.ctx = ctx;
  b.grid = grid;
  b.block = block;
  b.threads = unsigned(threads);
  if (b.fibers.size() < threads)
    b.fibers.resize(threads);
  b.smemBytes = smem;
  b.smem.assign(smem ? smem + 15 : 0, 0);
  current.gridSize = grid;
  current.blockSize = block;
  const Order o = order();
  const long launch = b.launches++;
  long index = 0;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x, ++index) {
        current.block = make_uint3(x, y, z);
        const bool reverse =
            o == Order::Reverse ||
            (o == Order::Alternate && ((launch + index) & 1) != 0);
        runBlock(reverse);
      }
  current.thread = current.block = make_uint3(0, 0, 0);
  b.signature = nullptr;
}

void *dynamicShared() {
  Block &b = blk();
  if (!b.smemBytes)
    return nullptr;
  const uintptr_t p = reinterpret_cast<uintptr_t>(b.smem.data());
  return reinterpret_cast<void *>((p + 15) & ~uintptr_t(15));
}

unsigned lane() {
  const Builtins &c = current;
  const unsigned t =
      c.thread.x + c.blockSize.x * (c.thread.y + c.blockSize.y * c.thread.z);
  return t % 32;
}

void syncThreads() {
  Block &b = blk();
  if (b.running < 0)
    fail("__syncthreads outside a kernel");
  Fiber &f = b.fibers[size_t(b.running)];
  ++f.syncs;
  f.state = State::AtSync;
  yieldToScheduler();
}

namespace {
/// Publishes `bytes` of `value` as the calling lane's slot and waits until
/// every lane of its warp has (runWarp checks that they all take part);
/// returns the calling thread and the slots' parity.
std::pair<unsigned, int> publish(unsigned mask, const void *value, size_t bytes,
                                 const char *what) {
  Block &b = blk();
  if (b.running < 0)
    fail(std::string(what) + " outside a kernel");
  if (bytes > kSlotBytes)
    fail(std::string(what) + " exchanges more than " +
         std::to_string(kSlotBytes) + " bytes a lane");
  const unsigned t = unsigned(b.running);
  Fiber &f = b.fibers[t];
  const int parity = int(f.shuffles & 1);
  std::memcpy(b.slots[parity][t], value, bytes);
  ++f.shuffles;
  f.shuffleMask = mask;
  f.shuffleWhat = what;
  f.state = State::AtShuffle;
  yieldToScheduler();
  return {t, parity};
}
} // namespace

void shuffle(unsigned mask, const void *value, void *out, size_t bytes, int src,
             const char *what) {
  Block &b = blk();
  const auto [t, parity] = publish(mask, value, bytes, what);
  if (src < 0) {
    std::memcpy(out, value, bytes);
    return;
  }
  const unsigned from = t / 32 * 32 + unsigned(src);
  if (from >= b.threads || !((mask >> src) & 1u))
    fail(threadName(t) + ": " + what + " reads lane " + std::to_string(src) +
         ", which is not in the warp's mask or does not exist");
  std::memcpy(out, b.slots[parity][from], bytes);
}

void gather(const void *value, void *all, size_t bytes, const char *what) {
  Block &b = blk();
  const auto [t, parity] = publish(0xffffffffu, value, bytes, what);
  const unsigned first = t / 32 * 32;
  if (first + 32 > b.threads)
    fail(threadName(t) + ": " + what + " needs a whole warp of 32 threads");
  for (unsigned l = 0; l < 32; ++l)
    std::memcpy(static_cast<unsigned char *>(all) + l * bytes,
                b.slots[parity][first + l], bytes);
}

namespace {
float bf16Bits(uint32_t bits) {
  const uint32_t x = bits << 16;
  float f;
  std::memcpy(&f, &x, sizeof f);
  return f;
}
} // namespace

void mmaBf16(float c[4], const uint32_t a[4], const uint32_t b[2]) {
  struct Operands {
    uint32_t a[4], b[2];
  } mine, all[32];
  std::memcpy(mine.a, a, sizeof mine.a);
  std::memcpy(mine.b, b, sizeof mine.b);
  gather(&mine, all, sizeof mine, "mma.sync.m16n8k16.bf16");
  // The PTX ISA's fragments (group g = lane / 4, t = lane % 4; the lower
  // half of a register is the lower index): A row-major 16 x 16, register
  // r of lane (g, t) holds row g + 8 (r & 1), columns 2t + 8 (r >> 1) and
  // one more; B 16 x 8, register r holds rows 2t + 8r and one more of
  // column g; C 16 x 8, c[i] is row g + 8 (i >> 1), column 2t + (i & 1).
  auto half = [](uint32_t reg, int k) {
    return bf16Bits((reg >> (16 * (k & 1))) & 0xffffu);
  };
  const int g = int(lane()) / 4, t = int(lane()) % 4;
  for (int i = 0; i < 4; ++i) {
    const int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
    // Products of bf16 values are exact in fp32; the device adds them in an
    // unspecified order and precision, this in k order.
    float acc = c[i];
    for (int k = 0; k < 16; ++k) {
      const Operands &x = all[(row % 8) * 4 + (k % 8) / 2];
      const Operands &y = all[col * 4 + (k % 8) / 2];
      acc += half(x.a[(row / 8) + 2 * (k / 8)], k) * half(y.b[k / 8], k);
    }
    c[i] = acc;
  }
}

} // namespace weipipe::emu

//===----------------------------------------------------------------------===//
// The CUDA runtime API, on host memory
//===----------------------------------------------------------------------===//

namespace emu = weipipe::emu;

namespace {

struct Allocation {
  void *map;
  size_t mapBytes;
};

std::map<void *, Allocation> &allocations() {
  static std::map<void *, Allocation> m;
  return m;
}

size_t pageBytes() { return size_t(sysconf(_SC_PAGESIZE)); }

/// Memory of `bytes` (rounded up to 256) whose end touches an unmapped
/// page; 256-byte aligned as cudaMalloc's; NaN bytes until written.
cudaError_t allocate(void **p, size_t bytes) {
  std::lock_guard<std::recursive_mutex> lock(emu::deviceMutex());
  if (!p)
    return emu::setError(cudaErrorInvalidValue);
  const size_t page = pageBytes();
  const size_t rounded = (std::max<size_t>(bytes, 1) + 255) & ~size_t(255);
  const size_t dataPages = (rounded + page - 1) / page * page;
  const size_t mapBytes = dataPages + page;
  void *m = mmap(nullptr, mapBytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) {
    *p = nullptr;
    return emu::setError(cudaErrorMemoryAllocation);
  }
  char *base = static_cast<char *>(m);
  mprotect(base + dataPages, page, PROT_NONE);
  char *data = base + dataPages - rounded;
  std::memset(data, 0xff, rounded);
  allocations()[data] = Allocation{m, mapBytes};
  *p = data;
  return cudaSuccess;
}

cudaError_t release(void *p) {
  if (!p)
    return cudaSuccess;
  std::lock_guard<std::recursive_mutex> lock(emu::deviceMutex());
  auto it = allocations().find(p);
  if (it == allocations().end())
    return emu::setError(cudaErrorInvalidValue);
  munmap(it->second.map, it->second.mapBytes);
  allocations().erase(it);
  return cudaSuccess;
}

//===----------------------------------------------------------------------===//
// Streams (EmuStreams.h): each a queue of work run when something needs it
//===----------------------------------------------------------------------===//

struct StreamState {
  std::deque<std::pair<uint64_t, std::function<void()>>> work;
  uint64_t enqueued = 0; // the number of the last work enqueued
  int priority = 0;      // 0: the default; less: more urgent
};
/// What an event captured when it was recorded: its stream's work so far.
struct EventState {
  StreamState *stream = nullptr;
  uint64_t upTo = 0;
};

/// The legacy default stream.
StreamState *legacyStream() {
  static StreamState *s = new StreamState;
  return s;
}

/// Every stream ever made (never freed: an event may still name one), the
/// legacy default stream first. Guarded by the device lock.
std::vector<StreamState *> &streams() {
  static std::vector<StreamState *> v{legacyStream()};
  return v;
}

StreamState *stateOf(cudaStream_t s) {
  if (!s || s == cudaStreamLegacy || s == cudaStreamPerThread)
    return legacyStream();
  return reinterpret_cast<StreamState *>(s);
}

/// WEIPIPE_CUDA_EMU_STREAMS (EmuStreams.h): which streams run their work
/// at once rather than late.
enum class Mode { Late, Eager, Split, SplitReverse };
Mode mode() {
  static const Mode m = [] {
    const char *v = std::getenv("WEIPIPE_CUDA_EMU_STREAMS");
    const std::string s = v ? v : "";
    if (s == "eager")
      return Mode::Eager;
    if (s == "split")
      return Mode::Split;
    if (s == "split-reverse")
      return Mode::SplitReverse;
    if (!s.empty() && s != "late") {
      std::fprintf(stderr,
                   "weipipe CUDA emulator: WEIPIPE_CUDA_EMU_STREAMS="
                   "%s: choose late, eager, split or split-reverse\n",
                   s.c_str());
      std::abort();
    }
    return Mode::Late;
  }();
  return m;
}

bool runsAtOnce(const StreamState *s) {
  switch (mode()) {
  case Mode::Late:
    return false;
  case Mode::Eager:
    return true;
  case Mode::Split:
    return s->priority == 0;
  case Mode::SplitReverse:
    return s->priority != 0;
  }
  return false;
}

/// Runs `s`'s work numbered up to `upTo`, in order. Work may drain other
/// streams (a wait on an event); each is taken off its queue before it runs.
void drain(StreamState *s, uint64_t upTo) {
  std::lock_guard<std::recursive_mutex> lock(emu::deviceMutex());
  while (!s->work.empty() && s->work.front().first <= upTo) {
    std::function<void()> w = std::move(s->work.front().second);
    s->work.pop_front();
    w();
  }
}

/// What the synchronous calls (cudaMemcpy, cudaMemset, cudaFree,
/// cudaDeviceSynchronize) wait for: everything.
void drainAll() {
  std::lock_guard<std::recursive_mutex> lock(emu::deviceMutex());
  for (size_t i = 0; i < streams().size(); ++i)
    drain(streams()[i], UINT64_MAX);
}

/// Distinct non-null handles, never dereferenced (memory pools).
char handles[4096];
int handleCount = 0;
void *newHandle() {
  std::lock_guard<std::recursive_mutex> lock(emu::deviceMutex());
  return handles + (handleCount++ % 4096);
}

} // namespace

void weipipe::emu::enqueue(cudaStream_t stream, std::function<void()> work) {
  std::lock_guard<std::recursive_mutex> lock(deviceMutex());
  StreamState *s = stateOf(stream);
  if (runsAtOnce(s)) { // nothing of it is queued: in order
    ++s->enqueued;
    work();
    return;
  }
  s->work.emplace_back(++s->enqueued, std::move(work));
}

extern "C" {

cudaError_t cudaGetDeviceCount(int *count) {
  if (!count)
    return emu::setError(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : emu::setError(cudaErrorInvalidDevice);
}

cudaError_t cudaGetDevice(int *device) {
  if (!device)
    return emu::setError(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int device) {
  if (!p)
    return emu::setError(cudaErrorInvalidValue);
  if (device != 0)
    return emu::setError(cudaErrorInvalidDevice);
  std::memset(p, 0, sizeof *p);
  std::snprintf(p->name, sizeof p->name, "weipipe CUDA emulator (H100-like)");
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = 132;
  p->totalGlobalMem = size_t(80) << 30;
  p->sharedMemPerBlock = emu::kSmemDefault;
  p->sharedMemPerBlockOptin = emu::kSmemOptIn;
  p->sharedMemPerMultiprocessor = 228 * 1024;
  p->regsPerBlock = 65536;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsDim[0] = p->maxThreadsDim[1] = 1024;
  p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 0x7fffffff;
  p->maxGridSize[1] = p->maxGridSize[2] = 65535;
  p->maxThreadsPerMultiProcessor = 2048;
  p->totalConstMem = 65536;
  p->l2CacheSize = 50 << 20;
  p->memoryBusWidth = 5120;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr,
                                   int device) {
  if (!value)
    return emu::setError(cudaErrorInvalidValue);
  if (device != 0)
    return emu::setError(cudaErrorInvalidDevice);
  switch (attr) {
  case cudaDevAttrMaxSharedMemoryPerBlockOptin:
    *value = emu::kSmemOptIn;
    return cudaSuccess;
  case cudaDevAttrMaxSharedMemoryPerBlock:
    *value = emu::kSmemDefault;
    return cudaSuccess;
  case cudaDevAttrMultiProcessorCount:
    *value = 132;
    return cudaSuccess;
  case cudaDevAttrMaxThreadsPerBlock:
    *value = 1024;
    return cudaSuccess;
  case cudaDevAttrWarpSize:
    *value = 32;
    return cudaSuccess;
  case cudaDevAttrComputeCapabilityMajor:
    *value = 9;
    return cudaSuccess;
  case cudaDevAttrComputeCapabilityMinor:
    *value = 0;
    return cudaSuccess;
  default:
    return emu::setError(cudaErrorInvalidValue);
  }
}

cudaError_t cudaFuncSetAttribute(const void *func, cudaFuncAttribute attr,
                                 int value) {
  if (!func)
    return emu::setError(cudaErrorInvalidDeviceFunction);
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || value > emu::kSmemOptIn)
      return emu::setError(cudaErrorInvalidValue);
    emu::smemOptIn()[func] = value;
  }
  return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
  const cudaError_t e = emu::lastError;
  emu::lastError = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError(void) { return emu::lastError; }

const char *cudaGetErrorName(cudaError_t e) {
  switch (e) {
  case cudaSuccess:
    return "cudaSuccess";
  case cudaErrorInvalidValue:
    return "cudaErrorInvalidValue";
  case cudaErrorMemoryAllocation:
    return "cudaErrorMemoryAllocation";
  case cudaErrorInvalidConfiguration:
    return "cudaErrorInvalidConfiguration";
  case cudaErrorInvalidDevice:
    return "cudaErrorInvalidDevice";
  case cudaErrorInvalidDeviceFunction:
    return "cudaErrorInvalidDeviceFunction";
  case cudaErrorNoDevice:
    return "cudaErrorNoDevice";
  default:
    return "cudaError (emulated)";
  }
}

const char *cudaGetErrorString(cudaError_t e) {
  switch (e) {
  case cudaSuccess:
    return "no error";
  case cudaErrorInvalidValue:
    return "invalid argument";
  case cudaErrorMemoryAllocation:
    return "out of memory";
  case cudaErrorInvalidConfiguration:
    return "invalid configuration argument";
  case cudaErrorInvalidDevice:
    return "invalid device ordinal";
  case cudaErrorInvalidDeviceFunction:
    return "invalid device function";
  default:
    return "error (emulated CUDA runtime)";
  }
}

cudaError_t cudaMalloc(void **p, size_t bytes) { return allocate(p, bytes); }
cudaError_t cudaFree(void *p) {
  drainAll(); // cudaFree waits for the device
  return release(p);
}
cudaError_t cudaMallocHost(void **p, size_t bytes) {
  return allocate(p, bytes);
}
cudaError_t cudaFreeHost(void *p) { return cudaFree(p); }

cudaError_t cudaMemGetInfo(size_t *freeBytes, size_t *total) {
  if (freeBytes)
    *freeBytes = size_t(79) << 30;
  if (total)
    *total = size_t(80) << 30;
  return cudaSuccess;
}

// The synchronous forms wait for every stream (more than the runtime does
// for non-blocking streams: lenient, never stricter); the async forms run
// when their stream gets to them.
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes,
                       cudaMemcpyKind) {
  if (bytes && (!dst || !src))
    return emu::setError(cudaErrorInvalidValue);
  drainAll();
  if (bytes)
    std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes,
                            cudaMemcpyKind, cudaStream_t stream) {
  if (bytes && (!dst || !src))
    return emu::setError(cudaErrorInvalidValue);
  if (bytes)
    emu::enqueue(stream, [=] { std::memmove(dst, src, bytes); });
  return cudaSuccess;
}
cudaError_t cudaMemset(void *dst, int value, size_t bytes) {
  if (bytes && !dst)
    return emu::setError(cudaErrorInvalidValue);
  drainAll();
  if (bytes)
    std::memset(dst, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes,
                            cudaStream_t stream) {
  if (bytes && !dst)
    return emu::setError(cudaErrorInvalidValue);
  if (bytes)
    emu::enqueue(stream, [=] { std::memset(dst, value, bytes); });
  return cudaSuccess;
}

// Stream-ordered allocation: at once, like everything here.
cudaError_t cudaMallocAsync(void **p, size_t bytes, cudaStream_t) {
  return allocate(p, bytes);
}
cudaError_t cudaFreeAsync(void *p, cudaStream_t stream) {
  // Unmapped when the stream gets there: a copy still queued before it
  // works, one ordered after it faults.
  emu::enqueue(stream, [p] { release(p); });
  return cudaSuccess;
}
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t *pool, int device) {
  if (!pool || device != 0)
    return emu::setError(!pool ? cudaErrorInvalidValue
                               : cudaErrorInvalidDevice);
  *pool = static_cast<cudaMemPool_t>(newHandle());
  return cudaSuccess;
}
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t, cudaMemPoolAttr, void *) {
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
  drainAll();
  return cudaSuccess;
}
cudaError_t cudaDeviceReset(void) { return cudaSuccess; }

cudaError_t cudaStreamCreate(cudaStream_t *s) {
  if (!s)
    return emu::setError(cudaErrorInvalidValue);
  std::lock_guard<std::recursive_mutex> lock(emu::deviceMutex());
  streams().push_back(new StreamState);
  *s = reinterpret_cast<cudaStream_t>(streams().back());
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) {
  return cudaStreamCreate(s);
}
cudaError_t cudaStreamCreateWithPriority(cudaStream_t *s, unsigned,
                                         int priority) {
  if (cudaError_t e = cudaStreamCreate(s); e != cudaSuccess)
    return e;
  stateOf(*s)->priority = priority;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetStreamPriorityRange(int *least, int *greatest) {
  if (least)
    *least = 0;
  if (greatest)
    *greatest = -5; // an H100's range
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  // Its work still completes (the runtime's promise); the state stays.
  drain(stateOf(s), UINT64_MAX);
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  drain(stateOf(s), UINT64_MAX);
  return cudaSuccess;
}
cudaError_t cudaStreamQuery(cudaStream_t s) {
  drain(stateOf(s), UINT64_MAX); // asked whether it is done: it is now
  return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned) {
  if (!e)
    return emu::setError(cudaErrorInvalidResourceHandle);
  const EventState at = *reinterpret_cast<EventState *>(e);
  if (at.stream)
    emu::enqueue(s, [at] { drain(at.stream, at.upTo); });
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *e) {
  if (!e)
    return emu::setError(cudaErrorInvalidValue);
  *e = reinterpret_cast<cudaEvent_t>(new EventState);
  return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) {
  return cudaEventCreate(e);
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete reinterpret_cast<EventState *>(e);
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (!e)
    return emu::setError(cudaErrorInvalidResourceHandle);
  std::lock_guard<std::recursive_mutex> lock(emu::deviceMutex());
  StreamState *st = stateOf(s);
  *reinterpret_cast<EventState *>(e) = EventState{st, st->enqueued};
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  if (!e)
    return emu::setError(cudaErrorInvalidResourceHandle);
  const EventState at = *reinterpret_cast<EventState *>(e);
  if (at.stream)
    drain(at.stream, at.upTo);
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t, cudaEvent_t) {
  if (ms)
    *ms = 0.0f;
  return cudaSuccess;
}

} // extern "C"
