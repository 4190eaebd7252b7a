#include "storage/store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "third_party/system/crc32c.h"
#include "storage/engine/engine_selector.h"
#include "storage/metadata_cache.h"
#include "storage/path.h"
#include "storage/path_locks.h"
#include "storage/quota.h"
#include "storage/quota_ledger.h"
#include "storage/server_dir.h"
#include "storage/shared_locks.h"
#include "storage/engine/posix_ops.h"
#include "storage/engine/status_util.h"
#include "storage/store_internal.h"
#include "storage/upload_session.h"
#include "storage/engine/sync.h"

namespace ringstore::storage {
namespace {

using DoneCallback = Engine::DoneCallback;

const std::string kTmpDir = absl::StrCat(kPrivateDir, "/tmp");

}  // namespace

ObjectInfo MakeInfo(std::string path, const FileStat& stat) {
  ObjectInfo info;
  info.path = std::move(path);
  info.size = stat.size;
  info.modified = stat.modified;
  DecodeMetadata(stat.metadata, stat.modified, &info);
  return info;
}

namespace {

absl::Status NotAFile(absl::string_view path) {
  return absl::NotFoundError(absl::StrCat("no file \"", path, "\""));
}

// ReadSmall's answer for a failed read: a directory is not a file.
absl::Status SmallReadError(absl::string_view path, const absl::Status& s) {
  return s.code() == absl::StatusCode::kFailedPrecondition ? NotAFile(path) : s;
}

// ---------------------------------------------------------------------------
// Reader

class ReaderImpl final : public Reader {
 public:
  ReaderImpl(Store* store, FileHandle file, ObjectInfo info)
      : state_(std::make_shared<State>(store, file)), info_(std::move(info)) {}

  ~ReaderImpl() override {
    bool close_now;
    {
      MutexLock lock(&state_->mu);
      state_->closing = true;
      close_now = state_->in_flight == 0;
    }
    if (close_now) CloseFile(state_);
  }

  const ObjectInfo& info() const override { return info_; }

  void Read(int64_t offset, absl::Span<char> dst, Cancellation* cancel,
            Engine::Callback<size_t> done) override {
    {
      MutexLock lock(&state_->mu);
      ++state_->in_flight;
    }
    state_->store->engine().Read(
        state_->file, offset, dst, cancel,
        [state = state_, done = std::move(done)](absl::StatusOr<size_t> n,
                                                 Backend backend) mutable {
          // Bookkeeping first: once `done` has run, the caller may destroy
          // the Reader and then the Store.
          bool close_now;
          {
            MutexLock lock(&state->mu);
            --state->in_flight;
            close_now = state->closing && state->in_flight == 0;
          }
          if (close_now) CloseFile(state);
          std::move(done)(std::move(n), backend);
        });
  }

 private:
  struct State {
    State(Store* s, FileHandle f) : store(s), file(f) {}
    Store* const store;
    const FileHandle file;
    Mutex mu;
    int in_flight ABSL_GUARDED_BY(mu) = 0;
    bool closing ABSL_GUARDED_BY(mu) = false;
  };

  static void CloseFile(const std::shared_ptr<State>& state) {
    state->store->CloseInBackground(state->file);
  }

  const std::shared_ptr<State> state_;
  const ObjectInfo info_;
};

// ---------------------------------------------------------------------------
// Delete

struct DeleteOp : std::enable_shared_from_this<DeleteOp> {
  DeleteOp(Store* s, std::string p, std::optional<int64_t> g, DoneCallback d)
      : store(s), path(std::move(p)), if_generation_match(g), done(std::move(d)) {}

  Store* const store;
  const std::string path;
  const std::optional<int64_t> if_generation_match;
  DoneCallback done;
  Backend backend = Backend::kUnspecified;

  void Start() {
    store->locks().Lock(path, [self = shared_from_this()] { self->Check(); });
  }

