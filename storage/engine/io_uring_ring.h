// One io_uring and the thread that owns it: the machinery under the io_uring
// engine (io_uring_engine.cc builds the file operations on top). Internal to
// storage/.
//
// The thread ("rs-uring", an EventLoop: event_loop.h) creates the ring,
// submits every SQE and reaps every CQE, so the ring runs with
// IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN (each flag dropped on EINVAL, as
// fio does). Other threads hand it work with Post(), through the loop's queue
// and eventfd, whose read is always armed in the ring. Each SQE carries a
// heap-allocated completion object in `user_data`; its continuation runs on
// the ring thread with the CQE's `res` (negative = -errno) and may submit
// the next SQE. A full submission queue is
// submitted, never dropped; every CQE is marked seen once.
//
// SQPOLL (EngineOptions::io_uring_sqpoll_idle_ms): the ring asks for
// IORING_SETUP_SQPOLL first (DEFER_TASKRUN cannot go with it); refused, it
// runs without. The
// kernel thread then takes SQEs from the queue: submitting only makes them
// visible (liburing enters the kernel to wake the thread when it sleeps,
// IORING_SQ_NEED_WAKEUP), and the ring thread still blocks in
// io_uring_enter for its completions.
//
// At start-up the ring probes the opcodes the engine needs, registers the
// BufferPool (buffer i is registered index i; on failure, such as a small
// RLIMIT_MEMLOCK, data moves with plain reads and writes and features()
// says so), creates a sparse table of direct descriptors and caps io-wq.
//
// Cancellation: an operation given a Cancellation gets an op id (BeginOp);
// its SQEs carry that id, and Cancel() makes the ring submit an ASYNC_CANCEL
// for each of them still in the kernel.
//
// Fault injection (tests): a step the FaultInjector picks is submitted as a
// NOP whose result the kernel sets to -errno (IORING_NOP_INJECT_RESULT), with
// the step's link flags, so a chain breaks in the kernel as it would for a
// real failure.
//
// Unless marked "any thread", methods run on the ring thread only.
#ifndef RINGSTORE_STORAGE_ENGINE_IO_URING_RING_H_
#define RINGSTORE_STORAGE_ENGINE_IO_URING_RING_H_

#include <liburing.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/engine/buffer_pool.h"
#include "storage/engine/cancellation.h"
#include "storage/engine/engine.h"
#include "storage/engine/event_loop.h"
#include "storage/engine/fault_injection.h"
#include "storage/engine/scoped_fd.h"

namespace ringstore::storage {

// IORING_OP_FTRUNCATE (kernel 6.9+, include/uapi/linux/io_uring.h); liburing
// 2.3 predates it: prepare it with io_uring_prep_rw(kOpFtruncate, sqe, fd,
// nullptr, 0, length).
inline constexpr int kOpFtruncate = 55;

class Ring final : private EventLoop::Driver {
 public:
  // Continuation of one SQE: gets the CQE's res.
  using Cont = absl::AnyInvocable<void(int) &&>;
  // Fills one SQE (opcode, arguments, flags).
  using Prep = std::function<void(io_uring_sqe*)>;

  // One step of a linked chain. `link` is IOSQE_IO_LINK (the rest of the
  // chain runs only if this step succeeds) or IOSQE_IO_HARDLINK (it runs
  // anyway); ignored on the last step. Only `cancellable` steps are
  // cancelled by the chain's op.
  struct ChainStep {
    Step step;
    Prep prep;
    unsigned link = IOSQE_IO_LINK;
    bool cancellable = false;
  };

  // Any thread. Does not start anything; Start() does.
  explicit Ring(const EngineOptions& options);
  // Any thread but the ring's. Waits for every SQE in flight, then stops the
  // thread.
  ~Ring() override;
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // Any thread. Starts the thread, which sets up the ring; the kernel's
  // error if it cannot (ENOSYS, EPERM from seccomp or
  // kernel.io_uring_disabled), Unimplemented if an opcode is missing.
  absl::Status Start();

  // Any thread. Runs `work` on the ring thread: at once (before Post
  // returns) if called there, otherwise queued.
  void Post(absl::AnyInvocable<void() &&> work) { loop_.Post(std::move(work)); }
  // Any thread. True on this ring's thread.
  bool IsCurrent() const { return loop_.IsCurrent(); }

