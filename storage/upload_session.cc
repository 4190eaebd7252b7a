#include "storage/upload_session.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "storage/engine/posix_ops.h"
#include "storage/engine/status_util.h"
#include "storage/path.h"

namespace ringstore::storage {

const char kUploadsDir[] = ".ringstore/uploads";

namespace {

constexpr size_t kIdHexDigits = 32;
constexpr absl::string_view kDataSuffix = ".data";
// ext4 keeps an attribute value within one block: records stay far below.
constexpr size_t kMaxAttrBytes = 4096;

// Closes `fd` when it goes out of scope unless released.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

PosixFiles Files(int root_fd) { return PosixFiles(root_fd, EngineOptions().metadata_attr); }

const char* StateName(SessionState s) {
  switch (s) {
    case SessionState::kOpen:
      return "open";
    case SessionState::kCommitting:
      return "committing";
    case SessionState::kComplete:
      return "complete";
  }
  return "?";
}

// A cursor over space-separated fields.
class Fields {
 public:
  explicit Fields(absl::string_view text) : rest_(text) {}
  bool done() const { return rest_.empty(); }

  // The next field up to a space (or the end); false if there is none.
  bool Word(absl::string_view* out) {
    if (!first_) {
      if (rest_.empty() || rest_[0] != ' ') return false;
      rest_.remove_prefix(1);
    }
    first_ = false;
    const size_t space = std::min(rest_.find(' '), rest_.size());
    if (space == 0) return false;
    *out = rest_.substr(0, space);
    rest_.remove_prefix(space);
    return true;
  }
  // "<count>:<bytes>", the bytes being anything.
  bool Counted(std::string* out) {
    if (!first_) {
      if (rest_.empty() || rest_[0] != ' ') return false;
      rest_.remove_prefix(1);
    }
    first_ = false;
    const size_t colon = rest_.find(':');
    uint64_t n;
    if (colon == absl::string_view::npos || colon == 0 || colon > 5 ||
        !std::all_of(rest_.begin(), rest_.begin() + colon,
                     [](char c) { return c >= '0' && c <= '9'; }) ||
        !absl::SimpleAtoi(rest_.substr(0, colon), &n) || rest_.size() - colon - 1 < n) {
      return false;
    }
    const absl::string_view bytes = rest_.substr(colon + 1, n);
    out->assign(bytes.data(), bytes.size());
    rest_.remove_prefix(colon + 1 + n);
    return true;
  }
  template <typename Int>
  bool Number(Int* out) {
    absl::string_view w;
    return Word(&w) && Strict(w, out);
  }
  // "-" (nullopt) or a number.
  template <typename Int>
  bool Optional(std::optional<Int>* out) {
    absl::string_view w;
    if (!Word(&w)) return false;
    if (w == "-") {
      out->reset();
      return true;
    }
    Int n;
    if (!Strict(w, &n)) return false;
    *out = n;
    return true;
  }

  // A decimal number as EncodeSessionRecord writes it: an optional '-',
  // digits, no leading zero, nothing else (SimpleAtoi alone would take
  // '+' and surrounding white space).
  template <typename Int>
  static bool Strict(absl::string_view w, Int* out) {
    absl::string_view digits = w;
    absl::ConsumePrefix(&digits, "-");
    if (digits.empty() || (digits[0] == '0' && digits.size() > 1) ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return false;
    }
    return absl::SimpleAtoi(w, out);
  }

