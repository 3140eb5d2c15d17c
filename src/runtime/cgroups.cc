#include "runtime/cgroups.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/fs.h"

namespace nubo::runtime {
namespace {

// CPU weights: the kernel's defaults, and its minimum for stems warming up.
constexpr const char* kNormalWeightV2 = "100";
constexpr const char* kBackgroundWeightV2 = "1";
constexpr const char* kNormalSharesV1 = "1024";
constexpr const char* kBackgroundSharesV1 = "2";



bool writeText(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  if (!f) return false;
  f << text;
  f.flush();
  return static_cast<bool>(f);
}

std::string readText(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

void killAndRemove(const std::string& dir) {
  // A killed process may take a while to exit on a loaded machine: up to 1 s.
  for (int attempt = 0; attempt < 500; ++attempt) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return;
    std::istringstream procs(readText(dir + "/cgroup.procs"));
    pid_t pid;
    while (procs >> pid) ::kill(pid, SIGKILL);
    ::usleep(2000);
  }
}


// An app's weight for `cpu` CPUs' worth, split in `parts`, in the kernel's range.
int weightFor(bool v2, double cpu, size_t parts) {
  double w = cpu * (v2 ? 100 : 1024) / static_cast<double>(std::max<size_t>(parts, 1));
  return static_cast<int>(std::clamp(w + 0.5, v2 ? 1.0 : 2.0, v2 ? 10000.0 : 262144.0));
}

// The server's own group in the unified hierarchy ("0::/path" in `self`).
std::string ownGroup(const std::string& self) {
  std::istringstream lines(readText(self));
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  }
  return "";
}

}  // namespace

Cgroups::Cgroups() : mu_(std::make_unique<std::mutex>()) {}

bool Cgroups::tryUnified(const std::string& root) {
  std::string controllers = readText(root + "/cgroup.controllers");
  if (controllers.find("memory") == std::string::npos || controllers.find("pids") == std::string::npos) return false;
  std::string nubo = root + "/nubo";
  if (::mkdir(nubo.c_str(), 0755) != 0 && errno != EEXIST) return false;
  // Hand the controllers down to nubo's subtree.
  writeText(root + "/cgroup.subtree_control", "+memory +pids +cpu");
  std::string scoped = nubo + "/" + scope_;
  ::mkdir(scoped.c_str(), 0755);
  bool delegated = writeText(nubo + "/cgroup.subtree_control", "+memory +pids +cpu") ||
                   writeText(nubo + "/cgroup.subtree_control", "+memory +pids");
  if (!delegated || !(writeText(scoped + "/cgroup.subtree_control", "+memory +pids +cpu") ||
                      writeText(scoped + "/cgroup.subtree_control", "+memory +pids"))) {
    return false;
  }
  std::string sub = readText(scoped + "/cgroup.subtree_control");
  memory_ = sub.find("memory") != std::string::npos;
  pids_ = sub.find("pids") != std::string::npos;
  cpu_ = sub.find("cpu") != std::string::npos;
  if (!memory_ && !pids_) return false;
  kind_ = "v2";
  root_ = root;
  return true;
}

