// The stop signal of one request, shared by the operations it started.
//
// The owner of a request (a download reactor whose client went away) calls
// Cancel(); engine operations that were given the Cancellation then end
// early: work not yet submitted is not started, and work the kernel holds is
// asked to stop (io_uring's ASYNC_CANCEL). An operation still calls back
// exactly once, with Cancelled if it was cut short, and releases everything
// it held (descriptors, direct slots) before it does. Work the kernel has
// already finished is not undone: a cancelled operation may still succeed.
//
// The owner keeps the Cancellation alive until every operation given it has
// called back. Thread-safe.
#ifndef RINGSTORE_STORAGE_ENGINE_CANCELLATION_H_
#define RINGSTORE_STORAGE_ENGINE_CANCELLATION_H_

#include <atomic>
#include <cstdint>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "storage/engine/sync.h"

namespace ringstore::storage {

class Cancellation {
 public:
  using Hook = absl::AnyInvocable<void() &&>;

  Cancellation() = default;
  Cancellation(const Cancellation&) = delete;
  Cancellation& operator=(const Cancellation&) = delete;

  // Marks the request cancelled and runs every hook, on this thread, with no
  // lock held. Later calls do nothing.
  void Cancel();
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }

  // For engines. Runs `hook` once when Cancel() is called; if that has
  // happened already, runs nothing and returns 0. Otherwise returns an id
  // for RemoveHook. Hooks must be quick and must not block.
  uint64_t AddHook(Hook hook);
  // Forgets the hook `id` (0 is ignored). A hook that Cancel() has already
  // taken may still be running or about to run.
  void RemoveHook(uint64_t id);

 private:
  std::atomic<bool> cancelled_{false};
  Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, Hook> hooks_ ABSL_GUARDED_BY(mu_);
};

// True if `cancel` is set and has been cancelled.
inline bool IsCancelled(const Cancellation* cancel) {
  return cancel != nullptr && cancel->cancelled();
}

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_ENGINE_CANCELLATION_H_
