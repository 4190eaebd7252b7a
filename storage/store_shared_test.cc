// Two servers on one root (DESIGN.md §3, issue 13 point 5), on every
// engine: two Stores opened on the same root in this process. Each has its
// own descriptor of the root's lock file, so their OFD locks conflict
// exactly as two processes' (or two machines') do.
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "storage/metadata_cache.h"
#include "storage/store_test_util.h"
#include "third_party/system/crc32c.h"

namespace ringstore::storage {
namespace {

class SharedRootTest : public StoreTest {
 protected:
  // A second server on the same root (its Open waits kJoinWait: the first
  // is live).
  std::unique_ptr<Store> OpenOther() {
    StoreOptions options = store_->options();
    const absl::Time start = absl::Now();
    auto store = Store::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    EXPECT_GE(absl::Now() - start, kJoinWait);
    return store.ok() ? *std::move(store) : nullptr;
  }

  absl::StatusOr<std::unique_ptr<Writer>> WriterOn(Store& s, const std::string& path,
                                                   std::optional<int64_t> generation) {
    WriteSpec spec;
    spec.path = path;
    spec.if_generation_match = generation;
    return Await<std::unique_ptr<Writer>>(
        [&](auto cb) { s.CreateWriter(std::move(spec), std::move(cb)); });
  }

  absl::StatusOr<ObjectInfo> PutOn(Store& s, const std::string& path, const std::string& data,
                                   std::optional<int64_t> generation = std::nullopt) {
    auto w = WriterOn(s, path, generation);
    if (!w.ok()) return w.status();
    if (absl::Status st = Append(**w, data); !st.ok()) return st;
    return Commit(**w);
  }

  absl::StatusOr<ObjectInfo> StatOn(Store& s, const std::string& path) {
    return Await<ObjectInfo>([&](auto cb) { s.Stat(path, std::move(cb)); });
  }

  // ReadSmall: the info and the bytes, if complete.
  std::pair<absl::StatusOr<Store::SmallRead>, std::string> ReadSmallOn(Store& s,
                                                                       const std::string& path) {
    PooledBuffer buf = s.pool().TryAcquire();
    auto r = Await<Store::SmallRead>([&](auto cb) {
      s.ReadSmall(path, absl::Span<char>(buf.data(), kBuffer), nullptr, std::move(cb));
    });
    std::string data = r.ok() && r->complete ? std::string(buf.data(), r->info.size) : "";
    return {std::move(r), data};
  }

  // Commits `wa` and `wb` at the same time from two threads.
  std::pair<absl::StatusOr<ObjectInfo>, absl::StatusOr<ObjectInfo>> CommitBoth(Writer& wa,
                                                                                Writer& wb) {
    absl::StatusOr<ObjectInfo> a = absl::UnknownError("unset"), b = a;
    std::thread ta([&] { a = Commit(wa); });
    std::thread tb([&] { b = Commit(wb); });
    ta.join();
    tb.join();
    return {a, b};
  }

