// The POSIX AIO engine: data moves through glibc's aio_read, aio_write and
// aio_fsync; everything POSIX AIO does not offer (opening, closing, stat,
// extended attributes, rename, unlink, directories) runs on a small bounded
// helper pool with the blocking calls of PosixFiles (BlockingOps,
// blocking_ops.h).
//
// glibc implements POSIX AIO in user space: a pool of threads that run one
// request at a time per file descriptor. So:
//   - aio_init is tuned once per process, before the first request:
//     aio_threads = EngineOptions::threads + 1 (one thread always waits on
//     the wake-up request below), aio_num = room for every pool buffer in
//     flight, idle threads exit after a second. aio_init has no effect once
//     AIO is in use; the values of the first engine started stay.
//   - a request on a descriptor that already has one in flight runs on a
//     duplicate of it (F_DUPFD_CLOEXEC), closed when the request completes,
//     so reads of one file run in parallel.
//
// Completions: one engine thread ("rs-aio", an EventLoop: event_loop.h)
// submits every request and waits for them in aio_suspend, which sleeps
// until one completes: no spinning, no signals, no thread per completion
// (SIGEV_THREAD would start one). To hear about new work while it waits, the
// list always holds one more request: an aio_read of the loop's eventfd
// (glibc falls back from pread to read for it), which posting work completes
// by writing the eventfd. Callbacks of data operations (Read, Write, Sync)
// run on the engine thread, those of helper operations on a helper thread;
// CommitFile calls back on whichever its last step ran on.
//
// Cancellation: a cancelled request still queued in glibc is taken out with
// aio_cancel and completes with ECANCELED; one a glibc thread is running
// finishes.
#include <aio.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/base/config.h"
#include "absl/strings/str_cat.h"
#include "storage/engine/blocking_ops.h"
#include "storage/engine/engine.h"
#include "storage/engine/event_loop.h"
#include "storage/engine/posix_ops.h"
#include "storage/engine/scoped_fd.h"
#include "storage/engine/status_util.h"

namespace ringstore::storage {
namespace {

constexpr Backend kBackend = Backend::kPosixAio;
// Threads for the calls POSIX AIO lacks.
constexpr int kHelperThreads = 2;

template <typename T>
using Then = absl::AnyInvocable<void(absl::StatusOr<T>) &&>;

// The errno of a request that AIO itself refused: the engine cannot work.
absl::Status AioError(int err, absl::string_view what) {
  absl::Status s = ::ringstore::storage::ErrnoToStatus(err, what);
  return err == ENOSYS || err == EOPNOTSUPP || err == EPERM ? MarkRefused(std::move(s)) : s;
}

// One AIO request.
struct Request {
  aiocb cb;
  // The caller's descriptor, and the duplicate the request runs on if the
  // caller's was busy (closed when the request completes), or -1.
  int fd = -1;
  int dup_fd = -1;
  Cancellation* cancel = nullptr;
  uint64_t hook = 0;
  // Unique for the engine's lifetime: a cancellation names its request by
  // this, not by address, which a later request may reuse.
  uint64_t id = 0;
  // Bytes transferred, or -errno.
  absl::AnyInvocable<void(ssize_t) &&> done;
};

class PosixAioEngine final : public Engine, private EventLoop::Driver {
 public:
  PosixAioEngine(ScopedFd root, const EngineOptions& options)
      : root_(std::move(root)),
        faults_(options.faults),
        threads_(options.threads),
        loop_("rs-aio"),
        helpers_(std::make_unique<BlockingOps>(root_.get(), options.metadata_attr,
                                               options.faults, kBackend, kHelperThreads,
                                               "rs-aio-help")),
        files_(helpers_->files()) {}

  ~PosixAioEngine() override {
    // Helpers first: what they still run may post to the engine thread.
    helpers_.reset();
    loop_.Stop();
  }

  absl::Status Start(size_t buffers) {
    static std::once_flag tuned;
    std::call_once(tuned, [&] {
      aioinit init;
      std::memset(&init, 0, sizeof(init));
      init.aio_threads = threads_ + 1;
      init.aio_num = static_cast<int>(buffers) + 64;
      init.aio_idle_time = 1;
      aio_init(&init);
    });
    return loop_.Start(this);
  }

