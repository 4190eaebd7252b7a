// The synchronisation types ringstore code uses: Abseil's, except under
// ThreadSanitizer.
//
// Debian ships Abseil prebuilt, without ThreadSanitizer's annotations: under
// --config=tsan an absl::Mutex would be invisible to the sanitizer and every
// access it guards would look like a data race. So under TSan these names
// are small stand-ins on std::mutex and std::condition_variable (whose
// pthread calls TSan intercepts) with the subset of absl::Mutex's interface
// this project uses; otherwise they are Abseil's own types. Clang's thread
// safety annotations (ABSL_GUARDED_BY and friends) hold for both.
#ifndef RINGSTORE_STORAGE_ENGINE_SYNC_H_
#define RINGSTORE_STORAGE_ENGINE_SYNC_H_

#include "absl/base/config.h"
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

#if defined(ABSL_HAVE_THREAD_SANITIZER)
#include <condition_variable>
#include <mutex>
#endif

namespace ringstore {

#if !defined(ABSL_HAVE_THREAD_SANITIZER)

using Mutex = absl::Mutex;
using MutexLock = absl::MutexLock;
using Notification = absl::Notification;

#else

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    // Any waiter's condition may have become true. Notified before the
    // unlock: a waiter that returns may destroy the Mutex at once.
    cv_.notify_all();
    mu_.unlock();
  }
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}
  // Waits, with the lock held, until `cond` is true.
  void Await(const absl::Condition& cond) ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
    cv_.wait(lock, [&] { return cond.Eval(); });
    lock.release();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

class Notification {
 public:
  void Notify() {
    MutexLock lock(&mu_);
    notified_ = true;
  }
  bool HasBeenNotified() {
    MutexLock lock(&mu_);
    return notified_;
  }
  void WaitForNotification() {
    MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&notified_));
  }

 private:
  Mutex mu_;
  bool notified_ ABSL_GUARDED_BY(mu_) = false;
};

#endif

}  // namespace ringstore

// RS_HAPPENS_BEFORE(p) ... RS_HAPPENS_AFTER(p): tells ThreadSanitizer that
// what one thread did before the first happens before what another thread
// does after the second, for an ordering a prebuilt library provides where
// the sanitizer cannot see it (gRPC runs a reaction only after the Start*
// or Finish call that caused it). No-ops outside --config=tsan.
#if defined(ABSL_HAVE_THREAD_SANITIZER)
extern "C" void AnnotateHappensBefore(const char* file, int line, const volatile void* addr);
extern "C" void AnnotateHappensAfter(const char* file, int line, const volatile void* addr);
#define RS_HAPPENS_BEFORE(addr) AnnotateHappensBefore(__FILE__, __LINE__, (addr))
#define RS_HAPPENS_AFTER(addr) AnnotateHappensAfter(__FILE__, __LINE__, (addr))
#else
// The address is still evaluated, so that a pointer kept only for the
// annotation does not count as unused.
#define RS_HAPPENS_BEFORE(addr) static_cast<void>(addr)
#define RS_HAPPENS_AFTER(addr) static_cast<void>(addr)
#endif

#endif  // RINGSTORE_STORAGE_ENGINE_SYNC_H_
