// The io_uring engine's two linked chains, each in one submission, and the
// paths around them (io_uring_files.h):
//   ReadFile:   openat2_direct(slot) -LINK-> [fgetxattr -HARDLINK->]
//               read_fixed -HARDLINK-> close_direct(slot)
//   CommitFile: fsetxattr -LINK-> fsync -LINK-> renameat -LINK-> fsync(dir)
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/openat2.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "storage/engine/io_uring_files.h"

namespace ringstore::storage::uring_internal {

void RingFiles::ReadFile(std::string path, absl::Span<char> dst, const ReadFileOptions& options,
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

void RingFiles::CommitFile(FileHandle file, std::string metadata, std::string from, std::string to,
                           DoneCallback done) {
  ring_.Post([this, fd = static_cast<int>(file.id), metadata = std::move(metadata),
              from = std::move(from), to = std::move(to), done = std::move(done)]() mutable {
    // The directory of `to` is opened read-only, not O_PATH: the chain
    // fsyncs it.
    WithParents(from, O_PATH, to, O_RDONLY, std::move(done),
                [this, fd, metadata = std::move(metadata), from, to](
                    std::shared_ptr<const Parents> p, DoneCallback finish) mutable {
                  CommitChain(fd, std::move(metadata), from, to, std::move(p), std::move(finish));
                });
  });
}

namespace {

// O_DIRECT needs the buffer's address and length aligned.
bool IsDirectAligned(absl::Span<char> dst) {
  return reinterpret_cast<uintptr_t>(dst.data()) % kDirectAlignment == 0 &&
         dst.size() % kDirectAlignment == 0 && !dst.empty();
}

}  // namespace

void RingFiles::ReadFileChain(std::string path, absl::Span<char> dst, int slot,
                              const ReadFileOptions& options, Callback<FileRead> done) {
  auto c = std::make_shared<ReadChain>();
  c->path = std::move(path);
  c->options = options;
  if (options.metadata) c->value.assign(kMaxMetadataBytes, '\0');
  // O_NONBLOCK: a FIFO placed in the root must not block the open (the
  // read then finds no data and no metadata, and is checked below).
  // Regular files read as usual: on Linux 6.x io_uring still retries them
  // in io-wq. O_CLOEXEC is EINVAL for a direct descriptor.
  c->options.direct = options.direct && IsDirectAligned(dst);
  c->how = HowBeneath(O_RDONLY | O_NONBLOCK | (c->options.direct ? O_DIRECT : 0), 0);
  c->dst = dst;
  const int index = ring_.BufferIndex(dst.data(), dst.size());
  const std::string& attr = ring_.attr();
  // The steps fill their SQEs inside SubmitChain, while `c` is alive (the
  // chain's callback keeps it for the kernel). A plain pointer keeps each
  // of them small enough for std::function to hold without allocating.
  ReadChain* const r = c.get();
  std::vector<Ring::ChainStep> steps;
  steps.reserve(4);
  steps.push_back({Step::kOpen,
                   [r, slot, root = ring_.root()](io_uring_sqe* sqe) {
                     io_uring_prep_openat2_direct(sqe, root, r->path.c_str(), &r->how, slot);
                   },
                   IOSQE_IO_LINK, /*cancellable=*/true});
  if (options.metadata) {
    steps.push_back({Step::kGetXattr,
                     [r, slot, &attr](io_uring_sqe* sqe) {
                       io_uring_prep_fgetxattr(sqe, slot, attr.c_str(), r->value.data(),
                                               static_cast<unsigned>(r->value.size()));
                       sqe->flags |= IOSQE_FIXED_FILE;
                     },
                     IOSQE_IO_HARDLINK});
  }
  steps.push_back({Step::kRead,
                   [r, slot, index](io_uring_sqe* sqe) {
                     const auto len = static_cast<unsigned>(r->dst.size());
                     if (index >= 0) {
                       io_uring_prep_read_fixed(sqe, slot, r->dst.data(), len, 0, index);
                     } else {
                       io_uring_prep_read(sqe, slot, r->dst.data(), len, 0);
                     }
                     sqe->flags |= IOSQE_FIXED_FILE;
                     if (r->options.cached_only) sqe->rw_flags = RWF_NOWAIT;
                   },
                   IOSQE_IO_HARDLINK, /*cancellable=*/true});
  steps.push_back(
      {Step::kClose, [slot](io_uring_sqe* sqe) { io_uring_prep_close_direct(sqe, slot); }});
  const uint64_t op = ring_.BeginOp(options.cancel);
  ring_.SubmitChain(
      std::move(steps), [this, c, slot, op, done = std::move(done)](std::vector<int> res) mutable {
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

void RingFiles::FinishReadChain(const ReadChain& c, Callback<FileRead> done) {
  const int open_res = c.open, xattr_res = c.xattr, read_res = c.read;
  Cancellation* const cancel = c.options.cancel;
  const std::string& path = c.path;
  // A failed open cancels the rest of the chain: only its own -ECANCELED,
  // or the read's after a good open, means the caller cancelled.
  const bool cut_short = open_res == -ECANCELED || (open_res >= 0 && read_res == -ECANCELED) ||
                         ((open_res == -EINTR || read_res == -EINTR) && IsCancelled(cancel));
  if (cut_short) {
    return std::move(done)(CancelledError(absl::StrCat("read ", path)), kBackend);
  }
  // A file system that refuses how the read was asked for: O_DIRECT (EINVAL
  // from the open, or from the read where the device wants another
  // alignment) or RWF_NOWAIT (EOPNOTSUPP). Read it all, through the cache.
  const bool refused = (c.options.direct && (open_res == -EINVAL || read_res == -EINVAL)) ||
                       (c.options.cached_only && open_res >= 0 && read_res == -EOPNOTSUPP);
  if (refused) {
    ReadFileOptions plain = c.options;
    plain.direct = false;
    plain.cached_only = false;
    return ReadFileUnlinked(path, c.dst, plain, std::move(done));
  }
  if (open_res < 0) {
    return std::move(done)(ResError(open_res, absl::StrCat("open ", path)), kBackend);
  }
  // cached_only: nothing from offset 0 on is in the page cache.
  if (c.options.cached_only && read_res == -EAGAIN && xattr_res >= 0) {
    FileRead out;
    out.metadata.assign(c.value.data(), static_cast<size_t>(xattr_res));
    return std::move(done)(std::move(out), kBackend);
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

void RingFiles::ReadFileUnlinked(const std::string& path, absl::Span<char> dst,
                                 const ReadFileOptions& options, Callback<FileRead> done) {
  OpenRegular(
      path, [this, path, dst, options, done = std::move(done)](absl::StatusOr<int> fd) mutable {
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
                   AddMetadata(fd, FileStat(),
                               [this, fd, n = *n,
                                done = std::move(done)](absl::StatusOr<FileStat> st) mutable {
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

void RingFiles::CommitChain(int fd, std::string metadata, const std::string& from,
                            const std::string& to, std::shared_ptr<const Parents> p,
                            DoneCallback done) {
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
  ring_.SubmitChain(std::move(steps),
                    [a, from, to, done = std::move(done)](std::vector<int> res) mutable {
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

}  // namespace ringstore::storage::uring_internal
