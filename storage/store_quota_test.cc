// The store quota (StoreOptions::max_store_bytes) on every engine: refusals
// at CreateWriter (declared size) and at the Append that would pass it
// (unknown size) that leave nothing behind, exact fits, overwrites that
// count both files while they run, deletes, every way an upload can end
// releasing its reservation once, many uploads racing for the last bytes,
// and the count across a clean restart (read from the attribute, no walk)
// and a crash (walked).
#include <sys/xattr.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "third_party/system/crc32c.h"
#include "storage/engine/cancellation.h"
#include "storage/engine/fault_injection.h"
#include "storage/store_test_util.h"

namespace ringstore::storage {
namespace {

constexpr int64_t kQuota = 4 * kBuffer;  // 256 KiB

class StoreQuotaTest : public StoreTest {
 protected:
  void OpenWithQuota(int64_t quota = kQuota) { OpenStore(0, &faults_, quota); }

  // Sum of the sizes of the committed files, as the disk has them.
  int64_t DiskBytes() {
    int64_t sum = 0;
    namespace fs = std::filesystem;
    for (auto it = fs::recursive_directory_iterator(root_); it != fs::end(it); ++it) {
      if (it.depth() == 0 && it->path().filename() == ".ringstore") {
        it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file() && !it->is_symlink()) sum += static_cast<int64_t>(it->file_size());
    }
    return sum;
  }

  // Reservations end asynchronously (once the temp data is gone): waits
  // until none is left, then checks that the count is the disk's.
  void ExpectSettled() {
    for (int i = 0; i < 500 && store_->used_bytes() != store_->committed_bytes(); ++i) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    EXPECT_EQ(store_->used_bytes(), store_->committed_bytes());
    EXPECT_EQ(store_->committed_bytes(), DiskBytes());
    EXPECT_TRUE(TempEmpties());
  }

  std::string CountAttr() {
    char value[128];
    const ssize_t n =
        getxattr((root_ + "/.ringstore").c_str(), "user.ringstore.bytes", value, sizeof(value));
    return n < 0 ? "" : std::string(value, static_cast<size_t>(n));
  }

  void SetCountAttr(const std::string& value) {
    ASSERT_EQ(setxattr((root_ + "/.ringstore").c_str(), "user.ringstore.bytes", value.data(),
                       value.size(), 0),
              0);
  }

  void WriteByHand(const std::string& path, size_t n) {
    std::ofstream(root_ + "/" + path, std::ios::binary) << std::string(n, 'h');
  }

