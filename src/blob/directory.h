// storeDirectory(): puts a folder on this machine into the blob store as a
// Merkle tree (blob/tree.h), the server-side counterpart of the CLI's
// scanner. Used for build outputs: a builder writes a folder, and the
// deployment runs (or serves) the tree stored from it.
//
// - Files are hashed and stored unless a blob of that hash is stored
//   already (an unchanged output file costs one read and one hash).
// - A symbolic link to a file inside the folder is stored as a copy of that
//   file (package managers link executables into node_modules/.bin); any
//   other link, sockets, devices and pipes are left out, each reported to
//   `skipped` with its path and why. Empty folders are left out, as the CLI
//   does.
// - A name the tree format refuses is an error naming its path.
// - Files stream into the store (blob/blob_store.h: putFile), never whole in
//   memory, and `limits` bound what is stored: a folder over them fails as
//   soon as the sizes show it (before a byte of the file that crosses them
//   is read).
//
// Errors: kInvalidArgument (a bad name), kResourceExhausted (over `limits`,
// naming the limit), kNotFound (no such folder), kInternal / kUnavailable
// from the store or the file system.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "blob/blob_store.h"
#include "common/status.h"

namespace nubo::blob {

struct StoredDirectory {
  std::string root;  // tree hash; empty when the folder held no file
  uint64_t files = 0;
  uint64_t bytes = 0;
  uint64_t stored_files = 0;  // not in the store before
};

struct StoreLimits {
  uint64_t max_files = UINT64_MAX;
  uint64_t max_bytes = UINT64_MAX;
};

using SkipReport = std::function<void(std::string_view path, std::string_view why)>;

Result<StoredDirectory> storeDirectory(BlobStore& blobs, const std::string& dir, const SkipReport& skipped,
                                       StoreLimits limits = {});

}  // namespace nubo::blob
