#include "gateway/static_site.h"

#include <gtest/gtest.h>

#include "gateway/mime.h"
#include "http/message.h"

namespace nubo::gateway {
namespace {

using K = ByteRange::Kind;

TEST(RangeTest, ParsesSingleRanges) {
  auto r = parseRange("bytes=0-9", 100);
  EXPECT_EQ(r.kind, K::kSatisfiable);
  EXPECT_EQ(r.start, 0u);
  EXPECT_EQ(r.length, 10u);
  r = parseRange("bytes=90-", 100);
  EXPECT_EQ(r.start, 90u);
  EXPECT_EQ(r.length, 10u);
  r = parseRange("bytes=-5", 100);
  EXPECT_EQ(r.start, 95u);
  EXPECT_EQ(r.length, 5u);
  r = parseRange("bytes=-500", 100);  // longer than the file: all of it
  EXPECT_EQ(r.start, 0u);
  EXPECT_EQ(r.length, 100u);
  r = parseRange("bytes=50-5000", 100);  // end clamped
  EXPECT_EQ(r.length, 50u);
}

TEST(RangeTest, UnsatisfiableAndIgnoredRanges) {
  EXPECT_EQ(parseRange("bytes=100-", 100).kind, K::kUnsatisfiable);
  EXPECT_EQ(parseRange("bytes=-0", 100).kind, K::kUnsatisfiable);
  EXPECT_EQ(parseRange("bytes=0-", 0).kind, K::kUnsatisfiable);
  EXPECT_EQ(parseRange("bytes=5-1", 100).kind, K::kIgnore);
  EXPECT_EQ(parseRange("bytes=0-1,3-4", 100).kind, K::kIgnore);
  EXPECT_EQ(parseRange("items=0-1", 100).kind, K::kIgnore);
  EXPECT_EQ(parseRange("bytes=a-b", 100).kind, K::kIgnore);
  EXPECT_EQ(parseRange("bytes=99999999999999999999999-", 100).kind, K::kIgnore);
}

TEST(EtagTest, MatchesListsWeakTagsAndStar) {
  EXPECT_TRUE(etagMatches("\"abc\"", "\"abc\""));
  EXPECT_TRUE(etagMatches("\"x\", \"abc\"", "\"abc\""));
  EXPECT_TRUE(etagMatches("W/\"abc\"", "\"abc\""));
  EXPECT_TRUE(etagMatches("*", "\"abc\""));
  EXPECT_FALSE(etagMatches("\"abcd\"", "\"abc\""));
  EXPECT_FALSE(etagMatches("abc", "\"abc\""));
}

TEST(MimeTest, KnownAndUnknownExtensions) {
  EXPECT_EQ(contentTypeFor("a/index.HTML"), "text/html; charset=utf-8");
  EXPECT_EQ(contentTypeFor("app.mjs"), "text/javascript; charset=utf-8");
  EXPECT_EQ(contentTypeFor("x.woff2"), "font/woff2");
  EXPECT_EQ(contentTypeFor("Makefile"), "application/octet-stream");
  EXPECT_EQ(contentTypeFor("archive.unknownext"), "application/octet-stream");
  EXPECT_EQ(contentTypeFor("dir.d/noext"), "application/octet-stream");
}

TEST(PercentDecodeTest, DecodesAndRejectsMalformed) {
  EXPECT_EQ(*http::percentDecode("/a%20b/%C3%BC"), "/a b/ü");
  EXPECT_FALSE(http::percentDecode("/a%2").ok());
  EXPECT_FALSE(http::percentDecode("/a%zz").ok());
  EXPECT_FALSE(http::percentDecode("/a%00b").ok());
}

}  // namespace
}  // namespace nubo::gateway
