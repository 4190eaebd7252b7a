// Store's Writer: appends through pool buffers, then the commit sequence
// tail → lock → check → directories → [metadata → fsync → rename → fsync
// directory] → close → fsync created directories → unlock, the bracket
// being one Engine::CommitFile (store.h describes the guarantees). The
// path's lock does not cover its directories: a Delete of a sibling may
// prune one between its creation and the rename (ENOENT at mkdir or
// rename); the commit then creates them again, up to
// kCommitDirectoryRetries times.
//
// Large uploads bypass the page cache (OpenMode::kCreateDirect): the data
// goes from the pool buffer to the disk without the kernel's copy, which
// the fsync before the commit would wait for anyway, and a stream of
// uploads does not evict the files being read. Such a file takes only
// writes aligned to kDirectAlignment, so the writer writes the aligned
// part of what it has and carries the rest (under kDirectAlignment bytes,
// in the writer itself, not in a pool buffer: an idle upload holds no
// buffer) into the next append; the commit writes the last carry padded
// with zeros and truncates the file to its real size. Small uploads (a
// declared size under one buffer) stay buffered and are written exactly.
//
// Quota (quota.h): the writer holds a reservation of the bytes it may put
// on disk (the declared size from the start, else what it has accepted) and
// ends it exactly once (EndReservation takes it): at the rename (Finish,
// or a CommitFile that failed after its rename: committed, the replaced
// file's bytes released, under the path's lock) or once the temp data is
// removed (Discard: released).
//
// A stream attached to a resumable session (NewSessionWriter) is the same
// writer with a session part: its "temp file" is the session's data,
// opened buffered at the persisted size; Persist fsyncs it and records the
// size and running CRC32C in its attribute; Discard, instead of removing
// it, persists what the good appends delivered and releases the session's
// lock (DetachSession); the commit brackets the rename with the record's
// `committing` and `complete` (upload_session.h) and removes the session
// only when a check fails (FailCheck).
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "third_party/system/crc32c.h"
#include "storage/metadata_cache.h"
#include "storage/path.h"
#include "storage/path_locks.h"
#include "storage/quota.h"
#include "storage/store_internal.h"
#include "storage/engine/sync.h"

namespace ringstore::storage {
namespace {

using DoneCallback = Engine::DoneCallback;

struct WriterState : std::enable_shared_from_this<WriterState> {
  WriterState(Store* s, WriteSpec sp, std::string tmp, FileHandle f, bool d, Cancellation* c,
              int64_t r)
      : store(s), engine(&s->engine()), spec(std::move(sp)),
        tmp_path(std::move(tmp)), file(f), direct(d), cancel(c), reserved(r) {}

  Store* const store;
  Engine* const engine;
  const WriteSpec spec;
  const std::string tmp_path;
  const FileHandle file;
  // Opened kCreateDirect: aligned writes only.
  const bool direct;
  // The upload's; cuts appends short. May be null.
  Cancellation* const cancel;

  // Touched only by the one call in flight.
  // Bytes appended; the first `size - carry.size()` are in the file or
  // being written.
  int64_t size = 0;
  // Direct files: appended bytes not yet written, fewer than
  // kDirectAlignment.
  std::string carry;
  uint32_t crc = 0;
  // `size` and `crc` as of the last append that succeeded: what a session
  // keeps when its stream breaks off.
  int64_t good_size = 0;
  uint32_t good_crc = 0;
  bool file_open = true;
  // Commit state.
  int64_t generation = 0;
  absl::Time modified;
  std::vector<std::string> created_dirs;
  // Times the parent directories were created again because a concurrent
  // Delete pruned them (kCommitDirectoryRetries at most).
  int directory_retries = 0;
  // Bytes of the file the commit replaces (0 if none), from its stat under
  // the path's lock.
  int64_t replaced = 0;
  Backend backend = Backend::kUnspecified;

  // A stream attached to a resumable session (NewSessionWriter); nullopt
  // for a plain upload. Its data file is `tmp_path`, opened buffered.
  struct Session {
    std::string id;
    SessionRecord record;
    // The record, holding the session's OFD lock until we close it.
    int lock_fd = -1;
    // What the data file's attribute says is durable.
    PersistedState persisted;
    // A commit failed its checks: the session goes with the writer.
    bool drop = false;
    // The data was renamed into place by a commit that then failed (a
    // directory's fsync): nothing is left to persist.
    bool renamed = false;
    // A persist failed. After a failed fsync Linux may have marked the
    // pages that failed to reach the disk clean, so a later fsync can
    // succeed without them: nothing more is vouched for by this stream.
    bool persist_failed = false;
  };
  std::optional<Session> session;

