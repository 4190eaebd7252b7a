// The engine contract: every engine must pass this suite unchanged
// (DESIGN.md §7). Add an engine by adding its name to kEngines.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "storage/buffer_pool.h"
#include "storage/engine.h"
#include "storage/engine_selector.h"

namespace ringstore::storage {
namespace {

const char* const kEngines[] = {"io_uring", "thread_pool"};

std::string TempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string tmpl = absl::StrCat(base ? base : "/tmp", "/engine-XXXXXX");
  char* dir = mkdtemp(tmpl.data());
  EXPECT_NE(dir, nullptr);
  return tmpl;
}

void WriteLocal(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}

std::string ReadLocal(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Waits for one engine callback and checks it ran exactly once.
template <typename T>
class Waiter {
 public:
  Engine::Callback<T> callback() {
    return [this](absl::StatusOr<T> r, Backend b) {
      ASSERT_FALSE(done_.HasBeenNotified()) << "callback ran twice";
      result_ = std::move(r);
      backend_ = b;
      done_.Notify();
    };
  }
  absl::StatusOr<T> Wait() {
    done_.WaitForNotification();
    return std::move(result_);
  }
  Backend backend() const { return backend_; }

 private:
  absl::Notification done_;
  absl::StatusOr<T> result_ = absl::UnknownError("unset");
  Backend backend_ = Backend::kUnspecified;
};

class StatusWaiter {
 public:
  Engine::DoneCallback callback() {
    return [this](absl::Status s, Backend b) {
      ASSERT_FALSE(done_.HasBeenNotified()) << "callback ran twice";
      status_ = std::move(s);
      backend_ = b;
      done_.Notify();
    };
  }
  absl::Status Wait() {
    done_.WaitForNotification();
    return status_;
  }
  Backend backend() const { return backend_; }

 private:
  absl::Notification done_;
  absl::Status status_;
  Backend backend_ = Backend::kUnspecified;
};

class EngineContractTest : public testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    base_ = TempDir();
    root_ = base_ + "/root";
    outside_ = base_ + "/outside";
    ASSERT_EQ(mkdir(root_.c_str(), 0755), 0);
    ASSERT_EQ(mkdir(outside_.c_str(), 0755), 0);
    WriteLocal(outside_ + "/secret", "secret");
    root_fd_ = open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(root_fd_, 0);
    auto pool = BufferPool::Create(8, 64 << 10);
    ASSERT_TRUE(pool.ok());
    pool_ = *std::move(pool);
    EngineOptions options;
    options.root_fd = root_fd_;
    options.pool = pool_.get();
    auto engine = StartEngine(GetParam(), options);
    if (!engine.ok()) GTEST_SKIP() << GetParam() << " cannot run here: " << engine.status();
    engine_ = *std::move(engine);
    backend_ = engine_->info().backend;
    ASSERT_EQ(BackendName(backend_), GetParam());
  }

  void TearDown() override {
    engine_.reset();
    pool_.reset();
    if (root_fd_ >= 0) close(root_fd_);
  }

