// The store's test fixture (store_*_test.cc): a fresh root, a Store on the
// engine named by the test parameter (every engine of engine_list.h; one
// that cannot start here is skipped with its reason), and one blocking
// helper per store operation. Test-only; header-only.
#ifndef RINGSTORE_STORAGE_STORE_TEST_UTIL_H_
#define RINGSTORE_STORAGE_STORE_TEST_UTIL_H_

#include <dirent.h>
#include <sys/stat.h>

#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "storage/engine/engine_selector.h"
#include "storage/engine/engine_test_fixture.h"
#include "storage/engine/fault_injection.h"
#include "storage/engine/sync.h"
#include "storage/store.h"

namespace ringstore::storage {

inline constexpr size_t kBuffer = 64 << 10;

inline std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

inline bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// The backend the current test's store runs on (StoreTest's parameter).
inline Backend expected_backend = Backend::kUnspecified;

// Runs an async call and waits for its one callback.
template <typename T>
absl::StatusOr<T> Await(const std::function<void(Engine::Callback<T>)>& call) {
  Notification done;
  absl::StatusOr<T> result = absl::UnknownError("unset");
  int calls = 0;
  call([&](absl::StatusOr<T> r, Backend b) {
    ++calls;
    EXPECT_EQ(b, expected_backend);
    result = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_EQ(calls, 1);
  return result;
}

inline absl::Status AwaitStatus(const std::function<void(Engine::DoneCallback)>& call) {
  Notification done;
  absl::Status result;
  call([&](absl::Status s, Backend) {
    result = std::move(s);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

// The namespace on every engine: instantiate in each test file with
//   INSTANTIATE_TEST_SUITE_P(AllEngines, StoreTest, testing::ValuesIn(EngineNames()),
//                            EngineParamName);
class StoreTest : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (absl::Status s = EngineStartsHere(GetParam()); !s.ok()) {
      GTEST_SKIP() << GetParam() << " cannot run here: " << s;
    }
    base_ = TempDir();
    root_ = base_ + "/data";
    OpenStore();
  }

  void OpenStore(int64_t max_file_bytes = 0, FaultInjector* faults = nullptr,
                 int64_t max_store_bytes = 0, size_t buffer_size = kBuffer) {
    store_.reset();
    StoreOptions options;
    options.root = root_;
    options.engine = GetParam();
    options.buffer_count = 8;
    options.buffer_size = buffer_size;
    options.max_file_bytes = max_file_bytes;
    options.max_store_bytes = max_store_bytes;
    options.faults = faults;
    auto store = Store::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    expected_backend = store_->engine().info().backend;
    ASSERT_EQ(BackendName(expected_backend), GetParam());
  }

  absl::StatusOr<std::unique_ptr<Writer>> NewWriter(WriteSpec spec) {
    return Await<std::unique_ptr<Writer>>(
        [&](auto cb) { store_->CreateWriter(std::move(spec), std::move(cb)); });
  }

  absl::Status Append(Writer& w, const std::string& data) {
    return AwaitStatus([&](auto cb) { w.Append(data, std::move(cb)); });
  }

  absl::StatusOr<ObjectInfo> Commit(Writer& w) {
    return Await<ObjectInfo>([&](auto cb) { w.Commit(std::move(cb)); });
  }

  // Uploads `data` in pieces of `piece` bytes.
  absl::StatusOr<ObjectInfo> Put(WriteSpec spec, const std::string& data,
                                 size_t piece = 100000) {
    auto w = NewWriter(std::move(spec));
    if (!w.ok()) return w.status();
    for (size_t off = 0; off < data.size(); off += piece) {
      absl::Status s = Append(**w, data.substr(off, piece));
      if (!s.ok()) return s;
    }
    return Commit(**w);
  }

  absl::StatusOr<ObjectInfo> Put(const std::string& path, const std::string& data) {
    WriteSpec spec;
    spec.path = path;
    return Put(spec, data);
  }

  absl::StatusOr<ObjectInfo> Stat(const std::string& path) {
    return Await<ObjectInfo>([&](auto cb) { store_->Stat(path, std::move(cb)); });
  }

  absl::Status Delete(const std::string& path, std::optional<int64_t> gen = std::nullopt) {
    return AwaitStatus([&](auto cb) { store_->Delete(path, gen, std::move(cb)); });
  }

  absl::StatusOr<std::unique_ptr<Reader>> OpenReader(const std::string& path) {
    return Await<std::unique_ptr<Reader>>(
        [&](auto cb) { store_->OpenReader(path, std::move(cb)); });
  }

  // Reads all of `reader` through pool-sized reads.
  std::string ReadAll(Reader& reader) {
    std::string out;
    PooledBuffer buf = store_->pool().TryAcquire();
    for (int64_t off = 0;; off += kBuffer) {
      auto n = Await<size_t>([&](auto cb) {
        reader.Read(off, absl::Span<char>(buf.data(), kBuffer), nullptr, std::move(cb));
      });
      EXPECT_TRUE(n.ok()) << n.status();
      if (!n.ok()) break;
      out.append(buf.data(), *n);
      if (*n < kBuffer) break;
    }
    return out;
  }

  absl::StatusOr<ListResult> List(ListOptions options) {
    return Await<ListResult>([&](auto cb) { store_->List(std::move(options), std::move(cb)); });
  }

  // Temp data of plain uploads: the files in .ringstore/tmp and in the
  // servers' directories there, not the servers' lock files.
  std::vector<std::string> TempFiles() { return TempFilesOf(root_); }

  static std::vector<std::string> TempFilesOf(const std::string& root) {
    std::vector<std::string> out;
    const std::string tmp = root + "/.ringstore/tmp";
    if (DIR* d = opendir(tmp.c_str())) {
      while (dirent* e = readdir(d)) {
        const std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        struct stat st;
        if (lstat((tmp + "/" + name).c_str(), &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
          if (DIR* sub = opendir((tmp + "/" + name).c_str())) {
            while (dirent* f = readdir(sub)) {
              const std::string file = f->d_name;
              if (file != "." && file != "..") out.push_back(name + "/" + file);
            }
            closedir(sub);
          }
        } else if (name.size() < 5 || name.compare(name.size() - 5, 5, ".lock") != 0) {
          out.push_back(name);
        }
      }
      closedir(d);
    }
    return out;
  }

  // Temp data is discarded asynchronously: poll for it to go.
  bool TempEmpties() {
    for (int i = 0; i < 200; ++i) {
      if (TempFiles().empty()) return true;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return false;
  }

  void ExpectAbsent(const std::string& path) {
    EXPECT_EQ(Stat(path).status().code(), absl::StatusCode::kNotFound) << path;
    EXPECT_FALSE(Exists(root_ + "/" + path)) << path;
    EXPECT_TRUE(TempEmpties());
  }

  std::string base_, root_;
  // Declared before store_, whose engine may use it until it is destroyed.
  FaultInjector faults_;
  std::unique_ptr<Store> store_;
};

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_STORE_TEST_UTIL_H_
