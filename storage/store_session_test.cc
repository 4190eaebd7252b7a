// Resumable uploads on every engine (store.h, "Resumable uploads"): the
// round trip over several streams, what counts as persisted, the one-stream
// lock (also across two Stores: two open file descriptions), complete
// sessions, checksums and preconditions across streams, owners, ids,
// cancel, crashes (bytes never fsynced, a commit cut short), expiry and the
// start-up clean-up.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <thread>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "third_party/system/crc32c.h"
#include "storage/engine/cancellation.h"
#include "storage/engine/fault_injection.h"
#include "storage/store_test_util.h"
#include "storage/upload_session.h"

namespace ringstore::storage {
namespace {

using Resumed = Store::Resumed;
using UploadStatus = Store::UploadStatus;

absl::StatusOr<std::string> Start(Store& store, WriteSpec spec, std::string owner = "") {
  return Await<std::string>([&](auto cb) {
    store.StartUpload(std::move(spec), std::move(owner), std::move(cb));
  });
}

absl::StatusOr<UploadStatus> Query(Store& store, const std::string& id,
                                   std::string owner = "") {
  return Await<UploadStatus>(
      [&](auto cb) { store.QueryUpload(id, std::move(owner), std::move(cb)); });
}

absl::StatusOr<Resumed> Resume(Store& store, const std::string& id, std::string owner = "") {
  return Await<Resumed>(
      [&](auto cb) { store.ResumeUpload(id, std::move(owner), nullptr, std::move(cb)); });
}

absl::Status Cancel(Store& store, const std::string& id, std::string owner = "") {
  return AwaitStatus([&](auto cb) { store.CancelUpload(id, std::move(owner), std::move(cb)); });
}

absl::StatusOr<int64_t> Persist(Writer& w) {
  return Await<int64_t>([&](auto cb) { w.Persist(std::move(cb)); });
}

std::vector<std::string> DirNames(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') out.push_back(e->d_name);
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

int64_t FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

void Backdate(const std::string& path, absl::Duration by) {
  const timespec t = absl::ToTimespec(absl::Now() - by);
  const timespec times[2] = {t, t};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << path;
}

class Sessions : public StoreTest {
 protected:
  std::string uploads() const { return root_ + "/.ringstore/uploads"; }
  std::string record(const std::string& id) const { return uploads() + "/" + id; }
  std::string data(const std::string& id) const { return uploads() + "/" + id + ".data"; }

  // Resumes `id`, expecting a live writer at `expect_size`.
  std::unique_ptr<Writer> Attach(const std::string& id, int64_t expect_size,
                                 std::string owner = "") {
    auto r = Resume(*store_, id, std::move(owner));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return nullptr;
    EXPECT_FALSE(r->status.complete);
    EXPECT_EQ(r->status.persisted_size, expect_size);
    EXPECT_NE(r->writer, nullptr);
    if (r->writer) {
      EXPECT_EQ(r->writer->size(), expect_size);
    }
    return std::move(r->writer);
  }

  // A detached writer persists and unlocks in the background: ~Store waits
  // for that work, so a restart (with the same options) makes it done.
  void WaitDetached(const std::string&) {
    const StoreOptions options = store_->options();
    store_.reset();
    auto store = Store::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  void SetRecordAttr(const std::string& id, const std::string& value) {
    ASSERT_EQ(setxattr(record(id).c_str(), "user.ringstore.session", value.data(), value.size(),
                       0),
              0);
  }
};

INSTANTIATE_TEST_SUITE_P(AllEngines, Sessions, testing::ValuesIn(EngineNames()),
                         EngineParamName);

TEST_P(Sessions, RoundTripOverThreeStreams) {
  const std::string content = RandomBytes(3 * kBuffer + 777, 1);
  WriteSpec spec;
  spec.path = "dir/big";
  spec.size = static_cast<int64_t>(content.size());
  spec.crc32c = Crc32c(content);
  auto id = Start(*store_, spec);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_TRUE(ValidateUploadId(*id).ok()) << *id;
  EXPECT_EQ(DirNames(uploads()), (std::vector<std::string>{*id, *id + ".data"}));
  auto q = Query(*store_, *id);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->persisted_size, 0);
  EXPECT_FALSE(q->complete);
  EXPECT_EQ(q->spec.path, "dir/big");
  EXPECT_EQ(q->spec.size, spec.size);
  EXPECT_EQ(q->spec.crc32c, spec.crc32c);

  const size_t cut1 = kBuffer + 5, cut2 = 2 * kBuffer + 99;
  // Stream 1: appends, persists explicitly.
  std::unique_ptr<Writer> w = Attach(*id, 0);
  ASSERT_NE(w, nullptr);
  ASSERT_TRUE(Append(*w, content.substr(0, 1000)).ok());
  ASSERT_TRUE(Append(*w, content.substr(1000, cut1 - 1000)).ok());
  auto p = Persist(*w);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, static_cast<int64_t>(cut1));
  EXPECT_EQ(Query(*store_, *id)->persisted_size, static_cast<int64_t>(cut1));
  w.reset();
  WaitDetached(*id);
  // Stream 2: appends and breaks off: what it delivered becomes durable.
  w = Attach(*id, cut1);
  ASSERT_NE(w, nullptr);
  ASSERT_TRUE(Append(*w, content.substr(cut1, cut2 - cut1)).ok());
  w.reset();
  WaitDetached(*id);
  EXPECT_EQ(Query(*store_, *id)->persisted_size, static_cast<int64_t>(cut2));
  // Stream 3: the rest, and the commit.
  w = Attach(*id, cut2);
  ASSERT_NE(w, nullptr);
  ASSERT_TRUE(Append(*w, content.substr(cut2)).ok());
  auto info = Commit(*w);
  ASSERT_TRUE(info.ok()) << info.status();
  w.reset();
  EXPECT_EQ(info->size, spec.size);
  EXPECT_EQ(info->crc32c, Crc32c(content));
  EXPECT_EQ(ReadLocal(root_ + "/dir/big"), content);
  auto st = Stat("dir/big");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->generation, info->generation);
  // The session's bookkeeping did not travel with the data.
  char buf[64];
  EXPECT_LT(getxattr((root_ + "/dir/big").c_str(), "user.ringstore.persisted", buf, sizeof(buf)),
            0);
  // Complete: query and resume answer the FileInfo; only the record is left.
  q = Query(*store_, *id);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_TRUE(q->complete);
  EXPECT_EQ(q->file.generation, info->generation);
  EXPECT_EQ(q->file.size, info->size);
  EXPECT_EQ(q->file.crc32c, info->crc32c);
  EXPECT_EQ(q->file.modified, info->modified);
  EXPECT_EQ(q->persisted_size, info->size);
  auto r = Resume(*store_, *id);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->writer, nullptr);
  EXPECT_TRUE(r->status.complete);
  EXPECT_EQ(r->status.file.generation, info->generation);
  EXPECT_EQ(r->status.file.path, "dir/big");
  EXPECT_EQ(DirNames(uploads()), std::vector<std::string>{*id});
  // A complete session does not hold its lock: resumed twice.
  EXPECT_TRUE(Resume(*store_, *id).ok());
}

