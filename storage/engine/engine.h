// The storage engine: asynchronous file operations beneath a root directory.
//
// Think of LevelDB's Env, made asynchronous. Every operation returns at once
// (it never blocks the caller) and calls its callback exactly once, with the
// result and the Backend that really did the work. Callbacks must be quick
// and must not block: they may submit further operations.
//
// Which thread calls back: always a thread the engine owns, never with a
// lock of the engine held.
//   - io_uring: the thread of the ring that ran the operation ("rs-uring");
//     ReadDir, and Truncate on kernels without IORING_OP_FTRUNCATE (before
//     6.9), on the ring's helper thread ("rs-uring-help").
//   - posix_aio: Read, Write and Sync on the AIO thread ("rs-aio");
//     CommitFile there or on a helper thread ("rs-aio-help"); every other
//     operation on a helper thread.
//   - thread_pool: a worker thread ("rs-threadpool").
// Inline callbacks: a callback runs on the calling thread before the call
// returns only if the call is made on the io_uring ring thread or the
// POSIX AIO thread of the same engine (in practice: from inside one of its
// callbacks) and the operation ends without waiting for the kernel: it was
// cancelled already, had no bytes to write, named a path with no file name,
// could not be submitted, or (tests) had a fault injected by the POSIX AIO
// engine. A call from any other thread never calls back inline. So a
// callback that starts another operation must not hold a lock that the new
// operation's callback takes.
//
// Paths are relative to the engine's root and are resolved by the kernel
// beneath it (openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or the same
// rule via a parent directory opened that way): no symlink and no ".." lets
// an operation touch anything outside the root. Engines do not apply any
// other path policy; that is the namespace's job (storage/path.h).
//
// Data moves only through BufferPool buffers: Read fills and Write drains a
// span that lies inside a PooledBuffer of the pool given in EngineOptions,
// which the caller keeps alive until the callback has run.
//
// Errors are absl::Status with the codes of ErrnoToStatus.
//
// Adding an engine changes exactly these files: its own `NAME_engine.cc` (a
// final class in an anonymous namespace and its factory `NewNameEngine`);
// storage/engine/BUILD (its cc_library, and a dep of :engine_selector on
// it); one line in engine_list.h, at its place in the preference order;
// here, its Backend enumerator and the factory's declaration beside the
// others; and the proto's Backend enum (the same number, named BACKEND_ and
// the engine's name in capitals). Nothing else: the selector, BackendName,
// the server's --engine help and its proto conversion (server/convert.cc),
// the CLI's backend names (from the proto enum), the engine, fault and store
// test suites, the Python tests and bench/compare.py all take the engines
// from that list (the Python side through the proto enum and the server).
#ifndef RINGSTORE_STORAGE_ENGINE_ENGINE_H_
#define RINGSTORE_STORAGE_ENGINE_ENGINE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "storage/engine/buffer_pool.h"
#include "storage/engine/cancellation.h"
#include "storage/engine/fault_injection.h"

