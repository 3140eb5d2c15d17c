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

#include <chrono>
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
  // stdout, stderr, nubo (the platform's own notes), or request (an access
  // record: "<METHOD> <path> <status> <ms>ms <bytes>B|-B cold|warm")
  std::string stream;
  std::string request_id;  // empty when written outside a request
  std::string text;
};

// Which lines a read returns. Every field set must match.
struct LogFilter {
  enum class Kind { kAll, kRequests, kOutput };  // output: all but access records
  Kind kind = Kind::kAll;
  std::string deployment;
  std::string request_id;
  std::string grep;              // a substring of the text, ignoring ASCII case
  int64_t since_ms = 0;          // 0: no bound
  int64_t until_ms = 0;          // 0: no bound
  int status_class = 0;          // 1..5: access records with a status of that class
  int status = 0;                // an access record's exact status
  // Whether only `deployment` is set (a plain tail, not a search).
  bool plain() const;
  bool matches(const LogLine& l) const;
};

// An access record's text (appended to `out`, or returned), and its status
// (0 when `text` is not one).
void appendAccessText(std::string& out, std::string_view method, std::string_view path, int status, double ms,
                      std::optional<uint64_t> bytes, bool cold);
std::string accessText(std::string_view method, std::string_view path, int status, double ms,
                       std::optional<uint64_t> bytes, bool cold);
int accessStatus(std::string_view text);

class LogStore {
 public:
  LogStore(std::string dir, uint64_t max_bytes = 8u << 20);
  ~LogStore();

  void append(const std::string& app, const LogLine& line);
  // As append(), for lines written on every request: kept in the calling
  // thread's own buffer (no lock another thread writes under), formatted
  // straight into it, and handed to the writer every kFlushEvery, or by
  // read().
  void appendBuffered(std::string_view app, const LogLine& line);
  // An access record (stream "request"), buffered so.
  void appendAccess(std::string_view app, int64_t ts_ms, std::string_view deployment, std::string_view request_id,
                    std::string_view method, std::string_view path, int status, double ms,
                    std::optional<uint64_t> bytes, bool cold);
  static constexpr std::chrono::milliseconds kFlushEvery{50};
  static constexpr size_t kMaxBufferedBytes = 4u << 20;  // per thread; past it lines are dropped
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
  // Lines matching `filter`: after `after` (the first `limit`, in order),
  // or, when `after` is unset, the last `limit` of everything kept (the
  // rotated file too, when the filter searches).
  Page read(const std::string& app, std::optional<uint64_t> after, const LogFilter& filter, size_t limit);
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
  // Waits until what was queued (or buffered) before this call is written.
  void waitWritten();
  struct ThreadBuffer {
    std::mutex mu;
    // Formatted lines by app, consecutive lines of one app in one string.
    std::vector<std::pair<std::string, std::string>> chunks;  // guarded by mu
    size_t bytes = 0;                                         // guarded by mu
    uint64_t dropped = 0;                                     // guarded by mu
  };
  ThreadBuffer& myBuffer();
  // Appends a line to the calling thread's buffer: `write` appends its
  // formatted bytes (ending in a newline) to the string it is given.
  template <class Write>
  void buffer(std::string_view app, Write write);
  // Moves every thread's buffered lines to the queue (q_mu_ held).
  void drainBuffersLocked();
  static void formatTo(std::string& out, const LogLine& line);
  struct OpenFile {
    FILE* f = nullptr;
    uint64_t size = 0;  // bytes in it (tracked: no seek per write)
  };
  // Queues a formatted line (q_mu_ held); false when over kMaxQueuedBytes.
  bool enqueueLocked(const std::string& app, std::string rec);

  std::string dir_;
  uint64_t max_bytes_;
  std::mutex mu_;
  std::map<std::string, OpenFile> files_;  // guarded by mu_ (the writer's, and removeApp's)

  mutable std::mutex q_mu_;
  std::condition_variable q_cv_, written_cv_;
  std::vector<std::pair<std::string, std::string>> queue_;  // guarded by q_mu_: app, formatted line
  size_t queued_bytes_ = 0;                                 // guarded by q_mu_
  uint64_t queued_seq_ = 0, written_seq_ = 0;               // guarded by q_mu_
  uint64_t dropped_ = 0;                                    // guarded by q_mu_
  bool stopping_ = false;                                   // guarded by q_mu_
  uint64_t reported_dropped_ = 0;                           // the writer thread's
  const uint64_t id_;                                       // tells this store from others in a thread's list
  std::vector<std::unique_ptr<ThreadBuffer>> buffers_;      // guarded by q_mu_
  Watchers<Written> watchers_;
  std::thread writer_;                                      // last: started once the rest is ready
};

}  // namespace nubo::logs
