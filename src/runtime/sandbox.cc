// The sandbox helper (`nubo __sandbox`): builds an instance's sandbox in
// its own process, then runs the program. The launcher side is
// sandbox_launcher.cc.
#include "runtime/sandbox.h"
#include "runtime/sandbox_mounts.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>

#include "common/fs.h"
#include "common/json.h"

namespace nubo::runtime {
namespace {

using namespace sandbox_mounts;

constexpr uid_t kNobody = 65534;
constexpr const char* kSpecEnv = kSandboxSpecEnv;

// ---- the helper (runs in its own single-threaded process) --------------------

struct HelperSpec {
  bool probe = false;
  std::set<std::string> skip;
  std::vector<std::string> cgroup_procs;
  std::string root;         // mount point for the new root
  std::string app_dir;      // host folder -> /app (read-only)
  std::string runtime_dir;  // host folder -> /nubo/runtime (read-only)
  std::vector<std::string> expose;  // host files and folders shown read-only at the same paths
  std::vector<Isolation::Mount> mounts;  // host folder -> path inside
  bool network = false;
  EgressOptions egress;     // how a networked sandbox reaches out (kHost: the host's namespace)
  std::string resolv_conf;  // /etc/resolv.conf of a networked sandbox with an egress network
  bool loopback = false;  // TCP/IP inside the private net namespace (only when it was made)
  int tmp_mb = 16;
  // Without cgroups, what rlimits can bound instead (0: not set).
  uint64_t rlimit_data = 0;
  uint64_t rlimit_nproc = 0;
  std::vector<std::string> argv;
  std::vector<std::string> env;
};

// Problems are collected in probe mode and fatal otherwise.
struct Layers {
  bool probe;
  std::set<std::string> skip;
  std::vector<std::pair<std::string, std::string>> failed;

