// ringstore-server: serves a root directory over the FileStore API.
//
// Prints "ringstore-server listening on HOST:PORT engine=NAME" once it
// accepts calls. SIGTERM or SIGINT drains: new calls are refused, calls in
// flight get --drain_timeout to finish (then they are cancelled), and the
// process exits 0.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/file_store_service.h"
#include "server/idle_timer.h"
#include "storage/engine/engine_list.h"
#include "storage/engine/engine_selector.h"
#include "storage/store.h"
#include "storage/engine/sync.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "Address to listen on, HOST:PORT; port 0 picks a free port.");
ABSL_FLAG(std::string, root, "./data", "Directory the files live in (created if missing).");
ABSL_FLAG(std::string, engine, "auto",
          "Storage engine: auto" RINGSTORE_ENGINE_NAMES_LITERAL
          " (auto: the first of them that starts here).");
ABSL_FLAG(int64_t, max_chunk_bytes, 2 << 20, "Most data one message may carry.");
ABSL_FLAG(int64_t, max_file_bytes, 0, "Largest file an upload may create; 0 = no limit.");
ABSL_FLAG(int32_t, buffer_count, 64, "I/O buffers in the pool (bounds data memory).");
ABSL_FLAG(int64_t, buffer_size, 1 << 20, "Bytes per I/O buffer, a multiple of 4096.");
ABSL_FLAG(int32_t, engine_threads, 4, "Worker threads of engines that use them.");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(30),
          "On SIGTERM, how long calls in flight may take before they are cancelled.");
ABSL_FLAG(absl::Duration, idle_timeout, absl::Seconds(60),
          "An upload whose client sends nothing, or a download whose client reads "
          "nothing, for this long ends with DEADLINE_EXCEEDED; 0 = never.");
ABSL_FLAG(int32_t, max_streams_per_connection, 100,
          "Concurrent calls (HTTP/2 streams) one client connection may have open.");

namespace {

constexpr char kVersion[] = "0.1.0";

int Run() {
  const std::string engine = absl::GetFlag(FLAGS_engine);
  if (absl::Status s = ringstore::storage::ValidateEngineName(engine); !s.ok()) {
    std::cerr << "ringstore-server: " << s.message() << "\n";
    return 2;
  }
  const int64_t max_chunk = absl::GetFlag(FLAGS_max_chunk_bytes);
  if (max_chunk < 1 || max_chunk > (64 << 20)) {
    std::cerr << "ringstore-server: --max_chunk_bytes must be in [1, 64 MiB]\n";
    return 2;
  }

  const absl::Duration idle_timeout = absl::GetFlag(FLAGS_idle_timeout);
  if (idle_timeout < absl::ZeroDuration()) {
    std::cerr << "ringstore-server: --idle_timeout must not be negative\n";
    return 2;
  }
  const int32_t max_streams = absl::GetFlag(FLAGS_max_streams_per_connection);
  if (max_streams < 1) {
    std::cerr << "ringstore-server: --max_streams_per_connection must be at least 1\n";
    return 2;
  }

  // Signals are taken synchronously by this thread: block them before any
  // other thread exists so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  ringstore::storage::StoreOptions store_options;
  store_options.root = absl::GetFlag(FLAGS_root);
  store_options.engine = engine;
  store_options.buffer_count = static_cast<size_t>(absl::GetFlag(FLAGS_buffer_count));
  store_options.buffer_size = static_cast<size_t>(absl::GetFlag(FLAGS_buffer_size));
  store_options.engine_threads = absl::GetFlag(FLAGS_engine_threads);
  store_options.max_file_bytes = absl::GetFlag(FLAGS_max_file_bytes);
  absl::StatusOr<std::unique_ptr<ringstore::storage::Store>> store =
      ringstore::storage::Store::Open(store_options);
  if (!store.ok()) {
    std::cerr << "ringstore-server: " << store.status() << "\n";
    return 1;
  }

  // Outlives the server (declared before it): streams close their watches
  // before they end.
  std::unique_ptr<ringstore::server::IdleTimer> idle_timer;
  if (idle_timeout > absl::ZeroDuration()) {
    idle_timer = std::make_unique<ringstore::server::IdleTimer>(idle_timeout);
  }
  ringstore::server::ServiceOptions service_options;
  service_options.max_chunk_bytes = max_chunk;
  service_options.version = kVersion;
  service_options.idle_timer = idle_timer.get();
  ringstore::server::FileStoreService service(store->get(), service_options);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  const std::string listen = absl::GetFlag(FLAGS_listen);
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  // Oversized messages are refused by gRPC itself (RESOURCE_EXHAUSTED);
  // the slack covers the non-data fields.
  builder.SetMaxReceiveMessageSize(static_cast<int>(max_chunk + (64 << 10)));
  // A client opening more streams on one connection waits for one to end.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, max_streams);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "ringstore-server: cannot listen on " << listen << "\n";
    return 1;
  }
  const std::string host = listen.substr(0, listen.rfind(':'));
  const std::string engine_name(
      ringstore::storage::BackendName((*store)->engine().info().backend));
  std::printf("ringstore-server listening on %s:%d engine=%s\n", host.c_str(), port,
              engine_name.c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  std::cerr << "ringstore-server: signal " << sig << ", draining\n";
  server->Shutdown(absl::ToChronoTime(absl::Now() + absl::GetFlag(FLAGS_drain_timeout)));
  server->Wait();
  // Every call has finished: what their storage callbacks did happens
  // before the store goes. gRPC orders that; the annotation lets
  // ThreadSanitizer see it (storage/sync.h).
  RS_HAPPENS_AFTER(store->get());
  server.reset();
  store->reset();
  std::cerr << "ringstore-server: stopped\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, so every absl::Mutex lock (gRPC
  // takes many per call) would also run the deadlock detector: 3-4 % of the
  // server's CPU in bench/RESULTS.md's profiles.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage(
      "Serves files over gRPC.\nUsage: ringstore-server [--listen=HOST:PORT] "
      "[--root=DIR] [--engine=NAME]");
  absl::ParseCommandLine(argc, argv);
  return Run();
}
