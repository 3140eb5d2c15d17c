#include "runtime/functions.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdlib>
#include <algorithm>
#include <span>
#include <sstream>

#include "common/fs.h"
#include "common/json.h"

namespace nubo::runtime {

namespace {
constexpr int kDefaultTmpMb = 16;
constexpr int kDefaultMemoryMb = 128;  // the manifest's default limits.memory_mb
}  // namespace

namespace asio = boost::asio;
using protocol::Frame;
using protocol::FrameType;

namespace {

double msSince(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

std::string findOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// What the node on this server is, and whether it takes
// --experimental-detect-module (Node 20.10 and later: a .js file written as
// an ES module loads as one without "type": "module").
struct NodeInfo {
  std::string version;
  bool detect_module = false;
};

NodeInfo probeNode(const std::string& node) {
  NodeInfo info;
  if (node.find('\'') != std::string::npos) return info;  // not quotable for the shell: assume the least
  std::string cmd = "'" + node + "' -p \"process.version + ' ' + "
                    "process.allowedNodeEnvironmentFlags.has('--experimental-detect-module')\" 2>/dev/null";
  if (FILE* f = ::popen(cmd.c_str(), "r")) {
    char line[128] = {};
    if (std::fgets(line, sizeof line, f)) {
      std::string_view out(line);
      info.version = std::string(out.substr(0, out.find(' ')));
      info.detect_module = out.find(" true") != std::string_view::npos;
    }
    ::pclose(f);
  }
  return info;
}

}  // namespace

Functions::Functions(asio::io_context& ioc, Launcher& launcher, CodeStore& code, Cgroups* cgroups,
                     logs::LogStore& logs, FunctionsOptions options, IsAliased is_aliased)
    : ioc_(ioc), launcher_(launcher), code_(code), cgroups_(cgroups), logs_(logs),
      opts_(std::move(options)), is_aliased_(std::move(is_aliased)) {}

namespace {
int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

void Functions::note(const DeploymentSpec& spec, const std::string& request_id, const std::string& text) {
  logs_.append(spec.app, {nowMs(), spec.id, "nubo", request_id, text});
}

Functions::~Functions() { shutdown(); }

Result<std::unique_ptr<Functions>> Functions::create(asio::io_context& ioc, Launcher& launcher, CodeStore& code,
                                                     Cgroups* cgroups, logs::LogStore& logs,
                                                     FunctionsOptions options, IsAliased is_aliased) {
  if (options.node_binary.empty()) options.node_binary = findOnPath("node");
  std::vector<std::string> node_flags = {"--enable-source-maps", "--no-flush-bytecode", "--no-memory-reducer"};
  if (!options.node_binary.empty()) {
    NodeInfo node = probeNode(options.node_binary);
    if (node.detect_module) {
      node_flags.insert(node_flags.begin(), "--experimental-detect-module");
    } else {
      spdlog::warn("node {} ({}) cannot tell an ES module by its syntax: a .js entry written with import/export "
                   "needs \"type\": \"module\" in package.json or the .mjs extension (Node 20.10 and later need "
                   "neither)",
                   node.version.empty() ? "of unknown version" : node.version, options.node_binary);
    }
  }
  if (options.shards.empty()) options.shards = {&ioc};
  RETURN_IF_ERROR(makeDirs(options.runtime_dir));
  std::unique_ptr<Functions> f(
      new Functions(ioc, launcher, code, cgroups, logs, std::move(options), std::move(is_aliased)));
  f->script_ = f->opts_.runtime_dir + "/instance.js";
  StemOptions so;
  so.base = f->opts_.stems;
  so.base_other = f->opts_.stems_per_other_profile;
  so.max_profiles = f->opts_.max_other_profiles;
  so.max_total = std::max(f->opts_.max_stems, f->opts_.stems);
  so.start_timeout = f->opts_.start_timeout;
  Functions* self = f.get();
  f->stems_ = std::make_unique<Stems>(
      so, f->profileFor(false, kDefaultTmpMb, false, kDefaultMemoryMb), f->opts_.shards, f->spawner_.get_executor(),
      [self](const StemProfile& profile, asio::io_context& shard, bool urgent) {
        return self->launchInstance(profile, /*background=*/!urgent, shard);
      });
  f->node_flags_ = std::move(node_flags);
  // The runtime's script, and tiny modules a stem imports to warm Node's
  // module loaders (ESM, CommonJS, and detection of a .js file's kind).
  std::vector<std::pair<std::string, std::string>> files = nodeRuntimeFiles();
  files.insert(files.end(), {{"warm.mjs", "export default 1;\n"},
                             {"warm.cjs", "module.exports = 1;\n"},
                             {"warm-detect.js", "export default 1;\n"}});
  for (const auto& [name, content] : files) {
    std::string path = f->opts_.runtime_dir + "/" + name;
    auto current = readFile(path);
    if (!current.ok() || *current != content) RETURN_IF_ERROR(writeFileAtomic(path, content, 0444));
  }
  return f;
}

void Functions::start() {
  if (opts_.node_binary.empty()) {
    spdlog::warn("node was not found on PATH: deployments with runtime \"node\" will answer 503 until it is installed");
  } else {
    stems_->start();
  }
  asio::co_spawn(ioc_, reapLoop(), asio::detached);
}

void Functions::shutdown() {
  std::unordered_map<std::string, std::shared_ptr<Pool>> pools;
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    pools.swap(pools_);
  }
  for (auto& [id, p] : pools) p->stopAll(/*kill=*/true);
  stems_->shutdown();
  // No instance starts after this (a stem being started is killed once up):
  // the server may remove the instances' control groups next.
  spawner_.stop();
  spawner_.join();
  files_.stop();
  files_.join();
}

namespace {
constexpr uint64_t kStemMemory = 512ull << 20;  // until specialized
}  // namespace

template <class F>
auto Functions::offThread(F work, asio::thread_pool* pool) -> asio::awaitable<decltype(work())> {
  using R = decltype(work());
  auto out = co_await asio::co_spawn(
      pool ? *pool : spawner_, [&work]() -> asio::awaitable<std::optional<R>> { co_return work(); },
      asio::use_awaitable);
  co_return std::move(*out);
}

asio::awaitable<Result<std::shared_ptr<Instance>>> Functions::launchOffThread(const StemProfile& profile,
                                                                             asio::io_context& shard) {
  return offThread([this, profile, &shard] { return launchInstance(profile, /*background=*/false, shard); });
}

asio::io_context& Functions::shardOf(const asio::any_io_executor& ex) {
  for (asio::io_context* shard : opts_.shards) {
    if (asio::any_io_executor(shard->get_executor()) == ex) return *shard;
  }
  return *opts_.shards.front();
}

Result<std::shared_ptr<Instance>> Functions::launchInstance(const StemProfile& profile, bool background,
                                                            asio::io_context& shard, const DeploymentSpec* native) {
  if (opts_.node_binary.empty() && !native) return Unavailable("node is not installed on this server");
  std::string id = "i" + std::to_string(::getpid()) + "-" + std::to_string(next_instance_++);
  ASSIGN_OR_RETURN(std::string dir, code_.makeInstanceDir(id));
  LaunchSpec spec;
  // Source maps: stack traces of bundled TypeScript name the .ts lines.
  spec.argv = {opts_.node_binary};
  spec.argv.insert(spec.argv.end(), node_flags_.begin(), node_flags_.end());
  spec.argv.push_back(launcher_.runtimeDirInside(opts_.runtime_dir) + "/instance.js");
  spec.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "TZ=UTC", "NODE_ENV=production", "NUBO_FD=3"};
  if (native) {
    // The deployment's own program, with its files and env in place.
    if (Status s = code_.linkInto(native->app, native->root_tree, dir); !s.ok()) {
      code_.removeInstanceDir(id);
      return s.withContext("preparing deployment " + native->id);
    }
    spec.argv = {launcher_.appDirInside(dir) + "/" + native->entry};
    spec.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "TZ=UTC", "NUBO_FD=3"};
    for (const auto& [k, v] : native->env) spec.env.push_back(k + "=" + v);
  }
  spec.cwd = "/";
  spec.isolation.instance_id = id;
  spec.isolation.app_dir = dir;
  spec.isolation.network = profile.network;
  spec.isolation.tmp_mb = profile.tmp_mb;
  if (profile.exec) {
    // The program may be written in anything the host has (python3, ...),
    // and serves on 127.0.0.1 inside its own network namespace.
    spec.isolation.expose = hostToolchain();
    spec.isolation.loopback = true;
  }
  // With cgroups a stem may use more until it is specialized (its group then
  // gets the deployment's limit); without, the profile's limit holds from
  // the start.
  int memory_mb = native ? native->memory_mb : profile.memory_mb;
  spec.isolation.memory_bytes =
      cgroups_ && cgroups_->available() ? kStemMemory : static_cast<uint64_t>(memory_mb) << 20;
  spec.isolation.background = background;
  auto target = std::make_shared<LogTarget>();
  {
    std::lock_guard lock(mu_);
    log_targets_[id] = target;
  }
  logs::LogStore* store = &logs_;
  auto sink = [id, target, store](std::string_view stream, std::string_view line) {
    std::string request_id;
    if (line.size() > 2 && line[0] == '\x1e') {  // written during a request (runtimes/node tags it)
      size_t end = line.find('\x1f');
      if (end != std::string_view::npos) {
        request_id = std::string(line.substr(1, end - 1));
        line.remove_prefix(end + 1);
      }
    }
    std::string app, deployment;
    {
      std::lock_guard lock(target->mu);
      if (target->gone) return;
      app = target->app;
      deployment = target->deployment;
    }
    if (app.empty()) {
      spdlog::info("instance {} {}: {}", id, stream, std::string(line));
      return;
    }
    store->append(app, {nowMs(), deployment, std::string(stream), request_id, std::string(line)});
  };
  auto inst = Instance::launch(shard, opts_.threads, launcher_, std::move(spec), id, sink);
  if (!inst.ok()) {
    code_.removeInstanceDir(id);
    return inst.status();
  }
  Cgroups* cg = cgroups_;
  CodeStore* code = &code_;
  (*inst)->onExit([this, cg, code, id]() -> std::string {
    {
      std::lock_guard lock(mu_);
      log_targets_.erase(id);
    }
    std::string reason;
    if (cg && cg->available()) {
      if (cg->oomKilled(id)) reason = "ran out of memory (over limits.memory_mb) and was killed";
      cg->remove(id);
    }
    code->removeInstanceDir(id);
    return reason;
  });
  return inst;
}

