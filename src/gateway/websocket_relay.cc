#include "gateway/websocket_relay.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace nubo::gateway {

namespace asio = boost::asio;
using runtime::Clock;
using runtime::protocol::Frame;
using runtime::protocol::FrameType;

// ---- FrameScanner -----------------------------------------------------------

Status FrameScanner::feed(std::string_view bytes) {
  if (!ok_) return InvalidArgument("the connection already broke the WebSocket protocol");
  Status first;  // the first problem in these bytes (a message over the limit leaves the framing intact)
  while (!bytes.empty()) {
    if (left_ > 0) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(left_, bytes.size()));
      left_ -= n;
      bytes.remove_prefix(n);
      continue;
    }
    head_[have_++] = static_cast<unsigned char>(bytes.front());
    bytes.remove_prefix(1);
    if (have_ < 2) continue;
    unsigned len7 = head_[1] & 0x7f;
    size_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((head_[1] & 0x80) ? 4 : 0);
    if (have_ < need) continue;
    Status s = header();
    if (!s.ok() && s.code() != Code::kResourceExhausted) {
      ok_ = false;
      return s;
    }
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

Status FrameScanner::header() {
  bool fin = (head_[0] & 0x80) != 0;
  unsigned opcode = head_[0] & 0x0f;
  bool masked = (head_[1] & 0x80) != 0;
  unsigned len7 = head_[1] & 0x7f;
  uint64_t len = len7;
  if (len7 == 126) len = (uint64_t{head_[2]} << 8) | head_[3];
  if (len7 == 127) {
    len = 0;
    for (int i = 2; i < 10; ++i) len = (len << 8) | head_[i];
    if (len >> 63) return InvalidArgument("a frame length with its top bit set");
  }
  have_ = 0;
  left_ = len;
  bool control = opcode >= 8;
  if (opcode == 8) saw_close_ = true;
  if (from_client_) {
    if (head_[0] & 0x70) return InvalidArgument("reserved bits set, and no extension was agreed");
    if (!masked) return InvalidArgument("an unmasked frame from the client");
    if (control && (opcode > 10 || !fin || len > 125)) return InvalidArgument("a malformed control frame");
    if (!control && (opcode > 2 || (opcode == 0) != in_message_)) return InvalidArgument("a frame out of sequence");
  }
  if (control) return Status::Ok();
  uint64_t before = message_;
  message_ += len;
  in_message_ = !fin;
  if (fin) message_ = 0;
  if (max_message_ && before + len > max_message_ && before <= max_message_) {
    return ResourceExhausted("a message over " + std::to_string(max_message_ >> 20) + " MiB");
  }
  return Status::Ok();
}

std::string closeFrame(uint16_t code, std::string_view reason) {
  reason = reason.substr(0, 123);
  std::string f;
  f.push_back(static_cast<char>(0x88));
  f.push_back(static_cast<char>(2 + reason.size()));
  f.push_back(static_cast<char>(code >> 8));
  f.push_back(static_cast<char>(code & 0xff));
  f.append(reason);
  return f;
}

// ---- WebSocketRelay ---------------------------------------------------------

namespace {
constexpr size_t kGrantBatch = 64u << 10;
static_assert(kGrantBatch < runtime::protocol::kInitialWindow / 4);
}  // namespace

