// Scanner: turns a project folder into a Snapshot — every file with its
// SHA-256, and the Merkle tree objects of its directories (blob/tree.h).
//
//   scan()     walks the folder (honouring IgnoreRules); a symbolic link
//              to a file or folder inside it is taken as a copy of its
//              target; links outside, dangling or looping, special files
//              and bad names are refused with the path named
//   hash()     hashes files the HashCache does not know, in parallel
//   snapshot() builds the tree objects bottom-up; the root hash names the
//              whole deployment's content
// Empty directories are not part of a snapshot.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cli/hash_cache.h"
#include "cli/ignore.h"
#include "common/status.h"

namespace nubo::cli {

struct ScannedFile {
  std::string path;  // relative, '/'-separated
  FileKey key;
  bool executable = false;
  std::string hash;  // filled by hash()
};

struct TreeObject {
  std::string hash;
  std::string bytes;  // canonical encoding
  int depth = 0;      // 0 = root
  std::vector<std::string> child_trees;
  std::vector<std::string> child_files;
};

struct Snapshot {
  std::string root;
  std::vector<ScannedFile> files;
  std::unordered_map<std::string, TreeObject> trees;  // by hash
  std::unordered_map<std::string, uint64_t> file_sizes;  // blob hash -> size
  uint64_t total_bytes = 0;
};

Result<std::vector<ScannedFile>> scan(const std::string& dir, const IgnoreRules& rules);

// Returns how many files were read (not found in the cache).
// `on_progress(files_done, bytes_done)` may be called from worker threads.
Result<size_t> hash(const std::string& dir, std::vector<ScannedFile>& files, HashCache& cache,
                    int64_t scan_start_ns, const std::function<void(size_t, uint64_t)>& on_progress);

Result<Snapshot> snapshot(std::vector<ScannedFile> files);

}  // namespace nubo::cli
