#include "storage/engine/io_uring_ring.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "storage/engine/status_util.h"

namespace ringstore::storage {
namespace {

constexpr unsigned kRingEntries = 256;
// user_data of the eventfd read that wakes the ring thread.
constexpr uint64_t kWakeTag = 1;
// user_data of SQEs whose CQE nobody waits for (ASYNC_CANCEL requests).
constexpr uint64_t kIgnoreTag = 2;
// Registered file slots for the linked small-file chains.
constexpr int kDirectSlots = 1024;
// Completions kept for reuse: as many as the ring holds SQEs.
constexpr size_t kSpareCompletions = kRingEntries;
// Kernel 6.11+ (include/uapi/linux/io_uring.h); liburing 2.3 predates it.
constexpr unsigned kNopInjectResult = 1U << 0;

// Opcodes the engine cannot work without.
struct NeededOp {
  int op;
  const char* name;
};
constexpr NeededOp kNeededOps[] = {
    {IORING_OP_OPENAT2, "openat2"},         {IORING_OP_READ, "read"},
    {IORING_OP_WRITE, "write"},             {IORING_OP_READ_FIXED, "read_fixed"},
    {IORING_OP_WRITE_FIXED, "write_fixed"}, {IORING_OP_FSYNC, "fsync"},
    {IORING_OP_CLOSE, "close"},             {IORING_OP_STATX, "statx"},
    {IORING_OP_FGETXATTR, "fgetxattr"},     {IORING_OP_FSETXATTR, "fsetxattr"},
    {IORING_OP_RENAMEAT, "renameat"},       {IORING_OP_UNLINKAT, "unlinkat"},
    {IORING_OP_MKDIRAT, "mkdirat"},         {IORING_OP_ASYNC_CANCEL, "async_cancel"},
};

}  // namespace

Ring::Ring(const EngineOptions& options)
    : attr_(options.metadata_attr),
      pool_(options.pool),
      threads_(options.threads),
      sqpoll_idle_ms_(options.io_uring_sqpoll_idle_ms),
      faults_(options.faults),
      root_(fcntl(options.root_fd, F_DUPFD_CLOEXEC, 0)),
      loop_("rs-uring") {}

Ring::~Ring() { loop_.Stop(); }

absl::Status Ring::Start() {
  if (!root_.valid()) return ErrnoToStatus(errno, "dup root");
  return loop_.Start(this);
}

absl::Status Ring::Setup() {
  absl::Status s = SetupRing();
  if (!s.ok()) {
    if (ring_ready_) io_uring_queue_exit(&ring_);
    return s;
  }
  ArmWake();
  return absl::OkStatus();
}

void Ring::Finish() { io_uring_queue_exit(&ring_); }

// Preferred flags first; each set is dropped if the kernel says EINVAL.
// SQPOLL, when asked for, is tried first with each set that can go with it
// (not DEFER_TASKRUN); EPERM ends those tries at once.
absl::StatusOr<unsigned> Ring::InitRing() {
  constexpr unsigned kFlagSets[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
      IORING_SETUP_COOP_TASKRUN,
      0,
  };
  constexpr unsigned kSqpollSets[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
      IORING_SETUP_COOP_TASKRUN,
      0,
  };
  io_uring_params params;
  auto init = [&](unsigned flags) {
    std::memset(&params, 0, sizeof(params));
    params.flags = flags;
    if (flags & IORING_SETUP_SQPOLL) params.sq_thread_idle = static_cast<unsigned>(sqpoll_idle_ms_);
    return io_uring_queue_init_params(kRingEntries, &ring_, &params);
  };
  int rc = -EINVAL;
  if (sqpoll_idle_ms_ > 0) {
    for (unsigned f : kSqpollSets) {
      rc = init(IORING_SETUP_SQPOLL | f);
      if (rc == 0) {
        sqpoll_ = true;
        features_.push_back("sqpoll");
        return f;
      }
      if (rc != -EINVAL) break;
    }
    features_.push_back(absl::StrCat("sqpoll=refused (", std::strerror(-rc), ")"));
  }
  for (unsigned f : kFlagSets) {
    rc = init(f);
    if (rc == 0) return f;
    if (rc != -EINVAL) break;
  }
  return ErrnoToStatus(-rc, "io_uring_setup");
}

absl::Status Ring::SetupRing() {
  absl::StatusOr<unsigned> taken = InitRing();
  if (!taken.ok()) return taken.status();
  const unsigned flags = *taken;
  ring_ready_ = true;
  if (flags & IORING_SETUP_SINGLE_ISSUER) features_.push_back("single_issuer");
  if (flags & IORING_SETUP_DEFER_TASKRUN) features_.push_back("defer_taskrun");
  if (flags & IORING_SETUP_COOP_TASKRUN) features_.push_back("coop_taskrun");

  io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
  if (probe == nullptr) return absl::UnimplementedError("io_uring probe failed");
  std::vector<std::string> missing;
  for (const NeededOp& op : kNeededOps) {
    if (!io_uring_opcode_supported(probe, op.op)) missing.push_back(op.name);
  }
  has_ftruncate_ = io_uring_opcode_supported(probe, kOpFtruncate);
  io_uring_free_probe(probe);
  if (has_ftruncate_) features_.push_back("ftruncate");
  if (!missing.empty()) {
    return absl::UnimplementedError(
        absl::StrCat("io_uring lacks opcodes: ", absl::StrJoin(missing, ", ")));
  }
  if (faults_ != nullptr) RS_RETURN_IF_ERROR(CheckNopInjection());

  const std::vector<iovec> iovecs = pool_->iovecs();
  const int rc =
      io_uring_register_buffers(&ring_, iovecs.data(), static_cast<unsigned>(iovecs.size()));
  if (rc == 0) {
    buffers_registered_ = true;
    pool_base_ = static_cast<char*>(iovecs.front().iov_base);
    features_.push_back(
        absl::StrCat("registered_buffers=", iovecs.size(), "x", pool_->buffer_size()));
  } else {
    features_.push_back(absl::StrCat("registered_buffers=off (", std::strerror(-rc), ")"));
  }
  // A sparse file table for direct descriptors. The engine picks the slot of
  // every chain itself: a linked chain cannot learn an allocated one.
  if (io_uring_register_files_sparse(&ring_, kDirectSlots) == 0) {
    direct_slots_ = kDirectSlots;
    for (int i = kDirectSlots - 1; i >= 0; --i) free_slots_.push_back(i);
    features_.push_back(absl::StrCat("direct_descriptors=", kDirectSlots));
    features_.push_back("linked_open_read_close");
  }
  // Buffered reads that miss the page cache are punted to io-wq workers:
  // keep their number bounded.
  unsigned workers[2] = {static_cast<unsigned>(threads_), static_cast<unsigned>(threads_)};
  if (io_uring_register_iowq_max_workers(&ring_, workers) == 0) {
    features_.push_back(absl::StrCat("iowq_max_workers=", threads_));
  }
  return absl::OkStatus();
}

// Fault injection needs a kernel that sets a NOP's result on request.
absl::Status Ring::CheckNopInjection() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  io_uring_prep_nop(sqe);
  sqe->rw_flags = static_cast<__kernel_rwf_t>(kNopInjectResult);
  sqe->len = static_cast<unsigned>(-EIO);
  io_uring_cqe* cqe = nullptr;
  int rc = io_uring_submit_and_wait(&ring_, 1);
  if (rc >= 0) rc = io_uring_peek_cqe(&ring_, &cqe);
  const int res = rc == 0 ? cqe->res : rc;
  if (rc == 0) io_uring_cqe_seen(&ring_, cqe);
  if (res != -EIO) {
    return absl::UnimplementedError(
        "fault injection needs IORING_NOP_INJECT_RESULT (Linux 6.11 or later)");
  }
  return absl::OkStatus();
}

