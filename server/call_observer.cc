#include "server/call_observer.h"

#include <chrono>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "ringstore/v1/ringstore.grpc.pb.h"
#include "server/convert.h"
#include "storage/engine/engine_selector.h"
#include "storage/engine/sync.h"

namespace ringstore::server {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::InterceptorBatchMethods;

namespace {

constexpr const char* kCodeNames[CallObserver::kCodes] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

// Seconds; from a cache hit (tens of microseconds) to a large file.
const std::vector<double> kDurationBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                              0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                              1,      2.5,     5,      10,    30,     60};

// Reads a received message: adds its size to *bytes and, if `path` is not
// null and the message names one, sets *path.
using Inspector = void (*)(void* message, uint64_t* bytes, std::string* path);

template <typename Request>
void InspectPlain(void* message, uint64_t* bytes, std::string*) {
  *bytes += static_cast<const Request*>(message)->ByteSizeLong();
}

template <typename Request>
void InspectPath(void* message, uint64_t* bytes, std::string* path) {
  const auto* r = static_cast<const Request*>(message);
  *bytes += r->ByteSizeLong();
  if (path != nullptr) *path = r->path();
}

void InspectUpload(void* message, uint64_t* bytes, std::string* path) {
  const auto* r = static_cast<const v1::UploadRequest*>(message);
  *bytes += r->ByteSizeLong();
  if (path != nullptr && r->has_spec()) *path = r->spec().path();
}

void InspectStartUpload(void* message, uint64_t* bytes, std::string* path) {
  const auto* r = static_cast<const v1::StartUploadRequest*>(message);
  *bytes += r->ByteSizeLong();
  if (path != nullptr) *path = r->spec().path();
}

void InspectList(void* message, uint64_t* bytes, std::string* path) {
  const auto* r = static_cast<const v1::ListRequest*>(message);
  *bytes += r->ByteSizeLong();
  if (path != nullptr) *path = r->prefix();
}

// Download is a raw method: its request arrives as the serialized bytes.
void InspectDownload(void* message, uint64_t* bytes, std::string* path) {
  auto* buffer = static_cast<grpc::ByteBuffer*>(message);
  *bytes += buffer->Length();
  if (path == nullptr) return;
  grpc::ByteBuffer copy(*buffer);  // shares the slices; parsing consumes them
  v1::DownloadRequest request;
  if (grpc::SerializationTraits<v1::DownloadRequest>::Deserialize(&copy, &request).ok()) {
    *path = request.path();
  }
}

// BatchDownload too; the access log's path is the first one named.
void InspectBatchDownload(void* message, uint64_t* bytes, std::string* path) {
  auto* buffer = static_cast<grpc::ByteBuffer*>(message);
  *bytes += buffer->Length();
  if (path == nullptr) return;
  grpc::ByteBuffer copy(*buffer);
  v1::BatchDownloadRequest request;
  if (grpc::SerializationTraits<v1::BatchDownloadRequest>::Deserialize(&copy, &request).ok() &&
      request.paths_size() > 0) {
    *path = request.paths(0);
  }
}

struct KnownInspector {
  const char* name;
  Inspector inspect;
};
constexpr KnownInspector kInspectors[] = {
    {"Upload", &InspectUpload},
    {"Download", &InspectDownload},
    {"BatchDownload", &InspectBatchDownload},
    {"Stat", &InspectPath<v1::StatRequest>},
    {"List", &InspectList},
    {"Delete", &InspectPath<v1::DeleteRequest>},
    {"StartUpload", &InspectStartUpload},
    {"QueryUpload", &InspectPlain<v1::QueryUploadRequest>},
    {"CancelUpload", &InspectPlain<v1::CancelUploadRequest>},
    {"GetServerInfo", &InspectPlain<v1::GetServerInfoRequest>},
};

// Services besides FileStore whose methods get their own label.
constexpr const char* kOtherMethods[] = {
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
};

}  // namespace

struct CallObserver::MethodSpec {
  std::string path;   // "/ringstore.v1.FileStore/Download"
  std::string label;  // "Download"
  Inspector inspect = nullptr;
  bool is_upload = false;
  // [code][backend], found on first use.
  std::unique_ptr<std::atomic<Counter*>[]> requests;
  std::atomic<Histogram*> duration{nullptr};
  // [direction (0 in, 1 out)][backend]
  std::unique_ptr<std::atomic<Counter*>[]> bytes;
};

