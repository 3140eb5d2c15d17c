#include "blob/directory.h"

#include <sys/stat.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <optional>
#include <vector>

#include "blob/tree.h"
#include "common/fs.h"
#include "common/sha256.h"

namespace nubo::blob {
namespace {

constexpr int kMaxDepth = 64;

class Storer {
 public:
  Storer(BlobStore& blobs, std::string top, const SkipReport& skipped, StoreLimits limits)
      : blobs_(blobs), top_(std::move(top)), skipped_(skipped), limits_(limits) {}

  // Stores the folder at `rel` ("" for the top); the tree hash, or empty
  // when nothing below it is a file.
  Result<std::string> storeDir(const std::string& rel, int depth, uint64_t* bytes) {
    if (depth > kMaxDepth) return InvalidArgument(rel + ": folders nested deeper than " + std::to_string(kMaxDepth));
    std::string path = rel.empty() ? top_ : top_ + "/" + rel;
    ASSIGN_OR_RETURN(std::vector<std::string> names, listDir(path));
    Tree tree;
    *bytes = 0;
    for (const auto& name : names) {
      std::string child_rel = rel.empty() ? name : rel + "/" + name;
      RETURN_IF_ERROR(validateEntryName(name, child_rel));
      std::string child = top_ + "/" + child_rel;
      struct stat st {};
      if (::lstat(child.c_str(), &st) != 0) return ErrnoStatus("stat " + child, errno);
      std::string source = child;
      if (S_ISLNK(st.st_mode)) {
        auto target = insideTarget(child, child_rel);
        if (!target) continue;
        source = *target;
        if (::stat(source.c_str(), &st) != 0) return ErrnoStatus("stat " + source, errno);
      }
      TreeEntry entry;
      entry.name = name;
      if (S_ISDIR(st.st_mode)) {
        uint64_t sub_bytes = 0;
        ASSIGN_OR_RETURN(std::string sub, storeDir(child_rel, depth + 1, &sub_bytes));
        if (sub.empty()) continue;
        entry.kind = EntryKind::kDir;
        entry.hash = std::move(sub);
        entry.size = sub_bytes;
      } else if (S_ISREG(st.st_mode)) {
        RETURN_IF_ERROR(count(child_rel, static_cast<uint64_t>(st.st_size)));
        ASSIGN_OR_RETURN(entry.hash, storeFile(source));
        entry.kind = (st.st_mode & S_IXUSR) ? EntryKind::kExecutable : EntryKind::kFile;
        entry.size = static_cast<uint64_t>(st.st_size);
        out_.files++;
      } else {
        if (skipped_) skipped_(child_rel, "not a regular file or folder");
        continue;
      }
      *bytes += entry.size;
      tree.entries.push_back(std::move(entry));
    }
    if (tree.entries.empty()) return std::string();
    ASSIGN_OR_RETURN(std::string encoded, encodeTree(std::move(tree)));
    std::string hash = sha256Hex(encoded);
    RETURN_IF_ERROR(blobs_.put(hash, encoded));
    return hash;
  }

  StoredDirectory& result() { return out_; }

 private:
  // The file or folder a link points to, when it is inside the top folder.
  std::optional<std::string> insideTarget(const std::string& link, const std::string& rel) {
    char resolved[PATH_MAX];
    if (!::realpath(link.c_str(), resolved)) {
      if (skipped_) skipped_(rel, "a symbolic link to nothing");
      return std::nullopt;
    }
    std::string target = resolved;
    if (target.rfind(top_ + "/", 0) != 0) {
      if (skipped_) skipped_(rel, "a symbolic link out of the folder (" + target + ")");
      return std::nullopt;
    }
    struct stat st {};
    if (::stat(target.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      if (skipped_) skipped_(rel, "a symbolic link to something other than a file");
      return std::nullopt;
    }
    return target;
  }

  // Counts a file against the limits before it is read.
  Status count(const std::string& rel, uint64_t size) {
    if (out_.files + 1 > limits_.max_files) {
      return ResourceExhausted("more than " + std::to_string(limits_.max_files) + " files (at " + rel + ")");
    }
    if (size > limits_.max_bytes - total_bytes_) {
      return ResourceExhausted("more than " + std::to_string(limits_.max_bytes) + " bytes (at " + rel + ", " +
                               std::to_string(size) + " bytes)");
    }
    total_bytes_ += size;
    return Status::Ok();
  }

  Result<std::string> storeFile(const std::string& path) {
    bool stored = false;
    ASSIGN_OR_RETURN(std::string hash, putFile(blobs_, path, &stored));
    if (stored) out_.stored_files++;
    return hash;
  }

  BlobStore& blobs_;
  std::string top_;
  const SkipReport& skipped_;
  StoreLimits limits_;
  uint64_t total_bytes_ = 0;
  StoredDirectory out_;
};

}  // namespace

Result<StoredDirectory> storeDirectory(BlobStore& blobs, const std::string& dir, const SkipReport& skipped,
                                       StoreLimits limits) {
  char resolved[PATH_MAX];
  if (!::realpath(dir.c_str(), resolved)) return NotFound("folder " + dir + " does not exist");
  Storer s(blobs, resolved, skipped, limits);  // resolved: links are checked against the real path
  uint64_t bytes = 0;
  ASSIGN_OR_RETURN(std::string root, s.storeDir("", 0, &bytes));
  StoredDirectory out = s.result();
  out.root = std::move(root);
  out.bytes = bytes;
  return out;
}

}  // namespace nubo::blob
