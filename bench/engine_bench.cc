// Engine benchmark: the same files, the same operations, every engine, one
// run (DESIGN.md §7: timing claims live here, never in a test).
//
//   bazel run -c opt //bench:engine_bench -- --dir=/var/tmp/ringstore-bench
//
// Cases (each at a fixed concurrency, through the Engine interface alone):
//   SmallFiles    10,000 files of 4 KiB, each opened, read whole, closed;
//                 64 files in flight.
//   SmallFilesReadFile  the same through Engine::ReadFile with the metadata
//                 attribute (one linked open→fgetxattr→read→close chain per
//                 file on io_uring).
//   SmallFilesReadData  the same without the attribute (open→read→close),
//                 as a download does when the store knows the metadata.
//   SeqRead       a 1 GiB file read in 1 MiB blocks, 2 in flight (what a
//                 download's read-ahead does).
//   RandRead      20,000 random 4 KiB reads of that file, 32 in flight.
//   WriteFsync    256 MiB written in 1 MiB blocks, 4 in flight, then fsync.
//   WriteFsyncDirect  the same into a file opened OpenMode::kCreateDirect
//                 (O_DIRECT), as uploads are written.
//   SmallFilesReadDataCold, RandReadCold
//                 the same with the files' pages dropped from the page cache
//                 before each iteration (posix_fadvise DONTNEED; directory
//                 entries and inodes stay cached, as on a busy server), so
//                 every read goes to the disk; RandReadCold does 4,000 reads.
// Each case runs on every engine and on io_uring_sqpoll: io_uring with
// SQPOLL (--sqpoll_idle_ms=N, default 1000; --sq_cpu=N pins the kernel's SQ
// thread to CPU N, else it shares the process's affinity: run under
// `taskset -c 0` with and without --sq_cpu=1 to put it on the engine's core
// or on another). cpu_us counts the SQ thread (it is a thread of this
// process).
// Each case reports wall time and, as the counter cpu_us, the CPU time the
// whole process spent per item (file, block or read).
// Files are created once under --dir and reused. The warm cases read from
// the page cache (the machine has far more memory than data), so they
// compare the engines' own overheads; the cold cases add the disk.
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "storage/engine/buffer_pool.h"
#include "storage/engine/engine.h"
#include "storage/engine/engine_selector.h"
#include "storage/engine/sync.h"

namespace ringstore::storage {
namespace {

std::string g_dir = "/var/tmp/ringstore-bench";
int g_sqpoll_idle_ms = 1000;
int g_sq_cpu = -1;
constexpr char kSqpoll[] = "io_uring_sqpoll";
constexpr int kSmallFiles = 10000;
constexpr size_t kSmallSize = 4096;
constexpr int64_t kBigSize = int64_t{1} << 30;
constexpr size_t kBlock = 1 << 20;
constexpr int kRandomReads = 20000;
constexpr int kColdRandomReads = 4000;
constexpr int64_t kWriteSize = int64_t{256} << 20;

void Die(const std::string& what) {
  std::fprintf(stderr, "engine_bench: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

// Creates the data set once.
void PrepareFiles() {
  const std::string root = g_dir + "/root";
  mkdir(g_dir.c_str(), 0755);
  mkdir(root.c_str(), 0755);
  const std::string small = root + "/small";
  if (mkdir(small.c_str(), 0755) == 0) {
    std::string data(kSmallSize, 'x');
    for (int i = 0; i < kSmallFiles; ++i) {
      const std::string p = absl::StrCat(small, "/", i);
      const int fd = open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0 || write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) {
        Die(p);
      }
      close(fd);
    }
  }
  const std::string big = root + "/big";
  struct stat st;
  if (stat(big.c_str(), &st) != 0 || st.st_size != kBigSize) {
    const int fd = open(big.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) Die(big);
    std::string block(kBlock, '\0');
    std::mt19937_64 rng(1);
    for (int64_t off = 0; off < kBigSize; off += kBlock) {
      for (size_t i = 0; i < kBlock; i += 8) {
        const uint64_t v = rng();
        std::memcpy(&block[i], &v, 8);
      }
      if (write(fd, block.data(), kBlock) != static_cast<ssize_t>(kBlock)) Die(big);
    }
    close(fd);
  }
}

// Drops the page-cache pages of the files under --dir/root named `names`.
void DropCache(const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    const std::string p = g_dir + "/root/" + name;
    const int fd = open(p.c_str(), O_RDONLY);
    if (fd < 0) Die(p);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
  }
}

// Reads the files under --dir/root named `names` into the page cache (a
// cold case of another benchmark may have dropped them).
void WarmCache(const std::vector<std::string>& names) {
  std::vector<char> buf(kBlock);
  for (const std::string& name : names) {
    const std::string p = g_dir + "/root/" + name;
    const int fd = open(p.c_str(), O_RDONLY);
    if (fd < 0) Die(p);
    while (read(fd, buf.data(), buf.size()) > 0) {
    }
    close(fd);
  }
}

// Drops or warms `names` before each timed iteration.
void PrepareCache(benchmark::State& state, const std::vector<std::string>& names, bool cold) {
  state.PauseTiming();
  if (cold) {
    DropCache(names);
  } else {
    WarmCache(names);
  }
  state.ResumeTiming();
}

// CPU time of the whole process (every thread, io-wq workers included)
// over the timed part of the iterations, reported per item as the counter
// cpu_us: with the page cache warm every engine saturates the cores, and
// what differs is the CPU an operation costs, which a server would rather
// spend on its RPCs.
class CpuMeter {
 public:
  void Start() { start_ = Now(); }
  void Stop() { total_ += Now() - start_; }
  void Report(benchmark::State& state, int64_t items) const {
    state.counters["cpu_us"] = absl::ToDoubleMicroseconds(total_) / static_cast<double>(items);
  }

