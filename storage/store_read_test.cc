// Small reads on every engine (a whole file in one engine operation) and
// the metadata they carry: the attribute's encoding and the cache of
// recently used metadata.
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "third_party/system/crc32c.h"
#include "storage/engine/fault_injection.h"
#include "storage/metadata_cache.h"
#include "storage/store_test_util.h"

namespace ringstore::storage {
namespace {

TEST_P(StoreTest, ReadSmallReturnsWholeFilesThatFit) {
  auto read = [&](const std::string& path, size_t cap) {
    PooledBuffer buf = store_->pool().TryAcquire();
    auto r = Await<Store::SmallRead>([&](auto cb) {
      store_->ReadSmall(path, absl::Span<char>(buf.data(), cap), nullptr, std::move(cb));
    });
    std::string data = r.ok() && r->complete ? std::string(buf.data(), r->info.size) : "";
    return std::make_pair(std::move(r), data);
  };
  const std::string data = RandomBytes(1000, 3);
  auto info = Put("small/one", data);
  ASSERT_TRUE(info.ok());
  auto [r, got] = read("small/one", kBuffer);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->complete);
  EXPECT_EQ(got, data);
  EXPECT_EQ(r->info.path, "small/one");
  EXPECT_EQ(r->info.size, 1000);
  EXPECT_EQ(r->info.generation, info->generation);
  EXPECT_EQ(r->info.crc32c, info->crc32c);
  EXPECT_EQ(r->info.modified, info->modified);
  // Exactly the buffer: complete, the metadata vouches for the size.
  ASSERT_TRUE(Put("small/exact", std::string(1000, 'x')).ok());
  EXPECT_TRUE(read("small/exact", 1000).first->complete);
  // Larger than the buffer: not complete.
  EXPECT_FALSE(read("small/one", 999).first->complete);
  ASSERT_TRUE(Put("small/empty", "").ok());
  auto empty = read("small/empty", kBuffer);
  ASSERT_TRUE(empty.first.ok());
  EXPECT_TRUE(empty.first->complete);
  EXPECT_EQ(empty.first->info.size, 0);
  // Placed by hand (no metadata) or changed behind the store's back: the
  // size cannot be vouched for.
  std::ofstream(root_ + "/small/manual") << "hand";
  EXPECT_FALSE(read("small/manual", kBuffer).first->complete);
  truncate((root_ + "/small/one").c_str(), 10);
  EXPECT_FALSE(read("small/one", kBuffer).first->complete);
  EXPECT_EQ(read("small/none", kBuffer).first.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(read("small", kBuffer).first.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(read("../x", kBuffer).first.status().code(), absl::StatusCode::kInvalidArgument);
}

// A small download of a file the store has committed skips reading its
// metadata attribute, but only while the bytes match what it remembers.
TEST_P(StoreTest, ReadSmallTrustsRememberedMetadataOnlyForTheSameBytes) {
  auto read = [&](const std::string& path) {
    PooledBuffer buf = store_->pool().TryAcquire();
    auto r = Await<Store::SmallRead>([&](auto cb) {
      store_->ReadSmall(path, absl::Span<char>(buf.data(), kBuffer), nullptr, std::move(cb));
    });
    std::string data = r.ok() && r->complete ? std::string(buf.data(), r->info.size) : "";
    return std::make_pair(std::move(r), data);
  };
  OpenStore(0, &faults_);
  auto first = Put("k/f", "first version");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(store_->metadata().Lookup("k/f")->generation, first->generation);
  auto second = Put("k/f", "second version!");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(store_->metadata().Lookup("k/f")->generation, second->generation);
  // The attribute is not read at all: failing every attribute read does
  // not fail the download.
  faults_.Fail(Step::kGetXattr, EIO);
  auto [r, got] = read("k/f");
  faults_.Clear();
  ASSERT_TRUE(r.ok() && r->complete) << r.status();
  EXPECT_EQ(got, "second version!");
  EXPECT_EQ(r->info.generation, second->generation);
  EXPECT_EQ(r->info.crc32c, Crc32c("second version!"));
  // It checked the bytes against the remembered CRC32C: the reactors send
  // that one instead of computing it again.
  EXPECT_TRUE(r->crc32c_checked);
  // Changed by hand behind the store's back, same size: the bytes no longer
  // match what it remembers, so it reads the attribute again and sends what
  // is there now.
  {
    std::fstream f(root_ + "/k/f", std::ios::in | std::ios::out | std::ios::binary);
    f << "SECOND";
  }
  auto [changed, now] = read("k/f");
  ASSERT_TRUE(changed.ok() && changed->complete);
  EXPECT_EQ(now, "SECOND version!");
  // The attribute's CRC32C is not that of these bytes: not vouched for.
  EXPECT_FALSE(changed->crc32c_checked);
  // Deleted: forgotten.
  ASSERT_TRUE(Delete("k/f").ok());
  EXPECT_FALSE(store_->metadata().Lookup("k/f").has_value());
  EXPECT_EQ(read("k/f").first.status().code(), absl::StatusCode::kNotFound);
  // A file the store has not seen is learnt on its first small read.
  std::string data = RandomBytes(500, 5);
  ASSERT_TRUE(Put("k/g", data).ok());
  OpenStore(0, &faults_);  // a restart forgets
  EXPECT_FALSE(store_->metadata().Lookup("k/g").has_value());
  auto [learnt, learnt_data] = read("k/g");
  EXPECT_EQ(learnt_data, data);
  EXPECT_FALSE(learnt->crc32c_checked);  // read with its attribute, not checked
  EXPECT_TRUE(store_->metadata().Lookup("k/g").has_value());
}

// A file larger than the buffer comes back opened, for streaming: once the
// store knows its size (it committed it, or read it once), with one engine
// open and one metadata read, instead of a read of the first buffer in vain
// and a second open. The second open and the second attribute read are made
// to fail, so any extra one fails the read.
TEST_P(StoreTest, ReadSmallOpensALargeFileOnce) {
  OpenStore(0, &faults_);
  const std::string data = RandomBytes(3 * kBuffer - 100, 9);
  auto info = Put("big/three", data);
  ASSERT_TRUE(info.ok()) << info.status();
  auto read_all = [&]() -> absl::StatusOr<std::string> {
    PooledBuffer buf = store_->pool().TryAcquire();
    auto r = Await<Store::SmallRead>([&](auto cb) {
      store_->ReadSmall("big/three", absl::Span<char>(buf.data(), kBuffer), nullptr,
                        std::move(cb));
    });
    if (!r.ok()) return r.status();
    if (r->complete || r->reader == nullptr) return absl::InternalError("no reader");
    if (r->reader->info().generation != info->generation) {
      return absl::InternalError("another generation");
    }
    std::string got;
    for (int64_t off = 0; off < static_cast<int64_t>(data.size()); off += kBuffer) {
      auto n = Await<size_t>([&](auto cb) {
        r->reader->Read(off, absl::Span<char>(buf.data(), kBuffer), nullptr, std::move(cb));
      });
      if (!n.ok()) return n.status();
      got.append(buf.data(), *n);
    }
    return got;
  };
  auto fail_second = [&] {
    faults_.Clear();
    faults_.Fail(Step::kOpen, EIO, /*every=*/2, /*count=*/1);
    faults_.Fail(Step::kGetXattr, EIO, /*every=*/2, /*count=*/1);
  };
  fail_second();
  auto got = read_all();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, data);
  EXPECT_EQ(faults_.injected(Step::kOpen), 0);
  EXPECT_EQ(faults_.injected(Step::kGetXattr), 0);
  // After a restart the store does not know the file: the first read opens
  // it twice (a read of the first buffer with the metadata, then the open
  // for streaming), and remembers it, so the next one opens it once.
  faults_.Clear();
  OpenStore(0, &faults_);
  got = read_all();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, data);
  fail_second();
  got = read_all();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, data);
  EXPECT_EQ(faults_.injected(Step::kOpen), 0);
  faults_.Clear();
}

