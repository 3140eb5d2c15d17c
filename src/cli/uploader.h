// Uploader: gets a Snapshot's missing objects to the server.
//
// negotiate() walks the Merkle tree top-down, one batched request per level:
// a tree the server has is complete (the server checks children on upload),
// so its whole subtree is skipped — an unchanged project costs one hash.
// upload() sends the missing files with several connections at once, then
// the missing trees deepest first, so every tree arrives after its children.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "cli/scanner.h"
#include "common/status.h"

namespace nubo::cli {

class HttpClient;

struct UploadPlan {
  std::vector<std::string> files;  // blob hashes to upload
  std::vector<std::string> trees;  // tree hashes to upload, deepest first
  uint64_t file_bytes = 0;
  uint64_t tree_bytes = 0;
};

Result<UploadPlan> negotiate(HttpClient& client, const Snapshot& snap);

struct UploadTarget {
  std::string server;
  std::string token;
  std::string dir;  // project folder the files are read from
};

// `on_progress(objects_done, bytes_done)` may be called from worker threads.
Status upload(const UploadTarget& target, const Snapshot& snap, const UploadPlan& plan, int parallel,
              const std::function<void(size_t, uint64_t)>& on_progress);

}  // namespace nubo::cli