StemProfile Functions::profileFor(bool network, int tmp_mb, bool exec, int memory_mb) const {
  StemProfile p;
  p.network = network;
  p.tmp_mb = tmp_mb;
  p.exec = exec;
  p.memory_mb = cgroups_ && cgroups_->available() ? 0 : memory_mb;
  return p;
}

asio::awaitable<Result<std::shared_ptr<Instance>>> Functions::create(const DeploymentSpec& spec, ColdStart* phases,
                                                                     EarlyOpen early, bool on_my_shard) {
  auto t0 = Clock::now();
  std::shared_ptr<Instance> inst;
  const RuntimeTraits& traits = runtimeTraits(spec.kind);
  StemProfile profile = profileFor(spec.network, spec.tmp_mb, traits.host_toolchain, spec.memory_mb);
  bool native = traits.launch == Launch::kOwnProgram;
  // The instance runs on the shard of the request that needs it.
  const asio::any_io_executor caller = co_await asio::this_coro::executor;
  asio::io_context& shard = shardOf(caller);
  if (native) {
    // A native deployment is its own program: started with its files in
    // place (on the spawner thread), no stem to specialize.
    auto launched =
        co_await offThread([this, profile, &spec, &shard] { return launchInstance(profile, false, shard, &spec); });
    if (!launched.ok()) co_return launched.status();
    inst = *launched;
    Status hello = co_await inst->waitHello(Clock::now() + opts_.start_timeout);
    if (!hello.ok()) co_return hello;
  }
  // A stem of the deployment's permission profile: ready, or warming
  // (the first cold start of a new profile spawns; later ones need not).
  if (!native) inst = co_await stems_->take(profile, caller, on_my_shard);
  if (!native && inst) {
    phases->from_stem = true;
  } else if (!native) {
    auto launched = co_await launchOffThread(profile, shard);
    if (!launched.ok()) co_return launched.status();
    inst = *launched;
    Status hello = co_await inst->waitHello(Clock::now() + opts_.start_timeout);
    if (!hello.ok()) co_return hello;
  }
  phases->acquire_ms = msSince(t0);
  auto t1 = Clock::now();
  std::string dir = code_.dirFor(inst->label());
  // The files and the control group are written off the data plane, by
  // threads of their own (not behind process starts on the spawner). (A
  // native instance's files were linked before it started.)
  Status linked = co_await offThread(
      [this, &spec, &dir, &inst, native]() -> Status {
        if (!native) RETURN_IF_ERROR(code_.linkInto(spec.app, spec.root_tree, dir));
        if (!cgroups_ || !cgroups_->available()) return Status::Ok();
        RETURN_IF_ERROR(cgroups_->setMemory(inst->label(), static_cast<uint64_t>(spec.memory_mb) << 20));
        // Its part of its app's CPU weight (a stem warmed up at the lowest).
        return cgroups_->joinApp(inst->label(), spec.app, spec.cpu);
      },
      &files_);
  if (!linked.ok()) {
    inst->kill();
    co_return linked.withContext("preparing deployment " + spec.id);
  }
  phases->files_ms = msSince(t1);
  auto t2 = Clock::now();
  // From here on, what the instance prints belongs to the deployment (a
  // request sent right behind SPECIALIZE may print before READY is back).
  {
    std::lock_guard lock(mu_);
    if (auto it = log_targets_.find(inst->label()); it != log_targets_.end()) {
      std::lock_guard target_lock(it->second->mu);
      it->second->app = spec.app;
      it->second->deployment = spec.id;
    }
  }
  SpecializeInfo info{spec.id, spec.app, launcher_.appDirInside(dir), spec.entry, spec.env,
                        std::string(runtimeName(spec.kind))};
  Result<double> load = co_await inst->specialize(info, Clock::now() + opts_.start_timeout, [&early, &inst] {
    if (early) early(inst);
  });
  if (!load.ok()) co_return load.status();
  phases->specialize_ms = msSince(t2);
  phases->load_ms = *load;
  co_return inst;
}

