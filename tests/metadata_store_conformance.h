// The MetadataStore conformance suite. Every implementation instantiates it
// with a factory that returns a fresh, empty store:
//   INSTANTIATE_TEST_SUITE_P(Sqlite, MetadataStoreConformance, testing::Values(&makeSqlite));
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/ids.h"
#include "store/metadata_store.h"

namespace nubo::store {

using MetadataStoreFactory = std::unique_ptr<MetadataStore> (*)(Clock&);

class MetadataStoreConformance : public testing::TestWithParam<MetadataStoreFactory> {
 protected:
  void SetUp() override { store_ = GetParam()(clock_); }

  Deployment makeDeployment(const std::string& app, DeploymentState state = DeploymentState::kReady) {
    Deployment d;
    d.id = newDeploymentId();
    d.app = app;
    d.root_tree = std::string(64, 'a');
    d.manifest_json = R"({"name":")" + app + R"(","runtime":"static"})";
    d.runtime = "static";
    d.state = state;
    d.created_ms = clock_.nowMillis();
    d.creator = "admin";
    d.files = 3;
    d.bytes = 1234;
    clock_.advance(1000);
    return d;
  }

  std::string deploy(const std::string& app, const std::string& promote = "production") {
    Deployment d = makeDeployment(app);
    EXPECT_TRUE(store_->createDeployment(d, promote, "admin").ok());
    return d.id;
  }

  std::string aliasTarget(const std::string& app, const std::string& alias) {
    auto aliases = store_->listAliases(app);
    if (!aliases.ok()) return "error";
    for (auto& a : *aliases) {
      if (a.name == alias) return a.deployment_id;
    }
    return "";
  }

