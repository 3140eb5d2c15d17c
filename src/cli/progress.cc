#include "cli/progress.h"

#include <unistd.h>

#include <cstdio>

namespace nubo::cli {

std::string humanBytes(uint64_t b) {
  char buf[32];
  if (b < 1024) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
  else if (b < (1u << 20)) std::snprintf(buf, sizeof buf, "%.1f KB", b / 1024.0);
  else if (b < (1ull << 30)) std::snprintf(buf, sizeof buf, "%.1f MB", b / 1048576.0);
  else std::snprintf(buf, sizeof buf, "%.2f GB", b / 1073741824.0);
  return buf;
}

Progress::Progress(bool enabled) : enabled_(enabled), tty_(::isatty(STDERR_FILENO) != 0) {}

void Progress::start(std::string label, uint64_t total_items, uint64_t total_bytes) {
  if (!enabled_) return;
  std::lock_guard lock(mu_);
  label_ = std::move(label);
  total_items_ = total_items;
  total_bytes_ = total_bytes;
  drawn_ = false;
  last_draw_ = std::chrono::steady_clock::now();
  if (!tty_) {
    std::fprintf(stderr, "%s: %llu (%s)\n", label_.c_str(), static_cast<unsigned long long>(total_items),
                 humanBytes(total_bytes).c_str());
  }
}

void Progress::update(uint64_t items, uint64_t bytes) {
  if (!enabled_) return;
  std::lock_guard lock(mu_);
  auto now = std::chrono::steady_clock::now();
  auto interval = tty_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(2000);
  if (now - last_draw_ < interval) return;
  last_draw_ = now;
  draw(items, bytes);
}

void Progress::draw(uint64_t items, uint64_t bytes) {
  double frac = total_bytes_ > 0 ? static_cast<double>(bytes) / static_cast<double>(total_bytes_)
                : total_items_ > 0 ? static_cast<double>(items) / static_cast<double>(total_items_)
                                   : 1.0;
  if (frac > 1) frac = 1;
  if (tty_) {
    constexpr int kWidth = 28;
    int filled = static_cast<int>(frac * kWidth);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.append(static_cast<size_t>(kWidth - filled), '.');
    std::fprintf(stderr, "\r%s [%s] %3d%%  %llu/%llu  %s/%s\x1b[K", label_.c_str(), bar.c_str(),
                 static_cast<int>(frac * 100), static_cast<unsigned long long>(items),
                 static_cast<unsigned long long>(total_items_), humanBytes(bytes).c_str(),
                 humanBytes(total_bytes_).c_str());
  } else {
    std::fprintf(stderr, "%s: %llu/%llu, %s/%s\n", label_.c_str(), static_cast<unsigned long long>(items),
                 static_cast<unsigned long long>(total_items_), humanBytes(bytes).c_str(),
                 humanBytes(total_bytes_).c_str());
  }
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::finish(const std::string& summary) {
  if (!enabled_) return;
  std::lock_guard lock(mu_);
  if (tty_ && drawn_) std::fprintf(stderr, "\r\x1b[K");
  std::fprintf(stderr, "%s\n", summary.c_str());
  std::fflush(stderr);
}

void Progress::line(const std::string& text) {
  if (!enabled_) return;
  std::lock_guard lock(mu_);
  std::fprintf(stderr, "%s\n", text.c_str());
}

}  // namespace nubo::cli