// A remembered file exactly the size of the buffer fills it, so the bytes
// alone cannot say that nothing follows: it is read once, with its
// metadata attribute, which vouches for the size (not read without it
// first and then again with it). The second open is made to fail.
TEST_P(StoreTest, ReadSmallReadsAFileThatFillsTheBufferOnce) {
  OpenStore(0, &faults_);
  const std::string data = RandomBytes(kBuffer, 11);
  auto info = Put("exact/one", data);
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_TRUE(store_->metadata().Lookup("exact/one").has_value());
  PooledBuffer buf = store_->pool().TryAcquire();
  faults_.Fail(Step::kOpen, EIO, /*every=*/2, /*count=*/1);
  auto r = Await<Store::SmallRead>([&](auto cb) {
    store_->ReadSmall("exact/one", absl::Span<char>(buf.data(), kBuffer), nullptr, std::move(cb));
  });
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->complete);
  EXPECT_EQ(std::string(buf.data(), kBuffer), data);
  EXPECT_EQ(r->info.generation, info->generation);
  EXPECT_EQ(faults_.injected(Step::kOpen), 0);
  faults_.Clear();
}

// First reads of large files that miss the page cache go around it once
// the planner has seen enough of them (first_read_planner.h), on io_uring;
// a file read again goes through it. Whatever the plan, every read returns
// the file whole.
TEST_P(StoreTest, FirstReadsOfLargeUncachedFilesGoAroundTheCache) {
  constexpr size_t kLargeBuffer = 1 << 20;
  constexpr int64_t kSize = FirstReadPlanner::kLargeBytes;
  // 8 probes that miss predict; a probe may find a file whole if the disk
  // was quick (the kernel reads ahead for it), so there is room for four
  // such before the last period.
  constexpr int kFiles = 13 * FirstReadPlanner::kProbeEvery;
  std::vector<uint32_t> crcs;
  for (int i = 0; i < kFiles; ++i) {
    auto info = Put(absl::StrCat("large/", i), RandomBytes(kSize, i));
    ASSERT_TRUE(info.ok()) << info.status();
    crcs.push_back(info->crc32c);
  }
  // A store that does not know the files yet, with buffers they fit.
  OpenStore(0, nullptr, 0, kLargeBuffer);
  for (int i = 0; i < kFiles; ++i) {
    if (!Evict(absl::StrCat(root_, "/large/", i))) {
      GTEST_SKIP() << "this file system keeps files in the page cache";
    }
  }
  PooledBuffer buf = store_->pool().TryAcquire();
  auto read = [&](int i) {
    auto r = Await<Store::SmallRead>([&](auto cb) {
      store_->ReadSmall(absl::StrCat("large/", i), absl::Span<char>(buf.data(), kLargeBuffer),
                        nullptr, std::move(cb));
    });
    ASSERT_TRUE(r.ok()) << i << ": " << r.status();
    ASSERT_TRUE(r->complete) << i;
    EXPECT_EQ(r->info.size, kSize);
    EXPECT_EQ(r->info.crc32c, crcs[i]);
    EXPECT_EQ(Crc32c(absl::string_view(buf.data(), kSize)), crcs[i]) << i;
  };
  // Reads made while the metadata cache is not usable (a lease that ran
  // out under load) are not planned: they go through the cache.
  int unplanned = 0;
  for (int i = 0; i < kFiles; ++i) {
    bool usable = store_->metadata().usable();
    read(i);
    usable = usable && store_->metadata().usable();
    if (!usable) ++unplanned;
  }
  auto cached = [&](int i) { return CachedPages(absl::StrCat(root_, "/large/", i)) > 0; };
  EXPECT_TRUE(cached(1)) << "read through the cache before the prediction";
  // So the last period comes after the prediction: on io_uring all its
  // files but the probe (one that missed reads the file again through the
  // cache, where the kernel has begun to read it) stay out of the cache.
  const bool around = expected_backend == Backend::kIoUring &&
                      !store_->engine().stats().io_uring_sqpoll;
  constexpr int kLast = FirstReadPlanner::kProbeEvery;
  int out_of_cache = 0, last_out = -1;
  for (int i = kFiles - kLast; i < kFiles; ++i) {
    if (!cached(i)) ++out_of_cache, last_out = i;
  }
  if (around) {
    EXPECT_GE(out_of_cache, kLast - 1 - unplanned) << unplanned << " reads unplanned";
    // Read again: known now, so through the cache.
    ASSERT_GE(last_out, 0);
    read(last_out);
    EXPECT_TRUE(cached(last_out));
  } else {
    EXPECT_EQ(out_of_cache, 0);
  }
}

