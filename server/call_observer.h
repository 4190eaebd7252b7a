// Watches every call on the server from outside the service: a gRPC server
// interceptor (grpc::experimental::ServerInterceptorFactoryInterface) that
// sees each call's method, the messages it receives and sends, its final
// status and the ringstore-backend trailer (convert.h), and turns them into
// metrics (DESIGN.md §5's ringstore_requests_total,
// ringstore_request_duration_seconds, ringstore_bytes_total,
// ringstore_uploads_in_progress) and access log lines (access_log.h). The
// reactors know nothing of it; main() installs it only when metrics or the
// access log is on, so with both off a call pays nothing.
//
// Labels: `method` is the FileStore RPC's name ("Download"), or
// "SERVICE/METHOD" for the health and reflection services, or "other" for
// any method the server does not know (so a client cannot create series at
// will); `code` the status code's name ("NOT_FOUND"); `backend` the
// trailer's engine name, or "none" when the call touched no file. Bytes are
// protobuf message bytes (the file data plus a few bytes of framing per
// message), added when the call ends. A call the client cancels before the
// server sent a status counts as CANCELLED.
//
// Hot path: the metric cells of a call are found once per (method, code,
// backend) and kept in an array; a call does a few relaxed atomic adds.
#ifndef RINGSTORE_SERVER_CALL_OBSERVER_H_
#define RINGSTORE_SERVER_CALL_OBSERVER_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "server/access_log.h"
#include "server/metrics.h"

namespace ringstore::server {

class CallObserver {
 public:
  // Either may be null (that output is off); both must outlive this.
  CallObserver(MetricsRegistry* metrics, AccessLog* access_log);
  ~CallObserver();
  CallObserver(const CallObserver&) = delete;
  CallObserver& operator=(const CallObserver&) = delete;

  // For grpc::ServerBuilder::experimental().SetInterceptorCreators. The
  // factory refers to this observer, which must outlive the server.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewFactory();

  // What a call reports when it ends (call_observer.cc's interceptor).
  struct MethodSpec;
  struct CallResult {
    const MethodSpec* method = nullptr;
    int code = 0;     // grpc::StatusCode
    int backend = 0;  // index into backend names; 0 = none
    uint64_t bytes_in = 0;
    uint64_t bytes_out = 0;
    double seconds = 0;
  };
  void Record(const CallResult& result);

  const MethodSpec* FindMethod(const char* path) const;
  // Index of a ringstore-backend trailer's value; 0 if unknown.
  int BackendIndex(const std::string& name) const;
  const std::string& BackendLabel(int index) const { return backends_[index]; }
  bool metrics_on() const { return metrics_ != nullptr; }
  AccessLog* access_log() const { return access_log_; }
  Gauge* uploads_in_progress() const { return uploads_in_progress_; }

  static constexpr int kCodes = 17;  // grpc::StatusCode 0..16

 private:
  struct MethodCells;

  MetricsRegistry* const metrics_;
  AccessLog* const access_log_;
  // "none", then the engines' names (storage::BackendName).
  std::vector<std::string> backends_;
  std::vector<std::unique_ptr<MethodSpec>> methods_;
  std::unique_ptr<MethodSpec> other_;

  CounterFamily* requests_ = nullptr;
  HistogramFamily* durations_ = nullptr;
  CounterFamily* bytes_ = nullptr;
  Gauge* uploads_in_progress_ = nullptr;
};

}  // namespace ringstore::server

#endif  // RINGSTORE_SERVER_CALL_OBSERVER_H_
