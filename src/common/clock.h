// The clock seam: components that stamp or compare times take a Clock& so
// tests can control time. SystemClock is the only real one; src/server wires it.
#pragma once

#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace nubo {

// Wall-clock milliseconds since the Unix epoch, for stamping records where
// no Clock is passed in (log lines).
inline int64_t wallMillis() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock milliseconds since the Unix epoch (for records users read).
  virtual int64_t nowMillis() = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t nowMillis() override { return wallMillis(); }
};

// A clock tests set by hand. Not thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start_ms = 1'700'000'000'000) : now_(start_ms) {}
  int64_t nowMillis() override { return now_; }
  void advance(int64_t ms) { now_ += ms; }
  void set(int64_t ms) { now_ = ms; }

 private:
  std::atomic<int64_t> now_;  // (read from other threads than the test's)
};

// A wall-clock time for people: "2026-12-06 14:03:07 UTC" (without the
// seconds when `seconds` is false).
inline std::string formatUtc(int64_t ms, bool seconds = true) {
  time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  ::gmtime_r(&secs, &tm);
  char out[32];
  std::strftime(out, sizeof out, seconds ? "%Y-%m-%d %H:%M:%S UTC" : "%Y-%m-%d %H:%M UTC", &tm);
  return out;
}

}  // namespace nubo
