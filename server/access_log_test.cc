#include "server/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/time/civil_time.h"
#include "gtest/gtest.h"

namespace ringstore::server {
namespace {

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(JsonStringTest, EscapesWhatJsonNeeds) {
  EXPECT_EQ(JsonString("plain/path.txt"), "\"plain/path.txt\"");
  EXPECT_EQ(JsonString("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(JsonString("t\tn\nr\r"), "\"t\\tn\\nr\\r\"");
  EXPECT_EQ(JsonString(std::string("nul\0x\x01\x1f\x7f", 8)),
            "\"nul\\u0000x\\u0001\\u001f\\u007f\"");
  EXPECT_EQ(JsonString(""), "\"\"");
}

TEST(JsonStringTest, KeepsUtf8AndReplacesWhatIsNot) {
  EXPECT_EQ(JsonString("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  EXPECT_EQ(JsonString("a\xff" "b"), "\"a\\ufffdb\"");
  EXPECT_EQ(JsonString("\xc3"), "\"\\ufffd\"");              // cut short
  EXPECT_EQ(JsonString("\xc0\xaf"), "\"\\ufffd\\ufffd\"");   // overlong '/'
  EXPECT_EQ(JsonString("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");  // surrogate
}

TEST(AccessRecordTest, FormatsOneLineWithEveryField) {
  AccessRecord r;
  r.time = absl::FromCivil(absl::CivilSecond(2026, 12, 2, 6, 30, 5), absl::UTCTimeZone()) +
           absl::Milliseconds(42);
  r.peer = "ipv4:127.0.0.1:40312";
  r.method = "Download";
  r.path = "dir/\"quoted\".bin";
  r.bytes_in = 17;
  r.bytes_out = 4101;
  r.backend = "io_uring";
  r.code = "OK";
  r.duration_seconds = 0.0012345;
  r.request_id = "00112233aabbccdd";
  EXPECT_EQ(FormatAccessRecord(r),
            "{\"time\":\"2026-12-02T06:30:05.042Z\",\"peer\":\"ipv4:127.0.0.1:40312\","
            "\"method\":\"Download\",\"path\":\"dir/\\\"quoted\\\".bin\",\"bytes_in\":17,"
            "\"bytes_out\":4101,\"backend\":\"io_uring\",\"code\":\"OK\","
            "\"duration\":0.001234,\"request_id\":\"00112233aabbccdd\"}\n");
}

TEST(AccessRecordTest, RequestIdsAreRandomHex) {
  const std::string a = NewRequestId();
  const std::string b = NewRequestId();
  EXPECT_EQ(a.size(), 16u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a, b);
}

TEST(AccessLogTest, AppendsEveryLineAndFlushesWhenDestroyed) {
  const std::string path = TempPath("access.log");
  std::remove(path.c_str());
  {
    std::ofstream(path) << "earlier\n";
  }
  {
    auto log = AccessLog::Open(path);
    ASSERT_TRUE(log.ok()) << log.status();
    for (int i = 0; i < 1000; ++i) (*log)->Write("line " + std::to_string(i) + "\n");
  }
  std::string want = "earlier\n";
  for (int i = 0; i < 1000; ++i) want += "line " + std::to_string(i) + "\n";
  EXPECT_EQ(ReadAll(path), want);
}

TEST(AccessLogTest, WritesWithinAboutASecond) {
  const std::string path = TempPath("soon.log");
  std::remove(path.c_str());
  auto log = AccessLog::Open(path);
  ASSERT_TRUE(log.ok()) << log.status();
  (*log)->Write("one\n");
  for (int i = 0; i < 100 && ReadAll(path).empty(); ++i) usleep(20000);
  EXPECT_EQ(ReadAll(path), "one\n");
}

TEST(AccessLogTest, ReopenFollowsARotation) {
  const std::string path = TempPath("rotated.log");
  const std::string old = path + ".1";
  std::remove(path.c_str());
  std::remove(old.c_str());
  {
    auto log = AccessLog::Open(path);
    ASSERT_TRUE(log.ok()) << log.status();
    (*log)->Write("before\n");
    for (int i = 0; i < 100 && ReadAll(path).empty(); ++i) usleep(20000);
    ASSERT_EQ(std::rename(path.c_str(), old.c_str()), 0);
    ASSERT_TRUE((*log)->Reopen().ok());
    (*log)->Write("after\n");
  }
  EXPECT_EQ(ReadAll(old), "before\n");
  EXPECT_EQ(ReadAll(path), "after\n");
}

TEST(AccessLogTest, OpenFailsWithTheReason) {
  auto log = AccessLog::Open(TempPath("no/such/dir/x.log"));
  EXPECT_EQ(log.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace ringstore::server
