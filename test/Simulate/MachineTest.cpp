//===- MachineTest.cpp - machine models and instruction costs -------------===//
//
// Part of weipipe. Every shipped machine model loads and says what its
// source says (the A800's 312 TFLOPS, the H100's 989); a model with a
// mistake is refused with a message that names the field; the efficiency
// curves interpolate in log(size); and an instruction costs what the
// textbook formulas say (2MNK for a product, 4 B H Sq Sk D for attention,
// half of it causal, 2.5x for its backward; bytes over bandwidth for the
// rest), each plus the launch overhead.
//
//===----------------------------------------------------------------------===//

#include "weipipe/Simulate/Cost.h"

#include <gtest/gtest.h>

#include <string>

using namespace weipipe::simulate;
using weipipe::rt::DType;
using weipipe::rt::Instruction;
using weipipe::rt::Opcode;
using weipipe::rt::Space;
using weipipe::rt::TensorRef;

namespace {

const char *kValid = R"({
  "name": "test",
  "sources": ["made up"],
  "device": {
    "name": "dev",
    "memory_gib": 16,
    "memory_bandwidth_gb_s": 1000,
    "peak_tflops": {"bf16": 100, "fp32": 10},
    "gemm_efficiency": [[1e6, 0.25], [1e8, 0.75]],
    "attention_efficiency": [[100, 0.5]],
    "elementwise_efficiency": 0.5,
    "launch_overhead_us": 2
  },
  "ranks_per_node": 4,
  "intra_node": {"kind": "nvlink", "bandwidth_gb_s": 100, "efficiency": 0.5,
                 "latency_us": 3},
  "inter_node": {"kind": "ethernet", "bandwidth_gb_s": 1, "efficiency": 1,
                 "latency_us": 50, "shared": true},
  "default_precision": "bf16"
})";

std::string parseError(const std::string &text) {
  Machine m;
  return parseMachine(text, "m.json", &m);
}

/// kValid with `from` replaced by `to` (which must occur).
std::string edited(const std::string &from, const std::string &to) {
  std::string s = kValid;
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return s.replace(at, from.size(), to);
}

TensorRef tensor(std::vector<int64_t> shape, DType t = DType::F32) {
  TensorRef r;
  r.space = Space::Arena;
  r.dtype = t;
  r.shape = std::move(shape);
  return r;
}

Machine valid() {
  Machine m;
  EXPECT_EQ(parseMachine(kValid, "m.json", &m), "");
  return m;
}

} // namespace

TEST(Machines, EveryShippedOneLoads) {
  const std::vector<std::string> names = shippedMachineNames();
  for (const char *want : {"a800-nvlink-10gbe", "a800-pcie-10gbe",
                           "a800-nvlink-8", "h100-nvlink-ib", "cpu-local"})
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
  for (const std::string &n : names) {
    Machine m;
    EXPECT_EQ(loadMachine(n, &m), "") << n;
    EXPECT_EQ(m.name, n) << "the file's name field";
    EXPECT_FALSE(m.sources.empty()) << n;
  }
  Machine a800, h100;
  ASSERT_EQ(loadMachine("a800-nvlink-10gbe", &a800), "");
  ASSERT_EQ(loadMachine("h100-nvlink-ib", &h100), "");
  EXPECT_DOUBLE_EQ(a800.peakFlops[int(Precision::Bf16)], 312e12);
  EXPECT_DOUBLE_EQ(h100.peakFlops[int(Precision::Bf16)], 989e12);
  EXPECT_EQ(a800.ranksPerNode, 8);
  EXPECT_TRUE(a800.hasInterNode);
  EXPECT_EQ(a800.interNode.kind, "ethernet");
  EXPECT_NEAR(a800.interNode.bandwidth, 1.25e9 * 0.9, 1);
}

TEST(Machines, FieldsAndUnits) {
  const Machine m = valid();
  EXPECT_DOUBLE_EQ(m.memoryBytes, 16.0 * (1ull << 30));
  EXPECT_DOUBLE_EQ(m.memoryBandwidth, 1e12);
  EXPECT_DOUBLE_EQ(m.peakFlops[int(Precision::Fp32)], 10e12);
  EXPECT_DOUBLE_EQ(m.launchOverhead, 2e-6);
  EXPECT_DOUBLE_EQ(m.intraNode.bandwidth, 50e9); // 100 GB/s at 50 %
  EXPECT_DOUBLE_EQ(m.intraNode.latency, 3e-6);
  EXPECT_FALSE(m.intraNode.shared);
  EXPECT_TRUE(m.interNode.shared);
  // Linear in log(size) between the points, flat beyond them.
  EXPECT_DOUBLE_EQ(m.gemmEfficiency.at(1e5), 0.25);
  EXPECT_DOUBLE_EQ(m.gemmEfficiency.at(1e7), 0.5);
  EXPECT_DOUBLE_EQ(m.gemmEfficiency.at(1e9), 0.75);
}