namespace {

// One call. gRPC runs at most one batch of a call's hooks at a time for
// each direction; the counters are atomics anyway, since a receive and a
// send may be intercepted on two threads at once.
class CallInterceptor final : public grpc::experimental::Interceptor {
 public:
  CallInterceptor(CallObserver* observer, const CallObserver::MethodSpec* method,
                  grpc::experimental::ServerRpcInfo* info)
      : observer_(observer),
        method_(method),
        info_(info),
        start_(std::chrono::steady_clock::now()) {
    if (observer_->access_log() != nullptr) start_time_ = absl::Now();
    if (method_->is_upload && observer_->uploads_in_progress() != nullptr) {
      observer_->uploads_in_progress()->Add(1);
    }
  }

  ~CallInterceptor() override {
    // gRPC destroys the interceptor after the call's last batch.
    RS_HAPPENS_AFTER(this);
    if (method_->is_upload && observer_->uploads_in_progress() != nullptr) {
      observer_->uploads_in_progress()->Add(-1);
    }
    CallObserver::CallResult r;
    r.method = method_;
    r.code = status_seen_ ? code_ : static_cast<int>(grpc::StatusCode::CANCELLED);
    r.backend = backend_;
    r.bytes_in = bytes_in_.load(std::memory_order_relaxed);
    r.bytes_out = bytes_out_.load(std::memory_order_relaxed);
    const auto end = status_seen_ ? end_ : std::chrono::steady_clock::now();
    r.seconds = std::chrono::duration<double>(end - start_).count();
    observer_->Record(r);
    if (AccessLog* log = observer_->access_log()) {
      AccessRecord a;
      a.time = start_time_;
      a.peer = std::move(peer_);
      a.method = method_->label;
      a.path = std::move(path_);
      a.bytes_in = r.bytes_in;
      a.bytes_out = r.bytes_out;
      a.backend = r.backend == 0 ? "" : observer_->BackendLabel(r.backend);
      a.code = kCodeNames[r.code];
      a.duration_seconds = r.seconds;
      a.request_id = request_id_.empty() ? NewRequestId() : std::move(request_id_);
      log->Write(FormatAccessRecord(a));
    }
  }

  void Intercept(InterceptorBatchMethods* m) override {
    RS_HAPPENS_AFTER(this);
    const bool logging = observer_->access_log() != nullptr;
    if (logging && m->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      peer_ = info_->server_context()->peer();
      const auto* md = m->GetRecvInitialMetadata();
      auto it = md->find("x-request-id");
      if (it != md->end()) {
        // Bounded: it is the client's text.
        request_id_.assign(it->second.data(), std::min<size_t>(it->second.size(), 128));
      }
    }
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      void* message = m->GetRecvMessage();
      if (message != nullptr && method_->inspect != nullptr) {
        uint64_t n = 0;
        method_->inspect(message, &n, logging && path_.empty() ? &path_ : nullptr);
        bytes_in_.fetch_add(n, std::memory_order_relaxed);
      }
    }
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      // Serializes now what gRPC would serialize a moment later anyway.
      if (const grpc::ByteBuffer* b = m->GetSerializedSendMessage()) {
        bytes_out_.fetch_add(b->Length(), std::memory_order_relaxed);
      }
    }
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      end_ = std::chrono::steady_clock::now();
      const int code = static_cast<int>(m->GetSendStatus().error_code());
      code_ = code >= 0 && code < CallObserver::kCodes ? code : 2;  // UNKNOWN
      const auto* trailers = m->GetSendTrailingMetadata();
      auto it = trailers->find(kBackendMetadataKey);
      if (it != trailers->end()) backend_ = observer_->BackendIndex(it->second);
      status_seen_ = true;
    }
    // The fields set here are read by the next batch or the destructor,
    // which gRPC runs after this one (storage/engine/sync.h).
    RS_HAPPENS_BEFORE(this);
    m->Proceed();
  }

 private:
  CallObserver* const observer_;
  const CallObserver::MethodSpec* const method_;
  grpc::experimental::ServerRpcInfo* const info_;
  const std::chrono::steady_clock::time_point start_;
  absl::Time start_time_;
  std::atomic<uint64_t> bytes_in_{0};
  std::atomic<uint64_t> bytes_out_{0};
  // Set by the status batch, read when the call is gone.
  bool status_seen_ = false;
  int code_ = 0;
  int backend_ = 0;
  std::chrono::steady_clock::time_point end_;
  // Access log only.
  std::string peer_;
  std::string path_;
  std::string request_id_;
};

class Factory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(CallObserver* observer) : observer_(observer) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new CallInterceptor(observer_, observer_->FindMethod(info->method()), info);
  }

 private:
  CallObserver* const observer_;
};

}  // namespace

