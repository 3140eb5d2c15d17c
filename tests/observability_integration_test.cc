// GET /metrics and /_nubo/readyz against the real server: counters move as
// requests, cold starts, failures and builds happen; promtool accepts the
// output; readiness waits for the stems.
#include <cstdlib>
#include <sstream>
#include <thread>

#include "exposition_util.h"
#include "integration_util.h"

namespace nubo::testing_util {
namespace {

double sampleOf(const std::string& text, const std::string& series) { return sampleValue(text, series, 0); }

class ObservabilityTest : public SharedServerTest {
 protected:
  std::string scrape() {
    auto r = server_->control("GET", "/metrics", {}, "-");
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_NE(r.header("content-type").find("version=0.0.4"), std::string::npos) << r.header("content-type");
    return r.body;
  }
};

TEST_F(ObservabilityTest, PromtoolAcceptsTheMetricsAndTheyNeedNoTokenByDefault) {
  deployApp("lint", {{"index.js", "export default { fetch() { return new Response('x'); } }"}});
  EXPECT_EQ(server_->get("/lint/").status, 200);
  std::string text = scrape();
  std::string file = tmp_->sub("metrics.txt");
  writeFile(file, text);
  ProcResult check = runProcess({"/bin/sh", "-c", "promtool check metrics < '" + file + "'"}, {}, tmp_->path());
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err << "\n" << text;
  EXPECT_EQ(check.out + check.err, "") << "promtool's lint found something";
  for (std::string family : {"nubo_http_requests_total", "nubo_http_request_duration_seconds",
                             "nubo_cold_starts_total", "nubo_cold_start_phase_seconds", "nubo_instances",
                             "nubo_inflight_requests", "nubo_queued_requests", "nubo_function_failures_total",
                             "nubo_builds_total", "nubo_deploys_total", "nubo_uploaded_bytes_total",
                             "nubo_blob_store_bytes", "nubo_file_cache_bytes", "nubo_build_info",
                             "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"}) {
    EXPECT_NE(text.find("# TYPE " + family + " "), std::string::npos) << family;
  }
  EXPECT_GT(sampleOf(text, "process_resident_memory_bytes"), 1e6);
  EXPECT_GT(sampleOf(text, "process_open_fds"), 5);
  EXPECT_EQ(sampleOf(text, R"(nubo_build_info{version=")" + std::string(NUBO_VERSION) + R"("})"), 1);
}

TEST_F(ObservabilityTest, RequestsAndDeploysAreCountedByApp) {
  std::string before = scrape();
  Json d = deployApp("counted", {{"index.js", R"(export default { fetch(req) {
      return new URL(req.url).pathname === '/missing' ? new Response('no', { status: 404 }) : new Response('yes');
    } })"}});
  for (int i = 0; i < 7; ++i) EXPECT_EQ(server_->get("/counted/").status, 200);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(server_->get("/counted/missing").status, 404);
  std::string after = scrape();
  EXPECT_EQ(sampleOf(after, R"(nubo_http_requests_total{app="counted",code="2xx"})"), 7) << after;
  EXPECT_EQ(sampleOf(after, R"(nubo_http_requests_total{app="counted",code="4xx"})"), 3);
  EXPECT_EQ(sampleOf(after, R"(nubo_http_request_duration_seconds_count{app="counted"})"), 10);
  EXPECT_GT(sampleOf(after, R"(nubo_http_request_duration_seconds_sum{app="counted"})"), 0);
  EXPECT_EQ(sampleOf(after, "nubo_deploys_total"), sampleOf(before, "nubo_deploys_total") + 1);
  EXPECT_GT(sampleOf(after, "nubo_uploaded_bytes_total"), sampleOf(before, "nubo_uploaded_bytes_total"));
  // A request that reached no app.
  EXPECT_EQ(server_->get("/no-such-app/").status, 404);
  EXPECT_GE(sampleOf(scrape(), R"m(nubo_http_requests_total{app="(none)",code="4xx"})m"), 1);
}

TEST_F(ObservabilityTest, BusyAndTimedOutRequestsAreCountedByReason) {
  // One request at a time per instance, one instance: of requests sent
  // together, one is served, and the rest wait and run out of time (503 while
  // still queued, 504 once running past limits.timeout_ms).
  deployApp("busy", {{"index.js", R"(export default { async fetch() {
      await new Promise((r) => setTimeout(r, 700));
      return new Response('done');
    } })"}, {"nubo.json", R"({"limits": {"concurrency": 1, "max_instances": 1, "timeout_ms": 1000}})"}});
  std::string before = scrape();
  std::vector<int> statuses(4);
  std::vector<std::thread> clients;
  for (size_t i = 0; i < statuses.size(); ++i) {
    clients.emplace_back([&, i] { statuses[i] = server_->get("/busy/").status; });
  }
  for (auto& c : clients) c.join();
  int n503 = static_cast<int>(std::count(statuses.begin(), statuses.end(), 503));
  int n504 = static_cast<int>(std::count(statuses.begin(), statuses.end(), 504));
  EXPECT_GE(std::count(statuses.begin(), statuses.end(), 200), 1);
  EXPECT_GE(n503 + n504, 1);
  std::string after = scrape();
  auto delta = [&](const std::string& series) { return sampleOf(after, series) - sampleOf(before, series); };
  EXPECT_EQ(delta(R"(nubo_function_failures_total{status="503",reason="queue_full"})"), n503) << after;
  EXPECT_EQ(delta(R"(nubo_function_failures_total{status="504",reason="timeout"})"), n504) << after;
  EXPECT_EQ(delta(R"(nubo_http_requests_total{app="busy",code="5xx"})"), n503 + n504);
}

TEST_F(ObservabilityTest, ColdStartsAreCountedWithTheirPhases) {
  // One request at a time per instance, two instances: the second of two
  // requests sent together starts an instance.
  deployApp("cold", {{"index.js", R"(export default { async fetch() {
      await new Promise((r) => setTimeout(r, 300));
      return new Response('done');
    } })"}, {"nubo.json", R"({"limits": {"concurrency": 1, "max_instances": 2}})"}});
  std::string before = scrape();
  std::vector<std::string> cold(2);
  std::vector<std::thread> clients;
  for (size_t i = 0; i < cold.size(); ++i) {
    clients.emplace_back([&, i] {
      auto r = server_->get("/cold/");
      EXPECT_EQ(r.status, 200);
      cold[i] = r.header("x-nubo-cold-start");
    });
  }
  for (auto& c : clients) c.join();
  ASSERT_EQ(std::count(cold.begin(), cold.end(), ""), 1) << "one warm, one cold";
  std::string kind = cold[0].empty() ? cold[1] : cold[0];
  std::string series = R"(nubo_cold_starts_total{runtime="node",kind=")" + kind + R"("})";
  // (Counted as the request ends: a scrape right after may come first.)
  std::string after;
  EXPECT_TRUE(waitFor([&] {
    after = scrape();
    return sampleOf(after, series) == sampleOf(before, series) + 1;
  })) << after;
  for (std::string phase : {"acquire", "files", "specialize", "load"}) {
    std::string count = R"(nubo_cold_start_phase_seconds_count{phase=")" + phase + R"("})";
    EXPECT_EQ(sampleOf(after, count), sampleOf(before, count) + 1) << phase;
  }
}

TEST_F(ObservabilityTest, AnInstanceKilledForMemoryCountsAsOutOfMemory) {
  deployApp("hog", {{"index.js", R"(export default { fetch() {
      const keep = [];
      for (;;) keep.push(Buffer.alloc(8 << 20, 1));
    } })"}, {"nubo.json", R"({"limits": {"memory_mb": 64}})"}});
  std::string before = scrape();
  auto r = server_->get("/hog/");
  EXPECT_GE(r.status, 500);
  std::string after = scrape();
  std::string oom = R"(nubo_function_failures_total{status="502",reason="out_of_memory"})";
  std::string crash = R"(nubo_function_failures_total{status="502",reason="crash"})";
  if (r.body.find("out of memory") != std::string::npos) {
    EXPECT_EQ(sampleOf(after, oom), sampleOf(before, oom) + 1) << r.body << after;
  } else {
    // (No memory cgroup here: the runtime died another way.)
    EXPECT_EQ(sampleOf(after, crash) + sampleOf(after, oom), sampleOf(before, crash) + sampleOf(before, oom) + 1)
        << r.body;
  }
}

TEST_F(ObservabilityTest, BuildsAreCountedByOutcome) {
  std::string before = scrape();
  deployApp("typed", {{"index.ts", "export default { fetch(): Response { return new Response('typed'); } }"}});
  std::string dir = tmp_->sub("apps/broken");
  writeFile(dir + "/index.ts", "export default { fetch( { ");
  ProcResult failed = server_->nubo({"deploy", dir, "--app", "broken"});
  EXPECT_NE(failed.exit_code, 0);
  std::string after = scrape();
  std::string ok = R"(nubo_builds_total{outcome="succeeded"})", bad = R"(nubo_builds_total{outcome="failed"})";
  EXPECT_EQ(sampleOf(after, ok), sampleOf(before, ok) + 1) << after;
  EXPECT_EQ(sampleOf(after, bad), sampleOf(before, bad) + 1) << after;
  EXPECT_EQ(sampleOf(after, R"(nubo_build_duration_seconds_count{outcome="succeeded"})"), sampleOf(after, ok));
}

TEST_F(ObservabilityTest, EachRequestHasAnAccessRecordAndTheLogsAreSearchable) {
  deployApp("logged", {{"index.js", R"(export default { fetch(req) {
      const path = new URL(req.url).pathname;
      console.log('handling ' + path);
      return path === '/fail' ? new Response('no', { status: 500 }) : new Response('yes');
    } })"}});
  std::string rid;
  for (int i = 0; i < 3; ++i) rid = server_->get("/logged/ok").header("x-nubo-request-id");
  for (int i = 0; i < 2; ++i) EXPECT_EQ(server_->get("/logged/fail").status, 500);
  auto lines = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"logs", "logged", "--json"});
    ProcResult r = server_->nubo(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<Json> out;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      auto j = parseJson(line, "log line");
      if (j.ok()) out.push_back(*j);
    }
    return out;
  };
  auto requests = lines({"--requests"});
  ASSERT_EQ(requests.size(), 5u);
  for (const auto& l : requests) {
    EXPECT_EQ(l["stream"], "request");
    EXPECT_FALSE(l["request_id"].get<std::string>().empty());
    EXPECT_FALSE(l["deployment"].get<std::string>().empty());
  }
  EXPECT_NE(requests[0]["text"].get<std::string>().find("GET /logged/ok 200 "), std::string::npos) << requests[0];
  EXPECT_NE(requests[0]["text"].get<std::string>().find("B warm"), std::string::npos) << requests[0];
  // The default is what functions printed (and the platform's notes); the
  // filters search both.
  std::vector<Json> printed;
  for (const auto& l : lines({})) {
    EXPECT_NE(l["stream"], "request");
    if (l["stream"] == "stdout") printed.push_back(l);
  }
  ASSERT_EQ(printed.size(), 5u);
  EXPECT_EQ(printed[0]["text"], "handling /ok");
  auto failed = lines({"--status", "5xx"});
  ASSERT_EQ(failed.size(), 2u);
  EXPECT_NE(failed[0]["text"].get<std::string>().find(" 500 "), std::string::npos);
  EXPECT_EQ(lines({"--status", "503"}).size(), 0u);
  EXPECT_EQ(lines({"--grep", "HANDLING /FAIL"}).size(), 2u);
  auto one = lines({"--request", rid});
  ASSERT_EQ(one.size(), 2u) << "the request's access record and what it printed";
  EXPECT_EQ(lines({"--since", "1h", "--requests"}).size(), 5u);
  EXPECT_EQ(lines({"--until", "2000-01-01T00:00:00Z", "--all"}).size(), 0u);
  EXPECT_GE(lines({"--all"}).size(), 10u);
  // Bad filters are named.
  ProcResult bad = server_->nubo({"logs", "logged", "--status", "abc"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("status must be a class like 5xx"), std::string::npos) << bad.err;
  ProcResult when = server_->nubo({"logs", "logged", "--since", "yesterday"});
  EXPECT_NE(when.exit_code, 0);
  EXPECT_NE(when.err.find("--since"), std::string::npos) << when.err;
}

