// Fuzzes the instance protocol codec with what an instance (a tenant's
// code) can send the gateway: frames fed in pieces to FrameDecoder, and the
// response heads inside them parsed as the gateway does.
#include <cstdint>
#include <string_view>

#include "runtime/protocol.h"

using namespace nubo::runtime::protocol;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  ResponseHead head;
  (void)parseResponseHead(in, &head);
  // The first byte says how the rest arrives: in pieces of that size.
  size_t piece = size > 0 ? 1 + data[0] % 64 : 1;
  FrameDecoder decoder;
  for (size_t at = size > 0 ? 1 : 0; at < size; at += piece) {
    decoder.feed(in.data() + at, std::min(piece, size - at));
    for (;;) {
      Frame f;
      auto got = decoder.next(&f);
      if (!got.ok()) return 0;  // a malformed stream ends the instance's connection
      if (!*got) break;
      if (f.payload.size() > kMaxPayload) __builtin_trap();
      if (f.type == FrameType::kResponse) {
        std::string_view h, body;
        if (splitHead(f.payload, &h, &body).ok()) (void)parseResponseHead(h, &head);
      }
    }
  }
  return 0;
}
