#include "store/sqlite/sqlite_metadata_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "metadata_store_conformance.h"
#include "test_util.h"

namespace nubo::store {
namespace {

testing_util::TempDir* g_dir = nullptr;

std::unique_ptr<MetadataStore> makeSqlite(Clock& clock) {
  static int n = 0;
  auto s = SqliteMetadataStore::open(g_dir->sub("meta" + std::to_string(n++) + ".db"), clock);
  EXPECT_TRUE(s.ok()) << s.status().toString();
  return std::move(s).value();
}

class SqliteEnv : public testing::Environment {
 public:
  void SetUp() override { g_dir = new testing_util::TempDir(); }
  void TearDown() override { delete g_dir; }
};
const auto* const kEnv = testing::AddGlobalTestEnvironment(new SqliteEnv);

INSTANTIATE_TEST_SUITE_P(Sqlite, MetadataStoreConformance, testing::Values(&makeSqlite), [](const auto&) { return std::string("Sqlite"); });

TEST(SqliteMetadataStoreTest, DataSurvivesReopening) {
  testing_util::TempDir dir;
  FakeClock clock;
  std::string id = newDeploymentId();
  {
    auto s = std::move(SqliteMetadataStore::open(dir.sub("m.db"), clock)).value();
    Deployment d;
    d.id = id;
    d.app = "shop";
    d.root_tree = std::string(64, 'a');
    d.manifest_json = "{}";
    d.runtime = "static";
    d.state = DeploymentState::kReady;
    ASSERT_TRUE(s->createDeployment(d, "production", "a").ok());
  }
  auto s = std::move(SqliteMetadataStore::open(dir.sub("m.db"), clock)).value();
  EXPECT_TRUE(s->getDeployment(id).ok());
  EXPECT_EQ((*s->listAliases("shop"))[0].deployment_id, id);
}

// A database written by the first schema (before builds) opens, keeps its
// deployments, and takes builds from then on.
TEST(SqliteMetadataStoreTest, AVersionOneDatabaseIsUpgraded) {
  testing_util::TempDir dir;
  std::string path = dir.sub("m.db");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  const char* v1 = R"sql(
    CREATE TABLE apps (name TEXT PRIMARY KEY, created_ms INTEGER NOT NULL, created_by TEXT NOT NULL);
    CREATE TABLE deployments (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
      app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE, root_tree TEXT NOT NULL, manifest TEXT NOT NULL,
      runtime TEXT NOT NULL, state TEXT NOT NULL, created_ms INTEGER NOT NULL, creator TEXT NOT NULL,
      files INTEGER NOT NULL, bytes INTEGER NOT NULL);
    CREATE INDEX deployments_by_app ON deployments(app, seq);
    CREATE TABLE aliases (app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE, name TEXT NOT NULL,
      deployment_id TEXT NOT NULL, updated_ms INTEGER NOT NULL, PRIMARY KEY (app, name));
    CREATE TABLE alias_events (seq INTEGER PRIMARY KEY AUTOINCREMENT,
      app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE, alias TEXT NOT NULL, deployment_id TEXT NOT NULL,
      previous_id TEXT NOT NULL, kind TEXT NOT NULL, actor TEXT NOT NULL, at_ms INTEGER NOT NULL,
      undone INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE tokens (id TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
      created_ms INTEGER NOT NULL);
    INSERT INTO apps VALUES ('shop', 1, 'a');
    INSERT INTO deployments (id, app, root_tree, manifest, runtime, state, created_ms, creator, files, bytes)
      VALUES ('dold000000000', 'shop', 'aaaa', '{}', 'static', 'READY', 1, 'a', 1, 1);
    INSERT INTO tokens VALUES ('t1', 'admin', 'h1', 1);
    INSERT INTO tokens VALUES ('t2', 'admin', 'h2', 2);
    PRAGMA user_version = 1;
  )sql";
  ASSERT_EQ(sqlite3_exec(db, v1, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
  FakeClock clock;
  auto s = SqliteMetadataStore::open(path, clock);
  ASSERT_TRUE(s.ok()) << s.status().toString();
  auto old = (*s)->getDeployment("dold000000000");
  ASSERT_TRUE(old.ok()) << old.status().toString();
  EXPECT_EQ(old->servedTree(), "aaaa");
  EXPECT_EQ(old->error, "");
  // The tokens made before roles were admin tokens; names became unique.
  auto first = (*s)->findTokenByHash("h1");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->role, "admin");
  EXPECT_TRUE(first->apps.empty());
  EXPECT_EQ(first->name, "admin");
  EXPECT_EQ((*s)->findTokenByHash("h2")->name, "admin-t2");
  EXPECT_TRUE((*s)->listAudit({})->empty());
}

TEST(SqliteMetadataStoreTest, TheAuditLogKeepsItsNewestEntries) {
  testing_util::TempDir dir;
  FakeClock clock;
  auto s = SqliteMetadataStore::open(dir.sub("m.db"), clock, /*audit_kept=*/20);
  ASSERT_TRUE(s.ok());
  for (int i = 0; i < 50; ++i) {
    AuditEntry e;
    e.actor = "ci";
    e.action = "alias.set";
    e.target = std::to_string(i);
    ASSERT_TRUE((*s)->appendAudit(e).ok());
  }
  auto kept = (*s)->listAudit({{}, 0, 0});
  ASSERT_TRUE(kept.ok());
  ASSERT_EQ(kept->size(), 20u);
  EXPECT_EQ(kept->front().target, "49");
  EXPECT_EQ(kept->back().target, "30");
}

TEST(SqliteMetadataStoreTest, UnopenablePathIsAClearError) {
  FakeClock clock;
  auto s = SqliteMetadataStore::open("/nonexistent-dir/x/meta.db", clock);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("/nonexistent-dir/x/meta.db"), std::string::npos);
}

}  // namespace
}  // namespace nubo::store
