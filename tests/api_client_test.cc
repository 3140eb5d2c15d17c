// ApiClient: every path segment and query value it sends is escaped, so a
// name or cursor can never add a segment or a parameter of its own.
#include "cli/api_client.h"
#include "common/percent_encode.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

namespace nubo::cli {
namespace {

TEST(ApiClientTest, EscapesEverythingButTheUnreservedCharacters) {
  EXPECT_EQ(percentEncode("web-app_1.v2~x"), "web-app_1.v2~x");
  EXPECT_EQ(percentEncode("a b/c?d&e=f%#"), "a%20b%2Fc%3Fd%26e%3Df%25%23");
  EXPECT_EQ(percentEncode("../x"), "..%2Fx");
  EXPECT_EQ(percentEncode(std::string("\xff\x00", 2)), "%FF%00");
  EXPECT_EQ(percentEncode("a b/c", /*keep_slash=*/true), "a%20b/c") << "a path keeps its slashes";
}

// A one-request HTTP server on loopback that records the request line.
class RecordingServer {
 public:
  RecordingServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(fd_, 4);
    thread_ = std::thread([this] {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string got;
      char buf[4096];
      while (got.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
      }
      line_ = got.substr(0, got.find("\r\n"));
      std::string answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
      (void)::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
      ::close(c);
    });
  }
  ~RecordingServer() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    if (thread_.joinable()) thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string requestLine() {
    if (thread_.joinable()) thread_.join();
    return line_;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::string line_;
};

TEST(ApiClientTest, NamesAndQueryValuesCannotReshapeTheRequest) {
  {
    RecordingServer server;
    HttpClient http(server.url(), "t");
    ApiClient api(http);
    ApiClient::LogQuery q;
    q.deployment = "d1&limit=999999";
    q.limit = 5;
    ASSERT_TRUE(api.logs("shop/../admin", q).ok());
    EXPECT_EQ(server.requestLine(), "GET /v1/apps/shop%2F..%2Fadmin/logs?limit=5&deployment=d1%26limit%3D999999 HTTP/1.1");
  }
  {
    RecordingServer server;
    HttpClient http(server.url(), "t");
    ASSERT_TRUE(ApiClient(http).setAlias("shop", "staging?x=1", Json::object()).ok());
    EXPECT_EQ(server.requestLine(), "PUT /v1/apps/shop/aliases/staging%3Fx%3D1 HTTP/1.1");
  }
  HttpClient unused("http://127.0.0.1:1", "t");
  EXPECT_EQ(ApiClient(unused).eventsPath("d 1", "12#3"), "/v1/deployments/d%201/events?after=12%233");
}

}  // namespace
}  // namespace nubo::cli
