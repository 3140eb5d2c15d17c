// OutsideHost: a stand-in for the internet in network tests. A network
// namespace of its own (made by this test, on this machine) joined to the
// host by a veth pair, with a TCP server on port 80 that greets every
// connection with "outside <peer address>\n" and holds it open until the
// peer closes. The host routes its two networks to it:
//   address()  198.18.A.B+2, the namespace's end of the pair (/30);
//   extra()    198.19.A.B, an address on its loopback, routed via address().
// A and B come from the test's pid, so tests running at once do not meet.
// Needs root (CAP_NET_ADMIN); everything goes with the child process.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace nubo::testing_util {

class OutsideHost {
 public:
  OutsideHost() {
    int a = (::getpid() >> 6) & 255, b = (::getpid() & 63) * 4;
    std::string net = "198.18." + std::to_string(a) + ".";
    host_side_ = net + std::to_string(b + 1);
    address_ = net + std::to_string(b + 2);
    extra_ = "198.19." + std::to_string(a) + "." + std::to_string(b);
    link_ = "otest" + std::to_string(::getpid());
    int to_child[2], to_parent[2];
    if (::pipe(to_child) != 0 || ::pipe(to_parent) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::unshare(CLONE_NEWNET) != 0) ::_exit(1);
      char c = 'n';
      if (::write(to_parent[1], &c, 1) != 1 || ::read(to_child[0], &c, 1) != 1) ::_exit(1);
      std::string setup = "ip link set lo up && ip addr add " + extra_ + "/32 dev lo && ip addr add " + address_ +
                          "/30 dev eth0 && ip link set eth0 up && ip route add default via " + host_side_;
      if (std::system(setup.c_str()) != 0) ::_exit(1);
      serve(to_parent[1]);
    }
    char c;
    if (::read(to_parent[0], &c, 1) != 1) return;
    std::string plug = "ip link add " + link_ + " type veth peer name eth0 netns " + std::to_string(pid_) +
                       " && ip addr add " + host_side_ + "/30 dev " + link_ + " && ip link set " + link_ +
                       " up && ip route add " + extra_ + "/32 via " + address_;
    if (std::system(plug.c_str()) != 0) return;
    if (::write(to_child[1], "g", 1) != 1 || ::read(to_parent[0], &c, 1) != 1) return;
    ready_ = c == 'l';
  }
  ~OutsideHost() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    std::system(("ip link del " + link_ + " 2>/dev/null").c_str());
  }
  OutsideHost(const OutsideHost&) = delete;
  OutsideHost& operator=(const OutsideHost&) = delete;

  bool ready() const { return ready_; }
  const std::string& address() const { return address_; }
  const std::string& extra() const { return extra_; }
  const std::string& hostSide() const { return host_side_; }

 private:
  [[noreturn]] static void serve(int ready_fd) {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(80);
    if (::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(s, 512) != 0) ::_exit(1);
    if (::write(ready_fd, "l", 1) != 1) ::_exit(1);
    // One poll over the listener and every held connection: a connection
    // its peer closed is closed here at once.
    std::vector<pollfd> fds = {{s, POLLIN, 0}};
    for (;;) {
      if (::poll(fds.data(), fds.size(), -1) < 0) continue;
      for (size_t i = fds.size(); i-- > 1;) {
        char buf[64];
        if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) && ::recv(fds[i].fd, buf, sizeof buf, MSG_DONTWAIT) <= 0) {
          ::close(fds[i].fd);
          fds.erase(fds.begin() + static_cast<long>(i));
        }
      }
      if (!(fds[0].revents & POLLIN)) continue;
      sockaddr_in peer{};
      socklen_t len = sizeof peer;
      int c = ::accept(s, reinterpret_cast<sockaddr*>(&peer), &len);
      if (c < 0) continue;
      char ip[INET_ADDRSTRLEN];
      ::inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
      std::string hello = "outside " + std::string(ip) + "\n";
      (void)!::write(c, hello.data(), hello.size());
      fds.push_back({c, POLLIN, 0});
    }
  }

  pid_t pid_ = -1;
  bool ready_ = false;
  std::string address_, extra_, host_side_, link_;
};

// The host's own IPv4 addresses other than loopback.
inline std::vector<std::string> hostAddresses() {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    char ip[INET_ADDRSTRLEN];
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, ip, sizeof ip);
    if (std::string(ip).rfind("127.", 0) != 0) out.push_back(ip);
  }
  ::freeifaddrs(list);
  return out;
}

// A TCP listener on the host (every address, a free port) that accepts and
// closes: what a sandbox must not be able to reach.
class HostListener {
 public:
  HostListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    socklen_t len = sizeof addr;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd_, 64) != 0) return;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~HostListener() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Whether a TCP connection from the host to ip:port is accepted within
// 1 s (IPv6 when ip has a colon).
inline bool hostConnects(const std::string& ip, int port) {
  bool v6 = ip.find(':') != std::string::npos;
  int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_storage ss{};
  socklen_t len;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    ::inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr);
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    ::inet_pton(AF_INET, ip.c_str(), &a->sin_addr);
    len = sizeof *a;
  }
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0;
  if (!ok && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    int err = 0;
    socklen_t elen = sizeof err;
    ok = ::poll(&p, 1, 1000) == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err == 0;
  }
  ::close(fd);
  return ok;
}

}  // namespace nubo::testing_util
