// Pieces of the Store shared by its implementation files. Internal to
// storage/: nothing outside store*.cc includes this.
#ifndef RINGSTORE_STORAGE_STORE_INTERNAL_H_
#define RINGSTORE_STORAGE_STORE_INTERNAL_H_

#include <memory>
#include <string>
#include <vector>

#include "storage/engine/engine.h"
#include "storage/store.h"

namespace ringstore::storage {

// ObjectInfo of `path` from its stat (metadata attribute decoded).
ObjectInfo MakeInfo(std::string path, const FileStat& stat);

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
