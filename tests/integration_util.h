// Integration-test harness: the real `nubo` binary as child processes.
//   NuboServer  starts `nubo serve` on 127.0.0.1:0 in a temp data dir and
//               waits (with a deadline) until it has written serve.json
//   runNubo()   runs a CLI command against it and captures output
// Everything is stopped by PID at the end; only processes we started.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/http_client.h"
#include "common/fs.h"
#include "common/json.h"
#include "test_util.h"

namespace nubo::testing_util {

// Polls `cond` every few ms until it holds or `timeout` passes.
inline bool waitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return cond();
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct ProcResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `argv` with extra environment, waits, captures stdout and stderr.
inline ProcResult runProcess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                             const std::string& tmp_dir) {
  static int seq = 0;
  std::string out_path = tmp_dir + "/out." + std::to_string(seq), err_path = tmp_dir + "/err." + std::to_string(seq);
  ++seq;
  pid_t pid = ::fork();
  if (pid == 0) {
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(out, 1);
    ::dup2(err, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ProcResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

// The uid an unprivileged server runs as (when the tests run as root).
constexpr uid_t kUnprivilegedUid = 65534;

class NuboServer {
 public:
  // `unprivileged`: run the server as uid/gid 65534, as a non-root install
  // does (the temp folder is handed to that user). Only when the tests run
  // as root; otherwise the server runs as the tests' own user anyway.
  explicit NuboServer(const TempDir& tmp, std::vector<std::string> extra_args = {}, const std::string& name = "data",
                      bool unprivileged = false)
      : tmp_(tmp), data_(tmp.sub(name)), extra_(std::move(extra_args)), unprivileged_(unprivileged) {
    if (unprivileged_ && ::geteuid() == 0) {
      EXPECT_EQ(::chown(tmp_.path().c_str(), kUnprivilegedUid, kUnprivilegedUid), 0);
      ::mkdir(data_.c_str(), 0700);
      EXPECT_EQ(::chown(data_.c_str(), kUnprivilegedUid, kUnprivilegedUid), 0);
    }
    start();
  }
  ~NuboServer() { stop(SIGKILL); }

  // Starts (or restarts) the server and waits until it serves.
  void start() {
    ::unlink((data_ + "/serve.json").c_str());
    log_ = data_ + ".server." + std::to_string(starts_++) + ".log";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setenv("XDG_CONFIG_HOME", tmp_.sub("config").c_str(), 1);
      int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      if (unprivileged_ && ::geteuid() == 0) {
        ::setenv("HOME", tmp_.path().c_str(), 1);
        if (::setgroups(0, nullptr) != 0 || ::setresgid(kUnprivilegedUid, kUnprivilegedUid, kUnprivilegedUid) != 0 ||
            ::setresuid(kUnprivilegedUid, kUnprivilegedUid, kUnprivilegedUid) != 0) {
          ::_exit(126);
        }
      }
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a test that crashes leaves no server behind (after setresuid, which clears it)
      std::vector<std::string> argv = {NUBO_BINARY, "serve", "--data", data_, "--listen", "127.0.0.1:0",
                                       "--control", "127.0.0.1:0"};
      argv.insert(argv.end(), extra_.begin(), extra_.end());
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    bool up = waitFor([&] {
      auto j = parseJson(slurp(data_ + "/serve.json"), "serve.json");
      if (!j.ok() || !j->contains("pid") || (*j)["pid"].get<int>() != pid_) return false;
      data_url_ = (*j)["data_url"].get<std::string>();
      control_url_ = (*j)["control_url"].get<std::string>();
      return true;
    });
    ASSERT_TRUE(up) << "nubo serve did not start; log:\n" << slurp(log_);
    std::string token = slurp(data_ + "/admin.token");
    while (!token.empty() && token.back() == '\n') token.pop_back();
    if (!token.empty()) token_ = token;
  }

  // Sends `sig` and waits for exit; returns the exit code (128+signal if killed).
  int stop(int sig = SIGTERM) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  ProcResult nubo(std::vector<std::string> args, std::map<std::string, std::string> env = {}) const {
    args.insert(args.begin(), NUBO_BINARY);
    env.emplace("NUBO_SERVER", control_url_);
    env.emplace("NUBO_TOKEN", token_);
    env.emplace("XDG_CONFIG_HOME", tmp_.sub("config"));
    return runProcess(args, env, tmp_.path());
  }

  // `nubo deploy --json ...`, asserting success; returns the JSON.
  Json deploy(const std::string& dir, std::vector<std::string> extra = {}) const {
    std::vector<std::string> args = {"deploy", dir, "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    ProcResult r = nubo(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto j = parseJson(r.out, "deploy output");
    EXPECT_TRUE(j.ok()) << r.out << r.err;
    return j.ok() ? *j : Json::object();
  }

  cli::HttpResponse get(const std::string& path, std::vector<std::string> headers = {},
                        std::string_view method = "GET") const {
    cli::HttpClient c(data_url_, "");
    auto r = c.send(method, path, {}, headers);
    EXPECT_TRUE(r.ok()) << r.status().toString();
    return r.ok() ? *r : cli::HttpResponse{};
  }

  cli::HttpResponse control(std::string_view method, const std::string& path, std::string_view body = {},
                            const std::string& token = "") const {
    cli::HttpClient c(control_url_, token.empty() ? token_ : token);
    auto r = c.send(method, path, body);
    EXPECT_TRUE(r.ok()) << r.status().toString();
    return r.ok() ? *r : cli::HttpResponse{};
  }

  pid_t pid() const { return pid_; }
  // The token the helpers use (a fleet's later nodes make none of their own).
  void useToken(std::string token) { token_ = std::move(token); }
  const std::string& dataDir() const { return data_; }
  const std::string& dataUrl() const { return data_url_; }
  const std::string& controlUrl() const { return control_url_; }
  const std::string& token() const { return token_; }
  std::string log() const { return slurp(log_); }

 private:
  const TempDir& tmp_;
  std::string data_;
  std::vector<std::string> extra_;
  bool unprivileged_ = false;
  std::string log_;
  int starts_ = 0;
  pid_t pid_ = -1;
  std::string data_url_, control_url_, token_;
};

// A package's lock file, as `npm install` writes it (made here offline:
// the fixtures' dependencies are local folders).
inline std::string lockFileFor(const TempDir& tmp, const std::map<std::string, std::string>& files) {
  static int n = 0;
  std::string dir = tmp.sub("lockgen-" + std::to_string(n++));
  for (const auto& [path, content] : files) writeFile(dir + "/" + path, content);
  ProcResult lock = runProcess(
      {"/bin/sh", "-c", "cd '" + dir + "' && npm install --package-lock-only --offline --no-audit --no-fund"}, {},
      tmp.path());
  EXPECT_EQ(lock.exit_code, 0) << lock.out << lock.err;
  return slurp(dir + "/package-lock.json");
}

// A test suite sharing one server; deployApp() writes files and deploys them.
class SharedServerTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new TempDir();
    server_ = new NuboServer(*tmp_);
  }
  static void TearDownTestSuite() {
    delete server_;
    delete tmp_;
    server_ = nullptr;
    tmp_ = nullptr;
  }

  // Deploys `files` (path -> content) as app `name`; returns the deploy JSON.
  Json deployApp(const std::string& name, const std::map<std::string, std::string>& files) {
    std::string dir = tmp_->sub("apps/" + name);
    for (const auto& [path, content] : files) writeFile(dir + "/" + path, content);
    return server_->deploy(dir, {"--app", name});
  }

  static inline TempDir* tmp_ = nullptr;
  static inline NuboServer* server_ = nullptr;
};

}  // namespace nubo::testing_util
