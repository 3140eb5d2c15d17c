#include "gateway/file_cache.h"

namespace nubo::gateway {

FileCache::FileCache(blob::BlobStore& blobs, uint64_t capacity_bytes, uint64_t max_file_bytes)
    : blobs_(blobs), capacity_(capacity_bytes), max_file_bytes_(max_file_bytes) {}

Result<std::shared_ptr<const std::string>> FileCache::get(const std::string& hash) {
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(hash);
    if (it != entries_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.lru_pos);
      return it->second.bytes;
    }
  }
  ASSIGN_OR_RETURN(std::string bytes, blobs_.get(hash));
  auto shared = std::make_shared<const std::string>(std::move(bytes));
  if (shared->size() > max_file_bytes_ || shared->size() > capacity_) return shared;

  std::lock_guard lock(mu_);
  auto [it, inserted] = entries_.try_emplace(hash);
  if (!inserted) return it->second.bytes;  // another thread got there first
  lru_.push_front(hash);
  it->second = Entry{shared, lru_.begin()};
  bytes_ += shared->size();
  while (bytes_ > capacity_ && !lru_.empty()) {
    auto victim = entries_.find(lru_.back());
    bytes_ -= victim->second.bytes->size();
    entries_.erase(victim);
    lru_.pop_back();
  }
  return shared;
}

FileCache::Usage FileCache::usage() const {
  std::lock_guard lock(mu_);
  return {bytes_, entries_.size(), capacity_};
}

}  // namespace nubo::gateway
