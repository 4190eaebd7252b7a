// The check every FileStore handler makes before it touches storage: the
// call's `authorization` metadata against ServiceOptions::authorizer
// (auth.h). With auth off (authorizer == nullptr) it is one pointer test.
// The statuses are auth.h's (UNAUTHENTICATED, PERMISSION_DENIED); convert
// them with ToGrpcStatus like any other.
#ifndef RINGSTORE_SERVER_AUTHORIZE_H_
#define RINGSTORE_SERVER_AUTHORIZE_H_

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/auth.h"
#include "server/service_options.h"

namespace ringstore::server {

// The value of the call's first `authorization` metadata, "" if none.
inline absl::string_view AuthorizationMetadata(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return {};
  return absl::string_view(it->second.data(), it->second.size());
}

// Authorizer::Check for a call on `path`.
inline absl::Status Authorize(const ServiceOptions& options,
                              const grpc::ServerContextBase& context, Scope scope,
                              absl::string_view path) {
  if (options.authorizer == nullptr) return absl::OkStatus();
  return options.authorizer->Check(AuthorizationMetadata(context), scope, path);
}

// Authorizer::CheckToken, for a call that names no path.
inline absl::Status AuthorizeToken(const ServiceOptions& options,
                                   const grpc::ServerContextBase& context, Scope scope) {
  if (options.authorizer == nullptr) return absl::OkStatus();
  return options.authorizer->CheckToken(AuthorizationMetadata(context), scope);
}

}  // namespace ringstore::server

#endif  // RINGSTORE_SERVER_AUTHORIZE_H_
