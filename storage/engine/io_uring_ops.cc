// The io_uring engine's operations that are one SQE or a short sequence of
// them, and the building blocks every operation shares (io_uring_files.h).
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "storage/engine/io_uring_files.h"
#include "storage/engine/posix_ops.h"
#include "storage/engine/status_util.h"

namespace ringstore::storage::uring_internal {

absl::Status ResError(int res, absl::string_view what) {
  absl::Status s = ::ringstore::storage::ErrnoToStatus(-res, what);
  if (res == -ENOSYS || res == -EOPNOTSUPP || res == -EPERM) s = MarkRefused(std::move(s));
  return s;
}

absl::Status CancelledError(absl::string_view what) {
  return absl::CancelledError(absl::StrCat(what, ": cancelled"));
}

FileStat FromStatx(const struct statx& stx) {
  FileStat st;
  st.size = static_cast<int64_t>(stx.stx_size);
  st.modified =
      absl::FromUnixSeconds(stx.stx_mtime.tv_sec) + absl::Nanoseconds(stx.stx_mtime.tv_nsec);
  st.is_regular = S_ISREG(stx.stx_mode);
  st.is_directory = S_ISDIR(stx.stx_mode);
  return st;
}

open_how HowBeneath(int flags, int mode) {
  open_how how;
  std::memset(&how, 0, sizeof(how));
  how.flags = static_cast<uint64_t>(flags);
  how.mode = static_cast<uint64_t>(mode);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
  return how;
}

void RingFiles::Open(std::string path, OpenMode mode, Callback<FileHandle> done) {
  ring_.Post([this, path = std::move(path), mode, done = std::move(done)]() mutable {
    auto report = [done = std::move(done)](absl::StatusOr<int> fd) mutable {
      if (!fd.ok()) return std::move(done)(fd.status(), kBackend);
      std::move(done)(FileHandle{*fd}, kBackend);
    };
    switch (mode) {
      case OpenMode::kRead:
        return OpenRegular(path, std::move(report));
      case OpenMode::kCreateWrite:
        return OpenBeneath(path, O_WRONLY | O_CREAT | O_EXCL, 0644, std::move(report));
      case OpenMode::kCreateDirect:
        return OpenBeneath(path, O_WRONLY | O_CREAT | O_EXCL, 0644,
                           [report = std::move(report)](absl::StatusOr<int> fd) mutable {
                             if (fd.ok()) TryDirect(*fd);  // a fcntl, inline
                             std::move(report)(std::move(fd));
                           });
      case OpenMode::kDirectory:
        return OpenBeneath(path, O_RDONLY | O_DIRECTORY, 0, std::move(report));
    }
  });
}

void RingFiles::Read(FileHandle file, int64_t offset, absl::Span<char> dst, Cancellation* cancel,
                     Callback<size_t> done) {
  ring_.Post([this, fd = static_cast<int>(file.id), offset, dst, cancel,
              done = std::move(done)]() mutable {
    if (IsCancelled(cancel)) return std::move(done)(CancelledError("read"), kBackend);
    const uint64_t op = ring_.BeginOp(cancel);
    ReadFrom(fd, offset, dst, 0, op, cancel,
             [this, op, done = std::move(done)](absl::StatusOr<size_t> n) mutable {
               ring_.EndOp(op);
               std::move(done)(std::move(n), kBackend);
             });
  });
}

void RingFiles::Write(FileHandle file, int64_t offset, absl::Span<const char> src,
                      DoneCallback done) {
  ring_.Post([this, fd = static_cast<int>(file.id), offset, src, done = std::move(done)]() mutable {
    WriteTo(fd, offset, src, 0, std::move(done));
  });
}

void RingFiles::Truncate(FileHandle file, int64_t size, DoneCallback done) {
  if (!ring_.has_ftruncate()) return blocking_.Truncate(file, size, std::move(done));
  ring_.Post([this, fd = static_cast<int>(file.id), size, done = std::move(done)]() mutable {
    ring_.Submit(
        Step::kTruncate,
        [&](io_uring_sqe* sqe) {
          io_uring_prep_rw(kOpFtruncate, sqe, fd, nullptr, 0, static_cast<uint64_t>(size));
        },
        [done = std::move(done)](int res) mutable {
          std::move(done)(res < 0 ? ResError(res, "ftruncate") : absl::OkStatus(), kBackend);
        });
  });
}

void RingFiles::Sync(FileHandle file, bool data_only, DoneCallback done) {
  ring_.Post([this, fd = static_cast<int>(file.id), data_only, done = std::move(done)]() mutable {
    ring_.Submit(
        Step::kFsync,
        [&](io_uring_sqe* sqe) {
          io_uring_prep_fsync(sqe, fd, data_only ? IORING_FSYNC_DATASYNC : 0);
        },
        [data_only, done = std::move(done)](int res) mutable {
          std::move(done)(
              res < 0 ? ResError(res, data_only ? "fdatasync" : "fsync") : absl::OkStatus(),
              kBackend);
        });
  });
}

void RingFiles::Close(FileHandle file, DoneCallback done) {
  ring_.Post([this, fd = static_cast<int>(file.id), done = std::move(done)]() mutable {
    ring_.Submit(
        Step::kClose, [&](io_uring_sqe* sqe) { io_uring_prep_close(sqe, fd); },
        [done = std::move(done)](int res) mutable {
          // The descriptor is gone even when close reports an error.
          std::move(done)(res < 0 && res != -EINTR ? ResError(res, "close") : absl::OkStatus(),
                          kBackend);
        });
  });
}

void RingFiles::Stat(FileHandle file, Callback<FileStat> done) {
  ring_.Post([this, fd = static_cast<int>(file.id), done = std::move(done)]() mutable {
    StatxFd(fd, [this, fd, done = std::move(done)](absl::StatusOr<FileStat> st) mutable {
      if (!st.ok() || !st->is_regular) return std::move(done)(std::move(st), kBackend);
      AddMetadata(fd, *std::move(st), [done = std::move(done)](absl::StatusOr<FileStat> s) mutable {
        std::move(done)(std::move(s), kBackend);
      });
    });
  });
}

void RingFiles::StatPath(std::string path, Callback<FileStat> done) {
  ring_.Post([this, path = std::move(path), done = std::move(done)]() mutable {
    auto stx = std::make_shared<struct statx>();
    AtLeaf(
        path, Step::kStat,
        [stx](io_uring_sqe* sqe, int parent, const char* leaf) {
          io_uring_prep_statx(sqe, parent, leaf, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS,
                              stx.get());
        },
        [this, stx, path, done = std::move(done)](absl::StatusOr<int> res) mutable {
          if (!res.ok()) return std::move(done)(res.status(), kBackend);
          if (*res < 0) {
            return std::move(done)(ResError(*res, absl::StrCat("stat ", path)), kBackend);
          }
          FileStat st = FromStatx(*stx);
          if (!st.is_regular) return std::move(done)(st, kBackend);
          // The metadata attribute needs a descriptor of the file itself.
          OpenBeneath(path, O_RDONLY | O_NONBLOCK, 0,
                      [this, st, done = std::move(done)](absl::StatusOr<int> fd) mutable {
                        if (!fd.ok()) return std::move(done)(fd.status(), kBackend);
                        AddMetadata(*fd, st,
                                    [this, fd = *fd, done = std::move(done)](
                                        absl::StatusOr<FileStat> s) mutable {
                                      CloseQuietly(fd);
                                      std::move(done)(std::move(s), kBackend);
                                    });
                      });
        });
  });
}

void RingFiles::SetMetadata(FileHandle file, std::string value, DoneCallback done) {
  ring_.Post([this, fd = static_cast<int>(file.id),
              value = std::make_shared<std::string>(std::move(value)),
              done = std::move(done)]() mutable {
    ring_.Submit(
        Step::kSetXattr,
        [&](io_uring_sqe* sqe) {
          io_uring_prep_fsetxattr(sqe, fd, ring_.attr().c_str(), value->data(), 0,
                                  static_cast<unsigned>(value->size()));
        },
        [value, done = std::move(done)](int res) mutable {
          std::move(done)(res < 0 ? ResError(res, "fsetxattr") : absl::OkStatus(), kBackend);
        });
  });
}

void RingFiles::Rename(std::string from, std::string to, DoneCallback done) {
  ring_.Post([this, from = std::move(from), to = std::move(to), done = std::move(done)]() mutable {
    WithParents(from, O_PATH, to, O_PATH, std::move(done),
                [this, from, to](std::shared_ptr<const Parents> p, DoneCallback finish) {
                  ring_.Submit(
                      Step::kRename,
                      [&](io_uring_sqe* sqe) {
                        io_uring_prep_renameat(sqe, p->from_fd, p->from_leaf.c_str(), p->to_fd,
                                               p->to_leaf.c_str(), 0);
                      },
                      // The kernel reads the names when it is submitted.
                      [p, from, to, finish = std::move(finish)](int res) mutable {
                        std::move(finish)(
                            res < 0 ? ResError(res, absl::StrCat("rename ", from, " to ", to))
                                    : absl::OkStatus(),
                            kBackend);
                      });
                });
  });
}

void RingFiles::Unlink(std::string path, DoneCallback done) {
  LeafOp(std::move(path), std::move(done), Step::kUnlink, "unlink",
         [](io_uring_sqe* sqe, int parent, const char* leaf) {
           io_uring_prep_unlinkat(sqe, parent, leaf, 0);
         });
}

void RingFiles::MakeDir(std::string path, DoneCallback done) {
  LeafOp(std::move(path), std::move(done), Step::kMkdir, "mkdir",
         [](io_uring_sqe* sqe, int parent, const char* leaf) {
           io_uring_prep_mkdirat(sqe, parent, leaf, 0755);
         });
}

void RingFiles::RemoveDir(std::string path, DoneCallback done) {
  LeafOp(std::move(path), std::move(done), Step::kRmdir, "rmdir",
         [](io_uring_sqe* sqe, int parent, const char* leaf) {
           io_uring_prep_unlinkat(sqe, parent, leaf, AT_REMOVEDIR);
         });
}

void RingFiles::ReadDir(std::string path, Callback<std::vector<DirEntry>> done) {
  // No io_uring opcode reads a directory.
  blocking_.ReadDir(std::move(path), std::move(done));
}

void RingFiles::OpenBeneath(const std::string& path, int flags, int mode, Then<int> done) {
  auto how = std::make_shared<open_how>(HowBeneath(flags | O_CLOEXEC, mode));
  auto name = std::make_shared<std::string>(path.empty() ? "." : path);
  ring_.Submit(
      Step::kOpen,
      [&](io_uring_sqe* sqe) {
        io_uring_prep_openat2(sqe, ring_.root(), name->c_str(), how.get());
      },
      [this, how, name, path, flags, mode, done = std::move(done)](int res) mutable {
        if (res == -EAGAIN || res == -EINTR) {
          return OpenBeneath(path, flags, mode, std::move(done));
        }
        if (res < 0) return std::move(done)(ResError(res, absl::StrCat("open ", path)));
        std::move(done)(res);
      });
}

void RingFiles::OpenRegular(const std::string& path, Then<int> done) {
  OpenBeneath(path, O_RDONLY | O_NONBLOCK, 0,
              [this, path, done = std::move(done)](absl::StatusOr<int> fd) mutable {
                if (!fd.ok()) return std::move(done)(fd.status());
                absl::Status s = CheckRegular(*fd, path);
                if (s.ok() && fcntl(*fd, F_SETFL, O_RDONLY) != 0) {
                  s = ::ringstore::storage::ErrnoToStatus(errno, absl::StrCat("fcntl ", path));
                }
                if (!s.ok()) {
                  CloseQuietly(*fd);
                  return std::move(done)(s);
                }
                std::move(done)(*fd);
              });
}

absl::Status RingFiles::CheckRegular(int fd, const std::string& path) {
  struct statx stx;
  if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE, &stx) != 0) {
    return ::ringstore::storage::ErrnoToStatus(errno, absl::StrCat("statx ", path));
  }
  if (!S_ISREG(stx.stx_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("\"", path, "\" is not a regular file"));
  }
  return absl::OkStatus();
}

