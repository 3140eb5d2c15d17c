// EtcdMetadataStore against real etcd members on loopback: the conformance
// suite SQLite passes (each test a fresh key prefix of one member started
// for the binary), then what only a shared store has: two nodes hearing
// each other's changes, a watch that resumes after its member was away, and
// one told to resync when etcd compacted what it missed.
#include "store/etcd/etcd_metadata_store.h"

#include <gtest/gtest.h>

#include <mutex>

#include "common/clock.h"
#include "etcd_cluster.h"
#include "metadata_store_conformance.h"
#include "watch_gate.h"

namespace nubo::store {
namespace {

using testing_util::EtcdCluster;
using testing_util::TempDir;
using testing_util::waitFor;

TempDir* g_tmp = nullptr;
EtcdCluster* g_cluster = nullptr;

std::shared_ptr<etcd::EtcdClient> connectTo(std::vector<std::string> endpoints) {
  etcd::EtcdOptions o;
  o.endpoints = std::move(endpoints);
  o.timeout = std::chrono::milliseconds(3000);
  auto c = etcd::EtcdClient::connect(o);
  EXPECT_TRUE(c.ok()) << c.status().toString();
  return c.ok() ? std::shared_ptr<etcd::EtcdClient>(std::move(c).value()) : nullptr;
}

std::unique_ptr<EtcdMetadataStore> openAt(std::shared_ptr<etcd::EtcdClient> c, Clock& clock, std::string prefix) {
  EtcdStoreOptions o;
  o.prefix = std::move(prefix);
  auto s = EtcdMetadataStore::open(std::move(c), clock, o);
  EXPECT_TRUE(s.ok()) << s.status().toString();
  return s.ok() ? std::move(s).value() : nullptr;
}

std::unique_ptr<MetadataStore> makeEtcd(Clock& clock) {
  static int n = 0;
  return openAt(connectTo(g_cluster->endpoints()), clock, "/conformance/" + std::to_string(n++) + "/");
}

class EtcdEnv : public testing::Environment {
 public:
  void SetUp() override {
    g_tmp = new TempDir();
    g_cluster = new EtcdCluster(*g_tmp, 1);
  }
  void TearDown() override {
    delete g_cluster;
    delete g_tmp;
  }
};
const auto* const kEnv = testing::AddGlobalTestEnvironment(new EtcdEnv);

INSTANTIATE_TEST_SUITE_P(Etcd, MetadataStoreConformance, testing::Values(&makeEtcd),
                         [](const auto&) { return std::string("Etcd"); });

// What a watcher heard, safely from any thread.
struct Heard {
  std::mutex mu;
  std::vector<Change> changes;
  MetadataStore::Watcher watcher() {
    return [this](const Change& c) {
      std::lock_guard lock(mu);
      changes.push_back(c);
    };
  }
  size_t count(Change::Kind kind, const std::string& app) {
    std::lock_guard lock(mu);
    return std::count_if(changes.begin(), changes.end(), [&](const Change& c) { return c.kind == kind && c.app == app; });
  }
};

Deployment readyDeployment(const std::string& app, Clock& clock) {
  Deployment d;
  d.id = newDeploymentId();
  d.app = app;
  d.root_tree = std::string(64, 'a');
  d.manifest_json = "{}";
  d.runtime = "static";
  d.state = DeploymentState::kReady;
  d.created_ms = clock.nowMillis();
  d.creator = "admin";
  return d;
}

TEST(EtcdMetadataStoreTest, TwoNodesHearEachOthersChangesOnceEach) {
  SystemClock clock;
  auto a = openAt(connectTo(g_cluster->endpoints()), clock, "/two/");
  auto b = openAt(connectTo(g_cluster->endpoints()), clock, "/two/");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(waitFor([&] { return a->synced() && b->synced(); }));
  Heard on_a, on_b;
  a->watch(on_a.watcher());
  b->watch(on_b.watcher());
  Deployment first = readyDeployment("shop", clock);
  ASSERT_TRUE(a->createDeployment(first, "production", "ci").ok());
  // a heard it as it returned; b from its watch, with the app, deployment
  // and alias it created.
  EXPECT_EQ(on_a.count(Change::Kind::kDeployment, "shop"), 1u);
  ASSERT_TRUE(waitFor([&] { return on_b.count(Change::Kind::kAlias, "shop") == 1; }));
  EXPECT_EQ(on_b.count(Change::Kind::kDeployment, "shop"), 1u);
  EXPECT_EQ(on_b.count(Change::Kind::kApp, "shop"), 1u);
  Deployment second = readyDeployment("shop", clock);
  ASSERT_TRUE(b->createDeployment(second, "", "ci").ok());
  ASSERT_TRUE(b->setAlias("shop", "production", second.id, "ci").ok());
  ASSERT_TRUE(waitFor([&] { return on_a.count(Change::Kind::kAlias, "shop") == 1; }));
  auto seen_by_a = a->listAliases("shop");
  ASSERT_TRUE(seen_by_a.ok());
  EXPECT_EQ((*seen_by_a)[0].deployment_id, second.id);
  ASSERT_TRUE(a->putDomain({"shop.example.com", "shop", "production", 1, "ci"}).ok());
  ASSERT_TRUE(waitFor([&] { return on_b.count(Change::Kind::kDomain, "shop") == 1; }));
  ASSERT_TRUE(a->deleteDomain("shop.example.com").ok());
  ASSERT_TRUE(waitFor([&] { return on_b.count(Change::Kind::kDomain, "shop") == 2; })) << "a removal names its app";
  // Each node's own changes, once: none came back through its watch.
  ASSERT_TRUE(b->deleteApp("shop").ok());
  ASSERT_TRUE(waitFor([&] { return on_a.count(Change::Kind::kApp, "shop") == 1; }));
  EXPECT_EQ(on_b.count(Change::Kind::kApp, "shop"), 2u);  // created (heard), removed (its own)
  EXPECT_EQ(on_a.count(Change::Kind::kDeployment, "shop"), 3u) << "its own create, b's create, b's removal";
  EXPECT_TRUE(waitFor([&] { return a->revision() == b->revision(); }));
  EXPECT_EQ(b->getDeployment(first.id).status().code(), Code::kNotFound);
}

TEST(EtcdMetadataStoreTest, AWatchResumesAfterItsMemberWasAwayAndResyncsWhenHistoryWasCompacted) {
  TempDir tmp;
  EtcdCluster cluster(tmp, 3);
  SystemClock clock;
  auto writer = openAt(connectTo({cluster.endpoint(0), cluster.endpoint(1)}), clock, "/away/");
  auto reader = openAt(connectTo({cluster.endpoint(2)}), clock, "/away/");
  ASSERT_TRUE(writer && reader);
  ASSERT_TRUE(waitFor([&] { return reader->synced(); }));
  Heard heard;
  reader->watch(heard.watcher());

  // Member 2 away: the writer goes on; back, the reader hears what it missed.
  cluster.stop(2, SIGKILL);
  Deployment d1 = readyDeployment("blog", clock);
  ASSERT_TRUE(writer->createDeployment(d1, "production", "ci").ok());
  cluster.start(2);
  ASSERT_TRUE(waitFor([&] { return heard.count(Change::Kind::kAlias, "blog") == 1; }, std::chrono::seconds(20)));

  // Away again, and the history it missed compacted: it must reload all.
  cluster.stop(2, SIGKILL);
  Deployment d2 = readyDeployment("blog", clock);
  ASSERT_TRUE(writer->createDeployment(d2, "production", "ci").ok());
  auto now = writer->client().put("/away-marker", "x");
  ASSERT_TRUE(now.ok());
  cli::HttpClient http(cluster.endpoint(0), "");
  auto compact = http.send("POST", "/v3/kv/compaction", "{\"revision\":\"" + std::to_string(*now) + "\"}");
  ASSERT_TRUE(compact.ok() && compact->status == 200);
  cluster.start(2);
  ASSERT_TRUE(waitFor([&] { return heard.count(Change::Kind::kResync, "") == 1; }, std::chrono::seconds(20)));
  EXPECT_EQ(reader->listAliases("blog")->at(0).deployment_id, d2.id);
  // Followed from then on.
  ASSERT_TRUE(writer->deleteApp("blog").ok());
  ASSERT_TRUE(waitFor([&] { return heard.count(Change::Kind::kApp, "blog") >= 1; }));
}

TEST(EtcdMetadataStoreTest, ItIsNotSyncedUntilItsWatchFollowsEtcd) {
  testing_util::WatchGate gate(g_cluster->clientPort(0));
  SystemClock clock;
  auto s = openAt(connectTo({gate.endpoint()}), clock, "/gated/");
  ASSERT_TRUE(s);
  EXPECT_FALSE(waitFor([&] { return s->synced(); }, std::chrono::milliseconds(300)))
      << "its watch is held back: it may not know the newest routes";
  gate.open();
  EXPECT_TRUE(waitFor([&] { return s->synced(); }));
}

TEST(EtcdMetadataStoreTest, APrefixMustBeAbsolute) {
  SystemClock clock;
  auto s = EtcdMetadataStore::open(connectTo(g_cluster->endpoints()), clock, EtcdStoreOptions{"nubo", 10});
  EXPECT_EQ(s.status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace nubo::store
