// grpc_api_proto: what gRPC's own API costs per small download, callback
// API against the asynchronous completion-queue API (issue 14, point 3).
//
// Serves FileStore.Download and nothing else: every request, whatever its
// path, gets one message of --size bytes held in memory (offset 0, its
// crc32c, info.size), sent with the status in one batch, as ringstore's
// one-message download does. No storage, no interceptors, no trailers of
// our own: the difference between the two APIs, and against
// ringstore-server on the same files, is the figure of interest
// (bench/compare_ab.py measures it like a server: it takes --root and prints
// "listening on HOST:PORT").
//
//   --api=callback   CallbackService, one ServerWriteReactor per call.
//   --api=async      AsyncService, --cqs completion queues, each drained by
//                    one thread of its own (one per core is the usual shape).
//   --api=async_store
//                    the same queues, but each Download reads its file under
//                    --root through ringstore's Store (--engine, its ring
//                    thread, pool buffer and metadata cache) and answers it
//                    the way ringstore-server's Download does for a file
//                    that fits one message: the same encoding
//                    (server/download_message.h), crc32c, info, backend
//                    and ringstore-backend trailer, sent with the status in
//                    one batch. What the callback API costs a real small
//                    download, measured against ringstore-server itself.
//                    Files larger than one message are UNIMPLEMENTED.
//   --api=async_inline
//                    async_store, but the queue's thread reads the file
//                    itself with plain openat/fstat/read/close (no engine
//                    thread, no pool, no metadata cache): what a ring owned
//                    by each queue's thread could reach at best when the
//                    file is cached, since its completion is then there at
//                    once. No trailer (no engine served it).
//
// A prototype for a measurement, not a server: no auth, no limits, no
// drain, metrics or access log (the interceptors cost nothing measurable:
// bench/RESULTS.md, "Round two, sixth morning").
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "ringstore/v1/ringstore.grpc.pb.h"
#include "server/convert.h"
#include "server/download_message.h"
#include "storage/store.h"
#include "third_party/system/crc32c.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "HOST:PORT; port 0 picks a free port.");
ABSL_FLAG(std::string, root, "", "async_store: the store's root; else ignored.");
ABSL_FLAG(std::string, engine, "auto", "async_store: the store's engine.");
ABSL_FLAG(std::string, api, "callback", "callback, async, async_store or async_inline.");
ABSL_FLAG(int32_t, cqs, 1, "async: completion queues, one thread each.");
ABSL_FLAG(int32_t, size, 4096, "Bytes of the one message each download sends.");

namespace ringstore::bench {
namespace {

using v1::DownloadRequest;
using v1::DownloadResponse;
using v1::FileStore;

DownloadResponse MakeResponse(int size) {
  DownloadResponse r;
  std::string data(static_cast<size_t>(size), 'x');
  r.set_offset(0);
  r.set_crc32c(Crc32c(data));
  r.mutable_info()->set_size(size);
  r.set_data(std::move(data));
  return r;
}

// --- Callback API

class CallbackDownload final : public grpc::ServerWriteReactor<DownloadResponse> {
 public:
  explicit CallbackDownload(const DownloadResponse* response) {
    StartWriteAndFinish(response, grpc::WriteOptions(), grpc::Status::OK);
  }
  void OnDone() override { delete this; }
};

class CallbackServiceImpl final : public FileStore::CallbackService {
 public:
  explicit CallbackServiceImpl(int size) : response_(MakeResponse(size)) {}
  grpc::ServerWriteReactor<DownloadResponse>* Download(grpc::CallbackServerContext*,
                                                       const DownloadRequest*) override {
    return new CallbackDownload(&response_);
  }

 private:
  const DownloadResponse response_;
};

// --- Async API: a call is asked for, then answered in one batch.

// GetServerInfo on the callback API, unimplemented: it answers
// UNIMPLEMENTED at once, where an async method nobody asks for would hold
// the call (load_gen's closing GetServerInfo) until its deadline.
template <typename Service>
using AnswerInfo = FileStore::WithCallbackMethod_GetServerInfo<Service>;
using AsyncProtoService = AnswerInfo<FileStore::AsyncService>;

class AsyncCall {
 public:
  AsyncCall(AsyncProtoService* service, grpc::ServerCompletionQueue* cq,
            const DownloadResponse* response)
      : service_(service), cq_(cq), response_(response), writer_(&context_) {
    service_->RequestDownload(&context_, &request_, &writer_, cq_, cq_, this);
  }

