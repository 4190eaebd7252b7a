// The io_uring engine.
//
// Design: one ring per core, each owned by one engine thread ("rs-uring")
// that creates it,
// submits every SQE and reaps every CQE, so the ring can run with
// IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN (each flag dropped on EINVAL, as
// fio does). Other threads hand work to that thread through a queue and an
// eventfd whose read is always armed in the ring. Each SQE carries a
// heap-allocated completion object in `user_data`; its continuation runs on
// the engine thread with the CQE's `res` (negative = -errno) and may submit
// the next SQE of a multi-step operation. A full submission queue is
// submitted, never dropped; short reads and writes are continued; -EAGAIN and
// -EINTR are retried.
//
// Data moves with read_fixed/write_fixed on the BufferPool, registered once
// with io_uring_register_buffers; if registration fails (RLIMIT_MEMLOCK in a
// container, for example) the engine uses plain reads and writes on the same
// memory and says so in info(). Opens are IORING_OP_OPENAT2 with
// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS; path operations open the parent
// directory that way and act relative to it. Reading a directory has no
// io_uring opcode: ReadDir runs on one helper thread.
//
// liburing appears in this file only.
#include <fcntl.h>
#include <linux/openat2.h>
#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "storage/engine.h"
#include "storage/path.h"
#include "storage/posix_ops.h"
#include "storage/status_util.h"
#include "storage/worker_pool.h"

namespace ringstore::storage {
namespace {

constexpr Backend kBackend = Backend::kIoUring;
constexpr unsigned kRingEntries = 256;
// user_data of the eventfd read that wakes the engine thread.
constexpr uint64_t kWakeTag = 1;
constexpr size_t kMaxMetadataBytes = 256;
// Registered file slots for the linked small-file chains.
constexpr int kDirectSlots = 1024;
// Rings (and ring threads) at most, one per core.
constexpr int kMaxRings = 8;

// Opcodes the engine cannot work without.
struct NeededOp {
  int op;
  const char* name;
};
constexpr NeededOp kNeededOps[] = {
    {IORING_OP_OPENAT2, "openat2"},     {IORING_OP_READ, "read"},
    {IORING_OP_WRITE, "write"},         {IORING_OP_READ_FIXED, "read_fixed"},
    {IORING_OP_WRITE_FIXED, "write_fixed"}, {IORING_OP_FSYNC, "fsync"},
    {IORING_OP_CLOSE, "close"},         {IORING_OP_STATX, "statx"},
    {IORING_OP_FGETXATTR, "fgetxattr"}, {IORING_OP_FSETXATTR, "fsetxattr"},
    {IORING_OP_RENAMEAT, "renameat"},   {IORING_OP_UNLINKAT, "unlinkat"},
    {IORING_OP_MKDIRAT, "mkdirat"},
};

absl::Status ResError(int res, absl::string_view what) { return ::ringstore::storage::ErrnoToStatus(-res, what); }

FileStat FromStatx(const struct statx& stx) {
  FileStat st;
  st.size = static_cast<int64_t>(stx.stx_size);
  st.modified = absl::FromUnixSeconds(stx.stx_mtime.tv_sec) +
                absl::Nanoseconds(stx.stx_mtime.tv_nsec);
  st.is_regular = S_ISREG(stx.stx_mode);
  st.is_directory = S_ISDIR(stx.stx_mode);
  return st;
}

// One ring and the thread that owns it. The engine runs one Ring per core
// and hands each operation to the next one; everything an operation does
// (all the SQEs of a chain, every retry) stays on its ring.
class Ring;
// The ring whose thread is running, if any.
thread_local Ring* current_ring = nullptr;

class Ring {
 public:
  using Cont = absl::AnyInvocable<void(int) &&>;
  template <typename T>
  using Callback = Engine::Callback<T>;
  using DoneCallback = Engine::DoneCallback;

  explicit Ring(const EngineOptions& options)
      : attr_(options.metadata_attr),
        pool_(options.pool),
        threads_(options.threads),
        root_(fcntl(options.root_fd, F_DUPFD_CLOEXEC, 0)),
        helper_(1, "rs-uring-help") {}

  ~Ring() {
    if (thread_.joinable()) {
      {
        absl::MutexLock lock(&mu_);
        stopping_ = true;
      }
      Wake();
      thread_.join();
    }
    if (wake_fd_ >= 0) close(wake_fd_);
    if (root_ >= 0) close(root_);
  }