  FakeClock clock_;
  std::unique_ptr<MetadataStore> store_;
};

TEST_P(MetadataStoreConformance, CreateDeploymentCreatesTheAppAndKeepsEveryField) {
  Deployment d = makeDeployment("shop");
  ASSERT_TRUE(store_->createDeployment(d, "", "alice").ok());
  auto got = store_->getDeployment(d.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->app, "shop");
  EXPECT_EQ(got->root_tree, d.root_tree);
  EXPECT_EQ(got->manifest_json, d.manifest_json);
  EXPECT_EQ(got->runtime, "static");
  EXPECT_EQ(got->state, DeploymentState::kReady);
  EXPECT_EQ(got->created_ms, d.created_ms);
  EXPECT_EQ(got->creator, "admin");
  EXPECT_EQ(got->files, 3u);
  EXPECT_EQ(got->bytes, 1234u);
  auto app = store_->getApp("shop");
  ASSERT_TRUE(app.ok());
  EXPECT_EQ(app->created_by, "alice");
  EXPECT_TRUE(store_->listAliases("shop")->empty());  // not promoted
}

TEST_P(MetadataStoreConformance, DuplicateDeploymentIdIsRejected) {
  Deployment d = makeDeployment("shop");
  ASSERT_TRUE(store_->createDeployment(d, "", "a").ok());
  EXPECT_EQ(store_->createDeployment(d, "", "a").code(), Code::kAlreadyExists);
}

TEST_P(MetadataStoreConformance, UnknownThingsAreNotFound) {
  EXPECT_EQ(store_->getDeployment("dnope").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->getApp("nope").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->deleteApp("nope").code(), Code::kNotFound);
  EXPECT_EQ(store_->rollbackAlias("nope", "production", "a").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->findTokenByHash(std::string(64, 'f')).status().code(), Code::kNotFound);
}

TEST_P(MetadataStoreConformance, ListsAreOrdered) {
  std::string a = deploy("beta");
  std::string b = deploy("beta");
  deploy("alpha");
  auto apps = store_->listApps();
  ASSERT_TRUE(apps.ok());
  ASSERT_EQ(apps->size(), 2u);
  EXPECT_EQ((*apps)[0].name, "alpha");
  auto ds = store_->listDeployments("beta", 0);
  ASSERT_EQ(ds->size(), 2u);
  EXPECT_EQ((*ds)[0].id, b);  // newest first
  EXPECT_EQ((*ds)[1].id, a);
  EXPECT_EQ(store_->listDeployments("beta", 1)->size(), 1u);
}

TEST_P(MetadataStoreConformance, PromoteOnCreateMovesTheAlias) {
  std::string a = deploy("shop");
  EXPECT_EQ(aliasTarget("shop", "production"), a);
  std::string b = deploy("shop");
  EXPECT_EQ(aliasTarget("shop", "production"), b);
  std::string c = deploy("shop", "");
  EXPECT_EQ(aliasTarget("shop", "production"), b);
  (void)c;
}

TEST_P(MetadataStoreConformance, NonReadyDeploymentsAreNotPromoted) {
  Deployment d = makeDeployment("shop", DeploymentState::kBuilding);
  ASSERT_TRUE(store_->createDeployment(d, "production", "a").ok());
  EXPECT_EQ(aliasTarget("shop", "production"), "");
  EXPECT_EQ(store_->setAlias("shop", "production", d.id, "a").status().code(), Code::kFailedPrecondition);
  ASSERT_TRUE(store_->setDeploymentState(d.id, DeploymentState::kReady).ok());
  EXPECT_TRUE(store_->setAlias("shop", "production", d.id, "a").ok());
}

TEST_P(MetadataStoreConformance, ASuccessfulBuildStoresItsOutputAndMovesThePendingAlias) {
  std::string before = deploy("shop");
  Deployment d = makeDeployment("shop", DeploymentState::kQueued);
  ASSERT_TRUE(store_->createDeployment(d, "production", "a").ok());
  EXPECT_EQ(store_->getDeployment(d.id)->promote_alias, "production");
  EXPECT_EQ(aliasTarget("shop", "production"), before);
  ASSERT_TRUE(store_->setDeploymentState(d.id, DeploymentState::kBuilding).ok());
  std::string out(64, 'e');
  ASSERT_TRUE(store_->finishBuild(d.id, DeploymentState::kReady, out, "", "builder").ok());
  auto got = store_->getDeployment(d.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state, DeploymentState::kReady);
  EXPECT_EQ(got->output_tree, out);
  EXPECT_EQ(got->servedTree(), out);
  EXPECT_EQ(aliasTarget("shop", "production"), d.id);
  // A build ends once.
  EXPECT_EQ(store_->finishBuild(d.id, DeploymentState::kFailed, "", "x", "a").code(), Code::kFailedPrecondition);
}

TEST_P(MetadataStoreConformance, AStartingDeploymentKeepsItsOutputAndMovesTheAliasOnlyWhenReady) {
  std::string before = deploy("shop");
  Deployment d = makeDeployment("shop", DeploymentState::kQueued);
  ASSERT_TRUE(store_->createDeployment(d, "production", "a").ok());
  std::string out(64, 'f');
  ASSERT_TRUE(store_->finishBuild(d.id, DeploymentState::kStarting, out, "", "builder").ok());
  auto got = store_->getDeployment(d.id);
  EXPECT_EQ(got->state, DeploymentState::kStarting);
  EXPECT_EQ(got->output_tree, out);
  EXPECT_EQ(got->promote_alias, "production");
  EXPECT_EQ(aliasTarget("shop", "production"), before);
  // READY without an output tree keeps the one recorded.
  ASSERT_TRUE(store_->finishBuild(d.id, DeploymentState::kReady, "", "", "starter").ok());
  EXPECT_EQ(store_->getDeployment(d.id)->output_tree, out);
  EXPECT_EQ(aliasTarget("shop", "production"), d.id);
  // Created STARTING (no build): the alias waits as well.
  Deployment e = makeDeployment("shop", DeploymentState::kStarting);
  ASSERT_TRUE(store_->createDeployment(e, "production", "a").ok());
  EXPECT_EQ(aliasTarget("shop", "production"), d.id);
  ASSERT_TRUE(store_->finishBuild(e.id, DeploymentState::kFailed, "", "it threw", "starter").ok());
  EXPECT_EQ(aliasTarget("shop", "production"), d.id);
  EXPECT_EQ(store_->getDeployment(e.id)->error, "it threw");
  EXPECT_EQ(store_->finishBuild(e.id, DeploymentState::kReady, "", "", "x").code(), Code::kFailedPrecondition);
}

TEST_P(MetadataStoreConformance, EveryStartOfABuildIsCounted) {
  Deployment d = makeDeployment("shop", DeploymentState::kQueued);
  ASSERT_TRUE(store_->createDeployment(d, "production", "a").ok());
  EXPECT_EQ(store_->getDeployment(d.id)->build_attempts, 0);
  ASSERT_TRUE(store_->setDeploymentState(d.id, DeploymentState::kBuilding).ok());
  ASSERT_TRUE(store_->setDeploymentState(d.id, DeploymentState::kQueued).ok());
  ASSERT_TRUE(store_->setDeploymentState(d.id, DeploymentState::kBuilding).ok());
  EXPECT_EQ(store_->getDeployment(d.id)->build_attempts, 2);
  EXPECT_EQ(store_->listDeployments("shop", 0)->front().build_attempts, 2);
}

TEST_P(MetadataStoreConformance, AFailedBuildKeepsItsErrorAndMovesNoAlias) {
  std::string before = deploy("shop");
  Deployment d = makeDeployment("shop", DeploymentState::kQueued);
  ASSERT_TRUE(store_->createDeployment(d, "production", "a").ok());
  ASSERT_TRUE(store_->finishBuild(d.id, DeploymentState::kFailed, "", "the node builder failed", "a").ok());
  auto got = store_->getDeployment(d.id);
  EXPECT_EQ(got->state, DeploymentState::kFailed);
  EXPECT_EQ(got->error, "the node builder failed");
  EXPECT_EQ(got->servedTree(), got->root_tree);
  EXPECT_EQ(aliasTarget("shop", "production"), before);
}

TEST_P(MetadataStoreConformance, SetAliasChecksTheDeploymentBelongsToTheApp) {
  std::string a = deploy("shop");
  std::string other = deploy("blog");
  EXPECT_EQ(store_->setAlias("shop", "staging", other, "a").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->setAlias("shop", "staging", "dmissing00000", "a").status().code(), Code::kNotFound);
  auto e = store_->setAlias("shop", "staging", a, "bob");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->previous_id, "");
  EXPECT_EQ(e->actor, "bob");
  EXPECT_EQ(aliasTarget("shop", "staging"), a);
}

