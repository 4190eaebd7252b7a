// Store::List: walk the directories under the prefix through the engine,
// then sort, page, and stat only the files of the page.
//
// The walk visits only directories that can hold matching paths, but it
// does visit all of those on every page: cost grows with the number of files
// under the prefix, not with the page size. Empty directories never show up
// (directories are an implementation detail of paths, as in object stores).
//
// Cancellation: neither ReadDir nor StatPath can be cut short in the engine,
// so a cancelled List starts no further step, lets the steps in flight end,
// and answers Cancelled.
#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/path.h"
#include "storage/engine/sync.h"
#include "storage/store.h"
#include "storage/store_internal.h"

namespace ringstore::storage {
namespace {

constexpr int kMaxPageSize = 1000;

class ListOp : public std::enable_shared_from_this<ListOp> {
 public:
  ListOp(Engine* engine, ListOptions options, Cancellation* cancel,
         Engine::Callback<ListResult> done)
      : engine_(engine), options_(std::move(options)), cancel_(cancel), done_(std::move(done)) {}

  void Start() {
    const std::string& prefix = options_.prefix;
    std::string dir = absl::EndsWith(prefix, "/")
                          ? prefix.substr(0, prefix.size() - 1)
                          : std::string(ParentDir(prefix));
    {
      MutexLock lock(&mu_);
      pending_ = 1;
    }
    Walk(std::move(dir));
  }

 private:
  // Could a file below directory `dir` (no trailing slash) match the prefix?
  bool MayMatch(const std::string& dir) const {
    const std::string with_slash = absl::StrCat(dir, "/");
    return absl::StartsWith(with_slash, options_.prefix) ||
           absl::StartsWith(options_.prefix, with_slash);
  }

  // Records `s` as the answer unless an error is recorded already.
  void SetError(absl::Status s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (error_.ok()) error_ = std::move(s);
  }

  // True (and Cancelled recorded) if the List has been cancelled: then no
  // further step starts.
  bool CheckCancelled() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!IsCancelled(cancel_)) return false;
    SetError(CancelledStatus());
    return true;
  }

  // Reads directory `dir` (counted in pending_ by the caller), then walks
  // its sub-directories that may hold matches.
  void Walk(std::string dir) {
    bool cancelled;
    {
      MutexLock lock(&mu_);
      cancelled = CheckCancelled();
    }
    if (cancelled) return WalkDone();
    auto self = shared_from_this();
    engine_->ReadDir(dir, [self, dir](absl::StatusOr<std::vector<DirEntry>> entries,
                                      Backend backend) {
      std::vector<std::string> subdirs;
      {
        MutexLock lock(&self->mu_);
        self->backend_ = backend;
        if (self->CheckCancelled()) {
          // No deeper.
        } else if (!entries.ok()) {
          // A missing start directory just means no matches; a directory
          // removed during the walk likewise.
          if (entries.status().code() != absl::StatusCode::kNotFound) {
            self->SetError(entries.status());
          }
        } else {
          for (DirEntry& e : *entries) {
            if (dir.empty() && e.name == kPrivateDir) continue;
            std::string full = dir.empty() ? e.name : absl::StrCat(dir, "/", e.name);
            if (e.is_directory) {
              if (self->MayMatch(full)) subdirs.push_back(std::move(full));
            } else if (e.is_regular && absl::StartsWith(full, self->options_.prefix) &&
                       ValidatePath(full).ok()) {
              self->files_.push_back(std::move(full));
            }
          }
        }
        self->pending_ += static_cast<int>(subdirs.size());
      }
      for (std::string& d : subdirs) self->Walk(std::move(d));
      self->WalkDone();
    });
  }

  // One directory of the walk is done; after the last, the page.
  void WalkDone() {
    absl::Status error;
    {
      MutexLock lock(&mu_);
      if (--pending_ > 0) return;
      error = error_;
    }
    // The walk is over: from here on one thread at a time runs this op.
    if (!error.ok()) return Answer(std::move(error));
    Page();
  }

