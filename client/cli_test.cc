#include "client/cli.h"

#include <cctype>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "client/client.h"
#include "client/get_many.h"
#include "client/upload_tracker.h"
#include "gtest/gtest.h"

namespace ringstore::client {
namespace {

TEST(Json, EscapesStrings) {
  EXPECT_EQ(JsonString("plain"), "\"plain\"");
  EXPECT_EQ(JsonString("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(JsonString("l1\nl2\t\x01"), "\"l1\\nl2\\t\\u0001\"");
  EXPECT_EQ(JsonString("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
}

TEST(BackendName, NamesComeFromTheProtoEnum) {
  EXPECT_EQ(BackendName(v1::BACKEND_IO_URING), "io_uring");
  EXPECT_EQ(BackendName(v1::BACKEND_POSIX_AIO), "posix_aio");
  EXPECT_EQ(BackendName(v1::BACKEND_THREAD_POOL), "thread_pool");
  EXPECT_EQ(BackendName(v1::BACKEND_UNSPECIFIED), "");
  EXPECT_EQ(BackendName(static_cast<v1::Backend>(99)), "");
}

TEST(Json, FileInfoHasEveryFieldAndTheBackend) {
  v1::FileInfo f;
  f.set_path("dir/a \"b\"");
  f.set_size(42);
  f.set_generation(7);
  f.mutable_modified()->set_seconds(1700000000);
  f.mutable_modified()->set_nanos(500000000);
  f.set_crc32c(3);
  EXPECT_EQ(FileInfoJson(f, "thread_pool"),
            "{\"path\":\"dir/a \\\"b\\\"\",\"size\":42,\"generation\":7,"
            "\"modified\":\"2023-11-14T22:13:20.5Z\",\"crc32c\":3,"
            "\"backend\":\"thread_pool\"}");
}

bool Parse(std::vector<std::string> argv, CliArgs* out, std::string* error) {
  return ParseArgs(argv, out, error);
}

TEST(ParseArgs, FlagsBeforeAndAfterTheCommand) {
  CliArgs a;
  std::string error;
  ASSERT_TRUE(Parse({"--server=h:1", "get", "r", "-", "--offset", "5", "--length=9", "--json"},
                    &a, &error))
      << error;
  EXPECT_EQ(a.server, "h:1");
  EXPECT_EQ(a.command, "get");
  EXPECT_EQ(a.args, (std::vector<std::string>{"r", "-"}));
  EXPECT_EQ(a.offset, 5);
  EXPECT_EQ(a.length, 9);
  EXPECT_TRUE(a.json);
}

TEST(ParseArgs, GetRetries) {
  CliArgs a;
  std::string error;
  ASSERT_TRUE(Parse({"get", "r", "-"}, &a, &error)) << error;
  EXPECT_EQ(a.retries, 5);
  CliArgs b;
  ASSERT_TRUE(Parse({"get", "r", "-", "--retries=0"}, &b, &error)) << error;
  EXPECT_EQ(b.retries, 0);
}

TEST(ParseArgs, PutFlags) {
  CliArgs a;
  std::string error;
  ASSERT_TRUE(Parse({"put", "l", "r", "--if_absent", "--resume"}, &a, &error)) << error;
  EXPECT_TRUE(a.if_absent);
  EXPECT_TRUE(a.resume);
}

TEST(ParseArgs, PutRetriesAndResume) {
  CliArgs a;
  std::string error;
  ASSERT_TRUE(Parse({"put", "l", "r"}, &a, &error)) << error;
  EXPECT_EQ(a.retries, 5);
  EXPECT_FALSE(a.resume);
  CliArgs b;
  ASSERT_TRUE(Parse({"put", "--retries", "0", "l", "r", "--resume"}, &b, &error)) << error;
  EXPECT_EQ(b.retries, 0);
  EXPECT_TRUE(b.resume);
  EXPECT_EQ(b.args, (std::vector<std::string>{"l", "r"}));
  CliArgs c;
  ASSERT_TRUE(Parse({"put", "l", "r", "--retries=100", "--resume=false"}, &c, &error)) << error;
  EXPECT_EQ(c.retries, 100);
  EXPECT_FALSE(c.resume);
  // stdin is a plain upload: it cannot be resumed.
  CliArgs d;
  EXPECT_FALSE(Parse({"put", "-", "r", "--resume"}, &d, &error));
  EXPECT_NE(error.find("stdin"), std::string::npos) << error;
  CliArgs e;
  ASSERT_TRUE(Parse({"put", "-", "r", "--retries=3"}, &e, &error)) << error;
}

std::string TrackerDir() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return std::string(tmp != nullptr ? tmp : "/tmp") + "/trackers/a/b";
}

TEST(UploadTracker, KeyedByServerPathSizeAndMtime) {
  const std::string dir = TrackerDir();
  const UploadTracker t(dir, "h:1", "x/y", 100, 5);
  EXPECT_EQ(t.path().rfind(dir + "/upload-", 0), 0u) << t.path();
  EXPECT_EQ(t.path().size(), dir.size() + 8 + 64);
  EXPECT_EQ(UploadTracker(dir, "h:1", "x/y", 100, 5).path(), t.path());
  std::set<std::string> paths = {t.path()};
  paths.insert(UploadTracker(dir, "h:2", "x/y", 100, 5).path());
  paths.insert(UploadTracker(dir, "h:1", "x/z", 100, 5).path());
  paths.insert(UploadTracker(dir, "h:1", "x/y", 101, 5).path());
  paths.insert(UploadTracker(dir, "h:1", "x/y", 100, 6).path());
  EXPECT_EQ(paths.size(), 5u);
}

TEST(UploadTracker, WriteReadRemove) {
  const UploadTracker t(TrackerDir(), "h:1", "w", 7, 8);
  EXPECT_EQ(t.Read(), "");
  ASSERT_EQ(t.Write("0123456789abcdef0123456789abcdef"), "");
  EXPECT_EQ(t.Read(), "0123456789abcdef0123456789abcdef");
  ASSERT_EQ(t.Write("ffffffffffffffffffffffffffffffff"), "");
  EXPECT_EQ(t.Read(), "ffffffffffffffffffffffffffffffff");
  EXPECT_EQ(UploadTracker(TrackerDir(), "h:1", "w", 7, 9).Read(), "");
  t.Remove();
  EXPECT_EQ(t.Read(), "");
}

TEST(UploadTracker, CacheDirFollowsXdgThenHome) {
  setenv("XDG_CACHE_HOME", "/x/cache", 1);
  EXPECT_EQ(UploadTracker::CacheDir(), "/x/cache/ringstore");
  unsetenv("XDG_CACHE_HOME");
  setenv("HOME", "/home/u", 1);
  EXPECT_EQ(UploadTracker::CacheDir(), "/home/u/.cache/ringstore");
}

TEST(ParseArgs, LsTakesAnOptionalPrefix) {
  CliArgs a;
  std::string error;
  EXPECT_TRUE(Parse({"ls"}, &a, &error));
  CliArgs b;
  EXPECT_TRUE(Parse({"ls", "dir/", "--long"}, &b, &error));
  EXPECT_TRUE(b.long_format);
}

TEST(ParseArgs, TlsFlags) {
  CliArgs a;
  std::string error;
  ASSERT_TRUE(Parse({"--tls_ca=ca.pem", "stat", "r", "--tls_cert", "c.pem", "--tls_key=k.pem"},
                    &a, &error))
      << error;
  EXPECT_EQ(a.tls_ca, "ca.pem");
  EXPECT_EQ(a.tls_cert, "c.pem");
  EXPECT_EQ(a.tls_key, "k.pem");
  CliArgs b;
  ASSERT_TRUE(Parse({"info", "--tls_ca", "ca.pem"}, &b, &error)) << error;
  EXPECT_EQ(b.tls_ca, "ca.pem");
  EXPECT_TRUE(b.tls_cert.empty());
  EXPECT_TRUE(b.tls_key.empty());
}

TEST(ParseArgs, TlsCertAndKeyComeTogether) {
  for (const std::vector<std::string>& argv :
       {std::vector<std::string>{"info", "--tls_cert=c.pem"},
        std::vector<std::string>{"info", "--tls_key=k.pem", "--tls_ca=ca.pem"},
        std::vector<std::string>{"info", "--tls_key"}}) {
    CliArgs a;
    std::string error;
    EXPECT_FALSE(Parse(argv, &a, &error)) << argv[1];
    EXPECT_NE(error.find("--tls_"), std::string::npos) << error;
  }
}

TEST(ParseArgs, UsageErrors) {
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"frobnicate"},
      {"put", "only-one"},
      {"put", "a", "b", "c"},
      {"get", "r"},
      {"stat"},
      {"rm", "a", "b"},
      {"info", "x"},
      {"ls", "a", "b"},
      {"stat", "r", "--bogus"},
      {"get", "r", "-", "--offset=-1"},
      {"get", "r", "-", "--length=abc"},
      {"get", "r", "-", "--offset"},
      {"stat", "r", "--if_absent"},
      {"ls", "--offset=3"},
      {"stat", "r", "--retries=2"},
      {"ls", "--retries=2"},
      {"put", "a", "b", "--offset=3"},
      {"put", "-", "r", "--resume"},
      {"put", "a", "b", "--retries=101"},
      {"get", "r", "-", "--retries=-1"},
      {"get", "r", "-", "--retries=101"},
      {"stat", "r", "--long"},
      {"stat", "r", "--json=maybe"},
      {"token"},
      {"token", "old"},
      {"token", "new", "x"},
      {"token", "new", "--scopes=read,sudo"},
      {"token", "new", "--scopes=read,"},
      {"token", "new", "--scopes="},
      {"token", "new", "--scopes=Read"},
      {"token", "new", "--prefix=/abs"},
      {"token", "new", "--prefix=#x"},
      {"token", "new", "--prefix=a b"},
      {"token", "new", "--prefix=a\tb"},
      {"put", "a", "b", "--scopes=write"},
      {"ls", "--prefix=a/"},
      {"get", "--prefix=p/"},
      {"get", "--prefix=p/", "a", "d/"},
      {"get", "a", "b", "d/", "--offset=1"},
      {"get", "a", "d/", "--length=1"},
      {"get", "a", "b", "-"},
      {"get", "--prefix=p/", "-"},
  };
  for (const auto& argv : bad) {
    CliArgs a;
    std::string error;
    EXPECT_FALSE(Parse(argv, &a, &error)) << "accepted argv of " << argv.size();
    EXPECT_FALSE(error.empty());
  }
}

TEST(ParseArgs, GetOfManyFiles) {
  struct Case {
    std::vector<std::string> argv;
    bool many;
  };
  for (const Case& c : std::vector<Case>{
           {{"get", "r", "local"}, false},
           {{"get", "r", "-"}, false},
           {{"get", "r", "d/"}, true},
           {{"get", "a", "b/c", "d"}, true},
           {{"get", "--prefix=p/", "d/"}, true},
           {{"get", "--prefix", "p", "d"}, true},
       }) {
    CliArgs a;
    std::string error;
    ASSERT_TRUE(Parse(c.argv, &a, &error)) << error;
    EXPECT_EQ(IsGetMany(a), c.many) << c.argv[1];
  }
}

TEST(SafeRelativePath, RefusesWhatCouldLeaveTheDirectory) {
  for (const char* ok : {"a", "a/b", "a.b/..c/d..", ".hidden/x"}) {
    EXPECT_TRUE(SafeRelativePath(ok)) << ok;
  }
  for (const char* bad : {"", "/etc/passwd", "..", "../x", "a/../../x", "a/..", "./a", "a/./b",
                          "a//b", "a/", "/"}) {
    EXPECT_FALSE(SafeRelativePath(bad)) << bad;
  }
  EXPECT_FALSE(SafeRelativePath(std::string("a\0b", 3)));
}

TEST(ParseArgs, TokenNew) {
  CliArgs a;
  std::string error;
  ASSERT_TRUE(Parse({"token", "new"}, &a, &error)) << error;
  EXPECT_EQ(a.command, "token");
  EXPECT_EQ(a.args, (std::vector<std::string>{"new"}));
  EXPECT_EQ(a.scopes, "");  // kDefaultTokenScopes
  EXPECT_EQ(a.prefix, "");
  CliArgs b;
  ASSERT_TRUE(Parse({"--json", "token", "new", "--scopes", "read,write,delete,admin",
                     "--prefix=team-a/"},
                    &b, &error))
      << error;
  EXPECT_EQ(b.scopes, "read,write,delete,admin");
  EXPECT_EQ(b.prefix, "team-a/");
  EXPECT_TRUE(b.json);
  EXPECT_STREQ(kDefaultTokenScopes, "read");
}

TEST(IsLoopbackTarget, OnlyThisMachine) {
  for (const char* t : {"127.0.0.1:50051", "127.1.2.3:1", "localhost:50051", "LocalHost:1",
                        "[::1]:50051", "::1", "[::ffff:127.0.0.1]:5", "dns:///localhost:1",
                        "dns:127.0.0.1:1", "dns://8.8.8.8/127.0.0.1:1", "ipv4:127.0.0.1:1",
                        "ipv6:[::1]:1", "unix:/run/ringstore.sock", "unix-abstract:rs",
                        "127.0.0.1"}) {
    EXPECT_TRUE(IsLoopbackTarget(t)) << t;
  }
  for (const char* t : {"192.0.2.1:1", "10.0.0.1:50051", "128.0.0.1:1", "example.com:443",
                        "localhost.example.com:1", "[::2]:1", "[2001:db8::1]:1",
                        "[::ffff:10.0.0.1]:1", "dns:///example.com:1", "dns://127.0.0.1",
                        "ipv4:10.0.0.1:1,127.0.0.1:1", "[::1", "", "127.0.0.1.nip.io:1",
                        "0.0.0.0:1"}) {
    EXPECT_FALSE(IsLoopbackTarget(t)) << t;
  }
}

TEST(TokenNew, TokensAreFreshUrlSafeAnd256Bits) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string t = NewToken();
    ASSERT_EQ(t.size(), 43u) << t;  // 256 bits, base64 without padding
    for (char c : t) {
      EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') << t;
    }
    EXPECT_TRUE(seen.insert(t).second);
  }
}

