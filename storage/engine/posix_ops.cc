#include "storage/engine/posix_ops.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "storage/engine/scoped_fd.h"
#include "storage/engine/status_util.h"

namespace ringstore::storage {
namespace {

absl::Status Errno(absl::string_view op, absl::string_view path) {
  return ErrnoToStatus(errno, absl::StrCat(op, " ", path));
}

// Runs `call`, a system call that returns -1 and sets errno on failure,
// unless the injector fails `step` first (then -1 with its errno).
template <typename Call>
auto Sys(FaultInjector* faults, Step step, Call call) -> decltype(call()) {
  if (const int err = InjectedErrno(faults, step)) {
    errno = err;
    return -1;
  }
  return call();
}

}  // namespace

void TryDirect(int fd) {
  // A file system that reports its direct-I/O alignment (Linux 6.1+) and
  // needs more than the writer gives stays buffered (0: no direct I/O).
  struct statx stx;
  if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
      (stx.stx_mask & STATX_DIOALIGN) != 0 &&
      (stx.stx_dio_offset_align == 0 || stx.stx_dio_offset_align > kDirectAlignment ||
       stx.stx_dio_mem_align > kDirectAlignment)) {
    return;
  }
  const int flags = fcntl(fd, F_GETFL);
  if (flags >= 0) fcntl(fd, F_SETFL, flags | O_DIRECT);
}

