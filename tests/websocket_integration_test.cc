// WebSockets end to end: the real `nubo serve`, real instances, and a real
// WebSocket client (Beast's) on loopback.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>
#include <csignal>
#include <filesystem>
#include <thread>

#include "integration_util.h"

namespace nubo::testing_util {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

// A blocking client for one socket; every read has a deadline (a test
// never hangs on a server that stays silent).
class WsClient {
 public:
  // Connects and handshakes with /<path> on the server; the error text when
  // the handshake failed (with the status the server answered).
  std::string open(const std::string& data_url, const std::string& path,
                   const std::string& subprotocol = "") {
    std::string hp = data_url.substr(data_url.find("//") + 2);
    auto colon = hp.rfind(':');
    tcp::endpoint ep(asio::ip::make_address(hp.substr(0, colon)),
                     static_cast<unsigned short>(std::stoi(hp.substr(colon + 1))));
    beast::error_code ec;
    ws_.next_layer().connect(ep, ec);
    if (ec) return "connect: " + ec.message();
    if (!subprotocol.empty()) {
      ws_.set_option(websocket::stream_base::decorator(
          [subprotocol](websocket::request_type& req) { req.set("Sec-WebSocket-Protocol", subprotocol); }));
    }
    ws_.handshake(response_, "localhost", path, ec);
    if (ec) return "handshake: " + ec.message() + " (status " + std::to_string(response_.result_int()) + ")";
    ws_.control_callback([this](websocket::frame_type kind, beast::string_view payload) {
      if (kind == websocket::frame_type::pong) pongs_.emplace_back(payload);
    });
    return "";
  }

  bool send(const std::string& text, bool binary = false) {
    ws_.binary(binary);
    beast::error_code ec;
    ws_.write(asio::buffer(text), ec);
    return !ec;
  }

  // The next message, or the error that ended the wait ("closed 1011 ...").
  std::string read(std::chrono::milliseconds within = std::chrono::seconds(10)) {
    beast::flat_buffer buf;
    beast::error_code ec;
    // A watchdog thread closes the socket at the deadline.
    std::atomic<bool> done{false};
    std::thread watchdog([&] {
      auto until = std::chrono::steady_clock::now() + within;
      while (!done && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      if (!done) {
        beast::error_code ignored;
        ws_.next_layer().shutdown(tcp::socket::shutdown_both, ignored);
      }
    });
    ws_.read(buf, ec);
    done = true;
    watchdog.join();
    if (ec == websocket::error::closed) {
      return "closed " + std::to_string(ws_.reason().code) + " " + std::string(ws_.reason().reason.c_str());
    }
    if (ec) return "error " + ec.message();
    return beast::buffers_to_string(buf.data());
  }

  void ping(const std::string& payload) {
    beast::error_code ec;
    ws_.ping(websocket::ping_data(payload.c_str()), ec);
  }
  void close(uint16_t code, const std::string& reason) {
    beast::error_code ec;
    websocket::close_reason why(static_cast<websocket::close_code>(code), reason.c_str());
    ws_.close(why, ec);
  }
  websocket::stream<tcp::socket>& stream() { return ws_; }
  const websocket::response_type& response() const { return response_; }
  std::vector<std::string> pongs_;

 private:
  asio::io_context ioc_;
  websocket::stream<tcp::socket> ws_{ioc_};
  websocket::response_type response_;
};

// The ws package scripts/setup installs, copied into an app's node_modules.
std::map<std::string, std::string> wsPackage() {
  std::map<std::string, std::string> files;
  namespace fs = std::filesystem;
  std::string root = "/usr/lib/node_modules/ws";
  if (!fs::exists(root)) root = "/usr/local/lib/node_modules/ws";
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (!e.is_regular_file()) continue;
    files["node_modules/ws/" + fs::relative(e.path(), root).string()] = slurp(e.path().string());
  }
  return files;
}

std::map<std::string, std::string> with(std::map<std::string, std::string> a,
                                        const std::map<std::string, std::string>& b) {
  a.insert(b.begin(), b.end());
  return a;
}

class WebSocketTest : public SharedServerTest {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new TempDir();
    server_ = new NuboServer(*tmp_, {"--max-ws-message-mb", "1", "--ws-idle-timeout-s", "2"});
  }
};

