// The quota's count across restarts: the clean/dirty attribute on
// .ringstore and the walk that computes the count when it is dirty.
#include "storage/quota_ledger.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace ringstore::storage {
namespace {

class QuotaLedgerTest : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[4096];
    snprintf(tmpl, sizeof(tmpl), "%s/ledgerXXXXXX",
             getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp");
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    Mkdir(".ringstore");
    Mkdir(".ringstore/tmp");
    root_fd_ = open(root_.c_str(), O_RDONLY | O_DIRECTORY);
    private_fd_ = open((root_ + "/.ringstore").c_str(), O_RDONLY | O_DIRECTORY);
    ASSERT_GE(root_fd_, 0);
    ASSERT_GE(private_fd_, 0);
  }
  void TearDown() override {
    close(root_fd_);
    close(private_fd_);
  }

  void Mkdir(const std::string& rel) { ASSERT_EQ(mkdir((root_ + "/" + rel).c_str(), 0755), 0) << rel; }
  void Write(const std::string& rel, size_t n) {
    std::ofstream(root_ + "/" + rel, std::ios::binary) << std::string(n, 'x');
  }

  std::string root_;
  int root_fd_ = -1;
  int private_fd_ = -1;
};

TEST(CleanCountTest, EncodesAndParses) {
  EXPECT_EQ(EncodeCleanCount(12345), "v1 clean 12345");
  EXPECT_EQ(ParseCleanCount("v1 clean 12345"), 12345);
  EXPECT_EQ(ParseCleanCount("v1 clean 0"), 0);
  for (const char* bad : {"", "v1 dirty", "v1 clean", "v1 clean -3", "v1 clean 12x",
                          "v2 clean 5"}) {
    EXPECT_EQ(ParseCleanCount(bad), std::nullopt) << bad;
  }
}

TEST_F(QuotaLedgerTest, AbsentAttributeIsDirty) {
  auto c = ReadCleanCount(private_fd_);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c, std::nullopt);
}

TEST_F(QuotaLedgerTest, CleanThenDirty) {
  ASSERT_TRUE(MarkClean(private_fd_, 987654321).ok());
  auto c = ReadCleanCount(private_fd_);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c, 987654321);
  char value[64];
  const ssize_t n = getxattr((root_ + "/.ringstore").c_str(), kCountAttr, value, sizeof(value));
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(value, n), "v1 clean 987654321");

  ASSERT_TRUE(MarkDirty(private_fd_).ok());
  c = ReadCleanCount(private_fd_);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c, std::nullopt);
}

TEST_F(QuotaLedgerTest, WalkSumsRegularFilesOutsideThePrivateDir) {
  auto empty = SumFileBytes(root_fd_);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(*empty, 0);

  Write("a", 10);
  Write("empty", 0);
  Mkdir("d");
  Write("d/b", 200);
  Mkdir("d/e");
  Mkdir("d/e/f");
  Write("d/e/f/c", 3000);
  Mkdir("d/.ringstore");  // only the top-level one is private
  Write("d/.ringstore/g", 40000);
  Write(".ringstore/tmp/upload", 1 << 20);  // temp data is not counted
  ASSERT_EQ(symlink("a", (root_ + "/link").c_str()), 0);
  ASSERT_EQ(symlink("d", (root_ + "/dirlink").c_str()), 0);  // not followed
  auto sum = SumFileBytes(root_fd_);
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(*sum, 10 + 200 + 3000 + 40000);
}

TEST_F(QuotaLedgerTest, WalkOfADeepTree) {
  std::string dir;
  for (int i = 0; i < 100; ++i) {
    dir += (i ? "/" : "") + std::string("d");
    Mkdir(dir);
    Write(dir + "/f", 1);
  }
  auto sum = SumFileBytes(root_fd_);
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(*sum, 100);
}

}  // namespace
}  // namespace ringstore::storage
