#include "server/upload_expiry.h"

#include <algorithm>
#include <iostream>

namespace ringstore::server {

UploadExpiry::UploadExpiry(storage::Store* store, absl::Duration ttl)
    : store_(store), ttl_(ttl), thread_([this] { Run(); }) {}

UploadExpiry::~UploadExpiry() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

absl::Duration UploadExpiry::Period(absl::Duration ttl) {
  return std::max(std::min(ttl / 4, absl::Seconds(60)), absl::Milliseconds(10));
}

void UploadExpiry::Run() {
  const absl::Duration period = Period(ttl_);
  while (true) {
    if (const int removed = store_->ExpireUploads(ttl_); removed > 0) {
      std::cerr << "ringstore-server: removed " << removed
                << " upload sessions idle for more than " << absl::FormatDuration(ttl_)
                << " (--upload_ttl)\n";
    }
    absl::MutexLock lock(&mu_);
    const bool* stop = &stop_;
    if (mu_.AwaitWithTimeout(absl::Condition(stop), period)) return;
  }
}

}  // namespace ringstore::server
