// SandboxLauncher: starts instances through the sandbox helper
// (sandbox.cc), and probes which layers this host allows.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "common/json.h"
#include "runtime/sandbox.h"

namespace nubo::runtime {

std::string SandboxProbe::summary() const {
  std::string out;
  for (const auto& layer : missing) {
    if (!out.empty()) out += "; ";
    out += layer;
    auto it = why.find(layer);
    if (it != why.end()) out += " (" + it->second + ")";
  }
  return out;
}

SandboxLauncher::SandboxLauncher(std::string root_mount, std::string runtime_dir, Cgroups& cgroups,
                                 EgressOptions egress, std::string resolv_conf)
    : root_mount_(std::move(root_mount)),
      runtime_dir_(std::move(runtime_dir)),
      cgroups_(cgroups),
      egress_(std::move(egress)),
      resolv_conf_(std::move(resolv_conf)) {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  helper_ = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "/proc/self/exe";
}

namespace {

// What an instance of `program` needs from the host: the program, every
// shared library and the loader `ldd` names (as named and as resolved), and
// CA certificates. Without ldd: all of /usr and the top-level links into it.
std::vector<std::string> filesFor(const std::string& program) {
  std::vector<std::string> out;
  auto add = [&out](const std::string& p) {
    if (p.empty() || p[0] != '/' || ::access(p.c_str(), F_OK) != 0) return;
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  };
  add(program);
  bool linked = false;
  if (program.find('\'') == std::string::npos) {
    if (FILE* f = ::popen(("ldd '" + program + "' 2>/dev/null").c_str(), "r")) {
      char line[1024];
      while (std::fgets(line, sizeof line, f)) {
        std::string l(line);
        auto arrow = l.find("=> ");
        std::string path = arrow != std::string::npos ? l.substr(arrow + 3) : l.substr(l.find_first_not_of(" \t"));
        path = path.substr(0, path.find_first_of(" \t\n"));
        if (!path.empty() && path[0] == '/') {
          add(path);
          linked = true;
        }
      }
      if (::pclose(f) != 0) linked = false;
    }
  }
  if (!linked) {
    for (const char* dir : {"/usr", "/bin", "/lib", "/lib64"}) add(dir);
  }
  for (const char* certs : {"/etc/ssl/certs", "/usr/share/ca-certificates"}) add(certs);
  return out;
}

Result<Process> spawnHelper(const std::string& helper, const Json& spec, const LaunchSpec& io) {
  return spawnProcess({helper, "__sandbox"}, {std::string(kSandboxSpecEnv) + "=" + dumpJson(spec)}, "/", io);
}

}  // namespace

SandboxProbe SandboxLauncher::probe() {
  SandboxProbe result;
  if (!cgroups_.available()) {
    result.missing.insert("cgroup");
    result.why["cgroup"] = "no usable memory/pids/cpu controllers under /sys/fs/cgroup";
  } else {
    for (auto [has, name] : {std::pair{cgroups_.hasMemory(), "cgroup-memory"}, std::pair{cgroups_.hasPids(), "cgroup-pids"},
                             std::pair{cgroups_.hasCpu(), "cgroup-cpu"}}) {
      if (!has) {
        result.missing.insert(name);
        result.why[name] = "controller not available";
      }
    }
  }
  (void)makeDirs(root_mount_);
  (void)makeDirs(runtime_dir_);
  std::string probe_app = root_mount_ + "-probe-app";
  (void)makeDirs(probe_app);
  // With an egress network the probe makes one too: a kernel (or a
  // slirp4netns) that cannot is found out here, not at the first build.
  bool egress = egress_.mode != EgressOptions::Mode::kHost;
  Json spec = {{"probe", true},   {"root", root_mount_},      {"app_dir", probe_app},   {"runtime_dir", runtime_dir_},
               {"network", egress}, {"egress", egress_.toJson()}, {"resolv_conf", resolv_conf_},
               {"tmp_mb", 1},     {"argv", Json::array()},    {"env", Json::array()}};
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    result.missing.insert("helper");
    return result;
  }
  LaunchSpec io;
  io.stdout_fd = out[1];
  auto proc = spawnHelper(helper_, spec, io);
  ::close(out[1]);
  std::string report;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof buf)) > 0) report.append(buf, static_cast<size_t>(n));
  ::close(out[0]);
  if (proc.ok()) {
    int status = 0;
    ::waitpid(proc->pid, &status, 0);
  }
  std::istringstream lines(report);
  std::string line;
  bool done = false;
  while (std::getline(lines, line)) {
    if (line == "done") done = true;
    if (line.rfind("missing ", 0) == 0) {
      std::string rest = line.substr(8);
      auto colon = rest.find(':');
      std::string layer = rest.substr(0, colon);
      result.missing.insert(layer);
      result.why[layer] = colon == std::string::npos ? "" : rest.substr(colon + 2);
    }
  }
  if (!done) {
    result.missing.insert("helper");
    result.why["helper"] = "the sandbox helper did not finish its probe";
  }
  result.usable = done && !result.missing.count("mount-namespace") && !result.missing.count("pivot_root") &&
                  !result.missing.count("minimal-root");
  skip_ = result.missing;
  if (result.missing.count("egress-network")) egress_.mode = EgressOptions::Mode::kHost;
  return result;
}

Result<Process> SandboxLauncher::launch(const LaunchSpec& spec) {
  const Isolation& iso = spec.isolation;
  std::vector<std::string> procs;
  if (cgroups_.available()) {
    CgroupLimits limits;
    limits.memory_bytes = iso.memory_bytes;
    limits.pids = iso.pids;
    limits.background = iso.background;
    ASSIGN_OR_RETURN(procs, cgroups_.create(iso.instance_id, limits));
  }
  std::vector<std::string> expose;
  if (!spec.argv.empty()) {
    std::lock_guard lock(files_mu_);
    auto it = files_.find(spec.argv[0]);
    if (it == files_.end()) it = files_.emplace(spec.argv[0], filesFor(spec.argv[0])).first;
    expose = it->second;
  }
  expose.insert(expose.end(), iso.expose.begin(), iso.expose.end());
  Json mounts = Json::array();
  for (const auto& m : iso.mounts) mounts.push_back({m.host, m.inside, m.writable});
  Json j = {{"root", root_mount_},         {"app_dir", iso.app_dir}, {"runtime_dir", runtime_dir_},
            {"expose", expose},            {"mounts", mounts},
            {"network", iso.network},      {"loopback", iso.loopback}, {"tmp_mb", iso.tmp_mb}, {"argv", spec.argv},
            {"egress", egress_.toJson()},  {"resolv_conf", resolv_conf_},
            {"env", spec.env},             {"cgroup_procs", procs},  {"skip", Json(std::vector<std::string>(skip_.begin(), skip_.end()))}};
  if (!cgroups_.available()) {
    // The runtime's own baseline (node: about 60 MB of heap, stacks and
    // buffers) on top of what the code may use.
    j["rlimit_data"] = iso.memory_bytes + (64ull << 20);
    j["rlimit_nproc"] = iso.pids;
  }
  auto p = spawnHelper(helper_, j, spec);
  if (!p.ok() && cgroups_.available()) cgroups_.remove(iso.instance_id);
  return p;
}

}  // namespace nubo::runtime
