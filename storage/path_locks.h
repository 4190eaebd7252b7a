// Asynchronous per-path mutual exclusion for commits and deletes.
//
// Lock(path, then) runs `then` once the caller holds `path`: at once (on the
// calling thread) if free, otherwise on the thread that unlocks it. Waiters
// are served in arrival order. Thread-safe. Internal to storage/.
#ifndef RINGSTORE_STORAGE_PATH_LOCKS_H_
#define RINGSTORE_STORAGE_PATH_LOCKS_H_

#include <deque>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "storage/engine/sync.h"

namespace ringstore::storage {

class PathLocks {
 public:
  using Continuation = absl::AnyInvocable<void() &&>;

  void Lock(const std::string& path, Continuation then);
  // Releases `path`, which the caller holds, handing it to the next waiter.
  void Unlock(const std::string& path);

 private:
  Mutex mu_;
  // A path is locked while it has an entry; the entry holds its waiters.
  absl::flat_hash_map<std::string, std::deque<Continuation>> held_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_PATH_LOCKS_H_