  absl::StatusOr<ObjectInfo> PutDeclared(const std::string& path, int64_t n, uint32_t seed = 1) {
    WriteSpec spec;
    spec.path = path;
    spec.size = n;
    return Put(spec, RandomBytes(static_cast<size_t>(n), seed), 50000);
  }
  absl::StatusOr<ObjectInfo> PutUnknown(const std::string& path, int64_t n, uint32_t seed = 1) {
    WriteSpec spec;
    spec.path = path;
    return Put(spec, RandomBytes(static_cast<size_t>(n), seed), 50000);
  }
};

TEST_P(StoreQuotaTest, AccessorsWithAndWithoutAQuota) {
  // SetUp's store has no quota and found no clean count: it keeps none.
  EXPECT_EQ(store_->quota_bytes(), 0);
  EXPECT_EQ(store_->used_bytes(), -1);
  EXPECT_EQ(store_->committed_bytes(), -1);
  OpenWithQuota();
  EXPECT_EQ(store_->quota_bytes(), kQuota);
  EXPECT_EQ(store_->used_bytes(), 0);
  EXPECT_EQ(store_->committed_bytes(), 0);
}

TEST_P(StoreQuotaTest, DeclaredSizeThatCannotFitIsRefusedAtCreateWriter) {
  OpenWithQuota();
  ASSERT_TRUE(PutDeclared("a", 200000).ok());
  WriteSpec spec;
  spec.path = "b";
  spec.size = kQuota - 200000 + 1;
  auto w = NewWriter(spec);
  EXPECT_EQ(w.status().code(), absl::StatusCode::kResourceExhausted) << w.status();
  EXPECT_NE(w.status().message().find(absl::StrCat("200000 of ", kQuota, " bytes used")),
            absl::string_view::npos)
      << w.status();
  // Refused before anything reached the disk.
  EXPECT_TRUE(TempFiles().empty());
  ExpectAbsent("b");
  EXPECT_EQ(store_->used_bytes(), 200000);
  ExpectSettled();
}

TEST_P(StoreQuotaTest, UnknownSizeIsRefusedAtTheAppendThatPassesIt) {
  OpenWithQuota();
  WriteSpec spec;
  spec.path = "u";
  auto w = NewWriter(spec);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE(Append(**w, RandomBytes(2 * kBuffer, 1)).ok());
  ASSERT_TRUE(Append(**w, RandomBytes(kBuffer + 5, 2)).ok());
  EXPECT_EQ(store_->used_bytes(), 3 * kBuffer + 5);
  const absl::Status s = Append(**w, RandomBytes(kBuffer, 3));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_NE(s.message().find(absl::StrCat("of ", kQuota, " bytes used")), absl::string_view::npos)
      << s;
  // The writer is dead and its temp data goes.
  EXPECT_EQ(Commit(**w).status().code(), absl::StatusCode::kFailedPrecondition);
  w->reset();
  ExpectAbsent("u");
  ExpectSettled();
  EXPECT_EQ(store_->used_bytes(), 0);
}

TEST_P(StoreQuotaTest, ExactlyFits) {
  OpenWithQuota();
  auto a = PutDeclared("a", kQuota - 1000);
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = PutUnknown("b", 1000);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(store_->used_bytes(), kQuota);
  EXPECT_EQ(store_->committed_bytes(), kQuota);
  EXPECT_EQ(PutUnknown("c", 1).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(PutDeclared("c", 1).status().code(), absl::StatusCode::kResourceExhausted);
  // Empty files take nothing.
  ASSERT_TRUE(PutUnknown("empty", 0).ok());
  ExpectAbsent("c");
  ExpectSettled();
}

TEST_P(StoreQuotaTest, AnOverwriteCountsBothFilesWhileItRuns) {
  OpenWithQuota();
  ASSERT_TRUE(PutDeclared("f", 150000).ok());
  // 150000 + 120000 > quota, although the result would be smaller.
  EXPECT_EQ(PutDeclared("f", 120000).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(PutUnknown("f", 120000).status().code(), absl::StatusCode::kResourceExhausted);
  ExpectSettled();
  EXPECT_EQ(store_->committed_bytes(), 150000);
  // One that fits beside it: while it runs both count; its commit releases
  // the old file.
  WriteSpec spec;
  spec.path = "f";
  spec.size = 100000;
  auto w = NewWriter(spec);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(store_->used_bytes(), 250000);
  EXPECT_EQ(store_->committed_bytes(), 150000);
  ASSERT_TRUE(Append(**w, RandomBytes(100000, 5)).ok());
  auto info = Commit(**w);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(store_->used_bytes(), 100000);
  EXPECT_EQ(store_->committed_bytes(), 100000);
  w->reset();
  // A smaller overwrite of unknown size.
  ASSERT_TRUE(PutUnknown("f", 10).ok());
  EXPECT_EQ(store_->committed_bytes(), 10);
  ExpectSettled();
}

TEST_P(StoreQuotaTest, DeleteFrees) {
  OpenWithQuota();
  ASSERT_TRUE(PutDeclared("d/a", 200000).ok());
  EXPECT_EQ(PutDeclared("d/b", 100000).status().code(), absl::StatusCode::kResourceExhausted);
  // A refused delete frees nothing.
  EXPECT_EQ(Delete("d/a", 1).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->committed_bytes(), 200000);
  ASSERT_TRUE(Delete("d/a").ok());
  EXPECT_EQ(store_->used_bytes(), 0);
  ASSERT_TRUE(PutDeclared("d/b", 100000).ok());
  ExpectSettled();
}

// Every way an upload can end without a commit gives its reservation back,
// once: a size or checksum mismatch at the commit, a failed precondition, a
// Writer destroyed mid-upload, a cancelled upload, a write the kernel fails.
// The release comes once the temp data is gone (asynchronously): each case
// waits for it, and a second round would show a leak or a double release.
TEST_P(StoreQuotaTest, EveryFailedUploadReleasesItsReservationOnce) {
  OpenWithQuota();
  ASSERT_TRUE(PutDeclared("old", 50000).ok());
  const std::string data = RandomBytes(60000, 7);
  auto settled = [&](const char* what) {
    SCOPED_TRACE(what);
    ExpectSettled();
    EXPECT_EQ(store_->used_bytes(), 50000);
  };
  for (int round = 0; round < 2; ++round) {
    WriteSpec spec;
    spec.path = "old";
    spec.size = 70000;  // short by 10000
    EXPECT_EQ(Put(spec, data).status().code(), absl::StatusCode::kInvalidArgument);
    settled("short");
    spec.size = 0;
    spec.crc32c = Crc32c(data) ^ 1;
    EXPECT_EQ(Put(spec, data).status().code(), absl::StatusCode::kDataLoss);
    settled("checksum");
    spec.crc32c.reset();
    spec.if_generation_match = 0;
    EXPECT_EQ(Put(spec, data).status().code(), absl::StatusCode::kAlreadyExists);
    settled("precondition");
    spec.if_generation_match.reset();
    {
      auto w = NewWriter(spec);  // abandoned mid-upload
      ASSERT_TRUE(w.ok()) << w.status();
      ASSERT_TRUE(Append(**w, data).ok());
    }
    settled("abandoned");
    {
      Cancellation cancel;
      spec.size = 60000;
      auto w = Await<std::unique_ptr<Writer>>(
          [&](auto cb) { store_->CreateWriter(spec, &cancel, std::move(cb)); });
      ASSERT_TRUE(w.ok()) << w.status();
      cancel.Cancel();
      EXPECT_EQ(Append(**w, data).code(), absl::StatusCode::kCancelled);
      w->reset();
      spec.size = 0;
    }
    settled("cancelled");
    faults_.Fail(Step::kWrite, ENOSPC, 1, 1);
    EXPECT_EQ(Put(spec, RandomBytes(3 * kBuffer, 8), kBuffer).status().code(),
              absl::StatusCode::kResourceExhausted);
    EXPECT_EQ(faults_.injected(Step::kWrite), round + 1);
    faults_.Clear();
    settled("disk full");
  }
  // All of the rest is still there to be used.
  ASSERT_TRUE(PutDeclared("rest", kQuota - 50000).ok());
}

// The directory's fsync fails after the rename: the commit is reported as
// failed but the file is in place, and the count says so.
TEST_P(StoreQuotaTest, ACommitThatFailsAfterTheRenameIsCounted) {
  OpenWithQuota();
  ASSERT_TRUE(PutDeclared("f", 1000).ok());
  // The commit's fsyncs: the file's, then its directory's.
  faults_.Fail(Step::kFsync, EIO, 2, 1);
  auto put = PutDeclared("f", 3000, 9);
  faults_.Clear();
  EXPECT_EQ(put.status().code(), absl::StatusCode::kInternal) << put.status();
  auto st = Stat("f");
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->size, 3000);
  ExpectSettled();
  EXPECT_EQ(store_->committed_bytes(), 3000);
}

// 32 uploads at once (declared and unknown sizes, overwrites of the same
// paths; in a second round deletes among them) race for a quota that holds
// only some: the count never passes it, and at the end it is exactly the
// disk's.
TEST_P(StoreQuotaTest, ConcurrentUploadsNeverPassTheQuota) {
  OpenWithQuota();
  for (const bool deletes : {false, true}) {
    SCOPED_TRACE(deletes ? "with deletes" : "uploads only");
    std::atomic<bool> stop{false};
    std::atomic<int64_t> max_used{0};
    std::thread watcher([&] {
      while (!stop.load()) {
        const int64_t used = store_->used_bytes();
        int64_t seen = max_used.load();
        while (used > seen && !max_used.compare_exchange_weak(seen, used)) {
        }
        std::this_thread::yield();
      }
    });
    std::atomic<int> ok{0}, refused{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 32; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 3; ++i) {
          // 12 paths of at least 25000 bytes each cannot all fit: without
          // deletes, some uploads must be refused.
          const std::string path = absl::StrCat("race/", (t + i * 5) % 12);
          const size_t n = 25000 + static_cast<size_t>((t * 7919 + i * 104729) % 20000);
          const std::string data = RandomBytes(n, static_cast<uint32_t>(t * 10 + i));
          WriteSpec spec;
          spec.path = path;
          if ((t + i) % 2 == 0) spec.size = static_cast<int64_t>(n);
          absl::Status s;
          auto w = Await<std::unique_ptr<Writer>>(
              [&](auto cb) { store_->CreateWriter(spec, std::move(cb)); });
          if (!w.ok()) {
            s = w.status();
          } else {
            for (size_t off = 0; off < n && s.ok(); off += 8192) {
              s = AwaitStatus([&](auto cb) {
                (*w)->Append(absl::string_view(data).substr(off, 8192), std::move(cb));
              });
            }
            if (s.ok()) {
              s = Await<ObjectInfo>([&](auto cb) { (*w)->Commit(std::move(cb)); }).status();
            }
          }
          if (s.ok()) {
            ok.fetch_add(1);
          } else {
            EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
            refused.fetch_add(1);
          }
          if (deletes && t % 4 == 3) {
            const absl::Status d = AwaitStatus([&](auto cb) {
              store_->Delete(absl::StrCat("race/", (t + i) % 12), std::nullopt, std::move(cb));
            });
            EXPECT_TRUE(d.ok() || d.code() == absl::StatusCode::kNotFound) << d;
          }
        }
      });
    }
    for (std::thread& t : threads) t.join();
    stop.store(true);
    watcher.join();
    EXPECT_LE(max_used.load(), kQuota);
    EXPECT_GT(ok.load(), 0);
    if (!deletes) {
      EXPECT_GT(refused.load(), 0);
    }
    ExpectSettled();
    EXPECT_LE(DiskBytes(), kQuota);
  }
}

