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
//
// A prototype for a measurement, not a server: no auth, no limits.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "ringstore/v1/ringstore.grpc.pb.h"
#include "third_party/system/crc32c.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "HOST:PORT; port 0 picks a free port.");
ABSL_FLAG(std::string, root, "", "Ignored (compare_ab.py variants pass it).");
ABSL_FLAG(std::string, api, "callback", "callback or async.");
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

class AsyncCall {
 public:
  AsyncCall(FileStore::AsyncService* service, grpc::ServerCompletionQueue* cq,
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
  FileStore::AsyncService* const service_;
  grpc::ServerCompletionQueue* const cq_;
  const DownloadResponse* const response_;
  grpc::ServerContext context_;
  DownloadRequest request_;
  grpc::ServerAsyncWriter<DownloadResponse> writer_;
  bool answered_ = false;
};

void Drain(grpc::ServerCompletionQueue* cq) {
  void* tag = nullptr;
  bool ok = false;
  while (cq->Next(&tag, &ok)) static_cast<AsyncCall*>(tag)->Proceed(ok);
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
  FileStore::AsyncService async_service;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs;
  if (api == "callback") {
    builder.RegisterService(&callback_service);
  } else if (api == "async") {
    builder.RegisterService(&async_service);
    for (int i = 0; i < absl::GetFlag(FLAGS_cqs); ++i) cqs.push_back(builder.AddCompletionQueue());
  } else {
    std::cerr << "grpc_api_proto: --api must be callback or async\n";
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
    for (int i = 0; i < 64; ++i) new AsyncCall(&async_service, cq.get(), &response);
    threads.emplace_back(Drain, cq.get());
  }
  const std::string host = listen.substr(0, listen.rfind(':'));
  std::printf("grpc_api_proto listening on %s:%d api=%s\n", host.c_str(), port, api.c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop, &sig);
  server->Shutdown();
  for (auto& cq : cqs) cq->Shutdown();
  for (std::thread& t : threads) t.join();
  return 0;
}

}  // namespace
}  // namespace ringstore::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return ringstore::bench::Run();
}
