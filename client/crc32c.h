// CRC32C (Castagnoli) for the client, which knows only the proto and so
// carries its own small table-driven implementation.
#ifndef RINGSTORE_CLIENT_CRC32C_H_
#define RINGSTORE_CLIENT_CRC32C_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace ringstore::client {

// CRC32C of `data` appended to data whose CRC32C was `crc` (0 for none).
uint32_t Crc32cExtend(uint32_t crc, absl::string_view data);

inline uint32_t Crc32c(absl::string_view data) { return Crc32cExtend(0, data); }

}  // namespace ringstore::client

#endif  // RINGSTORE_CLIENT_CRC32C_H_
