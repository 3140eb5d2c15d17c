// S3BlobStore against a real radosgw (Debian's Ceph) and a real etcd member
// holding the index, both started once for the binary: the conformance
// suite every BlobStore passes, then the cache (bounded, least recently
// used out first, verified), a second node reading what the first stored,
// and what a wrong secret says at start-up.
#include "blob/s3/s3_blob_store.h"

#include <gtest/gtest.h>

#include "blob_store_conformance.h"
#include "common/sha256.h"
#include "etcd_cluster.h"
#include "radosgw.h"
#include "store/etcd/etcd_blob_index.h"

namespace nubo::blob {
namespace {

using testing_util::EtcdCluster;
using testing_util::Radosgw;
using testing_util::TempDir;

TempDir* g_tmp = nullptr;
EtcdCluster* g_etcd = nullptr;
Radosgw* g_rgw = nullptr;

s3::S3Options s3Options(const std::string& bucket) {
  s3::S3Options o;
  o.endpoint = g_rgw->endpoint();
  o.bucket = bucket;
  o.access_key = Radosgw::kAccessKey;
  o.secret_key = Radosgw::kSecretKey;
  o.max_attempts = 2;
  return o;
}

std::shared_ptr<store::etcd::EtcdClient> etcdClient() {
  store::etcd::EtcdOptions o;
  o.endpoints = g_etcd->endpoints();
  return std::shared_ptr<store::etcd::EtcdClient>(std::move(store::etcd::EtcdClient::connect(o)).value());
}

// A store over bucket `bucket` with index prefix `prefix` and its own cache.
std::unique_ptr<S3BlobStore> openStore(const std::string& bucket, const std::string& prefix, uint64_t cache_bytes,
                                       const std::string& cache_name) {
  auto client = std::move(s3::S3Client::create(s3Options(bucket))).value();
  EXPECT_TRUE(client->createBucket().ok());
  S3BlobOptions o;
  o.cache_dir = g_tmp->sub(cache_name);
  o.cache_bytes = cache_bytes;
  auto s = S3BlobStore::create(std::move(client), std::make_shared<store::EtcdBlobIndex>(etcdClient(), prefix), o);
  EXPECT_TRUE(s.ok()) << s.status().toString();
  return s.ok() ? std::move(s).value() : nullptr;
}

std::unique_ptr<BlobStore> makeS3() {
  static int n = 0;
  ++n;
  return openStore("conformance-" + std::to_string(n), "/conformance/" + std::to_string(n) + "/", 64 << 20,
                   "cache-c" + std::to_string(n));
}

class Env : public testing::Environment {
 public:
  void SetUp() override {
    g_tmp = new TempDir();
    g_etcd = new EtcdCluster(*g_tmp, 1);
    g_rgw = new Radosgw(*g_tmp);
    ASSERT_TRUE(g_rgw->ok()) << g_rgw->why();
  }
  void TearDown() override {
    delete g_rgw;
    delete g_etcd;
    delete g_tmp;
  }
};
const auto* const kEnv = testing::AddGlobalTestEnvironment(new Env);

INSTANTIATE_TEST_SUITE_P(S3, BlobStoreConformance, testing::Values(&makeS3),
                         [](const auto&) { return std::string("S3"); });

TEST(S3BlobStoreTest, ASecondNodeFetchesOnlyWhatItReadsAndVerifiesIt) {
  auto first = openStore("shared", "/shared/", 64 << 20, "cache-n1");
  auto second = openStore("shared", "/shared/", 64 << 20, "cache-n2");
  ASSERT_TRUE(first && second);
  std::string a = "the first file", b = "the second file";
  ASSERT_TRUE(first->put(sha256Hex(a), a).ok());
  ASSERT_TRUE(first->put(sha256Hex(b), b).ok());
  // Known to the second node without fetching: the index says so.
  EXPECT_TRUE(second->missing({sha256Hex(a), sha256Hex(b)})->empty());
  EXPECT_EQ(*second->size(sha256Hex(a)), a.size());
  EXPECT_EQ(second->cacheStats().fetches, 0u);
  EXPECT_EQ(*second->get(sha256Hex(a)), a);
  EXPECT_EQ(second->cacheStats().fetches, 1u) << "only what it read";
  EXPECT_EQ(*second->get(sha256Hex(a)), a);
  EXPECT_EQ(second->cacheStats().fetches, 1u) << "then from its cache";
  EXPECT_EQ(second->cacheStats().hits, 1u);

  // An object whose bytes were changed in the bucket is refused, not served.
  std::string c = "bytes as uploaded";
  ASSERT_TRUE(first->put(sha256Hex(c), c).ok());
  auto raw = std::move(s3::S3Client::create(s3Options("shared"))).value();
  ASSERT_TRUE(raw->put("blobs/" + sha256Hex(c), "bytes tampered with").ok());
  auto tampered = second->get(sha256Hex(c));
  EXPECT_FALSE(tampered.ok());
  EXPECT_NE(tampered.status().message().find("does not hash to its name"), std::string::npos)
      << tampered.status().toString();
  EXPECT_FALSE(second->localPath(sha256Hex(c)).ok()) << "nor kept in the cache";

  // Prefetch: many at once.
  std::vector<std::string> many;
  for (int i = 0; i < 40; ++i) {
    std::string body = "file number " + std::to_string(i);
    many.push_back(sha256Hex(body));
    ASSERT_TRUE(first->put(many.back(), body).ok());
  }
  ASSERT_TRUE(second->prefetch(many).ok());
  EXPECT_EQ(second->cacheStats().fetches, 41u);
  EXPECT_EQ(*second->get(many[7]), "file number 7");
}

TEST(S3BlobStoreTest, TheCacheIsBoundedAndEvictsTheLeastRecentlyUsed) {
  auto writer = openStore("bounded", "/bounded/", 64 << 20, "cache-w");
  auto reader = openStore("bounded", "/bounded/", 3000, "cache-r");  // room for three 1,000-byte blobs
  ASSERT_TRUE(writer && reader);
  std::vector<std::string> h;
  for (char c : std::string("abcd")) {
    std::string body(1000, c);
    h.push_back(sha256Hex(body));
    ASSERT_TRUE(writer->put(h.back(), body).ok());
  }
  ASSERT_TRUE(reader->get(h[0]).ok());
  ASSERT_TRUE(reader->get(h[1]).ok());
  ASSERT_TRUE(reader->get(h[2]).ok());
  ASSERT_TRUE(reader->get(h[0]).ok());  // a is used again: b is now the oldest
  ASSERT_TRUE(reader->get(h[3]).ok());
  auto stats = reader->cacheStats();
  EXPECT_EQ(stats.bytes, 3000u);
  EXPECT_EQ(stats.evictions, 1u);
  uint64_t fetched = stats.fetches;
  ASSERT_TRUE(reader->get(h[0]).ok());
  EXPECT_EQ(reader->cacheStats().fetches, fetched) << "a stayed";
  ASSERT_TRUE(reader->get(h[1]).ok());
  EXPECT_EQ(reader->cacheStats().fetches, fetched + 1) << "b went";
  // A path handed out stays readable after its blob is evicted (a link
  // an instance made keeps the bytes).
  auto path = reader->localPath(h[3]);
  ASSERT_TRUE(path.ok());
  std::string linked = g_tmp->sub("linked");
  ASSERT_EQ(::link(path->c_str(), linked.c_str()), 0);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(reader->get(h[i]).ok());
  EXPECT_EQ(*readFile(linked), std::string(1000, 'd'));
  // A restart keeps what the cache holds.
  reader.reset();
  auto again = openStore("bounded", "/bounded/", 3000, "cache-r");
  EXPECT_EQ(again->cacheStats().bytes, 3000u);
}

TEST(S3BlobStoreTest, AWrongSecretIsAClearErrorAtStartUp) {
  auto o = s3Options("shared");
  o.secret_key = "not-the-secret";
  auto client = std::move(s3::S3Client::create(o)).value();
  S3BlobOptions options;
  options.cache_dir = g_tmp->sub("cache-wrong");
  auto s = S3BlobStore::create(std::move(client), std::make_shared<store::EtcdBlobIndex>(etcdClient(), "/x/"), options);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kPermissionDenied);
  EXPECT_NE(s.status().message().find(Radosgw::kAccessKey), std::string::npos) << s.status().toString();
}

}  // namespace
}  // namespace nubo::blob
