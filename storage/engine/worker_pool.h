// A fixed set of threads running queued closures in FIFO order.
//
// Used by engines for work that blocks in the kernel. Thread-safe. The
// destructor finishes every closure already queued, then joins the threads.
#ifndef RINGSTORE_STORAGE_ENGINE_WORKER_POOL_H_
#define RINGSTORE_STORAGE_ENGINE_WORKER_POOL_H_

#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "storage/engine/sync.h"

namespace ringstore::storage {

class WorkerPool {
 public:
  // Starts `threads` (≥ 1) threads named `name` (for ps/top/gdb).
  WorkerPool(int threads, const std::string& name);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `work` to run on one of the threads. Never blocks.
  void Run(absl::AnyInvocable<void() &&> work);

 private:
  void Loop();

  Mutex mu_;
  std::deque<absl::AnyInvocable<void() &&>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_ENGINE_WORKER_POOL_H_