 private:
  static absl::Duration Now() {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return absl::DurationFromTimespec(ts);
  }
  absl::Duration start_, total_;
};

std::vector<std::string> SmallNames() {
  std::vector<std::string> names;
  for (int i = 0; i < kSmallFiles; ++i) names.push_back(absl::StrCat("small/", i));
  return names;
}

// One engine over the bench root with a pool big enough for every case.
struct Fixture {
  explicit Fixture(const std::string& name) {
    root_fd = open((g_dir + "/root").c_str(), O_RDONLY | O_DIRECTORY);
    if (root_fd < 0) Die("open root");
    pool = *BufferPool::Create(64, kBlock);
    EngineOptions options;
    options.root_fd = root_fd;
    options.pool = pool.get();
    const bool sqpoll = name == kSqpoll;
    if (sqpoll) options.io_uring_sqpoll_idle_ms = g_sqpoll_idle_ms;
    auto e = StartSingleEngine(sqpoll ? "io_uring" : name, options);
    if (!e.ok()) {
      std::fprintf(stderr, "engine_bench: %s: %s\n", name.c_str(), e.status().ToString().c_str());
      return;
    }
    engine = *std::move(e);
    if (sqpoll && !engine->stats().io_uring_sqpoll) {
      std::fprintf(stderr, "engine_bench: the kernel refused SQPOLL\n");
      engine.reset();
    }
    if (sqpoll && g_sq_cpu >= 0) PinSqThread();
  }
  // Pins the kernel's SQ thread ("iou-sqp-PID", a thread of this process).
  void PinSqThread() const {
    DIR* d = opendir("/proc/self/task");
    if (d == nullptr) Die("/proc/self/task");
    while (dirent* ent = readdir(d)) {
      std::ifstream comm(absl::StrCat("/proc/self/task/", ent->d_name, "/comm"));
      std::string name;
      std::getline(comm, name);
      if (name.rfind("iou-sqp", 0) != 0) continue;
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(g_sq_cpu, &set);
      if (sched_setaffinity(std::atoi(ent->d_name), sizeof(set), &set) != 0) Die("pin SQ thread");
    }
    closedir(d);
  }
  ~Fixture() {
    engine.reset();
    close(root_fd);
  }
  int root_fd = -1;
  std::unique_ptr<BufferPool> pool;
  std::unique_ptr<Engine> engine;
};

// Indexes of the buffers free for operations in flight.
class Slots {
 public:
  explicit Slots(int n) {
    for (int i = n - 1; i >= 0; --i) free_.push_back(i);
  }
  int Take() {
    MutexLock lock(&mu_);
    const int s = free_.back();
    free_.pop_back();
    return s;
  }
  void Give(int s) {
    MutexLock lock(&mu_);
    free_.push_back(s);
  }

