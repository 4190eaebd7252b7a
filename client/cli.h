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
  std::string command;  // put, get, ls, stat, rm, info
  std::vector<std::string> args;
  bool if_absent = false;
  bool resume = false;
  bool long_format = false;
  int64_t offset = 0;
  int64_t length = 0;
};

// Parses argv[1..] (flags may come before or after the command; valued flags
// take "--flag=V" or "--flag V"). False with `*error` set on a usage error.
bool ParseArgs(const std::vector<std::string>& argv, CliArgs* out, std::string* error);

extern const char kUsage[];

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