  Mutex mu;
  // A call (Append or Commit) is running.
  bool busy ABSL_GUARDED_BY(mu) = false;
  bool abandoned ABSL_GUARDED_BY(mu) = false;
  // Committed, or failed and cleaned up: nothing left to do.
  bool finished ABSL_GUARDED_BY(mu) = false;
  // Write-behind: an append returns once its last write is submitted, so
  // that the next message arrives while the disk works. At most
  // kWritesInFlight writes (each holding a pool buffer) are in flight; the
  // first failure among them fails the next call.
  int writes ABSL_GUARDED_BY(mu) = 0;
  absl::Status write_status ABSL_GUARDED_BY(mu);
  Backend write_backend ABSL_GUARDED_BY(mu) = Backend::kUnspecified;
  // The call waiting for fewer than `waiter_limit` writes in flight.
  absl::AnyInvocable<void() &&> waiter ABSL_GUARDED_BY(mu);
  int waiter_limit ABSL_GUARDED_BY(mu) = 0;
  // Bytes reserved against the store quota, until the reservation ends
  // (EndReservation). Always 0 when the store keeps no count.
  int64_t reserved ABSL_GUARDED_BY(mu);

  static constexpr int kWritesInFlight = 2;

  // Marks a call in flight; false if the writer is already finished (the
  // caller then fails the call, with no lock held).
  bool Begin() {
    MutexLock lock(&mu);
    if (finished) return false;
    busy = true;
    return true;
  }

  static absl::Status NoLongerActive() {
    return absl::FailedPreconditionError("upload is no longer active");
  }

  // Whether the owner has gone with nothing in flight: then the temp data
  // must go, once (marks the writer finished).
  bool TakeCleanup() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const bool cleanup = abandoned && !busy && writes == 0 && !finished;
    if (cleanup) finished = true;
    return cleanup;
  }

  // Ends the call in flight; cleans up if the owner has gone meanwhile.
  void End() {
    bool cleanup;
    {
      MutexLock lock(&mu);
      busy = false;
      cleanup = TakeCleanup();
    }
    if (cleanup) Discard();
  }

  // Runs `then` (on this thread or a write's completion) once fewer than
  // `limit` writes are in flight; limit 1 waits for all of them.
  void WhenWritesBelow(int limit, absl::AnyInvocable<void() &&> then) {
    {
      MutexLock lock(&mu);
      if (writes >= limit) {
        waiter = std::move(then);
        waiter_limit = limit;
        return;
      }
    }
    std::move(then)();
  }

  // The first failure of the writes so far (OK if none); takes their
  // backend.
  absl::Status WriteStatus() {
    MutexLock lock(&mu);
    if (write_backend != Backend::kUnspecified) backend = write_backend;
    return write_status;
  }

  // Ends the quota reservation, once: the bytes become committed ones
  // (replacing `replaced`), or are given back.
  void EndReservation(bool committed) {
    int64_t bytes;
    {
      MutexLock lock(&mu);
      bytes = std::exchange(reserved, 0);
    }
    Quota* quota = store->quota();
    if (quota == nullptr) return;
    if (committed) {
      quota->Commit(bytes, replaced);
    } else {
      quota->Release(bytes);
    }
  }

  // Closes (if open) and removes the temp file, in the background; then
  // ends the quota reservation (the temp bytes are gone).
  void Discard() {
    if (session) return DetachSession();
    auto self = shared_from_this();
    store->BeginBackground();
    auto unlink = [self] {
      self->engine->Unlink(self->tmp_path, [self](absl::Status, Backend) {
        self->EndReservation(false);
        self->store->EndBackground();
      });
    };
    if (file_open) {
      file_open = false;
      engine->Close(file, [unlink](absl::Status, Backend) { unlink(); });
    } else {
      unlink();
    }
  }

  // --- Sessions ------------------------------------------------------------