TEST_P(StoreQuotaTest, ACleanRestartReadsTheCountWithoutAWalk) {
  OpenWithQuota();
  ASSERT_TRUE(PutDeclared("a", 1000).ok());
  ASSERT_TRUE(PutUnknown("d/b", 2345).ok());
  // While it runs the store is dirty: what a crash would leave.
  EXPECT_EQ(CountAttr(), "v1 dirty");
  store_.reset();
  EXPECT_EQ(CountAttr(), "v1 clean 3345");
  // A file placed behind the store's back is not seen: no walk.
  WriteByHand("hand", 5000);
  OpenWithQuota();
  EXPECT_EQ(store_->committed_bytes(), 3345);
  EXPECT_EQ(CountAttr(), "v1 dirty");
  // And it goes on counting from there.
  ASSERT_TRUE(Delete("a").ok());
  EXPECT_EQ(store_->committed_bytes(), 2345);
  store_.reset();
  EXPECT_EQ(CountAttr(), "v1 clean 2345");
}

TEST_P(StoreQuotaTest, ARestartAfterACrashWalks) {
  OpenWithQuota();
  ASSERT_TRUE(PutDeclared("a", 1000).ok());
  ASSERT_TRUE(PutUnknown("d/e/b", 2345).ok());
  const std::string crashed = CountAttr();
  EXPECT_EQ(crashed, "v1 dirty");
  store_.reset();
  // kill -9 leaves the attribute as it was while the store ran.
  SetCountAttr(crashed);
  WriteByHand("d/hand", 5000);
  OpenWithQuota();
  EXPECT_EQ(store_->committed_bytes(), 1000 + 2345 + 5000);
  ExpectSettled();
  // A store that never had the attribute (older, or first start on an
  // existing tree) is walked too; a malformed one is not trusted.
  for (const char* attr : {"", "v1 clean x"}) {
    store_.reset();
    if (*attr == '\0') {
      ASSERT_EQ(removexattr((root_ + "/.ringstore").c_str(), "user.ringstore.bytes"), 0);
    } else {
      SetCountAttr(attr);
    }
    WriteByHand(absl::StrCat("more", attr), 10);
    const int64_t want = DiskBytes();
    OpenWithQuota();
    EXPECT_EQ(store_->committed_bytes(), want) << attr;
  }
}

