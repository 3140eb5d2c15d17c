// LogStore: what function instances write, kept per app.
//
// DATA/logs/<app>.log holds one line per output line:
//   <unix ms>\t<deployment>\t<stream>\t<request id or ->\t<text>
// When a file passes `max_bytes` it becomes <app>.log.1 (the previous .1 is
// dropped), so each app keeps at most about twice that. Readers get lines
// after a cursor (a byte offset in the current file) and can follow.
// Thread-safe; the mutex guards only the open files (short appends).
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

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

  struct Page {
    std::vector<LogLine> lines;
    uint64_t cursor = 0;  // pass back as `after` to get what follows
  };
  // Lines after `after` (all of the file's tail when `after` is unset:
  // the last `limit` lines), optionally of one deployment.
  Page read(const std::string& app, std::optional<uint64_t> after, const std::string& deployment, size_t limit);
  void removeApp(const std::string& app);

 private:
  std::string path(const std::string& app) const { return dir_ + "/" + app + ".log"; }
  std::string dir_;
  uint64_t max_bytes_;
  std::mutex mu_;
  std::map<std::string, FILE*> files_;  // guarded by mu_
};

}  // namespace nubo::logs
