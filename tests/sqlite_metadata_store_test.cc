#include "store/sqlite/sqlite_metadata_store.h"

#include <gtest/gtest.h>

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

TEST(SqliteMetadataStoreTest, UnopenablePathIsAClearError) {
  FakeClock clock;
  auto s = SqliteMetadataStore::open("/nonexistent-dir/x/meta.db", clock);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("/nonexistent-dir/x/meta.db"), std::string::npos);
}

}  // namespace
}  // namespace nubo::store
