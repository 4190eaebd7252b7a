#include "storage/metadata_cache.h"

namespace ringstore::storage {

std::optional<ObjectInfo> MetadataCache::Lookup(absl::string_view path) {
  MutexLock lock(&mu_);
  auto it = index_.find(path);
  if (it == index_.end()) return std::nullopt;
  entries_.splice(entries_.begin(), entries_, it->second);
  return *it->second;
}

void MetadataCache::Put(const ObjectInfo& info) {
  if (capacity_ == 0) return;
  MutexLock lock(&mu_);
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
