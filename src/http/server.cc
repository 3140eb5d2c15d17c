#include "http/server.h"

#include "common/executors.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <ctime>

namespace nubo::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto kUseAwaitableEc = [](error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); };

// Streams a file range as a Beast body, without copying it whole.
struct FileSliceBody {
  using value_type = FileSlice;
  static uint64_t size(const value_type& v) { return v.length; }
  class writer {
   public:
    using const_buffers_type = asio::const_buffer;
    template <bool isRequest, class Fields>
    writer(const bhttp::header<isRequest, Fields>&, const value_type& v) : v_(v), pos_(v.offset) {}
    void init(error_code& ec) { ec = {}; }
    boost::optional<std::pair<const_buffers_type, bool>> get(error_code& ec) {
      ec = {};
      uint64_t end = v_.offset + v_.length;
      if (pos_ >= end) return boost::none;
      size_t want = static_cast<size_t>(std::min<uint64_t>(sizeof buf_, end - pos_));
      ssize_t n;
      do {
        n = ::pread(v_.fd->get(), buf_, want, static_cast<off_t>(pos_));
      } while (n < 0 && errno == EINTR);
      if (n <= 0) {
        // The blob shrank or the disk failed: end the response short, which
        // the client sees as a truncated body rather than wrong bytes.
        ec = n == 0 ? error_code(asio::error::eof) : error_code(errno, boost::system::system_category());
        return boost::none;
      }
      pos_ += static_cast<uint64_t>(n);
      return {{asio::const_buffer(buf_, static_cast<size_t>(n)), pos_ < end}};
    }

   private:
    const value_type& v_;
    uint64_t pos_;
    char buf_[64 * 1024];
  };
};

std::string_view httpDate() {
  thread_local time_t last = 0;
  thread_local char buf[40];
  time_t now = ::time(nullptr);
  if (now != last) {
    struct tm tm {};
    ::gmtime_r(&now, &tm);
    ::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    last = now;
  }
  return buf;
}

int64_t nowNs() { return std::chrono::steady_clock::now().time_since_epoch().count(); }

bool bodyForbidden(int status) { return status < 200 || status == 204 || status == 304; }

// A header the server may send: a token for a name, no line breaks or NUL
// in the value (a function must not be able to split the response).
constexpr std::array<bool, 256> kTokenChar = [] {
  std::array<bool, 256> t{};
  for (int c = 33; c < 127; ++c) t[static_cast<size_t>(c)] = std::string_view("()<>@,;:\\\"/[]?={}").find(static_cast<char>(c)) == std::string_view::npos;
  return t;
}();

bool sendableHeader(std::string_view name, std::string_view value) {
  if (name.empty()) return false;
  for (char ch : name) {
    if (!kTokenChar[static_cast<unsigned char>(ch)]) return false;
  }
  for (char ch : value) {
    if (ch == '\r' || ch == '\n' || ch == '\0') return false;
  }
  return true;
}

template <class Body>
void fillHeader(bhttp::response<Body>& m, Response& r, bool keep_alive, unsigned version) {
  m.version(version);
  m.result(static_cast<unsigned>(r.status));
  m.set(bhttp::field::server, "nubo");
  m.set(bhttp::field::date, httpDate());
  for (auto& [name, value] : r.headers) {
    if (sendableHeader(name, value)) m.insert(name, value);
  }
  m.keep_alive(keep_alive);
}

// The head of a response whose body is in memory, written by hand: one
// allocation instead of Beast's one per field, and one writev with the body.
void buildHead(std::string& out, const Response& r, bool keep_alive, unsigned version, bool send_length,
               uint64_t length) {
  out.reserve(192 + r.headers.size() * 48);
  out += version >= 11 ? "HTTP/1.1 " : "HTTP/1.0 ";
  out += std::to_string(r.status);
  out += ' ';
  out += bhttp::obsolete_reason(bhttp::int_to_status(static_cast<unsigned>(r.status)));
  out += "\r\nServer: nubo\r\nDate: ";
  out += httpDate();
  out += "\r\n";
  for (const auto& [name, value] : r.headers) {
    if (!sendableHeader(name, value)) continue;
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  if (send_length) {
    out += "Content-Length: ";
    out += std::to_string(length);
    out += "\r\n";
  }
  if (version >= 11 && !keep_alive) out += "Connection: close\r\n";
  if (version < 11 && keep_alive) out += "Connection: keep-alive\r\n";
  out += "\r\n";
}

std::string_view lookupHeader(const void* raw, std::string_view name) {
  const auto& msg = *static_cast<const bhttp::request_header<>*>(raw);
  auto it = msg.find(name);
  return it == msg.end() ? std::string_view() : std::string_view(it->value());
}

void listHeaders(const void* raw, std::vector<std::pair<std::string_view, std::string_view>>& out) {
  const auto& msg = *static_cast<const bhttp::request_header<>*>(raw);
  for (const auto& f : msg) out.emplace_back(f.name_string(), f.value());
}

// What RFC 9112 requires of a request head that Beast lets through: the
// empty string when it is fine, else why it is refused (400). A body's
// framing the gateway and a function could read differently is the start
// of request smuggling, so anything but exactly "chunked" is refused.
std::string headProblem(const bhttp::request_header<>& msg) {
  auto hosts = msg.count(bhttp::field::host);
  if (hosts > 1) return "more than one Host header";
  if (hosts == 0 && msg.version() >= 11) return "an HTTP/1.1 request needs a Host header";
  auto te = msg.count(bhttp::field::transfer_encoding);
  if (te == 0) return "";
  if (te > 1) return "more than one Transfer-Encoding header";
  std::string_view v = msg[bhttp::field::transfer_encoding];
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  if (!beast::iequals(v, "chunked")) return "Transfer-Encoding must be exactly \"chunked\"";
  if (msg.count(bhttp::field::content_length)) return "both Transfer-Encoding and Content-Length";
  return "";
}

bool isParseError(const error_code& ec) { return ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category(); }

}  // namespace

