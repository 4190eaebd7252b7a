// The namespace: files under a root directory, committed atomically and
// durably, with generations and CRC32C checksums.
//
// Layout on disk:
//   <root>/<path>                  committed files, plain files in plain dirs
//   <root>/.ringstore/lock         empty; OFD byte-range locks on it, one
//                                  per path, serialise commits and deletes
//                                  across every server sharing the root,
//                                  and every live server read-locks byte
//                                  2^62 (shared_locks.h)
//   <root>/.ringstore/tmp/<server>.lock  empty; locked while that server runs
//   <root>/.ringstore/tmp/<server>/<random>  data of its plain uploads in
//                                  progress (start-up removes the
//                                  directories of servers no longer running)
//   <root>/.ringstore/uploads/<id>       a resumable session's record (empty;
//                                  its state in the extended attribute
//                                  `user.ringstore.session`; the attached
//                                  stream holds an OFD lock on it)
//   <root>/.ringstore/uploads/<id>.data  the session's data (the size and
//                                  CRC32C of its fsynced bytes in
//                                  `user.ringstore.persisted`); a commit
//                                  renames it into place
// Extended attributes of <root>/.ringstore hold the store's own bookkeeping:
// `user.ringstore.bytes`, the quota's count left by a clean shutdown
// (quota_ledger.h).
// Each committed file carries one extended attribute, `user.ringstore.meta`
// = "v1 <generation> <crc32c> <size> <commit time ns>", set on the temp file
// before the rename, so
// the metadata arrives atomically with the content (a sidecar file would need
// a second rename and could disagree with its file after a crash). A file
// without the attribute (placed by hand) reports its mtime in microseconds as
// generation and crc32c 0 ("unknown"). Because the attribute travels with
// the data, one open file yields a consistent content + metadata snapshot:
// ReadSmall needs no separate stat.
//
// Commit: write temp → set metadata → fsync file → rename into place →
// fsync the directory (one Engine::CommitFile, a linked chain on io_uring),
// then fsync the directories holding any directory the commit created. Readers see
// the old file or the new one, never a mix; a crash leaves the old file, and
// the next Open removes the temp data. Generations come from one store-wide
// counter seeded by the clock (max(now µs, last + 1)), so they increase on
// every commit of a path, also across delete and re-create. Several servers
// on one root: a commit's generation is also above the file's current one
// (read under the path's lock, which every server honours), and the
// counter moves past what it commits or deletes, so they increase per path
// across servers too. One gap: a path deleted through one server and
// created again through another starts from the second one's counter
// (clock µs), so it increases only if their clocks differ by less than the
// time between the delete and the re-create.
//
// Every operation is asynchronous and calls back exactly once, with the
// result and the Backend that did the file work. Commits and deletes of one
// path are serialised, also across every server sharing the root
// (path_locks.h); everything else runs concurrently. Thread-safe.
//
// Threading. A callback runs on one of these threads, and nowhere else:
//   - an engine thread, after the engine work it waited for (the usual case);
//   - the calling thread, before the call returns ("inline"), exactly when
//     (a) the call ends before any engine work of its own: a bad argument
//         (each method names its InvalidArgument / ResourceExhausted
//         checks), a dead Writer, or a Cancellation found cancelled; or
//     (b) Writer::Append completed without waiting, or Writer::Commit
//         failed before any engine work (each says when);
//     (c) QueryUpload always, CancelUpload and ResumeUpload when they fail
//         to find or lock the session, and ResumeUpload of a complete one:
//         what they read is a few metadata system calls the engine has no
//         operation for, made inline (upload_session.h says which, and why
//         they do not wait for the disk);
//   - the pool's own thread (buffer_pool.h), for a Writer::Append that had
//     to wait for a pool buffer (never the thread that returned the buffer,
//     which may be gRPC's);
//   - the thread that calls Cancellation::Cancel(), for a Writer::Append
//     waiting for a pool buffer when its Cancellation fires;
//   - the lock poller's thread (shared_locks.h): a commit or Delete whose
//     path another server held locked when it asked goes on there once it
//     has the lock. Its callback could run there only if it ended before
//     any engine work of its own; today both start with a stat, so their
//     callbacks run on an engine thread (an engine never calls back inline
//     on a thread it does not own, engine.h).
// Callbacks must be quick and must not block. The Store never runs a
// callback while it holds a lock of its own, so a callback may call the
// Store again (and a caller may hold its own lock around a call only if its
// callback does not take that lock).
//
// Cancellation. Calls that take a `Cancellation*` (may be null; else kept
// alive until the call's callback has run, and not touched by the Store after
// it) end early with Cancelled once it is cancelled: work not yet submitted
// is not started, reads the kernel holds are asked to stop
// (cancellation.h), and everything the call held (descriptors, pool buffers,
// temp data) is released. Work already done is not undone: a call cancelled
// late may still succeed.
#ifndef RINGSTORE_STORAGE_STORE_H_
#define RINGSTORE_STORAGE_STORE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "storage/engine/buffer_pool.h"
#include "storage/engine/cancellation.h"
#include "storage/engine/engine.h"
#include "storage/engine/sync.h"
#include "storage/first_read_planner.h"

