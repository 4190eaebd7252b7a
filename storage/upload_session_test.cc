// The encoding of a session's record and persisted state, and its ids
// (upload_session.h): round trips, and every malformed input refused.
#include "storage/upload_session.h"

#include <set>
#include <string>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace ringstore::storage {
namespace {

SessionRecord Sample(SessionState state) {
  SessionRecord r;
  r.state = state;
  r.owner = "token hash: with spaces and 12:colons\n";
  r.spec.path = "dir with space/file:name 7";
  r.spec.size = 1234567890123;
  r.spec.if_generation_match = 0;
  r.spec.crc32c = 4294967295u;
  if (state != SessionState::kOpen) {
    r.file.path = r.spec.path;
    r.file.generation = 1700000000000001;
    r.file.size = 1234567890123;
    r.file.crc32c = 42;
    r.file.modified = absl::FromUnixNanos(1700000000123456789);
  }
  return r;
}

void ExpectSame(const SessionRecord& a, const SessionRecord& b) {
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.owner, b.owner);
  EXPECT_EQ(a.spec.path, b.spec.path);
  EXPECT_EQ(a.spec.size, b.spec.size);
  EXPECT_EQ(a.spec.if_generation_match, b.spec.if_generation_match);
  EXPECT_EQ(a.spec.crc32c, b.spec.crc32c);
  EXPECT_EQ(a.file.path, b.file.path);
  EXPECT_EQ(a.file.generation, b.file.generation);
  EXPECT_EQ(a.file.size, b.file.size);
  EXPECT_EQ(a.file.crc32c, b.file.crc32c);
  EXPECT_EQ(a.file.modified, b.file.modified);
}

TEST(UploadSession, RecordRoundTrips) {
  for (SessionState state :
       {SessionState::kOpen, SessionState::kCommitting, SessionState::kComplete}) {
    const SessionRecord r = Sample(state);
    const std::string text = EncodeSessionRecord(r);
    std::optional<SessionRecord> back = ParseSessionRecord(text);
    ASSERT_TRUE(back.has_value()) << text;
    ExpectSame(r, *back);
  }
  // Optional fields absent, empty owner.
  SessionRecord r;
  r.spec.path = "a";
  EXPECT_EQ(EncodeSessionRecord(r), "v1 open 0: 1:a 0 - -");
  std::optional<SessionRecord> back = ParseSessionRecord("v1 open 0: 1:a 0 - -");
  ASSERT_TRUE(back.has_value());
  ExpectSame(r, *back);
  EXPECT_EQ(EncodeSessionRecord(Sample(SessionState::kComplete)),
            "v1 complete 38:token hash: with spaces and 12:colons\n 26:dir with space/file:name 7 "
            "1234567890123 0 4294967295 1700000000000001 1234567890123 42 "
            "1700000000123456789");
}

TEST(UploadSession, MalformedRecordsAreRefused) {
  const std::string good = "v1 complete 3:abc 1:a 5 7 9 11 5 13 15";
  ASSERT_TRUE(ParseSessionRecord(good).has_value());
  for (const std::string& bad : {
           std::string(""),
           std::string("v2 open 0: 1:a 0 - -"),
           std::string("v1 closed 0: 1:a 0 - -"),
           std::string("v1 open 0: 1:a 0 - - "),            // trailing space
           std::string("v1 open 0: 1:a 0 -"),               // missing field
           std::string("v1 open 0: 1:a 0 - - 1 1 1 1"),     // file part while open
           std::string("v1 complete 0: 1:a 0 - -"),         // no file part
           std::string("v1 complete 0: 1:a 0 - - 1 1 1"),   // short file part
           std::string("v1 complete 0: 1:a 0 - - 0 1 1 1"), // generation 0
           std::string("v1 complete 0: 1:a 0 - - 1 -1 1 1"),
           std::string("v1 open 0: 1:a -1 - -"),            // negative size
           std::string("v1 open 0: 1:a 0 -1 -"),            // negative generation
           std::string("v1 open 0: 1:a 0 - 4294967296"),    // crc past 32 bits
           std::string("v1 open 0: 1:a 0 - x"),
           std::string("v1 open 0: 1:a 01 - -"),            // leading zero
           std::string("v1 open 0: 1:a +1 - -"),
           std::string("v1 open 0: 1:a 1\n - -"),          // white space in a number
           std::string("v1 open 0: 1:a 0 -0x1 -"),
           std::string("v1 open 0: 0: 0 - -"),              // empty path
           std::string("v1 open 0: 2:.. 0 - -"),            // invalid path
           std::string("v1 open 0: 10:.ringstore 0 - -"),   // private area
           std::string("v1 open 0: 5:a 0 - -"),             // count past the end
           std::string("v1 open x: 1:a 0 - -"),
           std::string("v1 open 0 1:a 0 - -"),
           std::string("v1 open 0:  1:a 0 - -"),
           std::string("v1  open 0: 1:a 0 - -"),
           std::string("v1 open 257:") + std::string(257, 'o') + " 1:a 0 - -",  // owner too long
       }) {
    EXPECT_FALSE(ParseSessionRecord(bad).has_value()) << bad;
  }
  // Every truncation of a good record is refused (up to its last field,
  // whose prefixes are numbers too).
  for (size_t n = 0; n < good.rfind(' ') + 2; ++n) {
    EXPECT_FALSE(ParseSessionRecord(good.substr(0, n)).has_value()) << good.substr(0, n);
  }
}

TEST(UploadSession, PersistedState) {
  PersistedState p;
  p.size = 123456789012;
  p.crc32c = 4000000000u;
  EXPECT_EQ(EncodePersisted(p), "123456789012 4000000000");
  std::optional<PersistedState> back = ParsePersisted(EncodePersisted(p));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->size, p.size);
  EXPECT_EQ(back->crc32c, p.crc32c);
  ASSERT_TRUE(ParsePersisted("0 0").has_value());
  for (const char* bad : {"", "1", "1 2 3", "-1 0", "1 -2", "1 4294967296", "1  2", " 1 2",
                          "1 2 ", "a 1", "01 2", "1\n 2", "1 2\n"}) {
    EXPECT_FALSE(ParsePersisted(bad).has_value()) << bad;
  }
}

TEST(UploadSession, Ids) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = RandomId();
    EXPECT_TRUE(ValidateUploadId(id).ok()) << id;
    EXPECT_TRUE(seen.insert(id).second) << id;
  }
  for (const std::string& bad : {std::string(""), std::string(31, 'a'), std::string(33, 'a'),
                                 std::string(32, 'A'), std::string(31, 'a') + "g",
                                 std::string(30, 'a') + "/a", std::string(31, '0') + "\n"}) {
    EXPECT_EQ(ValidateUploadId(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(SessionRecordPath("ab"), ".ringstore/uploads/ab");
  EXPECT_EQ(SessionDataPath("ab"), ".ringstore/uploads/ab.data");
}

}  // namespace
}  // namespace ringstore::storage
