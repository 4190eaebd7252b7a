// ringstore-server: serves a root directory over the FileStore API.
//
// Prints "ringstore-server listening on HOST:PORT engine=NAME" once it
// accepts calls. SIGTERM or SIGINT drains: new calls are refused, calls in
// flight get --drain_timeout to finish (then they are cancelled), and the
// process exits 0. Health reports NOT_SERVING from the drain's first moment
// (health.h). SIGHUP reloads --auth_tokens (a bad file keeps the tokens in
// use and says why on stderr) and reopens the access log; the tokens file is
// also reloaded by itself within 5 s of a change (a rename over it,
// Kubernetes' Secret update), as the TLS files are.
//
// Optional outputs, each off when its flag is empty: Prometheus metrics
// (--metrics_listen), a health-only listener (--health_listen) and the
// access log (--access_log). Their bound addresses go to stderr before the
// "listening on" line, as "ringstore-server: metrics on http://HOST:PORT/metrics"
// and "ringstore-server: health on HOST:PORT".
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/access_log.h"
#include "server/auth.h"
#include "server/call_observer.h"
#include "server/drain.h"
#include "server/file_store_service.h"
#include "server/health.h"
#include "server/idle_timer.h"
#include "server/metrics.h"
#include "server/metrics_http.h"
#include "server/server_metrics.h"
#include "server/socket_drain.h"
#include "server/tls.h"
#include "server/upload_expiry.h"
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
ABSL_FLAG(int64_t, max_store_bytes, 0,
          "Hard quota: committed files plus uploads in flight never exceed it; 0 = none.");
ABSL_FLAG(int32_t, buffer_count, 64, "I/O buffers in the pool (bounds data memory).");
ABSL_FLAG(int64_t, buffer_size, 1 << 20, "Bytes per I/O buffer, a multiple of 4096.");
ABSL_FLAG(int32_t, engine_threads, 4, "Worker threads of engines that use them.");
ABSL_FLAG(int32_t, io_uring_sqpoll, 0,
          "--io_uring_sqpoll[=IDLE_MS]: io_uring with a kernel thread polling the submission "
          "queue (IORING_SETUP_SQPOLL), which sleeps after IDLE_MS without work; alone, "
          "IDLE_MS is 1000; 0 = off. It spins a core while busy. If the kernel refuses it the "
          "server runs without and says why (stderr, GetServerInfo, metrics).");
ABSL_FLAG(std::string, auth_tokens, "",
          "Tokens file: when set, every FileStore call needs \"authorization: Bearer "
          "<token>\" (server/auth.h has the format). Reloaded on SIGHUP and within "
          "5 s of a change.");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain (leaf first): serve TLS on --listen. Re-read when it "
          "changes on disk.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert's certificate.");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA certificate(s): require a client certificate signed by one (mTLS).");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(30),
          "On SIGTERM, how long calls in flight may take before they are cancelled.");
ABSL_FLAG(std::string, metrics_listen, "",
          "HOST:PORT for Prometheus metrics at GET /metrics (plain HTTP); empty = off.");
ABSL_FLAG(std::string, health_listen, "",
          "HOST:PORT for a plaintext listener with only grpc.health.v1.Health; empty = off.");
ABSL_FLAG(std::string, access_log, "",
          "File for the access log, one JSON object per call; - = stderr; empty = off.");
ABSL_FLAG(absl::Duration, idle_timeout, absl::Seconds(60),
          "An upload whose client sends nothing, or a download whose client reads "
          "nothing, for this long ends with DEADLINE_EXCEEDED; 0 = never.");
ABSL_FLAG(absl::Duration, upload_ttl, absl::Hours(24),
          "Resumable upload sessions idle (no stream attached) for longer than this "
          "expire: their temp data is removed and their upload_id becomes NOT_FOUND.");
ABSL_FLAG(int32_t, max_streams_per_connection, 100,
          "Concurrent calls (HTTP/2 streams) one client connection may have open.");
