#include "client/download_decoder.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/sync_stream.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "third_party/system/crc32c.h"

namespace ringstore::client {
namespace {

using google::protobuf::io::CodedInputStream;
using google::protobuf::internal::WireFormatLite;

absl::Status Malformed(const char* what) {
  return absl::DataLossError(std::string("malformed DownloadResponse: ") + what);
}

// Field numbers of DownloadResponse (ringstore.proto).
constexpr int kInfo = 1;
constexpr int kBackend = 2;
constexpr int kOffset = 3;
constexpr int kData = 4;
constexpr int kCrc32c = 5;

// The `length` bytes at the stream's position as pieces of its buffers.
bool ReadPieces(CodedInputStream* in, uint32_t length, DownloadChunk* chunk) {
  chunk->data.clear();
  chunk->data_size = length;
  while (length > 0) {
    const void* p = nullptr;
    int size = 0;
    if (!in->GetDirectBufferPointer(&p, &size)) return false;
    const uint32_t take = std::min<uint32_t>(length, static_cast<uint32_t>(size));
    chunk->data.emplace_back(static_cast<const char*>(p), take);
    if (!in->Skip(static_cast<int>(take))) return false;
    length -= take;
  }
  return true;
}

}  // namespace

absl::Status DecodeDownloadResponse(grpc::ByteBuffer* raw, DownloadChunk* chunk) {
  *chunk = DownloadChunk();
  grpc::ProtoBufferReader reader(raw);
  if (!reader.status().ok()) return Malformed("unreadable byte buffer");
  CodedInputStream in(&reader);
  const int64_t length = static_cast<int64_t>(raw->Length());
  while (true) {
    const int64_t at = in.CurrentPosition();
    const uint32_t tag = in.ReadTag();
    if (tag == 0) {
      // The end of the buffer; a 0 tag or an unreadable one before it is not.
      if (at != length) return Malformed("bad tag");
      break;
    }
    const int field = WireFormatLite::GetTagFieldNumber(tag);
    const auto type = WireFormatLite::GetTagWireType(tag);
    const bool delimited = type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
    const bool varint = type == WireFormatLite::WIRETYPE_VARINT;
    uint64_t v = 0;
    if (field == kInfo && delimited) {
      uint32_t length = 0;
      if (!in.ReadVarint32(&length)) return Malformed("truncated info");
      const CodedInputStream::Limit limit = in.PushLimit(static_cast<int>(length));
      if (!chunk->info.MergePartialFromCodedStream(&in) || !in.ConsumedEntireMessage() ||
          in.BytesUntilLimit() != 0) {
        return Malformed("bad info");
      }
      in.PopLimit(limit);
      chunk->has_info = true;
    } else if (field == kData && delimited) {
      uint32_t length = 0;
      if (!in.ReadVarint32(&length) || !ReadPieces(&in, length, chunk)) {
        return Malformed("truncated data");
      }
    } else if ((field == kBackend || field == kOffset || field == kCrc32c) && varint) {
      if (!in.ReadVarint64(&v)) return Malformed("truncated varint");
      if (field == kBackend) chunk->backend = static_cast<v1::Backend>(static_cast<int>(v));
      if (field == kOffset) chunk->offset = static_cast<int64_t>(v);
      if (field == kCrc32c) chunk->crc32c = static_cast<uint32_t>(v);
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return Malformed("bad field");
    }
  }
  uint32_t crc = 0;
  for (absl::string_view piece : chunk->data) {
    crc = Crc32cCombine(crc, Crc32c(piece), piece.size());
  }
  chunk->data_crc32c = crc;
  if (crc != chunk->crc32c) {
    return absl::DataLossError(
        absl::StrCat("crc32c mismatch in the message at offset ", chunk->offset));
  }
  return absl::OkStatus();
}

bool WriteChunk(int fd, const DownloadChunk& chunk, size_t max_per_call) {
  constexpr size_t kMaxIov = 64;
  size_t piece = 0;   // next piece
  size_t skip = 0;    // bytes of it already written
  while (piece < chunk.data.size()) {
    iovec iov[kMaxIov];
    int n = 0;
    size_t bytes = 0;
    for (size_t i = piece; i < chunk.data.size() && n < static_cast<int>(kMaxIov) &&
                           bytes < max_per_call; ++i) {
      const size_t off = i == piece ? skip : 0;
      const size_t len = std::min(chunk.data[i].size() - off, max_per_call - bytes);
      iov[n].iov_base = const_cast<char*>(chunk.data[i].data() + off);
      iov[n].iov_len = len;
      bytes += len;
      ++n;
    }
    ssize_t w = writev(fd, iov, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    auto done = static_cast<size_t>(w);
    while (done > 0) {
      const size_t left = chunk.data[piece].size() - skip;
      if (done < left) {
        skip += done;
        break;
      }
      done -= left;
      ++piece;
      skip = 0;
    }
    while (piece < chunk.data.size() && chunk.data[piece].size() == skip) {
      ++piece;
      skip = 0;
    }
  }
  return true;
}

grpc::internal::RpcMethod RawDownloadMethod(
    const std::shared_ptr<grpc::ChannelInterface>& channel) {
  return grpc::internal::RpcMethod("/ringstore.v1.FileStore/Download",
                                   grpc::internal::RpcMethod::SERVER_STREAMING, channel);
}

std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> ReadDownload(
    const std::shared_ptr<grpc::ChannelInterface>& channel, grpc::ClientContext* context,
    const v1::DownloadRequest& request) {
  return std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>>(
      grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(
          channel.get(), RawDownloadMethod(channel), context, request));
}

}  // namespace ringstore::client
