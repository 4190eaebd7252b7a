#include "storage/engine/buffer_pool.h"

#include <atomic>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

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
  std::vector<int> order;
  PooledBuffer got_a, got_b;
  pool->Acquire([&](PooledBuffer b) {
    order.push_back(1);
    got_a = std::move(b);
  });
  pool->Acquire([&](PooledBuffer b) {
    order.push_back(2);
    got_b = std::move(b);
  });
  EXPECT_TRUE(order.empty());
  first = PooledBuffer();  // hands the buffer to the first waiter
  ASSERT_EQ(order, std::vector<int>{1});
  EXPECT_EQ(got_a.index(), index);
  got_a = PooledBuffer();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_TRUE(got_b.valid());
  EXPECT_EQ(pool->free_count(), 0u);
  got_b = PooledBuffer();
  EXPECT_EQ(pool->free_count(), 1u);
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
