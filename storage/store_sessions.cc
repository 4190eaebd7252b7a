// Store's resumable-upload calls (store.h, "Resumable uploads"): starting,
// querying, cancelling, attaching a stream to and expiring sessions. The
// session's files, their encoding and its lock are in upload_session.h; the
// Writer of an attached stream is store_writer.cc's, with a session part
// (store_session_writer.cc).
//
// Blocking: opening a session's record or data, its OFD lock and its
// extended attributes are plain system calls made inline on the calling
// thread (QueryUpload, CancelUpload and ResumeUpload) or in an engine
// callback (StartUpload): the Engine has no operation for them, and each
// is served from the inode cache without waiting for the disk
// (upload_session.h says why). Whatever waits for the disk (creating,
// truncating, unlinking, fsync) goes through the engine.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "storage/engine/posix_ops.h"
#include "storage/quota.h"
#include "storage/store_internal.h"
#include "storage/upload_session.h"

namespace ringstore::storage {
namespace {

using DoneCallback = Engine::DoneCallback;

// StartUpload past its checks: creates the record (with its attribute),
// then the empty data file, fsyncs the record and the directory. On a
// failure, removes what it created.
struct StartOp : std::enable_shared_from_this<StartOp> {
  StartOp(Engine* e, std::string i, SessionRecord r, Store::Callback<std::string> d)
      : engine(e), id(std::move(i)), record(std::move(r)), done(std::move(d)) {}

  Engine* const engine;
  const std::string id;
  const SessionRecord record;
  Store::Callback<std::string> done;
  FileHandle record_file;

  void Start() {
    auto self = shared_from_this();
    engine->Open(SessionRecordPath(id), OpenMode::kCreateWrite,
                 [self](absl::StatusOr<FileHandle> file, Backend b) {
                   if (!file.ok()) return std::move(self->done)(file.status(), b);
                   self->record_file = *file;
                   // Inline: no engine operation sets this attribute.
                   absl::Status s = SetFdAttr(static_cast<int>(file->id), kSessionAttr,
                                              EncodeSessionRecord(self->record));
                   if (!s.ok()) return self->Fail(std::move(s), /*record_open=*/true);
                   self->CreateData();
                 });
  }

  void CreateData() {
    auto self = shared_from_this();
    engine->Open(SessionDataPath(id), OpenMode::kCreateWrite,
                 [self](absl::StatusOr<FileHandle> data, Backend) {
                   if (!data.ok()) return self->Fail(data.status(), true);
                   self->engine->Close(*data, [self](absl::Status s, Backend) {
                     if (!s.ok()) return self->Fail(std::move(s), true);
                     self->SyncRecord();
                   });
                 });
  }

  void SyncRecord() {
    auto self = shared_from_this();
    engine->Sync(record_file, false, [self](absl::Status s, Backend) {
      if (!s.ok()) return self->Fail(std::move(s), true);
      self->engine->Close(self->record_file, [self](absl::Status, Backend) {
        SyncDirectories(self->engine, {kUploadsDir}, [self](absl::Status s, Backend b) {
          if (!s.ok()) return self->Fail(std::move(s), false);
          std::move(self->done)(self->id, b);
        });
      });
    });
  }

