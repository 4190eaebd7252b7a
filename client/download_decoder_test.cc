#include "client/download_decoder.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "third_party/system/crc32c.h"

namespace ringstore::client {
namespace {

std::string Bytes(size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed * 7 + (i >> 9)) & 0xff);
  return s;
}

// `wire` cut into slices at `cuts` (increasing offsets inside it).
grpc::ByteBuffer Sliced(const std::string& wire, const std::vector<size_t>& cuts) {
  std::vector<grpc::Slice> slices;
  size_t from = 0;
  for (size_t cut : cuts) {
    slices.emplace_back(wire.data() + from, cut - from);
    from = cut;
  }
  slices.emplace_back(wire.data() + from, wire.size() - from);
  return grpc::ByteBuffer(slices.data(), slices.size());
}

std::string Joined(const DownloadChunk& chunk) {
  std::string out;
  for (absl::string_view p : chunk.data) out.append(p.data(), p.size());
  return out;
}

v1::DownloadResponse First(const std::string& data) {
  v1::DownloadResponse r;
  r.mutable_info()->set_path("dir/big");
  r.mutable_info()->set_size(1 << 20);
  r.mutable_info()->set_generation(9);
  r.mutable_info()->set_crc32c(77);
  r.set_backend(v1::BACKEND_IO_URING);
  r.set_offset(4096);
  r.set_data(data);
  r.set_crc32c(Crc32c(data));
  return r;
}

TEST(DecodeDownloadResponse, ReadsEveryFieldWhereverTheSlicesAreCut) {
  const std::string data = Bytes(70000, 1);
  const std::string wire = First(data).SerializeAsString();
  // One slice; cuts inside the info field, inside the data's length
  // varint, inside the data (several times), and one byte before the end.
  const std::vector<std::vector<size_t>> cases = {
      {}, {3}, {5, 20}, {wire.size() - data.size() - 2},
      {wire.size() - 60000, wire.size() - 30000, wire.size() - 1}};
  for (const auto& cuts : cases) {
    grpc::ByteBuffer raw = Sliced(wire, cuts);
    DownloadChunk chunk;
    ASSERT_TRUE(DecodeDownloadResponse(&raw, &chunk).ok()) << cuts.size();
    EXPECT_TRUE(chunk.has_info);
    EXPECT_EQ(chunk.info.path(), "dir/big");
    EXPECT_EQ(chunk.info.size(), 1 << 20);
    EXPECT_EQ(chunk.info.generation(), 9);
    EXPECT_EQ(chunk.info.crc32c(), 77u);
    EXPECT_EQ(chunk.backend, v1::BACKEND_IO_URING);
    EXPECT_EQ(chunk.offset, 4096);
    EXPECT_EQ(chunk.data_size, 70000);
    EXPECT_EQ(chunk.data_crc32c, Crc32c(data));
    EXPECT_EQ(Joined(chunk), data);
  }
}

TEST(DecodeDownloadResponse, DataPiecesPointIntoTheReceivedSlicesWithoutACopy) {
  const std::string data = Bytes(5000, 2);
  v1::DownloadResponse r;
  r.set_offset(1 << 20);
  r.set_crc32c(Crc32c(data));
  // The server's layout (server/download_message.cc): the header fields,
  // then field 4 with the data in its own slice.
  std::string head = r.SerializeAsString();
  head += '\x22';
  head += static_cast<char>(0x80 | (5000 & 0x7f));
  head += static_cast<char>(5000 >> 7);
  grpc::Slice slices[2] = {grpc::Slice(head), grpc::Slice(data)};
  grpc::ByteBuffer raw(slices, 2);
  std::vector<grpc::Slice> held;
  ASSERT_TRUE(raw.Dump(&held).ok());
  DownloadChunk chunk;
  ASSERT_TRUE(DecodeDownloadResponse(&raw, &chunk).ok());
  EXPECT_FALSE(chunk.has_info);
  EXPECT_EQ(chunk.offset, 1 << 20);
  ASSERT_EQ(chunk.data.size(), 1u);
  EXPECT_EQ(static_cast<const void*>(chunk.data[0].data()),
            static_cast<const void*>(held[1].begin()));
  EXPECT_EQ(chunk.data[0], data);
}

