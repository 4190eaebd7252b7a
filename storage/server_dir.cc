#include "storage/server_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/engine/posix_ops.h"
#include "storage/engine/status_util.h"
#include "storage/path.h"

namespace ringstore::storage {
namespace {

constexpr absl::string_view kLockSuffix = ".lock";
// Names tried before Open gives up (each retry means a cleaner removed the
// lock file between our create and our lock: rare).
constexpr int kNameAttempts = 16;

std::string LockName(absl::string_view name) { return absl::StrCat(name, kLockSuffix); }

// F_OFD_SETLK, write, on byte 0 of `fd`: true if taken, false if another
// open file description holds it.
absl::StatusOr<bool> TryLock(int fd) {
  struct flock fl = {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 1;
  if (fcntl(fd, F_OFD_SETLK, &fl) == 0) return true;
  if (errno == EAGAIN || errno == EACCES) return false;
  return ErrnoToStatus(errno, "lock a server's lock file");
}

// Whether `fd`'s file still has a name (a cleaner may have unlinked it).
absl::StatusOr<bool> Linked(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoToStatus(errno, "fstat a server's lock file");
  return st.st_nlink > 0;
}

// Removes `name` in directory `dir_fd` and, if it is a directory,
// everything below it. ENOENT (removed meanwhile) is success.
absl::Status RemoveTree(int dir_fd, const std::string& name) {
  if (unlinkat(dir_fd, name.c_str(), 0) == 0 || errno == ENOENT) return absl::OkStatus();
  if (errno != EISDIR && errno != EPERM) {
    return ErrnoToStatus(errno, absl::StrCat("remove ", name));
  }
  const int fd = openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return errno == ENOENT ? absl::OkStatus() : ErrnoToStatus(errno, absl::StrCat("open ", name));
  }
  DIR* d = fdopendir(fd);
  if (d == nullptr) {
    close(fd);
    return ErrnoToStatus(errno, absl::StrCat("read ", name));
  }
  std::vector<std::string> entries;
  while (dirent* e = readdir(d)) {
    const absl::string_view n = e->d_name;
    if (n != "." && n != "..") entries.emplace_back(n);
  }
  absl::Status status;
  for (const std::string& e : entries) {
    absl::Status s = RemoveTree(dirfd(d), e);
    if (status.ok()) status = s;
  }
  closedir(d);
  if (unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT && status.ok()) {
    status = ErrnoToStatus(errno, absl::StrCat("remove directory ", name));
  }
  return status;
}

// Removes server `name`'s temp data if it no longer runs: true if it did.
absl::StatusOr<bool> RemoveIfDead(int tmp_fd, const std::string& name) {
  const std::string lock_name = LockName(name);
  ScopedFd lock(openat(tmp_fd, lock_name.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!lock.valid()) return ErrnoToStatus(errno, absl::StrCat("open ", lock_name));
  RS_ASSIGN_OR_RETURN(const bool taken, TryLock(lock.get()));
  if (!taken) return false;  // alive (or another cleaner is at it)
  RS_ASSIGN_OR_RETURN(const bool linked, Linked(lock.get()));
  if (!linked) return false;  // another cleaner has just finished
  RS_RETURN_IF_ERROR(RemoveTree(tmp_fd, name));
  if (unlinkat(tmp_fd, lock_name.c_str(), 0) != 0 && errno != ENOENT) {
    return ErrnoToStatus(errno, absl::StrCat("remove ", lock_name));
  }
  return true;  // the lock goes with `lock`
}

}  // namespace

absl::StatusOr<int> RemoveDeadServers(int tmp_fd) {
  const int fd = dup(tmp_fd);
  if (fd < 0) return ErrnoToStatus(errno, "dup the temp directory");
  DIR* d = fdopendir(fd);
  if (d == nullptr) {
    close(fd);
    return ErrnoToStatus(errno, "read the temp directory");
  }
  rewinddir(d);
  std::set<std::string> servers;
  std::vector<std::string> plain;
  while (dirent* e = readdir(d)) {
    const absl::string_view n = e->d_name;
    if (n == "." || n == "..") continue;
    unsigned char type = e->d_type;
    if (type == DT_UNKNOWN) {
      struct stat st;
      if (fstatat(tmp_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
    }
    if (type == DT_DIR) {
      servers.emplace(n);
    } else if (type == DT_REG && absl::EndsWith(n, kLockSuffix)) {
      servers.emplace(n.substr(0, n.size() - kLockSuffix.size()));
    } else {
      plain.emplace_back(n);  // an upload's temp file in the old layout
    }
  }
  closedir(d);
  for (const std::string& p : plain) (void)unlinkat(tmp_fd, p.c_str(), 0);
  // Best effort, as before several servers: what cannot be removed now
  // (a file of another user, a transient error) is left for the next Open.
  int removed = 0;
  for (const std::string& name : servers) {
    if (name.empty()) continue;
    absl::StatusOr<bool> dead = RemoveIfDead(tmp_fd, name);
    removed += dead.ok() && *dead ? 1 : 0;
  }
  return removed;
}

absl::StatusOr<std::unique_ptr<ServerDir>> ServerDir::Open(
    int root_fd, absl::FunctionRef<std::string()> random_name) {
  const std::string tmp_path = absl::StrCat(kPrivateDir, "/tmp");
  absl::StatusOr<int> tmp_fd =
      PosixFiles(root_fd, "").OpenBeneath(tmp_path, O_RDONLY | O_DIRECTORY);
  if (!tmp_fd.ok()) return tmp_fd.status();
  ScopedFd tmp(*tmp_fd);
  if (absl::StatusOr<int> removed = RemoveDeadServers(tmp.get()); !removed.ok()) {
    return removed.status();
  }
  for (int attempt = 0; attempt < kNameAttempts; ++attempt) {
    std::string name = random_name();
    const std::string lock_name = LockName(name);
    ScopedFd lock(openat(tmp.get(), lock_name.c_str(),
                         O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!lock.valid()) {
      if (errno == EEXIST) continue;
      return ErrnoToStatus(errno, absl::StrCat("create ", tmp_path, "/", lock_name));
    }
    RS_ASSIGN_OR_RETURN(const bool taken, TryLock(lock.get()));
    if (!taken) continue;  // a cleaner holds it and will remove it
    RS_ASSIGN_OR_RETURN(const bool linked, Linked(lock.get()));
    if (!linked) continue;  // a cleaner took it and removed it before we locked
    if (mkdirat(tmp.get(), name.c_str(), 0755) != 0) {
      const absl::Status s =
          ErrnoToStatus(errno, absl::StrCat("create ", tmp_path, "/", name));
      (void)unlinkat(tmp.get(), lock_name.c_str(), 0);
      return s;
    }
    return std::unique_ptr<ServerDir>(
        new ServerDir(std::move(tmp), std::move(lock), std::move(name)));
  }
  return absl::UnavailableError(absl::StrCat("could not register a server in ", tmp_path,
                                             " after ", kNameAttempts, " names"));
}

ServerDir::ServerDir(ScopedFd tmp, ScopedFd lock, std::string name)
    : tmp_(std::move(tmp)),
      lock_(std::move(lock)),
      name_(std::move(name)),
      path_(absl::StrCat(kPrivateDir, "/tmp/", name_)) {}

ServerDir::~ServerDir() {
  // Still locked: no cleaner touches either meanwhile.
  (void)RemoveTree(tmp_.get(), name_);
  (void)unlinkat(tmp_.get(), LockName(name_).c_str(), 0);
  // lock_ closes after this body: the lock goes with it.
}

}  // namespace ringstore::storage
