// Delete on every engine: it removes the directories it leaves empty, up to
// the root and no further, and uploads into a directory that a Delete of a
// sibling prunes at the same time still commit.
#include <sys/stat.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "storage/store_test_util.h"

namespace ringstore::storage {
namespace {

TEST_P(StoreTest, DeletePrunesEmptyDirectoriesUpToTheRoot) {
  ASSERT_TRUE(Put("p/q/r/f", "deep").ok());
  ASSERT_TRUE(Put("p/keep", "k").ok());
  ASSERT_TRUE(Delete("p/q/r/f").ok());
  EXPECT_FALSE(Exists(root_ + "/p/q/r"));
  EXPECT_FALSE(Exists(root_ + "/p/q"));
  // Not empty: stays, with its file.
  EXPECT_TRUE(Exists(root_ + "/p/keep"));
  ASSERT_TRUE(Delete("p/keep").ok());
  EXPECT_FALSE(Exists(root_ + "/p"));
  // The root and the store's own directory stay.
  EXPECT_TRUE(Exists(root_));
  EXPECT_TRUE(Exists(root_ + "/.ringstore/tmp"));
  ASSERT_TRUE(Put("top", "t").ok());
  ASSERT_TRUE(Delete("top").ok());
  EXPECT_TRUE(Exists(root_));
  EXPECT_TRUE(Exists(root_ + "/.ringstore/tmp"));

  // A directory that holds only an empty sub-directory (made by hand) is
  // not empty: the pruning stops below it.
  ASSERT_TRUE(Put("m/n/f", "x").ok());
  ASSERT_EQ(mkdir((root_ + "/m/hand").c_str(), 0755), 0);
  ASSERT_TRUE(Delete("m/n/f").ok());
  EXPECT_FALSE(Exists(root_ + "/m/n"));
  EXPECT_TRUE(Exists(root_ + "/m/hand"));
}

TEST_P(StoreTest, UploadWithARemovedDirectorysNameSucceeds) {
  ASSERT_TRUE(Put("x/y/z", "below").ok());
  ASSERT_TRUE(Delete("x/y/z").ok());
  // "x/y" and "x" were directories; now they can be files.
  auto y = Put("x/y", "file y");
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(ReadLocal(root_ + "/x/y"), "file y");
  ASSERT_TRUE(Delete("x/y").ok());
  auto x = Put("x", "file x");
  ASSERT_TRUE(x.ok()) << x.status();
  EXPECT_EQ(ReadLocal(root_ + "/x"), "file x");
  // A parent that really is a file still fails the commit.
  EXPECT_EQ(Put("x/below", "no").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(TempEmpties());
}

// Writers upload into one directory and delete their files again, so the
// directory empties and is pruned over and over while other commits create
// it and rename into it: every upload commits, every file reads back whole.
TEST_P(StoreTest, UploadsIntoADirectoryThatDeletesPrune) {
  constexpr int kWriters = 4, kRounds = 60;
  std::atomic<int> failures{0};
  std::vector<std::vector<std::string>> kept_by(kWriters);
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < kRounds; ++i) {
        const std::string path = absl::StrCat("s/d/e/w", w, "-", i);
        const std::string data = RandomBytes(100 + i, w * 1000 + i);
        auto put = Put(path, data);
        if (!put.ok()) {
          ADD_FAILURE() << path << ": " << put.status();
          ++failures;
          continue;
        }
        if (ReadLocal(root_ + "/" + path) != data) {
          ADD_FAILURE() << path << " does not read back";
          ++failures;
        }
        if (i % 10 == 9) {
          kept_by[w].push_back(path);
          continue;
        }
        if (absl::Status s = Delete(path); !s.ok()) {
          ADD_FAILURE() << "delete " << path << ": " << s;
          ++failures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  for (int w = 0; w < kWriters; ++w) {
    for (const std::string& path : kept_by[w]) {
      const int i = std::stoi(path.substr(path.find('-') + 1));
      EXPECT_EQ(ReadLocal(root_ + "/" + path), RandomBytes(100 + i, w * 1000 + i)) << path;
      ASSERT_TRUE(Delete(path).ok()) << path;
    }
  }
  EXPECT_FALSE(Exists(root_ + "/s"));
  EXPECT_TRUE(TempEmpties());
}

INSTANTIATE_TEST_SUITE_P(AllEngines, StoreTest, testing::ValuesIn(EngineNames()),
                         EngineParamName);

}  // namespace
}  // namespace ringstore::storage
