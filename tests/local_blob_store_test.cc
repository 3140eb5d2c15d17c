#include "blob/local_blob_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "blob_store_conformance.h"
#include "common/sha256.h"
#include "test_util.h"

namespace nubo::blob {
namespace {

testing_util::TempDir* g_dir = nullptr;

std::unique_ptr<BlobStore> makeLocal() {
  static int n = 0;
  auto s = LocalBlobStore::create(g_dir->sub("blobs" + std::to_string(n++)));
  return std::move(s).value();
}

class LocalEnv : public testing::Environment {
 public:
  void SetUp() override { g_dir = new testing_util::TempDir(); }
  void TearDown() override { delete g_dir; }
};
const auto* const kEnv = testing::AddGlobalTestEnvironment(new LocalEnv);

INSTANTIATE_TEST_SUITE_P(Local, BlobStoreConformance, testing::Values(&makeLocal), [](const auto&) { return std::string("Local"); });

TEST(LocalBlobStoreTest, StoresReadOnlyFilesInShards) {
  testing_util::TempDir dir;
  auto store = std::move(LocalBlobStore::create(dir.sub("b"))).value();
  std::string h = sha256Hex("abc");
  ASSERT_TRUE(store->put(h, "abc").ok());
  std::string path = dir.sub("b/" + h.substr(0, 2) + "/" + h);
  EXPECT_EQ(store->pathFor(h), path);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);
}

TEST(LocalBlobStoreTest, LeftoverTempFilesAreClearedAndNeverVisible) {
  testing_util::TempDir dir;
  {
    auto store = std::move(LocalBlobStore::create(dir.sub("b"))).value();
  }
  // A put that crashed half-way leaves only a temp file.
  std::ofstream(dir.sub("b/tmp/abandoned.123.0")) << "half a blo";
  auto store = std::move(LocalBlobStore::create(dir.sub("b"))).value();
  EXPECT_FALSE(std::filesystem::exists(dir.sub("b/tmp/abandoned.123.0")));
  EXPECT_TRUE(std::filesystem::is_empty(dir.sub("b/tmp")));
}

}  // namespace
}  // namespace nubo::blob
