#include "storage/first_read_planner.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace ringstore::storage {
namespace {

using Plan = FirstReadPlanner::Plan;

constexpr size_t kBuffer = 1 << 20;
constexpr int64_t kLarge = FirstReadPlanner::kLargeBytes;

// The plans of the next `n` first reads into kBuffer.
std::vector<Plan> Plans(FirstReadPlanner& p, int n) {
  std::vector<Plan> out;
  for (int i = 0; i < n; ++i) out.push_back(p.Next(kBuffer));
  return out;
}

TEST(FirstReadPlannerTest, StartsThroughTheCacheAndProbesOneReadInSixteen) {
  FirstReadPlanner p;
  const std::vector<Plan> plans = Plans(p, 48);
  for (int i = 0; i < 48; ++i) {
    EXPECT_EQ(plans[i], i % 16 == 0 ? Plan::kProbe : Plan::kCached) << i;
  }
  EXPECT_FALSE(p.predicts_cold());
}

TEST(FirstReadPlannerTest, SmallBuffersAreReadThroughTheCacheAndNotCounted) {
  FirstReadPlanner p;
  for (int i = 0; i < 8; ++i) p.RecordProbe(kBuffer, kBuffer, /*cached=*/false);
  ASSERT_TRUE(p.predicts_cold());
  for (int i = 0; i < 40; ++i) EXPECT_EQ(p.Next(kLarge - 1), Plan::kCached);
  // The first planned read is still the first probe.
  EXPECT_EQ(p.Next(kLarge), Plan::kProbe);
  EXPECT_EQ(p.Next(kLarge), Plan::kDirect);
}

TEST(FirstReadPlannerTest, HalfTheWindowOfLargeMissesTurnsReadsDirect) {
  FirstReadPlanner p;
  for (int i = 0; i < 7; ++i) p.RecordProbe(kBuffer, kBuffer, /*cached=*/false);
  EXPECT_FALSE(p.predicts_cold());
  p.RecordProbe(kLarge, kBuffer, /*cached=*/false);
  EXPECT_TRUE(p.predicts_cold());
  const std::vector<Plan> plans = Plans(p, 32);
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(plans[i], i % 16 == 0 ? Plan::kProbe : Plan::kDirect) << i;
  }
}

TEST(FirstReadPlannerTest, OnlyUncachedLargeFilesThatFitAreLargeMisses) {
  FirstReadPlanner p;
  for (int i = 0; i < 16; ++i) {
    p.RecordProbe(kBuffer, kBuffer, /*cached=*/true);        // cached
    p.RecordProbe(kLarge - 1, kBuffer, /*cached=*/false);    // small
    p.RecordProbe(kBuffer + 1, kBuffer, /*cached=*/false);   // does not fit
  }
  EXPECT_FALSE(p.predicts_cold());
}

TEST(FirstReadPlannerTest, CachedProbesAndSmallDirectReadsTurnItBack) {
  FirstReadPlanner p;
  for (int i = 0; i < 16; ++i) p.RecordProbe(kBuffer, kBuffer, /*cached=*/false);
  ASSERT_TRUE(p.predicts_cold());
  // Large files read directly say nothing.
  for (int i = 0; i < 100; ++i) p.RecordDirect(kBuffer, kBuffer);
  EXPECT_TRUE(p.predicts_cold());
  // Half the window of other outcomes ends it: cached probes ...
  for (int i = 0; i < 8; ++i) p.RecordProbe(kBuffer, kBuffer, /*cached=*/true);
  EXPECT_TRUE(p.predicts_cold()) << "still 8 large misses of 16";
  p.RecordProbe(kBuffer, kBuffer, /*cached=*/true);
  EXPECT_FALSE(p.predicts_cold());
  // ... or small files read directly.
  for (int i = 0; i < 16; ++i) p.RecordProbe(kBuffer, kBuffer, /*cached=*/false);
  for (int i = 0; i < 9; ++i) p.RecordDirect(64 << 10, kBuffer);
  EXPECT_FALSE(p.predicts_cold());
}

TEST(FirstReadPlannerTest, ConcurrentOutcomesAreAllRecorded) {
  FirstReadPlanner p;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&p] {
      for (int i = 0; i < 10000; ++i) {
        p.RecordProbe(kBuffer, kBuffer, /*cached=*/false);
        p.Next(kBuffer);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_TRUE(p.predicts_cold());
  // 40,000 plans so far: the next is a probe again.
  EXPECT_EQ(p.Next(kBuffer), Plan::kProbe);
}

}  // namespace
}  // namespace ringstore::storage
