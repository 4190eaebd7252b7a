#include "storage/engine/buffer_pool.h"

#include <atomic>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
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

}  // namespace
}  // namespace ringstore::storage