  // Discard for a session's stream (store.h, ResumeUpload): the session
  // stays. With every write good, what the successful appends delivered is
  // made durable (PersistSession); a session whose commit failed its checks
  // is removed instead. Then the data and the record are closed, which
  // releases the session's lock, and the quota reservation ends (the data
  // left on disk is the session's, outside the count while no stream is
  // attached). In the background.
  void DetachSession() {
    auto self = shared_from_this();
    store->BeginBackground();
    auto close = [self](absl::Status) { self->CloseSession(); };
    if (session->drop) return RemoveSessionFiles(std::move(close));
    if (!session->renamed && !session->persist_failed && WriteStatus().ok() &&
        good_size > session->persisted.size) {
      PersistedState p;
      p.size = good_size;
      p.crc32c = good_crc;
      return PersistSession(p, std::move(close));
    }
    close(absl::OkStatus());
  }

  // Closes the data (if open) and then the record, ends the reservation and
  // the background work DetachSession began.
  void CloseSession() {
    auto self = shared_from_this();
    auto close_record = [self] {
      self->CloseLock();
      self->EndReservation(false);
      self->store->EndBackground();
    };
    if (!file_open) return close_record();
    file_open = false;
    engine->Close(file, [close_record](absl::Status, Backend) { close_record(); });
  }

  // Closes the record, releasing the session's lock. A plain close(2), not
  // the engine's: the kernel drops an OFD lock when the last reference to
  // its open file description goes, which close(2) does before it returns,
  // whereas an io_uring close may leave that final release to a deferred
  // fput after its completion is posted; a client retrying at once must
  // find the session unlocked. close(2) of the empty record does not wait
  // for the disk.
  void CloseLock() {
    close(std::exchange(session->lock_fd, -1));
  }

  // Unlinks the record (we still hold its lock, so nobody attaches
  // meanwhile), then the data, then fsyncs their directory.
  void RemoveSessionFiles(absl::AnyInvocable<void(absl::Status) &&> then) {
    auto self = shared_from_this();
    engine->Unlink(SessionRecordPath(session->id), [self, then = std::move(then)](
                                                       absl::Status, Backend) mutable {
      self->engine->Unlink(self->tmp_path, [self, then = std::move(then)](absl::Status,
                                                                          Backend) mutable {
        SyncDirectories(self->engine, {kUploadsDir},
                        [then = std::move(then)](absl::Status s, Backend) mutable {
                          std::move(then)(std::move(s));
                        });
      });
    });
  }

  // Makes the first `p.size` bytes of the data durable and records `p` with
  // them: fsync, the attribute, fsync again (so the attribute never
  // survives a crash without the bytes it vouches for). No write is in
  // flight. The attribute is set inline (upload_session.h: no engine
  // operation sets an arbitrary attribute; fsetxattr does not wait for the
  // disk).
  void PersistSession(PersistedState p, absl::AnyInvocable<void(absl::Status) &&> then) {
    auto self = shared_from_this();
    engine->Sync(file, false, [self, p, then = std::move(then)](absl::Status s,
                                                                Backend) mutable {
      if (s.ok()) {
        s = SetFdAttr(static_cast<int>(self->file.id), kPersistedAttr, EncodePersisted(p));
      }
      if (!s.ok()) {
        self->session->persist_failed = true;
        return std::move(then)(std::move(s));
      }
      self->engine->Sync(self->file, false, [self, p, then = std::move(then)](
                                                absl::Status s, Backend) mutable {
        if (s.ok()) self->session->persisted = p;
        if (!s.ok()) self->session->persist_failed = true;
        std::move(then)(std::move(s));
      });
    });
  }

  // Sets the record to `state` with the commit's FileInfo, durably. Inline
  // fsetxattr as in PersistSession.
  void SetRecordState(SessionState state, absl::AnyInvocable<void(absl::Status) &&> then) {
    SessionRecord r = session->record;
    r.state = state;
    r.file = CommitInfo();
    const int fd = session->lock_fd;
    if (absl::Status s = SetFdAttr(fd, kSessionAttr, EncodeSessionRecord(r)); !s.ok()) {
      return std::move(then)(std::move(s));
    }
    engine->Sync(FileHandle{fd}, false, [then = std::move(then)](absl::Status s, Backend) mutable {
      std::move(then)(std::move(s));
    });
  }

  // What the commit produces (or produced).
  ObjectInfo CommitInfo() const {
    ObjectInfo info;
    info.path = spec.path;
    info.size = size;
    info.generation = generation;
    info.modified = modified;
    info.crc32c = crc;
    return info;
  }