  // The next event of this call: the request arrived (answer it, and ask
  // for the next call), or the answer went, or the server shuts down.
  void Proceed(bool ok) {
    if (answered_ || !ok) {
      delete this;
      return;
    }
    new AsyncCall(service_, cq_, response_);
    answered_ = true;
    writer_.WriteAndFinish(*response_, grpc::WriteOptions(), grpc::Status::OK, this);
  }

 private:
  AsyncProtoService* const service_;
  grpc::ServerCompletionQueue* const cq_;
  const DownloadResponse* const response_;
  grpc::ServerContext context_;
  DownloadRequest request_;
  grpc::ServerAsyncWriter<DownloadResponse> writer_;
  bool answered_ = false;
};

// --- Async API with the store: the request is read from the store, whose
// engine thread starts the answer; its completion comes back to the queue.

using RawAsyncService = AnswerInfo<FileStore::WithRawMethod_Download<FileStore::AsyncService>>;

class AsyncStoreCall {
 public:
  // `inline_root`: a descriptor of the root for async_inline, else -1.
  AsyncStoreCall(RawAsyncService* service, grpc::ServerCompletionQueue* cq, storage::Store* store,
                 int inline_root)
      : service_(service), cq_(cq), store_(store), inline_root_(inline_root), writer_(&context_) {
    service_->RequestDownload(&context_, &request_, &writer_, cq_, cq_, this);
  }

  void Proceed(bool ok) {
    if (answered_ || !ok) {
      delete this;
      return;
    }
    new AsyncStoreCall(service_, cq_, store_, inline_root_);
    answered_ = true;
    absl::StatusOr<v1::DownloadRequest> request = server::DecodeDownloadRequest(request_);
    if (!request.ok()) return Answer(request.status(), storage::Backend::kUnspecified);
    path_ = std::move(*request->mutable_path());
    if (inline_root_ >= 0) return ReadInline();
    // As ringstore-server's Download: a pool buffer, then the one-chain
    // read of the whole file (copied into a gRPC slice: small data is not
    // lent).
    store_->pool().Acquire([this](storage::PooledBuffer buffer) {
      const absl::Span<char> span = buffer.span();
      store_->ReadSmall(
          path_, span, nullptr,
          [this, buffer = std::move(buffer)](absl::StatusOr<storage::Store::SmallRead> r,
                                             storage::Backend backend) mutable {
            OnRead(std::move(r), backend, std::move(buffer));
          });
    });
  }

