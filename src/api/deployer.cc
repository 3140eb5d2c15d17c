#include "api/deployer.h"

#include <map>

#include "blob/tree.h"
#include "build/build_queue.h"
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

Deployer::Deployer(store::MetadataStore& store, blob::BlobStore& blobs, Clock& clock, SubmitBuild submit_build,
                   CanDetect can_detect, DeployLimits limits, SubmitStart submit_start, metrics::Metrics* metrics)
    : store_(store), blobs_(blobs), clock_(clock), submit_build_(std::move(submit_build)),
      can_detect_(std::move(can_detect)), limits_(limits), submit_start_(std::move(submit_start)),
      metrics_(metrics) {}

Result<NegotiateResult> Deployer::negotiate(const std::vector<std::string>& trees,
                                            const std::vector<std::string>& files) {
  if (trees.size() + files.size() > kMaxNegotiate) {
    return InvalidArgument("negotiate at most " + std::to_string(kMaxNegotiate) +
                           " hashes per request; split the request");
  }
  RETURN_IF_ERROR(checkHashes(trees, "trees"));
  RETURN_IF_ERROR(checkHashes(files, "files"));
  // What is stored is touched: the deploy about to use it is inside the
  // collector's grace period.
  NegotiateResult r;
  ASSIGN_OR_RETURN(r.missing_trees, blobs_.missing(trees));
  ASSIGN_OR_RETURN(r.missing_files, blobs_.missing(files));
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

Result<bool> Deployer::hasFile(const std::string& root, std::string_view path) {
  ASSIGN_OR_RETURN(std::optional<std::string> hash, findFile(root, path));
  return hash.has_value();
}

Result<std::optional<std::string>> Deployer::findFile(const std::string& root, std::string_view path) {
  ASSIGN_OR_RETURN(std::optional<blob::TreeEntry> e, blob::lookupPath(blobs_, root, path));
  if (!e || e->isDir()) return std::optional<std::string>();
  return std::optional<std::string>(e->hash);
}

namespace {
constexpr std::string_view kNodeEntries[] = {"index.js", "index.mjs", "index.cjs"};
constexpr std::string_view kTypeScriptEntries[] = {"index.ts", "index.mts", "index.tsx"};
}  // namespace

Result<std::string> Deployer::findEntry(const std::string& tree, const manifest::Manifest& m) {
  if (!m.entry.empty()) {
    ASSIGN_OR_RETURN(bool has, hasFile(tree, m.entry));
    if (!has) return InvalidArgument("entry: \"" + m.entry + "\" is not a file of this deployment");
    return m.entry;
  }
  for (auto e : kNodeEntries) {
    ASSIGN_OR_RETURN(bool has, hasFile(tree, e));
    if (has) return std::string(e);
  }
  return InvalidArgument("entry: runtime \"node\" needs index.js, index.mjs or index.cjs at the top of the folder, "
                         "or \"entry\" in nubo.json naming the file to run");
}

Status Deployer::resolveRuntime(const CreateRequest& req, manifest::Manifest& m) {
  bool explicit_runtime = req.manifest.is_object() && req.manifest.contains("runtime");
  if (!explicit_runtime && !m.entry.empty()) {
    // The entry says it: a JavaScript or TypeScript file is a function,
    // anything else the command of a server (never files to serve).
    m.runtime = runtimeName(isJavaScriptOrTypeScript(m.entry) ? RuntimeKind::kNode : RuntimeKind::kExec);
  } else if (!explicit_runtime) {
    // A folder with an index.html is a site; one with index.js/.mjs/.cjs
    // (or index.ts/.mts/.tsx, built first) is a function.
    ASSIGN_OR_RETURN(bool has_html, hasFile(req.root, "index.html"));
    bool has_index = false;
    for (const auto* list : {&kNodeEntries, &kTypeScriptEntries}) {
      for (auto e : *list) {
        if (has_html || has_index) break;
        ASSIGN_OR_RETURN(has_index, hasFile(req.root, e));
      }
    }
    m.runtime = runtimeName(has_index ? RuntimeKind::kNode : RuntimeKind::kStatic);
    if (!has_index) RETURN_IF_ERROR(refuseServerAsFiles(req.root));
  }
  const RuntimeTraits& runtime = runtimeTraits(manifest::runtimeKind(m));
  if (!runtime.runsCode() && !m.health.path.empty()) {
    return InvalidArgument("health.path: this folder deploys as a static site (it has no entry to run), which runs "
                           "no code to check; remove \"health\", or name the entry in nubo.json");
  }
  if (runtime.entry == EntryKind::kCommand && m.entry.empty()) {
    return InvalidArgument("entry: runtime \"" + std::string(runtime.name) + "\" needs the command that starts your "
                           "HTTP server on $PORT, e.g. \"python3 server.py\"");
  }
  return Status::Ok();
}

Result<std::optional<Json>> Deployer::packageJson(const std::string& root) {
  ASSIGN_OR_RETURN(std::optional<std::string> package, findFile(root, "package.json"));
  if (!package) return std::optional<Json>();
  // Read whole on the control plane: bounded (uploads may be far larger).
  constexpr uint64_t kMaxPackageJson = 1 << 20;
  ASSIGN_OR_RETURN(uint64_t size, blobs_.size(*package));
  if (size > kMaxPackageJson) {
    return InvalidArgument("package.json: " + std::to_string(size) + " bytes; nubo reads a package.json of up to "
                           "1 MiB");
  }
  ASSIGN_OR_RETURN(std::string text, blobs_.get(*package));
  auto pkg = parseJson(text, "package.json");
  if (!pkg.ok() || !pkg->is_object()) {
    return InvalidArgument("package.json: " + (pkg.ok() ? std::string("must be a JSON object") : pkg.status().message()));
  }
  return std::optional<Json>(std::move(*pkg));
}

Status Deployer::refuseServerAsFiles(const std::string& root) {
  ASSIGN_OR_RETURN(std::optional<Json> pkg, packageJson(root));
  if (!pkg) return Status::Ok();
  const Json* scripts = pkg->contains("scripts") && (*pkg)["scripts"].is_object() ? &(*pkg)["scripts"] : nullptr;
  std::string why = pkg->contains("main") ? "has a \"main\"" : scripts && scripts->contains("start") ? "has a \"start\" script" : "";
  if (why.empty()) return Status::Ok();
  return InvalidArgument("runtime: this folder has no index.html, index.js or index.ts, and its package.json " + why +
                         ", so it looks like a server, which nubo will not publish as files; say how it runs in "
                         "nubo.json: {\"entry\": \"server.js\"} for a function, {\"runtime\": \"exec\", \"entry\": "
                         "\"npm start\"} for a server on $PORT, or {\"runtime\": \"static\"} to publish the files");
}

Status Deployer::checkRunnable(const store::Deployment& d, const std::string& output_tree) {
  // (A command's program need not be a file of the output.)
  EntryKind kind = runtimeTraits(d.runtimeKind()).entry;
  if (kind != EntryKind::kModule && kind != EntryKind::kProgram) return Status::Ok();
  ASSIGN_OR_RETURN(manifest::Manifest m, manifest::parseManifestText(d.manifest_json));
  std::string entry = resolveEntry(d.runtimeKind(), m.entry);
  ASSIGN_OR_RETURN(bool has, hasFile(output_tree, entry));
  if (!has) {
    return InvalidArgument("the build's output has no " + entry +
                           " to run; have the build write it, or name the entry in nubo.json (\"entry\")");
  }
  return Status::Ok();
}

Result<bool> Deployer::needsNodeBuild(const std::string& root, const manifest::Manifest& m) {
  // TypeScript is bundled; a package.json with dependencies is installed.
  if (isTypeScript(m.entry)) return true;
  if (m.entry.empty()) {
    for (auto e : kTypeScriptEntries) {
      ASSIGN_OR_RETURN(bool has, hasFile(root, e));
      if (has) return true;
    }
  }
  ASSIGN_OR_RETURN(std::optional<Json> pkg, packageJson(root));
  if (!pkg) return false;
  auto deps = pkg->find("dependencies");
  return deps != pkg->end() && deps->is_object() && !deps->empty();
}

// The app's env for a deployment to `alias`: every app-wide value, then the
// alias's own over them.
Result<std::vector<store::EnvValue>> Deployer::envSnapshot(const std::string& app, const std::string& alias) {
  ASSIGN_OR_RETURN(auto vars, store_.listEnv(app));
  std::map<std::string, store::EnvValue> merged;
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& v : vars) {
      if (pass == 0 ? !v.alias.empty() : v.alias != alias) continue;
      merged[v.name] = {v.name, v.value, v.secret};
    }
  }
  std::vector<store::EnvValue> out;
  for (auto& [name, v] : merged) out.push_back(std::move(v));
  return out;
}

