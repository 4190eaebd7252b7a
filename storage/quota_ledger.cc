#include "storage/quota_ledger.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "storage/engine/status_util.h"
#include "storage/path.h"

namespace ringstore::storage {
namespace {

absl::Status SetCount(int private_dir, absl::string_view value) {
  if (fsetxattr(private_dir, kCountAttr, value.data(), value.size(), 0) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("fsetxattr ", kCountAttr));
  }
  // The attribute is inode metadata: an fsync of the directory makes it
  // durable.
  if (fsync(private_dir) != 0) return ErrnoToStatus(errno, "fsync .ringstore");
  return absl::OkStatus();
}

// Adds the sizes of the regular files below `dir` (an open directory,
// taken over and closed) to `*sum`.
absl::Status SumDir(int dir, bool top, int64_t* sum) {
  DIR* d = fdopendir(dir);
  if (d == nullptr) {
    const int err = errno;
    close(dir);
    return ErrnoToStatus(err, "fdopendir");
  }
  absl::Status status;
  std::vector<std::string> subdirs;
  for (;;) {
    errno = 0;
    const dirent* e = readdir(d);
    if (e == nullptr) {
      if (errno != 0) status = ErrnoToStatus(errno, "readdir");
      break;
    }
    const char* name = e->d_name;
    if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) continue;
    if (top && absl::string_view(name) == kPrivateDir) continue;
    unsigned char type = e->d_type;
    struct stat st;
    bool have_stat = false;
    if (type == DT_UNKNOWN) {  // file systems without d_type
      if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      have_stat = true;
      type = S_ISREG(st.st_mode) ? DT_REG : S_ISDIR(st.st_mode) ? DT_DIR : DT_LNK;
    }
    if (type == DT_REG) {
      if (!have_stat && fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;
        status = ErrnoToStatus(errno, absl::StrCat("stat ", name));
        break;
      }
      if (S_ISREG(st.st_mode)) *sum += st.st_size;
    } else if (type == DT_DIR) {
      subdirs.emplace_back(name);
    }
  }
  // Depth first, after this directory's entries: one descriptor per level
  // of the tree is open at a time.
  for (const std::string& name : subdirs) {
    if (!status.ok()) break;
    const int sub = openat(dirfd(d), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0) {
      if (errno == ENOENT) continue;
      status = ErrnoToStatus(errno, absl::StrCat("open directory ", name));
      break;
    }
    status = SumDir(sub, false, sum);
  }
  closedir(d);
  return status;
}

}  // namespace

std::string EncodeCleanCount(int64_t bytes) { return absl::StrCat("v1 clean ", bytes); }

std::optional<int64_t> ParseCleanCount(absl::string_view value) {
  int64_t bytes;
  if (!absl::ConsumePrefix(&value, "v1 clean ") || !absl::SimpleAtoi(value, &bytes) ||
      bytes < 0) {
    return std::nullopt;
  }
  return bytes;
}

absl::StatusOr<std::optional<int64_t>> ReadCleanCount(int private_dir) {
  char value[64];
  const ssize_t n = fgetxattr(private_dir, kCountAttr, value, sizeof(value));
  if (n < 0) {
    if (errno == ENODATA || errno == ERANGE) return std::nullopt;
    return ErrnoToStatus(errno, absl::StrCat("fgetxattr ", kCountAttr));
  }
  return ParseCleanCount(absl::string_view(value, static_cast<size_t>(n)));
}

absl::Status MarkDirty(int private_dir) { return SetCount(private_dir, "v1 dirty"); }

absl::Status MarkClean(int private_dir, int64_t bytes) {
  return SetCount(private_dir, EncodeCleanCount(bytes));
}

absl::StatusOr<int64_t> SumFileBytes(int root) {
  const int dir = openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return ErrnoToStatus(errno, "open root");
  int64_t sum = 0;
  if (absl::Status s = SumDir(dir, true, &sum); !s.ok()) return s;
  return sum;
}

}  // namespace ringstore::storage
