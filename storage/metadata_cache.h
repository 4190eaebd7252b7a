// What the store knows about recently committed or read files, so that a
// small download need not read the metadata attribute.
//
// Reading an extended attribute is the one step of io_uring's small-file
// chain that the kernel always hands to an io-wq worker thread (two context
// switches per file); open, read and close complete inline. So the store
// remembers each file's metadata when it commits it (or first reads it) and
// reads small files without the attribute. An entry is only a hint: the
// store uses it only if the bytes it has just read have exactly the
// remembered size and CRC32C, so the metadata it reports always describes
// the bytes it sends (a file changed by hand, or replaced by a commit in
// between, makes it read the attribute again).
//
// Several servers on one root (DESIGN.md §3). Size and CRC32C cannot tell
// a file from another server's replacement with the same bytes, and this
// server would then report the old generation. So the cache is used only
// while this server is the only one live on the root, under a lease:
//   - every server read-locks one byte of the shared lock file while it
//     runs (shared_locks.h); the store's poller asks the file system every
//     kMetadataScanPeriod whether another holds it, and reports that with
//     the time the question was asked (Observe);
//   - an answer "alone" asked at time s grants a lease until s +
//     kMetadataLease; Lookup and Put do nothing once it has run out (a late
//     poller costs speed, never correctness);
//   - a server that finds others live when it joins waits kJoinWait (>
//     kMetadataLease) before its Open returns, so before it can commit
//     anything: by then every lease granted before it joined has run out,
//     and every later question sees it;
//   - each change of state (alone ↔ not alone, or a lease that ran out
//     before it was renewed) empties the cache and starts a new epoch:
//     while alone since the last change, no other server committed
//     anything (one that joined and left between two questions lived less
//     than a lease, shorter than its join wait, so it committed nothing),
//     so entries put during the epoch describe files as they are.
// A Put carries the epoch that was current when its observation began
// (ReadSmall reads first, puts later; Put(info) is for a commit, which puts
// under the path's lock, where no one can replace the file).
// The cost of sharing a root: small downloads read the attribute while
// more than one server runs.
//
// Bounded: at most `capacity` entries; the least recently used goes first.
// Thread-safe.
#ifndef RINGSTORE_STORAGE_METADATA_CACHE_H_
#define RINGSTORE_STORAGE_METADATA_CACHE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "storage/store.h"
#include "storage/engine/sync.h"

namespace ringstore::storage {

// How often the store asks whether other servers are live, how long an
// answer "alone" lets it use the cache, and how long a server that joins a
// root with others live waits before it may commit (> the lease, with room
// for clocks that run at slightly different rates on different machines).
inline constexpr absl::Duration kMetadataScanPeriod = absl::Milliseconds(200);
inline constexpr absl::Duration kMetadataLease = absl::Milliseconds(1500);
inline constexpr absl::Duration kJoinWait = absl::Milliseconds(2000);

class MetadataCache {
 public:
  using Clock = std::chrono::steady_clock;

  // Starts not alone (unused) until the first Observe.
  explicit MetadataCache(size_t capacity) : capacity_(capacity) {}
  MetadataCache(const MetadataCache&) = delete;
  MetadataCache& operator=(const MetadataCache&) = delete;

  // What a question asked at `asked` answered: whether other servers are
  // live (an error counts as yes).
  void Observe(Clock::time_point asked, bool others_live);
  // Whether Lookup may answer now: alone, under a lease.
  bool usable() const;
  // The current epoch, to pass to Put(info, epoch) after an observation
  // that began now.
  uint64_t epoch() const;

  // Nothing unless usable().
  std::optional<ObjectInfo> Lookup(absl::string_view path);
  // Remembers `info` if usable() and the epoch is still `epoch`.
  void Put(const ObjectInfo& info, uint64_t epoch);
  // The same in the current epoch: only for a caller that holds the path's
  // lock (a commit), so that the file is as `info` says.
  void Put(const ObjectInfo& info);
  void Erase(absl::string_view path);
  size_t size() const;

 private:
  using Entries = std::list<ObjectInfo>;  // most recently used first

  bool UsableLocked(Clock::time_point now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PutLocked(const ObjectInfo& info) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Empties the cache and starts a new epoch.
  void NewEpochLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t capacity_;
  mutable Mutex mu_;
  Entries entries_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Entries::iterator> index_ ABSL_GUARDED_BY(mu_);
  bool alone_ ABSL_GUARDED_BY(mu_) = false;
  Clock::time_point lease_until_ ABSL_GUARDED_BY(mu_){};
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_METADATA_CACHE_H_
