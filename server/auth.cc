#include "server/auth.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ringstore::server {
namespace {

constexpr size_t kDigestBytes = SHA256_DIGEST_LENGTH;
static_assert(kDigestBytes == 32, "TokenEntry::sha256 holds a SHA-256");

// A tokens file is a few lines per client; anything this big is a mistake
// (the wrong file), refused before it is read into memory.
constexpr off_t kMaxFileBytes = 1 << 20;

// The one table of scope names.
struct ScopeNameEntry {
  Scope scope;
  absl::string_view name;
};
constexpr ScopeNameEntry kScopeNames[] = {
    {Scope::kRead, "read"},
    {Scope::kWrite, "write"},
    {Scope::kDelete, "delete"},
    {Scope::kAdmin, "admin"},
};

constexpr char kScopeList[] = "read, write, delete, admin";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::array<uint8_t, kDigestBytes> Sha256(absl::string_view data) {
  std::array<uint8_t, kDigestBytes> digest;
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data());
  return digest;
}

absl::Status LineError(int line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("line ", line, ": ", what));
}

// A scope name is repeated in an error only if it cannot be a token pasted
// into the wrong field (ringstore's tokens are 43 characters).
bool Echoable(absl::string_view s) {
  if (s.empty() || s.size() > 16) return false;
  for (char c : s) {
    if (!absl::ascii_islower(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

absl::Status ParseHash(absl::string_view field, int line, TokenEntry* entry) {
  if (field.size() != 2 * kDigestBytes) {
    return LineError(line, absl::StrCat("the token hash has ", field.size(),
                                        " characters; it must be the 64 hex digits of the "
                                        "token's SHA-256 (not the token itself)"));
  }
  for (size_t i = 0; i < kDigestBytes; ++i) {
    const int hi = HexValue(field[2 * i]);
    const int lo = HexValue(field[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return LineError(line, "the token hash has a character that is not a hex digit");
    }
    entry->sha256[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return absl::OkStatus();
}

absl::Status ParseScopes(absl::string_view field, int line, TokenEntry* entry) {
  for (absl::string_view name : absl::StrSplit(field, ',')) {
    if (name.empty()) {
      return LineError(line, absl::StrCat("empty scope in the list (scopes are ", kScopeList,
                                          ", separated by commas without spaces)"));
    }
    uint8_t bit = 0;
    for (const ScopeNameEntry& s : kScopeNames) {
      if (name == s.name) bit = static_cast<uint8_t>(s.scope);
    }
    if (bit == 0) {
      return LineError(line, absl::StrCat("unknown scope",
                                          Echoable(name) ? absl::StrCat(" \"", name, "\"") : "",
                                          " (scopes are ", kScopeList, ")"));
    }
    entry->scopes |= bit;
  }
  return absl::OkStatus();
}

absl::Status ParsePrefix(absl::string_view field, int line, TokenEntry* entry) {
  if (field[0] == '/') {
    return LineError(line, "the path prefix starts with '/'; paths are relative");
  }
  for (char c : field) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return LineError(line, "the path prefix has a control character");
    }
  }
  entry->prefix = std::string(field);
  return absl::OkStatus();
}

// The token of "Bearer <token>", or an UNAUTHENTICATED status. Never
// repeats the metadata.
absl::StatusOr<absl::string_view> BearerToken(absl::string_view metadata) {
  if (metadata.empty()) {
    return absl::UnauthenticatedError(
        "this server needs a token: send the metadata \"authorization: Bearer <token>\"");
  }
  constexpr absl::string_view kScheme = "bearer";
  absl::string_view token;
  if (metadata.size() > kScheme.size() &&
      absl::EqualsIgnoreCase(metadata.substr(0, kScheme.size()), kScheme) &&
      metadata[kScheme.size()] == ' ') {
    token = absl::StripAsciiWhitespace(metadata.substr(kScheme.size() + 1));
  }
  bool blank = false;
  for (char c : token) blank |= absl::ascii_isspace(static_cast<unsigned char>(c));
  if (token.empty() || blank) {
    return absl::UnauthenticatedError(
        "the authorization metadata is not of the form \"Bearer <token>\"");
  }
  return token;
}

absl::StatusOr<std::string> ReadTokensFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    return absl::ErrnoToStatus(e, absl::StrCat("cannot open the tokens file ", path));
  }
  std::string contents;
  absl::Status status;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    status = absl::ErrnoToStatus(e, absl::StrCat("cannot stat the tokens file ", path));
  } else if (!S_ISREG(st.st_mode)) {
    status = absl::InvalidArgumentError(absl::StrCat("the tokens file ", path,
                                                     " is not a regular file"));
  } else if (st.st_size > kMaxFileBytes) {
    status = absl::InvalidArgumentError(absl::StrCat(
        "the tokens file ", path, " has ", st.st_size, " bytes; the limit is ", kMaxFileBytes));
  } else {
    char buf[8192];
    for (;;) {
      const ssize_t n = read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int e = errno;
        status = absl::ErrnoToStatus(e, absl::StrCat("cannot read the tokens file ", path));
        break;
      }
      if (n == 0) break;
      contents.append(buf, static_cast<size_t>(n));
      if (contents.size() > static_cast<size_t>(kMaxFileBytes)) {
        status = absl::InvalidArgumentError(
            absl::StrCat("the tokens file ", path, " grew past ", kMaxFileBytes, " bytes"));
        break;
      }
    }
  }
  close(fd);
  if (!status.ok()) return status;
  return contents;
}

absl::StatusOr<TokenTable> LoadTable(const std::string& path) {
  absl::StatusOr<std::string> contents = ReadTokensFile(path);
  if (!contents.ok()) return contents.status();
  absl::StatusOr<TokenTable> table = ParseTokenFile(*contents);
  if (!table.ok()) {
    return absl::Status(table.status().code(),
                        absl::StrCat(path, ": ", table.status().message()));
  }
  return table;
}

}  // namespace

