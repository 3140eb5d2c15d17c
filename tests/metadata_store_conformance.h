// The MetadataStore conformance suite. Every implementation instantiates it
// with a factory that returns a fresh, empty store:
//   INSTANTIATE_TEST_SUITE_P(Sqlite, MetadataStoreConformance, testing::Values(&makeSqlite));
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
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

// A token record with only what identifies it set.
inline TokenRecord tokenRecord(std::string id, std::string name, std::string hash, int64_t created_ms) {
  TokenRecord t;
  t.id = std::move(id);
  t.name = std::move(name);
  t.hash = std::move(hash);
  t.created_ms = created_ms;
  return t;
}

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

TEST_P(MetadataStoreConformance, UnbuiltDeploymentsAreListedOldestFirstUntilTheirBuildEnds) {
  Deployment ready = makeDeployment("shop");
  ASSERT_TRUE(store_->createDeployment(ready, "production", "ci").ok());
  Deployment first = makeDeployment("shop", DeploymentState::kQueued);
  Deployment second = makeDeployment("blog", DeploymentState::kQueued);
  ASSERT_TRUE(store_->createDeployment(first, "production", "ci").ok());
  ASSERT_TRUE(store_->createDeployment(second, "production", "ci").ok());
  auto ids = [&] {
    std::vector<std::string> out;
    auto unbuilt = store_->listUnbuilt();
    EXPECT_TRUE(unbuilt.ok()) << unbuilt.status().message();
    if (unbuilt.ok()) {
      for (const auto& d : *unbuilt) out.push_back(d.id);
    }
    return out;
  };
  EXPECT_EQ(ids(), (std::vector<std::string>{first.id, second.id}));
  ASSERT_TRUE(store_->setDeploymentState(first.id, DeploymentState::kBuilding).ok());
  EXPECT_EQ(ids(), (std::vector<std::string>{first.id, second.id})) << "building: not built yet";
  ASSERT_TRUE(store_->finishBuild(first.id, DeploymentState::kStarting, std::string(64, 'c'), "", "builder").ok());
  EXPECT_EQ(ids(), (std::vector<std::string>{second.id}));
  ASSERT_TRUE(store_->deleteApp("blog").ok());
  EXPECT_TRUE(ids().empty());
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
  TokenRecord t = tokenRecord("admin", "admin", std::string(64, 'c'), clock_.nowMillis());
  ASSERT_TRUE(store_->putToken(t).ok());
  EXPECT_EQ(store_->putToken(t).code(), Code::kAlreadyExists);
  auto got = store_->findTokenByHash(t.hash);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->name, "admin");
  EXPECT_EQ(*store_->countTokens(), 1u);
}

TEST_P(MetadataStoreConformance, TokensKeepTheirRoleScopeAndExpiryAndAreRevokedByName) {
  TokenRecord admin = tokenRecord("t1", "root", std::string(64, '1'), clock_.nowMillis());
  ASSERT_TRUE(store_->putToken(admin).ok());
  TokenRecord ci{"t2", "ci", std::string(64, '2'), clock_.nowMillis(), "deployer", {"shop", "blog"},
                 clock_.nowMillis() + 3600'000, 0, "root"};
  ASSERT_TRUE(store_->putToken(ci).ok());
  TokenRecord same_name = ci;
  same_name.id = "t3";
  same_name.hash = std::string(64, '3');
  EXPECT_EQ(store_->putToken(same_name).code(), Code::kAlreadyExists) << "names are unique";

  auto got = store_->findTokenByHash(ci.hash);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->role, "deployer");
  EXPECT_EQ(got->apps, (std::vector<std::string>{"shop", "blog"}));
  EXPECT_EQ(got->expires_ms, ci.expires_ms);
  EXPECT_EQ(got->created_by, "root");
  EXPECT_EQ(got->last_used_ms, 0);
  ASSERT_TRUE(store_->touchToken("t2", 5000).ok());
  ASSERT_TRUE(store_->touchToken("t2", 4000).ok());  // an older use does not go back
  EXPECT_EQ(store_->findTokenByHash(ci.hash)->last_used_ms, 5000);

  auto all = store_->listTokens();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "ci");
  EXPECT_EQ((*all)[1].name, "root");

  // The last admin token stays: nobody could make another.
  EXPECT_EQ(store_->deleteToken("root").code(), Code::kFailedPrecondition);
  EXPECT_EQ(store_->deleteToken("nobody").code(), Code::kNotFound);
  ASSERT_TRUE(store_->deleteToken("ci").ok());
  EXPECT_EQ(store_->findTokenByHash(ci.hash).status().code(), Code::kNotFound);
  TokenRecord second_admin = tokenRecord("t4", "root2", std::string(64, '4'), clock_.nowMillis());
  ASSERT_TRUE(store_->putToken(second_admin).ok());
  EXPECT_TRUE(store_->deleteToken("root").ok()) << "another admin token is left";
  EXPECT_EQ(*store_->countTokens(), 1u);
}

