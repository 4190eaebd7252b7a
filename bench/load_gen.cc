// load_gen: an end-to-end load generator for any ringstore.v1.FileStore
// server (ringstore-server, bench/baseline_server, or another one).
//
// --concurrency streams each run one request after another, on the gRPC
// callback client API (ClientReadReactor / ClientWriteReactor; no sync API,
// no completion queues), over --channels channels (default one per 8
// streams), each its own HTTP/2 connection. The run ends after --count
// requests or --duration, whichever comes first; requests in flight at the
// deadline still finish and count, and `seconds` lasts until the last one.
//
// Modes:
//   download  Whole files (offset 0, no limit), picked uniformly at random
//             (per-stream PRNGs seeded from --seed) from --paths_file (one
//             path a line) or --path. Each message's offset and crc32c are
//             checked, and the bytes must add up to the FileInfo's size;
//             a mismatch is a DATA_LOSS error. --each_once instead
//             downloads every path exactly once, in an order shuffled by
//             --seed (the run ends when all are done; for cold-cache runs,
//             where a repeated file would be served warm). The responses are read raw
//             and the crc32c computed on the received slices
//             (client/download_decoder.h): no copy into a message.
//   upload    --upload_size bytes of random data (made once) to
//             --upload_prefix/<request number>, in --chunk_bytes messages:
//             the first carries spec (path, size) and the first chunk, each
//             the crc32c of its data, the last finish=true. A request ends
//             when the UploadResponse arrives (the file is durable by then);
//             its FileInfo must report --upload_size bytes.
//   batch     BatchDownload calls of --batch_size paths picked like
//             download's (load_gen_batch.h checks every message); a
//             request is a call, "files" and "files_per_second" count the
//             files of the successful ones.
//   populate  Setup for download runs: uploads exactly --count files like
//             upload (--duration does not apply) and writes the paths that
//             succeeded to --paths_file, sorted.
//
// Output: one JSON object on stdout, for example
//   {"mode":"download","server":"127.0.0.1:50051","concurrency":64,"channels":8,
//    "requests":26958,"errors":{"count":1,"first":[{"code":"NOT_FOUND",
//    "message":"...","count":1}]},"bytes":110415872,"seconds":5.010,
//    "throughput_mib_s":21.02,"requests_per_second":5381.1,
//    "latency_ms":{"p50":11.209,"p99":33.517,"p999":48.487,"max":63.330},
//    "backend":"io_uring","backends":{"io_uring":26957},"server_engine":"io_uring"}
// `requests` counts every completed request, failed or not; `errors.first`
// holds up to 5 distinct errors (code name, message, occurrences). `bytes`
// (file payload, not protocol overhead) and the latencies cover successful
// requests only. Percentiles are exact nearest-rank percentiles over every
// successful request's latency (0 when none succeeded). `backend` is the
// engine the responses named (the Backend of the first download message or
// of the UploadResponse, else the ringstore-backend trailer, else
// "unspecified"), "mixed" if they differ; `backends` counts each.
// `server_engine` is GetServerInfo's engine ("" if that call failed).
//
// --tls_ca=F connects with TLS, trusting the PEM CA F (to measure what TLS
// costs); --token=T sends "authorization: Bearer T" on every call.
//
// Exit status: 0 when the run completed (download and upload report errors
// in the JSON only), 1 when the server cannot be reached or populate had
// errors, 2 for bad flags.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ringstore/v1/ringstore.grpc.pb.h"
#include "bench/load_gen_batch.h"
#include "bench/load_gen_report.h"
#include "client/download_decoder.h"
#include "storage/engine/sync.h"
#include "third_party/system/crc32c.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "Server address, HOST:PORT.");
ABSL_FLAG(std::string, mode, "download", "download, batch, upload or populate.");
ABSL_FLAG(int32_t, batch_size, 100, "batch: paths per BatchDownload call (1..1000).");
ABSL_FLAG(int32_t, concurrency, 16, "Streams in flight at any time.");
ABSL_FLAG(int32_t, channels, 0,
          "gRPC channels (one TCP connection each) the streams share; 0 = one per 8 streams.");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10),
          "Stop starting requests after this long; 0 = no time bound (needs --count). "
          "Ignored by populate.");
ABSL_FLAG(int64_t, count, 0, "Requests to run; 0 = no limit (needs --duration).");
ABSL_FLAG(std::string, paths_file, "",
          "download: paths to pick from, one a line; populate: where to write the paths.");
