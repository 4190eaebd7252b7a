// The test fixture of the engine suites (engine_contract_test.cc,
// engine_fault_test.cc): a fresh root with a sibling directory outside it,
// a small buffer pool, the engine named by the test parameter, and one
// blocking helper per engine operation. Test-only; header-only.
#ifndef RINGSTORE_STORAGE_ENGINE_ENGINE_TEST_FIXTURE_H_
#define RINGSTORE_STORAGE_ENGINE_ENGINE_TEST_FIXTURE_H_

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
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
#include "gtest/gtest.h"
#include "storage/engine/buffer_pool.h"
#include "storage/engine/engine.h"
#include "storage/engine/engine_selector.h"
#include "storage/engine/fault_injection.h"
#include "storage/engine/sync.h"

namespace ringstore::storage {

// The suites run on every engine of AllEngines() (engine_list.h), each
// instantiation named after its engine:
//   INSTANTIATE_TEST_SUITE_P(AllEngines, MyTest, testing::ValuesIn(EngineNames()),
//                            EngineParamName);
// An engine that cannot start here is skipped with its reason, never passed.
inline std::string EngineParamName(const testing::TestParamInfo<std::string>& p) {
  return p.param;
}

// A parameter may also name a variant of an engine: "io_uring_sqpoll" is
// the io_uring engine with SQPOLL, skipped with the kernel's reason where
// it refuses SQPOLL.
inline constexpr char kSqpollVariant[] = "io_uring_sqpoll";
inline constexpr int kTestSqpollIdleMs = 50;
// The engine a parameter names.
inline std::string EngineOfParam(const std::string& param) {
  return param == kSqpollVariant ? "io_uring" : param;
}
// Every engine and the variants.
inline std::vector<std::string> EngineVariants() {
  std::vector<std::string> names = EngineNames();
  names.push_back(kSqpollVariant);
  return names;
}

// ReadFile options with `cancel` and the metadata attribute.
inline ReadFileOptions WithCancel(Cancellation* cancel) {
  ReadFileOptions options;
  options.cancel = cancel;
  return options;
}

inline std::string TempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string tmpl = absl::StrCat(base ? base : "/tmp", "/engine-XXXXXX");
  char* dir = mkdtemp(tmpl.data());
  EXPECT_NE(dir, nullptr);
  return tmpl;
}

// OK if the engine `name` starts here (started once, on a scratch root,
// and stopped again), else its error: a test that needs it skips with that.
inline absl::Status EngineStartsHere(const std::string& name) {
  const std::string dir = TempDir();
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("open ", dir, ": ", strerror(errno)));
  absl::Status status;
  {
    auto pool = BufferPool::Create(1, 4096);
    if (!pool.ok()) {
      status = pool.status();
    } else {
      EngineOptions options;
      options.root_fd = fd;
      options.pool = pool->get();
      status = StartSingleEngine(name, options).status();
    }
  }
  close(fd);
  return status;
}

inline void WriteLocal(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}

inline std::string ReadLocal(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Pages of the file at `path` in the page cache (mincore over a mapping of
// it), or -1 if that cannot be told.
inline int64_t CachedPages(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st;
  int64_t pages = -1;
  if (fstat(fd, &st) == 0 && st.st_size > 0) {
    void* map = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
    if (map != MAP_FAILED) {
      const long page = sysconf(_SC_PAGESIZE);
      std::vector<unsigned char> in_core(static_cast<size_t>((st.st_size + page - 1) / page));
      if (mincore(map, static_cast<size_t>(st.st_size), in_core.data()) == 0) {
        pages = std::count_if(in_core.begin(), in_core.end(),
                              [](unsigned char c) { return (c & 1) != 0; });
      }
      munmap(map, static_cast<size_t>(st.st_size));
    }
  } else if (fstat(fd, &st) == 0) {
    pages = 0;
  }
  close(fd);
  return pages;
}

// Writes the file at `path` back and drops it from the page cache; false
// if it stays there (a file system in memory, say).
inline bool Evict(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool dropped = fdatasync(fd) == 0 && posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0;
  close(fd);
  return dropped && CachedPages(path) == 0;
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
  Notification done_;
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
  Notification done_;
  absl::Status status_;
  Backend backend_ = Backend::kUnspecified;
};

class EngineTest : public testing::TestWithParam<std::string> {
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
    auto engine = StartSingleEngine(engine_name(), Options());
    if (!engine.ok()) GTEST_SKIP() << GetParam() << " cannot run here: " << engine.status();
    engine_ = *std::move(engine);
    backend_ = engine_->info().backend;
    ASSERT_EQ(BackendName(backend_), engine_name());
    if (GetParam() == kSqpollVariant) {
      const std::vector<std::string> f = engine_->info().features;
      if (std::find(f.begin(), f.end(), "sqpoll") == f.end()) {
        for (const std::string& s : f) {
          if (s.rfind("sqpoll=", 0) == 0) GTEST_SKIP() << "the kernel refuses SQPOLL: " << s;
        }
        FAIL() << "SQPOLL neither on nor refused";
      }
    }
  }

  // The engine under test (EngineOfParam).
  std::string engine_name() const { return EngineOfParam(GetParam()); }

  EngineOptions Options() {
    EngineOptions options;
    options.root_fd = root_fd_;
    options.pool = pool_.get();
    if (GetParam() == kSqpollVariant) options.io_uring_sqpoll_idle_ms = kTestSqpollIdleMs;
    return options;
  }

  // Replaces the engine by one that consults faults_. Returns the reason
  // (for GTEST_SKIP) if the engine cannot inject faults here, else "".
  std::string RestartWithFaults() {
    engine_.reset();
    EngineOptions options = Options();
    options.faults = &faults_;
    auto engine = StartSingleEngine(engine_name(), options);
    if (!engine.ok()) return engine.status().ToString();
    engine_ = *std::move(engine);
    return "";
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
    engine_->Read(f, offset, absl::Span<char>(b.data(), n), nullptr, w.callback());
    auto r = w.Wait();
    EXPECT_EQ(w.backend(), backend_);
    if (!r.ok()) return r.status();
    return std::string(b.data(), *r);
  }
  absl::Status Truncate(FileHandle f, int64_t size) {
    StatusWaiter w;
    engine_->Truncate(f, size, w.callback());
    return w.Wait();
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
  // Declared before engine_, which may use it until it is destroyed.
  FaultInjector faults_;
  std::unique_ptr<Engine> engine_;
  Backend backend_ = Backend::kUnspecified;
};

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_ENGINE_ENGINE_TEST_FIXTURE_H_
