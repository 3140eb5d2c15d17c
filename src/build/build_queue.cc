#include "build/build_queue.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "common/clock.h"

namespace nubo::build {

std::string builderFor(const manifest::Manifest& m) {
  if (!m.build.builder.empty()) return m.build.builder;
  if (!m.build.command.empty() || runtimeTraits(manifest::runtimeKind(m)).always_built) return m.runtime;
  return "";
}

BuildQueue::BuildQueue(store::MetadataStore& store, Builder& runner, logs::LogStore& logs, Verify verify,
                       QueueOptions options, Start start, DependencyReuse* reuse)
    : store_(store), runner_(runner), logs_(logs), verify_(std::move(verify)), opts_(options),
      start_(std::move(start)), reuse_(reuse) {}

BuildQueue::~BuildQueue() { shutdown(); }

void BuildQueue::start() {
  runner_.removeLeftovers();
  // Builds an earlier run did not finish start over, oldest first (in a
  // fleet, those no other node has claimed).
  std::vector<store::Deployment> unfinished;
  if (auto unbuilt = store_.listUnbuilt(); unbuilt.ok()) {
    for (auto& d : *unbuilt) {
      if (claim(d.id)) unfinished.push_back(std::move(d));
    }
  } else {
    spdlog::error("builds: could not list unfinished builds: {}", unbuilt.status().message());
  }
  std::vector<store::Deployment> again;
  for (auto& d : unfinished) {
    if (d.build_attempts < opts_.max_attempts) {
      again.push_back(std::move(d));
      continue;
    }
    std::string why = "the build was interrupted " + std::to_string(d.build_attempts) +
                      " times (the server stopped or crashed while it ran) and is not tried again; "
                      "look at its log (nubo build-logs " + d.id + "), then nubo redeploy " + d.id;
    note(d.id, "build failed: " + why);
    if (Status s = store_.finishBuild(d.id, store::DeploymentState::kFailed, "", why, "builder"); !s.ok()) {
      spdlog::error("build {}: could not record its failure: {}", d.id, s.message());
    }
    spdlog::warn("builds: {} of app {} was interrupted {} times; it is FAILED", d.id, d.app, d.build_attempts);
    release(d.id);
  }
  {
    std::lock_guard lock(mu_);
    for (auto& d : again) {
      bool queued = std::any_of(waiting_.begin(), waiting_.end(), [&](const auto& w) { return w.id == d.id; });
      if (queued) continue;
      std::string text = "the server restarted during this build: it starts over";
      if (!d.promote_alias.empty()) text += ", and " + d.promote_alias + " moves to it when it is READY";
      logs_.append(d.id, {wallMillis(), d.id, "nubo", "", text});
      waiting_.push_back(d);
    }
  }
  if (!again.empty()) spdlog::info("builds: {} unfinished build(s) start over", again.size());
  for (int i = 0; i < std::max(1, opts_.concurrency); ++i) threads_.emplace_back([this] { work(); });
  if (!opts_.node.empty()) threads_.emplace_back([this] { tend(); });
}

bool BuildQueue::claim(const std::string& id) {
  if (opts_.node.empty()) return true;
  auto held = store_.acquireLease("build/" + id, opts_.node, opts_.claim_ttl);
  if (!held.ok()) return false;  // another node's (or the store is away: the sweep tries again)
  std::lock_guard lock(mu_);
  claimed_.insert(id);
  return true;
}

void BuildQueue::release(const std::string& id) {
  if (opts_.node.empty()) return;
  {
    std::lock_guard lock(mu_);
    claimed_.erase(id);
    lost_.erase(id);
  }
  (void)store_.releaseLease("build/" + id, opts_.node);
}

void BuildQueue::tend() {
  auto last_sweep = std::chrono::steady_clock::now();
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, opts_.claim_ttl / 3, [this] { return stopping_; })) {
    std::set<std::string> held = claimed_;
    lock.unlock();
    for (const auto& id : held) {
      auto renewed = store_.acquireLease("build/" + id, opts_.node, opts_.claim_ttl);
      if (renewed.ok() || renewed.status().code() != Code::kFailedPrecondition) continue;
      // Another node has it now (this one was cut off too long): stop.
      spdlog::warn("builds: {} was taken over by another node: this node stops building it", id);
      std::lock_guard relock(mu_);
      claimed_.erase(id);
      waiting_.erase(std::remove_if(waiting_.begin(), waiting_.end(), [&](const auto& d) { return d.id == id; }),
                     waiting_.end());
      for (const auto& [app, building] : building_) {
        if (building == id) {
          lost_.insert(id);
          runner_.cancel(id);
        }
      }
    }
    if (std::chrono::steady_clock::now() - last_sweep >= opts_.sweep) {
      last_sweep = std::chrono::steady_clock::now();
      auto unbuilt = store_.listUnbuilt();
      for (const auto& d : unbuilt.ok() ? *unbuilt : std::vector<store::Deployment>()) {
        {
          std::lock_guard check(mu_);
          if (claimed_.count(d.id)) continue;
        }
        if (!claim(d.id)) continue;
        if (d.build_attempts >= opts_.max_attempts) {
          std::string why = "the build was interrupted " + std::to_string(d.build_attempts) +
                            " times (the nodes running it stopped) and is not tried again; look at its log, then "
                            "nubo redeploy " + d.id;
          note(d.id, "build failed: " + why);
          (void)store_.finishBuild(d.id, store::DeploymentState::kFailed, "", why, "builder");
          release(d.id);
          continue;
        }
        note(d.id, "the node building it stopped: this node (" + opts_.node + ") takes the build over");
        spdlog::info("builds: taking over {} of app {} (its node stopped)", d.id, d.app);
        std::lock_guard relock(mu_);
        waiting_.push_back(d);
        cv_.notify_all();
      }
    }
    lock.lock();
  }
}

