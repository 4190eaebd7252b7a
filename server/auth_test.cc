#include "server/auth.h"

#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"

namespace ringstore::server {
namespace {

constexpr char kTokenA[] = "tokA-0123456789abcdefghijklmnopqrstuvwxyzAB";
constexpr char kTokenB[] = "tokB-0123456789abcdefghijklmnopqrstuvwxyzAB";
constexpr char kTokenC[] = "tokC-0123456789abcdefghijklmnopqrstuvwxyzAB";

std::string Line(const std::string& token, const std::string& rest) {
  return absl::StrCat(TokenSha256Hex(token), " ", rest, "\n");
}

std::string Bearer(const std::string& token) { return "Bearer " + token; }

void ExpectLineError(absl::string_view contents, int line, absl::string_view what) {
  absl::StatusOr<TokenTable> t = ParseTokenFile(contents);
  ASSERT_FALSE(t.ok()) << contents;
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(t.status().message(), absl::StrCat("line ", line, ": ")))
      << t.status();
  EXPECT_NE(t.status().message().find(what), absl::string_view::npos) << t.status();
}

TEST(TokenSha256Hex, IsTheSha256OfTheToken) {
  // sha256("abc"), FIPS 180-2's example.
  EXPECT_EQ(TokenSha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ParseTokenFile, CommentsBlankLinesAndPrefixes) {
  const std::string contents = absl::StrCat(
      "# ringstore tokens\n"
      "\n"
      "   \t\n",
      Line(kTokenA, "read"),                          // line 4
      "  ", Line(kTokenB, "read,write,delete team-a/  # CI"),  // line 5
      "#", Line(kTokenC, "admin"),                    // commented out
      TokenSha256Hex(kTokenC), "\tadmin\r\n");        // line 7, CRLF
  absl::StatusOr<TokenTable> t = ParseTokenFile(contents);
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->entries.size(), 3u);
  EXPECT_EQ(t->entries[0].line, 4);
  EXPECT_EQ(t->entries[0].scopes, static_cast<uint8_t>(Scope::kRead));
  EXPECT_EQ(t->entries[0].prefix, "");
  EXPECT_EQ(t->entries[1].line, 5);
  EXPECT_EQ(t->entries[1].scopes, static_cast<uint8_t>(Scope::kRead) |
                                      static_cast<uint8_t>(Scope::kWrite) |
                                      static_cast<uint8_t>(Scope::kDelete));
  EXPECT_EQ(t->entries[1].prefix, "team-a/");
  EXPECT_EQ(t->entries[2].line, 7);
  EXPECT_EQ(t->entries[2].scopes, static_cast<uint8_t>(Scope::kAdmin));
}

TEST(ParseTokenFile, EmptyInputGivesAnEmptyTable) {
  for (absl::string_view contents : {"", "\n\n", "# nothing\n", "  # x y z\n"}) {
    absl::StatusOr<TokenTable> t = ParseTokenFile(contents);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_TRUE(t->entries.empty());
  }
}

TEST(ParseTokenFile, UpperCaseHexIsTheSameHash) {
  std::string hex = TokenSha256Hex(kTokenA);
  for (char& c : hex) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  absl::StatusOr<TokenTable> t = ParseTokenFile(hex + " read\n");
  ASSERT_TRUE(t.ok()) << t.status();
  Authorizer a(*std::move(t));
  EXPECT_TRUE(a.Check(Bearer(kTokenA), Scope::kRead, "x").ok());
}

TEST(ParseTokenFile, BadHashLength) {
  const std::string hex = TokenSha256Hex(kTokenA);
  ExpectLineError(absl::StrCat("\n", hex.substr(1), " read\n"), 2, "63 characters");
  ExpectLineError(absl::StrCat(hex, "0 read\n"), 1, "65 characters");
  // The token itself where its hash belongs: refused, and not repeated.
  absl::StatusOr<TokenTable> t = ParseTokenFile(absl::StrCat(kTokenA, " read\n"));
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message().find(kTokenA), absl::string_view::npos) << t.status();
  EXPECT_NE(t.status().message().find("not the token itself"), absl::string_view::npos);
}

TEST(ParseTokenFile, BadHashCharacters) {
  std::string hex = TokenSha256Hex(kTokenA);
  hex[10] = 'g';
  ExpectLineError(hex + " read\n", 1, "not a hex digit");
  hex[10] = ' ';  // splits the field: now too short
  ExpectLineError(hex + " read\n", 1, "characters");
  hex = TokenSha256Hex(kTokenA);
  hex[0] = '\0';
  ExpectLineError(hex + " read\n", 1, "not a hex digit");
}

