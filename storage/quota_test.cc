// The quota's arithmetic on its own: reservations within the limit,
// refusals that change nothing, commits that replace, deletes, and many
// threads racing for the last bytes.
#include "storage/quota.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace ringstore::storage {
namespace {

TEST(QuotaTest, ReservesUpToTheLimitExactly) {
  Quota q(100, 30);
  EXPECT_EQ(q.limit(), 100);
  EXPECT_EQ(q.committed(), 30);
  EXPECT_TRUE(q.Reserve(50).ok());
  EXPECT_TRUE(q.Reserve(20).ok());  // exactly fits
  EXPECT_EQ(q.used(), 100);
  EXPECT_EQ(q.reserved(), 70);
  EXPECT_TRUE(q.Reserve(0).ok());  // nothing to reserve is never refused
}

TEST(QuotaTest, RefusalSaysUseAndLimitAndChangesNothing) {
  Quota q(100, 30);
  ASSERT_TRUE(q.Reserve(60).ok());
  const absl::Status s = q.Reserve(11);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("90 of 100 bytes used"), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("needs 11"), absl::string_view::npos) << s;
  EXPECT_EQ(q.used(), 90);
  EXPECT_EQ(q.reserved(), 60);
  EXPECT_TRUE(q.Reserve(10).ok());
}

TEST(QuotaTest, ReleaseGivesBack) {
  Quota q(100, 0);
  ASSERT_TRUE(q.Reserve(100).ok());
  EXPECT_EQ(q.Reserve(1).code(), absl::StatusCode::kResourceExhausted);
  q.Release(100);
  EXPECT_EQ(q.used(), 0);
  EXPECT_TRUE(q.Reserve(100).ok());
}

TEST(QuotaTest, CommitMovesReservedToCommittedAndReleasesTheReplacedFile) {
  Quota q(100, 40);  // one file of 40 bytes
  // Overwriting it with 50 bytes: both count while the upload runs.
  ASSERT_TRUE(q.Reserve(50).ok());
  EXPECT_EQ(q.used(), 90);
  EXPECT_EQ(q.Reserve(11).code(), absl::StatusCode::kResourceExhausted);
  q.Commit(50, 40);
  EXPECT_EQ(q.committed(), 50);
  EXPECT_EQ(q.reserved(), 0);
  EXPECT_EQ(q.used(), 50);
  // A new file.
  ASSERT_TRUE(q.Reserve(30).ok());
  q.Commit(30, 0);
  EXPECT_EQ(q.committed(), 80);
}

TEST(QuotaTest, RemoveFreesAndNeverGoesNegative) {
  Quota q(100, 80);
  q.Remove(30);
  EXPECT_EQ(q.committed(), 50);
  // A file the count never saw (placed by hand) deleted or replaced: the
  // count is clamped, not negative.
  q.Remove(70);
  EXPECT_EQ(q.committed(), 0);
  ASSERT_TRUE(q.Reserve(10).ok());
  q.Commit(10, 500);
  EXPECT_EQ(q.committed(), 0);
  EXPECT_EQ(q.reserved(), 0);
  EXPECT_EQ(Quota(0, -5).committed(), 0);
}

TEST(QuotaTest, NoLimitCountsOnly) {
  Quota q(0, 7);
  EXPECT_TRUE(q.Reserve(int64_t{1} << 60).ok());
  EXPECT_EQ(q.used(), 7 + (int64_t{1} << 60));
  q.Release(int64_t{1} << 60);
  EXPECT_EQ(q.used(), 7);
}

TEST(QuotaTest, AStoreAlreadyOverItsLimitRefusesUntilFilesGo) {
  Quota q(100, 150);  // started with a lower limit than its content
  EXPECT_EQ(q.Reserve(1).code(), absl::StatusCode::kResourceExhausted);
  q.Remove(60);
  EXPECT_TRUE(q.Reserve(10).ok());
}

// 32 threads each reserve and then commit or release, many times, racing
// for a limit that holds only some of them: used() never passes the limit
// and the final count is exactly what was committed.
TEST(QuotaTest, RacingThreadsNeverPassTheLimit) {
  constexpr int64_t kLimit = 1000;
  Quota q(kLimit, 0);
  std::atomic<bool> stop{false};
  std::atomic<int64_t> over{0};
  std::thread watcher([&] {
    while (!stop.load()) {
      if (q.used() > kLimit) over.fetch_add(1);
    }
  });
  std::atomic<int64_t> committed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 32; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const int64_t n = 1 + (t * 7 + i) % 97;
        if (!q.Reserve(n).ok()) continue;
        if (i % 3 == 0 && committed.load() + n < kLimit / 2) {
          q.Commit(n, 0);
          committed.fetch_add(n);
        } else {
          q.Release(n);
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  stop.store(true);
  watcher.join();
  EXPECT_EQ(over.load(), 0);
  EXPECT_EQ(q.reserved(), 0);
  EXPECT_EQ(q.committed(), committed.load());
  EXPECT_LE(q.committed(), kLimit);
}

}  // namespace
}  // namespace ringstore::storage
