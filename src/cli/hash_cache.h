// HashCache: remembers each file's SHA-256 keyed by (path, size, mtime,
// inode), in DIR/.nubo/hashcache, so a redeploy re-reads only files that
// changed. Entries whose mtime is within a second of the scan are not kept
// (a write in the same clock tick would not change the key).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/status.h"

namespace nubo::cli {

struct FileKey {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  uint64_t ino = 0;
  bool operator==(const FileKey&) const = default;
};

class HashCache {
 public:
  // A missing or unreadable cache is an empty one.
  static HashCache load(const std::string& path);

  std::optional<std::string> lookup(const std::string& rel, const FileKey& key) const;
  // Remembers for save(); only what is recorded is saved.
  void record(const std::string& rel, const FileKey& key, const std::string& hash, int64_t scan_start_ns);
  Status save(const std::string& path) const;

 private:
  struct Entry {
    FileKey key;
    std::string hash;
  };
  std::unordered_map<std::string, Entry> old_;
  std::unordered_map<std::string, Entry> next_;
};

}  // namespace nubo::cli
