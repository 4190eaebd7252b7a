#include "storage/engine/event_loop.h"

#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "storage/engine/sync.h"

namespace ringstore::storage {
namespace {

// A Driver whose "kernel" is the eventfd alone, plus `pending` requests that
// complete one per Wait. Records which thread ran each step.
class TestDriver final : public EventLoop::Driver {
 public:
  explicit TestDriver(EventLoop* loop, absl::Status setup = absl::OkStatus())
      : loop_(loop), setup_(std::move(setup)) {}

  absl::Status Setup() override {
    setup_thread = std::this_thread::get_id();
    steps.push_back("setup");
    return setup_;
  }
  void Wait() override {
    pollfd p = {loop_->wake_fd(), POLLIN, 0};
    if (poll(&p, 1, pending > 0 ? 0 : -1) == 1) {
      uint64_t value;
      (void)!read(loop_->wake_fd(), &value, sizeof(value));
    }
    if (pending > 0) {
      --pending;
      ++completed;
    }
  }
  bool Idle() const override { return pending == 0; }
  void Finish() override {
    finish_thread = std::this_thread::get_id();
    steps.push_back("finish");
  }

  // Loop thread only (and the test thread after Stop).
  int pending = 0;
  int completed = 0;
  std::vector<std::string> steps;
  std::thread::id setup_thread;
  std::thread::id finish_thread;

 private:
  EventLoop* const loop_;
  const absl::Status setup_;
};

TEST(EventLoop, PostedWorkRunsOnTheLoopThreadInOrder) {
  EventLoop loop("rs-test-loop");
  TestDriver driver(&loop);
  ASSERT_TRUE(loop.Start(&driver).ok());
  EXPECT_FALSE(loop.IsCurrent());

  Mutex mu;
  std::vector<int> order;
  std::vector<std::thread::id> threads;
  std::atomic<int> ran{0};
  for (int i = 0; i < 100; ++i) {
    loop.Post([&, i] {
      EXPECT_TRUE(loop.IsCurrent());
      MutexLock lock(&mu);
      order.push_back(i);
      threads.push_back(std::this_thread::get_id());
      ++ran;
    });
  }
  while (ran.load() < 100) std::this_thread::yield();
  loop.Stop();
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
  for (const std::thread::id& id : threads) {
    EXPECT_EQ(id, driver.setup_thread);
    EXPECT_NE(id, std::this_thread::get_id());
  }
  EXPECT_EQ(driver.finish_thread, driver.setup_thread);
  EXPECT_EQ(driver.steps, (std::vector<std::string>{"setup", "finish"}));
}

TEST(EventLoop, PostOnTheLoopThreadRunsInlineAndQueueRunsLater) {
  EventLoop loop("rs-test-loop");
  TestDriver driver(&loop);
  ASSERT_TRUE(loop.Start(&driver).ok());
  Notification done;
  std::vector<std::string> order;  // loop thread only
  loop.Post([&] {
    order.push_back("outer begin");
    loop.Post([&] { order.push_back("posted inline"); });
    loop.Queue([&] {
      order.push_back("queued");
      done.Notify();
    });
    order.push_back("outer end");
  });
  done.WaitForNotification();
  loop.Stop();
  EXPECT_EQ(order, (std::vector<std::string>{"outer begin", "posted inline", "outer end",
                                              "queued"}));
}

TEST(EventLoop, StopRunsEverythingPostedAndWaitsForTheDriverToBeIdle) {
  EventLoop loop("rs-test-loop");
  TestDriver driver(&loop);
  ASSERT_TRUE(loop.Start(&driver).ok());
  std::atomic<int> ran{0};
  loop.Post([&] {
    driver.pending = 5;
    // Work posted from the loop thread while it stops still runs.
    for (int i = 0; i < 10; ++i) loop.Queue([&] { ++ran; });
  });
  for (int i = 0; i < 10; ++i) loop.Post([&] { ++ran; });
  loop.Stop();
  EXPECT_EQ(ran.load(), 20);
  EXPECT_EQ(driver.pending, 0);
  EXPECT_EQ(driver.completed, 5);
  EXPECT_EQ(driver.steps, (std::vector<std::string>{"setup", "finish"}));
  loop.Stop();  // a second Stop does nothing
}

TEST(EventLoop, StartReturnsTheSetupFailureAndEndsTheThread) {
  EventLoop loop("rs-test-loop");
  TestDriver driver(&loop, absl::PermissionDeniedError("no ring here"));
  const absl::Status s = loop.Start(&driver);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(s.message(), "no ring here");
  // The thread has ended without running the loop or Finish.
  EXPECT_EQ(driver.steps, std::vector<std::string>{"setup"});
  loop.Stop();
}

TEST(EventLoop, DestructorStopsARunningLoop) {
  std::atomic<int> ran{0};
  auto loop = std::make_unique<EventLoop>("rs-test-loop");
  TestDriver driver(loop.get());
  ASSERT_TRUE(loop->Start(&driver).ok());
  for (int i = 0; i < 10; ++i) loop->Post([&] { ++ran; });
  loop.reset();
  EXPECT_EQ(ran.load(), 10);
  EXPECT_EQ(driver.steps, (std::vector<std::string>{"setup", "finish"}));
}

}  // namespace
}  // namespace ringstore::storage