  // Fails the writer for good: once no write is in flight, temp data
  // removed, then `done(status)`.
  template <typename Done>
  void Fail(absl::Status status, Done done) {
    auto self = shared_from_this();
    WhenWritesBelow(1, [self, status = std::move(status), done = std::move(done)]() mutable {
      {
        MutexLock lock(&self->mu);
        self->finished = true;
        self->busy = false;
      }
      self->Discard();
      std::move(done)(std::move(status), self->backend);
    });
  }

  // --- Append -------------------------------------------------------------

  // Writes carry + rest, a pool buffer at a time, at the end of the file,
  // with at most kWritesInFlight writes in flight; a direct file keeps the
  // unaligned end in `carry`. `size` already counts `rest`. `done` runs
  // once the last write is submitted, with the first failure of the
  // upload's writes so far.
  void WriteChunks(absl::string_view rest, DoneCallback done) {
    if (rest.empty() || (direct && carry.size() + rest.size() < kDirectAlignment)) {
      carry.append(rest.data(), rest.size());
      absl::Status s = WriteStatus();
      if (!s.ok()) return Fail(std::move(s), std::move(done));
      good_size = size;
      good_crc = crc;
      End();  // before `done`, which may start the next call
      std::move(done)(absl::OkStatus(), backend);
      return;
    }
    if (IsCancelled(cancel)) return Fail(CancelledStatus(), std::move(done));
    auto self = shared_from_this();
    WhenWritesBelow(kWritesInFlight, [self, rest, done = std::move(done)]() mutable {
      absl::Status s = self->WriteStatus();
      if (s.ok() && IsCancelled(self->cancel)) s = CancelledStatus();
      if (!s.ok()) return self->Fail(std::move(s), std::move(done));
      self->AcquireBuffer([self, rest, done = std::move(done)](PooledBuffer buf) mutable {
        if (!buf.valid()) return self->Fail(CancelledStatus(), std::move(done));
        self->WriteOne(std::move(buf), rest, std::move(done));
      });
    });
  }

  // Hands a pool buffer to `then`, or, if `cancel` fires while it waits for
  // one, an invalid buffer at once (on the cancelling thread); the buffer
  // that comes later then goes straight back to the pool.
  void AcquireBuffer(absl::AnyInvocable<void(PooledBuffer) &&> then) {
    if (cancel == nullptr) return store->pool().Acquire(std::move(then));
    // Whoever takes `then` first, the pool or the cancellation, runs it.
    struct Wait {
      Mutex mu;
      absl::AnyInvocable<void(PooledBuffer) &&> then ABSL_GUARDED_BY(mu);
      absl::AnyInvocable<void(PooledBuffer) &&> Take() {
        MutexLock lock(&mu);
        return std::exchange(then, nullptr);
      }
    };
    auto wait = std::make_shared<Wait>();
    {
      MutexLock lock(&wait->mu);
      wait->then = std::move(then);
    }
    const uint64_t hook = cancel->AddHook([wait] {
      if (auto then = wait->Take()) std::move(then)(PooledBuffer());
    });
    if (hook == 0) {  // cancelled already
      if (auto then = wait->Take()) std::move(then)(PooledBuffer());
      return;
    }
    store->pool().Acquire([wait, cancel = cancel, hook](PooledBuffer buf) {
      auto then = wait->Take();
      if (!then) return;  // cancelled: `buf` goes back
      cancel->RemoveHook(hook);
      std::move(then)(std::move(buf));
    });
  }

  // Fills `buf` with the carry and the start of `rest`, submits its write,
  // and goes on with the remainder.
  void WriteOne(PooledBuffer buf, absl::string_view rest, DoneCallback done) {
    const size_t from_carry = carry.size();
    std::memcpy(buf.data(), carry.data(), from_carry);
    carry.clear();
    const size_t taken = std::min(rest.size(), buf.capacity() - from_carry);
    std::memcpy(buf.data() + from_carry, rest.data(), taken);
    size_t n = from_carry + taken;
    rest.remove_prefix(taken);
    if (direct && rest.empty()) {
      // The last piece of this append: keep its unaligned end.
      const size_t aligned = n - n % kDirectAlignment;
      carry.assign(buf.data() + aligned, n - aligned);
      n = aligned;
    }
    const int64_t offset = size - static_cast<int64_t>(rest.size()) -
                           static_cast<int64_t>(carry.size()) - static_cast<int64_t>(n);
    {
      MutexLock lock(&mu);
      ++writes;
    }
    // The Store must outlive the write even if the upload ends first.
    store->BeginBackground();
    const absl::Span<const char> src(buf.data(), n);
    auto self = shared_from_this();
    engine->Write(file, offset, src,
                  [self, buf = std::move(buf)](absl::Status s, Backend backend) mutable {
                    buf = PooledBuffer();  // back to the pool before anything else
                    self->WriteDone(std::move(s), backend);
                  });
    WriteChunks(rest, std::move(done));
  }