TEST(Machines, MistakesNameTheField) {
  struct Case {
    std::string text, message;
  };
  const Case cases[] = {
      {"{", "m.json: not JSON"},
      {"[]", "m.json: expected a JSON object"},
      {edited("\"memory_gib\": 16", "\"memory_gb\": 16"),
       "field 'device.memory_gib': missing"},
      {edited("\"fp32\": 10", "\"fp32\": \"10\""),
       "field 'device.peak_tflops.fp32': expected a number"},
      {edited("\"bf16\": 100", "\"bf16\": -1"),
       "field 'device.peak_tflops.bf16': -1.000000 is out of range"},
      {edited("\"efficiency\": 0.5", "\"efficiency\": 1.5"),
       "field 'intra_node.efficiency': 1.500000 is out of range"},
      {edited("[1e8, 0.75]", "[1e5, 0.75]"),
       "field 'device.gemm_efficiency': entry 1: sizes must ascend"},
      {edited("[[100, 0.5]]", "[[100, 0]]"),
       "field 'device.attention_efficiency': entry 0: the efficiency must "
       "be in (0, 1]"},
      {edited("\"ranks_per_node\": 4", "\"ranks_per_node\": 2.5"),
       "field 'ranks_per_node': expected a whole number"},
      {edited("\"shared\": true", "\"shared\": 1"),
       "field 'inter_node.shared': expected true or false"},
      {edited("\"default_precision\": \"bf16\"",
              "\"default_precision\": \"fp8\""),
       "field 'default_precision': 'fp8': expected bf16 or fp32"},
      {edited("\"name\": \"test\",", "\"name\": \"test\", \"colour\": 1,"),
       "field 'colour': unknown field"},
      {edited("\"launch_overhead_us\": 2",
              "\"launch_overhead_us\": 2, \"cores\": 8"),
       "field 'device.cores': unknown field"},
  };
  for (const Case &c : cases) {
    const std::string e = parseError(c.text);
    EXPECT_NE(e.find(c.message), std::string::npos)
        << "got: " << e << "\nwant: " << c.message;
  }
}

TEST(Machines, AnUnknownNameListsTheShippedOnes) {
  Machine m;
  const std::string e = loadMachine("a900", &m);
  EXPECT_NE(e.find("unknown machine 'a900'"), std::string::npos) << e;
  EXPECT_NE(e.find("a800-nvlink-10gbe"), std::string::npos) << e;
  EXPECT_NE(e.find("cpu-local"), std::string::npos) << e;
  const std::string missing = loadMachine("/nonexistent/m.json", &m);
  EXPECT_NE(missing.find("/nonexistent/m.json: cannot read"), std::string::npos)
      << missing;
}

TEST(Costs, ProductsCostTheirFlopsAtTheirEfficiency) {
  const Machine m = valid();
  Instruction linear;
  linear.op = Opcode::Linear; // [8, 32, 64] x W[128, 64]^T -> [8, 32, 128]
  linear.operands = {tensor({8, 32, 64}), tensor({128, 64}), TensorRef{}};
  linear.results = {tensor({8, 32, 128})};
  const OpCost c = instructionCost(linear, m, Precision::Bf16);
  const double flops = 2.0 * 8 * 32 * 64 * 128; // 4.19e6
  EXPECT_EQ(c.kind, OpCost::Gemm);
  EXPECT_DOUBLE_EQ(c.flops, flops);
  EXPECT_NEAR(c.seconds, flops / (100e12 * m.gemmEfficiency.at(flops)) + 2e-6,
              1e-15);
  EXPECT_DOUBLE_EQ(c.bytes, 4.0 * (8 * 32 * 64 + 128 * 64 + 8 * 32 * 128));
  // fp32 runs at its own peak.
  EXPECT_GT(instructionCost(linear, m, Precision::Fp32).seconds, c.seconds);

  Instruction grad; // (A [4, 16, 8], B [4, 8, 32], dY [4, 16, 32]) -> dA, dB
  grad.op = Opcode::MatmulGrad;
  grad.operands = {tensor({4, 16, 8}), tensor({4, 8, 32}), tensor({4, 16, 32})};
  grad.results = {tensor({4, 16, 8}), tensor({4, 8, 32})};
  EXPECT_DOUBLE_EQ(instructionCost(grad, m, Precision::Bf16).flops,
                   2 * (2.0 * 4 * 16 * 8 * 32));
  grad.results[0] = TensorRef{}; // dA not wanted: one product
  EXPECT_DOUBLE_EQ(instructionCost(grad, m, Precision::Bf16).flops,
                   2.0 * 4 * 16 * 8 * 32);

  Instruction gw; // (x [64, 16], dy [64, 24]) -> dW [24, 16]
  gw.op = Opcode::LinearGradWeight;
  gw.operands = {tensor({64, 16}), tensor({64, 24})};
  gw.results = {tensor({24, 16})};
  EXPECT_DOUBLE_EQ(instructionCost(gw, m, Precision::Bf16).flops,
                   2.0 * 64 * 16 * 24);
}

