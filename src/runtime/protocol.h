// The instance protocol: how the gateway talks to a function instance over
// one Unix socket (docs/protocol.md is the reference; runtimes/node speaks
// the other side).
//
// Every frame: a 10-byte header, then the payload.
//   u32 payload length (big-endian) | u8 type | u8 flags | u32 stream id (big-endian)
// Stream 0 is the control stream (HELLO, SPECIALIZE, READY). Requests use
// odd stream ids chosen by the gateway, so many requests share the socket.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace nubo::runtime::protocol {

enum class FrameType : uint8_t {
  kHello = 1,       // instance -> gateway: {"runtime","pid","version"} once connected
  kSpecialize = 2,  // gateway -> instance: {"deployment","app","dir","entry","env"}
  kReady = 3,       // instance -> gateway: {"ok":true,"load_ms"} or {"ok":false,"error"}
  kRequest = 10,    // gateway -> instance: u32 head length, request head, then body bytes
  kData = 11,       // either way: body bytes of the stream
  kResponse = 20,   // instance -> gateway: u32 head length, response head, then body bytes
  kCancel = 30,     // gateway -> instance: the client is gone or the time is up
  kError = 31,      // instance -> gateway: the handler failed {"message"}
  kWindow = 40,     // either way: u32 more bytes the sender of this frame accepts
  kWaitUntilCount = 50,  // instance -> gateway, stream 0: u32 ctx.waitUntil promises still pending
};

// Flag: this frame ends the sender's half of the stream.
constexpr uint8_t kEndStream = 1;
// Flag on REQUEST: the request asks to switch protocols (a WebSocket). A
// RESPONSE with status 101 then turns the stream into a tunnel of the
// connection's bytes (DATA both ways).
constexpr uint8_t kUpgrade = 2;

constexpr size_t kHeaderSize = 10;
constexpr uint32_t kMaxPayload = 16u << 20;
// Body bytes either side may send on a stream before WINDOW grants more.
constexpr uint32_t kInitialWindow = 1u << 20;
// The gateway's largest DATA frame.
constexpr size_t kMaxData = 256u << 10;

struct Frame {
  FrameType type = FrameType::kData;
  uint8_t flags = 0;
  uint32_t stream = 0;
  std::string payload;

  bool endStream() const { return (flags & kEndStream) != 0; }
};

// Big-endian u32 helpers.
void putU32(std::string& out, uint32_t v);
uint32_t readU32(const char* p);

// Appends the encoded frame to `out`.
void appendFrame(std::string& out, FrameType type, uint8_t flags, uint32_t stream, std::string_view payload);
// A REQUEST or RESPONSE payload: u32 head length, head, body bytes.
void appendHeadFrame(std::string& out, FrameType type, uint8_t flags, uint32_t stream, std::string_view head,
                     std::string_view body);
// Splits a REQUEST/RESPONSE payload; kInvalidArgument when malformed.
Status splitHead(std::string_view payload, std::string_view* head, std::string_view* body);

// Heads are binary, length-prefixed (big-endian): cheap to build and parse
// on both sides, no JSON on the request path.
//   request head:  str16 method, str16 path, str16 url, str16 request id,
//                  u16 count, count x (str16 name, str32 value)
//   response head: u16 status, u16 count, count x (str16 name, str32 value)
// str16 = u16 length + bytes; str32 = u32 length + bytes.
using HeaderList = std::vector<std::pair<std::string_view, std::string_view>>;
void appendRequestHead(std::string& out, std::string_view method, std::string_view path, std::string_view url,
                       std::string_view request_id, const HeaderList& headers);

struct RequestHead {
  std::string method, path, url, request_id;
  std::vector<std::pair<std::string, std::string>> headers;
};
// kInvalidArgument when malformed.
Status parseRequestHead(std::string_view head, RequestHead* out);

struct ResponseHead {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
};
// kInvalidArgument when malformed.
Status parseResponseHead(std::string_view head, ResponseHead* out);
void appendResponseHead(std::string& out, int status, const HeaderList& headers);

// Incremental decoder: feed bytes as they arrive, take whole frames out.
class FrameDecoder {
 public:
  void feed(const char* data, size_t n) { buf_.append(data, n); }
  // A frame, nothing yet (false), or an error for a malformed stream.
  Result<bool> next(Frame* out);

 private:
  std::string buf_;
  size_t pos_ = 0;
};

}  // namespace nubo::runtime::protocol