  // Closes the record if open, unlinks both files, then answers `status`.
  void Fail(absl::Status status, bool record_open) {
    auto self = shared_from_this();
    auto remove = [self, status](absl::Status, Backend) {
      self->engine->Unlink(SessionRecordPath(self->id), [self, status](absl::Status, Backend) {
        self->engine->Unlink(SessionDataPath(self->id), [self, status](absl::Status, Backend b) {
          std::move(self->done)(status, b);
        });
      });
    };
    if (record_open) return engine->Close(record_file, std::move(remove));
    remove(absl::OkStatus(), engine->info().backend);
  }
};

}  // namespace

void Store::StartUpload(WriteSpec spec, std::string owner, Callback<std::string> done) {
  const Backend backend = engine_->info().backend;
  if (absl::Status s = ValidateWriteSpec(spec, options_); !s.ok()) {
    return std::move(done)(std::move(s), backend);
  }
  if (owner.size() > kMaxOwnerBytes) {
    return std::move(done)(absl::InvalidArgumentError("upload owner too long"), backend);
  }
  // A declared size the quota cannot hold now fails at once (as
  // CreateWriter); the reservation itself is the attached stream's.
  if (quota_ != nullptr && spec.size > 0) {
    if (absl::Status s = quota_->Reserve(spec.size); !s.ok()) {
      return std::move(done)(std::move(s), backend);
    }
    quota_->Release(spec.size);
  }
  std::string path = spec.path;
  const std::optional<int64_t> want = spec.if_generation_match;
  CheckStartPrecondition(
      engine_.get(), std::move(path), want,
      [this, spec = std::move(spec), owner = std::move(owner), done = std::move(done)](
          absl::Status s, Backend b) mutable {
        if (!s.ok()) return std::move(done)(std::move(s), b);
        SessionRecord record;
        record.owner = std::move(owner);
        record.spec = std::move(spec);
        std::make_shared<StartOp>(engine_.get(), RandomId(), std::move(record),
                                  std::move(done))
            ->Start();
      });
}

void Store::QueryUpload(std::string id, std::string owner, Callback<UploadStatus> done) {
  const Backend backend = engine_->info().backend;
  absl::StatusOr<SessionRecord> record = ReadSession(root_fd_, id, owner);
  if (!record.ok()) return std::move(done)(record.status(), backend);
  absl::StatusOr<PersistedState> persisted = ReadPersisted(root_fd_, id);
  UploadStatus status;
  status.spec = record->spec;
  const bool renamed = persisted.status().code() == absl::StatusCode::kNotFound;
  if (record->state == SessionState::kComplete ||
      (record->state == SessionState::kCommitting && renamed)) {
    status.complete = true;
    status.file = record->file;
    status.persisted_size = record->file.size;
    return std::move(done)(std::move(status), backend);
  }
  if (renamed) return std::move(done)(NoSuchUpload(id), backend);  // a record without data
  if (!persisted.ok()) return std::move(done)(persisted.status(), backend);
  status.persisted_size = persisted->size;
  std::move(done)(std::move(status), backend);
}

void Store::CancelUpload(std::string id, std::string owner, Engine::DoneCallback done) {
  absl::StatusOr<LockedSession> locked = LockSession(root_fd_, id, owner);
  if (!locked.ok()) return std::move(done)(locked.status(), engine_->info().backend);
  // Record first, then data (upload_session.h), all under the lock.
  const int lock = locked->lock_fd;
  Engine* engine = engine_.get();
  engine->Unlink(SessionRecordPath(id), [engine, id, lock, done = std::move(done)](
                                            absl::Status s, Backend) mutable {
    auto finish = [lock, done = std::move(done)](absl::Status s, Backend b) mutable {
      close(lock);  // a plain close, as store_session_writer.cc's CloseLock says
      std::move(done)(std::move(s), b);
    };
    if (!s.ok()) return finish(std::move(s), engine->info().backend);
    engine->Unlink(SessionDataPath(id), [engine, finish = std::move(finish)](
                                            absl::Status s, Backend b) mutable {
      // A complete session has no data any more.
      if (!s.ok() && s.code() != absl::StatusCode::kNotFound) return finish(std::move(s), b);
      SyncDirectories(engine, {kUploadsDir}, std::move(finish));
    });
  });
}

void Store::ResumeUpload(std::string id, std::string owner, Cancellation* cancel,
                         Callback<Resumed> done) {
  const Backend backend = engine_->info().backend;
  if (IsCancelled(cancel)) return std::move(done)(CancelledStatus(), backend);
  absl::StatusOr<LockedSession> locked = LockSession(root_fd_, id, owner);
  if (!locked.ok()) return std::move(done)(locked.status(), backend);
  SessionAttachment session;
  session.id = std::move(id);
  session.record = std::move(locked->record);
  session.lock_fd = locked->lock_fd;
  Resumed out;
  out.status.spec = session.record.spec;
  // Fails the attach: the lock goes (a plain close of our own descriptor).
  auto fail = [&](absl::Status s) {
    close(session.lock_fd);
    std::move(done)(std::move(s), backend);
  };
  absl::StatusOr<int> data = PosixFiles(root_fd_, EngineOptions().metadata_attr)
                                 .OpenBeneath(SessionDataPath(session.id), O_WRONLY);
  const bool renamed = data.status().code() == absl::StatusCode::kNotFound;
  if (session.record.state == SessionState::kComplete ||
      (session.record.state == SessionState::kCommitting && renamed)) {
    if (data.ok()) close(*data);
    close(session.lock_fd);
    out.status.complete = true;
    out.status.file = session.record.file;
    out.status.persisted_size = session.record.file.size;
    return std::move(done)(std::move(out), backend);
  }
  // `committing` with its data still there: the commit did not happen.
  if (renamed) return fail(NoSuchUpload(session.id));
  if (!data.ok()) return fail(data.status());
  absl::StatusOr<PersistedState> persisted = ReadPersistedFd(*data, session.id);
  if (persisted.ok()) session.persisted = *persisted;
  // The truncate below must only ever cut: data shorter than what its
  // attribute vouches for was damaged outside the store.
  struct stat st;
  if (persisted.ok() && (fstat(*data, &st) != 0 || st.st_size < persisted->size)) {
    persisted = absl::DataLossError(
        absl::StrCat("upload ", session.id, ": data shorter than its persisted size"));
  }
  // The stream reserves what it may put on disk: the declared size, or
  // what is there already (its appends reserve the rest).
  const int64_t reserved =
      quota_ == nullptr ? 0 : (out.status.spec.size > 0 ? out.status.spec.size
                                                          : session.persisted.size);
  absl::Status s = persisted.status();
  if (s.ok() && reserved > 0) s = quota_->Reserve(reserved);
  if (!s.ok()) {
    close(*data);
    return fail(std::move(s));
  }
  out.status.persisted_size = session.persisted.size;
  // Bytes past the persisted size were never fsynced: cut them off.
  const FileHandle file{*data};
  const int64_t size = session.persisted.size;
  engine_->Truncate(file, size, [this, file, cancel, reserved, session = std::move(session),
                                 out = std::move(out), done = std::move(done)](
                                    absl::Status s, Backend b) mutable {
    if (!s.ok()) {
      if (reserved > 0) quota_->Release(reserved);
      close(static_cast<int>(file.id));
      close(session.lock_fd);
      return std::move(done)(std::move(s), b);
    }
    // The writer owns the descriptors and the reservation from here on.
    out.writer = NewSessionWriter(this, std::move(session), file, cancel, reserved, b);
    if (IsCancelled(cancel)) {
      out.writer.reset();  // closes them in the background
      return std::move(done)(CancelledStatus(), b);
    }
    std::move(done)(std::move(out), b);
  });
}

int Store::ExpireUploads(absl::Duration ttl) { return ExpireSessions(root_fd_, ttl); }

}  // namespace ringstore::storage
