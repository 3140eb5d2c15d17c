#include "manifest/manifest.h"

#include <gtest/gtest.h>

namespace nubo::manifest {
namespace {

TEST(ManifestTest, EmptyManifestHasDefaults) {
  auto m = parseManifestText("{}");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->runtime, "static");
  EXPECT_EQ(m->limits.memory_mb, 128);
  EXPECT_EQ(m->limits.max_instances, 4);
  EXPECT_FALSE(m->permissions.network);
  EXPECT_EQ(m->permissions.tmp_mb, 16);
}

TEST(ManifestTest, TheDesignExampleIsValid) {
  auto m = parseManifestText(R"({
    "name": "hello", "runtime": "node", "entry": "index.js",
    "build":   { "builder": "node", "command": "npm run build", "output": "dist" },
    "limits":  { "memory_mb": 128, "timeout_ms": 10000, "concurrency": 32,
                 "min_instances": 0, "max_instances": 4, "idle_ttl_s": 300 },
    "permissions": { "network": false, "tmp_mb": 16 },
    "env": { "GREETING": "hi" },
    "cron": [ { "schedule": "*/5 * * * *", "path": "/tick" } ]
  })");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->name, "hello");
  EXPECT_EQ(m->build.output, "dist");
  EXPECT_EQ(m->env.at("GREETING"), "hi");
  ASSERT_EQ(m->cron.size(), 1u);
  // Round trip through canonical JSON.
  auto again = parseManifest(toJson(*m));
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(toJson(*again), toJson(*m));
}

TEST(ManifestTest, EveryProblemIsListedAtOnceNamingTheField) {
  auto m = parseManifestText(R"({
    "name": "Bad Name", "runtime": "cobol", "colour": "blue",
    "limits": { "memory_mb": 1, "timeout_ms": "fast", "cpu": 40 },
    "permissions": { "network": "yes" },
    "env": { "1BAD": "x", "OK": 3 },
    "build": { "output": "../out" },
    "cron": [ { "schedule": "every minute", "path": "tick" } ]
  })");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), Code::kInvalidArgument);
  const std::string msg = m.status().message();
  for (const char* field : {"name:", "runtime:", "colour:", "limits.memory_mb:", "limits.timeout_ms:",
                            "limits.cpu:", "permissions.network:", "env.1BAD:", "env.OK:", "build.output:",
                            "cron[0].schedule:", "cron[0].path:"}) {
    EXPECT_NE(msg.find(field), std::string::npos) << "missing " << field << " in:\n" << msg;
  }
  EXPECT_NE(msg.find("12 problems"), std::string::npos) << msg;
}

TEST(ManifestTest, CronEntriesAreBoundedAndTheirPathsPlain) {
  std::string many = R"({"cron": [)";
  for (int i = 0; i < 21; ++i) many += std::string(i ? "," : "") + R"({"schedule": "@hourly", "path": "/t"})";
  many += "]}";
  auto m = parseManifestText(many);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("at most 20"), std::string::npos) << m.status().message();
  auto ctl = parseManifestText("{\"cron\": [{\"schedule\": \"@hourly\", \"path\": \"/t\\u0001x\"}]}");
  ASSERT_FALSE(ctl.ok());
  EXPECT_NE(ctl.status().message().find("cron[0].path"), std::string::npos) << ctl.status().message();
  auto bad = parseManifestText(R"({"cron": [{"schedule": "61 * * * *", "path": "/t"}]})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("the minute has 61"), std::string::npos) << bad.status().message();
  EXPECT_TRUE(parseManifestText(R"({"cron": [{"schedule": "@daily", "path": "/t?x=1"}]})").ok());
}

TEST(ManifestTest, CpuIsAWeightInCpus) {
  auto m = parseManifestText(R"({"limits": {"cpu": 0.5}})");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_DOUBLE_EQ(m->limits.cpu, 0.5);
  EXPECT_DOUBLE_EQ(parseManifestText("{}")->limits.cpu, 1.0);
  for (const char* bad : {R"({"limits": {"cpu": 0}})", R"({"limits": {"cpu": "half"}})", R"({"limits": {"cpu": 17}})"}) {
    auto r = parseManifestText(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("limits.cpu: must be a number from 0.1 to 16"), std::string::npos)
        << r.status().message();
  }
}

TEST(ManifestTest, DefaultsRoundTripThroughCanonicalJson) {
  auto m = parseManifestText("{}");
  ASSERT_TRUE(m.ok());
  auto again = parseManifest(toJson(*m));
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(toJson(*again), toJson(*m));
  EXPECT_FALSE(toJson(*m).contains("name"));
}

TEST(ManifestTest, MinInstancesMayNotExceedMax) {
  auto m = parseManifestText(R"({"limits": {"min_instances": 5, "max_instances": 2}})");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("limits.min_instances"), std::string::npos);
}

TEST(ManifestTest, AHealthPathIsARequestPathOfCode) {
  auto m = parseManifestText(R"({"runtime": "node", "entry": "server.js", "health": {"path": "/healthz?deep=1"}})");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->health.path, "/healthz?deep=1");
  EXPECT_EQ(parseManifest(toJson(*m))->health.path, "/healthz?deep=1");
  EXPECT_FALSE(toJson(*parseManifestText("{}")).contains("health"));
  for (const char* bad : {R"({"health": {"path": "healthz"}})", R"({"health": {"path": "/a b"}})",
                          R"({"health": {"path": "/a#b"}})", R"({"health": {"path": "/\u0001"}})"}) {
    auto r = parseManifestText(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("health.path: must be a request path"), std::string::npos)
        << r.status().message();
  }
  auto extra = parseManifestText(R"({"health": {"path": "/h", "interval": 5}})");
  ASSERT_FALSE(extra.ok());
  EXPECT_NE(extra.status().message().find("health.interval"), std::string::npos) << extra.status().message();
  EXPECT_TRUE(parseManifestText(R"({"entry": "server.js", "health": {"path": "/h"}})").ok()) << "a runtime to detect";
  auto site = parseManifestText(R"({"runtime": "static", "health": {"path": "/h"}})");
  ASSERT_FALSE(site.ok());
  EXPECT_NE(site.status().message().find("a static site runs no code"), std::string::npos);
}

TEST(ManifestTest, MalformedJsonSaysSo) {
  auto m = parseManifestText("{\"name\": ");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("nubo.json is not valid JSON"), std::string::npos);
  auto arr = parseManifestText("[1]");
  ASSERT_FALSE(arr.ok());
  EXPECT_NE(arr.status().message().find("must be a JSON object"), std::string::npos);
}

}  // namespace
}  // namespace nubo::manifest
