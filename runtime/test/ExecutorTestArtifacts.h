//===- ExecutorTestArtifacts.h - the executor tests' artifacts -*- C++ -*-===//
//
// Part of weipipe's runtime tests: the hand-built artifacts (and the helpers
// that build them) that test/ExecutorTest.cpp runs on the CPU executor and
// test/cuda/ExecutorCudaTest.cpp runs on both executors: the arena Plan,
// deterministic values, constants, the tiny language model with its
// parameter file, the non-finite search's artifact, the Accumulate artifact,
// the norm + attention artifact and the typed data movement artifact.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_TEST_EXECUTORTESTARTIFACTS_H
#define WEIPIPE_RUNTIME_TEST_EXECUTORTESTARTIFACTS_H

#include "weipipe/runtime/Artifact.h"
#include "weipipe/runtime/cpu/Kernels.h"

#include "ArtifactTestUtil.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <unistd.h>
#include <utility>
#include <vector>

#define EXPECT_HAS(haystack, needle)                                           \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos)             \
      << "'" << (haystack) << "' lacks '" << (needle) << "'"

namespace weipipe::rt::test {

/// Lays tensors out in the arena at 64-byte-aligned offsets.
struct Plan {
  uint64_t next = 0;
  TensorRef t(DType dt, std::vector<int64_t> shape) {
    TensorRef r = arenaAt(next, dt, std::move(shape));
    next += (r.bytes() + 63) / 64 * 64;
    return r;
  }
  TensorRef f32(std::vector<int64_t> shape) {
    return t(DType::F32, std::move(shape));
  }
};

/// Deterministic values in [-1, 1).
inline std::vector<float> values(size_t n, uint64_t seed) {
  std::vector<float> v(n);
  for (float &x : v) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    x = float(double(seed >> 40) / double(1ull << 24) * 2.0 - 1.0);
  }
  return v;
}

template <typename T>
Constant constant(DType dt, std::vector<int64_t> shape,
                  const std::vector<T> &v) {
  Constant c;
  c.dtype = dt;
  c.shape = std::move(shape);
  c.bytes.assign(reinterpret_cast<const char *>(v.data()),
                 v.size() * sizeof(T));
  return c;
}

/// A fresh directory under gtest's temporary directory.
inline std::string tempDir() {
  std::string t = ::testing::TempDir() + "wpp-exec-XXXXXX";
  EXPECT_NE(::mkdtemp(t.data()), nullptr);
  return t;
}

/// The whole arena, readable through logits().
inline void exposeArena(Artifact &a, const Plan &p) {
  a.arenaBytes = p.next;
  a.logits = entry(Space::Arena, 0, {int64_t(p.next / 4)});
}

//===----------------------------------------------------------------------===//
// The tiny language model: embedding -> linear (tied layout [V, H], used
// transposed) -> cross-entropy, and its backward.
//===----------------------------------------------------------------------===//

constexpr int64_t B = 2, S = 3, V = 8, H = 4, N = B * S;

struct Tiny {
  std::string dir;
  std::string file; // the parameter file
  std::vector<float> emb = values(V * H, 1), w = values(V * H, 2);
  Artifact a;
  TensorRef ids, tgt, h, logits, loss, dloss, dlogits, dh;
};

/// Parameters sit at offsets 16 and 152 of a 284-byte file, between junk.
inline void writeParams(Tiny &t) {
  t.file = t.dir + "/weights.bin";
  std::ofstream f(t.file, std::ios::binary);
  const char junk[16] = "0123456789abcde";
  f.write(junk, 16);
  f.write(reinterpret_cast<const char *>(t.emb.data()), V * H * 4);
  f.write(junk, 8);
  f.write(reinterpret_cast<const char *>(t.w.data()), V * H * 4);
  f.write(junk, 4);
}

