// The nubo SDK for native functions: the instance protocol (docs/protocol.md)
// and a main() that serves the user's handle().
#include "nubo.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
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
// Frames queued while one thread writes go out with its next write: under
// load many responses share one system call.
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
  int fd() const { return fd_; }

 private:
  int fd_;
  std::mutex mu_;
  std::string pending_;   // guarded by mu_
  bool writing_ = false;  // guarded by mu_
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

class Writer final : public ResponseWriter {
 public:
  Writer(Channel& ch, std::shared_ptr<Stream> st) : ch_(ch), st_(std::move(st)) {}
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
  bool started_ = false;
  bool ended_ = false;
};

class Server {
 public:
  explicit Server(int fd) : ch_(fd) {}

  int run() {
    ch_.send(kHello, 0, 0, R"({"runtime":"native","pid":)" + std::to_string(::getpid()) + "}");
    unsigned n = std::max(2u, std::min(8u, std::thread::hardware_concurrency()));
    for (unsigned i = 0; i < n; ++i) std::thread([this] { work(); }).detach();
    std::string buf;
    char chunk[64 * 1024];
    for (;;) {
      ssize_t got = ::read(ch_.fd(), chunk, sizeof chunk);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return 0;  // the gateway closed the socket: time to go
      buf.append(chunk, static_cast<size_t>(got));
      size_t off = 0;
      while (buf.size() - off >= 10) {
        uint32_t len = getU32(buf.data() + off);
        if (len > kMaxFrame) return 2;
        if (buf.size() - off < 10 + len) break;
        frame(static_cast<uint8_t>(buf[off + 4]), static_cast<uint8_t>(buf[off + 5]), getU32(buf.data() + off + 6),
              std::string_view(buf.data() + off + 10, len));
        off += 10 + len;
      }
      buf.erase(0, off);
    }
  }

 private:
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
        if (flags & kEnd) enqueueLocked(st);
        return;
      }
      case kData: {
        {
          std::lock_guard lock(mu_);
          auto it = streams_.find(id);
          if (it == streams_.end()) return;
          it->second->req.body.append(p);
          if (flags & kEnd) enqueueLocked(it->second);
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

  void enqueueLocked(std::shared_ptr<Stream> st) {
    queue_.push_back(std::move(st));
    cv_.notify_one();
  }

  void work() {
    for (;;) {
      std::shared_ptr<Stream> st;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return !queue_.empty(); });
        st = std::move(queue_.front());
        queue_.pop_front();
      }
      serve(st);
      std::lock_guard lock(mu_);
      streams_.erase(st->id);
    }
  }

  void serve(const std::shared_ptr<Stream>& st) {
    Writer out(ch_, st);
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
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint32_t, std::shared_ptr<Stream>> streams_;  // guarded by mu_
  std::deque<std::shared_ptr<Stream>> queue_;            // guarded by mu_
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

Response Response::text(std::string body, int status) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  r.header("content-type", "text/plain; charset=utf-8");
  return r;
}

Response Response::json(std::string json_text, int status) {
  Response r;
  r.status = status;
  r.body = std::move(json_text);
  r.header("content-type", "application/json");
  return r;
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
  return nubo::Server(fd ? std::atoi(fd) : 3).run();
}
