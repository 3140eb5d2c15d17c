// HttpServer on loopback with a test handler: streamed request bodies and
// what the server refuses to send.
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <future>
#include <string>
#include <thread>

#include "common/sha256.h"
#include "http/server.h"
#include "test_util.h"

namespace nubo::http {
namespace {

// Echoes what it learned about the request; /bad-headers answers with
// headers a server must not send as they are.
class TestHandler : public Handler {
 public:
  boost::asio::awaitable<Response> handle(const Request& req) override {
    if (req.path == "/bad-headers") {
      Response r = Response::text(200, "ok\n");
      r.header("x-fine", "yes");
      r.header("x-split", "a\r\nInjected: yes");
      r.header("bad name", "v");
      co_return r;
    }
    if (req.path == "/ignore-body") co_return Response::text(200, "ignored\n");
    if (req.path == "/switch" || req.path == "/switch-anyway") {
      // Upper-cases what the client sends until it sends "bye", then ends.
      if (!req.upgrade && req.path == "/switch") co_return Response::text(426, "upgrade required\n");
      struct Upper final : Takeover {
        boost::asio::awaitable<void> run(Upgraded& conn) override {
          (void)co_await conn.write("ready\n");
          for (;;) {
            Result<std::string_view> got = co_await conn.read();
            if (!got.ok() || got->empty()) co_return;
            std::string up(*got);
            for (char& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            if (!(co_await conn.write(up)).ok() || up.find("BYE") != std::string::npos) co_return;
          }
        }
      };
      Response r;
      r.status = 101;
      r.kind = Response::BodyKind::kUpgrade;
      r.header("upgrade", "shout");
      r.header("x-evil", "a\r\nInjected: yes");
      r.takeover = std::make_shared<Upper>();
      co_return r;
    }
    Sha256 hash;
    uint64_t bytes = req.body.size();
    hash.update(req.body);
    bool streamed = req.body_stream != nullptr;
    if (streamed) {
      for (;;) {
        Result<std::string_view> piece = co_await req.body_stream->read();
        if (!piece.ok()) co_return bodyReadError(piece.status());
        if (piece->empty()) break;
        bytes += piece->size();
        hash.update(*piece);
      }
    }
    co_return Response::text(200, std::string(streamed ? "streamed " : "whole ") + std::to_string(bytes) + " " +
                                      hash.finishHex() + "\n");
  }
};

class HttpServerTest : public testing::Test {
 protected:
  void SetUp() override {
    ServerLimits limits;
    limits.body_bytes = 8 << 20;
    limits.stream_bodies = true;
    limits.buffered_body_bytes = 1024;
    server_ = std::make_unique<HttpServer>(ioc_, "test", limits, handler_);
    auto addr = server_->listen("127.0.0.1:0");
    ASSERT_TRUE(addr.ok()) << addr.status().toString();
    port_ = std::stoi(addr->substr(addr->rfind(':') + 1));
    thread_ = std::thread([this] { ioc_.run(); });
  }
  void TearDown() override {
    std::promise<void> idle;
    boost::asio::post(ioc_, [&] { server_->drain([&] { idle.set_value(); }); });
    idle.get_future().wait_for(std::chrono::seconds(5));
    server_->closeAll();
    ioc_.stop();
    thread_.join();
  }

  // Sends `request` on a fresh connection and reads until the server closes
  // or `until` has arrived.
  std::string exchange(const std::string& request, const std::string& until) {
    int fd = testing_util::connectLoopback(port_);
    EXPECT_GE(fd, 0);
    std::string_view left = request;
    while (!left.empty()) {
      ssize_t n = ::send(fd, left.data(), left.size(), MSG_NOSIGNAL);
      if (n <= 0) break;
      left.remove_prefix(static_cast<size_t>(n));
    }
    std::string got;
    char buf[65536];
    while (got.find(until) == std::string::npos) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return got;
  }

