// A real etcd cluster for fleet tests: Debian's etcd-server, N members on
// free loopback ports with their own data dirs, started here and stopped by
// PID. start() waits (with a deadline) until every member says it is healthy.
#pragma once

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "integration_util.h"

namespace nubo::testing_util {

// A loopback port nothing listens on now.
inline int freePort() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

class EtcdCluster {
 public:
  EtcdCluster(const TempDir& tmp, int members) : tmp_(tmp) {
    for (int i = 0; i < members; ++i) members_.push_back({"m" + std::to_string(i), freePort(), freePort(), -1});
    for (auto& m : members_) {
      if (!initial_.empty()) initial_ += ",";
      initial_ += m.name + "=http://127.0.0.1:" + std::to_string(m.peer_port);
    }
    for (size_t i = 0; i < members_.size(); ++i) start(i);
    for (size_t i = 0; i < members_.size(); ++i) {
      EXPECT_TRUE(waitFor([&] { return healthy(i); }, std::chrono::seconds(20))) << "etcd member " << i;
    }
  }
  ~EtcdCluster() {
    for (size_t i = 0; i < members_.size(); ++i) stop(i);
  }

  std::vector<std::string> endpoints() const {
    std::vector<std::string> out;
    for (const auto& m : members_) out.push_back(endpoint(m));
    return out;
  }
  std::string endpoint(size_t i) const { return endpoint(members_[i]); }
  int clientPort(size_t i) const { return members_[i].client_port; }

  void start(size_t i) {
    Member& m = members_[i];
    std::string log = tmp_.sub("etcd-" + m.name + ".log");
    m.pid = ::fork();
    if (m.pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::string client = "http://127.0.0.1:" + std::to_string(m.client_port);
      std::string peer = "http://127.0.0.1:" + std::to_string(m.peer_port);
      std::vector<std::string> argv = {"/usr/bin/etcd", "--name", m.name, "--data-dir", tmp_.sub("etcd-" + m.name),
                                       "--listen-client-urls", client, "--advertise-client-urls", client,
                                       "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                                       "--initial-cluster", initial_, "--initial-cluster-token", "nubo-test",
                                       "--initial-cluster-state", "new"};
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  void stop(size_t i, int sig = SIGTERM) {
    Member& m = members_[i];
    if (m.pid <= 0) return;
    ::kill(m.pid, sig);
    ::waitpid(m.pid, nullptr, 0);
    m.pid = -1;
  }
  // The member that leads now (-1: none answers or none leads).
  int leader() const {
    for (size_t i = 0; i < members_.size(); ++i) {
      if (members_[i].pid <= 0) continue;
      cli::HttpClient c(endpoint(i), "", 2);
      auto r = c.send("POST", "/v3/maintenance/status", "{}");
      if (!r.ok() || r->status != 200) continue;
      auto j = parseJson(r->body, "status");
      if (!j.ok()) continue;
      std::string me = (*j)["header"].value("member_id", ""), lead = j->value("leader", "");
      if (!lead.empty() && me == lead) return static_cast<int>(i);
    }
    return -1;
  }
  bool healthy(size_t i) const {
    cli::HttpClient c(endpoint(i), "", 2);
    auto r = c.send("GET", "/health");
    return r.ok() && r->status == 200 && r->body.find("true") != std::string::npos;
  }

 private:
  struct Member {
    std::string name;
    int client_port, peer_port;
    pid_t pid;
  };
  static std::string endpoint(const Member& m) { return "http://127.0.0.1:" + std::to_string(m.client_port); }
  const TempDir& tmp_;
  std::vector<Member> members_;
  std::string initial_;
};

}  // namespace nubo::testing_util
