// CodeStore: a deployment's files as a real directory, for instances to run.
//
// DATA/code/<deployment>/ mirrors the deployment's tree: files are hard links
// to their (read-only) blobs, executables are copies with mode 0555. Built
// once per deployment in a temp directory and renamed into place, so a
// directory that exists is complete. Thread-safe; concurrent callers for the
// same deployment wait for one build.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "blob/blob_store.h"
#include "common/status.h"

namespace nubo::runtime {

class CodeStore {
 public:
  // Clears leftovers of interrupted builds under `root`.
  static Result<std::unique_ptr<CodeStore>> create(std::string root, blob::BlobStore& blobs);

  // The directory holding `deployment`'s files (building it if needed).
  Result<std::string> materialize(const std::string& deployment, const std::string& root_tree);

  // Removes a deployment's directory (its app was deleted).
  void remove(const std::string& deployment);

 private:
  CodeStore(std::string root, blob::BlobStore& blobs) : root_(std::move(root)), blobs_(blobs) {}
  Status build(const std::string& dir, const std::string& root_tree);

  std::string root_;
  blob::BlobStore& blobs_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<std::mutex>> building_;  // guarded by mu_
};

}  // namespace nubo::runtime