  boost::asio::io_context ioc_;
  TestHandler handler_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  int port_ = 0;
};

// A GET asking to switch protocols is taken over after its 101 (bytes sent
// right behind the head included); a switch answered to a request that did
// not ask for one is refused as a server error, and the connection stays HTTP.
TEST_F(HttpServerTest, ProtocolSwitchesHandTheConnectionOver) {
  int fd = testing_util::connectLoopback(port_);
  ASSERT_GE(fd, 0);
  std::string req = "GET /switch HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: shout\r\n\r\nearly ";
  ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  std::string got;
  char buf[4096];
  while (got.find("EARLY") == std::string::npos) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    ASSERT_GT(n, 0) << got;
    got.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(got.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0), 0u) << got;
  EXPECT_NE(got.find("Upgrade: shout\r\nConnection: Upgrade\r\n\r\nready\n"), std::string::npos) << got;
  EXPECT_EQ(got.find("Injected"), std::string::npos) << got;
  std::string more = "then bye";
  ASSERT_EQ(::send(fd, more.data(), more.size(), MSG_NOSIGNAL), static_cast<ssize_t>(more.size()));
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) got.append(buf, static_cast<size_t>(n));
  EXPECT_NE(got.find("THEN BYE"), std::string::npos) << got;  // and then the server closed
  ::close(fd);

