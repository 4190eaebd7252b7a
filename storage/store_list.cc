// Store::List: a depth-first walk, in path order, of the directories under
// the prefix through the engine, resumed where the page token says; then
// stats of the page's files only.
//
// Order. Paths sort as byte strings, and a directory's entries are sorted
// by their name with a "/" appended to directories ("a.txt" < "a/b", since
// '.' < '/'). Everything below a directory shares the prefix "name/", so a
// depth-first walk over entries sorted this way yields full paths in
// sorted order without sorting the whole tree.
//
// Resuming. The token names the last entry of the previous page (a file, or
// with a delimiter a "dir/" prefix). The walk reads each directory on the
// way down to it, skips the entries that sort before the token's component
// at that level (they and everything below them come before the token),
// descends into the one equal to it, and from there on goes forward as
// usual until it has one entry more than the page (so the last page says
// it is the last). A page therefore reads O(depth) directories to get
// back to where it was, plus those its own entries are in: not everything
// before it. The directories are read again on every page, so files added
// or removed between pages are seen as they are now, and the token's entry
// may itself be gone.
//
// Token: web-safe base64 of "<crc32c hex of the rest>r2<d><crc32c hex of
// the prefix><last entry>", <d> being '/' with the delimiter, '-' without.
// List answers InvalidArgument for a token that does not decode, whose
// checksum is wrong, that belongs to another prefix or delimiter, or whose
// entry is not one this listing could have returned (not under the prefix,
// not a valid path). The checksum catches corruption, not forgery; a forged
// token can only move the start of a listing within its own prefix, which
// any client may do anyway.
//
// Empty directories never show up (directories are an implementation
// detail of paths, as in object stores): a "dir/" prefix is returned only
// once a file has been found below it.
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
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "third_party/system/crc32c.h"
#include "storage/path.h"
#include "storage/engine/sync.h"
#include "storage/store.h"
#include "storage/store_internal.h"

namespace ringstore::storage {
namespace {

constexpr int kMaxPageSize = 1000;
constexpr absl::string_view kTokenVersion = "r2";
constexpr size_t kNone = static_cast<size_t>(-1);

std::string Hex8(absl::string_view data) {
  return absl::StrCat(absl::Hex(Crc32c(data), absl::kZeroPad8));
}

std::string EncodeToken(const ListOptions& options, absl::string_view last) {
  const std::string body = absl::StrCat(kTokenVersion, options.delimiter.empty() ? "-" : "/",
                                        Hex8(options.prefix), last);
  return absl::WebSafeBase64Escape(absl::StrCat(Hex8(body), body));
}

absl::Status BadToken(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("bad page_token: ", why));
}

// The last entry a token of this listing names, or InvalidArgument.
absl::StatusOr<std::string> DecodeToken(const ListOptions& options) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(options.page_token, &raw)) return BadToken("not base64");
  constexpr size_t kHeader = 8 + 2 + 1 + 8;
  if (raw.size() <= kHeader) return BadToken("too short");
  const absl::string_view body = absl::string_view(raw).substr(8);
  if (raw.compare(0, 8, Hex8(body)) != 0) return BadToken("checksum mismatch");
  if (!absl::StartsWith(body, kTokenVersion)) return BadToken("unknown version");
  const char delimiter = body[2];
  if (delimiter != (options.delimiter.empty() ? '-' : '/')) {
    return BadToken("it belongs to a listing with another delimiter");
  }
  if (body.substr(3, 8) != Hex8(options.prefix)) {
    return BadToken("it belongs to a listing of another prefix");
  }
  std::string last(body.substr(11));
  const std::string& prefix = options.prefix;
  if (!absl::StartsWith(last, prefix)) return BadToken("its entry is outside the prefix");
  if (options.delimiter.empty()) {
    if (!ValidatePath(last).ok()) return BadToken("its entry is not a valid path");
    return last;
  }
  // With the delimiter: a file at the prefix's level, or a "dir/" there.
  const size_t slash = last.find('/', prefix.size());
  const bool is_dir = slash != std::string::npos;
  if (is_dir && slash != last.size() - 1) return BadToken("its entry is below a prefix");
  const absl::string_view path =
      is_dir ? absl::string_view(last).substr(0, last.size() - 1) : absl::string_view(last);
  if (path.size() < prefix.size() || !ValidatePath(path).ok()) {
    return BadToken("its entry is not a valid path");
  }
  return last;
}