void Ring::Wait() {
  const int rc = io_uring_submit_and_wait(&ring_, 1);
  CountSubmit(rc);
  if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
    std::fprintf(stderr, "ringstore: io_uring_submit_and_wait: %s\n", std::strerror(-rc));
  }
  // Copy the CQEs out first: continuations submit, which may reap.
  cqes_.clear();
  unsigned head;
  io_uring_cqe* cqe;
  unsigned seen = 0;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    cqes_.emplace_back(cqe->user_data, cqe->res);
    ++seen;
  }
  io_uring_cq_advance(&ring_, seen);
  for (const auto& [tag, res] : cqes_) {
    if (tag == kWakeTag) {
      ArmWake();
      continue;
    }
    if (tag == kIgnoreTag) continue;
    std::unique_ptr<Completion> c(reinterpret_cast<Completion*>(tag));
    --in_flight_;
    if (c->op != 0) {
      auto it = ops_.find(c->op);
      if (it != ops_.end()) {
        auto& v = it->second.in_flight;
        v.erase(std::remove(v.begin(), v.end(), c.get()), v.end());
      }
    }
    std::move(c->fn)(res);
    c->fn = nullptr;  // what it captured goes now, as it would with `c`
    if (spare_.size() < kSpareCompletions) spare_.push_back(std::move(c));
  }
}

Ring::Completion* Ring::NewCompletion(Cont fn, uint64_t op) {
  if (spare_.empty()) return new Completion{std::move(fn), op};
  Completion* c = spare_.back().release();
  spare_.pop_back();
  c->fn = std::move(fn);
  c->op = op;
  return c;
}

io_uring_sqe* Ring::GetSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    MakeRoom(1);
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

void Ring::MakeRoom(unsigned n) {
  while (io_uring_sq_space_left(&ring_) < n) {
    // Full submission queue: hand it to the kernel. With SQPOLL the kernel
    // thread empties it: wait until it has taken some.
    CountSubmit(io_uring_submit(&ring_));
    if (sqpoll_ && io_uring_sq_space_left(&ring_) < n) io_uring_sqring_wait(&ring_);
  }
}

