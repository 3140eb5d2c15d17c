#include "execproxy/exec_proxy.h"

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/json.h"
#include "runtime/protocol.h"

extern char** environ;

namespace nubo::execproxy {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace protocol = runtime::protocol;
using boost::system::error_code;
using protocol::Frame;
using protocol::FrameType;
using tcp = asio::ip::tcp;

auto withEc(error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

bool sameName(std::string_view a, std::string_view b) { return beast::iequals(a, b); }

// Headers that describe one hop, never passed between the gateway and the program.
bool hopByHop(std::string_view name) {
  for (std::string_view h : {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
                             "proxy-connection"}) {
    if (sameName(name, h)) return true;
  }
  return false;
}

class Proxy;

// One request: an HTTP/1.1 exchange with the program on its own connection.
struct Exchange {
  Exchange(asio::io_context& ioc, uint32_t id) : id(id), sock(ioc), wake(ioc) {}
  void poke() { wake.cancel(); }
  asio::awaitable<void> waitPoke() {
    wake.expires_at(std::chrono::steady_clock::time_point::max());
    error_code ec;
    co_await wake.async_wait(withEc(ec));
  }

  uint32_t id;
  tcp::socket sock;
  asio::steady_timer wake;           // cancelled whenever something below changes
  std::deque<std::string> body;      // from the gateway, still to write to the program
  bool body_ended = false;           // the gateway's side is complete
  bool chunked = false;              // the request body goes chunked (length unknown)
  bool upgrade = false;              // a WebSocket handshake
  bool tunnel = false;               // switched: bytes both ways
  bool response_decided = false;     // (upgrade) the program answered
  uint64_t credit = protocol::kInitialWindow;  // bytes the gateway accepts
  bool pooled = false;               // no body: may use (and return) a kept-alive connection
  bool cancelled = false;
};

class Proxy {
 public:
  Proxy() : chan_(ioc_), child_exit_(ioc_) {}

  int run() {
    error_code ec;
    chan_.assign(asio::local::stream_protocol(), 3, ec);
    if (ec) {
      std::fprintf(stderr, "nubo exec proxy: no channel on descriptor 3: %s\n", ec.message().c_str());
      return 2;
    }
    sendJson(FrameType::kHello, 0, {{"runtime", "exec"}, {"pid", ::getpid()}, {"version", "nubo"}});
    asio::co_spawn(ioc_, readLoop(), asio::detached);
    ioc_.run();
    return exit_code_;
  }

 private:
  // ---- the channel --------------------------------------------------------

  void send(std::string bytes) {
    out_ += bytes;
    if (writing_) return;
    writing_ = true;
    asio::co_spawn(ioc_, writeLoop(), asio::detached);
  }
  asio::awaitable<void> writeLoop() {
    std::string chunk;
    while (!out_.empty()) {
      chunk.clear();
      chunk.swap(out_);
      error_code ec;
      co_await asio::async_write(chan_, asio::buffer(chunk), withEc(ec));
      if (ec) break;
    }
    writing_ = false;
  }
  void sendFrame(FrameType type, uint8_t flags, uint32_t stream, std::string_view payload) {
    std::string f;
    protocol::appendFrame(f, type, flags, stream, payload);
    send(std::move(f));
  }
  void sendJson(FrameType type, uint32_t stream, const Json& j) { sendFrame(type, 0, stream, dumpJson(j)); }
  void fail(Exchange& x, const std::string& message) { sendJson(FrameType::kError, x.id, {{"message", message}}); }
  // A failure of the program's connection: when the program is exiting,
  // the instance ends with it (the gateway answers 502 and starts another)
  // rather than answering for a server that is gone.
  asio::awaitable<void> failConnection(Exchange& x, const std::string& message) {
    if (x.cancelled) co_return;
    asio::steady_timer pause(ioc_);
    for (int i = 0; i < 40 && child_exit_reason_.empty(); ++i) {
      pause.expires_after(std::chrono::milliseconds(5));
      error_code ec;
      co_await pause.async_wait(withEc(ec));
    }
    if (child_exit_reason_.empty() && !x.cancelled) fail(x, message);
  }
  void grant(uint32_t stream, size_t n) {
    std::string p;
    protocol::putU32(p, static_cast<uint32_t>(n));
    sendFrame(FrameType::kWindow, 0, stream, p);
  }

  asio::awaitable<void> readLoop() {
    protocol::FrameDecoder decoder;
    std::vector<char> buf(64 << 10);
    for (;;) {
      error_code ec;
      size_t n = co_await chan_.async_read_some(asio::buffer(buf), withEc(ec));
      if (ec) break;
      decoder.feed(buf.data(), n);
      Frame f;
      Result<bool> got = decoder.next(&f);
      for (; got.ok() && *got; got = decoder.next(&f)) onFrame(std::move(f));
      if (!got.ok()) break;
    }
    // The gateway is done with this instance.
    stop(0);
  }

  void stop(int code) {
    exit_code_ = code;
    if (child_ > 0) ::kill(-child_, SIGKILL);
    ioc_.stop();
  }

  void onFrame(Frame&& f) {
    if (!ready_ && f.stream != 0) {
      // Sent right behind SPECIALIZE: served once the program is up.
      early_.push_back(std::move(f));
      return;
    }
    if (f.type == FrameType::kSpecialize) {
      asio::co_spawn(ioc_, specialize(std::move(f.payload)), asio::detached);
      return;
    }
    if (f.type == FrameType::kRequest) {
      auto x = std::make_shared<Exchange>(ioc_, f.stream);
      exchanges_[f.stream] = x;
      asio::co_spawn(ioc_, exchange(x, std::move(f)), asio::detached);
      return;
    }
    auto it = exchanges_.find(f.stream);
    if (it == exchanges_.end()) return;
    Exchange& x = *it->second;
    switch (f.type) {
      case FrameType::kData:
        if (!f.payload.empty()) x.body.push_back(std::move(f.payload));
        if (f.endStream()) x.body_ended = true;
        x.poke();
        break;
      case FrameType::kWindow:
        if (f.payload.size() >= 4) x.credit += protocol::readU32(f.payload.data());
        x.poke();
        break;
      case FrameType::kCancel: {
        x.cancelled = true;
        error_code ignored;
        x.sock.close(ignored);
        x.poke();
        exchanges_.erase(it);
        break;
      }
      default:
        break;
    }
  }

  // ---- the program -----------------------------------------------------------

  asio::awaitable<void> specialize(std::string payload) {
    auto t0 = std::chrono::steady_clock::now();
    Status started = co_await startProgram(payload);
    if (!started.ok()) {
      sendJson(FrameType::kReady, 0, {{"ok", false}, {"error", started.message()}});
      co_return;
    }
    ready_ = true;
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    sendJson(FrameType::kReady, 0, {{"ok", true}, {"load_ms", ms}});
    // Requests sent right behind SPECIALIZE waited for this.
    std::vector<Frame> waiting;
    waiting.swap(early_);
    for (auto& f : waiting) onFrame(std::move(f));
  }

  asio::awaitable<Status> startProgram(const std::string& payload) {
    auto j = parseJson(payload, "SPECIALIZE");
    if (!j.ok() || !j->is_object()) co_return InvalidArgument("a malformed SPECIALIZE");
    std::string dir = j->value("dir", std::string("/app"));
    std::string entry = j->value("entry", std::string());
    std::vector<std::string> words;
    std::istringstream split(entry);
    for (std::string w; split >> w;) words.push_back(w);
    if (words.empty()) {
      co_return InvalidArgument("entry: runtime \"exec\" needs the command that starts your server, e.g. "
                                "\"python3 server.py\"");
    }
    name_ = words[0];
    // A first word naming a file of the deployment runs that file.
    if (words[0].find('/') != std::string::npos || ::access((dir + "/" + words[0]).c_str(), F_OK) == 0) {
      words[0] = words[0].front() == '/' ? words[0] : dir + "/" + words[0];
    }
    Result<uint16_t> port = freePort();
    if (!port.ok()) co_return port.status();
    port_ = *port;
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
      if (std::strncmp(*e, "NUBO_FD=", 8) != 0) env.emplace_back(*e);
    }
    if (j->contains("env") && (*j)["env"].is_object()) {
      for (const auto& [k, v] : (*j)["env"].items()) env.push_back(k + "=" + (v.is_string() ? v.get<std::string>() : v.dump()));
    }
    env.push_back("PORT=" + std::to_string(port_));
    if (Status s = spawn(words, env, dir); !s.ok()) co_return s;
    asio::co_spawn(ioc_, watchChild(), asio::detached);
    // Ready once it accepts a connection; its exit first is the error.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    asio::steady_timer pause(ioc_);
    for (;;) {
      if (!child_exit_reason_.empty()) co_return FailedPrecondition(child_exit_reason_);
      tcp::socket probe(ioc_);
      error_code ec;
      co_await probe.async_connect(tcp::endpoint(asio::ip::address_v4::loopback(), port_), withEc(ec));
      if (!ec) co_return Status::Ok();
      if (std::chrono::steady_clock::now() > deadline) {
        co_return DeadlineExceeded(name_ + " did not accept connections on $PORT (" + std::to_string(port_) +
                                   ") within 30 s");
      }
      pause.expires_after(std::chrono::milliseconds(5));
      co_await pause.async_wait(withEc(ec));
    }
  }

  static Result<uint16_t> freePort() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return ErrnoStatus("socket", errno);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      int e = errno;
      ::close(fd);
      return ErrnoStatus("choosing a port", e);
    }
    ::close(fd);
    return ntohs(a.sin_port);
  }

  Status spawn(const std::vector<std::string>& words, const std::vector<std::string>& env, const std::string& dir) {
    std::vector<char*> argv, envp;
    for (const auto& w : words) argv.push_back(const_cast<char*>(w.c_str()));
    argv.push_back(nullptr);
    for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addclose(&fa, 3);  // the channel is the proxy's alone
    posix_spawn_file_actions_addchdir_np(&fa, dir.c_str());
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);  // its own group: its workers go with it
    pid_t pid = -1;
    int rc = ::posix_spawnp(&pid, argv[0], &fa, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) return FailedPrecondition("could not start " + name_ + ": " + std::strerror(rc));
    child_ = pid;
    return Status::Ok();
  }

  asio::awaitable<void> watchChild() {
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, child_, 0));
    int status = 0;
    if (fd >= 0) {
      child_exit_.assign(fd);
      error_code ec;
      co_await child_exit_.async_wait(asio::posix::descriptor_base::wait_read, withEc(ec));
    }
    ::waitpid(child_, &status, 0);
    child_exit_reason_ = "the server " + name_ + " exited (" +
                         (WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                                              : "status " + std::to_string(WEXITSTATUS(status))) +
                         ")";
    if (ready_) {
      // Its requests fail with the instance; the gateway starts another.
      std::fprintf(stderr, "%s\n", child_exit_reason_.c_str());
      child_ = -1;
      stop(1);
    }
  }

  // ---- one exchange ----------------------------------------------------------

  asio::awaitable<void> exchange(std::shared_ptr<Exchange> x, Frame request) {
    std::string_view head, first;
    protocol::RequestHead rh;
    if (!protocol::splitHead(request.payload, &head, &first).ok() || !protocol::parseRequestHead(head, &rh).ok()) {
      fail(*x, "a malformed request head");
      co_return;
    }
    x->upgrade = (request.flags & protocol::kUpgrade) != 0;
    // (An upgrade's REQUEST ends its body; what follows a 101 is the tunnel.)
    x->body_ended = request.endStream() && !x->upgrade;
    if (!first.empty()) x->body.emplace_back(first);
    bool has_length = false;
    std::string out = rh.method + " " + rh.path + " HTTP/1.1\r\n";
    for (const auto& [name, value] : rh.headers) {
      if (hopByHop(name)) continue;
      if (sameName(name, "content-length")) has_length = true;
      out += name + ": " + value + "\r\n";
    }
    x->chunked = !has_length && !request.endStream();
    // A request complete in its REQUEST frame with no body (GET, HEAD,
    // DELETE) goes over a kept-alive connection: sent again on a fresh one
    // if the kept one turns out closed before any answer came.
    x->pooled = request.endStream() && first.empty() && !x->upgrade;
    if (x->upgrade) out += "Connection: Upgrade\r\nUpgrade: websocket\r\n";
    else if (!x->pooled) out += "Connection: close\r\n";
    if (x->chunked) out += "Transfer-Encoding: chunked\r\n";
    out += "\r\n";
    for (int attempt = 0; attempt < 2; ++attempt) {
      bool reused = x->pooled && attempt == 0 && !idle_.empty();
      error_code ec;
      if (reused) {
        x->sock = std::move(idle_.back());
        idle_.pop_back();
      } else {
        x->sock = tcp::socket(ioc_);
        co_await x->sock.async_connect(tcp::endpoint(asio::ip::address_v4::loopback(), port_), withEc(ec));
      }
      if (!ec) co_await asio::async_write(x->sock, asio::buffer(out), withEc(ec));
      if (ec && reused && !x->cancelled) continue;
      if (ec) {
        co_await failConnection(*x, "the deployment's server did not take the request: " + ec.message());
        co_return finish(*x);
      }
      if (!x->pooled) asio::co_spawn(ioc_, writeBody(x), asio::detached);  // (a pooled request has no body)
      if (co_await readResponse(x, reused)) break;  // else the kept connection was stale: once more
    }
    finish(*x);
  }

  void finish(Exchange& x) {
    x.cancelled = true;
    x.poke();
    exchanges_.erase(x.id);
  }

  // The request body (or, after a 101, the client's bytes) to the program.
  asio::awaitable<void> writeBody(std::shared_ptr<Exchange> x) {
    for (;;) {
      while (x->body.empty() && !x->body_ended && !x->cancelled && (!x->upgrade || !x->response_decided || x->tunnel)) {
        co_await x->waitPoke();
      }
      if (x->cancelled) co_return;
      if (x->upgrade && x->response_decided && !x->tunnel) co_return;  // refused: no body follows
      error_code ec;
      if (!x->body.empty()) {
        std::string piece = std::move(x->body.front());
        x->body.pop_front();
        size_t n = piece.size();
        if (x->chunked && !x->tunnel) {
          char size[24];
          std::snprintf(size, sizeof size, "%zx\r\n", n);
          piece = size + piece + "\r\n";
        }
        co_await asio::async_write(x->sock, asio::buffer(piece), withEc(ec));
        if (ec) co_return;
        grant(x->id, n);  // taken: the gateway may send as much again
        continue;
      }
      if (x->chunked && !x->tunnel) co_await asio::async_write(x->sock, asio::buffer("0\r\n\r\n", 5), withEc(ec));
      if (x->tunnel) x->sock.shutdown(tcp::socket::shutdown_send, ec);
      co_return;
    }
  }

  // Sends `bytes` as DATA within the gateway's window.
  asio::awaitable<bool> sendData(Exchange& x, std::string_view bytes) {
    while (!bytes.empty()) {
      while (x.credit == 0 && !x.cancelled) co_await x.waitPoke();
      if (x.cancelled) co_return false;
      size_t n = std::min<size_t>({bytes.size(), x.credit, protocol::kMaxData});
      sendFrame(FrameType::kData, 0, x.id, bytes.substr(0, n));
      x.credit -= n;
      bytes.remove_prefix(n);
    }
    co_return true;
  }

  // False when `reused` (a kept-alive connection) turned out closed before
  // any of an answer came: the caller sends the request again.
  asio::awaitable<bool> readResponse(std::shared_ptr<Exchange> x, bool reused) {
    beast::flat_buffer buf;
    error_code ec;
    std::optional<bhttp::response_parser<bhttp::buffer_body>> parser;
    for (;;) {
      parser.emplace();
      parser->header_limit(64 << 10);
      parser->body_limit(std::numeric_limits<std::uint64_t>::max());
      co_await bhttp::async_read_header(x->sock, buf, *parser, withEc(ec));
      if (ec && reused && !parser->got_some() && !x->cancelled) co_return false;
      if (ec) {
        co_await failConnection(*x, "the deployment's server sent no valid response: " + ec.message());
        co_return true;
      }
      int status = static_cast<int>(parser->get().result_int());
      if (status < 100 || status > 199 || (status == 101 && x->upgrade)) break;  // (an interim 1xx is skipped)
    }
    int status = static_cast<int>(parser->get().result_int());
    protocol::HeaderList headers;
    for (const auto& field : parser->get()) {
      if (!hopByHop(field.name_string())) headers.emplace_back(field.name_string(), field.value());
    }
    std::string rhead;
    protocol::appendResponseHead(rhead, status, headers);
    x->response_decided = true;
    if (status == 101) {
      // Switched: what follows (and what the parser read past the head) is
      // the connection's bytes.
      x->tunnel = true;
      x->poke();
      std::string f;
      protocol::appendHeadFrame(f, FrameType::kResponse, 0, x->id, rhead, "");
      send(std::move(f));
      std::string rest(static_cast<const char*>(buf.data().data()), buf.size());
      if (!co_await sendData(*x, rest)) co_return true;
      std::vector<char> chunk(64 << 10);
      for (;;) {
        size_t n = co_await x->sock.async_read_some(asio::buffer(chunk), withEc(ec));
        if (ec) break;
        if (!co_await sendData(*x, std::string_view(chunk.data(), n))) co_return true;
      }
      if (!x->cancelled) sendFrame(FrameType::kData, protocol::kEndStream, x->id, "");
      co_return true;
    }
    x->poke();
    bool done = parser->is_done();
    std::string f;
    protocol::appendHeadFrame(f, FrameType::kResponse, done ? protocol::kEndStream : 0, x->id, rhead, "");
    send(std::move(f));
    std::vector<char> chunk(64 << 10);
    while (!done) {
      parser->get().body().data = chunk.data();
      parser->get().body().size = chunk.size();
      co_await bhttp::async_read(x->sock, buf, *parser, withEc(ec));
      if (ec == bhttp::error::need_buffer) ec = {};
      if (ec) {
        co_await failConnection(*x, "the deployment's server broke off its response: " + ec.message());
        co_return true;
      }
      size_t n = chunk.size() - parser->get().body().size;
      if (!co_await sendData(*x, std::string_view(chunk.data(), n))) co_return true;
      done = parser->is_done();
    }
    sendFrame(FrameType::kData, protocol::kEndStream, x->id, "");
    // The connection is kept for the next bodiless request when both sides
    // would keep it.
    if (x->pooled && parser->keep_alive() && !parser->need_eof() && idle_.size() < kMaxIdle) {
      idle_.push_back(std::move(x->sock));
    }
    co_return true;
  }

  asio::io_context ioc_;
  asio::local::stream_protocol::socket chan_;
  asio::posix::stream_descriptor child_exit_;
  std::string out_;
  bool writing_ = false;
  bool ready_ = false;
  std::vector<Frame> early_;
  std::map<uint32_t, std::shared_ptr<Exchange>> exchanges_;
  static constexpr size_t kMaxIdle = 32;
  std::vector<tcp::socket> idle_;  // kept-alive connections to the program, the newest last
  pid_t child_ = -1;
  std::string name_;
  std::string child_exit_reason_;
  uint16_t port_ = 0;
  int exit_code_ = 0;
};

}  // namespace

int execProxyMain(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  Proxy proxy;
  return proxy.run();
}

}  // namespace nubo::execproxy