ABSL_FLAG(absl::Duration, testonly_commit_delay, absl::ZeroDuration(),
          "Tests only, never in production: every commit sleeps this long on an engine "
          "thread, holding its path's lock, just before the rename (tests/crash_test.py "
          "lands kill -9 inside commits with it); 0 = off.");

namespace {

constexpr char kVersion[] = "0.1.0";

// What tells that a file's contents may have changed without reading it:
// a rename over it (a new inode), Kubernetes' ..data symlink swap (stat
// follows the link), an edit in place (size, times).
struct FileIdentity {
  dev_t dev;
  ino_t ino;
  off_t size;
  int64_t mtime_ns;
  int64_t ctime_ns;
  bool operator==(const FileIdentity& o) const {
    return dev == o.dev && ino == o.ino && size == o.size && mtime_ns == o.mtime_ns &&
           ctime_ns == o.ctime_ns;
  }
};

// Nullopt if `path` cannot be stat'ed (gone: a change too).
std::optional<FileIdentity> IdentifyFile(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return std::nullopt;
  return FileIdentity{st.st_dev, st.st_ino, st.st_size,
                      st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec,
                      st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec};
}

// Says once whether --io_uring_sqpoll took effect.
void ReportSqpoll(const ringstore::storage::EngineInfo& info) {
  for (const std::string& f : info.features) {
    if (f == "sqpoll") {
      std::cerr << "ringstore-server: io_uring SQPOLL on, idle "
                << absl::GetFlag(FLAGS_io_uring_sqpoll) << " ms\n";
      return;
    }
    if (absl::StartsWith(f, "sqpoll=")) {
      std::cerr << "ringstore-server: --io_uring_sqpoll: the kernel refused SQPOLL, running "
                   "without: "
                << f << "\n";
      return;
    }
  }
  std::cerr << "ringstore-server: --io_uring_sqpoll: engine "
            << ringstore::storage::BackendName(info.backend) << " has no SQPOLL\n";
}

// `--io_uring_sqpoll` alone means 1000 ms: Abseil takes a value-less flag
// only for a bool, so the bare form is spelled out before parsing.
std::vector<char*> SpellOutBareFlags(int argc, char** argv) {
  static char sqpoll[] = "--io_uring_sqpoll=1000";
  std::vector<char*> args(argv, argv + argc);
  for (size_t i = 1; i < args.size(); ++i) {
    if (std::strcmp(args[i], "--") == 0) break;
    if (std::strcmp(args[i], "--io_uring_sqpoll") == 0 ||
        std::strcmp(args[i], "-io_uring_sqpoll") == 0) {
      args[i] = sqpoll;
    }
  }
  return args;
}

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

