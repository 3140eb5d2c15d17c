#include "blob/s3/s3_client.h"

#include <curl/curl.h>
#include <tinyxml2.h>

#include <algorithm>
#include <cstdio>
#include <thread>
#include <utility>
#include <vector>

#include "common/percent_encode.h"
#include "common/sha256.h"

namespace nubo::blob::s3 {

namespace {

constexpr std::string_view kEmptySha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// An XML document's first element named `name` below `parent`, as text.
std::string childText(const tinyxml2::XMLElement* parent, const char* name) {
  const tinyxml2::XMLElement* e = parent ? parent->FirstChildElement(name) : nullptr;
  return e && e->GetText() ? e->GetText() : "";
}

struct Memory {
  std::string_view data;
  size_t at = 0;
};

size_t readMemory(char* out, size_t size, size_t n, void* p) {
  auto* m = static_cast<Memory*>(p);
  size_t take = std::min(size * n, m->data.size() - m->at);
  std::copy_n(m->data.data() + m->at, take, out);
  m->at += take;
  return take;
}

}  // namespace

struct S3Client::Request {
  const char* method = "GET";
  std::string key;                                  // "" for the bucket itself
  std::vector<std::pair<std::string, std::string>> query;
  std::optional<std::string_view> body;             // PUT from memory
  std::string body_file;                            // PUT from a file
  uint64_t body_size = 0;
  std::string payload_sha256{kEmptySha256};
  bool head = false;
  // For a 2xx answer's body: handed on as it arrives (else kept in the answer).
  const std::function<Status(std::string_view)>* sink = nullptr;
  uint64_t max_bytes = UINT64_MAX;  // kept bodies
  // Filled while sending.
  uint64_t handed = 0;
  Status sink_status = Status::Ok();
  bool over_limit = false;
};

Result<std::unique_ptr<S3Client>> S3Client::create(S3Options options) {
  if (options.endpoint.rfind("http://", 0) != 0 && options.endpoint.rfind("https://", 0) != 0) {
    return InvalidArgument("S3 endpoint \"" + options.endpoint + "\" must start with http:// or https://");
  }
  while (!options.endpoint.empty() && options.endpoint.back() == '/') options.endpoint.pop_back();
  // Bucket names: 3-63 lowercase letters, digits, '-' and '.' (S3's rules).
  const std::string& b = options.bucket;
  bool ok = b.size() >= 3 && b.size() <= 63 &&
            std::all_of(b.begin(), b.end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
            });
  if (!ok) {
    return InvalidArgument("S3 bucket \"" + b + "\" is not a bucket name (3-63 lowercase letters, digits, '-', '.')");
  }
  if (options.access_key.empty() || options.secret_key.empty()) {
    return InvalidArgument("S3 credentials missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
  }
  if (options.max_attempts < 1) options.max_attempts = 1;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  return std::unique_ptr<S3Client>(new S3Client(std::move(options)));
}

Result<S3Client::Answer> S3Client::send(Request& req) {
  std::string url = opts_.endpoint + "/" + opts_.bucket;
  if (!req.key.empty()) url += "/" + percentEncode(req.key, true);
  if (!req.query.empty()) {
    // SigV4 signs the query sorted by name, each part encoded.
    auto q = req.query;
    std::sort(q.begin(), q.end());
    url += "?";
    for (size_t i = 0; i < q.size(); ++i) {
      if (i) url += "&";
      url += percentEncode(q[i].first, false) + "=" + percentEncode(q[i].second, false);
    }
  }
  const std::string sigv4 = "aws:amz:" + opts_.region + ":s3";
  const std::string userpwd = opts_.access_key + ":" + opts_.secret_key;
  const std::string sha_header = "x-amz-content-sha256: " + req.payload_sha256;
  std::string last_error;
  auto backoff = opts_.first_backoff;
  for (int attempt = 1; attempt <= opts_.max_attempts; ++attempt) {
    if (attempt > 1) {
      std::this_thread::sleep_for(backoff);
      backoff *= 2;
    }
    std::unique_ptr<CURL, void (*)(CURL*)> c(curl_easy_init(), curl_easy_cleanup);
    struct Ctx {
      CURL* curl;
      Request* req;
      Answer answer;
    } ctx{c.get(), &req, {}};
    auto write = +[](char* data, size_t size, size_t n, void* p) -> size_t {
      auto* x = static_cast<Ctx*>(p);
      std::string_view piece(data, size * n);
      long status = 0;
      curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
      if (status / 100 == 2 && x->req->sink) {
        x->req->sink_status = (*x->req->sink)(piece);
        if (!x->req->sink_status.ok()) return 0;
        x->req->handed += piece.size();
        return piece.size();
      }
      if (status / 100 != 2) {  // an error's text: its start is enough
        x->answer.body.append(piece.substr(0, (64u << 10) - std::min<size_t>(x->answer.body.size(), 64u << 10)));
        return piece.size();
      }
      if (x->answer.body.size() + piece.size() > x->req->max_bytes) {
        x->req->over_limit = true;
        return 0;
      }
      x->answer.body.append(piece);
      return piece.size();
    };
    curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c.get(), CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c.get(), CURLOPT_AWS_SIGV4, sigv4.c_str());
    curl_easy_setopt(c.get(), CURLOPT_USERPWD, userpwd.c_str());
    curl_easy_setopt(c.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(opts_.timeout.count()));
    curl_easy_setopt(c.get(), CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, write);
    curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &ctx);
    curl_slist* headers = curl_slist_append(nullptr, sha_header.c_str());
    Memory memory;
    FILE* file = nullptr;
    if (req.head) {
      curl_easy_setopt(c.get(), CURLOPT_NOBODY, 1L);
    } else if (req.body || !req.body_file.empty()) {
      curl_easy_setopt(c.get(), CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(c.get(), CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body_size));
      if (req.body) {
        memory.data = *req.body;
        curl_easy_setopt(c.get(), CURLOPT_READFUNCTION, readMemory);
        curl_easy_setopt(c.get(), CURLOPT_READDATA, &memory);
      } else {
        file = std::fopen(req.body_file.c_str(), "rb");
        if (!file) {
          curl_slist_free_all(headers);
          return NotFound("cannot read " + req.body_file + " to upload it");
        }
        curl_easy_setopt(c.get(), CURLOPT_READDATA, file);  // (libcurl's default reader: fread)
      }
      // (No "Expect:" to switch 100-continue off: libcurl would sign the
      // empty header it then does not send.)
    } else if (std::string_view(req.method) != "GET") {
      curl_easy_setopt(c.get(), CURLOPT_CUSTOMREQUEST, req.method);
    }
    curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, headers);
    CURLcode rc = curl_easy_perform(c.get());
    curl_slist_free_all(headers);
    if (file) std::fclose(file);
    if (!req.sink_status.ok()) return req.sink_status;
    if (req.over_limit) {
      return ResourceExhausted("S3 object " + req.key + " is larger than " + std::to_string(req.max_bytes) + " bytes");
    }
    long status = 0;
    curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &status);
    ctx.answer.status = status;
    curl_off_t length = -1;
    curl_easy_getinfo(c.get(), CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
    ctx.answer.size = length > 0 ? static_cast<uint64_t>(length) : 0;
    bool retry = rc != CURLE_OK ? true : status >= 500;
    if (!retry) return std::move(ctx.answer);
    last_error = rc != CURLE_OK ? curl_easy_strerror(rc) : "HTTP " + std::to_string(status);
    if (rc == CURLE_OK) {
      tinyxml2::XMLDocument doc;
      if (doc.Parse(ctx.answer.body.data(), ctx.answer.body.size()) == tinyxml2::XML_SUCCESS) {
        std::string code = childText(doc.RootElement(), "Code");
        if (!code.empty()) last_error += " " + code;
      }
    }
    if (req.handed > 0) break;  // part of the body was handed on already: not again
  }
  return Unavailable("S3 " + std::string(req.method) + " " + (req.key.empty() ? opts_.bucket : req.key) + " at " +
                     opts_.endpoint + " failed after " + std::to_string(opts_.max_attempts) +
                     " attempts: " + last_error);
}

