// What the store knows about recently committed or read files, so that a
// small download need not read the metadata attribute.
//
// Reading an extended attribute is the one step of io_uring's small-file
// chain that the kernel always hands to an io-wq worker thread (two context
// switches per file); open, read and close complete inline. So the store
// remembers each file's metadata when it commits it (or first reads it) and
// reads small files without the attribute. An entry is only a hint: the
// store uses it only if the bytes it has just read have exactly the
// remembered size and CRC32C, so the metadata it reports always describes
// the bytes it sends (a file changed by hand, or replaced by a commit in
// between, makes it read the attribute again).
//
// Bounded: at most `capacity` entries; the least recently used goes first.
// Thread-safe.
#ifndef RINGSTORE_STORAGE_METADATA_CACHE_H_
#define RINGSTORE_STORAGE_METADATA_CACHE_H_

#include <cstddef>
#include <list>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "storage/store.h"
#include "storage/engine/sync.h"

namespace ringstore::storage {

class MetadataCache {
 public:
  explicit MetadataCache(size_t capacity) : capacity_(capacity) {}
  MetadataCache(const MetadataCache&) = delete;
  MetadataCache& operator=(const MetadataCache&) = delete;

  std::optional<ObjectInfo> Lookup(absl::string_view path);
  void Put(const ObjectInfo& info);
  void Erase(absl::string_view path);
  size_t size() const;

 private:
  using Entries = std::list<ObjectInfo>;  // most recently used first

  const size_t capacity_;
  mutable Mutex mu_;
  Entries entries_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Entries::iterator> index_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_METADATA_CACHE_H_
