// Fuzzes the HTTP server (Beast's parser and everything nubo does around
// it: head checks, body plans, bodies read whole or streamed) the way a
// client reaches it: each input is sent raw to a real HttpServer on
// loopback, and the answer read to the end. A crash, a sanitizer report or
// a hang is a finding.
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "http/server.h"

namespace {

using namespace nubo;

// Reads whatever body comes, whole or streamed, and answers its size.
class Drain final : public http::Handler {
 public:
  http::BodyPlan planBody(const http::Request& head) override {
    http::BodyPlan plan;
    if (head.path == "/refuse") plan.answer = http::Response::text(401, "no\n");
    if (head.path == "/small") plan.limit = 64;
    plan.stream = head.path == "/stream";
    return plan;
  }
  boost::asio::awaitable<http::Response> handle(const http::Request& req) override {
    size_t n = req.body.size();
    if (req.body_stream) {
      for (;;) {
        Result<std::string_view> piece = co_await req.body_stream->read();
        if (!piece.ok()) co_return http::bodyReadError(piece.status());
        if (piece->empty()) break;
        n += piece->size();
      }
    }
    co_return http::Response::text(200, std::to_string(n) + " " + std::string(req.header("x-a")) + "\n");
  }
};

// The server lives for the whole process and is never destroyed: its
// thread runs until exit.
int serverPort() {
  static int port = [] {
    auto* ioc = new boost::asio::io_context(1);
    auto* handler = new Drain;
    http::ServerLimits limits;
    limits.body_bytes = 1 << 20;
    limits.stream_bodies = false;
    limits.buffered_body_bytes = 1024;
    limits.header_timeout = std::chrono::milliseconds(500);
    limits.body_timeout = std::chrono::milliseconds(500);
    limits.idle_timeout = std::chrono::milliseconds(500);
    auto* server = new http::HttpServer(*ioc, "fuzz", limits, *handler, 1);
    auto addr = server->listen("127.0.0.1:0");
    if (!addr.ok()) __builtin_trap();
    std::thread([ioc] { ioc->run(); }).detach();
    return std::stoi(addr->substr(addr->rfind(':') + 1));
  }();
  return port;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(serverPort()));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    // libFuzzer's timer signal may interrupt it; the connect goes on.
    int err = errno;
    if (err == EINTR) {
      pollfd p{fd, POLLOUT, 0};
      while (::poll(&p, 1, 5000) < 0 && errno == EINTR) {
      }
      socklen_t len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    }
    if (err != 0 && err != EINTR) {
      std::fprintf(stderr, "connect: %s\n", std::strerror(err));
      __builtin_trap();
    }
  }
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  size_t sent = 0;
  while (sent < size) {
    ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) break;
    if (n < 0) {
      // The server must answer or close within its timeouts.
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        std::fprintf(stderr, "the server neither answered nor closed within 5 s\n");
        __builtin_trap();
      }
      break;
    }
  }
  ::close(fd);
  return 0;
}
