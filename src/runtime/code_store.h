// CodeStore: the folders instances run deployments from.
//
// Each instance gets an empty folder DATA/instances/<id>/ when it starts
// (the sandbox shows it read-only at /app). Specializing fills it with the
// deployment's files: hard links to their read-only blobs (executables are
// copied with mode 0555), so no bytes are copied and nothing can change them.
// Thread-safe.
#pragma once

#include <memory>
#include <string>

#include "blob/blob_store.h"
#include "common/status.h"

namespace nubo::runtime {

class CodeStore {
 public:
  // Clears folders left by instances of an earlier run.
  static Result<std::unique_ptr<CodeStore>> create(std::string root, blob::BlobStore& blobs);

  Result<std::string> makeInstanceDir(const std::string& instance);
  std::string dirFor(const std::string& instance) const { return root_ + "/" + instance; }
  // Puts the files of the tree `root_tree` into `dir` (empty).
  Status linkInto(const std::string& root_tree, const std::string& dir);
  void removeInstanceDir(const std::string& instance);

 private:
  CodeStore(std::string root, blob::BlobStore& blobs) : root_(std::move(root)), blobs_(blobs) {}
  std::string root_;
  blob::BlobStore& blobs_;
};

}  // namespace nubo::runtime
