#include "storage/path.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "storage/engine/engine.h"  // ParentDir, BaseName

namespace ringstore::storage {
namespace {

std::string Repeat(char c, size_t n) { return std::string(n, c); }

struct Case {
  std::string name;
  std::string path;
};

std::vector<Case> Rejected() {
  const std::string c255 = Repeat('a', 255);
  std::vector<Case> v = {
      {"empty", ""},
      {"absolute", "/etc/passwd"},
      {"root only", "/"},
      {"dotdot", ".."},
      {"dot", "."},
      {"leading dotdot", "../x"},
      {"inner dotdot", "a/../b"},
      {"trailing dotdot", "a/.."},
      {"deep escape", "a/b/../../../x"},
      {"leading dot", "./a"},
      {"inner dot", "a/./b"},
      {"trailing dot", "a/."},
      {"double slash", "a//b"},
      {"trailing slash", "a/"},
      {"leading double slash", "//a"},
      {"only slashes", "///"},
      {"NUL inside", std::string("a\0b", 3)},
      {"NUL at end", std::string("ab\0", 3)},
      {"NUL alone", std::string("\0", 1)},
      {"newline", "a\nb"},
      {"carriage return", "a\rb"},
      {"tab", "a\tb"},
      {"escape", "a\x1b[31mb"},
      {"bell", "\x07"},
      {"DEL", "a\x7f"},
      {"lone continuation byte", "a\x80"},
      {"overlong slash", "a\xC0\xAF"},
      {"overlong NUL", "a\xC0\x80"},
      {"overlong 3-byte", "\xE0\x80\xAF"},
      {"surrogate", "\xED\xA0\x80"},
      {"above U+10FFFF", "\xF4\x90\x80\x80"},
      {"invalid lead 0xFF", "\xFF"},
      {"invalid lead 0xF8", "\xF8\x88\x80\x80\x80"},
      {"truncated 2-byte", "x\xC3"},
      {"truncated 3-byte", "\xE2\x82"},
      {"truncated 4-byte", "\xF0\x9F\x98"},
      {"bad continuation", "\xC3\x28"},
      {"component 256 bytes", Repeat('a', 256)},
      {"inner component 256 bytes", "a/" + Repeat('b', 256) + "/c"},
      {"path 1025 bytes", c255 + "/" + c255 + "/" + c255 + "/" + Repeat('c', 200) + "/" +
                              Repeat('d', 56)},
      {"private dir", ".ringstore"},
      {"inside private dir", ".ringstore/tmp/x"},
      {"private dir with slash", ".ringstore/"},
      {"dotdot then private", "../.ringstore"},
  };
  return v;
}

std::vector<Case> Accepted() {
  const std::string c255 = Repeat('a', 255);
  return {
      {"simple", "file"},
      {"nested", "a/b/c/d.txt"},
      {"dot file", ".hidden"},
      {"triple dot", "..."},
      {"dots inside", "a..b/c.d"},
      {"private name deeper", "a/.ringstore"},
      {"private prefix", ".ringstorex"},
      {"spaces", "my file/with spaces.txt"},
      {"backslash", "a\\b"},
      {"unicode", "caf\xC3\xA9/\xE6\x97\xA5\xE6\x9C\xAC/\xF0\x9F\x98\x80.png"},
      {"max codepoint", "\xF4\x8F\xBF\xBF"},
      {"component exactly 255", c255},
      {"path exactly 1024",
       c255 + "/" + c255 + "/" + c255 + "/" + Repeat('c', 200) + "/" + Repeat('d', 55)},
      {"punctuation", "a-b_c+d=e,f;g@h!i~j#k$l%m&n'o(p)q[r]s{t}"},
      {"colon and question", "a:b?c*d\"e<f>g|h"},
      {"digits", "2026/11/24/0001"},
      {"single char", "x"},
  };
}

TEST(ValidatePath, RejectsEveryBadPathWithInvalidArgument) {
  const auto cases = Rejected();
  ASSERT_GE(cases.size(), 40u);
  for (const Case& c : cases) {
    const absl::Status s = ValidatePath(c.path);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_FALSE(s.message().empty()) << c.name;
  }
}

TEST(ValidatePath, AcceptsGoodPaths) {
  const auto cases = Accepted();
  ASSERT_GE(cases.size(), 15u);
  for (const Case& c : cases) {
    EXPECT_TRUE(ValidatePath(c.path).ok()) << c.name << ": " << ValidatePath(c.path);
  }
}

TEST(ValidatePath, LengthLimitsAreExact) {
  EXPECT_EQ(kMaxPathBytes, 1024u);
  EXPECT_EQ(kMaxComponentBytes, 255u);
  for (const Case& c : Accepted()) {
    if (c.name == "path exactly 1024") {
      EXPECT_EQ(c.path.size(), 1024u);
    }
  }
  for (const Case& c : Rejected()) {
    if (c.name == "path 1025 bytes") {
      EXPECT_EQ(c.path.size(), 1025u);
      EXPECT_NE(ValidatePath(c.path).message().find("longer than 1024"), absl::string_view::npos);
    }
  }
}

TEST(ValidatePrefix, AcceptsEmptyDirectoriesAndPartialComponents) {
  for (const char* p : {"", "a", "a/", "a/b", "a/b/", "di", ".", ".h", "a/.", "caf\xC3\xA9"}) {
    EXPECT_TRUE(ValidatePrefix(p).ok()) << p << ": " << ValidatePrefix(p);
  }
}

TEST(ValidatePrefix, RejectsBadPrefixes) {
  for (const std::string& p :
       {std::string("/"), std::string("/a"), std::string(".."), std::string("../"),
        std::string("a/../"), std::string("a//"), std::string("a//b"), std::string(".ringstore/"),
        std::string(".ringstore/x"), std::string("a\nb"), std::string("a\0b", 3),
        std::string("\xC0\xAF"), Repeat('a', 256), Repeat('a', 1025)}) {
    EXPECT_EQ(ValidatePrefix(p).code(), absl::StatusCode::kInvalidArgument) << p;
  }
}

TEST(PathParts, ParentAndBase) {
  EXPECT_EQ(ParentDir("a/b/c"), "a/b");
  EXPECT_EQ(ParentDir("c"), "");
  EXPECT_EQ(ParentDir("a/c"), "a");
  EXPECT_EQ(BaseName("a/b/c"), "c");
  EXPECT_EQ(BaseName("c"), "c");
  EXPECT_EQ(BaseName("a/"), "");
}

}  // namespace
}  // namespace ringstore::storage
