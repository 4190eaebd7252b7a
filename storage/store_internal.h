// Pieces of the Store shared by its implementation files. Internal to
// storage/: nothing outside store*.cc includes this.
#ifndef RINGSTORE_STORAGE_STORE_INTERNAL_H_
#define RINGSTORE_STORAGE_STORE_INTERNAL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/engine/engine.h"
#include "storage/store.h"
#include "storage/upload_session.h"

namespace ringstore::storage {

// ObjectInfo of `path` from its stat (metadata attribute decoded).
ObjectInfo MakeInfo(std::string path, const FileStat& stat);

// The generation `path` has now (nullopt: it does not exist), from its
// Engine::StatPath result `st`, checked against an upload's precondition
// `want` (WriteSpec::if_generation_match): AlreadyExists if `want` is 0 and
// the file exists, FailedPrecondition if `want` is N and the file is not at
// generation N or is a directory; a stat error other than NotFound as it is.
// CreateWriter checks it so that a doomed upload fails before its body is
// sent; the commit checks it again under the path's lock.
absl::StatusOr<std::optional<int64_t>> CheckPrecondition(const std::string& path,
                                                         const absl::StatusOr<FileStat>& st,
                                                         std::optional<int64_t> want);

// fsyncs each directory of `dirs` in turn, so that new entries in them are
// durable, then calls `done` with the first error.
void SyncDirectories(Engine* engine, std::vector<std::string> dirs, Engine::DoneCallback done);

// The Writer of an upload whose temp file `tmp_path` is open as `file`,
// opened OpenMode::kCreateDirect if `direct`; `cancel` (may be null) cuts
// its appends short (store.h). It takes over `reserved` bytes already
// reserved against the store's quota (store_writer.cc ends them).
std::unique_ptr<Writer> NewWriter(Store* store, WriteSpec spec, std::string tmp_path,
                                  FileHandle file, bool direct, Cancellation* cancel,
                                  int64_t reserved, Backend backend);

// A resumable session a stream has attached to (Store::ResumeUpload).
struct SessionAttachment {
  std::string id;
  SessionRecord record;
  // The record, open, holding the session's OFD lock (LockSession); the
  // Writer closes it when it is done, which releases the lock.
  int lock_fd = -1;
  // What the data file holds durably; the Writer appends after it.
  PersistedState persisted;
};

// The Writer of a stream attached to `session`, whose data file (cut to the
// persisted size) is open for writing as `file` (buffered). It takes over
// the lock descriptor and `reserved` bytes already reserved against the
// quota (store_writer.cc says how a session writer differs).
std::unique_ptr<Writer> NewSessionWriter(Store* store, SessionAttachment session,
                                         FileHandle file, Cancellation* cancel,
                                         int64_t reserved, Backend backend);

// CreateWriter's and StartUpload's checks of a spec that need no disk:
// InvalidArgument for a bad path or a negative size or generation,
// ResourceExhausted for a size over max_file_bytes.
absl::Status ValidateWriteSpec(const WriteSpec& spec, const StoreOptions& options);
// An upload's precondition `want` (WriteSpec::if_generation_match) against
// the file at `path` as it is now (CheckPrecondition): `then` gets its
// error, or OK; inline when there is none, else on an engine thread after
// a StatPath.
void CheckStartPrecondition(Engine* engine, std::string path, std::optional<int64_t> want,
                            Engine::DoneCallback then);

// The status of a call its Cancellation cut short.
absl::Status CancelledStatus();

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_STORE_INTERNAL_H_
