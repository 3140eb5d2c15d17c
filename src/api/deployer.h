// Deployer: the control plane's domain logic, independent of HTTP.
//
//   negotiate()        which of these trees/files are not stored yet
//   putBlob()          store a file blob (verified against its name);
//   blobWriter()       the same in pieces, for uploads streamed to disk
//   putTree()          store a tree object: canonical, and every child
//                      already stored with the listed size, so a stored tree
//                      always implies its whole subtree is stored
//   createDeployment() verify the root tree completely (memoized per tree
//                      hash, so unchanged subtrees cost nothing), refuse
//                      one over DeployLimits as expanded (400), validate
//                      the manifest, detect the runtime when it is not named
//                      (index.html -> static; index.js/.mjs/.cjs -> node),
//                      check the entry exists, record the deployment, move
//                      the alias. A manifest that asks for a build
//                      (build/build_queue.h: builderFor) makes a QUEUED
//                      deployment handed to the build queue; code that
//                      needs none, a STARTING one handed to the start
//                      check (runtime/start_check.h). Either way its alias
//                      moves when it is READY
//   checkRunnable()    whether a build's output can run (the entry is in it)
//   collectGarbage()   remove the blobs no deployment needs
//
// Thread-safe. Errors: kInvalidArgument (bad names, hashes, manifests),
// kFailedPrecondition (objects not uploaded yet), kNotFound,
// kUnimplemented (a runtime this server cannot run yet).
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "blob/blob_store.h"
#include "common/clock.h"
#include "common/json.h"
#include "manifest/manifest.h"
#include "metrics/metrics.h"
#include "store/metadata_store.h"

namespace nubo::api {

struct NegotiateResult {
  std::vector<std::string> missing_trees;
  std::vector<std::string> missing_files;
};

struct CreateRequest {
  std::string app;
  std::string root;
  Json manifest = Json::object();
  std::string alias = "production";  // moved to the new deployment when promote
  bool promote = true;
  std::string actor;
  // Set: a new deployment of this one's source and build output with the
  // app's env as it is now; nothing is verified or built again (root and
  // manifest are ignored).
  std::optional<store::Deployment> same_build_as;
};

// What one deployment may hold, counted as it expands: a tree may name one
// subtree many times, and each instance gets every path.
struct DeployLimits {
  uint64_t max_files = 100'000;
  uint64_t max_bytes = 2ull << 30;
  // Builds and permissions.network functions are not kept from the host's
  // addresses on this server (no veth egress networks); under
  // --sandbox=strict they are refused.
  bool refuse_host_network = false;
  // The largest limits.cpu (an app's CPU weight) this server grants.
  double max_app_cpu = 4;
};

// What a garbage collection found and removed.
struct GcReport {
  uint64_t blobs = 0, bytes = 0;          // stored before
  uint64_t removed = 0, removed_bytes = 0;
  uint64_t live = 0;                      // blobs some deployment needs
};

struct TreeStats {
  uint64_t files = 0;
  uint64_t bytes = 0;
};

class Deployer {
 public:
  static constexpr size_t kMaxNegotiate = 20000;

  // Hands a QUEUED deployment to the builds (null: this server builds nothing).
  using SubmitBuild = std::function<Status(const store::Deployment& d)>;
  // Hands a STARTING deployment (code that needs no build) to be started
  // once before it is READY (null: code is READY as uploaded).
  using SubmitStart = std::function<Status(const store::Deployment& d)>;

  // Whether an operator added builders whose `detect` may claim a folder
  // no built-in rule picks a builder for (such deployments go through the
  // build queue, which runs the detectors).
  using CanDetect = std::function<bool()>;

  // `metrics` (may be null): where deployments created count.
  Deployer(store::MetadataStore& store, blob::BlobStore& blobs, Clock& clock, SubmitBuild submit_build = nullptr,
           CanDetect can_detect = nullptr, DeployLimits limits = {}, SubmitStart submit_start = nullptr,
           metrics::Metrics* metrics = nullptr);

  Result<NegotiateResult> negotiate(const std::vector<std::string>& trees, const std::vector<std::string>& files);
  Status putBlob(std::string_view hash, std::string_view bytes);
  // For a file blob too large to hold: written in pieces, checked at commit.
  Result<std::unique_ptr<blob::BlobWriter>> blobWriter() { return blobs_.writer(); }
  Status putTree(std::string_view hash, std::string_view bytes);
  Result<store::Deployment> createDeployment(const CreateRequest& req);
  Status checkRunnable(const store::Deployment& d, const std::string& output_tree);

  // Removes the blobs no deployment needs (every tree and file below each
  // deployment's source and output) that nobody stored or was told are
  // stored for `grace_ms`: an upload in progress, or a deploy that found its
  // files stored, keeps what it needs. Deployments are not created while the
  // blobs are removed, so none is committed with a file that then goes.
  Result<GcReport> collectGarbage(int64_t grace_ms);

  // Every file below `root` is stored with its listed size.
  Result<TreeStats> verifyTree(const std::string& root, int depth = 0);

 private:
  Result<std::vector<store::EnvValue>> envSnapshot(const std::string& app, const std::string& alias);
  Result<store::Deployment> createSameBuild(const CreateRequest& req);
  // Stores `d` (a fresh id), moving req.alias when promoting, and hands it
  // to its build or start check.
  Result<store::Deployment> persist(store::Deployment d, const CreateRequest& req, bool needs_build, bool check);
  // Whether `path` ("a/b.js") is a file in the tree `root`; its blob hash.
  Result<bool> hasFile(const std::string& root, std::string_view path);
  Result<std::optional<std::string>> findFile(const std::string& root, std::string_view path);
  // Detects the runtime when the manifest does not name one; refuses one
  // this server cannot run and an exec deployment without a command.
  Status resolveRuntime(const CreateRequest& req, manifest::Manifest& m);
  // Whether a node deployment needs the node builder: a TypeScript entry, or
  // a package.json with dependencies.
  Result<bool> needsNodeBuild(const std::string& root, const manifest::Manifest& m);
  // A folder nubo would serve as files but whose package.json says it is a
  // server (a "main", or a "start" script): refused, naming the fix.
  Status refuseServerAsFiles(const std::string& root);
  // The root's package.json, if any (InvalidArgument when over 1 MiB or not
  // a JSON object).
  Result<std::optional<Json>> packageJson(const std::string& root);
  // The node entry of `m` in `tree`: as named, else the first of index.js/.mjs/.cjs.
  Result<std::string> findEntry(const std::string& tree, const manifest::Manifest& m);

  store::MetadataStore& store_;
  blob::BlobStore& blobs_;
  Clock& clock_;
  SubmitBuild submit_build_;
  CanDetect can_detect_;
  DeployLimits limits_;
  SubmitStart submit_start_;
  metrics::Metrics* metrics_;

  // Marks `tree` and everything below it in `live` (trees already in it are
  // not walked again).
  Status markTree(const std::string& tree, std::unordered_set<std::string>& live, int depth = 0);
  // Marks the trees of every deployment (of those not in `seen`).
  Status markDeployments(std::unordered_set<std::string>& live, std::unordered_set<std::string>& seen);

  std::mutex create_mu_;  // held while a deployment is created, and while blobs are collected
  std::mutex mu_;
  std::unordered_map<std::string, TreeStats> verified_;  // guarded by mu_; tree hash -> stats
};

}  // namespace nubo::api
