// The `ringstore` command line (DESIGN.md §4): argument parsing, output
// formatting and the commands, kept apart from main() so they can be tested.
#ifndef RINGSTORE_CLIENT_CLI_H_
#define RINGSTORE_CLIENT_CLI_H_

#include <cstdint>
#include <string>
#include <vector>

#include "ringstore/v1/ringstore.pb.h"

namespace ringstore::client {

// Exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

struct CliArgs {
  std::string server;  // empty: $RINGSTORE_SERVER, then 127.0.0.1:50051
  std::string token_file;
  std::string tls_ca;    // PEM CA file: use TLS and trust it
  std::string tls_cert;  // PEM client certificate chain (mTLS), with tls_key
  std::string tls_key;
  bool json = false;
  std::string command;  // put, get, ls, stat, rm, info, token
  // token new: the scopes (a comma list; empty = kDefaultTokenScopes) and
  // path prefix of the new token's line.
  std::string scopes;
  std::string prefix;
  std::vector<std::string> args;
  bool if_absent = false;
  bool resume = false;
  bool long_format = false;
  int64_t offset = 0;
  int64_t length = 0;
  // get, put: how many times a broken transfer is resumed (client.h
  // GetOptions, PutOptions).
  int64_t retries = 5;
};

// Parses argv[1..] (flags may come before or after the command; valued flags
// take "--flag=V" or "--flag V"). False with `*error` set on a usage error.
bool ParseArgs(const std::vector<std::string>& argv, CliArgs* out, std::string* error);

extern const char kUsage[];

// What `token new` grants without --scopes: reading, the least.
inline constexpr char kDefaultTokenScopes[] = "read";

// Whether gRPC target `target` (HOST:PORT, [V6]:PORT, dns:, ipv4:, ipv6:,
// unix:) is this machine: 127.0.0.0/8, ::1, "localhost" or a Unix socket.
// The CLI sends a token over plaintext only to such a target.
bool IsLoopbackTarget(const std::string& target);

// A fresh token: 256 bits from getrandom(2) as URL-safe base64 without
// padding (43 characters).
std::string NewToken();

// The tokens-file line for `token` (server/auth.h's format):
// "<sha256 hex> <scopes>[ <prefix>]".
std::string TokenFileLine(const std::string& token, const std::string& scopes,
                          const std::string& prefix);

// One JSON object for a file (no trailing newline), with "backend".
std::string FileInfoJson(const v1::FileInfo& info, const std::string& backend);
// JSON string literal for `s`, quotes included.
std::string JsonString(const std::string& s);
// RFC 3339 UTC time of a FileInfo.modified.
std::string FormatModified(const v1::FileInfo& info);

// Runs a parsed command against the server; returns the exit code.
int RunCommand(const CliArgs& args);

}  // namespace ringstore::client

#endif  // RINGSTORE_CLIENT_CLI_H_
