// The namespace on every engine: whole files in and out, generations,
// preconditions, paths (invalid ones, nested directories, symlinks out of
// the root), delete, readers as snapshots, concurrent commits.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "third_party/system/crc32c.h"
#include "storage/store_test_util.h"

namespace ringstore::storage {
namespace {

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

// A doomed precondition fails at CreateWriter, before any byte is sent or
// any temp file made; one that holds then still holds the commit to it.
TEST_P(StoreTest, PreconditionsAreCheckedWhenTheUploadStarts) {
  auto first = Put("early", "first");
  ASSERT_TRUE(first.ok());
  WriteSpec spec;
  spec.path = "early";
  spec.if_generation_match = 0;
  EXPECT_EQ(NewWriter(spec).status().code(), absl::StatusCode::kAlreadyExists);
  spec.if_generation_match = first->generation + 1;
  EXPECT_EQ(NewWriter(spec).status().code(), absl::StatusCode::kFailedPrecondition);
  spec.path = "absent";
  spec.if_generation_match = 7;
  EXPECT_EQ(NewWriter(spec).status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(Put("dir/x", "x").ok());
  spec.path = "dir";
  spec.if_generation_match = 0;
  EXPECT_EQ(NewWriter(spec).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(TempEmpties());

  // Checked at the start, and again at the commit: a writer that passed
  // the first check fails if another commit lands in between.
  spec.path = "early";
  spec.if_generation_match = first->generation;
  auto writer = NewWriter(spec);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE(Put("early", "second").ok());
  ASSERT_TRUE(Append(**writer, "third").ok());
  EXPECT_EQ(Commit(**writer).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReadLocal(root_ + "/early"), "second");
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

TEST_P(StoreTest, FilesPlacedByHand) {
  std::ofstream(root_ + "/manual") << "hand";
  struct stat st;
  ASSERT_EQ(stat((root_ + "/manual").c_str(), &st), 0);
  auto info = Stat("manual");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->crc32c, 0u);
  EXPECT_EQ(info->generation, absl::ToUnixMicros(absl::TimeFromTimespec(st.st_mtim)));
}

INSTANTIATE_TEST_SUITE_P(AllEngines, StoreTest, testing::ValuesIn(EngineNames()),
                         EngineParamName);

}  // namespace
}  // namespace ringstore::storage
