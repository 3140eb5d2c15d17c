// Metrics: what the server counts, rendered for GET /metrics in the
// Prometheus text format (metrics/exposition.h).
//
// The data plane's counters (requests by app and status class and their
// latency, failed requests by reason, cold starts and their phases) live
// in one block per thread that writes them: a thread adds to its own cells
// with a plain load and store (one writer; relaxed atomics so a scrape may
// read them), never a lock or a cache line another thread writes. render()
// sums the blocks. A thread finds its block through a thread_local list,
// taking the lock once per thread and Metrics.
//
// Apps are labelled by name for the first `max_apps` names app() is asked
// for (under the lock, by the router when it loads routes, never per
// request); the rest count as app="(other)", and requests that reached no
// app as app="(none)" (app names cannot contain parentheses). An app keeps
// its id until the server restarts, so a label never changes meaning.
//
// Builds and deploys (the control plane, a few a second at most) share
// counters under the lock. Gauges of other components (instances, caches,
// the process) come from collectors registered at wiring time and called
// by render().
//
// Thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/runtime_kind.h"
#include "metrics/exposition.h"

namespace nubo::metrics {

// Why a request to a function failed on the platform's side.
enum class Failure : uint8_t {
  kQueueFull,    // 503: every instance busy and the queue full or waited out
  kTimeout,      // 504: over limits.timeout_ms
  kCrash,        // 502: the instance died or broke the protocol
  kOutOfMemory,  // 502: the instance was killed over limits.memory_mb
  kStartFailed,  // 500/502: no instance started (the code failed to load, ...)
};
inline constexpr size_t kFailures = 5;

// A cold start's phases in milliseconds (as runtime::ColdStart has them).
struct ColdStartPhases {
  bool from_stem = false;
  double acquire_ms = 0, files_ms = 0, specialize_ms = 0, load_ms = 0;
};

class Metrics {
 public:
  using AppId = uint32_t;
  static constexpr AppId kNoApp = 0;     // app="(none)"
  static constexpr AppId kOtherApp = 1;  // app="(other)"

  explicit Metrics(size_t max_apps = 1000);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // The id `app` is counted under (kOtherApp past max_apps). Takes the lock.
  AppId app(std::string_view name);

  // The request path: no lock (after a thread's first call), no allocation.
  // `took`: from the request's head read to its response's head ready.
  void request(AppId app, int status, std::chrono::steady_clock::duration took);
  void failed(Failure why);
  void coldStart(RuntimeKind kind, const ColdStartPhases& phases, AppId app = kNoApp);

  // The control plane.
  // `outcome`: "succeeded", "reused" (an earlier build's dependencies, no
  // build ran), "failed" or "timed_out".
  void build(std::string_view outcome, double seconds);
  void deployed();
  void uploaded(uint64_t bytes);

  // Called by render() to add their families (gauges of other components).
  // Register before the server serves.
  void addCollector(std::function<void(Exposition&)> collect);

  std::string render();


  static constexpr std::array<double, 14> kLatencyBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                            0.1,    0.25,  0.5,    1,     2.5,  5,     10};
  static constexpr std::array<double, 12> kColdBounds = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                                         0.05,   0.1,   0.25,  0.5,   1,    2.5};
  static constexpr std::array<double, 10> kBuildBounds = {1, 2, 5, 10, 30, 60, 120, 300, 600, 1800};

  // Each app's counts since the server started (for History).
  struct AppTotals {
    std::string app;
    std::array<uint64_t, 5> classes{};
    std::array<uint64_t, kLatencyBounds.size() + 1> latency{};
    uint64_t cold = 0;
  };
  std::vector<AppTotals> appTotals();

 private:
  // One writer (the thread owning its block); readers load relaxed.
  struct Cell {
    std::atomic<uint64_t> v{0};
    void add(uint64_t n = 1) { v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
    uint64_t get() const { return v.load(std::memory_order_relaxed); }
  };
  struct AppCells {
    std::array<Cell, 5> classes;  // 1xx..5xx
    std::array<Cell, kLatencyBounds.size() + 1> latency;
    Cell latency_ns;
    Cell cold;
  };
  static constexpr size_t kRuntimes = static_cast<size_t>(RuntimeKind::kExec) + 1;
  static constexpr size_t kPhases = 4;  // acquire, files, specialize, load
  struct Block {
    explicit Block(size_t apps) : apps(new AppCells[apps]) {}
    std::unique_ptr<AppCells[]> apps;
    std::array<Cell, kFailures> failures;
    std::array<std::array<Cell, 2>, kRuntimes> cold;  // [runtime][from_stem]
    std::array<std::array<Cell, kColdBounds.size() + 1>, kPhases> phase;
    std::array<Cell, kPhases> phase_ns;
  };
  struct Builds {
    std::array<uint64_t, kBuildBounds.size() + 1> counts{};
    double seconds = 0;
  };
  Block& mine();

  const uint64_t id_;  // tells this Metrics from others in a thread's list
  const size_t max_apps_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Block>> blocks_;    // guarded by mu_
  std::vector<std::string> app_names_;            // guarded by mu_: by AppId
  std::map<std::string, AppId, std::less<>> app_ids_;  // guarded by mu_
  std::map<std::string, Builds, std::less<>> builds_;  // guarded by mu_: by outcome
  uint64_t deploys_ = 0, uploaded_bytes_ = 0;     // guarded by mu_
  std::vector<std::function<void(Exposition&)>> collectors_;  // guarded by mu_
};

}  // namespace nubo::metrics
