#include "build/build_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <filesystem>

#include "blob/directory.h"
#include "common/fs.h"
#include "common/ids.h"
#include "build/builtin_builders.h"
#include "common/json.h"

namespace nubo::build {

namespace {

using Clock = std::chrono::steady_clock;

constexpr uid_t kSandboxUser = 65534;       // the sandbox's unprivileged user, when nubo runs as root
constexpr size_t kMaxLine = 16 * 1024;      // a longer line is cut
constexpr auto kDrainAfterExit = std::chrono::milliseconds(1000);
constexpr auto kDiskCheckEvery = std::chrono::milliseconds(1000);


// A folder the builder (the sandbox's user) may write.
Status makeWritableDir(const std::string& dir) {
  RETURN_IF_ERROR(makeDirs(dir));
  if (::geteuid() == 0 && ::chown(dir.c_str(), kSandboxUser, kSandboxUser) != 0) {
    return ErrnoStatus("chown " + dir, errno);
  }
  return Status::Ok();
}

bool isBuilderName(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) return false;
  }
  return true;
}

// Disk blocks the files below `dirs` take (links not followed; a sparse
// file counts what it uses, not its length).
uint64_t diskUse(const std::vector<std::string>& dirs) {
  uint64_t total = 0;
  for (const auto& dir : dirs) {
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(
             dir, std::filesystem::directory_options::skip_permission_denied, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      struct stat st {};
      if (::lstat(it->path().c_str(), &st) == 0) total += static_cast<uint64_t>(st.st_blocks) * 512;
    }
  }
  return total;
}

void removeTree(const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

// Splits what a pipe gives into lines for the log.
class LineSplitter {
 public:
  LineSplitter(std::string_view stream, const BuildLog& log) : stream_(stream), log_(log) {}
  void feed(std::string_view bytes) {
    for (char c : bytes) {
      if (c == '\n') {
        flush();
      } else if (pending_.size() < kMaxLine) {
        pending_ += c;
      }
    }
  }
  void flush() {
    if (log_) log_(stream_, pending_);
    pending_.clear();
  }
  void finish() {
    if (!pending_.empty()) flush();
  }

 private:
  std::string_view stream_;
  const BuildLog& log_;
  std::string pending_;
};

}  // namespace

BuildRunner::BuildRunner(runtime::Launcher& launcher, blob::BlobStore& blobs, runtime::CodeStore& code,
                         runtime::Cgroups* cgroups, BuildOptions options)
    : launcher_(launcher), blobs_(blobs), code_(code), cgroups_(cgroups), opts_(std::move(options)) {}