TEST_P(Sessions, UnknownSizeAcrossStreams) {
  const std::string content = RandomBytes(kBuffer + 3, 2);
  WriteSpec spec;
  spec.path = "u";
  auto id = Start(*store_, spec);
  ASSERT_TRUE(id.ok()) << id.status();
  std::unique_ptr<Writer> w = Attach(*id, 0);
  ASSERT_TRUE(Append(*w, content.substr(0, 10)).ok());
  w.reset();
  WaitDetached(*id);
  w = Attach(*id, 10);
  ASSERT_TRUE(Append(*w, content.substr(10)).ok());
  auto info = Commit(*w);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->crc32c, Crc32c(content));
  EXPECT_EQ(ReadLocal(root_ + "/u"), content);
}

// persisted_size counts only what Persist or a detach made durable, and
// only grows: a failed append keeps what earlier appends delivered.
TEST_P(Sessions, PersistedSizeCountsOnlyDurableBytes) {
  WriteSpec spec;
  spec.path = "p";
  spec.size = 100;
  auto id = Start(*store_, spec);
  ASSERT_TRUE(id.ok());
  std::unique_ptr<Writer> w = Attach(*id, 0);
  ASSERT_TRUE(Append(*w, std::string(30, 'a')).ok());
  EXPECT_EQ(Query(*store_, *id)->persisted_size, 0);  // written, not fsynced
  ASSERT_EQ(*Persist(*w), 30);
  ASSERT_TRUE(Append(*w, std::string(20, 'b')).ok());
  EXPECT_EQ(Query(*store_, *id)->persisted_size, 30);
  // Past the declared size: the writer dies, the session keeps 50.
  EXPECT_EQ(Append(*w, std::string(51, 'c')).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Persist(*w).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Append(*w, "x").code(), absl::StatusCode::kFailedPrecondition);
  w.reset();
  WaitDetached(*id);
  EXPECT_EQ(Query(*store_, *id)->persisted_size, 50);
  w = Attach(*id, 50);
  ASSERT_TRUE(Append(*w, std::string(50, 'd')).ok());
  auto info = Commit(*w);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(ReadLocal(root_ + "/p"),
            std::string(30, 'a') + std::string(20, 'b') + std::string(50, 'd'));
}

