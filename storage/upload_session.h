// Resumable upload sessions on disk (store.h, "Resumable uploads"): the id,
// the two files of a session, the encoding of their state, the session's
// lock, and the start-up clean-up of <root>/.ringstore/uploads/. Internal to
// storage/ (the Store and its Writer use it).
//
// Layout, for a session `<id>` (32 lowercase hex digits, 128 random bits):
//   .ringstore/uploads/<id>       the record: an empty file whose extended
//                                 attribute `user.ringstore.session` holds
//                                 the session (EncodeSessionRecord). Its
//                                 whole-file OFD write lock is held by the
//                                 one stream attached to it (LockSession).
//   .ringstore/uploads/<id>.data  the data; its attribute
//                                 `user.ringstore.persisted` =
//                                 "<size> <crc32c>" says how many of its
//                                 bytes were fsynced, and their CRC32C
//                                 (absent: none). Bytes past that size were
//                                 never made durable and are cut off when a
//                                 stream attaches.
// A session's life: StartUpload creates both files (record state `open`).
// A commit first sets the record to `committing` with the FileInfo it will
// produce (fsynced), then renames the data into place, then sets it to
// `complete`. So after a crash a `committing` record whose data is gone was
// committed (the rename happened), and one whose data is still there was
// not. Removal (cancel, expiry, a commit that failed its checks) unlinks the
// record first, then the data, so a crash in between leaves only an orphan
// `.data`, which start-up removes.
//
// Why blocking system calls: the Engine has no operation for an arbitrary
// extended attribute, none that opens an existing file for writing, and no
// lock (io_uring has no opcode for fcntl locks at all, so an OFD lock needs
// a plain descriptor and a plain fcntl). Each helper marked "blocking"
// below is a few metadata system calls (openat2, fcntl(F_OFD_SETLK) which
// never waits, f{get,set,remove}xattr, fstat, futimens) that a local file
// system serves from its inode cache without waiting for the disk; the
// Store runs them inline (documented per method in store.h's
// implementation, store_sessions.cc). Everything that waits for the disk
// (fsync, truncate, unlink, writes) goes through the Engine.
#ifndef RINGSTORE_STORAGE_UPLOAD_SESSION_H_
#define RINGSTORE_STORAGE_UPLOAD_SESSION_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "storage/store.h"

namespace ringstore::storage {

// ".ringstore/uploads", relative to the root.
extern const char kUploadsDir[];
inline constexpr char kSessionAttr[] = "user.ringstore.session";
inline constexpr char kPersistedAttr[] = "user.ringstore.persisted";
// Largest owner a session records (the server passes a token's hash).
inline constexpr size_t kMaxOwnerBytes = 256;
// Start-up leaves junk younger than this alone: another server sharing the
// root may be creating that session right now (its record exists a moment
// before its attribute does).
inline constexpr absl::Duration kJunkGrace = absl::Minutes(1);

// 128 bits from getrandom(2), as 32 lowercase hex digits: upload ids, and
// the names of servers' temp directories and temp files (store.cc).
std::string RandomId();
// InvalidArgument unless `id` is 32 lowercase hex digits.
absl::Status ValidateUploadId(absl::string_view id);
// Paths of a session's files, relative to the root.
std::string SessionRecordPath(absl::string_view id);
std::string SessionDataPath(absl::string_view id);

enum class SessionState { kOpen, kCommitting, kComplete };

// What the record's attribute holds.
struct SessionRecord {
  SessionState state = SessionState::kOpen;
  std::string owner;
  WriteSpec spec;
  // committing: what the commit will produce; complete: what it produced.
  // Unused (and not encoded) while open.
  ObjectInfo file;
};

// "v1 <state> <owner> <path> <size> <if_generation_match|-> <crc32c|->
// [<generation> <size> <crc32c> <modified ns>]", where <owner> and <path>
// are "<byte count>:<bytes>" (any bytes) and the bracketed part is present
// exactly for committing and complete. Parse fails (nullopt) on anything
// else: an unknown version or state, a bad number, a negative size or
// generation, an invalid path (path.h), an owner over kMaxOwnerBytes,
// trailing bytes.
std::string EncodeSessionRecord(const SessionRecord& record);
std::optional<SessionRecord> ParseSessionRecord(absl::string_view text);

// What the data file's attribute holds: "<size> <crc32c>".
struct PersistedState {
  int64_t size = 0;
  uint32_t crc32c = 0;
};
std::string EncodePersisted(const PersistedState& persisted);
std::optional<PersistedState> ParsePersisted(absl::string_view text);

// The value of attribute `name` of `fd`; NotFound if it has none. Blocking.
absl::StatusOr<std::string> GetFdAttr(int fd, const char* name);
// Sets / removes (OK if absent) attribute `name` of `fd`. Blocking.
absl::Status SetFdAttr(int fd, const char* name, absl::string_view value);
absl::Status RemoveFdAttr(int fd, const char* name);

// The NotFound every call answers for an unknown id and for another owner's.
absl::Status NoSuchUpload(absl::string_view id);

// A session this process has locked: `lock_fd` is its record, open for
// writing, holding the whole-file OFD write lock; closing it (or the
// process dying) releases the lock.
struct LockedSession {
  int lock_fd = -1;
  SessionRecord record;
};
// Opens the record of `id`, takes its lock without waiting, touches it (its
// mtime: the session is not idle) and reads it. InvalidArgument for a bad
// id; NotFound if there is no such record (or it was removed while we
// locked it), it does not parse, or it is another owner's; Aborted if
// another open file description holds the lock: another stream, in this
// process or another, on this machine or (on a file system that shares OFD
// locks: NFSv4, CephFS) another one. OFD locks belong to the open file
// description, not the process, so two opens in one process conflict like
// two processes do: no in-process guard is needed. And unlike a classic
// POSIX lock, which any close of the file by the process would drop, only
// closing `lock_fd` releases it: QueryUpload may open and close the record
// meanwhile. Blocking.
absl::StatusOr<LockedSession> LockSession(int root_fd, absl::string_view id,
                                          absl::string_view owner);
// The record of `id`, read without the lock; errors as LockSession (never
// Aborted). Blocking.
absl::StatusOr<SessionRecord> ReadSession(int root_fd, absl::string_view id,
                                          absl::string_view owner);
// The persisted state of the data of `id` (zero if it has no attribute);
// NotFound if the data file is gone. Blocking.
absl::StatusOr<PersistedState> ReadPersisted(int root_fd, absl::string_view id);
// The same of the data of `id` open as `fd`. DataLoss if it does not parse.
// Blocking.
absl::StatusOr<PersistedState> ReadPersistedFd(int fd, absl::string_view id);

// Creates .ringstore/uploads if needed and removes what no session owns:
// `.data` files without a record, records without a valid attribute, any
// other name; each only if older than kJunkGrace and (records) not locked.
// A good record is never locked, even briefly, so that a stream attaching
// on another server meanwhile is not turned away. Complete and idle
// sessions stay (Store::ExpireUploads). Blocking: for Store::Open.
absl::Status CleanUploadsDir(int root_fd);
// Store::ExpireUploads: removes every session not locked whose record and
// data have both been idle (no change to their content, attributes or
// times) for longer than `ttl`; answers how many. Only sessions idle by
// their times are locked (and checked again under the lock). Blocking.
int ExpireSessions(int root_fd, absl::Duration ttl);

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_UPLOAD_SESSION_H_