  std::string TmpDir() const { return root_ + "/.ringstore/tmp"; }
};

// Both pass the check at the start (the path is absent then); at the
// commit, under the lock both servers honour, exactly one wins.
TEST_P(SharedRootTest, OnlyOneOfTwoServersCreatesAPath) {
  std::unique_ptr<Store> other = OpenOther();
  ASSERT_NE(other, nullptr);
  for (int round = 0; round < 20; ++round) {
    const std::string path = absl::StrCat("create/", round);
    const std::string da = RandomBytes(1000 + round, 2 * round);
    const std::string db = RandomBytes(2000 + round, 2 * round + 1);
    auto wa = WriterOn(*store_, path, 0);
    auto wb = WriterOn(*other, path, 0);
    ASSERT_TRUE(wa.ok() && wb.ok());
    ASSERT_TRUE(Append(**wa, da).ok());
    ASSERT_TRUE(Append(**wb, db).ok());
    auto [a, b] = CommitBoth(**wa, **wb);
    ASSERT_NE(a.ok(), b.ok()) << round << ": " << a.status() << " / " << b.status();
    const absl::Status& lost = a.ok() ? b.status() : a.status();
    EXPECT_EQ(lost.code(), absl::StatusCode::kAlreadyExists) << lost;
    const std::string& won = a.ok() ? da : db;
    const ObjectInfo& info = a.ok() ? *a : *b;
    EXPECT_EQ(ReadLocal(root_ + "/" + path), won);
    EXPECT_EQ(StatOn(*store_, path)->generation, info.generation);
    EXPECT_EQ(StatOn(*other, path)->generation, info.generation);
  }
  EXPECT_TRUE(TempEmpties());
}

// Overwrites pinned to the generation both just read: one per round wins,
// the other fails its precondition, and the generation only grows.
TEST_P(SharedRootTest, RacingOverwritesOfTheCurrentGenerationHaveOneWinner) {
  std::unique_ptr<Store> other = OpenOther();
  ASSERT_NE(other, nullptr);
  auto first = PutOn(*store_, "race", "start");
  ASSERT_TRUE(first.ok());
  int64_t generation = first->generation;
  int wins_a = 0, wins_b = 0;
  for (int round = 0; round < 30; ++round) {
    const std::string da = absl::StrCat("a", round, RandomBytes(100, round));
    const std::string db = absl::StrCat("b", round, RandomBytes(200, round));
    auto wa = WriterOn(*store_, "race", generation);
    auto wb = WriterOn(*other, "race", generation);
    ASSERT_TRUE(wa.ok() && wb.ok()) << wa.status() << " / " << wb.status();
    ASSERT_TRUE(Append(**wa, da).ok());
    ASSERT_TRUE(Append(**wb, db).ok());
    auto [a, b] = CommitBoth(**wa, **wb);
    ASSERT_NE(a.ok(), b.ok()) << round << ": " << a.status() << " / " << b.status();
    const absl::Status& lost = a.ok() ? b.status() : a.status();
    EXPECT_EQ(lost.code(), absl::StatusCode::kFailedPrecondition) << lost;
    const ObjectInfo& info = a.ok() ? *a : *b;
    (a.ok() ? wins_a : wins_b)++;
    EXPECT_GT(info.generation, generation);
    generation = info.generation;
    EXPECT_EQ(ReadLocal(root_ + "/race"), a.ok() ? da : db);
    EXPECT_EQ(StatOn(*other, "race")->generation, generation);
  }
  EXPECT_EQ(wins_a + wins_b, 30);
}

// One server's counter far ahead of the other's (a clock an hour fast):
// the other's commits of that path still get higher generations, with and
// without a precondition, and after a delete and re-create through it.
TEST_P(SharedRootTest, GenerationsIncreaseAcrossServersWhoseCountersDiffer) {
  std::unique_ptr<Store> other = OpenOther();
  ASSERT_NE(other, nullptr);
  store_->ObserveGeneration(absl::ToUnixMicros(absl::Now() + absl::Hours(1)));
  int64_t last = 0;
  for (int i = 0; i < 10; ++i) {
    auto a = PutOn(*store_, "gen", absl::StrCat("a", i));
    ASSERT_TRUE(a.ok());
    EXPECT_GT(a->generation, last);
    last = a->generation;
  }
  EXPECT_GT(last, absl::ToUnixMicros(absl::Now() + absl::Minutes(59)));
  auto b = PutOn(*other, "gen", "b");
  ASSERT_TRUE(b.ok());
  EXPECT_GT(b->generation, last);
  auto pinned = PutOn(*other, "gen", "b2", b->generation);
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  EXPECT_GT(pinned->generation, b->generation);
  // Interleaved, the order of commits is the order of generations.
  last = pinned->generation;
  for (int i = 0; i < 20; ++i) {
    auto c = PutOn(i % 2 ? *store_ : *other, "gen", absl::StrCat("c", i));
    ASSERT_TRUE(c.ok());
    EXPECT_GT(c->generation, last) << i;
    last = c->generation;
  }
  // A third path, made ahead by the fast server, deleted and re-created by
  // the slow one: the slow one saw the generation it deleted.
  auto ahead = PutOn(*store_, "gone", "x");
  ASSERT_TRUE(ahead.ok());
  ASSERT_TRUE(AwaitStatus([&](auto cb) { other->Delete("gone", std::nullopt, std::move(cb)); })
                  .ok());
  auto again = PutOn(*other, "gone", "y", 0);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_GT(again->generation, ahead->generation);
}

// A alone caches a small file's metadata; B joins and replaces the file
// with the very same bytes: A must report B's generation, never the one it
// remembered (size and CRC32C cannot tell the two apart).
TEST_P(SharedRootTest, NoStaleMetadataAfterAnotherServerReplacedAFile) {
  const std::string data = "same bytes, new generation";
  auto mine = PutOn(*store_, "s", data);
  ASSERT_TRUE(mine.ok());
  auto [r0, got0] = ReadSmallOn(*store_, "s");
  ASSERT_TRUE(r0.ok() && r0->complete);
  ASSERT_TRUE(store_->metadata().Lookup("s").has_value());  // alone: cached
  std::unique_ptr<Store> other = OpenOther();
  ASSERT_NE(other, nullptr);
  EXPECT_FALSE(store_->metadata().usable());
  auto theirs = PutOn(*other, "s", data);
  ASSERT_TRUE(theirs.ok());
  ASSERT_GT(theirs->generation, mine->generation);
  auto [r1, got1] = ReadSmallOn(*store_, "s");
  ASSERT_TRUE(r1.ok() && r1->complete);
  EXPECT_EQ(got1, data);
  EXPECT_EQ(r1->info.generation, theirs->generation);
  EXPECT_EQ(StatOn(*store_, "s")->generation, theirs->generation);
  auto reader = Await<std::unique_ptr<Reader>>(
      [&](auto cb) { store_->OpenReader("s", std::move(cb)); });
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->info().generation, theirs->generation);
  reader->reset();
  // And the other way round, while both run.
  auto [r2, got2] = ReadSmallOn(*other, "s");
  ASSERT_TRUE(r2.ok() && r2->complete);
  auto mine2 = PutOn(*store_, "s", data);
  ASSERT_TRUE(mine2.ok());
  EXPECT_EQ(ReadSmallOn(*other, "s").first->info.generation, mine2->generation);
  // B leaves: A is alone again, with a fresh cache (what it knew before B
  // came is gone) that it fills again.
  other.reset();
  ASSERT_TRUE([&] {
    for (int i = 0; i < 500 && !store_->metadata().usable(); ++i) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    return store_->metadata().usable();
  }());
  EXPECT_EQ(store_->metadata().size(), 0u);
  auto [r3, got3] = ReadSmallOn(*store_, "s");
  ASSERT_TRUE(r3.ok() && r3->complete);
  EXPECT_EQ(r3->info.generation, mine2->generation);
  EXPECT_EQ(store_->metadata().Lookup("s")->generation, mine2->generation);
}

// Open removes dead servers' temp data, never a live one's: an upload in
// flight on A survives B's Open and commits.
TEST_P(SharedRootTest, OpenRemovesOnlyDeadServersTempData) {
  WriteSpec spec;
  spec.path = "in/flight";
  auto w = NewWriter(spec);
  ASSERT_TRUE(w.ok());
  const std::string part1 = RandomBytes(3 * kBuffer + 11, 1);
  ASSERT_TRUE(Append(**w, part1).ok());
  const std::vector<std::string> mine = TempFiles();
  ASSERT_EQ(mine.size(), 1u);
  // A dead server: its lock file unlocked, its directory with a file.
  ASSERT_EQ(mkdir((TmpDir() + "/deadbeef").c_str(), 0755), 0);
  std::ofstream(TmpDir() + "/deadbeef/upload") << "partial";
  std::ofstream(TmpDir() + "/deadbeef.lock");
  std::unique_ptr<Store> other = OpenOther();
  ASSERT_NE(other, nullptr);
  EXPECT_FALSE(Exists(TmpDir() + "/deadbeef"));
  EXPECT_FALSE(Exists(TmpDir() + "/deadbeef.lock"));
  EXPECT_TRUE(Exists(TmpDir() + "/" + mine[0]));
  // B's own directory is there, and empty.
  EXPECT_EQ(TempFiles(), mine);
  const std::string part2 = RandomBytes(kBuffer + 5, 2);
  ASSERT_TRUE(Append(**w, part2).ok());
  auto info = Commit(**w);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(ReadLocal(root_ + "/in/flight"), part1 + part2);
  EXPECT_EQ(info->crc32c, Crc32c(part1 + part2));
  // B uploads through its own directory; A's Open (a restart of A while
  // B runs) leaves B's upload alone too.
  auto wb = WriterOn(*other, "from/b", std::nullopt);
  ASSERT_TRUE(wb.ok());
  ASSERT_TRUE(Append(**wb, "b's data").ok());
  const std::vector<std::string> theirs = TempFiles();
  ASSERT_EQ(theirs.size(), 1u);
  w->reset();
  store_.reset();
  OpenStore();  // waits kJoinWait: B is live
  EXPECT_TRUE(Exists(TmpDir() + "/" + theirs[0]));
  ASSERT_TRUE(Commit(**wb).ok());
  EXPECT_EQ(ReadLocal(root_ + "/from/b"), "b's data");
  wb->reset();
  // Leaving removes one's own directory and lock file: only A's remain.
  other.reset();
  int entries = 0;
  if (DIR* d = opendir(TmpDir().c_str())) {
    while (dirent* e = readdir(d)) entries += e->d_name[0] != '.';
    closedir(d);
  }
  EXPECT_EQ(entries, 2);  // <A>.lock and <A>/
  EXPECT_TRUE(TempEmpties());
}

// Each server counts only its own commits against the quota: one that
// shared the root leaves no clean count for the next Open to trust.
TEST_P(SharedRootTest, AServerThatSharedTheRootLeavesNoCleanCount) {
  OpenStore(0, nullptr, /*max_store_bytes=*/1 << 20);
  std::unique_ptr<Store> other = OpenOther();
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(PutOn(*other, "theirs", std::string(1000, 'b')).ok());
  other.reset();
  ASSERT_TRUE(PutOn(*store_, "mine", std::string(100, 'a')).ok());
  store_.reset();
  char value[64] = {};
  const ssize_t n = getxattr((root_ + "/.ringstore").c_str(), "user.ringstore.bytes", value,
                             sizeof(value) - 1);
  ASSERT_GT(n, 0);
  EXPECT_STREQ(value, "v1 dirty");
  OpenStore(0, nullptr, 1 << 20);  // walks
  EXPECT_EQ(store_->committed_bytes(), 1100);
  // Alone from start to end: clean, and trusted.
  store_.reset();
  OpenStore(0, nullptr, 1 << 20);
  EXPECT_EQ(store_->committed_bytes(), 1100);
}

INSTANTIATE_TEST_SUITE_P(AllEngines, SharedRootTest, testing::ValuesIn(EngineNames()),
                         EngineParamName);

// The lease (metadata_cache.h), without stores.
TEST(MetadataCacheLease, UsedOnlyWhileAloneUnderALease) {
  using Clock = MetadataCache::Clock;
  MetadataCache cache(10);
  ObjectInfo info;
  info.path = "p";
  info.generation = 1;
  cache.Put(info);
  EXPECT_FALSE(cache.usable());  // nothing observed yet
  EXPECT_EQ(cache.size(), 0u);
  cache.Observe(Clock::now(), /*others_live=*/false);
  EXPECT_TRUE(cache.usable());
  const uint64_t before = cache.epoch();
  cache.Put(info);
  EXPECT_EQ(cache.Lookup("p")->generation, 1);
  // Renewed in time: same epoch, entries kept.
  cache.Observe(Clock::now(), false);
  EXPECT_EQ(cache.epoch(), before);
  EXPECT_TRUE(cache.Lookup("p").has_value());
  // Another server: emptied, unused, a new epoch; a read that began before
  // cannot put what it learnt.
  cache.Observe(Clock::now(), true);
  EXPECT_FALSE(cache.usable());
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_NE(cache.epoch(), before);
  cache.Observe(Clock::now(), false);  // alone again: another epoch
  cache.Put(info, before);
  EXPECT_FALSE(cache.Lookup("p").has_value());
  cache.Put(info, cache.epoch());
  EXPECT_TRUE(cache.Lookup("p").has_value());
  // A lease that ran out: not used, and its renewal starts afresh.
  const uint64_t e = cache.epoch();
  cache.Observe(Clock::now() - absl::ToChronoMilliseconds(kMetadataLease + absl::Seconds(1)),
                false);
  EXPECT_FALSE(cache.usable());
  EXPECT_FALSE(cache.Lookup("p").has_value());
  cache.Observe(Clock::now(), false);
  EXPECT_NE(cache.epoch(), e);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_TRUE(cache.usable());
  EXPECT_GT(kJoinWait, kMetadataLease);
}

}  // namespace
}  // namespace ringstore::storage