TEST_P(Sessions, PlainWriterDoesNotPersist) {
  auto w = NewWriter(WriteSpec{"plain"});
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(Append(**w, "abc").ok());
  EXPECT_EQ(Persist(**w).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Commit(**w).ok());  // still usable
}

// One stream per session: a second attach is Aborted, from this Store and
// from a second Store on the same root (another open file description of
// the record: OFD locks conflict within one process too); Cancel too.
TEST_P(Sessions, SecondStreamIsAborted) {
  auto id = Start(*store_, WriteSpec{"two"});
  ASSERT_TRUE(id.ok());
  std::unique_ptr<Writer> w = Attach(*id, 0);
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(Resume(*store_, *id).status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(Cancel(*store_, *id).code(), absl::StatusCode::kAborted);
  {
    StoreOptions options = store_->options();
    auto other = Store::Open(options);
    ASSERT_TRUE(other.ok()) << other.status();
    EXPECT_EQ(Resume(**other, *id).status().code(), absl::StatusCode::kAborted);
    EXPECT_EQ(Cancel(**other, *id).code(), absl::StatusCode::kAborted);
    // Queries need no lock.
    EXPECT_TRUE(Query(**other, *id).ok());
    // Expiry skips a locked session whatever its age.
    EXPECT_EQ((*other)->ExpireUploads(absl::ZeroDuration()), 0);
  }
  ASSERT_TRUE(Append(*w, "still mine").ok());
  w.reset();
  WaitDetached(*id);
  EXPECT_EQ(Query(*store_, *id)->persisted_size, 10);
}

// A write that fails kills the stream; the session keeps what was
// persisted before (the failed write's bytes are not vouched for).
TEST_P(Sessions, FailedWriteKeepsLastPersistedState) {
  OpenStore(0, &faults_);
  auto id = Start(*store_, WriteSpec{"w"});
  ASSERT_TRUE(id.ok());
  std::unique_ptr<Writer> w = Attach(*id, 0);
  ASSERT_TRUE(Append(*w, "kept").ok());
  ASSERT_EQ(*Persist(*w), 4);
  faults_.Fail(Step::kWrite, EIO, 1, 1);
  absl::Status s = Append(*w, "lost");
  if (s.ok()) s = Persist(*w).status();  // write-behind: the next call fails
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_EQ(faults_.injected(Step::kWrite), 1);
  EXPECT_EQ(Append(*w, "x").code(), absl::StatusCode::kFailedPrecondition);
  w.reset();
  WaitDetached(*id);
  EXPECT_EQ(Query(*store_, *id)->persisted_size, 4);
  w = Attach(*id, 4);
  ASSERT_TRUE(Append(*w, "more").ok());
  ASSERT_TRUE(Commit(*w).ok());
  EXPECT_EQ(ReadLocal(root_ + "/w"), "keptmore");
}

// A failed fsync: Linux may have dropped the dirty pages it could not
// write, so a later fsync proves nothing: the stream persists no more.
TEST_P(Sessions, FailedFsyncPersistsNothingMore) {
  OpenStore(0, &faults_);
  auto id = Start(*store_, WriteSpec{"f"});
  ASSERT_TRUE(id.ok());
  std::unique_ptr<Writer> w = Attach(*id, 0);
  ASSERT_TRUE(Append(*w, "kept").ok());
  ASSERT_EQ(*Persist(*w), 4);
  ASSERT_TRUE(Append(*w, "doubtful").ok());
  faults_.Fail(Step::kFsync, EIO, 1, 1);
  EXPECT_EQ(Persist(*w).status().code(), absl::StatusCode::kInternal);
  faults_.Clear();
  w.reset();
  WaitDetached(*id);
  EXPECT_EQ(Query(*store_, *id)->persisted_size, 4);
}

TEST_P(Sessions, CancelledResume) {
  auto id = Start(*store_, WriteSpec{"c"});
  ASSERT_TRUE(id.ok());
  Cancellation cancel;
  cancel.Cancel();
  auto r = Await<Resumed>(
      [&](auto cb) { store_->ResumeUpload(*id, "", &cancel, std::move(cb)); });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
  // Nothing stays locked.
  EXPECT_NE(Attach(*id, 0), nullptr);
}

// Many streams racing for one session: exactly one attaches.
TEST_P(Sessions, RacingStreamsOneWins) {
  auto id = Start(*store_, WriteSpec{"race"});
  ASSERT_TRUE(id.ok());
  constexpr int kThreads = 8;
  std::vector<absl::StatusOr<Resumed>> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] { results[i] = Resume(*store_, *id); });
  }
  for (std::thread& t : threads) t.join();
  int won = 0;
  for (auto& r : results) {
    if (r.ok()) {
      ++won;
      EXPECT_NE(r->writer, nullptr);
    } else {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
    }
  }
  EXPECT_EQ(won, 1);
}