 private:
  absl::string_view rest_;
  bool first_ = true;
};

std::string Counted(absl::string_view s) { return absl::StrCat(s.size(), ":", s); }

template <typename Int>
std::string OptionalField(const std::optional<Int>& v) {
  return v ? absl::StrCat(*v) : "-";
}

struct Stamp {
  bool exists = false;
  absl::Time latest;  // the later of mtime and ctime
  absl::Time mtime;
};

// lstat of `name` in the uploads directory `dir`.
Stamp StatIn(int dir, const std::string& name) {
  struct stat st;
  Stamp out;
  if (fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return out;
  out.exists = true;
  out.mtime = absl::TimeFromTimespec(st.st_mtim);
  out.latest = std::max(out.mtime, absl::TimeFromTimespec(st.st_ctim));
  return out;
}

// Takes the whole-file OFD write lock of `fd` without waiting.
absl::Status TryLock(int fd, absl::string_view id) {
  struct flock lock = {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;  // l_start = l_len = 0: the whole file
  if (fcntl(fd, F_OFD_SETLK, &lock) == 0) return absl::OkStatus();
  if (errno == EAGAIN || errno == EACCES) {
    return absl::AbortedError(absl::StrCat("another stream is writing upload ", id));
  }
  return ErrnoToStatus(errno, absl::StrCat("lock upload ", id));
}

// Reads and checks the record open as `fd`.
absl::StatusOr<SessionRecord> ReadRecord(int fd, absl::string_view id, absl::string_view owner) {
  absl::StatusOr<std::string> text = GetFdAttr(fd, kSessionAttr);
  if (!text.ok()) {
    return text.status().code() == absl::StatusCode::kNotFound ? NoSuchUpload(id)
                                                               : text.status();
  }
  std::optional<SessionRecord> record = ParseSessionRecord(*text);
  if (!record || record->owner != owner) return NoSuchUpload(id);
  return *std::move(record);
}

// Opens the record of `id` with `flags`; NotFound (NoSuchUpload) if absent.
absl::StatusOr<int> OpenRecord(int root_fd, absl::string_view id, int flags) {
  if (absl::Status s = ValidateUploadId(id); !s.ok()) return s;
  absl::StatusOr<int> fd = Files(root_fd).OpenBeneath(SessionRecordPath(id), flags);
  if (fd.status().code() == absl::StatusCode::kNotFound) return NoSuchUpload(id);
  return fd;
}

// Unlinks the record, then the data, of the session named `id` in `dir`,
// then fsyncs `dir`.
void RemoveSession(int dir, absl::string_view id) {
  const std::string record(id);
  (void)unlinkat(dir, record.c_str(), 0);
  (void)unlinkat(dir, absl::StrCat(record, kDataSuffix).c_str(), 0);
  (void)fsync(dir);
}

}  // namespace

std::string RandomId() {
  unsigned char bytes[kIdHexDigits / 2];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    const ssize_t n = getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

absl::Status ValidateUploadId(absl::string_view id) {
  const bool ok = id.size() == kIdHexDigits &&
                  std::all_of(id.begin(), id.end(), [](char c) {
                    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                  });
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError("an upload id is 32 lowercase hex digits");
}

std::string SessionRecordPath(absl::string_view id) { return absl::StrCat(kUploadsDir, "/", id); }

std::string SessionDataPath(absl::string_view id) {
  return absl::StrCat(kUploadsDir, "/", id, kDataSuffix);
}

absl::Status NoSuchUpload(absl::string_view id) {
  return absl::NotFoundError(absl::StrCat("no upload ", id));
}

std::string EncodeSessionRecord(const SessionRecord& r) {
  std::string out = absl::StrCat("v1 ", StateName(r.state), " ", Counted(r.owner), " ",
                                 Counted(r.spec.path), " ", r.spec.size, " ",
                                 OptionalField(r.spec.if_generation_match), " ",
                                 OptionalField(r.spec.crc32c));
  if (r.state != SessionState::kOpen) {
    absl::StrAppend(&out, " ", r.file.generation, " ", r.file.size, " ", r.file.crc32c, " ",
                    absl::ToUnixNanos(r.file.modified));
  }
  return out;
}

std::optional<SessionRecord> ParseSessionRecord(absl::string_view text) {
  Fields f(text);
  SessionRecord r;
  absl::string_view version, state;
  if (!f.Word(&version) || version != "v1" || !f.Word(&state)) return std::nullopt;
  if (state == "open") {
    r.state = SessionState::kOpen;
  } else if (state == "committing") {
    r.state = SessionState::kCommitting;
  } else if (state == "complete") {
    r.state = SessionState::kComplete;
  } else {
    return std::nullopt;
  }
  if (!f.Counted(&r.owner) || r.owner.size() > kMaxOwnerBytes || !f.Counted(&r.spec.path) ||
      !ValidatePath(r.spec.path).ok() || !f.Number(&r.spec.size) || r.spec.size < 0 ||
      !f.Optional(&r.spec.if_generation_match) ||
      (r.spec.if_generation_match && *r.spec.if_generation_match < 0) ||
      !f.Optional(&r.spec.crc32c)) {
    return std::nullopt;
  }
  if (r.state != SessionState::kOpen) {
    int64_t nanos;
    if (!f.Number(&r.file.generation) || r.file.generation <= 0 || !f.Number(&r.file.size) ||
        r.file.size < 0 || !f.Number(&r.file.crc32c) || !f.Number(&nanos)) {
      return std::nullopt;
    }
    r.file.path = r.spec.path;
    r.file.modified = absl::FromUnixNanos(nanos);
  }
  if (!f.done()) return std::nullopt;
  return r;
}

std::string EncodePersisted(const PersistedState& p) {
  return absl::StrCat(p.size, " ", p.crc32c);
}

std::optional<PersistedState> ParsePersisted(absl::string_view text) {
  Fields f(text);
  PersistedState p;
  if (!f.Number(&p.size) || p.size < 0 || !f.Number(&p.crc32c) || !f.done()) {
    return std::nullopt;
  }
  return p;
}

absl::StatusOr<std::string> GetFdAttr(int fd, const char* name) {
  std::string value(kMaxAttrBytes, '\0');
  const ssize_t n = fgetxattr(fd, name, value.data(), value.size());
  if (n < 0) {
    if (errno == ENODATA) return absl::NotFoundError(absl::StrCat("no attribute ", name));
    return ErrnoToStatus(errno, absl::StrCat("fgetxattr ", name));
  }
  value.resize(static_cast<size_t>(n));
  return value;
}

absl::Status SetFdAttr(int fd, const char* name, absl::string_view value) {
  if (fsetxattr(fd, name, value.data(), value.size(), 0) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("fsetxattr ", name));
  }
  return absl::OkStatus();
}

absl::Status RemoveFdAttr(int fd, const char* name) {
  if (fremovexattr(fd, name) != 0 && errno != ENODATA) {
    return ErrnoToStatus(errno, absl::StrCat("fremovexattr ", name));
  }
  return absl::OkStatus();
}

absl::StatusOr<LockedSession> LockSession(int root_fd, absl::string_view id,
                                          absl::string_view owner) {
  // O_RDWR: an OFD write lock needs a descriptor open for writing.
  absl::StatusOr<int> opened = OpenRecord(root_fd, id, O_RDWR);
  if (!opened.ok()) return opened.status();
  Fd fd(*opened);
  if (absl::Status s = TryLock(fd.get(), id); !s.ok()) return s;
  // The record may have been removed (cancel, expiry, a failed commit)
  // between our open and our lock, by the stream that held it then.
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoToStatus(errno, "fstat upload record");
  if (st.st_nlink == 0) return NoSuchUpload(id);
  absl::StatusOr<SessionRecord> record = ReadRecord(fd.get(), id, owner);
  if (!record.ok()) return record.status();
  // Attached: not idle (ExpireUploads).
  (void)futimens(fd.get(), nullptr);
  LockedSession out;
  out.record = *std::move(record);
  out.lock_fd = fd.release();
  return out;
}

absl::StatusOr<SessionRecord> ReadSession(int root_fd, absl::string_view id,
                                          absl::string_view owner) {
  absl::StatusOr<int> opened = OpenRecord(root_fd, id, O_RDONLY);
  if (!opened.ok()) return opened.status();
  Fd fd(*opened);
  return ReadRecord(fd.get(), id, owner);
}

absl::StatusOr<PersistedState> ReadPersisted(int root_fd, absl::string_view id) {
  absl::StatusOr<int> opened = Files(root_fd).OpenBeneath(SessionDataPath(id), O_RDONLY);
  if (!opened.ok()) return opened.status();
  Fd fd(*opened);
  return ReadPersistedFd(fd.get(), id);
}

absl::StatusOr<PersistedState> ReadPersistedFd(int fd, absl::string_view id) {
  absl::StatusOr<std::string> text = GetFdAttr(fd, kPersistedAttr);
  if (text.status().code() == absl::StatusCode::kNotFound) return PersistedState();
  if (!text.ok()) return text.status();
  std::optional<PersistedState> p = ParsePersisted(*text);
  if (!p) return absl::DataLossError(absl::StrCat("upload ", id, ": bad persisted state"));
  return *p;
}

absl::Status CleanUploadsDir(int root_fd) {
  const PosixFiles files = Files(root_fd);
  absl::Status made = files.MakeDir(kUploadsDir);
  if (!made.ok() && made.code() != absl::StatusCode::kAlreadyExists) return made;
  absl::StatusOr<std::vector<DirEntry>> entries = files.ReadDir(kUploadsDir);
  if (!entries.ok()) return entries.status();
  absl::StatusOr<int> dir_fd = files.OpenBeneath(kUploadsDir, O_RDONLY | O_DIRECTORY);
  if (!dir_fd.ok()) return dir_fd.status();
  Fd dir(*dir_fd);
  const absl::Time old = absl::Now() - kJunkGrace;
  bool removed = false;
  for (const DirEntry& e : *entries) {
    const Stamp stamp = StatIn(dir.get(), e.name);
    if (!stamp.exists || stamp.mtime > old) continue;
    absl::string_view name = e.name;
    const bool data = absl::ConsumeSuffix(&name, kDataSuffix);
    const bool id = ValidateUploadId(name).ok() && e.is_regular;
    if (id && data) {
      // Data whose record exists belongs to a session.
      if (StatIn(dir.get(), std::string(name)).exists) continue;
    } else if (id) {
      Fd record(openat(dir.get(), e.name.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
      if (record.get() < 0) continue;
      // A good record is left alone without its lock (taking it, even
      // briefly, would turn away a stream attaching on another server);
      // a bad one is checked again under the lock.
      auto bad = [&record] {
        absl::StatusOr<std::string> text = GetFdAttr(record.get(), kSessionAttr);
        return text.ok() ? !ParseSessionRecord(*text).has_value()
                         : text.status().code() == absl::StatusCode::kNotFound;
      };
      if (!bad() || !TryLock(record.get(), name).ok() || !bad()) continue;
      // Unparsable: the session is lost; its data goes too.
      (void)unlinkat(dir.get(), absl::StrCat(e.name, kDataSuffix).c_str(), 0);
    }
    // Anything else is not ours: a session never has other names.
    (void)unlinkat(dir.get(), e.name.c_str(), e.is_directory ? AT_REMOVEDIR : 0);
    removed = true;
  }
  if (removed) (void)fsync(dir.get());
  return absl::OkStatus();
}

int ExpireSessions(int root_fd, absl::Duration ttl) {
  const PosixFiles files = Files(root_fd);
  absl::StatusOr<std::vector<DirEntry>> entries = files.ReadDir(kUploadsDir);
  if (!entries.ok()) return 0;
  absl::StatusOr<int> dir_fd = files.OpenBeneath(kUploadsDir, O_RDONLY | O_DIRECTORY);
  if (!dir_fd.ok()) return 0;
  Fd dir(*dir_fd);
  const absl::Time cutoff = absl::Now() - ttl;
  int removed = 0;
  for (const DirEntry& e : *entries) {
    if (!ValidateUploadId(e.name).ok()) continue;  // data files go with their record
    auto idle = [&] {
      const Stamp r = StatIn(dir.get(), e.name);
      const Stamp d = StatIn(dir.get(), absl::StrCat(e.name, kDataSuffix));
      const absl::Time last = d.exists ? std::max(r.latest, d.latest) : r.latest;
      return r.exists && last <= cutoff;
    };
    // Only an idle session is locked (a lock taken in passing would turn
    // away a stream attaching meanwhile); under the lock nobody writes it,
    // so its times are final: checked again.
    if (!idle()) continue;
    Fd record(openat(dir.get(), e.name.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
    if (record.get() < 0 || !TryLock(record.get(), e.name).ok() || !idle()) continue;
    RemoveSession(dir.get(), e.name);
    ++removed;
  }
  return removed;
}

}  // namespace ringstore::storage
