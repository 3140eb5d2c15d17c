#include "blob/s3/s3_blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "common/clock.h"
#include "common/sha256.h"

namespace nubo::blob {

Result<std::unique_ptr<S3BlobStore>> S3BlobStore::create(std::unique_ptr<s3::S3Client> s3,
                                                         std::shared_ptr<BlobIndex> index, S3BlobOptions options) {
  if (!s3 || !index) return InvalidArgument("an S3 blob store needs a client and an index");
  if (options.cache_dir.empty()) return InvalidArgument("an S3 blob store needs a cache directory");
  if (Status s = s3->checkBucket(); !s.ok()) {
    return Status(s.code(), "object store: " + s.message());
  }
  ASSIGN_OR_RETURN(auto cache, LocalBlobStore::create(options.cache_dir));
  std::unique_ptr<S3BlobStore> store(new S3BlobStore(std::move(s3), std::move(index), std::move(options), std::move(cache)));
  // What an earlier run cached, oldest use last.
  std::vector<Listed> held;
  RETURN_IF_ERROR(store->cache_->list([&](const Listed& l) {
    held.push_back(l);
    return true;
  }));
  std::sort(held.begin(), held.end(), [](const Listed& a, const Listed& b) { return a.touched_ms < b.touched_ms; });
  for (const auto& l : held) store->admit(l.hash, l.size);
  return store;
}

S3BlobStore::S3BlobStore(std::unique_ptr<s3::S3Client> s3, std::shared_ptr<BlobIndex> index, S3BlobOptions options,
                         std::unique_ptr<LocalBlobStore> cache)
    : s3_(std::move(s3)), index_(std::move(index)), opts_(std::move(options)), cache_(std::move(cache)) {}

Status S3BlobStore::objectStoreError(const Status& s) const {
  if (s.ok()) return s;
  if (s.code() == Code::kUnavailable) {
    return Unavailable("the object store is unavailable (" + s.message() +
                       "); deploys need it, apps already cached on a node keep serving");
  }
  return Status(s.code(), "object store: " + s.message());
}

// ---- the cache ---------------------------------------------------------------

bool S3BlobStore::cached(std::string_view hash, bool count_hit) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(std::string(hash));
  if (it == entries_.end()) return false;
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  if (count_hit) ++stats_.hits;
  return true;
}

void S3BlobStore::admit(const std::string& hash, uint64_t size) {
  std::vector<std::string> evict;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(hash);
    if (it != entries_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      return;
    }
    lru_.push_front(hash);
    entries_.emplace(hash, Cached{size, lru_.begin()});
    stats_.bytes += size;
    ++stats_.blobs;
    // The least recently used go first; the newest stays even when it
    // alone is over the bound.
    while (stats_.bytes > opts_.cache_bytes && lru_.size() > 1) {
      const std::string& victim = lru_.back();
      auto v = entries_.find(victim);
      stats_.bytes -= v->second.size;
      --stats_.blobs;
      ++stats_.evictions;
      evict.push_back(victim);
      entries_.erase(v);
      lru_.pop_back();
    }
  }
  for (const auto& h : evict) (void)cache_->remove(h);
}

void S3BlobStore::forget(const std::string& hash) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(hash);
  if (it == entries_.end()) return;
  stats_.bytes -= it->second.size;
  --stats_.blobs;
  lru_.erase(it->second.lru);
  entries_.erase(it);
}

S3BlobStore::CacheStats S3BlobStore::cacheStats() {
  std::lock_guard lock(mu_);
  return stats_;
}

