// Progress: what `nubo deploy` shows while it works, on stderr. On a
// terminal, one bar redrawn in place (at most ten times a second); otherwise
// plain lines (start, every two seconds, end). Silent when disabled (--json).
// update() is thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace nubo::cli {

std::string humanBytes(uint64_t bytes);

class Progress {
 public:
  explicit Progress(bool enabled);

  void start(std::string label, uint64_t total_items, uint64_t total_bytes);
  void update(uint64_t items, uint64_t bytes);
  void finish(const std::string& summary);
  void line(const std::string& text);

 private:
  void draw(uint64_t items, uint64_t bytes);

  const bool enabled_;
  const bool tty_;
  std::mutex mu_;
  std::string label_;
  uint64_t total_items_ = 0, total_bytes_ = 0;
  std::chrono::steady_clock::time_point last_draw_{};
  bool drawn_ = false;
};

}  // namespace nubo::cli