TEST_P(MetadataStoreConformance, AnAliasSplitsTrafficAndRollbackRestoresTheSplitExactly) {
  std::string a = deploy("shop");
  std::string b = deploy("shop", "");
  std::string c = deploy("shop", "");
  std::string other = deploy("blog", "");
  auto e = store_->setAliasSplit("shop", "production", {{b, 10}, {a, 90}}, "ci");
  ASSERT_TRUE(e.ok()) << e.status().toString();
  EXPECT_EQ(e->deployment_id, a) << "the heaviest";
  EXPECT_EQ(e->split, (Split{{a, 90}, {b, 10}}));
  EXPECT_EQ(e->previous_split, (Split{{a, 100}}));
  auto aliases = store_->listAliases("shop");
  ASSERT_EQ(aliases->size(), 1u);
  EXPECT_EQ((*aliases)[0].split, (Split{{a, 90}, {b, 10}}));

  ASSERT_TRUE(store_->setAliasSplit("shop", "production", {{a, 50}, {b, 25}, {c, 25}}, "ci").ok());
  ASSERT_TRUE(store_->setAlias("shop", "production", c, "ci").ok());
  EXPECT_EQ((*store_->listAliases("shop"))[0].split, (Split{{c, 100}}));
  ASSERT_TRUE(store_->rollbackAlias("shop", "production", "ci").ok());
  EXPECT_EQ((*store_->listAliases("shop"))[0].split, (Split{{a, 50}, {b, 25}, {c, 25}}));
  ASSERT_TRUE(store_->rollbackAlias("shop", "production", "ci").ok());
  EXPECT_EQ((*store_->listAliases("shop"))[0].split, (Split{{a, 90}, {b, 10}}));
  auto history = store_->aliasHistory("shop", "production", 1);
  EXPECT_EQ((*history)[0].split, (Split{{a, 90}, {b, 10}}));

  // Refused, leaving the split as it was.
  EXPECT_EQ(store_->setAliasSplit("shop", "production", {{a, 90}, {b, 20}}, "ci").status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(store_->setAliasSplit("shop", "production", {{a, 50}, {a, 50}}, "ci").status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(store_->setAliasSplit("shop", "production", {{a, 0}, {b, 100}}, "ci").status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(store_->setAliasSplit("shop", "production", {{a, 50}, {other, 50}}, "ci").status().code(),
            Code::kNotFound);
  std::string d = deploy("shop", "");
  std::string e5 = deploy("shop", "");
  EXPECT_EQ(store_->setAliasSplit("shop", "production", {{a, 20}, {b, 20}, {c, 20}, {d, 20}, {e5, 20}}, "ci")
                .status()
                .code(),
            Code::kInvalidArgument);
  EXPECT_EQ((*store_->listAliases("shop"))[0].split, (Split{{a, 90}, {b, 10}}));
}

TEST_P(MetadataStoreConformance, EnvValuesAreSetTogetherSnapshottedAndResealed) {
  EXPECT_EQ(store_->putEnv({{"shop", "", "A", "1", false, 1, "ci"}}).code(), Code::kNotFound) << "no app yet";
  deploy("shop");
  ASSERT_TRUE(store_->putEnv({{"shop", "", "A", "1", false, 1, "ci"},
                              {"shop", "", "KEY", "sealed-1", true, 1, "ci"},
                              {"shop", "preview", "A", "2", false, 1, "ci"}})
                  .ok());
  ASSERT_TRUE(store_->putEnv({{"shop", "", "A", "3", false, 2, "admin"}}).ok());
  auto env = store_->listEnv("shop");
  ASSERT_TRUE(env.ok());
  ASSERT_EQ(env->size(), 3u);
  EXPECT_EQ((*env)[0].name, "A");
  EXPECT_EQ((*env)[0].value, "3");
  EXPECT_EQ((*env)[0].updated_by, "admin");
  EXPECT_TRUE((*env)[1].secret);
  EXPECT_EQ((*env)[2].alias, "preview");

  Deployment d = makeDeployment("shop");
  d.env = {{"A", "3", false}, {"KEY", "sealed-1", true}};
  ASSERT_TRUE(store_->createDeployment(d, "", "ci").ok());
  EXPECT_EQ(store_->getDeployment(d.id)->env, d.env);

  // Re-sealing touches secrets only, in the app's values and the snapshots.
  auto n = store_->resealSecrets([](std::string_view app, std::string_view name, std::string_view sealed)
                                     -> Result<std::string> {
    return std::string(app) + "/" + std::string(name) + "/" + std::string(sealed);
  });
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2u);
  EXPECT_EQ((*store_->listEnv("shop"))[1].value, "shop/KEY/sealed-1");
  EXPECT_EQ(store_->getDeployment(d.id)->env[1].value, "shop/KEY/sealed-1");
  EXPECT_EQ(store_->getDeployment(d.id)->env[0].value, "3");
  // A failure changes nothing.
  auto failed = store_->resealSecrets([](std::string_view, std::string_view, std::string_view) -> Result<std::string> {
    return Internal("no key");
  });
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ((*store_->listEnv("shop"))[1].value, "shop/KEY/sealed-1");

  EXPECT_EQ(store_->deleteEnv("shop", "", "NOPE").code(), Code::kNotFound);
  ASSERT_TRUE(store_->deleteEnv("shop", "preview", "A").ok());
  EXPECT_EQ(store_->listEnv("shop")->size(), 2u);
  ASSERT_TRUE(store_->deleteApp("shop").ok());
  EXPECT_TRUE(store_->listEnv("shop")->empty());
}

TEST_P(MetadataStoreConformance, DomainsBindToOneAppAndGoWithIt) {
  std::vector<Change> seen;
  uint64_t id = store_->watch([&](const Change& c) { seen.push_back(c); });
  EXPECT_EQ(store_->putDomain({"shop.example.com", "shop", "production", 1, "admin"}).code(), Code::kNotFound)
      << "no such app yet";
  deploy("shop");
  deploy("blog");
  ASSERT_TRUE(store_->putDomain({"shop.example.com", "shop", "production", 1, "admin"}).ok());
  ASSERT_TRUE(store_->putDomain({"*.example.com", "blog", "production", 2, "admin"}).ok());
  Status taken = store_->putDomain({"shop.example.com", "blog", "production", 3, "admin"});
  EXPECT_EQ(taken.code(), Code::kAlreadyExists);
  EXPECT_NE(taken.message().find("shop"), std::string::npos) << "names the app it is bound to: " << taken.message();
  // The same app again: its alias changes.
  ASSERT_TRUE(store_->putDomain({"shop.example.com", "shop", "preview", 4, "admin"}).ok());
  auto all = store_->listDomains("");
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].host, "*.example.com");
  EXPECT_EQ((*all)[1].alias, "preview");
  EXPECT_EQ((*all)[1].created_ms, 1) << "an update keeps when it was bound";
  EXPECT_EQ(store_->listDomains("blog")->size(), 1u);
  EXPECT_TRUE(std::any_of(seen.begin(), seen.end(), [](const Change& c) {
    return c.kind == Change::Kind::kDomain && c.app == "shop";
  }));

  EXPECT_EQ(store_->deleteDomain("nope.example.com").status().code(), Code::kNotFound);
  auto removed = store_->deleteDomain("*.example.com");
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, "blog") << "the app it was bound to";
  ASSERT_TRUE(store_->deleteApp("shop").ok());
  EXPECT_TRUE(store_->listDomains("")->empty()) << "removing the app removed its domain";
  store_->unwatch(id);
}