class ListOp : public std::enable_shared_from_this<ListOp> {
 public:
  ListOp(Engine* engine, ListOptions options, std::string last, Cancellation* cancel,
         Engine::Callback<ListResult> done)
      : engine_(engine),
        options_(std::move(options)),
        page_size_(options_.page_size <= 0 ? kMaxPageSize
                                           : std::min(options_.page_size, kMaxPageSize)),
        last_(std::move(last)),
        cancel_(cancel),
        done_(std::move(done)) {}

  void Start() {
    const std::string& prefix = options_.prefix;
    std::string dir = absl::EndsWith(prefix, "/")
                          ? prefix.substr(0, prefix.size() - 1)
                          : std::string(ParentDir(prefix));
    // The token's entry relative to the start directory (DecodeToken made
    // sure it is below it).
    std::string resume = last_.empty()   ? std::string()
                         : dir.empty() ? last_
                                       : last_.substr(dir.size() + 1);
    Descend(std::move(dir), std::move(resume), "");
  }

 private:
  struct Entry {
    std::string name;
    // The name, with "/" appended for a directory: the sort key.
    std::string key;
    bool is_directory = false;
  };

  // One directory of the walk, on the stack from the start directory down.
  struct Frame {
    std::string dir;  // "" = the root
    std::vector<Entry> entries;
    size_t next = 0;
    // entries[resume_index] is the directory the token's entry is in;
    // the walk resumes inside it at child_resume.
    size_t resume_index = kNone;
    std::string child_resume;
    // Non-empty when this directory is listed as this one prefix ("dir/",
    // with the delimiter): the walk below it only looks for a file.
    std::string collapse_key;
  };

  // Could a file below directory `dir` (no trailing slash) match the prefix?
  bool MayMatch(const std::string& dir) const {
    const std::string with_slash = absl::StrCat(dir, "/");
    return absl::StartsWith(with_slash, options_.prefix) ||
           absl::StartsWith(options_.prefix, with_slash);
  }

  // Reads `dir` and pushes it on the walk's stack, positioned after
  // `resume` (a path relative to `dir`; "" = from the start), then goes on.
  void Descend(std::string dir, std::string resume, std::string collapse_key) {
    if (IsCancelled(cancel_)) return Answer(CancelledStatus());
    ++directories_read_;
    auto self = shared_from_this();
    engine_->ReadDir(dir, [self, dir, resume = std::move(resume),
                           collapse_key = std::move(collapse_key)](
                              absl::StatusOr<std::vector<DirEntry>> entries,
                              Backend backend) mutable {
      {
        MutexLock lock(&self->mu_);
        self->backend_ = backend;
      }
      // A missing directory (the start, or one removed during the walk or
      // since the last page) just holds nothing.
      if (!entries.ok() && entries.status().code() != absl::StatusCode::kNotFound) {
        return self->Answer(entries.status());
      }
      Frame frame;
      frame.dir = std::move(dir);
      frame.collapse_key = std::move(collapse_key);
      if (entries.ok()) {
        frame.entries.reserve(entries->size());
        for (DirEntry& e : *entries) {
          if (frame.dir.empty() && e.name == kPrivateDir) continue;
          if (!e.is_directory && !e.is_regular) continue;
          Entry entry;
          entry.key = e.is_directory ? absl::StrCat(e.name, "/") : e.name;
          entry.name = std::move(e.name);
          entry.is_directory = e.is_directory;
          frame.entries.push_back(std::move(entry));
        }
      }
      std::sort(frame.entries.begin(), frame.entries.end(),
                [](const Entry& a, const Entry& b) { return a.key < b.key; });
      if (!resume.empty()) {
        // The token's component at this level: a name, or "name/" if the
        // token's entry is below (or, with the delimiter, is) that directory.
        const size_t slash = resume.find('/');
        const std::string component =
            slash == std::string::npos ? resume : resume.substr(0, slash + 1);
        std::string rest = slash == std::string::npos ? "" : resume.substr(slash + 1);
        auto it = std::lower_bound(
            frame.entries.begin(), frame.entries.end(), component,
            [](const Entry& e, const std::string& k) { return e.key < k; });
        frame.next = static_cast<size_t>(it - frame.entries.begin());
        if (it != frame.entries.end() && it->key == component) {
          if (it->is_directory && !rest.empty()) {
            frame.resume_index = frame.next;
            frame.child_resume = std::move(rest);
          } else {
            ++frame.next;  // the token's entry itself: returned already
          }
        }
      }
      if (!frame.collapse_key.empty()) self->collapse_depth_ = self->stack_.size();
      self->stack_.push_back(std::move(frame));
      self->Advance();
    });
  }

