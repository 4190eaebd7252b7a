// Fuzz target for server/download_message.h (tests/fuzz.bzl).
//
// EncodeDownloadResponse: a DownloadResponse header with every field set
// from the input (any enum value, any integers, a path of any bytes) and
// up to a pool buffer of data. The encoded message parses with protobuf
// (exactly when protobuf's own encoding does: not when the path is not
// UTF-8) as exactly that header with `data` added (every field compared, the data
// byte for byte), is as long as protobuf's own encoding of it, carries the
// data in a slice that points into the pool buffer (no copy), and gives the
// buffer back to the pool once the message is gone.
//
// DecodeDownloadRequest: the rest of the input, cut into up to three slices,
// never crashes, and decodes exactly when protobuf parses the same bytes,
// to the same message.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>

#include "ringstore/v1/ringstore.pb.h"
#include "server/download_message.h"
#include "storage/engine/buffer_pool.h"
#include "tests/fuzz_check.h"
#include "tests/fuzz_input.h"

namespace {

using ringstore::fuzz::FuzzInput;
using ringstore::storage::BufferPool;
using ringstore::storage::PooledBuffer;
namespace v1 = ringstore::v1;

constexpr size_t kBufferSize = 64 << 10;

BufferPool& Pool() {
  static BufferPool* pool = [] {
    auto p = BufferPool::Create(1, kBufferSize);
    FUZZ_CHECK(p.ok(), p.status().ToString());
    return p->release();
  }();
  return *pool;
}

std::string Flatten(const grpc::ByteBuffer& message, std::vector<grpc::Slice>* slices) {
  FUZZ_CHECK(message.Dump(slices).ok(), "Dump failed");
  std::string out;
  for (const grpc::Slice& s : *slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// Also says, in `*copy`, whether the data goes out as a copy (bit 32 of the
// presence byte) rather than lent from the pool.
v1::DownloadResponse Header(FuzzInput& in, bool* copy) {
  v1::DownloadResponse header;
  const uint8_t present = in.Byte();
  *copy = (present & 32) != 0;
  if (present & 1) {
    v1::FileInfo* info = header.mutable_info();
    info->set_path(in.ShortString());
    info->set_size(static_cast<int64_t>(in.U64()));
    info->set_generation(static_cast<int64_t>(in.U64()));
    if (present & 2) {
      info->mutable_modified()->set_seconds(static_cast<int64_t>(in.U64()));
      info->mutable_modified()->set_nanos(static_cast<int32_t>(in.U32()));
    }
    info->set_crc32c(in.U32());
  }
  if (present & 4) header.set_backend(static_cast<v1::Backend>(static_cast<int32_t>(in.U32())));
  if (present & 8) header.set_offset(static_cast<int64_t>(in.U64()));
  if (present & 16) header.set_crc32c(in.U32());
  return header;
}

void CheckEncode(FuzzInput& in) {
  bool copy = false;
  const v1::DownloadResponse header = Header(in, &copy);
  const size_t length = in.U16() % (kBufferSize + 1);
  std::string data = in.Bytes(length);
  for (size_t i = data.size(); i < length; ++i) data.push_back(static_cast<char>(i * 131));

  // Lent (zero-copy, the way an unpressured download sends) or copied (the
  // way it sends while the pool may lend no more).
  const bool lend = !copy;
  PooledBuffer buffer;
  BufferPool::Loan loan;
  const char* where = nullptr;
  // The buffer must be back however this input ends.
  struct BackInPool {
    ~BackInPool() { FUZZ_CHECK(Pool().free_count() == 1, "the pool buffer did not come back"); }
  } back_in_pool;
  if (length > 0 && lend) {
    buffer = Pool().TryAcquire();
    FUZZ_CHECK(buffer.valid(), "the pool's buffer was not given back by the last input");
    loan = Pool().TryLend();
    FUZZ_CHECK(loan.valid(), "the pool's loan was not given back by the last input");
    std::copy(data.begin(), data.end(), buffer.data());
    where = buffer.data();
  }
  v1::DownloadResponse expected = header;
  expected.set_data(data);
  {
    grpc::ByteBuffer message = ringstore::server::EncodeDownloadResponse(
        header, lend ? ringstore::server::LendToGrpc(std::move(buffer), length, std::move(loan))
                     : ringstore::server::CopyToGrpc(data.data(), length));
    std::vector<grpc::Slice> slices;
    const std::string bytes = Flatten(message, &slices);
    FUZZ_CHECK(bytes.size() == expected.ByteSizeLong(), "encoded ", bytes.size(),
               " bytes, protobuf's encoding has ", expected.ByteSizeLong());
    if (length > 0 && lend) {
      FUZZ_CHECK(slices.size() == 2 && reinterpret_cast<const char*>(slices[1].begin()) == where,
                 "the data was copied out of the pool buffer");
      FUZZ_CHECK(Pool().free_count() == 0, "the buffer went back while gRPC holds it");
    }
    // Protobuf refuses a proto3 string that is not UTF-8 (FileInfo.path)
    // when it parses: then its own encoding fails the same way. The server
    // only ever sends validated, UTF-8 paths.
    v1::DownloadResponse reference;
    const bool valid = reference.ParseFromString(expected.SerializeAsString());
    v1::DownloadResponse parsed;
    FUZZ_CHECK(parsed.ParseFromString(bytes) == valid, "the encoded response ",
               valid ? "does not parse" : "parses although protobuf's own encoding does not");
    if (!valid) return;
    FUZZ_CHECK(parsed.data() == data, "data differs: ", parsed.data().size(), " bytes parsed, ",
               data.size(), " sent");
    FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(parsed, expected),
               "parsed ", parsed.ShortDebugString().substr(0, 500), " expected ",
               expected.ShortDebugString().substr(0, 500));
    FUZZ_CHECK(parsed.SerializeAsString() == expected.SerializeAsString(),
               "re-encoded forms differ");
  }
}

void CheckDecode(FuzzInput& in) {
  const size_t cut1 = in.Byte();
  const size_t cut2 = cut1 + in.Byte();
  const std::string bytes = in.Rest();
  std::vector<grpc::Slice> slices;
  size_t from = 0;
  for (size_t cut : {cut1, cut2, bytes.size()}) {
    cut = std::min(std::max(cut, from), bytes.size());
    slices.emplace_back(bytes.data() + from, cut - from);
    from = cut;
  }
  const grpc::ByteBuffer raw(slices.data(), slices.size());
  const auto decoded = ringstore::server::DecodeDownloadRequest(raw);
  v1::DownloadRequest reference;
  const bool parses = reference.ParseFromString(bytes);
  FUZZ_CHECK(decoded.ok() == parses, "DecodeDownloadRequest says ", decoded.status().ToString(),
             ", protobuf ", parses ? "parses" : "does not parse");
  if (!decoded.ok()) {
    FUZZ_CHECK(decoded.status().code() == absl::StatusCode::kInvalidArgument,
               decoded.status().ToString());
    return;
  }
  FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(*decoded, reference),
             "decoded ", decoded->ShortDebugString().substr(0, 500), " reference ",
             reference.ShortDebugString().substr(0, 500));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Not a log line for each path that is not UTF-8.
  google::protobuf::SetLogHandler(nullptr);
  Pool();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput in(data, size);
  CheckEncode(in);
  CheckDecode(in);
  return 0;
}