Result<store::Deployment> Deployer::createDeployment(const CreateRequest& req) {
  std::lock_guard create_lock(create_mu_);
  RETURN_IF_ERROR(validateAppName(req.app, "app"));
  if (req.promote) RETURN_IF_ERROR(validateAliasName(req.alias, "alias"));
  if (req.same_build_as) return createSameBuild(req);
  if (!isSha256Hex(req.root)) return InvalidArgument("root must be the SHA-256 hex digest of the root tree");
  ASSIGN_OR_RETURN(manifest::Manifest m, manifest::parseManifest(req.manifest));
  ASSIGN_OR_RETURN(TreeStats stats, verifyTree(req.root));
  if (stats.files > limits_.max_files || stats.bytes > limits_.max_bytes) {
    return InvalidArgument("the deployment holds " + std::to_string(stats.files) + " files and " +
                           std::to_string(stats.bytes) + " bytes (counting every path of folders named more than "
                           "once); this server takes at most " + std::to_string(limits_.max_files) + " files and " +
                           std::to_string(limits_.max_bytes) + " bytes: leave files out with .nuboignore, or ask "
                           "the operator (--max-deployment-files, --max-deployment-mb)");
  }
  RETURN_IF_ERROR(resolveRuntime(req, m));
  std::string builder = build::builderFor(m);
  const RuntimeTraits& runtime = runtimeTraits(manifest::runtimeKind(m));
  if (builder.empty() && runtime.node_dependencies) {
    // (An exec server in JavaScript needs its dependencies as much.)
    ASSIGN_OR_RETURN(bool node_build, needsNodeBuild(req.root, m));
    if (node_build) builder = "node";
  }
  bool detect = builder.empty() && submit_build_ && can_detect_ && can_detect_();
  bool needs_build = !builder.empty() || detect;
  if (m.limits.cpu > limits_.max_app_cpu) {
    char have[32], most[32];
    std::snprintf(have, sizeof have, "%g", m.limits.cpu);
    std::snprintf(most, sizeof most, "%g", limits_.max_app_cpu);
    return InvalidArgument(std::string("limits.cpu: ") + have + " is more than this server grants an app (" + most +
                           "); lower it, or ask the operator (--max-app-cpu)");
  }
  if (limits_.refuse_host_network && (needs_build || m.permissions.network)) {
    return FailedPrecondition(std::string(needs_build ? "this deployment needs a build" : "permissions.network") +
                              ": builds and networked functions would not be kept from the host's own addresses "
                              "on this server, which --sandbox=strict does not allow; deploy built files without "
                              "the network, or ask the operator for egress networks (nubo serve as root, "
                              "--sandbox-network=veth) or --sandbox=auto");
  }
  if (needs_build && !submit_build_) {
    return Unimplemented("build: this server does not run builds; deploy the built files instead");
  }
  if (needs_build) {
    m.build.builder = builder;  // recorded: the build runs exactly this one (empty: detected)
    if (runtime.entry == EntryKind::kModule && m.entry.empty() && m.build.command.empty()) {
      // The builder and the runtime then agree on the file (index.mjs, say,
      // where the runtime would look for index.js by default).
      for (const auto* list : {&kTypeScriptEntries, &kNodeEntries}) {
        for (auto e : *list) {
          if (!m.entry.empty()) break;
          ASSIGN_OR_RETURN(bool has, hasFile(req.root, e));
          if (has) m.entry = std::string(e);
        }
      }
    }
  } else if (runtime.entry == EntryKind::kModule) {
    ASSIGN_OR_RETURN(m.entry, findEntry(req.root, m));  // a build would make it; without one it must be there
  }

  store::Deployment d;
  d.app = req.app;
  d.root_tree = req.root;
  d.manifest_json = dumpJson(manifest::toJson(m));
  d.runtime = m.runtime;
  // Files are ready as uploaded; code once it has started; either once its
  // build is done.
  bool check = !needs_build && runtime.runsCode() && submit_start_;
  d.state = needs_build ? store::DeploymentState::kQueued
            : check     ? store::DeploymentState::kStarting
                        : store::DeploymentState::kReady;
  d.created_ms = clock_.nowMillis();
  d.creator = req.actor;
  d.files = stats.files;
  d.bytes = stats.bytes;
  ASSIGN_OR_RETURN(d.env, envSnapshot(req.app, req.alias));
  return persist(std::move(d), req, needs_build, check);
}