struct HttpServer::Acceptor {
  explicit Acceptor(asio::io_context& ioc) : acceptor(asio::make_strand(ioc)) {}
  tcp::acceptor acceptor;
};

struct HttpServer::Connection : std::enable_shared_from_this<Connection>, ClientMonitor {
  explicit Connection(tcp::socket s) : socket(std::move(s)), timer(socket.get_executor()) {}

  // ClientMonitor: while the handler runs nothing else reads the socket, so
  // readability means the client closed (or sent its next request early).
  void watch(std::function<void()> on_gone) override {
    if (watching) return;
    watching = true;
    uint64_t gen = ++watch_gen;
    socket.async_wait(tcp::socket::wait_read, [self = shared_from_this(), gen, cb = std::move(on_gone)](error_code ec) {
      if (!self->watching || gen != self->watch_gen) return;
      self->watching = false;
      if (ec) return;
      char b;
      ssize_t n = ::recv(self->socket.native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) cb();
    });
  }
  void stopWatching() {
    if (!watching) return;
    watching = false;
    error_code ignored;
    socket.cancel(ignored);
  }
  bool watching = false;
  uint64_t watch_gen = 0;

  // Arms a deadline for the next operation(s): when it passes, pending
  // socket operations are cancelled (the socket stays open, so a 408 can
  // still be written). Runs on the connection's strand.
  //
  // Cheap enough to call twice per request: it only moves `deadline`. The
  // one timer wakes at the deadline it was last set to and, if the deadline
  // has moved on since, sleeps again until the new one.
  void arm(std::chrono::milliseconds d) {
    timed_out = false;
    deadline = std::chrono::steady_clock::now() + d;
    if (!timer_pending || deadline < timer_expiry) startTimer();
  }
  void disarm() { deadline = std::chrono::steady_clock::time_point::max(); }
  void startTimer() {
    uint64_t gen = ++timer_gen;
    timer_pending = true;
    timer_expiry = deadline;
    timer.expires_at(deadline);  // cancels a wait set for a later deadline
    timer.async_wait([self = shared_from_this(), gen](error_code ec) {
      if (gen != self->timer_gen) return;  // replaced by an earlier deadline
      self->timer_pending = false;
      if (ec || self->deadline == std::chrono::steady_clock::time_point::max()) return;
      if (std::chrono::steady_clock::now() < self->deadline) {
        self->startTimer();
        return;
      }
      self->timed_out = true;
      error_code ignored;
      self->socket.cancel(ignored);
    });
  }

  // Reads the next request head into `p` (what follows it stays in
  // `buffer`): Beast's parser fed by plain reads, as Beast's own
  // async_read_header does, without its two layers of composed operations
  // (and the executor work they track) on every request.
  asio::awaitable<void> readHead(bhttp::request_parser<bhttp::empty_body>& p, error_code& ec) {
    ec = {};
    for (;;) {
      if (buffer.size() > 0) {
        size_t used = p.put(buffer.data(), ec);
        buffer.consume(used);
        if (ec != bhttp::error::need_more) co_return;  // the head is complete, or malformed
        ec = {};
      }
      // As Beast reads: at least 512 bytes of room, at most 64 KiB.
      size_t room = std::min<size_t>(std::max<size_t>(512, buffer.capacity() - buffer.size()), 65536);
      size_t n = co_await socket.async_read_some(buffer.prepare(room), kUseAwaitableEc(ec));
      if (ec == asio::error::eof) {
        ec = {};
        if (p.got_some()) p.put_eof(ec);  // cut off inside the head: partial_message
        else ec = bhttp::error::end_of_stream;
        co_return;
      }
      if (ec) co_return;
      buffer.commit(n);
    }
  }