TEST(MetadataCache, KeepsTheMostRecentlyUsed) {
  MetadataCache cache(2);
  cache.Observe(MetadataCache::Clock::now(), /*others_live=*/false);  // alone
  auto info = [](const std::string& path, int64_t generation) {
    ObjectInfo i;
    i.path = path;
    i.generation = generation;
    return i;
  };
  cache.Put(info("a", 1));
  cache.Put(info("b", 2));
  EXPECT_EQ(cache.Lookup("a")->generation, 1);  // a is now the most recent
  cache.Put(info("c", 3));                      // so b goes
  EXPECT_FALSE(cache.Lookup("b").has_value());
  cache.Put(info("a", 4));  // replaces
  EXPECT_EQ(cache.Lookup("a")->generation, 4);
  EXPECT_EQ(cache.size(), 2u);
  cache.Erase("a");
  EXPECT_FALSE(cache.Lookup("a").has_value());
  EXPECT_EQ(cache.size(), 1u);
  MetadataCache off(0);
  off.Observe(MetadataCache::Clock::now(), false);
  off.Put(info("a", 1));
  EXPECT_FALSE(off.Lookup("a").has_value());
}

TEST(Metadata, RoundTripAndFallback) {
  Metadata m;
  m.generation = 42;
  m.crc32c = 4000000000u;
  m.size = 77;
  m.modified = absl::FromUnixNanos(1700000000123456789);
  const std::optional<Metadata> back = ParseMetadata(EncodeMetadata(m));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->generation, 42);
  EXPECT_EQ(back->crc32c, 4000000000u);
  EXPECT_EQ(back->size, 77);
  EXPECT_EQ(back->modified, m.modified);
  ObjectInfo info;
  DecodeMetadata(EncodeMetadata(m), absl::FromUnixMicros(5), &info);
  EXPECT_EQ(info.generation, 42);
  EXPECT_EQ(info.modified, m.modified);

  const absl::Time mtime = absl::FromUnixMicros(1234567);
  for (const char* bad : {"", "v1", "v1 1 2", "v2 1 2 3 4", "v1 x 2 3 4", "v1 1 x 3 4",
                          "v1 0 3 3 4", "v1 -5 3 3 4", "v1 1 2 -3 4", "v1 1 2 3 x",
                          "v1 1 2 3 4 5", "v1 1 99999999999 3 4"}) {
    EXPECT_FALSE(ParseMetadata(bad).has_value()) << bad;
    ObjectInfo i;
    DecodeMetadata(bad, mtime, &i);
    EXPECT_EQ(i.generation, 1234567) << bad;
    EXPECT_EQ(i.crc32c, 0u) << bad;
    EXPECT_EQ(i.modified, mtime) << bad;
  }
}

INSTANTIATE_TEST_SUITE_P(AllEngines, StoreTest, testing::ValuesIn(EngineNames()),
                         EngineParamName);

}  // namespace
}  // namespace ringstore::storage