namespace ringstore::storage {

class MetadataCache;
class PathLocks;
class Quota;
class ServerDir;
class SharedLocks;

struct ObjectInfo {
  std::string path;
  int64_t size = 0;
  int64_t generation = 0;
  absl::Time modified;
  uint32_t crc32c = 0;
};

struct StoreOptions {
  // Root directory; created (with parents) if missing.
  std::string root = "./data";
  // "auto", "io_uring", "posix_aio" or "thread_pool" (engine_selector.h).
  std::string engine = "auto";
  // The buffer pool: all file data in flight lives in these buffers.
  size_t buffer_count = 64;
  size_t buffer_size = 1 << 20;
  int engine_threads = 4;
  // EngineOptions::io_uring_sqpoll_idle_ms (0 = no SQPOLL).
  int io_uring_sqpoll_idle_ms = 0;
  // Largest file an upload may create; 0 = no limit.
  int64_t max_file_bytes = 0;
  // Hard quota (quota.h): bytes of committed files plus bytes reserved by
  // uploads in flight never exceed it; 0 = no limit. With a limit, Open
  // knows the committed bytes from the count a clean shutdown left, or
  // else walks the tree once (quota_ledger.h). Per server: with several
  // servers on a root each counts what it saw at Open plus its own
  // commits, and one that shared the root leaves no clean count behind.
  int64_t max_store_bytes = 0;
  // Files whose metadata the store remembers (metadata_cache.h), so that
  // small downloads skip reading it; 0 turns that off.
  size_t metadata_cache_entries = 65536;
  // Tests only: engine steps to fail on purpose (fault_injection.h).
  FaultInjector* faults = nullptr;
  // Tests only (the server's --testonly_commit_delay): each commit sleeps
  // this long on its engine thread, holding the path's lock, just before
  // its rename, so that a test's kill -9 can land inside commits.
  absl::Duration commit_delay = absl::ZeroDuration();
};

struct WriteSpec {
  std::string path;
  // Expected total size; 0 = unknown.
  int64_t size = 0;
  // 0: the path must not exist (AlreadyExists otherwise). N: the current
  // generation must be N (FailedPrecondition otherwise). Absent: overwrite.
  std::optional<int64_t> if_generation_match;
  // Expected CRC32C of the whole file, checked before commit (DataLoss).
  std::optional<uint32_t> crc32c;
};

struct ListOptions {
  // Only paths starting with this string ("" = all).
  std::string prefix;
  // "" lists every file below the prefix; "/" lists one level and reports
  // sub-directories (that hold files) as prefixes ending in "/".
  std::string delimiter;
  // 1..1000; 0 means 1000, larger values are clamped.
  int page_size = 0;
  // next_page_token of the previous page of the same prefix and
  // delimiter, or "". Opaque to clients; List checks it (store_list.cc).
  std::string page_token;
};

struct ListResult {
  std::vector<ObjectInfo> files;
  std::vector<std::string> prefixes;
  // "" on the last page. It records where this page ended (its last entry)
  // and which prefix and delimiter it belongs to, with a checksum.
  std::string next_page_token;
  // Directories read to answer this page (for tests and benchmarks: it is
  // bounded by the page and the depth of the tree, not by what came before).
  int64_t directories_read = 0;
};

// A committed file opened for reading: a snapshot that later commits of the
// same path do not change. Destroying it closes the file (asynchronously,
// once reads in flight have finished).
class Reader {
 public:
  virtual ~Reader() = default;
  virtual const ObjectInfo& info() const = 0;
  // Reads up to dst.size() bytes at `offset` into `dst`, which lies in a
  // PooledBuffer the caller keeps alive until `done` runs. Fewer bytes than
  // asked means end of file. `cancel` (may be null, else kept alive until
  // `done` runs) can end the read early with Cancelled.
  virtual void Read(int64_t offset, absl::Span<char> dst, Cancellation* cancel,
                    Engine::Callback<size_t> done) = 0;
};

// How many times a commit creates its parent directories again when a
// concurrent Delete pruned them before the rename (Writer::Commit).
inline constexpr int kCommitDirectoryRetries = 16;

// An upload in progress. Appends run one at a time, in order. Destroying an
// uncommitted Writer discards its temp data (asynchronously, once the call in
// flight has finished).
class Writer {
 public:
  virtual ~Writer() = default;
  // Bytes accepted so far.
  virtual int64_t size() const = 0;
  // Appends `data` (borrowed until `done` runs) through pool buffers.
  // InvalidArgument past WriteSpec::size, ResourceExhausted past
  // max_file_bytes, past the store quota (an upload of unknown size) or
  // on a full disk, Cancelled if the upload's
  // Cancellation (CreateWriter) fired: no further write is started, a wait
  // for a pool buffer is abandoned at once and that buffer, when it comes,
  // goes back. After an error the Writer is dead: every later call fails
  // (FailedPrecondition) and the temp data is removed once the writes in
  // flight have finished and given their buffers back.
  //
  // Write-behind: `done` runs once the last write of `data` is submitted,
  // not completed (at most two writes of an upload are in flight; a failure
  // among them fails the next call). So `done` runs inline when `data` needs
  // no buffer (it stays in the writer until the next append), or a buffer is
  // free and there is room for another write in flight; it runs on an engine
  // thread when it had to wait for a write to complete, on the pool's own
  // thread when it had to wait for a buffer (store.h's top says which
  // threads). A failure runs `done` inline if no write is in flight,
  // else on the engine thread that completes the last one.
  virtual void Append(absl::string_view data, Engine::DoneCallback done) = 0;
  // Resumable uploads only (Store::ResumeUpload; FailedPrecondition on
  // any other Writer): waits for the writes in flight, fsyncs the data and
  // records its size and running CRC32C with it, durably, then answers the
  // persisted size (== size()). The Writer stays usable. `done` runs on an
  // engine thread, or inline on a dead Writer.
  virtual void Persist(Engine::Callback<int64_t> done) = 0;
  // Checks size and checksum, then commits; runs to its end whatever the
  // Cancellation says. `done` runs on an engine thread, or inline when the
  // commit fails before any engine work of its own (a dead Writer, a size
  // or checksum mismatch, an earlier write's failure) with no write in
  // flight. InvalidArgument if fewer bytes
  // than WriteSpec::size arrived, DataLoss on a checksum mismatch,
  // AlreadyExists / FailedPrecondition for a failed precondition,
  // FailedPrecondition if the path is a directory or below a file. Parent
  // directories are created as needed; if a concurrent Delete prunes one of
  // them before the rename, they are created again and the rename retried
  // (bounded: kCommitDirectoryRetries). On any
  // failure up to the rename the old file (if any) is intact, nothing new is
  // visible and the temp data is removed. Only an fsync of a directory can
  // fail after the rename: the new file is then in place but may not
  // survive a crash, and the status (naming the fsync) says so.
  virtual void Commit(Engine::Callback<ObjectInfo> done) = 0;
};

class Store {
 public:
  template <typename T>
  using Callback = Engine::Callback<T>;

