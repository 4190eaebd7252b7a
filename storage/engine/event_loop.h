// The thread of an engine that waits on a kernel completion interface: one
// thread, a queue of work posted to it from other threads, an eventfd that
// wakes it, and an orderly stop. The io_uring ring (io_uring_ring.h) and the
// POSIX AIO engine each run on one; what they wait on differs, and a Driver
// supplies it.
//
// Threads:
//   - The loop thread (named at construction) runs Driver::Setup once, then
//     repeats: run every posted closure in FIFO order, then, unless it is
//     time to stop, Driver::Wait. Posted closures and the Driver run there
//     and nowhere else, and never under a lock of this class.
//   - Post, Queue, IsCurrent and wake_fd may be called from any thread.
//     None of them blocks; Post runs its closure inline (before it returns)
//     when, and only when, it is called on the loop thread itself.
//   - Start and Stop are called by the owner, never on the loop thread.
//
// Waking: the Driver keeps a read of wake_fd() armed in whatever it waits
// on (an io_uring read SQE, an aio_read). Queue writes the eventfd when it
// finds the queue empty; a non-empty queue already has a wake-up on its way,
// since the loop drains the queue until it finds it empty.
//
// Stopping: Stop() asks the loop to end and waits for it. The loop keeps
// running until the queue is empty and Driver::Idle() is true (no kernel
// request in flight): every closure posted before or during the stop runs,
// and every completion the Driver waits for is delivered. Then the loop
// thread calls Driver::Finish and exits, and Stop joins it. Work posted after
// Stop has returned is never run.
#ifndef RINGSTORE_STORAGE_ENGINE_EVENT_LOOP_H_
#define RINGSTORE_STORAGE_ENGINE_EVENT_LOOP_H_

#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "storage/engine/scoped_fd.h"
#include "storage/engine/sync.h"

namespace ringstore::storage {

class EventLoop {
 public:
  using Work = absl::AnyInvocable<void() &&>;

  // What the loop thread waits on. Every method runs on the loop thread.
  class Driver {
   public:
    virtual ~Driver() = default;
    // Runs first. Sets up the kernel interface and arms the read of
    // wake_fd(). A failure ends the thread; Start returns it.
    virtual absl::Status Setup() = 0;
    // Blocks until a kernel request completes or wake_fd() becomes
    // readable, then delivers every completion and re-arms the wake-up read
    // if it was consumed. May return early (EINTR): the loop calls again.
    virtual void Wait() = 0;
    // True when no kernel request is in flight: the loop may stop.
    virtual bool Idle() const = 0;
    // Runs last, once the loop has ended (releases the kernel interface).
    virtual void Finish() {}
  };

  // `name` names the thread (at most 15 bytes are kept). Starts nothing.
  explicit EventLoop(std::string name);
  // Stops the loop if it runs.
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Creates the eventfd, starts the thread and waits for `driver`'s Setup
  // (borrowed; must outlive the loop). Returns Setup's status; on failure
  // the thread has ended and the loop can be destroyed.
  absl::Status Start(Driver* driver);

  // Asks the loop to stop once its work is done (see above) and joins it.
  // Does nothing if it does not run. Not on the loop thread.
  void Stop();

  // Runs `work` on the loop thread: at once if called there, otherwise
  // queued.
  void Post(Work work);
  // Queues `work` for the loop thread, also when called there (it then runs
  // after the current closure or completion batch returns).
  void Queue(Work work);

  // True on the loop thread.
  bool IsCurrent() const;
  // The eventfd the Driver reads to hear of new work; valid after Start.
  int wake_fd() const { return wake_fd_.get(); }

 private:
  void Loop(Driver* driver);
  void RunPosted();
  void Wake();

  const std::string name_;
  ScopedFd wake_fd_;

  Mutex mu_;
  std::vector<Work> posted_ ABSL_GUARDED_BY(mu_);
  // The loop thread's: the work RunPosted is running, swapped with posted_
  // (the two vectors trade their storage, so posting allocates nothing
  // once they have grown).
  std::vector<Work> running_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::thread thread_;
};

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_ENGINE_EVENT_LOOP_H_
