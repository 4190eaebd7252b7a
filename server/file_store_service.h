// The FileStore service (DESIGN.md §3) on gRPC's callback API.
//
// Streaming RPCs get their own reactors (upload_reactor.h,
// download_reactor.h, batch_download_reactor.h); unary RPCs use the default reactor and finish it from
// the storage completion. No handler touches the disk itself.
#ifndef RINGSTORE_SERVER_FILE_STORE_SERVICE_H_
#define RINGSTORE_SERVER_FILE_STORE_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <string>

#include "ringstore/v1/ringstore.grpc.pb.h"
#include "server/service_options.h"
#include "storage/store.h"

namespace ringstore::server {

// Download and BatchDownload are raw methods: their responses are built by
// hand so that file data is not copied (download_message.h).
class FileStoreService final
    : public v1::FileStore::WithRawCallbackMethod_Download<
          v1::FileStore::WithRawCallbackMethod_BatchDownload<v1::FileStore::CallbackService>> {
 public:
  // `store` must outlive the service.
  FileStoreService(storage::Store* store, ServiceOptions options);

  grpc::ServerReadReactor<v1::UploadRequest>* Upload(
      grpc::CallbackServerContext* context, v1::UploadResponse* response) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Download(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* BatchDownload(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* Stat(grpc::CallbackServerContext* context,
                                 const v1::StatRequest* request,
                                 v1::FileInfo* response) override;
  grpc::ServerUnaryReactor* List(grpc::CallbackServerContext* context,
                                 const v1::ListRequest* request,
                                 v1::ListResponse* response) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                   const v1::DeleteRequest* request,
                                   v1::DeleteResponse* response) override;
  grpc::ServerUnaryReactor* StartUpload(grpc::CallbackServerContext* context,
                                        const v1::StartUploadRequest* request,
                                        v1::StartUploadResponse* response) override;
  grpc::ServerUnaryReactor* QueryUpload(grpc::CallbackServerContext* context,
                                        const v1::QueryUploadRequest* request,
                                        v1::QueryUploadResponse* response) override;
  grpc::ServerUnaryReactor* CancelUpload(grpc::CallbackServerContext* context,
                                         const v1::CancelUploadRequest* request,
                                         v1::CancelUploadResponse* response) override;
  grpc::ServerUnaryReactor* GetServerInfo(grpc::CallbackServerContext* context,
                                          const v1::GetServerInfoRequest* request,
                                          v1::ServerInfo* response) override;

 private:
  storage::Store* const store_;
  const ServiceOptions options_;
};

}  // namespace ringstore::server

#endif  // RINGSTORE_SERVER_FILE_STORE_SERVICE_H_
