#include "server/socket_drain.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace ringstore::server {
namespace {

constexpr char kListen[] = "0A";  // TCP_LISTEN in the "st" column

// Adds the tx_queue of `table`'s rows on local port `port` to `*total`.
// A row: "sl local_address rem_address st tx_queue:rx_queue ...", with
// addresses as HEXIP:HEXPORT.
absl::Status AddTable(const std::string& table, int port, int64_t* total) {
  std::ifstream in(table);
  if (!in) {
    if (errno == ENOENT) return absl::OkStatus();
    return absl::UnavailableError(absl::StrCat(table, ": ", std::strerror(errno)));
  }
  std::string line;
  std::getline(in, line);  // the header
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 5) continue;
    const size_t colon = f[1].rfind(':');
    uint32_t local_port = 0;
    if (colon == std::string::npos ||
        !absl::SimpleHexAtoi(f[1].substr(colon + 1), &local_port) ||
        static_cast<int>(local_port) != port || f[3] == kListen) {
      continue;
    }
    std::vector<std::string> queues = absl::StrSplit(f[4], ':');
    uint64_t tx = 0;
    if (queues.size() != 2 || !absl::SimpleHexAtoi(queues[0], &tx)) {
      return absl::DataLossError(absl::StrCat(table, ": cannot read the row '", line, "'"));
    }
    *total += static_cast<int64_t>(tx);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<int64_t> QueuedBytes(int port, const std::string& proc_net) {
  int64_t total = 0;
  for (const char* table : {"/tcp", "/tcp6"}) {
    if (absl::Status s = AddTable(proc_net + table, port, &total); !s.ok()) return s;
  }
  return total;
}

absl::StatusOr<int64_t> WaitForQueuedBytes(int port, absl::Time deadline,
                                           const std::string& proc_net) {
  while (true) {
    absl::StatusOr<int64_t> queued = QueuedBytes(port, proc_net);
    if (!queued.ok() || *queued == 0 || absl::Now() >= deadline) return queued;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

}  // namespace ringstore::server
