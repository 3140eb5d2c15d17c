// FileCache: hot blob bytes held in memory, bounded by total bytes, least
// recently used evicted first. Blobs are immutable, so entries never go
// stale. Only blobs up to max_file_bytes are cached; bigger ones stream from
// disk.
//
// Thread-safe; the lock is never held during I/O (a miss reads the blob
// outside it, so two threads may read the same blob once each).
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "blob/blob_store.h"
#include "common/status.h"

namespace nubo::gateway {

class FileCache {
 public:
  FileCache(blob::BlobStore& blobs, uint64_t capacity_bytes, uint64_t max_file_bytes);

  uint64_t maxFileBytes() const { return max_file_bytes_; }

  // The blob's bytes, from memory or read (and cached) now.
  Result<std::shared_ptr<const std::string>> get(const std::string& hash);

  struct Usage {
    uint64_t bytes = 0, entries = 0, capacity = 0;
  };
  Usage usage() const;

 private:
  struct Entry {
    std::shared_ptr<const std::string> bytes;
    std::list<std::string>::iterator lru_pos;
  };

  blob::BlobStore& blobs_;
  const uint64_t capacity_;
  const uint64_t max_file_bytes_;

  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;  // guarded by mu_
  std::list<std::string> lru_;                      // guarded by mu_, front = newest
  uint64_t bytes_ = 0;                              // guarded by mu_
};

}  // namespace nubo::gateway
