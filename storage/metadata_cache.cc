#include "storage/metadata_cache.h"

namespace ringstore::storage {

void MetadataCache::Observe(Clock::time_point asked, bool others_live) {
  MutexLock lock(&mu_);
  if (others_live) {
    if (alone_) NewEpochLocked();
    alone_ = false;
    return;
  }
  // A lease that ran out before this renewal leaves a gap in which another
  // server may have come and gone: start afresh.
  if (!alone_ || asked >= lease_until_) NewEpochLocked();
  alone_ = true;
  lease_until_ = asked + absl::ToChronoMilliseconds(kMetadataLease);
}

bool MetadataCache::UsableLocked(Clock::time_point now) const {
  return capacity_ > 0 && alone_ && now < lease_until_;
}

bool MetadataCache::usable() const {
  MutexLock lock(&mu_);
  return UsableLocked(Clock::now());
}

uint64_t MetadataCache::epoch() const {
  MutexLock lock(&mu_);
  return epoch_;
}

void MetadataCache::NewEpochLocked() {
  ++epoch_;
  entries_.clear();
  index_.clear();
}

std::optional<ObjectInfo> MetadataCache::Lookup(absl::string_view path) {
  const Clock::time_point now = Clock::now();
  MutexLock lock(&mu_);
  if (!UsableLocked(now)) return std::nullopt;
  auto it = index_.find(path);
  if (it == index_.end()) return std::nullopt;
  entries_.splice(entries_.begin(), entries_, it->second);
  return *it->second;
}

void MetadataCache::Put(const ObjectInfo& info, uint64_t epoch) {
  const Clock::time_point now = Clock::now();
  MutexLock lock(&mu_);
  if (epoch != epoch_ || !UsableLocked(now)) return;
  PutLocked(info);
}

void MetadataCache::Put(const ObjectInfo& info) {
  const Clock::time_point now = Clock::now();
  MutexLock lock(&mu_);
  if (!UsableLocked(now)) return;
  PutLocked(info);
}

void MetadataCache::PutLocked(const ObjectInfo& info) {
  auto it = index_.find(info.path);
  if (it != index_.end()) {
    *it->second = info;
    entries_.splice(entries_.begin(), entries_, it->second);
    return;
  }
  if (entries_.size() == capacity_) {
    index_.erase(entries_.back().path);
    entries_.pop_back();
  }
  entries_.push_front(info);
  index_.emplace(info.path, entries_.begin());
}

void MetadataCache::Erase(absl::string_view path) {
  MutexLock lock(&mu_);
  auto it = index_.find(path);
  if (it == index_.end()) return;
  entries_.erase(it->second);
  index_.erase(it);
}

size_t MetadataCache::size() const {
  MutexLock lock(&mu_);
  return entries_.size();
}

}  // namespace ringstore::storage
