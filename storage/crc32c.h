// CRC32C (Castagnoli, the checksum of iSCSI, ext4, GCS and gRPC's own
// crc32c field convention). Uses the SSE4.2 crc32 instruction when the CPU
// has it and a slicing-by-8 table otherwise; both give identical results.
#ifndef RINGSTORE_STORAGE_CRC32C_H_
#define RINGSTORE_STORAGE_CRC32C_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace ringstore::storage {

// CRC32C of `data` appended to data whose CRC32C was `crc` (0 for none), so
// Crc32cExtend(Crc32cExtend(0, a), b) == Crc32c(a + b).
uint32_t Crc32cExtend(uint32_t crc, absl::string_view data);

inline uint32_t Crc32c(absl::string_view data) { return Crc32cExtend(0, data); }

namespace internal {
// The portable implementation, exposed so tests can compare both paths.
uint32_t Crc32cExtendPortable(uint32_t crc, absl::string_view data);
}  // namespace internal

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_CRC32C_H_
