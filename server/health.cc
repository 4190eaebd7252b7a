#include "server/health.h"

#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/impl/server_builder_plugin.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "storage/engine/sync.h"

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

constexpr char kWatchMethod[] = "/grpc.health.v1.Health/Watch";

// Keeps one Watch call in HealthWatches from its start until its status is
// on its way (after that the call may end and its context go at any time).
class WatchInterceptor final : public grpc::experimental::Interceptor {
 public:
  WatchInterceptor(HealthWatches* watches, grpc::ServerContextBase* context)
      : watches_(watches), context_(context) {
    watches_->Add(context_);
    // gRPC runs the hooks and the destructor after this, maybe on other
    // threads, ordered in code ThreadSanitizer does not see
    // (storage/engine/sync.h).
    RS_HAPPENS_BEFORE(this);
  }
  ~WatchInterceptor() override {
    RS_HAPPENS_AFTER(this);
    watches_->Remove(context_);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* m) override {
    RS_HAPPENS_AFTER(this);
    if (m->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      watches_->Sent(context_);
    }
    if (m->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      watches_->Remove(context_);
    }
    RS_HAPPENS_BEFORE(this);
    m->Proceed();
  }

 private:
  HealthWatches* const watches_;
  grpc::ServerContextBase* const context_;
};

class WatchFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit WatchFactory(HealthWatches* watches) : watches_(watches) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    // Every other call goes without an interceptor of this kind.
    if (info->method() == nullptr || std::strcmp(info->method(), kWatchMethod) != 0) {
      return nullptr;
    }
    return new WatchInterceptor(watches_, info->server_context());
  }

 private:
  HealthWatches* const watches_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
HealthWatches::NewFactory() {
  return std::make_unique<WatchFactory>(this);
}

HealthWatches::~HealthWatches() { std::lock_guard<std::mutex> lock(mu_); }

void HealthWatches::Add(grpc::ServerContextBase* context) {
  std::lock_guard<std::mutex> lock(mu_);
  calls_[context] = false;
}

void HealthWatches::Sent(grpc::ServerContextBase* context) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = calls_.find(context);
    if (it == calls_.end()) return;
    it->second = true;
  }
  sent_.notify_all();
}

void HealthWatches::Remove(grpc::ServerContextBase* context) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.erase(context);
  }
  sent_.notify_all();
}

void HealthWatches::MarkDrain() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [context, sent] : calls_) sent = false;
}

void HealthWatches::CancelAll(std::chrono::milliseconds grace) {
  std::unique_lock<std::mutex> lock(mu_);
  sent_.wait_for(lock, grace, [this] {
    for (const auto& [context, sent] : calls_) {
      if (!sent) return false;
    }
    return true;
  });
  // The message is on its way; give the transport a moment to put it on
  // the wire before the cancellation resets the stream.
  if (calls_.empty()) return;
  lock.unlock();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  lock.lock();
  // Under the lock: a call still in the map has not sent its status, so
  // its context is alive. TryCancel only starts the cancellation; the
  // call's reactor finishes it on a gRPC thread.
  for (const auto& [context, sent] : calls_) context->TryCancel();
  calls_.clear();
}

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