  void Check() {
    auto self = shared_from_this();
    store->engine().StatPath(path, [self](absl::StatusOr<FileStat> st, Backend b) {
      self->backend = b;
      if (!st.ok()) return self->Finish(st.status());
      if (!st->is_regular) return self->Finish(NotAFile(self->path));
      const int64_t generation = MakeInfo(self->path, *st).generation;
      // A re-create through this store gets a later generation, even if
      // another server committed this one.
      self->store->ObserveGeneration(generation);
      if (self->if_generation_match && *self->if_generation_match != generation) {
        return self->Finish(absl::FailedPreconditionError(
            absl::StrCat("generation of \"", self->path, "\" is ", generation,
                         ", not ", *self->if_generation_match)));
      }
      const int64_t size = st->size;
      self->store->engine().Unlink(self->path, [self, size](absl::Status s, Backend) {
        if (!s.ok()) return self->Finish(s);
        // Gone, whatever the directory's fsync says.
        if (Quota* quota = self->store->quota()) quota->Remove(size);
        self->Prune(std::string(ParentDir(self->path)));
      });
    });
  }

  // Removes `dir` if the unlink left it empty, then its parent likewise, up
  // to the root (""), which stays; then fsyncs the directory where that
  // stopped, which makes the unlink (or the removal of the directory that
  // held it) durable. rmdir fails on a directory that holds anything,
  // including one an upload has just created and not yet renamed into: the
  // pruning stops there, and an upload whose directory went anyway creates
  // it again (store_writer.cc). A removal that fails for another reason
  // stops the pruning too: the file is gone either way.
  void Prune(std::string dir) {
    if (dir.empty()) return SyncAndFinish(std::move(dir));
    auto self = shared_from_this();
    store->engine().RemoveDir(dir, [self, dir](absl::Status s, Backend) {
      if (s.ok()) return self->Prune(std::string(ParentDir(dir)));
      if (s.code() == absl::StatusCode::kNotFound) {
        // A concurrent Delete removed it (and goes on above it).
        return self->Finish(absl::OkStatus());
      }
      self->SyncAndFinish(dir);
    });
  }

  void SyncAndFinish(std::string dir) {
    auto self = shared_from_this();
    SyncDirectories(&store->engine(), {std::move(dir)}, [self](absl::Status s, Backend) {
      // Removed meanwhile by a concurrent Delete, which syncs its parent.
      if (s.code() == absl::StatusCode::kNotFound) s = absl::OkStatus();
      self->Finish(std::move(s));
    });
  }

