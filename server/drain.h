// The drain (SIGTERM; DESIGN.md §5) in the order that loses nothing:
//
//   1. Begin(): every FileStore call that starts from now on is refused
//      with UNAVAILABLE (the handlers ask through authorize.h), after health
//      has turned NOT_SERVING.
//   2. WaitForCalls(): the calls in flight end on their own.
//   3. WaitForQueuedBytes() (socket_drain.h): the kernel has delivered what
//      they sent.
//   4. Only then grpc::Server::Shutdown, which closes the connections.
//
// Why not Shutdown at once: it closes a connection the moment its last
// call ends, while the kernel may still hold the end of a download for a
// client that reads slowly. The client then sends a flow-control update to
// a closed socket, the kernel answers with a reset and drops what it still
// held: the client sees UNAVAILABLE just before the end of its stream
// (deploy/container_test.py caught it: about one stop in twenty with a
// download in flight).
#ifndef RINGSTORE_SERVER_DRAIN_H_
#define RINGSTORE_SERVER_DRAIN_H_

#include <grpcpp/support/server_interceptor.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>

#include "absl/time/time.h"

namespace ringstore::server {

class Drain {
 public:
  Drain() = default;
  // After the server is gone (the last call's interceptor has gone).
  ~Drain();
  Drain(const Drain&) = delete;
  Drain& operator=(const Drain&) = delete;

  // Counts the FileStore calls in flight, from the moment gRPC creates a
  // call to the moment it destroys it. For
  // ServerBuilder::experimental().SetInterceptorCreators; this object must
  // outlive the server.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewFactory();

  void Begin() { draining_.store(true, std::memory_order_relaxed); }
  bool draining() const { return draining_.load(std::memory_order_relaxed); }

  // Blocks until no FileStore call is in flight or `deadline` passes;
  // returns how many are left.
  int64_t WaitForCalls(absl::Time deadline);

  // The interceptor's side (drain.cc).
  void Started();
  void Ended();

 private:
  std::atomic<bool> draining_{false};
  // std::mutex rather than absl::Mutex: WaitForCalls needs a deadline, which
  // storage/engine/sync.h's ThreadSanitizer stand-in does not offer, and
  // the interceptors' calls come from gRPC threads TSan must see ordered.
  std::mutex mu_;
  std::condition_variable none_;
  int64_t in_flight_ = 0;  // guarded by mu_
};

}  // namespace ringstore::server

#endif  // RINGSTORE_SERVER_DRAIN_H_
