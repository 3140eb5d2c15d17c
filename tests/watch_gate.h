// WatchGate: a loopback TCP proxy in front of one etcd member that holds
// back watch streams (connections whose request is "POST /v3/watch") while
// it is closed, and passes everything else through. Tests use it to see a
// node before its watch follows etcd. Stops its threads on destruction.
#pragma once

#include <poll.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "etcd_cluster.h"

namespace nubo::testing_util {

class WatchGate {
 public:
  explicit WatchGate(int target_port) : target_port_(target_port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(listen_fd_, 64);
    acceptor_ = std::thread([this] { acceptLoop(); });
  }
  ~WatchGate() {
    stop_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    acceptor_.join();
    std::lock_guard lock(mu_);
    for (auto& t : pumps_) t.join();
    ::close(listen_fd_);
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void open() { open_ = true; }

 private:
  void acceptLoop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      std::lock_guard lock(mu_);
      pumps_.emplace_back([this, c] { pump(c); });
    }
  }
  // Reads the request's first bytes, waits while a watch is held back, then
  // copies both ways until either side closes (or the gate stops).
  void pump(int client) {
    std::string head(4096, '\0');
    pollfd first{client, POLLIN, 0};
    while (!stop_ && ::poll(&first, 1, 50) == 0) {
    }
    ssize_t n = stop_ ? -1 : ::read(client, head.data(), head.size());
    if (n <= 0) return (void)::close(client);
    head.resize(static_cast<size_t>(n));
    bool watch = head.rfind("POST /v3/watch", 0) == 0;
    while (watch && !open_ && !stop_) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(target_port_));
    if (stop_ || ::connect(server, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::write(server, head.data(), head.size()) != static_cast<ssize_t>(head.size())) {
      ::close(server);
      return (void)::close(client);
    }
    char buf[16384];
    pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
    while (!stop_) {
      if (::poll(fds, 2, 50) <= 0) continue;
      bool closed = false;
      for (int i = 0; i < 2 && !closed; ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
        closed = got <= 0 || ::write(fds[1 - i].fd, buf, static_cast<size_t>(got)) != got;
      }
      if (closed) break;
    }
    ::close(server);
    ::close(client);
  }

  const int target_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> open_{false}, stop_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> pumps_;  // guarded by mu_
};

}  // namespace nubo::testing_util
