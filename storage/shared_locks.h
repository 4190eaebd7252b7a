// Locks that every server sharing a root sees: OFD byte-range locks on one
// empty file, <root>/.ringstore/lock (store.h's layout).
//
// Several servers (processes, possibly on several machines over CephFS or
// NFSv4) may share a root (DESIGN.md §3). What must be exclusive across them
// (the check and rename of a commit, a Delete) is guarded by an open file
// description (OFD) lock, fcntl(F_OFD_SETLK), on one byte of this file:
// the byte at PathLockOffset(path), a 62-bit hash of the path. Two paths
// whose hashes collide share a byte and are serialised: harmless.
//
// Kernel and file-system facts this relies on:
//   - An OFD lock belongs to the open file description, not to the
//     process: two opens of the file in one process conflict exactly as two
//     processes do (the tests use that), closing another descriptor of the
//     same file drops nothing (unlike classic POSIX locks, which a process
//     loses on any close of the file), and locks of one description never
//     conflict with each other: they merge. The kernel releases them when
//     the description's last descriptor closes, which includes the death of
//     the process (kill -9): a crashed server never leaves a path locked.
//   - NFSv4 (LOCK/LOCKT operations, leased: a dead client's locks go when
//     its lease expires, 90 s by default) and CephFS (kernel client and
//     ceph-fuse, through the MDS) honour fcntl byte-range locks across
//     machines, OFD ones included (the kernel maps them onto the same
//     protocol). A file system without them fails Open (FailedPrecondition).
//   - One lock file rather than one per path: DESIGN.md says `.ringstore`
//     holds no data apart from sessions ("empty lock files at most"), a file
//     per path would have to be created and removed around every commit
//     (with races between a remover and a new locker), and 2^62 bytes of
//     one file name every path there will ever be.
//
// Besides the path bytes, every server holds a shared (read) lock on
// kLiveOffset for as long as it runs, so OthersLive() can ask the file
// system, in one call, whether another server uses the root now (the
// metadata cache depends on that: metadata_cache.h).
//
// No caller's thread ever waits for a lock. Acquire tries F_OFD_SETLK once;
// the common, uncontended case runs its continuation at once, on the
// calling thread. A conflict hands the waiter to this object's one poller
// thread ("the lock poller's thread", store.h), which retries it after 1 ms,
// doubling up to 20 ms, and runs the continuation on its own thread once
// the byte is held. (F_OFD_SETLKW would need a blocked thread per waiter,
// and cannot be cancelled or bounded.) The poller also runs a periodic tick
// (SetTicker). Thread-safe. Internal to storage/.
#ifndef RINGSTORE_STORAGE_SHARED_LOCKS_H_
#define RINGSTORE_STORAGE_SHARED_LOCKS_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "storage/engine/scoped_fd.h"

namespace ringstore::storage {

// The byte of the lock file that stands for `path`: FNV-1a 64 of its bytes,
// cut to 62 bits. Part of the on-disk protocol: every server on a root
// must compute the same one.
uint64_t PathLockOffset(absl::string_view path);

// The byte every live server read-locks (above every path's byte).
inline constexpr uint64_t kLiveOffset = uint64_t{1} << 62;

class SharedLocks {
 public:
  using Continuation = absl::AnyInvocable<void() &&>;

  // Opens (creating it if missing) <root>/.ringstore/lock with its own open
  // file description, checks that the file system takes OFD locks
  // (FailedPrecondition if not) and read-locks kLiveOffset. `root_fd` is
  // borrowed. Starts the poller thread.
  static absl::StatusOr<std::unique_ptr<SharedLocks>> Open(int root_fd);
  // Stops the poller (no Acquire may be waiting) and closes the file, which
  // releases every lock this object holds.
  ~SharedLocks();
  SharedLocks(const SharedLocks&) = delete;
  SharedLocks& operator=(const SharedLocks&) = delete;

  // Takes the write lock on byte `offset` (< kLiveOffset) for this object's
  // description and then runs `then`: inline if the byte was free, else on
  // the poller's thread once it is. The caller asks for a byte at most
  // once at a time (PathLocks guarantees it: same-description locks merge,
  // so two holders of one byte could not tell each other apart). An error
  // other than a conflict (e.g. ENOLCK while an NFS server recovers its
  // locks) is retried by the poller like a conflict.
  void Acquire(uint64_t offset, Continuation then);
  // Releases byte `offset` (F_UNLCK), which the caller holds.
  void Release(uint64_t offset);

  // Whether another open of the lock file (another server) holds
  // kLiveOffset now: F_OFD_GETLK, one call, which the file system answers
  // from its lock state (NFS: the server's; not an attribute cache). May
  // block on a network file system: call it from the poller's tick or at
  // Open only.
  absl::StatusOr<bool> OthersLive() const;
  // Whether any OthersLive() so far answered yes (or failed): the root was
  // shared at some point of this object's life.
  bool others_seen() const { return others_seen_.load(); }

  // Runs `tick` on the poller's thread every `period` (first after one
  // period) until destruction. Set once, before anything else uses this.
  void SetTicker(absl::Duration period, absl::AnyInvocable<void()> tick);

  // Waiters the poller holds now (tests).
  size_t waiting() const;

 private:
  using Clock = std::chrono::steady_clock;

  struct Waiter {
    uint64_t offset;
    Continuation then;
    Clock::time_point next_try;
    Clock::duration backoff;
  };

  explicit SharedLocks(ScopedFd fd);
  // F_OFD_SETLK of `type` on `offset` (length 1): OK, or the errno as a
  // Status (a conflict is Unavailable).
  absl::Status SetLock(uint64_t offset, short type) const;
  void Poll();

  const ScopedFd fd_;
  mutable std::atomic<bool> others_seen_{false};
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::vector<Waiter> waiters_;
  Clock::duration tick_period_{};
  Clock::time_point next_tick_{};
  absl::AnyInvocable<void()> tick_;
  std::thread poller_;
};

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_SHARED_LOCKS_H_
