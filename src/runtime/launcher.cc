#include "runtime/launcher.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace nubo::runtime {

Result<UniqueFd> openPidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd >= 0) {
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    return UniqueFd(fd);
  }
  if (errno == ENOSYS) return Unimplemented("pidfd_open is not available on this kernel");
  return ErrnoStatus("pidfd_open", errno);
#else
  return Unimplemented("pidfd_open is not available on this system");
#endif
}

Result<Process> spawnProcess(const std::vector<std::string>& args, const std::vector<std::string>& env,
                             const std::string& cwd, const LaunchSpec& io) {
  if (args.empty()) return InvalidArgument("launch: empty argv");
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (io.stdout_fd >= 0) posix_spawn_file_actions_adddup2(&fa, io.stdout_fd, 1);
  if (io.stderr_fd >= 0) posix_spawn_file_actions_adddup2(&fa, io.stderr_fd, 2);
  if (io.channel_fd >= 0) posix_spawn_file_actions_adddup2(&fa, io.channel_fd, 3);
  posix_spawn_file_actions_addclosefrom_np(&fa, 4);
  posix_spawn_file_actions_addchdir_np(&fa, cwd.c_str());
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);

  std::vector<char*> argv, envp;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return ErrnoStatus("start " + args[0], rc);
  Process p;
  p.pid = pid;
  auto fd = openPidfd(pid);
  if (!fd.ok()) {
    ::kill(pid, SIGKILL);
    return fd.status();
  }
  p.pidfd = std::move(fd).value();
  return p;
}

const std::vector<std::string>& hostToolchain() {
  static const std::vector<std::string> paths = {"/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc/alternatives",
                                                 "/etc/ssl", "/usr/share/ca-certificates"};
  return paths;
}

void useBatchScheduling(pid_t pid) {
  sched_param none{};
  ::sched_setscheduler(pid, SCHED_BATCH, &none);  // best effort: an instance runs either way
}

Result<Process> PlainLauncher::launch(const LaunchSpec& spec) {
  ASSIGN_OR_RETURN(Process p, spawnProcess(spec.argv, spec.env, spec.cwd, spec));
  // Just exec'd (posix_spawn returns after the exec): set before the
  // runtime starts its threads, which inherit it.
  useBatchScheduling(p.pid);
  return p;
}

}  // namespace nubo::runtime
