#include "server/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ringstore::server {
namespace {

// Longest time a line waits in the queue, and the queue size that wakes
// the writer early.
constexpr auto kFlushInterval = std::chrono::milliseconds(200);
constexpr size_t kWakeBytes = 64 << 10;

// Length of the UTF-8 sequence at s[i], or 0 if it is not a valid one
// (overlong forms, surrogates and code points above U+10FFFF included).
size_t Utf8Length(absl::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  size_t n;
  uint32_t cp;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(k) & 0x3F);
  }
  if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
      (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
    return 0;
  }
  return n;
}

}  // namespace

std::string JsonString(absl::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (size_t i = 0; i < s.size();) {
    const char c = s[i];
    const size_t n = Utf8Length(s, i);
    if (n == 0) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    if (n > 1) {
      out.append(s.data() + i, n);
      i += n;
      continue;
    }
    ++i;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
          absl::StrAppendFormat(&out, "\\u%04x", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

std::string FormatAccessRecord(const AccessRecord& r) {
  return absl::StrCat(
      "{\"time\":\"", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", r.time, absl::UTCTimeZone()),
      "\",\"peer\":", JsonString(r.peer), ",\"method\":", JsonString(r.method),
      ",\"path\":", JsonString(r.path), ",\"bytes_in\":", r.bytes_in,
      ",\"bytes_out\":", r.bytes_out, ",\"backend\":", JsonString(r.backend),
      ",\"code\":", JsonString(r.code), ",\"duration\":", absl::StrFormat("%.6f", r.duration_seconds),
      ",\"request_id\":", JsonString(r.request_id), "}\n");
}

std::string NewRequestId() {
  // An id, not a secret: a per-thread generator seeded once by the kernel.
  thread_local std::mt19937_64 gen([] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }());
  return absl::StrFormat("%016x", gen());
}

absl::StatusOr<std::unique_ptr<AccessLog>> AccessLog::Open(const std::string& target) {
  if (target == "-") return std::unique_ptr<AccessLog>(new AccessLog("", STDERR_FILENO));
  const int fd = open(target.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) {
    return absl::Status(absl::ErrnoToStatusCode(errno),
                        absl::StrCat("access log ", target, ": ", std::strerror(errno)));
  }
  return std::unique_ptr<AccessLog>(new AccessLog(target, fd));
}

AccessLog::AccessLog(std::string path, int fd) : path_(std::move(path)), fd_(fd) {
  writer_ = std::thread([this] { Run(); });
}

AccessLog::~AccessLog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_one();
  writer_.join();
  if (!path_.empty()) close(fd_);
}

void AccessLog::Write(std::string line) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() + line.size() > kMaxQueuedBytes) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    queue_ += line;
    wake = queue_.size() >= kWakeBytes;
  }
  if (wake) wake_.notify_one();
}

void AccessLog::Run() {
  std::string batch;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    wake_.wait_for(lock, kFlushInterval,
                   [this] { return stop_ || queue_.size() >= kWakeBytes; });
    batch.clear();
    batch.swap(queue_);
    const bool stop = stop_;
    lock.unlock();
    if (!batch.empty()) WriteOut(batch);
    if (stop) return;
    lock.lock();
  }
}

void AccessLog::WriteOut(const std::string& data) {
  std::lock_guard<std::mutex> lock(fd_mu_);
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = write(fd_, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // The disk is full or gone: these lines are lost, like a full queue's.
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    done += static_cast<size_t>(n);
  }
}

absl::Status AccessLog::Reopen() {
  if (path_.empty()) return absl::OkStatus();
  const int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) {
    return absl::Status(absl::ErrnoToStatusCode(errno),
                        absl::StrCat("access log ", path_, ": ", std::strerror(errno)));
  }
  std::lock_guard<std::mutex> lock(fd_mu_);
  close(fd_);
  fd_ = fd;
  return absl::OkStatus();
}

}  // namespace ringstore::server
