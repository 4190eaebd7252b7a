#include "server/idle_timer.h"

#include <algorithm>
#include <cassert>
#include <chrono>
#include <utility>
#include <vector>

namespace ringstore::server {
namespace {

absl::Duration TickLength(absl::Duration timeout) {
  return std::clamp(timeout / 10, absl::Milliseconds(1), absl::Seconds(1));
}

}  // namespace

IdleTimer::IdleTimer(absl::Duration timeout)
    : timeout_(timeout),
      tick_length_(TickLength(timeout)),
      ticks_to_fire_(absl::ToInt64Nanoseconds(timeout) /
                         absl::ToInt64Nanoseconds(tick_length_) +
                     (timeout % tick_length_ == absl::ZeroDuration() ? 0 : 1)),
      thread_([this] { Loop(); }) {}

IdleTimer::~IdleTimer() {
  {
    std::lock_guard<std::mutex> lock(sleep_mu_);
    stop_ = true;
  }
  sleep_cv_.notify_all();
  thread_.join();
  // The last Unregister ran on a gRPC thread (a reactor's OnDone); the lock
  // orders it before the set goes.
  MutexLock lock(&mu_);
  assert(watches_.empty());
}

void IdleTimer::Register(IdleWatch* watch) {
  MutexLock lock(&mu_);
  watches_.insert(watch);
}

void IdleTimer::Unregister(IdleWatch* watch) {
  MutexLock lock(&mu_);
  watches_.erase(watch);
  if (std::this_thread::get_id() == thread_.get_id()) return;  // from on_idle
  IdleWatch* const self = watch;
  auto not_firing = [this, self]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return firing_ != self;
  };
  mu_.Await(absl::Condition(&not_firing));
}

void IdleTimer::Loop() {
  // Ticks count whole tick lengths on the steady clock, so a late wake-up
  // only delays a firing, never brings one forward.
  const auto length = absl::ToChronoNanoseconds(tick_length_);
  auto next = std::chrono::steady_clock::now() + length;
  std::vector<IdleWatch*> idle;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(sleep_mu_);
      if (sleep_cv_.wait_until(lock, next, [this] { return stop_; })) return;
    }
    next += length;
    const int64_t now = tick_.fetch_add(1, std::memory_order_relaxed) + 1;
    idle.clear();
    {
      MutexLock lock(&mu_);
      for (IdleWatch* w : watches_) {
        const int64_t at = w->armed_at_.load(std::memory_order_acquire);
        if (at != IdleWatch::kDisarmed && now - at > ticks_to_fire_) idle.push_back(w);
      }
    }
    for (IdleWatch* w : idle) {
      if (!BeginFiring(w, now)) continue;
      w->on_idle_();  // may destroy `w`: not touched again
      MutexLock lock(&mu_);
      firing_ = nullptr;
    }
  }
}

bool IdleTimer::BeginFiring(IdleWatch* w, int64_t now) {
  MutexLock lock(&mu_);
  // Gone since the scan (a callback before this one may have ended its
  // stream), or disarmed or re-armed since: not idle. The exchange makes
  // the firing once per arming.
  if (watches_.find(w) == watches_.end()) return false;
  int64_t at = w->armed_at_.load(std::memory_order_acquire);
  if (at == IdleWatch::kDisarmed || now - at <= ticks_to_fire_ ||
      !w->armed_at_.compare_exchange_strong(at, IdleWatch::kDisarmed,
                                            std::memory_order_acquire)) {
    return false;
  }
  firing_ = w;
  return true;
}

IdleWatch::IdleWatch(IdleTimer* timer, absl::AnyInvocable<void()> on_idle)
    : timer_(timer), on_idle_(std::move(on_idle)) {
  if (timer_ != nullptr) timer_->Register(this);
}

IdleWatch::~IdleWatch() { Close(); }

void IdleWatch::Close() {
  if (closed_) return;
  closed_ = true;
  Disarm();
  if (timer_ != nullptr) timer_->Unregister(this);
}

}  // namespace ringstore::server