Result<std::shared_ptr<Pool>> Functions::poolCached(const DeploymentSpec& spec, bool fresh) {
  // Each shard's thread remembers the pools it used: no lock shared by the
  // shards on the way to one (a retired pool is noticed by acquire()).
  struct Cache {
    const Functions* owner = nullptr;
    std::unordered_map<std::string, std::weak_ptr<Pool>> pools;
  };
  thread_local Cache cache;
  if (cache.owner != this) {
    cache.pools.clear();
    cache.owner = this;
  }
  if (!fresh) {
    if (auto it = cache.pools.find(spec.id); it != cache.pools.end()) {
      if (auto p = it->second.lock()) return p;
    }
  }
  ASSIGN_OR_RETURN(std::shared_ptr<Pool> p, poolOf(spec));
  if (cache.pools.size() >= 4096) cache.pools.clear();  // bounded: deployments come and go
  cache.pools[spec.id] = p;
  return p;
}

Result<std::shared_ptr<Pool>> Functions::poolOf(DeploymentSpec spec, const std::string& instance) {
  spec.limits.wait_until = opts_.wait_until;
  std::lock_guard lock(mu_);
  if (stopped_) return Unavailable("the server is shutting down");
  if (auto it = log_targets_.find(instance); !instance.empty() && it != log_targets_.end()) {
    std::lock_guard target_lock(it->second->mu);
    if (it->second->gone) return NotFound("app " + spec.app + " was removed");
  }
  auto [it, inserted] = pools_.try_emplace(spec.id);
  if (inserted) it->second = std::make_shared<Pool>(std::move(spec), *this);
  return it->second;
}