  EngineInfo info() const override {
    EngineInfo info;
    info.backend = kBackend;
    info.features = {absl::StrCat("aio_threads=", threads_ + 1),
                     absl::StrCat("helper_threads=", kHelperThreads)};
    return info;
  }

  void Open(std::string path, OpenMode mode, Callback<FileHandle> done) override {
    helpers_->Open(std::move(path), mode, std::move(done));
  }

  void Read(FileHandle file, int64_t offset, absl::Span<char> dst, Cancellation* cancel,
            Callback<size_t> done) override {
    Post([this, fd = static_cast<int>(file.id), offset, dst, cancel,
          done = std::move(done)]() mutable {
      ReadFrom(fd, offset, dst, 0, cancel, [done = std::move(done)](absl::StatusOr<size_t> n) mutable {
        std::move(done)(std::move(n), kBackend);
      });
    });
  }

  void Write(FileHandle file, int64_t offset, absl::Span<const char> src,
             DoneCallback done) override {
    Post([this, fd = static_cast<int>(file.id), offset, src, done = std::move(done)]() mutable {
      WriteTo(fd, offset, src, 0, [done = std::move(done)](absl::Status s) mutable {
        std::move(done)(std::move(s), kBackend);
      });
    });
  }

  // POSIX AIO has no truncate: on a helper.
  void Truncate(FileHandle file, int64_t size, DoneCallback done) override {
    helpers_->Truncate(file, size, std::move(done));
  }

  void Sync(FileHandle file, bool data_only, DoneCallback done) override {
    Post([this, fd = static_cast<int>(file.id), data_only, done = std::move(done)]() mutable {
      FsyncAio(fd, data_only, [done = std::move(done)](absl::Status s) mutable {
        std::move(done)(std::move(s), kBackend);
      });
    });
  }

  void Close(FileHandle file, DoneCallback done) override {
    helpers_->Close(file, std::move(done));
  }

  // Open (helper) → aio_read → attribute if asked, and close (helper).
  void ReadFile(std::string path, absl::Span<char> dst, const ReadFileOptions& options,
                Callback<FileRead> done) override {
    helpers_->RunOnWorker([this, path = std::move(path), dst, cancel = options.cancel,
                   metadata = options.metadata, done = std::move(done)]() mutable {
      if (IsCancelled(cancel)) {
        return std::move(done)(absl::CancelledError("read: cancelled"), kBackend);
      }
      absl::StatusOr<int> fd = files_.Open(path, OpenMode::kRead);
      if (!fd.ok()) return std::move(done)(fd.status(), kBackend);
      Post([this, fd = *fd, dst, cancel, metadata, done = std::move(done)]() mutable {
        ReadFrom(fd, 0, dst, 0, cancel, [this, fd, metadata, done = std::move(done)](
                                            absl::StatusOr<size_t> n) mutable {
          helpers_->RunOnWorker([this, fd, metadata, n = std::move(n),
                                 done = std::move(done)]() mutable {
            absl::StatusOr<FileStat> st = !n.ok()     ? absl::StatusOr<FileStat>(n.status())
                                          : metadata ? files_.StatFd(fd)
                                                     : absl::StatusOr<FileStat>(FileStat());
            (void)files_.Close(fd);
            if (!st.ok()) return std::move(done)(st.status(), kBackend);
            std::move(done)(FileRead{*n, std::move(st->metadata)}, kBackend);
          });
        });
      });
    });
  }

  void Stat(FileHandle file, Callback<FileStat> done) override {
    helpers_->Stat(file, std::move(done));
  }

  void StatPath(std::string path, Callback<FileStat> done) override {
    helpers_->StatPath(std::move(path), std::move(done));
  }

  void SetMetadata(FileHandle file, std::string value, DoneCallback done) override {
    helpers_->SetMetadata(file, std::move(value), std::move(done));
  }

  void Rename(std::string from, std::string to, DoneCallback done) override {
    helpers_->Rename(std::move(from), std::move(to), std::move(done));
  }

