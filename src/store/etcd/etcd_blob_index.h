// EtcdBlobIndex: the fleet's BlobIndex, one etcd key per stored blob,
// PREFIX/blobs/<hash> = "<size> <touched_ms>". Lookups and writes go in
// transactions of up to 100 keys (under etcd's --max-txn-ops); listing pages
// through the keys. Thread-safe.
#pragma once

#include <memory>
#include <string>

#include "blob/blob_index.h"
#include "store/etcd/etcd_client.h"

namespace nubo::store {

class EtcdBlobIndex final : public blob::BlobIndex {
 public:
  // `prefix` as the metadata store's (ends with '/').
  EtcdBlobIndex(std::shared_ptr<etcd::EtcdClient> etcd, std::string prefix);

  Result<std::vector<std::optional<Entry>>> lookup(const std::vector<std::string>& hashes) override;
  Status add(const std::vector<std::pair<std::string, Entry>>& entries) override;
  Status remove(const std::string& hash) override;
  Status list(const std::function<bool(const std::string& hash, const Entry& e)>& each) override;

 private:
  std::string keyOf(const std::string& hash) const { return root_ + hash; }
  const std::shared_ptr<etcd::EtcdClient> etcd_;
  const std::string root_;  // PREFIX/blobs/
};

}  // namespace nubo::store
