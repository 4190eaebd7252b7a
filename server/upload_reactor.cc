#include "server/upload_reactor.h"

#include <memory>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/convert.h"
#include "third_party/system/crc32c.h"
#include "storage/engine/sync.h"

namespace ringstore::server {
namespace {

using storage::Backend;

class UploadReactor final : public grpc::ServerReadReactor<v1::UploadRequest> {
 public:
  UploadReactor(grpc::CallbackServerContext* context, storage::Store* store,
                v1::UploadResponse* response, int64_t max_chunk_bytes)
      : context_(context),
        store_(store),
        response_(response),
        max_chunk_bytes_(max_chunk_bytes) {
    Read();
  }

  void OnReadDone(bool ok) override {
    RS_HAPPENS_AFTER(this);
    if (!ok) {
      // The client half-closed (or went away) before sending finish.
      return Fail(absl::InvalidArgumentError(
          "upload stream ended without finish=true; nothing was committed"));
    }
    if (!writer_) return OnFirstMessage();
    if (request_.first_case() != v1::UploadRequest::FIRST_NOT_SET) {
      return Fail(absl::InvalidArgumentError(
          "spec or upload_id may only be sent in the first message"));
    }
    OnData();
  }

  // Nothing to do on cancel: a pending read then completes with ok=false,
  // and a storage call in flight checks Cancelled() when it completes.
  void OnCancel() override {}

  void OnDone() override {
    RS_HAPPENS_AFTER(this);
    delete this;
  }

 private:
  void OnFirstMessage() {
    switch (request_.first_case()) {
      case v1::UploadRequest::kUploadId:
        return Fail(absl::UnimplementedError(
            "resuming an upload by upload_id is not supported by this server yet"));
      case v1::UploadRequest::FIRST_NOT_SET:
        return Fail(absl::InvalidArgumentError(
            "the first upload message must carry spec"));
      case v1::UploadRequest::kSpec:
        break;
    }
    const v1::UploadSpec& spec = request_.spec();
    storage::WriteSpec ws;
    ws.path = spec.path();
    ws.size = spec.size();
    if (spec.has_if_generation_match()) ws.if_generation_match = spec.if_generation_match();
    if (spec.has_crc32c()) ws.crc32c = spec.crc32c();
    store_->CreateWriter(std::move(ws), [this](absl::StatusOr<std::unique_ptr<storage::Writer>> w,
                                               Backend backend) {
      backend_ = backend;
      if (!w.ok()) return Fail(w.status());
      writer_ = *std::move(w);
      if (Cancelled()) return;
      OnData();
    });
  }

  // Writes the data of request_ (if any), then commits or reads on.
  void OnData() {
    const std::string& data = request_.data();
    if (static_cast<int64_t>(data.size()) > max_chunk_bytes_) {
      return Fail(absl::ResourceExhaustedError(absl::StrCat(
          "message carries ", data.size(), " bytes; the limit is ", max_chunk_bytes_)));
    }
    if (request_.has_crc32c() && Crc32c(data) != request_.crc32c()) {
      return Fail(absl::DataLossError(absl::StrCat(
          "crc32c mismatch in the message at offset ", request_.offset())));
    }
    const int64_t have = writer_->size();
    const int64_t offset = request_.offset();
    if (offset < 0 || offset > have) {
      return Fail(absl::AbortedError(absl::StrCat(
          "message offset ", offset, " does not continue the upload at ", have)));
    }
    // Bytes below what we already have are skipped (a resent message).
    const int64_t skip = std::min<int64_t>(have - offset, data.size());
    absl::string_view fresh = absl::string_view(data).substr(skip);
    if (fresh.empty()) return AfterWrite();
    writer_->Append(fresh, [this](absl::Status s, Backend backend) {
      backend_ = backend;
      if (!s.ok()) return Fail(s);
      if (Cancelled()) return;
      AfterWrite();
    });
  }

  void AfterWrite() {
    if (!request_.finish()) {
      request_.Clear();
      Read();
      return;
    }
    writer_->Commit([this](absl::StatusOr<storage::ObjectInfo> info, Backend backend) {
      backend_ = backend;
      if (!info.ok()) return Fail(info.status());
      ToProto(*info, response_->mutable_file());
      response_->set_backend(ToProto(backend));
      Complete(grpc::Status::OK);
    });
  }

  // True if the client has gone: the storage call that just completed must
  // not be followed by another.
  bool Cancelled() {
    if (!context_->IsCancelled()) return false;
    Fail(absl::CancelledError("upload cancelled by the client"));
    return true;
  }

  void Fail(const absl::Status& status) {
    writer_.reset();  // discards the temp data
    Complete(ToGrpcStatus(status));
  }

  // Ends the RPC. Called only by the one thread driving the upload, with no
  // read and no storage call in flight; touches nothing afterwards.
  void Complete(const grpc::Status& status) {
    AddBackendTrailer(context_, backend_);
    RS_HAPPENS_BEFORE(this);
    RS_HAPPENS_BEFORE(store_);  // see main.cc
    Finish(status);
  }

  // The next message, into request_. The reaction may run on another
  // thread, which gRPC orders after this call.
  void Read() {
    RS_HAPPENS_BEFORE(this);
    StartRead(&request_);
  }

  grpc::CallbackServerContext* const context_;
  storage::Store* const store_;
  v1::UploadResponse* const response_;
  const int64_t max_chunk_bytes_;

  v1::UploadRequest request_;
  std::unique_ptr<storage::Writer> writer_;
  Backend backend_ = Backend::kUnspecified;
};

}  // namespace

grpc::ServerReadReactor<v1::UploadRequest>* NewUploadReactor(
    grpc::CallbackServerContext* context, storage::Store* store,
    v1::UploadResponse* response, int64_t max_chunk_bytes) {
  return new UploadReactor(context, store, response, max_chunk_bytes);
}

}  // namespace ringstore::server
