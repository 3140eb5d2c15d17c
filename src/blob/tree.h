// Merkle trees of deployed files.
//
// A tree object describes one directory. Its canonical encoding is text:
//
//   nubo-tree 1\n
//   <kind> <sha256-hex> <size>\t<name>\n     (one line per entry)
//
// kind is "file", "exec" (executable file) or "dir". For files, size is the
// blob's length; for dirs it is the total file bytes below it. Entries are
// sorted by name (bytewise) and unique. The tree is named by the SHA-256 of
// the encoding and stored in the BlobStore like any blob, so an unchanged
// directory has an unchanged hash and costs nothing to redeploy.
//
// Names are one path component: 1..255 bytes, not "." or "..", no '/', NUL,
// or control characters (0x01-0x1f, 0x7f). Symlinks are not representable:
// the CLI rejects them, naming the path (see docs/trees.md).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "blob/blob_store.h"
#include "common/status.h"

namespace nubo::blob {

enum class EntryKind { kFile, kExecutable, kDir };

std::string_view kindName(EntryKind k);

struct TreeEntry {
  std::string name;
  EntryKind kind = EntryKind::kFile;
  uint64_t size = 0;
  std::string hash;

  bool isDir() const { return kind == EntryKind::kDir; }
  bool operator==(const TreeEntry&) const = default;
};

struct Tree {
  std::vector<TreeEntry> entries;  // sorted by name, unique

  uint64_t totalBytes() const;
};

// kInvalidArgument naming `path` (the entry's path in the deployment) when
// the name breaks a rule above.
Status validateEntryName(std::string_view name, std::string_view path);

// Sorts entries and encodes; kInvalidArgument for bad or duplicate names.
Result<std::string> encodeTree(Tree tree);

// Parses and checks that `bytes` is exactly the canonical encoding.
Result<Tree> decodeTree(std::string_view bytes);

// Checks a tree's children are stored and consistent: files exist with the
// listed size, subtrees exist and their total equals the listed size. This is
// what makes "a stored tree implies its whole subtree is stored" hold.
// kFailedPrecondition listing (some of) the missing hashes.
Status checkChildren(BlobStore& blobs, const Tree& tree);

// One file of a flattened tree: its path ("a/b.txt") and entry.
struct FlatFile {
  std::string path;
  EntryKind kind;
  uint64_t size;
  std::string hash;
};

// Walks the tree below `root`, calling `visit` for every file (not dirs),
// paths relative to the root. `load` fetches a tree object by hash.
using TreeLoader = std::function<Result<Tree>(const std::string& hash)>;
Status walkTree(const std::string& root, const TreeLoader& load,
                const std::function<void(FlatFile&&)>& visit);

// A TreeLoader reading and decoding from a BlobStore.
TreeLoader loaderFor(BlobStore& blobs);

// The entry at `path` ("a/b.js", or a folder "vendor/lib") below the tree
// `root`; nullopt when there is none. kFailedPrecondition when a tree on
// the way is not stored.
Result<std::optional<TreeEntry>> lookupPath(BlobStore& blobs, const std::string& root, std::string_view path);

}  // namespace nubo::blob
