// Synchronous POSIX file operations confined to a root directory.
//
// The blocking building blocks the thread-pool engine runs on its workers
// (and that other engines use for what their kernel interface lacks, such as
// reading a directory). Every path is relative to the root and is resolved
// with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS): an operation on "a/b"
// opens "a" that way and then acts on "b" relative to it, so neither ".."
// nor a symlink anywhere in the path reaches outside the root. Errors come
// from ErrnoToStatus, naming the operation and path. Before each system call
// the fault injector, if any, may fail it (fault_injection.h).
//
// Every method may block; all are thread-safe.
#ifndef RINGSTORE_STORAGE_ENGINE_POSIX_OPS_H_
#define RINGSTORE_STORAGE_ENGINE_POSIX_OPS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "storage/engine/engine.h"
#include "storage/engine/fault_injection.h"
#include "storage/engine/scoped_fd.h"

namespace ringstore::storage {

// Turns on O_DIRECT for `fd` if its file system allows it with writes
// aligned to kDirectAlignment (OpenMode::kCreateDirect); otherwise the file
// stays buffered. A statx and a fcntl of the open file: never blocks.
// Setting the flag after the open, not in it: an open with O_CREAT |
// O_DIRECT on a file system without it would create the file and then fail.
void TryDirect(int fd);

class PosixFiles {
 public:
  // `root` is borrowed and must stay open while this object is used. `attr`
  // names the metadata attribute (EngineOptions::metadata_attr); `faults`
  // may be null.
  PosixFiles(int root, std::string attr, FaultInjector* faults = nullptr)
      : root_(root), attr_(std::move(attr)), faults_(faults) {}

  // openat2(root, path, flags, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS). `path`
  // "" means the root itself. Returns the new descriptor (O_CLOEXEC).
  absl::StatusOr<int> OpenBeneath(absl::string_view path, int flags, int mode = 0) const;
  // Opens `path` as `mode` says (see OpenMode).
  absl::StatusOr<int> Open(absl::string_view path, OpenMode mode) const;

  // pread until `dst` is full or end of file; EINTR/EAGAIN are retried.
  absl::StatusOr<size_t> ReadFull(int fd, int64_t offset, absl::Span<char> dst) const;
  // pwrite until all of `src` is written.
  absl::Status WriteFull(int fd, int64_t offset, absl::Span<const char> src) const;
  absl::Status Truncate(int fd, int64_t size) const;
  absl::Status Sync(int fd, bool data_only) const;
  absl::Status Close(int fd) const;

  // fstat plus the metadata attribute (empty if absent).
  absl::StatusOr<FileStat> StatFd(int fd) const;
  // Stat of `path` without following a final symlink, plus the attribute.
  absl::StatusOr<FileStat> StatPath(absl::string_view path) const;
  // Sets the metadata attribute of `fd`.
  absl::Status SetMetadata(int fd, absl::string_view value) const;
  // Sets any attribute (used to probe the file system).
  absl::Status SetAttr(int fd, absl::string_view name, absl::string_view value) const;
  // Open, read from offset 0 into `dst`, read the attribute if `metadata`,
  // close (Engine::ReadFile).
  absl::StatusOr<FileRead> ReadFile(absl::string_view path, absl::Span<char> dst,
                                    bool metadata) const;

  absl::Status Rename(absl::string_view from, absl::string_view to) const;
  // Engine::CommitFile: metadata, fsync, rename, fsync of the directory.
  absl::Status CommitFile(int fd, absl::string_view metadata, absl::string_view from,
                          absl::string_view to) const;
  absl::Status Unlink(absl::string_view path) const;
  absl::Status MakeDir(absl::string_view path) const;
  absl::Status RemoveDir(absl::string_view path) const;
  absl::StatusOr<std::vector<DirEntry>> ReadDir(absl::string_view path) const;

 private:
  // The parent directory of a path, open, and the path's last component.
  struct Parent {
    ScopedFd fd;
    std::string leaf;
  };

  // errno the fault injector picks for `step`, or 0.
  int Fault(Step step) const { return InjectedErrno(faults_, step); }
  // The parent directory of `path` opened (beneath the root) with `flags`.
  // InvalidArgument if `path` has no last component.
  absl::StatusOr<Parent> OpenParent(absl::string_view path, int flags) const;
  // Opens the parent of `path` (O_PATH) and runs `call(parent fd, leaf)`, a
  // system call returning -1 with errno on failure, as step `step`; errors
  // name `what` and `path`. The one open-parent-then-act of this file.
  absl::Status AtLeaf(absl::string_view path, Step step, absl::string_view what,
                      absl::FunctionRef<int(int dir, const char* leaf)> call) const;
  // renameat from one open parent to another (step kRename).
  absl::Status RenameAt(const Parent& from_parent, const Parent& to_parent,
                        absl::string_view from, absl::string_view to) const;
  absl::StatusOr<std::string> ReadAttr(int fd) const;

  const int root_;
  const std::string attr_;
  FaultInjector* const faults_;
};

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_ENGINE_POSIX_OPS_H_