  ringstore::server::TlsFiles tls_files;
  tls_files.cert = absl::GetFlag(FLAGS_tls_cert);
  tls_files.key = absl::GetFlag(FLAGS_tls_key);
  tls_files.client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  if (absl::Status s = ringstore::server::CheckTlsFlags(tls_files); !s.ok()) {
    std::cerr << "ringstore-server: " << s.message() << "\n";
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

  const absl::Duration upload_ttl = absl::GetFlag(FLAGS_upload_ttl);
  if (upload_ttl <= absl::ZeroDuration()) {
    std::cerr << "ringstore-server: --upload_ttl must be positive\n";
    return 2;
  }

  // Signals are taken synchronously by this thread: block them before any
  // other thread exists so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // Tokens are never printed: neither here nor in Authorizer's messages.
  std::unique_ptr<ringstore::server::Authorizer> authorizer;
  const std::string auth_tokens = absl::GetFlag(FLAGS_auth_tokens);
  if (!auth_tokens.empty()) {
    absl::StatusOr<std::unique_ptr<ringstore::server::Authorizer>> loaded =
        ringstore::server::Authorizer::Load(auth_tokens);
    if (!loaded.ok()) {
      std::cerr << "ringstore-server: --auth_tokens: " << loaded.status().message() << "\n";
      return 1;
    }
    authorizer = *std::move(loaded);
    std::cerr << "ringstore-server: auth on, " << authorizer->size() << " tokens from "
              << auth_tokens << "\n";
  }

  // After the mask: the certificate watcher's thread must not take SIGTERM.
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> listen_credentials =
      ringstore::server::ServerCredentialsFromFlags(tls_files);
  if (!listen_credentials.ok()) {
    std::cerr << "ringstore-server: " << listen_credentials.status().message() << "\n";
    return 1;
  }

  ringstore::storage::StoreOptions store_options;
  store_options.root = absl::GetFlag(FLAGS_root);
  store_options.engine = engine;
  store_options.buffer_count = static_cast<size_t>(absl::GetFlag(FLAGS_buffer_count));
  store_options.buffer_size = static_cast<size_t>(absl::GetFlag(FLAGS_buffer_size));
  store_options.engine_threads = absl::GetFlag(FLAGS_engine_threads);
  store_options.io_uring_sqpoll_idle_ms = absl::GetFlag(FLAGS_io_uring_sqpoll);
  store_options.max_file_bytes = absl::GetFlag(FLAGS_max_file_bytes);
  store_options.max_store_bytes = absl::GetFlag(FLAGS_max_store_bytes);
  store_options.commit_delay = absl::GetFlag(FLAGS_testonly_commit_delay);
  absl::StatusOr<std::unique_ptr<ringstore::storage::Store>> store =
      ringstore::storage::Store::Open(store_options);
  if (!store.ok()) {
    std::cerr << "ringstore-server: " << store.status() << "\n";
    return 1;
  }

  if (store_options.io_uring_sqpoll_idle_ms > 0) ReportSqpoll((*store)->engine().info());

  // Looks for expired sessions from now on, on a thread of its own; stopped
  // before the store goes.
  auto upload_expiry =
      std::make_unique<ringstore::server::UploadExpiry>(store->get(), upload_ttl);

  // Outlives the server (declared before it): streams close their watches
  // before they end.
  std::unique_ptr<ringstore::server::IdleTimer> idle_timer;
  if (idle_timeout > absl::ZeroDuration()) {
    idle_timer = std::make_unique<ringstore::server::IdleTimer>(idle_timeout);
  }
  // Outlives the server: counts its calls until the last has gone.
  ringstore::server::Drain drain;
  ringstore::server::ServiceOptions service_options;
  service_options.drain = &drain;
  service_options.max_chunk_bytes = max_chunk;
  service_options.version = kVersion;
  service_options.authorizer = authorizer.get();
  service_options.idle_timer = idle_timer.get();
  ringstore::server::FileStoreService service(store->get(), service_options);

  // Metrics and the access log: a registry, the log's writer, and the
  // interceptor that feeds both, installed only when one is on.
  const std::string metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  const std::string access_log_target = absl::GetFlag(FLAGS_access_log);
  std::unique_ptr<ringstore::server::MetricsRegistry> metrics;
  if (!metrics_listen.empty()) {
    metrics = std::make_unique<ringstore::server::MetricsRegistry>();
    ringstore::storage::Store* s = store->get();
    ringstore::server::GaugeSources sources;
    sources.pool_buffers = [s] { return s->pool().count(); };
    sources.pool_free = [s] { return s->pool().free_count(); };
    sources.pool_waiters = [s] { return s->pool().waiter_count(); };
    sources.store_bytes = [s] { return s->used_bytes(); };
    sources.store_quota_bytes = [s] { return s->quota_bytes(); };
    sources.engine_stats = [s] { return s->engine().stats(); };
    ringstore::server::RegisterServerMetrics(metrics.get(), std::move(sources));
  }
  std::unique_ptr<ringstore::server::AccessLog> access_log;
  if (!access_log_target.empty()) {
    absl::StatusOr<std::unique_ptr<ringstore::server::AccessLog>> log =
        ringstore::server::AccessLog::Open(access_log_target);
    if (!log.ok()) {
      std::cerr << "ringstore-server: " << log.status().message() << "\n";
      return 1;
    }
    access_log = *std::move(log);
  }
  std::unique_ptr<ringstore::server::CallObserver> observer;
  if (metrics != nullptr || access_log != nullptr) {
    observer = std::make_unique<ringstore::server::CallObserver>(metrics.get(), access_log.get());
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  ringstore::server::HealthWatches health_watches;
  {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    if (observer != nullptr) creators.push_back(observer->NewFactory());
    creators.push_back(health_watches.NewFactory());
    creators.push_back(drain.NewFactory());
    builder.experimental().SetInterceptorCreators(std::move(creators));
  }
  int port = 0;
  const std::string listen = absl::GetFlag(FLAGS_listen);
  builder.AddListeningPort(listen, *listen_credentials, &port);
  builder.RegisterService(&service);
  // Oversized messages are refused by gRPC itself (RESOURCE_EXHAUSTED);
  // the slack covers the non-data fields.
  builder.SetMaxReceiveMessageSize(static_cast<int>(max_chunk + (64 << 10)));
  // A client opening more streams on one connection waits for one to end.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, max_streams);
  // Never GRPC_ARG_TCP_TX_ZEROCOPY_ENABLED: with gRPC 1.51 it corrupts
  // downloads (a crc32c mismatch 9 or 15 MiB into a 1 GiB stream), also
  // when every slice is a gRPC-owned copy (bench/RESULTS.md, round two).
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "ringstore-server: cannot listen on " << listen << "\n";
    return 1;
  }
  ringstore::server::SetServing(server.get(), true);

  std::unique_ptr<ringstore::server::HealthListener> health;
  if (const std::string address = absl::GetFlag(FLAGS_health_listen); !address.empty()) {
    absl::StatusOr<std::unique_ptr<ringstore::server::HealthListener>> h =
        ringstore::server::HealthListener::Start(address);
    if (!h.ok()) {
      std::cerr << "ringstore-server: " << h.status().message() << "\n";
      return 1;
    }
    health = *std::move(h);
    health->SetServing(true);
    std::cerr << "ringstore-server: health on " << health->address() << std::endl;
  }
  std::unique_ptr<ringstore::server::MetricsHttpServer> metrics_http;
  if (metrics != nullptr) {
    absl::StatusOr<std::unique_ptr<ringstore::server::MetricsHttpServer>> m =
        ringstore::server::MetricsHttpServer::Start(metrics_listen, metrics.get());
    if (!m.ok()) {
      std::cerr << "ringstore-server: " << m.status().message() << "\n";
      return 1;
    }
    metrics_http = *std::move(m);
    std::cerr << "ringstore-server: metrics on http://" << metrics_http->address() << "/metrics"
              << std::endl;
  }

  const std::string host = listen.substr(0, listen.rfind(':'));
  const std::string engine_name(
      ringstore::storage::BackendName((*store)->engine().info().backend));
  std::printf("ringstore-server listening on %s:%d engine=%s\n", host.c_str(), port,
              engine_name.c_str());
  std::fflush(stdout);

  // Main's thread waits for signals, and every 5 s looks whether the tokens
  // file changed (Authorizer::Reload runs here only).
  std::optional<FileIdentity> tokens_seen;
  if (authorizer != nullptr) tokens_seen = IdentifyFile(auth_tokens);
  int sig = 0;
  while (true) {
    const timespec poll = {5, 0};
    sig = sigtimedwait(&signals, nullptr, &poll);
    if (sig < 0) {
      if (authorizer == nullptr) continue;
      std::optional<FileIdentity> now = IdentifyFile(auth_tokens);
      if (now == tokens_seen) continue;
      tokens_seen = now;
      if (absl::Status s = authorizer->Reload(); !s.ok()) {
        std::cerr << "ringstore-server: " << auth_tokens
                  << " changed; not reloaded, the old tokens stay: " << s.message() << "\n";
      } else {
        std::cerr << "ringstore-server: " << auth_tokens << " changed: " << authorizer->size()
                  << " tokens\n";
      }
      continue;
    }
    if (sig != SIGHUP) break;
    if (authorizer != nullptr) {
      tokens_seen = IdentifyFile(auth_tokens);
      if (absl::Status s = authorizer->Reload(); !s.ok()) {
        std::cerr << "ringstore-server: SIGHUP: keeping the tokens in use: " << s.message()
                  << "\n";
      } else {
        std::cerr << "ringstore-server: SIGHUP: " << authorizer->size() << " tokens from "
                  << auth_tokens << "\n";
      }
    } else {
      std::cerr << "ringstore-server: SIGHUP: no --auth_tokens to reload\n";
    }
    if (access_log != nullptr) {
      if (absl::Status s = access_log->Reopen(); !s.ok()) {
        std::cerr << "ringstore-server: " << s.message() << "\n";
      }
    }
  }
  // Probes see the drain before anything is refused.
  health_watches.MarkDrain();
  ringstore::server::SetServing(server.get(), false);
  if (health != nullptr) health->SetServing(false);
  // Watchers have been told NOT_SERVING; their calls would otherwise hold
  // the drain open until --drain_timeout.
  health_watches.CancelAll(std::chrono::seconds(1));
  std::cerr << "ringstore-server: signal " << sig << ", draining\n";
  // drain.h: refuse new calls, let those in flight end, let the kernel
  // deliver what they sent; only then close the connections.
  const absl::Time drain_deadline = absl::Now() + absl::GetFlag(FLAGS_drain_timeout);
  drain.Begin();
  if (const int64_t left = drain.WaitForCalls(drain_deadline); left > 0) {
    std::cerr << "ringstore-server: --drain_timeout is over, cancelling " << left << " calls\n";
  }
  absl::StatusOr<int64_t> unsent = ringstore::server::WaitForQueuedBytes(port, drain_deadline);
  if (!unsent.ok()) {
    std::cerr << "ringstore-server: " << unsent.status().message() << "\n";
  } else if (*unsent > 0) {
    std::cerr << "ringstore-server: closing with " << *unsent
              << " bytes its clients have not acknowledged\n";
  }
  // Nothing is left to wait for: every call has ended and its bytes are
  // delivered, or --drain_timeout is over. Close now: a later deadline
  // would only wait for idle clients to answer gRPC's graceful GOAWAY
  // (5 s for a Python client here), and cancel what is left.
  server->Shutdown(absl::ToChronoTime(absl::Now()));
  server->Wait();
  // The health listener answers NOT_SERVING until the drain is over.
  health.reset();
  metrics_http.reset();
  // Every call has finished: what their storage callbacks did happens
  // before the store goes. gRPC orders that; the annotation lets
  // ThreadSanitizer see it (storage/sync.h).
  RS_HAPPENS_AFTER(store->get());
  server.reset();
  // Every call has ended: flush the log's last lines.
  observer.reset();
  access_log.reset();
  metrics.reset();
  upload_expiry.reset();
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
      "[--root=DIR] [--engine=NAME] [--tls_cert=F --tls_key=F [--tls_client_ca=F]]");
  // --version prints the bare version (deploy/image/build.sh tags the image
  // with it).
  absl::FlagsUsageConfig usage_config;
  usage_config.version_string = [] { return std::string(kVersion) + "\n"; };
  absl::SetFlagsUsageConfig(usage_config);
  std::vector<char*> args = SpellOutBareFlags(argc, argv);
  absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  return Run();
}
