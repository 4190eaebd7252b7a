#include "storage/quota.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace ringstore::storage {

Quota::Quota(int64_t limit, int64_t committed)
    : limit_(limit), committed_(std::max<int64_t>(0, committed)) {}

absl::Status Quota::Reserve(int64_t n) {
  if (n == 0) return absl::OkStatus();
  MutexLock lock(&mu_);
  const int64_t used = committed_ + reserved_;
  if (limit_ > 0 && n > limit_ - used) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "store quota exceeded: ", used, " of ", limit_,
        " bytes used (committed files and uploads in flight), the upload needs ", n,
        " more"));
  }
  reserved_ += n;
  return absl::OkStatus();
}

void Quota::Release(int64_t n) {
  MutexLock lock(&mu_);
  reserved_ -= n;
}

void Quota::Commit(int64_t reserved, int64_t replaced) {
  MutexLock lock(&mu_);
  reserved_ -= reserved;
  committed_ = std::max<int64_t>(0, committed_ + reserved - replaced);
}

void Quota::Remove(int64_t n) {
  MutexLock lock(&mu_);
  committed_ = std::max<int64_t>(0, committed_ - n);
}

int64_t Quota::committed() const {
  MutexLock lock(&mu_);
  return committed_;
}

int64_t Quota::reserved() const {
  MutexLock lock(&mu_);
  return reserved_;
}

int64_t Quota::used() const {
  MutexLock lock(&mu_);
  return committed_ + reserved_;
}

}  // namespace ringstore::storage
