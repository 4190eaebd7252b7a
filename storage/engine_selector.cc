#include "storage/engine_selector.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ringstore::storage {
namespace {

using Factory = absl::StatusOr<std::unique_ptr<Engine>> (*)(const EngineOptions&);

absl::StatusOr<std::unique_ptr<Engine>> NotBuilt(const EngineOptions&) {
  return absl::UnimplementedError("engine not built into this version");
}

struct Known {
  absl::string_view name;
  Factory factory;
};

// Preference order for --engine=auto.
constexpr Known kEngines[] = {
    {"io_uring", &NewIoUringEngine},
    {"posix_aio", &NotBuilt},
    {"thread_pool", &NewThreadPoolEngine},
};

}  // namespace

absl::Status ValidateEngineName(absl::string_view name) {
  if (name == "auto") return absl::OkStatus();
  for (const Known& k : kEngines) {
    if (k.name == name) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown engine \"", name, "\"; use auto, io_uring, posix_aio or thread_pool"));
}

absl::StatusOr<std::unique_ptr<Engine>> StartEngine(absl::string_view name,
                                                    const EngineOptions& options) {
  if (absl::Status s = ValidateEngineName(name); !s.ok()) return s;
  absl::Status last = absl::UnavailableError("no engine");
  for (const Known& k : kEngines) {
    if (name != "auto" && name != k.name) continue;
    absl::StatusOr<std::unique_ptr<Engine>> engine = k.factory(options);
    if (engine.ok()) return engine;
    last = absl::Status(engine.status().code(),
                        absl::StrCat(k.name, ": ", engine.status().message()));
  }
  return last;
}

std::vector<std::string> AvailableEngines(const EngineOptions& options) {
  std::vector<std::string> names;
  for (const Known& k : kEngines) {
    if (k.factory(options).ok()) names.emplace_back(k.name);
  }
  return names;
}

}  // namespace ringstore::storage
