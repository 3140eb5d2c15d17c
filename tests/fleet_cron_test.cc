// Cron on a fleet: three nodes' schedulers (each with its own
// EtcdMetadataStore, as on three machines) over one real etcd member, all
// ticking at every scheduled time from their own threads: each time fires
// exactly once fleet-wide (the claim is an etcd compare-and-swap). Time
// comes from the clock seam.
#include <gtest/gtest.h>

#include <mutex>
#include <thread>

#include "common/ids.h"
#include "cron/cron_scheduler.h"
#include "etcd_cluster.h"
#include "store/etcd/etcd_metadata_store.h"

namespace nubo::cron {
namespace {

constexpr int64_t kMinute = 60'000;

TEST(FleetCronTest, EachScheduledTimeFiresOnceAcrossThreeNodes) {
  testing_util::TempDir tmp;
  testing_util::EtcdCluster etcd(tmp, 1);
  FakeClock clock(1'800'000'000'000 - 1'800'000'000'000 % kMinute + 30'000);
  std::mutex mu;
  std::vector<std::pair<int, int64_t>> fired;  // (node, slot)
  struct Node {
    std::unique_ptr<store::EtcdMetadataStore> store;
    std::unique_ptr<logs::LogStore> logs;
    std::unique_ptr<CronScheduler> cron;
  };
  std::vector<Node> nodes;
  for (int i = 0; i < 3; ++i) {
    store::etcd::EtcdOptions o;
    o.endpoints = etcd.endpoints();
    auto client = std::shared_ptr<store::etcd::EtcdClient>(std::move(store::etcd::EtcdClient::connect(o)).value());
    Node n;
    n.store = std::move(store::EtcdMetadataStore::open(client, clock, {"/cron/", 1000})).value();
    n.logs = std::make_unique<logs::LogStore>(tmp.sub("logs" + std::to_string(i)));
    n.cron = std::make_unique<CronScheduler>(*n.store, *n.logs, clock,
                                             [&, i](const CronRun& run, const std::atomic<bool>&) {
                                               std::lock_guard lock(mu);
                                               fired.emplace_back(i, run.slot_ms);
                                               return CronResult{200, "r", ""};
                                             });
    nodes.push_back(std::move(n));
  }
  store::Deployment d;
  d.id = newDeploymentId();
  d.app = "shop";
  d.root_tree = std::string(64, 'a');
  d.manifest_json = R"({"runtime": "static", "cron": [{"schedule": "* * * * *", "path": "/tick"}]})";
  d.runtime = "static";
  d.state = store::DeploymentState::kReady;
  ASSERT_TRUE(nodes[0].store->createDeployment(d, "production", "t").ok());
  for (auto& n : nodes) n.cron->tick();  // first seen: waits for its next time
  for (int slot = 1; slot <= 5; ++slot) {
    clock.set((clock.nowMillis() / kMinute + 1) * kMinute + 1000);
    std::vector<std::thread> ticking;
    for (auto& n : nodes) ticking.emplace_back([&n] { n.cron->tick(); });
    for (auto& t : ticking) t.join();
    for (auto& n : nodes) n.cron->drain();
  }
  std::lock_guard lock(mu);
  ASSERT_EQ(fired.size(), 5u);
  std::set<int64_t> slots;
  for (const auto& [node, slot] : fired) slots.insert(slot);
  EXPECT_EQ(slots.size(), 5u) << "five times, each once";
}

}  // namespace
}  // namespace nubo::cron
