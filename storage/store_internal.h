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

// The status of a call its Cancellation cut short.
absl::Status CancelledStatus();

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_STORE_INTERNAL_H_