ABSL_FLAG(bool, each_once, false,
          "download: every path of --paths_file once, in a shuffled order (sets --count).");
ABSL_FLAG(std::string, path, "", "download: the one path to download (instead of --paths_file).");
ABSL_FLAG(int64_t, seed, 1, "Seed of the PRNGs that pick paths and make upload data.");
ABSL_FLAG(int64_t, upload_size, 1 << 20, "upload, populate: bytes per file.");
ABSL_FLAG(std::string, upload_prefix, "load_gen",
          "upload, populate: files go to PREFIX/<request number>.");
ABSL_FLAG(int64_t, chunk_bytes, 1 << 20, "upload, populate: data bytes per message.");
ABSL_FLAG(absl::Duration, rpc_timeout, absl::Seconds(60), "Deadline of each request.");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA certificate(s): connect with TLS and trust them; empty = plaintext.");
ABSL_FLAG(std::string, token, "", "Bearer token sent in the authorization metadata.");
ABSL_FLAG(absl::Duration, connect_timeout, absl::Seconds(10),
          "How long to wait for each channel to connect before the run starts.");

namespace ringstore::bench {
namespace {

using Clock = std::chrono::steady_clock;
namespace v1 = ::ringstore::v1;

// The messages of one upload, built once and shared read-only by every
// stream: message 0 (spec + first chunk) is copied into each stream, which
// changes only its path; messages 1..n-1 are identical for every file.
struct UploadPlan {
  int64_t size = 0;
  std::string first_chunk;
  uint32_t first_chunk_crc = 0;
  std::vector<v1::UploadRequest> rest;  // messages 1..n-1; the last has finish
  int messages() const { return 1 + static_cast<int>(rest.size()); }
};

UploadPlan MakeUploadPlan(int64_t size, int64_t chunk_bytes, uint64_t seed) {
  std::string data(static_cast<size_t>(size), '\0');
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < data.size(); i += 8) {
    const uint64_t word = rng();
    std::memcpy(&data[i], &word, std::min<size_t>(8, data.size() - i));
  }
  UploadPlan plan;
  plan.size = size;
  const int64_t first = std::min(size, chunk_bytes);
  plan.first_chunk = data.substr(0, static_cast<size_t>(first));
  plan.first_chunk_crc = Crc32c(plan.first_chunk);
  for (int64_t offset = first; offset < size; offset += chunk_bytes) {
    const absl::string_view piece =
        absl::string_view(data).substr(static_cast<size_t>(offset), static_cast<size_t>(chunk_bytes));
    v1::UploadRequest& m = plan.rest.emplace_back();
    m.set_offset(offset);
    m.set_data(piece.data(), piece.size());
    m.set_crc32c(Crc32c(piece));
  }
  if (!plan.rest.empty()) plan.rest.back().set_finish(true);
  return plan;
}

// Hands out request numbers until --count or --duration is reached; tells
// the main thread when every stream has stopped.
class Run {
 public:
  Run(const Config& config, int streams)
      : config_(config), has_deadline_(config.mode != Mode::kPopulate &&
                                       config.duration > absl::ZeroDuration()),
        active_(streams) {}

  void Start() {
    start_ = Clock::now();
    deadline_ = start_ + absl::ToChronoNanoseconds(config_.duration);
  }

  // Sets *index to the next request number; false when the run is over.
  bool Claim(int64_t* index) {
    if (has_deadline_ && Clock::now() >= deadline_) return false;
    *index = next_.fetch_add(1, std::memory_order_relaxed);
    return config_.count == 0 || *index < config_.count;
  }

  void StreamDone() {
    MutexLock lock(&mu_);
    --active_;
  }

  // Blocks until every stream called StreamDone; the seconds since Start().
  double Wait() {
    MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int* active) { return *active == 0; }, &active_));
    return std::chrono::duration<double>(Clock::now() - start_).count();
  }

  const Config& config() const { return config_; }
  ErrorLog& errors() { return errors_; }

 private:
  const Config& config_;
  const bool has_deadline_;
  Clock::time_point start_;
  Clock::time_point deadline_;
  std::atomic<int64_t> next_{0};
  ErrorLog errors_;
  Mutex mu_;
  int active_ ABSL_GUARDED_BY(mu_);
};

