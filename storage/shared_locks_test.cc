// The locks that servers sharing a root see (shared_locks.h, path_locks.h)
// and their temp directories (server_dir.h). Two SharedLocks opened on one
// root in this process have two open file descriptions, so their OFD locks
// conflict exactly as two processes' do.
#include "storage/shared_locks.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "storage/engine/engine_test_fixture.h"
#include "storage/engine/sync.h"
#include "storage/path_locks.h"
#include "storage/server_dir.h"

namespace ringstore::storage {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// Polls `cond` for up to 5 s.
template <typename Cond>
bool Eventually(Cond cond) {
  for (int i = 0; i < 5000; ++i) {
    if (cond()) return true;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return cond();
}

class SharedLocksTest : public testing::Test {
 protected:
  void SetUp() override {
    root_ = TempDir();
    ASSERT_EQ(mkdir((root_ + "/.ringstore").c_str(), 0755), 0);
    ASSERT_EQ(mkdir((root_ + "/.ringstore/tmp").c_str(), 0755), 0);
    root_fd_ = open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(root_fd_, 0);
  }
  void TearDown() override { close(root_fd_); }

  std::unique_ptr<SharedLocks> OpenLocks() {
    auto locks = SharedLocks::Open(root_fd_);
    EXPECT_TRUE(locks.ok()) << locks.status();
    return locks.ok() ? *std::move(locks) : nullptr;
  }

  std::string root_;
  int root_fd_ = -1;
};

// A continuation's record: whether it ran, and on which thread.
struct Ran {
  std::atomic<bool> done{false};
  std::thread::id thread;
  PathLocks::Continuation Then() {
    return [this] {
      thread = std::this_thread::get_id();
      done = true;
    };
  }
};

TEST_F(SharedLocksTest, ContentionGoesToThePollerAndIsGrantedOnUnlockByTheOtherServer) {
  std::unique_ptr<SharedLocks> a_shared = OpenLocks(), b_shared = OpenLocks();
  ASSERT_TRUE(a_shared && b_shared);
  PathLocks a(a_shared.get()), b(b_shared.get());
  Ran a1, b1, a2;
  a.Lock("dir/file", a1.Then());
  ASSERT_TRUE(a1.done);  // uncontended: inline
  EXPECT_EQ(a1.thread, std::this_thread::get_id());
  b.Lock("dir/file", b1.Then());
  EXPECT_FALSE(b1.done);
  EXPECT_EQ(b_shared->waiting(), 1u);
  // Another path is not held up.
  Ran other;
  b.Lock("dir/other", other.Then());
  EXPECT_TRUE(other.done);
  b.Unlock("dir/other");
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(b1.done);  // the poller keeps trying, in vain
  a.Unlock("dir/file");
  ASSERT_TRUE(Eventually([&] { return b1.done.load(); }));
  EXPECT_NE(b1.thread, std::this_thread::get_id());  // the poller's thread
  EXPECT_EQ(b_shared->waiting(), 0u);
  // And back: a waits for b.
  a.Lock("dir/file", a2.Then());
  EXPECT_FALSE(a2.done);
  b.Unlock("dir/file");
  ASSERT_TRUE(Eventually([&] { return a2.done.load(); }));
  a.Unlock("dir/file");
}

TEST_F(SharedLocksTest, WaitersInOneProcessAreServedInOrderWithTheByteKept) {
  std::unique_ptr<SharedLocks> a_shared = OpenLocks(), b_shared = OpenLocks();
  ASSERT_TRUE(a_shared && b_shared);
  PathLocks a(a_shared.get()), b(b_shared.get());
  Ran first, second, remote;
  a.Lock("p", first.Then());
  a.Lock("p", second.Then());
  ASSERT_TRUE(first.done);
  EXPECT_FALSE(second.done);
  b.Lock("p", remote.Then());
  a.Unlock("p");  // hands over to `second` here, on this thread
  EXPECT_TRUE(second.done);
  EXPECT_EQ(second.thread, std::this_thread::get_id());
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(remote.done);
  a.Unlock("p");
  ASSERT_TRUE(Eventually([&] { return remote.done.load(); }));
  b.Unlock("p");
}

uint64_t SameByte(absl::string_view) { return 7; }

// OFD locks of one description merge: with both paths on byte 7, unlocking
// one must not free the byte while the other is held.
TEST_F(SharedLocksTest, TwoPathsOnOneByteInOneProcessKeepItUntilBothAreDone) {
  std::unique_ptr<SharedLocks> a_shared = OpenLocks(), b_shared = OpenLocks();
  ASSERT_TRUE(a_shared && b_shared);
  PathLocks a(a_shared.get(), &SameByte), b(b_shared.get(), &SameByte);
  Ran x, y, z;
  a.Lock("x", x.Then());
  ASSERT_TRUE(x.done);
  a.Lock("y", y.Then());
  EXPECT_FALSE(y.done);  // serialised with x: same byte
  b.Lock("z", z.Then());
  EXPECT_FALSE(z.done);
  a.Unlock("x");
  EXPECT_TRUE(y.done);
  absl::SleepFor(absl::Milliseconds(60));
  EXPECT_FALSE(z.done) << "the other server got the byte while y still holds it";
  a.Unlock("y");
  ASSERT_TRUE(Eventually([&] { return z.done.load(); }));
  b.Unlock("z");
}

TEST_F(SharedLocksTest, ADeadServersLocksGoWithItsDescription) {
  std::unique_ptr<SharedLocks> a_shared = OpenLocks(), b_shared = OpenLocks();
  ASSERT_TRUE(a_shared && b_shared);
  auto a = std::make_unique<PathLocks>(a_shared.get());
  PathLocks b(b_shared.get());
  Ran held, waiting;
  a->Lock("p", held.Then());
  b.Lock("p", waiting.Then());
  EXPECT_FALSE(waiting.done);
  // As a kill -9 would: the description closes without any unlock.
  a.reset();
  a_shared.reset();
  ASSERT_TRUE(Eventually([&] { return waiting.done.load(); }));
  b.Unlock("p");
}

TEST_F(SharedLocksTest, OthersLiveSeesOnlyOtherOpens) {
  std::unique_ptr<SharedLocks> a = OpenLocks();
  ASSERT_TRUE(a);
  EXPECT_FALSE(*a->OthersLive());
  std::unique_ptr<SharedLocks> b = OpenLocks();
  EXPECT_TRUE(*a->OthersLive());
  EXPECT_TRUE(*b->OthersLive());
  b.reset();
  EXPECT_FALSE(*a->OthersLive());
  EXPECT_TRUE(Exists(root_ + "/.ringstore/lock"));
  struct stat st;
  ASSERT_EQ(stat((root_ + "/.ringstore/lock").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0);  // locks only, never data
}

TEST_F(SharedLocksTest, TickerRunsOnThePollerThread) {
  std::unique_ptr<SharedLocks> a = OpenLocks();
  ASSERT_TRUE(a);
  std::atomic<int> ticks{0};
  std::atomic<bool> elsewhere{true};
  const std::thread::id me = std::this_thread::get_id();
  a->SetTicker(absl::Milliseconds(5), [&] {
    if (std::this_thread::get_id() == me) elsewhere = false;
    ++ticks;
  });
  EXPECT_TRUE(Eventually([&] { return ticks.load() >= 3; }));
  EXPECT_TRUE(elsewhere);
}

// Part of the on-disk protocol: servers of every version must agree.
TEST(PathLockOffset, IsFnv1aCutTo62Bits) {
  EXPECT_EQ(PathLockOffset(""), 0xcbf29ce484222325ull & ((uint64_t{1} << 62) - 1));
  EXPECT_EQ(PathLockOffset("a"), 0xaf63dc4c8601ec8cull & ((uint64_t{1} << 62) - 1));
  EXPECT_LT(PathLockOffset("some/long/path"), kLiveOffset);
  EXPECT_NE(PathLockOffset("a/b"), PathLockOffset("a/c"));
}

// --- ServerDir -----------------------------------------------------------

std::string Counter() {
  static std::atomic<int> n{0};
  return absl::StrCat("server", n++);
}

TEST_F(SharedLocksTest, ServerDirsOfLiveServersSurviveAndDeadOnesGo) {
  const std::string tmp = root_ + "/.ringstore/tmp";
  auto a = ServerDir::Open(root_fd_, &Counter);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ((*a)->path(), ".ringstore/tmp/" + (*a)->name());
  std::ofstream(root_ + "/" + (*a)->path() + "/upload") << "in flight";
  // Dead: an unlocked lock file with its directory; a directory without a
  // lock file; a lock file alone; a plain file of the old layout.
  ASSERT_EQ(mkdir((tmp + "/dead1").c_str(), 0755), 0);
  std::ofstream(tmp + "/dead1/upload") << "partial";
  std::ofstream(tmp + "/dead1.lock");
  ASSERT_EQ(mkdir((tmp + "/dead2").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((tmp + "/dead2/sub").c_str(), 0755), 0);
  std::ofstream(tmp + "/dead2/sub/x") << "x";
  std::ofstream(tmp + "/dead3.lock");
  std::ofstream(tmp + "/old-layout-upload") << "old";
  auto b = ServerDir::Open(root_fd_, &Counter);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE((*a)->name(), (*b)->name());
  for (const char* gone : {"dead1", "dead1.lock", "dead2", "dead2.lock", "dead3.lock",
                           "old-layout-upload"}) {
    EXPECT_FALSE(Exists(tmp + "/" + gone)) << gone;
  }
  EXPECT_TRUE(Exists(root_ + "/" + (*a)->path() + "/upload"));
  EXPECT_TRUE(Exists(tmp + "/" + (*a)->name() + ".lock"));
  EXPECT_TRUE(Exists(root_ + "/" + (*b)->path()));
  // A live server is never a dead one, whoever looks.
  const int tmp_fd = open(tmp.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(tmp_fd, 0);
  EXPECT_EQ(*RemoveDeadServers(tmp_fd), 0);
  EXPECT_TRUE(Exists(root_ + "/" + (*a)->path() + "/upload"));
  // Leaving removes its own directory and lock file.
  const std::string a_dir = root_ + "/" + (*a)->path();
  const std::string a_lock = tmp + "/" + (*a)->name() + ".lock";
  a->reset();
  EXPECT_FALSE(Exists(a_dir));
  EXPECT_FALSE(Exists(a_lock));
  EXPECT_TRUE(Exists(root_ + "/" + (*b)->path()));
  close(tmp_fd);
}

// A name whose lock file exists already (another server's) is not taken.
TEST_F(SharedLocksTest, ServerDirPicksAnotherNameWhenTheFirstIsTaken) {
  auto a = ServerDir::Open(root_fd_, [] { return std::string("same"); });
  ASSERT_TRUE(a.ok()) << a.status();
  int calls = 0;
  auto b = ServerDir::Open(root_fd_, [&] { return std::string(++calls == 1 ? "same" : "new"); });
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)->name(), "new");
  EXPECT_EQ(calls, 2);
}

}  // namespace
}  // namespace ringstore::storage
