// The io_uring engine: the Engine operations built from SQEs on Rings
// (io_uring_ring.h has the machinery: thread, submission, completion,
// cancellation, fault injection).
//
// One Ring per core. An operation goes to the next ring round robin, except
// that one started from a ring's own thread (a completion starting the next
// step) stays on that ring: no cross-thread wake-up. Everything an operation
// does (all the SQEs of a chain, every retry) stays on its ring. File
// handles are plain descriptors, valid on every ring.
//
// Data moves with read_fixed/write_fixed on the registered BufferPool (plain
// read/write where registration failed). Opens are IORING_OP_OPENAT2 with
// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS; path operations open the parent
// directory that way and act relative to it. Short reads and writes are
// continued; -EAGAIN and -EINTR are retried; -ECANCELED ends an operation
// with Cancelled. Two operations are linked chains in one submission:
//   ReadFile:   openat2_direct(slot) -LINK-> [fgetxattr -HARDLINK->]
//               read_fixed -HARDLINK-> close_direct(slot)
//   CommitFile: fsetxattr -LINK-> fsync -LINK-> renameat -LINK-> fsync(dir)
// Reading a directory has no io_uring opcode: ReadDir runs on a helper
// thread.
//
// liburing appears in this file, io_uring_ring.{h,cc} and nowhere else.
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "storage/engine/blocking_ops.h"
#include "storage/engine/engine.h"
#include "storage/engine/io_uring_ring.h"
#include "storage/engine/posix_ops.h"
#include "storage/engine/status_util.h"

namespace ringstore::storage {
namespace {

constexpr Backend kBackend = Backend::kIoUring;
constexpr size_t kMaxMetadataBytes = 256;
// Rings (and ring threads) at most, one per core.
constexpr int kMaxRings = 8;

template <typename T>
using Callback = Engine::Callback<T>;
using DoneCallback = Engine::DoneCallback;
template <typename T>
using Then = absl::AnyInvocable<void(absl::StatusOr<T>) &&>;

// The Status of a failed CQE. ENOSYS, EOPNOTSUPP and EPERM (what a seccomp
// profile answers for io_uring) are refusals that another engine may not
// meet (fallback_engine.h).
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

// The Engine operations on one Ring. Public methods may be called from any
// thread and run on the ring's thread; the private building blocks run
// there.
class RingFiles {
 public:
  RingFiles(Ring* ring, FaultInjector* faults)
      : ring_(*ring), blocking_(ring->root(), ring->attr(), faults, kBackend, 1, "rs-uring-help") {}