  void Finish(absl::Status s) {
    store->metadata().Erase(path);
    store->locks().Unlock(path);
    std::move(done)(std::move(s), backend);
  }
};

}  // namespace

// fsyncs each directory of `dirs` in turn (so new entries in them are
// durable), then calls `done` with the first error.
void SyncDirectories(Engine* engine, std::vector<std::string> dirs,
                     DoneCallback done) {
  if (dirs.empty()) {
    std::move(done)(absl::OkStatus(), engine->info().backend);
    return;
  }
  std::string dir = std::move(dirs.back());
  dirs.pop_back();
  engine->Open(dir, OpenMode::kDirectory,
               [engine, dirs = std::move(dirs), done = std::move(done)](
                   absl::StatusOr<FileHandle> file, Backend backend) mutable {
                 if (!file.ok()) {
                   std::move(done)(file.status(), backend);
                   return;
                 }
                 engine->Sync(*file, /*data_only=*/false,
                              [engine, file = *file, dirs = std::move(dirs),
                               done = std::move(done)](absl::Status s, Backend) mutable {
                                engine->Close(file, [engine, s, dirs = std::move(dirs),
                                                     done = std::move(done)](
                                                        absl::Status closed,
                                                        Backend backend) mutable {
                                  if (s.ok()) s = closed;
                                  if (!s.ok()) {
                                    std::move(done)(s, backend);
                                    return;
                                  }
                                  SyncDirectories(engine, std::move(dirs), std::move(done));
                                });
                              });
               });
}

absl::Status CancelledStatus() { return absl::CancelledError("the request was cancelled"); }

// ---------------------------------------------------------------------------
// Metadata

std::string EncodeMetadata(const Metadata& m) {
  return absl::StrCat("v1 ", m.generation, " ", m.crc32c, " ", m.size, " ",
                      absl::ToUnixNanos(m.modified));
}

std::optional<Metadata> ParseMetadata(absl::string_view text) {
  std::vector<absl::string_view> f = absl::StrSplit(text, ' ');
  Metadata m;
  int64_t nanos;
  if (f.size() != 5 || f[0] != "v1" || !absl::SimpleAtoi(f[1], &m.generation) ||
      !absl::SimpleAtoi(f[2], &m.crc32c) || !absl::SimpleAtoi(f[3], &m.size) ||
      !absl::SimpleAtoi(f[4], &nanos) || m.generation <= 0 || m.size < 0) {
    return std::nullopt;
  }
  m.modified = absl::FromUnixNanos(nanos);
  return m;
}

void DecodeMetadata(absl::string_view metadata, absl::Time modified,
                    ObjectInfo* info) {
  if (std::optional<Metadata> m = ParseMetadata(metadata)) {
    info->generation = m->generation;
    info->crc32c = m->crc32c;
    info->modified = m->modified;
    return;
  }
  info->generation = std::max<int64_t>(1, absl::ToUnixMicros(modified));
  info->crc32c = 0;
  info->modified = modified;
}

// ---------------------------------------------------------------------------
// Store

namespace {

// The quota's count at start-up (quota_ledger.h): the clean count the last
// run left, else (only with a limit) a walk of the tree; null when neither
// (no limit, and a store that did not stop cleanly: no count is kept). A
// store that keeps a count is marked dirty before it takes a write.
absl::StatusOr<std::unique_ptr<Quota>> OpenQuota(int root_fd, const PosixFiles& files,
                                                 const StoreOptions& options) {
  if (options.max_store_bytes < 0) {
    return absl::InvalidArgumentError("max_store_bytes must not be negative");
  }
  absl::StatusOr<int> dir = files.OpenBeneath(kPrivateDir, O_RDONLY | O_DIRECTORY);
  if (!dir.ok()) return dir.status();
  absl::StatusOr<std::unique_ptr<Quota>> out = [&]() -> absl::StatusOr<std::unique_ptr<Quota>> {
    absl::StatusOr<std::optional<int64_t>> clean = ReadCleanCount(*dir);
    if (!clean.ok()) return clean.status();
    int64_t committed;
    if (*clean) {
      committed = **clean;
    } else if (options.max_store_bytes == 0) {
      return nullptr;
    } else {
      absl::StatusOr<int64_t> walked = SumFileBytes(root_fd);
      if (!walked.ok()) return walked.status();
      committed = *walked;
    }
    if (absl::Status s = MarkDirty(*dir); !s.ok()) return s;
    return std::make_unique<Quota>(options.max_store_bytes, committed);
  }();
  close(*dir);
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.root, ec);
  if (ec) {
    return ErrnoToStatus(ec.value(), absl::StrCat("create root ", options.root));
  }
  const int root_fd = open(options.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) return ErrnoToStatus(errno, absl::StrCat("open root ", options.root));
  auto fail = [root_fd](absl::Status s) {
    close(root_fd);
    return s;
  };
  const PosixFiles files(root_fd, EngineOptions().metadata_attr);
  for (const std::string& dir : {std::string(kPrivateDir), kTmpDir}) {
    absl::Status s = files.MakeDir(dir);
    if (!s.ok() && s.code() != absl::StatusCode::kAlreadyExists) return fail(s);
  }
  // The root's lock file; from here on this server counts as live.
  absl::StatusOr<std::unique_ptr<SharedLocks>> shared = SharedLocks::Open(root_fd);
  if (!shared.ok()) return fail(shared.status());
  // Temp data of servers a crash stopped is garbage: remove it. Ours goes
  // in a directory of our own.
  absl::StatusOr<std::unique_ptr<ServerDir>> server_dir = ServerDir::Open(root_fd, &RandomId);
  if (!server_dir.ok()) return fail(server_dir.status());
  // Metadata lives in a user extended attribute: the file system must keep
  // them (ext4, xfs, btrfs and tmpfs since Linux 6.6 do).
  {
    const std::string probe = absl::StrCat((*server_dir)->path(), "/xattr-probe");
    absl::StatusOr<int> fd = files.Open(probe, OpenMode::kCreateWrite);
    if (!fd.ok()) return fail(fd.status());
    absl::Status s = files.SetAttr(*fd, "user.ringstore.probe", "1");
    close(*fd);
    (void)files.Unlink(probe);
    if (!s.ok()) {
      return fail(absl::FailedPreconditionError(absl::StrCat(
          "the file system of ", options.root,
          " does not keep user extended attributes (", s.message(), ")")));
    }
  }
  // Resumable sessions survive; what no session owns goes.
  if (absl::Status s = CleanUploadsDir(root_fd); !s.ok()) return fail(s);
  absl::StatusOr<std::unique_ptr<Quota>> quota = OpenQuota(root_fd, files, options);
  if (!quota.ok()) return fail(quota.status());
  absl::StatusOr<std::unique_ptr<BufferPool>> pool =
      BufferPool::Create(options.buffer_count, options.buffer_size);
  if (!pool.ok()) return fail(pool.status());
  EngineOptions engine_options;
  engine_options.root_fd = root_fd;
  engine_options.pool = pool->get();
  engine_options.threads = options.engine_threads;
  engine_options.io_uring_sqpoll_idle_ms = options.io_uring_sqpoll_idle_ms;
  engine_options.faults = options.faults;
  absl::StatusOr<StartedEngine> engine = StartEngine(options.engine, engine_options);
  if (!engine.ok()) return fail(engine.status());
  // Servers already on the root may use their metadata caches until their
  // leases run out: commit nothing before (metadata_cache.h).
  if (absl::StatusOr<bool> others = (*shared)->OthersLive(); !others.ok() || *others) {
    absl::SleepFor(kJoinWait);
  }
  return std::unique_ptr<Store>(new Store(options, root_fd, *std::move(pool),
                                          std::move(engine->engine), std::move(engine->available),
                                          *std::move(quota), *std::move(shared),
                                          *std::move(server_dir)));
}

Store::Store(StoreOptions options, int root_fd, std::unique_ptr<BufferPool> pool,
             std::unique_ptr<Engine> engine, std::vector<std::string> available,
             std::unique_ptr<Quota> quota, std::unique_ptr<SharedLocks> shared_locks,
             std::unique_ptr<ServerDir> server_dir)
    : options_(std::move(options)),
      root_fd_(root_fd),
      pool_(std::move(pool)),
      engine_(std::move(engine)),
      shared_locks_(std::move(shared_locks)),
      server_dir_(std::move(server_dir)),
      locks_(std::make_unique<PathLocks>(shared_locks_.get())),
      metadata_(std::make_unique<MetadataCache>(options_.metadata_cache_entries)),
      available_(std::move(available)),
      quota_(std::move(quota)),
      last_generation_(absl::ToUnixMicros(absl::Now())) {
  // The metadata cache serves only while no other server is live
  // (metadata_cache.h): ask now, then every kMetadataScanPeriod.
  auto observe = [shared = shared_locks_.get(), cache = metadata_.get()] {
    const MetadataCache::Clock::time_point asked = MetadataCache::Clock::now();
    const absl::StatusOr<bool> others = shared->OthersLive();
    cache->Observe(asked, !others.ok() || *others);
  };
  observe();
  shared_locks_->SetTicker(kMetadataScanPeriod, observe);
}

Store::~Store() {
  {
    MutexLock lock(&background_mu_);
    background_mu_.Await(absl::Condition(
        +[](int* n) { return *n == 0; }, &background_));
  }
  // The quota's count is this server's alone: it is the root's only if no
  // other server used the root meanwhile (each keeps its own).
  (void)shared_locks_->OthersLive();
  const bool alone_throughout = !shared_locks_->others_seen();
  // Stops the poller (whose tick uses the metadata cache) and leaves the
  // root's lock file: other servers stop counting this one.
  shared_locks_.reset();
  engine_.reset();  // finishes queued work while the pool still exists
  if (quota_ != nullptr && alone_throughout) {
    // Every upload has ended: the count is exact (as far as this process
    // knows), so the next Open may trust it. Failing that, or with another
    // server on the root, it walks.
    absl::StatusOr<int> dir =
        PosixFiles(root_fd_, EngineOptions().metadata_attr)
            .OpenBeneath(kPrivateDir, O_RDONLY | O_DIRECTORY);
    if (dir.ok()) {
      (void)MarkClean(*dir, quota_->committed());
      close(*dir);
    }
  }
  server_dir_.reset();  // removes this server's temp directory
  close(root_fd_);
}

int64_t Store::used_bytes() const { return quota_ ? quota_->used() : -1; }

int64_t Store::committed_bytes() const { return quota_ ? quota_->committed() : -1; }

void Store::BeginBackground() {
  MutexLock lock(&background_mu_);
  ++background_;
}

void Store::EndBackground() {
  MutexLock lock(&background_mu_);
  --background_;
}

void Store::CloseInBackground(FileHandle file) {
  BeginBackground();
  engine_->Close(file, [this](absl::Status, Backend) { EndBackground(); });
}

int64_t Store::NextGeneration(int64_t floor) {
  int64_t last = last_generation_.load();
  for (;;) {
    const int64_t next =
        std::max({last + 1, floor + 1, absl::ToUnixMicros(absl::Now())});
    if (last_generation_.compare_exchange_weak(last, next)) return next;
  }
}

void Store::Stat(std::string path, Cancellation* cancel, Callback<ObjectInfo> done) {
  if (absl::Status s = ValidatePath(path); !s.ok()) {
    std::move(done)(s, engine_->info().backend);
    return;
  }
  if (IsCancelled(cancel)) {
    std::move(done)(CancelledStatus(), engine_->info().backend);
    return;
  }
  // One engine step, which the engine cannot cut short (Engine::StatPath
  // takes no Cancellation): a cancellation during it is reported at its end.
  engine_->StatPath(path, [path, cancel, done = std::move(done)](absl::StatusOr<FileStat> st,
                                                                Backend b) mutable {
    if (IsCancelled(cancel)) return std::move(done)(CancelledStatus(), b);
    if (!st.ok()) return std::move(done)(st.status(), b);
    if (!st->is_regular) return std::move(done)(NotAFile(path), b);
    std::move(done)(MakeInfo(std::move(path), *st), b);
  });
}

void Store::Delete(std::string path, std::optional<int64_t> if_generation_match,
                   Engine::DoneCallback done) {
  if (absl::Status s = ValidatePath(path); !s.ok()) {
    std::move(done)(s, engine_->info().backend);
    return;
  }
  std::make_shared<DeleteOp>(this, std::move(path), if_generation_match, std::move(done))
      ->Start();
}

void Store::OpenReader(std::string path, Callback<std::unique_ptr<Reader>> done) {
  if (absl::Status s = ValidatePath(path); !s.ok()) {
    std::move(done)(s, engine_->info().backend);
    return;
  }
  Engine* engine = engine_.get();
  engine->Open(path, OpenMode::kRead, [this, engine, path, done = std::move(done)](
                                          absl::StatusOr<FileHandle> file,
                                          Backend b) mutable {
    if (!file.ok()) {
      // A directory is not a file: report it as absent.
      absl::Status s = file.status().code() == absl::StatusCode::kFailedPrecondition
                           ? NotAFile(path)
                           : file.status();
      return std::move(done)(s, b);
    }
    engine->Stat(*file, [this, file = *file, path = std::move(path),
                         done = std::move(done)](absl::StatusOr<FileStat> st,
                                                 Backend b) mutable {
      if (!st.ok()) {
        CloseInBackground(file);
        return std::move(done)(st.status(), b);
      }
      std::move(done)(std::make_unique<ReaderImpl>(this, file, MakeInfo(path, *st)), b);
    });
  });
}

void Store::ReadSmall(std::string path, absl::Span<char> dst, Cancellation* cancel,
                      Callback<SmallRead> done) {
  if (absl::Status s = ValidatePath(path); !s.ok()) {
    std::move(done)(s, engine_->info().backend);
    return;
  }
  if (std::optional<ObjectInfo> known = metadata_->Lookup(path)) {
    // Known not to fit: open it once instead of reading a buffer in vain.
    if (known->size > static_cast<int64_t>(dst.size())) {
      return ReadSmallOpen(std::move(path), std::move(done));
    }
    // Known to fill it exactly: the bytes alone could not tell it from a
    // larger file, so read them once with the attribute that vouches for
    // the size, not once without it and again with it.
    if (known->size == static_cast<int64_t>(dst.size())) {
      return ReadSmallWithMetadata(std::move(path), dst, cancel, std::move(done));
    }
    // The data alone, checked against what we know of the file.
    ReadFileOptions options;
    options.metadata = false;
    options.cancel = cancel;
    engine_->ReadFile(path, dst, options, [this, path, dst, cancel, known = *std::move(known),
                                           done = std::move(done)](
                                              absl::StatusOr<FileRead> r, Backend b) mutable {
      // Still alone on the root (the lease may have run out meanwhile).
      if (r.ok() && r->length < dst.size() && metadata_->usable() &&
          static_cast<int64_t>(r->length) == known.size &&
          Crc32c(absl::string_view(dst.data(), r->length)) == known.crc32c) {
        SmallRead out;
        out.complete = true;
        out.crc32c_checked = true;
        out.info = std::move(known);
        return std::move(done)(std::move(out), b);
      }
      if (!r.ok()) return std::move(done)(SmallReadError(path, r.status()), b);
      // Changed since we learnt about it (by a commit in flight, or by
      // hand): read it again with its metadata.
      ReadSmallWithMetadata(std::move(path), dst, cancel, std::move(done));
    });
    return;
  }
  ReadSmallWithMetadata(std::move(path), dst, cancel, std::move(done),
                        metadata_->usable() ? first_reads_.Next(dst.size())
                                            : FirstReadPlanner::Plan::kCached);
}

void Store::ReadSmallWithMetadata(std::string path, absl::Span<char> dst, Cancellation* cancel,
                                  Callback<SmallRead> done, FirstReadPlanner::Plan plan) {
  using Plan = FirstReadPlanner::Plan;
  ReadFileOptions options;
  options.cancel = cancel;
  options.cached_only = plan == Plan::kProbe;
  options.direct = plan == Plan::kDirect;
  // What this read learns may be remembered only if no other server could
  // have replaced the file since it began (metadata_cache.h).
  const uint64_t epoch = metadata_->epoch();
  engine_->ReadFile(path, dst, options, [this, path, dst, cancel, epoch, plan,
                                         done = std::move(done)](absl::StatusOr<FileRead> r,
                                                                 Backend b) mutable {
    if (!r.ok()) return std::move(done)(SmallReadError(path, r.status()), b);
    // Complete only if the metadata read from the same open file vouches
    // that these are all of its bytes.
    const std::optional<Metadata> m = ParseMetadata(r->metadata);
    if (!m) return ReadSmallOpen(std::move(path), std::move(done));
    if (plan == Plan::kProbe) {
      // Stopped where the page cache did, short of a file that fits: read
      // it again from one new open, so that the metadata still vouches for
      // the bytes, and through the cache, which the kernel is already
      // filling with the missing pages (cached_only). (A file that does not
      // fit is opened next whatever this read found.)
      const bool missed = m->size <= static_cast<int64_t>(dst.size()) &&
                          static_cast<int64_t>(r->length) < m->size;
      first_reads_.RecordProbe(m->size, dst.size(), /*cached=*/!missed);
      if (missed) {
        return ReadSmallWithMetadata(std::move(path), dst, cancel, std::move(done),
                                     Plan::kCached);
      }
    } else if (plan == Plan::kDirect) {
      first_reads_.RecordDirect(m->size, dst.size());
    }
    SmallRead out;
    out.info.path = path;
    out.info.size = m->size;
    out.info.generation = m->generation;
    out.info.crc32c = m->crc32c;
    out.info.modified = m->modified;
    const bool complete = m->size == static_cast<int64_t>(r->length);
    // A file that filled `dst` and is larger is remembered too, so that its
    // next download opens it at once (one open instead of two).
    if (complete || (r->length == dst.size() && m->size > static_cast<int64_t>(r->length))) {
      metadata_->Put(out.info, epoch);
    }
    if (!complete) return ReadSmallOpen(std::move(path), std::move(done));
    out.complete = true;
    std::move(done)(std::move(out), b);
  });
}

void Store::ReadSmallOpen(std::string path, Callback<SmallRead> done) {
  OpenReader(std::move(path), [done = std::move(done)](absl::StatusOr<std::unique_ptr<Reader>> r,
                                                       Backend b) mutable {
    if (!r.ok()) return std::move(done)(r.status(), b);
    SmallRead out;
    out.reader = *std::move(r);
    std::move(done)(std::move(out), b);
  });
}

absl::Status ValidateWriteSpec(const WriteSpec& spec, const StoreOptions& options) {
  if (absl::Status s = ValidatePath(spec.path); !s.ok()) return s;
  if (spec.size < 0) return absl::InvalidArgumentError("negative size");
  if (spec.if_generation_match && *spec.if_generation_match < 0) {
    return absl::InvalidArgumentError("negative generation");
  }
  if (options.max_file_bytes > 0 && spec.size > options.max_file_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "size ", spec.size, " exceeds the limit of ", options.max_file_bytes, " bytes"));
  }
  return absl::OkStatus();
}