TEST_F(ObservabilityTest, StatsGiveEachAppItsLastMinutes) {
  deployApp("charted", {{"index.js", R"(export default { fetch(req) {
      return new URL(req.url).pathname === '/bad' ? new Response('x', { status: 502 }) : new Response('ok');
    } })"}});
  for (int i = 0; i < 6; ++i) server_->get("/charted/");
  for (int i = 0; i < 2; ++i) server_->get("/charted/bad");
  // The server samples its counters every few seconds.
  Json stats;
  EXPECT_TRUE(waitFor(
      [&] {
        auto r = server_->control("GET", "/v1/apps/charted/stats?minutes=5");
        auto j = parseJson(r.body, "stats");
        if (!j.ok()) return false;
        stats = *j;
        uint64_t n = 0;
        for (const auto& p : stats["points"]) n += p["requests"].get<uint64_t>();
        return n == 8;
      },
      std::chrono::seconds(20)))
      << stats;
  ASSERT_EQ(stats["points"].size(), 5u);
  uint64_t errors = 0;
  for (const auto& p : stats["points"]) errors += p["errors"].get<uint64_t>();
  EXPECT_EQ(errors, 2u);
  EXPECT_GT(stats["points"][4]["p99_ms"].get<double>() + stats["points"][3]["p99_ms"].get<double>(), 0);
  auto all = parseJson(server_->control("GET", "/v1/stats?minutes=5").body, "stats");
  ASSERT_TRUE(all.ok());
  bool found = false;
  for (const auto& a : (*all)["apps"]) {
    if (a["app"] != "charted") continue;
    found = true;
    EXPECT_EQ(a["requests"], 8);
    EXPECT_EQ(a["errors"], 2);
    EXPECT_EQ(a["requests_per_minute"].size(), 5u);
  }
  EXPECT_TRUE(found) << *all;
  EXPECT_EQ(server_->control("GET", "/v1/apps/charted/stats?minutes=0").status, 400);
}