TEST(ParseTokenFile, Scopes) {
  const std::string hex = TokenSha256Hex(kTokenA);
  ExpectLineError(absl::StrCat("# a\n", hex, "\n"), 2, "no scopes");
  ExpectLineError(absl::StrCat(hex, "   # read\n"), 1, "no scopes");
  ExpectLineError(absl::StrCat(hex, " reed\n"), 1, "unknown scope \"reed\"");
  ExpectLineError(absl::StrCat(hex, " read,Write\n"), 1, "unknown scope");
  ExpectLineError(absl::StrCat(hex, " read,\n"), 1, "empty scope");
  ExpectLineError(absl::StrCat(hex, " ,read\n"), 1, "empty scope");
  ExpectLineError(absl::StrCat(hex, " read,,write\n"), 1, "empty scope");
  // A token pasted as a scope is not repeated.
  absl::StatusOr<TokenTable> t = ParseTokenFile(absl::StrCat(hex, " ", kTokenB, "\n"));
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message().find(kTokenB), absl::string_view::npos) << t.status();
  // A scope listed twice is harmless.
  t = ParseTokenFile(absl::StrCat(hex, " read,read\n"));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->entries[0].scopes, static_cast<uint8_t>(Scope::kRead));
}

TEST(ParseTokenFile, BadPrefixAndTrailingFields) {
  const std::string hex = TokenSha256Hex(kTokenA);
  ExpectLineError(absl::StrCat(hex, " read /abs\n"), 1, "starts with '/'");
  ExpectLineError(absl::StrCat(hex, " read a\x01z\n"), 1, "control character");
  ExpectLineError(absl::StrCat(hex, " read a/ b/\n"), 1, "a field after the path prefix");
  ExpectLineError(absl::StrCat(hex, " read a/ b/ c/\n"), 1, "a field after the path prefix");
  // A comment after the prefix is not a field.
  EXPECT_TRUE(ParseTokenFile(absl::StrCat(hex, " read a/ #b/\n")).ok());
  // `#` inside a field is part of it.
  absl::StatusOr<TokenTable> t = ParseTokenFile(absl::StrCat(hex, " read a#b/\n"));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->entries[0].prefix, "a#b/");
}

TEST(ParseTokenFile, DuplicateHashes) {
  const std::string hex = TokenSha256Hex(kTokenA);
  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  ExpectLineError(absl::StrCat(Line(kTokenB, "read"), hex, " read\n\n", hex, " write a/\n"), 4,
                  "the same token hash as line 2");
  ExpectLineError(absl::StrCat(hex, " read\n", upper, " read\n"), 2, "as line 1");
}

TEST(ParseTokenFile, NeverCrashesOnJunk) {
  std::mt19937 rng(42);
  const std::string hex = TokenSha256Hex(kTokenA);
  const std::string alphabet = hex + " \t\r\n#,/readwritdlmn\x01\xff";
  for (int i = 0; i < 20000; ++i) {
    std::string s(rng() % 200, ' ');
    for (char& c : s) c = alphabet[rng() % alphabet.size()];
    if (i % 3 == 0) s = hex + " " + s;
    (void)ParseTokenFile(s);
  }
  std::string bytes(4096, '\0');
  for (char& c : bytes) c = static_cast<char>(rng());
  (void)ParseTokenFile(bytes);
}

Authorizer Table(const std::string& contents) {
  absl::StatusOr<TokenTable> t = ParseTokenFile(contents);
  EXPECT_TRUE(t.ok()) << t.status();
  return Authorizer(t.ok() ? *std::move(t) : TokenTable());
}

constexpr Scope kAllScopes[] = {Scope::kRead, Scope::kWrite, Scope::kDelete, Scope::kAdmin};

