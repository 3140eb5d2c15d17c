#include "store/etcd/etcd_blob_index.h"

#include <cstdio>

namespace nubo::store {
namespace {

constexpr size_t kKeysPerTxn = 100;  // under etcd's default --max-txn-ops (128)

std::string encode(const blob::BlobIndex::Entry& e) {
  return std::to_string(e.size) + " " + std::to_string(e.touched_ms);
}

std::optional<blob::BlobIndex::Entry> decode(const std::string& text) {
  unsigned long long size = 0;
  long long touched = 0;
  if (std::sscanf(text.c_str(), "%llu %lld", &size, &touched) != 2) return std::nullopt;
  return blob::BlobIndex::Entry{size, touched};
}

}  // namespace

EtcdBlobIndex::EtcdBlobIndex(std::shared_ptr<etcd::EtcdClient> etcd, std::string prefix)
    : etcd_(std::move(etcd)), root_(std::move(prefix) + "blobs/") {}

Result<std::vector<std::optional<blob::BlobIndex::Entry>>> EtcdBlobIndex::lookup(
    const std::vector<std::string>& hashes) {
  std::vector<std::optional<Entry>> out(hashes.size());
  for (size_t i = 0; i < hashes.size(); i += kKeysPerTxn) {
    std::vector<etcd::TxnOp> gets;
    for (size_t j = i; j < std::min(hashes.size(), i + kKeysPerTxn); ++j) gets.push_back(etcd::TxnOp::get(keyOf(hashes[j])));
    ASSIGN_OR_RETURN(etcd::TxnResult r, etcd_->txn({}, gets));
    for (size_t j = 0; j < r.ranges.size(); ++j) {
      if (!r.ranges[j].kvs.empty()) out[i + j] = decode(r.ranges[j].kvs[0].value);
    }
  }
  return out;
}

Status EtcdBlobIndex::add(const std::vector<std::pair<std::string, Entry>>& entries) {
  for (size_t i = 0; i < entries.size(); i += kKeysPerTxn) {
    std::vector<etcd::TxnOp> puts;
    for (size_t j = i; j < std::min(entries.size(), i + kKeysPerTxn); ++j) {
      puts.push_back(etcd::TxnOp::put(keyOf(entries[j].first), encode(entries[j].second)));
    }
    RETURN_IF_ERROR(etcd_->txn({}, puts).status());
  }
  return Status::Ok();
}

Status EtcdBlobIndex::remove(const std::string& hash) { return etcd_->deleteRange(keyOf(hash)).status(); }

Status EtcdBlobIndex::list(const std::function<bool(const std::string& hash, const Entry& e)>& each) {
  const std::string end = etcd::EtcdClient::prefixEnd(root_);
  std::string from = root_;
  int64_t at = 0;  // one revision for every page
  for (;;) {
    ASSIGN_OR_RETURN(auto page, etcd_->range(from, end, etcd::RangeOptions{1000, at, false, false}));
    at = page.revision;
    for (const auto& kv : page.kvs) {
      auto e = decode(kv.value);
      if (e && !each(kv.key.substr(root_.size()), *e)) return Status::Ok();
    }
    if (!page.more || page.kvs.empty()) return Status::Ok();
    from = page.kvs.back().key + '\0';
  }
}

}  // namespace nubo::store