  void WriteDone(absl::Status s, Backend backend) {
    absl::AnyInvocable<void() &&> wake;
    bool cleanup;
    {
      MutexLock lock(&mu);
      --writes;
      write_backend = backend;
      if (!s.ok() && write_status.ok()) write_status = std::move(s);
      if (waiter && writes < waiter_limit) wake = std::move(waiter);
      cleanup = TakeCleanup();
    }
    if (wake) std::move(wake)();
    if (cleanup) Discard();
    store->EndBackground();
  }

  // A direct file's carry, padded to kDirectAlignment with zeros, then the
  // file truncated to `size`; then `next`. No other write is in flight.
  void WriteTail(absl::AnyInvocable<void(absl::Status) &&> next) {
    if (carry.empty()) return std::move(next)(absl::OkStatus());
    auto self = shared_from_this();
    store->pool().Acquire([self, next = std::move(next)](PooledBuffer buf) mutable {
      const size_t n = self->carry.size();
      std::memcpy(buf.data(), self->carry.data(), n);
      std::memset(buf.data() + n, 0, kDirectAlignment - n);
      const absl::Span<const char> src(buf.data(), kDirectAlignment);
      self->engine->Write(
          self->file, self->size - static_cast<int64_t>(n), src,
          [self, buf = std::move(buf), next = std::move(next)](absl::Status s,
                                                               Backend backend) mutable {
            buf = PooledBuffer();
            self->backend = backend;
            if (!s.ok()) return std::move(next)(std::move(s));
            self->carry.clear();
            self->engine->Truncate(self->file, self->size,
                                   [next = std::move(next)](absl::Status s, Backend) mutable {
                                     std::move(next)(std::move(s));
                                   });
          });
    });
  }

  // --- Commit ---------------------------------------------------------------

  using CommitDone = Engine::Callback<ObjectInfo>;

  void FailCommit(absl::Status s, CommitDone done, bool locked) {
    if (locked) {
      // The file may have been renamed into place before the failure.
      store->metadata().Erase(spec.path);
      store->locks().Unlock(spec.path);
    }
    Fail(std::move(s), [done = std::move(done)](absl::Status st, Backend b) mutable {
      std::move(done)(std::move(st), b);
    });
  }

  // FailCommit for a failed check (size, checksum, precondition, a file in
  // the way): a session that cannot commit goes too.
  void FailCheck(absl::Status s, CommitDone done, bool locked) {
    if (session) session->drop = true;
    FailCommit(std::move(s), std::move(done), locked);
  }

  void CommitLocked(CommitDone done) {
    auto self = shared_from_this();
    engine->StatPath(spec.path, [self, done = std::move(done)](
                                    absl::StatusOr<FileStat> st, Backend b) mutable {
      self->backend = b;
      absl::StatusOr<std::optional<int64_t>> current =
          CheckPrecondition(self->spec.path, st, self->spec.if_generation_match);
      if (!current.ok()) {
        // A stat error is not a failed check: the session stays.
        if (st.ok() || st.status().code() == absl::StatusCode::kNotFound) {
          return self->FailCheck(current.status(), std::move(done), true);
        }
        return self->FailCommit(current.status(), std::move(done), true);
      }
      if (st.ok() && st->is_regular) self->replaced = st->size;
      self->generation = self->store->NextGeneration();
      self->modified = absl::Now();
      if (!self->session) return self->EnsureParent(std::move(done));
      // Durably `committing` before the rename: after a crash, a record in
      // that state without its data was committed (upload_session.h).
      self->SetRecordState(SessionState::kCommitting, [self, done = std::move(done)](
                                                          absl::Status s) mutable {
        if (!s.ok()) return self->FailCommit(std::move(s), std::move(done), true);
        self->EnsureParent(std::move(done));
      });
    });
  }

