#include "storage/shared_locks.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "storage/engine/status_util.h"
#include "storage/path.h"

namespace ringstore::storage {
namespace {

constexpr std::chrono::milliseconds kFirstBackoff{1};
constexpr std::chrono::milliseconds kMaxBackoff{20};

struct flock OneByte(uint64_t offset, short type) {
  struct flock fl = {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(offset);
  fl.l_len = 1;
  fl.l_pid = 0;  // must be 0 for the F_OFD_* commands
  return fl;
}

}  // namespace

uint64_t PathLockOffset(absl::string_view path) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : path) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h & (kLiveOffset - 1);
}

absl::StatusOr<std::unique_ptr<SharedLocks>> SharedLocks::Open(int root_fd) {
  const std::string name = absl::StrCat(kPrivateDir, "/lock");
  // A plain openat: the root is ours and .ringstore was just created by
  // Open (no symlink to follow there). O_CREAT without O_EXCL: every server
  // opens the same file, whoever creates it.
  ScopedFd fd(openat(root_fd, name.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd.valid()) return ErrnoToStatus(errno, absl::StrCat("open ", name));
  std::unique_ptr<SharedLocks> locks(new SharedLocks(std::move(fd)));
  if (absl::Status s = locks->SetLock(kLiveOffset, F_RDLCK); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the file system does not take OFD locks on ", name, " (", s.message(), ")"));
  }
  return locks;
}

SharedLocks::SharedLocks(ScopedFd fd) : fd_(std::move(fd)) {
  poller_ = std::thread([this] { Poll(); });
}

SharedLocks::~SharedLocks() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  poller_.join();
  // fd_ closes last: the kernel drops every lock of the description.
}

absl::Status SharedLocks::SetLock(uint64_t offset, short type) const {
  struct flock fl = OneByte(offset, type);
  if (fcntl(fd_.get(), F_OFD_SETLK, &fl) == 0) return absl::OkStatus();
  const int err = errno;
  if (err == EAGAIN || err == EACCES) {
    return absl::UnavailableError(absl::StrCat("byte ", offset, " of the lock file is held"));
  }
  return ErrnoToStatus(err, absl::StrCat("lock byte ", offset, " of the lock file"));
}

void SharedLocks::Acquire(uint64_t offset, Continuation then) {
  if (SetLock(offset, F_WRLCK).ok()) {
    std::move(then)();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    waiters_.push_back(Waiter{offset, std::move(then), Clock::now() + kFirstBackoff,
                              kFirstBackoff});
  }
  wake_.notify_all();
}

void SharedLocks::Release(uint64_t offset) {
  // F_UNLCK of a byte this description holds cannot conflict; an error
  // (EBADF, ENOLCK) leaves nothing better to do than to go on: the lock goes
  // with the description at the latest.
  (void)SetLock(offset, F_UNLCK);
}

absl::StatusOr<bool> SharedLocks::OthersLive() const {
  // Locks of our own description never conflict with the probe, so only
  // another open of the file (another server) can answer "held".
  struct flock fl = OneByte(kLiveOffset, F_WRLCK);
  if (fcntl(fd_.get(), F_OFD_GETLK, &fl) != 0) {
    others_seen_ = true;
    return ErrnoToStatus(errno, "probe the live servers' byte of the lock file");
  }
  if (fl.l_type != F_UNLCK) others_seen_ = true;
  return fl.l_type != F_UNLCK;
}

void SharedLocks::SetTicker(absl::Duration period, absl::AnyInvocable<void()> tick) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tick_ = std::move(tick);
    tick_period_ = absl::ToChronoMilliseconds(period);
    next_tick_ = Clock::now() + tick_period_;
  }
  wake_.notify_all();
}

size_t SharedLocks::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiters_.size();
}

void SharedLocks::Poll() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    const Clock::time_point now = Clock::now();
    // The due waiters are tried with the mutex released (fcntl may be a
    // network round trip); Acquire may add more meanwhile.
    std::vector<Waiter> due;
    Clock::time_point wake_at = Clock::time_point::max();
    for (size_t i = 0; i < waiters_.size();) {
      if (waiters_[i].next_try <= now) {
        due.push_back(std::move(waiters_[i]));
        waiters_[i] = std::move(waiters_.back());
        waiters_.pop_back();
      } else {
        wake_at = std::min(wake_at, waiters_[i].next_try);
        ++i;
      }
    }
    const bool tick_due = tick_ && next_tick_ <= now;
    if (tick_) wake_at = std::min(wake_at, next_tick_);
    if (due.empty() && !tick_due) {
      if (wake_at == Clock::time_point::max()) {
        wake_.wait(lock);
      } else {
        wake_.wait_until(lock, wake_at);
      }
      continue;
    }
    lock.unlock();
    std::vector<Waiter> still;
    for (Waiter& w : due) {
      if (SetLock(w.offset, F_WRLCK).ok()) {
        std::move(w.then)();
      } else {
        w.backoff = std::min<Clock::duration>(w.backoff * 2, kMaxBackoff);
        w.next_try = Clock::now() + w.backoff;
        still.push_back(std::move(w));
      }
    }
    if (tick_due) tick_();
    lock.lock();
    if (tick_due) next_tick_ = Clock::now() + tick_period_;
    for (Waiter& w : still) waiters_.push_back(std::move(w));
  }
}

}  // namespace ringstore::storage