  // Not asked for: a 500, and the next request on the connection is served.
  std::string both = exchange("GET /switch-anyway HTTP/1.1\r\nHost: x\r\n\r\nGET /switch HTTP/1.1\r\nHost: x\r\n\r\n",
                              "upgrade required");
  EXPECT_EQ(both.rfind("HTTP/1.1 500", 0), 0u) << both;
  EXPECT_NE(both.find("HTTP/1.1 426"), std::string::npos) << both;
  // A POST with a body cannot switch.
  std::string post = exchange("POST /switch HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: shout\r\n"
                              "Content-Length: 2\r\n\r\nhi", "upgrade required");
  EXPECT_NE(post.find("HTTP/1.1 426"), std::string::npos) << post;
}

TEST_F(HttpServerTest, SmallBodiesArriveWholeLargeOnesStream) {
  std::string small(1000, 's');
  std::string got = exchange("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + small, "\n");
  EXPECT_NE(got.find("whole 1000 " + sha256Hex(small)), std::string::npos) << got;

  std::string large(3 << 20, 'L');
  for (size_t i = 0; i < large.size(); i += 7919) large[i] = static_cast<char>('a' + i % 26);
  got = exchange("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(large.size()) + "\r\n\r\n" +
                     large,
                 "\n");
  EXPECT_NE(got.find("streamed " + std::to_string(large.size()) + " " + sha256Hex(large)), std::string::npos)
      << got.substr(0, 300);
}

TEST_F(HttpServerTest, ChunkedBodiesStreamAndTheConnectionCarriesOn) {
  std::string chunked = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
  // Two requests on one connection: the second parses after the first body.
  std::string got = exchange(chunked + "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n", "whole 0");
  EXPECT_NE(got.find("streamed 11 " + sha256Hex("hello world")), std::string::npos) << got;
  EXPECT_NE(got.find("whole 0 "), std::string::npos) << got;
}

TEST_F(HttpServerTest, StreamedBodiesOverTheLimitAre413) {
  std::string got = exchange("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 9000000\r\n\r\n", "\r\n\r\n");
  EXPECT_NE(got.find("HTTP/1.1 413"), std::string::npos) << got;
  std::string chunk(1 << 20, 'c');
  std::string req = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 9; ++i) req += "100000\r\n" + chunk + "\r\n";
  got = exchange(req, "max-body-mb");
  EXPECT_NE(got.find("HTTP/1.1 413"), std::string::npos) << got.substr(0, 300);
}

TEST_F(HttpServerTest, ABodyTheHandlerLeavesUnreadEndsTheConnection) {
  std::string body(100000, 'u');
  std::string got = exchange("POST /ignore-body HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" + body +
                                 "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n",
                             "never");
  EXPECT_NE(got.find("ignored"), std::string::npos) << got;
  EXPECT_EQ(got.find("whole 0"), std::string::npos) << "unread body bytes must not be taken for a request";
}

TEST_F(HttpServerTest, HeadersThatWouldSplitTheResponseAreNotSent) {
  std::string got = exchange("GET /bad-headers HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", "never");
  EXPECT_NE(got.find("x-fine: yes\r\n"), std::string::npos) << got;
  EXPECT_EQ(got.find("Injected"), std::string::npos) << got;
  EXPECT_EQ(got.find("bad name"), std::string::npos) << got;
  EXPECT_NE(got.find("\r\n\r\nok\n"), std::string::npos) << got;
}

// The request head is read by the server's own loop over Beast's parser: a
// head that arrives in pieces, two heads in one write, and heads that are
// too large, malformed or cut off.
TEST_F(HttpServerTest, HeadsInPiecesOrPipelinedAreReadAndBadOnesRefused) {
  int fd = testing_util::connectLoopback(port_);
  ASSERT_GE(fd, 0);
  std::string head = "GET /echo HTTP/1.1\r\nHost: t\r\nX-Long: " + std::string(3000, 'x') + "\r\n\r\n";
  for (size_t i = 0; i < head.size(); i += 700) {
    std::string piece = head.substr(i, 700);
    ASSERT_EQ(::send(fd, piece.data(), piece.size(), MSG_NOSIGNAL), static_cast<ssize_t>(piece.size()));
    // Let each piece arrive on its own (the server must wait for the rest).
    if (i + 700 < head.size()) {
      pollfd p{fd, POLLIN, 0};
      EXPECT_EQ(::poll(&p, 1, 20), 0) << "answered before the head was complete";
    }
  }
  std::string pipelined = "GET /echo HTTP/1.1\r\nHost: t\r\n\r\nGET /ignore-body HTTP/1.1\r\nHost: t\r\n\r\n";
  ASSERT_EQ(::send(fd, pipelined.data(), pipelined.size(), MSG_NOSIGNAL), static_cast<ssize_t>(pipelined.size()));
  std::string got;
  char buf[65536];
  while (got.find("ignored") == std::string::npos) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  size_t first = got.find("whole 0 ");
  ASSERT_NE(first, std::string::npos) << got;
  EXPECT_NE(got.find("whole 0 ", first + 1), std::string::npos) << got;
  EXPECT_NE(got.find("ignored"), std::string::npos) << got;

  got = exchange("GET /echo HTTP/1.1\r\nHost: t\r\nX-Huge: " + std::string(20000, 'h') + "\r\n\r\n", "\r\n\r\n");
  EXPECT_NE(got.find("HTTP/1.1 431"), std::string::npos) << got.substr(0, 200);
  got = exchange("GET /echo HTTP/1.1\r\nHost t\r\n\r\n", "\r\n\r\n");
  EXPECT_NE(got.find("HTTP/1.1 400"), std::string::npos) << got;
  // Cut off mid-head (the client ends its side): a 400 naming it, and the server goes on.
  fd = testing_util::connectLoopback(port_);
  ASSERT_GE(fd, 0);
  std::string cut = "GET /echo HTTP/1.1\r\nHo";
  ASSERT_EQ(::send(fd, cut.data(), cut.size(), MSG_NOSIGNAL), static_cast<ssize_t>(cut.size()));
  ::shutdown(fd, SHUT_WR);
  got.clear();
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) got.append(buf, static_cast<size_t>(n));
  ::close(fd);
  EXPECT_NE(got.find("HTTP/1.1 400"), std::string::npos) << got;
  EXPECT_NE(got.find("partial message"), std::string::npos) << got;
  got = exchange("GET /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", "never");
  EXPECT_NE(got.find("whole 0 "), std::string::npos) << got;
}

