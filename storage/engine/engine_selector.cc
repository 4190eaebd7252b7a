#include "storage/engine/engine_selector.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "storage/engine/engine_list.h"
#include "storage/engine/fallback_engine.h"
#include "storage/engine/status_util.h"

namespace ringstore::storage {
namespace {

#define RINGSTORE_ENGINE_KIND(name, enumerator, factory) \
  EngineKind{#name, Backend::enumerator, &factory},
constexpr EngineKind kEngines[] = {RINGSTORE_ENGINE_LIST(RINGSTORE_ENGINE_KIND)};
#undef RINGSTORE_ENGINE_KIND

absl::Status Named(absl::string_view name, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(name, ": ", s.message()));
}

}  // namespace

absl::Span<const EngineKind> AllEngines() { return kEngines; }

std::vector<std::string> EngineNames() {
  std::vector<std::string> names;
  for (const EngineKind& k : kEngines) names.emplace_back(k.name);
  return names;
}

absl::Status ValidateEngineName(absl::string_view name) {
  if (name == "auto") return absl::OkStatus();
  for (const EngineKind& k : kEngines) {
    if (k.name == name) return absl::OkStatus();
  }
  // "use auto, io_uring, posix_aio or thread_pool"
  std::vector<std::string> names = EngineNames();
  names.insert(names.begin(), "auto");
  const std::string last = names.back();
  names.pop_back();
  return absl::InvalidArgumentError(absl::StrCat("unknown engine \"", name, "\"; use ",
                                                 absl::StrJoin(names, ", "), " or ", last));
}

absl::StatusOr<StartedEngine> StartEngine(absl::string_view name, const EngineOptions& options) {
  RS_RETURN_IF_ERROR(ValidateEngineName(name));
  EngineOptions plain = options;
  plain.faults = nullptr;
  StartedEngine out;
  // The chosen engine, then its fallbacks in order.
  std::vector<std::unique_ptr<Engine>> chain;
  absl::Status last = absl::UnavailableError("no engine");
  for (const EngineKind& k : kEngines) {
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
  for (const EngineKind& k : kEngines) {
    if (k.name != name) continue;
    absl::StatusOr<std::unique_ptr<Engine>> engine = k.factory(options);
    if (!engine.ok()) return Named(k.name, engine.status());
    return engine;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown engine \"", name, "\""));
}

}  // namespace ringstore::storage
