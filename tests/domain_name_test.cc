#include "common/domain_name.h"

#include <gtest/gtest.h>

namespace nubo {
namespace {

std::string norm(std::string_view s) {
  auto r = normalizeDomain(s);
  return r.ok() ? r->host : "error: " + r.status().message();
}

TEST(DomainNameTest, NamesAreLowercasedWithoutTheTrailingDot) {
  EXPECT_EQ(norm("Shop.Example.COM."), "shop.example.com");
  EXPECT_EQ(norm("a-b.c-d.example"), "a-b.c-d.example");
  auto w = normalizeDomain("*.Example.com");
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE(w->wildcard);
  EXPECT_EQ(w->host, "*.example.com");
  EXPECT_EQ(w->suffix(), "example.com");
  EXPECT_FALSE(normalizeDomain("shop.example.com")->wildcard);
}

TEST(DomainNameTest, NonAsciiNamesBecomePunycode) {
  EXPECT_EQ(norm("bücher.example"), "xn--bcher-kva.example");
  EXPECT_EQ(norm("BÜCHER.example"), "xn--bcher-kva.example");
  EXPECT_EQ(norm("*.münchen.de"), "*.xn--mnchen-3ya.de");
  EXPECT_EQ(norm("xn--bcher-kva.example"), "xn--bcher-kva.example");
}

TEST(DomainNameTest, BadNamesAreRefusedNamingTheBadPart) {
  EXPECT_NE(norm("127.0.0.1").find("IP address"), std::string::npos);
  EXPECT_NE(norm("[::1]").find("IP address"), std::string::npos);
  EXPECT_NE(norm("shop.example.com:8080").find("port"), std::string::npos);
  EXPECT_NE(norm("under_score.example.com").find("under_score"), std::string::npos);
  EXPECT_NE(norm("-lead.example.com").find("-lead"), std::string::npos);
  EXPECT_NE(norm("a..example.com").find("empty label"), std::string::npos);
  EXPECT_NE(norm(std::string(64, 'a') + ".com").find("at most 63"), std::string::npos);
  std::string long_name;
  for (int i = 0; i < 50; ++i) long_name += "abcde.";
  EXPECT_NE(norm(long_name + "com").find("at most 253"), std::string::npos);
  EXPECT_NE(norm("localhost").find("one label"), std::string::npos);
  EXPECT_NE(norm("a.*.example.com").find("'*'"), std::string::npos);
  EXPECT_NE(norm("*example.com").find("'*'"), std::string::npos);
  EXPECT_NE(norm("").find("empty"), std::string::npos);
  EXPECT_NE(norm("sp ace.example.com").find("' '"), std::string::npos);
  EXPECT_NE(norm("*.com").find("one label"), std::string::npos) << "a wildcard over a whole top-level domain";
}

TEST(DomainNameTest, RequestHostsLoseTheTrailingDot) {
  EXPECT_EQ(requestHostKey("shop.example.com."), "shop.example.com");
  EXPECT_EQ(requestHostKey("shop.example.com"), "shop.example.com");
}

}  // namespace
}  // namespace nubo