void RingFiles::CloseQuietly(int fd) {
  ring_.Submit(
      Step::kClose, [&](io_uring_sqe* sqe) { io_uring_prep_close(sqe, fd); }, [](int) {});
}

void RingFiles::StatxFd(int fd, Then<FileStat> done) {
  auto stx = std::make_shared<struct statx>();
  ring_.Submit(
      Step::kStat,
      [&](io_uring_sqe* sqe) {
        io_uring_prep_statx(sqe, fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, stx.get());
      },
      [stx, done = std::move(done)](int res) mutable {
        if (res < 0) return std::move(done)(ResError(res, "statx"));
        std::move(done)(FromStatx(*stx));
      });
}

void RingFiles::AddMetadata(int fd, FileStat st, Then<FileStat> done) {
  auto value = std::make_shared<std::string>(kMaxMetadataBytes, '\0');
  ring_.Submit(
      Step::kGetXattr,
      [&](io_uring_sqe* sqe) {
        io_uring_prep_fgetxattr(sqe, fd, ring_.attr().c_str(), value->data(),
                                static_cast<unsigned>(value->size()));
      },
      [value, st = std::move(st), done = std::move(done)](int res) mutable {
        if (res >= 0) {
          st.metadata.assign(value->data(), static_cast<size_t>(res));
        } else if (res != -ENODATA && res != -EOPNOTSUPP) {
          return std::move(done)(ResError(res, "fgetxattr"));
        }
        std::move(done)(std::move(st));
      });
}

