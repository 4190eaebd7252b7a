// The access log (DESIGN.md §5, --access_log): one JSON object a line per
// call, written by a background thread so that no gRPC thread ever waits
// for the disk.
//
// A line has, in this order: "time" (RFC 3339, UTC, milliseconds), "peer"
// (gRPC's peer string, such as "ipv4:127.0.0.1:40312"), "method" (the RPC
// name), "path" (the request's path, or List's prefix; "" when the call
// names none), "bytes_in" and "bytes_out" (message bytes received and
// sent), "backend" (the engine that served it, "" when no file was
// touched), "code" (the gRPC status code's name), "duration" (seconds) and
// "request_id" (the client's x-request-id, else a random 64-bit hex id).
// Credentials never appear: a record has no field for them.
#ifndef RINGSTORE_SERVER_ACCESS_LOG_H_
#define RINGSTORE_SERVER_ACCESS_LOG_H_

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <atomic>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace ringstore::server {

struct AccessRecord {
  absl::Time time;
  std::string peer;
  std::string method;
  std::string path;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  std::string backend;
  std::string code;
  double duration_seconds = 0;
  std::string request_id;
};

// The record as one JSON line, newline included.
std::string FormatAccessRecord(const AccessRecord& record);

// `s` as a JSON string, quotes included: '"', '\\' and control characters
// escaped, bytes that are not UTF-8 replaced by U+FFFD, so that any path a
// client sends still makes a valid line.
std::string JsonString(absl::string_view s);

// A random 64-bit request id, 16 hex digits.
std::string NewRequestId();

class AccessLog {
 public:
  // "-" is stderr; anything else a file opened for appending (O_APPEND,
  // created 0640 if missing). The error if it cannot be opened.
  static absl::StatusOr<std::unique_ptr<AccessLog>> Open(const std::string& target);
  // Writes what is still queued, then stops the writer thread.
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Queues one line (FormatAccessRecord's). Never blocks on the disk; the
  // writer writes it within about 200 ms. If the disk falls so far behind
  // that kMaxQueuedBytes are waiting, the line is dropped and counted.
  void Write(std::string line);

  // Opens the file again by name and writes to the new one from now on (a
  // log rotated by rename; main() calls it on SIGHUP). No-op for stderr.
  absl::Status Reopen();

  // Lines dropped because the queue was full.
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

  static constexpr size_t kMaxQueuedBytes = 64 << 20;

 private:
  AccessLog(std::string path, int fd);
  void Run();
  void WriteOut(const std::string& data);

  const std::string path_;  // empty for stderr

  std::mutex mu_;
  std::condition_variable wake_;
  std::string queue_;  // guarded by mu_
  bool stop_ = false;  // guarded by mu_
  std::atomic<uint64_t> dropped_{0};

  std::mutex fd_mu_;
  int fd_ = -1;  // guarded by fd_mu_

  std::thread writer_;
};

}  // namespace ringstore::server

#endif  // RINGSTORE_SERVER_ACCESS_LOG_H_