  // Makes sure the parent directory exists, creating missing ones.
  void EnsureParent(CommitDone done) {
    const std::string parent(ParentDir(spec.path));
    if (parent.empty()) return CommitFile(std::move(done));
    auto self = shared_from_this();
    engine->StatPath(parent, [self, parent, done = std::move(done)](
                                 absl::StatusOr<FileStat> st, Backend) mutable {
      if (st.ok() && st->is_directory) return self->CommitFile(std::move(done));
      std::vector<std::string> dirs;
      for (size_t i = 0; i <= parent.size(); ++i) {
        if (i == parent.size() || parent[i] == '/') dirs.push_back(parent.substr(0, i));
      }
      self->MakeDirs(std::move(dirs), 0, std::move(done));
    });
  }

  void MakeDirs(std::vector<std::string> dirs, size_t i, CommitDone done) {
    if (i == dirs.size()) return CommitFile(std::move(done));
    auto self = shared_from_this();
    std::string dir = dirs[i];
    engine->MakeDir(dir, [self, dirs = std::move(dirs), i, done = std::move(done)](
                             absl::Status s, Backend) mutable {
      if (s.ok()) {
        self->created_dirs.push_back(dirs[i]);
      } else if (s.code() == absl::StatusCode::kNotFound &&
                 self->directory_retries < kCommitDirectoryRetries) {
        // ENOENT: a Delete pruned a directory this commit created (or found)
        // above this one; start again from the top. (ENOTDIR, a file above,
        // is NotFound too: it fails the same way each time until the
        // retries run out, then below.)
        ++self->directory_retries;
        return self->MakeDirs(std::move(dirs), 0, std::move(done));
      } else if (s.code() == absl::StatusCode::kNotFound) {
        // ENOTDIR: a component above is a file.
        return self->FailCheck(
            absl::FailedPreconditionError(absl::StrCat(
                "a parent of \"", self->spec.path, "\" is a file")),
            std::move(done), true);
      } else if (s.code() != absl::StatusCode::kAlreadyExists) {
        return self->FailCommit(s, std::move(done), true);
      }
      self->MakeDirs(std::move(dirs), i + 1, std::move(done));
    });
  }

  // Metadata, fsync, rename into place and fsync of the directory: one
  // engine operation (one linked submission on io_uring).
  void CommitFile(CommitDone done) {
    auto self = shared_from_this();
    Metadata m;
    m.generation = generation;
    m.crc32c = crc;
    m.size = size;
    m.modified = modified;
    engine->CommitFile(file, EncodeMetadata(m), tmp_path, spec.path,
                       [self, done = std::move(done)](absl::Status s, Backend) mutable {
      if (s.code() == absl::StatusCode::kNotFound &&
          self->directory_retries < kCommitDirectoryRetries) {
        // A concurrent Delete pruned the directory between its creation (or
        // our stat of it) and the rename: create it again and retry. Each
        // retry needs another Delete to empty and remove it in that window.
        ++self->directory_retries;
        return self->EnsureParent(std::move(done));
      }
      if (s.code() == absl::StatusCode::kNotFound) {
        s = absl::FailedPreconditionError(
            absl::StrCat("a parent of \"", self->spec.path, "\" is a file"));
        return self->FailCheck(s, std::move(done), true);
      }
      if (!s.ok()) {
        // A step after the rename (the directory's fsync) may have failed:
        // then the temp file is gone and the new file in place. Count it
        // as committed while the path is still locked.
        return self->engine->StatPath(self->tmp_path, [self, s, done = std::move(done)](
                                                          absl::StatusOr<FileStat> st,
                                                          Backend) mutable {
          if (st.status().code() == absl::StatusCode::kNotFound) {
            self->EndReservation(true);
            if (self->session) self->session->renamed = true;
          }
          self->FailCommit(s, std::move(done), true);
        });
      }
      if (self->session) {
        // The session's bookkeeping does not belong on the committed file
        // (inline, as PersistSession; a crash just before this leaves the
        // attribute there, harmless: nothing outside a session reads it).
        (void)RemoveFdAttr(static_cast<int>(self->file.id), kPersistedAttr);
      }
      self->file_open = false;
      self->engine->Close(self->file, [self, done = std::move(done)](absl::Status, Backend) mutable {
        // The file is committed: a failed close loses nothing.
        self->SyncAfterRename(std::move(done));
      });
    });
  }

