// Cgroups: one control group per instance, for memory (swap included, so
// no escape into swap), pids (a fork bomb stops at the limit) and CPU.
// CPU weights are per app: an app's instances share its weight
// (limits.cpu), each getting an equal part, so an app with four busy
// instances gets one app's share, not four. (Flat groups with divided
// weights rather than a group per app: three instances of one app in one
// group served about 10% fewer requests per second than in three.)
// cgroup v2 when the unified hierarchy delegates memory and pids, else the
// v1 controllers. Groups are "nubo/<scope>/<instance id>"; the scope (one
// per data directory) keeps servers on one machine out of each other's way.
//
// The helper process of an instance joins its group before it starts the
// instance (runtime/sandbox.h); limits may change later (a stem learns its
// deployment's memory limit when specialized). Thread-safe (file writes).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"

namespace nubo::runtime {

struct CgroupLimits {
  uint64_t memory_bytes = 512ull << 20;
  int pids = 256;
  double cpus = 1.0;  // CPU time per wall second
  // Lowest CPU weight: a stem warming up yields to instances serving requests.
  bool background = false;
};

class Cgroups {
 public:
  Cgroups();
  // Detects what is usable; available() is false when nothing is. In
  // order: the unified hierarchy's root (as root), a subtree delegated to
  // the server (its own group, from /proc/self/cgroup: systemd's
  // Delegate=yes; the server moves into a leaf "server" of it), then the
  // v1 controllers. `fs_root` and `self` are seams for tests.
  static Cgroups detect(const std::string& scope, const std::string& fs_root = "/sys/fs/cgroup",
                        const std::string& self = "/proc/self/cgroup");
  // Whether the groups live in a subtree delegated to the server.
  bool delegated() const { return delegated_; }

  bool available() const { return !kind_.empty(); }
  // "v2", "v1" or "" (none), and what each controller offers, for the start-up report.
  const std::string& kind() const { return kind_; }
  bool hasMemory() const { return memory_; }
  bool hasPids() const { return pids_; }
  bool hasCpu() const { return cpu_; }

  // Creates the group with its limits; returns the cgroup.procs files the
  // instance's helper must write its pid to.
  Result<std::vector<std::string>> create(const std::string& id, const CgroupLimits& limits);
  Status setMemory(const std::string& id, uint64_t bytes);
  // The instance serves `app`, whose weight is `app_cpu` CPUs' worth (the
  // latest deployment's limits.cpu): the app's instances get equal parts
  // of it. A few file writes; remove() gives the others the instance's part.
  Status joinApp(const std::string& id, const std::string& app, double app_cpu);
  // The instance's CPU weight (v2 cpu.weight, v1 cpu.shares; 0 if none).
  int cpuWeight(const std::string& id) const;
  // Whether the kernel killed something in the group for lack of memory.
  bool oomKilled(const std::string& id);
  // Kills what is left in the group and removes it.
  void remove(const std::string& id);
  // Removes groups left by an earlier run.
  void sweep();
  // At shutdown: removes every group of this server and its scope.
  void removeAll();

 private:
  // Sets up "<root>/nubo/<scope>" in the unified hierarchy with memory and
  // pids (and cpu) handed down; false if it cannot.
  bool tryUnified(const std::string& root);
  std::string dir(const std::string& controller, const std::string& id) const;
  std::string scopeDir(const std::string& controller) const;
  // Writes each of the app's instances its part of the app's weight.
  // Called with *mu_ held.
  void reweighLocked(const std::string& app);

  struct App {
    double cpu = 1.0;
    std::set<std::string> instances;
  };

  std::string kind_;
  bool memory_ = false, pids_ = false, cpu_ = false;
  bool delegated_ = false;
  std::string root_;  // /sys/fs/cgroup
  std::string scope_;
  std::unique_ptr<std::mutex> mu_;
  std::map<std::string, App> apps_;             // guarded by *mu_
  std::map<std::string, std::string> app_of_;   // instance id -> app; guarded by *mu_
};

}  // namespace nubo::runtime