  // Attribute (helper) → aio_fsync of the file → rename (helper) →
  // aio_fsync of the directory, each only if the one before succeeded.
  void CommitFile(FileHandle file, std::string metadata, std::string from, std::string to,
                  DoneCallback done) override {
    helpers_->RunOnWorker([this, fd = static_cast<int>(file.id), metadata = std::move(metadata),
                  from = std::move(from), to = std::move(to), done = std::move(done)]() mutable {
      absl::StatusOr<int> dir = files_.OpenBeneath(ParentDir(to), O_RDONLY | O_DIRECTORY);
      if (!dir.ok()) return std::move(done)(dir.status(), kBackend);
      auto finish = [this, dir = *dir, done = std::move(done)](absl::Status s) mutable {
        (void)files_.Close(dir);
        std::move(done)(std::move(s), kBackend);
      };
      if (absl::Status s = files_.SetMetadata(fd, metadata); !s.ok()) return finish(s);
      Post([this, fd, dir = *dir, from = std::move(from), to = std::move(to),
            finish = std::move(finish)]() mutable {
        FsyncAio(fd, false, [this, dir, from = std::move(from), to = std::move(to),
                             finish = std::move(finish)](absl::Status s) mutable {
          if (!s.ok()) return finish(s);
          helpers_->RunOnWorker([this, dir, from = std::move(from), to = std::move(to),
                        finish = std::move(finish)]() mutable {
            if (absl::Status s = files_.Rename(from, to); !s.ok()) return finish(s);
            Post([this, dir, to = std::move(to), finish = std::move(finish)]() mutable {
              FsyncAio(dir, false, [to, finish = std::move(finish)](absl::Status s) mutable {
                if (!s.ok()) {
                  s = absl::Status(s.code(), absl::StrCat("directory of ", to, ": ", s.message()));
                }
                finish(s);
              });
            });
          });
        });
      });
    });
  }

  void Unlink(std::string path, DoneCallback done) override {
    helpers_->Unlink(std::move(path), std::move(done));
  }

  void MakeDir(std::string path, DoneCallback done) override {
    helpers_->MakeDir(std::move(path), std::move(done));
  }

  void RemoveDir(std::string path, DoneCallback done) override {
    helpers_->RemoveDir(std::move(path), std::move(done));
  }

  void ReadDir(std::string path, Callback<std::vector<DirEntry>> done) override {
    helpers_->ReadDir(std::move(path), std::move(done));
  }

 private:
  // --- Data operations (engine thread) -------------------------------------

  void ReadFrom(int fd, int64_t offset, absl::Span<char> dst, size_t done_bytes,
                Cancellation* cancel, Then<size_t> done) {
    if (IsCancelled(cancel)) return std::move(done)(absl::CancelledError("read: cancelled"));
    Submit(Step::kRead, LIO_READ, fd, dst.data() + done_bytes, dst.size() - done_bytes,
           offset + static_cast<int64_t>(done_bytes), cancel,
           [this, fd, offset, dst, done_bytes, cancel, done = std::move(done)](ssize_t res) mutable {
             if (res == -ECANCELED) return std::move(done)(absl::CancelledError("read: cancelled"));
             if (res == -EINTR || res == -EAGAIN) {
               return ReadFrom(fd, offset, dst, done_bytes, cancel, std::move(done));
             }
             if (res < 0) return std::move(done)(AioError(static_cast<int>(-res), "aio_read"));
             const size_t total = done_bytes + static_cast<size_t>(res);
             if (res == 0 || total == dst.size()) return std::move(done)(total);
             ReadFrom(fd, offset, dst, total, cancel, std::move(done));  // short read
           });
  }

