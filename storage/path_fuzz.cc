// Fuzz target for storage/path.h (tests/fuzz.bzl): the input's bytes are a
// client path and a list prefix. ValidatePath and ValidatePrefix never
// crash, answer OK or InvalidArgument with a message, and agree exactly with
// the rules of path.h and DESIGN.md §3, restated below from the header (not
// from path.cc) as a second implementation:
//   path: non-empty, at most 1024 bytes, no NUL or other control byte
//   (< 0x20, 0x7F), well-formed UTF-8, not absolute, every '/'-separated
//   component 1..255 bytes and neither "." nor "..", the first component
//   not ".ringstore";
//   prefix: empty; or a valid path followed by '/'; or a valid path, or a
//   valid path and '/' and a partial component (1..255 bytes, not "..",
//   may be "." as in ".x"), where the partial component alone is a prefix
//   too unless it is ".ringstore"; the same byte rules.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/string_view.h"
#include "storage/path.h"
#include "tests/fuzz_check.h"

namespace {

using ringstore::storage::ValidatePath;
using ringstore::storage::ValidatePrefix;

// Well-formed UTF-8 by decoding each sequence and encoding the code point
// again: an overlong form does not come back the same.
bool WellFormedUtf8(absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const uint8_t lead = static_cast<uint8_t>(s[i]);
    int n = lead < 0x80 ? 1 : lead >> 5 == 0x6 ? 2 : lead >> 4 == 0xE ? 3 : lead >> 3 == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? lead : lead & (0x7F >> n);
    for (int k = 1; k < n; ++k) {
      const uint8_t c = static_cast<uint8_t>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = cp << 6 | (c & 0x3F);
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    const int shortest = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (shortest != n) return false;
    i += n;
  }
  return true;
}

bool BytesOk(absl::string_view s) {
  if (s.size() > 1024) return false;
  for (char ch : s) {
    const uint8_t c = static_cast<uint8_t>(ch);
    if (c < 0x20 || c == 0x7F) return false;
  }
  return WellFormedUtf8(s);
}

bool ComponentOk(absl::string_view c) {
  return !c.empty() && c.size() <= 255 && c != "." && c != "..";
}

bool PathOk(absl::string_view p) {
  if (p.empty() || !BytesOk(p) || p[0] == '/') return false;
  bool first = true;
  while (true) {
    const size_t slash = p.find('/');
    const absl::string_view c = p.substr(0, slash);
    if (!ComponentOk(c) || (first && c == ".ringstore")) return false;
    if (slash == absl::string_view::npos) return true;
    p.remove_prefix(slash + 1);
    first = false;
  }
}

bool PrefixOk(absl::string_view p) {
  if (p.empty()) return true;
  if (!BytesOk(p)) return false;
  if (p.back() == '/') return PathOk(p.substr(0, p.size() - 1));
  const size_t slash = p.rfind('/');
  const absl::string_view last = slash == absl::string_view::npos ? p : p.substr(slash + 1);
  if (last.empty() || last.size() > 255 || last == "..") return false;
  if (slash == absl::string_view::npos) return last != ".ringstore";
  return PathOk(p.substr(0, slash));
}

void CheckStatus(const absl::Status& s, absl::string_view what) {
  FUZZ_CHECK(s.ok() || s.code() == absl::StatusCode::kInvalidArgument, what, ": ", s.ToString());
  FUZZ_CHECK(s.ok() || !s.message().empty(), what, " rejected without a message");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);

  const absl::Status path = ValidatePath(input);
  CheckStatus(path, "ValidatePath");
  FUZZ_CHECK(path.ok() == PathOk(input), "ValidatePath(\"", absl::CEscape(input), "\") = ",
             path.ToString(), " but the rules say ", PathOk(input) ? "valid" : "invalid");
  if (path.ok()) {
    // The promises of DESIGN.md §3, spelled out once more for the record.
    FUZZ_CHECK(input.size() <= ringstore::storage::kMaxPathBytes, "too long");
    FUZZ_CHECK(input.find('\0') == absl::string_view::npos, "NUL");
    FUZZ_CHECK(input.substr(0, 11) != ".ringstore/" && input != ".ringstore", "private");
    FUZZ_CHECK(input.find("//") == absl::string_view::npos, "empty component");
  }

  const absl::Status prefix = ValidatePrefix(input);
  CheckStatus(prefix, "ValidatePrefix");
  FUZZ_CHECK(prefix.ok() == PrefixOk(input), "ValidatePrefix(\"", absl::CEscape(input),
             "\") = ", prefix.ToString(), " but the rules say ",
             PrefixOk(input) ? "valid" : "invalid");
  // Every valid path is a prefix, with or without a trailing '/'.
  if (path.ok()) {
    FUZZ_CHECK(prefix.ok(), "valid path is not a valid prefix");
    if (input.size() < 1024) {
      const std::string dir = std::string(input) + "/";
      FUZZ_CHECK(ValidatePrefix(dir).ok(), "valid path + '/' is not a valid prefix");
    }
  }
  return 0;
}
