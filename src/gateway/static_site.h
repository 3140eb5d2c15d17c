// StaticSite: the `static` runtime. Serves a deployment's files straight from
// the blob store, without any instance:
//   - GET and HEAD (others: 405 with Allow);
//   - content type by extension; "dir/" serves dir/index.html, "dir" without
//     the slash redirects (308) to "dir/"; a root 404.html, if present, is
//     the body of every 404;
//   - ETag is the quoted blob hash; If-None-Match -> 304;
//   - one byte range (Range: bytes=...) -> 206, unsatisfiable -> 416,
//     If-Range honoured; several ranges -> the whole file (200);
//   - Cache-Control: immutable for deployment-id URLs, revalidate otherwise;
//   - small files from the FileCache, big ones streamed from disk.
//
// A deployment's tree is flattened into a path index once and kept in a
// bounded LRU keyed by root tree hash (trees are immutable). Thread-safe.
#pragma once

#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "blob/blob_store.h"
#include "blob/tree.h"
#include "gateway/file_cache.h"
#include "gateway/router.h"
#include "http/message.h"

namespace nubo::gateway {

struct SiteIndex {
  std::unordered_map<std::string, blob::FlatFile> files;  // "css/site.css" -> entry
  std::unordered_set<std::string> dirs;                   // "css", "css/img"; root is ""
};

// What a static site needs on this node before it can answer: every tree
// object under `hash` (its index), or the one file `hash`.
struct SiteFetch {
  std::string hash;
  bool trees = false;
  bool needed() const { return !hash.empty(); }
};

class StaticSite {
 public:
  StaticSite(blob::BlobStore& blobs, FileCache& cache, size_t max_indexes);

  // `path` is the path within the deployment (percent-encoded, starts with '/').
  // With `fetch` set, nothing is read that is not on this node
  // (BlobStore::isLocal): the answer is then a placeholder and `*fetch`
  // names what to bring here (off the data plane) before asking again:
  // the trees, then the one file the request wants, never the whole site.
  http::Response serve(const DeploymentRoute& d, std::string_view path, bool immutable,
                       const http::Request& req, SiteFetch* fetch = nullptr);

  // `local_only`: a tree not on this node is kUnavailable.
  Result<std::shared_ptr<const SiteIndex>> index(const std::string& root_tree, bool local_only = false);

 private:
  http::Response serveFiles(const DeploymentRoute& d, std::string_view path, bool immutable,
                            const http::Request& req, SiteFetch* fetch);
  http::Response serveFile(const DeploymentRoute& d, const blob::FlatFile& f, int status, bool immutable,
                           const http::Request& req, SiteFetch* fetch);
  Status attachBody(http::Response& r, const blob::FlatFile& f, uint64_t start, uint64_t length);

  blob::BlobStore& blobs_;
  FileCache& cache_;
  const size_t max_indexes_;

  std::mutex mu_;
  std::list<std::string> lru_;  // guarded by mu_, front = newest
  std::unordered_map<std::string, std::pair<std::shared_ptr<const SiteIndex>, std::list<std::string>::iterator>>
      indexes_;  // guarded by mu_
};

// Parses a Range header against a resource of `size` bytes.
struct ByteRange {
  enum class Kind { kIgnore, kSatisfiable, kUnsatisfiable };
  Kind kind = Kind::kIgnore;
  uint64_t start = 0;
  uint64_t length = 0;
};
ByteRange parseRange(std::string_view header, uint64_t size);

// True when an If-None-Match header value matches `etag` (quoted).
bool etagMatches(std::string_view if_none_match, std::string_view etag);

}  // namespace nubo::gateway
