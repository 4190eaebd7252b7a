// A fixed set of equally sized, page-aligned I/O buffers.
//
// Every byte of file data that moves between the server and the disk passes
// through a pool buffer, so the pool bounds the server's data memory: a
// request that finds no free buffer waits (asynchronously) for one, it never
// makes the pool grow. The io_uring engine registers the whole pool with the
// kernel once (buffer i is registered index i); other engines use it as plain
// memory.
//
// Thread-safe. Waiters are served first-come first-served.
//
// Threads: a waiter (an Acquire that found no free buffer) is never run on
// the thread that returns a buffer, which may be anybody's (gRPC's
// slice-release thread, an engine thread): the returning PooledBuffer's
// destructor only hands the buffer to the oldest waiter and queues that
// waiter to the pool's own thread ("rs-bufpool"), which runs waiters one at
// a time in the order they were served. No callback ever runs with the
// pool's lock held.
#ifndef RINGSTORE_STORAGE_ENGINE_BUFFER_POOL_H_
#define RINGSTORE_STORAGE_ENGINE_BUFFER_POOL_H_

#include <sys/uio.h>

#include <cstddef>
#include <deque>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "storage/engine/sync.h"

namespace ringstore::storage {

class BufferPool;
class WorkerPool;

// Exclusive ownership of one pool buffer. Move-only; the destructor returns
// the buffer to its pool (the only place a buffer is ever given back), so a
// buffer handed to an engine must be kept alive until its completion runs.
// The destructor never blocks and never runs a waiter (see above): it may
// be run on any thread, with any lock held.
class PooledBuffer {
 public:
  PooledBuffer() = default;
  PooledBuffer(PooledBuffer&& other) noexcept;
  PooledBuffer& operator=(PooledBuffer&& other) noexcept;
  PooledBuffer(const PooledBuffer&) = delete;
  PooledBuffer& operator=(const PooledBuffer&) = delete;
  ~PooledBuffer();

  bool valid() const { return pool_ != nullptr; }
  // Index of this buffer in the pool (the registered buffer index).
  int index() const { return index_; }
  char* data() const { return data_; }
  size_t capacity() const { return capacity_; }
  absl::Span<char> span() const { return absl::Span<char>(data_, capacity_); }

 private:
  friend class BufferPool;
class WorkerPool;
  PooledBuffer(BufferPool* pool, int index, char* data, size_t capacity)
      : pool_(pool), index_(index), data_(data), capacity_(capacity) {}
  void Reset();

  BufferPool* pool_ = nullptr;
  int index_ = -1;
  char* data_ = nullptr;
  size_t capacity_ = 0;
};

class BufferPool {
 public:
  using AcquireCallback = absl::AnyInvocable<void(PooledBuffer) &&>;

  // Maps `count` buffers of `buffer_size` bytes (a multiple of 4096) in one
  // anonymous mapping and starts the pool's thread. InvalidArgument for a
  // zero/unaligned size or a count outside [1, 16384]; ResourceExhausted if
  // the mapping fails.
  static absl::StatusOr<std::unique_ptr<BufferPool>> Create(size_t count,
                                                            size_t buffer_size);
  // Runs the waiters already handed a buffer, then stops the pool's thread.
  // All buffers must have been returned by then. Not on the pool's thread.
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // Hands a buffer to `done`, exactly once. If a buffer is free, `done` runs
  // inline: on the calling thread, before Acquire returns (so the caller
  // must not hold a lock that `done` takes). Otherwise `done` waits, behind
  // every earlier waiter, and runs later on the pool's own thread once a
  // buffer is returned for it; it then must not block, since the waiters
  // behind it wait for it. Never blocks the caller.
  void Acquire(AcquireCallback done);
  // A free buffer, or an invalid PooledBuffer if none is free. Never waits.
  PooledBuffer TryAcquire();

  size_t count() const { return count_; }
  size_t buffer_size() const { return buffer_size_; }
  size_t free_count() const;
  // One iovec per buffer, in index order, for io_uring_register_buffers.
  std::vector<iovec> iovecs() const;

 private:
  friend class PooledBuffer;
  BufferPool(char* base, size_t count, size_t buffer_size);
  // Returns buffer `index`: to the waiter PopWaiter picks, if any, through
  // the pool's thread; otherwise to the free list.
  void Release(int index);
  PooledBuffer Wrap(int index);
  // The waiter a returned buffer goes to: today the oldest. (The one place
  // to change for a fairer choice, such as a per-client share.)
  AcquireCallback PopWaiter() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  char* const base_;
  const size_t count_;
  const size_t buffer_size_;
  mutable Mutex mu_;
  std::vector<int> free_ ABSL_GUARDED_BY(mu_);
  std::deque<AcquireCallback> waiters_ ABSL_GUARDED_BY(mu_);
  // The pool's thread: runs waiters that were handed a buffer, in order.
  std::unique_ptr<WorkerPool> waiter_thread_;
};

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_ENGINE_BUFFER_POOL_H_