/// The artifact; with `accumulate` the weight-gradient instructions carry
/// Instruction::kAccumulate (they add to the gradient instead of writing it).
inline void buildTiny(Tiny &t, bool accumulate) {
  Artifact &a = t.a;
  a.batch = B;
  a.seq = S;
  a.vocab = V;
  Parameter emb, w;
  emb.name = "emb";
  emb.shape = {V, H};
  emb.storage = {"weights.bin", 16, V * H * 4, 284}; // relative
  w.name = "w";
  w.shape = {V, H};
  w.storage = {t.file, 152, V * H * 4, 284}; // absolute
  a.params = {emb, w};
  Plan p;
  t.ids = p.t(DType::I64, {B, S});
  t.tgt = p.t(DType::I64, {B, S});
  t.h = p.f32({B, S, H});
  t.logits = p.f32({B, S, V});
  t.loss = p.f32({});
  t.dloss = p.f32({});
  t.dlogits = p.f32({B, S, V});
  t.dh = p.f32({B, S, H});
  a.arenaBytes = p.next;
  a.inputs = {{"input_ids", InputRole::Tokens, t.ids},
              {"targets", InputRole::Targets, t.tgt}};
  a.loss = t.loss;
  a.dloss = t.dloss;
  a.logits = t.logits;
  const TensorRef pe = entry(Space::Param, 0, {V, H}),
                  pw = entry(Space::Param, 1, {V, H});
  const uint8_t acc = accumulate ? Instruction::kAccumulate : 0;
  Function fwd;
  fwd.name = "forward";
  fwd.body = {
      instr(Opcode::Embedding, {pe, t.ids}, {t.h}, {}, {}, "wte"),
      instr(Opcode::Linear, {t.h, pw, TensorRef()}, {t.logits}, {1}, {},
            "lm_head"),
      instr(Opcode::CrossEntropy, {t.logits, t.tgt}, {t.loss}, {-100}, {},
            "loss"),
  };
  Function bwd;
  bwd.name = "backward";
  bwd.kind = FunctionKind::Backward;
  bwd.body = {
      instr(Opcode::CrossEntropyGrad, {t.logits, t.tgt, t.dloss}, {t.dlogits},
            {-100}),
      instr(Opcode::Linear, {t.dlogits, pw, TensorRef()}, {t.dh}, {0}),
      instr(Opcode::LinearGradWeight, {t.h, t.dlogits},
            {entry(Space::Grad, 1, {V, H})}, {1}, {}, "", acc),
      instr(Opcode::EmbeddingGrad, {t.ids, t.dh},
            {entry(Space::Grad, 0, {V, H})}, {}, {}, "", acc),
  };
  a.functions = {fwd, bwd};
  a.microbatchProgram = {0, 1};
}

/// The tiny model with its parameter file in a fresh temporary directory.
inline Tiny makeTiny(bool accumulate = true) {
  Tiny t;
  t.dir = tempDir();
  writeParams(t);
  buildTiny(t, accumulate);
  return t;
}

inline const std::vector<int64_t> kIds = {1, 7, 3, 3, 0, 5};
inline const std::vector<int64_t> kTargets = {7, 3, -100, 0, 5, 2};

//===----------------------------------------------------------------------===//
// Small artifacts over constants. An Executor keeps a reference to its
// artifact: hold the result in a variable that outlives the executor.
//===----------------------------------------------------------------------===//

/// log(c) then exp of it, c = {1, -1, 2, 3}: instruction 0 ('log of c') makes
/// the first non-finite value (element 1, nan). The arena is not exposed.
inline Artifact nonFiniteArtifact() {
  Artifact a;
  Plan p;
  const std::vector<float> c = {1.0f, -1.0f, 2.0f, 3.0f};
  a.constants = {constant(DType::F32, {4}, c)};
  const TensorRef lg = p.f32({4}), ex = p.f32({4});
  Function f;
  f.name = "forward";
  f.body = {instr(Opcode::Unary, {entry(Space::Const, 0, {4})}, {lg},
                  {int64_t(cpu::UnaryOp::Log)}, {}, "log of c"),
            instr(Opcode::Unary, {lg}, {ex}, {int64_t(cpu::UnaryOp::Exp)}, {},
                  "exp")};
  a.functions = {f};
  a.microbatchProgram = {0};
  a.arenaBytes = p.next;
  return a;
}

/// One parameter 'p' [4] ("weights.bin", never read: an unknown file size)
/// and one Accumulate instruction adding the constant `g` to its gradient.
inline Artifact accumulateArtifact(const std::vector<float> &g) {
  Artifact a;
  Parameter p;
  p.name = "p";
  p.shape = {4};
  p.storage = {"weights.bin", 0, 16, 0};
  a.params = {p};
  a.constants = {constant(DType::F32, {4}, g)};
  Function f;
  f.name = "f";
  f.body = {instr(Opcode::Accumulate, {entry(Space::Const, 0, {4})},
                  {entry(Space::Grad, 0, {4})})};
  a.functions = {f};
  a.microbatchProgram = {0};
  return a;
}

