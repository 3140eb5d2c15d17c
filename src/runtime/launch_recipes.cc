#include "runtime/launch_recipes.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "common/fs.h"
#include "runtime/functions.h"

namespace nubo::runtime {

namespace {

std::string findOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// What the node on this server is, and whether it takes
// --experimental-detect-module (Node 20.10 and later: a .js file written as
// an ES module loads as one without "type": "module").
struct NodeInfo {
  std::string version;
  bool detect_module = false;
};

NodeInfo probeNode(const std::string& node) {
  NodeInfo info;
  if (node.find('\'') != std::string::npos) return info;  // not quotable for the shell: assume the least
  std::string cmd = "'" + node + "' -p \"process.version + ' ' + "
                    "process.allowedNodeEnvironmentFlags.has('--experimental-detect-module')\" 2>/dev/null";
  if (FILE* f = ::popen(cmd.c_str(), "r")) {
    char line[128] = {};
    if (std::fgets(line, sizeof line, f)) {
      std::string_view out(line);
      info.version = std::string(out.substr(0, out.find(' ')));
      info.detect_module = out.find(" true") != std::string_view::npos;
    }
    ::pclose(f);
  }
  return info;
}

constexpr const char* kPath = "PATH=/usr/local/bin:/usr/bin:/bin";

}  // namespace

Result<LaunchRecipes> LaunchRecipes::create(std::string node_binary, const std::string& runtime_dir) {
  LaunchRecipes r;
  r.node_ = node_binary.empty() ? findOnPath("node") : std::move(node_binary);
  // Source maps: stack traces of bundled TypeScript name the .ts lines.
  r.node_flags_ = {"--enable-source-maps", "--no-flush-bytecode", "--no-memory-reducer"};
  if (r.haveNode()) {
    NodeInfo node = probeNode(r.node_);
    if (node.detect_module) {
      r.node_flags_.insert(r.node_flags_.begin(), "--experimental-detect-module");
    } else {
      spdlog::warn("node {} ({}) cannot tell an ES module by its syntax: a .js entry written with import/export "
                   "needs \"type\": \"module\" in package.json or the .mjs extension (Node 20.10 and later need "
                   "neither)",
                   node.version.empty() ? "of unknown version" : node.version, r.node_);
    }
  }
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  r.self_ = n > 0 ? std::string(self, static_cast<size_t>(n)) : "/proc/self/exe";
  RETURN_IF_ERROR(makeDirs(runtime_dir));
  // The runtime's script, and tiny modules a stem imports to warm Node's
  // module loaders (ESM, CommonJS, and detection of a .js file's kind).
  std::vector<std::pair<std::string, std::string>> files = nodeRuntimeFiles();
  files.insert(files.end(), {{"warm.mjs", "export default 1;\n"},
                             {"warm.cjs", "module.exports = 1;\n"},
                             {"warm-detect.js", "export default 1;\n"}});
  for (const auto& [name, content] : files) {
    std::string path = runtime_dir + "/" + name;
    auto current = readFile(path);
    if (!current.ok() || *current != content) RETURN_IF_ERROR(writeFileAtomic(path, content, 0444));
  }
  return r;
}

LaunchSpec LaunchRecipes::nodeStem(const std::string& runtime_dir_inside) const {
  LaunchSpec spec;
  spec.argv = {node_};
  spec.argv.insert(spec.argv.end(), node_flags_.begin(), node_flags_.end());
  spec.argv.push_back(runtime_dir_inside + "/instance.js");
  spec.env = {kPath, "HOME=/tmp", "TZ=UTC", "NODE_ENV=production", "NUBO_FD=3"};
  spec.cwd = "/";
  return spec;
}

LaunchSpec LaunchRecipes::ownProgram(const std::string& app_dir_inside, const std::string& entry,
                                     const std::map<std::string, std::string>& env) {
  LaunchSpec spec;
  spec.argv = {app_dir_inside + "/" + entry};
  spec.env = {kPath, "HOME=/tmp", "TZ=UTC", "NUBO_FD=3"};
  for (const auto& [k, v] : env) spec.env.push_back(k + "=" + v);
  spec.cwd = "/";
  return spec;
}

LaunchSpec LaunchRecipes::execProxy() const {
  LaunchSpec spec;
  spec.argv = {self_, "__exec-proxy"};
  // (NODE_ENV as node instances have it: a Node server run as exec behaves the same.)
  spec.env = {kPath, "HOME=/tmp", "TZ=UTC", "NODE_ENV=production", "NUBO_FD=3"};
  spec.cwd = "/";
  return spec;
}

}  // namespace nubo::runtime
