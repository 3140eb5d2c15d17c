// Metrics, Exposition and Readiness: what GET /metrics and /_nubo/readyz say.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "common/readiness.h"
#include "metrics/exposition.h"
#include "metrics/history.h"
#include "metrics/metrics.h"
#include "exposition_util.h"

namespace nubo::metrics {
namespace {

double valueOf(const std::string& text, const std::string& series) {
  return testing_util::sampleValue(text, series, -1);
}

TEST(MetricsTest, RequestsFromManyThreadsAddUpByAppAndStatusClass) {
  Metrics m;
  Metrics::AppId shop = m.app("shop");
  Metrics::AppId blog = m.app("blog");
  EXPECT_EQ(m.app("shop"), shop) << "an app keeps its id";
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) m.request(shop, 200, std::chrono::microseconds(300));
      for (int i = 0; i < 10; ++i) m.request(blog, 503, std::chrono::milliseconds(20));
    });
  }
  for (auto& t : threads) t.join();
  m.request(Metrics::kNoApp, 404, std::chrono::microseconds(50));
  std::string text = m.render();
  EXPECT_EQ(valueOf(text, R"m(nubo_http_requests_total{app="shop",code="2xx"})m"), 4000) << text;
  EXPECT_EQ(valueOf(text, R"m(nubo_http_requests_total{app="blog",code="5xx"})m"), 40);
  EXPECT_EQ(valueOf(text, R"m(nubo_http_requests_total{app="blog",code="2xx"})m"), 0);
  EXPECT_EQ(valueOf(text, R"m(nubo_http_requests_total{app="(none)",code="4xx"})m"), 1);
  // Cumulative buckets: 300 us is under 0.0005 s; 20 ms under 0.025 s.
  EXPECT_EQ(valueOf(text, R"m(nubo_http_request_duration_seconds_bucket{app="shop",le="0.0005"})m"), 4000);
  EXPECT_EQ(valueOf(text, R"m(nubo_http_request_duration_seconds_bucket{app="blog",le="0.01"})m"), 0);
  EXPECT_EQ(valueOf(text, R"m(nubo_http_request_duration_seconds_bucket{app="blog",le="0.025"})m"), 40);
  EXPECT_EQ(valueOf(text, R"m(nubo_http_request_duration_seconds_bucket{app="blog",le="+Inf"})m"), 40);
  EXPECT_EQ(valueOf(text, R"m(nubo_http_request_duration_seconds_count{app="blog"})m"), 40);
  EXPECT_NEAR(valueOf(text, R"m(nubo_http_request_duration_seconds_sum{app="blog"})m"), 0.8, 1e-6);
  EXPECT_NEAR(valueOf(text, R"m(nubo_http_request_duration_seconds_sum{app="shop"})m"), 1.2, 1e-6);
}

TEST(MetricsTest, AppsPastTheLimitCountAsOther) {
  Metrics m(2);
  auto a = m.app("a");
  auto b = m.app("b");
  auto c = m.app("c");
  EXPECT_NE(a, b);
  EXPECT_EQ(c, Metrics::kOtherApp);
  m.request(c, 200, {});
  m.request(m.app("d"), 200, {});
  std::string text = m.render();
  EXPECT_EQ(valueOf(text, R"m(nubo_http_requests_total{app="(other)",code="2xx"})m"), 2) << text;
  EXPECT_EQ(text.find(R"(app="c")"), std::string::npos) << "no label beyond the limit";
}

TEST(MetricsTest, FailuresColdStartsBuildsAndDeploysAreCounted) {
  Metrics m;
  m.failed(Failure::kQueueFull);
  m.failed(Failure::kQueueFull);
  m.failed(Failure::kOutOfMemory);
  m.coldStart(RuntimeKind::kNode, {true, 0.4, 1.5, 3, 2});
  m.coldStart(RuntimeKind::kNative, {false, 30, 1, 2, 0});
  m.build("succeeded", 3.5);
  m.build("timed_out", 700);
  m.deployed();
  m.uploaded(1234);
  m.uploaded(1);
  std::string text = m.render();
  EXPECT_EQ(valueOf(text, R"m(nubo_function_failures_total{status="503",reason="queue_full"})m"), 2) << text;
  EXPECT_EQ(valueOf(text, R"m(nubo_function_failures_total{status="502",reason="out_of_memory"})m"), 1);
  EXPECT_EQ(valueOf(text, R"m(nubo_function_failures_total{status="504",reason="timeout"})m"), 0);
  EXPECT_EQ(valueOf(text, R"m(nubo_cold_starts_total{runtime="node",kind="stem"})m"), 1);
  EXPECT_EQ(valueOf(text, R"m(nubo_cold_starts_total{runtime="native",kind="spawn"})m"), 1);
  EXPECT_EQ(text.find(R"(runtime="static")"), std::string::npos) << "static runs no code";
  EXPECT_EQ(valueOf(text, R"m(nubo_cold_start_phase_seconds_bucket{phase="acquire",le="0.0005"})m"), 1);
  EXPECT_EQ(valueOf(text, R"m(nubo_cold_start_phase_seconds_bucket{phase="acquire",le="0.05"})m"), 2);
  EXPECT_NEAR(valueOf(text, R"m(nubo_cold_start_phase_seconds_sum{phase="files"})m"), 0.0025, 1e-9);
  EXPECT_EQ(valueOf(text, R"m(nubo_builds_total{outcome="succeeded"})m"), 1);
  EXPECT_EQ(valueOf(text, R"m(nubo_builds_total{outcome="timed_out"})m"), 1);
  EXPECT_EQ(valueOf(text, R"m(nubo_builds_total{outcome="failed"})m"), 0);
  EXPECT_EQ(valueOf(text, R"m(nubo_build_duration_seconds_bucket{outcome="timed_out",le="600"})m"), 0);
  EXPECT_EQ(valueOf(text, R"m(nubo_build_duration_seconds_bucket{outcome="timed_out",le="1800"})m"), 1);
  EXPECT_EQ(valueOf(text, "nubo_deploys_total"), 1);
  EXPECT_EQ(valueOf(text, "nubo_uploaded_bytes_total"), 1235);
}

