// The io_uring engine: the Engine operations built from SQEs on Rings
// (io_uring_ring.h has the machinery: thread, submission, completion,
// cancellation, fault injection).
//
// One Ring per core (with SQPOLL, one ring and its SQ thread). An
// operation goes to the next ring round robin, except
// that one started from a ring's own thread (a completion starting the next
// step) stays on that ring: no cross-thread wake-up. Everything an operation
// does (all the SQEs of a chain, every retry) stays on its ring. File
// handles are plain descriptors, valid on every ring.
//
// Data moves with read_fixed/write_fixed on the registered BufferPool (plain
// read/write where registration failed). Opens are IORING_OP_OPENAT2 with
// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS; path operations open the parent
// directory that way and act relative to it. Short reads and writes are
// continued; -EAGAIN and -EINTR are retried; -ECANCELED ends an operation
// with Cancelled. Two operations are linked chains in one submission:
//   ReadFile:   openat2_direct(slot) -LINK-> [fgetxattr -HARDLINK->]
//               read_fixed -HARDLINK-> close_direct(slot)
//   CommitFile: fsetxattr -LINK-> fsync -LINK-> renameat -LINK-> fsync(dir)
// Reading a directory has no io_uring opcode: ReadDir runs on a helper
// thread.
//
// Files: this one has the engine (the rings and the round robin);
// io_uring_files.h declares the operations on one ring, io_uring_ops.cc
// and io_uring_chains.cc define them; io_uring_ring.{h,cc} is the ring
// itself. liburing appears in these io_uring_* files and nowhere else.
#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "storage/engine/engine.h"
#include "storage/engine/io_uring_files.h"
#include "storage/engine/io_uring_ring.h"
#include "storage/engine/status_util.h"

namespace ringstore::storage {
namespace {

using uring_internal::kBackend;
using uring_internal::RingFiles;

// Rings (and ring threads) at most, one per core.
constexpr int kMaxRings = 8;

class IoUringEngine final : public Engine {
 public:
  struct Lane {
    std::unique_ptr<Ring> ring;
    std::unique_ptr<RingFiles> files;
  };

  explicit IoUringEngine(std::vector<Lane> lanes) : lanes_(std::move(lanes)) {}

  ~IoUringEngine() override {
    // Rings first: each waits for its SQEs in flight, whose continuations
    // (the tail of an operation that has already called back, such as
    // closing a directory) still use their RingFiles.
    for (Lane& lane : lanes_) lane.ring.reset();
  }

  EngineInfo info() const override {
    EngineInfo info;
    info.backend = kBackend;
    info.features = lanes_.front().ring->features();
    info.features.push_back(absl::StrCat("rings=", lanes_.size()));
    info.buffers_registered = true;
    for (const Lane& lane : lanes_) {
      info.direct_slots += lane.ring->direct_slots();
      info.direct_slots_in_use += lane.ring->direct_slots_in_use();
      info.buffers_registered = info.buffers_registered && lane.ring->buffers_registered();
    }
    return info;
  }

  EngineStats stats() const override {
    EngineStats stats;
    for (const Lane& lane : lanes_) {
      stats.io_uring_submits += lane.ring->submits();
      stats.io_uring_sqes += lane.ring->sqes();
      stats.io_uring_fixed_buffer_ops += lane.ring->fixed_buffer_ops();
    }
    stats.io_uring_sqpoll = lanes_.front().ring->sqpoll();
    return stats;
  }

  void Open(std::string path, OpenMode mode, Callback<FileHandle> done) override {
    Next().Open(std::move(path), mode, std::move(done));
  }
  void Read(FileHandle file, int64_t offset, absl::Span<char> dst, Cancellation* cancel,
            Callback<size_t> done) override {
    Next().Read(file, offset, dst, cancel, std::move(done));
  }
  void Write(FileHandle file, int64_t offset, absl::Span<const char> src,
             DoneCallback done) override {
    Next().Write(file, offset, src, std::move(done));
  }
  void Truncate(FileHandle file, int64_t size, DoneCallback done) override {
    Next().Truncate(file, size, std::move(done));
  }
  void Sync(FileHandle file, bool data_only, DoneCallback done) override {
    Next().Sync(file, data_only, std::move(done));
  }
  void Close(FileHandle file, DoneCallback done) override { Next().Close(file, std::move(done)); }
  void ReadFile(std::string path, absl::Span<char> dst, const ReadFileOptions& options,
                Callback<FileRead> done) override {
    Next().ReadFile(std::move(path), dst, options, std::move(done));
  }
  void Stat(FileHandle file, Callback<FileStat> done) override {
    Next().Stat(file, std::move(done));
  }
  void StatPath(std::string path, Callback<FileStat> done) override {
    Next().StatPath(std::move(path), std::move(done));
  }
  void SetMetadata(FileHandle file, std::string value, DoneCallback done) override {
    Next().SetMetadata(file, std::move(value), std::move(done));
  }
  void Rename(std::string from, std::string to, DoneCallback done) override {
    Next().Rename(std::move(from), std::move(to), std::move(done));
  }
  void CommitFile(FileHandle file, std::string metadata, std::string from, std::string to,
                  DoneCallback done) override {
    Next().CommitFile(file, std::move(metadata), std::move(from), std::move(to), std::move(done));
  }
  void Unlink(std::string path, DoneCallback done) override {
    Next().Unlink(std::move(path), std::move(done));
  }
  void MakeDir(std::string path, DoneCallback done) override {
    Next().MakeDir(std::move(path), std::move(done));
  }
  void RemoveDir(std::string path, DoneCallback done) override {
    Next().RemoveDir(std::move(path), std::move(done));
  }
  void ReadDir(std::string path, Callback<std::vector<DirEntry>> done) override {
    Next().ReadDir(std::move(path), std::move(done));
  }

 private:
  // An operation started on a ring's own thread stays on that ring; others
  // go round robin.
  RingFiles& Next() {
    for (const Lane& lane : lanes_) {
      if (lane.ring->IsCurrent()) return *lane.files;
    }
    return *lanes_[next_.fetch_add(1, std::memory_order_relaxed) % lanes_.size()].files;
  }

  std::vector<Lane> lanes_;
  std::atomic<size_t> next_{0};
};

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> NewIoUringEngine(const EngineOptions& options) {
  if (options.root_fd < 0 || options.pool == nullptr) {
    return absl::InvalidArgumentError("engine needs a root and a buffer pool");
  }
  // One ring per core: a ring's thread does the memory copies of cached
  // reads and writes inline, so one ring alone would use one core.
  // With SQPOLL the kernel's SQ thread does that work: one ring, one
  // spinning thread. (Several rings on one SQ thread, IORING_SETUP_ATTACH_WQ,
  // would break chains: the thread then takes at most 8 SQEs of a ring per
  // pass, and a chain cut there runs as two, the read before its open.)
  int count = std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, kMaxRings);
  std::vector<IoUringEngine::Lane> lanes;
  for (int i = 0; i < count; ++i) {
    auto ring = std::make_unique<Ring>(options);
    RS_RETURN_IF_ERROR(ring->Start());
    if (ring->sqpoll()) count = 1;
    auto files = std::make_unique<RingFiles>(ring.get(), options.faults);
    lanes.push_back({std::move(ring), std::move(files)});
  }
  return std::make_unique<IoUringEngine>(std::move(lanes));
}

}  // namespace ringstore::storage