const char* kFetchEcho = R"(export default {
  fetch(request) {
    if (request.headers.get('upgrade') !== 'websocket') return new Response('plain GET');
    const offered = request.headers.get('sec-websocket-protocol');
    const { socket, response } = upgradeWebSocket(request, offered ? { protocol: 'chat' } : {});
    socket.onopen = () => socket.send('hello from fetch');
    socket.addEventListener('message', (e) => {
      if (e.data === 'crash') process.exit(3);
      if (e.data === 'bye') return socket.close(4000, 'asked to');
      socket.send(typeof e.data === 'string' ? 'echo:' + e.data : e.data);
    });
    socket.onclose = (e) => console.log(`closed ${e.code} ${e.reason}`);
    return response;
  }
})";

TEST_F(WebSocketTest, FetchStyleEchoesTextAndBinaryAndClosesWithCodes) {
  Json d = deployApp("ws-fetch", {{"index.mjs", kFetchEcho}});
  ASSERT_EQ(d["state"], "READY") << d.dump();
  // A plain GET of the same path is an ordinary request.
  EXPECT_EQ(server_->get("/ws-fetch/").body, "plain GET");

  WsClient c;
  ASSERT_EQ(c.open(server_->dataUrl(), "/ws-fetch/", "chat"), "");
  EXPECT_EQ(c.response()["sec-websocket-protocol"], "chat");
  EXPECT_FALSE(c.response()["x-nubo-request-id"].empty());
  EXPECT_EQ(c.read(), "hello from fetch");
  ASSERT_TRUE(c.send("one"));
  EXPECT_EQ(c.read(), "echo:one");
  std::string bytes("\x00\x01\xff binary", 10);
  ASSERT_TRUE(c.send(bytes, /*binary=*/true));
  EXPECT_EQ(c.read(), bytes);
  EXPECT_FALSE(c.stream().got_text());
  // Large messages cross the windows in many DATA frames.
  std::string big(700 << 10, 'x');
  ASSERT_TRUE(c.send(big));
  EXPECT_EQ(c.read(), "echo:" + big);
  // Ping is answered with its payload.
  c.ping("are you there");
  ASSERT_TRUE(c.send("after ping"));
  EXPECT_EQ(c.read(), "echo:after ping");
  ASSERT_EQ(c.pongs_.size(), 1u);
  EXPECT_EQ(c.pongs_[0], "are you there");
  // The function closes with its own code and reason.
  ASSERT_TRUE(c.send("bye"));
  EXPECT_EQ(c.read(), "closed 4000 asked to");
}

TEST_F(WebSocketTest, ClientCloseCodeReachesTheFunction) {
  deployApp("ws-close", {{"index.mjs", kFetchEcho}});
  WsClient c;
  ASSERT_EQ(c.open(server_->dataUrl(), "/ws-close/"), "");
  EXPECT_EQ(c.read(), "hello from fetch");
  c.close(4321, "client leaving");
  EXPECT_TRUE(waitFor([&] {
    ProcResult r = server_->nubo({"logs", "ws-close"});
    return r.out.find("closed 4321 client leaving") != std::string::npos;
  })) << server_->nubo({"logs", "ws-close"}).out;
}

