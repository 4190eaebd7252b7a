#include "storage/engine/engine_selector.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "storage/engine/fallback_engine.h"
#include "storage/engine/status_util.h"

namespace ringstore::storage {
namespace {

using Factory = absl::StatusOr<std::unique_ptr<Engine>> (*)(const EngineOptions&);

struct Known {
  absl::string_view name;
  Factory factory;
};

// Preference order.
constexpr Known kEngines[] = {
    {"io_uring", &NewIoUringEngine},
    {"posix_aio", &NewPosixAioEngine},
    {"thread_pool", &NewThreadPoolEngine},
};

absl::Status Named(absl::string_view name, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(name, ": ", s.message()));
}

}  // namespace

absl::Status ValidateEngineName(absl::string_view name) {
  if (name == "auto") return absl::OkStatus();
  for (const Known& k : kEngines) {
    if (k.name == name) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown engine \"", name, "\"; use auto, io_uring, posix_aio or thread_pool"));
}

absl::StatusOr<StartedEngine> StartEngine(absl::string_view name, const EngineOptions& options) {
  RS_RETURN_IF_ERROR(ValidateEngineName(name));
  EngineOptions plain = options;
  plain.faults = nullptr;
  StartedEngine out;
  // The chosen engine, then its fallbacks in order.
  std::vector<std::unique_ptr<Engine>> chain;
  absl::Status last = absl::UnavailableError("no engine");
  for (const Known& k : kEngines) {
    const bool wanted = chain.empty() && (name == "auto" || name == k.name);
    absl::StatusOr<std::unique_ptr<Engine>> engine = k.factory(wanted ? options : plain);
    if (engine.ok()) {
      out.available.emplace_back(k.name);
      // Engines preferred over a named one are only probed.
      if (wanted || !chain.empty()) chain.push_back(*std::move(engine));
      continue;
    }
    last = Named(k.name, engine.status());
    if (wanted && name != "auto") return last;
  }
  if (chain.empty()) return last;
  // io_uring → (posix_aio → thread_pool): wrap from the back.
  std::unique_ptr<Engine> engine = std::move(chain.back());
  for (size_t i = chain.size() - 1; i-- > 0;) {
    engine = WithFallback(std::move(chain[i]), std::move(engine));
  }
  out.engine = std::move(engine);
  return out;
}

absl::StatusOr<std::unique_ptr<Engine>> StartSingleEngine(absl::string_view name,
                                                          const EngineOptions& options) {
  for (const Known& k : kEngines) {
    if (k.name != name) continue;
    absl::StatusOr<std::unique_ptr<Engine>> engine = k.factory(options);
    if (!engine.ok()) return Named(k.name, engine.status());
    return engine;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown engine \"", name, "\""));
}

}  // namespace ringstore::storage