Result<std::string> S3BlobStore::ensureCached(std::string_view hash) {
  RETURN_IF_ERROR(checkBlobName(hash));
  const std::string h(hash);
  if (cached(h, true)) {
    // (Evicted by another thread meanwhile: fetched again below.)
    std::string path = cache_->pathFor(h);
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) return path;
    forget(h);
  }
  // Streamed into a cache writer, which verifies the bytes against the
  // name before they become visible.
  ASSIGN_OR_RETURN(auto w, cache_->writer());
  Status got = s3_->getTo(objectKey(h), [&](std::string_view bytes) { return w->write(bytes); });
  if (!got.ok()) {
    if (got.code() == Code::kNotFound) return NotFound("blob " + h + " is not stored");
    return objectStoreError(got);
  }
  auto committed = w->commit(h);
  if (!committed.ok()) {
    if (committed.status().code() == Code::kInvalidArgument) {
      return Internal("object " + objectKey(h) + " in the object store does not hash to its name; it was not used "
                      "(" + committed.status().message() + ")");
    }
    return committed.status();
  }
  {
    std::lock_guard lock(mu_);
    ++stats_.fetches;
  }
  admit(h, w->size());
  return cache_->pathFor(h);
}

Status S3BlobStore::prefetch(const std::vector<std::string>& hashes) {
  std::vector<std::string> wanted;
  for (const auto& h : hashes) {
    RETURN_IF_ERROR(checkBlobName(h));
    if (!cached(h, false)) wanted.push_back(h);
  }
  std::atomic<size_t> next{0};
  std::mutex mu;
  Status first = Status::Ok();
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < wanted.size();) {
      auto r = ensureCached(wanted[i]);
      if (!r.ok()) {
        std::lock_guard lock(mu);
        if (first.ok()) first = r.status();
      }
    }
  };
  std::vector<std::thread> threads;
  size_t n = std::min<size_t>(static_cast<size_t>(std::max(opts_.parallel_fetches, 1)), wanted.size());
  for (size_t i = 1; i < n; ++i) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  return first;
}

// ---- writes ------------------------------------------------------------------

Status S3BlobStore::upload(const std::string& hash, const std::string& path, uint64_t size) {
  RETURN_IF_ERROR(objectStoreError(s3_->putFile(objectKey(hash), path, size, hash)));
  int64_t now = wallMillis();
  RETURN_IF_ERROR(index_->add({{hash, BlobIndex::Entry{size, now}}}));
  std::lock_guard lock(mu_);
  touched_[hash] = now;
  return Status::Ok();
}

Status S3BlobStore::put(std::string_view hash, std::string_view bytes) {
  RETURN_IF_ERROR(checkBlobName(hash));
  if (std::string actual = sha256Hex(bytes); actual != hash) {
    return InvalidArgument("blob bytes hash to " + actual + ", not to the name " + std::string(hash) +
                           " they were sent under; nothing was stored");
  }
  if (cached(hash, false)) return Status::Ok();  // (cached: stored)
  ASSIGN_OR_RETURN(auto w, writer());
  RETURN_IF_ERROR(w->write(bytes));
  return w->commit(hash).status();
}

Result<std::unique_ptr<BlobWriter>> S3BlobStore::writer() {
  // The cache's writer verifies the bytes; they go to the object store
  // and the index before the cache shows them.
  return cache_->writer([this](const std::string& hash, const std::string& path, uint64_t size) -> Status {
    RETURN_IF_ERROR(upload(hash, path, size));
    admit(hash, size);
    return Status::Ok();
  });
}

// ---- reads -------------------------------------------------------------------

Result<std::string> S3BlobStore::get(std::string_view hash) {
  ASSIGN_OR_RETURN(std::string path, ensureCached(hash));
  auto bytes = readFile(path);
  if (!bytes.ok() && bytes.status().code() == Code::kNotFound) {
    forget(std::string(hash));  // evicted between: once more
    ASSIGN_OR_RETURN(path, ensureCached(hash));
    return readFile(path);
  }
  return bytes;
}

Result<BlobFile> S3BlobStore::open(std::string_view hash) {
  ASSIGN_OR_RETURN(std::string path, ensureCached(hash));
  for (int attempt = 0;; ++attempt) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.valid()) {
      struct stat st {};
      if (::fstat(fd.get(), &st) != 0) return ErrnoStatus("stat blob", errno);
      return BlobFile{std::move(fd), static_cast<uint64_t>(st.st_size)};
    }
    if (errno != ENOENT || attempt > 0) return ErrnoStatus("open blob " + std::string(hash), errno);
    forget(std::string(hash));  // evicted between: once more
    ASSIGN_OR_RETURN(path, ensureCached(hash));
  }
}

