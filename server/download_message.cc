#include "server/download_message.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace ringstore::server {
namespace {

// The data field's tag, wire type 2 (length-delimited): DownloadResponse's
// field 4, (4 << 3) | 2, and BatchDownloadResponse's field 5, (5 << 3) | 2.
constexpr char kDownloadDataTag = 0x22;
constexpr char kBatchDataTag = 0x2a;

void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

struct Lent {
  storage::PooledBuffer buffer;
  storage::BufferPool::Loan loan;
};

void ReturnToPool(void* lent) { delete static_cast<Lent*>(lent); }

}  // namespace

grpc::Slice LendToGrpc(storage::PooledBuffer buffer, size_t length,
                       storage::BufferPool::Loan loan) {
  char* data = buffer.data();
  return grpc::Slice(data, length, &ReturnToPool,
                     new Lent{std::move(buffer), std::move(loan)});
}

grpc::Slice CopyToGrpc(const char* data, size_t length) { return grpc::Slice(data, length); }

grpc::Slice ToGrpc(storage::PooledBuffer buffer, size_t length, storage::BufferPool::Loan loan) {
  if (loan.valid() && length > kCopyUpTo) {
    return LendToGrpc(std::move(buffer), length, std::move(loan));
  }
  return CopyToGrpc(buffer.data(), length);  // buffer and loan go back on return
}

namespace {

// `header` serialised, then field `tag` = `data` appended by hand.
grpc::ByteBuffer EncodeWithData(const google::protobuf::MessageLite& header, char tag,
                                grpc::Slice data) {
  std::string head;
  header.SerializeToString(&head);
  if (data.size() == 0) {
    grpc::Slice slice(head);
    return grpc::ByteBuffer(&slice, 1);
  }
  head.push_back(tag);
  AppendVarint(data.size(), &head);
  grpc::Slice slices[2] = {grpc::Slice(head), std::move(data)};
  return grpc::ByteBuffer(slices, 2);
}

// The serialised bytes of `raw`, parsed into `message`.
bool ParseRaw(const grpc::ByteBuffer& raw, google::protobuf::MessageLite* message) {
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (raw.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) {
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  return message->ParseFromString(bytes);
}

}  // namespace

grpc::ByteBuffer EncodeDownloadResponse(const v1::DownloadResponse& header, grpc::Slice data) {
  return EncodeWithData(header, kDownloadDataTag, std::move(data));
}

grpc::ByteBuffer EncodeBatchDownloadResponse(const v1::BatchDownloadResponse& header,
                                             grpc::Slice data) {
  return EncodeWithData(header, kBatchDataTag, std::move(data));
}

absl::StatusOr<v1::DownloadRequest> DecodeDownloadRequest(const grpc::ByteBuffer& raw) {
  v1::DownloadRequest request;
  if (!ParseRaw(raw, &request)) {
    return absl::InvalidArgumentError("the request is not a DownloadRequest");
  }
  return request;
}

absl::StatusOr<v1::BatchDownloadRequest> DecodeBatchDownloadRequest(
    const grpc::ByteBuffer& raw) {
  v1::BatchDownloadRequest request;
  if (!ParseRaw(raw, &request)) {
    return absl::InvalidArgumentError("the request is not a BatchDownloadRequest");
  }
  return request;
}

}  // namespace ringstore::server
