#include "server/drain.h"

#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace ringstore::server {
namespace {

TEST(DrainTest, BeginsDraining) {
  Drain drain;
  EXPECT_FALSE(drain.draining());
  drain.Begin();
  EXPECT_TRUE(drain.draining());
}

TEST(DrainTest, WaitForCallsReturnsWhenTheLastCallEnds) {
  Drain drain;
  drain.Started();
  drain.Started();
  std::thread ender([&] {
    absl::SleepFor(absl::Milliseconds(20));
    drain.Ended();
    drain.Ended();
  });
  EXPECT_EQ(drain.WaitForCalls(absl::Now() + absl::Seconds(60)), 0);
  ender.join();
}

TEST(DrainTest, WaitForCallsGivesUpAtTheDeadline) {
  Drain drain;
  drain.Started();
  const absl::Time start = absl::Now();
  EXPECT_EQ(drain.WaitForCalls(start + absl::Milliseconds(30)), 1);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(30));
  drain.Ended();
  EXPECT_EQ(drain.WaitForCalls(absl::Now()), 0);
}

}  // namespace
}  // namespace ringstore::server
