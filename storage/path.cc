#include "storage/path.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ringstore::storage {
namespace {

// True if `s` is well-formed UTF-8 (no overlongs, no surrogates, ≤ U+10FFFF).
bool IsValidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[len] || cp > 0x10FFFF) return false;
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;
    i += len;
  }
  return true;
}

absl::Status CheckComponent(absl::string_view c, absl::string_view path) {
  if (c.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("path \"", path, "\" has an empty component"));
  }
  if (c == "." || c == "..") {
    return absl::InvalidArgumentError(
        absl::StrCat("path \"", path, "\" has a \".\" or \"..\" component"));
  }
  if (c.size() > kMaxComponentBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "path component longer than ", kMaxComponentBytes, " bytes"));
  }
  return absl::OkStatus();
}

// Checks the rules that hold for every byte of a path or prefix.
absl::Status CheckBytes(absl::string_view s) {
  if (s.size() > kMaxPathBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("path longer than ", kMaxPathBytes, " bytes"));
  }
  for (char ch : s) {
    const auto c = static_cast<uint8_t>(ch);
    if (c == 0) return absl::InvalidArgumentError("path contains NUL");
    if (c < 0x20 || c == 0x7F) {
      return absl::InvalidArgumentError("path contains a control character");
    }
  }
  if (!IsValidUtf8(s)) {
    return absl::InvalidArgumentError("path is not valid UTF-8");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidatePath(absl::string_view path) {
  if (path.empty()) return absl::InvalidArgumentError("path is empty");
  if (absl::Status s = CheckBytes(path); !s.ok()) return s;
  if (path.front() == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("path \"", path, "\" is absolute"));
  }
  bool first = true;
  for (absl::string_view c : absl::StrSplit(path, '/')) {
    if (absl::Status s = CheckComponent(c, path); !s.ok()) return s;
    if (first && c == kPrivateDir) {
      return absl::InvalidArgumentError(
          absl::StrCat("path \"", path, "\" is in the reserved ", kPrivateDir,
                       " directory"));
    }
    first = false;
  }
  return absl::OkStatus();
}

absl::Status ValidatePrefix(absl::string_view prefix) {
  if (prefix.empty()) return absl::OkStatus();
  if (absl::Status s = CheckBytes(prefix); !s.ok()) return s;
  absl::string_view p = prefix;
  if (p.back() == '/') p.remove_suffix(1);
  if (p.empty()) return absl::InvalidArgumentError("prefix \"/\" is absolute");
  // A partial last component ("dir/fi") must still be a valid path prefix:
  // every complete component is checked; the last may be "." (as in ".x").
  std::vector<absl::string_view> parts = absl::StrSplit(p, '/');
  const bool last_is_partial = prefix.back() != '/';
  for (size_t i = 0; i < parts.size(); ++i) {
    if (last_is_partial && i + 1 == parts.size()) {
      if (parts[i].empty() || parts[i].size() > kMaxComponentBytes) {
        return absl::InvalidArgumentError(
            absl::StrCat("prefix \"", prefix, "\" is malformed"));
      }
      if (parts[i] == "..") {
        return absl::InvalidArgumentError(
            absl::StrCat("prefix \"", prefix, "\" has a \"..\" component"));
      }
      continue;
    }
    if (absl::Status s = CheckComponent(parts[i], prefix); !s.ok()) return s;
  }
  if (parts[0] == kPrivateDir) {
    return absl::InvalidArgumentError(
        absl::StrCat("prefix is in the reserved ", kPrivateDir, " directory"));
  }
  return absl::OkStatus();
}

}  // namespace ringstore::storage
