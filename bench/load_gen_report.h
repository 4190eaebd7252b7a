// load_gen's run: its configuration, what each stream saw, and the one JSON
// object it prints (the format is described at the top of load_gen.cc).
#ifndef RINGSTORE_BENCH_LOAD_GEN_REPORT_H_
#define RINGSTORE_BENCH_LOAD_GEN_REPORT_H_

#include <grpcpp/grpcpp.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "ringstore/v1/ringstore.pb.h"
#include "storage/engine/sync.h"

namespace ringstore::bench {

namespace v1 = ::ringstore::v1;

constexpr int kMaxDistinctErrors = 5;
constexpr int kBackendSlots = 4;  // v1::Backend values 0..3

enum class Mode { kDownload, kUpload, kPopulate, kBatch };

// What the requests of one stream saw.
struct StreamStats {
  std::vector<int64_t> latencies_ns;  // successful requests only
  int64_t requests = 0;               // completed, ok or not
  int64_t bytes = 0;                  // payload of successful requests
  int64_t files = 0;                  // batch: files of successful calls
  std::array<int64_t, kBackendSlots> backends{};  // by v1::Backend
  std::vector<int64_t> uploaded;      // populate: request numbers that succeeded
};

// The backend's name for slot `b` of the counts ("unspecified" for 0).
std::string BackendName(int b);

// The backend a response named, else the one in the ringstore-backend
// trailer, else BACKEND_UNSPECIFIED (also for values this build does not
// know); always in [0, kBackendSlots).
int ReportedBackend(v1::Backend in_message, const grpc::ClientContext& context);

// The first kMaxDistinctErrors distinct errors and how often each occurred;
// errors are rare, so a lock is fine. Thread-safe.
class ErrorLog {
 public:
  void Add(const grpc::Status& status);
  // The entries as a JSON array.
  std::string Json() const;

 private:
  struct Entry {
    std::string code;
    std::string message;
    int64_t count;
  };
  mutable Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
};

// What a run was asked to do.
struct Config {
  Mode mode = Mode::kDownload;
  std::string mode_name;
  std::string server;
  int concurrency = 0;
  int channels = 0;
  absl::Duration duration;
  int64_t count = 0;
  absl::Duration rpc_timeout;
  std::string upload_prefix;
  uint64_t seed = 0;
  // Sent as "authorization: Bearer <token>" on every call when not empty.
  std::string token;
  // batch: paths per BatchDownload call.
  int batch_size = 0;
  // download: every path once, in an order shuffled by `seed`, instead of
  // random picks (request number i downloads the i-th path of that order).
  bool each_once = false;
};

// Exact nearest-rank percentile num/den of sorted `v`, in milliseconds.
double PercentileMs(const std::vector<int64_t>& v, int64_t num, int64_t den);

// The output object (see the top of load_gen.cc); `all.latencies_ns` sorted.
std::string ReportJson(const Config& config, const std::string& server_engine, double seconds,
                       const StreamStats& all, const ErrorLog& errors);

}  // namespace ringstore::bench

#endif  // RINGSTORE_BENCH_LOAD_GEN_REPORT_H_