Result<int> BuildRunner::runProcess(const std::string& id, const runtime::LaunchSpec& base, const BuildLog& log,
                                    const std::vector<std::string>& folders) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return ErrnoStatus("pipe", errno);
  UniqueFd out_r(out[0]), out_w(out[1]);
  if (::pipe2(err, O_CLOEXEC) != 0) return ErrnoStatus("pipe", errno);
  UniqueFd err_r(err[0]), err_w(err[1]);
  runtime::LaunchSpec spec = base;
  spec.stdout_fd = out_w.get();
  spec.stderr_fd = err_w.get();
  ASSIGN_OR_RETURN(runtime::Process proc, launcher_.launch(spec));
  out_w.reset();
  err_w.reset();
  {
    std::lock_guard lock(mu_);
    running_.emplace(proc.pid, id);
    if (cancelled_ || cancelled_ids_.count(id)) {
      ::kill(-proc.pid, SIGKILL);
      ::kill(proc.pid, SIGKILL);
    }
  }
  struct Unregister {
    BuildRunner& r;
    pid_t pid;
    ~Unregister() {
      std::lock_guard lock(r.mu_);
      r.running_.erase(pid);
    }
  } unregister{*this, proc.pid};

  LineSplitter out_lines("stdout", log), err_lines("stderr", log);
  auto deadline = Clock::now() + opts_.timeout;
  auto next_disk_check = Clock::now() + kDiskCheckEvery;
  bool exited = false, timed_out = false, over_disk = false;
  Clock::time_point drain_until{};
  // Over a limit: the builder and everything it started go (its process
  // group; in the sandbox also its pid namespace), and `why` says which.
  auto stop = [&](bool& why) {
    ::kill(-proc.pid, SIGKILL);
    ::kill(proc.pid, SIGKILL);
    why = true;
    exited = true;
    drain_until = Clock::now() + kDrainAfterExit;
  };
  std::array<char, 16 * 1024> buf;
  for (;;) {
    std::array<pollfd, 3> fds{{{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}, {proc.pidfd.get(), POLLIN, 0}}};
    bool pipes_open = out_r.get() >= 0 || err_r.get() >= 0;
    if (exited && (!pipes_open || Clock::now() >= drain_until)) break;
    if (!exited && Clock::now() >= next_disk_check) {
      next_disk_check = Clock::now() + kDiskCheckEvery;
      if (diskUse(folders) > opts_.max_disk_bytes) {
        stop(over_disk);
        continue;
      }
    }
    if (!exited && Clock::now() >= deadline) {
      stop(timed_out);
      continue;
    }
    auto until = exited ? drain_until : std::min(deadline, next_disk_check);
    auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    int n = ::poll(fds.data(), fds.size(), static_cast<int>(std::max<long long>(0, wait_ms)));
    if (n < 0 && errno != EINTR) return ErrnoStatus("poll", errno);
    for (int i = 0; i < 2; ++i) {
      if (!(fds[static_cast<size_t>(i)].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      UniqueFd& fd = i == 0 ? out_r : err_r;
      ssize_t got = ::read(fd.get(), buf.data(), buf.size());
      if (got > 0) {
        (i == 0 ? out_lines : err_lines).feed(std::string_view(buf.data(), static_cast<size_t>(got)));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        fd.reset();
      }
    }
    if (!exited && (fds[2].revents & POLLIN)) {
      // Nothing a build started outlives it.
      ::kill(-proc.pid, SIGKILL);
      exited = true;
      drain_until = Clock::now() + kDrainAfterExit;
    }
  }
  out_lines.finish();
  err_lines.finish();
  // What a quick build wrote between two checks counts too.
  if (!over_disk && !timed_out && diskUse(folders) > opts_.max_disk_bytes) over_disk = true;
  int status = 0;
  while (::waitpid(proc.pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (cancelled_) return Unavailable("the server is shutting down; the build starts over when it is back");
  if (isCancelled(id)) return NotFound("the build was stopped: its app was removed");
  if (over_disk) {
    return ResourceExhausted("the build wrote more than " + std::to_string(opts_.max_disk_bytes >> 20) +
                             " MB to its output, scratch and cache folders and was stopped (a server operator "
                             "sets the limit with --build-max-disk-mb)");
  }
  if (timed_out) {
    return DeadlineExceeded("the build ran longer than " + std::to_string(opts_.timeout.count() / 1000) +
                            " s and was stopped");
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

void BuildRunner::cancelAll() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
  for (const auto& [pid, id] : running_) {
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
  }
}

void BuildRunner::cancel(const std::string& id) {
  std::lock_guard lock(mu_);
  cancelled_ids_.insert(id);
  for (const auto& [pid, build] : running_) {
    if (build != id) continue;
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
  }
}

bool BuildRunner::isCancelled(const std::string& id) {
  std::lock_guard lock(mu_);
  return cancelled_ids_.count(id) > 0;
}

void BuildRunner::removeCache(const std::string& app) {
  if (validateAppName(app).ok()) removeTree(opts_.cache_dir + "/" + app);
}

void BuildRunner::removeLeftovers() {
  removeTree(opts_.work_dir);
  (void)makeDirs(opts_.work_dir);
}

Result<BuildOutput> BuildRunner::run(const BuildJob& job, const BuildLog& log) {
  if (cancelled_) return Unavailable("the server is shutting down; the build starts over when it is back");
  struct Forget {  // a cancel() of this build ends with it
    BuildRunner& r;
    const std::string& id;
    ~Forget() {
      std::lock_guard lock(r.mu_);
      r.cancelled_ids_.erase(id);
    }
  } forget{*this, job.id};
  auto t0 = Clock::now();
  auto note = [&log](const std::string& text) {
    if (log) log("nubo", text);
  };
  if (!job.builder.empty() && !isBuilderName(job.builder)) {
    return InvalidArgument("build.builder: \"" + job.builder +
                           "\" is not a builder name (lowercase letters, digits, '-' and '_')");
  }
  std::string builder = opts_.builders_dir + "/" + job.builder + "/build";
  if (!job.builder.empty() && ::access(builder.c_str(), X_OK) != 0) {
    return NotFound("build.builder: no builder \"" + job.builder + "\" on this server (" + builder +
                    " is missing or not executable); see docs/builders.md");
  }
  RETURN_IF_ERROR(validateAppName(job.app));
  if (!isDeploymentId(job.id)) return InvalidArgument("build: \"" + job.id + "\" is not a deployment id");

  // The build's folders: the source (read-only), an empty output, scratch
  // space, and the app's cache (kept between builds).
  std::string instance = "b-" + job.id;
  ASSIGN_OR_RETURN(std::string src, code_.makeInstanceDir(instance));
  struct Cleanup {
    BuildRunner& r;
    std::string instance, work;
    ~Cleanup() {
      r.code_.removeInstanceDir(instance);
      removeTree(work);
    }
  } cleanup{*this, instance, opts_.work_dir + "/" + job.id};
  RETURN_IF_ERROR(code_.linkInto(job.app, job.source_tree, src));
  std::string out = cleanup.work + "/out", scratch = cleanup.work + "/work", cache = opts_.cache_dir + "/" + job.app;
  removeTree(cleanup.work);
  RETURN_IF_ERROR(makeWritableDir(cleanup.work));
  RETURN_IF_ERROR(makeWritableDir(out));
  RETURN_IF_ERROR(makeWritableDir(scratch));
  RETURN_IF_ERROR(makeWritableDir(cache));

  runtime::LaunchSpec spec;
  auto& iso = spec.isolation;
  iso.instance_id = instance;
  iso.app_dir = src;
  iso.network = true;
  iso.tmp_mb = opts_.tmp_mb;
  iso.memory_bytes = opts_.memory_bytes;
  iso.pids = opts_.pids;
  iso.expose = runtime::hostToolchain();  // compilers, node, npm...
  iso.mounts = {{"", "/nubo/builder", false},  // the builder's folder, set below
                {out, "/out", true},
                {scratch, "/work", true},
                {cache, "/cache", true}};
  std::string sdk_in;
  if (!opts_.sdk_dir.empty()) {
    iso.mounts.push_back({opts_.sdk_dir, "/nubo/sdk", false});
    sdk_in = launcher_.mountInside(opts_.sdk_dir, "/nubo/sdk");
  }
  std::string src_in = launcher_.appDirInside(src);
  std::string out_in = launcher_.mountInside(out, "/out");
  std::string work_in = launcher_.mountInside(scratch, "/work");
  std::string cache_in = launcher_.mountInside(cache, "/cache");
  // Only what a build needs: no secrets, none of the deployment's env.
  spec.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + cache_in + "/home", "TMPDIR=/tmp", "LANG=C.UTF-8",
              "CI=true", "NUBO_SOURCE=" + src_in, "NUBO_OUTPUT=" + out_in, "NUBO_CACHE=" + cache_in,
              "NUBO_WORK=" + work_in, "NUBO_MANIFEST=" + job.manifest_json, "NUBO_SDK=" + sdk_in};
  // The build fields, for builders written in shell.
  if (auto m = parseJson(job.manifest_json, "manifest"); m.ok() && m->is_object()) {
    spec.env.push_back("NUBO_ENTRY=" + m->value("entry", std::string()));
    Json b = m->value("build", Json::object());
    if (b.is_object()) {
      spec.env.push_back("NUBO_BUILD_COMMAND=" + b.value("command", std::string()));
      spec.env.push_back("NUBO_BUILD_OUTPUT=" + b.value("output", std::string()));
    }
  }
  spec.cwd = work_in;
  auto useBuilder = [&](const std::string& name) {
    std::string dir = opts_.builders_dir + "/" + name;
    iso.mounts[0].host = dir;
    return launcher_.mountInside(dir, "/nubo/builder");
  };
  std::string chosen = job.builder;
  if (chosen.empty()) {
    // Detection: the first of the operator's builders whose `detect` says
    // yes (the built-in ones were considered when the deployment was made).
    for (const auto& name : operatorBuilders(opts_.builders_dir)) {
      spec.argv = {useBuilder(name) + "/detect", src_in};
      Result<int> said = runProcess(job.id, spec, log, {out, scratch, cache});
      if (cgroups_ && cgroups_->available()) cgroups_->remove(instance);
      if (!said.ok()) return said.status();
      if (*said == 0) {
        chosen = name;
        break;
      }
    }
    if (chosen.empty()) {
      note("no builder applies: the deployment runs its files as uploaded");
      BuildOutput as_uploaded;
      as_uploaded.tree = job.source_tree;
      return as_uploaded;
    }
    note("detected the " + chosen + " builder");
  }
  spec.argv = {useBuilder(chosen) + "/build", src_in, out_in, cache_in};
  note("building with the " + chosen + " builder");
  Result<int> exit_code = runProcess(job.id, spec, log, {out, scratch, cache});
  bool oom = cgroups_ && cgroups_->available() && cgroups_->oomKilled(instance);
  if (cgroups_ && cgroups_->available()) cgroups_->remove(instance);
  if (!exit_code.ok()) {
    note(exit_code.status().message());
    return exit_code.status();
  }
  if (oom) {
    std::string why = "the build ran out of memory (limit " + std::to_string(opts_.memory_bytes >> 20) + " MB)";
    note(why);
    return ResourceExhausted(why);
  }
  if (*exit_code != 0) {
    std::string why = "the " + chosen + " builder failed (exit status " + std::to_string(*exit_code) + ")";
    note(why);
    return FailedPrecondition(why);
  }
  auto stored = blob::storeDirectory(
      blobs_, out,
      [&note](std::string_view path, std::string_view why) {
        note("left out of the output: " + std::string(path) + ": " + std::string(why));
      },
      blob::StoreLimits{opts_.max_output_files, opts_.max_output_bytes});
  if (!stored.ok()) {
    Status why = stored.status();
    if (why.code() == Code::kResourceExhausted) {
      why = ResourceExhausted("the build's output is over the limit: " + why.message() +
                              " (a server operator sets the limits with --build-max-output-files and "
                              "--build-max-output-mb)");
    }
    note(why.message());
    return why;
  }
  if (stored->root.empty()) {
    std::string why = "the " + chosen + " builder wrote no files to its output folder";
    note(why);
    return FailedPrecondition(why);
  }
  BuildOutput result;
  result.tree = stored->root;
  result.files = stored->files;
  result.bytes = stored->bytes;
  result.new_files = stored->stored_files;
  result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  char text[160];
  std::snprintf(text, sizeof text, "build finished in %.2f s: %llu files (%llu new), %llu bytes", result.seconds,
                static_cast<unsigned long long>(result.files), static_cast<unsigned long long>(result.new_files),
                static_cast<unsigned long long>(result.bytes));
  note(text);
  return result;
}

}  // namespace nubo::build
