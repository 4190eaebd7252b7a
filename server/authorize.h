// The check every FileStore handler makes before it touches storage: that
// the server is not draining (drain.h: UNAVAILABLE), then the call's
// `authorization` metadata against ServiceOptions::authorizer (auth.h).
// With auth off (authorizer == nullptr) it is two loads. The auth statuses
// are auth.h's (UNAUTHENTICATED, PERMISSION_DENIED); convert them with
// ToGrpcStatus like any other.
#ifndef RINGSTORE_SERVER_AUTHORIZE_H_
#define RINGSTORE_SERVER_AUTHORIZE_H_

#include <grpcpp/grpcpp.h>

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/auth.h"
#include "server/drain.h"
#include "server/service_options.h"

namespace ringstore::server {

// The value of the call's first `authorization` metadata, "" if none.
inline absl::string_view AuthorizationMetadata(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return {};
  return absl::string_view(it->second.data(), it->second.size());
}

// UNAVAILABLE once the server drains: the client should try another
// replica, or this one once it is back.
inline absl::Status Admit(const ServiceOptions& options) {
  if (options.drain != nullptr && options.drain->draining()) {
    return absl::UnavailableError("the server is shutting down");
  }
  return absl::OkStatus();
}

// Admit, then Authorizer::Check for a call on `path`.
inline absl::Status Authorize(const ServiceOptions& options,
                              const grpc::ServerContextBase& context, Scope scope,
                              absl::string_view path) {
  if (absl::Status admitted = Admit(options); !admitted.ok()) return admitted;
  if (options.authorizer == nullptr) return absl::OkStatus();
  return options.authorizer->Check(AuthorizationMetadata(context), scope, path);
}

// Authorizer::Check alone, for a call already admitted whose path is known
// only once the store has answered (a resumable session's).
inline absl::Status AuthorizePath(const ServiceOptions& options,
                                  const grpc::ServerContextBase& context, Scope scope,
                                  absl::string_view path) {
  if (options.authorizer == nullptr) return absl::OkStatus();
  return options.authorizer->Check(AuthorizationMetadata(context), scope, path);
}

// Admit, then Authorizer::CheckToken, for a call that names no path.
inline absl::Status AuthorizeToken(const ServiceOptions& options,
                                   const grpc::ServerContextBase& context, Scope scope) {
  if (absl::Status admitted = Admit(options); !admitted.ok()) return admitted;
  if (options.authorizer == nullptr) return absl::OkStatus();
  return options.authorizer->CheckToken(AuthorizationMetadata(context), scope);
}

// The owner of the resumable upload sessions a call starts or names
// (store.h): the hex SHA-256 of its bearer token, so a session belongs to
// the token that started it and another token's calls get NOT_FOUND; ""
// with auth off. Call it once Authorize or AuthorizeToken has admitted the
// call (its token is then well formed).
inline std::string UploadOwner(const ServiceOptions& options,
                               const grpc::ServerContextBase& context) {
  if (options.authorizer == nullptr) return "";
  absl::StatusOr<std::string> owner = BearerTokenSha256Hex(AuthorizationMetadata(context));
  // Unreachable once admitted; never "" (auth off's owner) with auth on.
  return owner.ok() ? *std::move(owner) : "unauthenticated";
}

}  // namespace ringstore::server

#endif  // RINGSTORE_SERVER_AUTHORIZE_H_
