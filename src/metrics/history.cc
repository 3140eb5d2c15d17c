#include "metrics/history.h"

#include <algorithm>

namespace nubo::metrics {

namespace {
constexpr int64_t kMinuteMs = 60'000;
}

void History::sample(int64_t now_ms) {
  std::vector<Metrics::AppTotals> totals = metrics_.appTotals();
  const int64_t minute = now_ms - now_ms % kMinuteMs;
  std::lock_guard lock(mu_);
  for (auto& t : totals) {
    if (t.app == "(none)") continue;
    auto [it, first] = last_.try_emplace(t.app, Metrics::AppTotals{t.app});
    Metrics::AppTotals& before = it->second;
    uint64_t requests = 0, before_requests = 0;
    for (size_t i = 0; i < 5; ++i) requests += t.classes[i], before_requests += before.classes[i];
    if (requests == before_requests && t.cold == before.cold) continue;  // nothing new
    std::vector<Minute>& ring = minutes_by_app_[t.app];
    if (ring.empty()) ring.resize(minutes_);
    Minute& m = ring[static_cast<size_t>(minute / kMinuteMs) % minutes_];
    if (m.minute_ms != minute) m = Minute{minute, 0, 0, 0, std::vector<uint64_t>(t.latency.size())};
    m.requests += requests - before_requests;
    m.errors += t.classes[4] - before.classes[4];
    m.cold += t.cold - before.cold;
    for (size_t i = 0; i < t.latency.size(); ++i) m.latency[i] += t.latency[i] - before.latency[i];
    before = std::move(t);
  }
}

std::vector<History::Point> History::series(std::string_view app, int64_t now_ms, size_t minutes) const {
  minutes = std::min(minutes, minutes_);
  const int64_t last = now_ms - now_ms % kMinuteMs;
  std::vector<Point> out;
  out.reserve(minutes);
  std::lock_guard lock(mu_);
  auto it = minutes_by_app_.find(app);
  for (size_t i = minutes; i-- > 0;) {
    Point p;
    p.minute_ms = last - static_cast<int64_t>(i) * kMinuteMs;
    if (it != minutes_by_app_.end()) {
      const Minute& m = it->second[static_cast<size_t>(p.minute_ms / kMinuteMs) % minutes_];
      if (m.minute_ms == p.minute_ms) {
        p.requests = m.requests, p.errors = m.errors, p.cold = m.cold;
        p.p50_s = quantile(m.latency, 0.5);
        p.p99_s = quantile(m.latency, 0.99);
      }
    }
    out.push_back(p);
  }
  return out;
}

double History::quantile(const std::vector<uint64_t>& buckets, double q) {
  uint64_t n = 0;
  for (uint64_t c : buckets) n += c;
  if (n == 0) return 0;
  const auto& bounds = Metrics::kLatencyBounds;
  double rank = q * static_cast<double>(n);
  uint64_t below = 0;
  for (size_t i = 0; i < buckets.size(); ++i) {
    if (buckets[i] == 0 || static_cast<double>(below + buckets[i]) < rank) {
      below += buckets[i];
      continue;
    }
    if (i >= bounds.size()) return bounds.back();  // above the last bound: say the bound
    double lo = i == 0 ? 0 : bounds[i - 1];
    double within = (rank - static_cast<double>(below)) / static_cast<double>(buckets[i]);
    return lo + (bounds[i] - lo) * std::clamp(within, 0.0, 1.0);
  }
  return bounds.back();
}

}  // namespace nubo::metrics