Status S3Client::errorOf(const Answer& a, std::string_view what) const {
  std::string code, message;
  tinyxml2::XMLDocument doc;
  if (!a.body.empty() && doc.Parse(a.body.data(), a.body.size()) == tinyxml2::XML_SUCCESS && doc.RootElement()) {
    code = childText(doc.RootElement(), "Code");
    message = childText(doc.RootElement(), "Message");
  }
  std::string said = code.empty() ? "HTTP " + std::to_string(a.status) : code + (message.empty() ? "" : ": " + message);
  std::string prefix = "S3 " + std::string(what) + ": ";
  if (a.status == 403 || code == "SignatureDoesNotMatch" || code == "InvalidAccessKeyId" || code == "AccessDenied") {
    return PermissionDenied(prefix + "the store refused access key " + opts_.access_key + " (" + said +
                            "); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
  }
  if (code == "XAmzContentSHA256Mismatch" || code == "BadDigest") {
    return InvalidArgument(prefix + "the bytes sent do not match the SHA-256 they were sent with (" + said + ")");
  }
  if (code == "NoSuchBucket") {
    return NotFound(prefix + "bucket " + opts_.bucket + " does not exist at " + opts_.endpoint + " (create it first)");
  }
  if (a.status == 404) return NotFound(prefix + "not found (" + said + ")");
  return Internal(prefix + "unexpected answer (" + said + ")");
}

Status S3Client::createBucket() {
  Request r;
  r.method = "PUT";
  r.body = std::string_view();
  ASSIGN_OR_RETURN(Answer a, send(r));
  if (a.status / 100 == 2) return Status::Ok();
  Status s = errorOf(a, "creating bucket " + opts_.bucket);
  if (a.body.find("BucketAlreadyOwnedByYou") != std::string::npos) return Status::Ok();
  return s;
}

Status S3Client::checkBucket() {
  Request r;
  r.head = true;
  r.method = "HEAD";
  ASSIGN_OR_RETURN(Answer a, send(r));
  if (a.status / 100 == 2) return Status::Ok();
  if (a.status == 404) return NotFound("S3 bucket " + opts_.bucket + " does not exist at " + opts_.endpoint);
  return errorOf(a, "checking bucket " + opts_.bucket);
}

Status S3Client::put(std::string_view key, std::string_view bytes) {
  Request r;
  r.method = "PUT";
  r.key = std::string(key);
  r.body = bytes;
  r.body_size = bytes.size();
  r.payload_sha256 = sha256Hex(bytes);
  ASSIGN_OR_RETURN(Answer a, send(r));
  return a.status / 100 == 2 ? Status::Ok() : errorOf(a, "putting " + r.key);
}

Status S3Client::putFile(std::string_view key, const std::string& path, uint64_t size, std::string_view sha256_hex) {
  Request r;
  r.method = "PUT";
  r.key = std::string(key);
  r.body_file = path;
  r.body_size = size;
  r.payload_sha256 = std::string(sha256_hex);
  ASSIGN_OR_RETURN(Answer a, send(r));
  return a.status / 100 == 2 ? Status::Ok() : errorOf(a, "putting " + r.key);
}

Result<std::string> S3Client::get(std::string_view key, uint64_t max_bytes) {
  Request r;
  r.key = std::string(key);
  r.max_bytes = max_bytes;
  ASSIGN_OR_RETURN(Answer a, send(r));
  if (a.status / 100 != 2) return errorOf(a, "getting " + r.key);
  return std::move(a.body);
}

Status S3Client::getTo(std::string_view key, const std::function<Status(std::string_view)>& sink) {
  Request r;
  r.key = std::string(key);
  r.sink = &sink;
  r.max_bytes = 1 << 20;  // (an error's body)
  ASSIGN_OR_RETURN(Answer a, send(r));
  return a.status / 100 == 2 ? Status::Ok() : errorOf(a, "getting " + r.key);
}

Result<std::optional<uint64_t>> S3Client::head(std::string_view key) {
  Request r;
  r.method = "HEAD";
  r.head = true;
  r.key = std::string(key);
  ASSIGN_OR_RETURN(Answer a, send(r));  // (the length is in the answer's head)
  if (a.status == 404) return std::optional<uint64_t>();
  if (a.status / 100 != 2) return errorOf(a, "looking at " + r.key);
  return std::optional<uint64_t>(a.size);
}

Status S3Client::remove(std::string_view key) {
  Request r;
  r.method = "DELETE";
  r.key = std::string(key);
  ASSIGN_OR_RETURN(Answer a, send(r));
  return a.status / 100 == 2 || a.status == 404 ? Status::Ok() : errorOf(a, "removing " + r.key);
}

Status S3Client::list(std::string_view prefix, const std::function<bool(const Listed&)>& each) {
  std::string token;
  for (;;) {
    Request r;
    r.query = {{"list-type", "2"}, {"prefix", std::string(prefix)}};
    if (!token.empty()) r.query.emplace_back("continuation-token", token);
    r.max_bytes = 64 << 20;
    ASSIGN_OR_RETURN(Answer a, send(r));
    if (a.status / 100 != 2) return errorOf(a, "listing " + std::string(prefix));
    tinyxml2::XMLDocument doc;
    if (doc.Parse(a.body.data(), a.body.size()) != tinyxml2::XML_SUCCESS || !doc.RootElement()) {
      return Internal("S3 listing " + std::string(prefix) + ": the answer is not XML");
    }
    const tinyxml2::XMLElement* root = doc.RootElement();
    for (auto* c = root->FirstChildElement("Contents"); c; c = c->NextSiblingElement("Contents")) {
      Listed l;
      l.key = childText(c, "Key");
      l.size = std::strtoull(childText(c, "Size").c_str(), nullptr, 10);
      if (!each(l)) return Status::Ok();
    }
    if (childText(root, "IsTruncated") != "true") return Status::Ok();
    token = childText(root, "NextContinuationToken");
    if (token.empty()) return Internal("S3 listing " + std::string(prefix) + ": truncated without a continuation token");
  }
}

}  // namespace nubo::blob::s3
