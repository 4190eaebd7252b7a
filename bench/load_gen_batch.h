// load_gen --mode=batch: one BatchDownload call of --batch_size paths,
// picked by the caller, run on gRPC's callback client API. Every message
// is checked as it arrives: its index, its offset (in order within its
// file), its data's crc32c; each file must end with `last` and add up to
// its FileInfo's size (and its crc32c, when the server knows it), and
// every index must be answered exactly once. A file that fails on the
// server (error_code) makes the call count as failed with that code; a
// mismatch is DATA_LOSS.
#ifndef RINGSTORE_BENCH_LOAD_GEN_BATCH_H_
#define RINGSTORE_BENCH_LOAD_GEN_BATCH_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <functional>

#include "bench/load_gen_report.h"
#include "ringstore/v1/ringstore.grpc.pb.h"

namespace ringstore::bench {

struct BatchResult {
  grpc::Status status;
  std::chrono::steady_clock::duration latency{};
  int64_t files = 0;  // answered with all their data
  int64_t bytes = 0;  // file payload
  int backend = 0;    // ReportedBackend
};

// Starts the call for `request` (which must outlive it) on `stub`, with
// config's deadline and token; `done` runs once, on a gRPC thread, when it
// has ended.
void StartBatchDownload(v1::FileStore::Stub* stub, const Config& config,
                        const v1::BatchDownloadRequest* request,
                        std::function<void(const BatchResult&)> done);

}  // namespace ringstore::bench

#endif  // RINGSTORE_BENCH_LOAD_GEN_BATCH_H_