TEST_P(MetadataStoreConformance, RollbackWalksBackThroughHistory) {
  std::string a = deploy("shop");
  std::string b = deploy("shop");
  std::string c = deploy("shop");
  auto r1 = store_->rollbackAlias("shop", "production", "a");
  ASSERT_TRUE(r1.ok()) << r1.status().toString();
  EXPECT_EQ(r1->deployment_id, b);
  EXPECT_EQ(r1->previous_id, c);
  EXPECT_EQ(aliasTarget("shop", "production"), b);
  ASSERT_TRUE(store_->rollbackAlias("shop", "production", "a").ok());
  EXPECT_EQ(aliasTarget("shop", "production"), a);
  // a was the first deployment: nothing earlier.
  EXPECT_EQ(store_->rollbackAlias("shop", "production", "a").status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(aliasTarget("shop", "production"), a);
  // Promoting again starts a new step that rollback can undo.
  ASSERT_TRUE(store_->setAlias("shop", "production", c, "a").ok());
  ASSERT_TRUE(store_->rollbackAlias("shop", "production", "a").ok());
  EXPECT_EQ(aliasTarget("shop", "production"), a);
  auto hist = store_->aliasHistory("shop", "production", 0);
  ASSERT_TRUE(hist.ok());
  ASSERT_EQ(hist->size(), 7u);
  EXPECT_EQ((*hist)[0].kind, "rollback");
  EXPECT_EQ(store_->aliasHistory("shop", "production", 2)->size(), 2u);
}

TEST_P(MetadataStoreConformance, RollbackOfAFreshAliasIsAFailedPrecondition) {
  deploy("shop");
  Status s = store_->rollbackAlias("shop", "production", "a").status();
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_NE(s.message().find("no earlier deployment"), std::string::npos);
}

TEST_P(MetadataStoreConformance, DeleteAppRemovesEverythingOfItOnly) {
  std::string a = deploy("shop");
  std::string b = deploy("blog");
  ASSERT_TRUE(store_->deleteApp("shop").ok());
  EXPECT_EQ(store_->getApp("shop").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->getDeployment(a).status().code(), Code::kNotFound);
  EXPECT_TRUE(store_->listAliases("shop")->empty());
  EXPECT_TRUE(store_->aliasHistory("shop", "production", 0)->empty());
  EXPECT_TRUE(store_->getDeployment(b).ok());
  EXPECT_EQ(aliasTarget("blog", "production"), b);
  // The name can be used again from scratch.
  std::string c = deploy("shop");
  EXPECT_EQ(aliasTarget("shop", "production"), c);
  EXPECT_EQ(store_->rollbackAlias("shop", "production", "a").status().code(), Code::kFailedPrecondition);
}

TEST_P(MetadataStoreConformance, TokensAreFoundByHash) {
  EXPECT_EQ(*store_->countTokens(), 0u);
  TokenRecord t{"admin", "admin", std::string(64, 'c'), clock_.nowMillis()};
  ASSERT_TRUE(store_->putToken(t).ok());
  EXPECT_EQ(store_->putToken(t).code(), Code::kAlreadyExists);
  auto got = store_->findTokenByHash(t.hash);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->name, "admin");
  EXPECT_EQ(*store_->countTokens(), 1u);
}

