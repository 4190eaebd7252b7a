// The FileStore service in process, over a real gRPC channel on a port
// picked by the kernel: what cancelled calls leave behind (nothing: no temp
// data, every pool buffer back), and that the cancellable Stat and List
// still answer as before; streams whose client goes silent end at the idle
// timeout with nothing left behind. On every engine.
#include "server/file_store_service.h"

#include <dirent.h>
#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/idle_timer.h"
#include "gtest/gtest.h"
#include "ringstore/v1/ringstore.grpc.pb.h"
#include "storage/engine/engine_selector.h"
#include "storage/engine/engine_test_fixture.h"
#include "storage/store.h"

namespace ringstore::server {
namespace {

constexpr size_t kBuffer = 64 << 10;
constexpr size_t kBuffers = 8;

class FileStoreServiceTest : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (absl::Status s = storage::EngineStartsHere(GetParam()); !s.ok()) {
      GTEST_SKIP() << GetParam() << " cannot run here: " << s;
    }
    const char* base = std::getenv("TEST_TMPDIR");
    std::string dir = absl::StrCat(base ? base : "/tmp", "/service-XXXXXX");
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    root_ = dir + "/data";
    storage::StoreOptions options;
    options.root = root_;
    options.engine = GetParam();
    options.buffer_count = kBuffers;
    options.buffer_size = kBuffer;
    auto store = storage::Store::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    ServiceOptions service_options;
    if (idle_timeout_ > absl::ZeroDuration()) {
      idle_timer_ = std::make_unique<IdleTimer>(idle_timeout_);
      service_options.idle_timer = idle_timer_.get();
    }
    service_ = std::make_unique<FileStoreService>(store_.get(), service_options);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port, 0);
    target_ = absl::StrCat("127.0.0.1:", port);
    stub_ = v1::FileStore::NewStub(grpc::CreateChannel(target_, grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_) {
      server_->Shutdown();
      server_->Wait();
    }
    server_.reset();
    service_.reset();
    idle_timer_.reset();
    store_.reset();  // waits for background work: a leak would hang or crash
  }

  // Temp data: files in .ringstore/tmp and in the servers' directories
  // there, not their lock files (store.h's layout).
  std::vector<std::string> TempFiles() {
    std::vector<std::string> out;
    const std::string tmp = root_ + "/.ringstore/tmp";
    if (DIR* d = opendir(tmp.c_str())) {
      while (dirent* e = readdir(d)) {
        const std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        if (DIR* sub = opendir((tmp + "/" + name).c_str())) {
          while (dirent* f = readdir(sub)) {
            if (f->d_name[0] != '.') out.push_back(name + "/" + f->d_name);
          }
          closedir(sub);
        } else if (!absl::EndsWith(name, ".lock")) {
          out.push_back(name);
        }
      }
      closedir(d);
    }
    return out;
  }

  // Polls (up to 10 s) until every pool buffer is back and no temp data is
  // left: both go back asynchronously after a cancel.
  void ExpectNothingLeft() {
    for (int i = 0; i < 1000; ++i) {
      if (store_->pool().free_count() == kBuffers && TempFiles().empty()) break;
      absl::SleepFor(absl::Milliseconds(10));
    }
    EXPECT_EQ(store_->pool().free_count(), kBuffers);
    EXPECT_TRUE(TempFiles().empty());
  }

  grpc::Status Upload(const std::string& path, const std::string& data) {
    grpc::ClientContext context;
    v1::UploadResponse response;
    auto stream = stub_->Upload(&context, &response);
    v1::UploadRequest request;
    request.mutable_spec()->set_path(path);
    request.mutable_spec()->set_size(static_cast<int64_t>(data.size()));
    request.set_data(data);
    request.set_finish(true);
    stream->Write(request);
    stream->WritesDone();
    return stream->Finish();
  }