  void WriteTo(int fd, int64_t offset, absl::Span<const char> src, size_t done_bytes,
               absl::AnyInvocable<void(absl::Status) &&> done) {
    if (done_bytes == src.size()) return std::move(done)(absl::OkStatus());
    Submit(Step::kWrite, LIO_WRITE, fd, const_cast<char*>(src.data()) + done_bytes,
           src.size() - done_bytes, offset + static_cast<int64_t>(done_bytes), nullptr,
           [this, fd, offset, src, done_bytes, done = std::move(done)](ssize_t res) mutable {
             if (res == -EINTR || res == -EAGAIN) {
               return WriteTo(fd, offset, src, done_bytes, std::move(done));
             }
             if (res < 0) return std::move(done)(AioError(static_cast<int>(-res), "aio_write"));
             if (res == 0) {
               return std::move(done)(absl::ResourceExhaustedError("write: no progress"));
             }
             WriteTo(fd, offset, src, done_bytes + static_cast<size_t>(res), std::move(done));
           });
  }

  void FsyncAio(int fd, bool data_only, absl::AnyInvocable<void(absl::Status) &&> done) {
    Submit(Step::kFsync, data_only ? O_DSYNC : O_SYNC, fd, nullptr, 0, 0, nullptr,
           [data_only, done = std::move(done)](ssize_t res) mutable {
             std::move(done)(res < 0 ? AioError(static_cast<int>(-res),
                                                data_only ? "aio_fsync(O_DSYNC)" : "aio_fsync")
                                     : absl::OkStatus());
           });
  }

  // Starts one request: `op` is LIO_READ, LIO_WRITE, or O_SYNC/O_DSYNC for
  // aio_fsync. `done` gets the byte count or -errno, on the engine thread.
  void Submit(Step step, int op, int fd, char* buf, size_t len, int64_t offset,
              Cancellation* cancel, absl::AnyInvocable<void(ssize_t) &&> done) {
    if (const int err = InjectedErrno(faults_, step)) return std::move(done)(-err);
    auto r = std::make_unique<Request>();
    r->id = ++last_request_id_;
    r->fd = fd;
    int run_fd = fd;
    if (busy_[fd]++ > 0) {
      // glibc runs one request per descriptor at a time.
      r->dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (r->dup_fd < 0) {
        const int err = errno;
        Release(fd);
        return std::move(done)(-err);
      }
      run_fd = r->dup_fd;
    }
    std::memset(&r->cb, 0, sizeof(r->cb));
    r->cb.aio_fildes = run_fd;
    r->cb.aio_buf = buf;
    r->cb.aio_nbytes = len;
    r->cb.aio_offset = static_cast<off_t>(offset);
    r->cb.aio_sigevent.sigev_notify = SIGEV_NONE;
    int rc;
    if (op == LIO_READ) {
      rc = aio_read(&r->cb);
    } else if (op == LIO_WRITE) {
      rc = aio_write(&r->cb);
    } else {
      rc = aio_fsync(op, &r->cb);
    }
    if (rc != 0) {
      const int err = errno;
      EndRequest(*r);
      return std::move(done)(-err);
    }
    r->done = std::move(done);
    if (cancel != nullptr) {
      r->cancel = cancel;
      // Queued: CancelRequest runs between two scans, when the request is
      // in flight or gone from in_flight_. By id: once it is gone, another
      // request may live at its address.
      r->hook = cancel->AddHook(
          [this, id = r->id] { loop_.Queue([this, id] { CancelRequest(id); }); });
      if (r->hook == 0) aio_cancel(run_fd, &r->cb);  // cancelled meanwhile
    }
    in_flight_.push_back(std::move(r));
  }

  void CancelRequest(uint64_t id) {
    for (const auto& r : in_flight_) {
      if (r->id == id) {
        aio_cancel(r->cb.aio_fildes, &r->cb);
        return;
      }
    }
  }

  // Undoes Submit's bookkeeping for a request that is over.
  void EndRequest(Request& r) {
    if (r.dup_fd >= 0) close(r.dup_fd);
    Release(r.fd);
  }

  void Release(int fd) {
    auto it = busy_.find(fd);
    if (it != busy_.end() && --it->second == 0) busy_.erase(it);
  }

  // --- Engine thread (EventLoop::Driver) ----------------------------------

  // Probe: AIO must work here (glibc answers ENOSYS where it cannot).
  absl::Status Setup() override { return ArmWake(); }

  bool Idle() const override { return in_flight_.empty(); }

