// Launcher: starts an instance process. The seam between the runtime and
// the operating system: PlainLauncher (posix_spawn, no isolation; for
// development and where the kernel offers nothing better) and the sandboxing
// launcher both implement it.
//
// The child gets: `channel_fd` as fd 3 (the instance socket), stdout/stderr
// on the given fds, stdin on /dev/null, exactly `env` as its environment, a
// new session, and no other inherited descriptor.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/fs.h"
#include "common/status.h"

namespace nubo::runtime {

// What a sandboxing launcher needs to isolate an instance (the plain
// launcher ignores it).
struct Isolation {
  std::string instance_id;  // names the cgroup
  std::string app_dir;      // host folder shown read-only at the app path
  bool network = false;
  int tmp_mb = 16;
  uint64_t memory_bytes = 512ull << 20;
  int pids = 256;
  bool background = false;  // a stem warming up: CPU only when serving instances leave some
  // Builds: more of the host shown read-only at the same paths (a
  // toolchain), and host folders mounted at paths inside (the builder, its
  // output and cache folders).
  struct Mount {
    std::string host;
    std::string inside;
    bool writable = false;
  };
  std::vector<std::string> expose;
  std::vector<Mount> mounts;
  // TCP/IP sockets allowed inside the private network namespace, which has
  // only a loopback interface (no network: for a server the runtime proxies to).
  bool loopback = false;
};

// What of the host a program that is not the node runtime needs to see
// (builds, exec instances): /usr, /bin, /lib and CA certificates, read-only.
const std::vector<std::string>& hostToolchain();

struct LaunchSpec {
  std::vector<std::string> argv;  // argv[0]: absolute path of the program
  std::vector<std::string> env;   // "KEY=value", the whole environment
  std::string cwd = "/";
  int channel_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  Isolation isolation;
};

struct Process {
  pid_t pid = -1;
  UniqueFd pidfd;  // readable when the process exits
};

class Launcher {
 public:
  virtual ~Launcher() = default;
  virtual Result<Process> launch(const LaunchSpec& spec) = 0;
  // Where the instance sees the app folder and the runtime's folder.
  virtual std::string appDirInside(const std::string& host_dir) const { return host_dir; }
  virtual std::string runtimeDirInside(const std::string& host_dir) const { return host_dir; }
  // Where the process sees a folder of Isolation::mounts (`inside` when it
  // is isolated, the host folder itself when not).
  virtual std::string mountInside(const std::string& host_dir, const std::string& inside) const { return host_dir; }
};

class PlainLauncher final : public Launcher {
 public:
  Result<Process> launch(const LaunchSpec& spec) override;
};

// posix_spawn of `argv` with exactly `env`, in `cwd`, with io's channel,
// stdout and stderr descriptors (as above), a new session and default
// signal handling; returns the process with its pidfd.
Result<Process> spawnProcess(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                             const std::string& cwd, const LaunchSpec& io);

// Makes `pid` (0: the caller) a SCHED_BATCH process, as every instance is:
// a woken instance does not preempt the gateway thread that woke it, so the
// gateway finishes its turn (more requests for that instance, responses for
// clients) and the instance then takes the whole batch in one wake-up. The
// CPU share is unchanged (nice values and cgroup weights apply as before).
// bench/invoke.sh: about 12% more requests per second; instance CPU per
// request 7.6 -> 5.4 us.
void useBatchScheduling(pid_t pid);

// pidfd_open(2); kUnimplemented on kernels without it.
Result<UniqueFd> openPidfd(pid_t pid);

}  // namespace nubo::runtime