TEST(DecodeDownloadResponse, AnEmptyMessageHasNoData) {
  grpc::Slice empty("", 0);
  grpc::ByteBuffer raw(&empty, 1);
  DownloadChunk chunk;
  ASSERT_TRUE(DecodeDownloadResponse(&raw, &chunk).ok());
  EXPECT_EQ(chunk.data_size, 0);
  EXPECT_TRUE(chunk.data.empty());
}

TEST(DecodeDownloadResponse, UnknownFieldsAreSkipped) {
  const std::string data = Bytes(100, 3);
  std::string wire = First(data).SerializeAsString();
  wire += std::string("\x30\x05", 2);            // field 6, varint 5
  wire += std::string("\x3a\x02xy", 4);          // field 7, 2 bytes
  grpc::ByteBuffer raw = Sliced(wire, {wire.size() - 3});
  DownloadChunk chunk;
  ASSERT_TRUE(DecodeDownloadResponse(&raw, &chunk).ok());
  EXPECT_EQ(Joined(chunk), data);
}

TEST(DecodeDownloadResponse, AWrongCrcIsDataLoss) {
  v1::DownloadResponse r = First(Bytes(1000, 4));
  r.set_crc32c(r.crc32c() ^ 1);
  const std::string wire = r.SerializeAsString();
  grpc::ByteBuffer raw = Sliced(wire, {wire.size() / 2});
  DownloadChunk chunk;
  const absl::Status s = DecodeDownloadResponse(&raw, &chunk);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("crc32c mismatch in the message at offset 4096"),
            std::string::npos) << s;
}

TEST(DecodeDownloadResponse, TruncatedOrGarbledMessagesAreDataLoss) {
  const std::string wire = First(Bytes(1000, 5)).SerializeAsString();
  for (size_t keep : {wire.size() - 1, wire.size() - 999, size_t{2}, size_t{1}}) {
    const std::string cut = wire.substr(0, keep);
    grpc::ByteBuffer raw = Sliced(cut, {});
    DownloadChunk chunk;
    EXPECT_EQ(DecodeDownloadResponse(&raw, &chunk).code(), absl::StatusCode::kDataLoss) << keep;
  }
  const std::string zero_tag = std::string("\x00\x01", 2);
  grpc::ByteBuffer raw = Sliced(zero_tag, {});
  DownloadChunk chunk;
  EXPECT_EQ(DecodeDownloadResponse(&raw, &chunk).code(), absl::StatusCode::kDataLoss);
}

TEST(WriteChunk, WritesEveryPieceInOrderInBoundedCalls) {
  const std::string data = Bytes(300000, 6);
  const std::string wire = First(data).SerializeAsString();
  grpc::ByteBuffer raw = Sliced(wire, {100, 1000, 70000, 70001, 200000});
  DownloadChunk chunk;
  ASSERT_TRUE(DecodeDownloadResponse(&raw, &chunk).ok());
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string path = std::string(tmp ? tmp : "/tmp") + "/write_chunk_XXXXXX";
  const int fd = mkstemp(&path[0]);
  ASSERT_GE(fd, 0);
  unlink(path.c_str());
  ASSERT_TRUE(WriteChunk(fd, chunk, 65536));
  std::string back(data.size() + 1, '\0');
  EXPECT_EQ(pread(fd, &back[0], back.size(), 0), static_cast<ssize_t>(data.size()));
  back.resize(data.size());
  EXPECT_EQ(back, data);
  close(fd);
}

}  // namespace
}  // namespace ringstore::client