  void Open(std::string path, OpenMode mode, Callback<FileHandle> done) {
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

  void Read(FileHandle file, int64_t offset, absl::Span<char> dst, Cancellation* cancel,
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

  void Write(FileHandle file, int64_t offset, absl::Span<const char> src, DoneCallback done) {
    ring_.Post([this, fd = static_cast<int>(file.id), offset, src,
                done = std::move(done)]() mutable {
      WriteTo(fd, offset, src, 0, std::move(done));
    });
  }

  void Truncate(FileHandle file, int64_t size, DoneCallback done) {
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

  void Sync(FileHandle file, bool data_only, DoneCallback done) {
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

  void Close(FileHandle file, DoneCallback done) {
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

  void ReadFile(std::string path, absl::Span<char> dst, const ReadFileOptions& options,
                Callback<FileRead> done) {
    ring_.Post([this, path = std::move(path), dst, options, done = std::move(done)]() mutable {
      if (IsCancelled(options.cancel)) {
        return std::move(done)(CancelledError(absl::StrCat("read ", path)), kBackend);
      }
      const int slot = ring_.TakeSlot();
      if (slot < 0) return ReadFileUnlinked(path, dst, options, std::move(done));
      ReadFileChain(std::move(path), dst, slot, options, std::move(done));
    });
  }

  void Stat(FileHandle file, Callback<FileStat> done) {
    ring_.Post([this, fd = static_cast<int>(file.id), done = std::move(done)]() mutable {
      StatxFd(fd, [this, fd, done = std::move(done)](absl::StatusOr<FileStat> st) mutable {
        if (!st.ok() || !st->is_regular) return std::move(done)(std::move(st), kBackend);
        AddMetadata(fd, *std::move(st), [done = std::move(done)](absl::StatusOr<FileStat> s) mutable {
          std::move(done)(std::move(s), kBackend);
        });
      });
    });
  }

  void StatPath(std::string path, Callback<FileStat> done) {
    ring_.Post([this, path = std::move(path), done = std::move(done)]() mutable {
      OpenParent(path, O_PATH, [this, path, done = std::move(done)](
                                   absl::StatusOr<std::pair<int, std::string>> parent) mutable {
        if (!parent.ok()) return std::move(done)(parent.status(), kBackend);
        const int parent_fd = parent->first;
        auto name = std::make_shared<std::string>(std::move(parent->second));
        auto stx = std::make_shared<struct statx>();
        ring_.Submit(
            Step::kStat,
            [&](io_uring_sqe* sqe) {
              io_uring_prep_statx(sqe, parent_fd, name->c_str(), AT_SYMLINK_NOFOLLOW,
                                  STATX_BASIC_STATS, stx.get());
            },
            [this, parent_fd, name, stx, path, done = std::move(done)](int res) mutable {
              CloseQuietly(parent_fd);
              if (res < 0) {
                return std::move(done)(ResError(res, absl::StrCat("stat ", path)), kBackend);
              }
              FileStat st = FromStatx(*stx);
              if (!st.is_regular) return std::move(done)(st, kBackend);
              // The metadata attribute needs a descriptor of the file itself.
              OpenBeneath(path, O_RDONLY | O_NONBLOCK, 0,
                          [this, st, done = std::move(done)](absl::StatusOr<int> fd) mutable {
                            if (!fd.ok()) return std::move(done)(fd.status(), kBackend);
                            AddMetadata(*fd, st, [this, fd = *fd, done = std::move(done)](
                                                     absl::StatusOr<FileStat> s) mutable {
                              CloseQuietly(fd);
                              std::move(done)(std::move(s), kBackend);
                            });
                          });
            });
      });
    });
  }

  void SetMetadata(FileHandle file, std::string value, DoneCallback done) {
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

  void Rename(std::string from, std::string to, DoneCallback done) {
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

  void CommitFile(FileHandle file, std::string metadata, std::string from, std::string to,
                  DoneCallback done) {
    ring_.Post([this, fd = static_cast<int>(file.id), metadata = std::move(metadata),
                from = std::move(from), to = std::move(to), done = std::move(done)]() mutable {
      // The directory of `to` is opened read-only, not O_PATH: the chain
      // fsyncs it.
      WithParents(from, O_PATH, to, O_RDONLY, std::move(done),
                  [this, fd, metadata = std::move(metadata), from, to](
                      std::shared_ptr<const Parents> p, DoneCallback finish) mutable {
                    CommitChain(fd, std::move(metadata), from, to, std::move(p),
                                std::move(finish));
                  });
    });
  }

  void Unlink(std::string path, DoneCallback done) {
    LeafOp(std::move(path), std::move(done), Step::kUnlink, "unlink",
           [](io_uring_sqe* sqe, int parent, const char* leaf) {
             io_uring_prep_unlinkat(sqe, parent, leaf, 0);
           });
  }

  void MakeDir(std::string path, DoneCallback done) {
    LeafOp(std::move(path), std::move(done), Step::kMkdir, "mkdir",
           [](io_uring_sqe* sqe, int parent, const char* leaf) {
             io_uring_prep_mkdirat(sqe, parent, leaf, 0755);
           });
  }

  void RemoveDir(std::string path, DoneCallback done) {
    LeafOp(std::move(path), std::move(done), Step::kRmdir, "rmdir",
           [](io_uring_sqe* sqe, int parent, const char* leaf) {
             io_uring_prep_unlinkat(sqe, parent, leaf, AT_REMOVEDIR);
           });
  }

  void ReadDir(std::string path, Callback<std::vector<DirEntry>> done) {
    // No io_uring opcode reads a directory.
    blocking_.ReadDir(std::move(path), std::move(done));
  }

 private:
  // --- Linked chains -------------------------------------------------------

  // ReadFile in one submission, into direct slot `slot`. A failed open
  // cancels the rest; a missing attribute or a short read (every small file
  // read into a larger buffer) must not cancel the close, hence the hard
  // links. The slot is free again only once a close of it has completed
  // (opening into an occupied slot would silently close the file there),
  // and before the caller hears back.
  struct ReadChain {
    std::string path;
    open_how how;
    std::string value;
    absl::Span<char> dst;
    ReadFileOptions options;
    // The results of the chain's steps; `xattr` stays -ENODATA without one.
    int open = 0, xattr = -ENODATA, read = 0, close = 0;
  };

  void ReadFileChain(std::string path, absl::Span<char> dst, int slot,
                     const ReadFileOptions& options, Callback<FileRead> done) {
    auto c = std::make_shared<ReadChain>();
    c->path = std::move(path);
    c->options = options;
    if (options.metadata) c->value.assign(kMaxMetadataBytes, '\0');
    // O_NONBLOCK: a FIFO placed in the root must not block the open (the
    // read then finds no data and no metadata, and is checked below).
    // Regular files read as usual: on Linux 6.x io_uring still retries them
    // in io-wq. O_CLOEXEC is EINVAL for a direct descriptor.
    c->how = HowBeneath(O_RDONLY | O_NONBLOCK, 0);
    c->dst = dst;
    const int index = ring_.BufferIndex(dst.data(), dst.size());
    const std::string& attr = ring_.attr();
    std::vector<Ring::ChainStep> steps;
    steps.push_back({Step::kOpen,
                     [c, slot, root = ring_.root()](io_uring_sqe* sqe) {
                       io_uring_prep_openat2_direct(sqe, root, c->path.c_str(), &c->how, slot);
                     },
                     IOSQE_IO_LINK, /*cancellable=*/true});
    if (options.metadata) {
      steps.push_back({Step::kGetXattr,
                       [c, slot, &attr](io_uring_sqe* sqe) {
                         io_uring_prep_fgetxattr(sqe, slot, attr.c_str(), c->value.data(),
                                                 static_cast<unsigned>(c->value.size()));
                         sqe->flags |= IOSQE_FIXED_FILE;
                       },
                       IOSQE_IO_HARDLINK});
    }
    steps.push_back({Step::kRead,
                     [c, slot, index](io_uring_sqe* sqe) {
                       const auto len = static_cast<unsigned>(c->dst.size());
                       if (index >= 0) {
                         io_uring_prep_read_fixed(sqe, slot, c->dst.data(), len, 0, index);
                       } else {
                         io_uring_prep_read(sqe, slot, c->dst.data(), len, 0);
                       }
                       sqe->flags |= IOSQE_FIXED_FILE;
                     },
                     IOSQE_IO_HARDLINK, /*cancellable=*/true});
    steps.push_back({Step::kClose,
                     [slot](io_uring_sqe* sqe) { io_uring_prep_close_direct(sqe, slot); }});
    const uint64_t op = ring_.BeginOp(options.cancel);
    ring_.SubmitChain(std::move(steps), [this, c, slot, op, done = std::move(done)](
                                            std::vector<int> res) mutable {
      ring_.EndOp(op);
      size_t i = 0;
      c->open = res[i++];
      if (c->options.metadata) c->xattr = res[i++];
      c->read = res[i++];
      c->close = res[i++];
      if (c->open < 0 || c->close == 0) {
        // Nothing was opened into the slot, or it was closed.
        ring_.ReleaseSlot(slot);
        return FinishReadChain(*c, std::move(done));
      }
      // The close failed or was cancelled: close again, and give the slot
      // back before answering.
      ring_.Submit(
          Step::kClose, [slot](io_uring_sqe* sqe) { io_uring_prep_close_direct(sqe, slot); },
          [this, c, slot, done = std::move(done)](int) mutable {
            ring_.ReleaseSlot(slot);
            FinishReadChain(*c, std::move(done));
          });
    });
  }

  void FinishReadChain(const ReadChain& c, Callback<FileRead> done) {
    const int open_res = c.open, xattr_res = c.xattr, read_res = c.read;
    Cancellation* const cancel = c.options.cancel;
    const std::string& path = c.path;
    // A failed open cancels the rest of the chain: only its own -ECANCELED,
    // or the read's after a good open, means the caller cancelled.
    const bool cut_short =
        open_res == -ECANCELED || (open_res >= 0 && read_res == -ECANCELED) ||
        ((open_res == -EINTR || read_res == -EINTR) && IsCancelled(cancel));
    if (cut_short) {
      return std::move(done)(CancelledError(absl::StrCat("read ", path)), kBackend);
    }
    if (open_res < 0) {
      return std::move(done)(ResError(open_res, absl::StrCat("open ", path)), kBackend);
    }
    // -EAGAIN: a file system that cannot read without blocking for an
    // O_NONBLOCK descriptor. Nothing read and no metadata: an empty file
    // placed by hand, or no regular file at all. Both take the slow path,
    // which checks what it opened.
    if (read_res == -EAGAIN || read_res == -EINTR || (read_res == 0 && xattr_res < 0)) {
      return ReadFileUnlinked(path, c.dst, c.options, std::move(done));
    }
    if (read_res < 0) {
      return std::move(done)(ResError(read_res, absl::StrCat("read ", path)), kBackend);
    }
    FileRead out;
    out.length = static_cast<size_t>(read_res);
    if (xattr_res >= 0) {
      out.metadata.assign(c.value.data(), static_cast<size_t>(xattr_res));
    } else if (xattr_res != -ENODATA && xattr_res != -EOPNOTSUPP) {
      return std::move(done)(ResError(xattr_res, "fgetxattr"), kBackend);
    }
    std::move(done)(std::move(out), kBackend);
  }

  // ReadFile without a free slot: the same steps one at a time on a plain
  // descriptor.
  void ReadFileUnlinked(const std::string& path, absl::Span<char> dst,
                        const ReadFileOptions& options, Callback<FileRead> done) {
    OpenRegular(path, [this, path, dst, options, done = std::move(done)](
                          absl::StatusOr<int> fd) mutable {
      if (!fd.ok()) return std::move(done)(fd.status(), kBackend);
      const uint64_t op = ring_.BeginOp(options.cancel);
      ReadFrom(*fd, 0, dst, 0, op, options.cancel,
               [this, fd = *fd, op, metadata = options.metadata,
                done = std::move(done)](absl::StatusOr<size_t> n) mutable {
                 ring_.EndOp(op);
                 if (!n.ok()) {
                   CloseQuietly(fd);
                   return std::move(done)(n.status(), kBackend);
                 }
                 if (!metadata) {
                   CloseQuietly(fd);
                   FileRead out;
                   out.length = *n;
                   return std::move(done)(std::move(out), kBackend);
                 }
                 AddMetadata(fd, FileStat(), [this, fd, n = *n, done = std::move(done)](
                                                 absl::StatusOr<FileStat> st) mutable {
                   CloseQuietly(fd);
                   if (!st.ok()) return std::move(done)(st.status(), kBackend);
                   FileRead out;
                   out.length = n;
                   out.metadata = std::move(st->metadata);
                   std::move(done)(std::move(out), kBackend);
                 });
               });
    });
  }

  // Directory descriptors of both ends of a rename, with their last
  // components.
  struct Parents {
    int from_fd = -1;
    std::string from_leaf;
    int to_fd = -1;
    std::string to_leaf;
  };

  // CommitFile's chain: each step only if the one before succeeded, so the
  // file is renamed only once it is durable, and a failure before the
  // rename leaves `to` as it was.
  void CommitChain(int fd, std::string metadata, const std::string& from, const std::string& to,
                   std::shared_ptr<const Parents> p, DoneCallback done) {
    // Kept until the chain completes: the kernel reads the names and the
    // value when the chain is submitted.
    struct Args {
      std::string metadata;
      std::shared_ptr<const Parents> parents;
    };
    auto a = std::make_shared<Args>(Args{std::move(metadata), std::move(p)});
    const std::string& attr = ring_.attr();
    std::vector<Ring::ChainStep> steps;
    steps.push_back({Step::kSetXattr, [a, fd, &attr](io_uring_sqe* sqe) {
                       io_uring_prep_fsetxattr(sqe, fd, attr.c_str(), a->metadata.data(), 0,
                                               static_cast<unsigned>(a->metadata.size()));
                     }});
    steps.push_back({Step::kFsync, [fd](io_uring_sqe* sqe) { io_uring_prep_fsync(sqe, fd, 0); }});
    steps.push_back({Step::kRename, [a](io_uring_sqe* sqe) {
                       const Parents& p = *a->parents;
                       io_uring_prep_renameat(sqe, p.from_fd, p.from_leaf.c_str(), p.to_fd,
                                              p.to_leaf.c_str(), 0);
                     }});
    steps.push_back(
        {Step::kFsync, [a](io_uring_sqe* sqe) { io_uring_prep_fsync(sqe, a->parents->to_fd, 0); }});
    ring_.SubmitChain(std::move(steps), [a, from, to, done = std::move(done)](
                                            std::vector<int> res) mutable {
      const std::string what[] = {"fsetxattr " + from, "fsync " + from,
                                  absl::StrCat("rename ", from, " to ", to),
                                  "fsync directory of " + to};
      // The first step that failed explains the steps it cancelled.
      for (size_t i = 0; i < res.size(); ++i) {
        if (res[i] < 0) return std::move(done)(ResError(res[i], what[i]), kBackend);
      }
      std::move(done)(absl::OkStatus(), kBackend);
    });
  }

  // --- Building blocks -----------------------------------------------------

  void OpenBeneath(const std::string& path, int flags, int mode, Then<int> done) {
    auto how = std::make_shared<open_how>(HowBeneath(flags | O_CLOEXEC, mode));
    auto name = std::make_shared<std::string>(path.empty() ? "." : path);
    ring_.Submit(
        Step::kOpen,
        [&](io_uring_sqe* sqe) { io_uring_prep_openat2(sqe, ring_.root(), name->c_str(), how.get()); },
        [this, how, name, path, flags, mode, done = std::move(done)](int res) mutable {
          if (res == -EAGAIN || res == -EINTR) {
            return OpenBeneath(path, flags, mode, std::move(done));
          }
          if (res < 0) return std::move(done)(ResError(res, absl::StrCat("open ", path)));
          std::move(done)(res);
        });
  }

  // Opens `path` for reading; FailedPrecondition unless it is a regular
  // file. O_NONBLOCK so that a FIFO cannot block the open; a regular file
  // gets its normal flags back, so that a read missing the page cache goes
  // to io-wq instead of failing with -EAGAIN.
  //
  // The type check and the flag change are plain syscalls on the ring
  // thread: both act on an open descriptor and cannot block
  // (AT_STATX_DONT_SYNC: no round trip even on a network file system).
  // IORING_OP_STATX would be worse here: the kernel never runs it inline
  // (REQ_F_FORCE_ASYNC), so every open would wait for an io-wq worker,
  // which made opening a cached small file cost as much as the thread
  // pool's three blocking calls (bench/engine_bench SmallFiles).
  void OpenRegular(const std::string& path, Then<int> done) {
    OpenBeneath(path, O_RDONLY | O_NONBLOCK, 0, [this, path, done = std::move(done)](
                                                    absl::StatusOr<int> fd) mutable {
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

  static absl::Status CheckRegular(int fd, const std::string& path) {
    struct statx stx;
    if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE, &stx) != 0) {
      return ::ringstore::storage::ErrnoToStatus(errno, absl::StrCat("statx ", path));
    }
    if (!S_ISREG(stx.stx_mode)) {
      return absl::FailedPreconditionError(absl::StrCat("\"", path, "\" is not a regular file"));
    }
    return absl::OkStatus();
  }

  void CloseQuietly(int fd) {
    ring_.Submit(Step::kClose, [&](io_uring_sqe* sqe) { io_uring_prep_close(sqe, fd); },
                 [](int) {});
  }

  void StatxFd(int fd, Then<FileStat> done) {
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

  // Fills st.metadata from the attribute of `fd` (absent → empty).
  void AddMetadata(int fd, FileStat st, Then<FileStat> done) {
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

  // Reads into dst[done_bytes..] until it is full or the file ends.
  void ReadFrom(int fd, int64_t offset, absl::Span<char> dst, size_t done_bytes, uint64_t op,
                Cancellation* cancel, Then<size_t> done) {
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

  void WriteTo(int fd, int64_t offset, absl::Span<const char> src, size_t done_bytes,
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

  // Opens the parent directory of `path` (beneath the root, with `flags`)
  // and passes it on with the last component of the path.
  void OpenParent(const std::string& path, int flags, Then<std::pair<int, std::string>> done) {
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

  // Calls `body(parents, finish)` with the parent directories of `from` and
  // `to` open; `finish` closes them and reports to `done`.
  using ParentsBody =
      absl::AnyInvocable<void(std::shared_ptr<const Parents>, DoneCallback) &&>;
  void WithParents(const std::string& from, int from_flags, const std::string& to, int to_flags,
                   DoneCallback done, ParentsBody body) {
    OpenParent(from, from_flags, [this, to, to_flags, done = std::move(done),
                                  body = std::move(body)](
                                     absl::StatusOr<std::pair<int, std::string>> f) mutable {
      if (!f.ok()) return std::move(done)(f.status(), kBackend);
      OpenParent(to, to_flags, [this, f = *std::move(f), done = std::move(done),
                                body = std::move(body)](
                                   absl::StatusOr<std::pair<int, std::string>> t) mutable {
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

  // One SQE on the leaf of `path`, relative to its parent.
  void LeafOp(std::string path, DoneCallback done, Step step, const char* what,
              void (*prep)(io_uring_sqe*, int, const char*)) {
    ring_.Post([this, path = std::move(path), done = std::move(done), step, what, prep]() mutable {
      OpenParent(path, O_PATH, [this, path, step, what, prep, done = std::move(done)](
                                   absl::StatusOr<std::pair<int, std::string>> parent) mutable {
        if (!parent.ok()) return std::move(done)(parent.status(), kBackend);
        const int parent_fd = parent->first;
        auto name = std::make_shared<std::string>(std::move(parent->second));
        ring_.Submit(
            step, [&](io_uring_sqe* sqe) { prep(sqe, parent_fd, name->c_str()); },
            [this, parent_fd, name, path, what, done = std::move(done)](int res) mutable {
              CloseQuietly(parent_fd);
              std::move(done)(
                  res < 0 ? ResError(res, absl::StrCat(what, " ", path)) : absl::OkStatus(),
                  kBackend);
            });
      });
    });
  }

  Ring& ring_;
  // ReadDir (and, before kernel 6.9, Truncate) on a helper thread.
  BlockingOps blocking_;
};

class IoUringEngine final : public Engine {
 public:
  struct Lane {
    std::unique_ptr<Ring> ring;
    std::unique_ptr<RingFiles> files;
  };

  explicit IoUringEngine(std::vector<Lane> lanes) : lanes_(std::move(lanes)) {}

  ~IoUringEngine() override {
    // Rings first: each waits for its SQEs in flight, whose continuations
    // (the tail of an operation that has already called back, such as
    // closing a directory) still use their RingFiles.
    for (Lane& lane : lanes_) lane.ring.reset();
  }

  EngineInfo info() const override {
    EngineInfo info;
    info.backend = kBackend;
    info.features = lanes_.front().ring->features();
    info.features.push_back(absl::StrCat("rings=", lanes_.size()));
    info.buffers_registered = true;
    for (const Lane& lane : lanes_) {
      info.direct_slots += lane.ring->direct_slots();
      info.direct_slots_in_use += lane.ring->direct_slots_in_use();
      info.buffers_registered = info.buffers_registered && lane.ring->buffers_registered();
    }
    return info;
  }

  void Open(std::string path, OpenMode mode, Callback<FileHandle> done) override {
    Next().Open(std::move(path), mode, std::move(done));
  }
  void Read(FileHandle file, int64_t offset, absl::Span<char> dst, Cancellation* cancel,
            Callback<size_t> done) override {
    Next().Read(file, offset, dst, cancel, std::move(done));
  }
  void Write(FileHandle file, int64_t offset, absl::Span<const char> src,
             DoneCallback done) override {
    Next().Write(file, offset, src, std::move(done));
  }
  void Truncate(FileHandle file, int64_t size, DoneCallback done) override {
    Next().Truncate(file, size, std::move(done));
  }
  void Sync(FileHandle file, bool data_only, DoneCallback done) override {
    Next().Sync(file, data_only, std::move(done));
  }
  void Close(FileHandle file, DoneCallback done) override { Next().Close(file, std::move(done)); }
  void ReadFile(std::string path, absl::Span<char> dst, const ReadFileOptions& options,
                Callback<FileRead> done) override {
    Next().ReadFile(std::move(path), dst, options, std::move(done));
  }
  void Stat(FileHandle file, Callback<FileStat> done) override {
    Next().Stat(file, std::move(done));
  }
  void StatPath(std::string path, Callback<FileStat> done) override {
    Next().StatPath(std::move(path), std::move(done));
  }
  void SetMetadata(FileHandle file, std::string value, DoneCallback done) override {
    Next().SetMetadata(file, std::move(value), std::move(done));
  }
  void Rename(std::string from, std::string to, DoneCallback done) override {
    Next().Rename(std::move(from), std::move(to), std::move(done));
  }
  void CommitFile(FileHandle file, std::string metadata, std::string from, std::string to,
                  DoneCallback done) override {
    Next().CommitFile(file, std::move(metadata), std::move(from), std::move(to), std::move(done));
  }
  void Unlink(std::string path, DoneCallback done) override {
    Next().Unlink(std::move(path), std::move(done));
  }
  void MakeDir(std::string path, DoneCallback done) override {
    Next().MakeDir(std::move(path), std::move(done));
  }
  void RemoveDir(std::string path, DoneCallback done) override {
    Next().RemoveDir(std::move(path), std::move(done));
  }
  void ReadDir(std::string path, Callback<std::vector<DirEntry>> done) override {
    Next().ReadDir(std::move(path), std::move(done));
  }

 private:
  // An operation started on a ring's own thread stays on that ring; others
  // go round robin.
  RingFiles& Next() {
    for (const Lane& lane : lanes_) {
      if (lane.ring->IsCurrent()) return *lane.files;
    }
    return *lanes_[next_.fetch_add(1, std::memory_order_relaxed) % lanes_.size()].files;
  }

  std::vector<Lane> lanes_;
  std::atomic<size_t> next_{0};
};

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> NewIoUringEngine(const EngineOptions& options) {
  if (options.root_fd < 0 || options.pool == nullptr) {
    return absl::InvalidArgumentError("engine needs a root and a buffer pool");
  }
  // One ring per core: a ring's thread does the memory copies of cached
  // reads and writes inline, so one ring alone would use one core.
  const int count =
      std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, kMaxRings);
  std::vector<IoUringEngine::Lane> lanes;
  for (int i = 0; i < count; ++i) {
    auto ring = std::make_unique<Ring>(options);
    RS_RETURN_IF_ERROR(ring->Start());
    auto files = std::make_unique<RingFiles>(ring.get(), options.faults);
    lanes.push_back({std::move(ring), std::move(files)});
  }
  return std::make_unique<IoUringEngine>(std::move(lanes));
}

}  // namespace ringstore::storage