  bool want(const std::string& layer) const { return !skip.count(layer); }
  // Returns false when the instance must not start.
  bool check(const std::string& layer, bool ok, const std::string& what) {
    return ok || failedBecause(layer, what + ": " + std::strerror(errno));
  }
  bool failedBecause(const std::string& layer, const std::string& why) {
    failed.emplace_back(layer, why);
    if (probe) return true;
    std::fprintf(stderr, "nubo sandbox: %s failed (%s)\n", layer.c_str(), why.c_str());
    return false;
  }
};

bool buildRoot(const HelperSpec& spec, Layers& layers) {
  const std::string& r = spec.root;
  if (!layers.check("mount-namespace", ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0,
                    "make mounts private")) {
    return false;
  }
  if (!layers.check("mount-namespace", ::mount("nubo", r.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=755") == 0,
                    "mount the root tmpfs")) {
    return false;
  }
  // Only what the runtime needs: its program, the libraries and loader it
  // links, CA certificates (SandboxLauncher works out the list).
  bool ok = true;
  std::set<std::string> bound;
  for (const auto& path : spec.expose) {
    if (!mirrorPath(r, path, bound)) {
      std::fprintf(stderr, "nubo sandbox: cannot show %s in the instance's root\n", path.c_str());
      ok = false;
    }
  }
  ::mkdir((r + "/etc").c_str(), 0755);
  ok = ok && writeFileSimple(r + "/etc/passwd", "root:x:0:0:root:/:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/tmp:/usr/sbin/nologin\n");
  ok = ok && writeFileSimple(r + "/etc/group", "root:x:0:\nnogroup:x:65534:\n");
  ok = ok && writeFileSimple(r + "/etc/hosts", "127.0.0.1 localhost\n::1 localhost\n");
  ok = ok && writeFileSimple(r + "/etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n");
  if (spec.network) {
    auto resolv = spec.egress.mode == EgressOptions::Mode::kHost ? readFile("/etc/resolv.conf", 1 << 16)
                                                                  : Result<std::string>(spec.resolv_conf);
    if (resolv.ok()) ok = ok && writeFileSimple(r + "/etc/resolv.conf", *resolv);
  }
  ::mkdir((r + "/dev").c_str(), 0755);
  ok = ok && ::mount("nubo-dev", (r + "/dev").c_str(), "tmpfs", MS_NOSUID, "size=64k,mode=755") == 0;
  for (const char* dev : {"null", "zero", "random", "urandom", "full"}) {
    ok = ok && bindDevice(std::string("/dev/") + dev, r + "/dev/" + dev);
  }
  // The folder itself read-only (in a user namespace the instance is its
  // owner); the device nodes bound on it keep working.
  ok = ok && ::mount(nullptr, (r + "/dev").c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, nullptr) == 0;
  ::mkdir((r + "/proc").c_str(), 0555);
  ok = ok && ::mount("proc", (r + "/proc").c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2") == 0;
  ::mkdir((r + "/tmp").c_str(), 01777);
  if (spec.tmp_mb > 0) {
    // Inodes bounded too: empty files cost no bytes but pin kernel memory.
    std::string opts = "size=" + std::to_string(spec.tmp_mb) + "m,nr_inodes=" +
                       std::to_string(std::max(1024, spec.tmp_mb * 256)) + ",mode=1777";
    ok = ok && ::mount("nubo-tmp", (r + "/tmp").c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) == 0;
  }
  ok = ok && bindReadOnly(spec.app_dir, r + "/app", true);
  ::mkdir((r + "/nubo").c_str(), 0755);
  ok = ok && bindReadOnly(spec.runtime_dir, r + "/nubo/runtime", true);
  for (const auto& m : spec.mounts) {
    std::string dst = r + normalizePath(m.inside);
    bool bound;
    if (m.writable) {
      bool made = ::mkdir(dst.c_str(), 0755) == 0 || errno == EEXIST;
      bound = made && ::mount(m.host.c_str(), dst.c_str(), nullptr, MS_BIND | MS_REC, nullptr) == 0 &&
              ::mount(nullptr, dst.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV, nullptr) == 0;
    } else {
      bound = bindReadOnly(m.host, dst, true);
    }
    if (!bound) std::fprintf(stderr, "nubo sandbox: cannot mount %s at %s\n", m.host.c_str(), m.inside.c_str());
    ok = ok && bound;
  }
  if (!layers.check("minimal-root", ok, "populate the new root")) return false;

  std::string old = r + "/.old";
  ::mkdir(old.c_str(), 0700);
  bool pivoted = ::syscall(SYS_pivot_root, r.c_str(), old.c_str()) == 0;
  if (!layers.check("pivot_root", pivoted, "pivot_root")) return false;
  if (!pivoted) return true;  // probe mode: nothing more to check here
  if (::chdir("/") != 0 || ::umount2("/.old", MNT_DETACH) != 0) return layers.check("pivot_root", false, "detach the old root");
  ::rmdir("/.old");
  // The root itself read-only: only /tmp is writable.
  layers.check("minimal-root", ::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) == 0,
               "make the root read-only");
  return true;
}

bool dropPrivileges(Layers& layers, bool in_userns) {
  bool ok = true;
  for (int cap = 0; cap <= 63; ++cap) {
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) ok = false;
  }
  ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  if (!layers.check("capabilities", ok, "drop the capability bounding set")) return false;
  // In a user namespace the only mapped id is nubo's own unprivileged one.
  if (!in_userns) {
    bool uid_ok = ::setgroups(0, nullptr) == 0 && ::setresgid(kNobody, kNobody, kNobody) == 0 &&
                  ::setresuid(kNobody, kNobody, kNobody) == 0;
    if (!layers.check("unprivileged-uid", uid_ok, "switch to uid/gid 65534")) return false;
  }
  return layers.check("no-new-privileges", ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS");
}

bool applyRlimits(const HelperSpec& spec, Layers& layers) {
  struct rlimit nofile = {4096, 4096}, core = {0, 0};
  bool ok = ::setrlimit(RLIMIT_NOFILE, &nofile) == 0 && ::setrlimit(RLIMIT_CORE, &core) == 0;
  // The fallback for a machine without cgroup controllers: a process's
  // private writable memory, and the processes of its user (in an
  // unprivileged install each instance has a user namespace of its own, so
  // this counts that instance's processes only).
  if (spec.rlimit_data > 0) {
    struct rlimit data = {spec.rlimit_data, spec.rlimit_data};
    ok = ok && ::setrlimit(RLIMIT_DATA, &data) == 0;
  }
  if (spec.rlimit_nproc > 0) {
    struct rlimit nproc = {spec.rlimit_nproc, spec.rlimit_nproc};
    ok = ok && ::setrlimit(RLIMIT_NPROC, &nproc) == 0;
  }
  return layers.check("rlimits", ok, "setrlimit");
}

bool applySeccomp(bool network, Layers& layers) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) return layers.check("seccomp", false, "seccomp_init");
  bool ok = true;
  auto deny = [&](const char* name, uint32_t action) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) return;  // not on this architecture
    ok = ok && seccomp_rule_add(ctx, action, nr, 0) == 0;
  };
  for (const char* name : {"mount", "umount2", "pivot_root", "chroot", "ptrace", "process_vm_readv",
                           "process_vm_writev", "kexec_load", "kexec_file_load", "bpf", "init_module",
                           "finit_module", "delete_module", "keyctl", "add_key", "request_key", "unshare",
                           "setns", "perf_event_open", "userfaultfd", "swapon", "swapoff", "reboot", "syslog",
                           "acct", "quotactl", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
                           "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "fanotify_init",
                           "mknod", "mknodat", "personality", "vhangup", "iopl", "ioperm"}) {
    deny(name, SCMP_ACT_ERRNO(EPERM));
  }
  // io_uring would run operations outside this filter; libuv falls back.
  for (const char* name : {"io_uring_setup", "io_uring_enter", "io_uring_register"}) deny(name, SCMP_ACT_ERRNO(ENOSYS));
  // clone3 cannot be inspected: ENOSYS makes libc fall back to clone.
  deny("clone3", SCMP_ACT_ERRNO(ENOSYS));
  for (int f : {CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP}) {
    uint64_t flag = static_cast<uint64_t>(f);
    ok = ok && seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag)) == 0;
  }
  // Socket families: an allow-list. AF_UNIX always; AF_INET/AF_INET6 (and
  // route netlink, which getaddrinfo asks for the host's addresses) only
  // with the network. The kernel reads the family as an int, so only its
  // low 32 bits are compared: 0x100000002 is AF_INET too.
  for (int family = 0; family < 64; ++family) {
    bool inet = family == AF_INET || family == AF_INET6;
    if (family == AF_UNIX || (network && (inet || family == AF_NETLINK))) continue;
    uint32_t action = inet ? SCMP_ACT_ERRNO(EACCES) : SCMP_ACT_ERRNO(EAFNOSUPPORT);
    for (int call : {SCMP_SYS(socket), SCMP_SYS(socketpair)}) {
      ok = ok && seccomp_rule_add(ctx, action, call, 1,
                                  SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, static_cast<uint64_t>(family))) == 0;
    }
  }
  if (network) {
    // Route netlink only (protocol 0): not audit, not xfrm...
    ok = ok && seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 2,
                                SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, static_cast<uint64_t>(AF_NETLINK)),
                                SCMP_A2(SCMP_CMP_NE, 0)) == 0;
  }
  // Raw IP sockets (AF_PACKET is off the list above); route netlink, which
  // getifaddrs opens as SOCK_RAW, stays usable.
  for (int family : {AF_INET, AF_INET6}) {
    ok = ok && seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 2,
                                SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, static_cast<uint64_t>(family)),
                                SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_RAW)) == 0;
  }
  ok = ok && seccomp_load(ctx) == 0;
  seccomp_release(ctx);
  return layers.check("seccomp", ok, "load the filter");
}

