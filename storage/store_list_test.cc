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

TEST_P(StoreTest, ListPagesOverNestedTreeInPathOrder) {
  // Names that sort differently as paths than as directory entries:
  // "a.txt" < "a/b" ('.' < '/') < "a0"; "ab/c" < "ab0" < "abc".
  std::vector<std::string> names = {"a.txt", "a/b",     "a/c/d",  "a/c/e/f", "a/c0",
                                    "a0",    "ab/c",    "ab0",    "abc",     "b/x/y/z",
                                    "b/x0",  "deep/1/2/3/4/5", "z"};
  for (const std::string& n : names) ASSERT_TRUE(Put(n, n).ok()) << n;
  ASSERT_EQ(mkdir((root_ + "/empty").c_str(), 0755), 0);
  std::vector<std::string> sorted = names;
  std::sort(sorted.begin(), sorted.end());
  auto one = List(ListOptions());
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(Paths(*one), sorted);
  for (int page = 1; page <= 5; ++page) {
    ListOptions o;
    o.page_size = page;
    std::vector<std::string> got;
    for (int i = 0; i < 100; ++i) {
      auto r = List(o);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_LE(r->files.size(), static_cast<size_t>(page));
      for (auto& p : Paths(*r)) got.push_back(p);
      o.page_token = r->next_page_token;
      if (o.page_token.empty()) break;
    }
    EXPECT_EQ(got, sorted) << "page size " << page;
  }
  // With a prefix that ends inside a component, and with the delimiter.
  for (const char* prefix : {"", "a", "a/", "a/c", "ab", "b/x", "deep/1/"}) {
    for (const char* delimiter : {"", "/"}) {
      ListOptions all;
      all.prefix = prefix;
      all.delimiter = delimiter;
      auto whole = List(all);
      ASSERT_TRUE(whole.ok()) << whole.status();
      std::vector<std::string> want = Paths(*whole);
      for (auto& p : whole->prefixes) want.push_back(p);
      std::sort(want.begin(), want.end());
      ListOptions o = all;
      o.page_size = 1;
      std::vector<std::string> got;
      for (int i = 0; i < 100; ++i) {
        auto r = List(o);
        ASSERT_TRUE(r.ok()) << r.status();
        EXPECT_LE(r->files.size() + r->prefixes.size(), 1u);
        for (auto& p : Paths(*r)) got.push_back(p);
        for (auto& p : r->prefixes) got.push_back(p);
        o.page_token = r->next_page_token;
        if (o.page_token.empty()) break;
      }
      EXPECT_EQ(got, want) << "prefix \"" << prefix << "\" delimiter \"" << delimiter << "\"";
    }
  }
  ListOptions top;
  top.delimiter = "/";
  auto t = List(top);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(Paths(*t), (std::vector<std::string>{"a.txt", "a0", "ab0", "abc", "z"}));
  EXPECT_EQ(t->prefixes, (std::vector<std::string>{"a/", "ab/", "b/", "deep/"}));
}

TEST_P(StoreTest, ListPageReadsOnlyTheDirectoriesItNeeds) {
  // 30 directories of 20 files: a page of 20 reads the root, the
  // directory where the last page ended, its own, and the next one (to
  // know there is more), whatever page it is.
  constexpr int kDirs = 30, kFiles = 20;
  for (int d = 0; d < kDirs; ++d) {
    for (int f = 0; f < kFiles; ++f) {
      ASSERT_TRUE(Put(absl::StrCat("t/d", 100 + d, "/f", 100 + f), "x").ok());
    }
  }
  ListOptions all;
  all.prefix = "t/";
  auto whole = List(all);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(whole->directories_read, 1 + kDirs);  // every directory once
  ListOptions o;
  o.prefix = "t/";
  o.page_size = kFiles;
  int pages = 0;
  size_t files = 0;
  do {
    auto r = List(o);
    ASSERT_TRUE(r.ok()) << r.status();
    files += r->files.size();
    EXPECT_LE(r->directories_read, 4) << "page " << pages;
    o.page_token = r->next_page_token;
    ++pages;
  } while (!o.page_token.empty());
  EXPECT_EQ(pages, kDirs);
  EXPECT_EQ(files, static_cast<size_t>(kDirs * kFiles));
}