void BuildQueue::shutdown() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  runner_.cancelAll();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

Status BuildQueue::submit(const store::Deployment& d) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return Unavailable("the server is shutting down; deploy again once it is back");
    if (waiting_.size() >= opts_.max_queued) {
      return ResourceExhausted("the build queue is full (" + std::to_string(opts_.max_queued) +
                               " builds waiting); try again in a minute");
    }
  }
  if (!claim(d.id)) return Status::Ok();  // (another node took it already)
  {
    std::lock_guard lock(mu_);
    waiting_.push_back(d);
  }
  note(d.id, "queued for a build");
  cv_.notify_one();
  return Status::Ok();
}

void BuildQueue::removeApp(const std::string& app) {
  bool running = false;
  {
    std::lock_guard lock(mu_);
    waiting_.erase(std::remove_if(waiting_.begin(), waiting_.end(), [&](const auto& d) { return d.app == app; }),
                   waiting_.end());
    if (auto it = building_.find(app); it != building_.end()) {
      running = true;
      removed_apps_.insert(app);
      runner_.cancel(it->second);
    }
  }
  if (!running) runner_.removeCache(app);
}

size_t BuildQueue::queued() const {
  std::lock_guard lock(mu_);
  return waiting_.size();
}

void BuildQueue::note(const std::string& deployment, const std::string& text) {
  logs_.append(deployment, {wallMillis(), deployment, "nubo", "", text});
}

void BuildQueue::work() {
  for (;;) {
    store::Deployment next;
    {
      std::unique_lock lock(mu_);
      // The oldest waiting build whose app has no build running.
      auto pick = [this] {
        for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
          if (!building_.count(it->app)) return it;
        }
        return waiting_.end();
      };
      cv_.wait(lock, [&] { return stopping_ || pick() != waiting_.end(); });
      if (stopping_) return;
      auto it = pick();
      next = std::move(*it);
      waiting_.erase(it);
      building_.emplace(next.app, next.id);
    }
    build(next);
    bool removed = false;
    {
      std::lock_guard lock(mu_);
      building_.erase(next.app);
      removed = removed_apps_.erase(next.app) > 0;
    }
    if (removed) runner_.removeCache(next.app);
    cv_.notify_all();
  }
}

