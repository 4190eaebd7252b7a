// This server's temp directory on a root that several servers may share,
// and the removal of the temp data of servers that no longer run.
//
// Layout (store.h): <root>/.ringstore/tmp/<name>.lock, an empty file that
// server <name> holds an OFD write lock on (byte 0) for as long as it runs,
// and <root>/.ringstore/tmp/<name>/, the temp files of its plain uploads.
// The kernel drops the lock when the server's last descriptor of the file
// closes, also when it is killed (shared_locks.h has the facts about OFD
// locks and shared file systems). So "a lock we can take" means "a server
// that no longer runs", decided by the file system, not by a clock or a
// process id (which mean nothing on another machine).
//
// Start-up removes, for every name it finds in tmp/ (as <name>.lock or as
// <name>/): opens <name>.lock, creating it if missing, takes its lock
// without waiting, and if it got it and the file is still linked (not
// removed by another cleaner meanwhile), removes <name>/ with everything in
// it and then <name>.lock. A live server's lock cannot be taken, so its
// directory is never touched. Plain files directly in tmp/ (the layout
// before several servers: every temp file there) are removed as before.
//
// Joining: a new server picks 128 random bits as its name, creates
// <name>.lock (O_EXCL), locks it and checks it is still linked (a cleaner
// may have taken the lock and removed the file between the create and the
// lock: then it picks again), and only then creates <name>/. The lock file
// comes first and goes last, so a directory is never without it while its
// server lives.
//
// Blocking (file system calls): Open and the destructor only.
#ifndef RINGSTORE_STORAGE_SERVER_DIR_H_
#define RINGSTORE_STORAGE_SERVER_DIR_H_

#include <memory>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "storage/engine/scoped_fd.h"

namespace ringstore::storage {

class ServerDir {
 public:
  // Opens <root>/.ringstore/tmp (which must exist), removes the temp data
  // of servers no longer running, then registers this one as above.
  // `root_fd` is borrowed; `random_name` gives a fresh random name (at
  // least 128 bits, in characters a file name may hold) each call.
  static absl::StatusOr<std::unique_ptr<ServerDir>> Open(
      int root_fd, absl::FunctionRef<std::string()> random_name);
  // Removes this server's directory (with anything left in it), then its
  // lock file, then releases the lock.
  ~ServerDir();
  ServerDir(const ServerDir&) = delete;
  ServerDir& operator=(const ServerDir&) = delete;

  const std::string& name() const { return name_; }
  // The directory, relative to the root: ".ringstore/tmp/<name>".
  const std::string& path() const { return path_; }

 private:
  ServerDir(ScopedFd tmp, ScopedFd lock, std::string name);

  const ScopedFd tmp_;
  const ScopedFd lock_;
  const std::string name_;
  const std::string path_;
};

// The cleaning half of ServerDir::Open, on the open tmp directory `tmp_fd`:
// removes the temp data of every server whose lock it can take, and plain
// files, as far as it can (an entry it fails to remove is left for the next
// Open). Answers how many servers' data it removed; an error only if the
// directory cannot be read. Exposed for tests.
absl::StatusOr<int> RemoveDeadServers(int tmp_fd);

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_SERVER_DIR_H_
