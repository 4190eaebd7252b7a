#include "storage/crc32c.h"

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace ringstore::storage {
namespace {

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c("a"), 0xC1D04330u);
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  // RFC 3720 (iSCSI) B.4.
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string inc, dec;
  for (int i = 0; i < 32; ++i) {
    inc.push_back(static_cast<char>(i));
    dec.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(Crc32c(inc), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(dec), 0x113FDB5Cu);
}

TEST(Crc32c, ExtendComposesAtEverySplit) {
  const std::string data = RandomBytes(300, 1);
  const uint32_t whole = Crc32c(data);
  for (size_t i = 0; i <= data.size(); ++i) {
    const absl::string_view v(data);
    EXPECT_EQ(Crc32cExtend(Crc32c(v.substr(0, i)), v.substr(i)), whole) << i;
  }
}

TEST(Crc32c, HardwareAndPortableAgree) {
  const std::string data = RandomBytes(4096 + 16, 2);
  std::mt19937 rng(3);
  for (int i = 0; i < 2000; ++i) {
    const size_t start = rng() % 16;
    const size_t len = rng() % 4097;
    const absl::string_view v = absl::string_view(data).substr(start, len);
    const uint32_t seed = rng();
    ASSERT_EQ(Crc32cExtend(seed, v), internal::Crc32cExtendPortable(seed, v))
        << "start " << start << " len " << len;
  }
}

// Long inputs run as three interleaved streams joined by shift tables (3 x
// 256 and 3 x 8192 byte blocks): every length around those boundaries, and
// a few megabytes, at unaligned starts.
TEST(Crc32c, ThreeStreamLengthsAgreeWithPortable) {
  const std::string data = RandomBytes((3 << 20) + 64, 4);
  std::vector<size_t> lengths = {data.size() - 64, (1 << 20) + 13};
  for (size_t edge : {size_t{3 * 256}, size_t{3 * 8192}, size_t{2 * 3 * 8192}}) {
    for (size_t d = 0; d < 20; ++d) {
      lengths.push_back(edge - 10 + d);
      lengths.push_back(edge + 3 * 256 - 10 + d);
    }
  }
  for (size_t len : lengths) {
    for (size_t start : {size_t{0}, size_t{1}, size_t{7}}) {
      const absl::string_view v = absl::string_view(data).substr(start, len);
      ASSERT_EQ(Crc32cExtend(0x12345678, v), internal::Crc32cExtendPortable(0x12345678, v))
          << "start " << start << " len " << len;
    }
  }
}

}  // namespace
}  // namespace ringstore::storage