// Every set of scopes a line can grant against every scope a call can need
// (read: Download, BatchDownload, Stat, List; write: Upload and the
// resumable RPCs; delete: Delete; admin: GetServerInfo's details).
TEST(Authorizer, EveryScopeAgainstEveryNeed) {
  for (int set = 1; set < 16; ++set) {
    std::vector<std::string> names;
    for (Scope s : kAllScopes) {
      if (set & static_cast<int>(s)) names.emplace_back(ScopeName(s));
    }
    const std::string scopes = absl::StrJoin(names, ",");
    Authorizer a = Table(Line(kTokenA, scopes));
    for (Scope need : kAllScopes) {
      const bool granted = (set & static_cast<int>(need)) || (set & static_cast<int>(Scope::kAdmin));
      for (absl::Status s : {a.Check(Bearer(kTokenA), need, "any/path"),
                             a.CheckToken(Bearer(kTokenA), need)}) {
        if (granted) {
          EXPECT_TRUE(s.ok()) << scopes << " for " << ScopeName(need) << ": " << s;
        } else {
          EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied)
              << scopes << " for " << ScopeName(need) << ": " << s;
          EXPECT_NE(s.message().find(ScopeName(need)), absl::string_view::npos) << s;
        }
      }
    }
  }
}

TEST(Authorizer, PrefixIsAPlainStringPrefix) {
  Authorizer a = Table(absl::StrCat(Line(kTokenA, "read,write team-a/"),
                                    Line(kTokenB, "admin team-b"), Line(kTokenC, "read")));
  EXPECT_TRUE(a.Check(Bearer(kTokenA), Scope::kRead, "team-a/x").ok());
  EXPECT_TRUE(a.Check(Bearer(kTokenA), Scope::kWrite, "team-a/deep/er/x").ok());
  // A List of exactly the prefix, or inside it.
  EXPECT_TRUE(a.Check(Bearer(kTokenA), Scope::kRead, "team-a/").ok());
  EXPECT_TRUE(a.Check(Bearer(kTokenA), Scope::kRead, "team-a/sub").ok());
  for (absl::string_view outside : {"team-b/x", "team-a", "team-a2/x", "", "Team-a/x", "x/team-a/"}) {
    absl::Status s = a.Check(Bearer(kTokenA), Scope::kRead, outside);
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << outside << ": " << s;
    EXPECT_NE(s.message().find("team-a/"), absl::string_view::npos) << s;
  }
  // Without the slash, "team-b" covers "team-b2" too; admin does not lift
  // the prefix.
  EXPECT_TRUE(a.Check(Bearer(kTokenB), Scope::kDelete, "team-b2/x").ok());
  EXPECT_EQ(a.Check(Bearer(kTokenB), Scope::kRead, "team-a/x").code(),
            absl::StatusCode::kPermissionDenied);
  // The scope is checked too, inside the prefix.
  EXPECT_EQ(a.Check(Bearer(kTokenA), Scope::kDelete, "team-a/x").code(),
            absl::StatusCode::kPermissionDenied);
  // No prefix: every path. CheckToken ignores the prefix.
  EXPECT_TRUE(a.Check(Bearer(kTokenC), Scope::kRead, "").ok());
  EXPECT_TRUE(a.CheckToken(Bearer(kTokenA), Scope::kWrite).ok());
}

TEST(Authorizer, MissingOrMalformedMetadataIsUnauthenticated) {
  Authorizer a = Table(Line(kTokenA, "admin"));
  const std::string token = kTokenA;
  for (const std::string& md :
       {std::string(), std::string("Bearer"), std::string("Bearer "), std::string("Bearer   "),
        "Basic " + token, "Token " + token, "Bearer" + token, token,
        "Bearer " + token + " extra", "Bearer\t" + token}) {
    for (absl::Status s : {a.Check(md, Scope::kRead, "x"), a.CheckToken(md, Scope::kRead)}) {
      EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << "[" << md << "] " << s;
      EXPECT_EQ(s.message().find(token), absl::string_view::npos) << s;
    }
  }
  // The scheme in any case, and extra spaces around the token.
  EXPECT_TRUE(a.Check("bearer " + token, Scope::kRead, "x").ok());
  EXPECT_TRUE(a.Check("BEARER  " + token + " ", Scope::kRead, "x").ok());
}

TEST(Authorizer, UnknownTokenIsUnauthenticated) {
  Authorizer a = Table(Line(kTokenA, "admin"));
  const std::string near = std::string(kTokenA).substr(0, 42) + "C";
  for (const std::string& t : {near, std::string(kTokenB), std::string("x"),
                               TokenSha256Hex(kTokenA)}) {
    absl::Status s = a.Check(Bearer(t), Scope::kRead, "x");
    EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << s;
    EXPECT_EQ(s.message().find(t), absl::string_view::npos) << s;
  }
  Authorizer empty = Table("");
  EXPECT_EQ(empty.Check(Bearer(kTokenA), Scope::kRead, "x").code(),
            absl::StatusCode::kUnauthenticated);
}

class AuthFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* dir = std::getenv("TEST_TMPDIR");
    path_ = absl::StrCat(dir != nullptr ? dir : "/tmp", "/tokens-",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void Write(const std::string& contents) {
    // Replaced by rename, as an editor or a Secret update does.
    const std::string tmp = path_ + ".tmp";
    std::ofstream(tmp, std::ios::binary | std::ios::trunc) << contents;
    ASSERT_EQ(std::rename(tmp.c_str(), path_.c_str()), 0);
  }
  std::string path_;
};

TEST_F(AuthFileTest, LoadErrorsNameTheFileAndLine) {
  absl::StatusOr<std::unique_ptr<Authorizer>> a = Authorizer::Load(path_ + ".missing");
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), absl::StatusCode::kNotFound) << a.status();
  EXPECT_NE(a.status().message().find(".missing"), absl::string_view::npos) << a.status();

  Write(absl::StrCat(Line(kTokenA, "read"), kTokenB, " write\n"));
  a = Authorizer::Load(path_);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(a.status().message(), path_ + ": line 2: ")) << a.status();
  EXPECT_EQ(a.status().message().find(kTokenB), absl::string_view::npos) << a.status();
}

TEST_F(AuthFileTest, ReloadSwapsTheTableOrKeepsTheOld) {
  Write(absl::StrCat("# v1\n", Line(kTokenA, "read"), Line(kTokenB, "write")));
  absl::StatusOr<std::unique_ptr<Authorizer>> loaded = Authorizer::Load(path_);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  Authorizer& a = **loaded;
  EXPECT_EQ(a.size(), 2u);
  EXPECT_TRUE(a.Check(Bearer(kTokenA), Scope::kRead, "x").ok());
  EXPECT_EQ(a.Check(Bearer(kTokenC), Scope::kRead, "x").code(),
            absl::StatusCode::kUnauthenticated);

  // A adds write, B goes, C comes.
  Write(absl::StrCat(Line(kTokenA, "read,write"), Line(kTokenC, "delete")));
  ASSERT_TRUE(a.Reload().ok());
  EXPECT_EQ(a.size(), 2u);
  EXPECT_TRUE(a.Check(Bearer(kTokenA), Scope::kWrite, "x").ok());
  EXPECT_EQ(a.Check(Bearer(kTokenB), Scope::kWrite, "x").code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(a.Check(Bearer(kTokenC), Scope::kDelete, "x").ok());

  // A bad file: the old table stays.
  Write(absl::StrCat(Line(kTokenB, "admin"), Line(kTokenC, "sudo")));
  absl::Status s = a.Reload();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("line 2: unknown scope \"sudo\""), absl::string_view::npos) << s;
  EXPECT_EQ(a.Check(Bearer(kTokenB), Scope::kRead, "x").code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(a.Check(Bearer(kTokenC), Scope::kDelete, "x").ok());

  // A file that went away: the same.
  ASSERT_EQ(std::remove(path_.c_str()), 0);
  EXPECT_EQ(a.Reload().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(a.Check(Bearer(kTokenA), Scope::kWrite, "x").ok());

  Authorizer fixed = Table(Line(kTokenA, "read"));
  EXPECT_EQ(fixed.Reload().code(), absl::StatusCode::kFailedPrecondition);
}

// Checks on several threads while the table is swapped under them: every
// answer is one table's (A is in both; B and C alternate).
TEST_F(AuthFileTest, ChecksDuringReloads) {
  const std::string v1 = absl::StrCat(Line(kTokenA, "read"), Line(kTokenB, "read"));
  const std::string v2 = absl::StrCat(Line(kTokenA, "read"), Line(kTokenC, "read"));
  Write(v1);
  absl::StatusOr<std::unique_ptr<Authorizer>> loaded = Authorizer::Load(path_);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Authorizer& a = **loaded;
  std::atomic<bool> stop{false};
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        if (!a.Check(Bearer(kTokenA), Scope::kRead, "x").ok()) ++wrong;
        const bool b = a.Check(Bearer(kTokenB), Scope::kRead, "x").ok();
        const bool c = a.Check(Bearer(kTokenC), Scope::kRead, "x").ok();
        (void)b;
        (void)c;
      }
    });
  }
  for (int i = 0; i < 200; ++i) {
    Write(i % 2 ? v1 : v2);
    ASSERT_TRUE((*loaded)->Reload().ok());
  }
  stop = true;
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace ringstore::server