  // Creates the root if needed, starts the engine and the buffer pool,
  // checks that the file system keeps user extended attributes and takes
  // OFD locks (FailedPrecondition if not), removes the temp data of
  // servers no longer running (a crash), never a live one's, and registers
  // this server's own temp directory (server_dir.h). If other servers are
  // live on the root it then waits kJoinWait (2 s, metadata_cache.h says
  // why) before it returns.
  // Takes the quota's count from the attribute a clean shutdown left, or,
  // with max_store_bytes set, walks the tree for it (quota_ledger.h: this
  // blocks for as long as the walk takes), and marks the store dirty.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const StoreOptions& options);
  // Every call's callback must have run, and every Reader and Writer must be
  // gone. Waits for the background work they left (closing, removing temp
  // data), then stops the engine and, if it keeps a count, leaves it clean
  // for the next Open.
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  Engine& engine() const { return *engine_; }
  BufferPool& pool() const { return *pool_; }
  const StoreOptions& options() const { return options_; }
  // Engines that could start on this machine, probed at Open.
  const std::vector<std::string>& available_engines() const { return available_; }

  // The quota (for metrics); may be called from any thread. quota_bytes is
  // max_store_bytes (0 = none). used_bytes is committed_bytes plus the
  // bytes reserved by uploads in flight. Both are -1 ("unknown") when the
  // store has no quota and did not find a clean count at Open (it then
  // keeps no count, so that its start-up needs no walk).
  int64_t quota_bytes() const { return options_.max_store_bytes; }
  int64_t used_bytes() const;
  int64_t committed_bytes() const;

