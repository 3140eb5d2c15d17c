// A fleet on loopback: three etcd members, a radosgw with an in-memory OSD,
// and three `nubo serve` nodes sharing them, all real processes started
// here once for the binary (label fleet). The tests run in order: later
// ones take members and nodes away.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <sstream>
#include <thread>

#include "blob/s3/s3_client.h"
#include "common/json.h"
#include "common/sha256.h"
#include "etcd_cluster.h"
#include "integration_util.h"
#include "radosgw.h"
#include "watch_gate.h"

namespace nubo::testing_util {
namespace {

TempDir* g_tmp = nullptr;
EtcdCluster* g_etcd = nullptr;
Radosgw* g_rgw = nullptr;
std::vector<NuboServer*> g_nodes;

std::string etcdList() {
  std::string out;
  for (const auto& e : g_etcd->endpoints()) out += (out.empty() ? "" : ",") + e;
  return out;
}

std::vector<std::string> fleetArgs(const std::string& node) {
  return {"--etcd", etcdList(), "--s3", g_rgw->endpoint(), "--s3-bucket", "fleet", "--secret-key-file",
          g_tmp->sub("secret.key"), "--node-id", node, "--stems", "1", "--blob-cache-mb", "64",
          "--build-claim-s", "3"};
}

class FleetEnv : public testing::Environment {
 public:
  void SetUp() override {
    g_tmp = new TempDir();
    g_etcd = new EtcdCluster(*g_tmp, 3);
    g_rgw = new Radosgw(*g_tmp);
    ASSERT_TRUE(g_rgw->ok()) << g_rgw->why();
    ::setenv("AWS_ACCESS_KEY_ID", Radosgw::kAccessKey, 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", Radosgw::kSecretKey, 1);
    // The bucket is the operator's to make (as on AWS).
    blob::s3::S3Options o;
    o.endpoint = g_rgw->endpoint();
    o.bucket = "fleet";
    o.access_key = Radosgw::kAccessKey;
    o.secret_key = Radosgw::kSecretKey;
    ASSERT_TRUE((*blob::s3::S3Client::create(o))->createBucket().ok());
    for (int i = 0; i < 3; ++i) {
      g_nodes.push_back(new NuboServer(*g_tmp, fleetArgs("node-" + std::to_string(i + 1)), "node" + std::to_string(i + 1)));
      if (i > 0) g_nodes.back()->useToken(g_nodes[0]->token());
    }
  }
  void TearDown() override {
    if (testing::UnitTest::GetInstance()->failed_test_count() > 0) {
      for (auto* n : g_nodes) {
        std::string log = n->log();
        size_t from = log.find("ERROR: AddressSanitizer");
        if (from == std::string::npos) from = log.size() > 6000 ? log.size() - 6000 : 0;
        std::fprintf(stderr, "---- %s's log ----\n%s\n", n->dataDir().c_str(), log.substr(from, 6000).c_str());
      }
    }
    for (auto* n : g_nodes) delete n;
    delete g_rgw;
    delete g_etcd;
    delete g_tmp;
  }
};
const auto* const kEnv = testing::AddGlobalTestEnvironment(new FleetEnv);

std::string deployDir(const std::string& name, const std::map<std::string, std::string>& files) {
  static int n = 0;
  std::string dir = g_tmp->sub("apps/" + name + "-" + std::to_string(n++));
  for (const auto& [path, content] : files) writeFile(dir + "/" + path, content);
  return dir;
}

// GET `path` from node `i` until it answers `want` (or the deadline).
testing::AssertionResult servesOn(size_t i, const std::string& path, const std::string& want,
                                  std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
  std::string last;
  bool ok = waitFor([&] {
    cli::HttpClient c(g_nodes[i]->dataUrl(), "", 5);
    auto r = c.send("GET", path);
    last = r.ok() ? std::to_string(r->status) + " " + r->body : r.status().toString();
    return r.ok() && r->status == 200 && r->body == want;
  }, deadline);
  if (ok) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "node " << i << " answered " << path << " with: " << last;
}

TEST(FleetTest, EveryNodeIsListedAndReady) {
  ProcResult r = g_nodes[1]->nubo({"nodes", "ls", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto nodes = parseJson(r.out, "nodes");
  ASSERT_TRUE(nodes.ok()) << r.out;
  ASSERT_EQ(nodes->size(), 3u) << r.out;
  for (const auto& n : *nodes) {
    EXPECT_EQ(n.value("version", ""), NUBO_VERSION);
    EXPECT_NE(n.value("control_url", ""), "");
  }
  ASSERT_TRUE(waitFor([&] {
    auto again = parseJson(g_nodes[1]->nubo({"nodes", "ls", "--json"}).out, "nodes");
    if (!again.ok()) return false;
    for (const auto& n : *again) {
      if (!n.value("ready", false)) return false;
    }
    return true;
  }));
  EXPECT_EQ(g_nodes[2]->get("/_nubo/readyz").status, 200);
  ProcResult table = g_nodes[0]->nubo({"nodes", "ls"});
  EXPECT_NE(table.out.find("node-3"), std::string::npos) << table.out;
}

TEST(FleetTest, ADeployThroughOneNodeServesFromEveryNodeAndAPromoteThroughAnotherMovesThemAll) {
  g_nodes[0]->deploy(deployDir("site", {{"index.html", "site v1"}}), {"--app", "site"});
  g_nodes[0]->deploy(deployDir("fn", {{"index.js", "export default { fetch() { return new Response('fn v1'); } }"}}),
                     {"--app", "fn"});
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(servesOn(i, "/site/", "site v1")) << "node " << i;
    EXPECT_TRUE(servesOn(i, "/fn/", "fn v1")) << "node " << i;
  }
  // A second version, not promoted; then promoted through node 3.
  Json v2 = g_nodes[0]->deploy(deployDir("site", {{"index.html", "site v2"}}), {"--app", "site", "--no-promote"});
  std::string id = v2.value("deployment", "");
  ASSERT_FALSE(id.empty()) << v2.dump();
  EXPECT_TRUE(servesOn(1, "/site/", "site v1"));
  ProcResult promoted = g_nodes[2]->nubo({"promote", "site", id});
  ASSERT_EQ(promoted.exit_code, 0) << promoted.err;
  auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(servesOn(i, "/site/", "site v2")) << "node " << i;
  std::printf("promote through node 3 served by all three nodes after %.1f ms\n",
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  // And a rollback through node 2.
  ASSERT_EQ(g_nodes[1]->nubo({"rollback", "site"}).exit_code, 0);
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(servesOn(i, "/site/", "site v1")) << "node " << i;
}

TEST(FleetTest, ANodeFetchesOnlyTheStaticFilesAskedFor) {
  std::string asked = "asked for on node 2", other = std::string(4096, 'x') + " never asked for";
  g_nodes[0]->deploy(deployDir("two-files", {{"a.html", asked}, {"b.html", other}}), {"--app", "two-files"});
  ASSERT_TRUE(servesOn(1, "/two-files/a.html", asked));
  auto cached = [](const std::string& body) {
    std::string h = sha256Hex(body);
    return ::access((g_nodes[1]->dataDir() + "/blob-cache/" + h.substr(0, 2) + "/" + h).c_str(), F_OK) == 0;
  };
  EXPECT_TRUE(cached(asked));
  EXPECT_FALSE(cached(other)) << "a request brings the file it wants, not the whole site";
}

TEST(FleetTest, PsAndLogsShowWhatEveryNodeHasWithItsNode) {
  // Requests to the function on every node: an instance and access records on each.
  for (size_t i = 0; i < 3; ++i) ASSERT_TRUE(servesOn(i, "/fn/", "fn v1"));
  ProcResult ps = g_nodes[1]->nubo({"ps", "fn", "--json"});
  ASSERT_EQ(ps.exit_code, 0) << ps.err;
  auto instances = parseJson(ps.out, "ps");
  ASSERT_TRUE(instances.ok()) << ps.out;
  std::set<std::string> nodes;
  for (const auto& i : *instances) nodes.insert(i.value("node", ""));
  EXPECT_EQ(nodes, (std::set<std::string>{"node-1", "node-2", "node-3"})) << ps.out;
  ProcResult table = g_nodes[1]->nubo({"ps"});
  EXPECT_NE(table.out.find("NODE"), std::string::npos) << table.out;
  ProcResult logs = g_nodes[2]->nubo({"logs", "fn", "--requests", "--json"});
  ASSERT_EQ(logs.exit_code, 0) << logs.err;
  std::set<std::string> logged;
  std::istringstream in(logs.out);
  int64_t last_ts = 0;
  for (std::string line; std::getline(in, line);) {
    auto j = parseJson(line, "line");
    ASSERT_TRUE(j.ok()) << line;
    logged.insert(j->value("node", ""));
    EXPECT_GE(j->value("ts_ms", int64_t{0}), last_ts) << "merged in time order";
    last_ts = j->value("ts_ms", int64_t{0});
  }
  EXPECT_EQ(logged, (std::set<std::string>{"node-1", "node-2", "node-3"})) << logs.out;
}

TEST(FleetTest, MigrateMovesASingleNodesAppsIntoTheFleetAndTheyServeUnchanged) {
  NuboServer single(*g_tmp, {"--secret-key-file", g_tmp->sub("secret.key"), "--stems", "0"}, "single");
  single.deploy(deployDir("old-site", {{"index.html", "old one"}}), {"--app", "old-site"});
  single.deploy(deployDir("old-site", {{"index.html", "old two"}}), {"--app", "old-site"});
  ASSERT_EQ(single.nubo({"rollback", "old-site"}).exit_code, 0);
  single.deploy(deployDir("old-fn", {{"index.js", "export default { fetch(req, env) { return new Response(env.KEY); } }"}}),
                {"--app", "old-fn"});
  auto set = single.control("PUT", "/v1/apps/old-fn/env", R"({"vars": {"KEY": "sealed on one node"}, "secret": true, "redeploy": true})");
  ASSERT_LT(set.status, 300) << set.body;
  ASSERT_TRUE(waitFor([&] { return single.get("/old-fn/").body == "sealed on one node"; }));
  std::string token = single.token();
  single.stop(SIGTERM);

  std::vector<std::string> args = {NUBO_BINARY, "migrate", "--from", single.dataDir(), "--to-etcd", etcdList(),
                                   "--to-s3", g_rgw->endpoint(), "--s3-bucket", "fleet"};
  ProcResult first = runProcess(args, {}, g_tmp->path());
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_NE(first.out.find("migrated:"), std::string::npos) << first.out;
  EXPECT_EQ(first.out.find(" 0 blobs copied"), std::string::npos) << first.out;
  ProcResult again = runProcess(args, {}, g_tmp->path());
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("migrated: 0 blobs copied"), std::string::npos) << "idempotent: " << again.out;
  EXPECT_NE(again.out.find("; 0 deployments copied"), std::string::npos) << again.out;

  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(servesOn(i, "/old-site/", "old one")) << "node " << i;
    EXPECT_TRUE(servesOn(i, "/old-fn/", "sealed on one node")) << "node " << i;
  }
  // Its tokens work on the fleet, and its alias history came along.
  cli::HttpClient c(g_nodes[1]->controlUrl(), token);
  auto history = c.call("GET", "/v1/apps/old-site/aliases/production/history");
  ASSERT_TRUE(history.ok()) << history.status().toString();
  EXPECT_EQ((*history)["history"].size(), 3u) << history->dump();
}

TEST(FleetTest, AWrongS3SecretIsAClearErrorAtStartUp) {
  std::vector<std::string> args = {NUBO_BINARY, "serve", "--data", g_tmp->sub("wrong"), "--listen", "127.0.0.1:0",
                                   "--control", "127.0.0.1:0"};
  for (auto& a : fleetArgs("wrong")) args.push_back(a);
  ProcResult r = runProcess(args, {{"AWS_SECRET_ACCESS_KEY", "not-the-secret"}, {"XDG_CONFIG_HOME", g_tmp->sub("cfg")}},
                            g_tmp->path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("refused access key " + std::string(Radosgw::kAccessKey)), std::string::npos) << r.err;
}

// Requests to every node from `threads` clients, until `stop`; what failed
// is counted (and a node that refuses connections is skipped afterwards,
// as a front door's health check does).
struct Traffic {
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::atomic<bool>> down = std::vector<std::atomic<bool>>(3);
  std::vector<std::thread> clients;
  void start(int threads, const std::string& path, const std::string& want) {
    for (int t = 0; t < threads; ++t) {
      clients.emplace_back([this, t, path, want] {
        for (size_t n = static_cast<size_t>(t); !stop; ++n) {
          size_t i = n % 3;
          if (down[i]) continue;
          cli::HttpClient c(g_nodes[i]->dataUrl(), "", 5);
          auto r = c.send("GET", path);
          if (r.ok() && r->status == 200 && r->body == want) {
            ++ok;
          } else {
            ++failed;
            if (!r.ok()) down[i] = true;
          }
        }
      });
    }
  }
  void finish() {
    stop = true;
    for (auto& c : clients) c.join();
  }
};

TEST(FleetTest, WarmTrafficGoesOnWhenTheEtcdLeaderDiesAndTheNextDeploySucceeds) {
  int leader = g_etcd->leader();
  ASSERT_GE(leader, 0);
  Traffic traffic;
  traffic.start(3, "/fn/", "fn v1");
  ASSERT_TRUE(waitFor([&] { return traffic.ok > 30; }));
  g_etcd->stop(static_cast<size_t>(leader), SIGKILL);
  int at_kill = traffic.ok;
  ASSERT_TRUE(waitFor([&] { return traffic.ok > at_kill + 100; }));
  Json deployed = g_nodes[1]->deploy(deployDir("after", {{"index.html", "after the leader"}}), {"--app", "after"});
  EXPECT_EQ(deployed.value("state", ""), "READY") << deployed.dump();
  traffic.finish();
  std::printf("etcd leader (member %d) killed: %d requests answered, %d failed\n", leader, traffic.ok.load(),
              traffic.failed.load());
  EXPECT_EQ(traffic.failed, 0);
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(servesOn(i, "/after/", "after the leader")) << "node " << i;
  g_etcd->start(static_cast<size_t>(leader));
  ASSERT_TRUE(waitFor([&] { return g_etcd->healthy(static_cast<size_t>(leader)); }, std::chrono::seconds(20)));
}

TEST(FleetTest, WithoutTheObjectStoreWarmAppsServeAndADeployFailsNamingIt) {
  ASSERT_TRUE(servesOn(2, "/site/", "site v1"));
  g_rgw->stopGateway();
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(servesOn(i, "/site/", "site v1", std::chrono::seconds(2))) << "node " << i;
    EXPECT_TRUE(servesOn(i, "/fn/", "fn v1", std::chrono::seconds(2))) << "node " << i;
  }
  std::string dir = deployDir("later", {{"index.html", "deployed once the store is back"}});
  ProcResult failed = g_nodes[0]->nubo({"deploy", dir, "--app", "later"});
  EXPECT_NE(failed.exit_code, 0);
  EXPECT_EQ(failed.exit_code, 12) << "unavailable (the API said 503)";
  EXPECT_NE(failed.err.find("the object store is unavailable"), std::string::npos) << failed.err;
  ASSERT_TRUE(g_rgw->startGateway());
  g_nodes[0]->deploy(dir, {"--app", "later"});
  EXPECT_TRUE(servesOn(1, "/later/", "deployed once the store is back"));
}

TEST(FleetTest, ABuildWhoseNodeIsKilledIsFinishedByAnother) {
  std::string dir = deployDir("slow", {{"nubo.json", R"({"runtime": "static", "build": {
      "command": "sleep 6 && mkdir -p o && echo built after a takeover > o/index.html", "output": "o"}})"},
                                       {"src.txt", "source"}});
  std::thread deploying([&] { (void)g_nodes[2]->nubo({"deploy", dir, "--app", "slow"}); });
  std::string id;
  ASSERT_TRUE(waitFor([&] {
    auto list = parseJson(g_nodes[0]->nubo({"deployments", "ls", "slow", "--json"}).out, "ls");
    if (!list.ok() || list->empty() || (*list)[0].value("state", "") != "BUILDING") return false;
    id = (*list)[0].value("id", "");
    return true;
  }, std::chrono::seconds(20)));
  g_nodes[2]->stop(SIGKILL);
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(waitFor([&] {
    auto d = parseJson(g_nodes[0]->control("GET", "/v1/deployments/" + id).body, "deployment");
    return d.ok() && d->value("state", "") == "READY";
  }, std::chrono::seconds(40)));
  std::printf("a build whose node was killed was finished by another node %.1f s later (claims last 3 s)\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  deploying.join();
  EXPECT_NE((g_nodes[0]->log() + g_nodes[1]->log()).find("taking over " + id), std::string::npos)
      << "the build was taken over, not finished before the kill";
  EXPECT_TRUE(servesOn(0, "/slow/", "built after a takeover\n"));
  EXPECT_TRUE(servesOn(1, "/slow/", "built after a takeover\n"));
  g_nodes[2]->start();
  g_nodes[2]->useToken(g_nodes[0]->token());
  EXPECT_TRUE(servesOn(2, "/slow/", "built after a takeover\n"));
}

TEST(FleetTest, ANodeKilledMidTrafficLosesOnlyWhatItWasAnswering) {
  Traffic traffic;
  traffic.start(4, "/site/", "site v1");
  ASSERT_TRUE(waitFor([&] { return traffic.ok > 100; }));
  g_nodes[1]->stop(SIGKILL);
  int at_kill = traffic.ok;
  // Until its lease runs out it is listed: `ps` names it as not answering.
  ProcResult ps = g_nodes[0]->nubo({"ps"});
  EXPECT_NE(ps.err.find("node node-2"), std::string::npos) << ps.err;
  ASSERT_TRUE(waitFor([&] { return traffic.ok > at_kill + 200; }));
  traffic.finish();
  std::printf("node 2 killed mid-traffic: %d requests answered, %d failed (4 clients)\n", traffic.ok.load(),
              traffic.failed.load());
  EXPECT_LE(traffic.failed, 4) << "at most the requests in flight on node 2";
  // It leaves the list when its lease runs out.
  ASSERT_TRUE(waitFor([&] {
    auto nodes = parseJson(g_nodes[0]->nubo({"nodes", "ls", "--json"}).out, "nodes");
    return nodes.ok() && nodes->size() == 2;
  }, std::chrono::seconds(15)));
}

TEST(FleetTest, ANodeIsNotReadyUntilItsWatchFollowsEtcd) {
  WatchGate gate(g_etcd->clientPort(0));
  std::vector<std::string> args = fleetArgs("node-4");
  args[1] = gate.endpoint();  // (--etcd: this member only, through the gate)
  NuboServer late(*g_tmp, args, "node4");
  late.useToken(g_nodes[0]->token());
  auto r = late.get("/_nubo/readyz");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_NE(r.body.find("etcd watch"), std::string::npos) << r.body;
  gate.open();
  EXPECT_TRUE(waitFor([&] { return late.get("/_nubo/readyz").status == 200; }, std::chrono::seconds(10)));
  EXPECT_TRUE(servesOn(0, "/site/", "site v1"));
  cli::HttpClient c(late.dataUrl(), "");
  EXPECT_EQ(c.send("GET", "/site/")->body, "site v1");
}

}  // namespace
}  // namespace nubo::testing_util
