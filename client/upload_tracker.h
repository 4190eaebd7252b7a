// The CLI's record of a resumable put in progress (DESIGN.md §4, CLI
// additions), so that `ringstore put --resume` finishes what an earlier run
// left unfinished.
//
// One small file per upload under $XDG_CACHE_HOME/ringstore/ (else
// $HOME/.cache/ringstore/), named "upload-<hex SHA-256 of the server, the
// remote path and the local file's size and mtime>": the same put of the
// same, unchanged file finds it again, and a changed file (another size or
// mtime) starts afresh. It holds the session's upload_id on its first line
// (then the key in clear, for a curious human). Written when the session
// starts (to a temp file renamed into place), removed when the put is done
// or fails for good.
#ifndef RINGSTORE_CLIENT_UPLOAD_TRACKER_H_
#define RINGSTORE_CLIENT_UPLOAD_TRACKER_H_

#include <cstdint>
#include <string>

namespace ringstore::client {

class UploadTracker {
 public:
  // `cache_dir` is where trackers live ("" = CacheDir()).
  UploadTracker(const std::string& cache_dir, const std::string& server,
                const std::string& remote, int64_t size, int64_t mtime_ns);

  // $XDG_CACHE_HOME/ringstore, else $HOME/.cache/ringstore ("" if neither
  // variable is set).
  static std::string CacheDir();

  const std::string& path() const { return path_; }
  // The upload_id recorded, or "" when there is no (readable) tracker.
  std::string Read() const;
  // Records `upload_id` (creating the directories, mode 0700). "" on
  // success, else why not.
  std::string Write(const std::string& upload_id) const;
  // Removes the tracker if there is one.
  void Remove() const;

 private:
  std::string dir_;
  std::string path_;
  std::string key_;
};

}  // namespace ringstore::client

#endif  // RINGSTORE_CLIENT_UPLOAD_TRACKER_H_