void RingFiles::ReadFrom(int fd, int64_t offset, absl::Span<char> dst, size_t done_bytes,
                         uint64_t op, Cancellation* cancel, Then<size_t> done) {
  char* p = dst.data() + done_bytes;
  const unsigned len = static_cast<unsigned>(dst.size() - done_bytes);
  const int index = ring_.BufferIndex(p, len);
  ring_.Submit(
      Step::kRead,
      [&](io_uring_sqe* sqe) {
        if (index >= 0) {
          io_uring_prep_read_fixed(sqe, fd, p, len, offset + done_bytes, index);
        } else {
          io_uring_prep_read(sqe, fd, p, len, offset + done_bytes);
        }
      },
      [this, fd, offset, dst, done_bytes, op, cancel, done = std::move(done)](int res) mutable {
        if (res == -ECANCELED || (res < 0 && IsCancelled(cancel))) {
          return std::move(done)(CancelledError("read"));
        }
        if (res == -EAGAIN || res == -EINTR) {
          return ReadFrom(fd, offset, dst, done_bytes, op, cancel, std::move(done));
        }
        if (res < 0) return std::move(done)(ResError(res, "read"));
        const size_t total = done_bytes + static_cast<size_t>(res);
        if (res == 0 || total == dst.size()) return std::move(done)(total);
        // A short read: continue, unless the reader has gone.
        if (IsCancelled(cancel)) return std::move(done)(CancelledError("read"));
        ReadFrom(fd, offset, dst, total, op, cancel, std::move(done));
      },
      op);
}

