// The Download and BatchDownload RPCs' messages as gRPC sends and receives
// them, so that file data goes out of a pool buffer without being copied.
//
// A DownloadResponse (or BatchDownloadResponse) on the wire is its fields in any order (protobuf
// parsers accept that). EncodeDownloadResponse serialises every field but
// `data` with protobuf, then appends field 4 (data; field 5 in a
// BatchDownloadResponse) by hand: its tag, its
// length and the data's slice. That slice either points into a pool buffer
// (LendToGrpc: the buffer and its Loan go back to the pool when gRPC lets
// go of the slice, once the bytes are on the socket) or is a copy gRPC
// owns (CopyToGrpc), which the download uses for small data and for chunks
// when the pool may lend no more (buffer_pool.h: a buffer lent to a write to
// a client that stopped reading is not seen again until the call ends);
// ToGrpc chooses. Clients see an ordinary DownloadResponse.
#ifndef RINGSTORE_SERVER_DOWNLOAD_MESSAGE_H_
#define RINGSTORE_SERVER_DOWNLOAD_MESSAGE_H_

#include <grpcpp/grpcpp.h>

#include <cstddef>

#include "absl/status/statusor.h"
#include "ringstore/v1/ringstore.pb.h"
#include "storage/engine/buffer_pool.h"

namespace ringstore::server {

// buffer[0, length) as a slice that owns `buffer` and `loan` (both go back
// when the last reference to the slice goes, on whatever thread drops it).
grpc::Slice LendToGrpc(storage::PooledBuffer buffer, size_t length,
                       storage::BufferPool::Loan loan);
// A copy of [data, data + length) that gRPC owns.
grpc::Slice CopyToGrpc(const char* data, size_t length);

// Up to this many bytes are copied even when the pool would lend: a small
// copy costs less than holding a pool buffer (and its loan) until gRPC has
// sent it, which also holds back the next reads of a call that queues many
// messages. Medians of 9 interleaved rounds: BatchDownload of 4 KiB files
// 1.09x the calls per second at 0.91x the server CPU per call; single
// 4 KiB downloads 1.03x at 0.97x. Copying 64 KiB files too was inside the
// noise (1.04x in 3 rounds), so larger data stays lent (bench/RESULTS.md).
inline constexpr size_t kCopyUpTo = 16 << 10;

// buffer[0, length) for gRPC: lent (LendToGrpc) if `loan` is valid and
// `length` exceeds kCopyUpTo, else copied (CopyToGrpc), and then `buffer`
// and `loan` go back to the pool before this returns.
grpc::Slice ToGrpc(storage::PooledBuffer buffer, size_t length, storage::BufferPool::Loan loan);

// `header` with data = `data` (may be empty). `header.data()` must be empty.
grpc::ByteBuffer EncodeDownloadResponse(const v1::DownloadResponse& header, grpc::Slice data);

// The same for a BatchDownloadResponse: `header.data()` must be empty.
grpc::ByteBuffer EncodeBatchDownloadResponse(const v1::BatchDownloadResponse& header,
                                             grpc::Slice data);

// The DownloadRequest in `raw`; InvalidArgument if it does not parse.
absl::StatusOr<v1::DownloadRequest> DecodeDownloadRequest(const grpc::ByteBuffer& raw);
// The BatchDownloadRequest in `raw`; InvalidArgument if it does not parse.
absl::StatusOr<v1::BatchDownloadRequest> DecodeBatchDownloadRequest(
    const grpc::ByteBuffer& raw);

}  // namespace ringstore::server

#endif  // RINGSTORE_SERVER_DOWNLOAD_MESSAGE_H_
