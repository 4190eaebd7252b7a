#include "server/download_message.h"

#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "storage/engine/buffer_pool.h"

namespace ringstore::server {
namespace {

std::string Bytes(const grpc::ByteBuffer& message) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(message.Dump(&slices).ok());
  std::string out;
  for (const grpc::Slice& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

v1::DownloadResponse Header() {
  v1::DownloadResponse header;
  header.mutable_info()->set_path("a/b");
  header.mutable_info()->set_size(300000);
  header.set_backend(v1::BACKEND_IO_URING);
  header.set_offset(4096);
  header.set_crc32c(1234);
  return header;
}

// What a client parses is the message protobuf itself would have built, and
// the data never left its pool buffer until gRPC let go of the message.
TEST(DownloadMessage, ParsesAsTheSameResponseAndGivesTheBufferBack) {
  auto pool = storage::BufferPool::Create(1, 1 << 20);
  ASSERT_TRUE(pool.ok());
  for (size_t length : {size_t{1}, size_t{127}, size_t{128}, size_t{300000}, size_t{1} << 20}) {
    SCOPED_TRACE(length);
    storage::PooledBuffer buffer = (*pool)->TryAcquire();
    ASSERT_TRUE(buffer.valid());
    for (size_t i = 0; i < length; ++i) buffer.data()[i] = static_cast<char>(i * 7);
    const std::string data(buffer.data(), length);
    const char* where = buffer.data();
    {
      grpc::ByteBuffer message =
          EncodeDownloadResponse(Header(), LendToGrpc(std::move(buffer), length, (*pool)->TryLend()));
      EXPECT_EQ((*pool)->free_count(), 0u);  // gRPC holds it
      EXPECT_EQ((*pool)->lent_count(), 1u);
      std::vector<grpc::Slice> slices;
      ASSERT_TRUE(message.Dump(&slices).ok());
      ASSERT_EQ(slices.size(), 2u);
      EXPECT_EQ(reinterpret_cast<const char*>(slices[1].begin()), where);  // not a copy
      v1::DownloadResponse parsed;
      ASSERT_TRUE(parsed.ParseFromString(Bytes(message)));
      v1::DownloadResponse expected = Header();
      expected.set_data(data);
      EXPECT_EQ(parsed.SerializeAsString(), expected.SerializeAsString());
    }
    EXPECT_EQ((*pool)->free_count(), 1u);
    EXPECT_EQ((*pool)->lent_count(), 0u);
  }
}

// ToGrpc lends only what is larger than kCopyUpTo, and only with a loan;
// whatever it copies gives its buffer and loan back at once. Either way
// the slice holds the data.
TEST(DownloadMessage, ToGrpcCopiesSmallDataAndLendsTheRest) {
  auto pool = storage::BufferPool::Create(2, 1 << 20);
  ASSERT_TRUE(pool.ok());
  struct Case {
    size_t length;
    bool loan;
    bool lent;
  };
  for (const Case& c : {Case{1, true, false}, Case{kCopyUpTo, true, false},
                        Case{kCopyUpTo + 1, true, true}, Case{size_t{1} << 20, true, true},
                        Case{kCopyUpTo + 1, false, false}, Case{size_t{1} << 20, false, false}}) {
    SCOPED_TRACE(testing::Message() << c.length << (c.loan ? " with a loan" : " without"));
    storage::PooledBuffer buffer = (*pool)->TryAcquire();
    ASSERT_TRUE(buffer.valid());
    for (size_t i = 0; i < c.length; ++i) buffer.data()[i] = static_cast<char>(i * 11);
    const std::string data(buffer.data(), c.length);
    const char* where = buffer.data();
    storage::BufferPool::Loan loan = c.loan ? (*pool)->TryLend() : storage::BufferPool::Loan();
    ASSERT_EQ(loan.valid(), c.loan);
    {
      grpc::Slice slice = ToGrpc(std::move(buffer), c.length, std::move(loan));
      EXPECT_EQ(reinterpret_cast<const char*>(slice.begin()) == where, c.lent);
      EXPECT_EQ((*pool)->free_count(), c.lent ? 1u : 2u);
      EXPECT_EQ((*pool)->lent_count(), c.lent ? 1u : 0u);
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(slice.begin()), slice.size()), data);
    }
    EXPECT_EQ((*pool)->free_count(), 2u);
    EXPECT_EQ((*pool)->lent_count(), 0u);
  }
}

// A copied chunk parses the same and holds no pool buffer.
TEST(DownloadMessage, CopiedDataParsesTheSame) {
  auto pool = storage::BufferPool::Create(1, 1 << 16);
  ASSERT_TRUE(pool.ok());
  std::string data(65536, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 13);
  grpc::ByteBuffer message;
  {
    storage::PooledBuffer buffer = (*pool)->TryAcquire();
    std::memcpy(buffer.data(), data.data(), data.size());
    message = EncodeDownloadResponse(Header(), CopyToGrpc(buffer.data(), data.size()));
  }
  EXPECT_EQ((*pool)->free_count(), 1u);  // back while gRPC holds the message
  v1::DownloadResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(Bytes(message)));
  v1::DownloadResponse expected = Header();
  expected.set_data(data);
  EXPECT_EQ(parsed.SerializeAsString(), expected.SerializeAsString());
}

