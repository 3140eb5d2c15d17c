// A throwaway S3 store for fleet tests: Debian's Ceph with one monitor, one
// OSD keeping its data in memory (memstore) and radosgw in front, all on
// loopback ports and under a temp dir, started here (about 13 s) and stopped
// by PID. radosgw checks SigV4 signatures and payload hashes as S3 does.
#pragma once

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <fstream>
#include <string>
#include <vector>

#include "etcd_cluster.h"  // freePort()
#include "integration_util.h"

namespace nubo::testing_util {

class Radosgw {
 public:
  static constexpr const char* kAccessKey = "NUBOTESTACCESSKEY";
  static constexpr const char* kSecretKey = "nubo-test-secret-key-0123";

  explicit Radosgw(const TempDir& tmp) : dir_(tmp.sub("ceph")), mon_port_(freePort()), rgw_port_(freePort()) {
    ok_ = start();
  }
  ~Radosgw() {
    for (auto it = pids_.rbegin(); it != pids_.rend(); ++it) {
      ::kill(*it, SIGKILL);
      ::waitpid(*it, nullptr, 0);
    }
  }
  bool ok() const { return ok_; }
  const std::string& why() const { return why_; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(rgw_port_); }

  // Stops the S3 gateway alone (the cluster and its objects stay), and
  // starts it again.
  void stopGateway() {
    if (rgw_pid_ <= 0) return;
    ::kill(rgw_pid_, SIGKILL);
    ::waitpid(rgw_pid_, nullptr, 0);
    std::erase(pids_, rgw_pid_);
    rgw_pid_ = -1;
  }
  bool startGateway() {
    daemon({"/usr/bin/radosgw", "-c", dir_ + "/ceph.conf", "-n", "client.rgw.t", "-f"}, dir_ + "/log/rgw.out");
    rgw_pid_ = pids_.back();
    return waitFor([&] {
          cli::HttpClient c(endpoint(), "", 2);
          auto r = c.send("GET", "/");
          return r.ok() && r->status > 0;
        },
        std::chrono::seconds(90));
  }

 private:
  bool run(std::vector<std::string> argv) {
    ProcResult r = runProcess(argv, {}, dir_);
    if (r.exit_code != 0) why_ = argv[0] + " failed (" + std::to_string(r.exit_code) + "): " + r.err + r.out;
    return r.exit_code == 0;
  }
  void daemon(std::vector<std::string> argv, const std::string& log) {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    pids_.push_back(pid);
  }
  bool start() {
    std::string fsid = ProcResultTrim(runProcess({"/usr/bin/uuidgen"}, {}, "/tmp").out);
    std::string mon = "v2:127.0.0.1:" + std::to_string(mon_port_);
    for (std::string d : {"", "/run", "/log", "/mon", "/osd/osd.0", "/rgw"}) std::filesystem::create_directories(dir_ + d);
    const std::string conf = dir_ + "/ceph.conf", keyring = dir_ + "/keyring";
    std::ofstream(conf) << "[global]\nfsid = " << fsid << "\nmon host = " << mon
                        << "\npublic network = 127.0.0.0/8\n"
                           "osd pool default size = 1\nosd pool default min size = 1\n"
                           "osd pool default pg num = 8\nosd pool default pgp num = 8\n"
                           "mon allow pool size one = true\nmon warn on pool no redundancy = false\n"
                           "auth allow insecure global id reclaim = false\nosd crush chooseleaf type = 0\n"
                           "osd objectstore = memstore\nmemstore device bytes = 536870912\n"
                        << "run dir = " << dir_ << "/run\nadmin socket = " << dir_ << "/run/$name.asok\n"
                        << "log file = " << dir_ << "/log/$name.log\nmon data = " << dir_ << "/mon/$name\n"
                        << "osd data = " << dir_ << "/osd/$name\nkeyring = " << keyring << "\n"
                        << "[client.rgw.t]\nrgw frontends = beast endpoint=127.0.0.1:" << rgw_port_
                        << "\nrgw data = " << dir_ << "/rgw\n";
    const std::string tool = "/usr/bin/ceph-authtool";
    if (!run({tool, "--create-keyring", keyring, "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"}) ||
        !run({tool, keyring, "--gen-key", "-n", "client.admin", "--cap", "mon", "allow *", "--cap", "osd", "allow *",
              "--cap", "mgr", "allow *"}) ||
        !run({tool, keyring, "--gen-key", "-n", "osd.0", "--cap", "mon", "allow profile osd", "--cap", "osd",
              "allow *", "--cap", "mgr", "allow profile osd"}) ||
        !run({tool, keyring, "--gen-key", "-n", "client.rgw.t", "--cap", "mon", "allow rw", "--cap", "osd",
              "allow rwx"}) ||
        !run({"/usr/bin/monmaptool", "--create", "--addv", "a", "[" + mon + "]", "--fsid", fsid, dir_ + "/monmap"}) ||
        !run({"/usr/bin/ceph-mon", "-c", conf, "--mkfs", "-i", "a", "--monmap", dir_ + "/monmap", "--keyring", keyring})) {
      return false;
    }
    daemon({"/usr/bin/ceph-mon", "-c", conf, "-i", "a", "-f"}, dir_ + "/log/mon.out");
    std::string osd_uuid = ProcResultTrim(runProcess({"/usr/bin/uuidgen"}, {}, "/tmp").out);
    if (!run({"/usr/bin/ceph", "-c", conf, "osd", "new", osd_uuid, "0"}) ||
        !run({"/usr/bin/ceph-osd", "-c", conf, "-i", "0", "--mkfs", "--osd-uuid", osd_uuid})) {
      return false;
    }
    daemon({"/usr/bin/ceph-osd", "-c", conf, "-i", "0", "-f"}, dir_ + "/log/osd.out");
    if (!waitFor([&] { return runProcess({"/usr/bin/ceph", "-c", conf, "osd", "stat"}, {}, dir_).out.find("1 up") != std::string::npos; },
                 std::chrono::seconds(60))) {
      why_ = "the OSD did not come up";
      return false;
    }
    if (!startGateway()) {
      why_ = "radosgw did not answer";
      return false;
    }
    return run({"/usr/bin/radosgw-admin", "-c", conf, "user", "create", "--uid=nubo", "--display-name=nubo",
                std::string("--access-key=") + kAccessKey, std::string("--secret-key=") + kSecretKey});
  }
  static std::string ProcResultTrim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }

  std::string dir_;
  int mon_port_, rgw_port_;
  std::vector<pid_t> pids_;
  pid_t rgw_pid_ = -1;
  bool ok_ = false;
  std::string why_;
};

}  // namespace nubo::testing_util