Cgroups Cgroups::detect(const std::string& scope, const std::string& fs_root, const std::string& self) {
  Cgroups c;
  c.scope_ = scope;
  if (c.tryUnified(fs_root)) return c;
  // A subtree delegated to the server (systemd's Delegate=yes, or a group
  // handed to its user): its own group. No process may stay in a group
  // whose controllers go to its children, so the server moves to a leaf of
  // its own first.
  std::string own = ownGroup(self);
  if (!own.empty() && own != "/") {
    std::string dir = fs_root + own;
    std::string leaf = dir + "/server";
    if (::access((dir + "/cgroup.subtree_control").c_str(), W_OK) == 0 &&
        (::mkdir(leaf.c_str(), 0755) == 0 || errno == EEXIST) &&
        writeText(leaf + "/cgroup.procs", std::to_string(::getpid())) && c.tryUnified(dir)) {
      c.delegated_ = true;
      return c;
    }
  }
  c = Cgroups();
  c.scope_ = scope;
  for (const char* ctl : {"memory", "pids", "cpu"}) {
    std::string d = fs_root + "/" + ctl;
    if (!exists(d + "/cgroup.procs")) continue;
    std::string nubo = d + "/nubo";
    if (::mkdir(nubo.c_str(), 0755) != 0 && errno != EEXIST) continue;
    std::string scoped = nubo + "/" + scope;
    if (::mkdir(scoped.c_str(), 0755) != 0 && errno != EEXIST) continue;
    if (std::string(ctl) == "memory") c.memory_ = true;
    if (std::string(ctl) == "pids") c.pids_ = true;
    if (std::string(ctl) == "cpu") c.cpu_ = true;
  }
  if (c.memory_ || c.pids_ || c.cpu_) {
    c.kind_ = "v1";
    c.root_ = fs_root;
  }
  return c;
}

std::string Cgroups::scopeDir(const std::string& controller) const {
  if (kind_ == "v2") return root_ + "/nubo/" + scope_;
  return root_ + "/" + controller + "/nubo/" + scope_;
}

std::string Cgroups::dir(const std::string& controller, const std::string& id) const {
  return scopeDir(controller) + "/" + id;
}