  absl::StatusOr<FileHandle> Open(const std::string& path, OpenMode mode) {
    Waiter<FileHandle> w;
    engine_->Open(path, mode, w.callback());
    auto r = w.Wait();
    EXPECT_EQ(w.backend(), backend_);
    return r;
  }
  absl::Status Write(FileHandle f, int64_t offset, const std::string& data) {
    PooledBuffer b = pool_->TryAcquire();
    EXPECT_LE(data.size(), b.capacity());
    std::memcpy(b.data(), data.data(), data.size());
    StatusWaiter w;
    engine_->Write(f, offset, absl::Span<const char>(b.data(), data.size()), w.callback());
    return w.Wait();
  }
  absl::StatusOr<std::string> Read(FileHandle f, int64_t offset, size_t n) {
    PooledBuffer b = pool_->TryAcquire();
    EXPECT_LE(n, b.capacity());
    Waiter<size_t> w;
    engine_->Read(f, offset, absl::Span<char>(b.data(), n), w.callback());
    auto r = w.Wait();
    EXPECT_EQ(w.backend(), backend_);
    if (!r.ok()) return r.status();
    return std::string(b.data(), *r);
  }
  absl::Status Sync(FileHandle f, bool data_only) {
    StatusWaiter w;
    engine_->Sync(f, data_only, w.callback());
    return w.Wait();
  }
  absl::Status Close(FileHandle f) {
    StatusWaiter w;
    engine_->Close(f, w.callback());
    return w.Wait();
  }
  absl::StatusOr<FileStat> Stat(FileHandle f) {
    Waiter<FileStat> w;
    engine_->Stat(f, w.callback());
    return w.Wait();
  }
  absl::StatusOr<FileStat> StatPath(const std::string& p) {
    Waiter<FileStat> w;
    engine_->StatPath(p, w.callback());
    return w.Wait();
  }
  absl::Status SetMetadata(FileHandle f, const std::string& v) {
    StatusWaiter w;
    engine_->SetMetadata(f, v, w.callback());
    return w.Wait();
  }
  absl::Status Rename(const std::string& a, const std::string& b) {
    StatusWaiter w;
    engine_->Rename(a, b, w.callback());
    return w.Wait();
  }
  absl::Status Unlink(const std::string& p) {
    StatusWaiter w;
    engine_->Unlink(p, w.callback());
    return w.Wait();
  }
  absl::Status MakeDir(const std::string& p) {
    StatusWaiter w;
    engine_->MakeDir(p, w.callback());
    auto s = w.Wait();
    EXPECT_EQ(w.backend(), backend_);
    return s;
  }
  absl::Status RemoveDir(const std::string& p) {
    StatusWaiter w;
    engine_->RemoveDir(p, w.callback());
    return w.Wait();
  }
  absl::StatusOr<std::vector<DirEntry>> ReadDir(const std::string& p) {
    Waiter<std::vector<DirEntry>> w;
    engine_->ReadDir(p, w.callback());
    return w.Wait();
  }
  // Creates `path` with `data` through the engine.
  void Create(const std::string& path, const std::string& data) {
    auto f = Open(path, OpenMode::kCreateWrite);
    ASSERT_TRUE(f.ok()) << f.status();
    ASSERT_TRUE(Write(*f, 0, data).ok());
    ASSERT_TRUE(Close(*f).ok());
  }

  std::string base_, root_, outside_;
  int root_fd_ = -1;
  std::unique_ptr<BufferPool> pool_;
  std::unique_ptr<Engine> engine_;
  Backend backend_ = Backend::kUnspecified;
};

TEST_P(EngineContractTest, OpenModes) {
  EXPECT_EQ(Open("missing", OpenMode::kRead).status().code(), absl::StatusCode::kNotFound);
  ASSERT_EQ(mkdir((root_ + "/dir").c_str(), 0755), 0);
  EXPECT_EQ(Open("dir", OpenMode::kRead).status().code(), absl::StatusCode::kFailedPrecondition);
  Create("file", "x");
  EXPECT_EQ(Open("file", OpenMode::kCreateWrite).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Open("nodir/file", OpenMode::kCreateWrite).status().code(),
            absl::StatusCode::kNotFound);
  auto d = Open("dir", OpenMode::kDirectory);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(Sync(*d, false).ok());
  EXPECT_TRUE(Close(*d).ok());
  auto root = Open("", OpenMode::kDirectory);
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_TRUE(Close(*root).ok());
}

TEST_P(EngineContractTest, WriteReadRoundTripsAtOffsets) {
  auto f = Open("data", OpenMode::kCreateWrite);
  ASSERT_TRUE(f.ok());
  const std::string a(64 << 10, 'a');
  ASSERT_TRUE(Write(*f, 0, a).ok());
  ASSERT_TRUE(Write(*f, 64 << 10, "tail").ok());
  ASSERT_TRUE(Write(*f, 10, "MID").ok());
  EXPECT_TRUE(Sync(*f, true).ok());
  EXPECT_TRUE(Sync(*f, false).ok());
  ASSERT_TRUE(Close(*f).ok());
  std::string want = a + "tail";
  want.replace(10, 3, "MID");
  EXPECT_EQ(ReadLocal(root_ + "/data"), want);

  auto r = Open("data", OpenMode::kRead);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*Read(*r, 0, 64 << 10), want.substr(0, 64 << 10));  // a whole buffer
  EXPECT_EQ(*Read(*r, 8, 6), "aaMIDa");
  EXPECT_EQ(*Read(*r, (64 << 10) - 2, 100), "aatail");  // short: end of file
  EXPECT_EQ(*Read(*r, want.size(), 10), "");            // at end of file
  EXPECT_EQ(*Read(*r, want.size() + 100, 10), "");      // past it
  auto st = Stat(*r);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->size, static_cast<int64_t>(want.size()));
  EXPECT_TRUE(st->is_regular);
  EXPECT_FALSE(st->is_directory);
  EXPECT_TRUE(st->metadata.empty());
  EXPECT_TRUE(Close(*r).ok());
}

