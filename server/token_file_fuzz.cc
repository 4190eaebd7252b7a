// Fuzz target for the tokens file parser (auth.h, ParseTokenFile): any bytes
// as the file's contents.
//
// Properties: never a crash; the answer is a table or INVALID_ARGUMENT whose
// message starts "line N: " with N a line of the input, and never repeats
// that line's first field (the hash: a token pasted there by mistake must
// not reach a log); a table's entries come from distinct lines in order,
// each with at least one known scope and a distinct hash, and the file
// written back from the table (hex, scope names, prefix) parses to the
// same entries.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "server/auth.h"
#include "tests/fuzz_check.h"

namespace {

using ringstore::server::ParseTokenFile;
using ringstore::server::Scope;
using ringstore::server::ScopeName;
using ringstore::server::TokenEntry;
using ringstore::server::TokenTable;

constexpr Scope kScopes[] = {Scope::kRead, Scope::kWrite, Scope::kDelete, Scope::kAdmin};

std::string Hex(const TokenEntry& e) {
  std::string out;
  for (uint8_t b : e.sha256) absl::StrAppend(&out, absl::Hex(b, absl::kZeroPad2));
  return out;
}

// The line `e` would be written as.
std::string Line(const TokenEntry& e) {
  std::vector<std::string> scopes;
  for (Scope s : kScopes) {
    if (e.scopes & static_cast<uint8_t>(s)) scopes.emplace_back(ScopeName(s));
  }
  std::string line = absl::StrCat(Hex(e), " ", absl::StrJoin(scopes, ","));
  if (!e.prefix.empty()) absl::StrAppend(&line, " ", e.prefix);
  return line;
}

void CheckError(absl::string_view contents, const absl::Status& status) {
  FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument, "unexpected status ",
             status.ToString());
  const absl::string_view message = status.message();
  FUZZ_CHECK(absl::StartsWith(message, "line "), "message without its line: ", message);
  const absl::string_view number = message.substr(5, message.find(':') - 5);
  int n = 0;
  FUZZ_CHECK(absl::SimpleAtoi(number, &n), "no line number in: ", message);
  const std::vector<absl::string_view> lines = absl::StrSplit(contents, '\n');
  FUZZ_CHECK(n >= 1 && static_cast<size_t>(n) <= lines.size(), "line ", n, " of ",
             lines.size());
  const std::vector<absl::string_view> fields =
      absl::StrSplit(lines[n - 1], absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
  // A field of a few characters may be a word of the message by chance.
  if (!fields.empty() && fields[0].size() >= 12) {
    FUZZ_CHECK(!absl::StrContains(message, fields[0]), "the message repeats the hash field: ",
               message);
  }
}

void CheckTable(absl::string_view contents, const TokenTable& table) {
  const size_t lines = static_cast<size_t>(std::count(contents.begin(), contents.end(), '\n')) + 1;
  std::set<std::string> hashes;
  int last_line = 0;
  std::string rewritten;
  for (const TokenEntry& e : table.entries) {
    FUZZ_CHECK(e.line > last_line && static_cast<size_t>(e.line) <= lines, "entry on line ",
               e.line, " after line ", last_line, " of ", lines);
    last_line = e.line;
    FUZZ_CHECK(e.scopes != 0 && (e.scopes & ~0xF) == 0, "scopes ", e.scopes);
    FUZZ_CHECK(hashes.insert(Hex(e)).second, "hash listed twice: line ", e.line);
    absl::StrAppend(&rewritten, Line(e), "\n");
  }
  absl::StatusOr<TokenTable> again = ParseTokenFile(rewritten);
  FUZZ_CHECK(again.ok(), "the table written back does not parse: ", again.status().ToString(),
             "\n", rewritten);
  FUZZ_CHECK(again->entries.size() == table.entries.size(), "written back: ",
             again->entries.size(), " entries, parsed ", table.entries.size());
  for (size_t i = 0; i < table.entries.size(); ++i) {
    const TokenEntry& a = table.entries[i];
    const TokenEntry& b = again->entries[i];
    FUZZ_CHECK(a.sha256 == b.sha256 && a.scopes == b.scopes && a.prefix == b.prefix,
               "entry ", i, " changed when written back: ", Line(a), " vs ", Line(b));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view contents(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<TokenTable> table = ParseTokenFile(contents);
  if (table.ok()) {
    CheckTable(contents, *table);
  } else {
    CheckError(contents, table.status());
  }
  return 0;
}
