#include "server/convert.h"

#include <string>

#include "absl/time/time.h"

namespace ringstore::server {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl and gRPC share the canonical code numbering.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

v1::Backend ToProto(storage::Backend backend) {
  // storage::Backend takes the proto's numbers (engine.h); convert_test
  // checks that for every engine of the engine list.
  const int value = static_cast<int>(backend);
  return v1::Backend_IsValid(value) ? static_cast<v1::Backend>(value) : v1::BACKEND_UNSPECIFIED;
}

void ToProto(const storage::ObjectInfo& info, v1::FileInfo* out) {
  out->set_path(info.path);
  out->set_size(info.size);
  out->set_generation(info.generation);
  const timespec ts = absl::ToTimespec(info.modified);
  out->mutable_modified()->set_seconds(ts.tv_sec);
  out->mutable_modified()->set_nanos(static_cast<int32_t>(ts.tv_nsec));
  out->set_crc32c(info.crc32c);
}

storage::WriteSpec FromProto(const v1::UploadSpec& spec) {
  storage::WriteSpec ws;
  ws.path = spec.path();
  ws.size = spec.size();
  if (spec.has_if_generation_match()) ws.if_generation_match = spec.if_generation_match();
  if (spec.has_crc32c()) ws.crc32c = spec.crc32c();
  return ws;
}

void AddBackendTrailer(grpc::ServerContextBase* context, storage::Backend backend) {
  if (backend == storage::Backend::kUnspecified) return;
  context->AddTrailingMetadata(kBackendMetadataKey,
                               std::string(storage::BackendName(backend)));
}

}  // namespace ringstore::server
