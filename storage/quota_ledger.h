// The quota's count across restarts (quota.h keeps it while the store
// runs).
//
// The count is the sum of the sizes of the committed files: every regular
// file under the root except those in `.ringstore/`. Walking a big tree at
// every start is slow (measured: 200k files in 2-3 s with a warm page cache,
// as fast as `du`; a cold disk is far slower), so a clean shutdown leaves
// the count behind, in
// the extended attribute `user.ringstore.bytes` of `<root>/.ringstore`:
//   "v1 clean <bytes>"   written (and fsynced) by the Store's destructor;
//   "v1 dirty"           written (and fsynced) by Open after it read a clean
//                        count, before the store accepts any write.
// So a count found clean is exactly what the last run left, and a run that
// did not end cleanly (a crash, kill -9, a power cut) leaves "dirty". An
// absent or malformed attribute (a first start, a store older than the
// quota) is dirty too. A dirty store is walked once, at Open.
//
// The count can drift from the truth only by changes this process did not
// make: files added, changed or removed by hand (or by another server on a
// shared root) while the count is kept, i.e. from an Open to the next walk.
// Making the store dirty (`setfattr -n user.ringstore.bytes -v "v1 dirty"
// <root>/.ringstore`, or just removing the attribute) while the server is
// stopped forces a walk at the next start.
//
// All functions block (file system calls); Open and ~Store call them.
#ifndef RINGSTORE_STORAGE_QUOTA_LEDGER_H_
#define RINGSTORE_STORAGE_QUOTA_LEDGER_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ringstore::storage {

inline constexpr char kCountAttr[] = "user.ringstore.bytes";

// "v1 clean <bytes>" ↔ bytes; ParseCleanCount is nullopt for anything else
// ("v1 dirty", empty, malformed). Exposed for tests.
std::string EncodeCleanCount(int64_t bytes);
std::optional<int64_t> ParseCleanCount(absl::string_view value);

// The count a clean shutdown left in the attribute of the open directory
// `private_dir`, or nullopt if the store is dirty.
absl::StatusOr<std::optional<int64_t>> ReadCleanCount(int private_dir);
// Writes "v1 dirty" / "v1 clean <bytes>" and fsyncs `private_dir`.
absl::Status MarkDirty(int private_dir);
absl::Status MarkClean(int private_dir, int64_t bytes);

// The walk: the sum of st_size of every regular file below the open
// directory `root` (symlinks are not followed), except below its entry
// `.ringstore`. Files that vanish during the walk are skipped.
absl::StatusOr<int64_t> SumFileBytes(int root);

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_QUOTA_LEDGER_H_
