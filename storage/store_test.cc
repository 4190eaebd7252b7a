#include "storage/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <fstream>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "third_party/system/crc32c.h"
#include "storage/engine/fault_injection.h"
#include "storage/metadata_cache.h"
#include "storage/engine/sync.h"

namespace ringstore::storage {
namespace {

constexpr size_t kBuffer = 64 << 10;

std::string TempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string tmpl = absl::StrCat(base ? base : "/tmp", "/store-XXXXXX");
  EXPECT_NE(mkdtemp(tmpl.data()), nullptr);
  return tmpl;
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

std::string ReadLocal(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// The backend the current test's store runs on (StoreTest's parameter).
Backend expected_backend = Backend::kUnspecified;

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

absl::Status AwaitStatus(const std::function<void(Engine::DoneCallback)>& call) {
  Notification done;
  absl::Status result;
  call([&](absl::Status s, Backend) {
    result = std::move(s);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

// The namespace on every engine.
class StoreTest : public testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    base_ = TempDir();
    root_ = base_ + "/data";
    StoreOptions probe;
    probe.root = root_;
    probe.engine = GetParam();
    auto store = Store::Open(probe);
    if (!store.ok() && store.status().code() == absl::StatusCode::kUnimplemented) {
      GTEST_SKIP() << GetParam() << " cannot run here: " << store.status();
    }
    store->reset();
    OpenStore();
  }

  void OpenStore(int64_t max_file_bytes = 0, FaultInjector* faults = nullptr) {
    store_.reset();
    StoreOptions options;
    options.root = root_;
    options.engine = GetParam();
    options.buffer_count = 8;
    options.buffer_size = kBuffer;
    options.max_file_bytes = max_file_bytes;
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

  std::vector<std::string> TempFiles() {
    std::vector<std::string> out;
    if (DIR* d = opendir((root_ + "/.ringstore/tmp").c_str())) {
      while (dirent* e = readdir(d)) {
        if (e->d_name[0] != '.') out.push_back(e->d_name);
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

TEST_P(StoreTest, RoundTripsOfEverySize) {
  for (size_t size : {size_t{0}, size_t{1}, kBuffer - 1, kBuffer, kBuffer + 1, 5 * kBuffer + 17}) {
    const std::string data = RandomBytes(size, static_cast<uint32_t>(size));
    const std::string path = absl::StrCat("rt/", size);
    auto info = Put(path, data);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->path, path);
    EXPECT_EQ(info->size, static_cast<int64_t>(size));
    EXPECT_EQ(info->crc32c, Crc32c(data));
    EXPECT_GT(info->generation, 0);
    EXPECT_EQ(ReadLocal(root_ + "/" + path), data);
    auto st = Stat(path);
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->size, info->size);
    EXPECT_EQ(st->generation, info->generation);
    EXPECT_EQ(st->crc32c, info->crc32c);
    EXPECT_EQ(st->modified, info->modified);
    auto reader = OpenReader(path);
    ASSERT_TRUE(reader.ok());
    EXPECT_EQ((*reader)->info().generation, info->generation);
    EXPECT_EQ(ReadAll(**reader), data);
  }
  EXPECT_TRUE(TempEmpties());
}

TEST_P(StoreTest, AppendsOfOddSizes) {
  const std::string data = RandomBytes(3 * kBuffer + 1000, 9);
  WriteSpec spec;
  spec.path = "odd";
  spec.size = static_cast<int64_t>(data.size());
  spec.crc32c = Crc32c(data);
  for (size_t piece : {size_t{997}, size_t{4097}, kBuffer + 3}) {
    auto info = Put(spec, data, piece);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(ReadLocal(root_ + "/odd"), data);
  }
  // Byte by byte (a shorter file: every byte is one engine write).
  const std::string small = data.substr(0, 3000);
  WriteSpec bytes;
  bytes.path = "bytes";
  auto info = Put(bytes, small, 1);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(ReadLocal(root_ + "/bytes"), small);
}

TEST_P(StoreTest, GenerationsIncrease) {
  auto a = Put("g", "1");
  auto b = Put("g", "2");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_GT(b->generation, a->generation);
  ASSERT_TRUE(Delete("g").ok());
  auto c = Put("g", "3");
  ASSERT_TRUE(c.ok());
  EXPECT_GT(c->generation, b->generation);
}

TEST_P(StoreTest, Preconditions) {
  auto first = Put("p", "first");
  ASSERT_TRUE(first.ok());
  WriteSpec spec;
  spec.path = "p";
  spec.if_generation_match = 0;
  EXPECT_EQ(Put(spec, "second").status().code(), absl::StatusCode::kAlreadyExists);
  spec.if_generation_match = first->generation + 1;
  EXPECT_EQ(Put(spec, "third").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReadLocal(root_ + "/p"), "first");
  EXPECT_TRUE(TempEmpties());
  spec.if_generation_match = first->generation;
  EXPECT_TRUE(Put(spec, "fourth").ok());
  EXPECT_EQ(ReadLocal(root_ + "/p"), "fourth");
  spec.path = "fresh";
  spec.if_generation_match = 0;
  EXPECT_TRUE(Put(spec, "new").ok());
  spec.path = "fresh2";
  spec.if_generation_match = 5;
  EXPECT_EQ(Put(spec, "x").status().code(), absl::StatusCode::kFailedPrecondition);
  ExpectAbsent("fresh2");
}

TEST_P(StoreTest, DeclaredSizeAndChecksum) {
  WriteSpec spec;
  spec.path = "s";
  spec.size = 10;
  EXPECT_EQ(Put(spec, "short").status().code(), absl::StatusCode::kInvalidArgument);
  ExpectAbsent("s");
  EXPECT_EQ(Put(spec, "much too long").status().code(), absl::StatusCode::kInvalidArgument);
  ExpectAbsent("s");
  spec.size = 0;
  spec.crc32c = Crc32c("data") ^ 1;
  EXPECT_EQ(Put(spec, "data").status().code(), absl::StatusCode::kDataLoss);
  ExpectAbsent("s");
  spec.size = -1;
  EXPECT_EQ(NewWriter(spec).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(StoreTest, MaxFileBytes) {
  OpenStore(/*max_file_bytes=*/100);
  WriteSpec spec;
  spec.path = "big";
  spec.size = 101;
  EXPECT_EQ(NewWriter(spec).status().code(), absl::StatusCode::kResourceExhausted);
  spec.size = 0;
  EXPECT_EQ(Put(spec, std::string(101, 'x')).status().code(),
            absl::StatusCode::kResourceExhausted);
  ExpectAbsent("big");
  EXPECT_TRUE(Put(spec, std::string(100, 'x')).ok());
}

TEST_P(StoreTest, DeadWriterRefusesFurtherCalls) {
  WriteSpec spec;
  spec.path = "dead";
  spec.size = 2;
  auto w = NewWriter(spec);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(Append(**w, "abc").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Append(**w, "a").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Commit(**w).status().code(), absl::StatusCode::kFailedPrecondition);
  ExpectAbsent("dead");
}

TEST_P(StoreTest, AbandonedWriterLeavesNothing) {
  {
    WriteSpec spec;
    spec.path = "abandoned";
    auto w = NewWriter(spec);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(Append(**w, RandomBytes(3 * kBuffer, 1)).ok());
    EXPECT_EQ(TempFiles().size(), 1u);
  }
  ExpectAbsent("abandoned");
}

// An upload abandoned with its writes still in flight, and the store shut
// down at once: the store must wait for the writes (under ASan a write
// completing into a destroyed store fails this test).
TEST_P(StoreTest, ShutdownRightAfterAnAbandonedUpload) {
  for (int i = 0; i < 20; ++i) {
    {
      WriteSpec spec;
      spec.path = "gone";
      auto w = NewWriter(spec);
      ASSERT_TRUE(w.ok());
      ASSERT_TRUE(Append(**w, RandomBytes(3 * kBuffer + 5, i)).ok());
    }
    store_.reset();
    OpenStore();  // removes what a crash would have left
    EXPECT_TRUE(TempEmpties());
  }
  ExpectAbsent("gone");
}

// The kernel fails one step of an upload over an existing file: the old
// file stays as it was, nothing new is visible, the temp data goes, and the
// status says what failed.
TEST_P(StoreTest, AFailedStepLeavesTheOldFile) {
  OpenStore(0, &faults_);
  struct Case {
    Step step;
    int err;
    int every;
    absl::StatusCode code;
  };
  const Case cases[] = {
      {Step::kWrite, EIO, 2, absl::StatusCode::kInternal},           // mid-upload
      {Step::kSetXattr, ENOSPC, 1, absl::StatusCode::kResourceExhausted},
      {Step::kFsync, EIO, 1, absl::StatusCode::kInternal},           // the file's
      {Step::kRename, EIO, 1, absl::StatusCode::kInternal},
      {Step::kStat, EIO, 1, absl::StatusCode::kInternal},            // the check
  };
  const std::string old_data = RandomBytes(kBuffer + 7, 1);
  auto old = Put("dir/f", old_data);
  ASSERT_TRUE(old.ok()) << old.status();
  for (const Case& c : cases) {
    SCOPED_TRACE(StepName(c.step));
    faults_.Clear();
    faults_.Fail(c.step, c.err, c.every, 1);
    WriteSpec spec;
    spec.path = "dir/f";
    auto put = Put(spec, RandomBytes(3 * kBuffer, 2), kBuffer);
    EXPECT_EQ(put.status().code(), c.code) << put.status();
    EXPECT_EQ(faults_.injected(c.step), 1);
    faults_.Clear();
    auto st = Stat("dir/f");
    ASSERT_TRUE(st.ok()) << st.status();
    EXPECT_EQ(st->generation, old->generation);
    EXPECT_EQ(ReadLocal(root_ + "/dir/f"), old_data);
    EXPECT_TRUE(TempEmpties());
  }
  // A directory the commit must create cannot be: nothing appears.
  faults_.Fail(Step::kMkdir, EACCES, 1, 1);
  EXPECT_EQ(Put("new/dir/f", "x").status().code(), absl::StatusCode::kPermissionDenied);
  faults_.Clear();
  ExpectAbsent("new/dir/f");
  // And with no fault the same upload goes through.
  ASSERT_TRUE(Put("dir/f", "new").ok());
  EXPECT_EQ(ReadLocal(root_ + "/dir/f"), "new");
}

// Every size around the direct-write alignment and the buffer size, sent
// in pieces smaller than, equal to and larger than both, with the size
// declared (small ones stay buffered) or not (written past the page cache
// with a padded, truncated tail): the committed file is exactly the data.
TEST_P(StoreTest, UploadsOfEverySizeAndPieceRoundTrip) {
  const size_t a = kDirectAlignment;
  const size_t sizes[] = {0, 1, a - 1, a, a + 1, kBuffer - 1, kBuffer, kBuffer + 1,
                          3 * kBuffer + a + 3};
  const size_t pieces[] = {1000, a, kBuffer, 3 * kBuffer};
  int n = 0;
  for (size_t size : sizes) {
    for (size_t piece : pieces) {
      for (bool declared : {false, true}) {
        SCOPED_TRACE(absl::StrCat("size ", size, " piece ", piece, " declared ", declared));
        const std::string data = RandomBytes(size, static_cast<uint32_t>(++n));
        WriteSpec spec;
        spec.path = absl::StrCat("sizes/", n);
        if (declared) spec.size = static_cast<int64_t>(size);
        auto info = Put(spec, data, piece);
        ASSERT_TRUE(info.ok()) << info.status();
        EXPECT_EQ(info->size, static_cast<int64_t>(size));
        EXPECT_EQ(info->crc32c, Crc32c(data));
        EXPECT_EQ(ReadLocal(root_ + "/" + spec.path), data);
      }
    }
  }
  EXPECT_TRUE(TempEmpties());
}

// The tail of an upload of unknown size (a padded write, then a truncate)
// fails: nothing is committed, the old file stays, the temp data goes.
TEST_P(StoreTest, AFailedTailLeavesTheOldFile) {
  OpenStore(0, &faults_);
  const std::string old_data = RandomBytes(100, 1);
  auto old = Put("f", old_data);
  ASSERT_TRUE(old.ok()) << old.status();
  for (Step step : {Step::kTruncate, Step::kWrite}) {
    SCOPED_TRACE(StepName(step));
    faults_.Clear();
    // The 3rd write is the tail's: two full buffers come first.
    faults_.Fail(step, EIO, step == Step::kWrite ? 3 : 1, 1);
    WriteSpec spec;
    spec.path = "f";
    auto put = Put(spec, RandomBytes(2 * kBuffer + 10, 2), kBuffer);
    EXPECT_EQ(put.status().code(), absl::StatusCode::kInternal) << put.status();
    EXPECT_EQ(faults_.injected(step), 1);
    faults_.Clear();
    EXPECT_EQ(ReadLocal(root_ + "/f"), old_data);
    EXPECT_TRUE(TempEmpties());
  }
}

TEST_P(StoreTest, NestedDirectoriesAndConflicts) {
  ASSERT_TRUE(Put("a/b/c/file", "deep").ok());
  EXPECT_EQ(ReadLocal(root_ + "/a/b/c/file"), "deep");
  ASSERT_TRUE(Put("a/b/other", "x").ok());
  EXPECT_EQ(Put("a/b/c/file/below", "x").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Put("a/b", "x").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(TempEmpties());
  EXPECT_EQ(Stat("a/b").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(OpenReader("a/b").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Delete("a/b").code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Exists(root_ + "/a/b/c/file"));
}

TEST_P(StoreTest, InvalidPathsAreRejected) {
  for (const char* bad : {"", "../x", "/abs", "a//b", ".ringstore/tmp/x", "a/./b"}) {
    EXPECT_EQ(Stat(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(Delete(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(OpenReader(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
    WriteSpec spec;
    spec.path = bad;
    EXPECT_EQ(NewWriter(spec).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  ListOptions list;
  list.prefix = "../";
  EXPECT_EQ(List(list).status().code(), absl::StatusCode::kInvalidArgument);
  list.prefix = "";
  list.delimiter = ",";
  EXPECT_EQ(List(list).status().code(), absl::StatusCode::kInvalidArgument);
  list.delimiter = "";
  list.page_size = -1;
  EXPECT_EQ(List(list).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(StoreTest, ReaderIsASnapshot) {
  const std::string old_data = RandomBytes(2 * kBuffer + 5, 1);
  ASSERT_TRUE(Put("snap", old_data).ok());
  auto reader = OpenReader("snap");
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE(Put("snap", "new").ok());
  ASSERT_TRUE(Delete("snap").ok());
  EXPECT_EQ(ReadAll(**reader), old_data);
  EXPECT_EQ((*reader)->info().size, static_cast<int64_t>(old_data.size()));
}

TEST_P(StoreTest, ConcurrentCommitsOfOnePath) {
  constexpr int kWriters = 8;
  std::vector<std::string> contents;
  for (int i = 0; i < kWriters; ++i) contents.push_back(RandomBytes(kBuffer * 2 + i, 100 + i));
  std::vector<absl::StatusOr<ObjectInfo>> results(kWriters, absl::UnknownError("unset"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kWriters; ++i) {
    threads.emplace_back([&, i] { results[i] = Put("same", contents[i]); });
  }
  for (auto& t : threads) t.join();
  std::set<int64_t> generations;
  int64_t newest = 0;
  int newest_index = -1;
  for (int i = 0; i < kWriters; ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].status();
    generations.insert(results[i]->generation);
    if (results[i]->generation > newest) {
      newest = results[i]->generation;
      newest_index = i;
    }
  }
  EXPECT_EQ(generations.size(), static_cast<size_t>(kWriters));
  // The visible file is whole, and it is the last commit.
  EXPECT_EQ(ReadLocal(root_ + "/same"), contents[newest_index]);
  EXPECT_EQ(Stat("same")->generation, newest);
  EXPECT_TRUE(TempEmpties());
}

TEST_P(StoreTest, Delete) {
  EXPECT_EQ(Delete("none").code(), absl::StatusCode::kNotFound);
  auto info = Put("d", "x");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(Delete("d", info->generation + 1).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Exists(root_ + "/d"));
  EXPECT_TRUE(Delete("d", info->generation).ok());
  EXPECT_EQ(Stat("d").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(Exists(root_ + "/d"));
}

std::vector<std::string> Paths(const ListResult& r) {
  std::vector<std::string> out;
  for (const ObjectInfo& f : r.files) out.push_back(f.path);
  return out;
}

TEST_P(StoreTest, ListSortedWithPrefixes) {
  for (const char* p : {"dish", "dir/x", "dir/y/z", "b", "a.txt", "a/b", "dirt"}) {
    ASSERT_TRUE(Put(p, p).ok());
  }
  ASSERT_EQ(mkdir((root_ + "/empty").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((root_ + "/dir/emptytoo").c_str(), 0755), 0);
  ListOptions all;
  auto r = List(all);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Paths(*r), (std::vector<std::string>{"a.txt", "a/b", "b", "dir/x", "dir/y/z", "dirt",
                                                  "dish"}));
  EXPECT_TRUE(r->prefixes.empty());
  EXPECT_TRUE(r->next_page_token.empty());
  for (const ObjectInfo& f : r->files) {
    EXPECT_EQ(f.size, static_cast<int64_t>(f.path.size()));
    EXPECT_EQ(f.crc32c, Crc32c(f.path));
  }
  ListOptions di;
  di.prefix = "di";
  EXPECT_EQ(Paths(*List(di)), (std::vector<std::string>{"dir/x", "dir/y/z", "dirt", "dish"}));
  ListOptions dir;
  dir.prefix = "dir/";
  EXPECT_EQ(Paths(*List(dir)), (std::vector<std::string>{"dir/x", "dir/y/z"}));
  ListOptions top;
  top.delimiter = "/";
  auto t = List(top);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(Paths(*t), (std::vector<std::string>{"a.txt", "b", "dirt", "dish"}));
  EXPECT_EQ(t->prefixes, (std::vector<std::string>{"a/", "dir/"}));
  dir.delimiter = "/";
  auto d = List(dir);
  EXPECT_EQ(Paths(*d), (std::vector<std::string>{"dir/x"}));
  EXPECT_EQ(d->prefixes, (std::vector<std::string>{"dir/y/"}));
  ListOptions none;
  none.prefix = "nothing/here/";
  auto n = List(none);
  ASSERT_TRUE(n.ok());
  EXPECT_TRUE(n->files.empty());
}

TEST_P(StoreTest, ListPaging) {
  std::vector<std::string> want;
  for (int i = 0; i < 7; ++i) {
    want.push_back(absl::StrCat("page/f", i));
    ASSERT_TRUE(Put(want.back(), "x").ok());
  }
  std::vector<std::string> got;
  ListOptions o;
  o.prefix = "page/";
  o.page_size = 2;
  int pages = 0;
  do {
    auto r = List(o);
    ASSERT_TRUE(r.ok());
    EXPECT_LE(r->files.size(), 2u);
    for (auto& p : Paths(*r)) got.push_back(p);
    o.page_token = r->next_page_token;
    ++pages;
  } while (!o.page_token.empty());
  EXPECT_EQ(got, want);
  EXPECT_EQ(pages, 4);

  // Files and prefixes page together.
  ASSERT_TRUE(Put("page/sub/a", "x").ok());
  ASSERT_TRUE(Put("page/sub/b", "x").ok());
  ListOptions d;
  d.prefix = "page/";
  d.delimiter = "/";
  d.page_size = 3;
  std::vector<std::string> entries;
  do {
    auto r = List(d);
    ASSERT_TRUE(r.ok());
    EXPECT_LE(r->files.size() + r->prefixes.size(), 3u);
    for (auto& p : Paths(*r)) entries.push_back(p);
    for (auto& p : r->prefixes) entries.push_back(p);
    d.page_token = r->next_page_token;
  } while (!d.page_token.empty());
  std::vector<std::string> expected = want;
  expected.push_back("page/sub/");
  std::sort(entries.begin(), entries.end());
  EXPECT_EQ(entries, expected);
}

TEST_P(StoreTest, OpenRemovesCrashLeftovers) {
  const std::string tmp = root_ + "/.ringstore/tmp/leftover";
  std::ofstream(tmp) << "partial";
  ASSERT_TRUE(Exists(tmp));
  OpenStore();
  EXPECT_FALSE(Exists(tmp));
  ListOptions all;
  EXPECT_TRUE(List(all)->files.empty());
}

TEST_P(StoreTest, SymlinksDoNotLeaveTheRoot) {
  const std::string outside = base_ + "/outside";
  ASSERT_EQ(mkdir(outside.c_str(), 0755), 0);
  std::ofstream(outside + "/x") << "secret";
  ASSERT_EQ(symlink(outside.c_str(), (root_ + "/evil").c_str()), 0);
  ASSERT_EQ(symlink((outside + "/x").c_str(), (root_ + "/link").c_str()), 0);
  EXPECT_FALSE(Stat("evil/x").ok());
  EXPECT_FALSE(OpenReader("evil/x").ok());
  EXPECT_FALSE(OpenReader("link").ok());
  EXPECT_FALSE(Stat("link").ok());
  EXPECT_FALSE(Delete("evil/x").ok());
  EXPECT_FALSE(Put("evil/new", "x").ok());
  EXPECT_FALSE(Put("evil/sub/new", "x").ok());
  EXPECT_EQ(ReadLocal(outside + "/x"), "secret");
  EXPECT_FALSE(Exists(outside + "/new"));
  EXPECT_FALSE(Exists(outside + "/sub"));
  ListOptions all;
  EXPECT_TRUE(List(all)->files.empty());
  EXPECT_TRUE(TempEmpties());
}

TEST_P(StoreTest, ReadSmallReturnsWholeFilesThatFit) {
  auto read = [&](const std::string& path, size_t cap) {
    PooledBuffer buf = store_->pool().TryAcquire();
    auto r = Await<Store::SmallRead>([&](auto cb) {
      store_->ReadSmall(path, absl::Span<char>(buf.data(), cap), nullptr, std::move(cb));
    });
    std::string data = r.ok() && r->complete ? std::string(buf.data(), r->info.size) : "";
    return std::make_pair(r, data);
  };
  const std::string data = RandomBytes(1000, 3);
  auto info = Put("small/one", data);
  ASSERT_TRUE(info.ok());
  auto [r, got] = read("small/one", kBuffer);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->complete);
  EXPECT_EQ(got, data);
  EXPECT_EQ(r->info.path, "small/one");
  EXPECT_EQ(r->info.size, 1000);
  EXPECT_EQ(r->info.generation, info->generation);
  EXPECT_EQ(r->info.crc32c, info->crc32c);
  EXPECT_EQ(r->info.modified, info->modified);
  // Exactly the buffer: complete, the metadata vouches for the size.
  ASSERT_TRUE(Put("small/exact", std::string(1000, 'x')).ok());
  EXPECT_TRUE(read("small/exact", 1000).first->complete);
  // Larger than the buffer: not complete.
  EXPECT_FALSE(read("small/one", 999).first->complete);
  ASSERT_TRUE(Put("small/empty", "").ok());
  auto empty = read("small/empty", kBuffer);
  ASSERT_TRUE(empty.first.ok());
  EXPECT_TRUE(empty.first->complete);
  EXPECT_EQ(empty.first->info.size, 0);
  // Placed by hand (no metadata) or changed behind the store's back: the
  // size cannot be vouched for.
  std::ofstream(root_ + "/small/manual") << "hand";
  EXPECT_FALSE(read("small/manual", kBuffer).first->complete);
  truncate((root_ + "/small/one").c_str(), 10);
  EXPECT_FALSE(read("small/one", kBuffer).first->complete);
  EXPECT_EQ(read("small/none", kBuffer).first.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(read("small", kBuffer).first.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(read("../x", kBuffer).first.status().code(), absl::StatusCode::kInvalidArgument);
}

// A small download of a file the store has committed skips reading its
// metadata attribute, but only while the bytes match what it remembers.
TEST_P(StoreTest, ReadSmallTrustsRememberedMetadataOnlyForTheSameBytes) {
  auto read = [&](const std::string& path) {
    PooledBuffer buf = store_->pool().TryAcquire();
    auto r = Await<Store::SmallRead>([&](auto cb) {
      store_->ReadSmall(path, absl::Span<char>(buf.data(), kBuffer), nullptr, std::move(cb));
    });
    std::string data = r.ok() && r->complete ? std::string(buf.data(), r->info.size) : "";
    return std::make_pair(r, data);
  };
  OpenStore(0, &faults_);
  auto first = Put("k/f", "first version");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(store_->metadata().Lookup("k/f")->generation, first->generation);
  auto second = Put("k/f", "second version!");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(store_->metadata().Lookup("k/f")->generation, second->generation);
  // The attribute is not read at all: failing every attribute read does
  // not fail the download.
  faults_.Fail(Step::kGetXattr, EIO);
  auto [r, got] = read("k/f");
  faults_.Clear();
  ASSERT_TRUE(r.ok() && r->complete) << r.status();
  EXPECT_EQ(got, "second version!");
  EXPECT_EQ(r->info.generation, second->generation);
  EXPECT_EQ(r->info.crc32c, Crc32c("second version!"));
  // Changed by hand behind the store's back, same size: the bytes no longer
  // match what it remembers, so it reads the attribute again and sends what
  // is there now.
  {
    std::fstream f(root_ + "/k/f", std::ios::in | std::ios::out | std::ios::binary);
    f << "SECOND";
  }
  auto [changed, now] = read("k/f");
  ASSERT_TRUE(changed.ok() && changed->complete);
  EXPECT_EQ(now, "SECOND version!");
  // Deleted: forgotten.
  ASSERT_TRUE(Delete("k/f").ok());
  EXPECT_FALSE(store_->metadata().Lookup("k/f").has_value());
  EXPECT_EQ(read("k/f").first.status().code(), absl::StatusCode::kNotFound);
  // A file the store has not seen is learnt on its first small read.
  std::string data = RandomBytes(500, 5);
  ASSERT_TRUE(Put("k/g", data).ok());
  OpenStore(0, &faults_);  // a restart forgets
  EXPECT_FALSE(store_->metadata().Lookup("k/g").has_value());
  EXPECT_EQ(read("k/g").second, data);
  EXPECT_TRUE(store_->metadata().Lookup("k/g").has_value());
}

TEST(MetadataCache, KeepsTheMostRecentlyUsed) {
  MetadataCache cache(2);
  auto info = [](const std::string& path, int64_t generation) {
    ObjectInfo i;
    i.path = path;
    i.generation = generation;
    return i;
  };
  cache.Put(info("a", 1));
  cache.Put(info("b", 2));
  EXPECT_EQ(cache.Lookup("a")->generation, 1);  // a is now the most recent
  cache.Put(info("c", 3));                      // so b goes
  EXPECT_FALSE(cache.Lookup("b").has_value());
  cache.Put(info("a", 4));  // replaces
  EXPECT_EQ(cache.Lookup("a")->generation, 4);
  EXPECT_EQ(cache.size(), 2u);
  cache.Erase("a");
  EXPECT_FALSE(cache.Lookup("a").has_value());
  EXPECT_EQ(cache.size(), 1u);
  MetadataCache off(0);
  off.Put(info("a", 1));
  EXPECT_FALSE(off.Lookup("a").has_value());
}

TEST_P(StoreTest, FilesPlacedByHand) {
  std::ofstream(root_ + "/manual") << "hand";
  struct stat st;
  ASSERT_EQ(stat((root_ + "/manual").c_str(), &st), 0);
  auto info = Stat("manual");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->crc32c, 0u);
  EXPECT_EQ(info->generation, absl::ToUnixMicros(absl::TimeFromTimespec(st.st_mtim)));
}

TEST(Metadata, RoundTripAndFallback) {
  Metadata m;
  m.generation = 42;
  m.crc32c = 4000000000u;
  m.size = 77;
  m.modified = absl::FromUnixNanos(1700000000123456789);
  const std::optional<Metadata> back = ParseMetadata(EncodeMetadata(m));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->generation, 42);
  EXPECT_EQ(back->crc32c, 4000000000u);
  EXPECT_EQ(back->size, 77);
  EXPECT_EQ(back->modified, m.modified);
  ObjectInfo info;
  DecodeMetadata(EncodeMetadata(m), absl::FromUnixMicros(5), &info);
  EXPECT_EQ(info.generation, 42);
  EXPECT_EQ(info.modified, m.modified);

  const absl::Time mtime = absl::FromUnixMicros(1234567);
  for (const char* bad : {"", "v1", "v1 1 2", "v2 1 2 3 4", "v1 x 2 3 4", "v1 1 x 3 4",
                          "v1 0 3 3 4", "v1 -5 3 3 4", "v1 1 2 -3 4", "v1 1 2 3 x",
                          "v1 1 2 3 4 5", "v1 1 99999999999 3 4"}) {
    EXPECT_FALSE(ParseMetadata(bad).has_value()) << bad;
    ObjectInfo i;
    DecodeMetadata(bad, mtime, &i);
    EXPECT_EQ(i.generation, 1234567) << bad;
    EXPECT_EQ(i.crc32c, 0u) << bad;
    EXPECT_EQ(i.modified, mtime) << bad;
  }
}

INSTANTIATE_TEST_SUITE_P(AllEngines, StoreTest, testing::Values("io_uring", "posix_aio", "thread_pool"),
                         [](const testing::TestParamInfo<const char*>& p) {
                           return std::string(p.param);
                         });

}  // namespace
}  // namespace ringstore::storage
