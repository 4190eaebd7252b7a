// The thread-pool engine: each operation is one closure that makes blocking
// POSIX calls (storage/posix_ops.h) on a WorkerPool thread and then runs the
// callback on that same thread. The portable baseline every other engine is
// measured against, and the last resort of --engine=auto.
#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "storage/engine/engine.h"
#include "storage/engine/posix_ops.h"
#include "storage/engine/status_util.h"
#include "storage/engine/worker_pool.h"

namespace ringstore::storage {
namespace {

constexpr Backend kBackend = Backend::kThreadPool;

class ThreadPoolEngine final : public Engine {
 public:
  ThreadPoolEngine(int root_fd, const EngineOptions& options)
      : root_(root_fd),
        files_(root_fd, options.metadata_attr, options.faults),
        threads_(options.threads),
        workers_(options.threads, "rs-threadpool") {}

  EngineInfo info() const override {
    EngineInfo info;
    info.backend = kBackend;
    info.features = {absl::StrCat("threads=", threads_)};
    return info;
  }

  void Open(std::string path, OpenMode mode, Callback<FileHandle> done) override {
    Submit(std::move(done), [this, path = std::move(path), mode]()
                                -> absl::StatusOr<FileHandle> {
      RS_ASSIGN_OR_RETURN(int fd, files_.Open(path, mode));
      return FileHandle{fd};
    });
  }

  void Read(FileHandle file, int64_t offset, absl::Span<char> dst, Cancellation* cancel,
            Callback<size_t> done) override {
    Submit(std::move(done), cancel, [this, file, offset, dst] {
      return files_.ReadFull(static_cast<int>(file.id), offset, dst);
    });
  }

  void Write(FileHandle file, int64_t offset, absl::Span<const char> src,
             DoneCallback done) override {
    SubmitStatus(std::move(done), [this, file, offset, src] {
      return files_.WriteFull(static_cast<int>(file.id), offset, src);
    });
  }

  void Truncate(FileHandle file, int64_t size, DoneCallback done) override {
    SubmitStatus(std::move(done), [this, file, size] {
      return files_.Truncate(static_cast<int>(file.id), size);
    });
  }

  void Sync(FileHandle file, bool data_only, DoneCallback done) override {
    SubmitStatus(std::move(done), [this, file, data_only] {
      return files_.Sync(static_cast<int>(file.id), data_only);
    });
  }

  void Close(FileHandle file, DoneCallback done) override {
    SubmitStatus(std::move(done),
                 [this, file] { return files_.Close(static_cast<int>(file.id)); });
  }

  void ReadFile(std::string path, absl::Span<char> dst, const ReadFileOptions& options,
                Callback<FileRead> done) override {
    Submit(std::move(done), options.cancel,
           [this, path = std::move(path), dst, metadata = options.metadata] {
             return files_.ReadFile(path, dst, metadata);
           });
  }

  void Stat(FileHandle file, Callback<FileStat> done) override {
    Submit(std::move(done), [this, file] {
      return files_.StatFd(static_cast<int>(file.id));
    });
  }

  void StatPath(std::string path, Callback<FileStat> done) override {
    Submit(std::move(done), [this, path = std::move(path)] {
      return files_.StatPath(path);
    });
  }

  void SetMetadata(FileHandle file, std::string value, DoneCallback done) override {
    SubmitStatus(std::move(done), [this, file, value = std::move(value)] {
      return files_.SetMetadata(static_cast<int>(file.id), value);
    });
  }

  void Rename(std::string from, std::string to, DoneCallback done) override {
    SubmitStatus(std::move(done), [this, from = std::move(from), to = std::move(to)] {
      return files_.Rename(from, to);
    });
  }

  void CommitFile(FileHandle file, std::string metadata, std::string from, std::string to,
                  DoneCallback done) override {
    SubmitStatus(std::move(done), [this, file, metadata = std::move(metadata),
                                   from = std::move(from), to = std::move(to)] {
      return files_.CommitFile(static_cast<int>(file.id), metadata, from, to);
    });
  }

  void Unlink(std::string path, DoneCallback done) override {
    SubmitStatus(std::move(done), [this, path = std::move(path)] {
      return files_.Unlink(path);
    });
  }

  void MakeDir(std::string path, DoneCallback done) override {
    SubmitStatus(std::move(done), [this, path = std::move(path)] {
      return files_.MakeDir(path);
    });
  }

  void RemoveDir(std::string path, DoneCallback done) override {
    SubmitStatus(std::move(done), [this, path = std::move(path)] {
      return files_.RemoveDir(path);
    });
  }

  void ReadDir(std::string path, Callback<std::vector<DirEntry>> done) override {
    Submit(std::move(done), [this, path = std::move(path)] {
      return files_.ReadDir(path);
    });
  }

 private:
  // Owns the engine's duplicate of the root descriptor.
  struct RootFd {
    explicit RootFd(int f) : fd(f) {}
    ~RootFd() { ::close(fd); }
    int fd;
  };

  template <typename T, typename Op>
  void Submit(Callback<T> done, Op op) {
    Submit(std::move(done), nullptr, std::move(op));
  }

  // A blocking call cannot be interrupted: a cancelled operation that has
  // not started yet does not start.
  template <typename T, typename Op>
  void Submit(Callback<T> done, Cancellation* cancel, Op op) {
    workers_.Run([done = std::move(done), cancel, op = std::move(op)]() mutable {
      if (IsCancelled(cancel)) {
        return std::move(done)(absl::CancelledError("cancelled"), kBackend);
      }
      std::move(done)(op(), kBackend);
    });
  }

  template <typename Op>
  void SubmitStatus(DoneCallback done, Op op) {
    workers_.Run([done = std::move(done), op = std::move(op)]() mutable {
      std::move(done)(op(), kBackend);
    });
  }

  const RootFd root_;
  const PosixFiles files_;
  const int threads_;
  // Declared last, so destroyed first: queued work finishes while root_ is
  // still open.
  WorkerPool workers_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> NewThreadPoolEngine(
    const EngineOptions& options) {
  if (options.root_fd < 0 || options.pool == nullptr) {
    return absl::InvalidArgumentError("engine needs a root and a buffer pool");
  }
  const int root = fcntl(options.root_fd, F_DUPFD_CLOEXEC, 0);
  if (root < 0) return ErrnoToStatus(errno, "dup root");
  return std::make_unique<ThreadPoolEngine>(root, options);
}

}  // namespace ringstore::storage