bool bringLoopbackUp() {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  bool ok = ::ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
  ok = ok && ::ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  ::close(fd);
  return ok;
}

// PID 1 of an instance's pid namespace, once the runtime runs as its child:
// reaps every process that ends inside (orphans are reparented to it, and a
// runtime such as node never waits for children it did not start), and
// exits as the runtime does, which ends everything left in the namespace.
[[noreturn]] void reapAsInit(pid_t runtime) {
  for (;;) {
    int status = 0;
    pid_t p = ::wait(&status);
    if (p < 0 && errno == EINTR) continue;
    if (p < 0) ::_exit(125);  // no child left: cannot happen while the runtime lives
    if (p != runtime) continue;
    // PID 1 cannot die of a signal sent from inside: say which one.
    ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  }
}

// PID 1 of the new pid namespace: build the jail, then run the runtime
// (as PID 1's child when there is a pid namespace, else in its place).
[[noreturn]] void runChild(const HelperSpec& spec, Layers& layers, bool in_userns, bool pid_namespace) {
  if (layers.want("mount-namespace") && !buildRoot(spec, layers)) ::_exit(126);
  if (layers.want("uts-namespace")) ::sethostname("nubo", 4);
  if (!applyRlimits(spec, layers)) ::_exit(126);
  if (!dropPrivileges(layers, in_userns)) ::_exit(126);
  // Dies with the helper. Set after the credential change, which clears it.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  useBatchScheduling(0);
  if (layers.want("seccomp") && !applySeccomp(spec.network || spec.loopback, layers)) ::_exit(126);
  if (spec.probe) {
    // Report on stdout; the probe is over.
    for (const auto& [layer, why] : layers.failed) std::printf("missing %s: %s\n", layer.c_str(), why.c_str());
    std::printf("done\n");
    std::fflush(stdout);
    ::_exit(0);
  }
  if (::chdir("/app") != 0) ::chdir("/");
  if (pid_namespace) {
    pid_t runtime = ::fork();
    if (runtime < 0) {
      std::fprintf(stderr, "nubo sandbox: fork: %s\n", std::strerror(errno));
      ::_exit(126);
    }
    if (runtime > 0) reapAsInit(runtime);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // cleared by fork
  }
  std::vector<char*> argv, envp;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  ::execve(argv[0], argv.data(), envp.data());
  std::fprintf(stderr, "nubo sandbox: cannot run %s: %s\n", argv[0], std::strerror(errno));
  ::_exit(127);
}