TEST_F(ObservabilityTest, LogLinesArriveLiveAsServerSentEvents) {
  deployApp("live", {{"index.js", R"(export default { fetch(req) {
      console.log('live line ' + new URL(req.url).pathname);
      return new Response('ok');
    } })"}});
  cli::HttpClient c(server_->controlUrl(), server_->token());
  std::string seen;
  bool asked = false;
  Status s = c.stream("/v1/apps/live/logs/events?kind=output&grep=live+line", [&](std::string_view data) {
    seen.append(data);
    if (!asked) {  // following now: a request writes a line
      asked = true;
      std::thread([&] { server_->get("/live/now"); }).join();
    }
    return seen.find("live line /now") == std::string::npos;
  });
  EXPECT_TRUE(s.ok()) << s.toString();
  EXPECT_NE(seen.find("event: log"), std::string::npos) << seen;
  EXPECT_NE(seen.find("\"cursor\""), std::string::npos) << seen;
  EXPECT_EQ(seen.find("\"stream\":\"request\""), std::string::npos) << "access records were filtered out: " << seen;
}

TEST_F(ObservabilityTest, HealthAndReadinessAnswerOnBothPlanes) {
  EXPECT_TRUE(waitFor([&] { return server_->get("/_nubo/readyz").status == 200; }));
  auto data = server_->get("/_nubo/readyz");
  EXPECT_NE(data.body.find("ok store\nok routes\nok stems\nready\n"), std::string::npos) << data.body;
  auto control = server_->control("GET", "/_nubo/readyz", {}, "-");
  EXPECT_EQ(control.status, 200) << control.body;
  EXPECT_EQ(server_->control("GET", "/_nubo/healthz", {}, "-").status, 200);
  EXPECT_EQ(server_->get("/_nubo/healthz").status, 200);
  // On any host, too: the probes do not depend on routing.
  EXPECT_EQ(server_->get("/_nubo/readyz", {"Host: nothing.example.com"}).status, 200);
}