void RingFiles::WriteTo(int fd, int64_t offset, absl::Span<const char> src, size_t done_bytes,
                        DoneCallback done) {
  if (done_bytes == src.size()) return std::move(done)(absl::OkStatus(), kBackend);
  const char* p = src.data() + done_bytes;
  const unsigned len = static_cast<unsigned>(src.size() - done_bytes);
  const int index = ring_.BufferIndex(p, len);
  ring_.Submit(
      Step::kWrite,
      [&](io_uring_sqe* sqe) {
        if (index >= 0) {
          io_uring_prep_write_fixed(sqe, fd, p, len, offset + done_bytes, index);
        } else {
          io_uring_prep_write(sqe, fd, p, len, offset + done_bytes);
        }
      },
      [this, fd, offset, src, done_bytes, done = std::move(done)](int res) mutable {
        if (res == -EAGAIN || res == -EINTR) {
          return WriteTo(fd, offset, src, done_bytes, std::move(done));
        }
        if (res < 0) return std::move(done)(ResError(res, "write"), kBackend);
        if (res == 0) {
          return std::move(done)(absl::ResourceExhaustedError("write: no progress"), kBackend);
        }
        WriteTo(fd, offset, src, done_bytes + static_cast<size_t>(res), std::move(done));
      });
}