namespace ringstore::storage {

// Splits an engine path: "a/b/c" → "a/b" and "c"; "c" → "" and "c".
inline absl::string_view ParentDir(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? absl::string_view() : path.substr(0, slash);
}
inline absl::string_view BaseName(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? path : path.substr(slash + 1);
}

// Which engine did an operation. Values match the proto's Backend enum.
enum class Backend { kUnspecified = 0, kIoUring = 1, kPosixAio = 2, kThreadPool = 3 };

// "io_uring", "posix_aio", "thread_pool" (or "unspecified").
absl::string_view BackendName(Backend backend);

// A file an engine has opened: `id` is a plain file descriptor of this
// process in every engine, so that an operation one engine refuses can run
// on another (fallback_engine.h); callers treat it as opaque. Must be
// closed exactly once.
struct FileHandle {
  int64_t id = -1;
};

enum class OpenMode {
  kRead,          // existing regular file, read-only
  kCreateWrite,   // new file (must not exist), write-only, mode 0644
  kCreateDirect,  // as kCreateWrite, for writes that bypass the page cache
                  // (O_DIRECT) where the file system allows it, else
                  // buffered like kCreateWrite; see kDirectAlignment
  kDirectory,     // existing directory, for Sync
};

// A file opened kCreateDirect takes only writes whose offset, length and
// memory are multiples of this (pool buffers and their size are). A file
// that needs another length is written padded and then Truncated.
inline constexpr size_t kDirectAlignment = 4096;

struct FileStat {
  int64_t size = 0;
  absl::Time modified;
  bool is_regular = false;
  bool is_directory = false;
  // Value of the metadata attribute (EngineOptions::metadata_attr), or empty
  // if the file has none.
  std::string metadata;
};

struct ReadFileOptions {
  // Also fetch the metadata attribute (FileRead::metadata). io_uring's chain
  // then has an fgetxattr, a step the kernel always runs on an io-wq worker
  // thread; open, read and close complete inline.
  bool metadata = true;
  // As for Read; may be null.
  Cancellation* cancel = nullptr;
  // Read only what the page cache holds: the read stops at the first byte
  // that would need the disk, so FileRead::length is then a lower bound,
  // not the file's size (0 when nothing from offset 0 on is cached). It
  // does not wait for the disk, but the kernel starts reading the missing
  // part of `dst`'s range into the page cache (readahead): a caller that
  // reads the miss again should read it through the cache, where those
  // pages are arriving, not around it. io_uring honours it (RWF_NOWAIT);
  // the other engines read everything, which is always a valid answer.
  bool cached_only = false;
  // Read around the page cache (O_DIRECT) when `dst` is aligned to
  // kDirectAlignment in address and length: the disk writes straight into
  // the pool buffer, with no page cache pages to allocate, fill and copy
  // (on a cold 1 MiB file that copy alone was 40 % of the server's CPU),
  // and the file does not displace cached ones. For a file read once;
  // a file that is read again should be read through the cache. A file
  // system without O_DIRECT is read through the cache. io_uring honours
  // it; the other engines read through the cache.
  bool direct = false;
};

// What ReadFile returns.
struct FileRead {
  // Bytes read into dst; less than dst.size() means the whole file fit.
  size_t length = 0;
  // Value of the metadata attribute, or empty if the file has none or it was
  // not asked for.
  std::string metadata;
};

struct DirEntry {
  std::string name;
  bool is_directory = false;
  bool is_regular = false;
};

struct EngineOptions {
  // Directory all paths are relative to; the engine keeps its own duplicate.
  int root_fd = -1;
  // Pool whose buffers Read/Write use. Must outlive the engine.
  BufferPool* pool = nullptr;
  // Worker threads, for engines that use them.
  int threads = 4;
  // Name of the extended attribute Stat reports and SetMetadata writes.
  std::string metadata_attr = "user.ringstore.meta";
  // io_uring: > 0 asks for IORING_SETUP_SQPOLL, a kernel thread that polls
  // the submission queues (one, shared by the engine's rings) and sleeps
  // after this many milliseconds without work; 0 = off. The kernel may
  // refuse it (EPERM without CAP_SYS_NICE before Linux 5.11, EINVAL): the
  // engine then runs without, and its features say "sqpoll=refused (...)"
  // instead of "sqpoll". Ignored by the other engines. Off by default: on
  // 2 cores the SQ thread costs more CPU than the system calls it saves
  // (+50-60 % server CPU per request on warm 4 KiB downloads: bench/
  // compare_ab.py, a variant with --io_uring_sqpoll against one without).
  int io_uring_sqpoll_idle_ms = 0;
  // Tests only: steps to fail on purpose (fault_injection.h). Must outlive
  // the engine.
  FaultInjector* faults = nullptr;
};

// What an engine reports about itself (GetServerInfo shows it).
struct EngineInfo {
  Backend backend = Backend::kUnspecified;
  std::vector<std::string> features;
  bool buffers_registered = false;
  // Registered file slots (direct descriptors) and how many hold a file now.
  int direct_slots = 0;
  int direct_slots_in_use = 0;
};

// Counters an engine keeps about its own work, since it started: a
// snapshot, for metrics (server/metrics_wiring.h exports them). Engines
// count with relaxed atomics; a snapshot is not atomic across fields.
struct EngineStats {
  // io_uring: io_uring_enter calls that submitted SQEs, the SQEs they
  // submitted (their ratio is the batching), and SQEs that were
  // read_fixed/write_fixed on the registered pool. Zero on other engines.
  uint64_t io_uring_submits = 0;
  uint64_t io_uring_sqes = 0;
  uint64_t io_uring_fixed_buffer_ops = 0;
  // io_uring: the rings run with SQPOLL (EngineOptions). A state, not a
  // counter.
  bool io_uring_sqpoll = false;
  // Operations one engine refused and the next one ran (fallback_engine.h).
  struct Fallback {
    Backend from = Backend::kUnspecified;
    Backend to = Backend::kUnspecified;
    uint64_t count = 0;
  };
  std::vector<Fallback> fallbacks;
};

class Engine {
 public:
  template <typename T>
  using Callback = absl::AnyInvocable<void(absl::StatusOr<T>, Backend) &&>;
  using DoneCallback = absl::AnyInvocable<void(absl::Status, Backend) &&>;

  // Waits for the internal tail of operations that have called back (a
  // close after the answer, say). Every callback must have run before.
  virtual ~Engine() = default;

  // Information about this engine. Thread-safe, never blocks.
  virtual EngineInfo info() const = 0;