void CheckStartPrecondition(Engine* engine, std::string path, std::optional<int64_t> want,
                            DoneCallback then) {
  if (!want) return std::move(then)(absl::OkStatus(), engine->info().backend);
  // A doomed precondition fails here, before the body is sent (the commit
  // checks it again, under the path's lock).
  engine->StatPath(path, [path, want, then = std::move(then)](absl::StatusOr<FileStat> st,
                                                              Backend b) mutable {
    std::move(then)(CheckPrecondition(path, st, want).status(), b);
  });
}

void Store::CreateWriter(WriteSpec spec, Cancellation* cancel,
                         Callback<std::unique_ptr<Writer>> done) {
  const Backend backend = engine_->info().backend;
  if (absl::Status s = ValidateWriteSpec(spec, options_); !s.ok()) {
    return std::move(done)(s, backend);
  }
  if (IsCancelled(cancel)) return std::move(done)(CancelledStatus(), backend);
  if (!spec.if_generation_match) return OpenWriter(std::move(spec), cancel, std::move(done));
  std::string path = spec.path;
  const std::optional<int64_t> want = spec.if_generation_match;
  CheckStartPrecondition(engine_.get(), std::move(path), want,
                         [this, spec = std::move(spec), cancel, done = std::move(done)](
                             absl::Status s, Backend b) mutable {
    if (!s.ok()) return std::move(done)(std::move(s), b);
    if (IsCancelled(cancel)) return std::move(done)(CancelledStatus(), b);
    OpenWriter(std::move(spec), cancel, std::move(done));
  });
}

