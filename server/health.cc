#include "server/health.h"

#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/impl/server_builder_plugin.h>

#include <chrono>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"

namespace ringstore::server {
namespace {

// Drops every builder plugin (gRPC's reflection plugin registers itself in
// every ServerBuilder of the process): the health listener serves the
// health service and nothing else.
class NoPlugins final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->clear();
  }
};

}  // namespace

void SetServing(grpc::Server* server, bool serving) {
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus("", serving);
  health->SetServingStatus(kFileStoreServiceName, serving);
}

absl::StatusOr<std::unique_ptr<HealthListener>> HealthListener::Start(
    const std::string& address) {
  std::unique_ptr<HealthListener> listener(new HealthListener());
  grpc::ServerBuilder builder;
  builder.SetOption(std::make_unique<NoPlugins>());
  builder.RegisterCallbackGenericService(&listener->unimplemented_);
  int port = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  listener->server_ = builder.BuildAndStart();
  if (listener->server_ == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address, " for health"));
  }
  if (listener->server_->GetHealthCheckService() == nullptr) {
    return absl::FailedPreconditionError("the default health service is not enabled");
  }
  listener->SetServing(false);
  listener->address_ = absl::StrCat(address.substr(0, address.rfind(':')), ":", port);
  return listener;
}

HealthListener::~HealthListener() {
  if (server_ == nullptr) return;
  // Watch calls never end by themselves: cancel them at once.
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
}

}  // namespace ringstore::server
