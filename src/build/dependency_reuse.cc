#include "build/dependency_reuse.h"

#include <algorithm>
#include <map>

#include "blob/tree.h"
#include "common/json.h"
#include "common/sha256.h"

namespace nubo::build {

namespace {

constexpr uint64_t kMaxPackageJson = 1 << 20;
constexpr uint64_t kMaxLockFile = 32 << 20;

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Whether the node builder makes node_modules part of the output the way
// outputFor() rebuilds it: no command, no output folder, and an entry it
// does not bundle (bundles hold their dependencies inside).
bool copiesTheProject(const manifest::Manifest& m, const std::string& builder, bool module_package) {
  if (builder != "node" || !m.build.command.empty() || !m.build.output.empty()) return false;
  if (!runtimeTraits(manifest::runtimeKind(m)).node_dependencies) return false;
  const std::string& e = m.entry;
  if (e.find(' ') != std::string::npos) return true;  // a command line: nothing bundled
  if (e.empty() || isTypeScript(e) || endsWith(e, ".mjs")) return false;
  return !(endsWith(e, ".js") && module_package);
}

// A path in the lock file relative to the project ("vendor/lib", "./x.tgz").
std::string projectPath(std::string p) {
  while (p.rfind("./", 0) == 0) p.erase(0, 2);
  while (!p.empty() && p.back() == '/') p.pop_back();
  return p;
}

}  // namespace

Result<std::optional<std::string>> DependencyReuse::readFile(const std::string& root, std::string_view path,
                                                             uint64_t max) {
  ASSIGN_OR_RETURN(std::optional<blob::TreeEntry> e, blob::lookupPath(blobs_, root, path));
  if (!e || e->isDir()) return std::optional<std::string>();
  if (e->size > max) return std::optional<std::string>();
  ASSIGN_OR_RETURN(std::string bytes, blobs_.get(e->hash));
  return std::optional<std::string>(std::move(bytes));
}

Result<std::optional<std::string>> DependencyReuse::inputsKey(const std::string& root, const manifest::Manifest& m) {
  std::optional<RootInputs> in;
  {
    std::lock_guard lock(mu_);
    if (auto it = known_.find(root); it != known_.end()) in = it->second;
  }
  if (!in) {
    ASSIGN_OR_RETURN(in, rootInputs(root));
    std::lock_guard lock(mu_);
    if (known_.size() >= kMaxKnown) known_.clear();
    known_[root] = *in;
  }
  if (in->key.empty()) return std::optional<std::string>();
  if (!copiesTheProject(m, m.build.builder.empty() ? "node" : m.build.builder, in->module_package)) {
    return std::optional<std::string>();
  }
  return std::optional<std::string>(in->key);
}

Result<DependencyReuse::RootInputs> DependencyReuse::rootInputs(const std::string& root) {
  using None = std::optional<std::string>;
  const RootInputs none;
  ASSIGN_OR_RETURN(None pkg_text, readFile(root, "package.json", kMaxPackageJson));
  ASSIGN_OR_RETURN(None lock_text, readFile(root, "package-lock.json", kMaxLockFile));
  if (!pkg_text || !lock_text) return none;
  auto pkg = parseJson(*pkg_text, "package.json");
  auto lock = parseJson(*lock_text, "package-lock.json");
  if (!pkg.ok() || !pkg->is_object() || !lock.ok() || !lock->is_object()) return none;
  // The project's own install scripts run its code: they could read anything.
  if (auto scripts = pkg->find("scripts"); scripts != pkg->end() && scripts->is_object()) {
    for (const char* s : {"preinstall", "install", "postinstall", "prepublish", "preprepare", "prepare",
                          "postprepare"}) {
      if (scripts->contains(s)) return none;
    }
  }
  bool module_package = pkg->value("type", "") == "module";

  // Local packages the lock file installs from the project: folders (keys
  // of "packages" outside node_modules) and tarballs ("resolved": "file:...").
  std::map<std::string, std::string> locals;
  if (auto packages = lock->find("packages"); packages != lock->end() && packages->is_object()) {
    for (auto it = packages->begin(); it != packages->end(); ++it) {
      std::vector<std::string> paths;
      const std::string& key = it.key();
      if (!key.empty() && key.rfind("node_modules/", 0) != 0 && key.find("/node_modules/") == std::string::npos) {
        paths.push_back(projectPath(key));
      }
      if (it->is_object()) {
        // A package's install script could read anything in the project.
        if (it->value("hasInstallScript", false)) return none;
        std::string resolved = it->value("resolved", "");
        if (resolved.rfind("file:", 0) == 0) paths.push_back(projectPath(resolved.substr(5)));
      }
      for (const auto& p : paths) {
        if (p.empty() || p.find("..") != std::string::npos || p[0] == '/') return none;  // outside the project
        ASSIGN_OR_RETURN(std::optional<blob::TreeEntry> e, blob::lookupPath(blobs_, root, p));
        if (!e) return none;
        locals[p] = e->hash;
      }
    }
  }
  ASSIGN_OR_RETURN(None npmrc, readFile(root, ".npmrc", kMaxPackageJson));
  std::string all = "package.json\n" + sha256Hex(*pkg_text) + "\npackage-lock.json\n" + sha256Hex(*lock_text) +
                    "\n.npmrc\n" + (npmrc ? sha256Hex(*npmrc) : "-") + "\n";
  for (const auto& [p, h] : locals) all += p + "\n" + h + "\n";
  return RootInputs{sha256Hex(all), module_package};
}

Result<std::optional<Reused>> DependencyReuse::outputFor(const store::Deployment& d, const manifest::Manifest& m,
                                                         const std::string& builder) {
  using None = std::optional<Reused>;
  if (builder != "node") return None();
  ASSIGN_OR_RETURN(std::optional<std::string> key, inputsKey(d.root_tree, m));
  if (!key) return None();
  ASSIGN_OR_RETURN(auto recent, store_.listDeployments(d.app, kLookBack));
  for (const auto& prev : recent) {
    if (prev.id == d.id || prev.state != store::DeploymentState::kReady || prev.output_tree.empty()) continue;
    auto pm = manifest::parseManifestText(prev.manifest_json);
    if (!pm.ok()) continue;
    auto prev_key = inputsKey(prev.root_tree, *pm);
    if (!prev_key.ok() || *prev_key != key) continue;
    ASSIGN_OR_RETURN(std::optional<blob::TreeEntry> modules, blob::lookupPath(blobs_, prev.output_tree, "node_modules"));
    if (!modules || !modules->isDir()) continue;
    // The new source as the builder copies it, with that node_modules.
    ASSIGN_OR_RETURN(std::string bytes, blobs_.get(d.root_tree));
    ASSIGN_OR_RETURN(blob::Tree tree, blob::decodeTree(bytes));
    std::erase_if(tree.entries, [](const auto& e) { return e.name == "node_modules" || e.name == ".nubo"; });
    tree.entries.push_back(*modules);
    std::sort(tree.entries.begin(), tree.entries.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    ASSIGN_OR_RETURN(std::string encoded, blob::encodeTree(std::move(tree)));
    std::string hash = sha256Hex(encoded);
    RETURN_IF_ERROR(blobs_.put(hash, encoded));
    return None(Reused{hash, prev.id});
  }
  return None();
}

}  // namespace nubo::build
