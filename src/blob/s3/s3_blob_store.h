// S3BlobStore: the fleet's BlobStore. Blobs are objects KEY_PREFIX<hash> in
// one bucket of an S3-compatible store; a BlobIndex (etcd) says which are
// stored; each node keeps a bounded read-through cache on its disk.
//
// - Writes go to the object store first, then the index, then the cache:
//   a blob is visible (to this node and every other) only once it is
//   stored whole. put() and writers verify the bytes against the name
//   before anything is sent.
// - Reads come from the cache; a blob not there is fetched (streamed to a
//   temp file), verified against its hash, and only then cached and used.
//   An object whose bytes do not match its name is refused (kInternal,
//   naming it), never served.
// - The cache is bounded (`cache_bytes`) and evicts least recently used
//   blobs first. Evicting a blob whose file an instance has hard-linked is
//   safe: the link keeps the bytes.
// - missing() answers from the cache and the index, a batch of keys per
//   etcd round trip; nothing goes to the object store. The blobs it finds
//   are touched in the index when their touch is older than
//   `touch_every_ms`, so a deploy does not rewrite 20,000 keys each time.
// - Errors from the object store say so and name it: an unreachable store
//   is kUnavailable ("object store http://...: ..."), refused credentials
//   kPermissionDenied naming the access key.
//
// Thread-safe.
#pragma once

#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "blob/blob_index.h"
#include "blob/blob_store.h"
#include "blob/local_blob_store.h"
#include "blob/s3/s3_client.h"

namespace nubo::blob {

struct S3BlobOptions {
  std::string key_prefix = "blobs/";    // objects at KEY_PREFIX<hash>
  std::string cache_dir;                // this node's cache (created)
  uint64_t cache_bytes = 4ull << 30;    // --blob-cache-mb
  int64_t touch_every_ms = 3'600'000;   // index touches of stored blobs, at most this often
  int parallel_fetches = 8;             // prefetch(): objects fetched at once
};

class S3BlobStore final : public BlobStore {
 public:
  // Checks the bucket can be used with these credentials (a clear error at
  // start-up) and loads what the cache holds.
  static Result<std::unique_ptr<S3BlobStore>> create(std::unique_ptr<s3::S3Client> s3,
                                                     std::shared_ptr<BlobIndex> index, S3BlobOptions options);

  Status put(std::string_view hash, std::string_view bytes) override;
  Result<std::unique_ptr<BlobWriter>> writer() override;
  Result<std::string> get(std::string_view hash) override;
  Result<BlobFile> open(std::string_view hash) override;
  Result<uint64_t> size(std::string_view hash) override;
  Result<std::string> localPath(std::string_view hash) override;
  Status list(const std::function<bool(const Listed&)>& each) override;
  Status touch(std::string_view hash) override;
  Result<std::vector<std::string>> missing(const std::vector<std::string>& hashes) override;
  Status remove(std::string_view hash) override;

  bool isLocal(std::string_view hash) override { return cached(hash, false); }
  // Fetches into the cache those of `hashes` it does not hold,
  // `parallel_fetches` at a time (a node about to serve a deployment it has
  // never seen).
  Status prefetch(const std::vector<std::string>& hashes) override;

  struct CacheStats {
    uint64_t bytes = 0, blobs = 0, hits = 0, fetches = 0, evictions = 0;
  };
  CacheStats cacheStats();

 private:
  S3BlobStore(std::unique_ptr<s3::S3Client> s3, std::shared_ptr<BlobIndex> index, S3BlobOptions options,
              std::unique_ptr<LocalBlobStore> cache);
  std::string objectKey(std::string_view hash) const { return opts_.key_prefix + std::string(hash); }
  // Stores the verified bytes at `path` in the object store, then indexes them.
  Status upload(const std::string& hash, const std::string& path, uint64_t size);
  // The blob in the cache (fetched and verified if need be): its path.
  Result<std::string> ensureCached(std::string_view hash);
  // Cache bookkeeping (mu_ taken inside).
  bool cached(std::string_view hash, bool count_hit);
  void admit(const std::string& hash, uint64_t size);
  void forget(const std::string& hash);
  Status objectStoreError(const Status& s) const;

  std::unique_ptr<s3::S3Client> s3_;
  std::shared_ptr<BlobIndex> index_;
  const S3BlobOptions opts_;
  std::unique_ptr<LocalBlobStore> cache_;
  const std::string endpoint_;  // for messages

  struct Cached {
    uint64_t size;
    std::list<std::string>::iterator lru;  // in lru_
  };
  std::mutex mu_;
  std::unordered_map<std::string, Cached> entries_;  // guarded by mu_
  std::list<std::string> lru_;                       // guarded by mu_: most recently used first
  std::unordered_map<std::string, int64_t> touched_;  // guarded by mu_: when this node last touched each in the index
  CacheStats stats_;                                  // guarded by mu_
};

}  // namespace nubo::blob
