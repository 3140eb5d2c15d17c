// HTTP request and response as handlers see them, independent of Beast so
// that only src/http/server.cc compiles Beast's templates.
//
// A Request is a view: its string_views point into the server's parse buffer
// and are valid only until the handler's coroutine returns. Its body is
// either all there (`body`) or, on a server that streams bodies and for a
// body too large to read ahead, pulled piece by piece from `body_stream`.
// A Response owns what it sends. Its body is one of: nothing, an owned
// string, a slice of a shared immutable buffer (the gateway's file cache), or
// a range of an open file (streamed with pread; the fd is shared so several
// responses may stream one blob).
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/fs.h"
#include "common/status.h"

namespace nubo::http {

// The rest of a request body, read from the client as the handler asks for
// it, so a large upload never sits whole in memory.
//
// May outlive the handler (a function may stream its response while it still
// receives the upload); once the server has finished the response, read()
// fails with kCancelled.
class BodyReader {
 public:
  virtual ~BodyReader() = default;
  // The next piece, valid until the next call; empty once the body is
  // complete. Errors: kResourceExhausted (over the body limit),
  // kInvalidArgument (malformed chunked encoding), kDeadlineExceeded (the
  // client stopped sending), kUnavailable (the client went away, or the
  // exchange is over).
  virtual boost::asio::awaitable<Result<std::string_view>> read() = 0;
};

// Tells a long-running handler that its client has closed the connection.
class ClientMonitor {
 public:
  virtual ~ClientMonitor() = default;
  // Calls `on_gone` (on the connection's strand, at most once) if the client
  // closes the connection before the handler returns. Watching costs a
  // socket wait, so handlers start it only once a request runs long.
  virtual void watch(std::function<void()> on_gone) = 0;
};

// A client's connection once "101 Switching Protocols" is sent: its raw
// bytes both ways, for the protocol the handler switched to (a WebSocket).
// Lives on the connection's executor; one read and one write may be
// pending at once (from two coroutines there).
class Upgraded {
 public:
  virtual ~Upgraded() = default;
  // The next bytes from the client (any that came right behind the request
  // head first), valid until the next call; empty once the client closed
  // its side; an error when the connection failed or close() was called.
  virtual boost::asio::awaitable<Result<std::string_view>> read() = 0;
  // Writes all of `bytes`; kDeadlineExceeded when the client took none of
  // them for the server's write timeout, kUnavailable when it is gone.
  virtual boost::asio::awaitable<Status> write(std::string_view bytes) = 0;
  // Ends the sending side (the client reads the end); reads go on.
  virtual void shutdownSend() = 0;
  // Ends the connection: pending and later reads and writes fail.
  virtual void close() = 0;
};

// What runs a connection taken over by a 101 response.
class Takeover {
 public:
  virtual ~Takeover() = default;
  // Called once the 101 head is written; the server closes the connection
  // when it returns.
  virtual boost::asio::awaitable<void> run(Upgraded& conn) = 0;
  // The server is shutting down (draining): end the connection soon, the
  // protocol's polite way (on the connection's executor, while run() runs).
  virtual void serverDraining() {}
};

struct Request {
  std::string_view method;  // "GET", "PUT", ...
  std::string_view target;  // as sent: "/a/b?x=1"
  std::string_view path;    // target up to '?', still percent-encoded
  std::string_view query;   // after '?', or empty
  std::string_view host;    // Host header without the port, lowercased by the server
  std::string_view peer;    // the client's address (the connection's other end)
  std::string_view body;                    // the whole body, unless body_stream is set
  std::shared_ptr<BodyReader> body_stream;  // the body still to read; `body` is then empty
  ClientMonitor* client = nullptr;          // null while the body streams (its reads notice)
  bool keep_alive = true;
  // A GET without a body whose Connection header has "upgrade" and that
  // names a protocol in Upgrade: a Response of kind kUpgrade may take the
  // connection over.
  bool upgrade = false;

