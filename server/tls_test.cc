// Start-up checks of the TLS flags and files: every refusal has its exact
// code and names the flag and the file. Certificates are made by the real
// openssl command in TEST_TMPDIR; a machine without it skips those tests.
#include "server/tls.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace ringstore::server {
namespace {

TEST(CheckTlsFlags, NoFlagsIsPlaintext) {
  EXPECT_TRUE(CheckTlsFlags({}).ok());
  EXPECT_FALSE(TlsRequested({}));
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds = ServerCredentialsFromFlags({});
  ASSERT_TRUE(creds.ok()) << creds.status();
  EXPECT_NE(*creds, nullptr);
}

TEST(CheckTlsFlags, CertAndKeyComeTogether) {
  absl::Status s = CheckTlsFlags({"c.pem", "", ""});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("--tls_key"), std::string::npos) << s;
  s = CheckTlsFlags({"", "k.pem", ""});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("--tls_cert"), std::string::npos) << s;
}

TEST(CheckTlsFlags, ClientCaNeedsCertAndKey) {
  absl::Status s = CheckTlsFlags({"", "", "ca.pem"});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("--tls_client_ca"), std::string::npos) << s;
  EXPECT_TRUE(CheckTlsFlags({"c.pem", "k.pem", "ca.pem"}).ok());
  // The credentials refuse the same combinations before touching a file.
  EXPECT_EQ(ServerCredentialsFromFlags({"", "", "ca.pem"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

class TlsFilesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = new std::string(std::string(tmp != nullptr ? tmp : "/tmp") + "/tls_test_files");
    const std::string d = *dir_;
    // Two self-signed certificates with their keys; the second key is the
    // "wrong" key for the first certificate.
    const std::string cmd =
        "mkdir -p " + d + " && cd " + d +
        " && for n in a b; do openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256"
        " -nodes -keyout $n.key -out $n.crt -days 1 -subj /CN=$n >/dev/null 2>&1 || exit 1;"
        " done";
    have_openssl_ = std::system(cmd.c_str()) == 0;
  }
  void SetUp() override {
    if (!have_openssl_) GTEST_SKIP() << "the openssl command is not available to make certificates";
  }
  static std::string Path(const std::string& name) { return *dir_ + "/" + name; }
  static std::string Write(const std::string& name, const std::string& content) {
    std::ofstream(Path(name), std::ios::binary) << content;
    return Path(name);
  }

  static std::string* dir_;
  static bool have_openssl_;
};
std::string* TlsFilesTest::dir_ = nullptr;
bool TlsFilesTest::have_openssl_ = false;

TEST_F(TlsFilesTest, GoodFilesGiveCredentials) {
  EXPECT_TRUE(CheckTlsFiles({Path("a.crt"), Path("a.key"), ""}).ok());
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds =
      ServerCredentialsFromFlags({Path("a.crt"), Path("a.key"), Path("b.crt")});
  ASSERT_TRUE(creds.ok()) << creds.status();
  EXPECT_NE(*creds, nullptr);
}

TEST_F(TlsFilesTest, MissingFileIsNotFoundAndNamed) {
  absl::Status s = CheckTlsFiles({Path("nope.crt"), Path("a.key"), ""});
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_NE(s.message().find("--tls_cert file " + Path("nope.crt")), std::string::npos) << s;
  s = CheckTlsFiles({Path("a.crt"), Path("nope.key"), ""});
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_NE(s.message().find("--tls_key file " + Path("nope.key")), std::string::npos) << s;
  s = CheckTlsFiles({Path("a.crt"), Path("a.key"), Path("nope-ca.crt")});
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_NE(s.message().find("--tls_client_ca file"), std::string::npos) << s;
  EXPECT_EQ(ServerCredentialsFromFlags({Path("nope.crt"), Path("a.key"), ""}).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(TlsFilesTest, UnreadableFileIsPermissionDenied) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads files whatever their mode";
  const std::string p = Write("unreadable.key", "x");
  chmod(p.c_str(), 0);
  absl::Status s = CheckTlsFiles({Path("a.crt"), p, ""});
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
}

TEST_F(TlsFilesTest, DirectoryIsRefused) {
  absl::Status s = CheckTlsFiles({*dir_, Path("a.key"), ""});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("--tls_cert file"), std::string::npos) << s;
}

TEST_F(TlsFilesTest, NotPemIsInvalidArgument) {
  const std::string junk = Write("junk.pem", "this is not a certificate\n");
  absl::Status s = CheckTlsFiles({junk, Path("a.key"), ""});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("--tls_cert file " + junk), std::string::npos) << s;
  s = CheckTlsFiles({Path("a.crt"), junk, ""});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("--tls_key file " + junk), std::string::npos) << s;
  s = CheckTlsFiles({Path("a.crt"), Path("a.key"), junk});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("--tls_client_ca file " + junk), std::string::npos) << s;
  // A key where the certificate belongs, and the other way round.
  EXPECT_EQ(CheckTlsFiles({Path("a.key"), Path("a.key"), ""}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckTlsFiles({Path("a.crt"), Path("a.crt"), ""}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(TlsFilesTest, CorruptCertificateBlockIsInvalidArgument) {
  std::ifstream in(Path("a.crt"));
  std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // A second block whose base64 is cut short.
  const std::string bad = Write("corrupt.crt", pem + pem.substr(0, pem.size() / 2) +
                                                   "\n-----END CERTIFICATE-----\n");
  absl::Status s = CheckTlsFiles({bad, Path("a.key"), ""});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("certificate 2"), std::string::npos) << s;
}

TEST_F(TlsFilesTest, KeyOfAnotherCertificateIsRefused) {
  absl::Status s = CheckTlsFiles({Path("a.crt"), Path("b.key"), ""});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("does not belong"), std::string::npos) << s;
}

}  // namespace
}  // namespace ringstore::server
