// The nubo SDK for native functions: the instance protocol (docs/protocol.md)
// and a main() that serves the user's handle().
#include "nubo.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

// The user's handler: one of the two (weak, so either may be missing).
nubo::Response handle(const nubo::Request& req) __attribute__((weak));
void handle(const nubo::Request& req, nubo::ResponseWriter& out) __attribute__((weak));

namespace nubo {

namespace {

using WholeHandler = Response (*)(const Request&);
using StreamHandler = void (*)(const Request&, ResponseWriter&);
WholeHandler wholeHandler() { return static_cast<WholeHandler>(&::handle); }
StreamHandler streamHandler() { return static_cast<StreamHandler>(&::handle); }

enum : uint8_t { kHello = 1, kSpecialize = 2, kReady = 3, kRequest = 10, kData = 11, kResponse = 20,
                 kCancel = 30, kError = 31, kWindow = 40 };
constexpr uint8_t kEnd = 1;
constexpr int64_t kInitialWindow = 1 << 20;
constexpr size_t kMaxData = 256 << 10;
constexpr size_t kMaxFrame = 16 << 20;

void putU16(std::string& s, uint16_t v) { s += static_cast<char>(v >> 8), s += static_cast<char>(v); }
void putU32(std::string& s, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) s += static_cast<char>(v >> shift);
}
uint32_t getU32(const char* p) {
  auto b = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
}
uint16_t getU16(const char* p) {
  auto b = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>((b[0] << 8) | b[1]);
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// The socket to the gateway; frames from several threads go out whole.
// A thread that cork()s holds its own frames back until it uncork()s: the
// reading thread does so while it serves a batch of requests it read at
// once, so their responses share one write. Frames from any other thread go
// out at once and take along whatever is held; so do frames queued while
// another thread is writing.
class Channel {
 public:
  explicit Channel(int fd) : fd_(fd) {}
  void send(uint8_t type, uint8_t flags, uint32_t stream, std::string_view payload) {
    std::unique_lock lock(mu_);
    putU32(pending_, static_cast<uint32_t>(payload.size()));
    pending_ += static_cast<char>(type);
    pending_ += static_cast<char>(flags);
    putU32(pending_, stream);
    pending_.append(payload);
    if (corked_by_ == std::this_thread::get_id()) return;
    drainLocked(lock);
  }
  void cork() {
    std::lock_guard lock(mu_);
    corked_by_ = std::this_thread::get_id();
  }
  // Ends this thread's cork (if it still has it) and sends what is held.
  void uncork() {
    std::unique_lock lock(mu_);
    if (corked_by_ != std::this_thread::get_id()) return;
    corked_by_ = {};
    drainLocked(lock);
  }
  // Ends whichever thread's cork and sends what is held.
  void release() {
    std::unique_lock lock(mu_);
    corked_by_ = {};
    drainLocked(lock);
  }
  int fd() const { return fd_; }

 private:
  void drainLocked(std::unique_lock<std::mutex>& lock) {
    if (writing_) return;  // the writing thread takes it along
    writing_ = true;
    while (!pending_.empty()) {
      std::string out;
      out.swap(pending_);
      lock.unlock();
      for (size_t off = 0; off < out.size();) {
        ssize_t n = ::write(fd_, out.data() + off, out.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) std::_Exit(0);  // the gateway is gone: so are we
        off += static_cast<size_t>(n);
      }
      lock.lock();
    }
    writing_ = false;
  }

  int fd_;
  std::mutex mu_;
  std::string pending_;          // guarded by mu_
  bool writing_ = false;         // guarded by mu_
  std::thread::id corked_by_;    // guarded by mu_; none when no one corks
};

struct Stream {
  uint32_t id = 0;
  Request req;
  std::mutex mu;
  std::condition_variable cv;
  int64_t credit = kInitialWindow;  // guarded by mu
  bool cancelled = false;           // guarded by mu
};

std::string encodeHead(int status, const Headers& headers) {
  std::string h;
  putU16(h, static_cast<uint16_t>(status));
  putU16(h, static_cast<uint16_t>(std::min<size_t>(headers.size(), 0xffff)));
  for (const auto& [k, v] : headers) {
    putU16(h, static_cast<uint16_t>(std::min<size_t>(k.size(), 0xffff)));
    h.append(k.substr(0, 0xffff));
    putU32(h, static_cast<uint32_t>(v.size()));
    h.append(v);
  }
  return h;
}

// Called by a handler's thread before it waits for the gateway (stream
// credit), so that it does not wait while holding the socket's reading.
using BeforeWait = std::function<void()>;

class Writer final : public ResponseWriter {
 public:
  Writer(Channel& ch, std::shared_ptr<Stream> st, const BeforeWait& before_wait)
      : ch_(ch), st_(std::move(st)), before_wait_(before_wait) {}
  void start(int status, const Headers& headers) override {
    if (started_) return;
    started_ = true;
    std::string head = encodeHead(status, headers);
    std::string p;
    putU32(p, static_cast<uint32_t>(head.size()));
    p += head;
    if (!cancelled()) ch_.send(kResponse, 0, st_->id, p);
  }
  void write(std::string_view bytes) override {
    if (!started_) start(200, {});
    while (!bytes.empty()) {
      size_t n;
      {
        std::unique_lock lock(st_->mu);
        if (!st_->cancelled && st_->credit <= 0) {
          lock.unlock();
          before_wait_();
          lock.lock();
        }
        st_->cv.wait(lock, [&] { return st_->cancelled || st_->credit > 0; });
        if (st_->cancelled) return;
        n = std::min({bytes.size(), kMaxData, static_cast<size_t>(st_->credit)});
        st_->credit -= static_cast<int64_t>(n);
      }
      ch_.send(kData, 0, st_->id, bytes.substr(0, n));
      bytes.remove_prefix(n);
    }
  }
  void end() override {
    if (!started_) start(200, {});
    if (ended_) return;
    ended_ = true;
    if (!cancelled()) ch_.send(kData, kEnd, st_->id, {});
  }
  bool cancelled() const override {
    std::lock_guard lock(st_->mu);
    return st_->cancelled;
  }
  bool started() const { return started_; }

 private:
  Channel& ch_;
  std::shared_ptr<Stream> st_;
  const BeforeWait& before_wait_;
  bool started_ = false;
  bool ended_ = false;
};

// Serves the instance protocol: up to `handlers_` requests at once, on one
// thread more than that, so that one thread is always free to read the
// socket. The reading thread "leads".
//
// The leader serves the requests it read at once itself, corked, so a batch
// costs no hand-off between threads and one write. A handler that runs past
// kStall while it leads would hold up reading (so the others' CANCEL and
// WINDOW frames) and the rest of its batch: a watchdog then passes the lead
// to a free thread, sends what the batch has answered so far, lets the free
// threads take the rest, and for kPoolFor after that the leader hands every
// request to the other threads instead. A handler that must wait for the
// gateway gives up the lead first.
class Server {
 public:
  explicit Server(int fd)
      : ch_(fd), handlers_(std::max(2u, std::min(8u, std::thread::hardware_concurrency()))) {}

  [[noreturn]] void run() {
    ch_.send(kHello, 0, 0, R"({"runtime":"native","pid":)" + std::to_string(::getpid()) + "}");
    for (unsigned i = 0; i < handlers_; ++i) std::thread([this] { work(); }).detach();
    std::thread([this] { watch(); }).detach();
    work();
  }

 private:
  static constexpr auto kStall = std::chrono::milliseconds(1);
  static constexpr auto kPoolFor = std::chrono::seconds(1);
  static constexpr int kWatchIdleTicks = 100;  // then the watchdog sleeps until a leader serves again

  [[noreturn]] void work() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return leader_ == std::thread::id() || (!queue_.empty() && busy_ < handlers_); });
      if (leader_ == std::thread::id()) {
        lead(lock);
        continue;
      }
      std::shared_ptr<Stream> st = std::move(queue_.front());
      queue_.pop_front();
      ++busy_;
      lock.unlock();
      serve(st);
      lock.lock();
      --busy_;
      streams_.erase(st->id);
    }
  }

  // Reads and serves until the lead is taken away. Called and returns with
  // `lock` held.
  void lead(std::unique_lock<std::mutex>& lock) {
    const std::thread::id me = std::this_thread::get_id();
    leader_ = me;
    for (;;) {
      lock.unlock();
      readSome();
      lock.lock();
      if (std::chrono::steady_clock::now() < pool_until_) {
        for (size_t i = 0; i < queue_.size() && busy_ + i < handlers_; ++i) cv_.notify_one();
        continue;
      }
      lock.unlock();
      ch_.cork();
      lock.lock();
      while (leader_ == me && !queue_.empty() && busy_ < handlers_) {
        std::shared_ptr<Stream> st = std::move(queue_.front());
        queue_.pop_front();
        ++busy_;
        serving_ = true;
        ++served_;
        if (watchdog_asleep_) watch_cv_.notify_one();
        lock.unlock();
        serve(st);
        lock.lock();
        --busy_;
        if (leader_ == me) serving_ = false;
        streams_.erase(st->id);
      }
      lock.unlock();
      ch_.uncork();
      lock.lock();
      if (leader_ != me) return;
    }
  }

  // One read from the gateway, its frames taken in. Exits the process when
  // the gateway closes the socket (or breaks the protocol).
  void readSome() {
    ssize_t got;
    for (;;) {
      // Waiting in poll() rather than in read(): a reader blocked in read()
      // is also woken each time the gateway takes our responses off the
      // socket (a unix socket wakes all its sleepers on freed write space);
      // poll() is woken only when there is something to read.
      pollfd pfd{ch_.fd(), POLLIN, 0};
      if (::poll(&pfd, 1, -1) < 0 && errno == EINTR) continue;
      got = ::read(ch_.fd(), chunk_, sizeof chunk_);
      if (got < 0 && errno == EINTR) continue;
      break;
    }
    if (got <= 0) exitNow(0);  // the gateway closed the socket: time to go
    buf_.append(chunk_, static_cast<size_t>(got));
    size_t off = 0;
    while (buf_.size() - off >= 10) {
      uint32_t len = getU32(buf_.data() + off);
      if (len > kMaxFrame) {
        std::fprintf(stderr, "nubo: the gateway sent a frame of %u bytes, over the protocol's limit\n", len);
        exitNow(2);
      }
      if (buf_.size() - off < 10 + len) break;
      frame(static_cast<uint8_t>(buf_[off + 4]), static_cast<uint8_t>(buf_[off + 5]), getU32(buf_.data() + off + 6),
            std::string_view(buf_.data() + off + 10, len));
      off += 10 + len;
    }
    buf_.erase(0, off);
  }

  [[noreturn]] static void exitNow(int code) {
    std::fflush(nullptr);
    std::_Exit(code);
  }

  // Gives up the lead if this thread has it (see BeforeWait).
  void yieldLead() {
    std::unique_lock lock(mu_);
    if (leader_ != std::this_thread::get_id()) return;
    passLeadLocked();
    lock.unlock();
    ch_.release();
  }

  void passLeadLocked() {
    leader_ = std::thread::id();
    serving_ = false;  // what the old leader serves now no longer holds anyone up
    cv_.notify_all();  // a free thread leads, the others take what is queued
  }

  void watch() {
    std::unique_lock lock(mu_);
    int idle = 0;
    for (;;) {
      if (!serving_ && ++idle > kWatchIdleTicks) {
        watchdog_asleep_ = true;
        watch_cv_.wait(lock, [&] { return serving_; });
        watchdog_asleep_ = false;
      }
      if (serving_) idle = 0;
      const uint64_t seen = serving_ ? served_ : 0;
      watch_cv_.wait_for(lock, kStall);
      if (seen != 0 && serving_ && served_ == seen) {
        // The leader has served the same request for a whole tick.
        passLeadLocked();
        pool_until_ = std::chrono::steady_clock::now() + kPoolFor;
        lock.unlock();
        ch_.release();
        lock.lock();
      }
    }
  }

  void frame(uint8_t type, uint8_t flags, uint32_t id, std::string_view p) {
    switch (type) {
      case kSpecialize:
        // The deployment's files and env are this process's own already.
        ch_.send(kReady, 0, 0, R"({"ok":true,"load_ms":0})");
        return;
      case kRequest: {
        auto st = std::make_shared<Stream>();
        st->id = id;
        if (p.size() < 4 || !parseHead(p.substr(4, getU32(p.data())), st->req)) {
          ch_.send(kError, 0, id, R"({"message":"malformed request head"})");
          return;
        }
        st->req.body.assign(p.substr(4 + getU32(p.data())));
        std::lock_guard lock(mu_);
        streams_[id] = st;
        if (flags & kEnd) queue_.push_back(std::move(st));
        return;
      }
      case kData: {
        {
          std::lock_guard lock(mu_);
          auto it = streams_.find(id);
          if (it == streams_.end()) return;
          it->second->req.body.append(p);
          if (flags & kEnd) queue_.push_back(it->second);
        }
        if (!p.empty()) {
          std::string w;
          putU32(w, static_cast<uint32_t>(p.size()));
          ch_.send(kWindow, 0, id, w);  // bodies are taken whole: more may come at once
        }
        return;
      }
      case kWindow:
      case kCancel: {
        std::shared_ptr<Stream> st = find(id);
        if (!st) return;
        {
          std::lock_guard lock(st->mu);
          if (type == kWindow && p.size() >= 4) st->credit += getU32(p.data());
          if (type == kCancel) st->cancelled = true;
        }
        st->cv.notify_all();
        return;
      }
      default:
        return;
    }
  }

  static bool parseHead(std::string_view h, Request& r) {
    size_t o = 0;
    auto str = [&](std::string& out, size_t width) {
      if (o + width > h.size()) return false;
      size_t n = width == 2 ? getU16(h.data() + o) : getU32(h.data() + o);
      o += width;
      if (o + n > h.size()) return false;
      out.assign(h.substr(o, n));
      o += n;
      return true;
    };
    if (!str(r.method, 2) || !str(r.path, 2) || !str(r.url, 2) || !str(r.id, 2) || o + 2 > h.size()) return false;
    uint16_t count = getU16(h.data() + o);
    o += 2;
    for (uint16_t i = 0; i < count; ++i) {
      std::string k, v;
      if (!str(k, 2) || !str(v, 4)) return false;
      for (char& c : k) c = lower(c);
      r.headers.emplace_back(std::move(k), std::move(v));
    }
    return true;
  }

  std::shared_ptr<Stream> find(uint32_t id) {
    std::lock_guard lock(mu_);
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second;
  }

  void serve(const std::shared_ptr<Stream>& st) {
    Writer out(ch_, st, before_wait_);
    try {
      if (WholeHandler whole = wholeHandler()) {
        Response r = whole(st->req);
        if (r.body.size() <= static_cast<size_t>(kInitialWindow)) {
          // The usual case: head and body in one frame, the stream ended.
          std::string head = encodeHead(r.status, r.headers);
          std::string p;
          p.reserve(4 + head.size() + r.body.size());
          putU32(p, static_cast<uint32_t>(head.size()));
          p += head;
          p += r.body;
          ch_.send(kResponse, kEnd, st->id, p);
          return;
        }
        out.start(r.status, r.headers);
        out.write(r.body);
        out.end();
      } else {
        streamHandler()(st->req, out);
        out.end();
      }
    } catch (const std::exception& e) {
      if (!out.started()) ch_.send(kError, 0, st->id, "{\"message\":\"" + jsonEscape(e.what()) + "\"}");
      else ch_.send(kError, 0, st->id, "{\"message\":\"failed while streaming\"}");
    } catch (...) {
      ch_.send(kError, 0, st->id, R"({"message":"the handler threw something that is not a std::exception"})");
    }
  }

  Channel ch_;
  const BeforeWait before_wait_ = [this] { yieldLead(); };
  std::string buf_;  // a frame's start, read by the leader
  char chunk_[64 * 1024];
  std::mutex mu_;
  std::condition_variable cv_;        // for free threads: work queued, or no leader
  std::condition_variable watch_cv_;  // for the watchdog
  std::map<uint32_t, std::shared_ptr<Stream>> streams_;  // guarded by mu_
  std::deque<std::shared_ptr<Stream>> queue_;            // guarded by mu_: requests ready to serve
  const unsigned handlers_;                              // requests served at once, at most
  unsigned busy_ = 0;                                    // guarded by mu_: requests being served
  std::thread::id leader_;                               // guarded by mu_; none: the next free thread leads
  bool serving_ = false;                                 // guarded by mu_: the leader is in a handler
  uint64_t served_ = 0;                                  // guarded by mu_: requests the leaders started
  bool watchdog_asleep_ = false;                         // guarded by mu_
  std::chrono::steady_clock::time_point pool_until_;     // guarded by mu_
};

}  // namespace