// Across processes, and kill -9 releases the lock: a child process locks
// the session as a stream would and is killed.
TEST_P(Sessions, LockHeldByAKilledProcessIsReleased) {
  auto id = Start(*store_, WriteSpec{"killed"});
  ASSERT_TRUE(id.ok());
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Only system calls here (the parent has threads).
    const int root = open(root_.c_str(), O_RDONLY | O_DIRECTORY);
    const bool locked = root >= 0 && LockSession(root, *id, "").ok();
    const char c = locked ? 'y' : 'n';
    (void)!write(pipe_fds[1], &c, 1);
    for (;;) pause();
  }
  close(pipe_fds[1]);
  char c = 0;
  ASSERT_EQ(read(pipe_fds[0], &c, 1), 1);
  close(pipe_fds[0]);
  EXPECT_EQ(c, 'y');
  EXPECT_EQ(Resume(*store_, *id).status().code(), absl::StatusCode::kAborted);
  ASSERT_EQ(kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_NE(Attach(*id, 0), nullptr);
}

TEST_P(Sessions, WholeFileChecksumSpansStreams) {
  const std::string content = RandomBytes(5000, 3);
  WriteSpec spec;
  spec.path = "crc";
  spec.crc32c = Crc32c(content) ^ 1;
  auto id = Start(*store_, spec);
  ASSERT_TRUE(id.ok());
  std::unique_ptr<Writer> w = Attach(*id, 0);
  ASSERT_TRUE(Append(*w, content.substr(0, 2000)).ok());
  w.reset();
  WaitDetached(*id);
  w = Attach(*id, 2000);
  ASSERT_TRUE(Append(*w, content.substr(2000)).ok());
  EXPECT_EQ(Commit(*w).status().code(), absl::StatusCode::kDataLoss);
  w.reset();
  ExpectAbsent("crc");
  // The session went with its data, before the failure was reported.
  EXPECT_TRUE(DirNames(uploads()).empty());
  EXPECT_EQ(Query(*store_, *id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Resume(*store_, *id).status().code(), absl::StatusCode::kNotFound);
}

TEST_P(Sessions, DeclaredSizeShortAtCommitRemovesSession) {
  WriteSpec spec;
  spec.path = "short";
  spec.size = 10;
  auto id = Start(*store_, spec);
  ASSERT_TRUE(id.ok());
  std::unique_ptr<Writer> w = Attach(*id, 0);
  ASSERT_TRUE(Append(*w, "12345").ok());
  EXPECT_EQ(Commit(*w).status().code(), absl::StatusCode::kInvalidArgument);
  w.reset();
  EXPECT_TRUE(DirNames(uploads()).empty());
}

TEST_P(Sessions, PreconditionAtStartAndAtCommit) {
  auto first = Put("pre", "one");
  ASSERT_TRUE(first.ok());
  WriteSpec spec;
  spec.path = "pre";
  spec.if_generation_match = 0;
  EXPECT_EQ(Start(*store_, spec).status().code(), absl::StatusCode::kAlreadyExists);
  spec.if_generation_match = first->generation + 1;
  EXPECT_EQ(Start(*store_, spec).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(DirNames(uploads()).empty());  // nothing created
  spec.path = "bad//path";
  EXPECT_EQ(Start(*store_, spec).status().code(), absl::StatusCode::kInvalidArgument);
  spec.path = "pre";
  spec.size = -1;
  EXPECT_EQ(Start(*store_, spec).status().code(), absl::StatusCode::kInvalidArgument);
  spec.size = 0;
  // Matches now; a commit in between makes the session's commit fail.
  spec.if_generation_match = first->generation;
  auto id = Start(*store_, spec);
  ASSERT_TRUE(id.ok()) << id.status();
  std::unique_ptr<Writer> w = Attach(*id, 0);
  ASSERT_TRUE(Append(*w, "two").ok());
  ASSERT_TRUE(Put("pre", "three").ok());
  EXPECT_EQ(Commit(*w).status().code(), absl::StatusCode::kFailedPrecondition);
  w.reset();
  EXPECT_EQ(ReadLocal(root_ + "/pre"), "three");
  EXPECT_TRUE(DirNames(uploads()).empty());
  // Must-not-exist, checked again at the commit.
  spec.path = "fresh";
  spec.if_generation_match = 0;
  id = Start(*store_, spec);
  ASSERT_TRUE(id.ok()) << id.status();
  w = Attach(*id, 0);
  ASSERT_TRUE(Put("fresh", "first").ok());
  EXPECT_EQ(Commit(*w).status().code(), absl::StatusCode::kAlreadyExists);
}

TEST_P(Sessions, OwnersAndIds) {
  auto id = Start(*store_, WriteSpec{"owned"}, "alice");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(Query(*store_, *id, "bob").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Query(*store_, *id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Resume(*store_, *id, "bob").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Cancel(*store_, *id, "bob").code(), absl::StatusCode::kNotFound);
  // Exactly what an unknown id gets.
  EXPECT_EQ(Query(*store_, *id, "bob").status().message(), absl::StrCat("no upload ", *id));
  const std::string zeros(32, '0');
  EXPECT_EQ(Query(*store_, zeros).status().message(), absl::StrCat("no upload ", zeros));
  EXPECT_TRUE(Query(*store_, *id, "alice").ok());
  std::unique_ptr<Writer> w = Attach(*id, 0, "alice");
  EXPECT_NE(w, nullptr);
  w.reset();
  // Unknown and malformed ids.
  const std::string unknown(32, 'a');
  EXPECT_EQ(Query(*store_, unknown).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Resume(*store_, unknown).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Cancel(*store_, unknown).code(), absl::StatusCode::kNotFound);
  for (const std::string& bad :
       std::vector<std::string>{"", "abc", std::string(32, 'A'), std::string(33, 'a'),
                                std::string(31, 'a') + "g", "../../../../etc/passwd"}) {
    EXPECT_EQ(Query(*store_, bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(Resume(*store_, bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(Cancel(*store_, bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  // Ids differ.
  auto other = Start(*store_, WriteSpec{"owned"}, "alice");
  ASSERT_TRUE(other.ok());
  EXPECT_NE(*other, *id);
}

TEST_P(Sessions, CancelRemovesEverything) {
  auto id = Start(*store_, WriteSpec{"gone"});
  ASSERT_TRUE(id.ok());
  std::unique_ptr<Writer> w = Attach(*id, 0);
  ASSERT_TRUE(Append(*w, RandomBytes(kBuffer * 2, 4)).ok());
  ASSERT_TRUE(Persist(*w).ok());
  w.reset();
  WaitDetached(*id);
  ASSERT_TRUE(Cancel(*store_, *id).ok());
  EXPECT_TRUE(DirNames(uploads()).empty());
  EXPECT_EQ(Query(*store_, *id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Resume(*store_, *id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Cancel(*store_, *id).code(), absl::StatusCode::kNotFound);
  ExpectAbsent("gone");
}

// A crash leaves bytes past the persisted size (written, never fsynced):
// after a restart the session reports the persisted size, and a stream
// resumes there, cutting the rest off.
TEST_P(Sessions, CrashLeavesUnsyncedTail) {
  const std::string content = RandomBytes(10000, 5);
  WriteSpec spec;
  spec.path = "crash";
  spec.size = static_cast<int64_t>(content.size());
  spec.crc32c = Crc32c(content);
  auto id = Start(*store_, spec);
  ASSERT_TRUE(id.ok());
  std::unique_ptr<Writer> w = Attach(*id, 0);
  ASSERT_TRUE(Append(*w, content.substr(0, 4000)).ok());
  ASSERT_EQ(*Persist(*w), 4000);
  w.reset();
  WaitDetached(*id);
  // What a crashed stream left: more bytes, no attribute for them.
  {
    std::ofstream out(data(*id), std::ios::binary | std::ios::app);
    out << "garbage that never reached the disk";
  }
  store_.reset();
  OpenStore();
  auto q = Query(*store_, *id);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->persisted_size, 4000);
  w = Attach(*id, 4000);
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(FileSize(data(*id)), 4000);
  ASSERT_TRUE(Append(*w, content.substr(4000)).ok());
  auto info = Commit(*w);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(ReadLocal(root_ + "/crash"), content);
}

// A crash inside a commit leaves the record `committing`: with the data
// gone the rename happened (complete); with it there it did not (open).
TEST_P(Sessions, CrashInsideCommit) {
  WriteSpec spec;
  spec.path = "c";
  auto id = Start(*store_, spec);
  ASSERT_TRUE(id.ok());
  std::unique_ptr<Writer> w = Attach(*id, 0);
  ASSERT_TRUE(Append(*w, "abcdef").ok());
  ASSERT_EQ(*Persist(*w), 6);
  w.reset();
  WaitDetached(*id);
  SessionRecord r;
  r.state = SessionState::kCommitting;
  r.spec = spec;
  r.file.path = "c";
  r.file.generation = 77;
  r.file.size = 6;
  r.file.crc32c = Crc32c("abcdef");
  r.file.modified = absl::FromUnixSeconds(1000);
  SetRecordAttr(*id, EncodeSessionRecord(r));
  store_.reset();
  OpenStore();
  // Data present: not committed; the stream goes on from the persisted size.
  auto q = Query(*store_, *id);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_FALSE(q->complete);
  EXPECT_EQ(q->persisted_size, 6);
  w = Attach(*id, 6);
  ASSERT_NE(w, nullptr);
  w.reset();
  WaitDetached(*id);
  // Data gone (renamed before the crash): complete, with the record's file.
  ASSERT_EQ(rename(data(*id).c_str(), (root_ + "/c").c_str()), 0);
  store_.reset();
  OpenStore();
  q = Query(*store_, *id);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_TRUE(q->complete);
  EXPECT_EQ(q->file.generation, 77);
  auto resumed = Resume(*store_, *id);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->writer, nullptr);
  EXPECT_TRUE(resumed->status.complete);
  EXPECT_EQ(resumed->status.file.generation, 77);
  EXPECT_EQ(resumed->status.file.crc32c, Crc32c("abcdef"));
}

TEST_P(Sessions, DataShorterThanPersistedIsDataLoss) {
  auto id = Start(*store_, WriteSpec{"short"});
  ASSERT_TRUE(id.ok());
  std::unique_ptr<Writer> w = Attach(*id, 0);
  ASSERT_TRUE(Append(*w, "abcdef").ok());
  ASSERT_EQ(*Persist(*w), 6);
  w.reset();
  WaitDetached(*id);
  ASSERT_EQ(truncate(data(*id).c_str(), 3), 0);
  EXPECT_EQ(Resume(*store_, *id).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(FileSize(data(*id)), 3);  // not extended with zeros
  // The lock was released: again DataLoss (not Aborted), and it cancels.
  EXPECT_EQ(Resume(*store_, *id).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(Cancel(*store_, *id).ok());
  EXPECT_TRUE(DirNames(uploads()).empty());
}

TEST_P(Sessions, ExpireRemovesIdleSessionsOnly) {
  auto idle = Start(*store_, WriteSpec{"idle"});
  auto busy = Start(*store_, WriteSpec{"busy"});
  auto done = Start(*store_, WriteSpec{"done"});
  ASSERT_TRUE(idle.ok() && busy.ok() && done.ok());
  std::unique_ptr<Writer> w = Attach(*done, 0);
  ASSERT_TRUE(Append(*w, "x").ok());
  ASSERT_TRUE(Commit(*w).ok());
  w = Attach(*busy, 0);
  ASSERT_TRUE(Append(*w, "y").ok());
  EXPECT_EQ(store_->ExpireUploads(absl::Hours(1)), 0);
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(store_->ExpireUploads(absl::Milliseconds(10)), 2);
  EXPECT_EQ(Query(*store_, *idle).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Query(*store_, *done).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(DirNames(uploads()), (std::vector<std::string>{*busy, *busy + ".data"}));
  EXPECT_EQ(ReadLocal(root_ + "/done"), "x");  // the committed file stays
  w.reset();
  WaitDetached(*busy);
  EXPECT_EQ(Query(*store_, *busy)->persisted_size, 1);
}

TEST_P(Sessions, OpenRemovesWhatNoSessionOwns) {
  auto live = Start(*store_, WriteSpec{"live"});
  ASSERT_TRUE(live.ok());
  const std::string orphan(32, '1'), bad(32, '2'), bare(32, '3'), young(32, '4');
  WriteLocal(data(orphan), "orphan data");
  WriteLocal(record(bad), "");
  SetRecordAttr(bad, "v1 nonsense");
  WriteLocal(data(bad), "its data");
  WriteLocal(record(bare), "");  // no attribute at all
  WriteLocal(uploads() + "/stray", "not a session's name");
  WriteLocal(data(young), "maybe being created right now");
  for (const std::string& p : {data(orphan), record(bad), data(bad), record(bare),
                               uploads() + "/stray", record(*live), data(*live)}) {
    Backdate(p, absl::Minutes(5));
  }
  store_.reset();
  OpenStore();
  std::vector<std::string> left = {*live, *live + ".data", young + ".data"};
  std::sort(left.begin(), left.end());
  EXPECT_EQ(DirNames(uploads()), left);
  EXPECT_TRUE(Query(*store_, *live).ok());
}

// With a quota, a session's commit counts every byte, from every stream.
TEST_P(Sessions, QuotaCountsAllStreams) {
  OpenStore(0, nullptr, 1 << 20);
  WriteSpec spec;
  spec.path = "q";
  auto id = Start(*store_, spec);
  ASSERT_TRUE(id.ok());
  std::unique_ptr<Writer> w = Attach(*id, 0);
  ASSERT_TRUE(Append(*w, std::string(1000, 'a')).ok());
  w.reset();
  WaitDetached(*id);
  EXPECT_EQ(store_->used_bytes(), 0);  // detached: nothing reserved
  w = Attach(*id, 1000);
  EXPECT_EQ(store_->used_bytes(), 1000);
  ASSERT_TRUE(Append(*w, std::string(500, 'b')).ok());
  ASSERT_TRUE(Commit(*w).ok());
  EXPECT_EQ(store_->committed_bytes(), 1500);
  EXPECT_EQ(store_->used_bytes(), 1500);
  spec.path = "q2";
  spec.size = 2 << 20;
  EXPECT_EQ(Start(*store_, spec).status().code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace ringstore::storage
