#include "server/tls.h"

#include <fcntl.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "storage/engine/status_util.h"

namespace ringstore::server {
namespace {

// OpenSSL objects owned the RAII way.
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;

// "--tls_cert file /etc/tls/tls.crt": how every error names its file.
std::string Describe(const char* flag, const std::string& path) {
  return absl::StrCat("--", flag, " file ", path);
}

// The whole file. Errors from storage::ErrnoToStatus (NotFound,
// PermissionDenied, ...), naming the flag and the file.
absl::StatusOr<std::string> ReadWholeFile(const char* flag, const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return storage::ErrnoToStatus(errno, Describe(flag, path));
  std::string data;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return storage::ErrnoToStatus(err, Describe(flag, path));
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return data;
}

BioPtr MemoryBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// The first certificate of a PEM file that must hold at least one, after
// checking that every certificate block in it parses.
absl::StatusOr<X509Ptr> ParseCertificates(const char* flag, const std::string& path,
                                          const std::string& pem) {
  BioPtr bio = MemoryBio(pem);
  X509Ptr first;
  int count = 0;
  for (;;) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (cert == nullptr) break;
    if (first == nullptr) first = std::move(cert);
    ++count;
  }
  // The loop ends on an error (end of data is one too); a real parse error
  // is a PEM certificate block that did not decode.
  const unsigned long err = ERR_peek_last_error();
  ERR_clear_error();
  const bool clean_end =
      ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE;
  if (count == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(Describe(flag, path), " holds no PEM certificate"));
  }
  if (err != 0 && !clean_end) {
    return absl::InvalidArgumentError(absl::StrCat(Describe(flag, path),
                                                   ": certificate ", count + 1,
                                                   " is not valid PEM"));
  }
  return first;
}

absl::StatusOr<KeyPtr> ParsePrivateKey(const std::string& path, const std::string& pem) {
  BioPtr bio = MemoryBio(pem);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        Describe("tls_key", path), " holds no PEM private key (an encrypted key is not supported)"));
  }
  return key;
}

}  // namespace

bool TlsRequested(const TlsFiles& files) {
  return !files.cert.empty() || !files.key.empty() || !files.client_ca.empty();
}

absl::Status CheckTlsFlags(const TlsFiles& files) {
  if (files.cert.empty() != files.key.empty()) {
    return absl::InvalidArgumentError(
        files.cert.empty() ? "--tls_key needs --tls_cert (the certificate chain it belongs to)"
                           : "--tls_cert needs --tls_key (the certificate's private key)");
  }
  if (!files.client_ca.empty() && files.cert.empty()) {
    return absl::InvalidArgumentError(
        "--tls_client_ca needs --tls_cert and --tls_key (mTLS is TLS with client certificates)");
  }
  return absl::OkStatus();
}

absl::Status CheckTlsFiles(const TlsFiles& files) {
  if (!TlsRequested(files)) return absl::OkStatus();
  absl::StatusOr<std::string> cert_pem = ReadWholeFile("tls_cert", files.cert);
  if (!cert_pem.ok()) return cert_pem.status();
  absl::StatusOr<std::string> key_pem = ReadWholeFile("tls_key", files.key);
  if (!key_pem.ok()) return key_pem.status();
  absl::StatusOr<X509Ptr> leaf = ParseCertificates("tls_cert", files.cert, *cert_pem);
  if (!leaf.ok()) return leaf.status();
  absl::StatusOr<KeyPtr> key = ParsePrivateKey(files.key, *key_pem);
  if (!key.ok()) return key.status();
  const int match = X509_check_private_key(leaf->get(), key->get());
  ERR_clear_error();
  if (match != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(Describe("tls_key", files.key),
                     " does not belong to the first certificate of ", Describe("tls_cert", files.cert)));
  }
  if (!files.client_ca.empty()) {
    absl::StatusOr<std::string> ca_pem = ReadWholeFile("tls_client_ca", files.client_ca);
    if (!ca_pem.ok()) return ca_pem.status();
    absl::StatusOr<X509Ptr> ca = ParseCertificates("tls_client_ca", files.client_ca, *ca_pem);
    if (!ca.ok()) return ca.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFromFlags(
    const TlsFiles& files) {
  if (absl::Status s = CheckTlsFlags(files); !s.ok()) return s;
  if (!TlsRequested(files)) return grpc::InsecureServerCredentials();
  if (absl::Status s = CheckTlsFiles(files); !s.ok()) return s;

  // The provider reads the files now and then every kTlsRefreshSeconds on
  // its own thread; the credentials keep it alive.
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      files.key, files.cert, files.client_ca, kTlsRefreshSeconds);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (files.client_ca.empty()) {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::experimental::TlsServerCredentials(options);
  if (creds == nullptr) {
    return absl::InternalError("gRPC refused the TLS server credentials");
  }
  return creds;
}

}  // namespace ringstore::server
