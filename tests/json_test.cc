// parseJson: malformed and hostile JSON come back as Status, never a crash.
#include "common/json.h"

#include <gtest/gtest.h>

namespace nubo {
namespace {

TEST(JsonTest, NestingBeyondTheLimitIsRefusedBeforeParsing) {
  std::string deep = std::string(70000, '[') + std::string(70000, ']');
  auto r = parseJson(deep, "nubo.json");
  ASSERT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("nubo.json is nested 70000 levels deep; at most 64"), std::string::npos)
      << r.status().message();
  std::string objects;
  for (int i = 0; i < 65; ++i) objects += "{\"a\":";
  objects += "1" + std::string(65, '}');
  EXPECT_EQ(parseJson(objects, "body").status().code(), Code::kInvalidArgument);
}

TEST(JsonTest, BracketsInStringsDoNotCountAndTheLimitItselfParses) {
  std::string ok = std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']');
  EXPECT_TRUE(parseJson(ok, "x").ok());
  std::string in_string = "{\"s\": \"" + std::string(1000, '[') + "\\\"" + std::string(1000, '{') + "\"}";
  auto r = parseJson(in_string, "x");
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ((*r)["s"].get<std::string>().size(), 2001u);
}

TEST(JsonTest, MalformedJsonNamesWhatWasParsed) {
  auto r = parseJson("{\"a\": ", "request body");
  ASSERT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("request body is not valid JSON"), std::string::npos);
}

}  // namespace
}  // namespace nubo