 private:
  Mutex mu_;
  std::vector<int> free_;
};

// Runs `count` operations with at most `depth` in flight. `start(i, done)`
// begins operation i and must call done(ok) exactly once, from any thread.
bool RunPipelined(int count, int depth, std::function<void(int, std::function<void(bool)>)> start) {
  Mutex mu;
  int next = 0, finished = 0;
  bool ok = true;
  std::function<void()> launch;
  std::function<void(bool)> on_done = [&](bool success) {
    int i = -1;
    {
      MutexLock lock(&mu);
      ++finished;
      ok &= success;
      if (next < count) i = next++;
    }
    if (i >= 0) start(i, on_done);
  };
  std::vector<int> first;
  {
    MutexLock lock(&mu);
    while (next < count && next < depth) first.push_back(next++);
  }
  for (int i : first) start(i, on_done);
  std::pair<int*, int> until(&finished, count);
  MutexLock lock(&mu);
  mu.Await(absl::Condition(+[](std::pair<int*, int>* p) { return *p->first == p->second; },
                           &until));
  return ok;
}

void SmallFiles(benchmark::State& state, const char* engine_name) {
  Fixture f(engine_name);
  if (!f.engine) return state.SkipWithError("engine unavailable");
  Engine* e = f.engine.get();
  constexpr int kDepth = 64;
  std::vector<PooledBuffer> bufs;
  for (int i = 0; i < kDepth; ++i) bufs.push_back(f.pool->TryAcquire());
  const std::vector<std::string> names = SmallNames();
  CpuMeter cpu;
  for (auto _ : state) {
    PrepareCache(state, names, /*cold=*/false);
    cpu.Start();
    Slots slots(kDepth);
    const bool ok = RunPipelined(kSmallFiles, kDepth, [&](int i, std::function<void(bool)> done) {
      const int s = slots.Take();
      auto finish = [&slots, s, done](bool success) {
        slots.Give(s);
        done(success);
      };
      char* buf = bufs[s].data();
      e->Open(absl::StrCat("small/", i), OpenMode::kRead,
              [e, buf, finish](absl::StatusOr<FileHandle> h, Backend) {
                if (!h.ok()) return finish(false);
                e->Read(*h, 0, absl::Span<char>(buf, kBlock), nullptr,
                        [e, h = *h, finish](absl::StatusOr<size_t> n, Backend) {
                          const bool good = n.ok() && *n == kSmallSize;
                          e->Close(h, [finish, good](absl::Status s, Backend) {
                            finish(good && s.ok());
                          });
                        });
              });
    });
    cpu.Stop();
    if (!ok) return state.SkipWithError("small file read failed");
  }
  cpu.Report(state, state.iterations() * kSmallFiles);
  state.SetItemsProcessed(state.iterations() * kSmallFiles);
  state.SetBytesProcessed(state.iterations() * kSmallFiles * kSmallSize);
}

// The same files through Engine::ReadFile: one linked chain per file on
// io_uring; with the metadata attribute if `metadata`, from the disk if
// `cold`.
void SmallFilesReadFile(benchmark::State& state, const char* engine_name, bool metadata,
                        bool cold) {
  ReadFileOptions options;
  options.metadata = metadata;
  Fixture f(engine_name);
  if (!f.engine) return state.SkipWithError("engine unavailable");
  Engine* e = f.engine.get();
  constexpr int kDepth = 64;
  std::vector<PooledBuffer> bufs;
  for (int i = 0; i < kDepth; ++i) bufs.push_back(f.pool->TryAcquire());
  const std::vector<std::string> names = SmallNames();
  CpuMeter cpu;
  for (auto _ : state) {
    PrepareCache(state, names, cold);
    cpu.Start();
    Slots slots(kDepth);
    const bool ok = RunPipelined(kSmallFiles, kDepth, [&](int i, std::function<void(bool)> done) {
      const int s = slots.Take();
      e->ReadFile(absl::StrCat("small/", i), bufs[s].span(), options,
                  [&slots, s, done](absl::StatusOr<FileRead> r, Backend) {
                    slots.Give(s);
                    if (!r.ok() || r->length != kSmallSize) {
                      std::fprintf(stderr, "engine_bench: ReadFile: %s\n",
                                   r.ok() ? absl::StrCat(r->length, " bytes").c_str()
                                          : r.status().ToString().c_str());
                    }
                    done(r.ok() && r->length == kSmallSize);
                  });
    });
    cpu.Stop();
    if (!ok) return state.SkipWithError("small file read failed");
  }
  cpu.Report(state, state.iterations() * kSmallFiles);
  state.SetItemsProcessed(state.iterations() * kSmallFiles);
  state.SetBytesProcessed(state.iterations() * kSmallFiles * kSmallSize);
}

// Reads `count` blocks of `size` at offsets(i) from the big file; `cold`:
// from the disk.
void ReadBig(benchmark::State& state, const char* engine_name, int count, int depth, size_t size,
             const std::function<int64_t(int)>& offset_of, bool cold = false) {
  Fixture f(engine_name);
  if (!f.engine) return state.SkipWithError("engine unavailable");
  Engine* e = f.engine.get();
  FileHandle file;
  {
    Notification opened;
    e->Open("big", OpenMode::kRead, [&](absl::StatusOr<FileHandle> h, Backend) {
      file = *h;
      opened.Notify();
    });
    opened.WaitForNotification();
  }
  std::vector<PooledBuffer> bufs;
  for (int i = 0; i < depth; ++i) bufs.push_back(f.pool->TryAcquire());
  CpuMeter cpu;
  for (auto _ : state) {
    PrepareCache(state, {"big"}, cold);
    cpu.Start();
    Slots slots(depth);
    const bool ok = RunPipelined(count, depth, [&](int i, std::function<void(bool)> done) {
      const int s = slots.Take();
      e->Read(file, offset_of(i), absl::Span<char>(bufs[s].data(), size), nullptr,
              [&slots, s, size, done](absl::StatusOr<size_t> n, Backend) {
                slots.Give(s);
                done(n.ok() && *n == size);
              });
    });
    cpu.Stop();
    if (!ok) return state.SkipWithError("read failed");
  }
  cpu.Report(state, state.iterations() * count);
  Notification closed;
  e->Close(file, [&](absl::Status, Backend) { closed.Notify(); });
  closed.WaitForNotification();
  state.SetItemsProcessed(state.iterations() * count);
  state.SetBytesProcessed(state.iterations() * count * static_cast<int64_t>(size));
}

void SeqRead(benchmark::State& state, const char* engine_name) {
  ReadBig(state, engine_name, static_cast<int>(kBigSize / kBlock), 2, kBlock,
          [](int i) { return static_cast<int64_t>(i) * kBlock; });
}

void RandRead(benchmark::State& state, const char* engine_name, bool cold) {
  const int count = cold ? kColdRandomReads : kRandomReads;
  std::vector<int64_t> offsets(count);
  std::mt19937_64 rng(7);
  for (int64_t& o : offsets) o = static_cast<int64_t>(rng() % (kBigSize / 4096)) * 4096;
  ReadBig(state, engine_name, count, 32, 4096, [&](int i) { return offsets[i]; }, cold);
}

void WriteFsync(benchmark::State& state, const char* engine_name, OpenMode mode) {
  Fixture f(engine_name);
  if (!f.engine) return state.SkipWithError("engine unavailable");
  Engine* e = f.engine.get();
  constexpr int kDepth = 4;
  std::vector<PooledBuffer> bufs;
  for (int i = 0; i < kDepth; ++i) {
    bufs.push_back(f.pool->TryAcquire());
    std::memset(bufs.back().data(), 'w', kBlock);
  }
  const std::string name = absl::StrCat("write-", engine_name);
  constexpr int kBlocks = static_cast<int>(kWriteSize / kBlock);
  CpuMeter cpu;
  for (auto _ : state) {
    state.PauseTiming();
    unlink((g_dir + "/root/" + name).c_str());
    state.ResumeTiming();
    cpu.Start();
    FileHandle file;
    Notification opened;
    e->Open(name, mode, [&](absl::StatusOr<FileHandle> h, Backend) {
      if (h.ok()) file = *h;
      opened.Notify();
    });
    opened.WaitForNotification();
    if (file.id < 0) return state.SkipWithError("create failed");
    const bool ok = RunPipelined(kBlocks, kDepth,
                                 [&](int i, std::function<void(bool)> done) {
                                   e->Write(file, static_cast<int64_t>(i) * kBlock,
                                            absl::Span<const char>(bufs[i % kDepth].data(), kBlock),
                                            [done](absl::Status s, Backend) { done(s.ok()); });
                                 });
    Notification synced;
    bool sync_ok = false;
    e->Sync(file, false, [&](absl::Status s, Backend) {
      sync_ok = s.ok();
      e->Close(file, [&](absl::Status, Backend) { synced.Notify(); });
    });
    synced.WaitForNotification();
    cpu.Stop();
    if (!ok || !sync_ok) return state.SkipWithError("write failed");
  }
  unlink((g_dir + "/root/" + name).c_str());
  cpu.Report(state, state.iterations() * kBlocks);
  state.SetItemsProcessed(state.iterations() * kBlocks);
  state.SetBytesProcessed(state.iterations() * kWriteSize);
}

}  // namespace
}  // namespace ringstore::storage

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--dir=", 6) == 0) ringstore::storage::g_dir = argv[i] + 6;
    if (std::strncmp(argv[i], "--sqpoll_idle_ms=", 17) == 0) {
      ringstore::storage::g_sqpoll_idle_ms = std::atoi(argv[i] + 17);
    }
    if (std::strncmp(argv[i], "--sq_cpu=", 9) == 0) {
      ringstore::storage::g_sq_cpu = std::atoi(argv[i] + 9);
    }
  }
  benchmark::Initialize(&argc, argv);
  // As in ringstore-server: Debian's Abseil is built with the deadlock
  // detector on, which would tax every lock of the harness.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  ringstore::storage::PrepareFiles();
  using namespace ringstore::storage;  // NOLINT
  // Interleaved: each case runs for every engine before the next case.
  const std::pair<const char*, std::function<void(benchmark::State&, const char*)>> cases[] = {
      {"SmallFiles", SmallFiles},
      {"SmallFilesReadFile",
       [](benchmark::State& s, const char* e) { SmallFilesReadFile(s, e, true, false); }},
      {"SmallFilesReadData",
       [](benchmark::State& s, const char* e) { SmallFilesReadFile(s, e, false, false); }},
      {"SmallFilesReadDataCold",
       [](benchmark::State& s, const char* e) { SmallFilesReadFile(s, e, false, true); }},
      {"SeqRead", SeqRead},
      {"RandRead", [](benchmark::State& s, const char* e) { RandRead(s, e, false); }},
      {"RandReadCold", [](benchmark::State& s, const char* e) { RandRead(s, e, true); }},
      {"WriteFsync",
       [](benchmark::State& s, const char* e) { WriteFsync(s, e, OpenMode::kCreateWrite); }},
      {"WriteFsyncDirect",
       [](benchmark::State& s, const char* e) { WriteFsync(s, e, OpenMode::kCreateDirect); }},
  };
  for (const auto& [name, fn] : cases) {
    // Every engine of engine_list.h, the last resort first. Its names are
    // string literals, so data() is NUL-terminated.
    std::vector<const char*> engines;
    for (auto kind = AllEngines().rbegin(); kind != AllEngines().rend(); ++kind) {
      engines.push_back(kind->name.data());
    }
    engines.push_back(kSqpoll);
    for (const char* engine : engines) {
      benchmark::RegisterBenchmark(absl::StrCat(name, "/", engine).c_str(), fn, engine)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
