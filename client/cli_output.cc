#include "client/cli_output.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/cli.h"

namespace ringstore::client {

const char* StatusName(grpc::StatusCode code) {
  static const char* const kNames[] = {
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
      "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  const int c = static_cast<int>(code);
  return c >= 0 && c <= 16 ? kNames[c] : "UNKNOWN";
}

int Fail(const grpc::Status& status) {
  std::cerr << "ringstore: " << StatusName(status.error_code()) << ": "
            << status.error_message() << "\n";
  return kExitFailure;
}

int LocalFail(const std::string& message) {
  std::cerr << "ringstore: " << message << "\n";
  return kExitFailure;
}

ProgressBar::ProgressBar() : enabled_(isatty(STDERR_FILENO) == 1), start_(absl::Now()) {}

void ProgressBar::Clear() {
  if (drawn_) std::fputs("\r\033[K", stderr);
  drawn_ = false;
}

Progress ProgressBar::callback() {
  if (!enabled_) return nullptr;
  return [this](int64_t done, int64_t total) { Draw(done, total); };
}

void ProgressBar::Draw(int64_t done, int64_t total) {
  const absl::Time now = absl::Now();
  if (now - last_ < absl::Milliseconds(100) && done != total) return;
  last_ = now;
  drawn_ = true;
  const double secs = absl::ToDoubleSeconds(now - start_);
  const double rate = secs > 0 ? done / secs : 0;
  std::string line;
  if (total > 0) {
    const int width = 30;
    const int filled = static_cast<int>(width * done / total);
    const double eta = rate > 0 ? (total - done) / rate : 0;
    line = absl::StrFormat("\r[%s%s] %3d%% %7.1f MiB/s ETA %.0fs", std::string(filled, '#'),
                           std::string(width - filled, ' '),
                           static_cast<int>(100 * done / total), rate / (1 << 20), eta);
  } else {
    line = absl::StrFormat("\r%.1f MiB %7.1f MiB/s", done / double(1 << 20), rate / (1 << 20));
  }
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

}  // namespace ringstore::client
