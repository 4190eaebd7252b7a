// Conversions between storage/ types and the v1 proto, in one place:
// absl::Status → grpc::Status (same canonical codes), storage::Backend →
// proto Backend and its trailing-metadata name, ObjectInfo → FileInfo,
// UploadSpec → WriteSpec.
#ifndef RINGSTORE_SERVER_CONVERT_H_
#define RINGSTORE_SERVER_CONVERT_H_

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "ringstore/v1/ringstore.pb.h"
#include "storage/engine/engine.h"
#include "storage/store.h"

namespace ringstore::server {

// Trailing metadata key naming the engine that served a request.
inline constexpr char kBackendMetadataKey[] = "ringstore-backend";

grpc::Status ToGrpcStatus(const absl::Status& status);
v1::Backend ToProto(storage::Backend backend);
void ToProto(const storage::ObjectInfo& info, v1::FileInfo* out);
// An UploadSpec as the store takes it (the store validates it).
storage::WriteSpec FromProto(const v1::UploadSpec& spec);

// Adds the ringstore-backend trailer (no-op for kUnspecified, i.e. no file
// was touched). Call before Finish.
void AddBackendTrailer(grpc::ServerContextBase* context, storage::Backend backend);

}  // namespace ringstore::server

#endif  // RINGSTORE_SERVER_CONVERT_H_