  // Counters of this engine (and of the engines it falls back to).
  // Thread-safe, never blocks; an engine that counts nothing returns zeros.
  virtual EngineStats stats() const { return {}; }

  // Opens `path` as `mode` says. NotFound if it (or, for kCreateWrite, its
  // parent) does not exist; AlreadyExists for kCreateWrite on an existing
  // name; FailedPrecondition if kRead names a directory; PermissionDenied if
  // resolution would leave the root or cross a symlink.
  virtual void Open(std::string path, OpenMode mode, Callback<FileHandle> done) = 0;

  // Reads up to dst.size() bytes at `offset` into `dst` (inside a pool
  // buffer). Short reads are continued internally: fewer bytes than asked
  // means end of file was reached. Returns the byte count. `cancel` (may be
  // null) can cut the read short with Cancelled (cancellation.h); the
  // content of `dst` is then unspecified.
  virtual void Read(FileHandle file, int64_t offset, absl::Span<char> dst,
                    Cancellation* cancel, Callback<size_t> done) = 0;

  // Writes all of `src` (inside a pool buffer) at `offset`; short writes are
  // continued internally. ResourceExhausted when the disk is full.
  virtual void Write(FileHandle file, int64_t offset, absl::Span<const char> src,
                     DoneCallback done) = 0;

  // Sets the length of `file` (open for writing) to `size`, cutting it or
  // extending it with zeros.
  virtual void Truncate(FileHandle file, int64_t size, DoneCallback done) = 0;

  // fsync (data_only=false) or fdatasync (data_only=true).
  virtual void Sync(FileHandle file, bool data_only, DoneCallback done) = 0;

  // Closes `file`; the handle is invalid once this is called.
  virtual void Close(FileHandle file, DoneCallback done) = 0;

  // Opens `path` for reading, reads up to dst.size() bytes from offset 0
  // into `dst` (inside a pool buffer), fetches the metadata attribute if
  // asked and closes the file: one operation, which io_uring submits as one
  // linked chain. Errors as Open(kRead); FailedPrecondition for a directory
  // or anything else that is not a regular file. The file is closed
  // whatever happens.
  virtual void ReadFile(std::string path, absl::Span<char> dst, const ReadFileOptions& options,
                        Callback<FileRead> done) = 0;

  // Stat of an open file, metadata attribute included.
  virtual void Stat(FileHandle file, Callback<FileStat> done) = 0;

  // Stat of `path` without following a final symlink (a symlink is neither
  // regular nor a directory), metadata attribute included.
  virtual void StatPath(std::string path, Callback<FileStat> done) = 0;

  // Sets the metadata attribute of an open file (written with the file: it
  // is durable after Sync).
  virtual void SetMetadata(FileHandle file, std::string value, DoneCallback done) = 0;

  // Renames `from` to `to`, replacing a file at `to` atomically.
  virtual void Rename(std::string from, std::string to, DoneCallback done) = 0;

  // Makes `file`, written and still open, durable and visible as `to`, in
  // four steps, each only if the one before succeeded: set the metadata
  // attribute to `metadata`, fsync `file`, rename `from` (the path `file`
  // was created at) to `to`, replacing a file there atomically, and fsync
  // the directory of `to`. A failure before the rename leaves `to` as it
  // was; the status names the step that failed (NotFound if the directory
  // of `to` is missing). `file` stays open either way. io_uring links the
  // four steps in one submission.
  virtual void CommitFile(FileHandle file, std::string metadata, std::string from,
                          std::string to, DoneCallback done) = 0;

  // Removes the file `path` (not a directory).
  virtual void Unlink(std::string path, DoneCallback done) = 0;

  // Creates directory `path` (mode 0755). AlreadyExists if something exists
  // there already, whatever it is.
  virtual void MakeDir(std::string path, DoneCallback done) = 0;

  // Removes the empty directory `path`; FailedPrecondition if not empty.
  virtual void RemoveDir(std::string path, DoneCallback done) = 0;

  // Entries of directory `path` ("" is the root), without "." and "..", in
  // no particular order.
  virtual void ReadDir(std::string path, Callback<std::vector<DirEntry>> done) = 0;
};

// Engine factories, one per backend. Each fails (without side effects) if the
// backend cannot run here.
absl::StatusOr<std::unique_ptr<Engine>> NewThreadPoolEngine(const EngineOptions& options);
// Fails with the kernel's error if io_uring cannot be set up (ENOSYS, EPERM
// from seccomp or kernel.io_uring_disabled), Unimplemented if an opcode it
// needs is missing.
absl::StatusOr<std::unique_ptr<Engine>> NewIoUringEngine(const EngineOptions& options);
// Fails if glibc's POSIX AIO cannot run here (ENOSYS).
absl::StatusOr<std::unique_ptr<Engine>> NewPosixAioEngine(const EngineOptions& options);

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_ENGINE_ENGINE_H_
