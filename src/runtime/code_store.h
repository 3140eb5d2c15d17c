// CodeStore: the folders instances (and builds) run deployments from.
//
// Each instance gets an empty folder ROOT/<id>/ when it starts (the sandbox
// shows it read-only at /app). Specializing fills it with the deployment's
// files as hard links, so no bytes are copied per instance and nothing can
// change them.
//
// The links do not point at the shared blobs but at the app's own copy of
// each (FILES/<app>/<hash>, and <hash>.x with mode 0555 for executables),
// made the first time the app needs that blob (a reflink where the file
// system has them). So an app sees only its own link counts and times (an
// identical file of another app's is invisible), and it can exhaust the
// link limit of its own inodes only: past the limit (EMLINK) a file is
// copied instead. Executables are shared this way too, not copied.
//
// removeApp() drops an app's copies (instances running keep their links).
// Both folders are cleared at create(): they belong to one run.
// Thread-safe.
#pragma once

#include <memory>
#include <string>

#include "blob/blob_store.h"
#include "common/status.h"

namespace nubo::runtime {

class CodeStore {
 public:
  // `root` for instance folders, `files` for the apps' copies; both on the
  // blob store's file system (they are hard-linked).
  static Result<std::unique_ptr<CodeStore>> create(std::string root, std::string files, blob::BlobStore& blobs);

  Result<std::string> makeInstanceDir(const std::string& instance);
  std::string dirFor(const std::string& instance) const { return root_ + "/" + instance; }
  // Puts the files of the tree `root_tree` of app `app` into `dir` (empty).
  Status linkInto(const std::string& app, const std::string& root_tree, const std::string& dir);
  void removeInstanceDir(const std::string& instance);
  void removeApp(const std::string& app);

 private:
  CodeStore(std::string root, std::string files, blob::BlobStore& blobs)
      : root_(std::move(root)), files_(std::move(files)), blobs_(blobs) {}
  // The app's copy of a blob, made if missing.
  Result<std::string> appCopy(const std::string& app, const std::string& hash, bool executable);

  std::string root_;
  std::string files_;
  blob::BlobStore& blobs_;
};

// Copies `src` to a new file `dest` with `mode`: a reflink where the file
// system can, else the bytes.
Status copyFile(const std::string& src, const std::string& dest, mode_t mode);

}  // namespace nubo::runtime
