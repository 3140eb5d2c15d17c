// Cgroups: one control group per instance, for memory (swap included, so
// no escape into swap), pids (a fork bomb stops at the limit) and CPU.
// cgroup v2 when the unified hierarchy delegates memory and pids, else the
// v1 controllers. Everything lives under "nubo/<scope>" (one scope per data
// directory keeps servers on one machine out of each other's way), where
// an instance's group sits in a group of its kind:
//
//   stems/<id>        stems warming up: the lowest CPU weight as a whole
//   builds/<id>       builds: one normal weight for all of them
//   apps/<app>/<id>   an app's instances: the app's weight (limits.cpu) is
//                     shared by all of them, so an app with many busy
//                     instances gets its share, not the machine
//
// (With v1 only the cpu hierarchy is nested so; memory and pids groups are
// "nubo/<scope>/<id>".) The helper process of an instance joins its groups
// before it starts the instance (runtime/sandbox.h); a stem joins its app
// when specialized (its processes move), and learns its memory limit then.
// Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"

namespace nubo::runtime {

struct CgroupLimits {
  uint64_t memory_bytes = 512ull << 20;
  int pids = 256;
  double cpus = 1.0;  // CPU time per wall second, for this one instance
  // Which group: a stem warming up (lowest CPU weight until it joins an
  // app), a build, or an instance of `app` with the app's weight `app_cpu`.
  bool background = false;
  bool build = false;
  std::string app;
  double app_cpu = 1.0;
};

class Cgroups {
 public:
  Cgroups();
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
  // A stem became an instance of `app`: its processes move to the app's
  // group, whose weight becomes `app_cpu` CPUs' worth (the latest
  // deployment's limits.cpu). For an instance there already, only the
  // weight is set.
  Status joinApp(const std::string& id, const std::string& app, double app_cpu);
  // Where the instance's CPU group is, relative to the scope
  // ("apps/shop/i12-3"), and the CPU weight of its app's group (v2
  // cpu.weight, v1 cpu.shares; 0 if none): what `nubo ps` and tests see.
  std::string cpuPlace(const std::string& id) const;
  int appWeight(const std::string& app) const;
  // Whether the kernel killed something in the group for lack of memory.
  bool oomKilled(const std::string& id);
  // Kills what is left in the group and removes it (and its app's group
  // when that is empty).
  void remove(const std::string& id);
  // Removes groups left by an earlier run.
  void sweep();
  // At shutdown: removes every group of this server and its scope.
  void removeAll();

 private:
  struct Entry {
    std::string place;  // "stems", "builds" or "apps/<app>"
    CgroupLimits limits;
  };
  std::string dir(const std::string& controller, const std::string& id) const;
  std::string placeDir(const std::string& controller, const std::string& place) const;
  std::string scopeDir(const std::string& controller) const;
  bool nested(const std::string& controller) const { return kind_ == "v2" || controller == "cpu"; }
  // Makes "stems", "builds" or "apps/<app>" (and "apps") with the weight
  // its kind gets. Called with *mu_ held.
  Status makePlace(const std::string& place, double app_cpu);
  // The instance's groups with their limits at `place`.
  Result<std::vector<std::string>> makeLeaf(const std::string& id, const std::string& place,
                                            const CgroupLimits& limits);

  std::string kind_;
  bool memory_ = false, pids_ = false, cpu_ = false;
  std::string root_;  // /sys/fs/cgroup
  std::string scope_;
  std::unique_ptr<std::mutex> mu_;
  std::map<std::string, Entry> entries_;  // instance id -> its place; guarded by *mu_
};

}  // namespace nubo::runtime