  // InvalidArgument for a bad path; NotFound if there is no file there.
  // Cancelled if `cancel` fired before the answer.
  void Stat(std::string path, Cancellation* cancel, Callback<ObjectInfo> done);
  void Stat(std::string path, Callback<ObjectInfo> done) {
    Stat(std::move(path), nullptr, std::move(done));
  }
  // Entries (files, and with delimiter "/" sub-directory prefixes) sorted
  // by path, one page at a time. A page resumes the walk where the token's
  // entry was: it reads the directories on the way down to that point,
  // skipping everything that sorts at or before it, and then only as many
  // directories as the page needs, so a page costs O(page + depth)
  // directory reads whatever came before it. Between pages the tree may
  // change: a file that exists all along is returned exactly once; files
  // added or removed meanwhile may or may not appear (added ones do if they
  // sort after the token); the token's own entry need not exist any more.
  // InvalidArgument for a bad prefix, delimiter or page_size, and for a
  // page_token that is malformed, altered, or from another prefix or
  // delimiter. Cancelled if `cancel` fired before the answer: the walk then
  // starts no further directory read or stat.
  void List(ListOptions options, Cancellation* cancel, Callback<ListResult> done);
  void List(ListOptions options, Callback<ListResult> done) {
    List(std::move(options), nullptr, std::move(done));
  }
  // Removes the file, then each directory above it that this left empty,
  // up to (never including) the root; `.ringstore` is never touched. A
  // directory that is not empty (another file, or an upload that has just
  // created it and renames into it) stops the pruning there: rmdir fails
  // on a non-empty directory, and a commit whose directory was removed
  // between its creation and the rename creates it again (Writer::Commit).
  // A failure to remove a directory is not the Delete's failure: the file
  // is gone. InvalidArgument for a bad path; NotFound if absent;
  // FailedPrecondition if `if_generation_match` is set and differs from the
  // current generation.
  void Delete(std::string path, std::optional<int64_t> if_generation_match,
              Engine::DoneCallback done);
  // InvalidArgument for a bad path; NotFound if there is no file there.
  void OpenReader(std::string path, Callback<std::unique_ptr<Reader>> done);
  // Reads the file at `path` into `dst` (inside a pool buffer, kept alive
  // until `done`) in one engine operation. `complete` says that `dst` holds
  // the whole file, described by `info`; otherwise (larger than `dst`, or no
  // metadata to vouch for the size) `reader` is the file opened, as
  // OpenReader opens it, and `dst` holds nothing of use. A file the
  // metadata cache knows to be larger than `dst` is not read at all: it is
  // opened and its metadata read once (one engine open, one Stat); one it
  // knows to fill `dst` exactly is read once, with its metadata; one it
  // does not know is read first, then opened. Errors as OpenReader;
  // Cancelled if `cancel` (as for Reader::Read) cut it short.
  //
  // The page cache: a file the metadata cache does not know (a first read,
  // as far as this server can tell) is read through the page cache or
  // around it, as FirstReadPlanner predicts pays (first_read_planner.h:
  // around it while large files keep missing the cache). A file read again
  // goes through the cache, so files that are read repeatedly become
  // cached. With other servers on the root (no usable metadata cache)
  // every read goes through the cache.
  // `crc32c_checked` (with `complete`): ReadSmall computed the CRC32C of
  // the bytes it read and found it equal to `info.crc32c` (it checks a file
  // it knew against what it knew), so a caller sending them whole need not
  // compute it again.
  struct SmallRead {
    bool complete = false;
    bool crc32c_checked = false;
    ObjectInfo info;
    std::unique_ptr<Reader> reader;
  };
  void ReadSmall(std::string path, absl::Span<char> dst, Cancellation* cancel,
                 Callback<SmallRead> done);
  // Validates the spec (InvalidArgument for a bad path or a negative size
  // or generation, ResourceExhausted for a size over max_file_bytes or one
  // the store quota cannot hold now, with nothing created), checks its
  // precondition against the file as it is now (AlreadyExists,
  // FailedPrecondition: a doomed upload fails before its body is sent; the
  // commit checks again, atomically with its rename) and creates the
  // temp file. A declared size is reserved against the quota here, an
  // unknown one by each Writer::Append; the reservation ends when the
  // Writer commits (the replaced file's bytes are then released) or once
  // its temp data has been removed (in the background, just after the
  // failure was reported: used_bytes() may lag it by an unlink). `cancel` (may be null, else kept alive until the
  // Writer is gone) is the upload's: it cuts short CreateWriter and every
  // Writer::Append (not Commit).
  void CreateWriter(WriteSpec spec, Cancellation* cancel,
                    Callback<std::unique_ptr<Writer>> done);
  void CreateWriter(WriteSpec spec, Callback<std::unique_ptr<Writer>> done) {
    CreateWriter(std::move(spec), nullptr, std::move(done));
  }

