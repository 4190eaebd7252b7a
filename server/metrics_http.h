// Serves a MetricsRegistry at GET /metrics over plain HTTP (DESIGN.md §5,
// --metrics_listen), with cpp-httplib (Debian's libcpp-httplib) on its own
// threads: a scrape never runs on a gRPC or engine thread.
#ifndef RINGSTORE_SERVER_METRICS_HTTP_H_
#define RINGSTORE_SERVER_METRICS_HTTP_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/metrics.h"

namespace httplib {
class Server;
}

namespace ringstore::server {

// Splits "HOST:PORT" ("[::1]:9090" too; an empty host means every
// address); InvalidArgument if it is not that.
struct HostPort {
  std::string host;
  int port = 0;
};
absl::StatusOr<HostPort> ParseHostPort(const std::string& address);

class MetricsHttpServer {
 public:
  // Listens on `address` (port 0 picks a free port) and serves `registry`,
  // which must outlive this object. The error if it cannot bind.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const std::string& address,
                                                                   const MetricsRegistry* registry);
  // Stops listening and waits for its threads.
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // The bound address, HOST:PORT.
  const std::string& address() const { return address_; }

 private:
  MetricsHttpServer() = default;

  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  std::string address_;
};

}  // namespace ringstore::server

#endif  // RINGSTORE_SERVER_METRICS_HTTP_H_
