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

#include "common/clock.h"
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

Functions::Functions(asio::io_context& ioc, Launcher& launcher, CodeStore& code, Cgroups* cgroups,
                     logs::LogStore& logs, FunctionsOptions options, IsAliased is_aliased)
    : ioc_(ioc), launcher_(launcher), code_(code), cgroups_(cgroups), logs_(logs),
      opts_(std::move(options)), is_aliased_(std::move(is_aliased)) {}


void Functions::note(const DeploymentSpec& spec, const std::string& request_id, const std::string& text) {
  logs_.append(spec.app, {wallMillis(), spec.id, "nubo", request_id, text});
}

Functions::~Functions() { shutdown(); }

Result<std::unique_ptr<Functions>> Functions::create(asio::io_context& ioc, Launcher& launcher, CodeStore& code,
                                                     Cgroups* cgroups, logs::LogStore& logs,
                                                     FunctionsOptions options, IsAliased is_aliased) {
  ASSIGN_OR_RETURN(LaunchRecipes recipes, LaunchRecipes::create(options.node_binary, options.runtime_dir));
  if (options.shards.empty()) options.shards = {&ioc};
  std::unique_ptr<Functions> f(
      new Functions(ioc, launcher, code, cgroups, logs, std::move(options), std::move(is_aliased)));
  f->recipes_ = std::move(recipes);
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
  return f;
}

void Functions::start() {
  if (!recipes_.haveNode()) {
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
                                                            asio::io_context& shard, const DeploymentSpec* own) {
  if (!recipes_.haveNode() && !own) return Unavailable("node is not installed on this server");
  std::string id = "i" + std::to_string(::getpid()) + "-" + std::to_string(next_instance_++);
  ASSIGN_OR_RETURN(std::string dir, code_.makeInstanceDir(id));
  LaunchSpec spec = recipes_.nodeStem(launcher_.runtimeDirInside(opts_.runtime_dir));
  if (own) {
    // A process of the deployment's own (its program, or the exec proxy
    // that starts its server), with its files in place.
    if (Status s = code_.linkInto(own->app, own->root_tree, dir); !s.ok()) {
      code_.removeInstanceDir(id);
      return s.withContext("preparing deployment " + own->id);
    }
    spec = runtimeTraits(own->kind).launch == Launch::kExecProxy
               ? recipes_.execProxy()
               : LaunchRecipes::ownProgram(launcher_.appDirInside(dir), own->entry, own->env);
  }
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
  int memory_mb = own ? own->memory_mb : profile.memory_mb;
  spec.isolation.memory_bytes =
      cgroups_ && cgroups_->available() ? kStemMemory : static_cast<uint64_t>(memory_mb) << 20;
  spec.isolation.background = background;
  auto target = std::make_shared<LogTarget>();
  if (own) {
    // (Its output is the deployment's from the start.)
    target->app = own->app;
    target->deployment = own->id;
    target->redact = own->redact;
  }
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
    std::shared_ptr<const std::vector<std::string>> redact;
    {
      std::lock_guard lock(target->mu);
      if (target->gone) return;
      app = target->app;
      deployment = target->deployment;
      redact = target->redact;
    }
    if (app.empty()) {
      spdlog::info("instance {} {}: {}", id, stream, std::string(line));
      return;
    }
    std::string text(line);
    if (redact) {
      for (const auto& secret : *redact) {
        for (size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 8)) {
          text.replace(at, secret.size(), "[secret]");
        }
      }
    }
    store->append(app, {wallMillis(), deployment, std::string(stream), request_id, std::move(text)});
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
  bool native = traits.ownProcess();
  // The instance runs on the shard of the request that needs it.
  const asio::any_io_executor caller = co_await asio::this_coro::executor;
  asio::io_context& shard = shardOf(caller);
  if (native) {
    // A native or exec deployment is a process of its own: started with its files in
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
      it->second->redact = spec.redact;
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
  if (opts_.metrics) {
    opts_.metrics->coldStart(spec.kind,
                             {cold->from_stem, cold->acquire_ms, cold->files_ms, cold->specialize_ms, cold->load_ms},
                             spec.metrics_app);
  }
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

PoolLoad Functions::load() {
  std::vector<std::shared_ptr<Pool>> pools;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, p] : pools_) pools.push_back(p);
  }
  PoolLoad l;
  for (auto& p : pools) l.add(p->load());
  l.stems = static_cast<int>(stems_->readyCount());
  return l;
}

size_t Functions::stemCount() { return stems_->readyCount(); }
size_t Functions::stemsStarting() { return stems_->startingCount(); }

size_t Functions::poolCount() {
  std::lock_guard lock(mu_);
  return pools_.size();
}

}  // namespace nubo::runtime
