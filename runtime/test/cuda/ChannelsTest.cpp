//===- ChannelsTest.cpp - NCCL channels at one rank -----------------------===//
//
// Part of weipipe's runtime tests (GPU; skipped without one, and in a build
// without NCCL, which the emulated one is). NCCL refuses two ranks on one
// GPU, so what one GPU can check is a world of one: a communicator made
// from a unique id, a sum over it that leaves its numbers as they are (the
// pipeline's sums count on x + 0 = x), a link's ordering by events, and
// abort. Several ranks wait for a machine with several GPUs
// (bench/gpu/device-check.sh runs weipipe-run --transport nccl at one).
//
//===----------------------------------------------------------------------===//

#include "CudaTestUtil.h"

#include "weipipe/runtime/cuda/Channels.h"

using namespace weipipe::rt::cuda;
using namespace weipipe::rt::cuda::test;

namespace {

class ChannelsTest : public CudaTest {
protected:
  void SetUp() override {
    if (std::string why = Channels::unavailable(); !why.empty())
      GTEST_SKIP() << why;
    CudaTest::SetUp();
  }
};

TEST_F(ChannelsTest, AOneRankWorldSumsExactly) {
  std::vector<uint8_t> id;
  ASSERT_OK(Channels::newId(&id));
  EXPECT_EQ(id.size(), 128u);
  Channels ch;
  ASSERT_OK(ch.open({id}, {1}, {0}));
  const std::vector<double> x = {1.5, -2.25, 1e-300, 3.0e300, 0.0};
  Dev<double> d = upload(x, s());
  ASSERT_OK(ch.sum(0, d.get(), x.size(), s()));
  EXPECT_EQ(download(d, s()), x);
  ASSERT_OK(ch.check());
}

TEST_F(ChannelsTest, AbortEndsTheCommunicators) {
  std::vector<uint8_t> id;
  ASSERT_OK(Channels::newId(&id));
  Channels ch;
  ASSERT_OK(ch.open({id}, {1}, {0}));
  ch.abort();
  // Nothing is left to destroy, and nothing hangs.
}

// Needs NCCL, not a GPU: the id is checked first.
TEST(Channels, AMalformedIdIsNamed) {
  if (std::string why = Channels::unavailable(); !why.empty())
    GTEST_SKIP() << why;
  Channels ch;
  Status st = ch.open({std::vector<uint8_t>(5)}, {1}, {0});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("unique id of 5 bytes"), std::string::npos)
      << st.message();
}

} // namespace
