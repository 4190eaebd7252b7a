// The engine contract under failure: steps the kernel fails (injected with
// the FaultInjector, which the io_uring engine turns into real failed SQEs
// inside its chains), cancelled operations, special files, and a stress run
// that mixes all of them and then checks that no direct slot is left in use.
// Parameterised over every engine, like engine_contract_test.cc.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "storage/engine/cancellation.h"
#include "storage/engine/engine_test_fixture.h"
#include "storage/engine/sync.h"

namespace ringstore::storage {
namespace {

using EngineFaultTest = EngineTest;

#define RESTART_WITH_FAULTS_OR_SKIP()                                      \
  do {                                                                     \
    const std::string reason = RestartWithFaults();                        \
    if (!reason.empty()) GTEST_SKIP() << "no fault injection: " << reason; \
  } while (0)

TEST_P(EngineFaultTest, CancelledBeforeStartDoesNothing) {
  Create("f", "content");
  Cancellation cancel;
  cancel.Cancel();
  PooledBuffer buf = pool_->TryAcquire();
  Waiter<FileRead> whole;
  engine_->ReadFile("f", buf.span(), WithCancel(&cancel), whole.callback());
  EXPECT_EQ(whole.Wait().status().code(), absl::StatusCode::kCancelled);
  auto f = Open("f", OpenMode::kRead);
  ASSERT_TRUE(f.ok());
  Waiter<size_t> part;
  engine_->Read(*f, 0, buf.span(), &cancel, part.callback());
  EXPECT_EQ(part.Wait().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(part.backend(), backend_);
  EXPECT_TRUE(Close(*f).ok());
  EXPECT_EQ(engine_->info().direct_slots_in_use, 0);
  // An operation not cancelled is not disturbed by a Cancellation.
  Cancellation idle;
  Waiter<FileRead> again;
  engine_->ReadFile("f", buf.span(), WithCancel(&idle), again.callback());
  auto r = again.Wait();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(std::string(buf.data(), r->length), "content");
}

// A read the kernel holds (an empty pipe never completes) ends when it is
// cancelled. Engine file handles are plain descriptors on io_uring; the
// thread pool cannot interrupt a blocking call, so this is io_uring's.
TEST_P(EngineFaultTest, CancelEndsAReadTheKernelHolds) {
  if (backend_ != Backend::kIoUring) {
    GTEST_SKIP() << GetParam() << " cannot interrupt a blocking read; it checks before starting";
  }
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  PooledBuffer buf = pool_->TryAcquire();
  Cancellation cancel;
  Waiter<size_t> w;
  engine_->Read(FileHandle{fds[0]}, 0, buf.span(), &cancel, w.callback());
  absl::SleepFor(absl::Milliseconds(100));
  cancel.Cancel();
  EXPECT_EQ(w.Wait().status().code(), absl::StatusCode::kCancelled);
  close(fds[0]);
  close(fds[1]);
}

// A FIFO or other special file placed in the root must not hang an open.
TEST_P(EngineFaultTest, SpecialFilesNeverBlock) {
  ASSERT_EQ(mkfifo((root_ + "/fifo").c_str(), 0644), 0);
  EXPECT_EQ(Open("fifo", OpenMode::kRead).status().code(), absl::StatusCode::kFailedPrecondition);
  PooledBuffer buf = pool_->TryAcquire();
  Waiter<FileRead> w;
  engine_->ReadFile("fifo", buf.span(), ReadFileOptions(), w.callback());
  EXPECT_EQ(w.Wait().status().code(), absl::StatusCode::kFailedPrecondition);
  auto st = StatPath("fifo");
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_FALSE(st->is_regular);
  EXPECT_EQ(engine_->info().direct_slots_in_use, 0);
}

// Each step of the ReadFile chain failing in the kernel.
TEST_P(EngineFaultTest, ReadFileStepFailures) {
  RESTART_WITH_FAULTS_OR_SKIP();
  Create("f", "hello");
  PooledBuffer buf = pool_->TryAcquire();
  auto read = [&] {
    Waiter<FileRead> w;
    engine_->ReadFile("f", buf.span(), ReadFileOptions(), w.callback());
    return w.Wait();
  };
  faults_.Fail(Step::kOpen, EACCES, 1, 1);
  EXPECT_EQ(read().status().code(), absl::StatusCode::kPermissionDenied);
  faults_.Fail(Step::kRead, EIO, 1, 1);
  EXPECT_EQ(read().status().code(), absl::StatusCode::kInternal);
  faults_.Fail(Step::kRead, ECANCELED, 1, 1);
  EXPECT_EQ(read().status().code(), absl::StatusCode::kCancelled);
  faults_.Fail(Step::kGetXattr, EIO, 1, 1);
  EXPECT_EQ(read().status().code(), absl::StatusCode::kInternal);
  // A cancelled close (what an IOSQE_IO_LINK chain does after a short read)
  // loses nothing: the data is there and the slot is closed again.
  faults_.Fail(Step::kClose, ECANCELED, 1, 1);
  auto r = read();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(std::string(buf.data(), r->length), "hello");
  EXPECT_EQ(faults_.injected(Step::kClose), 1);
  EXPECT_EQ(engine_->info().direct_slots_in_use, 0);
  // And afterwards every slot still works.
  auto ok = read();
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->length, 5u);
  // io_uring: a file system that refuses O_DIRECT (EINVAL from the open or
  // the read) or RWF_NOWAIT (EOPNOTSUPP) is read through the page cache,
  // whole. (The other engines use neither: for them these are errors.)
  if (backend_ != Backend::kIoUring) return;
  auto read_with = [&](bool cached_only, bool direct) {
    ReadFileOptions options;
    options.cached_only = cached_only;
    options.direct = direct;
    Waiter<FileRead> w;
    engine_->ReadFile("f", buf.span(), options, w.callback());
    auto r = w.Wait();
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? std::string(buf.data(), r->length) : "";
  };
  faults_.Fail(Step::kOpen, EINVAL, 1, 1);
  EXPECT_EQ(read_with(false, /*direct=*/true), "hello");
  faults_.Fail(Step::kRead, EINVAL, 1, 1);
  EXPECT_EQ(read_with(false, /*direct=*/true), "hello");
  faults_.Fail(Step::kRead, EOPNOTSUPP, 1, 1);
  EXPECT_EQ(read_with(/*cached_only=*/true, false), "hello");
  EXPECT_EQ(engine_->info().direct_slots_in_use, 0);
}

TEST_P(EngineFaultTest, CommitFileMakesTheFileVisible) {
  Create("old", "old content");
  auto f = Open("tmp", OpenMode::kCreateWrite);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(Write(*f, 0, "new content").ok());
  StatusWaiter w;
  engine_->CommitFile(*f, "v1 meta", "tmp", "old", w.callback());
  ASSERT_TRUE(w.Wait().ok());
  EXPECT_EQ(w.backend(), backend_);
  EXPECT_TRUE(Close(*f).ok());
  EXPECT_EQ(ReadLocal(root_ + "/old"), "new content");
  EXPECT_EQ(access((root_ + "/tmp").c_str(), F_OK), -1);
  auto st = StatPath("old");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->metadata, "v1 meta");
  // Into a directory that does not exist: NotFound, nothing moved.
  auto g = Open("tmp2", OpenMode::kCreateWrite);
  ASSERT_TRUE(g.ok());
  StatusWaiter missing;
  engine_->CommitFile(*g, "m", "tmp2", "nodir/x", missing.callback());
  EXPECT_EQ(missing.Wait().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Close(*g).ok());
  EXPECT_EQ(access((root_ + "/tmp2").c_str(), F_OK), 0);
}

// A failure at each step of CommitFile: before the rename the old file is
// untouched; the rename is never done after a failed fsync.
TEST_P(EngineFaultTest, CommitFileStopsAtTheFailedStep) {
  RESTART_WITH_FAULTS_OR_SKIP();
  struct Case {
    Step step;
    int err;
    int every;  // fail the every-th step of that kind (the directory fsync is the 2nd)
    absl::StatusCode code;
    bool renamed;
  };
  const Case cases[] = {
      {Step::kSetXattr, ENOSPC, 1, absl::StatusCode::kResourceExhausted, false},
      {Step::kFsync, EIO, 1, absl::StatusCode::kInternal, false},
      {Step::kRename, EXDEV, 1, absl::StatusCode::kPermissionDenied, false},
      {Step::kFsync, EIO, 2, absl::StatusCode::kInternal, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat(StepName(c.step), " #", c.every));
    WriteLocal(root_ + "/dst", "old");
    auto f = Open("tmp", OpenMode::kCreateWrite);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(Write(*f, 0, "new").ok());
    faults_.Clear();
    faults_.Fail(c.step, c.err, c.every, 1);
    StatusWaiter w;
    engine_->CommitFile(*f, "m", "tmp", "dst", w.callback());
    EXPECT_EQ(w.Wait().code(), c.code);
    faults_.Clear();
    EXPECT_TRUE(Close(*f).ok());
    EXPECT_EQ(ReadLocal(root_ + "/dst"), c.renamed ? "new" : "old");
    EXPECT_EQ(access((root_ + "/tmp").c_str(), F_OK), c.renamed ? -1 : 0);
    unlink((root_ + "/tmp").c_str());
  }
}

// 100,000 whole-file reads, more in flight than there are direct slots,
// over files that are missing, shrink, grow and vanish meanwhile; some are
// cancelled before they start, some while in flight, and the kernel fails
// some closes (-ECANCELED) and reads. Every read ends with a sane answer and
// afterwards no slot is left occupied.
TEST_P(EngineFaultTest, ReadFileStressLeaksNoSlot) {
  RESTART_WITH_FAULTS_OR_SKIP();
  constexpr int kFiles = 500;
  constexpr int kReads = 100000;
  // More reads in flight than the engine has direct slots.
  const int kInFlight = std::max(1500, engine_->info().direct_slots + 500);
  for (int i = 0; i < kFiles; ++i) {
    WriteLocal(absl::StrCat(root_, "/f", i), std::string(100 + i * 7, 'a' + i % 26));
  }
  auto pool = BufferPool::Create(static_cast<size_t>(kInFlight), 4096);
  ASSERT_TRUE(pool.ok());
  std::vector<PooledBuffer> buffers;
  for (int i = 0; i < kInFlight; ++i) buffers.push_back((*pool)->TryAcquire());
  // One per read, alive to the end: the canceller may still hold one whose
  // read has finished.
  std::vector<std::unique_ptr<Cancellation>> cancels(kReads);
  faults_.Fail(Step::kClose, ECANCELED, 50);
  faults_.Fail(Step::kRead, ECANCELED, 97);

  std::atomic<bool> stop{false};
  std::thread churn([&] {
    // Files shrink, grow and disappear while they are being read.
    for (int round = 0; !stop; ++round) {
      const int i = round % kFiles;
      const std::string p = absl::StrCat(root_, "/f", i);
      if (round % 3 == 0) {
        truncate(p.c_str(), round % 50);
      } else if (round % 3 == 1) {
        unlink(p.c_str());
      } else {
        WriteLocal(p, std::string(5000, 'z'));  // bigger than a buffer
      }
    }
  });

  Mutex mu;
  int next = 0, finished = 0, exited = 0, ok = 0, not_found = 0, cancelled = 0, other = 0,
      bad_length = 0;
  std::vector<int> free_buffers;
  for (int i = kInFlight - 1; i >= 0; --i) free_buffers.push_back(i);
  // Reads to cancel while they are in flight, by another thread.
  struct CancelQueue {
    std::deque<Cancellation*> queue;
    bool done = false;
    bool Ready() const { return !queue.empty() || done; }
  } pending;
  std::thread canceller([&] {
    for (;;) {
      Cancellation* c;
      {
        MutexLock lock(&mu);
        mu.Await(absl::Condition(&pending, &CancelQueue::Ready));
        if (pending.queue.empty()) return;
        c = pending.queue.front();
        pending.queue.pop_front();
      }
      c->Cancel();
    }
  });
  std::function<void()> launch = [&] {
    int i, b;
    {
      MutexLock lock(&mu);
      if (next == kReads || free_buffers.empty()) return;
      i = next++;
      b = free_buffers.back();
      free_buffers.pop_back();
    }
    // Every 20th path never exists.
    const std::string path =
        i % 20 == 0 ? absl::StrCat("missing", i) : absl::StrCat("f", i % kFiles);
    Cancellation* cancel = nullptr;
    if (i % 13 == 0 || i % 7 == 0) {
      cancels[i] = std::make_unique<Cancellation>();
      cancel = cancels[i].get();
      if (i % 13 == 0) cancel->Cancel();
    }
    if (i % 7 == 0 && i % 13 != 0) {
      MutexLock lock(&mu);
      pending.queue.push_back(cancel);
    }
    engine_->ReadFile(path, buffers[b].span(), WithCancel(cancel),
                      [&, b](absl::StatusOr<FileRead> r, Backend) {
                        bool more;
                        {
                          MutexLock lock(&mu);
                          ++finished;
                          free_buffers.push_back(b);
                          if (r.ok()) {
                            ++ok;
                            if (r->length > 4096) ++bad_length;
                          } else if (r.status().code() == absl::StatusCode::kNotFound) {
                            ++not_found;
                          } else if (r.status().code() == absl::StatusCode::kCancelled) {
                            ++cancelled;
                          } else {
                            ++other;
                          }
                          more = next < kReads;
                        }
                        if (more) launch();
                        MutexLock lock(&mu);
                        ++exited;  // the last touch of the test's state
                      });
  };
  for (int i = 0; i < kInFlight; ++i) launch();
  {
    MutexLock lock(&mu);
    mu.Await(absl::Condition(+[](int* n) { return *n == kReads; }, &exited));
  }
  const EngineInfo info = engine_->info();
  // Joins the engine's threads: no callback is still returning.
  engine_.reset();
  stop = true;
  {
    MutexLock lock(&mu);
    pending.done = true;
  }
  canceller.join();
  churn.join();
  EXPECT_EQ(ok + not_found + cancelled, kReads) << other << " reads failed otherwise";
  EXPECT_GE(not_found, kReads / 40);
  EXPECT_GE(cancelled, kReads / 13);  // at least those cancelled before they started
  EXPECT_EQ(bad_length, 0);
  EXPECT_GT(faults_.injected(Step::kClose), 0);
  EXPECT_EQ(info.direct_slots_in_use, 0);
  if (backend_ == Backend::kIoUring) {
    EXPECT_GT(info.direct_slots, 0);
  }
}

// An operation the engine's kernel interface refuses (ENOSYS, EOPNOTSUPP,
// EPERM: what a seccomp profile answers) runs on the next engine, which
// then names itself; other errors are answered by the engine itself.
TEST_P(EngineFaultTest, RefusedOperationRunsOnTheNextEngine) {
  if (GetParam() == EngineNames().back()) {
    GTEST_SKIP() << GetParam() << " is the last engine: no engine to fall back to";
  }
  Create("f", "hello");
  engine_.reset();
  EngineOptions options = Options();
  options.faults = &faults_;
  auto started = StartEngine(GetParam(), options);
  if (!started.ok()) GTEST_SKIP() << "no fault injection: " << started.status();
  engine_ = std::move(started->engine);
  // The engine after this one among those that start here.
  const std::vector<std::string>& available = started->available;
  auto at = std::find(available.begin(), available.end(), GetParam());
  ASSERT_TRUE(at != available.end() && at + 1 != available.end());
  Backend next = Backend::kUnspecified;
  for (const EngineKind& kind : AllEngines()) {
    if (kind.name == *(at + 1)) next = kind.backend;
  }
  PooledBuffer buf = pool_->TryAcquire();

  faults_.Fail(Step::kRead, ENOSYS);
  Waiter<FileRead> whole;
  engine_->ReadFile("f", buf.span(), ReadFileOptions(), whole.callback());
  auto r = whole.Wait();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(std::string(buf.data(), r->length), "hello");
  EXPECT_EQ(whole.backend(), next);

  // io_uring opens through the ring; posix_aio opens with plain system
  // calls, which no seccomp profile singles out.
  faults_.Clear();
  if (backend_ == Backend::kIoUring) faults_.Fail(Step::kOpen, EPERM, 1, 1);
  Waiter<FileHandle> opened;
  engine_->Open("g", OpenMode::kCreateWrite, opened.callback());
  auto g = opened.Wait();
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(opened.backend(), backend_ == Backend::kIoUring ? next : backend_);
  faults_.Fail(Step::kWrite, EOPNOTSUPP, 1, 1);
  std::memcpy(buf.data(), "data", 4);
  StatusWaiter wrote;
  engine_->Write(*g, 0, absl::Span<const char>(buf.data(), 4), wrote.callback());
  EXPECT_TRUE(wrote.Wait().ok());
  EXPECT_EQ(wrote.backend(), next);
  // The handle the fallback opened works on the primary and vice versa.
  StatusWaiter synced;
  engine_->Sync(*g, false, synced.callback());
  EXPECT_TRUE(synced.Wait().ok());
  EXPECT_EQ(synced.backend(), backend_);
  EXPECT_TRUE(Close(*g).ok());
  EXPECT_EQ(ReadLocal(root_ + "/g"), "data");

  // Not a refusal: the primary's own answer.
  faults_.Fail(Step::kRead, EIO, 1, 1);
  Waiter<FileRead> failed;
  engine_->ReadFile("f", buf.span(), ReadFileOptions(), failed.callback());
  EXPECT_EQ(failed.Wait().status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(failed.backend(), backend_);

  // The wrapper counted each refusal (EngineStats, for metrics): the
  // read, the write and, on io_uring, the open.
  const EngineStats stats = engine_->stats();
  uint64_t moved = 0;
  for (const EngineStats::Fallback& f : stats.fallbacks) {
    if (f.from == backend_ && f.to == next) moved = f.count;
  }
  EXPECT_EQ(moved, backend_ == Backend::kIoUring ? 3u : 2u);
  if (backend_ == Backend::kIoUring) {
    EXPECT_GT(stats.io_uring_submits, 0u);
    EXPECT_GE(stats.io_uring_sqes, stats.io_uring_submits);
  }
}

INSTANTIATE_TEST_SUITE_P(AllEngines, EngineFaultTest, testing::ValuesIn(EngineNames()),
                         EngineParamName);

}  // namespace
}  // namespace ringstore::storage