  // The directory of the file was fsynced by CommitFile; the directories
  // holding the entries of directories this commit created are fsynced here.
  void SyncAfterRename(CommitDone done) {
    if (created_dirs.empty()) return Finish(absl::OkStatus(), std::move(done));
    std::vector<std::string> dirs;
    for (const std::string& d : created_dirs) dirs.emplace_back(ParentDir(d));
    std::sort(dirs.begin(), dirs.end());
    dirs.erase(std::unique(dirs.begin(), dirs.end()), dirs.end());
    auto self = shared_from_this();
    SyncDirectories(engine, std::move(dirs), [self, done = std::move(done)](
                                                 absl::Status s, Backend) mutable {
      self->Finish(std::move(s), std::move(done));
    });
  }

  // The file is in place. A failure here (a directory fsync) is reported
  // honestly: the new file is visible but may not survive a crash.
  void Finish(absl::Status s, CommitDone done) {
    ObjectInfo info = CommitInfo();
    // Still under the path's lock, so the latest commit's metadata wins.
    if (s.ok()) {
      store->metadata().Put(info);
    } else {
      store->metadata().Erase(spec.path);
    }
    // Renamed into place: the upload's bytes are committed (even if a
    // directory's fsync failed afterwards), the old file's are gone.
    EndReservation(true);
    store->locks().Unlock(spec.path);
    {
      MutexLock lock(&mu);
      finished = true;
      busy = false;
    }
    if (session) return FinishSession(std::move(s), std::move(info), std::move(done));
    if (!s.ok()) return std::move(done)(std::move(s), backend);
    std::move(done)(std::move(info), backend);
  }

  // A session's commit is done: the record says `complete` (if that fails,
  // it still says `committing` with the data gone, which means the same),
  // then the record is closed (the lock released, so a retry of the same
  // stream finds the session complete, not locked), then `done`.
  void FinishSession(absl::Status s, ObjectInfo info, CommitDone done) {
    auto self = shared_from_this();
    SetRecordState(SessionState::kComplete, [self, s = std::move(s), info = std::move(info),
                                             done = std::move(done)](absl::Status) mutable {
      self->CloseLock();
      if (!s.ok()) return std::move(done)(std::move(s), self->backend);
      std::move(done)(std::move(info), self->backend);
    });
  }
};

class WriterImpl final : public Writer {
 public:
  explicit WriterImpl(std::shared_ptr<WriterState> state) : state_(std::move(state)) {}

  ~WriterImpl() override {
    bool cleanup;
    {
      MutexLock lock(&state_->mu);
      state_->abandoned = true;
      cleanup = state_->TakeCleanup();
    }
    if (cleanup) state_->Discard();
  }

  int64_t size() const override { return state_->size; }

  void Append(absl::string_view data, Engine::DoneCallback done) override {
    WriterState& w = *state_;
    if (!w.Begin()) return std::move(done)(WriterState::NoLongerActive(), w.backend);
    if (IsCancelled(w.cancel)) return w.Fail(CancelledStatus(), std::move(done));
    const int64_t new_size = w.size + static_cast<int64_t>(data.size());
    if (w.spec.size > 0 && new_size > w.spec.size) {
      return w.Fail(absl::InvalidArgumentError(absl::StrCat(
                        "upload is longer than its declared size ", w.spec.size)),
                    std::move(done));
    }
    const int64_t limit = w.store->options().max_file_bytes;
    if (limit > 0 && new_size > limit) {
      return w.Fail(absl::ResourceExhaustedError(absl::StrCat(
                        "upload exceeds the limit of ", limit, " bytes")),
                    std::move(done));
    }
    // Unknown size: reserve these bytes before they reach the disk (a
    // declared size was reserved whole by CreateWriter).
    if (Quota* quota = w.store->quota(); quota != nullptr && w.spec.size == 0) {
      if (absl::Status s = quota->Reserve(static_cast<int64_t>(data.size())); !s.ok()) {
        return w.Fail(std::move(s), std::move(done));
      }
      MutexLock lock(&w.mu);
      w.reserved += static_cast<int64_t>(data.size());
    }
    w.crc = Crc32cExtend(w.crc, data);
    w.size = new_size;
    w.WriteChunks(data, std::move(done));
  }

