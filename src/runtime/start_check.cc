#include "runtime/start_check.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <chrono>

#include "common/clock.h"

namespace nubo::runtime {

namespace asio = boost::asio;


StartCheck::StartCheck(store::MetadataStore& store, logs::LogStore& build_logs,
                       std::vector<asio::io_context*> shards, Probe probe, StartCheckOptions options)
    : store_(store), logs_(build_logs), shards_(std::move(shards)), probe_(std::move(probe)), opts_(options) {}

StartCheck::~StartCheck() {
  shutdown();
  {
    std::lock_guard lock(alive_->mu);
    alive_->gone = true;
  }
  writer_.join();  // what was posted before runs now (and finds stopping_)
}

void StartCheck::start() {
  std::vector<store::Deployment> again;
  if (auto apps = store_.listApps(); apps.ok()) {
    for (const auto& app : *apps) {
      auto ds = store_.listDeployments(app.name, 0);
      if (!ds.ok()) continue;
      for (auto it = ds->rbegin(); it != ds->rend(); ++it) {
        if (it->state == store::DeploymentState::kStarting) again.push_back(*it);
      }
    }
  }
  for (const auto& d : again) {
    note(d.id, "the server restarted before this deployment's start was checked: it is checked again");
    if (Status s = submit(d); !s.ok()) spdlog::warn("start check of {}: {}", d.id, s.message());
  }
  if (!again.empty()) spdlog::info("start checks: {} deployment(s) left STARTING are checked again", again.size());
}

void StartCheck::shutdown() {
  std::lock_guard lock(mu_);
  stopping_ = true;
  waiting_.clear();
}

Status StartCheck::submit(const store::Deployment& d) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return Unavailable("the server is shutting down; deploy again once it is back");
    if (std::any_of(waiting_.begin(), waiting_.end(), [&](const auto& w) { return w.id == d.id; })) {
      return Status::Ok();
    }
    auto of_app = std::count_if(waiting_.begin(), waiting_.end(), [&](const auto& w) { return w.app == d.app; });
    if (static_cast<size_t>(of_app) >= opts_.max_queued_per_app) {
      return ResourceExhausted("app " + d.app + " has " + std::to_string(of_app) + " deployments waiting to be "
                               "started already; wait for them (nubo ls) and deploy again");
    }
    if (waiting_.size() >= opts_.max_queued) {
      return ResourceExhausted("too many deployments are waiting to be started (" +
                               std::to_string(opts_.max_queued) + "); try again in a minute");
    }
    waiting_.push_back(d);
  }
  note(d.id, "starting one instance to check that it starts");
  std::lock_guard lock(mu_);
  launchLocked();
  return Status::Ok();
}

void StartCheck::launchLocked() {
  while (!stopping_ && static_cast<int>(running_.size()) < opts_.concurrency && !shards_.empty()) {
    // The oldest waiting deployment whose app has no probe running.
    auto next = std::find_if(waiting_.begin(), waiting_.end(), [&](const auto& w) { return !running_.count(w.app); });
    if (next == waiting_.end()) return;
    store::Deployment d = std::move(*next);
    waiting_.erase(next);
    running_.insert(d.app);
    asio::io_context& shard = *shards_[next_shard_++ % shards_.size()];
    asio::co_spawn(
        shard,
        [this, d, alive = alive_, probe = probe_]() -> asio::awaitable<void> {
          // (The probe is this frame's own copy, and `alive` says whether
          // this StartCheck still exists: a probe may outlast it.)
          Result<std::string> outcome = Internal("the start check ended without a result");
          try {
            outcome = co_await probe(d);
          } catch (const std::exception& e) {
            outcome = Internal(std::string("the start check failed: ") + e.what());
          }
          std::lock_guard gone_lock(alive->mu);
          if (alive->gone) co_return;
          // The store is written off the data plane.
          asio::post(writer_, [this, d, outcome] {
            finish(d, outcome);
            std::lock_guard lock(mu_);
            running_.erase(d.app);
            launchLocked();
          });
        },
        asio::detached);
  }
}

void StartCheck::finish(const store::Deployment& d, const Result<std::string>& outcome) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;  // interrupted (its instance was stopped): checked again at the next start
  }
  Status s;
  if (outcome.ok()) {
    note(d.id, *outcome);
    s = store_.finishBuild(d.id, store::DeploymentState::kReady, "", "", "nubo");
    if (s.ok()) note(d.id, "READY");
  } else {
    std::string why = "it failed to start: " + outcome.status().message();
    note(d.id, why);
    s = store_.finishBuild(d.id, store::DeploymentState::kFailed, "", why, "nubo");
  }
  // Removed with its app meanwhile: nothing to record.
  if (!s.ok() && s.code() != Code::kNotFound) {
    spdlog::error("start check of {}: could not record its result: {}", d.id, s.message());
  }
}

void StartCheck::note(const std::string& deployment, const std::string& text) {
  logs_.append(deployment, {wallMillis(), deployment, "nubo", "", text});
}

}  // namespace nubo::runtime