namespace {
// The first `n` lines of what a deployment said (a stack trace's message
// and its top frames), at most 2000 bytes, with control characters shown as
// '?' (it is printed in terminals).
std::string firstLines(const std::string& text, int n) {
  size_t end = 0;
  for (int i = 0; i < n && end != std::string::npos; ++i) end = text.find('\n', end == 0 ? 0 : end + 1);
  std::string out = text.substr(0, end);
  if (out.size() > 2000) out = out.substr(0, 2000) + "...";
  for (char& ch : out) {
    if ((static_cast<unsigned char>(ch) < ' ' && ch != '\n' && ch != '\t') || ch == 0x7f) ch = '?';
  }
  return out;
}
}  // namespace

asio::awaitable<Result<std::string>> Functions::probe(DeploymentSpec probed) {
  const DeploymentSpec* spec = &probed;
  auto t0 = Clock::now();
  ColdStart phases;
  auto created = co_await create(*spec, &phases, {}, /*on_my_shard=*/false);
  if (!created.ok()) {
    const Status& s = created.status();
    if (s.code() == Code::kFailedPrecondition) {
      co_return FailedPrecondition("the code failed to load: " + firstLines(s.message(), 6));
    }
    co_return Status(s.code(), "could not start an instance: " + firstLines(s.message(), 6));
  }
  std::shared_ptr<Instance> inst = *created;
  // A healthy instance serves the deployment's first requests; any other is stopped.
  struct AtEnd {
    Functions& f;
    std::shared_ptr<Instance>& inst;
    const DeploymentSpec& spec;
    bool healthy = false;
    ~AtEnd() {
      // (Not when its app was removed meanwhile: no pool comes back for it.)
      auto pool = healthy ? f.poolOf(spec, inst->label()) : Result<std::shared_ptr<Pool>>(Unavailable(""));
      if (!pool.ok() || !(*pool)->adopt(inst)) inst->kill();
    }
  } at_end{*this, inst, *spec};
  char started[128];
  std::snprintf(started, sizeof started, "started %s in %.1f ms (the code loaded in %.1f ms)",
                phases.from_stem ? "from a stem" : "a new instance", msSince(t0), phases.load_ms);
  char cold[256];
  std::snprintf(cold, sizeof cold, "cold start for the start check: %s %.1f ms, files %.1f ms, specialize %.1f ms "
                "(load %.1f ms)", phases.from_stem ? "stem" : "spawn", phases.acquire_ms, phases.files_ms,
                phases.specialize_ms, phases.load_ms);
  note(*spec, "", cold);
  at_end.healthy = spec->health_path.empty();
  if (spec->health_path.empty()) co_return std::string(started);

  // The health path must answer 2xx or 3xx within limits.timeout_ms (at
  // most kMaxHealthWait: a check holds a slot of the start checks).
  auto wait = std::min<std::chrono::milliseconds>(spec->limits.timeout, kMaxHealthWait);
  Deadline deadline = Clock::now() + wait;
  std::string request_id = "health-" + spec->id;
  protocol::HeaderList headers = {{"host", "localhost"}, {"user-agent", "nubo-health-check"},
                                  {"x-nubo-request-id", request_id}};
  std::string head;
  protocol::appendRequestHead(head, "GET", spec->health_path, "http://localhost" + spec->health_path, request_id,
                              headers);
  auto ex = co_await asio::this_coro::executor;
  auto call = inst->open(ex, head, "", /*body_complete=*/true);
  if (!call.ok()) co_return Unavailable("could not ask " + spec->health_path + ": " + call.status().message());
  std::string what = "health.path " + spec->health_path;
  for (;;) {
    Result<Frame> f = co_await (*call)->next(deadline);
    if (!f.ok() && f.status().code() == Code::kDeadlineExceeded) {
      co_return DeadlineExceeded(what + " did not answer within " +
                                 (wait < spec->limits.timeout ? "the longest wait of a start check ("
                                                              : "limits.timeout_ms (") +
                                 std::to_string(wait.count()) + " ms)");
    }
    if (!f.ok()) co_return FailedPrecondition(what + ": the instance failed: " + f.status().message());
    if (f->type == FrameType::kError) {
      auto e = parseJson(f->payload, "error");
      std::string msg = e.ok() && e->is_object() ? e->value("message", std::string()) : f->payload;
      co_return FailedPrecondition(what + ": the handler threw: " + firstLines(msg, 6));
    }
    if (f->type != FrameType::kResponse) continue;
    std::string_view head_bytes, body;
    protocol::ResponseHead rh;
    if (!protocol::splitHead(f->payload, &head_bytes, &body).ok() ||
        !protocol::parseResponseHead(head_bytes, &rh).ok()) {
      co_return FailedPrecondition(what + ": the instance sent a malformed response head");
    }
    if (rh.status < 200 || rh.status > 399) {
      // What it said, for the error: the start of its body (a moment more at most).
      std::string shown(body.substr(0, 200));
      Deadline body_by = std::min(deadline, Clock::now() + std::chrono::milliseconds(500));
      for (bool end = f->endStream(); !end && shown.size() < 200;) {
        Result<Frame> more = co_await (*call)->next(body_by);
        if (!more.ok() || more->type != FrameType::kData) break;
        shown.append(more->payload.substr(0, 200 - shown.size()));
        end = more->endStream();
        if (!end && !more->payload.empty()) (*call)->grant(static_cast<uint32_t>(more->payload.size()));
      }
      (*call)->cancel();
      co_return FailedPrecondition(what + " answered " + std::to_string(rh.status) + " (2xx or 3xx is healthy)" +
                                   (shown.empty() ? "" : ": " + firstLines(shown, 3)));
    }
    (*call)->cancel();
    at_end.healthy = true;
    co_return std::string(started) + "; " + what + " answered " + std::to_string(rh.status);
  }
}

