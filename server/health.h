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

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace ringstore::server {

// The service name probes ask about besides "".
inline constexpr char kFileStoreServiceName[] = "ringstore.v1.FileStore";

// Sets "" and kFileStoreServiceName on `server`'s default health service
// (grpc::EnableDefaultHealthCheckService must have been on when it was
// built). Thread-safe.
void SetServing(grpc::Server* server, bool serving);

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
