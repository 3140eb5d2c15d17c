// The instance sandbox: every function instance runs in its own
//   - cgroup (memory with swap, pids, CPU; runtime/cgroups.h),
//   - mount, pid, ipc, uts and net namespaces, plus a user namespace when
//     nubo does not run as root; the net namespace has only loopback, or
//     with permissions.network (and for builds) egress only
//     (runtime/egress.h),
//   - minimal read-only root: a tmpfs holding only the runtime's program,
//     the libraries and loader it links (found with ldd, bound read-only at
//     their host paths), CA certificates, a few /etc files,
//     /dev/{null,zero,random,urandom,full}, /proc of its own pid namespace,
//     the instance's code folder read-only at /app, a size-limited tmpfs /tmp,
//   - as an unprivileged user with every capability dropped, no new
//     privileges, rlimits, and a seccomp filter (libseccomp) denying what
//     functions never need (mount, ptrace, kexec, bpf, modules, keyctl,
//     unshare/setns, namespaces in clone, raw and packet sockets, io_uring,
//     and AF_INET/AF_INET6 sockets unless the network is permitted).
//
// SandboxLauncher starts `nubo __sandbox`, a helper that joins the cgroup,
// unshares the namespaces and forks the instance as PID 1 of its pid
// namespace; the instance gets SIGKILL when the helper dies. probe() runs
// the helper once at start-up to learn which layers this kernel allows; the
// missing ones are skipped (and named in one warning), or refused in strict
// mode.
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "runtime/cgroups.h"
#include "runtime/egress.h"
#include "runtime/launcher.h"

namespace nubo::runtime {

// Entry point of `nubo __sandbox` (called from main before anything else).
int sandboxMain(int argc, char** argv);

// The environment variable the launcher hands the helper its spec in (JSON).
inline constexpr const char* kSandboxSpecEnv = "NUBO_SANDBOX_SPEC";

struct SandboxProbe {
  std::set<std::string> missing;     // layer -> why, for layers that failed
  std::map<std::string, std::string> why;
  bool usable = false;               // mount namespace and pivot_root work
  std::string summary() const;       // "mount-namespace, seccomp (...)"
};

class SandboxLauncher final : public Launcher {
 public:
  // `root_mount` is an empty directory used as the mount point of every
  // sandbox's new root; `runtime_dir` holds the runtime's script. Networked
  // sandboxes get `egress` (host rules already installed for kVeth) with
  // `resolv_conf` as their /etc/resolv.conf.
  SandboxLauncher(std::string root_mount, std::string runtime_dir, Cgroups& cgroups, EgressOptions egress = {},
                  std::string resolv_conf = "");

  // Runs the helper in probe mode; remembers which layers to skip. An
  // egress network that cannot be made ("egress-network" missing) leaves
  // networked sandboxes in the host's namespace.
  SandboxProbe probe();
  // The egress network networked sandboxes get (after probe()).
  const EgressOptions& egress() const { return egress_; }

  Result<Process> launch(const LaunchSpec& spec) override;
  std::string appDirInside(const std::string&) const override { return "/app"; }
  std::string runtimeDirInside(const std::string&) const override { return "/nubo/runtime"; }
  std::string mountInside(const std::string&, const std::string& inside) const override { return inside; }

 private:
  std::string helper_;  // this binary
  std::string root_mount_;
  std::string runtime_dir_;
  Cgroups& cgroups_;
  EgressOptions egress_;
  std::string resolv_conf_;
  std::set<std::string> skip_;
  std::mutex files_mu_;
  std::map<std::string, std::vector<std::string>> files_;  // program -> what it needs; guarded by files_mu_
};

}  // namespace nubo::runtime