TEST(DownloadMessage, NoData) {
  grpc::ByteBuffer message = EncodeDownloadResponse(Header(), grpc::Slice());
  v1::DownloadResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(Bytes(message)));
  EXPECT_EQ(parsed.SerializeAsString(), Header().SerializeAsString());
}

TEST(DownloadMessage, DecodesRequestsAndRefusesGarbage) {
  v1::DownloadRequest request;
  request.set_path("x/y");
  request.set_offset(7);
  request.set_limit(9);
  const std::string bytes = request.SerializeAsString();
  grpc::Slice slice(bytes);
  auto decoded = DecodeDownloadRequest(grpc::ByteBuffer(&slice, 1));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->SerializeAsString(), bytes);
  grpc::Slice garbage(std::string("\xff\xff\xff"));
  EXPECT_EQ(DecodeDownloadRequest(grpc::ByteBuffer(&garbage, 1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

v1::BatchDownloadResponse BatchHeader() {
  v1::BatchDownloadResponse header;
  header.set_index(999);
  header.mutable_info()->set_path("a/b");
  header.mutable_info()->set_size(300000);
  header.mutable_info()->set_crc32c(0xffffffffu);
  header.set_backend(v1::BACKEND_POSIX_AIO);
  header.set_offset(int64_t{1} << 40);
  header.set_crc32c(0x80000000u);
  header.set_last(true);
  return header;
}

// A BatchDownloadResponse with lent data parses as the message protobuf
// builds (field 5, not Download's 4), the buffer is not copied and goes
// back once gRPC lets go.
TEST(BatchDownloadMessage, ParsesAsTheSameResponseAndGivesTheBufferBack) {
  auto pool = storage::BufferPool::Create(1, 1 << 20);
  ASSERT_TRUE(pool.ok());
  for (size_t length : {size_t{1}, size_t{127}, size_t{128}, size_t{16384}, size_t{1} << 20}) {
    SCOPED_TRACE(length);
    storage::PooledBuffer buffer = (*pool)->TryAcquire();
    ASSERT_TRUE(buffer.valid());
    for (size_t i = 0; i < length; ++i) buffer.data()[i] = static_cast<char>(i * 11 + 3);
    const std::string data(buffer.data(), length);
    const char* where = buffer.data();
    {
      grpc::ByteBuffer message = EncodeBatchDownloadResponse(
          BatchHeader(), LendToGrpc(std::move(buffer), length, (*pool)->TryLend()));
      EXPECT_EQ((*pool)->free_count(), 0u);
      std::vector<grpc::Slice> slices;
      ASSERT_TRUE(message.Dump(&slices).ok());
      ASSERT_EQ(slices.size(), 2u);
      EXPECT_EQ(reinterpret_cast<const char*>(slices[1].begin()), where);  // not a copy
      v1::BatchDownloadResponse parsed;
      ASSERT_TRUE(parsed.ParseFromString(Bytes(message)));
      v1::BatchDownloadResponse expected = BatchHeader();
      expected.set_data(data);
      EXPECT_EQ(parsed.SerializeAsString(), expected.SerializeAsString());
      EXPECT_EQ(parsed.data(), data);
      EXPECT_EQ(parsed.index(), 999);
      EXPECT_TRUE(parsed.last());
    }
    EXPECT_EQ((*pool)->free_count(), 1u);
    EXPECT_EQ((*pool)->lent_count(), 0u);
  }
}

// A failed file's message: index, code and text, no data.
TEST(BatchDownloadMessage, ErrorMessageHasNoData) {
  v1::BatchDownloadResponse header;
  header.set_index(3);
  header.set_error_code(5);
  header.set_error_message("no such file");
  grpc::ByteBuffer message = EncodeBatchDownloadResponse(header, grpc::Slice());
  v1::BatchDownloadResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(Bytes(message)));
  EXPECT_EQ(parsed.SerializeAsString(), header.SerializeAsString());
  EXPECT_TRUE(parsed.data().empty());
  EXPECT_FALSE(parsed.has_info());
}

TEST(BatchDownloadMessage, DecodesRequestsAndRefusesGarbage) {
  v1::BatchDownloadRequest request;
  for (int i = 0; i < 1000; ++i) request.add_paths("dir/file-" + std::to_string(i));
  const std::string bytes = request.SerializeAsString();
  // Cut into three slices: the decoder joins them.
  grpc::Slice slices[3] = {grpc::Slice(bytes.substr(0, 5)), grpc::Slice(bytes.substr(5, 100)),
                           grpc::Slice(bytes.substr(105))};
  auto decoded = DecodeBatchDownloadRequest(grpc::ByteBuffer(slices, 3));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->paths_size(), 1000);
  EXPECT_EQ(decoded->SerializeAsString(), bytes);
  grpc::Slice garbage(std::string("\x0a\xff\xff\xff\x0f"));  // a length past the end
  EXPECT_EQ(DecodeBatchDownloadRequest(grpc::ByteBuffer(&garbage, 1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ringstore::server
