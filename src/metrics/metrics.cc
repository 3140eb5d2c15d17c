#include "metrics/metrics.h"

#include <algorithm>

namespace nubo::metrics {

namespace {

std::atomic<uint64_t> next_id{1};

template <size_t N>
size_t bucketOf(const std::array<double, N>& bounds, double v) {
  return static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), v) - bounds.begin());
}

constexpr std::array<std::string_view, kFailures> kFailureNames = {"queue_full", "timeout", "crash", "out_of_memory",
                                                                   "start_failed"};
constexpr std::array<std::string_view, kFailures> kFailureStatus = {"503", "504", "502", "502", "502"};
constexpr std::array<std::string_view, 4> kPhaseNames = {"acquire", "files", "specialize", "load"};
constexpr std::array<std::string_view, 5> kClassNames = {"1xx", "2xx", "3xx", "4xx", "5xx"};

}  // namespace

Metrics::Metrics(size_t max_apps) : id_(next_id.fetch_add(1)), max_apps_(max_apps) {
  app_names_ = {"(none)", "(other)"};
}

Metrics::~Metrics() = default;

Metrics::AppId Metrics::app(std::string_view name) {
  std::lock_guard lock(mu_);
  if (auto it = app_ids_.find(name); it != app_ids_.end()) return it->second;
  if (app_ids_.size() >= max_apps_) return kOtherApp;
  AppId id = static_cast<AppId>(app_names_.size());
  app_names_.emplace_back(name);
  app_ids_.emplace(std::string(name), id);
  return id;
}

Metrics::Block& Metrics::mine() {
  // Each thread's blocks, one per Metrics it wrote to (ids are never reused,
  // so an entry of a Metrics gone is never matched again).
  thread_local std::vector<std::pair<uint64_t, Block*>> blocks;
  for (auto& [id, b] : blocks) {
    if (id == id_) return *b;
  }
  std::lock_guard lock(mu_);
  blocks_.push_back(std::make_unique<Block>(max_apps_ + 2));
  blocks.emplace_back(id_, blocks_.back().get());
  return *blocks_.back();
}

void Metrics::request(AppId app, int status, std::chrono::steady_clock::duration took) {
  Block& b = mine();
  AppCells& a = b.apps[app <= max_apps_ + 1 ? app : kOtherApp];
  a.classes[static_cast<size_t>(std::clamp(status / 100, 1, 5) - 1)].add();
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(took).count();
  if (ns < 0) ns = 0;
  a.latency[bucketOf(kLatencyBounds, static_cast<double>(ns) * 1e-9)].add();
  a.latency_ns.add(static_cast<uint64_t>(ns));
}

void Metrics::failed(Failure why) { mine().failures[static_cast<size_t>(why)].add(); }

void Metrics::coldStart(RuntimeKind kind, const ColdStartPhases& p, AppId app) {
  Block& b = mine();
  b.apps[app <= max_apps_ + 1 ? app : kOtherApp].cold.add();
  b.cold[static_cast<size_t>(kind)][p.from_stem ? 1 : 0].add();
  const double ms[kPhases] = {p.acquire_ms, p.files_ms, p.specialize_ms, p.load_ms};
  for (size_t i = 0; i < kPhases; ++i) {
    double v = std::max(0.0, ms[i]);
    b.phase[i][bucketOf(kColdBounds, v / 1000)].add();
    b.phase_ns[i].add(static_cast<uint64_t>(v * 1e6));
  }
}

std::vector<Metrics::AppTotals> Metrics::appTotals() {
  std::lock_guard lock(mu_);
  std::vector<AppTotals> out(app_names_.size());
  for (size_t a = 0; a < out.size(); ++a) out[a].app = app_names_[a];
  for (const auto& b : blocks_) {
    for (size_t a = 0; a < out.size(); ++a) {
      const AppCells& c = b->apps[a];
      for (size_t i = 0; i < 5; ++i) out[a].classes[i] += c.classes[i].get();
      for (size_t i = 0; i < c.latency.size(); ++i) out[a].latency[i] += c.latency[i].get();
      out[a].cold += c.cold.get();
    }
  }
  return out;
}

void Metrics::build(std::string_view outcome, double seconds) {
  std::lock_guard lock(mu_);
  auto it = builds_.find(outcome);
  if (it == builds_.end()) it = builds_.emplace(std::string(outcome), Builds{}).first;
  it->second.counts[bucketOf(kBuildBounds, seconds)]++;
  it->second.seconds += std::max(0.0, seconds);
}

void Metrics::deployed() {
  std::lock_guard lock(mu_);
  deploys_++;
}

void Metrics::uploaded(uint64_t bytes) {
  std::lock_guard lock(mu_);
  uploaded_bytes_ += bytes;
}

void Metrics::addCollector(std::function<void(Exposition&)> collect) {
  std::lock_guard lock(mu_);
  collectors_.push_back(std::move(collect));
}