TEST_P(EngineContractTest, MetadataRoundTrip) {
  auto f = Open("meta", OpenMode::kCreateWrite);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(SetMetadata(*f, "v1 42 7").ok());
  auto st = Stat(*f);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->metadata, "v1 42 7");
  ASSERT_TRUE(Close(*f).ok());
  auto sp = StatPath("meta");
  ASSERT_TRUE(sp.ok());
  EXPECT_EQ(sp->metadata, "v1 42 7");
  EXPECT_TRUE(sp->is_regular);
  EXPECT_EQ(sp->size, 0);
}

TEST_P(EngineContractTest, StatPathKinds) {
  ASSERT_EQ(mkdir((root_ + "/d").c_str(), 0755), 0);
  WriteLocal(root_ + "/d/f", "12345");
  ASSERT_EQ(symlink("f", (root_ + "/d/link").c_str()), 0);
  auto d = StatPath("d");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->is_directory);
  EXPECT_FALSE(d->is_regular);
  auto f = StatPath("d/f");
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->is_regular);
  EXPECT_EQ(f->size, 5);
  EXPECT_GT(absl::ToUnixSeconds(f->modified), 0);
  auto l = StatPath("d/link");
  ASSERT_TRUE(l.ok());
  EXPECT_FALSE(l->is_regular);
  EXPECT_FALSE(l->is_directory);
  EXPECT_EQ(StatPath("d/none").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(StatPath("none/x").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(EngineContractTest, RenameReplacesAndUnlinkRemoves) {
  Create("old", "old");
  Create("new", "new content");
  ASSERT_TRUE(Rename("new", "old").ok());
  EXPECT_EQ(ReadLocal(root_ + "/old"), "new content");
  EXPECT_EQ(access((root_ + "/new").c_str(), F_OK), -1);
  EXPECT_EQ(Rename("new", "x").code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(Unlink("old").ok());
  EXPECT_EQ(Unlink("old").code(), absl::StatusCode::kNotFound);
}

TEST_P(EngineContractTest, Directories) {
  ASSERT_TRUE(MakeDir("a").ok());
  EXPECT_EQ(MakeDir("a").code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(MakeDir("a/b").ok());
  EXPECT_EQ(MakeDir("x/y").code(), absl::StatusCode::kNotFound);
  Create("a/file", "1");
  Create("plain", "1");
  EXPECT_EQ(MakeDir("plain").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(RemoveDir("a").code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(RemoveDir("a/b").ok());
  EXPECT_EQ(RemoveDir("a/b").code(), absl::StatusCode::kNotFound);

  auto entries = ReadDir("");
  ASSERT_TRUE(entries.ok());
  std::map<std::string, std::pair<bool, bool>> got;
  for (const DirEntry& e : *entries) got[e.name] = {e.is_directory, e.is_regular};
  EXPECT_EQ(got, (std::map<std::string, std::pair<bool, bool>>{{"a", {true, false}},
                                                                 {"plain", {false, true}}}));
  auto sub = ReadDir("a");
  ASSERT_TRUE(sub.ok());
  ASSERT_EQ(sub->size(), 1u);
  EXPECT_EQ((*sub)[0].name, "file");
  EXPECT_EQ(ReadDir("missing").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(EngineContractTest, SymlinksAndDotDotCannotLeaveTheRoot) {
  ASSERT_EQ(symlink(outside_.c_str(), (root_ + "/evil").c_str()), 0);
  ASSERT_EQ(symlink((outside_ + "/secret").c_str(), (root_ + "/evil-file").c_str()), 0);
  const auto denied = absl::StatusCode::kPermissionDenied;
  EXPECT_EQ(Open("evil/secret", OpenMode::kRead).status().code(), denied);
  EXPECT_EQ(Open("evil-file", OpenMode::kRead).status().code(), denied);
  EXPECT_EQ(Open("evil/new", OpenMode::kCreateWrite).status().code(), denied);
  EXPECT_EQ(Open("evil", OpenMode::kDirectory).status().code(), denied);
  EXPECT_EQ(StatPath("evil/secret").status().code(), denied);
  Create("inside", "x");
  EXPECT_EQ(Rename("inside", "evil/moved").code(), denied);
  EXPECT_EQ(Rename("evil/secret", "stolen").code(), denied);
  EXPECT_EQ(Unlink("evil/secret").code(), denied);
  EXPECT_EQ(MakeDir("evil/dir").code(), denied);
  EXPECT_EQ(RemoveDir("evil/dir").code(), denied);
  EXPECT_EQ(ReadDir("evil").status().code(), denied);
  EXPECT_EQ(Open("../outside/secret", OpenMode::kRead).status().code(), denied);
  EXPECT_EQ(Open("../escape", OpenMode::kCreateWrite).status().code(), denied);
  EXPECT_EQ(StatPath("../outside/secret").status().code(), denied);
  EXPECT_EQ(Unlink("../outside/secret").code(), denied);
  // Nothing outside changed.
  auto outside = opendir(outside_.c_str());
  int n = 0;
  while (dirent* e = readdir(outside)) n += e->d_name[0] != '.';
  closedir(outside);
  EXPECT_EQ(n, 1);
  EXPECT_EQ(ReadLocal(outside_ + "/secret"), "secret");
  EXPECT_EQ(access((base_ + "/escape").c_str(), F_OK), -1);
  // Unlinking the symlink itself (inside the root) is fine.
  EXPECT_TRUE(Unlink("evil-file").ok());
}

TEST_P(EngineContractTest, ManyConcurrentOperations) {
  constexpr int kFiles = 200;
  // Every file's create → write → close → open → read → close chain runs
  // concurrently with the others, all from callbacks.
  struct State {
    absl::Mutex mu;
    int done = 0;
    int errors = 0;
    std::vector<std::string> contents;
  } state;
  state.contents.resize(kFiles);
  auto pool = BufferPool::Create(kFiles, 4096);
  ASSERT_TRUE(pool.ok());
  std::vector<PooledBuffer> buffers;
  for (int i = 0; i < kFiles; ++i) buffers.push_back((*pool)->TryAcquire());
  Engine* engine = engine_.get();
  auto finish = [&state](int i, bool ok, std::string content) {
    absl::MutexLock lock(&state.mu);
    ++state.done;
    if (!ok) ++state.errors;
    state.contents[i] = std::move(content);
  };
  for (int i = 0; i < kFiles; ++i) {
    const std::string path = absl::StrCat("c", i);
    const std::string body = absl::StrCat("content of file ", i, std::string(i, 'z'));
    char* buf = buffers[i].data();
    std::memcpy(buf, body.data(), body.size());
    const size_t len = body.size();
    engine->Open(path, OpenMode::kCreateWrite, [=, &finish](absl::StatusOr<FileHandle> f, Backend) {
      if (!f.ok()) return finish(i, false, "");
      engine->Write(*f, 0, absl::Span<const char>(buf, len), [=, &finish](absl::Status s, Backend) {
        engine->Close(*f, [=, &finish](absl::Status c, Backend) {
          if (!s.ok() || !c.ok()) return finish(i, false, "");
          std::memset(buf, 0, 4096);
          engine->Open(path, OpenMode::kRead, [=, &finish](absl::StatusOr<FileHandle> r, Backend) {
            if (!r.ok()) return finish(i, false, "");
            engine->Read(*r, 0, absl::Span<char>(buf, 4096),
                         [=, &finish](absl::StatusOr<size_t> n, Backend) {
                           engine->Close(*r, [=, &finish](absl::Status, Backend) {
                             if (!n.ok()) return finish(i, false, "");
                             finish(i, true, std::string(buf, *n));
                           });
                         });
          });
        });
      });
    });
  }
  {
    absl::MutexLock lock(&state.mu);
    state.mu.Await(absl::Condition(
        +[](State* s) { return s->done == kFiles; }, &state));
  }
  EXPECT_EQ(state.errors, 0);
  for (int i = 0; i < kFiles; ++i) {
    EXPECT_EQ(state.contents[i], absl::StrCat("content of file ", i, std::string(i, 'z')));
  }
}

TEST_P(EngineContractTest, ReadFileWholeFilesAndErrors) {
  const size_t cap = pool_->buffer_size();
  Create("small", "hello");
  {
    auto f = Open("small", OpenMode::kRead);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(SetMetadata(*f, "v1 1 2").ok());
    ASSERT_TRUE(Close(*f).ok());
  }
  WriteLocal(root_ + "/exact", std::string(cap, 'e'));
  WriteLocal(root_ + "/bigger", std::string(cap + 10, 'b'));
  Create("empty", "");
  ASSERT_EQ(mkdir((root_ + "/dir").c_str(), 0755), 0);
  ASSERT_EQ(symlink((outside_ + "/secret").c_str(), (root_ + "/link").c_str()), 0);
  ASSERT_EQ(symlink(outside_.c_str(), (root_ + "/evil").c_str()), 0);

  PooledBuffer buf = pool_->TryAcquire();
  auto read = [&](const std::string& path) {
    std::memset(buf.data(), 0, cap);
    Waiter<FileRead> w;
    engine_->ReadFile(path, buf.span(), w.callback());
    auto r = w.Wait();
    EXPECT_EQ(w.backend(), backend_);
    return r;
  };
  auto small = read("small");
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ(small->length, 5u);
  EXPECT_EQ(std::string(buf.data(), 5), "hello");
  EXPECT_EQ(small->metadata, "v1 1 2");
  auto exact = read("exact");
  ASSERT_TRUE(exact.ok());
  EXPECT_EQ(exact->length, cap);
  EXPECT_EQ(std::string(buf.data(), cap), std::string(cap, 'e'));
  EXPECT_TRUE(exact->metadata.empty());
  auto bigger = read("bigger");
  ASSERT_TRUE(bigger.ok());
  EXPECT_EQ(bigger->length, cap);  // the buffer is full: the file may go on
  auto empty = read("empty");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->length, 0u);
  EXPECT_EQ(read("missing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(read("dir").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(read("link").status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(read("evil/secret").status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(read("../outside/secret").status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(engine_->info().direct_slots_in_use, 0);
}

// 100,000 whole-file reads, more in flight than there are direct slots,
// over files that are missing, shrink, grow and vanish meanwhile: every
// read ends with a sane answer and afterwards no slot is left occupied.
TEST_P(EngineContractTest, ReadFileStressLeaksNoSlot) {
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

  absl::Mutex mu;
  int next = 0, finished = 0, ok = 0, not_found = 0, other = 0, bad_length = 0;
  std::vector<int> free_buffers;
  for (int i = kInFlight - 1; i >= 0; --i) free_buffers.push_back(i);
  std::function<void()> launch = [&] {
    int i, b;
    {
      absl::MutexLock lock(&mu);
      if (next == kReads || free_buffers.empty()) return;
      i = next++;
      b = free_buffers.back();
      free_buffers.pop_back();
    }
    // Every 20th path never exists.
    const std::string path = i % 20 == 0 ? absl::StrCat("missing", i)
                                         : absl::StrCat("f", i % kFiles);
    engine_->ReadFile(path, buffers[b].span(), [&, b](absl::StatusOr<FileRead> r, Backend) {
      {
        absl::MutexLock lock(&mu);
        ++finished;
        free_buffers.push_back(b);
        if (r.ok()) {
          ++ok;
          if (r->length > 4096) ++bad_length;
        } else if (r.status().code() == absl::StatusCode::kNotFound) {
          ++not_found;
        } else {
          ++other;
        }
      }
      launch();
    });
  };
  for (int i = 0; i < kInFlight; ++i) launch();
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](int* f) { return *f == kReads; }, &finished));
  }
  stop = true;
  churn.join();
  EXPECT_EQ(ok + not_found, kReads) << other << " reads failed otherwise";
  EXPECT_GE(not_found, kReads / 20);
  EXPECT_EQ(bad_length, 0);
  EXPECT_EQ(engine_->info().direct_slots_in_use, 0);
  if (backend_ == Backend::kIoUring) EXPECT_GT(engine_->info().direct_slots, 0);
}

TEST_P(EngineContractTest, InfoNamesTheBackend) {
  const EngineInfo info = engine_->info();
  EXPECT_EQ(BackendName(info.backend), GetParam());
}

INSTANTIATE_TEST_SUITE_P(AllEngines, EngineContractTest, testing::ValuesIn(kEngines),
                         [](const testing::TestParamInfo<const char*>& p) {
                           return std::string(p.param);
                         });

TEST(EngineSelector, NamesAndAuto) {
  EXPECT_TRUE(ValidateEngineName("auto").ok());
  EXPECT_TRUE(ValidateEngineName("thread_pool").ok());
  EXPECT_EQ(ValidateEngineName("fast").code(), absl::StatusCode::kInvalidArgument);
  const std::string dir = TempDir();
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  auto pool = BufferPool::Create(1, 4096);
  EngineOptions options;
  options.root_fd = fd;
  options.pool = pool->get();
  auto engine = StartEngine("auto", options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  const std::vector<std::string> available = AvailableEngines(options);
  ASSERT_FALSE(available.empty());
  // auto picks the most preferred engine that can run.
  EXPECT_EQ(BackendName((*engine)->info().backend), available.front());
  EXPECT_EQ(StartEngine("fast", options).status().code(), absl::StatusCode::kInvalidArgument);
  engine->reset();
  close(fd);
}

}  // namespace
}  // namespace ringstore::storage
