#include "storage/engine/scoped_fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "gtest/gtest.h"

namespace ringstore::storage {
namespace {

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

int NewFd() { return open("/dev/null", O_RDONLY | O_CLOEXEC); }

TEST(ScopedFd, ClosesOnDestructionExactlyOnce) {
  const int fd = NewFd();
  ASSERT_GE(fd, 0);
  {
    ScopedFd a(fd);
    EXPECT_TRUE(a.valid());
    EXPECT_EQ(a.get(), fd);
    ScopedFd b(std::move(a));
    EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(b.get(), fd);
    EXPECT_TRUE(IsOpen(fd));
  }
  EXPECT_FALSE(IsOpen(fd));
}

TEST(ScopedFd, ResetAndAssignmentCloseTheOldDescriptor) {
  const int first = NewFd();
  const int second = NewFd();
  ASSERT_GE(first, 0);
  ASSERT_GE(second, 0);
  ScopedFd a(first);
  a.reset(second);
  EXPECT_FALSE(IsOpen(first));
  EXPECT_TRUE(IsOpen(second));
  const int third = NewFd();
  ASSERT_GE(third, 0);
  a = ScopedFd(third);
  EXPECT_FALSE(IsOpen(second));
  EXPECT_EQ(a.get(), third);
  a.reset();
  EXPECT_FALSE(a.valid());
  EXPECT_FALSE(IsOpen(third));
}

TEST(ScopedFd, ReleaseGivesUpOwnership) {
  const int fd = NewFd();
  ASSERT_GE(fd, 0);
  {
    ScopedFd a(fd);
    EXPECT_EQ(a.release(), fd);
    EXPECT_FALSE(a.valid());
  }
  EXPECT_TRUE(IsOpen(fd));
  close(fd);
}

}  // namespace
}  // namespace ringstore::storage
