#include "runtime/cgroups.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

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


constexpr const char* kBase = "/sys/fs/cgroup";

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
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return;
    std::istringstream procs(readText(dir + "/cgroup.procs"));
    pid_t pid;
    while (procs >> pid) ::kill(pid, SIGKILL);
    ::usleep(2000);
  }
}

}  // namespace

Cgroups Cgroups::detect(const std::string& scope) {
  Cgroups c;
  c.scope_ = scope;
  std::string controllers = readText(std::string(kBase) + "/cgroup.controllers");
  if (!controllers.empty() && controllers.find("memory") != std::string::npos &&
      controllers.find("pids") != std::string::npos) {
    std::string nubo = std::string(kBase) + "/nubo";
    ::mkdir(nubo.c_str(), 0755);
    // Delegate the controllers to nubo's subtree.
    writeText(std::string(kBase) + "/cgroup.subtree_control", "+memory +pids +cpu");
    std::string scoped = nubo + "/" + scope;
    ::mkdir(scoped.c_str(), 0755);
    bool delegated = writeText(nubo + "/cgroup.subtree_control", "+memory +pids +cpu") ||
                     writeText(nubo + "/cgroup.subtree_control", "+memory +pids");
    if (delegated && (writeText(scoped + "/cgroup.subtree_control", "+memory +pids +cpu") ||
                      writeText(scoped + "/cgroup.subtree_control", "+memory +pids"))) {
      std::string sub = readText(scoped + "/cgroup.subtree_control");
      c.kind_ = "v2";
      c.root_ = kBase;
      c.memory_ = sub.find("memory") != std::string::npos;
      c.pids_ = sub.find("pids") != std::string::npos;
      c.cpu_ = sub.find("cpu") != std::string::npos;
      if (c.memory_ || c.pids_) return c;
    }
    c = Cgroups();
    c.scope_ = scope;
  }
  for (const char* ctl : {"memory", "pids", "cpu"}) {
    std::string d = std::string(kBase) + "/" + ctl;
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
    c.root_ = kBase;
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

Status Cgroups::setForeground(const std::string& id) {
  if (!cpu_) return Status::Ok();
  bool ok = kind_ == "v2" ? writeText(dir("", id) + "/cpu.weight", kNormalWeightV2)
                          : writeText(dir("cpu", id) + "/cpu.shares", kNormalSharesV1);
  if (!ok) return Internal("cannot set the CPU weight of instance " + id);
  return Status::Ok();
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

void Cgroups::remove(const std::string& id) {
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