absl::StatusOr<int> PosixFiles::OpenBeneath(absl::string_view path, int flags, int mode) const {
  open_how how = {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
  const std::string p = path.empty() ? std::string(".") : std::string(path);
  int fd;
  do {
    fd = static_cast<int>(Sys(faults_, Step::kOpen, [&] {
      return syscall(SYS_openat2, root_, p.c_str(), &how, sizeof(how));
    }));
  } while (fd < 0 && (errno == EINTR || errno == EAGAIN));
  if (fd < 0) return Errno("open", path);
  return fd;
}

absl::StatusOr<int> PosixFiles::Open(absl::string_view path, OpenMode mode) const {
  switch (mode) {
    case OpenMode::kRead: {
      // O_NONBLOCK so that a FIFO or device placed in the root cannot block
      // the open; it is refused below, and a regular file gets its normal
      // flags back.
      RS_ASSIGN_OR_RETURN(const int raw, OpenBeneath(path, O_RDONLY | O_NONBLOCK));
      ScopedFd fd(raw);
      struct stat st;
      if (Sys(faults_, Step::kStat, [&] { return fstat(fd.get(), &st); }) != 0) {
        return Errno("stat", path);
      }
      if (!S_ISREG(st.st_mode)) {
        return absl::FailedPreconditionError(
            absl::StrCat("\"", path, "\" is not a regular file"));
      }
      if (fcntl(fd.get(), F_SETFL, O_RDONLY) != 0) return Errno("fcntl", path);
      return fd.release();
    }
    case OpenMode::kCreateWrite:
      return OpenBeneath(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    case OpenMode::kCreateDirect: {
      RS_ASSIGN_OR_RETURN(int fd, OpenBeneath(path, O_WRONLY | O_CREAT | O_EXCL, 0644));
      TryDirect(fd);
      return fd;
    }
    case OpenMode::kDirectory:
      return OpenBeneath(path, O_RDONLY | O_DIRECTORY);
  }
  return absl::InvalidArgumentError("bad open mode");
}

absl::StatusOr<size_t> PosixFiles::ReadFull(int fd, int64_t offset, absl::Span<char> dst) const {
  size_t done = 0;
  while (done < dst.size()) {
    const ssize_t n = Sys(faults_, Step::kRead, [&] {
      return pread(fd, dst.data() + done, dst.size() - done, static_cast<off_t>(offset + done));
    });
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return ErrnoToStatus(errno, "read");
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

absl::Status PosixFiles::WriteFull(int fd, int64_t offset, absl::Span<const char> src) const {
  size_t done = 0;
  while (done < src.size()) {
    const ssize_t n = Sys(faults_, Step::kWrite, [&] {
      return pwrite(fd, src.data() + done, src.size() - done, static_cast<off_t>(offset + done));
    });
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return ErrnoToStatus(errno, "write");
    }
    if (n == 0) return absl::ResourceExhaustedError("write: no progress");
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status PosixFiles::Truncate(int fd, int64_t size) const {
  if (Sys(faults_, Step::kTruncate, [&] { return ftruncate(fd, static_cast<off_t>(size)); }) !=
      0) {
    return ErrnoToStatus(errno, "ftruncate");
  }
  return absl::OkStatus();
}

absl::Status PosixFiles::Sync(int fd, bool data_only) const {
  const int rc =
      Sys(faults_, Step::kFsync, [&] { return data_only ? fdatasync(fd) : fsync(fd); });
  if (rc != 0) return ErrnoToStatus(errno, data_only ? "fdatasync" : "fsync");
  return absl::OkStatus();
}

absl::Status PosixFiles::Close(int fd) const {
  // Linux releases the descriptor even when close fails; never retry. An
  // injected failure still closes, as the kernel's would.
  if (const int err = Fault(Step::kClose)) {
    ::close(fd);
    return ErrnoToStatus(err, "close");
  }
  if (::close(fd) != 0 && errno != EINTR) return ErrnoToStatus(errno, "close");
  return absl::OkStatus();
}

absl::StatusOr<std::string> PosixFiles::ReadAttr(int fd) const {
  char value[256];
  const ssize_t n = Sys(faults_, Step::kGetXattr,
                        [&] { return fgetxattr(fd, attr_.c_str(), value, sizeof(value)); });
  if (n >= 0) return std::string(value, static_cast<size_t>(n));
  if (errno == ENODATA || errno == ENOTSUP) return std::string();
  return ErrnoToStatus(errno, "fgetxattr");
}

absl::StatusOr<FileStat> PosixFiles::StatFd(int fd) const {
  struct stat st;
  if (Sys(faults_, Step::kStat, [&] { return fstat(fd, &st); }) != 0) {
    return ErrnoToStatus(errno, "fstat");
  }
  FileStat out;
  out.size = st.st_size;
  out.modified = absl::TimeFromTimespec(st.st_mtim);
  out.is_regular = S_ISREG(st.st_mode);
  out.is_directory = S_ISDIR(st.st_mode);
  if (out.is_regular) {
    RS_ASSIGN_OR_RETURN(out.metadata, ReadAttr(fd));
  }
  return out;
}

absl::StatusOr<PosixFiles::Parent> PosixFiles::OpenParent(absl::string_view path,
                                                           int flags) const {
  Parent parent;
  parent.leaf = std::string(BaseName(path));
  if (parent.leaf.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("no file name in \"", path, "\""));
  }
  RS_ASSIGN_OR_RETURN(const int fd, OpenBeneath(ParentDir(path), flags | O_DIRECTORY));
  parent.fd.reset(fd);
  return parent;
}

absl::Status PosixFiles::AtLeaf(absl::string_view path, Step step, absl::string_view what,
                                absl::FunctionRef<int(int dir, const char* leaf)> call) const {
  RS_ASSIGN_OR_RETURN(const Parent parent, OpenParent(path, O_PATH));
  if (Sys(faults_, step, [&] { return call(parent.fd.get(), parent.leaf.c_str()); }) != 0) {
    return Errno(what, path);
  }
  return absl::OkStatus();
}

absl::Status PosixFiles::RenameAt(const Parent& from_parent, const Parent& to_parent,
                                  absl::string_view from, absl::string_view to) const {
  if (Sys(faults_, Step::kRename, [&] {
        return renameat(from_parent.fd.get(), from_parent.leaf.c_str(), to_parent.fd.get(),
                        to_parent.leaf.c_str());
      }) != 0) {
    return Errno("rename", absl::StrCat(from, " to ", to));
  }
  return absl::OkStatus();
}

absl::StatusOr<FileStat> PosixFiles::StatPath(absl::string_view path) const {
  RS_ASSIGN_OR_RETURN(const Parent parent, OpenParent(path, O_PATH));
  struct stat st;
  if (Sys(faults_, Step::kStat, [&] {
        return fstatat(parent.fd.get(), parent.leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW);
      }) != 0) {
    return Errno("stat", path);
  }
  if (!S_ISREG(st.st_mode)) {
    FileStat out;
    out.size = st.st_size;
    out.modified = absl::TimeFromTimespec(st.st_mtim);
    out.is_directory = S_ISDIR(st.st_mode);
    return out;
  }
  const int fd = Sys(faults_, Step::kOpen, [&] {
    return openat(parent.fd.get(), parent.leaf.c_str(),
                  O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  });
  if (fd < 0) return Errno("open", path);
  ScopedFd file(fd);
  return StatFd(file.get());
}

absl::Status PosixFiles::SetAttr(int fd, absl::string_view name, absl::string_view value) const {
  const std::string n(name);
  if (Sys(faults_, Step::kSetXattr,
          [&] { return fsetxattr(fd, n.c_str(), value.data(), value.size(), 0); }) != 0) {
    return ErrnoToStatus(errno, "fsetxattr");
  }
  return absl::OkStatus();
}

absl::Status PosixFiles::SetMetadata(int fd, absl::string_view value) const {
  return SetAttr(fd, attr_, value);
}

absl::StatusOr<FileRead> PosixFiles::ReadFile(absl::string_view path, absl::Span<char> dst,
                                              bool metadata) const {
  RS_ASSIGN_OR_RETURN(int fd, Open(path, OpenMode::kRead));
  absl::StatusOr<FileRead> out = [&]() -> absl::StatusOr<FileRead> {
    FileRead read;
    RS_ASSIGN_OR_RETURN(read.length, ReadFull(fd, 0, dst));
    if (metadata) {
      RS_ASSIGN_OR_RETURN(read.metadata, ReadAttr(fd));
    }
    return read;
  }();
  // The descriptor is gone even if close fails, and what was read stands.
  (void)Close(fd);
  return out;
}

absl::Status PosixFiles::Rename(absl::string_view from, absl::string_view to) const {
  RS_ASSIGN_OR_RETURN(const Parent from_parent, OpenParent(from, O_PATH));
  RS_ASSIGN_OR_RETURN(const Parent to_parent, OpenParent(to, O_PATH));
  return RenameAt(from_parent, to_parent, from, to);
}

absl::Status PosixFiles::CommitFile(int fd, absl::string_view metadata, absl::string_view from,
                                    absl::string_view to) const {
  RS_ASSIGN_OR_RETURN(const Parent from_parent, OpenParent(from, O_PATH));
  // Read-only, not O_PATH: the directory is fsynced through it.
  RS_ASSIGN_OR_RETURN(const Parent to_parent, OpenParent(to, O_RDONLY));
  RS_RETURN_IF_ERROR(SetMetadata(fd, metadata));
  RS_RETURN_IF_ERROR(Sync(fd, /*data_only=*/false));
  RS_RETURN_IF_ERROR(RenameAt(from_parent, to_parent, from, to));
  if (Sys(faults_, Step::kFsync, [&] { return fsync(to_parent.fd.get()); }) != 0) {
    return Errno("fsync directory of", to);
  }
  return absl::OkStatus();
}

absl::Status PosixFiles::Unlink(absl::string_view path) const {
  return AtLeaf(path, Step::kUnlink, "unlink",
                [](int dir, const char* leaf) { return unlinkat(dir, leaf, 0); });
}

absl::Status PosixFiles::MakeDir(absl::string_view path) const {
  return AtLeaf(path, Step::kMkdir, "mkdir",
                [](int dir, const char* leaf) { return mkdirat(dir, leaf, 0755); });
}

absl::Status PosixFiles::RemoveDir(absl::string_view path) const {
  return AtLeaf(path, Step::kRmdir, "rmdir",
                [](int dir, const char* leaf) { return unlinkat(dir, leaf, AT_REMOVEDIR); });
}

absl::StatusOr<std::vector<DirEntry>> PosixFiles::ReadDir(absl::string_view path) const {
  RS_ASSIGN_OR_RETURN(int fd, OpenBeneath(path, O_RDONLY | O_DIRECTORY));
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

}  // namespace ringstore::storage
