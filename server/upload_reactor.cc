#include "server/upload_reactor.h"

#include <grpc/grpc.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/authorize.h"
#include "server/convert.h"
#include "server/idle_timer.h"
#include "storage/engine/cancellation.h"
#include "storage/engine/sync.h"
#include "third_party/system/crc32c.h"

namespace ringstore::server {
namespace {

using storage::Backend;

// A long resumed stream persists what it has every this many bytes, so a
// server that dies (kill -9, a lost machine) loses at most this much of it:
// one fsync per 64 MiB costs little next to writing them.
constexpr int64_t kPersistEveryBytes = 64 << 20;

// How an upload runs: a chain of steps, one at a time. Each step is a read
// of the next message (gRPC) or a storage call (the Store); its completion
// starts the next step or ends the RPC, so at any moment exactly one step
// is in flight, or none once End has run. State is touched only by the step
// in flight, in chain order (gRPC and the Store order each step's
// completion after its start), except cancel_, which OnCancel may fire from
// another thread at any time, and idle_fired_, which the idle timer sets
// (OnIdle) when a read has waited --idle_timeout for the client.
class UploadReactor final : public grpc::ServerReadReactor<v1::UploadRequest> {
 public:
  UploadReactor(grpc::CallbackServerContext* context, storage::Store* store,
                const ServiceOptions* options, v1::UploadResponse* response)
      : context_(context),
        store_(store),
        options_(options),
        response_(response),
        idle_(options->idle_timer, [this] { OnIdle(); }) {
    Read();
  }

  void OnReadDone(bool ok) override {
    RS_HAPPENS_AFTER(this);
    idle_.Disarm();
    if (!ok) {
      if (cancel_.cancelled() || idle_fired_.load()) return End(Cancelled());
      // The client half-closed before sending finish.
      if (resumed_ && writer_) return PersistAndEnd();
      return End(absl::InvalidArgumentError(
          "upload stream ended without finish=true; nothing was committed"));
    }
    if (!writer_) return OnFirstMessage();
    if (request_.first_case() != v1::UploadRequest::FIRST_NOT_SET) {
      return End(absl::InvalidArgumentError(
          "spec or upload_id may only be sent in the first message"));
    }
    OnData();
  }

  // The client went away or the deadline passed. A read in flight then
  // completes with ok=false; a storage call in flight is cut short (an
  // append stops writing and gives up a wait for a pool buffer; a commit
  // runs to its end) and the chain ends at its completion.
  void OnCancel() override {
    RS_HAPPENS_AFTER(this);
    cancel_.Cancel();
    // gRPC runs OnDone only after OnCancel has returned.
    RS_HAPPENS_BEFORE(this);
  }

  void OnDone() override {
    RS_HAPPENS_AFTER(this);
    idle_.Close();  // waits for an OnIdle running on the timer's thread
    delete this;
  }

 private:
  // The client has sent nothing for --idle_timeout while a read waited for
  // it (on the idle timer's thread). Cancelling the call fails that read
  // and fires cancel_ (OnCancel), and the chain ends as a cancelled upload
  // does (its temp data removed), with DEADLINE_EXCEEDED, which the client
  // sees too. The cancel is the last thing it does with the reactor.
  void OnIdle() {
    idle_fired_.store(true);
    const std::string message = absl::StrCat(
        "the client sent nothing for ", absl::FormatDuration(options_->idle_timer->timeout()),
        " (--idle_timeout)");
    grpc_call_cancel_with_status(context_->c_call(), GRPC_STATUS_DEADLINE_EXCEEDED,
                                 message.c_str(), nullptr);
  }

  void OnFirstMessage() {
    // Before any storage call. A resumed session's path is known only once
    // the store has answered (Attached checks it then).
    if (absl::Status s = request_.first_case() == v1::UploadRequest::kSpec
                             ? Authorize(*options_, *context_, Scope::kWrite,
                                         request_.spec().path())
                             : AuthorizeToken(*options_, *context_, Scope::kWrite);
        !s.ok()) {
      return End(s);
    }
    switch (request_.first_case()) {
      case v1::UploadRequest::kUploadId:
        return Resume();
      case v1::UploadRequest::FIRST_NOT_SET:
        return End(absl::InvalidArgumentError(
            "the first upload message must carry spec or upload_id"));
      case v1::UploadRequest::kSpec:
        break;
    }
    store_->CreateWriter(FromProto(request_.spec()), &cancel_,
                         [this](absl::StatusOr<std::unique_ptr<storage::Writer>> w,
                                Backend backend) {
                           backend_ = backend;
                           if (!w.ok()) return End(w.status());
                           writer_ = *std::move(w);
                           OnData();
                         });
  }

  // Attaches the stream to session request_.upload_id() (the store's
  // NotFound, also for another token's session, and Aborted for a second
  // stream pass through as they are).
  void Resume() {
    resumed_ = true;
    store_->ResumeUpload(request_.upload_id(), UploadOwner(*options_, *context_), &cancel_,
                         [this](absl::StatusOr<storage::Store::Resumed> r, Backend backend) {
                           backend_ = backend;
                           if (!r.ok()) return End(r.status());
                           Attached(*std::move(r));
                         });
  }