 private:
  void ReadInline() {
    thread_local std::vector<char> buffer(1 << 20);
    const int fd = openat(inline_root_, path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Answer(absl::NotFoundError(path_), storage::Backend::kUnspecified);
    struct stat st;
    const ssize_t n = fstat(fd, &st) == 0 ? read(fd, buffer.data(), buffer.size()) : -1;
    close(fd);
    if (n < 0 || n != st.st_size) {
      return Answer(absl::UnimplementedError("unreadable or larger than one message"),
                    storage::Backend::kUnspecified);
    }
    v1::DownloadResponse header;
    storage::ObjectInfo info;
    info.path = path_;
    info.size = n;
    info.modified = absl::FromTimeT(st.st_mtime);
    server::ToProto(info, header.mutable_info());
    header.set_offset(0);
    header.set_crc32c(Crc32c(absl::string_view(buffer.data(), static_cast<size_t>(n))));
    message_ = server::EncodeDownloadResponse(
        header, server::CopyToGrpc(buffer.data(), static_cast<size_t>(n)));
    writer_.WriteAndFinish(message_, grpc::WriteOptions(), grpc::Status::OK, this);
  }

  void OnRead(absl::StatusOr<storage::Store::SmallRead> r, storage::Backend backend,
              storage::PooledBuffer buffer) {
    if (!r.ok()) return Answer(r.status(), backend);
    if (!r->complete) return Answer(absl::UnimplementedError("larger than one message"), backend);
    const size_t n = static_cast<size_t>(r->info.size);
    v1::DownloadResponse header;
    server::ToProto(r->info, header.mutable_info());
    header.set_backend(server::ToProto(backend));
    header.set_offset(0);
    header.set_crc32c(Crc32c(absl::string_view(buffer.data(), n)));
    message_ = server::EncodeDownloadResponse(
        header, server::ToGrpc(std::move(buffer), n, storage::BufferPool::Loan()));
    server::AddBackendTrailer(&context_, backend);
    writer_.WriteAndFinish(message_, grpc::WriteOptions(), grpc::Status::OK, this);
  }

  void Answer(const absl::Status& status, storage::Backend backend) {
    server::AddBackendTrailer(&context_, backend);
    writer_.Finish(server::ToGrpcStatus(status), this);
  }

  RawAsyncService* const service_;
  grpc::ServerCompletionQueue* const cq_;
  storage::Store* const store_;
  const int inline_root_;
  grpc::ServerContext context_;
  grpc::ByteBuffer request_;
  grpc::ServerAsyncWriter<grpc::ByteBuffer> writer_;
  std::string path_;
  grpc::ByteBuffer message_;
  bool answered_ = false;
};

// Every tag on a queue is a call of one kind.
template <typename Call>
void Drain(grpc::ServerCompletionQueue* cq) {
  void* tag = nullptr;
  bool ok = false;
  while (cq->Next(&tag, &ok)) static_cast<Call*>(tag)->Proceed(ok);
}

int Run() {
  // SIGTERM and SIGINT end it, taken by sigwait below (blocked in every
  // thread gRPC starts).
  sigset_t stop;
  sigemptyset(&stop);
  for (int sig : {SIGTERM, SIGINT}) sigaddset(&stop, sig);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  const std::string api = absl::GetFlag(FLAGS_api);
  const int size = absl::GetFlag(FLAGS_size);
  grpc::ServerBuilder builder;
  int port = 0;
  const std::string listen = absl::GetFlag(FLAGS_listen);
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  CallbackServiceImpl callback_service(size);
  AsyncProtoService async_service;
  RawAsyncService store_service;
  std::unique_ptr<storage::Store> store;
  int inline_root = -1;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs;
  if (api == "callback") {
    builder.RegisterService(&callback_service);
  } else if (api == "async" || api == "async_store" || api == "async_inline") {
    if (api == "async") {
      builder.RegisterService(&async_service);
    } else if (api == "async_inline") {
      inline_root = open(absl::GetFlag(FLAGS_root).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (inline_root < 0) {
        std::cerr << "grpc_api_proto: cannot open --root\n";
        return 1;
      }
      builder.RegisterService(&store_service);
    } else {
      storage::StoreOptions options;
      options.root = absl::GetFlag(FLAGS_root);
      options.engine = absl::GetFlag(FLAGS_engine);
      absl::StatusOr<std::unique_ptr<storage::Store>> opened = storage::Store::Open(options);
      if (!opened.ok()) {
        std::cerr << "grpc_api_proto: " << opened.status() << "\n";
        return 1;
      }
      store = *std::move(opened);
      builder.RegisterService(&store_service);
    }
    for (int i = 0; i < absl::GetFlag(FLAGS_cqs); ++i) cqs.push_back(builder.AddCompletionQueue());
  } else {
    std::cerr << "grpc_api_proto: --api must be callback, async, async_store or async_inline\n";
    return 2;
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "grpc_api_proto: cannot listen on " << listen << "\n";
    return 1;
  }
  const DownloadResponse response = MakeResponse(size);
  std::vector<std::thread> threads;
  for (auto& cq : cqs) {
    // Several calls asked for at once per queue, as a server would.
    for (int i = 0; i < 64; ++i) {
      if (api == "async") {
        new AsyncCall(&async_service, cq.get(), &response);
      } else {
        new AsyncStoreCall(&store_service, cq.get(), store.get(), inline_root);
      }
    }
    threads.emplace_back(api == "async" ? Drain<AsyncCall> : Drain<AsyncStoreCall>, cq.get());
  }
  const std::string host = listen.substr(0, listen.rfind(':'));
  std::printf("grpc_api_proto listening on %s:%d api=%s\n", host.c_str(), port, api.c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop, &sig);
  server->Shutdown();
  for (auto& cq : cqs) cq->Shutdown();
  for (std::thread& t : threads) t.join();
  store.reset();  // every call has ended
  if (inline_root >= 0) close(inline_root);
  return 0;
}

}  // namespace
}  // namespace ringstore::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return ringstore::bench::Run();
}