// One of the --concurrency streams: runs requests one after another, each
// started from the previous one's OnDone. Owns the messages its calls reuse
// and the statistics only its own (strictly sequential) calls touch.
class Stream {
 public:
  Stream(int id, Run* run, v1::FileStore::Stub* stub, grpc::ChannelInterface* channel,
         const grpc::internal::RpcMethod* download, const std::vector<std::string>* paths,
         const UploadPlan* plan)
      : run_(run), stub_(stub), channel_(channel), download_method_(download), paths_(paths),
        plan_(plan),
        rng_(run->config().seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(id)) {
    if (plan != nullptr) {
      v1::UploadSpec* spec = first_upload_.mutable_spec();
      spec->set_size(plan->size);
      first_upload_.set_data(plan->first_chunk);
      first_upload_.set_crc32c(plan->first_chunk_crc);
      first_upload_.set_finish(plan->rest.empty());
    }
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Starts the next request, or tells the Run this stream is done.
  void Next();

  // Read after Run::Wait().
  const StreamStats& stats() const { return stats_; }

 private:
  friend class DownloadCall;
  friend class UploadCall;

  // Called by a call's OnDone before it deletes itself.
  void Record(const grpc::Status& status, Clock::duration latency, int64_t bytes, int backend,
              int64_t index) {
    ++stats_.requests;
    if (!status.ok()) {
      run_->errors().Add(status);
      return;
    }
    stats_.latencies_ns.push_back(
        std::chrono::duration_cast<std::chrono::nanoseconds>(latency).count());
    stats_.bytes += bytes;
    ++stats_.backends[backend];
    if (run_->config().mode == Mode::kPopulate) stats_.uploaded.push_back(index);
  }

  void Prepare(grpc::ClientContext* context) const {
    context->set_deadline(absl::ToChronoTime(absl::Now() + run_->config().rpc_timeout));
    if (!run_->config().token.empty()) {
      context->AddMetadata("authorization", absl::StrCat("Bearer ", run_->config().token));
    }
  }

  Run* const run_;
  v1::FileStore::Stub* const stub_;
  grpc::ChannelInterface* const channel_;  // stub_'s, for the raw Download
  const grpc::internal::RpcMethod* const download_method_;
  const std::vector<std::string>* const paths_;
  const UploadPlan* const plan_;
  std::mt19937_64 rng_;
  // Reused by every call of this stream.
  v1::DownloadRequest download_request_;
  grpc::ByteBuffer download_raw_;
  client::DownloadChunk download_chunk_;
  v1::BatchDownloadRequest batch_request_;
  v1::UploadRequest first_upload_;
  v1::UploadResponse upload_response_;

  StreamStats stats_;
};

// One download: reads raw messages into the stream's buffer, checking offset
// and crc32c of each on the received slices as it arrives; deletes itself
// in OnDone.
class DownloadCall final : public grpc::ClientReadReactor<grpc::ByteBuffer> {
 public:
  explicit DownloadCall(Stream* stream) : stream_(stream), start_(Clock::now()) {
    stream->Prepare(&context_);
    grpc::internal::ClientCallbackReaderFactory<grpc::ByteBuffer>::Create(
        stream->channel_, *stream->download_method_, &context_, &stream->download_request_,
        this);
    // gRPC runs the reactions after the Start calls that caused them;
    // RS_HAPPENS_BEFORE/AFTER let ThreadSanitizer see that (storage/sync.h).
    RS_HAPPENS_BEFORE(this);
    StartRead(&stream->download_raw_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    RS_HAPPENS_AFTER(this);
    if (!ok) return;  // end of stream or failure: OnDone follows
    client::DownloadChunk& r = stream_->download_chunk_;
    const absl::Status decoded = client::DecodeDownloadResponse(&stream_->download_raw_, &r);
    if (!decoded.ok()) {
      Fail(std::string(decoded.message()));
      return;
    }
    if (messages_++ == 0) {
      size_ = r.info.size();
      backend_ = r.backend;
    }
    if (r.offset != received_) {
      Fail(absl::StrCat("message at offset ", r.offset, ", expected ", received_));
      return;
    }
    received_ += r.data_size;
    RS_HAPPENS_BEFORE(this);
    StartRead(&stream_->download_raw_);
  }

  void OnDone(const grpc::Status& status) override {
    RS_HAPPENS_AFTER(this);
    const Clock::duration latency = Clock::now() - start_;
    grpc::Status result = status;
    if (!local_error_.ok()) {
      result = local_error_;
    } else if (status.ok() && messages_ == 0) {
      result = grpc::Status(grpc::StatusCode::DATA_LOSS, "download ended without a message");
    } else if (status.ok() && received_ != size_) {
      result = grpc::Status(grpc::StatusCode::DATA_LOSS,
                            absl::StrCat("received ", received_, " bytes of ", size_));
    }
    Stream* stream = stream_;
    stream->Record(result, latency, received_, ReportedBackend(backend_, context_), 0);
    delete this;
    stream->Next();
  }

 private:
  // A local check failed: cancel; OnDone reports local_error_.
  void Fail(std::string message) {
    local_error_ = grpc::Status(grpc::StatusCode::DATA_LOSS, std::move(message));
    context_.TryCancel();
  }

  Stream* const stream_;
  const Clock::time_point start_;
  grpc::ClientContext context_;
  grpc::Status local_error_;
  int64_t messages_ = 0;
  int64_t size_ = 0;
  int64_t received_ = 0;
  v1::Backend backend_ = v1::BACKEND_UNSPECIFIED;
};

// One upload: writes the stream's first message and then the shared rest,
// one write in flight; deletes itself in OnDone.
class UploadCall final : public grpc::ClientWriteReactor<v1::UploadRequest> {
 public:
  UploadCall(Stream* stream, int64_t index)
      : stream_(stream), index_(index), start_(Clock::now()) {
    stream->Prepare(&context_);
    stream->stub_->async()->Upload(&context_, &stream->upload_response_, this);
    WriteNext();
    RS_HAPPENS_BEFORE(this);
    StartCall();
  }

