// CRC32C (Castagnoli: the checksum of iSCSI, ext4, GCS and this API's
// crc32c fields) for every layer of ringstore: storage/, server/, client/
// and bench/ all call these, and these call ISA-L's crc32_iscsi (Debian's
// libisal, mapped as @system//:isal), which picks the fastest kernel the CPU
// has at run time (PCLMULQDQ/VPCLMULQDQ folding, else the crc32
// instruction, else a table). DESIGN.md §1: one well-kept library, not a
// copy per layer. It lives here, beside the library's mapping, because it
// must sit below both storage/ and client/, which may not depend on each
// other.
//
// Conventions: the usual CRC32C (initial value and final XOR 0xFFFFFFFF),
// so Crc32c("123456789") == 0xE3069283. ISA-L's crc32_iscsi does neither
// inversion itself; the wrappers do both, so callers never see it.
// Thread-safe; no allocation; no blocking.
#ifndef RINGSTORE_THIRD_PARTY_SYSTEM_CRC32C_H_
#define RINGSTORE_THIRD_PARTY_SYSTEM_CRC32C_H_

#include <climits>
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "isa-l/crc.h"

namespace ringstore {

// CRC32C of `data` appended to data whose CRC32C was `crc` (0 for none), so
// Crc32cExtend(Crc32c(a), b) == Crc32c(a + b).
inline uint32_t Crc32cExtend(uint32_t crc, absl::string_view data) {
  // crc32_iscsi takes an int length: feed larger inputs in pieces.
  constexpr size_t kMaxPiece = size_t{1} << 30;
  auto* p = reinterpret_cast<unsigned char*>(const_cast<char*>(data.data()));
  size_t n = data.size();
  uint32_t c = ~crc;
  do {
    const size_t piece = n < kMaxPiece ? n : kMaxPiece;
    c = crc32_iscsi(p, static_cast<int>(piece), c);
    p += piece;
    n -= piece;
  } while (n > 0);
  return ~c;
}

inline uint32_t Crc32c(absl::string_view data) { return Crc32cExtend(0, data); }

// The CRC32C of a + b from crc_a = Crc32c(a), crc_b = Crc32c(b) and
// len_b = b.size(), without touching the data: a few hundred instructions
// (zlib's crc32_combine method), so a caller that needs both a message's
// CRC and the running CRC of the whole stream computes the CRC once.
uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

}  // namespace ringstore

#endif  // RINGSTORE_THIRD_PARTY_SYSTEM_CRC32C_H_