Result<HelperSpec> parseSpec(const char* text) {
  if (!text) return InvalidArgument("no sandbox spec");
  ASSIGN_OR_RETURN(Json j, parseJson(text, "sandbox spec"));
  HelperSpec s;
  s.probe = j.value("probe", false);
  for (const auto& x : j.value("skip", Json::array())) s.skip.insert(x.get<std::string>());
  for (const auto& x : j.value("cgroup_procs", Json::array())) s.cgroup_procs.push_back(x.get<std::string>());
  s.root = j.value("root", std::string());
  s.app_dir = j.value("app_dir", std::string());
  s.runtime_dir = j.value("runtime_dir", std::string());
  for (const auto& x : j.value("expose", Json::array())) s.expose.push_back(x.get<std::string>());
  for (const auto& x : j.value("mounts", Json::array())) {
    s.mounts.push_back({x.at(0).get<std::string>(), x.at(1).get<std::string>(), x.at(2).get<bool>()});
  }
  s.network = j.value("network", false);
  if (j.contains("egress")) {
    ASSIGN_OR_RETURN(s.egress, EgressOptions::fromJson(j["egress"]));
  }
  s.resolv_conf = j.value("resolv_conf", std::string());
  s.loopback = j.value("loopback", false);
  s.tmp_mb = j.value("tmp_mb", 16);
  s.rlimit_data = j.value("rlimit_data", uint64_t{0});
  s.rlimit_nproc = j.value("rlimit_nproc", uint64_t{0});
  for (const auto& x : j.value("argv", Json::array())) s.argv.push_back(x.get<std::string>());
  for (const auto& x : j.value("env", Json::array())) s.env.push_back(x.get<std::string>());
  return s;
}

}  // namespace

