// Fuzzes FrameScanner with what a WebSocket client can send the gateway:
// bytes fed in pieces, the scanner's answers checked against a second walk
// of the same bytes fed whole.
#include <cstdint>
#include <string_view>

#include "gateway/websocket_relay.h"

using nubo::gateway::FrameScanner;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  // The first byte: the piece size and the message limit.
  size_t piece = 1 + data[0] % 32;
  uint64_t limit = (data[0] & 0x80) ? 64 : 0;
  FrameScanner pieces(/*from_client=*/true, limit), whole(/*from_client=*/true, limit);
  bool pieces_broke = false, pieces_over = false;
  for (size_t at = 0; at < in.size() && !pieces_broke; at += piece) {
    auto s = pieces.feed(in.substr(at, piece));
    if (!s.ok() && s.code() == nubo::Code::kResourceExhausted) pieces_over = true;
    if (!s.ok() && s.code() != nubo::Code::kResourceExhausted) pieces_broke = true;
  }
  auto w = whole.feed(in);
  bool whole_broke = !w.ok() && w.code() != nubo::Code::kResourceExhausted;
  bool whole_over = !w.ok() && w.code() == nubo::Code::kResourceExhausted;
  // How the bytes arrive must not change what the gateway decides.
  if (pieces_broke != whole_broke) __builtin_trap();
  if (!pieces_broke && pieces_over != whole_over) __builtin_trap();
  if (!pieces_broke && pieces.atBoundary() != whole.atBoundary()) __builtin_trap();
  // The close frame a server writes is one the server side walks cleanly.
  FrameScanner out(/*from_client=*/false, 0);
  if (!out.feed(nubo::gateway::closeFrame(1002, in.substr(0, 200))).ok() || !out.atBoundary() || !out.sawClose()) {
    __builtin_trap();
  }
  return 0;
}