  // Starts the engine thread, which sets up the ring; fails if it cannot.
  absl::Status Start() {
    if (root_ < 0) return ::ringstore::storage::ErrnoToStatus(errno, "dup root");
    wake_fd_ = eventfd(0, EFD_CLOEXEC);
    if (wake_fd_ < 0) return ::ringstore::storage::ErrnoToStatus(errno, "eventfd");
    std::promise<absl::Status> ready;
    std::future<absl::Status> setup = ready.get_future();
    thread_ = std::thread([this, &ready] {
      absl::Status s = Setup();
      const bool ok = s.ok();
      ready.set_value(std::move(s));
      if (ok) Loop();
    });
    pthread_setname_np(thread_.native_handle(), "rs-uring");
    absl::Status s = setup.get();
    if (!s.ok()) thread_.join();
    return s;
  }

  EngineInfo info() const {
    EngineInfo info;
    info.backend = kBackend;
    info.features = features_;
    info.buffers_registered = buffers_registered_;
    info.direct_slots = direct_slots_;
    info.direct_slots_in_use = slots_in_use_.load();
    return info;
  }

  void Open(std::string path, OpenMode mode, Callback<FileHandle> done) {
    Post([this, path = std::move(path), mode, done = std::move(done)]() mutable {
      int flags = 0, create_mode = 0;
      switch (mode) {
        case OpenMode::kRead:
          flags = O_RDONLY;
          break;
        case OpenMode::kCreateWrite:
          flags = O_WRONLY | O_CREAT | O_EXCL;
          create_mode = 0644;
          break;
        case OpenMode::kDirectory:
          flags = O_RDONLY | O_DIRECTORY;
          break;
      }
      OpenBeneath(path, flags, create_mode, [this, path, mode, done = std::move(done)](
                                                  absl::StatusOr<int> fd) mutable {
        if (!fd.ok()) return std::move(done)(fd.status(), kBackend);
        if (mode != OpenMode::kRead) return std::move(done)(FileHandle{*fd}, kBackend);
        // A read handle must be a regular file.
        StatxFd(*fd, [this, fd = *fd, path, done = std::move(done)](
                         absl::StatusOr<FileStat> st) mutable {
          if (st.ok() && st->is_regular) return std::move(done)(FileHandle{fd}, kBackend);
          CloseQuietly(fd);
          std::move(done)(st.ok() ? absl::FailedPreconditionError(absl::StrCat(
                                        "\"", path, "\" is not a regular file"))
                                  : st.status(),
                          kBackend);
        });
      });
    });
  }

  void Read(FileHandle file, int64_t offset, absl::Span<char> dst,
            Callback<size_t> done) {
    Post([this, fd = static_cast<int>(file.id), offset, dst, done = std::move(done)]() mutable {
      ReadFrom(fd, offset, dst, 0, std::move(done));
    });
  }

  void Write(FileHandle file, int64_t offset, absl::Span<const char> src,
             DoneCallback done) {
    Post([this, fd = static_cast<int>(file.id), offset, src, done = std::move(done)]() mutable {
      WriteTo(fd, offset, src, 0, std::move(done));
    });
  }

  void Sync(FileHandle file, bool data_only, DoneCallback done) {
    Post([this, fd = static_cast<int>(file.id), data_only, done = std::move(done)]() mutable {
      Sqe([&](io_uring_sqe* sqe) {
            io_uring_prep_fsync(sqe, fd, data_only ? IORING_FSYNC_DATASYNC : 0);
          },
          [data_only, done = std::move(done)](int res) mutable {
            std::move(done)(res < 0 ? ResError(res, data_only ? "fdatasync" : "fsync")
                                    : absl::OkStatus(),
                            kBackend);
          });
    });
  }

  void Close(FileHandle file, DoneCallback done) {
    Post([this, fd = static_cast<int>(file.id), done = std::move(done)]() mutable {
      Sqe([&](io_uring_sqe* sqe) { io_uring_prep_close(sqe, fd); },
          [done = std::move(done)](int res) mutable {
            // The descriptor is gone even when close reports an error.
            std::move(done)(res < 0 && res != -EINTR ? ResError(res, "close") : absl::OkStatus(),
                            kBackend);
          });
    });
  }

  void ReadFile(std::string path, absl::Span<char> dst, Callback<FileRead> done) {
    Post([this, path = std::move(path), dst, done = std::move(done)]() mutable {
      if (free_slots_.empty()) return ReadFileUnlinked(path, dst, std::move(done));
      ReadFileChain(path, dst, std::move(done));
    });
  }

