// Asynchronous per-path mutual exclusion for commits and deletes, within
// this process and across every server sharing the root.
//
// Lock(path, then) runs `then` once the caller holds `path` both here (one
// holder per path in this process, waiters served in arrival order) and in
// the file system (the OFD lock on the path's byte of the lock file,
// shared_locks.h), so that no other server commits or deletes that path
// meanwhile. `then` runs at once on the calling thread when both are free;
// on the thread that unlocks the path when it had to wait for a holder in
// this process; on the lock poller's thread when another server held the
// byte. Thread-safe. Internal to storage/.
//
// The in-process table is keyed by the byte, not by the path: two paths
// whose bytes collide are serialised here too. It has to be so, because
// OFD locks of one open file description merge: were both paths held at
// once, the F_UNLCK of one would free the byte the other still needs.
//
// Fairness across servers is loose: a waiter in this process takes the
// byte over from the holder without freeing it, while another server's
// poller retries every 1 to 20 ms, so under back-to-back commits of one
// path from one server another server's commit of it waits until a gap.
#ifndef RINGSTORE_STORAGE_PATH_LOCKS_H_
#define RINGSTORE_STORAGE_PATH_LOCKS_H_

#include <cstdint>
#include <deque>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/strings/string_view.h"
#include "storage/engine/sync.h"
#include "storage/shared_locks.h"

namespace ringstore::storage {

class PathLocks {
 public:
  using Continuation = absl::AnyInvocable<void() &&>;
  using OffsetFunction = uint64_t (*)(absl::string_view path);

  // `shared` (borrowed, outlives this; null: this process only) takes the
  // file system's locks. `offset` maps a path to its byte (tests replace
  // it to make two paths collide).
  explicit PathLocks(SharedLocks* shared, OffsetFunction offset = &PathLockOffset)
      : shared_(shared), offset_(offset) {}

  void Lock(const std::string& path, Continuation then);
  // Releases `path`, which the caller holds, handing it to the next waiter
  // of its byte (which then runs on this thread, or on the poller's if the
  // byte had to be taken again).
  void Unlock(const std::string& path);

 private:
  // Takes the file system's lock on `offset` (already held here), then
  // runs `then`.
  void AcquireShared(uint64_t offset, Continuation then);

  SharedLocks* const shared_;
  const OffsetFunction offset_;
  Mutex mu_;
  // A byte is held in this process while it has an entry; the entry holds
  // its waiters.
  absl::flat_hash_map<uint64_t, std::deque<Continuation>> held_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_PATH_LOCKS_H_
