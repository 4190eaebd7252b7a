// The thread-pool engine: each operation is one closure that makes blocking
// POSIX calls (storage/posix_ops.h) on a worker thread and then runs the
// callback on that same thread (BlockingOps, blocking_ops.h, does all of
// it). The portable baseline every other engine is measured against, and
// the last resort of --engine=auto.
#include <fcntl.h>

#include <cerrno>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "storage/engine/blocking_ops.h"
#include "storage/engine/engine.h"
#include "storage/engine/scoped_fd.h"
#include "storage/engine/status_util.h"

namespace ringstore::storage {
namespace {

constexpr Backend kBackend = Backend::kThreadPool;

class ThreadPoolEngine final : public Engine {
 public:
  ThreadPoolEngine(ScopedFd root, const EngineOptions& options)
      : root_(std::move(root)),
        threads_(options.threads),
        ops_(root_.get(), options.metadata_attr, options.faults, kBackend, options.threads,
             "rs-threadpool") {}

  EngineInfo info() const override {
    EngineInfo info;
    info.backend = kBackend;
    info.features = {absl::StrCat("threads=", threads_)};
    return info;
  }

  void Open(std::string path, OpenMode mode, Callback<FileHandle> done) override {
    ops_.Open(std::move(path), mode, std::move(done));
  }
  void Read(FileHandle file, int64_t offset, absl::Span<char> dst, Cancellation* cancel,
            Callback<size_t> done) override {
    ops_.Read(file, offset, dst, cancel, std::move(done));
  }
  void Write(FileHandle file, int64_t offset, absl::Span<const char> src,
             DoneCallback done) override {
    ops_.Write(file, offset, src, std::move(done));
  }
  void Truncate(FileHandle file, int64_t size, DoneCallback done) override {
    ops_.Truncate(file, size, std::move(done));
  }
  void Sync(FileHandle file, bool data_only, DoneCallback done) override {
    ops_.Sync(file, data_only, std::move(done));
  }
  void Close(FileHandle file, DoneCallback done) override { ops_.Close(file, std::move(done)); }
  void ReadFile(std::string path, absl::Span<char> dst, const ReadFileOptions& options,
                Callback<FileRead> done) override {
    ops_.ReadFile(std::move(path), dst, options, std::move(done));
  }
  void Stat(FileHandle file, Callback<FileStat> done) override {
    ops_.Stat(file, std::move(done));
  }
  void StatPath(std::string path, Callback<FileStat> done) override {
    ops_.StatPath(std::move(path), std::move(done));
  }
  void SetMetadata(FileHandle file, std::string value, DoneCallback done) override {
    ops_.SetMetadata(file, std::move(value), std::move(done));
  }
  void Rename(std::string from, std::string to, DoneCallback done) override {
    ops_.Rename(std::move(from), std::move(to), std::move(done));
  }
  void CommitFile(FileHandle file, std::string metadata, std::string from, std::string to,
                  DoneCallback done) override {
    ops_.CommitFile(file, std::move(metadata), std::move(from), std::move(to), std::move(done));
  }
  void Unlink(std::string path, DoneCallback done) override {
    ops_.Unlink(std::move(path), std::move(done));
  }
  void MakeDir(std::string path, DoneCallback done) override {
    ops_.MakeDir(std::move(path), std::move(done));
  }
  void RemoveDir(std::string path, DoneCallback done) override {
    ops_.RemoveDir(std::move(path), std::move(done));
  }
  void ReadDir(std::string path, Callback<std::vector<DirEntry>> done) override {
    ops_.ReadDir(std::move(path), std::move(done));
  }

 private:
  // The engine's duplicate of the root descriptor.
  const ScopedFd root_;
  const int threads_;
  // Declared last, so destroyed first: queued work finishes while root_ is
  // still open.
  BlockingOps ops_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> NewThreadPoolEngine(
    const EngineOptions& options) {
  if (options.root_fd < 0 || options.pool == nullptr) {
    return absl::InvalidArgumentError("engine needs a root and a buffer pool");
  }
  ScopedFd root(fcntl(options.root_fd, F_DUPFD_CLOEXEC, 0));
  if (!root.valid()) return ErrnoToStatus(errno, "dup root");
  return std::make_unique<ThreadPoolEngine>(std::move(root), options);
}

}  // namespace ringstore::storage