  tcp::socket socket;
  asio::steady_timer timer;
  beast::flat_buffer buffer;
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::chrono::steady_clock::time_point timer_expiry;
  bool timer_pending = false;
  uint64_t timer_gen = 0;
  bool timed_out = false;
  // A request is being read, handled or answered. Written on the
  // connection's own thread; read by the accept loop choosing idle
  // connections to close when the table is full.
  std::atomic<bool> busy{false};
  std::atomic<int64_t> idle_since_ns{0};  // when it last became idle (steady clock)
  std::string peer;                       // the client's address; set before serve() starts
  bool closing = false;                   // guarded by the server's mu_: chosen to make room
  std::string host;   // lowercased Host of the current request
  std::shared_ptr<Takeover> takeover;  // the connection's owner after a 101 (its strand only)
};

namespace {

// Fills what a handler sees of a request from its head: method, target,
// host (lowercased into the connection's buffer), header access.
void describe(const bhttp::request_header<>& msg, HttpServer::Connection& c, Request& req) {
  req.method = msg.method_string();
  req.target = msg.target();
  auto q = req.target.find('?');
  req.path = req.target.substr(0, q);
  if (q != std::string_view::npos) req.query = req.target.substr(q + 1);
  std::string_view host = msg[bhttp::field::host];
  if (!host.empty() && host.front() == '[') {
    host = host.substr(0, host.find(']') + 1);
  } else {
    host = host.substr(0, host.find(':'));
  }
  c.host.assign(host);
  for (char& ch : c.host) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  req.host = c.host;
  req.peer = c.peer;
  req.raw_ = &msg;
  req.lookup_ = &lookupHeader;
  req.list_ = &listHeaders;
  req.upgrade = msg.method() == bhttp::verb::get && msg.version() >= 11 && !msg[bhttp::field::upgrade].empty() &&
                bhttp::token_list(msg[bhttp::field::connection]).exists("upgrade") &&
                msg.count(bhttp::field::content_length) == 0 && msg.count(bhttp::field::transfer_encoding) == 0;
}

// The connection after a 101: bytes straight from and to the socket. A
// write that the client takes none of for the write timeout fails.
class UpgradedConnection final : public Upgraded {
 public:
  UpgradedConnection(HttpServer::Connection& c, std::chrono::milliseconds write_timeout)
      : c_(c), write_timeout_(write_timeout) {}

  asio::awaitable<Result<std::string_view>> read() override {
    if (closed_) co_return Unavailable("the connection is closed");
    if (c_.buffer.size() > 0) {
      // What the client sent right behind the request head.
      pending_.assign(static_cast<const char*>(c_.buffer.data().data()), c_.buffer.size());
      c_.buffer.consume(c_.buffer.size());
      c_.buffer.shrink_to_fit();
      co_return std::string_view(pending_);
    }
    // An idle socket holds no read buffer: wait until it is readable, then
    // read into this thread's buffer and keep only what came. (It is read
    // at once only when the last read filled the buffer, so more may be
    // there; otherwise a read would mostly find nothing yet.)
    thread_local std::array<char, 64 << 10> scratch;
    bool read_first = more_;
    for (;;) {
      if (!read_first) {
        error_code ec;
        co_await c_.socket.async_wait(tcp::socket::wait_read, kUseAwaitableEc(ec));
        if (ec) co_return Unavailable("the client connection failed: " + ec.message());
        if (closed_) co_return Unavailable("the connection is closed");
      }
      read_first = false;  // (nothing there: wait before the next read)
      ssize_t n = ::recv(c_.socket.native_handle(), scratch.data(), scratch.size(), MSG_DONTWAIT);
      if (n > 0) {
        more_ = static_cast<size_t>(n) == scratch.size();
        if (pending_.capacity() > (256u << 10)) std::string().swap(pending_);
        pending_.assign(scratch.data(), static_cast<size_t>(n));
        co_return std::string_view(pending_);
      }
      if (n == 0) co_return std::string_view();
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        co_return Unavailable(std::string("the client connection failed: ") + std::strerror(errno));
      }
    }
  }

