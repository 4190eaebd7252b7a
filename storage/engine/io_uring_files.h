// The io_uring engine's operations on one Ring: internal to the io_uring
// engine (io_uring_engine.cc), which owns one RingFiles per ring.
//
// Threads: the public methods may be called from any thread and return at
// once; each posts its work to the ring's thread (at once, inline, when
// called there) and calls back there, except ReadDir and, without
// IORING_OP_FTRUNCATE, Truncate, which call back on a helper thread
// (BlockingOps). A callback can run before the method returns only when the
// method is called on the ring's own thread and the operation ends before
// reaching the kernel (cancelled already, no file name in the path). The
// private building blocks run on the ring's thread only.
//
// The code is split along its seams: io_uring_ops.cc has the operations
// that are one SQE or a short sequence of them and the building blocks they
// share; io_uring_chains.cc has the two linked chains (ReadFile,
// CommitFile) and the paths around them.
//
// liburing appears in the io_uring_* files and nowhere else.
#ifndef RINGSTORE_STORAGE_ENGINE_IO_URING_FILES_H_
#define RINGSTORE_STORAGE_ENGINE_IO_URING_FILES_H_

#include <linux/openat2.h>
#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "storage/engine/blocking_ops.h"
#include "storage/engine/cancellation.h"
#include "storage/engine/engine.h"
#include "storage/engine/fault_injection.h"
#include "storage/engine/io_uring_ring.h"

namespace ringstore::storage::uring_internal {

inline constexpr Backend kBackend = Backend::kIoUring;
inline constexpr size_t kMaxMetadataBytes = 256;

template <typename T>
using Callback = Engine::Callback<T>;
using DoneCallback = Engine::DoneCallback;
template <typename T>
using Then = absl::AnyInvocable<void(absl::StatusOr<T>) &&>;

// The Status of a failed CQE. ENOSYS, EOPNOTSUPP and EPERM (what a seccomp
// profile answers for io_uring) are refusals that another engine may not
// meet (fallback_engine.h).
absl::Status ResError(int res, absl::string_view what);
// Cancelled, "<what>: cancelled".
absl::Status CancelledError(absl::string_view what);
FileStat FromStatx(const struct statx& stx);
// open_how for openat2 beneath the root, without symlinks.
open_how HowBeneath(int flags, int mode);

// The Engine operations on one Ring, with Engine's contracts (engine.h).
class RingFiles final {
 public:
  RingFiles(Ring* ring, FaultInjector* faults)
      : ring_(*ring), blocking_(ring->root(), ring->attr(), faults, kBackend, 1, "rs-uring-help") {}
  RingFiles(const RingFiles&) = delete;
  RingFiles& operator=(const RingFiles&) = delete;

  void Open(std::string path, OpenMode mode, Callback<FileHandle> done);
  void Read(FileHandle file, int64_t offset, absl::Span<char> dst, Cancellation* cancel,
            Callback<size_t> done);
  void Write(FileHandle file, int64_t offset, absl::Span<const char> src, DoneCallback done);
  void Truncate(FileHandle file, int64_t size, DoneCallback done);
  void Sync(FileHandle file, bool data_only, DoneCallback done);
  void Close(FileHandle file, DoneCallback done);
  void ReadFile(std::string path, absl::Span<char> dst, const ReadFileOptions& options,
                Callback<FileRead> done);
  void Stat(FileHandle file, Callback<FileStat> done);
  void StatPath(std::string path, Callback<FileStat> done);
  void SetMetadata(FileHandle file, std::string value, DoneCallback done);
  void Rename(std::string from, std::string to, DoneCallback done);
  void CommitFile(FileHandle file, std::string metadata, std::string from, std::string to,
                  DoneCallback done);
  void Unlink(std::string path, DoneCallback done);
  void MakeDir(std::string path, DoneCallback done);
  void RemoveDir(std::string path, DoneCallback done);
  void ReadDir(std::string path, Callback<std::vector<DirEntry>> done);

 private:
  // --- Linked chains (io_uring_chains.cc) ----------------------------------

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
                     const ReadFileOptions& options, Callback<FileRead> done);

  void FinishReadChain(const ReadChain& c, Callback<FileRead> done);

  // ReadFile without a free slot: the same steps one at a time on a plain
  // descriptor.
  void ReadFileUnlinked(const std::string& path, absl::Span<char> dst,
                        const ReadFileOptions& options, Callback<FileRead> done);

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
                   std::shared_ptr<const Parents> p, DoneCallback done);

  // --- Building blocks (io_uring_ops.cc) -----------------------------------

  void OpenBeneath(const std::string& path, int flags, int mode, Then<int> done);

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
  void OpenRegular(const std::string& path, Then<int> done);

  static absl::Status CheckRegular(int fd, const std::string& path);

  void CloseQuietly(int fd);

  void StatxFd(int fd, Then<FileStat> done);

  // Fills st.metadata from the attribute of `fd` (absent → empty).
  void AddMetadata(int fd, FileStat st, Then<FileStat> done);

  // Reads into dst[done_bytes..] until it is full or the file ends.
  void ReadFrom(int fd, int64_t offset, absl::Span<char> dst, size_t done_bytes, uint64_t op,
                Cancellation* cancel, Then<size_t> done);

  void WriteTo(int fd, int64_t offset, absl::Span<const char> src, size_t done_bytes,
               DoneCallback done);

  // Opens the parent directory of `path` (beneath the root, with `flags`)
  // and passes it on with the last component of the path.
  void OpenParent(const std::string& path, int flags, Then<std::pair<int, std::string>> done);

  // Calls `body(parents, finish)` with the parent directories of `from` and
  // `to` open; `finish` closes them and reports to `done`.
  using ParentsBody = absl::AnyInvocable<void(std::shared_ptr<const Parents>, DoneCallback) &&>;
  void WithParents(const std::string& from, int from_flags, const std::string& to, int to_flags,
                   DoneCallback done, ParentsBody body);

  // The one open-parent-then-act of the io_uring engine: opens the parent
  // of `path` (O_PATH), submits one SQE for `step` that `prep` fills with
  // the parent's descriptor and the last component, closes the parent once
  // it has completed and passes the CQE's res (negative: -errno) to `done`;
  // or passes the error of opening the parent.
  using LeafPrep = absl::AnyInvocable<void(io_uring_sqe*, int parent, const char* leaf)>;
  void AtLeaf(const std::string& path, Step step, LeafPrep prep, Then<int> done);

  // One SQE on the leaf of `path` (AtLeaf), reported as a Status naming
  // `what` and `path`.
  void LeafOp(std::string path, DoneCallback done, Step step, const char* what,
              void (*prep)(io_uring_sqe*, int, const char*));

  Ring& ring_;
  // ReadDir (and, before kernel 6.9, Truncate) on a helper thread.
  BlockingOps blocking_;
};

}  // namespace ringstore::storage::uring_internal

#endif  // RINGSTORE_STORAGE_ENGINE_IO_URING_FILES_H_