  // Turns the sorted files into entries (files, or directory prefixes with a
  // delimiter), keeps one page after the token, then stats its files.
  void Page() {
    std::vector<std::string> files;
    {
      MutexLock lock(&mu_);
      files.swap(files_);
    }
    std::sort(files.begin(), files.end());
    const size_t page_size = options_.page_size <= 0
                                 ? kMaxPageSize
                                 : std::min(options_.page_size, kMaxPageSize);
    size_t page_entries = 0;
    std::string last_key;
    for (const std::string& f : files) {
      std::string key = f;
      bool is_prefix = false;
      if (!options_.delimiter.empty()) {
        const size_t slash = f.find('/', options_.prefix.size());
        if (slash != std::string::npos) {
          key = f.substr(0, slash + 1);
          is_prefix = true;
        }
      }
      // Keys come out sorted; one directory yields one prefix entry.
      if (key == last_key) continue;
      if (!options_.page_token.empty() && key <= options_.page_token) continue;
      if (page_entries == page_size) {
        result_.next_page_token = last_key;
        break;
      }
      ++page_entries;
      last_key = key;
      if (is_prefix) {
        result_.prefixes.push_back(std::move(key));
      } else {
        page_files_.push_back(std::move(key));
      }
    }
    if (page_files_.empty()) return Answer(absl::OkStatus());
    {
      MutexLock lock(&mu_);
      infos_.resize(page_files_.size());
      pending_ = static_cast<int>(page_files_.size());
    }
    for (size_t i = 0; i < page_files_.size(); ++i) StatOne(i);
  }

  // Stats page_files_[i] into infos_[i] (counted in pending_ by Page).
  void StatOne(size_t i) {
    bool cancelled;
    {
      MutexLock lock(&mu_);
      cancelled = CheckCancelled();
    }
    if (cancelled) return StatDone();
    auto self = shared_from_this();
    engine_->StatPath(page_files_[i], [self, i](absl::StatusOr<FileStat> st, Backend) {
      {
        MutexLock lock(&self->mu_);
        if (self->CheckCancelled()) {
          // Answered as Cancelled.
        } else if (st.ok() && st->is_regular) {
          ObjectInfo& info = self->infos_[i];
          info.path = self->page_files_[i];
          info.size = st->size;
          info.modified = st->modified;
          DecodeMetadata(st->metadata, st->modified, &info);
        } else if (!st.ok() && st.status().code() != absl::StatusCode::kNotFound) {
          self->SetError(st.status());
        }
      }
      self->StatDone();
    });
  }

  void StatDone() {
    absl::Status error;
    std::vector<ObjectInfo> infos;
    {
      MutexLock lock(&mu_);
      if (--pending_ > 0) return;
      error = error_;
      infos.swap(infos_);
    }
    for (ObjectInfo& info : infos) {
      // Files deleted since the walk are left out.
      if (!info.path.empty()) result_.files.push_back(std::move(info));
    }
    Answer(std::move(error));
  }

  // Calls back with result_, or with `error` if it is not OK.
  void Answer(absl::Status error) {
    Backend backend;
    {
      MutexLock lock(&mu_);
      backend = backend_;
    }
    if (!error.ok()) return std::move(done_)(std::move(error), backend);
    std::move(done_)(std::move(result_), backend);
  }

  Engine* const engine_;
  const ListOptions options_;
  Cancellation* const cancel_;
  // Run once, by the thread that ends the last step.
  Engine::Callback<ListResult> done_;

  Mutex mu_;
  // Steps (directory reads, then stats) whose callback has not run.
  int pending_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  Backend backend_ ABSL_GUARDED_BY(mu_) = Backend::kUnspecified;
  // Files under the prefix, filled by the walk.
  std::vector<std::string> files_ ABSL_GUARDED_BY(mu_);
  std::vector<ObjectInfo> infos_ ABSL_GUARDED_BY(mu_);
  // Written by Page before the stats start, then read-only until the
  // answer (page_files_), or written only by the thread that ends the last
  // step (result_).
  std::vector<std::string> page_files_;
  ListResult result_;
};

}  // namespace

void Store::List(ListOptions options, Cancellation* cancel, Callback<ListResult> done) {
  const Backend backend = engine_->info().backend;
  if (absl::Status s = ValidatePrefix(options.prefix); !s.ok()) {
    return std::move(done)(s, backend);
  }
  if (!options.delimiter.empty() && options.delimiter != "/") {
    return std::move(done)(
        absl::InvalidArgumentError("delimiter must be \"\" or \"/\""), backend);
  }
  if (options.page_size < 0) {
    return std::move(done)(absl::InvalidArgumentError("negative page_size"), backend);
  }
  if (IsCancelled(cancel)) return std::move(done)(CancelledStatus(), backend);
  std::make_shared<ListOp>(engine_.get(), std::move(options), cancel, std::move(done))->Start();
}

}  // namespace ringstore::storage