  void Stat(FileHandle file, Callback<FileStat> done) {
    Post([this, fd = static_cast<int>(file.id), done = std::move(done)]() mutable {
      StatxFd(fd, [this, fd, done = std::move(done)](absl::StatusOr<FileStat> st) mutable {
        if (!st.ok() || !st->is_regular) return std::move(done)(std::move(st), kBackend);
        AddMetadata(fd, *std::move(st), [done = std::move(done)](absl::StatusOr<FileStat> s) mutable {
          std::move(done)(std::move(s), kBackend);
        });
      });
    });
  }

  void StatPath(std::string path, Callback<FileStat> done) {
    Post([this, path = std::move(path), done = std::move(done)]() mutable {
      OpenParent(path, [this, path, done = std::move(done)](
                           absl::StatusOr<std::pair<int, std::string>> parent) mutable {
        if (!parent.ok()) return std::move(done)(parent.status(), kBackend);
        const int parent_fd = parent->first;
        auto name = std::make_shared<std::string>(std::move(parent->second));
        auto stx = std::make_shared<struct statx>();
        Sqe([&](io_uring_sqe* sqe) {
              io_uring_prep_statx(sqe, parent_fd, name->c_str(), AT_SYMLINK_NOFOLLOW,
                                  STATX_BASIC_STATS, stx.get());
            },
            [this, parent_fd, name, stx, path, done = std::move(done)](int res) mutable {
              CloseQuietly(parent_fd);
              if (res < 0) {
                return std::move(done)(ResError(res, absl::StrCat("stat ", path)), kBackend);
              }
              FileStat st = FromStatx(*stx);
              if (!st.is_regular) return std::move(done)(st, kBackend);
              // The metadata attribute needs a descriptor of the file itself.
              OpenBeneath(path, O_RDONLY | O_NONBLOCK, 0,
                          [this, st, done = std::move(done)](absl::StatusOr<int> fd) mutable {
                            if (!fd.ok()) return std::move(done)(fd.status(), kBackend);
                            AddMetadata(*fd, st, [this, fd = *fd, done = std::move(done)](
                                                     absl::StatusOr<FileStat> s) mutable {
                              CloseQuietly(fd);
                              std::move(done)(std::move(s), kBackend);
                            });
                          });
            });
      });
    });
  }

  void SetMetadata(FileHandle file, std::string value, DoneCallback done) {
    Post([this, fd = static_cast<int>(file.id), value = std::make_shared<std::string>(std::move(value)),
          done = std::move(done)]() mutable {
      Sqe([&](io_uring_sqe* sqe) {
            io_uring_prep_fsetxattr(sqe, fd, attr_.c_str(), value->data(), 0,
                                    static_cast<unsigned>(value->size()));
          },
          [value, done = std::move(done)](int res) mutable {
            std::move(done)(res < 0 ? ResError(res, "fsetxattr") : absl::OkStatus(), kBackend);
          });
    });
  }

  void Rename(std::string from, std::string to, DoneCallback done) {
    Post([this, from = std::move(from), to = std::move(to), done = std::move(done)]() mutable {
      ParentOp(from, std::move(done), [this, from, to](int from_parent, std::string from_leaf,
                                                       DoneCallback finish) {
        ParentOp(to, std::move(finish), [this, from, to, from_parent, from_leaf](
                                            int to_parent, std::string to_leaf, DoneCallback finish) {
          auto names = std::make_shared<std::pair<std::string, std::string>>(from_leaf, to_leaf);
          Sqe([&](io_uring_sqe* sqe) {
                io_uring_prep_renameat(sqe, from_parent, names->first.c_str(), to_parent,
                                       names->second.c_str(), 0);
              },
              [names, from, to, finish = std::move(finish)](int res) mutable {
                std::move(finish)(res < 0 ? ResError(res, absl::StrCat("rename ", from, " to ", to))
                                          : absl::OkStatus(),
                                  kBackend);
              });
        });
      });
    });
  }

  void Unlink(std::string path, DoneCallback done) {
    LeafOp(std::move(path), std::move(done), "unlink", [](io_uring_sqe* sqe, int parent, const char* leaf) {
      io_uring_prep_unlinkat(sqe, parent, leaf, 0);
    });
  }

  void MakeDir(std::string path, DoneCallback done) {
    LeafOp(std::move(path), std::move(done), "mkdir", [](io_uring_sqe* sqe, int parent, const char* leaf) {
      io_uring_prep_mkdirat(sqe, parent, leaf, 0755);
    });
  }