  void Persist(Engine::Callback<int64_t> done) override {
    WriterState& w = *state_;
    if (!w.Begin()) return std::move(done)(WriterState::NoLongerActive(), w.backend);
    if (!w.session) {
      w.End();
      return std::move(done)(absl::FailedPreconditionError(
                                 "only a resumable upload (Store::ResumeUpload) persists"),
                             w.backend);
    }
    // Every write done, then fsync and record.
    w.WhenWritesBelow(1, [state = state_, done = std::move(done)]() mutable {
      absl::Status s = state->WriteStatus();
      if (!s.ok()) return state->Fail(std::move(s), std::move(done));
      PersistedState p;
      p.size = state->size;
      p.crc32c = state->crc;
      state->PersistSession(p, [state, done = std::move(done)](absl::Status s) mutable {
        if (!s.ok()) return state->Fail(std::move(s), std::move(done));
        const int64_t persisted = state->size;
        const Backend backend = state->backend;
        state->End();  // before `done`, which may start the next call
        std::move(done)(persisted, backend);
      });
    });
  }

  void Commit(Engine::Callback<ObjectInfo> done) override {
    WriterState& w = *state_;
    if (!w.Begin()) return std::move(done)(WriterState::NoLongerActive(), w.backend);
    auto fail_check = [&](absl::Status s) { w.FailCheck(std::move(s), std::move(done), false); };
    if (w.spec.size > 0 && w.size != w.spec.size) {
      return fail_check(absl::InvalidArgumentError(absl::StrCat(
          "upload has ", w.size, " bytes but declared ", w.spec.size)));
    }
    if (w.spec.crc32c && *w.spec.crc32c != w.crc) {
      return fail_check(absl::DataLossError(absl::StrCat(
          "crc32c of the uploaded data is ", w.crc, ", the client said ", *w.spec.crc32c)));
    }
    // Every write done, then the tail, then the commit proper.
    w.WhenWritesBelow(1, [state = state_, done = std::move(done)]() mutable {
      absl::Status s = state->WriteStatus();
      if (!s.ok()) return state->FailCommit(std::move(s), std::move(done), false);
      state->WriteTail([state, done = std::move(done)](absl::Status s) mutable {
        if (!s.ok()) return state->FailCommit(std::move(s), std::move(done), false);
        state->store->locks().Lock(state->spec.path,
                                   [state, done = std::move(done)]() mutable {
                                     state->CommitLocked(std::move(done));
                                   });
      });
    });
  }

 private:
  const std::shared_ptr<WriterState> state_;
};

}  // namespace

std::unique_ptr<Writer> NewWriter(Store* store, WriteSpec spec, std::string tmp_path,
                                  FileHandle file, bool direct, Cancellation* cancel,
                                  int64_t reserved, Backend backend) {
  auto state = std::make_shared<WriterState>(store, std::move(spec), std::move(tmp_path), file,
                                             direct, cancel, reserved);
  state->backend = backend;
  return std::make_unique<WriterImpl>(std::move(state));
}

std::unique_ptr<Writer> NewSessionWriter(Store* store, SessionAttachment session,
                                         FileHandle file, Cancellation* cancel,
                                         int64_t reserved, Backend backend) {
  WriteSpec spec = session.record.spec;
  auto state = std::make_shared<WriterState>(store, std::move(spec),
                                             SessionDataPath(session.id), file,
                                             /*direct=*/false, cancel, reserved);
  state->backend = backend;
  state->size = state->good_size = session.persisted.size;
  state->crc = state->good_crc = session.persisted.crc32c;
  WriterState::Session& part = state->session.emplace();
  part.id = std::move(session.id);
  part.record = std::move(session.record);
  part.lock_fd = session.lock_fd;
  part.persisted = session.persisted;
  return std::make_unique<WriterImpl>(std::move(state));
}

absl::StatusOr<std::optional<int64_t>> CheckPrecondition(const std::string& path,
                                                         const absl::StatusOr<FileStat>& st,
                                                         std::optional<int64_t> want) {
  std::optional<int64_t> current;
  if (st.ok()) {
    if (st->is_directory) {
      return absl::FailedPreconditionError(absl::StrCat("\"", path, "\" is a directory"));
    }
    current = MakeInfo(path, *st).generation;
  } else if (st.status().code() != absl::StatusCode::kNotFound) {
    return st.status();
  }
  if (want && *want == 0 && current) {
    return absl::AlreadyExistsError(absl::StrCat("\"", path, "\" exists"));
  }
  if (want && *want != 0 && current != want) {
    return absl::FailedPreconditionError(
        absl::StrCat("generation of \"", path, "\" is ",
                     current ? absl::StrCat(*current) : "absent", ", not ", *want));
  }
  return current;
}

}  // namespace ringstore::storage
