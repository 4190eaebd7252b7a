#include "bench/load_gen_report.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "client/cli.h"
#include "client/client.h"

namespace ringstore::bench {

using client::JsonString;

std::string BackendName(int b) {
  const std::string name = client::BackendName(static_cast<v1::Backend>(b));
  return name.empty() ? "unspecified" : name;
}

int ReportedBackend(v1::Backend in_message, const grpc::ClientContext& context) {
  if (in_message > 0 && in_message < kBackendSlots) return in_message;
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find("ringstore-backend");
  if (it == trailers.end()) return v1::BACKEND_UNSPECIFIED;
  const absl::string_view name(it->second.data(), it->second.size());
  for (int b = 1; b < kBackendSlots; ++b) {
    if (name == BackendName(b)) return b;
  }
  return v1::BACKEND_UNSPECIFIED;
}

void ErrorLog::Add(const grpc::Status& status) {
  // absl and gRPC share the canonical code numbering.
  const std::string code =
      absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()));
  MutexLock lock(&mu_);
  for (Entry& e : entries_) {
    if (e.code == code && e.message == status.error_message()) {
      ++e.count;
      return;
    }
  }
  if (entries_.size() < kMaxDistinctErrors) {
    entries_.push_back({code, status.error_message(), 1});
  }
}

std::string ErrorLog::Json() const {
  MutexLock lock(&mu_);
  std::string out = "[";
  for (size_t i = 0; i < entries_.size(); ++i) {
    absl::StrAppend(&out, i ? "," : "", "{\"code\":", JsonString(entries_[i].code),
                    ",\"message\":", JsonString(entries_[i].message),
                    ",\"count\":", entries_[i].count, "}");
  }
  return out + "]";
}

double PercentileMs(const std::vector<int64_t>& v, int64_t num, int64_t den) {
  if (v.empty()) return 0;
  const int64_t n = static_cast<int64_t>(v.size());
  const int64_t rank = std::max<int64_t>(1, (n * num + den - 1) / den);
  return static_cast<double>(v[static_cast<size_t>(rank - 1)]) / 1e6;
}

std::string ReportJson(const Config& config, const std::string& server_engine, double seconds,
                       const StreamStats& all, const ErrorLog& errors) {
  const std::vector<int64_t>& latencies = all.latencies_ns;
  std::string backend;
  std::string backend_counts;
  for (int b = 0; b < kBackendSlots; ++b) {
    if (all.backends[b] == 0) continue;
    backend = backend.empty() ? BackendName(b) : "mixed";
    absl::StrAppend(&backend_counts, backend_counts.empty() ? "" : ",",
                    JsonString(BackendName(b)), ":", all.backends[b]);
  }
  const double safe_seconds = seconds > 0 ? seconds : 1e-9;
  std::string json = absl::StrCat(
      "{\"mode\":", JsonString(config.mode_name), ",\"server\":", JsonString(config.server),
      ",\"concurrency\":", config.concurrency, ",\"channels\":", config.channels,
      ",\"requests\":", all.requests, ",\"errors\":{\"count\":",
      all.requests - static_cast<int64_t>(latencies.size()), ",\"first\":", errors.Json(),
      "},\"bytes\":", all.bytes);
  absl::StrAppendFormat(
      &json,
      ",\"seconds\":%.3f,\"throughput_mib_s\":%.2f,\"requests_per_second\":%.1f,"
      "\"latency_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f}",
      seconds, static_cast<double>(all.bytes) / (1 << 20) / safe_seconds,
      static_cast<double>(all.requests) / safe_seconds, PercentileMs(latencies, 50, 100),
      PercentileMs(latencies, 99, 100), PercentileMs(latencies, 999, 1000),
      PercentileMs(latencies, 1, 1));
  if (config.mode == Mode::kBatch) {
    absl::StrAppendFormat(&json, ",\"batch_size\":%d,\"files\":%d,\"files_per_second\":%.1f",
                          config.batch_size, all.files,
                          static_cast<double>(all.files) / safe_seconds);
  }
  absl::StrAppend(&json, ",\"backend\":", JsonString(backend), ",\"backends\":{", backend_counts,
                  "},\"server_engine\":", JsonString(server_engine), "}");
  return json;
}

}  // namespace ringstore::bench