std::string_view Request::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) { return a == lower(b); })) {
      return v;
    }
  }
  return {};
}

std::string_view Request::pathname() const {
  std::string_view p = path;
  return p.substr(0, p.find('?'));
}

std::string Request::query(std::string_view name) const {
  auto q = path.find('?');
  if (q == std::string::npos) return "";
  std::string_view rest = std::string_view(path).substr(q + 1);
  while (!rest.empty()) {
    std::string_view pair = rest.substr(0, rest.find('&'));
    rest.remove_prefix(std::min(rest.size(), pair.size() + 1));
    std::string_view key = pair.substr(0, pair.find('='));
    if (key == name) return std::string(pair.size() > key.size() ? pair.substr(key.size() + 1) : "");
  }
  return "";
}

Response& Response::header(std::string name, std::string value) {
  for (char& c : name) c = lower(c);
  headers.emplace_back(std::move(name), std::move(value));
  return *this;
}

namespace {
Response typed(std::string body, int status, std::string type) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  r.header("content-type", std::move(type));
  return r;
}
}  // namespace

Response Response::text(std::string body, int status) {
  return typed(std::move(body), status, "text/plain; charset=utf-8");
}

Response Response::json(std::string json_text, int status) {
  return typed(std::move(json_text), status, "application/json");
}

std::string jsonEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", c);
          out += b;
        } else {
          out += c;
        }
    }
  }
  return out;
}

}  // namespace nubo

int main() {
  if (!nubo::wholeHandler() && !nubo::streamHandler()) {
    std::fprintf(stderr, "nubo: define nubo::Response handle(const nubo::Request&) or "
                         "void handle(const nubo::Request&, nubo::ResponseWriter&)\n");
    return 2;
  }
  const char* fd = std::getenv("NUBO_FD");
  static nubo::Server server(fd ? std::atoi(fd) : 3);
  server.run();
}
