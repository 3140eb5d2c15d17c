// CronScheduler: the `cron` entries of each app's production deployment,
// fired as requests at their time (UTC), at most once per scheduled time.
//
// Contract:
//   - The entries are those of the deployment `production` points at (the
//     heaviest of a split); moving production moves them. An entry is known
//     by its app, schedule and path, so a new deployment with the same entry
//     goes on where the last left off.
//   - A firing is recorded in the MetadataStore (compare-and-swap on the
//     entry's record, so one claimant wins across threads, restarts and
//     nodes) before it is sent. After downtime the one most recent missed
//     time is made up, not every one; an entry seen for the first time
//     waits for its next time.
//   - A run still going when its next time comes is not started twice: that
//     time is skipped (and logged).
//   - Each run is logged in the app's logs with its request id, status and
//     duration, and kept as the entry's last run (describe()).
//   - Time comes from the Clock seam: tick() evaluates "now" (tests move a
//     FakeClock and call it); start() runs a thread that ticks at each next
//     time and whenever an alias moves.
// Thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/thread_pool.hpp>

#include "common/clock.h"
#include "common/status.h"
#include "logs/log_store.h"
#include "store/metadata_store.h"

namespace nubo::cron {

// One firing: what to call.
struct CronRun {
  std::string app;
  std::string deployment;
  std::string schedule;
  std::string path;
  int64_t slot_ms = 0;  // the scheduled time
};

// How it went.
struct CronResult {
  int status = 0;  // HTTP status; 0 when no answer came
  std::string request_id;
  std::string error;  // when no answer came
};

// Sends the request (blocking; called on one of the scheduler's firing
// threads); gives up soon once `cancel` is set (the server is stopping).
using Fire = std::function<CronResult(const CronRun& run, const std::atomic<bool>& cancel)>;

// An entry of an app, as `nubo cron ls` shows it.
struct EntryState {
  std::string schedule;
  std::string path;
  std::string deployment;
  std::optional<int64_t> next_ms;
  int64_t last_slot_ms = 0;  // 0: never run
  int64_t last_run_ms = 0;
  int last_status = 0;
  double last_duration_ms = 0;
  std::string last_request_id;
  std::string last_error;
};

class CronScheduler {
 public:
  CronScheduler(store::MetadataStore& store, logs::LogStore& logs, Clock& clock, Fire fire, int firing_threads = 2);
  ~CronScheduler();  // stops the thread and waits for runs in flight
  CronScheduler(const CronScheduler&) = delete;
  CronScheduler& operator=(const CronScheduler&) = delete;

  void start();
  // Stops ticking and cancels the runs in flight (the server is stopping).
  void stop();
  // Claims and fires every entry whose time has come; the next time one is
  // due (nullopt: none is scheduled).
  std::optional<int64_t> tick();
  // Blocks until the runs fired so far have finished (tests).
  void drain();
  Result<std::vector<EntryState>> describe(const std::string& app);

 private:
  struct Entry {
    std::string app, deployment, schedule, path, key;
  };
  Result<std::vector<Entry>> entriesOf(const std::string& app);
  void fire(const Entry& e, int64_t slot);
  void record(const Entry& e, int64_t slot, const CronResult& r, double duration_ms);
  void loop();

  store::MetadataStore& store_;
  logs::LogStore& logs_;
  Clock& clock_;
  Fire fire_;
  boost::asio::thread_pool pool_;

  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false, changed_ = false;  // guarded by mu_
  std::set<std::string> running_;       // guarded by mu_: keys of runs in flight
  size_t in_flight_ = 0;                // guarded by mu_
  std::condition_variable idle_;
  std::atomic<bool> cancel_{false};
  uint64_t watch_id_ = 0;
  std::thread thread_;
};

}  // namespace nubo::cron
