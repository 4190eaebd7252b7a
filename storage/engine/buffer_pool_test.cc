#include "storage/engine/buffer_pool.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "storage/engine/cancellation.h"
#include "storage/engine/sync.h"

namespace ringstore::storage {
namespace {

std::unique_ptr<BufferPool> MakePool(size_t count, size_t size) {
  auto pool = BufferPool::Create(count, size);
  EXPECT_TRUE(pool.ok()) << pool.status();
  return *std::move(pool);
}

TEST(BufferPool, RejectsBadShapes) {
  EXPECT_EQ(BufferPool::Create(0, 4096).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BufferPool::Create(16385, 4096).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BufferPool::Create(1, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BufferPool::Create(1, 4095).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BufferPool::Create(1, (size_t{1} << 30) + 4096).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(BufferPool::Create(16384, 4096).ok());
}

TEST(BufferPool, BuffersAreDistinctAlignedAndExhaustible) {
  auto pool = MakePool(4, 8192);
  std::vector<PooledBuffer> held;
  std::set<int> indexes;
  for (int i = 0; i < 4; ++i) {
    PooledBuffer b = pool->TryAcquire();
    ASSERT_TRUE(b.valid());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % 4096, 0u);
    EXPECT_EQ(b.capacity(), 8192u);
    indexes.insert(b.index());
    held.push_back(std::move(b));
  }
  EXPECT_EQ(indexes, (std::set<int>{0, 1, 2, 3}));
  EXPECT_FALSE(pool->TryAcquire().valid());
  EXPECT_EQ(pool->free_count(), 0u);
  held.pop_back();
  EXPECT_EQ(pool->free_count(), 1u);
  EXPECT_TRUE(pool->TryAcquire().valid());
}

TEST(BufferPool, IovecsCoverEveryBufferInOrder) {
  auto pool = MakePool(3, 4096);
  const std::vector<iovec> v = pool->iovecs();
  ASSERT_EQ(v.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(v[i].iov_len, 4096u);
    EXPECT_EQ(static_cast<char*>(v[i].iov_base), static_cast<char*>(v[0].iov_base) + i * 4096);
  }
  PooledBuffer b = pool->TryAcquire();
  EXPECT_EQ(b.data(), static_cast<char*>(v[b.index()].iov_base));
}

TEST(BufferPool, AcquireWaitsAndIsServedFirstComeFirstServed) {
  auto pool = MakePool(1, 4096);
  PooledBuffer first = pool->TryAcquire();
  const int index = first.index();
  // Written on the pool's thread, read here after the matching Notification.
  std::vector<int> order;
  PooledBuffer got_a, got_b;
  Notification a_served, b_served;
  pool->Acquire([&](PooledBuffer b) {
    order.push_back(1);
    got_a = std::move(b);
    a_served.Notify();
  });
  pool->Acquire([&](PooledBuffer b) {
    order.push_back(2);
    got_b = std::move(b);
    b_served.Notify();
  });
  EXPECT_TRUE(order.empty());
  first = PooledBuffer();  // hands the buffer to the first waiter
  a_served.WaitForNotification();
  ASSERT_EQ(order, std::vector<int>{1});
  EXPECT_EQ(got_a.index(), index);
  EXPECT_FALSE(b_served.HasBeenNotified());
  EXPECT_EQ(pool->free_count(), 0u);
  got_a = PooledBuffer();
  b_served.WaitForNotification();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_TRUE(got_b.valid());
  EXPECT_EQ(pool->free_count(), 0u);
  got_b = PooledBuffer();
  EXPECT_EQ(pool->free_count(), 1u);
}

// The thread that frees a buffer may be anybody's (gRPC's slice-release
// thread): a waiter never runs there, nor on the thread that queued it, but
// always on the pool's own thread.
TEST(BufferPool, AWaiterNeverRunsOnTheThreadThatFreesABuffer) {
  auto pool = MakePool(1, 4096);
  PooledBuffer held = pool->TryAcquire();
  ASSERT_TRUE(held.valid());
  std::thread::id waiter_thread;
  Notification served;
  PooledBuffer got;
  pool->Acquire([&](PooledBuffer b) {
    waiter_thread = std::this_thread::get_id();
    got = std::move(b);
    served.Notify();
  });
  std::thread::id freeing_thread;
  bool waiter_ran_inside_release = false;
  std::thread freer([&] {
    freeing_thread = std::this_thread::get_id();
    held = PooledBuffer();  // the destructor returns the buffer
    waiter_ran_inside_release = served.HasBeenNotified() && waiter_thread == freeing_thread;
  });
  freer.join();
  served.WaitForNotification();
  EXPECT_FALSE(waiter_ran_inside_release);
  EXPECT_NE(waiter_thread, freeing_thread);
  EXPECT_NE(waiter_thread, std::this_thread::get_id());
  EXPECT_TRUE(got.valid());

  // The next waiter, served by a buffer freed on this thread, runs on the
  // same pool thread.
  std::thread::id second_thread;
  Notification second_served;
  pool->Acquire([&](PooledBuffer b) {
    second_thread = std::this_thread::get_id();
    b = PooledBuffer();  // returned before the test looks at free_count
    second_served.Notify();
  });
  got = PooledBuffer();
  second_served.WaitForNotification();
  EXPECT_EQ(second_thread, waiter_thread);
  EXPECT_EQ(pool->free_count(), 1u);
}

// A freed buffer goes to the oldest waiter, and waiters run in that order,
// also when each frees its buffer from inside its callback (on the pool's
// thread) and so serves the next.
TEST(BufferPool, ManyWaitersAreServedInOrder) {
  constexpr int kWaiters = 200;
  auto pool = MakePool(1, 4096);
  PooledBuffer held = pool->TryAcquire();
  Mutex mu;
  std::vector<int> order;
  Notification all_served;
  for (int i = 0; i < kWaiters; ++i) {
    pool->Acquire([&, i](PooledBuffer b) {
      EXPECT_TRUE(b.valid());
      MutexLock lock(&mu);
      order.push_back(i);
      if (order.size() == kWaiters) all_served.Notify();
    });  // `b` is freed here, serving waiter i + 1
  }
  EXPECT_EQ(pool->free_count(), 0u);
  held = PooledBuffer();
  all_served.WaitForNotification();
  MutexLock lock(&mu);
  ASSERT_EQ(order.size(), static_cast<size_t>(kWaiters));
  for (int i = 0; i < kWaiters; ++i) EXPECT_EQ(order[i], i);
}

// Destroying a pool runs the waiters already handed a buffer.
TEST(BufferPool, DestructionRunsWaitersAlreadyServed) {
  std::atomic<int> served{0};
  {
    auto pool = MakePool(1, 4096);
    PooledBuffer held = pool->TryAcquire();
    pool->Acquire([&](PooledBuffer) { ++served; });
    held = PooledBuffer();
  }
  EXPECT_EQ(served.load(), 1);
}

TEST(BufferPool, AcquireRunsAtOnceWhenFree) {
  auto pool = MakePool(2, 4096);
  bool ran = false;
  pool->Acquire([&](PooledBuffer b) {
    ran = true;
    EXPECT_TRUE(b.valid());
  });
  EXPECT_TRUE(ran);
  EXPECT_EQ(pool->free_count(), 2u);
}

TEST(BufferPool, MovesReleaseExactlyOnce) {
  auto pool = MakePool(2, 4096);
  {
    PooledBuffer a = pool->TryAcquire();
    PooledBuffer b(std::move(a));
    EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move)
    PooledBuffer c;
    c = std::move(b);
    EXPECT_EQ(pool->free_count(), 1u);
    PooledBuffer d = pool->TryAcquire();
    c = std::move(d);  // releases c's old buffer
    EXPECT_EQ(pool->free_count(), 1u);
  }
  EXPECT_EQ(pool->free_count(), 2u);
}

TEST(BufferPool, ConcurrentUseNeverExceedsTheCount) {
  constexpr size_t kCount = 4;
  auto pool = MakePool(kCount, 4096);
  std::atomic<int> outstanding{0};
  std::atomic<int> max_seen{0};
  std::atomic<int> served{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        std::atomic<bool> done{false};
        pool->Acquire([&](PooledBuffer b) {
          const int now = ++outstanding;
          int prev = max_seen.load();
          while (now > prev && !max_seen.compare_exchange_weak(prev, now)) {
          }
          b.data()[0] = 1;
          --outstanding;
          ++served;
          done = true;
        });
        while (!done) std::this_thread::yield();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(served.load(), 8 * 2000);
  EXPECT_LE(max_seen.load(), static_cast<int>(kCount));
  EXPECT_EQ(pool->free_count(), kCount);
}

// A waiting Acquire whose Cancellation fires leaves the queue at once: it
// runs with no buffer on the pool's thread (not the cancelling one), stops
// counting as a waiter, and the next buffer goes to the waiter behind it.
TEST(BufferPool, ACancelledWaiterLeavesTheQueueAtOnce) {
  auto pool = MakePool(1, 4096);
  PooledBuffer held = pool->TryAcquire();
  Cancellation cancel;
  Notification a_ran, b_served;
  bool a_got_buffer = true;
  std::thread::id a_thread;
  PooledBuffer got_b;
  pool->Acquire(
      [&](PooledBuffer b) {
        a_got_buffer = b.valid();
        a_thread = std::this_thread::get_id();
        a_ran.Notify();
      },
      &cancel);
  pool->Acquire([&](PooledBuffer b) {
    got_b = std::move(b);
    b_served.Notify();
  });
  EXPECT_EQ(pool->waiter_count(), 2u);
  cancel.Cancel();
  EXPECT_EQ(pool->waiter_count(), 1u);  // before the withdrawn one has even run
  a_ran.WaitForNotification();
  EXPECT_FALSE(a_got_buffer);
  EXPECT_NE(a_thread, std::this_thread::get_id());
  EXPECT_FALSE(b_served.HasBeenNotified());
  held = PooledBuffer();  // goes to b, not to the withdrawn a
  b_served.WaitForNotification();
  EXPECT_TRUE(got_b.valid());
  EXPECT_EQ(pool->waiter_count(), 0u);
  got_b = PooledBuffer();
  EXPECT_EQ(pool->free_count(), 1u);
}

TEST(BufferPool, AcquireWithACancelledCancellationRunsInlineWithoutABuffer) {
  auto pool = MakePool(1, 4096);
  Cancellation cancel;
  cancel.Cancel();
  bool ran = false;
  pool->Acquire(
      [&](PooledBuffer b) {
        ran = true;
        EXPECT_FALSE(b.valid());
      },
      &cancel);
  EXPECT_TRUE(ran);  // even though a buffer is free
  EXPECT_EQ(pool->free_count(), 1u);
  EXPECT_EQ(pool->waiter_count(), 0u);
}

// A Cancellation that fires after its waiter was served changes nothing,
// and the served waiter's hook is gone from it.
TEST(BufferPool, ALateCancellationDoesNotTakeTheBufferBack) {
  auto pool = MakePool(1, 4096);
  PooledBuffer held = pool->TryAcquire();
  Cancellation cancel;
  Notification served;
  PooledBuffer got;
  int runs = 0;
  pool->Acquire(
      [&](PooledBuffer b) {
        ++runs;
        got = std::move(b);
        served.Notify();
      },
      &cancel);
  held = PooledBuffer();
  served.WaitForNotification();
  cancel.Cancel();
  EXPECT_EQ(runs, 1);
  EXPECT_TRUE(got.valid());
  EXPECT_EQ(pool->free_count(), 0u);
  got = PooledBuffer();
  EXPECT_EQ(pool->free_count(), 1u);
}

// Cancellations racing returned buffers: every Acquire runs exactly once,
// with a buffer or (only if cancelled) without, and every buffer comes back.
TEST(BufferPool, CancellationsRacingReleasesLoseNothing) {
  constexpr size_t kCount = 3;
  constexpr int kWaiters = 400;
  auto pool = MakePool(kCount, 4096);
  std::vector<PooledBuffer> held;
  for (size_t i = 0; i < kCount; ++i) held.push_back(pool->TryAcquire());
  std::vector<std::unique_ptr<Cancellation>> cancels;
  std::atomic<int> runs{0}, with_buffer{0}, bad{0};
  for (int i = 0; i < kWaiters; ++i) {
    cancels.push_back(std::make_unique<Cancellation>());
    pool->Acquire(
        [&, i](PooledBuffer b) {
          if (!b.valid() && !cancels[i]->cancelled()) ++bad;
          if (b.valid()) ++with_buffer;
          ++runs;
        },
        cancels[i].get());
  }
  EXPECT_EQ(pool->waiter_count(), static_cast<size_t>(kWaiters));
  std::thread canceller([&] {
    for (int i = 0; i < kWaiters; i += 2) cancels[i]->Cancel();
  });
  held.clear();  // each served waiter frees its buffer, serving the next
  canceller.join();
  while (runs.load() < kWaiters) std::this_thread::yield();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GE(with_buffer.load(), kWaiters / 2);
  EXPECT_EQ(pool->waiter_count(), 0u);
  EXPECT_EQ(pool->free_count(), kCount);
}

// The fairness rule: at most half the pool is lent out for unbounded holds.
// Below that, a loan is granted also while an Acquire waits (a busy pool
// that lent to nobody turned every download into copies).
TEST(BufferPool, LoansAreCappedAtHalfThePool) {
  auto pool = MakePool(5, 4096);
  EXPECT_EQ(pool->lend_limit(), 2u);
  EXPECT_EQ(MakePool(1, 4096)->lend_limit(), 1u);
  BufferPool::Loan a = pool->TryLend();
  BufferPool::Loan b = pool->TryLend();
  EXPECT_TRUE(a.valid());
  EXPECT_TRUE(b.valid());
  EXPECT_FALSE(pool->TryLend().valid());
  EXPECT_EQ(pool->lent_count(), 2u);
  BufferPool::Loan moved = std::move(a);
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(pool->lent_count(), 2u);
  moved = BufferPool::Loan();
  EXPECT_EQ(pool->lent_count(), 1u);

  // Every buffer taken, one Acquire waiting: a loan still, one being free
  // under the limit; then none, the limit reached.
  std::vector<PooledBuffer> held;
  for (int i = 0; i < 5; ++i) held.push_back(pool->TryAcquire());
  Notification served;
  pool->Acquire([&](PooledBuffer) { served.Notify(); });
  EXPECT_EQ(pool->waiter_count(), 1u);
  BufferPool::Loan c = pool->TryLend();
  EXPECT_TRUE(c.valid());
  EXPECT_EQ(pool->lent_count(), 2u);
  EXPECT_FALSE(pool->TryLend().valid());
  held.pop_back();
  served.WaitForNotification();
  EXPECT_EQ(pool->waiter_count(), 0u);
  held.clear();
  b = BufferPool::Loan();
  c = BufferPool::Loan();
  EXPECT_EQ(pool->lent_count(), 0u);
}

}  // namespace
}  // namespace ringstore::storage