  // Header lookup (case-insensitive); empty when absent.
  std::string_view header(std::string_view name) const { return lookup_ ? lookup_(raw_, name) : std::string_view(); }

  // Every header as sent, in order (names as the client spelled them).
  std::vector<std::pair<std::string_view, std::string_view>> headers() const {
    std::vector<std::pair<std::string_view, std::string_view>> out;
    if (list_) list_(raw_, out);
    return out;
  }

  // Set by the server.
  using Lookup = std::string_view (*)(const void* raw, std::string_view name);
  using List = void (*)(const void* raw, std::vector<std::pair<std::string_view, std::string_view>>& out);
  const void* raw_ = nullptr;
  Lookup lookup_ = nullptr;
  List list_ = nullptr;
};

// A file range to stream; the descriptor is shared and closed with the last user.
struct FileSlice {
  std::shared_ptr<const UniqueFd> fd;
  uint64_t offset = 0;
  uint64_t length = 0;
};

struct SharedSlice {
  std::shared_ptr<const std::string> bytes;
  size_t offset = 0;
  size_t length = 0;
};

// A body produced while it is sent (a function's streamed response). The
// server pulls chunks and writes each before asking for the next, so a slow
// client slows the producer instead of filling memory.
class BodyStream {
 public:
  virtual ~BodyStream() = default;
  // The next chunk; nullopt at the end; an error cuts the response short.
  virtual boost::asio::awaitable<Result<std::optional<std::string>>> next() = 0;
  // The client went away: stop producing.
  virtual void cancel() = 0;
};

struct Response {
  // kUpgrade: status 101, the head says which protocol (Upgrade and
  // Connection are set by the server), then `takeover` runs the connection.
  // Only as the answer to a Request with `upgrade` set.
  enum class BodyKind { kNone, kString, kShared, kFile, kStream, kUpgrade };

  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  BodyKind kind = BodyKind::kNone;
  std::string body;     // kString
  SharedSlice shared;   // kShared
  FileSlice file;       // kFile
  std::shared_ptr<BodyStream> stream;  // kStream (sent chunked; length unknown)
  std::shared_ptr<Takeover> takeover;  // kUpgrade
  // For HEAD: send the headers (with the body's Content-Length) but no body.
  bool omit_body = false;
  // kStream: the length its sender declared, if it did (HEAD answers with
  // it; without one a HEAD answer has no Content-Length).
  std::optional<uint64_t> stream_length;

  Response& header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
    return *this;
  }
  uint64_t contentLength() const;
  // Whether the head states the length: always, but for a stream without
  // a declared one.
  bool lengthKnown() const { return kind != BodyKind::kStream || stream_length.has_value(); }

  static Response text(int status, std::string body, std::string_view content_type = "text/plain; charset=utf-8");
  static Response json(int status, std::string body);
  // {"error":{"code":"not_found","message":"..."}} with the status mapped from the code.
  static Response error(const Status& s);
  // 308 to `path` (same host) with `query`. Leading slashes and backslashes
  // become one slash, so a path like "//evil.example" can never redirect
  // off the site (browsers read "//x" and "/\x" as another host).
  static Response redirect(std::string_view path, std::string_view query);
};

// The answer to a request whose body could not be read (a BodyReader error):
// 413, 400 or 408, naming the problem.
Response bodyReadError(const Status& s);

// The value of cookie `name` in a Cookie header, or empty.
std::string_view cookieValue(std::string_view cookies, std::string_view name);
// A Cookie header without cookie `name` (empty when nothing else is left).
std::string withoutCookie(std::string_view cookies, std::string_view name);

// The web console's session cookie (it holds an API token): the gateway
// never passes it to a function, though a browser sends the control port's
// cookies to the data plane's port on the same host too.
inline constexpr std::string_view kConsoleCookie = "nubo_console";

// Percent-decodes a path; kInvalidArgument on malformed escapes or NUL.
Result<std::string> percentDecode(std::string_view s);

}  // namespace nubo::http