  asio::awaitable<Status> write(std::string_view bytes) override {
    if (closed_) co_return Unavailable("the connection is closed");
    // Most writes fit the socket at once: no suspension for them.
    ssize_t n;
    do {
      n = ::send(c_.socket.native_handle(), bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      co_return Unavailable(std::string("the client connection failed: ") + std::strerror(errno));
    }
    if (n > 0) bytes.remove_prefix(static_cast<size_t>(n));
    if (bytes.empty()) co_return Status::Ok();
    error_code ec;
    c_.arm(write_timeout_);
    co_await asio::async_write(c_.socket, asio::buffer(bytes.data(), bytes.size()), kUseAwaitableEc(ec));
    c_.disarm();
    if (c_.timed_out) co_return DeadlineExceeded("the client read nothing for the write timeout");
    if (ec) co_return Unavailable("the client connection failed: " + ec.message());
    co_return Status::Ok();
  }

  void shutdownSend() override {
    error_code ignored;
    if (!closed_) c_.socket.shutdown(tcp::socket::shutdown_send, ignored);
  }

  void close() override {
    if (closed_) return;
    closed_ = true;
    error_code ignored;
    c_.socket.shutdown(tcp::socket::shutdown_both, ignored);
    c_.socket.cancel(ignored);
  }

 private:
  HttpServer::Connection& c_;
  std::chrono::milliseconds write_timeout_;
  std::string pending_;  // the bytes read last
  bool more_ = false;    // the last read filled the buffer: read before waiting
  bool closed_ = false;
};

constexpr size_t kBodyReadBytes = 64 * 1024;

std::string bodyLimitMessage(uint64_t limit, const std::string& hint) {
  return "request body too large (limit " + std::to_string(limit) + " bytes" + (hint.empty() ? "" : "; " + hint) +
         ")";
}

// A request body read from the socket as the handler pulls it. Lives on the
// connection's strand; shared with the handler, which may keep it past the
// response (a function streaming both ways), so finish() turns it off and
// waits for a read in progress to end.
class StreamedBody final : public BodyReader, public std::enable_shared_from_this<StreamedBody> {
 public:
  StreamedBody(std::shared_ptr<HttpServer::Connection> c, bhttp::request_parser<bhttp::empty_body>&& head,
               const ServerLimits& limits, uint64_t limit, std::string hint)
      : c_(std::move(c)),
        parser_(std::move(head)),
        limit_(limit),
        hint_(std::move(hint)),
        timeout_(limits.body_timeout),
        timer_(c_->socket.get_executor()),
        idle_(c_->socket.get_executor()) {
    parser_.body_limit(limit_);
  }

  const bhttp::request_header<>& header() const { return parser_.get(); }

  asio::awaitable<Result<std::string_view>> read() override {
    if (closed_) co_return Unavailable("the request is over; its body can no longer be read");
    if (failed_) co_return *failed_;
    if (parser_.is_done()) co_return std::string_view();
    reading_ = true;
    error_code ec;
    size_t n = 0;
    while (!ec && n == 0 && !parser_.is_done()) {
      auto& body = parser_.get().body();
      body.data = buf_;
      body.size = sizeof buf_;
      timed_out_ = false;
      timer_.expires_after(timeout_);
      timer_.async_wait([this, self = shared_from_this()](error_code tec) {
        if (tec || !reading_) return;
        timed_out_ = true;
        error_code ignored;
        c_->socket.cancel(ignored);
      });
      co_await bhttp::async_read_some(c_->socket, c_->buffer, parser_, kUseAwaitableEc(ec));
      timer_.cancel();
      if (ec == bhttp::error::need_buffer) ec = {};
      n = sizeof buf_ - parser_.get().body().size;
    }
    reading_ = false;
    if (closed_) {
      idle_.cancel();  // finish() waits for this read to end
      co_return Unavailable("the request is over; its body can no longer be read");
    }
    if (ec) {
      if (timed_out_) {
        failed_ = DeadlineExceeded("the client stopped sending the request body for " +
                                   std::to_string(timeout_.count() / 1000) + " s");
      } else if (ec == bhttp::error::body_limit) {
        failed_ = ResourceExhausted(bodyLimitMessage(limit_, hint_));
      } else if (isParseError(ec)) {
        failed_ = InvalidArgument("malformed request body: " + ec.message());
      } else {
        failed_ = Unavailable("the client went away before sending the whole request body (" + ec.message() + ")");
      }
      co_return *failed_;
    }
    co_return std::string_view(buf_, n);
  }

  // Ends reading for good; true when the whole body was read (the
  // connection may carry another request).
  asio::awaitable<bool> finish() {
    closed_ = true;
    if (reading_) {
      error_code ec;
      c_->socket.cancel(ec);
      idle_.expires_at(asio::steady_timer::time_point::max());
      co_await idle_.async_wait(kUseAwaitableEc(ec));
    }
    co_return parser_.is_done();
  }

 private:
  std::shared_ptr<HttpServer::Connection> c_;
  bhttp::request_parser<bhttp::buffer_body> parser_;
  uint64_t limit_;
  std::string hint_;
  std::chrono::milliseconds timeout_;
  asio::steady_timer timer_;  // inactivity limit of one read
  asio::steady_timer idle_;   // wakes finish() when a cancelled read ends
  bool reading_ = false;
  bool timed_out_ = false;
  bool closed_ = false;
  std::optional<Status> failed_;
  char buf_[kBodyReadBytes];
};

}  // namespace

HttpServer::HttpServer(asio::io_context& ioc, std::string name, ServerLimits limits, Handler& handler, int threads)
    : ioc_(ioc), name_(std::move(name)), limits_(limits), handler_(handler), threads_(threads),
      acceptor_(new Acceptor(ioc)) {}

HttpServer::~HttpServer() = default;

