// Bearer-token authorization for the FileStore service (DESIGN.md §3,
// `--auth_tokens=FILE`).
//
// The tokens file holds one line per token:
//
//   <sha256 hex of the token> <scopes> [<path prefix>]
//
// Fields are separated by spaces or tabs. A field that starts with `#`
// starts a comment that runs to the end of the line; blank lines are
// ignored. The hash is 64 hex digits (either case). Scopes are a comma list
// (no spaces) of
//
//   read    Download, BatchDownload, Stat, List
//   write   Upload, StartUpload, QueryUpload, CancelUpload
//   delete  Delete
//   admin   all of the above, and GetServerInfo's details
//
// The optional prefix is a plain string prefix of the path: "team-a/"
// allows "team-a/x" but not "team-a2/x"; "team-a" allows both. A List's own
// prefix must start with the token's prefix (it is refused, not filtered).
// Empty or absent = every path. A prefix cannot contain white space or
// start with `#` or `/`.
//
// Only the SHA-256 of each token is stored; a presented token is hashed and
// compared with every entry in constant time (CRYPTO_memcmp), so neither
// which bytes match nor which entry matched shows in the time taken. No
// function here puts a token, or a hash field of the file, into a status
// message, and neither may its callers.
//
// Any valid token, whatever its scopes, may call GetServerInfo; it sees the
// version, the engine and backend serving and max_chunk_bytes. The other
// fields (engines available, io_uring features, buffer pool) need admin.
#ifndef RINGSTORE_SERVER_AUTH_H_
#define RINGSTORE_SERVER_AUTH_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "storage/engine/sync.h"

namespace ringstore::server {

// What a call needs. A token's scopes are a set of these (bits).
enum class Scope : uint8_t {
  kRead = 1,
  kWrite = 2,
  kDelete = 4,
  kAdmin = 8,
};

// "read", "write", "delete", "admin".
absl::string_view ScopeName(Scope scope);

struct TokenEntry {
  std::array<uint8_t, 32> sha256{};
  uint8_t scopes = 0;  // bits of Scope
  std::string prefix;  // empty = every path
  int line = 0;        // in the file, from 1
};

struct TokenTable {
  std::vector<TokenEntry> entries;
};

// Parses a tokens file's contents. Never crashes on any input (a fuzz
// target). On failure the status is INVALID_ARGUMENT with a message that
// starts "line N: " and does not repeat the line's hash field. Fails on: a
// hash that is not 64 hex digits, a missing, empty or unknown scope, a bad
// prefix, a field after the prefix, or a hash listed twice. An input with
// no token lines gives an empty table (which refuses every call).
absl::StatusOr<TokenTable> ParseTokenFile(absl::string_view contents);

// Hex SHA-256 of `token` (lower case): the first field of its line.
std::string TokenSha256Hex(absl::string_view token);

// TokenSha256Hex of the token in an `authorization` metadata value
// ("Bearer <token>"), or UNAUTHENTICATED as Authorizer::Check says. The
// owner of a resumable upload session (authorize.h's UploadOwner).
absl::StatusOr<std::string> BearerTokenSha256Hex(absl::string_view authorization_metadata);

// Decides whether a call may proceed. Thread-safe: Check may run on any
// number of threads while Reload swaps the table (a reload takes effect for
// calls that check after it returns; a Check in progress finishes on the
// table it started with). Check never blocks on I/O and takes the lock
// only to copy a shared_ptr.
class Authorizer {
 public:
  // Reads and parses `path`. Errors name the file and, for a bad line, its
  // number (INVALID_ARGUMENT); an unreadable file gives the errno's code.
  static absl::StatusOr<std::unique_ptr<Authorizer>> Load(std::string path);

  // An authorizer over a fixed table (tests); Reload then fails.
  explicit Authorizer(TokenTable table);

  Authorizer(const Authorizer&) = delete;
  Authorizer& operator=(const Authorizer&) = delete;

  // Reads the file again. On success the new table replaces the old one;
  // on failure the old table stays in use and the status says why (as
  // Load). Blocks on the file read: call it from main's thread, never from
  // a reaction.
  absl::Status Reload();

  // `authorization_metadata` is the value of the call's `authorization`
  // metadata ("" when absent). OK if it is "Bearer <token>" (the scheme in
  // any case) with a known token that has `scope` (or admin) and whose
  // prefix `path` starts with. UNAUTHENTICATED if the metadata is missing,
  // malformed or the token unknown; PERMISSION_DENIED if the token lacks
  // the scope or the path is outside its prefix.
  absl::Status Check(absl::string_view authorization_metadata, Scope scope,
                     absl::string_view path) const;

  // As Check, for calls that name no path (GetServerInfo; QueryUpload and
  // CancelUpload, which name a session): the token's prefix is not
  // consulted.
  absl::Status CheckToken(absl::string_view authorization_metadata, Scope scope) const;

  // Tokens in the table in use.
  size_t size() const;

 private:
  Authorizer(std::string path, TokenTable table);
  absl::Status CheckImpl(absl::string_view authorization_metadata, Scope scope,
                         const absl::string_view* path) const;
  std::shared_ptr<const TokenTable> table() const;

  const std::string path_;  // empty: a fixed table
  mutable Mutex mu_;
  std::shared_ptr<const TokenTable> table_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ringstore::server

#endif  // RINGSTORE_SERVER_AUTH_H_
