// The state of one upload's Writer (store.h), shared by the Writer its
// caller holds (WriterImpl) and the engine completions of the call and the
// writes in flight, each of which keeps it alive (shared_from_this); it ends
// with the last of them. Internal to storage/: only store_writer.cc (the
// state's common part, appends, the commit and the plain writer) and
// store_session_writer.cc (the session part of a stream attached to a
// resumable session, and Writer::Persist) include this; the rest of the
// Store makes writers through store_internal.h's NewWriter and
// NewSessionWriter. Each method's comment is at its definition, in the file
// its group below names.
#ifndef RINGSTORE_STORAGE_WRITER_STATE_H_
#define RINGSTORE_STORAGE_WRITER_STATE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "storage/engine/buffer_pool.h"
#include "storage/engine/cancellation.h"
#include "storage/engine/engine.h"
#include "storage/engine/sync.h"
#include "storage/store.h"
#include "storage/upload_session.h"

namespace ringstore::storage {

struct WriterState : std::enable_shared_from_this<WriterState> {
  using DoneCallback = Engine::DoneCallback;
  using CommitDone = Engine::Callback<ObjectInfo>;

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

  // --- The calls' bracket, quota, clean-up (store_writer.cc) ---------------

  bool Begin();
  static absl::Status NoLongerActive();
  bool TakeCleanup() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void End();
  void WhenWritesBelow(int limit, absl::AnyInvocable<void() &&> then);
  absl::Status WriteStatus();
  void EndReservation(bool committed);
  void Discard();
  ObjectInfo CommitInfo() const;

  // Fails the writer for good: once no write is in flight, temp data
  // removed, then `done(status)`.
  template <typename Done>
  void Fail(absl::Status status, Done done);

  // --- Append (store_writer.cc) --------------------------------------------

  void WriteChunks(absl::string_view rest, DoneCallback done);
  void AcquireBuffer(absl::AnyInvocable<void(PooledBuffer) &&> then);
  void WriteOne(PooledBuffer buf, absl::string_view rest, DoneCallback done);
  void WriteDone(absl::Status s, Backend backend);
  void WriteTail(absl::AnyInvocable<void(absl::Status) &&> next);

  // --- Commit (store_writer.cc) --------------------------------------------

  void FailCommit(absl::Status s, CommitDone done, bool locked);
  void CommitLocked(CommitDone done);
  void EnsureParent(CommitDone done);
  void MakeDirs(std::vector<std::string> dirs, size_t i, CommitDone done);
  void CommitFile(CommitDone done);
  void SyncAfterRename(CommitDone done);
  void Finish(absl::Status s, CommitDone done);

  // --- Sessions (store_session_writer.cc) ----------------------------------

  void DetachSession(absl::AnyInvocable<void() &&> removed = nullptr);
  void CloseSession();
  void CloseLock();
  void RemoveSessionFiles(absl::AnyInvocable<void(absl::Status) &&> then);
  void PersistSession(PersistedState p, absl::AnyInvocable<void(absl::Status) &&> then);
  void SetRecordState(SessionState state, absl::AnyInvocable<void(absl::Status) &&> then);
  void FailCheck(absl::Status s, CommitDone done, bool locked);
  void FinishSession(absl::Status s, ObjectInfo info, CommitDone done);
};

template <typename Done>
void WriterState::Fail(absl::Status status, Done done) {
  auto self = shared_from_this();
  WhenWritesBelow(1, [self, status = std::move(status), done = std::move(done)]() mutable {
    {
      MutexLock lock(&self->mu);
      self->finished = true;
      self->busy = false;
    }
    if (self->session && self->session->drop) {
      // A session that cannot commit is gone, record and data, before its
      // failure is reported: the caller's next QueryUpload finds nothing.
      return self->DetachSession([self, status = std::move(status),
                                  done = std::move(done)]() mutable {
        std::move(done)(std::move(status), self->backend);
      });
    }
    self->Discard();
    std::move(done)(std::move(status), self->backend);
  });
}

// The Writer an upload's caller holds; dropping it abandons the upload
// (store.h). Persist is in store_session_writer.cc, the rest in
// store_writer.cc.
class WriterImpl final : public Writer {
 public:
  explicit WriterImpl(std::shared_ptr<WriterState> state) : state_(std::move(state)) {}

  ~WriterImpl() override;

  int64_t size() const override { return state_->size; }

  void Append(absl::string_view data, Engine::DoneCallback done) override;
  void Persist(Engine::Callback<int64_t> done) override;
  void Commit(Engine::Callback<ObjectInfo> done) override;

 private:
  const std::shared_ptr<WriterState> state_;
};

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_WRITER_STATE_H_
