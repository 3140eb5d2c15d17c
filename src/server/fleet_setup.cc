#include "server/fleet_setup.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <spdlog/spdlog.h>

#include <set>

#include "blob/local_blob_store.h"
#include "common/fs.h"
#include "common/ids.h"
#include "store/etcd/etcd_blob_index.h"
#include "store/sqlite/sqlite_metadata_store.h"

namespace nubo::server {
namespace {

// "http://host:port/..." -> host (brackets of an IPv6 literal dropped).
std::string hostOf(std::string_view url) {
  size_t scheme = url.find("://");
  if (scheme != std::string_view::npos) url.remove_prefix(scheme + 3);
  url = url.substr(0, url.find('/'));
  if (!url.empty() && url[0] == '[') return std::string(url.substr(1, url.find(']') - 1));
  return std::string(url.substr(0, url.rfind(':') == std::string_view::npos ? url.size() : url.rfind(':')));
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return s.substr(i);
}

}  // namespace

Status resolveS3Credentials(FleetOptions& fleet) {
  if (!fleet.s3_credentials_file.empty() && fleet.s3_access_key.empty() && fleet.s3_secret_key.empty()) {
    auto text = readFile(fleet.s3_credentials_file, 64 << 10);
    if (!text.ok()) return Status(text.status().code(), "--s3-credentials-file: " + text.status().message());
    std::string_view rest = *text;
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      std::string line = trim(std::string(rest.substr(0, nl)));
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
      size_t eq = line.find('=');
      if (line.empty() || line[0] == '#' || line[0] == '[' || eq == std::string::npos) continue;
      std::string key = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
      if (key == "aws_access_key_id") fleet.s3_access_key = value;
      if (key == "aws_secret_access_key") fleet.s3_secret_key = value;
    }
  }
  if (fleet.s3_access_key.empty() || fleet.s3_secret_key.empty()) {
    return InvalidArgument("the object store needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                           "or --s3-credentials-file FILE with aws_access_key_id = ... and aws_secret_access_key = ...");
  }
  return Status::Ok();
}

Result<Stores> openStores(const ServerOptions& opts, const std::string& data_dir, Clock& clock) {
  Stores s;
  if (!opts.fleet.enabled()) {
    if (!opts.fleet.s3_endpoint.empty()) {
      return InvalidArgument("--s3 is for a fleet: give the fleet's etcd too (--etcd http://host:2379,...)");
    }
    ASSIGN_OR_RETURN(s.meta, store::SqliteMetadataStore::open(data_dir + "/meta.db", clock));
    ASSIGN_OR_RETURN(s.blobs, blob::LocalBlobStore::create(data_dir + "/blobs"));
    return s;
  }
  FleetOptions fleet = opts.fleet;
  if (fleet.s3_endpoint.empty() || fleet.s3_bucket.empty()) {
    return InvalidArgument("a fleet keeps its blobs in an S3-compatible store: give --s3 http://host:port and "
                           "--s3-bucket NAME with --etcd");
  }
  RETURN_IF_ERROR(resolveS3Credentials(fleet));
  store::etcd::EtcdOptions eo;
  eo.endpoints = fleet.etcd;
  eo.user = fleet.etcd_user;
  eo.password = fleet.etcd_password;
  eo.ca_file = fleet.etcd_ca;
  eo.cert_file = fleet.etcd_cert;
  eo.key_file = fleet.etcd_key;
  auto client = store::etcd::EtcdClient::connect(eo);
  if (!client.ok()) return Status(client.status().code(), "etcd: " + client.status().message());
  s.etcd = std::shared_ptr<store::etcd::EtcdClient>(std::move(client).value());
  store::EtcdStoreOptions so;
  so.prefix = fleet.etcd_prefix;
  ASSIGN_OR_RETURN(auto meta, store::EtcdMetadataStore::open(s.etcd, clock, so));
  s.etcd_meta = meta.get();
  blob::s3::S3Options o;
  o.endpoint = fleet.s3_endpoint;
  o.bucket = fleet.s3_bucket;
  o.region = fleet.s3_region;
  o.access_key = fleet.s3_access_key;
  o.secret_key = fleet.s3_secret_key;
  ASSIGN_OR_RETURN(auto s3, blob::s3::S3Client::create(o));
  blob::S3BlobOptions bo;
  bo.cache_dir = data_dir + "/blob-cache";
  bo.cache_bytes = fleet.blob_cache_mb << 20;
  ASSIGN_OR_RETURN(auto blobs, blob::S3BlobStore::create(
                                   std::move(s3), std::make_shared<store::EtcdBlobIndex>(s.etcd, meta->prefix()), bo));
  s.s3_blobs = blobs.get();
  s.meta = std::move(meta);
  s.blobs = std::move(blobs);
  spdlog::info("fleet: metadata in etcd ({} endpoints, keys under {}), blobs in bucket {} at {} (this node caches "
               "up to {} MiB)",
               fleet.etcd.size(), fleet.etcd_prefix, fleet.s3_bucket, fleet.s3_endpoint, fleet.blob_cache_mb);
  return s;
}

Result<std::string> nodeId(const FleetOptions& fleet, const std::string& data_dir) {
  auto valid = [](const std::string& id) {
    if (id.empty() || id.size() > 63) return false;
    for (char c : id) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    }
    return true;
  };
  if (!fleet.node_id.empty()) {
    if (!valid(fleet.node_id)) {
      return InvalidArgument("--node-id \"" + fleet.node_id + "\": 1 to 63 lowercase letters, digits and dashes");
    }
    return fleet.node_id;
  }
  std::string path = data_dir + "/node-id";
  if (auto text = readFile(path, 128); text.ok()) {
    std::string id = trim(*text);
    if (valid(id)) return id;
  }
  std::string id = "n" + newDeploymentId().substr(1, 8);
  RETURN_IF_ERROR(writeFileAtomic(path, id + "\n", 0644));
  return id;
}

Status checkSharedSecretKey(store::MetadataStore& store, const SecretBox& box, const std::string& key_path) {
  const std::string key = "fleet/secret-key-id";
  std::string mine = box.keyId();
  (void)store.compareAndSwap(key, 0, mine);  // the first node's key is the fleet's
  ASSIGN_OR_RETURN(auto fleet, store.getKey(key));
  if (!fleet || fleet->value == mine) return Status::Ok();
  return FailedPrecondition("this node's secret key (" + key_path + ", id " + mine +
                            ") is not the fleet's (id " + fleet->value +
                            "): every node seals secrets with one key; copy the key file from a running node "
                            "(or pass its path with --secret-key-file) and start again");
}

std::vector<std::string> fleetAddresses(const FleetOptions& fleet) {
  std::set<std::string> hosts;
  for (const auto& e : fleet.etcd) hosts.insert(hostOf(e));
  if (!fleet.s3_endpoint.empty()) hosts.insert(hostOf(fleet.s3_endpoint));
  std::set<std::string> out;
  for (const auto& h : hosts) {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    addrinfo* res = nullptr;
    if (::getaddrinfo(h.c_str(), nullptr, &hints, &res) != 0) continue;
    for (addrinfo* a = res; a; a = a->ai_next) {
      char buf[INET_ADDRSTRLEN];
      auto* in = reinterpret_cast<sockaddr_in*>(a->ai_addr);
      if (::inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf)) out.insert(std::string(buf) + "/32");
    }
    ::freeaddrinfo(res);
  }
  return {out.begin(), out.end()};
}

}  // namespace nubo::server