void Ring::Submit(Step step, const Prep& prep, Cont done, uint64_t op) {
  io_uring_sqe* sqe = GetSqe();
  prep(sqe);
  if (const int err = InjectedErrno(faults_, step)) {
    // The step fails in the kernel, with the step's place in its chain.
    const auto links = static_cast<uint8_t>(sqe->flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK));
    io_uring_prep_nop(sqe);
    sqe->rw_flags = static_cast<__kernel_rwf_t>(kNopInjectResult);
    sqe->len = static_cast<unsigned>(-err);
    sqe->flags = links;
  }
  if (sqe->opcode == IORING_OP_READ_FIXED || sqe->opcode == IORING_OP_WRITE_FIXED) {
    fixed_ops_.store(fixed_ops_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  Completion* c = NewCompletion(std::move(done), op);
  if (op != 0) {
    auto it = ops_.find(op);
    if (it != ops_.end()) it->second.in_flight.push_back(c);
  }
  io_uring_sqe_set_data(sqe, c);
  ++in_flight_;
}

void Ring::SubmitChain(std::vector<ChainStep> steps,
                       absl::AnyInvocable<void(std::vector<int>) &&> done, uint64_t op) {
  struct Join {
    std::vector<int> results;
    size_t pending;
    absl::AnyInvocable<void(std::vector<int>) &&> done;
  };
  // Owned by the chain's continuations: the last to run answers and deletes
  // it (every SQE completes: Wait runs each continuation once, and ~Ring
  // waits for all of them). A plain pointer and an index fit in the
  // continuation itself, where a shared_ptr would make each allocate.
  auto* join = new Join{std::vector<int>(steps.size(), 0), steps.size(), std::move(done)};
  // The whole chain goes in one submission.
  MakeRoom(static_cast<unsigned>(steps.size()));
  for (size_t i = 0; i < steps.size(); ++i) {
    const unsigned link = i + 1 < steps.size() ? steps[i].link : 0;
    const Prep& prep = steps[i].prep;
    Submit(
        steps[i].step,
        [&prep, link](io_uring_sqe* sqe) {
          prep(sqe);
          sqe->flags |= static_cast<uint8_t>(link);
        },
        [join, i](int res) {
          join->results[i] = res;
          if (--join->pending > 0) return;
          std::unique_ptr<Join> last(join);
          std::move(last->done)(std::move(last->results));
        },
        steps[i].cancellable ? op : 0);
  }
}

uint64_t Ring::BeginOp(Cancellation* cancel) {
  if (cancel == nullptr) return 0;
  const uint64_t op = next_op_++;
  OpState& state = ops_[op];
  state.cancel = cancel;
  // Queued even on this thread: CancelOp must run between two batches of
  // CQEs, when every Completion it finds is still in the kernel, so that the
  // address it names cannot belong to a newer SQE.
  state.hook = cancel->AddHook([this, op] { loop_.Queue([this, op] { CancelOp(op); }); });
  return op;
}

void Ring::EndOp(uint64_t op) {
  if (op == 0) return;
  auto it = ops_.find(op);
  if (it == ops_.end()) return;
  it->second.cancel->RemoveHook(it->second.hook);
  ops_.erase(it);
}

void Ring::CancelOp(uint64_t op) {
  auto it = ops_.find(op);
  if (it == ops_.end()) return;  // finished meanwhile
  for (Completion* c : it->second.in_flight) {
    io_uring_sqe* sqe = GetSqe();
    io_uring_prep_cancel64(sqe, reinterpret_cast<uint64_t>(c), 0);
    io_uring_sqe_set_data64(sqe, kIgnoreTag);
  }
}

int Ring::BufferIndex(const char* p, size_t len) const {
  if (!buffers_registered_) return -1;
  const size_t size = pool_->buffer_size();
  if (p < pool_base_ || p >= pool_base_ + pool_->count() * size) return -1;
  const size_t index = static_cast<size_t>(p - pool_base_) / size;
  if (p + len > pool_base_ + (index + 1) * size) return -1;
  return static_cast<int>(index);
}

int Ring::TakeSlot() {
  if (free_slots_.empty()) return -1;
  const int slot = free_slots_.back();
  free_slots_.pop_back();
  slots_in_use_.fetch_add(1, std::memory_order_relaxed);
  return slot;
}

void Ring::ReleaseSlot(int slot) {
  free_slots_.push_back(slot);
  slots_in_use_.fetch_sub(1, std::memory_order_relaxed);
}

// Only the ring thread writes the counters: a plain load and store (no
// locked read-modify-write) is enough.
void Ring::CountSubmit(int rc) {
  if (rc <= 0) return;
  submits_.store(submits_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  sqes_.store(sqes_.load(std::memory_order_relaxed) + static_cast<uint64_t>(rc),
              std::memory_order_relaxed);
}

void Ring::ArmWake() {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_read(sqe, loop_.wake_fd(), &wake_value_, sizeof(wake_value_), 0);
  io_uring_sqe_set_data64(sqe, kWakeTag);
}

}  // namespace ringstore::storage
