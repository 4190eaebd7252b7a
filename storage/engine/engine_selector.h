// Chooses and starts the storage engine.
//
// The engines in preference order are engine_list.h's (io_uring, posix_aio,
// thread_pool); AllEngines() is that list for everyone else. "auto" starts
// the first that works here; a named engine that cannot start is an error.
// Either way the engines after it that can start become its runtime
// fallback (fallback_engine.h): an operation io_uring refuses is run on
// posix_aio, one posix_aio refuses on thread_pool.
#ifndef RINGSTORE_STORAGE_ENGINE_ENGINE_SELECTOR_H_
#define RINGSTORE_STORAGE_ENGINE_ENGINE_SELECTOR_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "storage/engine/engine.h"

namespace ringstore::storage {

// One engine of engine_list.h.
struct EngineKind {
  absl::string_view name;  // "io_uring"; BackendName(backend)
  Backend backend;
  absl::StatusOr<std::unique_ptr<Engine>> (*factory)(const EngineOptions& options);
};

// Every engine of this build, in preference order, whether or not it can
// start here.
absl::Span<const EngineKind> AllEngines();

// The names of AllEngines(), in the same order.
std::vector<std::string> EngineNames();

// Engine names accepted by StartEngine: "auto" and those of AllEngines().
// InvalidArgument, naming the accepted ones, for any other.
absl::Status ValidateEngineName(absl::string_view name);

struct StartedEngine {
  // The chosen engine, wrapped with its fallbacks.
  std::unique_ptr<Engine> engine;
  // Names of the engines that could start on this machine, in preference
  // order (each was started once to find out).
  std::vector<std::string> available;
};

// Starts the engine `name` names. InvalidArgument for an unknown name; the
// engine's own error (for example Unimplemented, or PermissionDenied from a
// seccomp profile) if a named engine cannot start; for "auto", the last
// engine's error if none can. `options.faults` goes to the chosen engine
// only, never to its fallbacks.
absl::StatusOr<StartedEngine> StartEngine(absl::string_view name, const EngineOptions& options);

// Starts exactly the engine `name` names (one of AllEngines(), not "auto"),
// without fallbacks: for tests and benchmarks.
absl::StatusOr<std::unique_ptr<Engine>> StartSingleEngine(absl::string_view name,
                                                          const EngineOptions& options);

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_ENGINE_ENGINE_SELECTOR_H_
