// S3Client against a real radosgw (Debian's Ceph) on loopback, which checks
// SigV4 signatures and payload hashes as S3 does.
#include "blob/s3/s3_client.h"

#include <fstream>

#include "common/sha256.h"
#include "radosgw.h"

namespace nubo::blob::s3 {
namespace {

using testing_util::Radosgw;
using testing_util::TempDir;

class S3ClientTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new TempDir();
    rgw_ = new Radosgw(*tmp_);
  }
  static void TearDownTestSuite() {
    delete rgw_;
    delete tmp_;
  }
  void SetUp() override { ASSERT_TRUE(rgw_->ok()) << rgw_->why(); }
  static S3Options options(const std::string& bucket = "nubo-blobs") {
    S3Options o;
    o.endpoint = rgw_->endpoint();
    o.bucket = bucket;
    o.access_key = Radosgw::kAccessKey;
    o.secret_key = Radosgw::kSecretKey;
    return o;
  }
  static std::unique_ptr<S3Client> client(const std::string& bucket = "nubo-blobs") {
    auto c = S3Client::create(options(bucket));
    EXPECT_TRUE(c.ok()) << c.status().toString();
    Status made = (*c)->createBucket();
    EXPECT_TRUE(made.ok()) << made.toString();
    return std::move(c).value();
  }
  static inline TempDir* tmp_ = nullptr;
  static inline Radosgw* rgw_ = nullptr;
};

TEST_F(S3ClientTest, StoresReadsAndRemovesObjectsWithAnyKeyAndBytes) {
  auto c = client();
  EXPECT_TRUE(c->createBucket().ok()) << "creating it again is fine";
  EXPECT_TRUE(c->checkBucket().ok());
  std::string bytes("\0binary\xff\n", 9);
  const std::string key = "objects/a b+c/ü=?&x";
  ASSERT_TRUE(c->put(key, bytes).ok());
  auto got = c->get(key, 1 << 20);
  ASSERT_TRUE(got.ok()) << got.status().toString();
  EXPECT_EQ(*got, bytes);
  auto size = c->head(key);
  ASSERT_TRUE(size.ok()) << size.status().toString();
  EXPECT_EQ(size->value_or(0), bytes.size());
  EXPECT_EQ(c->get(key, 4).status().code(), Code::kResourceExhausted);
  ASSERT_TRUE(c->remove(key).ok());
  EXPECT_FALSE(c->head(key)->has_value());
  EXPECT_EQ(c->get(key, 100).status().code(), Code::kNotFound);
  EXPECT_TRUE(c->remove(key).ok()) << "removing what is gone is fine";
}

TEST_F(S3ClientTest, LargeObjectsStreamBothWays) {
  auto c = client();
  std::string path = tmp_->sub("big.bin");
  {
    std::ofstream out(path, std::ios::binary);
    std::string chunk(1 << 20, '\0');
    for (int i = 0; i < 40; ++i) {
      for (size_t j = 0; j < chunk.size(); j += 4096) chunk[j] = static_cast<char>(i + j);
      out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    }
  }
  auto hash = sha256File(path);
  ASSERT_TRUE(hash.ok());
  ASSERT_TRUE(c->putFile("big", path, 40u << 20, *hash).ok());
  Sha256 h;
  uint64_t n = 0;
  size_t pieces = 0;
  Status s = c->getTo("big", [&](std::string_view piece) {
    h.update(piece);
    n += piece.size();
    ++pieces;
    return Status::Ok();
  });
  ASSERT_TRUE(s.ok()) << s.toString();
  EXPECT_EQ(n, 40u << 20);
  EXPECT_GT(pieces, 10u) << "handed on as it arrived";
  EXPECT_EQ(h.finishHex(), *hash);
  // A sink's error stops the transfer and comes back.
  Status stopped = c->getTo("big", [](std::string_view) { return Status(Code::kDeadlineExceeded, "enough"); });
  EXPECT_EQ(stopped.code(), Code::kDeadlineExceeded);
  // The payload hash is checked by the store: a wrong one is refused.
  Status wrong = c->putFile("big2", path, 40u << 20, std::string(64, '0'));
  EXPECT_EQ(wrong.code(), Code::kInvalidArgument) << wrong.toString();
  EXPECT_FALSE(c->head("big2")->has_value());
}

TEST_F(S3ClientTest, ListingPagesThroughMoreThanAThousandKeysInOrder) {
  auto c = client("nubo-listing");
  for (int i = 0; i < 1050; ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "many/%05d", i);
    ASSERT_TRUE(c->put(key, "x").ok()) << key;
  }
  ASSERT_TRUE(c->put("other/one", "y").ok());
  std::vector<std::string> keys;
  ASSERT_TRUE(c->list("many/", [&](const S3Client::Listed& l) {
                 keys.push_back(l.key);
                 EXPECT_EQ(l.size, 1u);
                 return true;
               }).ok());
  ASSERT_EQ(keys.size(), 1050u);
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  size_t seen = 0;
  EXPECT_TRUE(c->list("", [&](const S3Client::Listed&) { return ++seen < 5; }).ok());
  EXPECT_EQ(seen, 5u) << "stopped when asked";
}

TEST_F(S3ClientTest, WrongCredentialsAMissingBucketAndNoServerAreClearErrors) {
  S3Options bad = options();
  bad.secret_key = "not-the-secret";
  auto wrong = S3Client::create(bad);
  ASSERT_TRUE(wrong.ok());
  Status s = (*wrong)->put("x", "y");
  EXPECT_EQ(s.code(), Code::kPermissionDenied) << s.toString();
  EXPECT_NE(s.message().find(Radosgw::kAccessKey), std::string::npos) << s.toString();
  auto missing = S3Client::create(options("no-such-bucket-here"));
  ASSERT_TRUE(missing.ok());
  Status m = (*missing)->checkBucket();
  EXPECT_EQ(m.code(), Code::kNotFound) << m.toString();
  EXPECT_NE(m.message().find("no-such-bucket-here"), std::string::npos) << m.toString();
  S3Options nobody = options();
  nobody.endpoint = "http://127.0.0.1:1";
  nobody.first_backoff = std::chrono::milliseconds(1);
  Status u = (*S3Client::create(nobody))->put("x", "y");
  EXPECT_EQ(u.code(), Code::kUnavailable) << u.toString();
  EXPECT_NE(u.message().find("4 attempts"), std::string::npos) << u.toString();
  S3Options name = options("Bad_Name");
  EXPECT_EQ(S3Client::create(name).status().code(), Code::kInvalidArgument);
  S3Options nokey = options();
  nokey.access_key.clear();
  EXPECT_NE(S3Client::create(nokey).status().message().find("AWS_ACCESS_KEY_ID"), std::string::npos);
}

}  // namespace
}  // namespace nubo::blob::s3
