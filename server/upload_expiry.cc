#include "server/upload_expiry.h"

#include <algorithm>
#include <iostream>

namespace ringstore::server {

UploadExpiry::UploadExpiry(storage::Store* store, absl::Duration ttl)
    : store_(store), ttl_(ttl), thread_([this] { Run(); }) {}

UploadExpiry::~UploadExpiry() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
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
    std::unique_lock<std::mutex> lock(mu_);
    if (stop_cv_.wait_for(lock, absl::ToChronoNanoseconds(period), [this] { return stop_; })) {
      return;
    }
  }
}

}  // namespace ringstore::server
