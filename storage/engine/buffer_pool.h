// A fixed set of equally sized, page-aligned I/O buffers.
//
// Every byte of file data that moves between the server and the disk passes
// through a pool buffer, so the pool bounds the server's data memory: a
// request that finds no free buffer waits (asynchronously) for one, it never
// makes the pool grow. The io_uring engine registers the whole pool with the
// kernel once (buffer i is registered index i); other engines use it as plain
// memory.
//
// Thread-safe. Waiters are served first-come first-served; a waiter whose
// Cancellation fires leaves the queue at once (Acquire with a Cancellation).
//
// Fairness: buffers held for a disk operation come back within it, but a
// buffer handed to someone who keeps it as long as *they* like (a download
// that sends a buffer to gRPC without a copy: gRPC keeps it until the bytes
// are on the socket, never if the client stops reading, and a buffer lent
// to a gRPC write cannot be taken back) would let a few stalled clients
// hold the whole pool while everybody else waits behind them. Such a holder
// first takes a Loan (TryLend): at most lend_limit() (half the pool) are
// out at once. So at least half the pool always cycles through the queue
// within one disk operation, however many clients stall. A holder refused
// a loan uses its buffer for the disk operation alone and copies the
// (small) part it must keep. Loans are granted while an Acquire waits, as
// long as the limit allows: refusing them then (as this pool once did) made
// a busy pool lend to nobody, so every download fell back to copies, which
// cost 1.9x the CPU per request on 64 streams of 1 MiB files
// (bench/RESULTS.md, "Round two, third evening").
//
// Threads: a waiter (an Acquire that found no free buffer) is never run on
// the thread that returns a buffer, which may be anybody's (gRPC's
// slice-release thread, an engine thread): the returning PooledBuffer's
// destructor only hands the buffer to the oldest waiter and queues that
// waiter to the pool's own thread ("rs-bufpool"), which runs waiters one at
// a time in the order they were served. A waiter withdrawn by its
// Cancellation runs there too (with no buffer), never on the cancelling
// thread. No callback ever runs with the pool's lock held.
#ifndef RINGSTORE_STORAGE_ENGINE_BUFFER_POOL_H_
#define RINGSTORE_STORAGE_ENGINE_BUFFER_POOL_H_

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "storage/engine/cancellation.h"
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
  // As Acquire(done), and `cancel` (may be null; else kept alive until
  // `done` has run) withdraws the request while it waits: once `cancel`
  // fires, the waiter leaves the queue at once (the next buffer goes to the
  // next waiter) and `done` runs with an invalid PooledBuffer, on the
  // pool's thread. If `cancel` has fired before the call, `done` runs
  // inline with an invalid PooledBuffer. A buffer already handed to `done`
  // is not taken back: a Cancellation that fires late changes nothing.
  void Acquire(AcquireCallback done, Cancellation* cancel);
  // A free buffer, or an invalid PooledBuffer if none is free. Never waits.
  PooledBuffer TryAcquire();

  // The right to keep one buffer for an unbounded time (see the top).
  // Move-only; the destructor gives it back, on any thread, with any lock
  // of the caller's held (it takes only the pool's lock). A Loan is not a
  // buffer: its holder acquires the buffer as usual and keeps the Loan as
  // long as it keeps the buffer. Must not outlive its pool.
  class Loan {
   public:
    Loan() = default;
    Loan(Loan&& other) noexcept : pool_(std::exchange(other.pool_, nullptr)) {}
    Loan& operator=(Loan&& other) noexcept;
    Loan(const Loan&) = delete;
    Loan& operator=(const Loan&) = delete;
    ~Loan() { Reset(); }
    bool valid() const { return pool_ != nullptr; }

   private:
    friend class BufferPool;
    explicit Loan(BufferPool* pool) : pool_(pool) {}
    void Reset();
    BufferPool* pool_ = nullptr;
  };
  // A Loan if fewer than lend_limit() are out, whether or not an Acquire
  // waits; else an invalid one. Never waits.
  Loan TryLend();
  // max(1, count() / 2).
  size_t lend_limit() const { return lend_limit_; }
  size_t lent_count() const;

  size_t count() const { return count_; }
  size_t buffer_size() const { return buffer_size_; }
  size_t free_count() const;
  // Acquires waiting for a buffer now (withdrawn ones not counted).
  size_t waiter_count() const;
  // One iovec per buffer, in index order, for io_uring_register_buffers.
  std::vector<iovec> iovecs() const;

 private:
  friend class PooledBuffer;
  BufferPool(char* base, size_t count, size_t buffer_size);
  // A queued Acquire. `hook` is its id in `cancel`, 0 if none.
  struct Waiter {
    AcquireCallback done;
    Cancellation* cancel = nullptr;
    uint64_t hook = 0;
  };
  // Returns buffer `index`: to the waiter PopWaiter picks, if any, through
  // the pool's thread; otherwise to the free list.
  void Release(int index);
  void ReturnLoan();
  PooledBuffer Wrap(int index);
  // The waiter a returned buffer goes to: the oldest.
  Waiter PopWaiter() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Cancellation hook of the waiter `ticket`: if it still waits, it leaves
  // the queue and runs on the pool's thread with no buffer.
  void Withdraw(uint64_t ticket);

  char* const base_;
  const size_t count_;
  const size_t buffer_size_;
  const size_t lend_limit_;
  mutable Mutex mu_;
  std::vector<int> free_ ABSL_GUARDED_BY(mu_);
  // Waiters by ticket: the oldest first.
  std::map<uint64_t, Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
  size_t lent_ ABSL_GUARDED_BY(mu_) = 0;
  // The pool's thread: runs waiters that were handed a buffer, in order.
  std::unique_ptr<WorkerPool> waiter_thread_;
};

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_ENGINE_BUFFER_POOL_H_
