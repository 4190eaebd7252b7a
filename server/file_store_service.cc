#include "server/file_store_service.h"

#include <optional>
#include <utility>

#include "server/authorize.h"
#include "server/batch_download_reactor.h"
#include "server/convert.h"
#include "server/download_reactor.h"
#include "server/upload_reactor.h"
#include "storage/engine/cancellation.h"
#include "storage/engine/sync.h"

namespace ringstore::server {

using storage::Backend;

namespace {

// A unary RPC whose storage call is cut short when the RPC is cancelled.
// The storage call's callback ends the RPC (End, the one way it ends) and
// OnDone deletes the reactor. gRPC runs OnCancel, if at all, before OnDone,
// and OnDone only after Finish, so the Cancellation outlives the storage
// call (store.h: the Store does not touch it once it has called back).
class CancellableUnaryReactor final : public grpc::ServerUnaryReactor {
 public:
  CancellableUnaryReactor(grpc::CallbackServerContext* context, storage::Store* store)
      : context_(context), store_(store) {}

  storage::Cancellation* cancel() { return &cancel_; }

  void End(const absl::Status& status, Backend backend) {
    AddBackendTrailer(context_, backend);
    RS_HAPPENS_BEFORE(this);
    RS_HAPPENS_BEFORE(store_);  // see main.cc
    Finish(ToGrpcStatus(status));
  }

  void OnCancel() override {
    RS_HAPPENS_AFTER(this);
    cancel_.Cancel();
    // gRPC runs OnDone only after OnCancel has returned.
    RS_HAPPENS_BEFORE(this);
  }

  void OnDone() override {
    RS_HAPPENS_AFTER(this);
    delete this;
  }

