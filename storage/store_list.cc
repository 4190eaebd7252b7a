// Store::List: walk the directories under the prefix through the engine,
// then sort, page, and stat only the files of the page.
//
// The walk visits only directories that can hold matching paths, but it
// does visit all of those on every page: cost grows with the number of files
// under the prefix, not with the page size. Empty directories never show up
// (directories are an implementation detail of paths, as in object stores).
#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/path.h"
#include "storage/store.h"
#include "storage/engine/sync.h"

namespace ringstore::storage {
namespace {

constexpr int kMaxPageSize = 1000;

class ListOp : public std::enable_shared_from_this<ListOp> {
 public:
  ListOp(Engine* engine, ListOptions options, Engine::Callback<ListResult> done)
      : engine_(engine), options_(std::move(options)), done_(std::move(done)) {}

  void Start() {
    const std::string& prefix = options_.prefix;
    std::string dir = absl::EndsWith(prefix, "/")
                          ? prefix.substr(0, prefix.size() - 1)
                          : std::string(ParentDir(prefix));
    {
      MutexLock lock(&mu_);
      pending_ = 1;
    }
    Walk(std::move(dir), /*is_start=*/true);
  }

 private:
  // Could a file below directory `dir` (no trailing slash) match the prefix?
  bool MayMatch(const std::string& dir) const {
    const std::string with_slash = absl::StrCat(dir, "/");
    return absl::StartsWith(with_slash, options_.prefix) ||
           absl::StartsWith(options_.prefix, with_slash);
  }

  void Walk(std::string dir, bool is_start) {
    auto self = shared_from_this();
    engine_->ReadDir(dir, [self, dir, is_start](
                              absl::StatusOr<std::vector<DirEntry>> entries,
                              Backend backend) {
      std::vector<std::string> subdirs;
      {
        MutexLock lock(&self->mu_);
        self->backend_ = backend;
        if (!entries.ok()) {
          // A missing start directory just means no matches; a directory
          // removed during the walk likewise.
          if (entries.status().code() != absl::StatusCode::kNotFound && self->error_.ok()) {
            self->error_ = entries.status();
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
      for (std::string& d : subdirs) self->Walk(std::move(d), false);
      self->DoneOne();
    });
  }

  void DoneOne() {
    {
      MutexLock lock(&mu_);
      if (--pending_ > 0) return;
    }
    if (!error_.ok()) return std::move(done_)(error_, backend_);
    Page();
  }

  // Turns the sorted files into entries (files, or directory prefixes with a
  // delimiter), keeps one page after the token, then stats its files.
  void Page() {
    std::sort(files_.begin(), files_.end());
    const size_t page_size = options_.page_size <= 0
                                 ? kMaxPageSize
                                 : std::min(options_.page_size, kMaxPageSize);
    std::string last_key;
    for (const std::string& f : files_) {
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
      if (page_entries_ == page_size) {
        result_.next_page_token = last_key;
        break;
      }
      ++page_entries_;
      last_key = key;
      if (is_prefix) {
        result_.prefixes.push_back(std::move(key));
      } else {
        page_files_.push_back(std::move(key));
      }
    }
    files_.clear();
    if (page_files_.empty()) return std::move(done_)(std::move(result_), backend_);
    infos_.resize(page_files_.size());
    {
      MutexLock lock(&mu_);
      pending_ = static_cast<int>(page_files_.size());
    }
    for (size_t i = 0; i < page_files_.size(); ++i) StatOne(i);
  }

  void StatOne(size_t i) {
    auto self = shared_from_this();
    engine_->StatPath(page_files_[i], [self, i](absl::StatusOr<FileStat> st, Backend) {
      bool last;
      {
        MutexLock lock(&self->mu_);
        if (st.ok() && st->is_regular) {
          ObjectInfo& info = self->infos_[i];
          info.path = self->page_files_[i];
          info.size = st->size;
          info.modified = st->modified;
          DecodeMetadata(st->metadata, st->modified, &info);
        } else if (!st.ok() && st.status().code() != absl::StatusCode::kNotFound &&
                   self->error_.ok()) {
          self->error_ = st.status();
        }
        last = --self->pending_ == 0;
      }
      if (last) self->Finish();
    });
  }

  void Finish() {
    if (!error_.ok()) return std::move(done_)(error_, backend_);
    for (ObjectInfo& info : infos_) {
      // Files deleted since the walk are left out.
      if (!info.path.empty()) result_.files.push_back(std::move(info));
    }
    std::move(done_)(std::move(result_), backend_);
  }

  Engine* const engine_;
  const ListOptions options_;
  Engine::Callback<ListResult> done_;

  Mutex mu_;
  int pending_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status error_;
  Backend backend_ = Backend::kUnspecified;
  // Filled by the walk (under mu_), then used by one thread at a time.
  std::vector<std::string> files_;
  std::vector<std::string> page_files_;
  std::vector<ObjectInfo> infos_;
  size_t page_entries_ = 0;
  ListResult result_;
};

}  // namespace

void Store::List(ListOptions options, Callback<ListResult> done) {
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
  std::make_shared<ListOp>(engine_.get(), std::move(options), std::move(done))->Start();
}

}  // namespace ringstore::storage
