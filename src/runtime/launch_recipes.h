// LaunchRecipes: the command line and environment an instance's process
// starts with, per launch kind of the runtime registry
// (common/runtime_kind.h): a generic node stem (node and exec deployments),
// or a deployment's own program (native). Made once at start-up: finds
// node, learns which flags it takes, and writes the node runtime's script
// files (embedded in the binary) where instances see them.
//
// Isolation (namespaces, limits) is not a recipe's: the caller sets it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "runtime/launcher.h"

namespace nubo::runtime {

class LaunchRecipes {
 public:
  // `node_binary` empty: looked up on PATH (none found: no node stems; see
  // haveNode()). Writes the runtime's files into `runtime_dir`.
  static Result<LaunchRecipes> create(std::string node_binary, const std::string& runtime_dir);

  bool haveNode() const { return !node_.empty(); }
  const std::string& nodeBinary() const { return node_; }

  // A generic node stem; `runtime_dir_inside`: the runtime's files as the
  // instance sees them.
  LaunchSpec nodeStem(const std::string& runtime_dir_inside) const;
  // A deployment's own program `entry` in `app_dir_inside`, with its env.
  static LaunchSpec ownProgram(const std::string& app_dir_inside, const std::string& entry,
                               const std::map<std::string, std::string>& env);
  // nubo's exec proxy (this very binary), which is told the deployment's
  // command and env in SPECIALIZE.
  LaunchSpec execProxy() const;

 private:
  std::string node_;
  std::string self_;  // this program (/proc/self/exe)
  std::vector<std::string> node_flags_;  // for every node instance
};

}  // namespace nubo::runtime