  // --- Resumable uploads (DESIGN.md §3, after GCS's resumable writes) ---
  //
  // A session is a WriteSpec, an owner and the bytes persisted so far, kept
  // under <root>/.ringstore/uploads/ (upload_session.h has the layout), so
  // that it survives a restart, also kill -9, and can be resumed on any
  // server sharing the root. `owner` is opaque to the store (the server
  // passes a hash of the caller's token, "" with auth off); a call naming
  // a session with another owner gets NotFound, as for an unknown id.
  // Upload ids are 128 random bits from the kernel, as 32 hex digits.

  // What QueryUpload reports.
  struct UploadStatus {
    WriteSpec spec;
    // Bytes that are on disk and fsynced; only grows.
    int64_t persisted_size = 0;
    // The upload was committed; `file` is what the commit produced.
    bool complete = false;
    ObjectInfo file;
  };

  // Validates `spec` and checks its precondition exactly as CreateWriter
  // does (same codes, nothing created on failure; InvalidArgument too for
  // an owner over 256 bytes), then creates the session durably (its record
  // and an empty data file, fsynced with their directory) and answers its
  // id. Nothing is reserved against the quota (a declared size it cannot
  // hold now is ResourceExhausted at once): a stream reserves while it is
  // attached, as a CreateWriter's Writer does (the declared size, or what
  // the session holds plus each Append), so the data of a session no
  // stream is attached to is outside used_bytes() until its commit counts
  // it (expiry bounds it).
  void StartUpload(WriteSpec spec, std::string owner, Callback<std::string> done);
  // NotFound for an unknown, expired or cancelled id, or another owner's
  // (InvalidArgument if `id` is not 32 lowercase hex digits). Takes no lock:
  // a stream may be attached. Calls back inline.
  void QueryUpload(std::string id, std::string owner, Callback<UploadStatus> done);
  // Removes the session, its record and data. NotFound as QueryUpload;
  // Aborted while a stream is attached to it (on any server).
  void CancelUpload(std::string id, std::string owner, Engine::DoneCallback done);

  // A stream attached to a session (ResumeUpload).
  struct Resumed {
    // Null when the session is complete: the caller answers OK with
    // `status.file`.
    std::unique_ptr<Writer> writer;
    // The session as it was when the stream attached; writer->size() ==
    // status.persisted_size.
    UploadStatus status;
  };
  // Attaches a stream to session `id`: the returned Writer appends after
  // the persisted bytes (anything the session held past them, written but
  // never fsynced before a crash, is cut off first). One stream at a time
  // per session across every server on the root (an OFD lock on the
  // session's record, taken without waiting): a second one gets Aborted.
  // NotFound as QueryUpload. The Writer behaves as CreateWriter's, with
  // these differences:
  //   - Persist (below) makes what it accepted durable and keeps the
  //     session; destroying the Writer without Commit or Persist does the
  //     same in the background (a stream that broke off keeps what it
  //     delivered) and then releases the session's lock;
  //   - an Append that fails kills the Writer but not the session: as on
  //     destruction, what the earlier appends delivered is persisted if
  //     all their writes succeeded (a Cancelled or refused append thus
  //     keeps what came before it), else the session keeps its last
  //     persisted state;
  //   - Commit checks the size, the whole-file CRC32C (the running CRC32C
  //     of the persisted bytes is kept with them, so a resumed upload's
  //     checksum covers every byte) and the precondition again, then
  //     commits; the session is then complete, and QueryUpload and
  //     ResumeUpload answer its FileInfo until it expires. A commit that
  //     fails its checks (InvalidArgument size, DataLoss, AlreadyExists,
  //     FailedPrecondition) removes the session and its data before its
  //     `done` runs (on an engine thread, then, never inline); one that
  //     fails otherwise (an I/O error) keeps it. The committed file does
  //     not keep `user.ringstore.persisted` (removed just after the rename;
  //     a crash in between leaves it there, harmless);
  //   - its data is written through the page cache (a resumed offset need
  //     not be aligned for O_DIRECT).
  // ResourceExhausted if the quota cannot hold the stream's reservation.
  // `cancel` (may be null, else alive until the Writer is gone) is the
  // stream's, as for CreateWriter.
  void ResumeUpload(std::string id, std::string owner, Cancellation* cancel,
                    Callback<Resumed> done);

