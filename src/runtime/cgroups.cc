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
constexpr int kNormalWeightV2 = 100;
constexpr int kBackgroundWeightV2 = 1;
constexpr int kNormalSharesV1 = 1024;
constexpr int kBackgroundSharesV1 = 2;

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

// An app's weight for `cpu` CPUs' worth, in the kernel's range.
int weightFor(bool v2, double cpu) {
  double w = cpu * (v2 ? kNormalWeightV2 : kNormalSharesV1);
  return static_cast<int>(std::clamp(w + 0.5, v2 ? 1.0 : 2.0, v2 ? 10000.0 : 262144.0));
}

// Removes `dir`'s child groups, deepest first, then (if `self`) `dir`.
void removeGroupTree(const std::string& dir, bool self) {
  std::error_code ec;
  std::vector<std::string> children;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.is_directory()) children.push_back(e.path().string());
  }
  for (const auto& c : children) removeGroupTree(c, true);
  if (self) killAndRemove(dir);
}

}  // namespace

Cgroups::Cgroups() : mu_(std::make_unique<std::mutex>()) {}

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

std::string Cgroups::placeDir(const std::string& controller, const std::string& place) const {
  return scopeDir(controller) + "/" + place;
}

std::string Cgroups::dir(const std::string& controller, const std::string& id) const {
  if (!nested(controller)) return scopeDir(controller) + "/" + id;
  std::lock_guard lock(*mu_);
  auto it = entries_.find(id);
  return placeDir(controller, it == entries_.end() ? "stems" : it->second.place) + "/" + id;
}