TEST_P(MetadataStoreConformance, TheAuditLogListsNewestFirstByAppAndPages) {
  auto add = [&](const std::string& app, const std::string& action) {
    AuditEntry e;
    e.at_ms = clock_.nowMillis();
    e.actor = "ci";
    e.action = action;
    e.app = app;
    e.target = "production";
    e.detail = R"({"deployment":"d1"})";
    e.source = "127.0.0.1";
    clock_.advance(10);
    auto r = store_->appendAudit(e);
    EXPECT_TRUE(r.ok());
    return r.ok() ? r->seq : 0;
  };
  int64_t first = add("shop", "deploy");
  add("blog", "deploy");
  int64_t third = add("shop", "alias.set");
  add("", "token.create");
  EXPECT_LT(first, third);

  auto all = store_->listAudit({});
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 4u);
  EXPECT_EQ((*all)[0].action, "token.create");
  EXPECT_EQ((*all)[3].seq, first);
  EXPECT_EQ((*all)[3].detail, R"({"deployment":"d1"})");
  EXPECT_EQ((*all)[3].source, "127.0.0.1");

  auto shop = store_->listAudit({{"shop"}, 0, 100});
  ASSERT_TRUE(shop.ok());
  ASSERT_EQ(shop->size(), 2u);
  EXPECT_EQ((*shop)[0].action, "alias.set");
  auto older = store_->listAudit({{"shop", "blog"}, third, 1});
  ASSERT_TRUE(older.ok());
  ASSERT_EQ(older->size(), 1u);
  EXPECT_EQ((*older)[0].app, "blog");

  // Entries outlive their app.
  deploy("shop");
  ASSERT_TRUE(store_->deleteApp("shop").ok());
  EXPECT_EQ(store_->listAudit({{"shop"}, 0, 100})->size(), 2u);
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