  void Attached(storage::Store::Resumed resumed) {
    // Held before anything can end the RPC: End drops it before Finish,
    // while the Cancellation it watches is alive.
    writer_ = std::move(resumed.writer);
    persisted_ = resumed.status.persisted_size;
    // The token's path prefix, against the session's path. The session is
    // the token's own (its owner), so this refuses only a token whose
    // prefix changed since it started the session; the Writer, dropped by
    // End, keeps what the session had.
    if (absl::Status s = AuthorizePath(*options_, *context_, Scope::kWrite,
                                       resumed.status.spec.path);
        !s.ok()) {
      return End(s);
    }
    if (writer_ == nullptr) {
      // Committed already: its FileInfo, whatever the stream carries.
      ToProto(resumed.status.file, response_->mutable_file());
      response_->set_backend(ToProto(backend_));
      return End(absl::OkStatus());
    }
    OnData();
  }

  // Persists in the middle of a long resumed stream, then reads on.
  void PersistAndRead() {
    writer_->Persist([this](absl::StatusOr<int64_t> persisted, Backend backend) {
      backend_ = backend;
      if (!persisted.ok()) return End(persisted.status());
      persisted_ = *persisted;
      if (cancel_.cancelled()) return End(Cancelled());
      Read();
    });
  }

  // A resumed stream that ended without finish: what it delivered becomes
  // durable, then OK with `file` unset (DESIGN.md §3).
  void PersistAndEnd() {
    writer_->Persist([this](absl::StatusOr<int64_t> persisted, Backend backend) {
      backend_ = backend;
      if (!persisted.ok()) return End(persisted.status());
      response_->set_backend(ToProto(backend));
      End(absl::OkStatus());
    });
  }

  // Writes the data of request_ (if any), then commits or reads on.
  void OnData() {
    if (cancel_.cancelled()) return End(Cancelled());
    const std::string& data = request_.data();
    if (static_cast<int64_t>(data.size()) > options_->max_chunk_bytes) {
      return End(absl::ResourceExhaustedError(absl::StrCat(
          "message carries ", data.size(), " bytes; the limit is ", options_->max_chunk_bytes)));
    }
    if (request_.has_crc32c() && Crc32c(data) != request_.crc32c()) {
      return End(absl::DataLossError(absl::StrCat(
          "crc32c mismatch in the message at offset ", request_.offset())));
    }
    const int64_t have = writer_->size();
    const int64_t offset = request_.offset();
    if (offset < 0 || offset > have) {
      // A resumed stream starts at or below QueryUpload's persisted_size
      // and continues from there (the Writer's size is what the session
      // persisted plus what this stream delivered).
      return End(absl::AbortedError(
          resumed_ ? absl::StrCat("offset ", offset, " is past the persisted size ", have)
                   : absl::StrCat("message offset ", offset, " does not continue the upload at ",
                                  have)));
    }
    // Bytes below what we already have are skipped (a resent message).
    const int64_t skip = std::min<int64_t>(have - offset, data.size());
    absl::string_view fresh = absl::string_view(data).substr(skip);
    if (fresh.empty()) return AfterWrite();
    writer_->Append(fresh, [this](absl::Status s, Backend backend) {
      backend_ = backend;
      if (!s.ok()) return End(s);
      AfterWrite();
    });
  }

  void AfterWrite() {
    if (cancel_.cancelled()) return End(Cancelled());
    if (!request_.finish()) {
      request_.Clear();
      if (resumed_ && writer_->size() - persisted_ >= kPersistEveryBytes) {
        return PersistAndRead();
      }
      return Read();
    }
    writer_->Commit([this](absl::StatusOr<storage::ObjectInfo> info, Backend backend) {
      backend_ = backend;
      if (!info.ok()) return End(info.status());
      ToProto(*info, response_->mutable_file());
      response_->set_backend(ToProto(backend));
      End(absl::OkStatus());
    });
  }

  absl::Status Cancelled() const {
    if (idle_fired_.load()) {
      return absl::DeadlineExceededError(absl::StrCat(
          "the client sent nothing for ", absl::FormatDuration(options_->idle_timer->timeout()),
          " (--idle_timeout); nothing was committed"));
    }
    return absl::CancelledError("upload cancelled by the client");
  }

  // The one way the RPC ends, from the step in flight (none is left).
  // Destroying an uncommitted Writer removes its temp data once its writes
  // in flight have finished and given their buffers back; a resumed
  // session's Writer instead persists what it accepted, in the background,
  // and keeps the session (store.h).
  void End(const absl::Status& status) {
    writer_.reset();
    AddBackendTrailer(context_, backend_);
    RS_HAPPENS_BEFORE(this);
    RS_HAPPENS_BEFORE(store_);  // see main.cc
    Finish(ToGrpcStatus(status));
  }

  // The next message, into request_. The idle clock runs until it comes.
  // The reaction may run on another thread, which gRPC orders after this
  // call.
  void Read() {
    RS_HAPPENS_BEFORE(this);
    idle_.Arm();
    StartRead(&request_);
  }

  grpc::CallbackServerContext* const context_;
  storage::Store* const store_;
  const ServiceOptions* const options_;
  v1::UploadResponse* const response_;
  // The upload's: the Writer's appends watch it. Outlives the Writer.
  storage::Cancellation cancel_;
  // Runs while a read waits for the client; closed by OnDone.
  IdleWatch idle_;
  std::atomic<bool> idle_fired_{false};

  v1::UploadRequest request_;
  // The stream names a resumable session (upload_id).
  bool resumed_ = false;
  // A resumed stream: what the session has persisted, as far as it knows.
  int64_t persisted_ = 0;
  std::unique_ptr<storage::Writer> writer_;
  Backend backend_ = Backend::kUnspecified;
};

}  // namespace

grpc::ServerReadReactor<v1::UploadRequest>* NewUploadReactor(
    grpc::CallbackServerContext* context, storage::Store* store,
    const ServiceOptions* options, v1::UploadResponse* response) {
  return new UploadReactor(context, store, options, response);
}

}  // namespace ringstore::server