  // Removes the sessions (complete ones included) that no stream holds and
  // that have been idle for longer than `ttl` (neither record nor data
  // changed: a stream attaching touches the record, its writes and
  // persists change the data), with their data; answers how many it
  // removed. The server
  // calls it periodically with --upload_ttl. Blocking: call it from a
  // thread of your own, never from a callback.
  int ExpireUploads(absl::Duration ttl);

  // Internal, used by the commit and delete operations. NextGeneration
  // answers a generation above `floor` (the file's current one) and above
  // every one this store handed out or observed; ObserveGeneration moves
  // the counter past `generation` (a file another server committed).
  int64_t NextGeneration(int64_t floor = 0);
  void ObserveGeneration(int64_t generation) { NextGeneration(generation); }
  PathLocks& locks() { return *locks_; }
  MetadataCache& metadata() { return *metadata_; }
  // The byte count, or null when the store keeps none (used_bytes()).
  Quota* quota() { return quota_.get(); }
  // Internal: engine work nobody waits for (closing a reader's file,
  // removing an abandoned upload's temp data) is bracketed by these;
  // ~Store waits for all of it before it stops the engine.
  void BeginBackground();
  void EndBackground();
  void CloseInBackground(FileHandle file);

 private:
  // CreateWriter past its checks: reserves a declared size and opens the
  // temp file.
  void OpenWriter(WriteSpec spec, Cancellation* cancel, Callback<std::unique_ptr<Writer>> done);

  // ReadSmall reading the metadata attribute with the data, as `plan` says
  // (kProbe: from the page cache only, then again on a miss).
  void ReadSmallWithMetadata(std::string path, absl::Span<char> dst, Cancellation* cancel,
                             Callback<SmallRead> done,
                             FirstReadPlanner::Plan plan = FirstReadPlanner::Plan::kCached);
  // ReadSmall's answer for a file that does not fit: the file opened.
  void ReadSmallOpen(std::string path, Callback<SmallRead> done);

  Store(StoreOptions options, int root_fd, std::unique_ptr<BufferPool> pool,
        std::unique_ptr<Engine> engine, std::vector<std::string> available,
        std::unique_ptr<Quota> quota, std::unique_ptr<SharedLocks> shared_locks,
        std::unique_ptr<ServerDir> server_dir);

  const StoreOptions options_;
  const int root_fd_;
  std::unique_ptr<BufferPool> pool_;
  std::unique_ptr<Engine> engine_;
  // The root's lock file (before locks_, which borrows it) and this
  // server's temp directory (server_dir.h).
  std::unique_ptr<SharedLocks> shared_locks_;
  std::unique_ptr<ServerDir> server_dir_;
  std::unique_ptr<PathLocks> locks_;
  std::unique_ptr<MetadataCache> metadata_;
  FirstReadPlanner first_reads_;
  const std::vector<std::string> available_;
  // Null: no count kept.
  const std::unique_ptr<Quota> quota_;
  std::atomic<int64_t> last_generation_{0};
  Mutex background_mu_;
  int background_ ABSL_GUARDED_BY(background_mu_) = 0;
};

// What a commit records in the metadata attribute.
struct Metadata {
  int64_t generation = 0;
  uint32_t crc32c = 0;
  int64_t size = 0;
  absl::Time modified;  // the commit time
};

// "v1 <generation> <crc32c> <size> <modified ns>" ↔ Metadata; exposed for
// tests. Parse fails (nullopt) on anything malformed.
std::string EncodeMetadata(const Metadata& metadata);
std::optional<Metadata> ParseMetadata(absl::string_view text);

// Fills generation, crc32c and modified of `info` from `metadata`; for a file
// without valid metadata, from its mtime `modified` (generation = µs, crc 0).
void DecodeMetadata(absl::string_view metadata, absl::Time modified,
                    ObjectInfo* info);

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_STORE_H_