/// Layer and RMS norms with their gradients (each pair fused, then each op
/// alone) and attention with its gradient (BHSD with GQA (H 2, Hkv 1),
/// causal; BSHD with a keep mask), all over constants; the arena exposed.
struct NormAttention {
  static constexpr int64_t R = 6, C = 8; // x [2, 3, 8], normalized over C
  static constexpr int64_t Sq = 5, Sk = 5, D = 4;
  static constexpr double eps = 1e-5;
  std::vector<float> x = values(R * C, 11), scale = values(C, 12),
                     bias = values(C, 13), dy = values(R * C, 14);
  std::vector<float> q = values(2 * Sq * D, 15), kk = values(Sk * D, 16),
                     v = values(Sk * D, 17), dout = values(2 * Sq * D, 18);
  std::vector<uint8_t> keep;
  Artifact a;
  TensorRef y1, dx1, ds1, db1, y2, dx2, ds2, o, dq, dk, dv, o3, dq3, dk3, dv3,
      ds4, db4, dx5, dx6, ds6;
};

inline NormAttention normAttentionArtifact() {
  NormAttention n;
  constexpr int64_t C = NormAttention::C, Sq = NormAttention::Sq,
                    Sk = NormAttention::Sk, D = NormAttention::D;
  constexpr double eps = NormAttention::eps;
  Artifact &a = n.a;
  Plan p;
  n.keep.resize(Sq * Sk);
  for (int64_t i = 0; i < Sq; ++i)
    for (int64_t j = 0; j < Sk; ++j)
      n.keep[i * Sk + j] = (i + 2 * j) % 3 != 1 || j == 0;
  a.constants = {
      constant(DType::F32, {2, 3, C}, n.x),         // 0
      constant(DType::F32, {C}, n.scale),           // 1
      constant(DType::F32, {C}, n.bias),            // 2
      constant(DType::F32, {2, 3, C}, n.dy),        // 3
      constant(DType::F32, {1, 2, Sq, D}, n.q),     // 4
      constant(DType::F32, {1, 1, Sk, D}, n.kk),    // 5
      constant(DType::F32, {1, 1, Sk, D}, n.v),     // 6
      constant(DType::F32, {1, 2, Sq, D}, n.dout),  // 7
      constant(DType::Bool, {Sq, Sk}, n.keep),      // 8
      constant(DType::F32, {1, Sq, 2 * D}, n.q),    // 9: the BSHD view
      constant(DType::F32, {1, Sk, D}, n.kk),       // 10
      constant(DType::F32, {1, Sk, D}, n.v),        // 11
      constant(DType::F32, {1, Sq, 2 * D}, n.dout), // 12
  };
  auto c = [&](uint32_t i) {
    return entry(Space::Const, i, a.constants[i].shape, a.constants[i].dtype);
  };
  n.y1 = p.f32({2, 3, C});
  n.dx1 = p.f32({2, 3, C});
  n.ds1 = p.f32({C});
  n.db1 = p.f32({C});
  n.y2 = p.f32({2, 3, C});
  n.dx2 = p.f32({2, 3, C});
  n.ds2 = p.f32({C});
  n.o = p.f32({1, 2, Sq, D});
  n.dq = p.f32({1, 2, Sq, D});
  n.dk = p.f32({1, 1, Sk, D});
  n.dv = p.f32({1, 1, Sk, D});
  n.o3 = p.f32({1, Sq, 2 * D});
  n.dq3 = p.f32({1, Sq, 2 * D});
  n.dk3 = p.f32({1, Sk, D});
  n.dv3 = p.f32({1, Sk, D});
  n.ds4 = p.f32({C});
  n.db4 = p.f32({C});
  n.dx5 = p.f32({2, 3, C});
  n.dx6 = p.f32({2, 3, C});
  n.ds6 = p.f32({C});
  Function f;
  f.name = "f";
  f.body = {
      instr(Opcode::LayerNorm, {c(0), c(1), c(2)}, {n.y1}, {2}, {eps}),
      // The two gradients of each norm, marked to run as one kernel call.
      instr(Opcode::LayerNormGradInput, {c(0), c(1), c(3)}, {n.dx1}, {2}, {eps},
            "", Instruction::kFusedWithNext),
      instr(Opcode::LayerNormGradParams, {c(0), c(3)}, {n.ds1, n.db1}, {2},
            {eps}),
      instr(Opcode::RMSNorm, {c(0), c(1)}, {n.y2}, {2}, {eps}),
      instr(Opcode::RMSNormGradInput, {c(0), c(1), c(3)}, {n.dx2}, {2}, {eps},
            "", Instruction::kFusedWithNext),
      instr(Opcode::RMSNormGradScale, {c(0), c(3)}, {n.ds2}, {2}, {eps}),
      instr(Opcode::Attention, {c(4), c(5), c(6), TensorRef()}, {n.o},
            {2, 1, 1}, {0.5}),
      instr(Opcode::AttentionGrad, {c(4), c(5), c(6), n.o, c(7), TensorRef()},
            {n.dq, n.dk, n.dv}, {2, 1, 1}, {0.5}),
      instr(Opcode::Attention, {c(9), c(10), c(11), c(8)}, {n.o3}, {2, 1, 0},
            {0.5}),
      instr(Opcode::AttentionGrad, {c(9), c(10), c(11), n.o3, c(12), c(8)},
            {n.dq3, n.dk3, n.dv3}, {2, 1, 0}, {0.5}),
      // The same gradients one op at a time (unmarked, each runs alone).
      instr(Opcode::LayerNormGradParams, {c(0), c(3)}, {n.ds4, n.db4}, {2},
            {eps}),
      instr(Opcode::RMSNormGradInput, {c(0), c(1), c(3)}, {n.dx5}, {2}, {eps}),
      instr(Opcode::LayerNormGradInput, {c(0), c(1), c(3)}, {n.dx6}, {2},
            {eps}),
      instr(Opcode::RMSNormGradScale, {c(0), c(3)}, {n.ds6}, {2}, {eps}),
  };
  a.functions = {f};
  a.microbatchProgram = {0};
  exposeArena(a, p);
  return n;
}

