#include "gateway/static_site.h"

#include <algorithm>
#include <cctype>

#include <charconv>

#include "gateway/mime.h"

namespace nubo::gateway {
namespace {

using http::Response;

bool parseUint(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Response notFound(const DeploymentRoute& d, std::string_view path) {
  return Response::text(404, "not found: " + std::string(path) + " is not a file of deployment " + d.id +
                                 " (app " + d.app + ")\n");
}

}  // namespace

ByteRange parseRange(std::string_view header, uint64_t size) {
  ByteRange r;
  header = trim(header);
  if (header.substr(0, 6) != "bytes=") return r;
  std::string_view spec = trim(header.substr(6));
  if (spec.find(',') != std::string_view::npos) return r;  // several ranges: send it all
  size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return r;
  std::string_view a = trim(spec.substr(0, dash)), b = trim(spec.substr(dash + 1));
  uint64_t first = 0, last = 0;
  if (a.empty()) {  // suffix: last N bytes
    if (!parseUint(b, &last)) return r;
    if (last == 0 || size == 0) {
      r.kind = ByteRange::Kind::kUnsatisfiable;
      return r;
    }
    r.kind = ByteRange::Kind::kSatisfiable;
    r.length = std::min(last, size);
    r.start = size - r.length;
    return r;
  }
  if (!parseUint(a, &first)) return r;
  if (b.empty()) {
    last = size == 0 ? 0 : size - 1;
  } else if (!parseUint(b, &last) || last < first) {
    return r;  // malformed: ignore, as RFC 9110 allows
  }
  if (first >= size) {
    r.kind = ByteRange::Kind::kUnsatisfiable;
    return r;
  }
  last = std::min(last, size - 1);
  r.kind = ByteRange::Kind::kSatisfiable;
  r.start = first;
  r.length = last - first + 1;
  return r;
}

// Files a site never serves, whatever the folder held: the manifest at its
// root, and environment files (.env, .env.local...) anywhere. They are left
// out of the index, so they answer like any missing file.
bool isPrivate(std::string_view path) {
  if (path == "nubo.json") return true;
  size_t slash = path.rfind('/');
  return path.substr(slash == std::string_view::npos ? 0 : slash + 1).substr(0, 4) == ".env";
}

bool etagMatches(std::string_view inm, std::string_view etag) {
  while (!inm.empty()) {
    size_t comma = inm.find(',');
    std::string_view tag = trim(inm.substr(0, comma));
    if (tag == "*") return true;
    if (tag.substr(0, 2) == "W/") tag.remove_prefix(2);
    if (tag == etag) return true;
    if (comma == std::string_view::npos) break;
    inm.remove_prefix(comma + 1);
  }
  return false;
}

StaticSite::StaticSite(blob::BlobStore& blobs, FileCache& cache, size_t max_indexes)
    : blobs_(blobs), cache_(cache), max_indexes_(max_indexes) {}

Result<std::shared_ptr<const SiteIndex>> StaticSite::index(const std::string& root, bool local_only) {
  {
    std::lock_guard lock(mu_);
    auto it = indexes_.find(root);
    if (it != indexes_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.second);
      return it->second.first;
    }
  }
  auto idx = std::make_shared<SiteIndex>();
  idx->dirs.insert("");
  blob::TreeLoader load = blob::loaderFor(blobs_);
  if (local_only) {
    load = [this, read = std::move(load)](const std::string& hash) -> Result<blob::Tree> {
      if (!blobs_.isLocal(hash)) return Unavailable("tree " + hash + " is not on this node yet");
      return read(hash);
    };
  }
  RETURN_IF_ERROR(blob::walkTree(root, load, [&](blob::FlatFile&& f) {
    if (isPrivate(f.path)) return;
    for (size_t p = f.path.find('/'); p != std::string::npos; p = f.path.find('/', p + 1)) {
      idx->dirs.insert(f.path.substr(0, p));
    }
    std::string key = f.path;
    idx->files.emplace(std::move(key), std::move(f));
  }));
  std::shared_ptr<const SiteIndex> result = std::move(idx);
  std::lock_guard lock(mu_);
  auto [it, inserted] = indexes_.try_emplace(root);
  if (!inserted) return it->second.first;
  lru_.push_front(root);
  it->second = {result, lru_.begin()};
  while (indexes_.size() > max_indexes_) {
    indexes_.erase(lru_.back());
    lru_.pop_back();
  }
  return result;
}

Response StaticSite::serve(const DeploymentRoute& d, std::string_view raw_path, bool immutable,
                           const http::Request& req, SiteFetch* fetch) {
  if (!d.site || (d.site->redirects.empty() && d.site->headers.empty())) {
    return serveFiles(d, raw_path, immutable, req, fetch);
  }
  auto decoded = http::percentDecode(raw_path);
  std::string path = decoded.ok() ? *decoded : std::string(raw_path);
  for (const auto& rd : d.site->redirects) {
    if (rd.from != path) continue;
    // A path stays inside the app when it is reached by path (/<app>/...).
    std::string prefix;
    if (req.path.size() > raw_path.size() && req.path.substr(req.path.size() - raw_path.size()) == raw_path) {
      prefix = std::string(req.path.substr(0, req.path.size() - raw_path.size()));
    }
    Response r = Response::text(rd.status, "moved to " + rd.to + "\n");
    r.header("location", rd.to[0] == '/' ? prefix + rd.to : rd.to);
    return r;
  }
  Response r = serveFiles(d, raw_path, immutable, req, fetch);
  for (const auto& [rule, headers] : d.site->headers) {
    if (!manifest::staticPathMatches(rule, path)) continue;
    for (const auto& header : headers) {
      // The site's word replaces nubo's own (cache-control, say).
      const std::string& name = header.first;
      std::erase_if(r.headers, [&name](const auto& h) {
        return h.first.size() == name.size() && std::equal(name.begin(), name.end(), h.first.begin(), [](char a, char b) {
                 return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
               });
      });
      r.header(name, header.second);
    }
  }
  return r;
}

Response StaticSite::serveFiles(const DeploymentRoute& d, std::string_view raw_path, bool immutable,
                                const http::Request& req, SiteFetch* fetch) {
  if (req.method != "GET" && req.method != "HEAD") {
    Response r = Response::text(405, "method " + std::string(req.method) + " not allowed: static sites answer GET and HEAD\n");
    r.header("allow", "GET, HEAD");
    return r;
  }
  auto decoded = http::percentDecode(raw_path);
  if (!decoded.ok()) return Response::text(400, "bad request: " + decoded.status().message() + "\n");

  // Normalize: drop empty and "." segments; refuse "..".
  std::string rel;
  std::string_view p = *decoded;
  while (!p.empty()) {
    size_t slash = p.find('/');
    std::string_view seg = p.substr(0, slash);
    p = slash == std::string_view::npos ? std::string_view() : p.substr(slash + 1);
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") return Response::text(400, "bad request: paths may not contain \"..\"\n");
    if (!rel.empty()) rel += '/';
    rel.append(seg);
  }
  bool trailing_slash = decoded->back() == '/';