void HttpServer::spreadConnections(std::vector<asio::io_context*> contexts) { spread_ = std::move(contexts); }

Result<std::string> HttpServer::listen(const std::string& host_port) {
  auto colon = host_port.rfind(':');
  if (colon == std::string::npos || colon + 1 == host_port.size()) {
    return InvalidArgument("listen address \"" + host_port + "\" must be HOST:PORT, e.g. 127.0.0.1:8080");
  }
  std::string host = host_port.substr(0, colon);
  std::string port_s = host_port.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  if (host.empty()) host = "0.0.0.0";
  error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) return InvalidArgument("listen address \"" + host_port + "\": \"" + host + "\" is not an IP address");
  unsigned long port = 0;
  try {
    size_t used = 0;
    port = std::stoul(port_s, &used);
    if (used != port_s.size() || port > 65535) throw std::out_of_range("port");
  } catch (const std::exception&) {
    return InvalidArgument("listen address \"" + host_port + "\": port must be a number from 0 to 65535");
  }
  tcp::endpoint ep(addr, static_cast<unsigned short>(port));
  auto& acc = acceptor_->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    acc.close(ec);
    return Unavailable("cannot listen on " + host_port + ": " + ec.message() +
                       " (another process may use the port; choose another with --listen/--control)");
  }
  auto bound = acc.local_endpoint();
  std::string out = bound.address().is_v6() ? "[" + bound.address().to_string() + "]" : bound.address().to_string();
  out += ":" + std::to_string(bound.port());
  asio::co_spawn(acc.get_executor(), acceptLoop(), asio::detached);
  return out;
}

asio::awaitable<void> HttpServer::acceptLoop() {
  auto& acc = acceptor_->acceptor;
  for (;;) {
    error_code ec;
    asio::any_io_executor ex = spread_.empty() ? serialExecutor(ioc_, threads_)
                                               : spread_[next_context_++ % spread_.size()]->get_executor();
    tcp::socket sock = co_await acc.async_accept(ex, kUseAwaitableEc(ec));
    if (ec) {
      if (!acc.is_open() || draining_) co_return;
      if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space) {
        // Out of file descriptors: back off briefly instead of spinning.
        spdlog::warn("{}: accept: {}", name_, ec.message());
        asio::steady_timer t(acc.get_executor(), std::chrono::milliseconds(50));
        co_await t.async_wait(kUseAwaitableEc(ec));
      }
      continue;
    }
    sock.set_option(tcp::no_delay(true), ec);
    auto conn = std::make_shared<Connection>(std::move(sock));
    auto remote = conn->socket.remote_endpoint(ec);
    conn->peer = ec ? std::string() : remote.address().to_string();
    conn->idle_since_ns = nowNs();
    if (!admit(conn)) {
      conn->socket.close(ec);
      continue;
    }
    asio::co_spawn(conn->socket.get_executor(), serve(conn), asio::detached);
  }
}

