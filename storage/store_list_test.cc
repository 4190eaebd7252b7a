// List on every engine: sorted, by prefix, one directory level with a
// delimiter, and paged.
#include <sys/stat.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "third_party/system/crc32c.h"
#include "storage/store_test_util.h"

namespace ringstore::storage {
namespace {

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

INSTANTIATE_TEST_SUITE_P(AllEngines, StoreTest, testing::ValuesIn(EngineNames()),
                         EngineParamName);

}  // namespace
}  // namespace ringstore::storage