TEST_F(WebSocketTest, NodeStyleWsLibraryWorksUnchanged) {
  // ws's own server attached to the app's http server, as Express apps do.
  Json d = deployApp("ws-node", with(wsPackage(), {{"index.mjs", R"(
import http from 'node:http';
import { WebSocketServer } from 'ws';
const server = http.createServer((req, res) => res.end('http too'));
const wss = new WebSocketServer({ noServer: true });
server.on('upgrade', (req, socket, head) => {
  if (req.url !== '/chat') { socket.write('HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n\r\nno\n'); return socket.destroy(); }
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.send('welcome ' + req.headers['x-forwarded-for']);
    ws.on('message', (m, isBinary) => ws.send(isBinary ? m : 'ws:' + m.toString()));
    ws.on('close', (code, reason) => console.log('ws closed', code, reason.toString()));
  });
});
server.listen(3000);
)"}}));
  ASSERT_EQ(d["state"], "READY") << d.dump();
  EXPECT_EQ(server_->get("/ws-node/").body, "http too");
  WsClient c;
  ASSERT_EQ(c.open(server_->dataUrl(), "/ws-node/chat"), "");
  EXPECT_EQ(c.read(), "welcome 127.0.0.1");
  ASSERT_TRUE(c.send("hi"));
  EXPECT_EQ(c.read(), "ws:hi");
  c.ping("p");
  ASSERT_TRUE(c.send("x"));
  EXPECT_EQ(c.read(), "ws:x");
  EXPECT_EQ(c.pongs_.size(), 1u);
  c.close(1000, "done");
  EXPECT_TRUE(waitFor([&] {
    return server_->nubo({"logs", "ws-node"}).out.find("ws closed 1000 done") != std::string::npos;
  }));

  // A refusal written by the code is the client's answer.
  auto refused = server_->get("/ws-node/elsewhere", {"Connection: Upgrade", "Upgrade: websocket",
                                                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                                                    "Sec-WebSocket-Version: 13"});
  EXPECT_EQ(refused.status, 404);
  EXPECT_EQ(refused.body, "no\n");
}

TEST_F(WebSocketTest, OverLimitMessageClosesWith1009AndIdleWith1001) {
  deployApp("ws-limits", {{"index.mjs", kFetchEcho}});
  WsClient c;
  ASSERT_EQ(c.open(server_->dataUrl(), "/ws-limits/"), "");
  EXPECT_EQ(c.read(), "hello from fetch");
  ASSERT_TRUE(c.send(std::string((1 << 20) + 1, 'y')));  // --max-ws-message-mb 1
  EXPECT_EQ(c.read().substr(0, 11), "closed 1009");

  WsClient idle;
  ASSERT_EQ(idle.open(server_->dataUrl(), "/ws-limits/"), "");
  EXPECT_EQ(idle.read(), "hello from fetch");
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(idle.read(std::chrono::seconds(10)).substr(0, 11), "closed 1001");  // --ws-idle-timeout-s 2
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1500));
}

// A client that breaks the protocol (an unmasked frame, which RFC 6455
// forbids from clients) is closed with 1002 by the gateway; its frame never
// reaches the function.
TEST_F(WebSocketTest, AFrameTheProtocolForbidsClosesWith1002) {
  deployApp("ws-proto", {{"index.mjs", kFetchEcho}});
  std::string url = server_->dataUrl();
  int port = std::stoi(url.substr(url.rfind(':') + 1));
  int fd = connectLoopback(port);
  ASSERT_GE(fd, 0);
  std::string hello = "GET /ws-proto/ HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
  ASSERT_EQ(::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL), static_cast<ssize_t>(hello.size()));
  std::string got;
  char buf[4096];
  // The 101 and the function's greeting (an unmasked server frame).
  while (got.find("hello from fetch") == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0) << got;
    got.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(got.rfind("HTTP/1.1 101", 0), 0u) << got;
  std::string unmasked = std::string("\x81\x05", 2) + "crash";  // would end the instance if it got through
  ASSERT_EQ(::send(fd, unmasked.data(), unmasked.size(), MSG_NOSIGNAL), 7);
  std::string close;
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    close.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  ASSERT_GE(close.size(), 4u);
  EXPECT_EQ(static_cast<uint8_t>(close[0]), 0x88);
  EXPECT_EQ((static_cast<uint8_t>(close[2]) << 8) | static_cast<uint8_t>(close[3]), 1002) << close.substr(4);
  // The instance lives on: the next socket is served by it, no cold start.
  WsClient next;
  ASSERT_EQ(next.open(server_->dataUrl(), "/ws-proto/"), "");
  EXPECT_EQ(next.read(), "hello from fetch");
  EXPECT_TRUE(next.response()["x-nubo-cold-start"].empty()) << "the first instance was not crashed";
}

TEST_F(WebSocketTest, ACrashedInstanceClosesItsSocketsWith1011) {
  deployApp("ws-crash", {{"index.mjs", kFetchEcho}});
  WsClient a, b;
  ASSERT_EQ(a.open(server_->dataUrl(), "/ws-crash/"), "");
  ASSERT_EQ(b.open(server_->dataUrl(), "/ws-crash/"), "");
  EXPECT_EQ(a.read(), "hello from fetch");
  EXPECT_EQ(b.read(), "hello from fetch");
  ASSERT_TRUE(a.send("crash"));
  EXPECT_EQ(a.read().substr(0, 11), "closed 1011");
  EXPECT_EQ(b.read().substr(0, 11), "closed 1011");
  // The next socket gets a new instance.
  WsClient c;
  ASSERT_EQ(c.open(server_->dataUrl(), "/ws-crash/"), "");
  EXPECT_EQ(c.read(), "hello from fetch");
}