  void Wait() override {
    wait_list_.clear();
    wait_list_.push_back(&wake_cb_);
    for (const auto& r : in_flight_) wait_list_.push_back(&r->cb);
    aio_suspend(wait_list_.data(), static_cast<int>(wait_list_.size()), nullptr);
    if (aio_error(&wake_cb_) != EINPROGRESS) {
      aio_return(&wake_cb_);
      if (ArmWake() != absl::OkStatus()) {
        std::fprintf(stderr, "ringstore: posix_aio: cannot re-arm the wake-up request\n");
      }
    }
    Reap();
  }

  void Finish() override {
    // The wake-up request holds a glibc thread in read(): let it go.
    const uint64_t one = 1;
    while (write(loop_.wake_fd(), &one, sizeof(one)) < 0 && errno == EINTR) {
    }
    const aiocb* wake[] = {&wake_cb_};
    while (aio_error(&wake_cb_) == EINPROGRESS) aio_suspend(wake, 1, nullptr);
    aio_return(&wake_cb_);
  }

  absl::Status ArmWake() {
    std::memset(&wake_cb_, 0, sizeof(wake_cb_));
    wake_cb_.aio_fildes = loop_.wake_fd();
    wake_cb_.aio_buf = &wake_value_;
    wake_cb_.aio_nbytes = sizeof(wake_value_);
    wake_cb_.aio_sigevent.sigev_notify = SIGEV_NONE;
    if (aio_read(&wake_cb_) != 0) return AioError(errno, "aio_read of the wake-up eventfd");
    return absl::OkStatus();
  }

  // Completes every request that has finished.
  void Reap() {
    std::vector<std::unique_ptr<Request>> finished;
    auto it = std::partition(in_flight_.begin(), in_flight_.end(), [](const auto& r) {
      return aio_error(&r->cb) == EINPROGRESS;
    });
    for (auto i = it; i != in_flight_.end(); ++i) finished.push_back(std::move(*i));
    in_flight_.erase(it, in_flight_.end());
    for (auto& r : finished) {
      const int err = aio_error(&r->cb);
      const ssize_t n = aio_return(&r->cb);
      if (r->cancel != nullptr) r->cancel->RemoveHook(r->hook);
      EndRequest(*r);
      std::move(r->done)(err == 0 ? n : -err);
    }
  }

  // Any thread: runs `work` on the engine thread (at once if there).
  void Post(absl::AnyInvocable<void() &&> work) { loop_.Post(std::move(work)); }

  // The engine's duplicate of the root descriptor.
  const ScopedFd root_;
  FaultInjector* const faults_;
  const int threads_;

  // Engine thread only.
  uint64_t wake_value_ = 0;
  aiocb wake_cb_;
  std::vector<std::unique_ptr<Request>> in_flight_;
  uint64_t last_request_id_ = 0;
  std::unordered_map<int, int> busy_;
  std::vector<const aiocb*> wait_list_;

  EventLoop loop_;
  // Destroyed first (in ~PosixAioEngine): what they still run may post to
  // loop_.
  std::unique_ptr<BlockingOps> helpers_;
  // The helpers' blocking calls, for the steps of ReadFile and CommitFile.
  const PosixFiles& files_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> NewPosixAioEngine(const EngineOptions& options) {
  if (options.root_fd < 0 || options.pool == nullptr) {
    return absl::InvalidArgumentError("engine needs a root and a buffer pool");
  }
#if defined(ABSL_HAVE_THREAD_SANITIZER)
  // glibc starts AIO threads from inside libc, where ThreadSanitizer cannot
  // register them; the sanitizer's allocator then crashes in them.
  return absl::UnimplementedError("not available in a ThreadSanitizer build");
#endif
  ScopedFd root(fcntl(options.root_fd, F_DUPFD_CLOEXEC, 0));
  if (!root.valid()) return ErrnoToStatus(errno, "dup root");
  auto engine = std::make_unique<PosixAioEngine>(std::move(root), options);
  RS_RETURN_IF_ERROR(engine->Start(options.pool->count()));
  return engine;
}

}  // namespace ringstore::storage
