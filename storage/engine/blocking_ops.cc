#include "storage/engine/blocking_ops.h"

#include <utility>

#include "storage/engine/status_util.h"

namespace ringstore::storage {

BlockingOps::BlockingOps(int root, std::string attr, FaultInjector* faults, Backend backend,
                         int threads, const std::string& thread_name)
    : files_(root, std::move(attr), faults),
      backend_(backend),
      workers_(threads, thread_name) {}

void BlockingOps::Open(std::string path, OpenMode mode, Callback<FileHandle> done) {
  Run(std::move(done), nullptr,
      [this, path = std::move(path), mode]() -> absl::StatusOr<FileHandle> {
        RS_ASSIGN_OR_RETURN(int fd, files_.Open(path, mode));
        return FileHandle{fd};
      });
}

void BlockingOps::Read(FileHandle file, int64_t offset, absl::Span<char> dst,
                       Cancellation* cancel, Callback<size_t> done) {
  Run(std::move(done), cancel, [this, file, offset, dst] {
    return files_.ReadFull(static_cast<int>(file.id), offset, dst);
  });
}

void BlockingOps::Write(FileHandle file, int64_t offset, absl::Span<const char> src,
                        DoneCallback done) {
  RunStatus(std::move(done), [this, file, offset, src] {
    return files_.WriteFull(static_cast<int>(file.id), offset, src);
  });
}

void BlockingOps::Truncate(FileHandle file, int64_t size, DoneCallback done) {
  RunStatus(std::move(done),
            [this, file, size] { return files_.Truncate(static_cast<int>(file.id), size); });
}

void BlockingOps::Sync(FileHandle file, bool data_only, DoneCallback done) {
  RunStatus(std::move(done), [this, file, data_only] {
    return files_.Sync(static_cast<int>(file.id), data_only);
  });
}

void BlockingOps::Close(FileHandle file, DoneCallback done) {
  RunStatus(std::move(done), [this, file] { return files_.Close(static_cast<int>(file.id)); });
}

void BlockingOps::ReadFile(std::string path, absl::Span<char> dst,
                           const ReadFileOptions& options, Callback<FileRead> done) {
  Run(std::move(done), options.cancel,
      [this, path = std::move(path), dst, metadata = options.metadata] {
        return files_.ReadFile(path, dst, metadata);
      });
}

void BlockingOps::Stat(FileHandle file, Callback<FileStat> done) {
  Run(std::move(done), nullptr,
      [this, file] { return files_.StatFd(static_cast<int>(file.id)); });
}

void BlockingOps::StatPath(std::string path, Callback<FileStat> done) {
  Run(std::move(done), nullptr, [this, path = std::move(path)] { return files_.StatPath(path); });
}

void BlockingOps::SetMetadata(FileHandle file, std::string value, DoneCallback done) {
  RunStatus(std::move(done), [this, file, value = std::move(value)] {
    return files_.SetMetadata(static_cast<int>(file.id), value);
  });
}

void BlockingOps::Rename(std::string from, std::string to, DoneCallback done) {
  RunStatus(std::move(done), [this, from = std::move(from), to = std::move(to)] {
    return files_.Rename(from, to);
  });
}

void BlockingOps::CommitFile(FileHandle file, std::string metadata, std::string from,
                             std::string to, DoneCallback done) {
  RunStatus(std::move(done), [this, file, metadata = std::move(metadata), from = std::move(from),
                              to = std::move(to)] {
    return files_.CommitFile(static_cast<int>(file.id), metadata, from, to);
  });
}

void BlockingOps::Unlink(std::string path, DoneCallback done) {
  RunStatus(std::move(done), [this, path = std::move(path)] { return files_.Unlink(path); });
}

void BlockingOps::MakeDir(std::string path, DoneCallback done) {
  RunStatus(std::move(done), [this, path = std::move(path)] { return files_.MakeDir(path); });
}

void BlockingOps::RemoveDir(std::string path, DoneCallback done) {
  RunStatus(std::move(done), [this, path = std::move(path)] { return files_.RemoveDir(path); });
}

void BlockingOps::ReadDir(std::string path, Callback<std::vector<DirEntry>> done) {
  Run(std::move(done), nullptr, [this, path = std::move(path)] { return files_.ReadDir(path); });
}

}  // namespace ringstore::storage