// A store without a quota keeps a clean count going (so enabling a quota
// later needs no walk), but never walks for one: a dirty store stays dirty.
TEST_P(StoreQuotaTest, WithoutAQuotaNoWalkAndADirtyStoreStaysDirty) {
  OpenWithQuota();
  ASSERT_TRUE(PutDeclared("a", 1000).ok());
  store_.reset();
  OpenStore();  // no quota, clean count
  EXPECT_EQ(store_->committed_bytes(), 1000);
  ASSERT_TRUE(PutUnknown("b", 500).ok());
  EXPECT_EQ(store_->used_bytes(), 1500);
  store_.reset();
  EXPECT_EQ(CountAttr(), "v1 clean 1500");
  SetCountAttr("v1 dirty");
  OpenStore();  // no quota, dirty: no count, no walk
  EXPECT_EQ(store_->used_bytes(), -1);
  ASSERT_TRUE(PutUnknown("c", 10).ok());
  store_.reset();
  EXPECT_EQ(CountAttr(), "v1 dirty");
  OpenWithQuota();  // walks
  EXPECT_EQ(store_->committed_bytes(), 1510);
}

INSTANTIATE_TEST_SUITE_P(AllEngines, StoreQuotaTest, testing::ValuesIn(EngineNames()),
                         EngineParamName);

}  // namespace
}  // namespace ringstore::storage
