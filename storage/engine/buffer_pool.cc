#include "storage/engine/buffer_pool.h"

#include <sys/mman.h>

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "storage/engine/worker_pool.h"

namespace ringstore::storage {

PooledBuffer::PooledBuffer(PooledBuffer&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)),
      index_(std::exchange(other.index_, -1)),
      data_(std::exchange(other.data_, nullptr)),
      capacity_(std::exchange(other.capacity_, 0)) {}

PooledBuffer& PooledBuffer::operator=(PooledBuffer&& other) noexcept {
  if (this != &other) {
    Reset();
    pool_ = std::exchange(other.pool_, nullptr);
    index_ = std::exchange(other.index_, -1);
    data_ = std::exchange(other.data_, nullptr);
    capacity_ = std::exchange(other.capacity_, 0);
  }
  return *this;
}

PooledBuffer::~PooledBuffer() { Reset(); }

void PooledBuffer::Reset() {
  if (pool_ == nullptr) return;
  BufferPool* pool = std::exchange(pool_, nullptr);
  pool->Release(index_);
  index_ = -1;
  data_ = nullptr;
  capacity_ = 0;
}

absl::StatusOr<std::unique_ptr<BufferPool>> BufferPool::Create(
    size_t count, size_t buffer_size) {
  if (count < 1 || count > 16384) {
    return absl::InvalidArgumentError(
        absl::StrCat("buffer count ", count, " is outside [1, 16384]"));
  }
  if (buffer_size == 0 || buffer_size % 4096 != 0 ||
      buffer_size > (size_t{1} << 30)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "buffer size ", buffer_size, " is not a multiple of 4096 up to 1 GiB"));
  }
  void* base = mmap(nullptr, count * buffer_size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot map ", count, " buffers of ", buffer_size, " bytes"));
  }
  return std::unique_ptr<BufferPool>(
      new BufferPool(static_cast<char*>(base), count, buffer_size));
}

BufferPool::BufferPool(char* base, size_t count, size_t buffer_size)
    : base_(base),
      count_(count),
      buffer_size_(buffer_size),
      lend_limit_(count / 2 > 0 ? count / 2 : 1),
      waiter_thread_(std::make_unique<WorkerPool>(1, "rs-bufpool")) {
  free_.reserve(count);
  // Hand out low indexes first.
  for (size_t i = count; i > 0; --i) free_.push_back(static_cast<int>(i - 1));
}

BufferPool::~BufferPool() {
  // Waiters still queued run first; the buffers they free may serve others.
  waiter_thread_.reset();
  munmap(base_, count_ * buffer_size_);
}

PooledBuffer BufferPool::Wrap(int index) {
  return PooledBuffer(this, index, base_ + index * buffer_size_, buffer_size_);
}

void BufferPool::Acquire(AcquireCallback done) { Acquire(std::move(done), nullptr); }

void BufferPool::Acquire(AcquireCallback done, Cancellation* cancel) {
  if (IsCancelled(cancel)) return std::move(done)(PooledBuffer());
  int index = -1;
  {
    MutexLock lock(&mu_);
    if (free_.empty()) {
      const uint64_t ticket = next_ticket_++;
      Waiter& waiter = waiters_[ticket];
      waiter.done = std::move(done);
      if (cancel == nullptr) return;
      // Lock order: the pool's lock, then the Cancellation's. Cancel() runs
      // hooks with no lock held, so Withdraw may take the pool's.
      waiter.cancel = cancel;
      waiter.hook = cancel->AddHook([this, ticket] { Withdraw(ticket); });
      if (waiter.hook != 0) return;
      // Cancelled since the check above: withdrawn before anyone saw it.
      done = std::move(waiter.done);
      waiters_.erase(ticket);
    } else {
      index = free_.back();
      free_.pop_back();
    }
  }
  std::move(done)(index < 0 ? PooledBuffer() : Wrap(index));
}

void BufferPool::Withdraw(uint64_t ticket) {
  MutexLock lock(&mu_);
  auto it = waiters_.find(ticket);
  if (it == waiters_.end()) return;  // served already
  // The Cancellation has dropped this hook (it is running it): nothing to
  // remove. Queued, not run: no callback runs on the cancelling thread.
  waiter_thread_->Run([done = std::move(it->second.done)]() mutable {
    std::move(done)(PooledBuffer());
  });
  waiters_.erase(it);
}

PooledBuffer BufferPool::TryAcquire() {
  MutexLock lock(&mu_);
  if (free_.empty()) return PooledBuffer();
  const int index = free_.back();
  free_.pop_back();
  return Wrap(index);
}

BufferPool::Waiter BufferPool::PopWaiter() {
  auto it = waiters_.begin();
  Waiter waiter = std::move(it->second);
  waiters_.erase(it);
  return waiter;
}

void BufferPool::Release(int index) {
  MutexLock lock(&mu_);
  if (waiters_.empty()) {
    free_.push_back(index);
    return;
  }
  // The buffer passes straight to the waiter (so the pool never lends more
  // than it has), but the waiter runs on the pool's thread, not on this
  // one. Queued under the lock, so that waiters run in the order they were
  // served. WorkerPool::Run only queues: nothing runs here.
  waiter_thread_->Run([waiter = PopWaiter(), buffer = Wrap(index)]() mutable {
    // The Cancellation is alive until `done` has run; a hook it is running
    // now finds the waiter gone and does nothing.
    if (waiter.hook != 0) waiter.cancel->RemoveHook(waiter.hook);
    std::move(waiter.done)(std::move(buffer));
  });
}

BufferPool::Loan& BufferPool::Loan::operator=(Loan&& other) noexcept {
  if (this != &other) {
    Reset();
    pool_ = std::exchange(other.pool_, nullptr);
  }
  return *this;
}

void BufferPool::Loan::Reset() {
  if (pool_ != nullptr) std::exchange(pool_, nullptr)->ReturnLoan();
}

BufferPool::Loan BufferPool::TryLend() {
  MutexLock lock(&mu_);
  if (lent_ >= lend_limit_) return Loan();
  ++lent_;
  return Loan(this);
}

void BufferPool::ReturnLoan() {
  MutexLock lock(&mu_);
  --lent_;
}

size_t BufferPool::lent_count() const {
  MutexLock lock(&mu_);
  return lent_;
}

size_t BufferPool::waiter_count() const {
  MutexLock lock(&mu_);
  return waiters_.size();
}

size_t BufferPool::free_count() const {
  MutexLock lock(&mu_);
  return free_.size();
}

std::vector<iovec> BufferPool::iovecs() const {
  std::vector<iovec> v(count_);
  for (size_t i = 0; i < count_; ++i) {
    v[i].iov_base = base_ + i * buffer_size_;
    v[i].iov_len = buffer_size_;
  }
  return v;
}

}  // namespace ringstore::storage
