// Uploads on every engine: appends of every size and piece, declared sizes
// and checksums, limits, writers that die or are abandoned, steps the kernel
// fails (the old file stays), and what a crash leaves behind.
#include <cerrno>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "third_party/system/crc32c.h"
#include "storage/engine/fault_injection.h"
#include "storage/store_test_util.h"

namespace ringstore::storage {
namespace {

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

TEST_P(StoreTest, OpenRemovesCrashLeftovers) {
  const std::string tmp = root_ + "/.ringstore/tmp/leftover";
  std::ofstream(tmp) << "partial";
  ASSERT_TRUE(Exists(tmp));
  OpenStore();
  EXPECT_FALSE(Exists(tmp));
  ListOptions all;
  EXPECT_TRUE(List(all)->files.empty());
}

INSTANTIATE_TEST_SUITE_P(AllEngines, StoreTest, testing::ValuesIn(EngineNames()),
                         EngineParamName);

}  // namespace
}  // namespace ringstore::storage
