// Synchronous POSIX file operations confined to a root directory.
//
// The blocking building blocks the thread-pool engine runs on its workers
// (and that other engines use for what their kernel interface lacks, such as
// reading a directory). Every path is relative to `root` and is resolved with
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS): an operation on "a/b"
// opens "a" that way and then acts on "b" relative to it, so neither ".."
// nor a symlink anywhere in the path reaches outside the root. Errors come
// from ErrnoToStatus, naming the operation and path.
#ifndef RINGSTORE_STORAGE_POSIX_OPS_H_
#define RINGSTORE_STORAGE_POSIX_OPS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "storage/engine.h"

namespace ringstore::storage::posix {

// openat2(root, path, flags, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS). `path`
// "" means the root itself. Returns the new descriptor (O_CLOEXEC).
absl::StatusOr<int> OpenBeneath(int root, absl::string_view path, int flags,
                                int mode = 0);

// Opens `path` as `mode` says (see OpenMode).
absl::StatusOr<int> Open(int root, absl::string_view path, OpenMode mode);

// pread until `dst` is full or end of file; EINTR/EAGAIN are retried.
absl::StatusOr<size_t> ReadFull(int fd, int64_t offset, absl::Span<char> dst);
// pwrite until all of `src` is written.
absl::Status WriteFull(int fd, int64_t offset, absl::Span<const char> src);
absl::Status Sync(int fd, bool data_only);
absl::Status Close(int fd);

// fstat plus the `attr` extended attribute (empty if absent).
absl::StatusOr<FileStat> StatFd(int fd, absl::string_view attr);
// Stat of `path` without following a final symlink, plus `attr`.
absl::StatusOr<FileStat> StatPath(int root, absl::string_view path,
                                  absl::string_view attr);
absl::Status SetAttr(int fd, absl::string_view attr, absl::string_view value);
// Open, read from offset 0 into `dst`, read `attr`, close (Engine::ReadFile).
absl::StatusOr<FileRead> ReadFile(int root, absl::string_view path, absl::Span<char> dst,
                                  absl::string_view attr);

absl::Status Rename(int root, absl::string_view from, absl::string_view to);
absl::Status Unlink(int root, absl::string_view path);
absl::Status MakeDir(int root, absl::string_view path);
absl::Status RemoveDir(int root, absl::string_view path);
absl::StatusOr<std::vector<DirEntry>> ReadDir(int root, absl::string_view path);

}  // namespace ringstore::storage::posix

#endif  // RINGSTORE_STORAGE_POSIX_OPS_H_