TEST_P(MetadataStoreConformance, WatchersHearEveryCommittedChangeAndMayReadTheStore) {
  std::vector<Change> seen;
  std::string target_seen;
  uint64_t id = store_->watch([&](const Change& c) {
    seen.push_back(c);
    // Reading from a callback must not deadlock, and must see the change.
    if (c.kind == Change::Kind::kAlias) target_seen = aliasTarget(c.app, "production");
  });
  std::string a = deploy("shop");
  std::string b = deploy("shop");
  ASSERT_TRUE(store_->setAlias("shop", "production", a, "x").ok());
  EXPECT_EQ(target_seen, a);
  ASSERT_TRUE(store_->deleteApp("shop").ok());
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].kind, Change::Kind::kDeployment);
  EXPECT_EQ(seen[0].app, "shop");
  EXPECT_EQ(seen[3].kind, Change::Kind::kApp);
  // A failed write notifies nobody.
  EXPECT_FALSE(store_->setAlias("shop", "production", b, "x").ok());
  EXPECT_EQ(seen.size(), 4u);
  store_->unwatch(id);
  deploy("other");
  EXPECT_EQ(seen.size(), 4u);
}

TEST_P(MetadataStoreConformance, ConcurrentWritersAllSucceed) {
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    ts.emplace_back([&, i] {
      for (int j = 0; j < 10; ++j) {
        Deployment d;
        d.id = newDeploymentId();
        d.app = "app" + std::to_string(i);
        d.root_tree = std::string(64, 'b');
        d.manifest_json = "{}";
        d.runtime = "static";
        d.state = DeploymentState::kReady;
        d.creator = "t";
        if (store_->createDeployment(d, "production", "t").ok()) ok++;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 40);
  EXPECT_EQ(store_->listApps()->size(), 4u);
}

TEST_P(MetadataStoreConformance, ChangesCarryIncreasingRevisions) {
  std::vector<uint64_t> revs;
  std::mutex mu;
  uint64_t id = store_->watch([&](const Change& c) {
    std::lock_guard lock(mu);
    revs.push_back(c.revision);
  });
  uint64_t before = store_->revision();
  std::string d = deploy("rev");
  ASSERT_TRUE(store_->setAlias("rev", "staging", d, "admin").ok());
  store_->unwatch(id);
  std::lock_guard lock(mu);
  ASSERT_GE(revs.size(), 2u);
  for (size_t i = 1; i < revs.size(); ++i) EXPECT_GE(revs[i], revs[i - 1]);
  EXPECT_GT(revs.front(), before);
  EXPECT_EQ(revs.back(), store_->revision());
}

TEST_P(MetadataStoreConformance, CompareAndSwapWritesOnlyFromTheVersionExpected) {
  EXPECT_FALSE(store_->getKey("builds/d1")->has_value());
  auto v1 = store_->compareAndSwap("builds/d1", 0, "node-a");
  ASSERT_TRUE(v1.ok()) << v1.status().message();
  EXPECT_EQ(*v1, 1u);
  // A second creator loses: the key exists now.
  auto lost = store_->compareAndSwap("builds/d1", 0, "node-b");
  EXPECT_EQ(lost.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(lost.status().message().find("version 1"), std::string::npos) << lost.status().message();
  auto v2 = store_->compareAndSwap("builds/d1", 1, "node-a done");
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(*v2, 2u);
  EXPECT_EQ(store_->compareAndSwap("builds/d1", 1, "stale").status().code(), Code::kFailedPrecondition);
  auto now = store_->getKey("builds/d1");
  ASSERT_TRUE(now.ok() && now->has_value());
  EXPECT_EQ((*now)->value, "node-a done");
  EXPECT_EQ((*now)->version, 2u);
  EXPECT_EQ(store_->compareAndSwap("", 0, "x").status().code(), Code::kInvalidArgument);
}

TEST_P(MetadataStoreConformance, ConcurrentCompareAndSwapHasOneWinnerPerVersion) {
  std::atomic<int> won{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 8; ++i) {
    ts.emplace_back([&, i] {
      if (store_->compareAndSwap("cron/tick-42", 0, "node-" + std::to_string(i)).ok()) won++;
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(won.load(), 1);
}

TEST_P(MetadataStoreConformance, ALeaseHasOneHolderUntilItExpiresOrIsReleased) {
  using std::chrono::milliseconds;
  auto a = store_->acquireLease("builder", "node-a", milliseconds(10'000));
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(a->holder, "node-a");
  EXPECT_EQ(a->expires_ms, clock_.nowMillis() + 10'000);
  uint64_t first_epoch = a->epoch;
  // Another node waits its turn; the holder extends (same epoch).
  auto b = store_->acquireLease("builder", "node-b", milliseconds(10'000));
  EXPECT_EQ(b.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(b.status().message().find("node-a"), std::string::npos) << b.status().message();
  clock_.advance(5'000);
  auto renewed = store_->acquireLease("builder", "node-a", milliseconds(10'000));
  ASSERT_TRUE(renewed.ok());
  EXPECT_EQ(renewed->epoch, first_epoch);
  EXPECT_EQ(renewed->expires_ms, clock_.nowMillis() + 10'000);
  // Expired: the next holder gets it, with a new epoch (fencing the old one).
  clock_.advance(10'001);
  auto taken = store_->acquireLease("builder", "node-b", milliseconds(10'000));
  ASSERT_TRUE(taken.ok()) << taken.status().message();
  EXPECT_GT(taken->epoch, first_epoch);
  // Only the holder releases it; then anyone may take it at once.
  EXPECT_EQ(store_->releaseLease("builder", "node-a").code(), Code::kFailedPrecondition);
  EXPECT_TRUE(store_->releaseLease("builder", "node-b").ok());
  auto again = store_->acquireLease("builder", "node-a", milliseconds(1'000));
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_GT(again->epoch, taken->epoch);
  EXPECT_EQ(store_->acquireLease("", "x", milliseconds(1)).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->acquireLease("l", "x", milliseconds(0)).status().code(), Code::kInvalidArgument);
}

}  // namespace nubo::store