std::string Metrics::render() {
  Exposition out;
  std::vector<std::function<void(Exposition&)>> collectors;
  {
    std::lock_guard lock(mu_);
    const size_t apps = app_names_.size();
    // Sums over the threads' blocks.
    std::vector<std::array<uint64_t, 5>> classes(apps);
    std::vector<std::array<uint64_t, kLatencyBounds.size() + 1>> latency(apps);
    std::vector<uint64_t> latency_ns(apps);
    std::array<uint64_t, kFailures> failures{};
    std::array<std::array<uint64_t, 2>, kRuntimes> cold{};
    std::array<std::array<uint64_t, kColdBounds.size() + 1>, kPhases> phase{};
    std::array<uint64_t, kPhases> phase_ns{};
    for (const auto& b : blocks_) {
      for (size_t a = 0; a < apps; ++a) {
        const AppCells& c = b->apps[a];
        for (size_t i = 0; i < 5; ++i) classes[a][i] += c.classes[i].get();
        for (size_t i = 0; i < c.latency.size(); ++i) latency[a][i] += c.latency[i].get();
        latency_ns[a] += c.latency_ns.get();
      }
      for (size_t i = 0; i < kFailures; ++i) failures[i] += b->failures[i].get();
      for (size_t r = 0; r < kRuntimes; ++r) {
        for (size_t s = 0; s < 2; ++s) cold[r][s] += b->cold[r][s].get();
      }
      for (size_t p = 0; p < kPhases; ++p) {
        for (size_t i = 0; i < phase[p].size(); ++i) phase[p][i] += b->phase[p][i].get();
        phase_ns[p] += b->phase_ns[p].get();
      }
    }

    out.family("nubo_http_requests_total", "counter",
               "Requests the data plane answered, by app and status class.");
    for (size_t a = 0; a < apps; ++a) {
      for (size_t i = 0; i < 5; ++i) {
        if (classes[a][i] == 0 && a < 2) continue;  // (none)/(other) only once they have some
        out.sample("nubo_http_requests_total", {{"app", app_names_[a]}, {"code", kClassNames[i]}},
                   static_cast<double>(classes[a][i]));
      }
    }
    out.family("nubo_http_request_duration_seconds", "histogram",
               "Time from a request's head read to its response's head ready, by app.");
    for (size_t a = 0; a < apps; ++a) {
      uint64_t n = 0;
      for (uint64_t c : latency[a]) n += c;
      if (n == 0 && a < 2) continue;
      out.histogram("nubo_http_request_duration_seconds", {{"app", app_names_[a]}}, kLatencyBounds, latency[a],
                    static_cast<double>(latency_ns[a]) * 1e-9);
    }
    out.family("nubo_function_failures_total", "counter",
               "Requests to functions that failed on the platform's side, by status and reason.");
    for (size_t i = 0; i < kFailures; ++i) {
      out.sample("nubo_function_failures_total", {{"status", kFailureStatus[i]}, {"reason", kFailureNames[i]}},
                 static_cast<double>(failures[i]));
    }
    out.family("nubo_cold_starts_total", "counter",
               "Instances started for requests, by runtime and kind (stem: a pre-started instance; spawn: a new process).");
    for (size_t r = 0; r < kRuntimes; ++r) {
      if (!runtimeTraits(static_cast<RuntimeKind>(r)).runsCode()) continue;
      for (size_t s = 0; s < 2; ++s) {
        out.sample("nubo_cold_starts_total",
                   {{"runtime", runtimeName(static_cast<RuntimeKind>(r))}, {"kind", s ? "stem" : "spawn"}},
                   static_cast<double>(cold[r][s]));
      }
    }
    out.family("nubo_cold_start_phase_seconds", "histogram",
               "Time cold starts spent in each phase: acquire (a stem, or a spawn until HELLO), files, "
               "specialize (until READY), load (the code loading, part of specialize).");
    for (size_t p = 0; p < kPhases; ++p) {
      out.histogram("nubo_cold_start_phase_seconds", {{"phase", kPhaseNames[p]}}, kColdBounds, phase[p],
                    static_cast<double>(phase_ns[p]) * 1e-9);
    }
    out.family("nubo_builds_total", "counter", "Builds finished, by outcome.");
    for (std::string_view o : {"succeeded", "reused", "failed", "timed_out"}) {
      auto it = builds_.find(o);
      uint64_t n = 0;
      if (it != builds_.end()) {
        for (uint64_t c : it->second.counts) n += c;
      }
      out.sample("nubo_builds_total", {{"outcome", o}}, static_cast<double>(n));
    }
    out.family("nubo_build_duration_seconds", "histogram", "How long builds took, by outcome.");
    for (const auto& [o, b] : builds_) {
      out.histogram("nubo_build_duration_seconds", {{"outcome", o}}, kBuildBounds, b.counts, b.seconds);
    }
    out.family("nubo_deploys_total", "counter", "Deployments created (deploys and redeploys).");
    out.sample("nubo_deploys_total", {}, static_cast<double>(deploys_));
    out.family("nubo_uploaded_bytes_total", "counter", "File bytes received by deploys.");
    out.sample("nubo_uploaded_bytes_total", {}, static_cast<double>(uploaded_bytes_));
    collectors = collectors_;
  }
  for (auto& c : collectors) c(out);
  return out.take();
}

}  // namespace nubo::metrics
