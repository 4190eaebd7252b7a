#include "storage/engine/cancellation.h"

#include <utility>

namespace ringstore::storage {

void Cancellation::Cancel() {
  std::map<uint64_t, Hook> hooks;
  {
    MutexLock lock(&mu_);
    if (cancelled_.exchange(true, std::memory_order_acq_rel)) return;
    hooks.swap(hooks_);
  }
  for (auto& [id, hook] : hooks) std::move(hook)();
}

uint64_t Cancellation::AddHook(Hook hook) {
  MutexLock lock(&mu_);
  if (cancelled_.load(std::memory_order_acquire)) return 0;
  const uint64_t id = next_id_++;
  hooks_.emplace(id, std::move(hook));
  return id;
}

void Cancellation::RemoveHook(uint64_t id) {
  if (id == 0) return;
  MutexLock lock(&mu_);
  hooks_.erase(id);
}

}  // namespace ringstore::storage
