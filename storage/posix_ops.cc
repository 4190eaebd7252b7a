#include "storage/posix_ops.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "storage/path.h"
#include "storage/status_util.h"

namespace ringstore::storage::posix {
namespace {

absl::Status Errno(absl::string_view op, absl::string_view path) {
  return ErrnoToStatus(errno, absl::StrCat(op, " ", path));
}

// Closes a descriptor when it goes out of scope.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Opens the parent directory of `path` beneath `root` (as an O_PATH
// descriptor) and returns it with the last component in `*leaf`.
absl::StatusOr<int> OpenParent(int root, absl::string_view path,
                               std::string* leaf) {
  *leaf = std::string(BaseName(path));
  if (leaf->empty()) {
    return absl::InvalidArgumentError(absl::StrCat("no file name in \"", path, "\""));
  }
  return OpenBeneath(root, ParentDir(path), O_PATH | O_DIRECTORY);
}

// The value of extended attribute `attr` of `fd`; empty if it has none.
absl::StatusOr<std::string> ReadAttr(int fd, absl::string_view attr) {
  const std::string name(attr);
  char value[256];
  const ssize_t n = fgetxattr(fd, name.c_str(), value, sizeof(value));
  if (n >= 0) return std::string(value, static_cast<size_t>(n));
  if (errno == ENODATA || errno == ENOTSUP) return std::string();
  return ErrnoToStatus(errno, "fgetxattr");
}

}  // namespace

absl::StatusOr<int> OpenBeneath(int root, absl::string_view path, int flags,
                                int mode) {
  open_how how = {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
  const std::string p = path.empty() ? std::string(".") : std::string(path);
  int fd;
  do {
    fd = static_cast<int>(syscall(SYS_openat2, root, p.c_str(), &how, sizeof(how)));
  } while (fd < 0 && (errno == EINTR || errno == EAGAIN));
  if (fd < 0) return Errno("open", path);
  return fd;
}

absl::StatusOr<int> Open(int root, absl::string_view path, OpenMode mode) {
  switch (mode) {
    case OpenMode::kRead: {
      RS_ASSIGN_OR_RETURN(int fd, OpenBeneath(root, path, O_RDONLY));
      struct stat st;
      if (fstat(fd, &st) != 0) {
        absl::Status s = Errno("stat", path);
        ::close(fd);
        return s;
      }
      if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return absl::FailedPreconditionError(
            absl::StrCat("\"", path, "\" is not a regular file"));
      }
      return fd;
    }
    case OpenMode::kCreateWrite:
      return OpenBeneath(root, path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    case OpenMode::kDirectory:
      return OpenBeneath(root, path, O_RDONLY | O_DIRECTORY);
  }
  return absl::InvalidArgumentError("bad open mode");
}

absl::StatusOr<size_t> ReadFull(int fd, int64_t offset, absl::Span<char> dst) {
  size_t done = 0;
  while (done < dst.size()) {
    const ssize_t n = pread(fd, dst.data() + done, dst.size() - done,
                            static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return ErrnoToStatus(errno, "read");
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

absl::Status WriteFull(int fd, int64_t offset, absl::Span<const char> src) {
  size_t done = 0;
  while (done < src.size()) {
    const ssize_t n = pwrite(fd, src.data() + done, src.size() - done,
                             static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return ErrnoToStatus(errno, "write");
    }
    if (n == 0) return absl::ResourceExhaustedError("write: no progress");
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status Sync(int fd, bool data_only) {
  const int rc = data_only ? fdatasync(fd) : fsync(fd);
  if (rc != 0) return ErrnoToStatus(errno, data_only ? "fdatasync" : "fsync");
  return absl::OkStatus();
}

absl::Status Close(int fd) {
  // Linux releases the descriptor even when close fails; never retry.
  if (::close(fd) != 0 && errno != EINTR) return ErrnoToStatus(errno, "close");
  return absl::OkStatus();
}

absl::StatusOr<FileStat> StatFd(int fd, absl::string_view attr) {
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoToStatus(errno, "fstat");
  FileStat out;
  out.size = st.st_size;
  out.modified = absl::TimeFromTimespec(st.st_mtim);
  out.is_regular = S_ISREG(st.st_mode);
  out.is_directory = S_ISDIR(st.st_mode);
  if (out.is_regular && !attr.empty()) {
    RS_ASSIGN_OR_RETURN(out.metadata, ReadAttr(fd, attr));
  }
  return out;
}

absl::StatusOr<FileStat> StatPath(int root, absl::string_view path,
                                  absl::string_view attr) {
  std::string leaf;
  RS_ASSIGN_OR_RETURN(int parent_fd, OpenParent(root, path, &leaf));
  ScopedFd parent(parent_fd);
  struct stat st;
  if (fstatat(parent.get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return Errno("stat", path);
  }
  if (!S_ISREG(st.st_mode)) {
    FileStat out;
    out.size = st.st_size;
    out.modified = absl::TimeFromTimespec(st.st_mtim);
    out.is_directory = S_ISDIR(st.st_mode);
    return out;
  }
  const int fd = openat(parent.get(), leaf.c_str(),
                        O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return Errno("open", path);
  ScopedFd file(fd);
  return StatFd(file.get(), attr);
}

absl::Status SetAttr(int fd, absl::string_view attr, absl::string_view value) {
  const std::string name(attr);
  if (fsetxattr(fd, name.c_str(), value.data(), value.size(), 0) != 0) {
    return ErrnoToStatus(errno, "fsetxattr");
  }
  return absl::OkStatus();
}

absl::StatusOr<FileRead> ReadFile(int root, absl::string_view path, absl::Span<char> dst,
                                  absl::string_view attr) {
  RS_ASSIGN_OR_RETURN(int fd, Open(root, path, OpenMode::kRead));
  ScopedFd file(fd);
  FileRead out;
  RS_ASSIGN_OR_RETURN(out.length, ReadFull(fd, 0, dst));
  RS_ASSIGN_OR_RETURN(out.metadata, ReadAttr(fd, attr));
  return out;
}

absl::Status Rename(int root, absl::string_view from, absl::string_view to) {
  std::string from_leaf, to_leaf;
  RS_ASSIGN_OR_RETURN(int from_fd, OpenParent(root, from, &from_leaf));
  ScopedFd from_parent(from_fd);
  RS_ASSIGN_OR_RETURN(int to_fd, OpenParent(root, to, &to_leaf));
  ScopedFd to_parent(to_fd);
  if (renameat(from_parent.get(), from_leaf.c_str(), to_parent.get(),
               to_leaf.c_str()) != 0) {
    return Errno("rename", absl::StrCat(from, " to ", to));
  }
  return absl::OkStatus();
}

absl::Status Unlink(int root, absl::string_view path) {
  std::string leaf;
  RS_ASSIGN_OR_RETURN(int parent_fd, OpenParent(root, path, &leaf));
  ScopedFd parent(parent_fd);
  if (unlinkat(parent.get(), leaf.c_str(), 0) != 0) return Errno("unlink", path);
  return absl::OkStatus();
}

absl::Status MakeDir(int root, absl::string_view path) {
  std::string leaf;
  RS_ASSIGN_OR_RETURN(int parent_fd, OpenParent(root, path, &leaf));
  ScopedFd parent(parent_fd);
  if (mkdirat(parent.get(), leaf.c_str(), 0755) != 0) return Errno("mkdir", path);
  return absl::OkStatus();
}

absl::Status RemoveDir(int root, absl::string_view path) {
  std::string leaf;
  RS_ASSIGN_OR_RETURN(int parent_fd, OpenParent(root, path, &leaf));
  ScopedFd parent(parent_fd);
  if (unlinkat(parent.get(), leaf.c_str(), AT_REMOVEDIR) != 0) {
    return Errno("rmdir", path);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<DirEntry>> ReadDir(int root, absl::string_view path) {
  RS_ASSIGN_OR_RETURN(int fd, OpenBeneath(root, path, O_RDONLY | O_DIRECTORY));
  DIR* dir = fdopendir(fd);
  if (dir == nullptr) {
    absl::Status s = Errno("opendir", path);
    ::close(fd);
    return s;
  }
  std::vector<DirEntry> entries;
  errno = 0;
  while (struct dirent* e = readdir(dir)) {
    const absl::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    DirEntry entry;
    entry.name = std::string(name);
    unsigned char type = e->d_type;
    if (type == DT_UNKNOWN) {
      struct stat st;
      if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
      }
    }
    entry.is_directory = type == DT_DIR;
    entry.is_regular = type == DT_REG;
    entries.push_back(std::move(entry));
    errno = 0;
  }
  const int err = errno;
  closedir(dir);
  if (err != 0) return ErrnoToStatus(err, absl::StrCat("readdir ", path));
  return entries;
}

}  // namespace ringstore::storage::posix