 private:
  grpc::CallbackServerContext* const context_;
  storage::Store* const store_;
  storage::Cancellation cancel_;
};

// A unary call refused before any storage work (auth), or nullptr to go on.
grpc::ServerUnaryReactor* Refuse(grpc::CallbackServerContext* context,
                                 const absl::Status& status) {
  if (status.ok()) return nullptr;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

FileStoreService::FileStoreService(storage::Store* store, ServiceOptions options)
    : store_(store), options_(std::move(options)) {}

grpc::ServerReadReactor<v1::UploadRequest>* FileStoreService::Upload(
    grpc::CallbackServerContext* context, v1::UploadResponse* response) {
  return NewUploadReactor(context, store_, &options_, response);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* FileStoreService::Download(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  return NewDownloadReactor(context, store_, &options_, request);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* FileStoreService::BatchDownload(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  return NewBatchDownloadReactor(context, store_, &options_, request);
}

grpc::ServerUnaryReactor* FileStoreService::Stat(grpc::CallbackServerContext* context,
                                                 const v1::StatRequest* request,
                                                 v1::FileInfo* response) {
  if (auto* r = Refuse(context, Authorize(options_, *context, Scope::kRead, request->path()))) {
    return r;
  }
  auto* reactor = new CancellableUnaryReactor(context, store_);
  store_->Stat(request->path(), reactor->cancel(),
               [reactor, response](absl::StatusOr<storage::ObjectInfo> info, Backend b) {
                 if (info.ok()) ToProto(*info, response);
                 reactor->End(info.status(), b);
               });
  return reactor;
}

grpc::ServerUnaryReactor* FileStoreService::List(grpc::CallbackServerContext* context,
                                                 const v1::ListRequest* request,
                                                 v1::ListResponse* response) {
  if (auto* r = Refuse(context, Authorize(options_, *context, Scope::kRead, request->prefix()))) {
    return r;
  }
  auto* reactor = new CancellableUnaryReactor(context, store_);
  storage::ListOptions options;
  options.prefix = request->prefix();
  options.delimiter = request->delimiter();
  options.page_size = request->page_size();
  options.page_token = request->page_token();
  store_->List(std::move(options), reactor->cancel(),
               [reactor, response](absl::StatusOr<storage::ListResult> result, Backend b) {
                 if (result.ok()) {
                   for (const storage::ObjectInfo& info : result->files) {
                     ToProto(info, response->add_files());
                   }
                   for (std::string& prefix : result->prefixes) {
                     response->add_prefixes(std::move(prefix));
                   }
                   response->set_next_page_token(result->next_page_token);
                 }
                 reactor->End(result.status(), b);
               });
  return reactor;
}

grpc::ServerUnaryReactor* FileStoreService::Delete(grpc::CallbackServerContext* context,
                                                   const v1::DeleteRequest* request,
                                                   v1::DeleteResponse* response) {
  if (auto* r = Refuse(context, Authorize(options_, *context, Scope::kDelete, request->path()))) {
    return r;
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::optional<int64_t> if_generation_match;
  if (request->has_if_generation_match()) {
    if_generation_match = request->if_generation_match();
  }
  store_->Delete(request->path(), if_generation_match,
                 [store = store_, reactor, context, response](absl::Status s, Backend b) {
                   response->set_backend(ToProto(b));
                   AddBackendTrailer(context, b);
                   RS_HAPPENS_BEFORE(store);  // see main.cc
                   reactor->Finish(ToGrpcStatus(s));
                 });
  return reactor;
}

// The resumable-session RPCs need the `write` scope. StartUpload checks
// the token's prefix against the spec's path; QueryUpload against the
// session's path once the store has answered; CancelUpload checks only that
// the session is the token's own (its owner, else NOT_FOUND): the token was
// allowed the path when it started the session, and cancelling only throws
// away that token's own unfinished work.
grpc::ServerUnaryReactor* FileStoreService::StartUpload(
    grpc::CallbackServerContext* context, const v1::StartUploadRequest* request,
    v1::StartUploadResponse* response) {
  if (auto* r = Refuse(context, Authorize(options_, *context, Scope::kWrite,
                                          request->spec().path()))) {
    return r;
  }
  auto* reactor = new CancellableUnaryReactor(context, store_);
  store_->StartUpload(FromProto(request->spec()), UploadOwner(options_, *context),
                      [reactor, response](absl::StatusOr<std::string> id, Backend b) {
                        if (id.ok()) response->set_upload_id(*std::move(id));
                        reactor->End(id.status(), b);
                      });
  return reactor;
}

grpc::ServerUnaryReactor* FileStoreService::QueryUpload(
    grpc::CallbackServerContext* context, const v1::QueryUploadRequest* request,
    v1::QueryUploadResponse* response) {
  if (auto* r = Refuse(context, AuthorizeToken(options_, *context, Scope::kWrite))) {
    return r;
  }
  auto* reactor = new CancellableUnaryReactor(context, store_);
  store_->QueryUpload(
      request->upload_id(), UploadOwner(options_, *context),
      [this, reactor, context, response](absl::StatusOr<storage::Store::UploadStatus> status,
                                         Backend b) {
        if (!status.ok()) return reactor->End(status.status(), b);
        // In memory: the token's prefix against the session's path.
        if (absl::Status s = AuthorizePath(options_, *context, Scope::kWrite, status->spec.path);
            !s.ok()) {
          return reactor->End(s, b);
        }
        response->set_persisted_size(status->persisted_size);
        response->set_complete(status->complete);
        reactor->End(absl::OkStatus(), b);
      });
  return reactor;
}

grpc::ServerUnaryReactor* FileStoreService::CancelUpload(
    grpc::CallbackServerContext* context, const v1::CancelUploadRequest* request,
    v1::CancelUploadResponse*) {
  if (auto* r = Refuse(context, AuthorizeToken(options_, *context, Scope::kWrite))) {
    return r;
  }
  auto* reactor = new CancellableUnaryReactor(context, store_);
  store_->CancelUpload(request->upload_id(), UploadOwner(options_, *context),
                       [reactor](absl::Status s, Backend b) { reactor->End(s, b); });
  return reactor;
}

grpc::ServerUnaryReactor* FileStoreService::GetServerInfo(
    grpc::CallbackServerContext* context, const v1::GetServerInfoRequest*,
    v1::ServerInfo* response) {
  // Any valid token sees what a client needs; the machine's details need
  // admin (auth.h).
  if (auto* r = Refuse(context, Admit(options_))) return r;
  bool details = true;
  if (options_.authorizer != nullptr) {
    const absl::Status admin = AuthorizeToken(options_, *context, Scope::kAdmin);
    details = admin.ok();
    if (admin.code() != absl::StatusCode::kPermissionDenied) {
      if (auto* r = Refuse(context, admin)) return r;
    }
  }
  // Everything here is in memory: answering inline touches no disk.
  const storage::EngineInfo info = store_->engine().info();
  response->set_engine(std::string(storage::BackendName(info.backend)));
  response->set_backend(ToProto(info.backend));
  response->set_version(options_.version);
  response->set_max_chunk_bytes(options_.max_chunk_bytes);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!details) {
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  for (const std::string& name : store_->available_engines()) {
    response->add_engines_available(name);
  }
  if (info.backend == Backend::kIoUring) {
    for (const std::string& f : info.features) response->add_io_uring_features(f);
  }
  response->set_registered_buffer_count(static_cast<int32_t>(store_->pool().count()));
  response->set_registered_buffer_size(static_cast<int64_t>(store_->pool().buffer_size()));
  response->set_buffers_registered(info.buffers_registered);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace ringstore::server
