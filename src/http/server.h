// HttpServer: an HTTP/1.1 server (Boost.Beast) that hands each request to a
// Handler coroutine and writes the Response it returns.
//
// - Keep-alive, pipelining-safe (one request at a time per connection).
// - Connections: at most limits.max_connections (when full, the longest-
//   idle ones are closed to make room; with none idle a newcomer is
//   refused) and limits.max_connections_per_client from one address.
// - Limits, always answered, never a crash: header larger than
//   limits.header_bytes -> 431; body over limits.body_bytes -> 413; malformed
//   request -> 400; header not complete within limits.header_timeout -> 408;
//   idle keep-alive connections close after limits.idle_timeout; slow
//   readers are cut off after limits.write_timeout.
// - Before any of a body is read the handler plans it (Handler::planBody):
//   it may answer from the head alone (a bad token), or set the body's
//   limit and whether it streams.
// - Request bodies are read before the handler runs, unless they stream
//   (limits.stream_bodies, or the handler's plan): then one of unknown
//   length or over limits.buffered_body_bytes is handed to the handler as a
//   BodyReader, read from the socket as it pulls. A body the handler left
//   unread ends the connection after the response.
// - "Expect: 100-continue" is answered before the body is read.
// - HEAD: the handler's response is sent without its body.
// - A handler that throws gets its client a 500; the server goes on.
// - Protocol switches: a GET that asks for one (Request::upgrade) may be
//   answered with a kUpgrade Response: the server writes its 101 head and
//   hands the connection's bytes to the Response's Takeover until it
//   returns, then closes the connection. drain() tells each such takeover
//   (Takeover::serverDraining) instead of waiting for it.
//
// Threading: one io_context may run on many threads; each connection lives
// on its own strand (on the context's own executor when `threads` says one
// thread runs it: see common/executors.h). Or, with spreadConnections(),
// connections are dealt in turn to several io_contexts that one thread
// each runs. drain() may be called from any thread.
#pragma once

#include <atomic>
#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <vector>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/status.h"
#include "http/message.h"

namespace nubo::http {

struct ServerLimits {
  size_t header_bytes = 16 * 1024;
  uint64_t body_bytes = 1 << 20;
  bool stream_bodies = false;
  uint64_t buffered_body_bytes = 64 << 10;  // with stream_bodies: read ahead up to this
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds idle_timeout{75'000};
  std::chrono::milliseconds body_timeout{300'000};  // whole body, or each piece of a streamed one
  std::chrono::milliseconds write_timeout{300'000};
  size_t max_connections = 10'000;
  // Connections one client address may hold at once (0: no limit); one more
  // is closed at once. Behind a front proxy every client has its address.
  size_t max_connections_per_client = 256;
  // Said in a 413 after the limit: how it may be raised.
  std::string body_limit_hint = "a server operator can raise it with --max-body-mb";
};

// What the server does with a request's body, decided from the request's
// head before any of the body is read.
struct BodyPlan {
  // Set: sent at once, the body is not read, and the connection closes
  // after it. An API refusing a bad token answers so.
  std::optional<Response> answer;
  uint64_t limit = 0;   // largest body (413 beyond); 0: the server's limits.body_bytes
  std::string limit_hint;  // with `limit`: said in the 413
  bool stream = false;  // a body of unknown length or over limits.buffered_body_bytes is streamed
};

class Handler {
 public:
  virtual ~Handler() = default;
  // Called with the head of a request that has a body (its `body` empty),
  // before any of the body is read; the default takes the server's limits.
  // A request without a body goes straight to handle().
  virtual BodyPlan planBody(const Request& head) { return {}; }
  // Must not throw on bad input; returning an error Response is the norm.
  virtual boost::asio::awaitable<Response> handle(const Request& req) = 0;
};

class HttpServer {
 public:
  // `name` appears in logs ("gateway", "control").
  // `threads`: how many threads run `ioc` (0: unknown).
  HttpServer(boost::asio::io_context& ioc, std::string name, ServerLimits limits, Handler& handler,
             int threads = 0);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Deals accepted connections in turn to `contexts`, each run by one
  // thread (`ioc` may be one of them). Before listen().
  void spreadConnections(std::vector<boost::asio::io_context*> contexts);

  // Binds "host:port" (port 0 picks a free one) and starts accepting.
  // Returns the bound "host:port". kInvalidArgument for a malformed address,
  // kUnavailable when it cannot be bound (in use, no permission).
  Result<std::string> listen(const std::string& host_port);

  // Stops accepting, closes idle connections and lets busy ones finish their
  // current response; `on_idle` runs once no connection is left.
  void drain(std::function<void()> on_idle);

  // Closes every connection now (after the drain grace period ran out).
  void closeAll();

  size_t connectionCount() const;

  struct Connection;  // private to server.cc

 private:
  boost::asio::awaitable<void> acceptLoop();
  boost::asio::awaitable<void> serve(std::shared_ptr<Connection> c);
  // Sends `res`'s 101 head and runs its takeover on the connection.
  boost::asio::awaitable<void> switchProtocols(Connection& c, Response& res, boost::system::error_code& ec);
  // Counts a new connection in, per client and in all; when the table is
  // full, closes the longest-idle connections to make room. False: refused.
  bool admit(const std::shared_ptr<Connection>& conn);
  void onConnectionClosed(Connection* c);

  boost::asio::io_context& ioc_;
  std::string name_;
  ServerLimits limits_;
  Handler& handler_;
  int threads_;
  std::vector<boost::asio::io_context*> spread_;  // empty: connections run on ioc_
  size_t next_context_ = 0;                       // the accept loop's
  struct Acceptor;
  std::unique_ptr<Acceptor> acceptor_;

  mutable std::mutex mu_;
  std::unordered_map<Connection*, std::shared_ptr<Connection>> conns_;  // guarded by mu_
  std::unordered_map<std::string, size_t> per_client_;                  // guarded by mu_: connections by address
  std::function<void()> on_idle_;                                       // guarded by mu_
  std::atomic<bool> draining_{false};
};

}  // namespace nubo::http