int sandboxMain(int argc, char** argv) {
  // If the server dies (even by SIGKILL), so does the helper, and with it
  // the instance (its own parent-death signal): nothing is left running.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  auto parsed = parseSpec(std::getenv(kSpecEnv));
  ::unsetenv(kSpecEnv);
  if (!parsed.ok()) {
    std::fprintf(stderr, "nubo sandbox: %s\n", parsed.status().message().c_str());
    return 126;
  }
  HelperSpec spec = std::move(parsed).value();
  Layers layers{spec.probe, spec.skip, {}};

  // Join the instance's cgroups first: everything started below inherits them.
  for (const auto& procs : spec.cgroup_procs) {
    if (!writeFileSimple(procs, std::to_string(::getpid()))) {
      if (!layers.check("cgroup", false, "join " + procs)) return 126;
    }
  }
  uid_t uid = ::getuid();
  gid_t gid = ::getgid();
  bool in_userns = false;
  if (uid != 0 && layers.want("user-namespace")) {
    // Not root: a user namespace grants what mounting the jail needs.
    in_userns = ::unshare(CLONE_NEWUSER) == 0 && writeFileSimple("/proc/self/setgroups", "deny") &&
                writeFileSimple("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1") &&
                writeFileSimple("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1");
    if (!layers.check("user-namespace", in_userns, "unshare a user namespace")) return 126;
  }
  // A networked sandbox gets a network namespace of its own with egress
  // only, made before the other namespaces (a veth pair needs the host's).
  // Without one it shares the host's (the server said so at start-up).
  bool egress_net = false;
  if (spec.network && spec.egress.mode != EgressOptions::Mode::kHost && layers.want("egress-network")) {
    auto entered = enterEgressNamespace(spec.egress);
    if (!entered.ok() && !layers.failedBecause("egress-network", entered.status().message())) return 126;
    egress_net = entered.ok();
  }
  int flags = 0;
  if (layers.want("mount-namespace")) flags |= CLONE_NEWNS;
  if (layers.want("pid-namespace")) flags |= CLONE_NEWPID;
  if (layers.want("ipc-namespace")) flags |= CLONE_NEWIPC;
  if (layers.want("uts-namespace")) flags |= CLONE_NEWUTS;
  if (!spec.network && layers.want("net-namespace")) flags |= CLONE_NEWNET;
  if (::unshare(flags) != 0) {
    // Find out which one is refused, so the report can name it.
    for (auto [flag, name] : {std::pair{CLONE_NEWNS, "mount-namespace"}, std::pair{CLONE_NEWPID, "pid-namespace"},
                              std::pair{CLONE_NEWIPC, "ipc-namespace"}, std::pair{CLONE_NEWUTS, "uts-namespace"},
                              std::pair{CLONE_NEWNET, "net-namespace"}}) {
      if ((flags & flag) && ::unshare(flag) != 0) {
        if (!layers.check(name, false, "unshare")) return 126;
        flags &= ~flag;
      }
    }
  }
  // The private network namespace has a loopback interface, down: up, for
  // a server the runtime proxies to. Sockets other than loopback ones stay
  // impossible (there is no other interface); without the namespace the
  // instance gets no TCP/IP at all.
  HelperSpec child_spec = spec;
  child_spec.loopback = spec.loopback && (egress_net || ((flags & CLONE_NEWNET) && bringLoopbackUp()));
  pid_t child = ::fork();
  if (child < 0) {
    std::fprintf(stderr, "nubo sandbox: fork: %s\n", std::strerror(errno));
    return 126;
  }
  if (child == 0) runChild(child_spec, layers, in_userns, (flags & CLONE_NEWPID) != 0);
  // The helper keeps nothing of the instance's: its end of the socket must
  // close when the instance dies.
  ::close(3);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) {
    ::signal(WTERMSIG(status), SIG_DFL);
    ::kill(::getpid(), WTERMSIG(status));
  }
  return 125;
}

}  // namespace nubo::runtime