// Heads whose framing a proxy and a function could read differently (the
// start of request smuggling) are refused, and the connection closed.
TEST_F(HttpServerTest, AmbiguousHeadsAreRefused) {
  const char* bad[] = {
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
      "GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      "GET /echo HTTP/1.1\r\n\r\n",
  };
  for (const char* request : bad) {
    std::string got = exchange(std::string(request) + "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n", "\r\n\r\n");
    EXPECT_EQ(got.rfind("HTTP/1.1 400", 0), 0u) << request << "\n" << got;
    EXPECT_NE(got.find("Connection: close"), std::string::npos) << got;
    EXPECT_EQ(got.find("whole"), std::string::npos) << "the request behind it was served: " << got;
  }
  std::string got = exchange("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:  Chunked \r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                             "\n");
  EXPECT_NE(got.find("streamed 3"), std::string::npos) << got;
  got = exchange("GET /echo HTTP/1.0\r\n\r\n", "\n");
  EXPECT_NE(got.find("whole 0"), std::string::npos) << "HTTP/1.0 needs no Host: " << got;
}

// One client cannot fill the connection table: its own connections are
// capped, and when the table is full the longest-idle make room.
class ConnectionLimitsTest : public testing::Test {
 protected:
  void start(size_t max, size_t per_client) {
    ServerLimits limits;
    limits.max_connections = max;
    limits.max_connections_per_client = per_client;
    server_ = std::make_unique<HttpServer>(ioc_, "test", limits, handler_);
    auto addr = server_->listen("127.0.0.1:0");
    ASSERT_TRUE(addr.ok());
    port_ = std::stoi(addr->substr(addr->rfind(':') + 1));
    thread_ = std::thread([this] { ioc_.run(); });
  }
  void TearDown() override {
    for (int fd : fds_) ::close(fd);
    server_->closeAll();
    ioc_.stop();
    thread_.join();
  }
  // Whether the server closed `fd` (within `ms`).
  static bool closedByServer(int fd, int ms) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, ms) <= 0) return false;
    char b;
    return ::recv(fd, &b, 1, MSG_DONTWAIT) == 0;
  }
  std::string ask(int fd) {
    std::string req = "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) return "";
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  }
  boost::asio::io_context ioc_;
  TestHandler handler_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  int port_ = 0;
  std::vector<int> fds_;
};

TEST_F(ConnectionLimitsTest, OneAddressGetsItsShareAndNoMore) {
  start(100, 10);
  for (int i = 0; i < 10; ++i) {
    fds_.push_back(testing_util::connectLoopback(port_));
    ASSERT_NE(ask(fds_.back()).find("200 OK"), std::string::npos);
  }
  int extra = testing_util::connectLoopback(port_);
  fds_.push_back(extra);
  EXPECT_TRUE(closedByServer(extra, 2000)) << "an 11th connection from one address was kept";
  ::close(fds_.front());  // one goes: there is room again
  fds_.erase(fds_.begin());
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (server_->connectionCount() != 9 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(server_->connectionCount(), 9u);
  fds_.push_back(testing_util::connectLoopback(port_));
  EXPECT_NE(ask(fds_.back()).find("200 OK"), std::string::npos);
}

TEST_F(ConnectionLimitsTest, AFullTableClosesTheLongestIdleToMakeRoom) {
  start(20, 0);
  for (int i = 0; i < 20; ++i) {
    fds_.push_back(testing_util::connectLoopback(port_));
    ASSERT_NE(ask(fds_.back()).find("200 OK"), std::string::npos);
  }
  int newcomer = testing_util::connectLoopback(port_);
  fds_.push_back(newcomer);
  EXPECT_NE(ask(newcomer).find("200 OK"), std::string::npos) << "the newcomer was not served";
  EXPECT_TRUE(closedByServer(fds_.front(), 2000)) << "the longest-idle connection is still open";
}

}  // namespace
}  // namespace nubo::http
