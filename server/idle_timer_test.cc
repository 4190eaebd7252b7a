#include "server/idle_timer.h"

#include <atomic>
#include <memory>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "storage/engine/sync.h"

namespace ringstore::server {
namespace {

// An armed watch fires once, on the timer's thread, and never before the
// timeout has passed.
TEST(IdleTimer, AnArmedWatchFiresOnceAfterTheTimeout) {
  IdleTimer timer(absl::Milliseconds(100));
  std::atomic<int> fired{0};
  std::thread::id where;
  absl::Time when;
  Notification done;
  IdleWatch watch(&timer, [&] {
    where = std::this_thread::get_id();
    when = absl::Now();
    if (++fired == 1) done.Notify();
  });
  const absl::Time armed = absl::Now();
  watch.Arm();
  done.WaitForNotification();
  EXPECT_GE(when - armed, absl::Milliseconds(100));
  EXPECT_NE(where, std::this_thread::get_id());
  absl::SleepFor(absl::Milliseconds(300));  // once per arming
  EXPECT_EQ(fired.load(), 1);
}

// The clock runs only while armed and restarts at every Arm: a stream that
// keeps making progress is never idle.
TEST(IdleTimer, AWatchRearmedInTimeNeverFires) {
  IdleTimer timer(absl::Seconds(1));
  std::atomic<int> fired{0};
  IdleWatch watch(&timer, [&] { ++fired; });
  for (int i = 0; i < 150; ++i) {
    watch.Arm();
    absl::SleepFor(absl::Milliseconds(10));
    watch.Disarm();
  }
  watch.Arm();
  absl::SleepFor(absl::Milliseconds(300));
  watch.Disarm();
  absl::SleepFor(absl::Milliseconds(1500));  // disarmed: the clock stands still
  EXPECT_EQ(fired.load(), 0);
}

TEST(IdleTimer, WithoutATimerNothingFires) {
  std::atomic<int> fired{0};
  IdleWatch watch(nullptr, [&] { ++fired; });
  watch.Arm();
  watch.Close();
  EXPECT_EQ(fired.load(), 0);
}

// The callback may end its stream, destroying the watch from inside.
TEST(IdleTimer, TheCallbackMayDestroyItsWatch) {
  IdleTimer timer(absl::Milliseconds(20));
  Notification done;
  auto* watch = new std::unique_ptr<IdleWatch>();
  *watch = std::make_unique<IdleWatch>(&timer, [&done, watch] {
    // The closure lives in the watch: what it needs after the delete is
    // copied out first (AddressSanitizer caught the read of a capture).
    Notification* const notify = &done;
    delete watch;  // closes the watch from its own callback
    notify->Notify();
  });
  (*watch)->Arm();
  done.WaitForNotification();
}

// Close from another thread waits for a callback that is running, so what
// the callback uses may go right after Close returns.
TEST(IdleTimer, CloseWaitsForARunningCallback) {
  IdleTimer timer(absl::Milliseconds(20));
  Notification entered;
  std::atomic<bool> finished{false};
  IdleWatch watch(&timer, [&] {
    entered.Notify();
    absl::SleepFor(absl::Milliseconds(200));
    finished = true;
  });
  watch.Arm();
  entered.WaitForNotification();
  watch.Close();
  EXPECT_TRUE(finished.load());
}

// Many watches on one timer: the idle ones fire, the busy ones do not.
TEST(IdleTimer, OnlyTheIdleWatchesOfManyFire) {
  IdleTimer timer(absl::Milliseconds(200));
  constexpr int kWatches = 100;
  std::atomic<int> fired[kWatches] = {};
  std::vector<std::unique_ptr<IdleWatch>> watches;
  for (int i = 0; i < kWatches; ++i) {
    watches.push_back(std::make_unique<IdleWatch>(&timer, [&fired, i] { ++fired[i]; }));
    if (i % 2 == 0) watches.back()->Arm();
  }
  absl::SleepFor(absl::Milliseconds(800));
  watches.clear();
  for (int i = 0; i < kWatches; ++i) EXPECT_EQ(fired[i].load(), i % 2 == 0 ? 1 : 0) << i;
}

}  // namespace
}  // namespace ringstore::server
