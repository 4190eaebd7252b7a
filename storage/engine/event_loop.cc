#include "storage/engine/event_loop.h"

#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <future>
#include <utility>

#include "storage/engine/status_util.h"

namespace ringstore::storage {
namespace {

thread_local const EventLoop* current_loop = nullptr;

}  // namespace

EventLoop::EventLoop(std::string name) : name_(std::move(name)) {}

EventLoop::~EventLoop() { Stop(); }

absl::Status EventLoop::Start(Driver* driver) {
  wake_fd_.reset(eventfd(0, EFD_CLOEXEC));
  if (!wake_fd_.valid()) return ErrnoToStatus(errno, "eventfd");
  std::promise<absl::Status> ready;
  std::future<absl::Status> setup = ready.get_future();
  thread_ = std::thread([this, driver, &ready] {
    current_loop = this;
    absl::Status s = driver->Setup();
    const bool ok = s.ok();
    ready.set_value(std::move(s));
    if (ok) Loop(driver);
  });
  pthread_setname_np(thread_.native_handle(), name_.substr(0, 15).c_str());
  absl::Status s = setup.get();
  if (!s.ok()) thread_.join();
  return s;
}

void EventLoop::Stop() {
  if (!thread_.joinable()) return;
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  Wake();
  thread_.join();
}

void EventLoop::Loop(Driver* driver) {
  for (;;) {
    RunPosted();
    bool stopping;
    {
      MutexLock lock(&mu_);
      stopping = stopping_ && posted_.empty();
    }
    if (stopping && driver->Idle()) break;
    driver->Wait();
  }
  driver->Finish();
}

void EventLoop::RunPosted() {
  for (;;) {
    {
      MutexLock lock(&mu_);
      running_.swap(posted_);
    }
    if (running_.empty()) return;
    for (Work& w : running_) std::move(w)();
    running_.clear();
  }
}

void EventLoop::Post(Work work) {
  if (IsCurrent()) {
    std::move(work)();
    return;
  }
  Queue(std::move(work));
}

void EventLoop::Queue(Work work) {
  MutexLock lock(&mu_);
  // A non-empty queue has a wake-up on its way already: RunPosted drains
  // until it finds the queue empty. The wake-up is written under the lock:
  // outside it, the loop could run `work` (woken for earlier work), the
  // call it finishes could end, and the loop be destroyed, all before this
  // thread reached the eventfd (ThreadSanitizer saw that window at a
  // server's shutdown).
  const bool wake = posted_.empty();
  posted_.push_back(std::move(work));
  if (wake) Wake();
}

bool EventLoop::IsCurrent() const { return current_loop == this; }

void EventLoop::Wake() {
  const uint64_t one = 1;
  while (write(wake_fd_.get(), &one, sizeof(one)) < 0 && errno == EINTR) {
  }
}

}  // namespace ringstore::storage