  void OnWriteDone(bool ok) override {
    RS_HAPPENS_AFTER(this);
    // !ok: the server ended the call; OnDone says why.
    if (ok && next_ < stream_->plan_->messages()) WriteNext();
  }

  void OnDone(const grpc::Status& status) override {
    RS_HAPPENS_AFTER(this);
    const Clock::duration latency = Clock::now() - start_;
    const v1::UploadResponse& r = stream_->upload_response_;
    const int64_t size = stream_->plan_->size;
    grpc::Status result = status;
    if (status.ok() && r.file().size() != size) {
      result = grpc::Status(grpc::StatusCode::DATA_LOSS,
                            absl::StrCat("server stored ", r.file().size(), " bytes of ", size));
    }
    Stream* stream = stream_;
    stream->Record(result, latency, size, ReportedBackend(r.backend(), context_), index_);
    delete this;
    stream->Next();
  }

 private:
  void WriteNext() {
    const UploadPlan& plan = *stream_->plan_;
    const v1::UploadRequest* m =
        next_ == 0 ? &stream_->first_upload_ : &plan.rest[static_cast<size_t>(next_ - 1)];
    const bool last = ++next_ == plan.messages();
    RS_HAPPENS_BEFORE(this);
    if (last) {
      StartWriteLast(m, grpc::WriteOptions());
    } else {
      StartWrite(m);
    }
  }

  Stream* const stream_;
  const int64_t index_;
  const Clock::time_point start_;
  grpc::ClientContext context_;
  int next_ = 0;  // messages started
};

void Stream::Next() {
  int64_t index = 0;
  if (!run_->Claim(&index)) {
    run_->StreamDone();
    return;
  }
  if (run_->config().mode == Mode::kBatch) {
    std::uniform_int_distribution<size_t> pick(0, paths_->size() - 1);
    batch_request_.clear_paths();
    for (int i = 0; i < run_->config().batch_size; ++i) batch_request_.add_paths((*paths_)[pick(rng_)]);
    StartBatchDownload(stub_, run_->config(), &batch_request_, [this](const BatchResult& r) {
      if (r.status.ok()) stats_.files += r.files;
      Record(r.status, r.latency, r.bytes, r.backend, 0);
      Next();
    });
  } else if (run_->config().mode == Mode::kDownload) {
    std::uniform_int_distribution<size_t> pick(0, paths_->size() - 1);
    const size_t i = run_->config().each_once ? static_cast<size_t>(index) : pick(rng_);
    download_request_.set_path((*paths_)[i]);
    new DownloadCall(this);
  } else {
    upload_response_.Clear();
    first_upload_.mutable_spec()->set_path(
        absl::StrCat(run_->config().upload_prefix, "/", index));
    new UploadCall(this, index);
  }
}

absl::StatusOr<std::vector<std::string>> ReadPaths(const std::string& file) {
  std::ifstream in(file);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", file));
  std::vector<std::string> paths;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) paths.push_back(line);
  }
  if (paths.empty()) return absl::InvalidArgumentError(absl::StrCat(file, " lists no paths"));
  return paths;
}

