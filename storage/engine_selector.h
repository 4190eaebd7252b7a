// Chooses and starts the storage engine.
//
// "auto" tries the engines in preference order (io_uring, posix_aio,
// thread_pool) and starts the first that works here; a named engine that
// cannot start is an error. posix_aio is not built yet: it reports
// Unimplemented, so auto moves on to thread_pool.
#ifndef RINGSTORE_STORAGE_ENGINE_SELECTOR_H_
#define RINGSTORE_STORAGE_ENGINE_SELECTOR_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "storage/engine.h"

namespace ringstore::storage {

// Engine names accepted by StartEngine: "auto", "io_uring", "posix_aio",
// "thread_pool".
absl::Status ValidateEngineName(absl::string_view name);

// Starts the engine `name` names. InvalidArgument for an unknown name;
// the engine's own error (for example Unimplemented or PermissionDenied) if
// a named engine cannot start; for "auto", the last engine's error if none
// can.
absl::StatusOr<std::unique_ptr<Engine>> StartEngine(absl::string_view name,
                                                    const EngineOptions& options);

// Names of the engines that can start on this machine, in preference order.
// Probes by starting each one and stopping it again.
std::vector<std::string> AvailableEngines(const EngineOptions& options);

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_ENGINE_SELECTOR_H_
