#include "logs/log_store.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
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

std::atomic<uint64_t> next_store_id{1};

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// In time linear in the text whatever the needle (glibc's memmem is the
// two-way algorithm: a naive search of "aaa...ab" through "aaa..." lines
// took seconds a megabyte).
bool containsIgnoringCase(std::string_view text, std::string_view needle) {
  if (needle.empty()) return true;
  thread_local std::string t, n;
  t.assign(text);
  n.assign(needle);
  std::transform(t.begin(), t.end(), t.begin(), lower);
  std::transform(n.begin(), n.end(), n.begin(), lower);
  return ::memmem(t.data(), t.size(), n.data(), n.size()) != nullptr;
}

}  // namespace

void appendAccessText(std::string& out, std::string_view method, std::string_view path, int status, double ms,
                      std::optional<uint64_t> bytes, bool cold) {
  out.append(method).push_back(' ');
  for (char c : path) out.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == ' ' ? '?' : c);
  // (Integers by hand, not printf: this runs on every request.)
  auto number = [&out](uint64_t v) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, end);
  };
  out.push_back(' ');
  number(static_cast<uint64_t>(std::clamp(status, 0, 999)));
  out.push_back(' ');
  uint64_t us = ms > 0 ? static_cast<uint64_t>(ms * 1000 + 0.5) : 0;
  number(us / 1000);
  out.push_back('.');
  char frac[3] = {static_cast<char>('0' + us / 100 % 10), static_cast<char>('0' + us / 10 % 10),
                  static_cast<char>('0' + us % 10)};
  out.append(frac, 3);
  out.append("ms ");
  if (bytes) number(*bytes);
  else out.push_back('-');
  out.append(cold ? "B cold" : "B warm");
}

std::string accessText(std::string_view method, std::string_view path, int status, double ms,
                       std::optional<uint64_t> bytes, bool cold) {
  std::string out;
  appendAccessText(out, method, path, status, ms, bytes, cold);
  return out;
}

int accessStatus(std::string_view text) {
  // "<METHOD> <path> <status> ..."
  size_t a = text.find(' ');
  if (a == std::string_view::npos) return 0;
  size_t b = text.find(' ', a + 1);
  if (b == std::string_view::npos || b + 4 > text.size()) return 0;
  int status = 0;
  auto [p, ec] = std::from_chars(text.data() + b + 1, text.data() + b + 4, status);
  if (ec != std::errc() || p != text.data() + b + 4 || (b + 4 < text.size() && text[b + 4] != ' ')) return 0;
  return status;
}

bool LogFilter::plain() const {
  return kind == Kind::kAll && request_id.empty() && grep.empty() && since_ms == 0 && until_ms == 0 &&
         status_class == 0 && status == 0;
}

bool LogFilter::matches(const LogLine& l) const {
  bool access = l.stream == "request";
  if (kind == Kind::kRequests && !access) return false;
  if (kind == Kind::kOutput && access) return false;
  if (!deployment.empty() && l.deployment != deployment) return false;
  if (!request_id.empty() && l.request_id != request_id) return false;
  if (since_ms && l.ts_ms < since_ms) return false;
  if (until_ms && l.ts_ms > until_ms) return false;
  if (status_class || status) {
    int st = access ? accessStatus(l.text) : 0;
    if (st == 0 || (status && st != status) || (status_class && st / 100 != status_class)) return false;
  }
  return containsIgnoringCase(l.text, grep);
}