  // Any thread; fixed after Start().
  const std::vector<std::string>& features() const { return features_; }
  bool buffers_registered() const { return buffers_registered_; }
  // IORING_OP_FTRUNCATE (kernel 6.9+) is there; without it the engine
  // truncates on a helper thread.
  bool has_ftruncate() const { return has_ftruncate_; }
  int direct_slots() const { return direct_slots_; }
  int direct_slots_in_use() const { return slots_in_use_.load(std::memory_order_relaxed); }
  int root() const { return root_.get(); }
  // The ring runs with IORING_SETUP_SQPOLL.
  bool sqpoll() const { return sqpoll_; }
  // Any thread: io_uring_enter calls that submitted SQEs, SQEs submitted,
  // and read_fixed/write_fixed SQEs (engine.h, EngineStats).
  uint64_t submits() const { return submits_.load(std::memory_order_relaxed); }
  uint64_t sqes() const { return sqes_.load(std::memory_order_relaxed); }
  uint64_t fixed_buffer_ops() const { return fixed_ops_.load(std::memory_order_relaxed); }
  const std::string& attr() const { return attr_; }
  int threads() const { return threads_; }

  // Queues one SQE for `step`: `prep` fills it, `done` gets the CQE's res.
  // With `op` (from BeginOp; 0 = none) the SQE can be cancelled.
  void Submit(Step step, const Prep& prep, Cont done, uint64_t op = 0);
  // Queues `steps` linked, in one submission; `done` gets every step's res,
  // in order, once all have completed (a step cut off by a broken link gets
  // -ECANCELED).
  void SubmitChain(std::vector<ChainStep> steps, absl::AnyInvocable<void(std::vector<int>) &&> done,
                   uint64_t op = 0);

  // Starts an operation that `cancel` (may be null) can cut short. Returns
  // its id (0 without a Cancellation); call EndOp(id) once it has finished.
  uint64_t BeginOp(Cancellation* cancel);
  void EndOp(uint64_t op);

  // Index of the registered buffer that holds [p, p + len), or -1 (not
  // registered, or not inside one buffer).
  int BufferIndex(const char* p, size_t len) const;

  // A free direct-descriptor slot, or -1 if none is free.
  int TakeSlot();
  // Gives `slot` back; only once the kernel holds no file in it.
  void ReleaseSlot(int slot);

 private:
  struct Completion {
    Cont fn;
    uint64_t op = 0;
  };
  struct OpState {
    Cancellation* cancel = nullptr;
    uint64_t hook = 0;
    absl::InlinedVector<Completion*, 4> in_flight;
  };

  // EventLoop::Driver, on the ring thread.
  absl::Status Setup() override;
  void Wait() override;
  bool Idle() const override { return in_flight_ == 0; }
  void Finish() override;

  absl::Status SetupRing();
  // io_uring_queue_init_params with the first flag set the kernel takes;
  // sets sqpoll_ and features_, and returns the flags taken.
  absl::StatusOr<unsigned> InitRing();
  // Makes room for `n` SQEs, submitting what is queued.
  void MakeRoom(unsigned n);
  absl::Status CheckNopInjection();
  void ArmWake();
  io_uring_sqe* GetSqe();
  // A Completion for a new SQE, reused from spare_ when one is there.
  Completion* NewCompletion(Cont fn, uint64_t op);
  // Counts the result of an io_uring_submit*: `rc` SQEs in one call.
  void CountSubmit(int rc);
  // Asks the kernel to cancel every SQE of `op` still in flight.
  void CancelOp(uint64_t op);

  const std::string attr_;
  BufferPool* const pool_;
  const int threads_;
  const int sqpoll_idle_ms_;
  FaultInjector* const faults_;
  // The ring's duplicate of the root descriptor.
  const ScopedFd root_;
  uint64_t wake_value_ = 0;

  io_uring ring_;
  bool ring_ready_ = false;
  bool sqpoll_ = false;
  bool has_ftruncate_ = false;
  std::vector<std::string> features_;
  bool buffers_registered_ = false;
  char* pool_base_ = nullptr;
  int direct_slots_ = 0;
  std::vector<int> free_slots_;
  std::atomic<int> slots_in_use_{0};
  uint64_t next_op_ = 1;
  absl::flat_hash_map<uint64_t, OpState> ops_;
  // Completions whose SQE has completed, kept for the next SQEs (at most
  // kSpareCompletions), so that a steady load allocates none.
  std::vector<std::unique_ptr<Completion>> spare_;
  // SQEs whose CQE has not been reaped (the wake-up read aside).
  int64_t in_flight_ = 0;
  // Counters (written by the ring thread only, read by any thread).
  std::atomic<uint64_t> submits_{0};
  std::atomic<uint64_t> sqes_{0};
  std::atomic<uint64_t> fixed_ops_{0};
  // Copied CQEs of one batch (Wait).
  std::vector<std::pair<uint64_t, int>> cqes_;

  // Declared last: stopped (in ~Ring) before the state above goes.
  EventLoop loop_;
};

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_ENGINE_IO_URING_RING_H_
