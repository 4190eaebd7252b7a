#include "storage/first_read_planner.h"

#include <bitset>

namespace ringstore::storage {

FirstReadPlanner::Plan FirstReadPlanner::Next(size_t buffer_bytes) {
  if (buffer_bytes < static_cast<size_t>(kLargeBytes)) return Plan::kCached;
  if (reads_.fetch_add(1, std::memory_order_relaxed) % kProbeEvery == 0) return Plan::kProbe;
  return predicts_cold() ? Plan::kDirect : Plan::kCached;
}

void FirstReadPlanner::RecordProbe(int64_t file_size, size_t buffer_bytes, bool cached) {
  Record(!cached && IsLarge(file_size, buffer_bytes));
}

void FirstReadPlanner::RecordDirect(int64_t file_size, size_t buffer_bytes) {
  // A large file that fits says nothing about the cache: it was not asked.
  if (IsLarge(file_size, buffer_bytes)) return;
  Record(false);
}

bool FirstReadPlanner::predicts_cold() const {
  constexpr uint32_t kMask = (uint32_t{1} << kWindow) - 1;
  const std::bitset<32> window(outcomes_.load(std::memory_order_relaxed) & kMask);
  return 2 * static_cast<int>(window.count()) >= kWindow;
}

void FirstReadPlanner::Record(bool large_miss) {
  uint32_t old = outcomes_.load(std::memory_order_relaxed);
  while (!outcomes_.compare_exchange_weak(old, (old << 1) | (large_miss ? 1u : 0u),
                                          std::memory_order_relaxed)) {
  }
}

}  // namespace ringstore::storage