LogStore::LogStore(std::string dir, uint64_t max_bytes)
    : dir_(std::move(dir)), max_bytes_(max_bytes), id_(next_store_id.fetch_add(1)) {
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
  for (auto& [app, f] : files_) std::fclose(f.f);
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
      if (buffers_.empty()) {
        q_cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || !buffers_.empty(); });
      } else {
        // Threads' buffered lines are collected every kFlushEvery.
        q_cv_.wait_for(lock, kFlushEvery, [&] { return stopping_ || !queue_.empty(); });
      }
      drainBuffersLocked();
      if (queue_.empty()) {
        if (stopping_) return;  // everything written
        continue;
      }
      batch.swap(queue_);
      queued_bytes_ = 0;
    }
    {
      std::lock_guard lock(mu_);
      std::vector<FILE*> touched;
      for (const auto& [app, rec] : batch) {
        OpenFile& of = files_[app];
        if (!of.f) {
          of.f = std::fopen(path(app).c_str(), "a");
          struct stat st {};
          of.size = of.f && ::fstat(::fileno(of.f), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
        }
        if (!of.f) continue;
        std::fwrite(rec.data(), 1, rec.size(), of.f);
        of.size += rec.size();
        if (of.size > max_bytes_) {
          std::fclose(of.f);
          of = {};
          ::rename(path(app).c_str(), (path(app) + ".1").c_str());
          continue;
        }
        if (std::find(touched.begin(), touched.end(), of.f) == touched.end()) touched.push_back(of.f);
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
  drainBuffersLocked();
  if (!queue_.empty()) q_cv_.notify_one();
  uint64_t want = queued_seq_;
  written_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return written_seq_ >= want; });
}

void LogStore::formatTo(std::string& rec, const LogLine& line) {
  char ts[24];
  auto [end, ec] = std::to_chars(ts, ts + sizeof ts, line.ts_ms);
  rec.append(ts, end);
  rec += '\t';
  rec += line.deployment;
  rec += '\t';
  rec += line.stream;
  rec += '\t';
  rec += line.request_id.empty() ? "-" : line.request_id;
  rec += '\t';
  for (char c : line.text) rec += (c == '\n' || c == '\r') ? ' ' : c;
  rec += '\n';
}

bool LogStore::enqueueLocked(const std::string& app, std::string rec) {
  if (queued_bytes_ + rec.size() > kMaxQueuedBytes) {
    dropped_++;
    return false;
  }
  queued_bytes_ += rec.size();
  queued_seq_++;
  queue_.emplace_back(app, std::move(rec));
  return true;
}

void LogStore::append(const std::string& app, const LogLine& line) {
  std::string rec;
  formatTo(rec, line);
  bool wake = false;
  {
    std::lock_guard lock(q_mu_);
    wake = queue_.empty();  // the writer sleeps only on an empty queue
    if (!enqueueLocked(app, std::move(rec))) return;
  }
  if (wake) q_cv_.notify_one();
}

LogStore::ThreadBuffer& LogStore::myBuffer() {
  // Each thread's buffers, one per store it wrote to (ids are never reused).
  thread_local std::vector<std::pair<uint64_t, ThreadBuffer*>> mine;
  for (auto& [id, b] : mine) {
    if (id == id_) return *b;
  }
  ThreadBuffer* b;
  {
    std::lock_guard lock(q_mu_);
    buffers_.push_back(std::make_unique<ThreadBuffer>());
    b = buffers_.back().get();
  }
  q_cv_.notify_one();  // the writer now collects buffers on a timer
  mine.emplace_back(id_, b);
  return *b;
}

template <class Write>
void LogStore::buffer(std::string_view app, Write write) {
  ThreadBuffer& b = myBuffer();
  std::lock_guard lock(b.mu);
  if (b.bytes >= kMaxBufferedBytes) {
    b.dropped++;
    return;
  }
  if (b.chunks.empty() || b.chunks.back().first != app) b.chunks.emplace_back(std::string(app), std::string());
  std::string& out = b.chunks.back().second;
  size_t before = out.size();
  write(out);
  b.bytes += out.size() - before;
}

void LogStore::appendBuffered(std::string_view app, const LogLine& line) {
  buffer(app, [&](std::string& out) { formatTo(out, line); });
}