asio::awaitable<Result<std::unique_ptr<Lease>>> Functions::acquire(const DeploymentSpec& spec, Deadline deadline,
                                                                  EarlyOpen early) {
  auto pool = poolCached(spec, /*fresh=*/false);
  if (!pool.ok()) co_return pool.status();
  auto lease = co_await (*pool)->acquire(deadline, early);
  if (!lease.ok() && (*pool)->retired()) {
    // The reaper retired that pool (idle, no instance) just now: a new one.
    pool = poolCached(spec, /*fresh=*/true);
    if (!pool.ok()) co_return pool.status();
    lease = co_await (*pool)->acquire(deadline, early);
  }
  co_return lease;
}

void Functions::noteColdStart(const std::unique_ptr<Lease>& lease, const DeploymentSpec& spec,
                              const std::string& request_id, Clock::time_point t0) {
  const auto& cold = lease->coldStart();
  if (!cold) return;
  char text[256];
  std::snprintf(text, sizeof text,
                "cold start: %s %.1f ms, files %.1f ms, specialize %.1f ms (load %.1f ms), first byte %.1f ms",
                cold->from_stem ? "stem" : "spawn", cold->acquire_ms, cold->files_ms, cold->specialize_ms,
                cold->load_ms, msSince(t0));
  note(spec, request_id, text);
}

