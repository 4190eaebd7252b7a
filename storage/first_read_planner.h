// FirstReadPlanner: how the store reads a file it reads for the first time
// (one its metadata cache does not know): through the page cache, or around
// it (O_DIRECT, Engine's ReadFileOptions::direct).
//
// Around the cache pays only for large files that are not cached. On a cold
// 1 MiB file, filling page cache pages and copying them into the pool buffer
// cost more of the server's CPU than everything else together; reading
// straight into the pool buffer served 1.9x the cold 1 MiB downloads per
// second at half the CPU. On cold 64 KiB files the direct read lost (0.79x),
// and on a cached file it would go to the disk in vain. Whether a file is
// cached can be asked (ReadFileOptions::cached_only: a read that stops where
// the cache does), but asking costs a second open on a miss: 17 % of the
// cold 64 KiB rate, 30 % of the cold 1 MiB one (bench/RESULTS.md).
//
// So the planner asks only now and then, and predicts from the answers: one
// first read in kProbeEvery is a probe (kProbe: cached_only, then on a miss
// a second read through the cache, which the probe has set the kernel
// filling); the others go around the cache (kDirect) while at least
// half of the last kWindow outcomes were large misses, else through it
// (kCached). An outcome is a probe's (a large miss: the cache lacked some
// of a large file, IsLarge) or a direct read's that found a file that is
// not large (never a large miss). Only buffers
// of at least kLargeBytes are planned; smaller ones are read through the
// cache (kCached), as is everything whose outcome is not recorded.
//
// Thread-safe and lock-free: a plan and an outcome are a few relaxed
// atomic operations; concurrent outcomes may be recorded in either order.
#ifndef RINGSTORE_STORAGE_FIRST_READ_PLANNER_H_
#define RINGSTORE_STORAGE_FIRST_READ_PLANNER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace ringstore::storage {

class FirstReadPlanner {
 public:
  enum class Plan { kCached, kProbe, kDirect };

  static constexpr int64_t kLargeBytes = 512 << 10;
  static constexpr uint32_t kProbeEvery = 16;
  static constexpr int kWindow = 16;

  // The plan for the next first read into a buffer of `buffer_bytes`.
  Plan Next(size_t buffer_bytes);

  // What a kProbe read found: the file's size, and whether the page cache
  // held all of what the buffer could take of it.
  void RecordProbe(int64_t file_size, size_t buffer_bytes, bool cached);

  // What a kDirect read found: the file's size.
  void RecordDirect(int64_t file_size, size_t buffer_bytes);

  // At least half of the last kWindow outcomes were large misses.
  bool predicts_cold() const;

  // A file direct reads pay for, when it is not cached: at least
  // kLargeBytes, and it fits the buffer.
  static bool IsLarge(int64_t file_size, size_t buffer_bytes) {
    return file_size >= kLargeBytes && file_size <= static_cast<int64_t>(buffer_bytes);
  }

 private:
  void Record(bool large_miss);

  std::atomic<uint32_t> reads_{0};
  // The last kWindow outcomes, newest in bit 0; 1 = a large miss.
  std::atomic<uint32_t> outcomes_{0};
};

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_FIRST_READ_PLANNER_H_
