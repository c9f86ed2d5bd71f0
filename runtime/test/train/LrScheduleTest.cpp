//===- LrScheduleTest.cpp - the LR schedule and progress helpers ----------===//
//
// Expected rates are Python's lr_at (python/weipipe/reference/train.py)
// evaluated with CPython and written out with repr(), so they are compared
// bitwise.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/train/LrSchedule.h"
#include "weipipe/runtime/train/Progress.h"

#include <gtest/gtest.h>

using namespace weipipe::rt::train;

TEST(LrSchedule, ConstantWithWarmup) {
  LrSchedule s{LrScheduleKind::Constant, 3e-4, 0.0, 4, 10};
  // lr * (s + 1) / W.
  EXPECT_EQ(s.at(0), 7.5e-05);
  EXPECT_EQ(s.at(1), 0.00015);
  EXPECT_EQ(s.at(2), 0.000225);
  EXPECT_EQ(s.at(3), 0.0003);
  EXPECT_EQ(s.at(4), 3e-4);
  EXPECT_EQ(s.at(9), 3e-4);
  LrSchedule none{LrScheduleKind::Constant, 1e-3, 0.0, 0, 5};
  EXPECT_EQ(none.at(0), 1e-3);
}

TEST(LrSchedule, CosineMatchesPython) {
  // python: lr_at(s, TrainConfig(steps=10, lr=3e-4, warmup_steps=3,
  //                              lr_schedule="cosine", min_lr=1e-5))
  LrSchedule s{LrScheduleKind::Cosine, 3e-4, 1e-5, 3, 10};
  const double want[10] = {9.999999999999999e-05,
                           0.00019999999999999998,
                           0.0003,
                           0.0003,
                           0.00028564048584585073,
                           0.00024540602126951636,
                           0.00018726553542366555,
                           0.0001227344645763344,
                           6.459397873048363e-05,
                           2.4359514154149237e-05};
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(s.at(i), want[i]) << i;
  // No warm-up, no floor: lr_at(s, TrainConfig(steps=7, lr=0.1,
  // lr_schedule="cosine")).
  LrSchedule c{LrScheduleKind::Cosine, 0.1, 0.0, 0, 7};
  const double want2[7] = {0.1,
                           0.09504844339512096,
                           0.08117449009293669,
                           0.06112604669781572,
                           0.03887395330218429,
                           0.018825509907063328,
                           0.004951556604879049};
  for (int i = 0; i < 7; ++i)
    EXPECT_EQ(c.at(i), want2[i]) << i;
  // N <= W: the divisor is max(1, N - W).
  LrSchedule t{LrScheduleKind::Cosine, 1.0, 0.0, 0, 0};
  EXPECT_EQ(t.at(0), 1.0);
  EXPECT_EQ(parseLrSchedule("cosine"), LrScheduleKind::Cosine);
  EXPECT_FALSE(parseLrSchedule("linear"));
  EXPECT_STREQ(lrScheduleName(LrScheduleKind::Constant), "constant");
}

TEST(Progress, Formatting) {
  EXPECT_EQ(formatBytes(0), "0 B");
  EXPECT_EQ(formatBytes(1023), "1023 B");
  EXPECT_EQ(formatBytes(1024), "1.00 KiB");
  EXPECT_EQ(formatBytes(1536), "1.50 KiB");
  EXPECT_EQ(formatBytes(12345678), "11.8 MiB");
  EXPECT_EQ(formatBytes(1048575), "1.00 MiB");
  EXPECT_EQ(formatBytes(uint64_t(5) << 30), "5.00 GiB");
  EXPECT_EQ(formatCount(950), "950");
  EXPECT_EQ(formatCount(12345), "12.3k");
  EXPECT_EQ(formatCount(1.5e6), "1.50M");
  EXPECT_GT(processRssBytes(), 0u);
  ProgressState st;
  st.done = 5;
  st.total = 10;
  st.loss = 2.5;
  st.tokensPerSec = 2048;
  st.memBytes = 2048;
  st.rssBytes = 4096;
  st.elapsedS = 2.0;
  EXPECT_EQ(progressLine(st, 0), "step 5/10 loss 2.500000 | 2.05k tok/s | "
                                 "mem 2.00 KiB (rss 4.00 KiB) | 2.0s, eta "
                                 "2.0s");
  EXPECT_EQ(progressLine(st, 4).substr(0, 7), "[==> ] ");
}
