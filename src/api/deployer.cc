#include "api/deployer.h"

#include "blob/tree.h"
#include "common/ids.h"
#include "common/sha256.h"
#include "manifest/manifest.h"

namespace nubo::api {
namespace {

constexpr size_t kMaxVerifiedTrees = 200000;

Status checkHashes(const std::vector<std::string>& hs, std::string_view field) {
  for (size_t i = 0; i < hs.size(); ++i) {
    if (!isSha256Hex(hs[i])) {
      return InvalidArgument(std::string(field) + "[" + std::to_string(i) + "] is not a SHA-256 hex digest");
    }
  }
  return Status::Ok();
}

}  // namespace

Deployer::Deployer(store::MetadataStore& store, blob::BlobStore& blobs, Clock& clock)
    : store_(store), blobs_(blobs), clock_(clock) {}

Result<NegotiateResult> Deployer::negotiate(const std::vector<std::string>& trees,
                                            const std::vector<std::string>& files) {
  if (trees.size() + files.size() > kMaxNegotiate) {
    return InvalidArgument("negotiate at most " + std::to_string(kMaxNegotiate) +
                           " hashes per request; split the request");
  }
  RETURN_IF_ERROR(checkHashes(trees, "trees"));
  RETURN_IF_ERROR(checkHashes(files, "files"));
  NegotiateResult r;
  for (const auto& h : trees) {
    if (!blobs_.has(h)) r.missing_trees.push_back(h);
  }
  for (const auto& h : files) {
    if (!blobs_.has(h)) r.missing_files.push_back(h);
  }
  return r;
}

Status Deployer::putBlob(std::string_view hash, std::string_view bytes) { return blobs_.put(hash, bytes); }

Status Deployer::putTree(std::string_view hash, std::string_view bytes) {
  if (!isSha256Hex(hash)) return InvalidArgument("tree name is not a SHA-256 hex digest");
  if (std::string actual = sha256Hex(bytes); actual != hash) {
    return InvalidArgument("tree bytes hash to " + actual + ", not to the name " + std::string(hash) +
                           " they were sent under; nothing was stored");
  }
  ASSIGN_OR_RETURN(blob::Tree tree, blob::decodeTree(bytes));
  RETURN_IF_ERROR(blob::checkChildren(blobs_, tree));
  return blobs_.put(hash, bytes);
}

Result<TreeStats> Deployer::verifyTree(const std::string& root, int depth) {
  if (depth > 256) return InvalidArgument("tree is nested deeper than 256 directories");
  {
    std::lock_guard lock(mu_);
    if (auto it = verified_.find(root); it != verified_.end()) return it->second;
  }
  auto bytes = blobs_.get(root);
  if (!bytes.ok()) {
    if (bytes.status().code() == Code::kNotFound) {
      return FailedPrecondition("tree " + root + " is not uploaded; upload it (and its files) first");
    }
    return bytes.status();
  }
  auto tree = blob::decodeTree(*bytes);
  if (!tree.ok()) return InvalidArgument("object " + root + " is not a valid tree: " + tree.status().message());
  TreeStats stats;
  for (const auto& e : tree->entries) {
    if (e.isDir()) {
      ASSIGN_OR_RETURN(TreeStats sub, verifyTree(e.hash, depth + 1));
      if (sub.bytes != e.size) {
        return InvalidArgument("directory \"" + e.name + "\" lists " + std::to_string(e.size) +
                               " bytes but holds " + std::to_string(sub.bytes));
      }
      stats.files += sub.files;
      stats.bytes += sub.bytes;
      continue;
    }
    auto size = blobs_.size(e.hash);
    if (!size.ok()) {
      if (size.status().code() == Code::kNotFound) {
        return FailedPrecondition("file \"" + e.name + "\" (" + e.hash + ") is not uploaded; upload it first");
      }
      return size.status();
    }
    if (*size != e.size) {
      return InvalidArgument("file \"" + e.name + "\" lists " + std::to_string(e.size) + " bytes but its blob has " +
                             std::to_string(*size));
    }
    stats.files += 1;
    stats.bytes += e.size;
  }
  std::lock_guard lock(mu_);
  if (verified_.size() >= kMaxVerifiedTrees) verified_.clear();
  verified_[root] = stats;
  return stats;
}

Result<store::Deployment> Deployer::createDeployment(const CreateRequest& req) {
  RETURN_IF_ERROR(validateAppName(req.app, "app"));
  if (req.promote) RETURN_IF_ERROR(validateAliasName(req.alias, "alias"));
  if (!isSha256Hex(req.root)) return InvalidArgument("root must be the SHA-256 hex digest of the root tree");
  ASSIGN_OR_RETURN(manifest::Manifest m, manifest::parseManifest(req.manifest));
  if (m.runtime != "static") {
    return Unimplemented("runtime \"" + m.runtime + "\" is not available on this server yet; use \"runtime\": \"static\"");
  }
  ASSIGN_OR_RETURN(TreeStats stats, verifyTree(req.root));

  store::Deployment d;
  d.app = req.app;
  d.root_tree = req.root;
  d.manifest_json = dumpJson(manifest::toJson(m));
  d.runtime = m.runtime;
  d.state = store::DeploymentState::kReady;  // static sites need no build
  d.created_ms = clock_.nowMillis();
  d.creator = req.actor;
  d.files = stats.files;
  d.bytes = stats.bytes;
  for (int attempt = 0;; ++attempt) {
    d.id = newDeploymentId();
    Status s = store_.createDeployment(d, req.promote ? req.alias : "", req.actor);
    if (s.ok()) break;
    if (s.code() != Code::kAlreadyExists || attempt == 3) return s;
  }
  return d;
}

}  // namespace nubo::api
