// --upload_ttl: a thread of its own that removes resumable upload sessions
// idle for longer than the TTL (Store::ExpireUploads, which blocks and so
// must not run in a reaction or on main's signal loop, whose 5 s wake-up is
// too coarse for a short TTL).
//
// It calls ExpireUploads once as soon as it starts, then every
// Period(ttl) = min(ttl / 4, 60 s) (at least 10 ms), until destroyed. The
// destructor stops it and waits for a call in progress to return, so
// destroy it before the Store. Removals are reported on stderr.
#ifndef RINGSTORE_SERVER_UPLOAD_EXPIRY_H_
#define RINGSTORE_SERVER_UPLOAD_EXPIRY_H_

#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/time/time.h"
#include "storage/store.h"

namespace ringstore::server {

class UploadExpiry {
 public:
  // `store` outlives this; `ttl` > 0.
  UploadExpiry(storage::Store* store, absl::Duration ttl);
  ~UploadExpiry();
  UploadExpiry(const UploadExpiry&) = delete;
  UploadExpiry& operator=(const UploadExpiry&) = delete;

  // How often it looks for expired sessions.
  static absl::Duration Period(absl::Duration ttl);

 private:
  void Run();

  storage::Store* const store_;
  const absl::Duration ttl_;
  // std:: types, as idle_timer.h's, for the timed wait (ThreadSanitizer
  // sees them; sync.h's stand-in has no timed wait).
  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace ringstore::server

#endif  // RINGSTORE_SERVER_UPLOAD_EXPIRY_H_
