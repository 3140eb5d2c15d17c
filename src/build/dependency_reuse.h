// DependencyReuse: a node build whose dependencies are exactly what an
// earlier build of the same app installed needs no build at all.
//
// The node builder, for a project it does not bundle and that has no
// build.command or build.output, makes its output by `npm ci` and copying
// the project: the source plus the node_modules npm installed. That
// node_modules is a function of the dependencies' inputs only:
// package.json, package-lock.json, .npmrc, and the local folders and
// tarballs the lock file names (file: dependencies). When all of these are
// byte for byte those of one of the app's recent READY deployments built
// that way, outputFor() makes the new output from the new source and that
// deployment's node_modules tree (content-addressed, so nothing is copied)
// in milliseconds, instead of a sandboxed npm ci taking seconds.
//
// Never across apps (each app's node_modules comes from its own builds),
// and never when the root package or any package in the lock file has
// install scripts (preinstall, install, postinstall, prepare...: they run
// code that may read any file of the project, so what they leave is not
// a function of the inputs above).
//
// Thread-safe (reads the store and blobs; writes one tree object).
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "blob/blob_store.h"
#include "manifest/manifest.h"
#include "store/metadata_store.h"

namespace nubo::build {

struct Reused {
  std::string tree;  // the new output tree
  std::string from;  // the deployment whose node_modules it has
};

class DependencyReuse {
 public:
  // How many of the app's newest deployments are looked at.
  static constexpr size_t kLookBack = 20;

  DependencyReuse(store::MetadataStore& store, blob::BlobStore& blobs) : store_(store), blobs_(blobs) {}

  // The output for `d` (manifest `m`, builder `builder`) made without a
  // build, or nullopt when the build must run.
  Result<std::optional<Reused>> outputFor(const store::Deployment& d, const manifest::Manifest& m,
                                          const std::string& builder);

  // What the installed node_modules of the source `root` depends on, as
  // one hash; nullopt when it cannot be reused (no lock file, install
  // scripts, a local dependency missing, a bundled entry).
  Result<std::optional<std::string>> inputsKey(const std::string& root, const manifest::Manifest& m);

 private:
  // What a source tree's dependencies come from: the key (empty when they
  // cannot be reused whatever the manifest says) and whether package.json
  // says "type": "module". Memoized by tree: trees never change, and each
  // build compares against up to kLookBack earlier ones.
  struct RootInputs {
    std::string key;
    bool module_package = false;
  };
  Result<RootInputs> rootInputs(const std::string& root);
  // A JSON file of the tree, at most `max` bytes (nullopt when absent).
  Result<std::optional<std::string>> readFile(const std::string& root, std::string_view path, uint64_t max);

  static constexpr size_t kMaxKnown = 4096;
  store::MetadataStore& store_;
  blob::BlobStore& blobs_;
  std::mutex mu_;
  std::unordered_map<std::string, RootInputs> known_;  // guarded by mu_: root tree -> its inputs
};

}  // namespace nubo::build