TEST(Costs, AttentionAndItsBackward) {
  const Machine m = valid();
  // B 2, H 8 query heads over 2 key/value heads, S 256, D 64, [B, H, S, D].
  Instruction fwd;
  fwd.op = Opcode::Attention;
  fwd.operands = {tensor({2, 8, 256, 64}), tensor({2, 2, 256, 64}),
                  tensor({2, 2, 256, 64}), TensorRef{}};
  fwd.results = {tensor({2, 8, 256, 64})};
  fwd.ints = {8, 2, 0};
  fwd.floats = {0.125};
  const double full = 4.0 * 2 * 8 * 256 * 256 * 64;
  OpCost c = instructionCost(fwd, m, Precision::Bf16);
  EXPECT_EQ(c.kind, OpCost::Attention);
  EXPECT_DOUBLE_EQ(c.flops, full);
  EXPECT_DOUBLE_EQ(c.attentionFlops, full);
  EXPECT_NEAR(c.seconds, full / (100e12 * 0.5) + 2e-6, 1e-15);
  fwd.ints[2] = 1; // causal: the lower triangle with its diagonal
  EXPECT_DOUBLE_EQ(instructionCost(fwd, m, Precision::Bf16).flops,
                   full * 257 / 512);
  // The same problem as [B, S, H*D].
  Instruction flat = fwd;
  flat.operands = {tensor({2, 256, 512}), tensor({2, 256, 128}),
                   tensor({2, 256, 128}), TensorRef{}};
  EXPECT_DOUBLE_EQ(instructionCost(flat, m, Precision::Bf16).flops,
                   full * 257 / 512);

  Instruction bwd; // q, k, v, o, do, mask, lse -> dq, dk, dv
  bwd.op = Opcode::AttentionGrad;
  bwd.operands = {fwd.operands[0],         fwd.operands[1],
                  fwd.operands[2],         tensor({2, 8, 256, 64}),
                  tensor({2, 8, 256, 64}), TensorRef{},
                  tensor({2, 8, 256})};
  bwd.results = {tensor({2, 8, 256, 64}), tensor({2, 2, 256, 64}),
                 tensor({2, 2, 256, 64})};
  bwd.ints = {8, 2, 0};
  bwd.floats = {0.125};
  EXPECT_DOUBLE_EQ(instructionCost(bwd, m, Precision::Bf16).flops, 2.5 * full);
  bwd.operands.pop_back(); // no lse: the backward recomputes it
  EXPECT_DOUBLE_EQ(instructionCost(bwd, m, Precision::Bf16).flops, 3.0 * full);
}

TEST(Costs, EverythingElseIsItsBytes) {
  const Machine m = valid();
  Instruction add;
  add.op = Opcode::Binary;
  add.operands = {tensor({1024, 1024}), tensor({1024, 1024})};
  add.results = {tensor({1024, 1024})};
  add.ints = {0};
  const OpCost c = instructionCost(add, m, Precision::Bf16);
  EXPECT_EQ(c.kind, OpCost::Memory);
  EXPECT_DOUBLE_EQ(c.flops, 0);
  EXPECT_DOUBLE_EQ(c.bytes, 3.0 * 4 * 1024 * 1024);
  EXPECT_NEAR(c.seconds, c.bytes / (1e12 * 0.5) + 2e-6, 1e-15);

  weipipe::rt::Function f;
  f.body = {add, add};
  const OpCost sum = functionCost(f, m, Precision::Bf16);
  EXPECT_NEAR(sum.seconds, 2 * c.seconds, 1e-15);
  EXPECT_DOUBLE_EQ(sum.bytes, 2 * c.bytes);
}
