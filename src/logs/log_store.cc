#include "logs/log_store.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <charconv>
#include <deque>
#include <fstream>

#include "common/fs.h"

namespace nubo::logs {
namespace {

bool parseLine(std::string_view s, LogLine* out) {
  std::string_view f[4];
  for (auto& field : f) {
    size_t tab = s.find('\t');
    if (tab == std::string_view::npos) return false;
    field = s.substr(0, tab);
    s.remove_prefix(tab + 1);
  }
  auto [p, ec] = std::from_chars(f[0].data(), f[0].data() + f[0].size(), out->ts_ms);
  if (ec != std::errc()) return false;
  out->deployment = std::string(f[1]);
  out->stream = std::string(f[2]);
  out->request_id = f[3] == "-" ? "" : std::string(f[3]);
  out->text = std::string(s);
  return true;
}

}  // namespace

LogStore::LogStore(std::string dir, uint64_t max_bytes) : dir_(std::move(dir)), max_bytes_(max_bytes) {
  (void)makeDirs(dir_, 0700);
  writer_ = std::thread([this] { writeLoop(); });
}

LogStore::~LogStore() {
  {
    std::lock_guard lock(q_mu_);
    stopping_ = true;
  }
  q_cv_.notify_all();
  writer_.join();  // (it writes what is queued first)
  for (auto& [app, f] : files_) std::fclose(f);
}

uint64_t LogStore::dropped() const {
  std::lock_guard lock(q_mu_);
  return dropped_;
}

void LogStore::writeLoop() {
  std::vector<std::pair<std::string, std::string>> batch;
  for (;;) {
    {
      std::unique_lock lock(q_mu_);
      q_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything written
      batch.swap(queue_);
      queued_bytes_ = 0;
    }
    {
      std::lock_guard lock(mu_);
      std::vector<FILE*> touched;
      for (const auto& [app, rec] : batch) {
        FILE*& f = files_[app];
        if (!f) f = std::fopen(path(app).c_str(), "a");
        if (!f) continue;
        std::fwrite(rec.data(), 1, rec.size(), f);
        if (static_cast<uint64_t>(std::ftell(f)) > max_bytes_) {
          std::fclose(f);
          f = nullptr;
          ::rename(path(app).c_str(), (path(app) + ".1").c_str());
          continue;
        }
        if (std::find(touched.begin(), touched.end(), f) == touched.end()) touched.push_back(f);
      }
      for (FILE* f : touched) std::fflush(f);
    }
    uint64_t dropped;
    {
      std::lock_guard lock(q_mu_);
      written_seq_ += batch.size();
      dropped = dropped_;
    }
    written_cv_.notify_all();
    if (!watchers_.empty()) {
      std::set<std::string> apps;
      for (const auto& [app, rec] : batch) apps.insert(app);
      for (const auto& app : apps) watchers_.notify(app);
    }
    if (dropped > reported_dropped_) {
      spdlog::warn("logs {}: {} line(s) dropped, written faster than the disk took them ({} in all)", dir_,
                   dropped - reported_dropped_, dropped);
      reported_dropped_ = dropped;
    }
    batch.clear();
  }
}

uint64_t LogStore::watch(Written on_written) { return watchers_.add(std::move(on_written)); }

void LogStore::unwatch(uint64_t id) { watchers_.remove(id); }

void LogStore::waitWritten() {
  std::unique_lock lock(q_mu_);
  uint64_t want = queued_seq_;
  written_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return written_seq_ >= want; });
}

void LogStore::append(const std::string& app, const LogLine& line) {
  std::string rec = std::to_string(line.ts_ms);
  rec += '\t';
  rec += line.deployment;
  rec += '\t';
  rec += line.stream;
  rec += '\t';
  rec += line.request_id.empty() ? "-" : line.request_id;
  rec += '\t';
  for (char c : line.text) rec += (c == '\n' || c == '\r') ? ' ' : c;
  rec += '\n';
  bool wake = false;
  {
    std::lock_guard lock(q_mu_);
    if (queued_bytes_ + rec.size() > kMaxQueuedBytes) {
      dropped_++;
      return;
    }
    wake = queue_.empty();  // the writer sleeps only on an empty queue
    queued_bytes_ += rec.size();
    queued_seq_++;
    queue_.emplace_back(app, std::move(rec));
  }
  if (wake) q_cv_.notify_one();
}

LogStore::Page LogStore::read(const std::string& app, std::optional<uint64_t> after, const std::string& deployment,
                              size_t limit) {
  waitWritten();
  Page page;
  std::ifstream in(path(app), std::ios::binary);
  if (!in) {
    page.cursor = after.value_or(0);
    return page;
  }
  in.seekg(0, std::ios::end);
  uint64_t size = static_cast<uint64_t>(in.tellg());
  uint64_t start = 0;
  if (after) {
    start = *after <= size ? *after : 0;  // the file rotated: start over
  } else if (size > 256 * 1024) {
    start = size - 256 * 1024;  // the tail is enough for `limit` recent lines
  }
  in.seekg(static_cast<std::streamoff>(start));
  std::string chunk(size - start, '\0');
  in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
  size_t end = chunk.rfind('\n');
  if (end == std::string::npos) {
    page.cursor = start;
    return page;
  }
  size_t pos = 0;
  if (!after && start > 0) pos = chunk.find('\n') + 1;  // skip a partial first line
  std::deque<LogLine> lines;
  uint64_t cursor = start + end + 1;
  while (pos <= end) {
    size_t nl = chunk.find('\n', pos);
    LogLine l;
    if (parseLine(std::string_view(chunk).substr(pos, nl - pos), &l) &&
        (deployment.empty() || l.deployment == deployment)) {
      lines.push_back(std::move(l));
      if (after && lines.size() == limit) {  // following: never skip lines
        cursor = start + nl + 1;
        break;
      }
      if (lines.size() > limit) lines.pop_front();
    }
    pos = nl + 1;
  }
  page.lines.assign(std::make_move_iterator(lines.begin()), std::make_move_iterator(lines.end()));
  page.cursor = cursor;
  return page;
}

void LogStore::removeApp(const std::string& app) {
  waitWritten();
  std::lock_guard lock(mu_);
  if (auto it = files_.find(app); it != files_.end()) {
    std::fclose(it->second);
    files_.erase(it);
  }
  ::unlink(path(app).c_str());
  ::unlink((path(app) + ".1").c_str());
}

}  // namespace nubo::logs
