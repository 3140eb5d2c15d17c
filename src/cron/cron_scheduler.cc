#include "cron/cron_scheduler.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <chrono>

#include "common/cron_schedule.h"
#include "common/json.h"
#include "common/sha256.h"
#include "manifest/manifest.h"

namespace nubo::cron {
namespace {

constexpr int64_t kMaxSleepMs = 60'000;

std::string slotKey(const std::string& app, const std::string& schedule, const std::string& path) {
  return "cron/" + app + "/" + sha256Hex(schedule + "\n" + path).substr(0, 16);
}

std::string runKey(const std::string& slot_key) { return "cron-run/" + slot_key.substr(5); }

int64_t slotOf(const store::KeyValue& kv) {
  auto j = parseJson(kv.value, "cron record");
  return j.ok() && j->is_object() ? j->value("slot", int64_t{0}) : 0;
}

}  // namespace

CronScheduler::CronScheduler(store::MetadataStore& store, logs::LogStore& logs, Clock& clock, Fire fire,
                             int firing_threads)
    : store_(store), logs_(logs), clock_(clock), fire_(std::move(fire)), pool_(static_cast<size_t>(firing_threads)) {}

CronScheduler::~CronScheduler() {
  stop();
  pool_.join();
}

void CronScheduler::stop() {
  if (watch_id_) store_.unwatch(watch_id_);
  watch_id_ = 0;
  cancel_ = true;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void CronScheduler::start() {
  watch_id_ = store_.watch([this](const store::Change& c) {
    if (c.kind != store::Change::Kind::kAlias && c.kind != store::Change::Kind::kApp &&
        c.kind != store::Change::Kind::kResync) {
      return;
    }
    {
      std::lock_guard lock(mu_);
      changed_ = true;
    }
    wake_.notify_all();
  });
  thread_ = std::thread([this] { loop(); });
}

void CronScheduler::loop() {
  for (;;) {
    std::optional<int64_t> next = tick();
    int64_t now = clock_.nowMillis();
    int64_t wait_ms = next ? std::clamp<int64_t>(*next - now, 1, kMaxSleepMs) : kMaxSleepMs;
    std::unique_lock lock(mu_);
    wake_.wait_for(lock, std::chrono::milliseconds(wait_ms), [this] { return stop_ || changed_; });
    if (stop_) return;
    changed_ = false;
  }
}

Result<std::vector<CronScheduler::Entry>> CronScheduler::entriesOf(const std::string& app) {
  std::vector<Entry> out;
  ASSIGN_OR_RETURN(auto aliases, store_.listAliases(app));
  std::string production;
  for (const auto& a : aliases) {
    if (a.name == "production") production = a.deployment_id;
  }
  if (production.empty()) return out;
  ASSIGN_OR_RETURN(store::Deployment d, store_.getDeployment(production));
  auto m = manifest::parseManifestText(d.manifest_json);
  if (!m.ok()) return out;
  for (const auto& job : m->cron) {
    out.push_back({app, d.id, job.schedule, job.path, slotKey(app, job.schedule, job.path)});
  }
  return out;
}

std::optional<int64_t> CronScheduler::tick() {
  std::optional<int64_t> soonest;
  auto apps = store_.listApps();
  if (!apps.ok()) {
    spdlog::warn("cron: listing apps failed: {}", apps.status().message());
    return clock_.nowMillis() + 5000;
  }
  for (const auto& app : *apps) {
    auto entries = entriesOf(app.name);
    if (!entries.ok()) continue;
    for (const Entry& e : *entries) {
      auto schedule = CronSchedule::parse(e.schedule);
      if (!schedule.ok()) continue;  // (validated when deployed)
      int64_t now = clock_.nowMillis();
      if (auto n = schedule->next(now); n && (!soonest || *n < *soonest)) soonest = n;
      std::optional<int64_t> due = schedule->previous(now);
      auto kv = store_.getKey(e.key);
      if (!kv.ok()) continue;
      if (!*kv) {
        // First seen: from now on (a time already past is not made up).
        (void)store_.compareAndSwap(e.key, 0, dumpJson(Json{{"slot", due.value_or(now)}, {"since", now}}));
        continue;
      }
      if (!due || *due <= slotOf(**kv)) continue;
      // Claimed before it is sent: whoever wins the swap fires it, once.
      if (!store_.compareAndSwap(e.key, (*kv)->version, dumpJson(Json{{"slot", *due}})).ok()) continue;
      fire(e, *due);
    }
  }
  return soonest;
}

void CronScheduler::fire(const Entry& e, int64_t slot) {
  {
    std::lock_guard lock(mu_);
    if (!running_.insert(e.key).second) {
      logs_.append(e.app, {clock_.nowMillis(), e.deployment, "nubo", "",
                           "cron " + e.schedule + " " + e.path + ": skipped, the run before is still going"});
      return;
    }
    ++in_flight_;
  }
  boost::asio::post(pool_, [this, e, slot] {
    CronRun run{e.app, e.deployment, e.schedule, e.path, slot};
    auto t0 = std::chrono::steady_clock::now();
    CronResult r = fire_(run, cancel_);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    record(e, slot, r, ms);
    std::lock_guard lock(mu_);
    running_.erase(e.key);
    if (--in_flight_ == 0) idle_.notify_all();
  });
}

void CronScheduler::record(const Entry& e, int64_t slot, const CronResult& r, double duration_ms) {
  char took[32];
  std::snprintf(took, sizeof took, "%.0f ms", duration_ms);
  std::string outcome = r.status ? std::to_string(r.status) : "failed (" + r.error + ")";
  logs_.append(e.app, {clock_.nowMillis(), e.deployment, "nubo", r.request_id,
                       "cron " + e.schedule + " " + e.path + ": " + outcome + " in " + took});
  Json run = {{"slot", slot},        {"at", clock_.nowMillis()},  {"status", r.status},
              {"ms", duration_ms},   {"request_id", r.request_id}, {"error", r.error},
              {"deployment", e.deployment}};
  std::string key = runKey(e.key);
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto kv = store_.getKey(key);
    if (!kv.ok()) break;
    if (store_.compareAndSwap(key, *kv ? (*kv)->version : 0, dumpJson(run)).ok()) return;
  }
  spdlog::warn("cron: could not record the run of {} {} of app {}", e.schedule, e.path, e.app);
}

void CronScheduler::drain() {
  std::unique_lock lock(mu_);
  idle_.wait(lock, [this] { return in_flight_ == 0; });
}

Result<std::vector<EntryState>> CronScheduler::describe(const std::string& app) {
  ASSIGN_OR_RETURN(auto entries, entriesOf(app));
  std::vector<EntryState> out;
  int64_t now = clock_.nowMillis();
  for (const Entry& e : entries) {
    EntryState s;
    s.schedule = e.schedule;
    s.path = e.path;
    s.deployment = e.deployment;
    if (auto sched = CronSchedule::parse(e.schedule); sched.ok()) s.next_ms = sched->next(now);
    ASSIGN_OR_RETURN(auto last, store_.getKey(runKey(e.key)));
    if (last) {
      auto j = parseJson(last->value, "cron run");
      if (j.ok() && j->is_object()) {
        s.last_slot_ms = j->value("slot", int64_t{0});
        s.last_run_ms = j->value("at", int64_t{0});
        s.last_status = j->value("status", 0);
        s.last_duration_ms = j->value("ms", 0.0);
        s.last_request_id = j->value("request_id", std::string());
        s.last_error = j->value("error", std::string());
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace nubo::cron