asio::awaitable<void> Functions::reapLoop() {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    timer.expires_after(opts_.reap_interval);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    std::vector<std::shared_ptr<Pool>> pools;
    {
      std::lock_guard lock(mu_);
      if (stopped_) co_return;
      for (auto& [id, p] : pools_) pools.push_back(p);
    }
    auto now = Clock::now();
    stems_->trim(now);
    std::vector<std::shared_ptr<Pool>> empty;
    for (auto& p : pools) {
      size_t overran = 0;
      if (p->reap(now, is_aliased_ && is_aliased_(p->spec().app, p->spec().id), &overran) == 0) empty.push_back(p);
      if (overran > 0) {
        note(p->spec(), "", "ctx.waitUntil() work was still pending " +
                                std::to_string(opts_.wait_until.count() / 1000) +
                                " s after the last response; the instance was stopped");
      }
    }
    // Pools left with nothing are forgotten (a request makes a new one), so
    // that deployments nobody calls any more cost nothing.
    std::lock_guard lock(mu_);
    for (auto& p : empty) {
      auto it = pools_.find(p->spec().id);
      if (it != pools_.end() && it->second == p && p->retireIfIdle()) pools_.erase(it);
    }
  }
}

void Functions::removeApp(const std::string& app) {
  std::vector<std::shared_ptr<Pool>> gone;
  {
    std::lock_guard lock(mu_);
    for (auto it = pools_.begin(); it != pools_.end();) {
      if (it->second->spec().app == app) {
        gone.push_back(it->second);
        it = pools_.erase(it);
      } else {
        ++it;
      }
    }
    // What its instances still print must not bring its log back.
    for (auto& [id, target] : log_targets_) {
      std::lock_guard target_lock(target->mu);
      if (target->app == app) target->gone = true;
    }
  }
  for (auto& p : gone) p->stopAll(/*kill=*/true);
}

std::vector<InstanceInfo> Functions::describe() {
  std::vector<std::shared_ptr<Pool>> pools;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, p] : pools_) pools.push_back(p);
  }
  std::vector<InstanceInfo> out;
  for (auto& p : pools) {
    auto v = p->describe();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

size_t Functions::stemCount() { return stems_->readyCount(); }
size_t Functions::stemsStarting() { return stems_->startingCount(); }

size_t Functions::poolCount() {
  std::lock_guard lock(mu_);
  return pools_.size();
}

}  // namespace nubo::runtime
