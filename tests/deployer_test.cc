// Deployer with a real SQLite store and blob store and fakes for what it
// hands work to (builds, start checks): what a folder deploys as, in which
// state, and when its alias moves.
#include "api/deployer.h"

#include <gtest/gtest.h>

#include "blob/local_blob_store.h"
#include "blob/tree.h"
#include "common/sha256.h"
#include "store/sqlite/sqlite_metadata_store.h"
#include "test_util.h"

namespace nubo::api {
namespace {

using store::DeploymentState;

class DeployerTest : public testing::Test {
 protected:
  void SetUp() override {
    auto s = store::SqliteMetadataStore::open(tmp_.sub("meta.db"), clock_);
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = std::move(*s);
    auto b = blob::LocalBlobStore::create(tmp_.sub("blobs"));
    ASSERT_TRUE(b.ok()) << b.status().message();
    blobs_ = std::move(*b);
    deployer_ = std::make_unique<Deployer>(
        *store_, *blobs_, clock_,
        [this](const store::Deployment& d) {
          built_.push_back(d.id);
          return Status::Ok();
        },
        nullptr, DeployLimits{},
        [this](const store::Deployment& d) {
          started_.push_back(d.id);
          return Status::Ok();
        });
  }
  // Stores files (path without folders -> content) as a root tree.
  std::string tree(const std::map<std::string, std::string>& files) {
    blob::Tree t;
    for (const auto& [name, content] : files) {
      std::string h = sha256Hex(content);
      EXPECT_TRUE(blobs_->put(h, content).ok());
      t.entries.push_back({name, blob::EntryKind::kFile, content.size(), h});
    }
    auto bytes = blob::encodeTree(t);
    EXPECT_TRUE(bytes.ok());
    std::string h = sha256Hex(*bytes);
    EXPECT_TRUE(deployer_->putTree(h, *bytes).ok());
    return h;
  }
  Result<store::Deployment> deploy(const std::string& app, const std::map<std::string, std::string>& files,
                                   Json manifest = Json::object()) {
    CreateRequest r;
    r.app = app;
    r.root = tree(files);
    r.manifest = std::move(manifest);
    r.actor = "test";
    return deployer_->createDeployment(r);
  }
  std::string production(const std::string& app) {
    auto aliases = store_->listAliases(app);
    for (const auto& a : *aliases) {
      if (a.name == "production") return a.deployment_id;
    }
    return "";
  }

  testing_util::TempDir tmp_;
  FakeClock clock_;
  std::unique_ptr<store::SqliteMetadataStore> store_;
  std::unique_ptr<blob::LocalBlobStore> blobs_;
  std::unique_ptr<Deployer> deployer_;
  std::vector<std::string> built_, started_;
};

TEST_F(DeployerTest, FilesAreReadyAtOnceAndTheAliasMovesWithThem) {
  auto d = deploy("site", {{"index.html", "hi"}});
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->runtime, "static");
  EXPECT_EQ(d->state, DeploymentState::kReady);
  EXPECT_EQ(production("site"), d->id);
  EXPECT_TRUE(built_.empty() && started_.empty());
}

TEST_F(DeployerTest, CodeIsStartingUntilCheckedAndTheAliasWaits) {
  auto site = deploy("fn", {{"index.html", "before"}});
  ASSERT_TRUE(site.ok());
  auto d = deploy("fn", {{"index.js", "module.exports = (q, s) => s.end()"}});
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->runtime, "node");
  EXPECT_EQ(d->state, DeploymentState::kStarting);
  EXPECT_EQ(started_, std::vector<std::string>{d->id});
  EXPECT_EQ(production("fn"), site->id) << "the alias moves once it has started";
  EXPECT_EQ(store_->getDeployment(d->id)->promote_alias, "production");
}

TEST_F(DeployerTest, WhatNeedsABuildIsQueuedForIt) {
  auto ts = deploy("ts", {{"index.ts", "export default { fetch: () => new Response('x') };"}});
  ASSERT_TRUE(ts.ok()) << ts.status().message();
  EXPECT_EQ(ts->state, DeploymentState::kQueued);
  EXPECT_EQ(built_, std::vector<std::string>{ts->id});
  EXPECT_TRUE(started_.empty()) << "started after its build, not before";
}

TEST_F(DeployerTest, RefusalsNameTheField) {
  auto server = deploy("srv", {{"package.json", R"({"name": "srv", "main": "app.js"})"}, {"app.js", "x"}});
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("looks like a server"), std::string::npos);
  auto health = deploy("hs", {{"index.html", "x"}}, Json{{"health", {{"path", "/h"}}}});
  ASSERT_FALSE(health.ok());
  EXPECT_NE(health.status().message().find("health.path"), std::string::npos) << health.status().message();
  auto cpu = deploy("cpu", {{"index.js", "x"}}, Json{{"limits", {{"cpu", 8}}}});
  ASSERT_FALSE(cpu.ok());
  EXPECT_NE(cpu.status().message().find("--max-app-cpu"), std::string::npos) << cpu.status().message();
  EXPECT_FALSE(store_->getApp("srv").ok()) << "nothing recorded for a refused deployment";
}

}  // namespace
}  // namespace nubo::api