  auto idx = index(d.root_tree, fetch != nullptr);
  if (!idx.ok() && fetch && idx.status().code() == Code::kUnavailable) {
    *fetch = SiteFetch{d.root_tree, true};
    return Response::text(503, "deployment " + d.id + " is being fetched to this node\n");
  }
  if (!idx.ok()) {
    return Response::text(500, "deployment " + d.id + " cannot be read: " + idx.status().message() + "\n");
  }
  const SiteIndex& site = **idx;
  if (!trailing_slash) {
    if (auto f = site.files.find(rel); f != site.files.end()) return serveFile(d, f->second, 200, immutable, req, fetch);
  }
  if (site.dirs.count(rel)) {
    if (!trailing_slash) {
      return Response::redirect(std::string(req.path) + "/", req.query);
    }
    std::string index_path = rel.empty() ? "index.html" : rel + "/index.html";
    if (auto f = site.files.find(index_path); f != site.files.end()) {
      return serveFile(d, f->second, 200, immutable, req, fetch);
    }
  }
  // A single-page app: a client-side route (no extension: not a missing
  // asset) gets the app's page.
  if (d.site && !d.site->fallback.empty() && rel.substr(rel.rfind('/') + 1).find('.') == std::string::npos) {
    if (auto f = site.files.find(d.site->fallback); f != site.files.end()) {
      return serveFile(d, f->second, 200, immutable, req, fetch);
    }
  }
  if (auto f = site.files.find("404.html"); f != site.files.end()) return serveFile(d, f->second, 404, immutable, req, fetch);
  return notFound(d, *decoded);
}

Status StaticSite::attachBody(Response& r, const blob::FlatFile& f, uint64_t start, uint64_t length) {
  if (f.size <= cache_.maxFileBytes()) {
    ASSIGN_OR_RETURN(auto bytes, cache_.get(f.hash));
    r.kind = Response::BodyKind::kShared;
    r.shared = {std::move(bytes), static_cast<size_t>(start), static_cast<size_t>(length)};
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(blob::BlobFile file, blobs_.open(f.hash));
  r.kind = Response::BodyKind::kFile;
  r.file = {std::make_shared<const UniqueFd>(std::move(file.fd)), start, length};
  return Status::Ok();
}

Response StaticSite::serveFile(const DeploymentRoute& d, const blob::FlatFile& f, int status, bool immutable,
                               const http::Request& req, SiteFetch* fetch) {
  std::string etag = "\"" + f.hash + "\"";
  Response r;
  r.status = status;
  r.headers.reserve(6);
  r.header("content-type", std::string(contentTypeFor(f.path)));
  r.header("etag", etag);
  r.header("cache-control", immutable ? "public, max-age=31536000, immutable" : "public, max-age=0, must-revalidate");
  r.header("x-nubo-deployment", d.id);
  uint64_t start = 0, length = f.size;
  if (status == 200) {  // the 404 page takes no conditionals and no ranges
    if (auto inm = req.header("if-none-match"); !inm.empty() && etagMatches(inm, etag)) {
      r.status = 304;
      return r;
    }
    r.header("accept-ranges", "bytes");
    std::string_view range = req.header("range");
    std::string_view if_range = req.header("if-range");
    if (!range.empty() && (if_range.empty() || if_range == etag)) {
      ByteRange br = parseRange(range, f.size);
      if (br.kind == ByteRange::Kind::kUnsatisfiable) {
        Response u = Response::text(416, "range not satisfiable: the file has " + std::to_string(f.size) + " bytes\n");
        u.header("content-range", "bytes */" + std::to_string(f.size));
        return u;
      }
      if (br.kind == ByteRange::Kind::kSatisfiable) {
        r.status = 206;
        start = br.start;
        length = br.length;
        r.header("content-range", "bytes " + std::to_string(start) + "-" + std::to_string(start + length - 1) + "/" +
                                      std::to_string(f.size));
      }
    }
  }
  if (fetch && !blobs_.isLocal(f.hash)) {
    *fetch = SiteFetch{f.hash, false};
    return Response::text(503, "deployment " + d.id + " is being fetched to this node\n");
  }
  if (Status s = attachBody(r, f, start, length); !s.ok()) {
    return Response::text(500, "file " + f.path + " of deployment " + d.id + " cannot be read: " + s.message() + "\n");
  }
  return r;
}

}  // namespace nubo::gateway
