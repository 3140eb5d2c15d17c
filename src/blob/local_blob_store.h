// LocalBlobStore: blobs as read-only files under a root directory,
// ROOT/<first two hex chars>/<hash>, written atomically (temp file in
// ROOT/tmp, fsync, rename, fsync of the shard directory).
//
// Leftover temp files from a crash are removed by create(). Thread-safe.
#pragma once

#include <memory>
#include <string>

#include "blob/blob_store.h"

namespace nubo::blob {

class LocalBlobStore final : public BlobStore {
 public:
  // Creates ROOT (and its shards lazily); clears ROOT/tmp.
  static Result<std::unique_ptr<LocalBlobStore>> create(std::string root);

  Status put(std::string_view hash, std::string_view bytes) override;
  Result<std::unique_ptr<BlobWriter>> writer() override;
  // A writer whose commit() first hands the verified bytes (a file, its
  // size) to `before_visible` (an upload elsewhere, say); an error from it
  // stores nothing here. Not called for a blob stored here already.
  using BeforeVisible = std::function<Status(const std::string& hash, const std::string& path, uint64_t size)>;
  Result<std::unique_ptr<BlobWriter>> writer(BeforeVisible before_visible);
  Result<std::string> get(std::string_view hash) override;
  Result<BlobFile> open(std::string_view hash) override;
  Result<uint64_t> size(std::string_view hash) override;
  Result<std::string> localPath(std::string_view hash) override;
  Status list(const std::function<bool(const Listed&)>& each) override;
  Status touch(std::string_view hash) override;
  Result<std::vector<std::string>> missing(const std::vector<std::string>& hashes) override;
  Status remove(std::string_view hash) override;

  // Where the blob lives (whether or not it exists).
  std::string pathFor(std::string_view hash) const;

 private:
  class Writer;
  explicit LocalBlobStore(std::string root) : root_(std::move(root)) {}
  std::string tempPath(std::string_view tag) const;
  // fsyncs the temp file `tmp` (open as `fd`) and renames it to the blob `hash`.
  Status install(const std::string& tmp, int fd, std::string_view hash);
  std::string root_;
};

}  // namespace nubo::blob