TEST(ObservabilityServerTest, TheMetricsTokenIsRequiredWhenSet) {
  TempDir tmp;
  const std::string token = "scrape-0123456789abcdef";
  NuboServer server(tmp, {"--metrics-token", token});
  auto none = server.control("GET", "/metrics", {}, "-");
  EXPECT_EQ(none.status, 401) << none.body;
  EXPECT_NE(none.body.find("--metrics-token"), std::string::npos) << none.body;
  EXPECT_EQ(server.control("GET", "/metrics", {}, "wrong-0123456789abcdef").status, 401);
  EXPECT_EQ(server.control("GET", "/metrics", {}, server.token()).status, 401) << "the admin token is not the metrics token";
  auto ok = server.control("GET", "/metrics", {}, token);
  EXPECT_EQ(ok.status, 200);
  EXPECT_NE(ok.body.find("nubo_http_requests_total"), std::string::npos);
  // Too short a token is refused at start, naming the problem.
  ProcResult bad = runProcess({NUBO_BINARY, "serve", "--data", tmp.sub("other"), "--metrics-token", "short"}, {},
                              tmp.path());
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("at least 16 characters"), std::string::npos) << bad.err;
}

TEST(ObservabilityServerTest, ReadinessWaitsForTheStems) {
  // A node whose instances start only once the test lets them (the
  // server's version probe, `node -p`, passes): until then no stem is up,
  // and the server says it is not ready (and why) on both planes.
  TempDir tmp;
  std::string bin = tmp.sub("bin");
  std::string gate = tmp.sub("gate");
  std::string real_node = runProcess({"/bin/sh", "-c", "command -v node"}, {}, tmp.path()).out;
  while (!real_node.empty() && real_node.back() == '\n') real_node.pop_back();
  writeFile(bin + "/node", "#!/bin/sh\n[ \"$1\" = -p ] || while [ ! -e '" + gate +
                               "' ]; do sleep 0.05; done\nexec '" + real_node + "' \"$@\"\n");
  ::chmod((bin + "/node").c_str(), 0755);
  std::string path = std::getenv("PATH");
  ::setenv("PATH", (bin + ":" + path).c_str(), 1);
  NuboServer server(tmp, {"--sandbox", "off", "--stems", "2"});
  ::setenv("PATH", path.c_str(), 1);
  auto r = server.get("/_nubo/readyz");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_NE(r.body.find("waiting stems: 0 of 2 stems started"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("not ready"), std::string::npos) << r.body;
  EXPECT_EQ(server.control("GET", "/_nubo/readyz", {}, "-").status, 503);
  EXPECT_EQ(server.get("/_nubo/healthz").status, 200) << "alive all the same";
  writeFile(gate, "");
  EXPECT_TRUE(waitFor([&] { return server.get("/_nubo/readyz").status == 200; }, std::chrono::seconds(20)))
      << server.get("/_nubo/readyz").body;
}

}  // namespace
}  // namespace nubo::testing_util