int Usage(const std::string& message) {
  std::cerr << "load_gen: " << message << "\n";
  return 2;
}

int Main() {
  Config config;
  config.mode_name = absl::GetFlag(FLAGS_mode);
  config.server = absl::GetFlag(FLAGS_server);
  config.concurrency = absl::GetFlag(FLAGS_concurrency);
  config.duration = absl::GetFlag(FLAGS_duration);
  config.count = absl::GetFlag(FLAGS_count);
  config.rpc_timeout = absl::GetFlag(FLAGS_rpc_timeout);
  config.upload_prefix = absl::GetFlag(FLAGS_upload_prefix);
  config.seed = static_cast<uint64_t>(absl::GetFlag(FLAGS_seed));
  config.token = absl::GetFlag(FLAGS_token);
  const std::string paths_file = absl::GetFlag(FLAGS_paths_file);
  const int64_t upload_size = absl::GetFlag(FLAGS_upload_size);
  const int64_t chunk_bytes = absl::GetFlag(FLAGS_chunk_bytes);

  if (config.mode_name == "upload") {
    config.mode = Mode::kUpload;
  } else if (config.mode_name == "populate") {
    config.mode = Mode::kPopulate;
  } else if (config.mode_name == "batch") {
    config.mode = Mode::kBatch;
  } else if (config.mode_name != "download") {
    return Usage("--mode must be download, batch, upload or populate");
  }
  config.batch_size = absl::GetFlag(FLAGS_batch_size);
  if (config.batch_size < 1 || config.batch_size > 1000) return Usage("--batch_size: 1..1000");
  const bool reads = config.mode == Mode::kDownload || config.mode == Mode::kBatch;
  if (config.concurrency < 1) return Usage("--concurrency must be at least 1");
  if (config.count < 0) return Usage("--count must not be negative");
  config.channels = absl::GetFlag(FLAGS_channels);
  if (config.channels < 0) return Usage("--channels must not be negative");
  if (config.channels == 0) config.channels = (config.concurrency + 7) / 8;
  config.channels = std::min(config.channels, config.concurrency);
  if (config.mode == Mode::kPopulate) {
    if (config.count == 0) return Usage("populate needs --count");
    if (paths_file.empty()) return Usage("populate needs --paths_file");
  } else if (config.count == 0 && config.duration <= absl::ZeroDuration()) {
    return Usage("set --count or a positive --duration");
  }
  if (!reads) {
    if (upload_size < 0) return Usage("--upload_size must not be negative");
    if (chunk_bytes < 1 || chunk_bytes > (64 << 20)) {
      return Usage("--chunk_bytes must be in [1, 64 MiB]");
    }
    if (config.upload_prefix.empty()) return Usage("--upload_prefix must not be empty");
  }

  std::vector<std::string> paths;
  if (reads) {
    const std::string path = absl::GetFlag(FLAGS_path);
    if (!path.empty() && !paths_file.empty()) return Usage("give --path or --paths_file, not both");
    if (!path.empty()) {
      paths.push_back(path);
    } else if (!paths_file.empty()) {
      absl::StatusOr<std::vector<std::string>> read = ReadPaths(paths_file);
      if (!read.ok()) return Usage(std::string(read.status().message()));
      paths = *std::move(read);
    } else {
      return Usage("download needs --path or --paths_file");
    }
  }
  config.each_once = absl::GetFlag(FLAGS_each_once);
  if (config.each_once) {
    if (config.mode != Mode::kDownload) return Usage("--each_once is for --mode=download");
    if (config.count != 0) return Usage("--each_once sets --count itself");
    std::shuffle(paths.begin(), paths.end(), std::mt19937_64(config.seed));
    config.count = static_cast<int64_t>(paths.size());
    config.duration = absl::ZeroDuration();
  }
  UploadPlan plan;
  if (!reads) plan = MakeUploadPlan(upload_size, chunk_bytes, config.seed);

  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (const std::string ca_file = absl::GetFlag(FLAGS_tls_ca); !ca_file.empty()) {
    std::ifstream in(ca_file, std::ios::binary);
    std::string ca((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in || ca.find("-----BEGIN ") == std::string::npos) {
      return Usage(absl::StrCat("--tls_ca file ", ca_file, " is not a readable PEM file"));
    }
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ca;
    credentials = grpc::SslCredentials(ssl);
  }

  // Distinct channel arguments and a local subchannel pool: each channel
  // gets a connection of its own instead of sharing one.
  std::vector<std::unique_ptr<v1::FileStore::Stub>> stubs;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<grpc::internal::RpcMethod> download_methods;
  const absl::Time connect_deadline = absl::Now() + absl::GetFlag(FLAGS_connect_timeout);
  for (int i = 0; i < config.channels; ++i) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("ringstore.load_gen.channel", i);
    std::shared_ptr<grpc::Channel> channel =
        grpc::CreateCustomChannel(config.server, credentials, args);
    if (!channel->WaitForConnected(absl::ToChronoTime(connect_deadline))) {
      std::cerr << "load_gen: cannot connect to " << config.server << "\n";
      return 1;
    }
    stubs.push_back(v1::FileStore::NewStub(channel));
    download_methods.push_back(client::RawDownloadMethod(channel));
    channels.push_back(std::move(channel));
  }

  std::string server_engine;
  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    if (!config.token.empty()) {
      context.AddMetadata("authorization", absl::StrCat("Bearer ", config.token));
    }
    v1::GetServerInfoRequest request;
    v1::ServerInfo info;
    Notification done;
    grpc::Status status;
    stubs[0]->async()->GetServerInfo(&context, &request, &info, [&](grpc::Status s) {
      status = std::move(s);
      done.Notify();
    });
    done.WaitForNotification();
    if (status.ok()) server_engine = info.engine();
  }

  Run run(config, config.concurrency);
  std::vector<std::unique_ptr<Stream>> streams;
  for (int i = 0; i < config.concurrency; ++i) {
    const auto c = static_cast<size_t>(i % config.channels);
    streams.push_back(std::make_unique<Stream>(
        i, &run, stubs[c].get(), channels[c].get(), &download_methods[c], &paths,
        reads ? nullptr : &plan));
  }
  run.Start();
  for (auto& s : streams) s->Next();
  const double seconds = run.Wait();

  StreamStats all;
  for (const auto& stream : streams) {
    const StreamStats& s = stream->stats();
    all.requests += s.requests;
    all.bytes += s.bytes;
    all.files += s.files;
    for (int b = 0; b < kBackendSlots; ++b) all.backends[b] += s.backends[b];
    all.latencies_ns.insert(all.latencies_ns.end(), s.latencies_ns.begin(), s.latencies_ns.end());
    all.uploaded.insert(all.uploaded.end(), s.uploaded.begin(), s.uploaded.end());
  }
  std::sort(all.latencies_ns.begin(), all.latencies_ns.end());
  std::cout << ReportJson(config, server_engine, seconds, all, run.errors()) << std::endl;

  const int64_t errors = all.requests - static_cast<int64_t>(all.latencies_ns.size());
  if (config.mode == Mode::kPopulate) {
    std::sort(all.uploaded.begin(), all.uploaded.end());
    std::ofstream out(paths_file, std::ios::trunc);
    for (int64_t i : all.uploaded) out << config.upload_prefix << "/" << i << "\n";
    out.close();
    if (!out) {
      std::cerr << "load_gen: cannot write " << paths_file << "\n";
      return 1;
    }
    if (errors > 0) {
      std::cerr << "load_gen: " << errors << " of " << all.requests << " uploads failed\n";
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace ringstore::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Drives a FileStore server with concurrent streams and prints one JSON object.\n"
      "Usage: load_gen --server=HOST:PORT --mode=download|batch|upload|populate "
      "[--concurrency=N] [--duration=10s] [--count=N] ...");
  absl::ParseCommandLine(argc, argv);
  // Debian's Abseil is built without NDEBUG, so every Mutex (gRPC
  // locks them per call) also maintains a deadlock-detection graph: a few
  // per cent of the generator's CPU that would otherwise go to the server.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return ringstore::bench::Main();
}
