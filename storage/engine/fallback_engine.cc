#include "storage/engine/fallback_engine.h"

#include <atomic>
#include <string>
#include <utility>
#include <vector>

#include "storage/engine/status_util.h"

namespace ringstore::storage {
namespace {

const absl::Status& StatusOf(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& r) {
  return r.status();
}

// A callback for the primary: passes its answer on to `done`, unless it
// is a refusal, in which case it counts one in `*fallbacks` and
// `again(done)` runs the operation on the fallback.
template <typename Done, typename Again>
auto Retry(std::atomic<uint64_t>* fallbacks, Done done, Again again) {
  return [fallbacks, done = std::move(done), again = std::move(again)](auto result,
                                                                       Backend b) mutable {
    if (IsRefusal(StatusOf(result))) {
      fallbacks->fetch_add(1, std::memory_order_relaxed);
      return again(std::move(done));
    }
    std::move(done)(std::move(result), b);
  };
}

class FallbackEngine final : public Engine {
 public:
  FallbackEngine(std::unique_ptr<Engine> primary, std::unique_ptr<Engine> fallback)
      : primary_(std::move(primary)), fallback_(std::move(fallback)) {}

  EngineInfo info() const override { return primary_->info(); }

  // The primary's and the fallback's counters, and this wrapper's count of
  // operations moved from the one to the other.
  EngineStats stats() const override {
    EngineStats stats = primary_->stats();
    const EngineStats more = fallback_->stats();
    stats.io_uring_submits += more.io_uring_submits;
    stats.io_uring_sqes += more.io_uring_sqes;
    stats.io_uring_fixed_buffer_ops += more.io_uring_fixed_buffer_ops;
    stats.fallbacks.push_back({primary_->info().backend, fallback_->info().backend,
                               fallbacks_.load(std::memory_order_relaxed)});
    stats.fallbacks.insert(stats.fallbacks.end(), more.fallbacks.begin(), more.fallbacks.end());
    return stats;
  }

  void Open(std::string path, OpenMode mode, Callback<FileHandle> done) override {
    primary_->Open(path, mode, Retry(&fallbacks_, std::move(done), [this, path, mode](auto done) {
                     fallback_->Open(path, mode, std::move(done));
                   }));
  }
  void Read(FileHandle file, int64_t offset, absl::Span<char> dst, Cancellation* cancel,
            Callback<size_t> done) override {
    primary_->Read(file, offset, dst, cancel,
                   Retry(&fallbacks_, std::move(done), [this, file, offset, dst, cancel](auto done) {
                     fallback_->Read(file, offset, dst, cancel, std::move(done));
                   }));
  }
  void Write(FileHandle file, int64_t offset, absl::Span<const char> src,
             DoneCallback done) override {
    primary_->Write(file, offset, src, Retry(&fallbacks_, std::move(done), [this, file, offset, src](auto done) {
                      fallback_->Write(file, offset, src, std::move(done));
                    }));
  }
  void Truncate(FileHandle file, int64_t size, DoneCallback done) override {
    primary_->Truncate(file, size, Retry(&fallbacks_, std::move(done), [this, file, size](auto done) {
                         fallback_->Truncate(file, size, std::move(done));
                       }));
  }
  void Sync(FileHandle file, bool data_only, DoneCallback done) override {
    primary_->Sync(file, data_only, Retry(&fallbacks_, std::move(done), [this, file, data_only](auto done) {
                     fallback_->Sync(file, data_only, std::move(done));
                   }));
  }
  void Close(FileHandle file, DoneCallback done) override {
    primary_->Close(file, Retry(&fallbacks_, std::move(done), [this, file](auto done) {
                      fallback_->Close(file, std::move(done));
                    }));
  }
  void ReadFile(std::string path, absl::Span<char> dst, const ReadFileOptions& options,
                Callback<FileRead> done) override {
    primary_->ReadFile(path, dst, options,
                       Retry(&fallbacks_, std::move(done), [this, path, dst, options](auto done) {
                         fallback_->ReadFile(path, dst, options, std::move(done));
                       }));
  }
  void Stat(FileHandle file, Callback<FileStat> done) override {
    primary_->Stat(file, Retry(&fallbacks_, std::move(done), [this, file](auto done) {
                     fallback_->Stat(file, std::move(done));
                   }));
  }
  void StatPath(std::string path, Callback<FileStat> done) override {
    primary_->StatPath(path, Retry(&fallbacks_, std::move(done), [this, path](auto done) {
                         fallback_->StatPath(path, std::move(done));
                       }));
  }
  void SetMetadata(FileHandle file, std::string value, DoneCallback done) override {
    primary_->SetMetadata(file, value, Retry(&fallbacks_, std::move(done), [this, file, value](auto done) {
                            fallback_->SetMetadata(file, value, std::move(done));
                          }));
  }
  void Rename(std::string from, std::string to, DoneCallback done) override {
    primary_->Rename(from, to, Retry(&fallbacks_, std::move(done), [this, from, to](auto done) {
                       fallback_->Rename(from, to, std::move(done));
                     }));
  }
  void CommitFile(FileHandle file, std::string metadata, std::string from, std::string to,
                  DoneCallback done) override {
    primary_->CommitFile(file, metadata, from, to,
                         Retry(&fallbacks_, std::move(done), [this, file, metadata, from, to](auto done) {
                           fallback_->CommitFile(file, metadata, from, to, std::move(done));
                         }));
  }
  void Unlink(std::string path, DoneCallback done) override {
    primary_->Unlink(path, Retry(&fallbacks_, std::move(done), [this, path](auto done) {
                       fallback_->Unlink(path, std::move(done));
                     }));
  }
  void MakeDir(std::string path, DoneCallback done) override {
    primary_->MakeDir(path, Retry(&fallbacks_, std::move(done), [this, path](auto done) {
                        fallback_->MakeDir(path, std::move(done));
                      }));
  }
  void RemoveDir(std::string path, DoneCallback done) override {
    primary_->RemoveDir(path, Retry(&fallbacks_, std::move(done), [this, path](auto done) {
                          fallback_->RemoveDir(path, std::move(done));
                        }));
  }
  void ReadDir(std::string path, Callback<std::vector<DirEntry>> done) override {
    primary_->ReadDir(path, Retry(&fallbacks_, std::move(done), [this, path](auto done) {
                        fallback_->ReadDir(path, std::move(done));
                      }));
  }

 private:
  const std::unique_ptr<Engine> primary_;
  const std::unique_ptr<Engine> fallback_;
  // Operations the primary refused (EngineStats::fallbacks).
  std::atomic<uint64_t> fallbacks_{0};
};

}  // namespace

std::unique_ptr<Engine> WithFallback(std::unique_ptr<Engine> primary,
                                     std::unique_ptr<Engine> fallback) {
  return std::make_unique<FallbackEngine>(std::move(primary), std::move(fallback));
}

}  // namespace ringstore::storage
