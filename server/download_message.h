// The Download RPC's messages as gRPC sends and receives them, so that file
// data goes out of a pool buffer without being copied.
//
// A DownloadResponse on the wire is its fields in any order (protobuf
// parsers accept that). EncodeDownloadResponse serialises every field but
// `data` with protobuf, then appends field 4 (data) by hand: its tag, its
// length and a slice that points into the pool buffer. The buffer goes back
// to the pool when gRPC lets go of the slice, once the bytes are on the
// socket, so a download's memory stays inside the pool. Clients see an
// ordinary DownloadResponse.
#ifndef RINGSTORE_SERVER_DOWNLOAD_MESSAGE_H_
#define RINGSTORE_SERVER_DOWNLOAD_MESSAGE_H_

#include <grpcpp/grpcpp.h>

#include <cstddef>

#include "absl/status/statusor.h"
#include "ringstore/v1/ringstore.pb.h"
#include "storage/engine/buffer_pool.h"

namespace ringstore::server {

// `header` with data = buffer[0, length). `header.data()` must be empty;
// `buffer` may be invalid when `length` is 0.
grpc::ByteBuffer EncodeDownloadResponse(const v1::DownloadResponse& header,
                                        storage::PooledBuffer buffer, size_t length);

// The DownloadRequest in `raw`; InvalidArgument if it does not parse.
absl::StatusOr<v1::DownloadRequest> DecodeDownloadRequest(const grpc::ByteBuffer& raw);

}  // namespace ringstore::server

#endif  // RINGSTORE_SERVER_DOWNLOAD_MESSAGE_H_
