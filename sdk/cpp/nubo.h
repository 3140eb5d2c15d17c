// The nubo SDK for native (C++) functions.
//
// Write one of these, and the SDK's main() serves it:
//
//   nubo::Response handle(const nubo::Request& req);                  // whole responses
//   void handle(const nubo::Request& req, nubo::ResponseWriter& out);  // streamed responses
//
// The program speaks nubo's instance protocol (docs/protocol.md) on the
// descriptor the platform gives it; requests are handled concurrently on a
// few threads, so a handler must be thread-safe. The request body arrives
// whole. Anything written to stdout/stderr goes to `nubo logs`.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nubo {

using Headers = std::vector<std::pair<std::string, std::string>>;  // names lowercased

struct Request {
  std::string method;
  std::string path;  // within the deployment, with the query
  std::string url;   // absolute
  std::string id;    // the request id (X-Nubo-Request-Id)
  Headers headers;
  std::string body;

  // The first value of a header (name in any case), or "".
  std::string_view header(std::string_view name) const;
  // The path without the query, and one query parameter ("" if absent).
  std::string_view pathname() const;
  std::string query(std::string_view name) const;
};

struct Response {
  int status = 200;
  Headers headers;
  std::string body;

  Response& header(std::string name, std::string value);
  static Response text(std::string body, int status = 200);
  static Response json(std::string json_text, int status = 200);
};

// A streamed response: start() once, write() any number of times, end().
// write() waits while the client is slower than the handler.
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  virtual void start(int status, const Headers& headers) = 0;
  virtual void write(std::string_view bytes) = 0;
  virtual void end() = 0;
  // The client went away: stop writing.
  virtual bool cancelled() const = 0;
};

// Escapes `s` as the contents of a JSON string (without the quotes).
std::string jsonEscape(std::string_view s);

}  // namespace nubo
