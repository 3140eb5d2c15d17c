// History: each app's traffic over the last hour, minute by minute
// (requests, 5xx answers, cold starts, latency quantiles), for the
// console's charts.
//
// sample() takes Metrics' totals and adds what changed since the previous
// call to the minute its `now_ms` falls in; the server calls it every few
// seconds on the control plane, tests with the times they choose. Kept in
// memory (at most Metrics' apps × `minutes` points): a restart starts an
// empty history, as Prometheus counters start again.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "metrics/metrics.h"

namespace nubo::metrics {

class History {
 public:
  explicit History(Metrics& metrics, size_t minutes = 60) : metrics_(metrics), minutes_(minutes) {}

  void sample(int64_t now_ms);

  struct Point {
    int64_t minute_ms = 0;  // the minute's start
    uint64_t requests = 0, errors = 0, cold = 0;  // errors: 5xx answers
    double p50_s = 0, p99_s = 0;  // 0 without requests
  };
  // The app's last `minutes` minutes up to now_ms, oldest first (minutes
  // without traffic as zeros; all zeros for an app never served).
  std::vector<Point> series(std::string_view app, int64_t now_ms, size_t minutes) const;

  // The quantile `q` of latencies counted in `buckets` (Metrics'
  // kLatencyBounds; the last bucket reads as its lower bound), interpolated
  // within the bucket it falls in.
  static double quantile(const std::vector<uint64_t>& buckets, double q);

 private:
  struct Minute {
    int64_t minute_ms = 0;
    uint64_t requests = 0, errors = 0, cold = 0;
    std::vector<uint64_t> latency;  // per bucket
  };
  Metrics& metrics_;
  const size_t minutes_;
  mutable std::mutex mu_;
  std::map<std::string, Metrics::AppTotals, std::less<>> last_;      // guarded by mu_: totals at the last sample
  std::map<std::string, std::vector<Minute>, std::less<>> minutes_by_app_;  // guarded by mu_: ring, by minute
};

}  // namespace nubo::metrics
