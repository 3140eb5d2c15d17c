// Fleet set-up for `nubo serve`: which stores a node uses (SQLite and local
// blobs alone; etcd and S3 in a fleet), and the checks a node makes before
// it joins (credentials, the shared secret key, its id).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "blob/blob_store.h"
#include "blob/s3/s3_blob_store.h"
#include "common/clock.h"
#include "common/secret_box.h"
#include "server/server.h"
#include "store/etcd/etcd_metadata_store.h"
#include "store/metadata_store.h"

namespace nubo::server {

struct Stores {
  std::unique_ptr<store::MetadataStore> meta;
  std::unique_ptr<blob::BlobStore> blobs;
  // A fleet's (null on a single node):
  std::shared_ptr<store::etcd::EtcdClient> etcd;
  store::EtcdMetadataStore* etcd_meta = nullptr;
  blob::S3BlobStore* s3_blobs = nullptr;
};

// Opens the stores `opts` asks for. A fleet's errors name what to fix: an
// unreachable etcd, a missing bucket, refused S3 credentials.
Result<Stores> openStores(const ServerOptions& opts, const std::string& data_dir, Clock& clock);

// The access key and secret: flags (from AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY), else --s3-credentials-file.
Status resolveS3Credentials(FleetOptions& fleet);

// This node's id: --node-id, else DATA/node-id (made once, kept).
Result<std::string> nodeId(const FleetOptions& fleet, const std::string& data_dir);

// Every node seals secrets with the same key: the first node to start
// records its key's id, the others must have that key (a clear error
// otherwise).
Status checkSharedSecretKey(store::MetadataStore& store, const SecretBox& box, const std::string& key_path);

// The IPv4 addresses (CIDR /32) of the fleet's etcd and S3 hosts, which
// sandboxes must not reach.
std::vector<std::string> fleetAddresses(const FleetOptions& fleet);

}  // namespace nubo::server