Result<store::Deployment> Deployer::createSameBuild(const CreateRequest& req) {
  const store::Deployment& from = *req.same_build_as;
  if (from.app != req.app) return InvalidArgument("deployment " + from.id + " is not of app " + req.app);
  if (from.state != store::DeploymentState::kReady) {
    return FailedPrecondition("deployment " + from.id + " is " + std::string(store::stateName(from.state)) +
                              "; only a READY deployment's build can be reused (redeploy without --env-only)");
  }
  store::Deployment d;
  d.app = from.app;
  d.root_tree = from.root_tree;
  d.output_tree = from.output_tree;
  d.manifest_json = from.manifest_json;
  d.runtime = from.runtime;
  d.files = from.files;
  d.bytes = from.bytes;
  d.created_ms = clock_.nowMillis();
  d.creator = req.actor;
  bool check = runtimeTraits(from.runtimeKind()).runsCode() && submit_start_;
  d.state = check ? store::DeploymentState::kStarting : store::DeploymentState::kReady;
  ASSIGN_OR_RETURN(d.env, envSnapshot(req.app, req.alias));
  return persist(std::move(d), req, false, check);
}

Result<store::Deployment> Deployer::persist(store::Deployment d, const CreateRequest& req, bool needs_build,
                                            bool check) {
  for (int attempt = 0;; ++attempt) {
    d.id = newDeploymentId();
    Status s = store_.createDeployment(d, req.promote ? req.alias : "", req.actor);
    if (s.ok()) break;
    if (s.code() != Code::kAlreadyExists || attempt == 3) return s;
  }
  if (metrics_) metrics_->deployed();
  if (needs_build || check) {
    if (req.promote) d.promote_alias = req.alias;
    if (Status s = needs_build ? submit_build_(d) : submit_start_(d); !s.ok()) {
      (void)store_.finishBuild(d.id, store::DeploymentState::kFailed, "", s.message(), req.actor);
      return s;
    }
  }
  return d;
}