  // Set by a fixture before SetUp: the service's --idle_timeout (0 = none).
  absl::Duration idle_timeout_ = absl::ZeroDuration();
  std::string root_;
  std::string target_;
  std::unique_ptr<IdleTimer> idle_timer_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<FileStoreService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::FileStore::Stub> stub_;
};

TEST_P(FileStoreServiceTest, UploadCancelledMidStreamLeavesNoTempDataAndNoBuffers) {
  grpc::ClientContext context;
  v1::UploadResponse response;
  auto stream = stub_->Upload(&context, &response);
  const std::string piece(3 * kBuffer + 1000, 'x');
  int64_t offset = 0;
  for (int i = 0; i < 4; ++i) {
    v1::UploadRequest request;
    if (i == 0) request.mutable_spec()->set_path("big");
    request.set_offset(offset);
    request.set_data(piece);
    ASSERT_TRUE(stream->Write(request));
    offset += static_cast<int64_t>(piece.size());
  }
  // The upload is under way: its temp file exists.
  for (int i = 0; i < 1000 && TempFiles().empty(); ++i) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_FALSE(TempFiles().empty());
  context.TryCancel();
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  ExpectNothingLeft();

  grpc::ClientContext stat_context;
  v1::StatRequest stat;
  stat.set_path("big");
  v1::FileInfo info;
  EXPECT_EQ(stub_->Stat(&stat_context, stat, &info).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_P(FileStoreServiceTest, DownloadCancelledMidStreamGivesItsBuffersBack) {
  // Many more buffers than the pool has (within one message's 2 MiB).
  const std::string data(24 * kBuffer, 'd');
  const grpc::Status uploaded = Upload("file", data);
  ASSERT_TRUE(uploaded.ok()) << uploaded.error_message();
  grpc::ClientContext context;
  v1::DownloadRequest request;
  request.set_path("file");
  auto stream = stub_->Download(&context, request);
  v1::DownloadResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.offset(), 0);
  EXPECT_EQ(response.data().size(), kBuffer);
  context.TryCancel();
  while (stream->Read(&response)) {
  }
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  ExpectNothingLeft();
}

TEST_P(FileStoreServiceTest, StatAndListAnswerWithTheBackendTrailer) {
  const grpc::Status uploaded = Upload("dir/a", "hello");
  ASSERT_TRUE(uploaded.ok()) << uploaded.error_message();
  {
    grpc::ClientContext context;
    v1::StatRequest request;
    request.set_path("dir/a");
    v1::FileInfo info;
    ASSERT_TRUE(stub_->Stat(&context, request, &info).ok());
    EXPECT_EQ(info.path(), "dir/a");
    EXPECT_EQ(info.size(), 5);
    const auto& trailers = context.GetServerTrailingMetadata();
    auto it = trailers.find("ringstore-backend");
    ASSERT_NE(it, trailers.end());
    EXPECT_EQ(std::string(it->second.data(), it->second.size()), GetParam());
  }
  {
    grpc::ClientContext context;
    v1::StatRequest request;
    request.set_path("dir/missing");
    v1::FileInfo info;
    EXPECT_EQ(stub_->Stat(&context, request, &info).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext context;
    v1::StatRequest request;
    request.set_path("../escape");
    v1::FileInfo info;
    EXPECT_EQ(stub_->Stat(&context, request, &info).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    grpc::ClientContext context;
    v1::ListRequest request;
    request.set_delimiter("/");
    v1::ListResponse response;
    ASSERT_TRUE(stub_->List(&context, request, &response).ok());
    ASSERT_EQ(response.prefixes_size(), 1);
    EXPECT_EQ(response.prefixes(0), "dir/");
    EXPECT_EQ(response.files_size(), 0);
  }
  {
    grpc::ClientContext context;
    v1::ListRequest request;
    request.set_delimiter(",");
    v1::ListResponse response;
    EXPECT_EQ(stub_->List(&context, request, &response).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
}

INSTANTIATE_TEST_SUITE_P(AllEngines, FileStoreServiceTest,
                         testing::ValuesIn(storage::EngineNames()), storage::EngineParamName);

class FileStoreServiceIdleTest : public FileStoreServiceTest {
 protected:
  FileStoreServiceIdleTest() { idle_timeout_ = absl::Milliseconds(500); }

  // A stub whose stream window stays at 64 KiB (no BDP probing), so that a
  // client that stops reading soon stops the server's writes.
  std::unique_ptr<v1::FileStore::Stub> SmallWindowStub() {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    return v1::FileStore::NewStub(
        grpc::CreateCustomChannel(target_, grpc::InsecureChannelCredentials(), args));
  }

  // Reads one message of `stream`, then nothing for six idle timeouts,
  // then whatever is left: the call must have been cut off
  // (DEADLINE_EXCEEDED), leaving nothing behind and every loan back.
  template <typename Response>
  void ExpectCutOffAfterOneMessage(grpc::ClientReader<Response>* stream) {
    Response response;
    ASSERT_TRUE(stream->Read(&response));
    absl::SleepFor(absl::Seconds(3));
    while (stream->Read(&response)) {
    }
    const grpc::Status status = stream->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
        << status.error_message();
    ExpectNothingLeft();
    EXPECT_EQ(store_->pool().lent_count(), 0u);
  }
};

// An upload whose client sends data and then nothing (no half-close) ends
// DEADLINE_EXCEEDED at the idle timeout; its temp data goes.
TEST_P(FileStoreServiceIdleTest, AnUploadThatGoesSilentEndsAndLeavesNothing) {
  grpc::ClientContext context;
  v1::UploadResponse response;
  auto stream = stub_->Upload(&context, &response);
  v1::UploadRequest request;
  request.mutable_spec()->set_path("silent");
  request.set_data(std::string(3 * kBuffer + 1000, 'x'));
  ASSERT_TRUE(stream->Write(request));
  for (int i = 0; i < 1000 && TempFiles().empty(); ++i) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_FALSE(TempFiles().empty());
  const grpc::Status status = stream->Finish();  // no WritesDone: the client is silent
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  ExpectNothingLeft();
}

// A download whose client stops reading (a 64 KiB stream window: no BDP
// probing) is cancelled at the idle timeout; gRPC then drops the message
// it held, and every buffer and loan is back.
TEST_P(FileStoreServiceIdleTest, ADownloadNobodyReadsEndsAndGivesEverythingBack) {
  const grpc::Status uploaded = Upload("file", std::string(24 * kBuffer, 'd'));
  ASSERT_TRUE(uploaded.ok()) << uploaded.error_message();
  auto stub = SmallWindowStub();
  grpc::ClientContext context;
  v1::DownloadRequest request;
  request.set_path("file");
  auto stream = stub->Download(&context, request);
  ExpectCutOffAfterOneMessage(stream.get());
}

// The same for a BatchDownload (its idle cut-off is the one Download uses,
// download_reactor_base.h): files larger than the stream window, a client
// that reads one message and then nothing.
TEST_P(FileStoreServiceIdleTest, ABatchDownloadNobodyReadsEndsAndGivesEverythingBack) {
  v1::BatchDownloadRequest request;
  for (int i = 0; i < 4; ++i) {
    const std::string path = absl::StrCat("file", i);
    const grpc::Status uploaded = Upload(path, std::string(6 * kBuffer, 'a' + i));
    ASSERT_TRUE(uploaded.ok()) << uploaded.error_message();
    request.add_paths(path);
  }
  auto stub = SmallWindowStub();
  grpc::ClientContext context;
  auto stream = stub->BatchDownload(&context, request);
  ExpectCutOffAfterOneMessage(stream.get());
}

INSTANTIATE_TEST_SUITE_P(AllEngines, FileStoreServiceIdleTest,
                         testing::ValuesIn(storage::EngineNames()), storage::EngineParamName);

}  // namespace
}  // namespace ringstore::server