Result<std::vector<std::string>> Cgroups::create(const std::string& id, const CgroupLimits& limits) {
  std::vector<std::string> procs;
  if (kind_ == "v2") {
    std::string d = dir("", id);
    if (::mkdir(d.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoStatus("create cgroup " + d, errno);
    if (memory_) {
      writeText(d + "/memory.max", std::to_string(limits.memory_bytes));
      writeText(d + "/memory.swap.max", "0");
      writeText(d + "/memory.oom.group", "1");
    }
    if (pids_) writeText(d + "/pids.max", std::to_string(limits.pids));
    if (cpu_) {
      writeText(d + "/cpu.max", std::to_string(static_cast<int>(limits.cpus * 100000)) + " 100000");
      writeText(d + "/cpu.weight", limits.background ? kBackgroundWeightV2 : kNormalWeightV2);
    }
    procs.push_back(d + "/cgroup.procs");
    return procs;
  }
  if (kind_ != "v1") return procs;
  if (memory_) {
    std::string d = dir("memory", id);
    if (::mkdir(d.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoStatus("create cgroup " + d, errno);
    writeText(d + "/memory.limit_in_bytes", std::to_string(limits.memory_bytes));
    writeText(d + "/memory.memsw.limit_in_bytes", std::to_string(limits.memory_bytes));
    procs.push_back(d + "/cgroup.procs");
  }
  if (pids_) {
    std::string d = dir("pids", id);
    if (::mkdir(d.c_str(), 0755) == 0 || errno == EEXIST) {
      writeText(d + "/pids.max", std::to_string(limits.pids));
      procs.push_back(d + "/cgroup.procs");
    }
  }
  if (cpu_) {
    std::string d = dir("cpu", id);
    if (::mkdir(d.c_str(), 0755) == 0 || errno == EEXIST) {
      writeText(d + "/cpu.cfs_period_us", "100000");
      writeText(d + "/cpu.cfs_quota_us", std::to_string(static_cast<int>(limits.cpus * 100000)));
      writeText(d + "/cpu.shares", limits.background ? kBackgroundSharesV1 : kNormalSharesV1);
      procs.push_back(d + "/cgroup.procs");
    }
  }
  return procs;
}

Status Cgroups::setMemory(const std::string& id, uint64_t bytes) {
  if (!memory_) return Status::Ok();
  std::string b = std::to_string(bytes);
  if (kind_ == "v2") {
    if (!writeText(dir("", id) + "/memory.max", b)) return Internal("cannot set memory.max of instance " + id);
    return Status::Ok();
  }
  std::string d = dir("memory", id);
  // memsw may never be below the plain limit: order the writes accordingly.
  uint64_t current = 0;
  std::istringstream(readText(d + "/memory.limit_in_bytes")) >> current;
  bool ok = bytes < current ? writeText(d + "/memory.limit_in_bytes", b) && writeText(d + "/memory.memsw.limit_in_bytes", b)
                            : writeText(d + "/memory.memsw.limit_in_bytes", b) && writeText(d + "/memory.limit_in_bytes", b);
  if (!ok) return Internal("cannot set the memory limit of instance " + id + " (is memory in use above it?)");
  return Status::Ok();
}

bool Cgroups::oomKilled(const std::string& id) {
  if (!memory_) return false;
  std::string text = kind_ == "v2" ? readText(dir("", id) + "/memory.events") : readText(dir("memory", id) + "/memory.oom_control");
  auto pos = text.find("oom_kill ");
  if (pos == std::string::npos) return false;
  return std::atoi(text.c_str() + pos + 9) > 0;
}

void Cgroups::reweighLocked(const std::string& app) {
  auto it = apps_.find(app);
  if (it == apps_.end()) return;
  bool v2 = kind_ == "v2";
  std::string weight = std::to_string(weightFor(v2, it->second.cpu, it->second.instances.size()));
  for (const auto& id : it->second.instances) {
    writeText(v2 ? dir("", id) + "/cpu.weight" : dir("cpu", id) + "/cpu.shares", weight);
  }
}

Status Cgroups::joinApp(const std::string& id, const std::string& app, double app_cpu) {
  if (!cpu_) return Status::Ok();
  std::lock_guard lock(*mu_);
  auto [old, fresh] = app_of_.try_emplace(id, app);
  if (!fresh && old->second != app) return FailedPrecondition("instance " + id + " serves another app");
  App& a = apps_[app];
  a.cpu = app_cpu;
  a.instances.insert(id);
  reweighLocked(app);
  return Status::Ok();
}

int Cgroups::cpuWeight(const std::string& id) const {
  if (!cpu_) return 0;
  std::string text = kind_ == "v2" ? readText(dir("", id) + "/cpu.weight") : readText(dir("cpu", id) + "/cpu.shares");
  return std::atoi(text.c_str());
}

void Cgroups::remove(const std::string& id) {
  {
    // Its part of its app's weight goes to the app's other instances.
    std::lock_guard lock(*mu_);
    if (auto it = app_of_.find(id); it != app_of_.end()) {
      std::string app = it->second;
      app_of_.erase(it);
      apps_[app].instances.erase(id);
      if (apps_[app].instances.empty()) apps_.erase(app);
      else reweighLocked(app);
    }
  }
  if (kind_ == "v2") {
    killAndRemove(dir("", id));
    return;
  }
  for (const char* ctl : {"memory", "pids", "cpu"}) {
    if ((std::string(ctl) == "memory" && memory_) || (std::string(ctl) == "pids" && pids_) ||
        (std::string(ctl) == "cpu" && cpu_)) {
      killAndRemove(dir(ctl, id));
    }
  }
}

void Cgroups::removeAll() {
  sweep();
  if (kind_ == "v2") killAndRemove(scopeDir(""));
  if (kind_ == "v1") {
    for (const char* ctl : {"memory", "pids", "cpu"}) killAndRemove(scopeDir(ctl));
  }
}

void Cgroups::sweep() {
  std::vector<std::string> parents;
  if (kind_ == "v2") parents.push_back(scopeDir(""));
  if (kind_ == "v1") {
    for (const char* ctl : {"memory", "pids", "cpu"}) parents.push_back(scopeDir(ctl));
  }
  for (const auto& p : parents) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(p, ec)) {
      if (e.is_directory()) killAndRemove(e.path().string());
    }
  }
}

}  // namespace nubo::runtime