  void RemoveDir(std::string path, DoneCallback done) {
    LeafOp(std::move(path), std::move(done), "rmdir", [](io_uring_sqe* sqe, int parent, const char* leaf) {
      io_uring_prep_unlinkat(sqe, parent, leaf, AT_REMOVEDIR);
    });
  }

  void ReadDir(std::string path, Callback<std::vector<DirEntry>> done) {
    // No io_uring opcode reads a directory.
    helper_.Run([this, path = std::move(path), done = std::move(done)]() mutable {
      std::move(done)(posix::ReadDir(root_, path), kBackend);
    });
  }

 private:
  struct Completion {
    Cont fn;
  };

  // --- Engine thread ------------------------------------------------------

  absl::Status Setup() {
    io_uring_params params;
    // Preferred flags first; each is dropped if the kernel says EINVAL.
    unsigned flag_sets[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rc = -EINVAL;
    unsigned flags = 0;
    for (unsigned f : flag_sets) {
      std::memset(&params, 0, sizeof(params));
      params.flags = f;
      rc = io_uring_queue_init_params(kRingEntries, &ring_, &params);
      flags = f;
      if (rc != -EINVAL) break;
    }
    if (rc < 0) return ResError(rc, "io_uring_setup");
    if (flags & IORING_SETUP_SINGLE_ISSUER) features_.push_back("single_issuer");
    if (flags & IORING_SETUP_DEFER_TASKRUN) features_.push_back("defer_taskrun");
    if (flags & IORING_SETUP_COOP_TASKRUN) features_.push_back("coop_taskrun");

    io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
    if (probe == nullptr) return Fail(absl::UnimplementedError("io_uring probe failed"));
    std::vector<std::string> missing;
    for (const NeededOp& op : kNeededOps) {
      if (!io_uring_opcode_supported(probe, op.op)) missing.push_back(op.name);
    }
    io_uring_free_probe(probe);
    if (!missing.empty()) {
      return Fail(absl::UnimplementedError(
          absl::StrCat("io_uring lacks opcodes: ", absl::StrJoin(missing, ", "))));
    }

    const std::vector<iovec> iovecs = pool_->iovecs();
    rc = io_uring_register_buffers(&ring_, iovecs.data(), static_cast<unsigned>(iovecs.size()));
    if (rc == 0) {
      buffers_registered_ = true;
      pool_base_ = static_cast<char*>(iovecs.front().iov_base);
      features_.push_back(absl::StrCat("registered_buffers=", iovecs.size(), "x",
                                       pool_->buffer_size()));
    } else {
      features_.push_back(absl::StrCat("registered_buffers=off (", std::strerror(-rc), ")"));
    }
    // A sparse file table for direct descriptors; the engine picks the slot
    // of every chain itself (a linked chain cannot learn an allocated one).
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

  absl::Status Fail(absl::Status s) {
    io_uring_queue_exit(&ring_);
    return s;
  }

  void Loop() {
    current_ring = this;
    ArmWake();
    std::vector<std::pair<uint64_t, int>> cqes;
    for (;;) {
      RunPosted();
      {
        absl::MutexLock lock(&mu_);
        if (stopping_ && inflight_ == 0 && posted_.empty()) break;
      }
      const int rc = io_uring_submit_and_wait(&ring_, 1);
      if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
        std::fprintf(stderr, "ringstore: io_uring_submit_and_wait: %s\n", std::strerror(-rc));
      }
      cqes.clear();
      unsigned head;
      io_uring_cqe* cqe;
      unsigned seen = 0;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        cqes.emplace_back(cqe->user_data, cqe->res);
        ++seen;
      }
      io_uring_cq_advance(&ring_, seen);
      for (const auto& [tag, res] : cqes) {
        if (tag == kWakeTag) {
          ArmWake();
          continue;
        }
        auto* c = reinterpret_cast<Completion*>(tag);
        {
          absl::MutexLock lock(&mu_);
          --inflight_;
        }
        std::move(c->fn)(res);
        delete c;
      }
    }
    io_uring_queue_exit(&ring_);
  }

  // Queues one SQE whose CQE calls `done(res)`. Engine thread only.
  void Sqe(const std::function<void(io_uring_sqe*)>& prep, Cont done) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    while (sqe == nullptr) {
      // Full submission queue: hand it to the kernel, then retry.
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    prep(sqe);
    io_uring_sqe_set_data(sqe, new Completion{std::move(done)});
    absl::MutexLock lock(&mu_);
    ++inflight_;
  }

