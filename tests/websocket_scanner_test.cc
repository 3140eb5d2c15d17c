// FrameScanner: where WebSocket frames end, and which the gateway refuses.
#include <gtest/gtest.h>

#include "gateway/websocket_relay.h"

namespace nubo::gateway {
namespace {

// A frame as a client sends it (masked with a zero key: the scanner never unmasks).
std::string clientFrame(uint8_t first, const std::string& payload, bool masked = true) {
  std::string f(1, static_cast<char>(first));
  uint8_t m = masked ? 0x80 : 0;
  if (payload.size() < 126) {
    f.push_back(static_cast<char>(m | payload.size()));
  } else if (payload.size() < 65536) {
    f.push_back(static_cast<char>(m | 126));
    f.push_back(static_cast<char>(payload.size() >> 8));
    f.push_back(static_cast<char>(payload.size() & 0xff));
  } else {
    f.push_back(static_cast<char>(m | 127));
    for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>((uint64_t{payload.size()} >> (8 * i)) & 0xff));
  }
  if (masked) f.append(4, '\0');
  return f + payload;
}

TEST(FrameScannerTest, FindsFrameEndsAcrossAnySplit) {
  std::string bytes = clientFrame(0x81, "hello") + clientFrame(0x82, std::string(300, 'b')) +
                      clientFrame(0x82, std::string(70000, 'c'));
  for (size_t step : {1, 3, 7, 4096}) {
    FrameScanner s(/*from_client=*/true, 1 << 20);
    EXPECT_TRUE(s.atBoundary());
    for (size_t i = 0; i < bytes.size(); i += step) {
      ASSERT_TRUE(s.feed(std::string_view(bytes).substr(i, step)).ok()) << "step " << step << " at " << i;
    }
    EXPECT_TRUE(s.atBoundary());
  }
  FrameScanner s(true, 0);
  ASSERT_TRUE(s.feed(bytes.substr(0, 4)).ok());
  EXPECT_FALSE(s.atBoundary());  // inside the first frame's header
}

TEST(FrameScannerTest, AMessageOverTheLimitIsSaidOnceAndTheWalkGoesOn) {
  FrameScanner s(true, 1000);
  // A fragmented message: 600 + 600 bytes crosses the limit in its second frame.
  EXPECT_TRUE(s.feed(clientFrame(0x01, std::string(600, 'a'))).ok());
  Status over = s.feed(clientFrame(0x80, std::string(600, 'a')));
  EXPECT_EQ(over.code(), Code::kResourceExhausted);
  // A ping between fragments does not count; later frames still parse.
  EXPECT_TRUE(s.feed(clientFrame(0x89, "p")).ok());
  EXPECT_TRUE(s.feed(clientFrame(0x88, "\x03\xe8")).ok());
  EXPECT_TRUE(s.sawClose());
  EXPECT_TRUE(s.atBoundary());
}

TEST(FrameScannerTest, RefusesWhatTheProtocolForbidsFromClients) {
  struct Case {
    std::string bytes;
    const char* why;
  } cases[] = {
      {clientFrame(0x81, "x", /*masked=*/false), "unmasked"},
      {clientFrame(0xc1, "x"), "reserved bits (no extension agreed)"},
      {clientFrame(0x09, "x"), "a ping without FIN"},
      {clientFrame(0x89, std::string(126, 'x')), "a control frame over 125 bytes"},
      {clientFrame(0x80, "x"), "a continuation with no message"},
      {clientFrame(0x01, "x") + clientFrame(0x81, "y"), "a new message inside a fragmented one"},
      {clientFrame(0x83, "x"), "a reserved opcode"},
      {std::string("\x82\xff\x80\0\0\0\0\0\0\0\0\0\0\0", 14), "a length with its top bit set"},
  };
  for (const auto& c : cases) {
    FrameScanner s(true, 0);
    Status st = s.feed(c.bytes);
    EXPECT_EQ(st.code(), Code::kInvalidArgument) << c.why;
    EXPECT_FALSE(s.feed("\x81\x80").ok()) << c.why << ": stays failed";
    EXPECT_FALSE(s.atBoundary());
  }
  // The server's direction is only walked: unmasked frames are the norm.
  FrameScanner out(false, 0);
  EXPECT_TRUE(out.feed(clientFrame(0x81, "hi", false)).ok());
  EXPECT_TRUE(out.atBoundary());
}

TEST(FrameScannerTest, CloseFramesCarryTheirCodeAndAShortReason) {
  std::string f = closeFrame(1011, "the function's instance failed");
  ASSERT_GE(f.size(), 4u);
  EXPECT_EQ(static_cast<uint8_t>(f[0]), 0x88);
  EXPECT_EQ(static_cast<size_t>(f[1]), f.size() - 2);
  EXPECT_EQ((static_cast<uint8_t>(f[2]) << 8) | static_cast<uint8_t>(f[3]), 1011);
  EXPECT_EQ(closeFrame(1001, std::string(500, 'r')).size(), 2u + 125u);  // a control frame's limit
  FrameScanner s(false, 0);
  EXPECT_TRUE(s.feed(f).ok());
  EXPECT_TRUE(s.sawClose());
}

}  // namespace
}  // namespace nubo::gateway