Result<uint64_t> S3BlobStore::size(std::string_view hash) {
  RETURN_IF_ERROR(checkBlobName(hash));
  {
    std::lock_guard lock(mu_);
    if (auto it = entries_.find(std::string(hash)); it != entries_.end()) return it->second.size;
  }
  ASSIGN_OR_RETURN(auto found, index_->lookup({std::string(hash)}));
  if (!found[0]) return NotFound("blob " + std::string(hash) + " is not stored");
  return found[0]->size;
}

Result<std::string> S3BlobStore::localPath(std::string_view hash) { return ensureCached(hash); }

// ---- negotiation and garbage collection --------------------------------------

Result<std::vector<std::string>> S3BlobStore::missing(const std::vector<std::string>& hashes) {
  for (const auto& h : hashes) RETURN_IF_ERROR(checkBlobName(h));
  const int64_t now = wallMillis();
  // Cached and touched lately: stored, nothing to ask. The rest: the index.
  std::vector<std::string> ask;
  std::vector<size_t> asked_at;
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < hashes.size(); ++i) {
      auto t = touched_.find(hashes[i]);
      bool fresh = t != touched_.end() && now - t->second < opts_.touch_every_ms;
      if (fresh && entries_.count(hashes[i])) continue;
      ask.push_back(hashes[i]);
      asked_at.push_back(i);
    }
  }
  ASSIGN_OR_RETURN(auto found, index_->lookup(ask));
  std::vector<bool> absent(hashes.size(), false);
  std::vector<std::pair<std::string, BlobIndex::Entry>> touch;
  for (size_t j = 0; j < ask.size(); ++j) {
    if (!found[j]) {
      absent[asked_at[j]] = true;
      continue;
    }
    if (now - found[j]->touched_ms >= opts_.touch_every_ms) touch.emplace_back(ask[j], BlobIndex::Entry{found[j]->size, now});
  }
  RETURN_IF_ERROR(index_->add(touch));
  {
    std::lock_guard lock(mu_);
    if (touched_.size() > 1'000'000) touched_.clear();  // (bounded: it only saves lookups)
    for (size_t j = 0; j < ask.size(); ++j) {
      if (found[j]) touched_[ask[j]] = now - found[j]->touched_ms >= opts_.touch_every_ms ? now : found[j]->touched_ms;
    }
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < hashes.size(); ++i) {
    if (absent[i]) out.push_back(hashes[i]);
  }
  return out;
}

Status S3BlobStore::list(const std::function<bool(const Listed&)>& each) {
  return index_->list([&](const std::string& hash, const BlobIndex::Entry& e) {
    return each(Listed{hash, e.size, e.touched_ms});
  });
}

Status S3BlobStore::touch(std::string_view hash) {
  RETURN_IF_ERROR(checkBlobName(hash));
  ASSIGN_OR_RETURN(auto found, index_->lookup({std::string(hash)}));
  if (!found[0]) return NotFound("blob " + std::string(hash) + " is not stored");
  int64_t now = wallMillis();
  RETURN_IF_ERROR(index_->add({{std::string(hash), BlobIndex::Entry{found[0]->size, now}}}));
  std::lock_guard lock(mu_);
  touched_[std::string(hash)] = now;
  return Status::Ok();
}

Status S3BlobStore::remove(std::string_view hash) {
  RETURN_IF_ERROR(checkBlobName(hash));
  const std::string h(hash);
  // Out of the index first: nobody is told it is stored while it goes.
  RETURN_IF_ERROR(index_->remove(h));
  {
    std::lock_guard lock(mu_);
    touched_.erase(h);
  }
  RETURN_IF_ERROR(objectStoreError(s3_->remove(objectKey(h))));
  forget(h);
  return cache_->remove(h);
}

}  // namespace nubo::blob
