// BlobIndex: what a shared blob store holds, kept beside it where lookups
// are cheap (etcd in a fleet: store/etcd/etcd_blob_index.h), so that asking
// which of 20,000 hashes are missing costs a few round trips, not 20,000
// requests to the object store.
//
// The index is written after an object is stored and before it is removed,
// so an indexed hash is stored. A hash stored but never indexed (a crash
// between the two) reads as missing: a client uploads it again, which is
// harmless.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace nubo::blob {

class BlobIndex {
 public:
  struct Entry {
    uint64_t size = 0;
    int64_t touched_ms = 0;  // stored or last wanted (wall clock)
  };
  virtual ~BlobIndex() = default;
  // The entry of each hash, in order; nullopt for one not indexed.
  virtual Result<std::vector<std::optional<Entry>>> lookup(const std::vector<std::string>& hashes) = 0;
  // Writes (or rewrites: a touch) the entries.
  virtual Status add(const std::vector<std::pair<std::string, Entry>>& entries) = 0;
  virtual Status remove(const std::string& hash) = 0;
  // Every entry, in hash order; `each` returns false to stop.
  virtual Status list(const std::function<bool(const std::string& hash, const Entry& e)>& each) = 0;
};

}  // namespace nubo::blob
