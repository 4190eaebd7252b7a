#include "storage/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace ringstore::storage {
namespace {

constexpr uint32_t kPolynomial = 0x82F63B78;  // reflected Castagnoli

struct Tables {
  std::array<std::array<uint32_t, 256>, 8> t;
  constexpr Tables() : t() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ ((c & 1) ? kPolynomial : 0);
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i) {
      for (int k = 1; k < 8; ++k) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFF];
    }
  }
};
constexpr Tables kTables;

#if defined(__x86_64__)
// The crc32 instruction has a latency of three cycles and a throughput of
// one a cycle, so one dependent stream uses a third of it. Long inputs run
// as three streams over three adjacent blocks, whose CRCs are then joined:
// crc(A B) = Shift(crc(A), |B|) ^ crc(B), where Shift appends |B| zero bytes
// to a CRC, a linear map over GF(2) applied here by four table lookups
// (the method of Mark Adler's crc32c.c, which zlib's crc32_combine uses
// too).
constexpr size_t kLongBlock = 8192;
constexpr size_t kShortBlock = 256;

// A 32x32 matrix over GF(2) times a vector: the XOR of the columns whose
// bit is set.
uint32_t Gf2Times(const uint32_t* matrix, uint32_t vector) {
  uint32_t sum = 0;
  for (; vector != 0; vector >>= 1, ++matrix) {
    if (vector & 1) sum ^= *matrix;
  }
  return sum;
}

void Gf2Square(uint32_t* square, const uint32_t* matrix) {
  for (int n = 0; n < 32; ++n) square[n] = Gf2Times(matrix, matrix[n]);
}

// Tables that append `len` zero bytes (a power of two) to a CRC.
struct ShiftTables {
  uint32_t t[4][256];
  explicit ShiftTables(size_t len) {
    // The operator for one zero bit, then squared: two bits, four, ...
    uint32_t op[32], square[32];
    op[0] = kPolynomial;
    for (int n = 1; n < 32; ++n) op[n] = 1u << (n - 1);
    for (size_t bits = 1; bits < len * 8; bits <<= 1) {
      Gf2Square(square, op);
      std::memcpy(op, square, sizeof(op));
    }
    for (uint32_t n = 0; n < 256; ++n) {
      for (int b = 0; b < 4; ++b) t[b][n] = Gf2Times(op, n << (8 * b));
    }
  }
  uint32_t Shift(uint32_t crc) const {
    return t[0][crc & 0xFF] ^ t[1][(crc >> 8) & 0xFF] ^ t[2][(crc >> 16) & 0xFF] ^
           t[3][crc >> 24];
  }
};

// Runs three streams over [p, p + 3 * block) and joins them into `crc`.
__attribute__((target("sse4.2"))) inline uint64_t ThreeWay(uint64_t crc, const char* p,
                                                           size_t block,
                                                           const ShiftTables& shift) {
  uint64_t c1 = 0, c2 = 0;
  for (const char* end = p + block; p < end; p += 8) {
    uint64_t w0, w1, w2;
    std::memcpy(&w0, p, 8);
    std::memcpy(&w1, p + block, 8);
    std::memcpy(&w2, p + 2 * block, 8);
    crc = _mm_crc32_u64(crc, w0);
    c1 = _mm_crc32_u64(c1, w1);
    c2 = _mm_crc32_u64(c2, w2);
  }
  crc = shift.Shift(static_cast<uint32_t>(crc)) ^ static_cast<uint32_t>(c1);
  return shift.Shift(static_cast<uint32_t>(crc)) ^ static_cast<uint32_t>(c2);
}

__attribute__((target("sse4.2"))) uint32_t ExtendSse42(uint32_t crc,
                                                       const char* p, size_t n) {
  static const ShiftTables* const kLong = new ShiftTables(kLongBlock);
  static const ShiftTables* const kShort = new ShiftTables(kShortBlock);
  uint64_t c = ~crc;
  for (; n >= 3 * kLongBlock; p += 3 * kLongBlock, n -= 3 * kLongBlock) {
    c = ThreeWay(c, p, kLongBlock, *kLong);
  }
  for (; n >= 3 * kShortBlock; p += 3 * kShortBlock, n -= 3 * kShortBlock) {
    c = ThreeWay(c, p, kShortBlock, *kShort);
  }
  while (n >= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    c = _mm_crc32_u64(c, word);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n-- > 0) c32 = _mm_crc32_u8(c32, static_cast<uint8_t>(*p++));
  return ~c32;
}

bool HasSse42() {
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
}
#endif

}  // namespace

namespace internal {

uint32_t Crc32cExtendPortable(uint32_t crc, absl::string_view data) {
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  size_t n = data.size();
  uint32_t c = ~crc;
  const auto& t = kTables.t;
  while (n >= 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    lo ^= c;  // little-endian: x86_64 and aarch64
    c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^
        t[4][lo >> 24] ^ t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^
        t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xFF];
  return ~c;
}

}  // namespace internal

uint32_t Crc32cExtend(uint32_t crc, absl::string_view data) {
#if defined(__x86_64__)
  if (HasSse42()) return ExtendSse42(crc, data.data(), data.size());
#endif
  return internal::Crc32cExtendPortable(crc, data);
}

}  // namespace ringstore::storage
