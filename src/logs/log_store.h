// LogStore: what function instances write, kept per app.
//
// DATA/logs/<app>.log holds one line per output line:
//   <unix ms>\t<deployment>\t<stream>\t<request id or ->\t<text>
// When a file passes `max_bytes` it becomes <app>.log.1 (the previous .1 is
// dropped), so each app keeps at most about twice that. Readers get lines
// after a cursor (a byte offset in the current file) and can follow.
//
// append() never waits on the disk: it formats the line and queues it for
// the store's writer thread, which writes what has queued in one go per
// file (one flush per batch, not per line). The queue is bounded
// (kMaxQueuedBytes): past it lines are dropped, counted and warned of in
// the server log, so a function printing without end slows nothing on the
// data plane. read() and removeApp() first wait (at most a second) for the
// lines queued before them to be written, so a reader sees every line
// appended before it asked.
//
// Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/status.h"
#include "common/watchers.h"

namespace nubo::logs {

struct LogLine {
  int64_t ts_ms = 0;
  std::string deployment;
  std::string stream;      // stdout, stderr, or nubo (the platform's own notes)
  std::string request_id;  // empty when written outside a request
  std::string text;
};

class LogStore {
 public:
  LogStore(std::string dir, uint64_t max_bytes = 8u << 20);
  ~LogStore();

  void append(const std::string& app, const LogLine& line);
  // Lines dropped because the writer was behind.
  uint64_t dropped() const;

  static constexpr size_t kMaxQueuedBytes = 16u << 20;

  struct Page {
    std::vector<LogLine> lines;
    uint64_t cursor = 0;  // pass back as `after` to get what follows
  };
  // Lines after `after` (all of the file's tail when `after` is unset:
  // the last `limit` lines), optionally of one deployment.
  Page read(const std::string& app, std::optional<uint64_t> after, const std::string& deployment, size_t limit);
  void removeApp(const std::string& app);

  // Calls `on_written(app)` on the writer thread once lines of `app` are
  // written (readable by read()): followers wait for this instead of
  // polling. Must be cheap and must not call back into the store.
  using Written = std::function<void(const std::string& app)>;
  uint64_t watch(Written on_written);
  void unwatch(uint64_t id);

 private:
  std::string path(const std::string& app) const { return dir_ + "/" + app + ".log"; }
  void writeLoop();
  // Waits until what was queued before this call is written.
  void waitWritten();

  std::string dir_;
  uint64_t max_bytes_;
  std::mutex mu_;
  std::map<std::string, FILE*> files_;  // guarded by mu_ (the writer's, and removeApp's)

  mutable std::mutex q_mu_;
  std::condition_variable q_cv_, written_cv_;
  std::vector<std::pair<std::string, std::string>> queue_;  // guarded by q_mu_: app, formatted line
  size_t queued_bytes_ = 0;                                 // guarded by q_mu_
  uint64_t queued_seq_ = 0, written_seq_ = 0;               // guarded by q_mu_
  uint64_t dropped_ = 0;                                    // guarded by q_mu_
  bool stopping_ = false;                                   // guarded by q_mu_
  uint64_t reported_dropped_ = 0;                           // the writer thread's
  Watchers<Written> watchers_;
  std::thread writer_;                                      // last: started once the rest is ready
};

}  // namespace nubo::logs
