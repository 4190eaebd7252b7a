// UploadExpiry against a real Store: idle sessions go within the TTL plus a
// period, fresh ones stay, and destruction stops the thread.
#include "server/upload_expiry.h"

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "storage/engine/sync.h"
#include "storage/store.h"

namespace ringstore::server {
namespace {

TEST(UploadExpiry, PeriodIsAQuarterOfTheTtlAtMostAMinute) {
  EXPECT_EQ(UploadExpiry::Period(absl::Hours(24)), absl::Seconds(60));
  EXPECT_EQ(UploadExpiry::Period(absl::Seconds(2)), absl::Milliseconds(500));
  EXPECT_EQ(UploadExpiry::Period(absl::Minutes(4)), absl::Seconds(60));
  EXPECT_EQ(UploadExpiry::Period(absl::Milliseconds(1)), absl::Milliseconds(10));
}

absl::StatusOr<std::string> Start(storage::Store* store, const std::string& path) {
  absl::StatusOr<std::string> id;
  Notification done;  // sync.h's: ThreadSanitizer sees it
  storage::WriteSpec spec;
  spec.path = path;
  store->StartUpload(spec, "owner", [&](absl::StatusOr<std::string> r, storage::Backend) {
    id = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  return id;
}

absl::StatusCode QueryCode(storage::Store* store, const std::string& id) {
  absl::Status status;
  Notification done;  // sync.h's: ThreadSanitizer sees it
  store->QueryUpload(id, "owner",
                     [&](absl::StatusOr<storage::Store::UploadStatus> r, storage::Backend) {
                       status = r.status();
                       done.Notify();
                     });
  done.WaitForNotification();
  return status.code();
}

TEST(UploadExpiry, RemovesIdleSessionsOnItsOwnThread) {
  storage::StoreOptions options;
  const char* base = std::getenv("TEST_TMPDIR");
  options.root = std::string(base != nullptr ? base : "/tmp") + "/upload_expiry_root";
  options.engine = "thread_pool";
  absl::StatusOr<std::unique_ptr<storage::Store>> store = storage::Store::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<std::string> old_id = Start(store->get(), "old");
  ASSERT_TRUE(old_id.ok()) << old_id.status();
  {
    // A day's TTL: nothing goes.
    UploadExpiry expiry(store->get(), absl::Hours(24));
    absl::SleepFor(absl::Milliseconds(100));
    EXPECT_EQ(QueryCode(store->get(), *old_id), absl::StatusCode::kOk);
  }
  {
    UploadExpiry expiry(store->get(), absl::Seconds(1));
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (QueryCode(store->get(), *old_id) == absl::StatusCode::kOk && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    EXPECT_EQ(QueryCode(store->get(), *old_id), absl::StatusCode::kNotFound);
    // A session just started is not idle yet.
    absl::StatusOr<std::string> fresh = Start(store->get(), "fresh");
    ASSERT_TRUE(fresh.ok()) << fresh.status();
    EXPECT_EQ(QueryCode(store->get(), *fresh), absl::StatusCode::kOk);
  }
}

}  // namespace
}  // namespace ringstore::server