void RingFiles::OpenParent(const std::string& path, int flags,
                           Then<std::pair<int, std::string>> done) {
  std::string leaf(BaseName(path));
  if (leaf.empty()) {
    return std::move(done)(
        absl::InvalidArgumentError(absl::StrCat("no file name in \"", path, "\"")));
  }
  OpenBeneath(std::string(ParentDir(path)), flags | O_DIRECTORY, 0,
              [leaf = std::move(leaf), done = std::move(done)](absl::StatusOr<int> fd) mutable {
                if (!fd.ok()) return std::move(done)(fd.status());
                std::move(done)(std::make_pair(*fd, std::move(leaf)));
              });
}

void RingFiles::WithParents(const std::string& from, int from_flags, const std::string& to,
                            int to_flags, DoneCallback done, ParentsBody body) {
  OpenParent(from, from_flags,
             [this, to, to_flags, done = std::move(done),
              body = std::move(body)](absl::StatusOr<std::pair<int, std::string>> f) mutable {
               if (!f.ok()) return std::move(done)(f.status(), kBackend);
               OpenParent(
                   to, to_flags,
                   [this, f = *std::move(f), done = std::move(done),
                    body = std::move(body)](absl::StatusOr<std::pair<int, std::string>> t) mutable {
                     if (!t.ok()) {
                       CloseQuietly(f.first);
                       return std::move(done)(t.status(), kBackend);
                     }
                     auto p = std::make_shared<const Parents>(
                         Parents{f.first, std::move(f.second), t->first, std::move(t->second)});
                     const int from_fd = p->from_fd, to_fd = p->to_fd;
                     std::move(body)(std::move(p), [this, from_fd, to_fd, done = std::move(done)](
                                                       absl::Status s, Backend b) mutable {
                       CloseQuietly(from_fd);
                       CloseQuietly(to_fd);
                       std::move(done)(std::move(s), b);
                     });
                   });
             });
}

void RingFiles::AtLeaf(const std::string& path, Step step, LeafPrep prep, Then<int> done) {
  OpenParent(path, O_PATH,
             [this, step, prep = std::move(prep),
              done = std::move(done)](absl::StatusOr<std::pair<int, std::string>> parent) mutable {
               if (!parent.ok()) return std::move(done)(parent.status());
               const int parent_fd = parent->first;
               // The kernel reads the name when the SQE is submitted.
               auto name = std::make_shared<std::string>(std::move(parent->second));
               ring_.Submit(
                   step, [&](io_uring_sqe* sqe) { prep(sqe, parent_fd, name->c_str()); },
                   [this, parent_fd, name, done = std::move(done)](int res) mutable {
                     CloseQuietly(parent_fd);
                     std::move(done)(res);
                   });
             });
}

void RingFiles::LeafOp(std::string path, DoneCallback done, Step step, const char* what,
                       void (*prep)(io_uring_sqe*, int, const char*)) {
  ring_.Post([this, path = std::move(path), done = std::move(done), step, what, prep]() mutable {
    AtLeaf(path, step, prep,
           [path, what, done = std::move(done)](absl::StatusOr<int> res) mutable {
             if (!res.ok()) return std::move(done)(res.status(), kBackend);
             std::move(done)(
                 *res < 0 ? ResError(*res, absl::StrCat(what, " ", path)) : absl::OkStatus(),
                 kBackend);
           });
  });
}

}  // namespace ringstore::storage::uring_internal