absl::string_view ScopeName(Scope scope) {
  for (const ScopeNameEntry& s : kScopeNames) {
    if (s.scope == scope) return s.name;
  }
  return "unknown";
}

absl::StatusOr<TokenTable> ParseTokenFile(absl::string_view contents) {
  TokenTable table;
  // First line of each hash, to report duplicates.
  absl::flat_hash_map<std::string, int> seen;
  int line = 0;
  for (absl::string_view text : absl::StrSplit(contents, '\n')) {
    ++line;
    std::vector<absl::string_view> fields;
    for (absl::string_view f : absl::StrSplit(text, absl::ByAnyChar(" \t\r\v\f"), absl::SkipEmpty())) {
      if (f[0] == '#') break;  // a comment, to the end of the line
      fields.push_back(f);
    }
    if (fields.empty()) continue;
    TokenEntry entry;
    entry.line = line;
    if (absl::Status s = ParseHash(fields[0], line, &entry); !s.ok()) return s;
    if (fields.size() < 2) {
      return LineError(line, absl::StrCat("no scopes after the token hash (a comma list of ",
                                          kScopeList, ")"));
    }
    if (absl::Status s = ParseScopes(fields[1], line, &entry); !s.ok()) return s;
    if (fields.size() >= 3) {
      if (absl::Status s = ParsePrefix(fields[2], line, &entry); !s.ok()) return s;
    }
    if (fields.size() > 3) {
      return LineError(line, "a field after the path prefix (a line is: <sha256 hex> "
                             "<scopes> [<path prefix>], and # starts a comment)");
    }
    const std::string key(reinterpret_cast<const char*>(entry.sha256.data()), kDigestBytes);
    if (auto [it, inserted] = seen.emplace(key, line); !inserted) {
      return LineError(line, absl::StrCat("the same token hash as line ", it->second));
    }
    table.entries.push_back(std::move(entry));
  }
  return table;
}

std::string TokenSha256Hex(absl::string_view token) {
  static constexpr char kHex[] = "0123456789abcdef";
  const std::array<uint8_t, kDigestBytes> digest = Sha256(token);
  std::string out;
  out.reserve(2 * kDigestBytes);
  for (uint8_t b : digest) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

absl::StatusOr<std::string> BearerTokenSha256Hex(absl::string_view authorization_metadata) {
  absl::StatusOr<absl::string_view> token = BearerToken(authorization_metadata);
  if (!token.ok()) return token.status();
  return TokenSha256Hex(*token);
}

Authorizer::Authorizer(TokenTable table) : Authorizer("", std::move(table)) {}

Authorizer::Authorizer(std::string path, TokenTable table)
    : path_(std::move(path)), table_(std::make_shared<const TokenTable>(std::move(table))) {}

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::Load(std::string path) {
  absl::StatusOr<TokenTable> table = LoadTable(path);
  if (!table.ok()) return table.status();
  return std::unique_ptr<Authorizer>(new Authorizer(std::move(path), *std::move(table)));
}

absl::Status Authorizer::Reload() {
  if (path_.empty()) return absl::FailedPreconditionError("this authorizer has no file");
  absl::StatusOr<TokenTable> table = LoadTable(path_);
  if (!table.ok()) return table.status();
  auto fresh = std::make_shared<const TokenTable>(*std::move(table));
  std::shared_ptr<const TokenTable> old;
  {
    MutexLock lock(&mu_);
    old = std::exchange(table_, std::move(fresh));
  }
  // The old table goes here, or with the last Check still using it.
  return absl::OkStatus();
}

size_t Authorizer::size() const { return table()->entries.size(); }

std::shared_ptr<const TokenTable> Authorizer::table() const {
  MutexLock lock(&mu_);
  return table_;
}

absl::Status Authorizer::Check(absl::string_view authorization_metadata, Scope scope,
                               absl::string_view path) const {
  return CheckImpl(authorization_metadata, scope, &path);
}

absl::Status Authorizer::CheckToken(absl::string_view authorization_metadata,
                                    Scope scope) const {
  return CheckImpl(authorization_metadata, scope, nullptr);
}

absl::Status Authorizer::CheckImpl(absl::string_view authorization_metadata, Scope scope,
                                   const absl::string_view* path) const {
  absl::StatusOr<absl::string_view> token = BearerToken(authorization_metadata);
  if (!token.ok()) return token.status();
  const std::array<uint8_t, kDigestBytes> digest = Sha256(*token);
  const std::shared_ptr<const TokenTable> table = this->table();
  // Every entry is compared, each in constant time: the time taken does
  // not depend on where, or whether, the token matched.
  const TokenEntry* match = nullptr;
  for (const TokenEntry& entry : table->entries) {
    const bool equal = CRYPTO_memcmp(entry.sha256.data(), digest.data(), kDigestBytes) == 0;
    if (equal) match = &entry;
  }
  if (match == nullptr) return absl::UnauthenticatedError("unknown token");
  const uint8_t wanted = static_cast<uint8_t>(scope) | static_cast<uint8_t>(Scope::kAdmin);
  if ((match->scopes & wanted) == 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("the token does not have the \"", ScopeName(scope), "\" scope"));
  }
  if (path != nullptr && !absl::StartsWith(*path, match->prefix)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "the token is limited to paths that start with \"", match->prefix, "\""));
  }
  return absl::OkStatus();
}

}  // namespace ringstore::server
