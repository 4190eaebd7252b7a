// The store quota's arithmetic: bytes of committed files plus bytes
// reserved by uploads in flight, never more than a limit.
//
// An upload reserves its bytes before they reach the disk (all of a
// declared size at its start, or each append's bytes before that append),
// so temp data is always covered by a reservation; the reservation ends
// exactly once, either released (the upload failed or was abandoned, once
// its temp data is gone) or turned into committed bytes at the rename,
// which also releases the bytes of the file it replaced. So while an
// overwrite runs, both the old file and the new temp data count, as both
// are on disk.
//
// Sizes are st_size (apparent bytes), not blocks. The count knows only what
// this process did: files added or removed by hand, or by another server on
// a shared root, make it drift until it is computed again (quota_ledger.h).
//
// Thread-safe; no method blocks other than on the internal mutex.
#ifndef RINGSTORE_STORAGE_QUOTA_H_
#define RINGSTORE_STORAGE_QUOTA_H_

#include <cstdint>

#include "absl/status/status.h"
#include "storage/engine/sync.h"

namespace ringstore::storage {

class Quota {
 public:
  // `limit` 0 means no limit (the counts are still kept); `committed` is
  // the bytes of committed files at start.
  Quota(int64_t limit, int64_t committed);
  Quota(const Quota&) = delete;
  Quota& operator=(const Quota&) = delete;

  // Reserves `n` (>= 0) more bytes for an upload in flight if
  // committed + reserved + n stays within the limit. Otherwise
  // ResourceExhausted, saying how much is used and the limit, and nothing
  // changes.
  absl::Status Reserve(int64_t n);
  // Gives back `n` reserved bytes: an upload that ended without a commit.
  void Release(int64_t n);
  // An upload's `reserved` bytes became a committed file of that size,
  // replacing a committed file of `replaced` bytes (0 if none). Never
  // raises committed + reserved.
  void Commit(int64_t reserved, int64_t replaced);
  // A committed file of `n` bytes was deleted.
  void Remove(int64_t n);

  // 0 = no limit.
  int64_t limit() const { return limit_; }
  int64_t committed() const;
  int64_t reserved() const;
  // committed + reserved.
  int64_t used() const;

 private:
  const int64_t limit_;
  mutable Mutex mu_;
  // Never negative: a file removed by hand and then deleted or replaced
  // here could otherwise take it below zero.
  int64_t committed_ ABSL_GUARDED_BY(mu_);
  int64_t reserved_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_QUOTA_H_