  // Goes on with the walk until the page (plus one entry) is full or the
  // walk is over; returns when it has to read a directory first.
  void Advance() {
    for (;;) {
      if (entries_.size() > page_size_ || stack_.empty()) return Page();
      Frame& frame = stack_.back();
      if (frame.next == frame.entries.size()) {
        if (collapse_depth_ == stack_.size() - 1) collapse_depth_ = kNone;
        stack_.pop_back();
        continue;
      }
      const size_t i = frame.next++;
      const Entry& e = frame.entries[i];
      std::string full = frame.dir.empty() ? e.name : absl::StrCat(frame.dir, "/", e.name);
      // Below an invalid path there is no valid one (and paths stay short:
      // this bounds the depth of the walk).
      if (!ValidatePath(full).ok()) continue;
      const bool collapsing = collapse_depth_ != kNone;
      if (e.is_directory) {
        std::string resume = i == frame.resume_index ? std::move(frame.child_resume) : "";
        if (collapsing) return Descend(std::move(full), "", "");
        std::string with_slash = absl::StrCat(full, "/");
        if (!options_.delimiter.empty() && absl::StartsWith(with_slash, options_.prefix)) {
          return Descend(std::move(full), "", std::move(with_slash));
        }
        if (MayMatch(full)) return Descend(std::move(full), std::move(resume), "");
        continue;
      }
      if (collapsing) {
        // A file below a "dir/" prefix: the prefix is an entry, and nothing
        // more below it needs looking at.
        Emit(std::move(stack_[collapse_depth_].collapse_key), true);
        stack_.resize(collapse_depth_);
        collapse_depth_ = kNone;
        continue;
      }
      if (absl::StartsWith(full, options_.prefix)) Emit(std::move(full), false);
    }
  }

  void Emit(std::string key, bool is_prefix) {
    // The walk starts after the token; this only guards that promise.
    if (!last_.empty() && key <= last_) return;
    entries_.push_back({std::move(key), is_prefix});
  }

  // The walk is done: keeps one page, then stats its files.
  void Page() {
    stack_.clear();
    result_.directories_read = directories_read_;
    if (entries_.size() > page_size_) {
      entries_.resize(page_size_);
      result_.next_page_token = EncodeToken(options_, entries_.back().key);
    }
    for (PageEntry& e : entries_) {
      if (e.is_prefix) {
        result_.prefixes.push_back(std::move(e.key));
      } else {
        page_files_.push_back(std::move(e.key));
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

  struct PageEntry {
    std::string key;
    bool is_prefix = false;
  };

  Engine* const engine_;
  const ListOptions options_;
  const size_t page_size_;
  // The token's entry ("" on the first page).
  const std::string last_;
  Cancellation* const cancel_;
  // Run once, by the thread that ends the last step.
  Engine::Callback<ListResult> done_;

  // The walk: one directory read at a time, each continued by its
  // completion, so these are touched by one thread at a time (the engine's
  // hand-off from submission to completion orders them).
  std::vector<Frame> stack_;
  // Index in stack_ of the frame being listed as a prefix, or kNone.
  size_t collapse_depth_ = kNone;
  std::vector<PageEntry> entries_;
  int64_t directories_read_ = 0;

  Mutex mu_;
  // Stats whose callback has not run.
  int pending_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  Backend backend_ ABSL_GUARDED_BY(mu_) = Backend::kUnspecified;
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
  std::string last;
  if (!options.page_token.empty()) {
    absl::StatusOr<std::string> decoded = DecodeToken(options);
    if (!decoded.ok()) return std::move(done)(decoded.status(), backend);
    last = *std::move(decoded);
  }
  if (IsCancelled(cancel)) return std::move(done)(CancelledStatus(), backend);
  std::make_shared<ListOp>(engine_.get(), std::move(options), std::move(last), cancel,
                           std::move(done))
      ->Start();
}

}  // namespace ringstore::storage
