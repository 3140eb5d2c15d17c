// S3Client: objects in one bucket of an S3-compatible store (AWS S3, Ceph's
// radosgw, MinIO), over libcurl with AWS Signature V4 (libcurl signs; the
// payload's SHA-256 is sent in x-amz-content-sha256 and query parameters
// are sorted and encoded before signing, as SigV4 wants).
//
// - Bodies stream: putFile() reads the file as it sends, getTo() hands the
//   body to a sink as it arrives; nothing holds a whole large object.
// - Every call is idempotent and retried on connection errors, 5xx and
//   throttling (503 SlowDown), with exponential backoff, up to
//   `max_attempts`.
// - Errors map to Status: refused credentials -> kPermissionDenied naming
//   the access key, a missing key or bucket -> kNotFound, anything still
//   failing after the retries -> kUnavailable, with S3's code and message.
//
// Thread-safe (each call has its own connection).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace nubo::blob::s3 {

struct S3Options {
  std::string endpoint;  // "http://127.0.0.1:7480" (path-style requests)
  std::string bucket;
  std::string region = "us-east-1";
  std::string access_key, secret_key;
  int max_attempts = 4;
  std::chrono::milliseconds first_backoff{100};  // doubled after each failed attempt
  std::chrono::milliseconds timeout{60'000};     // per attempt
};

class S3Client {
 public:
  // Checks the options (not the network).
  static Result<std::unique_ptr<S3Client>> create(S3Options options);

  // Creates the bucket; one that exists already and is ours is fine.
  Status createBucket();
  // Whether the bucket is there and the credentials may use it: kNotFound
  // naming the bucket, kPermissionDenied naming the access key.
  Status checkBucket();

  Status put(std::string_view key, std::string_view bytes);
  // Streams the file at `path` (`size` bytes whose SHA-256 is `sha256_hex`).
  Status putFile(std::string_view key, const std::string& path, uint64_t size, std::string_view sha256_hex);
  // The whole object, refused (kResourceExhausted) past `max_bytes`.
  Result<std::string> get(std::string_view key, uint64_t max_bytes);
  // The object's bytes, handed to `sink` as they arrive (an error from it
  // stops the transfer and is returned). A retry after some bytes were
  // handed on is not made: kUnavailable instead.
  Status getTo(std::string_view key, const std::function<Status(std::string_view)>& sink);
  // The object's size, or nullopt when there is none.
  Result<std::optional<uint64_t>> head(std::string_view key);
  Status remove(std::string_view key);  // (absent: fine)

  struct Listed {
    std::string key;
    uint64_t size = 0;
  };
  // Every object under `prefix`, in key order; `each` returns false to stop.
  Status list(std::string_view prefix, const std::function<bool(const Listed&)>& each);

 private:
  explicit S3Client(S3Options options) : opts_(std::move(options)) {}

 public:
  struct Request;  // (defined in the .cc)

 private:
  struct Answer {
    long status = 0;
    std::string body;  // (the error's, for a streamed body)
    uint64_t size = 0;  // Content-Length (a HEAD's object size)
  };
  // Sends `req` with the retries; an error only when no answer came.
  Result<Answer> send(Request& req);
  Status errorOf(const Answer& a, std::string_view what) const;

  const S3Options opts_;
};

}  // namespace nubo::blob::s3
