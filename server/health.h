// Health (DESIGN.md §5): grpc.health.v1 on the main port (gRPC's default
// health service) and, with --health_listen, on a plaintext listener that
// serves nothing else, for Kubernetes' native gRPC probe (which cannot
// speak TLS).
//
// Both report SERVING for "" and "ringstore.v1.FileStore" once the server
// accepts calls, and NOT_SERVING from the first moment of a drain. The
// health listener stays up through the drain, answering NOT_SERVING, and
// stops after the main server has stopped.
#ifndef RINGSTORE_SERVER_HEALTH_H_
#define RINGSTORE_SERVER_HEALTH_H_

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <mutex>
#include <map>
#include <condition_variable>
#include <chrono>
#include <string>

#include "absl/status/statusor.h"

namespace ringstore::server {

// The service name probes ask about besides "".
inline constexpr char kFileStoreServiceName[] = "ringstore.v1.FileStore";

// Sets "" and kFileStoreServiceName on `server`'s default health service
// (grpc::EnableDefaultHealthCheckService must have been on when it was
// built). Thread-safe.
void SetServing(grpc::Server* server, bool serving);

// gRPC's default health service never ends a Watch call by itself: a
// client that watches the main port (gRPC's client-side health checking
// does) would hold every drain open for the whole --drain_timeout. This
// keeps the Watch calls in flight, through a server interceptor that sees
// only them, and cancels them when the drain begins, just after they have
// been told NOT_SERVING.
class HealthWatches {
 public:
  HealthWatches() = default;
  // After the server is gone. Takes the lock once, so that the last Remove
  // (a Watch's interceptor, destroyed on a gRPC thread) is ordered before.
  ~HealthWatches();
  HealthWatches(const HealthWatches&) = delete;
  HealthWatches& operator=(const HealthWatches&) = delete;

  // For ServerBuilder::experimental().SetInterceptorCreators; this object
  // must outlive the server.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewFactory();

  // The drain: MarkDrain() before the health services are set NOT_SERVING,
  // then CancelAll() cancels every Watch call in flight (their clients see
  // CANCELLED), each once it has started sending a message since
  // MarkDrain() (that NOT_SERVING), or after `grace`. Blocks up to `grace`.
  void MarkDrain();
  void CancelAll(std::chrono::milliseconds grace);

  // The interceptor's side (health.cc).
  void Add(grpc::ServerContextBase* context);
  void Sent(grpc::ServerContextBase* context);
  void Remove(grpc::ServerContextBase* context);

 private:
  std::mutex mu_;
  std::condition_variable sent_;
  // Each Watch in flight, and whether it has sent a message since the
  // drain began.
  std::map<grpc::ServerContextBase*, bool> calls_;  // guarded by mu_
};

class HealthListener {
 public:
  // Starts a plaintext server on `address` (HOST:PORT, port 0 picks one)
  // with only the default health service, reporting NOT_SERVING until
  // SetServing(true). Needs grpc::EnableDefaultHealthCheckService(true).
  static absl::StatusOr<std::unique_ptr<HealthListener>> Start(const std::string& address);
  // Stops it (calls in flight, such as a Watch, are cancelled).
  ~HealthListener();
  HealthListener(const HealthListener&) = delete;
  HealthListener& operator=(const HealthListener&) = delete;

  void SetServing(bool serving) { server::SetServing(server_.get(), serving); }
  // The bound address, HOST:PORT.
  const std::string& address() const { return address_; }

 private:
  HealthListener() = default;
  // Answers every method but health's with UNIMPLEMENTED. Registered
  // because gRPC's builder refuses a server without a service of its own
  // (the default health service is added later, by the server).
  grpc::CallbackGenericService unimplemented_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

}  // namespace ringstore::server

#endif  // RINGSTORE_SERVER_HEALTH_H_