TEST_P(StoreTest, ListResumesWhenTheTokensEntryIsGone) {
  for (const char* p : {"r/a/1", "r/a/2", "r/b/1", "r/b/2", "r/c/1", "r/d"}) {
    ASSERT_TRUE(Put(p, "x").ok());
  }
  ListOptions o;
  o.prefix = "r/";
  o.page_size = 2;
  auto first = List(o);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(Paths(*first), (std::vector<std::string>{"r/a/1", "r/a/2"}));
  // The page's last file goes, with its directory; a file appears before
  // the token (not returned), one after it (returned).
  ASSERT_TRUE(Delete("r/a/2").ok());
  ASSERT_TRUE(Delete("r/a/1").ok());
  ASSERT_TRUE(Put("r/0", "x").ok());
  ASSERT_TRUE(Put("r/b/0", "x").ok());
  o.page_token = first->next_page_token;
  auto second = List(o);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(Paths(*second), (std::vector<std::string>{"r/b/0", "r/b/1"}));
  // Now the whole directory of the token's entry goes.
  ASSERT_TRUE(Delete("r/b/0").ok());
  ASSERT_TRUE(Delete("r/b/1").ok());
  ASSERT_TRUE(Delete("r/b/2").ok());
  o.page_token = second->next_page_token;
  auto third = List(o);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(Paths(*third), (std::vector<std::string>{"r/c/1", "r/d"}));
  EXPECT_TRUE(third->next_page_token.empty());

  // With the delimiter, the token may be a prefix whose directory is gone.
  ListOptions d;
  d.prefix = "r/";
  d.delimiter = "/";
  d.page_size = 1;
  auto p1 = List(d);
  ASSERT_TRUE(p1.ok());
  EXPECT_EQ(Paths(*p1), (std::vector<std::string>{"r/0"}));
  d.page_token = p1->next_page_token;
  auto p2 = List(d);
  ASSERT_TRUE(p2.ok());
  EXPECT_EQ(p2->prefixes, (std::vector<std::string>{"r/c/"}));
  ASSERT_TRUE(Delete("r/c/1").ok());
  d.page_token = p2->next_page_token;
  auto p3 = List(d);
  ASSERT_TRUE(p3.ok()) << p3.status();
  EXPECT_EQ(Paths(*p3), (std::vector<std::string>{"r/d"}));
  EXPECT_TRUE(p3->prefixes.empty());
  EXPECT_TRUE(p3->next_page_token.empty());
}

TEST_P(StoreTest, ListRejectsBadTokens) {
  for (const char* p : {"k/a", "k/b", "k/c", "other/a", "other/b"}) {
    ASSERT_TRUE(Put(p, "x").ok());
  }
  ListOptions o;
  o.prefix = "k/";
  o.page_size = 1;
  auto r = List(o);
  ASSERT_TRUE(r.ok());
  const std::string token = r->next_page_token;
  ASSERT_FALSE(token.empty());
  auto code = [&](ListOptions opts) { return List(std::move(opts)).status().code(); };
  ListOptions good = o;
  good.page_token = token;
  EXPECT_EQ(code(good), absl::StatusCode::kOk);
  std::vector<std::string> bad = {"k/a", "!!!", "AAAA", token.substr(0, token.size() - 4),
                                  token + "AAAA"};
  // Every character but the last (whose low bits base64 may not use).
  for (size_t i = 0; i + 1 < token.size(); ++i) {
    std::string t = token;
    t[i] = t[i] == 'A' ? 'B' : 'A';
    bad.push_back(t);
  }
  for (const std::string& t : bad) {
    ListOptions b = o;
    b.page_token = t;
    EXPECT_EQ(code(b), absl::StatusCode::kInvalidArgument) << t;
  }
  // A token of another prefix, or another delimiter, is refused: it never
  // lists outside the request's prefix.
  ListOptions other;
  other.prefix = "other/";
  other.page_size = 1;
  auto ro = List(other);
  ASSERT_TRUE(ro.ok());
  ListOptions crossed = o;
  crossed.page_token = ro->next_page_token;
  EXPECT_EQ(code(crossed), absl::StatusCode::kInvalidArgument);
  ListOptions all;
  all.page_size = 1;
  crossed.page_token = List(all)->next_page_token;
  EXPECT_EQ(code(crossed), absl::StatusCode::kInvalidArgument);
  ListOptions delimited = good;
  delimited.delimiter = "/";
  EXPECT_EQ(code(delimited), absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(AllEngines, StoreTest, testing::ValuesIn(EngineNames()),
                         EngineParamName);

}  // namespace
}  // namespace ringstore::storage
