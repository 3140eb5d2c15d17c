// Cgroups: one control group per instance, for memory (swap included, so
// no escape into swap), pids (a fork bomb stops at the limit) and CPU.
// cgroup v2 when the unified hierarchy delegates memory and pids, else the
// v1 controllers. Groups are "nubo/<scope>/<instance id>"; the scope (one
// per data directory) keeps servers on one machine out of each other's way.
//
// The helper process of an instance joins its group before it starts the
// instance (runtime/sandbox.h); limits may change later (a stem learns its
// deployment's memory limit when specialized). Thread-safe (file writes).
#pragma once

#include <cstdint>
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
  // Detects what is usable; available() is false when nothing is.
  static Cgroups detect(const std::string& scope);

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
  // Gives the group the normal CPU weight (a stem became an instance).
  Status setForeground(const std::string& id);
  // Whether the kernel killed something in the group for lack of memory.
  bool oomKilled(const std::string& id);
  // Kills what is left in the group and removes it.
  void remove(const std::string& id);
  // Removes groups left by an earlier run.
  void sweep();
  // At shutdown: removes every group of this server and its scope.
  void removeAll();

 private:
  std::string dir(const std::string& controller, const std::string& id) const;
  std::string scopeDir(const std::string& controller) const;

  std::string kind_;
  bool memory_ = false, pids_ = false, cpu_ = false;
  std::string root_;  // /sys/fs/cgroup
  std::string scope_;
};

}  // namespace nubo::runtime
