#include "client/cli.h"

#include <string>
#include <vector>

#include "client/client.h"
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

TEST(ParseArgs, PutFlags) {
  CliArgs a;
  std::string error;
  ASSERT_TRUE(Parse({"put", "l", "r", "--if_absent", "--resume"}, &a, &error)) << error;
  EXPECT_TRUE(a.if_absent);
  EXPECT_TRUE(a.resume);
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
      {"stat", "r", "--long"},
      {"stat", "r", "--json=maybe"},
  };
  for (const auto& argv : bad) {
    CliArgs a;
    std::string error;
    EXPECT_FALSE(Parse(argv, &a, &error)) << "accepted argv of " << argv.size();
    EXPECT_FALSE(error.empty());
  }
}

}  // namespace
}  // namespace ringstore::client
