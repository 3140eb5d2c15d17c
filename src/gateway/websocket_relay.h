// WebSocketRelay: a client's WebSocket joined to a function instance's
// stream, once the function accepted the upgrade (101). The bytes of the
// connection (WebSocket frames, RFC 6455) flow both ways as DATA frames of
// the stream under the protocol's windows: a client that reads slowly
// slows the function, a function that reads slowly slows the client.
//
// The gateway does not terminate the WebSocket; it walks the frames of each
// direction (FrameScanner) without copying or unmasking them, so that:
// - a client message over `max_message_bytes` closes with 1009, a frame the
//   protocol forbids (unmasked, reserved bits, a bad control frame) with
//   1002;
// - no frame either way for `idle_timeout` closes with 1001;
// - an instance that crashes, or a handler that fails, closes with 1011;
// - a server shutting down closes with 1001 at once (clients reconnect to
//   another server rather than being cut off at the end of the drain);
// - such a close frame is only written between two of the function's
//   frames (never into one); the function is told with CANCEL.
// Ping, pong and close frames pass through untouched, so their codes and
// payloads reach the other side. The relay holds its instance's lease: an
// open socket counts against the instance's concurrency, and an instance
// with one is never reaped as idle.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "http/message.h"
#include "runtime/pool.h"

namespace nubo::gateway {

struct WebSocketLimits {
  uint64_t max_message_bytes = 16ull << 20;
  std::chrono::milliseconds idle_timeout{300'000};
  // After the client ended its side: how long the function has to end its own.
  std::chrono::milliseconds close_wait{5'000};
};

// Walks one direction's frames; keeps no payload bytes.
class FrameScanner {
 public:
  // `from_client`: frames must be masked, and messages are held to
  // `max_message` bytes (0: no limit).
  FrameScanner(bool from_client, uint64_t max_message) : from_client_(from_client), max_message_(max_message) {}
  // kResourceExhausted: a message went over the limit (close with 1009;
  // said once, and the walk goes on); kInvalidArgument: a frame the
  // protocol forbids (1002), after which every feed fails.
  Status feed(std::string_view bytes);
  // Between two frames: a frame of our own may be written here.
  bool atBoundary() const { return have_ == 0 && left_ == 0 && ok_; }
  // A whole close frame went by.
  bool sawClose() const { return saw_close_ && left_ == 0; }

 private:
  Status header();

  const bool from_client_;
  const uint64_t max_message_;
  unsigned char head_[14] = {};
  size_t have_ = 0;      // header bytes collected
  uint64_t left_ = 0;    // payload bytes of the current frame still to come
  uint64_t message_ = 0; // payload bytes of the data message under way
  bool in_message_ = false;
  bool ok_ = true;
  bool saw_close_ = false;
};

// A close frame as the server sends it (unmasked): `code`, then `reason`
// (cut to fit the 125 bytes of a control frame).
std::string closeFrame(uint16_t code, std::string_view reason);

class WebSocketRelay final : public http::Takeover {
 public:
  // `first`: bytes the function sent with its 101 (frames already).
  // `note`: says what ended the socket in the deployment's log.
  WebSocketRelay(std::unique_ptr<runtime::Lease> lease, std::shared_ptr<runtime::Call> call, std::string first,
                 WebSocketLimits limits, std::function<void(const std::string&)> note);
  boost::asio::awaitable<void> run(http::Upgraded& conn) override;
  // Closes the socket with 1001 (the server is going away).
  void serverDraining() override;

 private:
  struct Shared;
  std::weak_ptr<Shared> shared_;  // run()'s, while it runs
  bool draining_ = false;
  boost::asio::awaitable<void> fromClient(http::Upgraded& conn, std::shared_ptr<Shared> shared);

  std::unique_ptr<runtime::Lease> lease_;
  std::shared_ptr<runtime::Call> call_;
  std::string first_;
  WebSocketLimits limits_;
  std::function<void(const std::string&)> note_;
};

}  // namespace nubo::gateway
