#include "client/upload_tracker.h"

#include <fcntl.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace ringstore::client {
namespace {

// mkdir -p with mode 0700; "" on success.
std::string MakeDirs(const std::string& dir) {
  for (size_t i = 1; i <= dir.size(); ++i) {
    if (i != dir.size() && dir[i] != '/') continue;
    const std::string part = dir.substr(0, i);
    if (mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::StrCat("cannot create ", part, ": ", std::strerror(errno));
    }
  }
  return "";
}

}  // namespace

std::string UploadTracker::CacheDir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg == '/') {
    return absl::StrCat(xdg, "/ringstore");
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return absl::StrCat(home, "/.cache/ringstore");
  }
  return "";
}

UploadTracker::UploadTracker(const std::string& cache_dir, const std::string& server,
                             const std::string& remote, int64_t size, int64_t mtime_ns)
    : dir_(cache_dir.empty() ? CacheDir() : cache_dir) {
  // NUL cannot occur in a target or a path: the fields stay apart.
  key_ = absl::StrCat(server, std::string(1, '\0'), remote, std::string(1, '\0'), size,
                      std::string(1, '\0'), mtime_ns);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(key_.data()), key_.size(), digest);
  if (!dir_.empty()) {
    path_ = absl::StrCat(dir_, "/upload-",
                         absl::BytesToHexString(absl::string_view(
                             reinterpret_cast<const char*>(digest), sizeof(digest))));
  }
  for (char& c : key_) {
    if (c == '\0') c = ' ';
  }
}

std::string UploadTracker::Read() const {
  if (path_.empty()) return "";
  const int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  char buf[256];
  const ssize_t n = read(fd, buf, sizeof buf);
  close(fd);
  if (n <= 0) return "";
  absl::string_view text(buf, static_cast<size_t>(n));
  text = text.substr(0, text.find('\n'));
  return std::string(absl::StripAsciiWhitespace(text));
}

std::string UploadTracker::Write(const std::string& upload_id) const {
  if (path_.empty()) return "neither $XDG_CACHE_HOME nor $HOME is set";
  if (std::string error = MakeDirs(dir_); !error.empty()) return error;
  std::string tmp = absl::StrCat(path_, ".XXXXXX");
  const int fd = mkstemp(tmp.data());
  if (fd < 0) return absl::StrCat("cannot create ", tmp, ": ", std::strerror(errno));
  const std::string text = absl::StrCat(upload_id, "\n# ", key_, "\n");
  const bool written = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  const int err = errno;
  close(fd);
  if (!written || rename(tmp.c_str(), path_.c_str()) != 0) {
    const std::string why = std::strerror(written ? errno : err);
    unlink(tmp.c_str());
    return absl::StrCat("cannot write ", path_, ": ", why);
  }
  return "";
}

void UploadTracker::Remove() const {
  if (!path_.empty()) unlink(path_.c_str());
}

}  // namespace ringstore::client
