// The rules a client-supplied path must satisfy before it reaches the disk.
//
// A valid path is relative, '/'-separated UTF-8 of at most 1024 bytes, whose
// components are each 1..255 bytes, never "." or "..", and never contain NUL
// or other ASCII control characters. The first component may not be
// ".ringstore" (the store's private area). Backslashes are allowed (they are
// ordinary bytes on Linux). These rules are policy only: confinement to the
// root is enforced again by the kernel (openat2 RESOLVE_BENEATH) in engines.
#ifndef RINGSTORE_STORAGE_PATH_H_
#define RINGSTORE_STORAGE_PATH_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ringstore::storage {

inline constexpr size_t kMaxPathBytes = 1024;
inline constexpr size_t kMaxComponentBytes = 255;
// Directory under the root that holds temp files and upload sessions.
inline constexpr absl::string_view kPrivateDir = ".ringstore";

// OK if `path` names a file clients may read or write; otherwise
// InvalidArgument with a message saying which rule failed.
absl::Status ValidatePath(absl::string_view path);

// OK if `prefix` may be used to list: empty, or a string that is a valid path
// once a trailing '/' is removed, or a valid path followed by a partial
// component (e.g. "dir/fi"). Same characters rules as ValidatePath.
absl::Status ValidatePrefix(absl::string_view prefix);

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_PATH_H_
