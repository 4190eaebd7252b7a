// Credentials of the main listener (--listen): plaintext, TLS, or mutual TLS
// (DESIGN.md §5, "Security, limits and operations").
//
// With a certificate and key the listener serves TLS; with a client CA as
// well it requires every client to present a certificate that chains to that
// CA (mTLS). gRPC's FileWatcherCertificateProvider re-reads all three files
// every kTlsRefreshSeconds and new handshakes use what it read, so a
// certificate replaced on disk (by rename, or by Kubernetes' `..data`
// symlink swap) is served without a restart; connections already open keep
// the certificate they were set up with. The provider reads the files by
// path and compares their contents, so it follows symlinks and renames alike.
//
// Rotation is tolerated, not validated: if a refresh catches a new key with
// the old certificate (two renames are not atomic together), handshakes fail
// until the next refresh reads the matching pair; a file missing at a
// refresh makes handshakes fail until it is back. Start-up, by contrast,
// checks everything and refuses a configuration that could not serve.
#ifndef RINGSTORE_SERVER_TLS_H_
#define RINGSTORE_SERVER_TLS_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ringstore::server {

// How often the certificate files are re-read. DESIGN.md promises a changed
// file is served within 10 s; 5 s leaves room for a refresh that lands on a
// half-finished rotation (mismatched pair) and the one after it.
inline constexpr unsigned kTlsRefreshSeconds = 5;

// The --tls_* flags: paths to PEM files, empty when not given.
struct TlsFiles {
  std::string cert;       // --tls_cert: certificate chain, leaf first
  std::string key;        // --tls_key: the leaf's private key
  std::string client_ca;  // --tls_client_ca: CA(s) client certificates must chain to
};

// True when any TLS flag is set.
bool TlsRequested(const TlsFiles& files);

// Checks the flag combination only (no file access): cert and key come
// together, and a client CA needs them. InvalidArgument naming the flags
// otherwise; OK for no flags at all (plaintext).
absl::Status CheckTlsFlags(const TlsFiles& files);

// Reads and parses the files as start-up would: each is readable (NotFound,
// PermissionDenied, ... naming the flag and the file otherwise), the
// certificate file and the client CA hold at least one PEM certificate and
// the key file a PEM private key (InvalidArgument otherwise), and the key
// belongs to the chain's first certificate (InvalidArgument). Blocks on file
// I/O; call it before serving.
absl::Status CheckTlsFiles(const TlsFiles& files);

// The credentials for --listen: InsecureServerCredentials() when no TLS flag
// is set; else, after CheckTlsFlags and CheckTlsFiles succeed,
// TlsServerCredentials over a FileWatcherCertificateProvider of the three
// files (refreshed every kTlsRefreshSeconds), requiring and verifying a
// client certificate when `client_ca` is set. On failure the first error of
// those checks, whose message names the flag and the file.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFromFlags(
    const TlsFiles& files);

}  // namespace ringstore::server

#endif  // RINGSTORE_SERVER_TLS_H_
