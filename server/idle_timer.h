// Ends streams whose client has done nothing for too long (--idle_timeout).
//
// One IdleTimer serves every stream of a server: a single thread that
// wakes every tick (a tenth of the timeout, between 1 ms and 1 s) and scans
// the streams' IdleWatches. A stream arms its watch when it starts waiting
// for its client (an upload's read of the next message, a download's write
// to a client that must read it) and disarms it when the wait ends, so the
// per-message cost is one atomic store of a tick counter each way:
// no clock read, no lock, no allocation. A watch armed at tick t fires at
// the first scan at tick t + ceil(timeout / tick) + 1 or later, so never
// before `timeout` has passed and at most about two ticks after.
//
// Firing runs the watch's callback on the timer's thread, once per arming
// (the timer disarms the watch first; a watch disarmed or re-armed meanwhile
// does not fire). The callback must be quick and must not block; it
// typically cancels its RPC. It runs with no lock of the timer's held, so it
// may do anything that ends the stream, including destroying the watch (the
// callback lives in the watch: after that it must not touch its captures).
#ifndef RINGSTORE_SERVER_IDLE_TIMER_H_
#define RINGSTORE_SERVER_IDLE_TIMER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "storage/engine/sync.h"

namespace ringstore::server {

class IdleWatch;

class IdleTimer {
 public:
  // Starts the timer's thread. `timeout` must be positive.
  explicit IdleTimer(absl::Duration timeout);
  // Stops the thread. Every IdleWatch must be gone.
  ~IdleTimer();
  IdleTimer(const IdleTimer&) = delete;
  IdleTimer& operator=(const IdleTimer&) = delete;

  absl::Duration timeout() const { return timeout_; }

 private:
  friend class IdleWatch;
  void Register(IdleWatch* watch);
  // After it returns, `watch`'s callback is not running and will not run,
  // unless it is called from that callback (which then goes on to its end).
  void Unregister(IdleWatch* watch);
  void Loop();
  // Under mu_: whether `w` is still registered and idle at tick `now`; if
  // so, disarms it and makes it firing_.
  bool BeginFiring(IdleWatch* w, int64_t now);
  int64_t now_tick() const { return tick_.load(std::memory_order_relaxed); }

  const absl::Duration timeout_;
  const absl::Duration tick_length_;
  // Ticks an armed watch must stay armed for before it fires.
  const int64_t ticks_to_fire_;
  std::atomic<int64_t> tick_{0};

  Mutex mu_;
  std::unordered_set<IdleWatch*> watches_ ABSL_GUARDED_BY(mu_);
  // The watch whose callback the timer's thread is running, if any.
  IdleWatch* firing_ ABSL_GUARDED_BY(mu_) = nullptr;
  // The thread's sleep between ticks, cut short by the destructor.
  std::mutex sleep_mu_;
  std::condition_variable sleep_cv_;
  bool stop_ = false;  // guarded by sleep_mu_
  std::thread thread_;
};

// One stream's idle clock. Not copyable; not movable (the timer keeps its
// address). Arm and Disarm are called by the stream, in any order, from any
// thread, but not concurrently with each other.
class IdleWatch {
 public:
  // Registers with `timer`; with a null timer the watch never fires.
  // `on_idle` runs on the timer's thread as described at the top.
  IdleWatch(IdleTimer* timer, absl::AnyInvocable<void()> on_idle);
  // Close()s.
  ~IdleWatch();
  IdleWatch(const IdleWatch&) = delete;
  IdleWatch& operator=(const IdleWatch&) = delete;

  // The stream waits for its client from now on: the clock runs. What the
  // caller did before Arm happens before a firing of this arming (a
  // release store: on x86 a plain one).
  void Arm() {
    if (timer_ != nullptr) armed_at_.store(timer_->now_tick(), std::memory_order_release);
  }
  // The wait is over: the clock stops.
  void Disarm() { armed_at_.store(kDisarmed, std::memory_order_relaxed); }

  // Unregisters: once it returns, `on_idle` is not running (on another
  // thread) and never runs again. Called from `on_idle` itself it does not
  // wait for it. Idempotent.
  void Close();

 private:
  friend class IdleTimer;
  static constexpr int64_t kDisarmed = -1;

  IdleTimer* timer_;
  absl::AnyInvocable<void()> on_idle_;
  std::atomic<int64_t> armed_at_{kDisarmed};
  bool closed_ = false;
};

}  // namespace ringstore::server

#endif  // RINGSTORE_SERVER_IDLE_TIMER_H_
