#include "runtime/protocol.h"

#include <gtest/gtest.h>

namespace nubo::runtime::protocol {
namespace {

TEST(ProtocolTest, FramesSurviveArbitrarySplitsAndBatching) {
  std::string wire;
  appendFrame(wire, FrameType::kHello, 0, 0, R"({"runtime":"node"})");
  appendHeadFrame(wire, FrameType::kRequest, kEndStream, 7, "head-bytes", "body");
  appendFrame(wire, FrameType::kData, kEndStream, 9, std::string(100000, 'x'));
  // Feed one byte at a time, then all at once: the same frames come out.
  for (size_t step : {size_t{1}, wire.size()}) {
    FrameDecoder d;
    std::vector<Frame> got;
    for (size_t off = 0; off < wire.size(); off += step) {
      d.feed(wire.data() + off, std::min(step, wire.size() - off));
      Frame f;
      for (Result<bool> r = d.next(&f); r.ok() && *r; r = d.next(&f)) got.push_back(f);
    }
    ASSERT_EQ(got.size(), 3u) << "step " << step;
    EXPECT_EQ(got[0].type, FrameType::kHello);
    EXPECT_EQ(got[0].stream, 0u);
    EXPECT_EQ(got[1].type, FrameType::kRequest);
    EXPECT_TRUE(got[1].endStream());
    EXPECT_EQ(got[1].stream, 7u);
    std::string_view head, body;
    ASSERT_TRUE(splitHead(got[1].payload, &head, &body).ok());
    EXPECT_EQ(head, "head-bytes");
    EXPECT_EQ(body, "body");
    EXPECT_EQ(got[2].payload.size(), 100000u);
  }
}

TEST(ProtocolTest, MalformedStreamsAreErrorsNotCrashes) {
  FrameDecoder oversize;
  std::string big = {'\x7f', '\x00', '\x00', '\x00', 11, 0, 0, 0, 0, 1};
  oversize.feed(big.data(), big.size());
  Frame f;
  EXPECT_FALSE(oversize.next(&f).ok());

  FrameDecoder unknown;
  std::string bad = {0, 0, 0, 0, 99, 0, 0, 0, 0, 1};
  unknown.feed(bad.data(), bad.size());
  EXPECT_FALSE(unknown.next(&f).ok());

  std::string_view head, body;
  EXPECT_FALSE(splitHead("ab", &head, &body).ok());
  EXPECT_FALSE(splitHead(std::string("\0\0\0\x09" "abc", 7), &head, &body).ok());
}

TEST(ProtocolTest, HeadsRoundTripAndTruncationIsRejected) {
  std::string head;
  appendResponseHead(head, 201, {{"content-type", "text/plain"}, {"set-cookie", "a=1"}, {"x-empty", ""}});
  ResponseHead rh;
  ASSERT_TRUE(parseResponseHead(head, &rh).ok());
  EXPECT_EQ(rh.status, 201);
  ASSERT_EQ(rh.headers.size(), 3u);
  EXPECT_EQ(rh.headers[1].first, "set-cookie");
  EXPECT_EQ(rh.headers[1].second, "a=1");
  EXPECT_EQ(rh.headers[2].second, "");
  for (size_t cut = 0; cut < head.size(); ++cut) {
    EXPECT_FALSE(parseResponseHead(std::string_view(head).substr(0, cut), &rh).ok()) << "cut at " << cut;
  }
  EXPECT_FALSE(parseResponseHead(head + "x", &rh).ok());

  std::string req;
  appendRequestHead(req, "POST", "/a?b=1", "http://h/a?b=1", "0123", {{"host", "h"}});
  // method, path, url, id as str16; count; name str16 + value str32.
  EXPECT_EQ(req.size(), (2 + 4) + (2 + 6) + (2 + 14) + (2 + 4) + 2 + (2 + 4) + (4 + 1));
  EXPECT_EQ(req.substr(0, 6), std::string("\0\x04POST", 6));
}

}  // namespace
}  // namespace nubo::runtime::protocol