Status Deployer::markTree(const std::string& tree, std::unordered_set<std::string>& live, int depth) {
  if (depth > 256) return Internal("tree " + tree + " is nested deeper than 256 directories");
  if (!live.insert(tree).second) return Status::Ok();
  auto bytes = blobs_.get(tree);
  if (!bytes.ok()) {
    // A deployment whose tree is gone already: nothing below it to keep.
    if (bytes.status().code() == Code::kNotFound) return Status::Ok();
    return bytes.status();
  }
  ASSIGN_OR_RETURN(blob::Tree t, blob::decodeTree(*bytes));
  for (const auto& e : t.entries) {
    if (e.isDir()) {
      RETURN_IF_ERROR(markTree(e.hash, live, depth + 1));
    } else {
      live.insert(e.hash);
    }
  }
  return Status::Ok();
}

Status Deployer::markDeployments(std::unordered_set<std::string>& live, std::unordered_set<std::string>& seen) {
  ASSIGN_OR_RETURN(auto apps, store_.listApps());
  for (const auto& app : apps) {
    auto ds = store_.listDeployments(app.name, 0);
    if (!ds.ok()) {
      if (ds.status().code() == Code::kNotFound) continue;  // removed meanwhile
      return ds.status();
    }
    for (const auto& d : *ds) {
      if (!seen.insert(d.id).second) continue;
      RETURN_IF_ERROR(markTree(d.root_tree, live));
      if (!d.output_tree.empty()) RETURN_IF_ERROR(markTree(d.output_tree, live));
    }
  }
  return Status::Ok();
}

Result<GcReport> Deployer::collectGarbage(int64_t grace_ms) {
  int64_t started = clock_.nowMillis();
  std::unordered_set<std::string> live, seen;
  RETURN_IF_ERROR(markDeployments(live, seen));
  GcReport report;
  std::vector<blob::BlobStore::Listed> unneeded;
  RETURN_IF_ERROR(blobs_.list([&](const blob::BlobStore::Listed& b) {
    report.blobs++;
    report.bytes += b.size;
    if (!live.count(b.hash) && b.touched_ms < started - grace_ms) unneeded.push_back(b);
    return true;
  }));
  std::lock_guard create_lock(create_mu_);
  // Deployments made since the first look keep what they need too.
  RETURN_IF_ERROR(markDeployments(live, seen));
  for (const auto& b : unneeded) {
    if (live.count(b.hash)) continue;
    RETURN_IF_ERROR(blobs_.remove(b.hash));
    report.removed++;
    report.removed_bytes += b.size;
  }
  report.live = live.size();
  std::lock_guard lock(mu_);
  verified_.clear();  // a verified tree may have lost a child
  return report;
}

}  // namespace nubo::api