void Store::OpenWriter(WriteSpec spec, Cancellation* cancel,
                       Callback<std::unique_ptr<Writer>> done) {
  // A declared size is reserved whole, before anything reaches the disk.
  const int64_t reserved = quota_ ? spec.size : 0;
  const Backend backend = engine_->info().backend;
  if (reserved > 0) {
    if (absl::Status s = quota_->Reserve(reserved); !s.ok()) {
      return std::move(done)(std::move(s), backend);
    }
  }
  std::string tmp = absl::StrCat(server_dir_->path(), "/", RandomId());
  // Past the page cache unless it is declared smaller than one buffer
  // (store_writer.cc says why).
  const bool direct = spec.size == 0 || spec.size >= static_cast<int64_t>(pool_->buffer_size());
  engine_->Open(tmp, direct ? OpenMode::kCreateDirect : OpenMode::kCreateWrite,
                [this, spec = std::move(spec), tmp, direct, cancel, reserved,
                 done = std::move(done)](absl::StatusOr<FileHandle> file, Backend b) mutable {
                  if (!file.ok()) {
                    if (reserved > 0) quota_->Release(reserved);
                    return std::move(done)(file.status(), b);
                  }
                  // The writer owns the reservation from here on.
                  std::unique_ptr<Writer> writer = NewWriter(this, std::move(spec), std::move(tmp),
                                                             *file, direct, cancel, reserved, b);
                  if (IsCancelled(cancel)) {
                    writer.reset();  // removes the temp file
                    return std::move(done)(CancelledStatus(), b);
                  }
                  std::move(done)(std::move(writer), b);
                });
}

}  // namespace ringstore::storage
