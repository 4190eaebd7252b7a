#include "server/server_metrics.h"

#include <memory>
#include <string>
#include <utility>

namespace ringstore::server {
namespace {

template <typename T>
double Read(const std::function<T()>& f) {
  return f ? static_cast<double>(f()) : 0;
}

}  // namespace

void RegisterServerMetrics(MetricsRegistry* registry, GaugeSources sources) {
  auto s = std::make_shared<const GaugeSources>(std::move(sources));
  registry->AddCallback("ringstore_buffer_pool_buffers",
                        "I/O buffers of the pool, free or in use.", MetricType::kGauge,
                        {"state"}, [s](SampleSink& sink) {
                          const double all = Read(s->pool_buffers);
                          const double free = Read(s->pool_free);
                          sink.Add({"free"}, free);
                          sink.Add({"in_use"}, all - free);
                        });
  registry->AddCallbackGauge("ringstore_buffer_pool_waiters",
                             "Calls waiting for a buffer of the pool.",
                             [s] { return Read(s->pool_waiters); });
  // Absent while the store does not know its size (no quota, no clean
  // count at start-up: storage/store.h used_bytes()).
  registry->AddCallback("ringstore_store_bytes",
                        "Bytes of committed files and uploads in flight.", MetricType::kGauge,
                        {}, [s](SampleSink& sink) {
                          const int64_t bytes = s->store_bytes ? s->store_bytes() : -1;
                          if (bytes >= 0) sink.Add({}, static_cast<double>(bytes));
                        });
  registry->AddCallbackGauge("ringstore_store_quota_bytes",
                             "The store's quota (--max_store_bytes); 0 = none.",
                             [s] { return Read(s->store_quota_bytes); });
  // Each family takes its own snapshot: one is a few relaxed loads per ring.
  auto engine = [s] { return s->engine_stats ? s->engine_stats() : storage::EngineStats(); };
  registry->AddCallback("ringstore_io_uring_submits_total",
                        "io_uring_enter calls that submitted SQEs.", MetricType::kCounter, {},
                        [engine](SampleSink& sink) {
                          sink.Add({}, static_cast<double>(engine().io_uring_submits));
                        });
  registry->AddCallback(
      "ringstore_io_uring_sqes_total",
      "SQEs submitted to io_uring; divided by the submits, the batching.", MetricType::kCounter,
      {}, [engine](SampleSink& sink) {
        sink.Add({}, static_cast<double>(engine().io_uring_sqes));
      });
  registry->AddCallback("ringstore_io_uring_fixed_buffer_ops_total",
                        "read_fixed and write_fixed SQEs on the registered buffer pool.",
                        MetricType::kCounter, {}, [engine](SampleSink& sink) {
                          sink.Add({}, static_cast<double>(engine().io_uring_fixed_buffer_ops));
                        });
  registry->AddCallback("ringstore_io_uring_sqpoll",
                        "1 if the io_uring rings run with SQPOLL (--io_uring_sqpoll), else 0.",
                        MetricType::kGauge, {}, [engine](SampleSink& sink) {
                          sink.Add({}, engine().io_uring_sqpoll ? 1 : 0);
                        });
  registry->AddCallback(
      "ringstore_engine_fallbacks_total",
      "Operations an engine refused at run time (ENOSYS, EOPNOTSUPP, EPERM) and the next ran.",
      MetricType::kCounter, {"from", "to"}, [engine](SampleSink& sink) {
        for (const storage::EngineStats::Fallback& f : engine().fallbacks) {
          sink.Add({std::string(storage::BackendName(f.from)),
                    std::string(storage::BackendName(f.to))},
                   static_cast<double>(f.count));
        }
      });
}

}  // namespace ringstore::server