TEST_F(WebSocketTest, OpenSocketsHoldSlotsAndKeepTheInstanceFromTheReaper) {
  // One slot: a second socket waits (503 once the queue wait ends), and the
  // instance with an open socket outlives its idle time.
  deployApp("ws-slots", {{"index.mjs", kFetchEcho},
                         {"nubo.json", R"({"limits": {"concurrency": 1, "max_instances": 1, "idle_ttl_s": 1,
                                            "timeout_ms": 1000}})"}});
  WsClient a;
  ASSERT_EQ(a.open(server_->dataUrl(), "/ws-slots/"), "");
  EXPECT_EQ(a.read(), "hello from fetch");
  auto r = server_->get("/ws-slots/");
  EXPECT_EQ(r.status, 503) << r.body;
  // An app with the same idle_ttl_s and no socket is reaped; the one with
  // the open socket is not, and still serves it.
  deployApp("ws-slots-idle", {{"index.mjs", kFetchEcho}, {"nubo.json", R"({"limits": {"idle_ttl_s": 1}})"}});
  ASSERT_EQ(server_->get("/ws-slots-idle/").status, 200);
  auto running = [&](const std::string& app) {
    ProcResult ps = server_->nubo({"ps", app, "--json"});
    auto j = parseJson(ps.out, "ps");
    return j.ok() && j->is_array() && !j->empty();
  };
  ASSERT_TRUE(running("ws-slots-idle"));
  EXPECT_TRUE(waitFor([&] {
    if (!a.send("keep")) return true;
    EXPECT_EQ(a.read(), "echo:keep");
    return !running("ws-slots-idle");
  }, std::chrono::seconds(20)));
  EXPECT_TRUE(running("ws-slots"));
  ASSERT_TRUE(a.send("still here"));
  EXPECT_EQ(a.read(), "echo:still here");
  a.close(1000, "");
  EXPECT_TRUE(waitFor([&] { return server_->get("/ws-slots/").status == 200; }));
}

TEST_F(WebSocketTest, ExecRuntimePassesUpgradesThrough) {
  Json d = deployApp("ws-exec", with(wsPackage(), {{"server.mjs", R"(
import http from 'node:http';
import { WebSocketServer } from 'ws';
const server = http.createServer((req, res) => res.end('exec http'));
const wss = new WebSocketServer({ server });
wss.on('connection', (ws) => ws.on('message', (m) => ws.send('exec:' + m)));
server.listen(Number(process.env.PORT), '127.0.0.1');
)"}, {"nubo.json", R"({"runtime": "exec", "entry": "node server.mjs"})"}}));
  ASSERT_EQ(d["state"], "READY") << d.dump();
  EXPECT_EQ(server_->get("/ws-exec/").body, "exec http");
  WsClient c;
  ASSERT_EQ(c.open(server_->dataUrl(), "/ws-exec/"), "");
  ASSERT_TRUE(c.send("ping"));
  EXPECT_EQ(c.read(), "exec:ping");
  c.close(1000, "");
}

// A server shutting down closes open sockets with 1001 at once (their
// clients reconnect elsewhere) instead of cutting them at the drain's end.
TEST(WebSocketShutdownTest, AServerShuttingDownClosesSocketsWith1001) {
  TempDir tmp;
  NuboServer server(tmp);
  std::string dir = tmp.sub("apps/ws-stop");
  writeFile(dir + "/index.mjs", kFetchEcho);
  server.deploy(dir, {"--app", "ws-stop"});
  WsClient c;
  ASSERT_EQ(c.open(server.dataUrl(), "/ws-stop/"), "");
  EXPECT_EQ(c.read(), "hello from fetch");
  int code = -1;
  std::thread stopping([&] { code = server.stop(SIGTERM); });
  EXPECT_EQ(c.read().substr(0, 11), "closed 1001");
  stopping.join();
  EXPECT_EQ(code, 0) << "the server finished its drain";
}

TEST_F(WebSocketTest, StaticDeploymentsAnswerAHandshakeAsAPlainGet) {
  deployApp("ws-static", {{"index.html", "<p>files</p>"}});
  WsClient c;
  EXPECT_NE(c.open(server_->dataUrl(), "/ws-static/").find("status 200"), std::string::npos);
}

}  // namespace
}  // namespace nubo::testing_util