CallObserver::CallObserver(MetricsRegistry* metrics, AccessLog* access_log)
    : metrics_(metrics), access_log_(access_log) {
  backends_.push_back("none");
  for (const storage::EngineKind& k : storage::AllEngines()) {
    const size_t index = static_cast<size_t>(k.backend);
    if (backends_.size() <= index) backends_.resize(index + 1);
    backends_[index] = std::string(k.name);
  }
  const size_t cells = static_cast<size_t>(kCodes) * backends_.size();
  auto add = [&](std::string path, std::string label, Inspector inspect) {
    auto m = std::make_unique<MethodSpec>();
    m->path = std::move(path);
    m->label = std::move(label);
    m->inspect = inspect;
    m->is_upload = m->label == "Upload";
    m->requests.reset(new std::atomic<Counter*>[cells]);
    for (size_t i = 0; i < cells; ++i) m->requests[i].store(nullptr);
    m->bytes.reset(new std::atomic<Counter*>[2 * backends_.size()]);
    for (size_t i = 0; i < 2 * backends_.size(); ++i) m->bytes[i].store(nullptr);
    return m;
  };
  // Every FileStore method the proto has, so that a new RPC is labelled
  // without an edit here (its bytes_in and path need an inspector above).
  const google::protobuf::ServiceDescriptor* service =
      v1::UploadRequest::descriptor()->file()->FindServiceByName("FileStore");
  for (int i = 0; service != nullptr && i < service->method_count(); ++i) {
    const std::string name = service->method(i)->name();
    Inspector inspect = nullptr;
    for (const KnownInspector& k : kInspectors) {
      if (name == k.name) inspect = k.inspect;
    }
    methods_.push_back(add(absl::StrCat("/", service->full_name(), "/", name), name, inspect));
  }
  for (const char* path : kOtherMethods) methods_.push_back(add(path, path + 1, nullptr));
  other_ = add("", "other", nullptr);

  if (metrics_ != nullptr) {
    requests_ = metrics_->AddCounter("ringstore_requests_total",
                                     "Calls answered, by method, status code and engine.",
                                     {"method", "code", "backend"});
    durations_ = metrics_->AddHistogram(
        "ringstore_request_duration_seconds",
        "Time from a call's arrival to its status being sent, by method.", {"method"},
        kDurationBuckets);
    bytes_ = metrics_->AddCounter(
        "ringstore_bytes_total",
        "Message bytes received (in) and sent (out) by calls that ended, by engine.",
        {"direction", "backend"});
    uploads_in_progress_ = metrics_->AddGauge("ringstore_uploads_in_progress",
                                              "Upload calls in flight.", {})
                               ->Get({});
  }
}

CallObserver::~CallObserver() = default;

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> CallObserver::NewFactory() {
  return std::make_unique<Factory>(this);
}

const CallObserver::MethodSpec* CallObserver::FindMethod(const char* path) const {
  if (path != nullptr) {
    for (const auto& m : methods_) {
      if (std::strcmp(m->path.c_str(), path) == 0) return m.get();
    }
  }
  return other_.get();
}

int CallObserver::BackendIndex(const std::string& name) const {
  for (size_t i = 1; i < backends_.size(); ++i) {
    if (backends_[i] == name) return static_cast<int>(i);
  }
  return 0;
}

namespace {

// The cell in `slot`, looked up in `family` the first time.
template <typename Cell>
Cell* CellOf(std::atomic<Cell*>* slot, Family<Cell>* family, const LabelValues& labels) {
  Cell* cell = slot->load(std::memory_order_acquire);
  if (cell == nullptr) {
    cell = family->Get(labels);
    slot->store(cell, std::memory_order_release);
  }
  return cell;
}

}  // namespace

void CallObserver::Record(const CallResult& r) {
  if (metrics_ == nullptr) return;
  // The spec is ours (FindMethod), so the cells may be set through it.
  auto* m = const_cast<MethodSpec*>(r.method);
  const std::string& backend = backends_[r.backend];
  CellOf(&m->requests[static_cast<size_t>(r.code) * backends_.size() + r.backend], requests_,
         {m->label, kCodeNames[r.code], backend})
      ->Inc();
  CellOf(&m->duration, durations_, {m->label})->Observe(r.seconds);
  if (r.bytes_in > 0) {
    CellOf(&m->bytes[r.backend], bytes_, {"in", backend})->Add(r.bytes_in);
  }
  if (r.bytes_out > 0) {
    CellOf(&m->bytes[backends_.size() + r.backend], bytes_, {"out", backend})->Add(r.bytes_out);
  }
}

}  // namespace ringstore::server
