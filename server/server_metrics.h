// The server's gauges and engine counters, read at scrape time from the
// parts that keep them (DESIGN.md §5's metric names). main() says where
// each number comes from in one GaugeSources; the per-call metrics are
// call_observer.h's.
#ifndef RINGSTORE_SERVER_SERVER_METRICS_H_
#define RINGSTORE_SERVER_SERVER_METRICS_H_

#include <cstdint>
#include <functional>

#include "server/metrics.h"
#include "storage/engine/engine.h"

namespace ringstore::server {

// Each is called on the scraping thread, must be quick and thread-safe, and
// may be empty (the metric then reads 0).
struct GaugeSources {
  std::function<uint64_t()> pool_buffers;       // buffers in the pool
  std::function<uint64_t()> pool_free;          // of them, free now
  std::function<uint64_t()> pool_waiters;       // callers waiting for one
  std::function<int64_t()> store_bytes;         // bytes the store holds; -1 unknown
  std::function<int64_t()> store_quota_bytes;   // its quota; 0 = none
  std::function<storage::EngineStats()> engine_stats;
};

// Registers ringstore_buffer_pool_buffers{state}, ringstore_buffer_pool_waiters,
// ringstore_store_bytes, ringstore_store_quota_bytes,
// ringstore_io_uring_{submits,sqes,fixed_buffer_ops}_total and
// ringstore_engine_fallbacks_total{from,to}.
void RegisterServerMetrics(MetricsRegistry* registry, GaugeSources sources);

}  // namespace ringstore::server

#endif  // RINGSTORE_SERVER_SERVER_METRICS_H_