void BuildQueue::build(const store::Deployment& d) {
  const auto t0 = std::chrono::steady_clock::now();
  std::string_view outcome = "failed";
  struct Count {  // the build's outcome and time, however it ends
    metrics::Metrics* m;
    const std::string_view& outcome;
    std::chrono::steady_clock::time_point t0;
    void now() {
      if (m) m->build(outcome, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      m = nullptr;
    }
    ~Count() { now(); }
  } count{nullptr, outcome, t0};
  struct Release {  // a fleet's claim, given up however the build ends
    BuildQueue* q;
    const std::string& id;
    ~Release() { q->release(id); }
  } release_claim{this, d.id};
  // Whether this node may still record the build's end (a claim lost
  // while it ran: another node builds it now).
  auto still_mine = [&] {
    if (opts_.node.empty()) return true;
    {
      std::lock_guard lock(mu_);
      if (lost_.count(d.id)) return false;
    }
    return store_.acquireLease("build/" + d.id, opts_.node, opts_.claim_ttl).ok();
  };
  // Counted before the outcome is recorded: a client that sees it can
  // already see the count.
  auto fail = [&](const std::string& why) {
    if (!still_mine()) {
      count.m = nullptr;
      return;
    }
    count.now();
    note(d.id, "build failed: " + why);
    Status s = store_.finishBuild(d.id, store::DeploymentState::kFailed, "", why, "builder");
    if (!s.ok()) spdlog::error("build {}: could not record its failure: {}", d.id, s.message());
  };
  // Queued twice (submitted while start() found it unfinished), or its app
  // removed meanwhile: only an unfinished deployment is built.
  auto current = store_.getDeployment(d.id);
  if (!current.ok() || (current->state != store::DeploymentState::kQueued &&
                        current->state != store::DeploymentState::kBuilding)) {
    return;
  }
  if (!still_mine()) return;  // (a fleet: another node builds it)
  count.m = opts_.metrics;
  auto parsed = manifest::parseManifestText(d.manifest_json);
  if (!parsed.ok()) return fail("its manifest no longer parses: " + parsed.status().message());
  if (Status s = store_.setDeploymentState(d.id, store::DeploymentState::kBuilding); !s.ok()) {
    if (s.code() != Code::kNotFound) spdlog::error("build {}: {}", d.id, s.message());
    return;  // removed with its app meanwhile
  }
  BuildJob job{d.id, d.app, builderFor(*parsed), d.root_tree, d.manifest_json};
  Result<BuildOutput> out = Internal("no build ran");
  auto reused = reuse_ ? reuse_->outputFor(d, *parsed, job.builder) : Result<std::optional<Reused>>(std::nullopt);
  if (!reused.ok()) spdlog::warn("build {}: could not look for dependencies to reuse: {}", d.id, reused.status().message());
  if (reused.ok() && *reused) {
    note(d.id, "the dependencies are those deployment " + (*reused)->from + " installed (package.json, "
               "package-lock.json, .npmrc and local packages unchanged): its node_modules is reused, no build runs");
    out = BuildOutput{(*reused)->tree};
    outcome = "reused";
  } else {
    out = runner_.run(job, [this, &d](std::string_view stream, std::string_view line) {
      logs_.append(d.id, {wallMillis(), d.id, std::string(stream), "", std::string(line)});
    });
  }
  if (!out.ok() && (runner_.cancelled() || !still_mine())) {
    count.m = nullptr;  // shutting down (it starts over at the next start), or another node has it
    return;
  }
  if (!out.ok() && out.status().code() == Code::kDeadlineExceeded) outcome = "timed_out";
  if (!out.ok() && out.status().code() == Code::kNotFound && !store_.getDeployment(d.id).ok()) return;  // app removed
  if (!out.ok()) return fail(out.status().message());
  if (verify_) {
    if (Status s = verify_(d, out->tree); !s.ok()) return fail(s.message());
  }
  if (!still_mine()) {
    count.m = nullptr;
    return;
  }
  // Code is started once before it serves; files serve as built.
  bool check = start_ && runtimeTraits(d.runtimeKind()).runsCode();
  Status s = store_.finishBuild(d.id, check ? store::DeploymentState::kStarting : store::DeploymentState::kReady,
                                out->tree, "", "builder");
  if (!s.ok()) {
    spdlog::error("build {}: could not record its result: {}", d.id, s.message());
    return;
  }
  if (outcome != "reused") outcome = "succeeded";
  count.now();  // (not counting the start check)
  if (!check) return note(d.id, "READY");
  store::Deployment built = d;
  built.state = store::DeploymentState::kStarting;
  built.output_tree = out->tree;
  if (Status started = start_(built); !started.ok()) {
    note(d.id, "could not start it: " + started.message());
    (void)store_.finishBuild(d.id, store::DeploymentState::kFailed, "", started.message(), "builder");
  }
}

}  // namespace nubo::build
