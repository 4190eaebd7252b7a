// What the CLI's commands print besides their results: failures on stderr
// in one format ("ringstore: NOT_FOUND: ...") and the progress bar.
#ifndef RINGSTORE_CLIENT_CLI_OUTPUT_H_
#define RINGSTORE_CLIENT_CLI_OUTPUT_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "client/client.h"

namespace ringstore::client {

// "NOT_FOUND" for grpc::StatusCode::NOT_FOUND; "UNKNOWN" outside 0..16.
const char* StatusName(grpc::StatusCode code);

// Prints "ringstore: NAME: message" to stderr; returns kExitFailure.
int Fail(const grpc::Status& status);
// Prints "ringstore: message" to stderr; returns kExitFailure.
int LocalFail(const std::string& message);

// A one-line progress bar on stderr, drawn only when stderr is a terminal.
class ProgressBar {
 public:
  ProgressBar();
  ~ProgressBar() { Clear(); }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  // Erases the bar, so the next line starts clean.
  void Clear();
  // Draws done/total (total 0: unknown) at most every 100 ms; null when
  // stderr is not a terminal.
  Progress callback();

 private:
  void Draw(int64_t done, int64_t total);

  const bool enabled_;
  const absl::Time start_;
  absl::Time last_ = absl::InfinitePast();
  bool drawn_ = false;
};

}  // namespace ringstore::client

#endif  // RINGSTORE_CLIENT_CLI_OUTPUT_H_
