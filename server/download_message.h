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
// owns (CopyToGrpc), which the download uses for small chunks when the pool
// may lend no more (buffer_pool.h: a buffer lent to a write to a client that
// stopped reading is not seen again until the call ends). Clients see an
// ordinary DownloadResponse.
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
