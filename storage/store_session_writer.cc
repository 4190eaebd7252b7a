// The session part of Store's Writer (store_writer.cc). A stream attached
// to a resumable session (NewSessionWriter) is the same writer with a
// session part: its "temp file" is the session's data, opened buffered at
// the persisted size; Persist fsyncs it and records the size and running
// CRC32C in its attribute; Discard, instead of removing it, persists what
// the good appends delivered and releases the session's lock
// (DetachSession); the commit brackets the rename with the record's
// `committing` and `complete` (upload_session.h) and removes the session
// only when a check fails (FailCheck). The state both parts share is
// WriterState (writer_state.h).
#include <unistd.h>

#include <memory>
#include <optional>
#include <utility>

#include "storage/store_internal.h"
#include "storage/upload_session.h"
#include "storage/writer_state.h"

namespace ringstore::storage {

// Discard for a session's stream (store.h, ResumeUpload): the session
// stays. With every write good, what the successful appends delivered is
// made durable (PersistSession); a session whose commit failed its checks
// is removed instead, and `removed` (Fail's report of that failure) runs
// once its files are gone (on an engine thread). Then the data and the record are closed, which
// releases the session's lock, and the quota reservation ends (the data
// left on disk is the session's, outside the count while no stream is
// attached). In the background, except that with nothing left to persist
// (a stream that Persist ended, the usual half-close) the lock goes at
// once, on this thread: so once the server has answered such a stream, a
// client that resumes or cancels straight away finds the session free.
// No write is in flight, so the data's own close can follow later.
void WriterState::DetachSession(absl::AnyInvocable<void() &&> removed) {
  auto self = shared_from_this();
  store->BeginBackground();
  auto close = [self](absl::Status) { self->CloseSession(); };
  if (session->drop) {
    return RemoveSessionFiles([self, removed = std::move(removed)](absl::Status) mutable {
      if (removed) std::move(removed)();
      self->CloseSession();
    });
  }
  if (!session->renamed && !session->persist_failed && WriteStatus().ok() &&
      good_size > session->persisted.size) {
    PersistedState p;
    p.size = good_size;
    p.crc32c = good_crc;
    return PersistSession(p, std::move(close));
  }
  CloseLock();
  close(absl::OkStatus());
}

// Closes the data (if open) and then the record, ends the reservation and
// the background work DetachSession began.
void WriterState::CloseSession() {
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
void WriterState::CloseLock() {
  if (session->lock_fd >= 0) close(std::exchange(session->lock_fd, -1));
}

// Unlinks the record (we still hold its lock, so nobody attaches
// meanwhile), then the data, then fsyncs their directory.
void WriterState::RemoveSessionFiles(absl::AnyInvocable<void(absl::Status) &&> then) {
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
void WriterState::PersistSession(PersistedState p, absl::AnyInvocable<void(absl::Status) &&> then) {
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
void WriterState::SetRecordState(SessionState state,
                                 absl::AnyInvocable<void(absl::Status) &&> then) {
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

// FailCommit for a failed check (size, checksum, precondition, a file in
// the way): a session that cannot commit goes too.
void WriterState::FailCheck(absl::Status s, CommitDone done, bool locked) {
  if (session) session->drop = true;
  FailCommit(std::move(s), std::move(done), locked);
}

// A session's commit is done: the record says `complete` (if that fails,
// it still says `committing` with the data gone, which means the same),
// then the record is closed (the lock released, so a retry of the same
// stream finds the session complete, not locked), then `done`.
void WriterState::FinishSession(absl::Status s, ObjectInfo info, CommitDone done) {
  auto self = shared_from_this();
  SetRecordState(SessionState::kComplete, [self, s = std::move(s), info = std::move(info),
                                           done = std::move(done)](absl::Status) mutable {
    self->CloseLock();
    if (!s.ok()) return std::move(done)(std::move(s), self->backend);
    std::move(done)(std::move(info), self->backend);
  });
}

// --- The Writer --------------------------------------------------------------

void WriterImpl::Persist(Engine::Callback<int64_t> done) {
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
  // emplace() without an argument does not compile with clang, which finds
  // the nested struct not default-constructible inside the enclosing class.
  WriterState::Session& part = state->session.emplace(WriterState::Session{});
  part.id = std::move(session.id);
  part.record = std::move(session.record);
  part.lock_fd = session.lock_fd;
  part.persisted = session.persisted;
  return std::make_unique<WriterImpl>(std::move(state));
}

}  // namespace ringstore::storage