Status Cgroups::makePlace(const std::string& place, double app_cpu) {
  bool v2 = kind_ == "v2";
  if (!v2 && !cpu_) return Status::Ok();  // v1 nests only the cpu hierarchy
  std::string ctl = v2 ? "" : "cpu";
  std::vector<std::string> levels = {place};
  if (place.rfind("apps/", 0) == 0) levels.insert(levels.begin(), "apps");
  for (const auto& level : levels) {
    std::string d = placeDir(ctl, level);
    if (::mkdir(d.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoStatus("create cgroup " + d, errno);
    if (v2) {
      writeText(d + "/cgroup.subtree_control",
                std::string(memory_ ? "+memory " : "") + (pids_ ? "+pids " : "") + (cpu_ ? "+cpu" : ""));
    }
    if (!cpu_) continue;
    int weight = level == "stems"                  ? (v2 ? kBackgroundWeightV2 : kBackgroundSharesV1)
                 : level.rfind("apps/", 0) == 0 ? weightFor(v2, app_cpu)
                                                : (v2 ? kNormalWeightV2 : kNormalSharesV1);
    if (!writeText(d + (v2 ? "/cpu.weight" : "/cpu.shares"), std::to_string(weight))) {
      return Internal("cannot set the CPU weight of cgroup " + d);
    }
  }
  return Status::Ok();
}

Result<std::vector<std::string>> Cgroups::makeLeaf(const std::string& id, const std::string& place,
                                                   const CgroupLimits& limits) {
  std::vector<std::string> procs;
  std::string quota = std::to_string(static_cast<int>(limits.cpus * 100000));
  if (kind_ == "v2") {
    std::string d = placeDir("", place) + "/" + id;
    if (::mkdir(d.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoStatus("create cgroup " + d, errno);
    if (memory_) {
      writeText(d + "/memory.max", std::to_string(limits.memory_bytes));
      writeText(d + "/memory.swap.max", "0");
      writeText(d + "/memory.oom.group", "1");
    }
    if (pids_) writeText(d + "/pids.max", std::to_string(limits.pids));
    if (cpu_) writeText(d + "/cpu.max", quota + " 100000");
    procs.push_back(d + "/cgroup.procs");
    return procs;
  }
  if (kind_ != "v1") return procs;
  if (cpu_) {
    std::string d = placeDir("cpu", place) + "/" + id;
    if (::mkdir(d.c_str(), 0755) == 0 || errno == EEXIST) {
      writeText(d + "/cpu.cfs_period_us", "100000");
      writeText(d + "/cpu.cfs_quota_us", quota);
      procs.push_back(d + "/cgroup.procs");
    }
  }
  return procs;
}

Result<std::vector<std::string>> Cgroups::create(const std::string& id, const CgroupLimits& limits) {
  std::vector<std::string> procs;
  if (!available()) return procs;
  std::string place = !limits.app.empty() ? "apps/" + limits.app : limits.build ? "builds" : "stems";
  {
    std::lock_guard lock(*mu_);
    RETURN_IF_ERROR(makePlace(place, limits.app_cpu));
    ASSIGN_OR_RETURN(procs, makeLeaf(id, place, limits));
    entries_[id] = {place, limits};
  }
  if (kind_ != "v1") return procs;
  // The flat v1 hierarchies.
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
  return procs;
}

Status Cgroups::joinApp(const std::string& id, const std::string& app, double app_cpu) {
  if (kind_ == "v1" && !cpu_) return Status::Ok();
  std::lock_guard lock(*mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return NotFound("no cgroup for instance " + id);
  std::string to = "apps/" + app;
  RETURN_IF_ERROR(makePlace(to, app_cpu));
  if (it->second.place == to) return Status::Ok();
  RETURN_IF_ERROR(makeLeaf(id, to, it->second.limits).status());
  // Its processes move (a stem has not run deployment code: nothing forks
  // meanwhile); the old group goes.
  std::string ctl = kind_ == "v2" ? "" : "cpu";
  std::string from = placeDir(ctl, it->second.place) + "/" + id, into = placeDir(ctl, to) + "/" + id;
  std::istringstream procs(readText(from + "/cgroup.procs"));
  pid_t pid;
  while (procs >> pid) {
    if (!writeText(into + "/cgroup.procs", std::to_string(pid)) && ::kill(pid, 0) == 0) {
      return Internal("cannot move instance " + id + " into the cgroup of app " + app);
    }
  }
  ::rmdir(from.c_str());
  it->second.place = to;
  return Status::Ok();
}

std::string Cgroups::cpuPlace(const std::string& id) const {
  std::lock_guard lock(*mu_);
  auto it = entries_.find(id);
  return it == entries_.end() || !cpu_ ? "" : it->second.place + "/" + id;
}

int Cgroups::appWeight(const std::string& app) const {
  if (!cpu_) return 0;
  std::string d = placeDir(kind_ == "v2" ? "" : "cpu", "apps/" + app);
  return std::atoi(readText(d + (kind_ == "v2" ? "/cpu.weight" : "/cpu.shares")).c_str());
}

Status Cgroups::setMemory(const std::string& id, uint64_t bytes) {
  if (!memory_) return Status::Ok();
  {
    std::lock_guard lock(*mu_);
    if (auto it = entries_.find(id); it != entries_.end()) it->second.limits.memory_bytes = bytes;
  }
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
  if (!available()) return;
  std::vector<std::string> ctls;
  if (kind_ == "v2") ctls = {""};
  for (const char* ctl : {"memory", "pids", "cpu"}) {
    bool has = (std::string(ctl) == "memory" && memory_) || (std::string(ctl) == "pids" && pids_) ||
               (std::string(ctl) == "cpu" && cpu_);
    if (kind_ == "v1" && has) ctls.push_back(ctl);
  }
  std::vector<std::string> dirs;
  for (const auto& ctl : ctls) dirs.push_back(dir(ctl, id));
  for (const auto& d : dirs) killAndRemove(d);
  std::lock_guard lock(*mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  // The app's group goes with its last instance (rmdir fails while it has others).
  if (it->second.place.rfind("apps/", 0) == 0) {
    for (const auto& ctl : ctls) {
      if (nested(ctl)) ::rmdir(placeDir(ctl, it->second.place).c_str());
    }
  }
  entries_.erase(it);
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
  for (const auto& p : parents) removeGroupTree(p, false);
  std::lock_guard lock(*mu_);
  entries_.clear();
}

}  // namespace nubo::runtime
