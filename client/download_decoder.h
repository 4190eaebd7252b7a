// A DownloadResponse read straight out of the grpc::ByteBuffer it arrived
// in, so that a client checks and writes the file's bytes where gRPC
// received them instead of copying them into a protobuf `bytes` string.
//
// DecodeDownloadResponse parses the message's fields with protobuf's
// CodedInputStream over the buffer's slices (grpc::ProtoBufferReader): the
// small fields (info, backend, offset, crc32c) into DownloadChunk, the
// `data` field as the list of pieces of the slices it spans (no copy, also
// when it crosses slices). It checks the pieces' CRC32C against the
// message's crc32c field (DATA_LOSS on a mismatch); `data_crc32c` is that
// CRC, for folding into the file's. The pieces point into `raw`: they are
// valid until `raw` is changed or destroyed.
//
// Errors: DATA_LOSS for a message that does not parse (truncated, a bad
// tag or length) or whose data fails its crc32c. Unknown fields are skipped,
// as protobuf would; a field repeated keeps its last value (`data`: the last
// occurrence).
//
// ReadDownload is the synchronous Download RPC with raw responses, for the
// CLI; bench/load_gen uses the callback form (RawDownloadMethod with
// grpc::internal::ClientCallbackReaderFactory<grpc::ByteBuffer>).
#ifndef RINGSTORE_CLIENT_DOWNLOAD_DECODER_H_
#define RINGSTORE_CLIENT_DOWNLOAD_DECODER_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "ringstore/v1/ringstore.pb.h"

namespace ringstore::client {

struct DownloadChunk {
  bool has_info = false;  // the first message carries FileInfo and backend
  v1::FileInfo info;
  v1::Backend backend = v1::BACKEND_UNSPECIFIED;
  int64_t offset = 0;
  uint32_t crc32c = 0;         // the message's field
  uint32_t data_crc32c = 0;    // computed over `data`; equals crc32c when OK
  int64_t data_size = 0;
  std::vector<absl::string_view> data;  // pieces of the received slices, in order
};

// Decodes `raw` into `*chunk` (cleared first); see the file comment.
absl::Status DecodeDownloadResponse(grpc::ByteBuffer* raw, DownloadChunk* chunk);

// Writes chunk's pieces to `fd` with writev, at most `max_per_call` bytes a
// call; false with errno set on a write error.
bool WriteChunk(int fd, const DownloadChunk& chunk, size_t max_per_call);

// "/ringstore.v1.FileStore/Download", a server-streaming method on `channel`.
grpc::internal::RpcMethod RawDownloadMethod(
    const std::shared_ptr<grpc::ChannelInterface>& channel);

// Starts a Download on `channel` whose responses are raw ByteBuffers.
std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> ReadDownload(
    const std::shared_ptr<grpc::ChannelInterface>& channel, grpc::ClientContext* context,
    const v1::DownloadRequest& request);

}  // namespace ringstore::client

#endif  // RINGSTORE_CLIENT_DOWNLOAD_DECODER_H_