TEST(TokenNew, LineIsTheHashScopesAndPrefix) {
  // sha256("abc"), FIPS 180-2's example.
  const std::string abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  EXPECT_EQ(TokenFileLine("abc", "read", ""), abc + " read");
  EXPECT_EQ(TokenFileLine("abc", "read,write", "team-a/"), abc + " read,write team-a/");
}

// The refusal comes before any connection: 192.0.2.1 (TEST-NET-1) would
// otherwise hang until the deadline.
TEST(RunCommand, RefusesATokenInPlaintextToAnotherHost) {
  CliArgs a;
  std::string error;
  ASSERT_TRUE(Parse({"--server=192.0.2.1:1", "stat", "x"}, &a, &error)) << error;
  setenv("RINGSTORE_TOKEN", "secret-token", 1);
  testing::internal::CaptureStderr();
  EXPECT_EQ(RunCommand(a), kExitFailure);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("refusing to send the token from $RINGSTORE_TOKEN in plaintext to "
                     "192.0.2.1:1"),
            std::string::npos)
      << err;
  EXPECT_EQ(err.find("secret-token"), std::string::npos) << err;

  setenv("RINGSTORE_TOKEN", "two words", 1);
  a.server = "127.0.0.1:1";
  testing::internal::CaptureStderr();
  EXPECT_EQ(RunCommand(a), kExitFailure);
  err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("must be one word of printable ASCII"), std::string::npos) << err;
  EXPECT_EQ(err.find("two words"), std::string::npos) << err;
  unsetenv("RINGSTORE_TOKEN");
}

}  // namespace
}  // namespace ringstore::client
