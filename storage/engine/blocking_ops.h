// Engine operations done with blocking POSIX calls on worker threads.
//
// The one adapter between the blocking PosixFiles (posix_ops.h) and the
// asynchronous Engine interface: each operation is queued to a WorkerPool
// that this object owns, runs its PosixFiles calls on a worker thread, and
// then calls back on that same worker thread with the result and the
// Backend given at construction. The thread-pool engine is made of nothing
// else; the POSIX AIO engine uses it for what POSIX AIO lacks (open, close,
// stat, attributes, rename, directories), the io_uring engine for what
// io_uring lacks (reading a directory, truncating before Linux 6.9).
//
// Threads: every method may be called from any thread and returns at once;
// it never blocks and never runs `done` inline: `done` always runs later on
// one of this object's worker threads, with no lock held. Operations start
// in FIFO order; with several workers they may finish in any order.
//
// Cancellation: a blocking call cannot be interrupted. An operation given a
// Cancellation that is cancelled before a worker starts it reports
// Cancelled without making any call; once started, it finishes.
//
// Destruction runs every operation already queued (their callbacks too),
// then joins the workers. The root descriptor is borrowed and must stay open
// until then.
#ifndef RINGSTORE_STORAGE_ENGINE_BLOCKING_OPS_H_
#define RINGSTORE_STORAGE_ENGINE_BLOCKING_OPS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "storage/engine/cancellation.h"
#include "storage/engine/engine.h"
#include "storage/engine/fault_injection.h"
#include "storage/engine/posix_ops.h"
#include "storage/engine/worker_pool.h"

namespace ringstore::storage {

class BlockingOps {
 public:
  template <typename T>
  using Callback = Engine::Callback<T>;
  using DoneCallback = Engine::DoneCallback;

  // `root`, `attr` and `faults` as for PosixFiles; results report `backend`.
  // Starts `threads` (≥ 1) worker threads named `thread_name`.
  BlockingOps(int root, std::string attr, FaultInjector* faults, Backend backend, int threads,
              const std::string& thread_name);
  BlockingOps(const BlockingOps&) = delete;
  BlockingOps& operator=(const BlockingOps&) = delete;

  // The blocking calls themselves, for multi-step operations (RunOnWorker).
  const PosixFiles& files() const { return files_; }

  // The Engine operations, with Engine's contracts (engine.h). A FileHandle
  // is a plain descriptor.
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

  // Runs `work` on a worker thread: a step of an operation that continues
  // elsewhere (an engine thread) and reports itself.
  void RunOnWorker(absl::AnyInvocable<void() &&> work) { workers_.Run(std::move(work)); }

 private:
  // Runs `op()` (returning StatusOr<T>) on a worker and reports it to
  // `done`; Cancelled without running it if `cancel` is cancelled first.
  template <typename T, typename Op>
  void Run(Callback<T> done, Cancellation* cancel, Op op) {
    workers_.Run([backend = backend_, cancel, done = std::move(done),
                  op = std::move(op)]() mutable {
      if (IsCancelled(cancel)) {
        return std::move(done)(absl::CancelledError("cancelled"), backend);
      }
      std::move(done)(op(), backend);
    });
  }
  // Runs `op()` (returning Status) on a worker and reports it to `done`.
  template <typename Op>
  void RunStatus(DoneCallback done, Op op) {
    workers_.Run([backend = backend_, done = std::move(done), op = std::move(op)]() mutable {
      std::move(done)(op(), backend);
    });
  }

  const PosixFiles files_;
  const Backend backend_;
  // Declared last, so destroyed first: queued work finishes while the rest
  // is still here.
  WorkerPool workers_;
};

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_ENGINE_BLOCKING_OPS_H_