// What the two directions share; both run on the connection's executor.
struct WebSocketRelay::Shared {
  explicit Shared(const asio::any_io_executor& ex) : changed(ex), close_wait(ex) {}
  // Waits until fromClient() says something changed, or `until`.
  asio::awaitable<void> waitChange(Clock::time_point until) {
    changed.expires_at(until);
    boost::system::error_code ec;
    co_await changed.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  Clock::time_point last_activity = Clock::now();
  // Set by the client's side when it ends the socket: the close frame to
  // send (0: none) and why.
  uint16_t close_code = 0;
  std::string close_reason;
  bool client_gone = false;  // its connection failed: nothing more can be written
  bool stopped = false;      // the client's side ended it (close_code says how)
  bool client_ended = false; // the client ended its side of the connection
  bool finished = false;     // the instance's side is over
  bool reading = true;       // fromClient() still runs
  bool client_sent_close = false;  // a whole close frame came from the client
  asio::steady_timer changed;      // cancelled by fromClient() on each of the above
  asio::steady_timer close_wait;   // after the client ended its side
};

WebSocketRelay::WebSocketRelay(std::unique_ptr<runtime::Lease> lease, std::shared_ptr<runtime::Call> call,
                               std::string first, WebSocketLimits limits, std::function<void(const std::string&)> note)
    : lease_(std::move(lease)), call_(std::move(call)), first_(std::move(first)), limits_(limits),
      note_(std::move(note)) {}

asio::awaitable<void> WebSocketRelay::fromClient(http::Upgraded& conn, std::shared_ptr<Shared> shared) {
  FrameScanner scanner(/*from_client=*/true, limits_.max_message_bytes);
  auto stop = [&](uint16_t code, std::string reason) {
    shared->close_code = code;
    shared->close_reason = std::move(reason);
    shared->stopped = true;
    call_->abort(Unavailable("the client's side ended the WebSocket"));
  };
  bool draining = false;  // the socket is closing: the client's bytes go nowhere
  for (;;) {
    Result<std::string_view> bytes = co_await conn.read();
    if (!bytes.ok()) {
      shared->client_gone = true;
      if (!shared->finished) stop(0, "the client's connection failed");
      break;
    }
    draining = draining || shared->finished || shared->stopped;
    if (draining) {
      // Read and dropped until the client ends its connection; its close
      // frame lets the server end the connection first.
      (void)scanner.feed(*bytes);
      if (scanner.sawClose() && !shared->client_sent_close) {
        shared->client_sent_close = true;
        shared->changed.cancel();
      }
      if (bytes->empty()) break;
      continue;
    }
    if (bytes->empty()) {
      // The client ended its side: the function gets the end, and a moment
      // to end its own.
      shared->client_ended = true;
      Status sent = co_await call_->sendBody("", /*end=*/true, Clock::now() + limits_.close_wait);
      if (!sent.ok() || shared->finished) break;
      shared->close_wait.expires_after(limits_.close_wait);
      boost::system::error_code ec;
      co_await shared->close_wait.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (!shared->finished) stop(0, "the client closed the connection");
      break;
    }
    shared->last_activity = Clock::now();
    if (Status s = scanner.feed(*bytes); !s.ok()) {
      stop(s.code() == Code::kResourceExhausted ? 1009 : 1002, s.message());
      continue;
    }
    shared->client_sent_close = scanner.sawClose();
    Status sent = co_await call_->sendBody(*bytes, /*end=*/false, Clock::now() + limits_.idle_timeout);
    if (!sent.ok()) {
      // The function read nothing for the idle timeout, or its stream
      // closed (the instance's side then says why).
      if (sent.code() == Code::kDeadlineExceeded && !shared->finished) {
        stop(1001, "the function read nothing for the idle timeout");
      }
      draining = true;
    }
  }
  shared->reading = false;
  shared->changed.cancel();
}

void WebSocketRelay::serverDraining() {
  draining_ = true;
  auto shared = shared_.lock();
  if (!shared || shared->stopped || shared->finished) return;
  shared->close_code = 1001;
  shared->close_reason = "the server is shutting down";
  shared->stopped = true;
  call_->abort(Unavailable("the server is shutting down"));
}

asio::awaitable<void> WebSocketRelay::run(http::Upgraded& conn) {
  auto ex = co_await asio::this_coro::executor;
  auto shared = std::make_shared<Shared>(ex);
  shared_ = shared;
  if (draining_) serverDraining();
  asio::co_spawn(ex, fromClient(conn, shared), asio::detached);

  FrameScanner scanner(/*from_client=*/false, 0);
  uint16_t code = 0;  // a close frame of ours, if it ends so
  std::string reason;
  bool instance_ended = false;
  auto relay = [&](std::string_view bytes) -> asio::awaitable<bool> {
    if (bytes.empty()) co_return true;
    (void)scanner.feed(bytes);  // the function's frames are its own; only where they end matters
    Status written = co_await conn.write(bytes);
    if (!written.ok()) {
      shared->client_gone = true;
      co_return false;
    }
    shared->last_activity = Clock::now();
    co_return true;
  };
  bool open = co_await relay(first_);
  size_t ungranted = first_.size();
  first_.clear();
  while (open) {
    Result<Frame> f = co_await call_->next(shared->last_activity + limits_.idle_timeout);
    if (!f.ok()) {
      if (f.status().code() == Code::kDeadlineExceeded) {
        if (Clock::now() < shared->last_activity + limits_.idle_timeout) continue;  // the client was active
        code = 1001;
        reason = "idle for " + std::to_string(limits_.idle_timeout.count() / 1000) + " s";
      } else if (shared->stopped) {
        code = shared->close_code;
        reason = shared->close_reason;
      } else {
        code = 1011;
        reason = "the function's instance failed";
        note_("the instance failed with a WebSocket open: " + f.status().message());
      }
      break;
    }
    if (f->type == FrameType::kError) {
      call_->markDone();
      instance_ended = true;
      code = 1011;
      reason = "the function failed";
      note_("the handler failed with a WebSocket open: " + f->payload.substr(0, 2000));
      break;
    }
    if (f->type != FrameType::kData) continue;
    size_t n = f->payload.size();
    open = co_await relay(f->payload);
    if (f->endStream()) {
      // The function ended the socket (after its close frame, normally).
      call_->markDone();
      instance_ended = true;
      break;
    }
    // Window goes back in batches (well under the instance's window): one
    // WINDOW per 64 KiB relayed, not one per message.
    ungranted += n;
    if (open && ungranted >= kGrantBatch) {
      call_->grant(static_cast<uint32_t>(ungranted));
      ungranted = 0;
    }
  }
  shared->finished = true;
  if (code != 0 && !shared->client_gone && scanner.atBoundary()) {
    if (code != 1000 && code != 1011) note_("WebSocket closed with " + std::to_string(code) + ": " + reason);
    (void)co_await conn.write(closeFrame(code, reason));
  }
  if (!instance_ended) call_->abort(Unavailable("the WebSocket is closed"));
  shared->close_wait.cancel();
  // A client that is still there gets a moment to answer the close; then
  // the server ends the connection first (RFC 6455 7.1.1) and reads until
  // the client ends its side (closing at once would reset its last frames).
  if (!shared->client_gone && !shared->client_ended) {
    auto until = Clock::now() + limits_.close_wait;
    // (A client that broke the protocol is not waited for.)
    while (code != 1002 && shared->reading && !shared->client_sent_close && Clock::now() < until) {
      co_await shared->waitChange(until);
    }
    conn.shutdownSend();
    while (shared->reading && Clock::now() < until) co_await shared->waitChange(until);
  }
  conn.close();
  while (shared->reading) co_await shared->waitChange(Clock::time_point::max());
}

}  // namespace nubo::gateway
