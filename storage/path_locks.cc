#include "storage/path_locks.h"

#include <utility>

namespace ringstore::storage {

void PathLocks::Lock(const std::string& path, Continuation then) {
  {
    MutexLock lock(&mu_);
    auto [it, inserted] = held_.try_emplace(path);
    if (!inserted) {
      it->second.push_back(std::move(then));
      return;
    }
  }
  std::move(then)();
}

void PathLocks::Unlock(const std::string& path) {
  Continuation next;
  {
    MutexLock lock(&mu_);
    auto it = held_.find(path);
    if (it == held_.end()) return;
    if (it->second.empty()) {
      held_.erase(it);
      return;
    }
    next = std::move(it->second.front());
    it->second.pop_front();
  }
  std::move(next)();
}

}  // namespace ringstore::storage
