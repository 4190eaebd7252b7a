#include "storage/engine/blocking_ops.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "storage/engine/buffer_pool.h"
#include "storage/engine/cancellation.h"
#include "storage/engine/sync.h"

namespace ringstore::storage {
namespace {

// What one operation reported, and on which thread.
template <typename R>
struct Result {
  std::optional<R> value;
  Backend backend = Backend::kUnspecified;
  std::thread::id thread;
  Notification done;
};

template <typename T>
Engine::Callback<T> Into(Result<absl::StatusOr<T>>* r) {
  return [r](absl::StatusOr<T> v, Backend b) {
    r->value = std::move(v);
    r->backend = b;
    r->thread = std::this_thread::get_id();
    r->done.Notify();
  };
}

Engine::DoneCallback Into(Result<absl::Status>* r) {
  return [r](absl::Status s, Backend b) {
    r->value = std::move(s);
    r->backend = b;
    r->thread = std::this_thread::get_id();
    r->done.Notify();
  };
}

class BlockingOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = getenv("TEST_TMPDIR");
    ASSERT_NE(tmp, nullptr);
    std::string dir = absl::StrCat(tmp, "/blocking_ops_XXXXXX");
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    root_ = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(root_, 0);
    ops_ = std::make_unique<BlockingOps>(root_, "user.ringstore.meta", nullptr,
                                         Backend::kPosixAio, 2, "rs-test-block");
    pool_ = *BufferPool::Create(2, 4096);
  }
  void TearDown() override {
    ops_.reset();
    close(root_);
  }

  absl::Status Status(absl::AnyInvocable<void(Engine::DoneCallback)> start) {
    Result<absl::Status> r;
    start(Into(&r));
    r.done.WaitForNotification();
    EXPECT_EQ(r.backend, Backend::kPosixAio);
    return *r.value;
  }

  int root_ = -1;
  std::unique_ptr<BlockingOps> ops_;
  std::unique_ptr<BufferPool> pool_;
};

// Never inline: the callback runs on a worker, not on the calling thread.
TEST_F(BlockingOpsTest, CallsBackOnAWorkerThreadWithItsBackend) {
  Result<absl::Status> r;
  ops_->MakeDir("d", Into(&r));
  r.done.WaitForNotification();
  EXPECT_NE(r.thread, std::this_thread::get_id());
  EXPECT_EQ(r.backend, Backend::kPosixAio);
  EXPECT_TRUE(r.value->ok()) << *r.value;
}

TEST_F(BlockingOpsTest, RunsEveryOperationThroughPosixFiles) {
  ASSERT_TRUE(Status([&](auto done) { ops_->MakeDir("d", std::move(done)); }).ok());
  EXPECT_EQ(Status([&](auto done) { ops_->MakeDir("d", std::move(done)); }).code(),
            absl::StatusCode::kAlreadyExists);

  Result<absl::StatusOr<FileHandle>> opened;
  ops_->Open("d/f.tmp", OpenMode::kCreateWrite, Into(&opened));
  opened.done.WaitForNotification();
  ASSERT_TRUE(opened.value->ok()) << opened.value->status();
  const FileHandle file = **opened.value;

  PooledBuffer buf = pool_->TryAcquire();
  std::memcpy(buf.data(), "hello", 5);
  const absl::Span<const char> src(buf.data(), 5);
  ASSERT_TRUE(Status([&](auto done) { ops_->Write(file, 0, src, std::move(done)); }).ok());
  ASSERT_TRUE(Status([&](auto done) {
                ops_->CommitFile(file, "meta", "d/f.tmp", "d/f", std::move(done));
              }).ok());
  ASSERT_TRUE(Status([&](auto done) { ops_->Close(file, std::move(done)); }).ok());

  Result<absl::StatusOr<FileRead>> read;
  std::memset(buf.data(), 0, buf.capacity());
  ops_->ReadFile("d/f", buf.span(), ReadFileOptions(), Into(&read));
  read.done.WaitForNotification();
  ASSERT_TRUE(read.value->ok()) << read.value->status();
  EXPECT_EQ((*read.value)->length, 5u);
  EXPECT_EQ((*read.value)->metadata, "meta");
  EXPECT_EQ(std::string(buf.data(), 5), "hello");

  Result<absl::StatusOr<FileStat>> stat;
  ops_->StatPath("d/f", Into(&stat));
  stat.done.WaitForNotification();
  ASSERT_TRUE(stat.value->ok()) << stat.value->status();
  EXPECT_EQ((*stat.value)->size, 5);
  EXPECT_TRUE((*stat.value)->is_regular);
  EXPECT_EQ((*stat.value)->metadata, "meta");

  Result<absl::StatusOr<std::vector<DirEntry>>> list;
  ops_->ReadDir("d", Into(&list));
  list.done.WaitForNotification();
  ASSERT_TRUE(list.value->ok()) << list.value->status();
  ASSERT_EQ((*list.value)->size(), 1u);
  EXPECT_EQ((**list.value)[0].name, "f");
  EXPECT_TRUE((**list.value)[0].is_regular);

  EXPECT_EQ(Status([&](auto done) { ops_->RemoveDir("d", std::move(done)); }).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(Status([&](auto done) { ops_->Unlink("d/f", std::move(done)); }).ok());
  EXPECT_EQ(Status([&](auto done) { ops_->Unlink("d/f", std::move(done)); }).code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(Status([&](auto done) { ops_->RemoveDir("d", std::move(done)); }).ok());
}

TEST_F(BlockingOpsTest, ACancelledReadDoesNotStart) {
  PooledBuffer buf = pool_->TryAcquire();
  std::memset(buf.data(), 'x', buf.capacity());
  Cancellation cancel;
  cancel.Cancel();
  Result<absl::StatusOr<size_t>> read;
  // Not a valid descriptor: a read that started would fail otherwise.
  ops_->Read(FileHandle{-1}, 0, buf.span(), &cancel, Into(&read));
  read.done.WaitForNotification();
  EXPECT_EQ(read.value->status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(read.backend, Backend::kPosixAio);
  EXPECT_EQ(std::count(buf.data(), buf.data() + buf.capacity(), 'x'),
            static_cast<long>(buf.capacity()));
}

TEST_F(BlockingOpsTest, DestructionRunsEveryQueuedOperation) {
  std::atomic<int> called{0};
  for (int i = 0; i < 50; ++i) {
    ops_->MakeDir(absl::StrCat("d", i), [&](absl::Status s, Backend) {
      EXPECT_TRUE(s.ok()) << s;
      ++called;
    });
  }
  ops_.reset();
  EXPECT_EQ(called.load(), 50);
}

}  // namespace
}  // namespace ringstore::storage
