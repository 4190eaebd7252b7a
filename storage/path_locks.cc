#include "storage/path_locks.h"

#include <utility>

namespace ringstore::storage {

void PathLocks::Lock(const std::string& path, Continuation then) {
  const uint64_t offset = offset_(path);
  {
    MutexLock lock(&mu_);
    auto [it, inserted] = held_.try_emplace(offset);
    if (!inserted) {
      it->second.push_back(std::move(then));
      return;
    }
  }
  AcquireShared(offset, std::move(then));
}

void PathLocks::AcquireShared(uint64_t offset, Continuation then) {
  if (shared_ == nullptr) return std::move(then)();
  shared_->Acquire(offset, std::move(then));
}

void PathLocks::Unlock(const std::string& path) {
  const uint64_t offset = offset_(path);
  Continuation next;
  {
    MutexLock lock(&mu_);
    auto it = held_.find(offset);
    if (it == held_.end()) return;
    if (!it->second.empty()) {
      // The next waiter here takes over the byte as it is, still held in
      // the file system.
      next = std::move(it->second.front());
      it->second.pop_front();
    }
  }
  if (next) return std::move(next)();
  // Free the byte in the file system while the entry still stands (so no
  // one here takes it meanwhile: an F_OFD_SETLK of ours racing this F_UNLCK
  // would merge with the old lock and then lose it), then drop the entry,
  // unless a waiter arrived meanwhile: it must take the byte again.
  if (shared_ != nullptr) shared_->Release(offset);
  {
    MutexLock lock(&mu_);
    auto it = held_.find(offset);
    if (it->second.empty()) {
      held_.erase(it);
      return;
    }
    next = std::move(it->second.front());
    it->second.pop_front();
  }
  AcquireShared(offset, std::move(next));
}

}  // namespace ringstore::storage
