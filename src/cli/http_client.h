// HttpClient: a small blocking HTTP/1.1 client over libcurl, used by the CLI
// (and by tests). One client keeps one connection alive; it is not
// thread-safe — use one per thread.
//
// call() speaks the control API: JSON in, JSON out, and a non-2xx answer
// becomes the Status the server sent ({"error":{"code","message"}}).
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/json.h"
#include "common/status.h"

namespace nubo::cli {

struct HttpResponse {
  long status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercased
  std::string body;

  std::string header(std::string_view name) const;
};

class HttpClient {
 public:
  // `base_url` like "http://127.0.0.1:7070"; `token` may be empty.
  HttpClient(std::string base_url, std::string token, long timeout_s = 600);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // kUnavailable when the server cannot be reached; any HTTP status is OK.
  Result<HttpResponse> send(std::string_view method, std::string_view path, std::string_view body = {},
                            const std::vector<std::string>& headers = {});

  // GET `path`, handing the body to `on_data` as it arrives (server-sent
  // events); `on_data` returns false to stop. A non-2xx answer is the
  // server's error as a Status.
  Status stream(std::string_view path, const std::function<bool(std::string_view)>& on_data);

  // JSON request; non-2xx -> the server's error as a Status.
  Result<Json> call(std::string_view method, std::string_view path, const Json* body = nullptr);

  // The server's error in `r` as a Status (OK for 2xx).
  static Status statusOf(const HttpResponse& r);

  const std::string& baseUrl() const { return base_; }
  const std::string& token() const { return token_; }

 private:
  std::string base_;
  std::string token_;
  long timeout_s_;
  void* curl_;  // CURL*
};

}  // namespace nubo::cli
