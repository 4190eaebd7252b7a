#include "third_party/system/crc32c.h"

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace ringstore {
namespace {

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// The definition, one bit at a time: what ISA-L must agree with.
uint32_t ReferenceExtend(uint32_t crc, absl::string_view data) {
  uint32_t c = ~crc;
  for (unsigned char b : data) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ ((c & 1) ? 0x82F63B78u : 0);
  }
  return ~c;
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
  EXPECT_EQ(Crc32cExtend(Crc32c("1234"), "56789"), 0xE3069283u);
}

// ISA-L switches kernels by length (folding for long inputs, byte loops for
// the tail): short and long lengths at unaligned starts, with a seed.
TEST(Crc32c, AgreesWithTheBitwiseDefinition) {
  const std::string data = RandomBytes((1 << 20) + 64, 2);
  std::mt19937 rng(3);
  std::vector<size_t> lengths = {(1 << 20) + 13, 1 << 20, 65536, 4096, 4095, 4097};
  for (int i = 0; i < 500; ++i) lengths.push_back(rng() % 4097);
  for (int i = 0; i < 20; ++i) lengths.push_back(rng() % (1 << 20));
  for (size_t len : lengths) {
    const size_t start = rng() % 16;
    const absl::string_view v = absl::string_view(data).substr(start, len);
    const uint32_t seed = rng();
    ASSERT_EQ(Crc32cExtend(seed, v), ReferenceExtend(seed, v))
        << "start " << start << " len " << len;
  }
}

TEST(Crc32c, CombineEqualsTheCrcOfTheConcatenation) {
  const std::string data = RandomBytes(3 << 20, 4);
  const absl::string_view v(data);
  std::mt19937 rng(5);
  std::vector<size_t> splits = {0, 1, 7, 8, 4096, 1 << 20, (2 << 20) + 3, data.size()};
  for (int i = 0; i < 50; ++i) splits.push_back(rng() % (data.size() + 1));
  for (size_t split : splits) {
    const absl::string_view a = v.substr(0, split), b = v.substr(split);
    ASSERT_EQ(Crc32cCombine(Crc32c(a), Crc32c(b), b.size()), Crc32c(v)) << split;
  }
  // A stream of equal messages, as the client checks a whole file.
  uint32_t running = 0;
  for (size_t off = 0; off < data.size(); off += 1 << 20) {
    const absl::string_view m = v.substr(off, 1 << 20);
    running = Crc32cCombine(running, Crc32c(m), m.size());
  }
  EXPECT_EQ(running, Crc32c(v));
}

// Lengths past 2^32 bytes use table entries no data above reaches:
// shifting by 2^32 bytes must equal appending 2^31 twice, and 2^31
// must equal 2^30 twice (each power read from a different entry).
TEST(Crc32c, CombineHandlesHugeLengths) {
  const uint32_t a = Crc32c("prefix");
  for (int bits : {30, 31, 32, 40, 60}) {
    const uint64_t half = uint64_t{1} << (bits - 1);
    EXPECT_EQ(Crc32cCombine(a, 0, uint64_t{1} << bits),
              Crc32cCombine(Crc32cCombine(a, 0, half), 0, half))
        << bits;
  }
}

}  // namespace
}  // namespace ringstore
