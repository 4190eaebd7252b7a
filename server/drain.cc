#include "server/drain.h"

#include <cstring>

#include "storage/engine/sync.h"

namespace ringstore::server {
namespace {

constexpr char kFileStorePrefix[] = "/ringstore.v1.FileStore/";

class CallCounter final : public grpc::experimental::Interceptor {
 public:
  explicit CallCounter(Drain* drain) : drain_(drain) {
    drain_->Started();
    // gRPC runs the hooks and the destructor after this, maybe on other
    // threads, ordered in code ThreadSanitizer does not see
    // (storage/engine/sync.h).
    RS_HAPPENS_BEFORE(this);
  }
  ~CallCounter() override {
    RS_HAPPENS_AFTER(this);
    drain_->Ended();
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* m) override { m->Proceed(); }

 private:
  Drain* const drain_;
};

class CallCounterFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CallCounterFactory(Drain* drain) : drain_(drain) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    // Health and reflection calls go uncounted.
    if (info->method() == nullptr ||
        std::strncmp(info->method(), kFileStorePrefix, sizeof(kFileStorePrefix) - 1) != 0) {
      return nullptr;
    }
    return new CallCounter(drain_);
  }

 private:
  Drain* const drain_;
};

}  // namespace

Drain::~Drain() { std::lock_guard<std::mutex> lock(mu_); }

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> Drain::NewFactory() {
  return std::make_unique<CallCounterFactory>(this);
}

void Drain::Started() {
  std::lock_guard<std::mutex> lock(mu_);
  ++in_flight_;
}

void Drain::Ended() {
  std::lock_guard<std::mutex> lock(mu_);
  // Notified under the lock: a waiter that returns may destroy the Drain.
  if (--in_flight_ == 0) none_.notify_all();
}

int64_t Drain::WaitForCalls(absl::Time deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  none_.wait_until(lock, absl::ToChronoTime(deadline), [this] { return in_flight_ == 0; });
  return in_flight_;
}

}  // namespace ringstore::server