namespace {

// Sends `r` with `body` as a Beast message of body type Body.
template <class Body, class Value>
asio::awaitable<void> writeAs(tcp::socket& sock, Response& r, bool keep_alive, unsigned version, Value&& body,
                              uint64_t length, error_code& ec) {
  bhttp::response<Body> m;
  fillHeader(m, r, keep_alive, version);
  m.body() = std::forward<Value>(body);
  m.content_length(length);
  co_await bhttp::async_write(sock, m, kUseAwaitableEc(ec));
}

// Sends a streamed body: the header, then each chunk as the stream yields
// it (chunked encoding on HTTP/1.1; until close on HTTP/1.0).
asio::awaitable<void> writeStream(tcp::socket& sock, Response& r, bool keep_alive, unsigned version,
                                  error_code& ec) {
  bhttp::response<bhttp::buffer_body> m;
  fillHeader(m, r, version >= 11 && keep_alive, version);
  if (version >= 11) m.chunked(true);
  m.body().data = nullptr;
  m.body().more = true;
  bhttp::response_serializer<bhttp::buffer_body> sr{m};
  co_await bhttp::async_write_header(sock, sr, kUseAwaitableEc(ec));
  std::string chunk;
  while (!ec) {
    Result<std::optional<std::string>> next = co_await r.stream->next();
    if (!next.ok()) {
      // The producer failed mid-way: cut the response so the client sees it is incomplete.
      ec = asio::error::connection_aborted;
      break;
    }
    if (!*next) {
      m.body().data = nullptr;
      m.body().more = false;
      co_await bhttp::async_write(sock, sr, kUseAwaitableEc(ec));
      break;
    }
    chunk = std::move(**next);
    if (chunk.empty()) continue;
    m.body().data = chunk.data();
    m.body().size = chunk.size();
    m.body().more = true;
    co_await bhttp::async_write(sock, sr, kUseAwaitableEc(ec));
    if (ec == bhttp::error::need_buffer) ec = {};
  }
  if (ec) r.stream->cancel();
}

// Writes `r` on the socket as the right Beast message type.
asio::awaitable<void> writeResponse(tcp::socket& sock, Response& r, bool keep_alive, unsigned version,
                                    error_code& ec) {
  bool no_body = bodyForbidden(r.status);
  if (r.kind == Response::BodyKind::kStream && (no_body || r.omit_body)) r.stream->cancel();
  if (r.kind == Response::BodyKind::kStream && !no_body && !r.omit_body) {
    co_await writeStream(sock, r, keep_alive, version, ec);
    co_return;
  }
  if (r.kind == Response::BodyKind::kFile && !no_body && !r.omit_body) {
    co_await writeAs<FileSliceBody>(sock, r, keep_alive, version, r.file, r.contentLength(), ec);
    co_return;
  }
  // In memory (or no body at all): the head and the body in one write.
  std::string head;
  buildHead(head, r, keep_alive, version, !no_body && r.lengthKnown(), r.contentLength());
  std::string_view body;
  if (!no_body && !r.omit_body) {
    if (r.kind == Response::BodyKind::kString) body = r.body;
    if (r.kind == Response::BodyKind::kShared) body = std::string_view(r.shared.bytes->data() + r.shared.offset, r.shared.length);
  }
  // The socket almost always takes it all at once: one sendmsg, and no
  // completion to dispatch. Only what does not fit waits for the socket.
  iovec iov[2] = {{head.data(), head.size()}, {const_cast<char*>(body.data()), body.size()}};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = body.empty() ? 1 : 2;
  ssize_t n;
  do {
    n = ::sendmsg(sock.native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
    ec = error_code(errno, boost::system::system_category());
    co_return;
  }
  size_t sent = n < 0 ? 0 : static_cast<size_t>(n);
  if (sent == head.size() + body.size()) co_return;
  std::array<asio::const_buffer, 2> rest{asio::buffer(head) + std::min(sent, head.size()),
                                         asio::buffer(body.data(), body.size()) + (sent > head.size() ? sent - head.size() : 0)};
  co_await asio::async_write(sock, rest, kUseAwaitableEc(ec));
}

// After an error response the client may still be sending: half-close, then
// read and drop a little so the kernel does not reset the connection before
// the client has read our answer.
asio::awaitable<void> lingeringClose(HttpServer::Connection& c);

}  // namespace

asio::awaitable<void> HttpServer::serve(std::shared_ptr<Connection> c) {
  error_code ec;
  bool first = true;
  bool lingering = false;
  for (;;) {
    c->busy = false;
    c->idle_since_ns = nowNs();
    if (draining_) break;
    if (c->buffer.size() == 0 && c->buffer.capacity() > kBodyReadBytes / 4) c->buffer.shrink_to_fit();
    bhttp::request_parser<bhttp::empty_body> head_parser;
    head_parser.header_limit(static_cast<std::uint32_t>(limits_.header_bytes));
    head_parser.body_limit(limits_.body_bytes);
    c->arm(first ? limits_.header_timeout : limits_.idle_timeout);
    co_await c->readHead(head_parser, ec);
    c->busy = true;
    first = false;
    bool got_some = head_parser.got_some();
    bool keep_alive = !ec && head_parser.keep_alive();

    // A head that is ambiguous is refused; one with a body is planned by the
    // handler from the head: refused at once (nothing of it is read), or its
    // limit and whether it streams. A request without a body costs nothing
    // more.
    BodyPlan plan;
    if (!ec) {
      if (std::string problem = headProblem(head_parser.get()); !problem.empty()) {
        plan.answer = Response::text(400, "bad request: " + problem + "\n");
      } else if (!head_parser.is_done()) {
        Request head;
        describe(head_parser.get(), *c, head);
        try {
          plan = handler_.planBody(head);
        } catch (const std::exception& e) {
          spdlog::error("{}: planning the body of {} {} failed: {}", name_, std::string(head.method),
                        std::string(head.target), e.what());
          plan.answer = Response::error(Internal("the server failed while handling this request; see the server log"));
        }
      }
    }
    if (plan.answer) {
      // The unread body (or a body framed ambiguously) cannot be told from a
      // next request: close after the answer.
      Response& r = *plan.answer;
      r.header("connection", "close");
      if (head_parser.get().method() == bhttp::verb::head) r.omit_body = true;
      c->arm(limits_.write_timeout);
      co_await writeResponse(c->socket, r, false, head_parser.get().version(), ec);
      c->disarm();
      lingering = !ec;
      break;
    }
    uint64_t body_limit = plan.limit ? plan.limit : limits_.body_bytes;

    // The body: none, read whole now, or streamed to the handler.
    std::optional<bhttp::request_parser<bhttp::string_body>> whole;
    std::shared_ptr<StreamedBody> streamed;
    if (!ec && !head_parser.is_done()) {
      // Beast reads as much as the buffer has room for: make room for large
      // reads (it shrinks back once the connection is idle).
      c->buffer.reserve(kBodyReadBytes);
      head_parser.body_limit(body_limit);
      auto length = head_parser.content_length();
      if (length && *length > body_limit) {
        ec = bhttp::error::body_limit;  // refuse before reading any of it
      } else {
        if (beast::iequals(head_parser.get()[bhttp::field::expect], "100-continue")) {
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          c->arm(limits_.write_timeout);
          co_await asio::async_write(c->socket, asio::buffer(kContinue), kUseAwaitableEc(ec));
        }
        bool may_stream = limits_.stream_bodies || plan.stream;
        if (!ec && may_stream && (!length || *length > limits_.buffered_body_bytes)) {
          c->disarm();
          streamed = std::make_shared<StreamedBody>(c, std::move(head_parser), limits_, body_limit,
                                                    plan.limit ? plan.limit_hint : limits_.body_limit_hint);
        } else if (!ec) {
          whole.emplace(std::move(head_parser));
          whole->body_limit(body_limit);
          c->arm(limits_.body_timeout);
          co_await bhttp::async_read(c->socket, c->buffer, *whole, kUseAwaitableEc(ec));
        }
      }
    }
    c->disarm();
    if (ec) {
      if (ec == bhttp::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset) break;
      std::optional<Response> early;  // an answer decided before the handler runs
      if (c->timed_out) {
        if (c->buffer.size() == 0 && !got_some) break;  // idle keep-alive ended
        early = Response::text(408, "request timeout: the request did not arrive in time\n");
      } else if (ec == asio::error::operation_aborted) {
        break;  // drained
      } else if (ec == bhttp::error::header_limit) {
        early = Response::text(431, "request header fields too large (limit " +
                                        std::to_string(limits_.header_bytes) + " bytes)\n");
      } else if (ec == bhttp::error::body_limit) {
        early = Response::text(413, bodyLimitMessage(body_limit, plan.limit ? plan.limit_hint : limits_.body_limit_hint) +
                                        "\n");
      } else if (isParseError(ec)) {
        early = Response::text(400, "bad request: " + ec.message() + "\n");
      } else {
        break;  // socket error
      }
      early->header("connection", "close");
      c->arm(limits_.write_timeout);
      co_await writeResponse(c->socket, *early, false, 11, ec);
      c->disarm();
      lingering = !ec;
      break;
    }

    const bhttp::request_header<>& msg = streamed ? streamed->header()
                                         : whole  ? static_cast<const bhttp::request_header<>&>(whole->get())
                                                  : head_parser.get();
    Request req;
    describe(msg, *c, req);
    if (whole) req.body = whole->get().body();
    req.body_stream = streamed;
    if (!streamed) req.client = c.get();
    req.keep_alive = keep_alive;

    Response res;
    try {
      res = co_await handler_.handle(req);
    } catch (const std::exception& e) {
      spdlog::error("{}: handler failed on {} {}: {}", name_, std::string(req.method), std::string(req.target),
                    e.what());
      res = Response::error(Internal("the server failed while handling this request; see the server log"));
    }
    c->stopWatching();
    if (res.kind == Response::BodyKind::kUpgrade) {
      if (res.status != 101 || !req.upgrade || !res.takeover) {
        spdlog::error("{}: a protocol switch answered {} {} that did not ask for one", name_, std::string(req.method),
                      std::string(req.target));
        res = Response::error(Internal("the server failed while handling this request; see the server log"));
      } else {
        co_await switchProtocols(*c, res, ec);
        break;
      }
    }
    if (req.method == "HEAD") res.omit_body = true;
    bool keep = req.keep_alive && !draining_ && !(res.kind == Response::BodyKind::kStream && msg.version() < 11);
    c->arm(limits_.write_timeout);
    co_await writeResponse(c->socket, res, keep, msg.version(), ec);
    c->disarm();
    if (streamed) {
      // The exchange is over: a function still pulling the upload stops here.
      // Unread body bytes cannot be told from the next request: close.
      bool complete = co_await streamed->finish();
      if (!complete && !ec) {
        lingering = true;
        break;
      }
    }
    if (ec || !keep) break;
  }
  if (lingering) co_await lingeringClose(*c);
  error_code ignored;
  c->socket.shutdown(tcp::socket::shutdown_both, ignored);
  c->socket.close(ignored);
  c->timer.cancel();
  onConnectionClosed(c.get());
}

asio::awaitable<void> HttpServer::switchProtocols(Connection& c, Response& res, error_code& ec) {
  std::string head = "HTTP/1.1 101 Switching Protocols\r\nServer: nubo\r\n";
  for (const auto& [name, value] : res.headers) {
    if (!sendableHeader(name, value) || beast::iequals(name, "connection") || beast::iequals(name, "upgrade")) continue;
    head += name;
    head += ": ";
    head += value;
    head += "\r\n";
  }
  std::string_view protocol;
  for (const auto& [name, value] : res.headers) {
    if (beast::iequals(name, "upgrade")) protocol = value;
  }
  head += "Upgrade: ";
  head += sendableHeader("upgrade", protocol) && !protocol.empty() ? protocol : std::string_view("websocket");
  head += "\r\nConnection: Upgrade\r\n\r\n";
  c.arm(limits_.write_timeout);
  co_await asio::async_write(c.socket, asio::buffer(head), kUseAwaitableEc(ec));
  c.disarm();
  if (ec) co_return;
  UpgradedConnection conn(c, limits_.write_timeout);
  c.takeover = res.takeover;
  if (draining_) c.takeover->serverDraining();
  try {
    co_await res.takeover->run(conn);
  } catch (const std::exception& e) {
    spdlog::error("{}: an upgraded connection failed: {}", name_, e.what());
  }
  c.takeover.reset();
  conn.close();
}

namespace {
asio::awaitable<void> lingeringClose(HttpServer::Connection& c) {
  error_code ec;
  c.socket.shutdown(tcp::socket::shutdown_send, ec);
  // Bounded in time and bytes: a client may be mid-way through a large body.
  c.arm(std::chrono::milliseconds(2000));
  char sink[64 * 1024];
  size_t total = 0;
  while (!ec && total < (64u << 20)) {
    total += co_await c.socket.async_read_some(asio::buffer(sink), kUseAwaitableEc(ec));
  }
  c.disarm();
}
}  // namespace

bool HttpServer::admit(const std::shared_ptr<Connection>& conn) {
  std::vector<std::shared_ptr<Connection>> evict;
  {
    std::lock_guard lock(mu_);
    size_t& mine = per_client_[conn->peer];
    if (limits_.max_connections_per_client > 0 && mine >= limits_.max_connections_per_client) {
      if (mine == 0) per_client_.erase(conn->peer);
      return false;
    }
    if (conns_.size() >= limits_.max_connections) {
      // Full: the longest-idle connections make room (a batch, so that a
      // flood is not answered one scan per connection); with none idle,
      // the newcomer is refused.
      std::vector<std::pair<int64_t, std::shared_ptr<Connection>>> idle;
      for (auto& [p, c] : conns_) {
        if (!c->busy && !c->closing) idle.emplace_back(c->idle_since_ns.load(), c);
      }
      if (idle.empty()) {
        if (mine == 0) per_client_.erase(conn->peer);
        return false;
      }
      size_t n = std::min(idle.size(), std::max<size_t>(1, limits_.max_connections / 64));
      std::partial_sort(idle.begin(), idle.begin() + static_cast<std::ptrdiff_t>(n), idle.end(),
                        [](const auto& a, const auto& b) { return a.first < b.first; });
      for (size_t i = 0; i < n; ++i) {
        idle[i].second->closing = true;
        evict.push_back(std::move(idle[i].second));
      }
    }
    ++mine;
    conns_.emplace(conn.get(), conn);
  }
  for (auto& c : evict) {
    asio::post(c->socket.get_executor(), [c] {
      if (!c->busy) {
        error_code ec;
        c->socket.cancel(ec);
      }
    });
  }
  return true;
}

void HttpServer::onConnectionClosed(Connection* c) {
  std::function<void()> done;
  {
    std::lock_guard lock(mu_);
    if (auto it = per_client_.find(c->peer); it != per_client_.end() && --it->second == 0) per_client_.erase(it);
    conns_.erase(c);
    if (draining_ && conns_.empty() && on_idle_) done = std::move(on_idle_);
  }
  if (done) done();
}

void HttpServer::drain(std::function<void()> on_idle) {
  std::vector<std::shared_ptr<Connection>> conns;
  bool idle_now = false;
  {
    std::lock_guard lock(mu_);
    draining_ = true;
    for (auto& [p, c] : conns_) conns.push_back(c);
    if (conns_.empty()) idle_now = true;
    else on_idle_ = std::move(on_idle);
  }
  asio::post(acceptor_->acceptor.get_executor(), [this] {
    error_code ec;
    acceptor_->acceptor.close(ec);
  });
  for (auto& c : conns) {
    asio::post(c->socket.get_executor(), [c] {
      if (c->takeover) {
        c->takeover->serverDraining();  // (a WebSocket: closed politely, not cut at the grace's end)
      } else if (!c->busy) {
        error_code ec;
        c->socket.cancel(ec);
      }
    });
  }
  if (idle_now && on_idle) on_idle();
}

void HttpServer::closeAll() {
  std::vector<std::shared_ptr<Connection>> conns;
  {
    std::lock_guard lock(mu_);
    for (auto& [p, c] : conns_) conns.push_back(c);
  }
  for (auto& c : conns) {
    asio::post(c->socket.get_executor(), [c] {
      error_code ec;
      c->socket.close(ec);
    });
  }
}

size_t HttpServer::connectionCount() const {
  std::lock_guard lock(mu_);
  return conns_.size();
}

}  // namespace nubo::http
