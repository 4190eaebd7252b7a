#include "third_party/system/crc32c.h"

namespace ringstore {
namespace {

constexpr uint32_t kPolynomial = 0x82F63B78;  // reflected Castagnoli

// a * b modulo the polynomial, in the reflected bit order of the CRC (bit
// 31 is x^0).
uint32_t MultModP(uint32_t a, uint32_t b) {
  uint32_t m = 1u << 31;
  uint32_t p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = b & 1 ? (b >> 1) ^ kPolynomial : b >> 1;
  }
  return p;
}

// x2n[k] = x^(2^k) modulo the polynomial. 67 entries cover every byte
// count below 2^64 (k runs up to 3 + 63); no assumption about the period.
struct PowerTable {
  uint32_t x2n[67];
  PowerTable() {
    uint32_t p = 1u << 30;  // x^1
    for (int k = 0; k < 67; ++k) {
      x2n[k] = p;
      p = MultModP(p, p);
    }
  }
};

// x^(n * 2^k) modulo the polynomial.
uint32_t X2nModP(uint64_t n, int k) {
  static const PowerTable* const kTable = new PowerTable();
  uint32_t p = 1u << 31;  // x^0
  while (n) {
    if (n & 1) p = MultModP(kTable->x2n[k], p);
    n >>= 1;
    k++;
  }
  return p;
}

}  // namespace

uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
  // Appending len_b bytes multiplies the CRC register by x^(8 len_b); the
  // initial and final inversions cancel between the two halves.
  return MultModP(X2nModP(len_b, 3), crc_a) ^ crc_b;
}

}  // namespace ringstore
