// BlobStore: content-addressed storage of immutable byte strings.
//
// A blob is named by the lowercase hex SHA-256 of its bytes. Implementations
// (local files now, S3 for fleets) promise:
//   - put() verifies the bytes hash to the name and rejects them otherwise
//     with kInvalidArgument, storing nothing;
//   - a blob is visible (has/get/open succeed) only once it is complete and
//     durable; a crash mid-put never exposes a partial blob;
//   - put() of an existing blob is a cheap no-op;
//   - a BlobWriter streams a blob in pieces (uploads, build outputs), so no
//     blob has to fit in memory; its bytes are checked when committed.
// Every implementation passes tests/blob_store_conformance.h.
// Thread-safe: all methods may be called concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>
#include <string_view>

#include "common/fs.h"
#include "common/status.h"

namespace nubo::blob {

// An open blob for streaming reads; the descriptor stays valid even if the
// blob is later removed.
struct BlobFile {
  UniqueFd fd;
  uint64_t size = 0;
};

// A blob written in pieces. Nothing is visible until commit(); a writer
// destroyed without a commit leaves nothing behind. Not thread-safe (one
// writer, one user).
class BlobWriter {
 public:
  virtual ~BlobWriter() = default;
  // kResourceExhausted when the disk is full.
  virtual Status write(std::string_view bytes) = 0;
  uint64_t size() const { return size_; }
  // Makes the blob visible under the hash of what was written and returns
  // that hash. With `expected` non-empty, bytes that hash otherwise are
  // refused (kInvalidArgument, "nothing was stored"). Call at most once.
  virtual Result<std::string> commit(std::string_view expected) = 0;

 protected:
  uint64_t size_ = 0;
};

class BlobStore {
 public:
  virtual ~BlobStore() = default;

  // kInvalidArgument when `hash` is not a SHA-256 hex name or the bytes do
  // not hash to it; kResourceExhausted when the disk is full.
  virtual Status put(std::string_view hash, std::string_view bytes) = 0;

  // A writer for a new blob; see BlobWriter.
  virtual Result<std::unique_ptr<BlobWriter>> writer() = 0;

  // kNotFound when absent.
  virtual Result<std::string> get(std::string_view hash) = 0;
  virtual Result<BlobFile> open(std::string_view hash) = 0;

  // Size in bytes; kNotFound when absent.
  virtual Result<uint64_t> size(std::string_view hash) = 0;

  bool has(std::string_view hash) { return size(hash).ok(); }

  // A local file holding the blob's bytes, read-only, valid while the blob
  // exists (a remote store fetches it into its local cache first). Used to
  // hard-link deployment files for instances. kNotFound when absent.
  virtual Result<std::string> localPath(std::string_view hash) = 0;

  // For garbage collection (blob/collector.h):
  struct Listed {
    std::string hash;
    uint64_t size = 0;
    int64_t touched_ms = 0;  // when it was stored or last touch()ed (wall clock)
  };
  // Every blob, in no order; `each` returns false to stop.
  virtual Status list(const std::function<bool(const Listed&)>& each) = 0;
  // Marks a blob as just wanted (a client was told it is stored).
  virtual Status touch(std::string_view hash) = 0;
  // Of `hashes`, those not stored, in the order given; those stored are
  // touched (a deploy about to use them is within the collector's grace).
  // One call for many: a store across the network answers it in a few
  // round trips, not one per hash. kInvalidArgument for a malformed name.
  virtual Result<std::vector<std::string>> missing(const std::vector<std::string>& hashes) = 0;
  // Deletes a blob (an open BlobFile or a hard link to it stays readable).
  // Removing an absent blob is not an error.
  virtual Status remove(std::string_view hash) = 0;

  // Whether reading the blob needs no network (a remote store's cache
  // holds it); cheap enough for the data plane. Local stores: always.
  virtual bool isLocal(std::string_view hash) {
    (void)hash;
    return true;
  }
  // Brings these blobs close (a remote store fetches them into its cache,
  // several at once). Local stores have nothing to do.
  virtual Status prefetch(const std::vector<std::string>& hashes) {
    (void)hashes;
    return Status::Ok();
  }
};

// Brings every tree object under `root` close (not the files): what a node
// reads before it first answers from a static deployment it has never seen.
Status bringTrees(BlobStore& blobs, const std::string& root);

// OK when `hash` is a blob's name (64 lowercase hex characters);
// kInvalidArgument naming the problem otherwise.
Status checkBlobName(std::string_view hash);

// Stores the file at `path` without holding it in memory: hashed first, and
// copied into the store only when no blob of that hash is there. Returns the
// hash; `stored` (if set) says whether it was new. A file that changes while
// it is copied is refused (kFailedPrecondition).
Result<std::string> putFile(BlobStore& blobs, const std::string& path, bool* stored = nullptr);

}  // namespace nubo::blob