  void ArmWake() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    while (sqe == nullptr) {
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    io_uring_prep_read(sqe, wake_fd_, &wake_value_, sizeof(wake_value_), 0);
    io_uring_sqe_set_data64(sqe, kWakeTag);
  }

  void RunPosted() {
    for (;;) {
      std::deque<absl::AnyInvocable<void() &&>> work;
      {
        absl::MutexLock lock(&mu_);
        work.swap(posted_);
      }
      if (work.empty()) return;
      for (auto& w : work) std::move(w)();
    }
  }

  // --- Any thread ---------------------------------------------------------

  // Runs `work` on the engine thread: now if already there.
  void Post(absl::AnyInvocable<void() &&> work) {
    if (std::this_thread::get_id() == thread_.get_id()) {
      std::move(work)();
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      posted_.push_back(std::move(work));
    }
    Wake();
  }

  void Wake() {
    const uint64_t one = 1;
    while (write(wake_fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
  }

  // --- Building blocks (engine thread) ------------------------------------

  void OpenBeneath(const std::string& path, int flags, int mode,
                   absl::AnyInvocable<void(absl::StatusOr<int>) &&> done) {
    auto how = std::make_shared<open_how>();
    std::memset(how.get(), 0, sizeof(*how));
    how->flags = static_cast<uint64_t>(flags | O_CLOEXEC);
    how->mode = static_cast<uint64_t>(mode);
    how->resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
    auto name = std::make_shared<std::string>(path.empty() ? "." : path);
    Sqe([&](io_uring_sqe* sqe) { io_uring_prep_openat2(sqe, root_, name->c_str(), how.get()); },
        [this, how, name, path, flags, mode, done = std::move(done)](int res) mutable {
          if (res == -EAGAIN || res == -EINTR) {
            return OpenBeneath(path, flags, mode, std::move(done));
          }
          if (res < 0) return std::move(done)(ResError(res, absl::StrCat("open ", path)));
          std::move(done)(res);
        });
  }

  void CloseQuietly(int fd) {
    Sqe([&](io_uring_sqe* sqe) { io_uring_prep_close(sqe, fd); }, [](int) {});
  }

  void StatxFd(int fd, absl::AnyInvocable<void(absl::StatusOr<FileStat>) &&> done) {
    auto stx = std::make_shared<struct statx>();
    Sqe([&](io_uring_sqe* sqe) {
          io_uring_prep_statx(sqe, fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, stx.get());
        },
        [stx, done = std::move(done)](int res) mutable {
          if (res < 0) return std::move(done)(ResError(res, "statx"));
          std::move(done)(FromStatx(*stx));
        });
  }

  // Fills st.metadata from the attribute of `fd` (absent → empty).
  void AddMetadata(int fd, FileStat st,
                   absl::AnyInvocable<void(absl::StatusOr<FileStat>) &&> done) {
    auto value = std::make_shared<std::string>(kMaxMetadataBytes, '\0');
    Sqe([&](io_uring_sqe* sqe) {
          io_uring_prep_fgetxattr(sqe, fd, attr_.c_str(), value->data(),
                                  static_cast<unsigned>(value->size()));
        },
        [value, st = std::move(st), done = std::move(done)](int res) mutable {
          if (res >= 0) {
            st.metadata.assign(value->data(), static_cast<size_t>(res));
          } else if (res != -ENODATA && res != -EOPNOTSUPP) {
            return std::move(done)(ResError(res, "fgetxattr"));
          }
          std::move(done)(std::move(st));
        });
  }

  // ReadFile as one linked submission into a direct descriptor:
  //   openat2_direct(slot) -LINK-> fgetxattr -HARDLINK-> read_fixed
  //   -HARDLINK-> close_direct(slot)
  // A failed open cancels the rest; a missing attribute or a short read
  // (every small file read into a larger buffer) must not cancel the close,
  // hence the hard links. The slot is free again only once its close CQE
  // has arrived (opening into an occupied slot would silently close it).
  struct Chain {
    std::string path;
    open_how how;
    std::string value = std::string(kMaxMetadataBytes, '\0');
    absl::Span<char> dst;
    Callback<FileRead> done;
    int slot = -1;
    int pending = 4;
    int open_res = 0, xattr_res = 0, read_res = 0, close_res = 0;
  };

  void ReadFileChain(const std::string& path, absl::Span<char> dst, Callback<FileRead> done) {
    auto chain = std::make_shared<Chain>();
    chain->path = path;
    std::memset(&chain->how, 0, sizeof(chain->how));
    chain->how.flags = O_RDONLY;  // O_CLOEXEC is EINVAL for a direct descriptor
    chain->how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
    chain->dst = dst;
    chain->done = std::move(done);
    chain->slot = free_slots_.back();
    free_slots_.pop_back();
    ++slots_in_use_;
    const int slot = chain->slot;
    const int index = BufferIndex(dst.data(), dst.size());
    ReserveSqes(4);  // the whole chain goes in one submission
    Chain* c = chain.get();
    auto record = [this, chain](int* field) {
      return [this, chain, field](int res) {
        *field = res;
        if (--chain->pending == 0) FinishChain(chain);
      };
    };
    Sqe([&](io_uring_sqe* sqe) {
          io_uring_prep_openat2_direct(sqe, root_, c->path.c_str(), &c->how, slot);
          io_uring_sqe_set_flags(sqe, IOSQE_IO_LINK);
        },
        record(&c->open_res));
    Sqe([&](io_uring_sqe* sqe) {
          io_uring_prep_fgetxattr(sqe, slot, attr_.c_str(), c->value.data(),
                                  static_cast<unsigned>(c->value.size()));
          io_uring_sqe_set_flags(sqe, IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK);
        },
        record(&c->xattr_res));
    Sqe([&](io_uring_sqe* sqe) {
          const auto len = static_cast<unsigned>(dst.size());
          if (index >= 0) {
            io_uring_prep_read_fixed(sqe, slot, dst.data(), len, 0, index);
          } else {
            io_uring_prep_read(sqe, slot, dst.data(), len, 0);
          }
          io_uring_sqe_set_flags(sqe, IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK);
        },
        record(&c->read_res));
    Sqe([&](io_uring_sqe* sqe) { io_uring_prep_close_direct(sqe, slot); },
        record(&c->close_res));
  }

  void FinishChain(const std::shared_ptr<Chain>& c) {
    // Give the slot back once the kernel no longer holds a file in it.
    if (c->close_res == 0 || c->open_res < 0) {
      ReleaseSlot(c->slot);
    } else {
      const int slot = c->slot;
      Sqe([&](io_uring_sqe* sqe) { io_uring_prep_close_direct(sqe, slot); },
          [this, slot](int) { ReleaseSlot(slot); });
    }
    const std::string& path = c->path;
    if (c->open_res < 0) {
      return std::move(c->done)(ResError(c->open_res, absl::StrCat("open ", path)), kBackend);
    }
    if (c->read_res == -EAGAIN || c->read_res == -EINTR) {
      return ReadFileUnlinked(path, c->dst, std::move(c->done));
    }
    if (c->read_res < 0) {
      return std::move(c->done)(ResError(c->read_res, absl::StrCat("read ", path)), kBackend);
    }
    FileRead out;
    out.length = static_cast<size_t>(c->read_res);
    if (c->xattr_res >= 0) {
      out.metadata.assign(c->value.data(), static_cast<size_t>(c->xattr_res));
    } else if (c->xattr_res != -ENODATA && c->xattr_res != -EOPNOTSUPP) {
      return std::move(c->done)(ResError(c->xattr_res, "fgetxattr"), kBackend);
    }
    std::move(c->done)(std::move(out), kBackend);
  }

  void ReleaseSlot(int slot) {
    free_slots_.push_back(slot);
    --slots_in_use_;
  }

  // ReadFile without a free slot: the same steps one at a time on a plain
  // descriptor.
  void ReadFileUnlinked(const std::string& path, absl::Span<char> dst, Callback<FileRead> done) {
    OpenBeneath(path, O_RDONLY, 0, [this, dst, done = std::move(done)](
                                       absl::StatusOr<int> fd) mutable {
      if (!fd.ok()) return std::move(done)(fd.status(), kBackend);
      ReadFrom(*fd, 0, dst, 0, [this, fd = *fd, done = std::move(done)](
                                   absl::StatusOr<size_t> n, Backend) mutable {
        if (!n.ok()) {
          CloseQuietly(fd);
          return std::move(done)(n.status(), kBackend);
        }
        AddMetadata(fd, FileStat(), [this, fd, n = *n, done = std::move(done)](
                                        absl::StatusOr<FileStat> st) mutable {
          CloseQuietly(fd);
          if (!st.ok()) return std::move(done)(st.status(), kBackend);
          FileRead out;
          out.length = n;
          out.metadata = std::move(st->metadata);
          std::move(done)(std::move(out), kBackend);
        });
      });
    });
  }

  // Makes room for `n` SQEs that must go in one submission.
  void ReserveSqes(unsigned n) {
    if (io_uring_sq_space_left(&ring_) < n) io_uring_submit(&ring_);
  }

  // Index of the registered buffer holding `p`, or -1.
  int BufferIndex(const char* p, size_t len) const {
    if (!buffers_registered_) return -1;
    const size_t size = pool_->buffer_size();
    if (p < pool_base_ || p >= pool_base_ + pool_->count() * size) return -1;
    const size_t index = static_cast<size_t>(p - pool_base_) / size;
    if (p + len > pool_base_ + (index + 1) * size) return -1;
    return static_cast<int>(index);
  }

  void ReadFrom(int fd, int64_t offset, absl::Span<char> dst, size_t done_bytes,
                Callback<size_t> done) {
    char* p = dst.data() + done_bytes;
    const unsigned len = static_cast<unsigned>(dst.size() - done_bytes);
    const int index = BufferIndex(p, len);
    Sqe([&](io_uring_sqe* sqe) {
          if (index >= 0) {
            io_uring_prep_read_fixed(sqe, fd, p, len, offset + done_bytes, index);
          } else {
            io_uring_prep_read(sqe, fd, p, len, offset + done_bytes);
          }
        },
        [this, fd, offset, dst, done_bytes, done = std::move(done)](int res) mutable {
          if (res == -EAGAIN || res == -EINTR) {
            return ReadFrom(fd, offset, dst, done_bytes, std::move(done));
          }
          if (res < 0) return std::move(done)(ResError(res, "read"), kBackend);
          const size_t total = done_bytes + static_cast<size_t>(res);
          if (res == 0 || total == dst.size()) return std::move(done)(total, kBackend);
          ReadFrom(fd, offset, dst, total, std::move(done));  // short read: continue
        });
  }

  void WriteTo(int fd, int64_t offset, absl::Span<const char> src, size_t done_bytes,
               DoneCallback done) {
    if (done_bytes == src.size()) return std::move(done)(absl::OkStatus(), kBackend);
    const char* p = src.data() + done_bytes;
    const unsigned len = static_cast<unsigned>(src.size() - done_bytes);
    const int index = BufferIndex(p, len);
    Sqe([&](io_uring_sqe* sqe) {
          if (index >= 0) {
            io_uring_prep_write_fixed(sqe, fd, p, len, offset + done_bytes, index);
          } else {
            io_uring_prep_write(sqe, fd, p, len, offset + done_bytes);
          }
        },
        [this, fd, offset, src, done_bytes, done = std::move(done)](int res) mutable {
          if (res == -EAGAIN || res == -EINTR) {
            return WriteTo(fd, offset, src, done_bytes, std::move(done));
          }
          if (res < 0) return std::move(done)(ResError(res, "write"), kBackend);
          if (res == 0) return std::move(done)(absl::ResourceExhaustedError("write: no progress"), kBackend);
          WriteTo(fd, offset, src, done_bytes + static_cast<size_t>(res), std::move(done));
        });
  }

  // Opens the parent directory of `path` (O_PATH, beneath the root) and
  // passes it on with the last component of the path.
  void OpenParent(const std::string& path,
                  absl::AnyInvocable<void(absl::StatusOr<std::pair<int, std::string>>) &&> done) {
    std::string leaf(BaseName(path));
    if (leaf.empty()) {
      return std::move(done)(
          absl::InvalidArgumentError(absl::StrCat("no file name in \"", path, "\"")));
    }
    OpenBeneath(std::string(ParentDir(path)), O_PATH | O_DIRECTORY, 0,
                [leaf = std::move(leaf), done = std::move(done)](absl::StatusOr<int> fd) mutable {
                  if (!fd.ok()) return std::move(done)(fd.status());
                  std::move(done)(std::make_pair(*fd, std::move(leaf)));
                });
  }

  // Calls `body(parent_fd, leaf, finish)` with the parent of `path` open;
  // `finish` closes the parent and reports to `done`.
  using ParentBody = std::function<void(int, std::string, DoneCallback)>;
  void ParentOp(const std::string& path, DoneCallback done, ParentBody body) {
    OpenParent(path, [this, body = std::move(body), done = std::move(done)](
                         absl::StatusOr<std::pair<int, std::string>> parent) mutable {
      if (!parent.ok()) return std::move(done)(parent.status(), kBackend);
      const int fd = parent->first;
      body(fd, std::move(parent->second),
           [this, fd, done = std::move(done)](absl::Status s, Backend b) mutable {
             CloseQuietly(fd);
             std::move(done)(std::move(s), b);
           });
    });
  }

  // One SQE on the leaf of `path` relative to its parent.
  void LeafOp(std::string path, DoneCallback done, const char* what,
              void (*prep)(io_uring_sqe*, int, const char*)) {
    Post([this, path = std::move(path), done = std::move(done), what, prep]() mutable {
      ParentOp(path, std::move(done), [this, path, what, prep](int parent, std::string leaf,
                                                                DoneCallback finish) {
        auto name = std::make_shared<std::string>(std::move(leaf));
        Sqe([&](io_uring_sqe* sqe) { prep(sqe, parent, name->c_str()); },
            [name, path, what, finish = std::move(finish)](int res) mutable {
              std::move(finish)(res < 0 ? ResError(res, absl::StrCat(what, " ", path))
                                        : absl::OkStatus(),
                                kBackend);
            });
      });
    });
  }

  const std::string attr_;
  BufferPool* const pool_;
  const int threads_;
  const int root_;
  int wake_fd_ = -1;
  uint64_t wake_value_ = 0;

  io_uring ring_;
  std::vector<std::string> features_;
  bool buffers_registered_ = false;
  int direct_slots_ = 0;
  // Free direct-descriptor slots; engine thread only.
  std::vector<int> free_slots_;
  std::atomic<int> slots_in_use_{0};
  char* pool_base_ = nullptr;

  absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void() &&>> posted_ ABSL_GUARDED_BY(mu_);
  int64_t inflight_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  WorkerPool helper_;
  std::thread thread_;
};

class IoUringEngine final : public Engine {
 public:
  explicit IoUringEngine(std::vector<std::unique_ptr<Ring>> rings) : rings_(std::move(rings)) {}

  EngineInfo info() const override {
    EngineInfo info = rings_.front()->info();
    for (size_t i = 1; i < rings_.size(); ++i) {
      const EngineInfo other = rings_[i]->info();
      info.direct_slots += other.direct_slots;
      info.direct_slots_in_use += other.direct_slots_in_use;
      info.buffers_registered = info.buffers_registered && other.buffers_registered;
    }
    info.features.push_back(absl::StrCat("rings=", rings_.size()));
    return info;
  }

  void Open(std::string path, OpenMode mode, Callback<FileHandle> done) override {
    Next().Open(std::move(path), mode, std::move(done));
  }
  void Read(FileHandle file, int64_t offset, absl::Span<char> dst,
            Callback<size_t> done) override {
    Next().Read(file, offset, dst, std::move(done));
  }
  void Write(FileHandle file, int64_t offset, absl::Span<const char> src,
             DoneCallback done) override {
    Next().Write(file, offset, src, std::move(done));
  }
  void Sync(FileHandle file, bool data_only, DoneCallback done) override {
    Next().Sync(file, data_only, std::move(done));
  }
  void Close(FileHandle file, DoneCallback done) override {
    Next().Close(file, std::move(done));
  }
  void ReadFile(std::string path, absl::Span<char> dst, Callback<FileRead> done) override {
    Next().ReadFile(std::move(path), dst, std::move(done));
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
  // An operation started from a ring's own thread (a completion starting the
  // next step) stays on that ring: no cross-thread wake-up. Others go round
  // robin; file handles are plain descriptors, valid on every ring.
  Ring& Next() {
    for (const auto& ring : rings_) {
      if (ring.get() == current_ring) return *ring;
    }
    return *rings_[next_.fetch_add(1, std::memory_order_relaxed) % rings_.size()];
  }

  const std::vector<std::unique_ptr<Ring>> rings_;
  std::atomic<size_t> next_{0};
};

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> NewIoUringEngine(const EngineOptions& options) {
  if (options.root_fd < 0 || options.pool == nullptr) {
    return absl::InvalidArgumentError("engine needs a root and a buffer pool");
  }
  // One ring per core: a ring's thread does the memory copies of cached
  // reads and writes inline, so one ring alone would use one core.
  const int count = std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, kMaxRings);
  std::vector<std::unique_ptr<Ring>> rings;
  for (int i = 0; i < count; ++i) {
    auto ring = std::make_unique<Ring>(options);
    RS_RETURN_IF_ERROR(ring->Start());
    rings.push_back(std::move(ring));
  }
  return std::make_unique<IoUringEngine>(std::move(rings));
}

}  // namespace ringstore::storage