void LogStore::appendAccess(std::string_view app, int64_t ts_ms, std::string_view deployment,
                            std::string_view request_id, std::string_view method, std::string_view path, int status,
                            double ms, std::optional<uint64_t> bytes, bool cold) {
  buffer(app, [&](std::string& out) {
    char ts[24];
    auto [end, ec] = std::to_chars(ts, ts + sizeof ts, ts_ms);
    out.append(ts, end).append("\t").append(deployment).append("\trequest\t");
    out.append(request_id.empty() ? std::string_view("-") : request_id).append("\t");
    appendAccessText(out, method, path, status, ms, bytes, cold);
    out += '\n';
  });
}

void LogStore::drainBuffersLocked() {
  for (auto& b : buffers_) {
    std::vector<std::pair<std::string, std::string>> chunks;
    {
      std::lock_guard lock(b->mu);
      chunks.swap(b->chunks);
      b->bytes = 0;
      dropped_ += b->dropped;
      b->dropped = 0;
    }
    for (auto& [app, rec] : chunks) enqueueLocked(app, std::move(rec));
  }
}

LogStore::Page LogStore::read(const std::string& app, std::optional<uint64_t> after, const std::string& deployment,
                              size_t limit) {
  LogFilter filter;
  filter.deployment = deployment;
  return read(app, after, filter, limit);
}

LogStore::Page LogStore::read(const std::string& app, std::optional<uint64_t> after, const LogFilter& filter,
                              size_t limit) {
  waitWritten();
  Page page;
  std::deque<LogLine> lines;
  // Adds the matching lines of `chunk` (whole lines up to its last newline,
  // from `pos`); returns where it stopped (following: at `limit` lines).
  auto scan = [&](std::string_view chunk, size_t pos, bool following) -> size_t {
    size_t end = chunk.rfind('\n');
    if (end == std::string_view::npos) return 0;
    while (pos <= end) {
      size_t nl = chunk.find('\n', pos);
      LogLine l;
      if (parseLine(chunk.substr(pos, nl - pos), &l) && filter.matches(l)) {
        lines.push_back(std::move(l));
        if (following && lines.size() == limit) return nl + 1;  // never skip lines
        if (lines.size() > limit) lines.pop_front();
      }
      pos = nl + 1;
    }
    return end + 1;
  };
  // The bytes of `file` from `*from` on (from 0 when the file is shorter:
  // it rotated), or from its last 256 KiB when `tail` (enough for `limit`
  // recent lines); nullopt when there is no such file.
  auto slurp = [](const std::string& file, uint64_t* from, bool tail) -> std::optional<std::string> {
    std::ifstream in(file, std::ios::binary);
    if (!in) return std::nullopt;
    in.seekg(0, std::ios::end);
    uint64_t size = static_cast<uint64_t>(in.tellg());
    if (tail) *from = size > 256 * 1024 ? size - 256 * 1024 : 0;
    if (*from > size) *from = 0;
    in.seekg(static_cast<std::streamoff>(*from));
    std::string chunk(size - *from, '\0');
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    return chunk;
  };
  bool search = !after && !filter.plain();
  if (search) {
    // Everything kept: the rotated file, then the current one.
    uint64_t from = 0;
    if (auto old = slurp(path(app) + ".1", &from, false)) scan(*old, 0, false);
  }
  uint64_t start = after.value_or(0);
  auto chunk = slurp(path(app), &start, !after && !search);
  if (!chunk) {
    page.lines.assign(std::make_move_iterator(lines.begin()), std::make_move_iterator(lines.end()));
    page.cursor = after.value_or(0);
    return page;
  }
  size_t pos = 0;
  if (!after && start > 0) pos = chunk->find('\n') + 1;  // skip a partial first line
  size_t stopped = scan(*chunk, pos, after.has_value());
  page.lines.assign(std::make_move_iterator(lines.begin()), std::make_move_iterator(lines.end()));
  page.cursor = stopped ? start + stopped : start;
  return page;
}

void LogStore::removeApp(const std::string& app) {
  waitWritten();
  std::lock_guard lock(mu_);
  if (auto it = files_.find(app); it != files_.end()) {
    std::fclose(it->second.f);
    files_.erase(it);
  }
  ::unlink(path(app).c_str());
  ::unlink((path(app) + ".1").c_str());
}

}  // namespace nubo::logs