/// Integer, bool and float paths of the typed data movement ops over
/// constants; the arena exposed.
struct TypedMovement {
  Artifact a;
  TensorRef f, tr, lt, wh, sum, cat, sl, ga, i32, cp, bc, st, tri, cs, csf, bd;
};

inline TypedMovement typedMovementArtifact() {
  TypedMovement m;
  Artifact &a = m.a;
  Plan p;
  a.constants = {
      constant(DType::I64, {2, 3}, std::vector<int64_t>{0, 1, 2, 3, 4, 5}),
      constant(DType::F32, {}, std::vector<float>{2.5f}),
      constant(DType::F32, {}, std::vector<float>{-1.0f}),
      constant(DType::I64, {2}, std::vector<int64_t>{1, -1}),
      constant(DType::I64, {3}, std::vector<int64_t>{7, 8, 9}),
  };
  auto c = [&](uint32_t i) {
    return entry(Space::Const, i, a.constants[i].shape, a.constants[i].dtype);
  };
  m.f = p.f32({2, 3});
  m.tr = p.f32({3, 2});
  m.lt = p.t(DType::Bool, {2, 3});
  m.wh = p.f32({2, 3});
  m.sum = p.f32({2});
  m.cat = p.t(DType::I64, {4, 3});
  m.sl = p.f32({2, 3});
  m.ga = p.t(DType::I64, {2, 3});
  m.i32 = p.t(DType::I32, {2, 3});
  m.cp = p.t(DType::I64, {6});
  m.bc = p.f32({2, 2, 3});
  m.st = p.f32({1, 3});
  m.tri = p.t(DType::I64, {2, 3});
  m.cs = p.t(DType::I64, {2, 3});
  m.csf = p.f32({2, 3});
  m.bd = p.t(DType::I64, {2, 2, 2});
  Function fn;
  fn.name = "f";
  fn.body = {
      instr(Opcode::Cast, {c(0)}, {m.f}),
      instr(Opcode::Transpose, {m.f}, {m.tr}, {1, 0}),
      instr(Opcode::Compare, {m.f, c(1)}, {m.lt},
            {int64_t(cpu::CompareOp::Less)}),
      instr(Opcode::Where, {m.lt, m.f, c(2)}, {m.wh}),
      instr(Opcode::Reduce, {m.f}, {m.sum}, {int64_t(cpu::ReduceOp::Sum), 1}),
      instr(Opcode::Concat, {c(0), c(0)}, {m.cat}, {0}),
      instr(Opcode::Slice, {m.f}, {m.sl}, {0, 2, 2, -1, 1, -1}),
      instr(Opcode::Gather, {c(0), c(3)}, {m.ga}, {0}),
      instr(Opcode::Cast, {m.lt}, {m.i32}),
      instr(Opcode::Copy, {c(0)}, {m.cp}),
      instr(Opcode::Broadcast, {m.f}, {m.bc}),
      instr(Opcode::SumToShape, {m.bc}, {m.st}),
      instr(Opcode::Trilu, {c(0)}, {m.tri}, {0, 0}),
      instr(Opcode::CumSum, {c(0)}, {m.cs}, {1, 0, 0}),
      instr(Opcode::CumSum, {m.f}, {m.csf}, {0, 1, 1}),
      // A [2, 2, 2] band from the 3 diagonal values of constant 4.
      instr(Opcode::Band, {c(4)}, {m.bd}),
  };
  a.functions = {fn};
  a.microbatchProgram = {0};
  exposeArena(a, p);
  return m;
}

} // namespace weipipe::rt::test

#endif // WEIPIPE_RUNTIME_TEST_EXECUTORTESTARTIFACTS_H