TEST(MetricsTest, CollectorsAddTheirFamiliesAndEveryFamilyIsDeclaredOnce) {
  Metrics m;
  m.addCollector([](Exposition& out) {
    out.family("nubo_things", "gauge", "Things.");
    out.sample("nubo_things", {{"kind", "a"}}, 3);
  });
  std::string text = m.render();
  EXPECT_EQ(valueOf(text, R"m(nubo_things{kind="a"})m"), 3);
  // Every sample's family has one HELP and one TYPE line before it.
  for (std::string name : {"nubo_http_requests_total", "nubo_things", "nubo_deploys_total"}) {
    size_t help = text.find("# HELP " + name + " ");
    ASSERT_NE(help, std::string::npos) << name;
    EXPECT_EQ(text.find("# HELP " + name + " ", help + 1), std::string::npos) << name;
    EXPECT_NE(text.find("# TYPE " + name + " "), std::string::npos) << name;
  }
}

TEST(HistoryTest, EachMinuteGetsWhatChangedInItWithItsQuantiles) {
  Metrics m;
  History h(m, 60);
  auto shop = m.app("shop");
  const int64_t t0 = 1'700'000'000'000 - 1'700'000'000'000 % 60'000;  // a minute's start
  h.sample(t0);  // (nothing yet)
  for (int i = 0; i < 90; ++i) m.request(shop, 200, std::chrono::microseconds(700));   // 0.5-1 ms
  for (int i = 0; i < 10; ++i) m.request(shop, 503, std::chrono::milliseconds(40));    // 25-50 ms
  m.coldStart(RuntimeKind::kNode, {}, shop);
  h.sample(t0 + 20'000);
  for (int i = 0; i < 5; ++i) m.request(shop, 200, std::chrono::microseconds(700));
  h.sample(t0 + 65'000);  // the next minute
  auto points = h.series("shop", t0 + 70'000, 3);
  ASSERT_EQ(points.size(), 3u);
  EXPECT_EQ(points[0].minute_ms, t0 - 60'000);
  EXPECT_EQ(points[0].requests, 0u);
  EXPECT_EQ(points[1].minute_ms, t0);
  EXPECT_EQ(points[1].requests, 100u);
  EXPECT_EQ(points[1].errors, 10u);
  EXPECT_EQ(points[1].cold, 1u);
  EXPECT_GT(points[1].p50_s, 0.0005);
  EXPECT_LE(points[1].p50_s, 0.001);
  EXPECT_GT(points[1].p99_s, 0.025);
  EXPECT_LE(points[1].p99_s, 0.05);
  EXPECT_EQ(points[2].requests, 5u);
  EXPECT_EQ(points[2].errors, 0u);
  // An hour later the ring has moved on: old minutes read as zeros.
  auto later = h.series("shop", t0 + 2 * 3'600'000, 60);
  for (const auto& p : later) EXPECT_EQ(p.requests, 0u);
  EXPECT_EQ(h.series("never-served", t0, 5).size(), 5u);
}

TEST(HistoryTest, QuantilesInterpolateWithinTheirBucket) {
  std::vector<uint64_t> buckets(Metrics::kLatencyBounds.size() + 1);
  EXPECT_EQ(History::quantile(buckets, 0.5), 0);
  buckets[0] = 100;  // all at or under 0.5 ms
  EXPECT_NEAR(History::quantile(buckets, 0.5), 0.00025, 1e-9);
  buckets[0] = 0;
  buckets.back() = 4;  // above the last bound
  EXPECT_EQ(History::quantile(buckets, 0.99), Metrics::kLatencyBounds.back());
}

TEST(ExpositionTest, EscapesLabelValuesAndHelpAndWritesNumbersAsPrometheusReadsThem) {
  Exposition out;
  out.family("x_total", "counter", "a \\ b\nc");
  out.sample("x_total", {{"path", "a\"b\\c\nd"}}, 1.5);
  out.sample("x_total", {}, 12345678901.0);
  EXPECT_EQ(out.text(),
            "# HELP x_total a \\\\ b\\nc\n# TYPE x_total counter\n"
            "x_total{path=\"a\\\"b\\\\c\\nd\"} 1.5\n"
            "x_total 12345678901\n");
}

}  // namespace
}  // namespace nubo::metrics

namespace nubo {
namespace {

TEST(ReadinessTest, ReadyOnlyWhenEveryConditionIsMetAndSaysWhichIsNot) {
  Readiness r;
  r.require("store");
  std::string stems = "1 of 2 stems started";
  r.check("stems", [&] { return stems; });
  auto a = r.report();
  EXPECT_FALSE(a.ready);
  EXPECT_NE(a.text.find("waiting store: not yet"), std::string::npos) << a.text;
  EXPECT_NE(a.text.find("waiting stems: 1 of 2 stems started"), std::string::npos) << a.text;
  r.set("store", true);
  EXPECT_FALSE(r.report().ready);
  stems.clear();
  auto b = r.report();
  EXPECT_TRUE(b.ready) << b.text;
  EXPECT_NE(b.text.find("ok stems"), std::string::npos) << b.text;
  r.set("store", false);
  EXPECT_FALSE(r.report().ready) << "a condition can be lost again (a fleet's store disconnecting)";
}

}  // namespace
}  // namespace nubo
