// EtcdClient against real etcd members (Debian's etcd-server) on loopback.
#include "store/etcd/etcd_client.h"

#include <atomic>
#include <thread>

#include "etcd_cluster.h"

namespace nubo::store::etcd {
namespace {

using testing_util::EtcdCluster;
using testing_util::TempDir;

class EtcdClientTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new TempDir();
    cluster_ = new EtcdCluster(*tmp_, 1);
  }
  static void TearDownTestSuite() {
    delete cluster_;
    delete tmp_;
  }
  std::unique_ptr<EtcdClient> client() {
    EtcdOptions o;
    o.endpoints = cluster_->endpoints();
    auto c = EtcdClient::connect(o);
    EXPECT_TRUE(c.ok()) << c.status().toString();
    return c.ok() ? std::move(c).value() : nullptr;
  }
  static inline TempDir* tmp_ = nullptr;
  static inline EtcdCluster* cluster_ = nullptr;
};

TEST_F(EtcdClientTest, PutsReadsAndDeletesKeysAndRangesWithBinarySafeValues) {
  auto c = client();
  ASSERT_TRUE(c);
  std::string binary("a\0b\xff\n", 5);
  auto rev = c->put("t1/a", binary);
  ASSERT_TRUE(rev.ok()) << rev.status().toString();
  ASSERT_TRUE(c->put("t1/b", "2").ok());
  ASSERT_TRUE(c->put("t1/c", "3").ok());
  ASSERT_TRUE(c->put("t10", "outside").ok());
  auto one = c->range("t1/a");
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->kvs.size(), 1u);
  EXPECT_EQ(one->kvs[0].value, binary);
  EXPECT_EQ(one->kvs[0].version, 1);
  EXPECT_GE(one->revision, *rev);
  auto all = c->range("t1/", EtcdClient::prefixEnd("t1/"));
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->kvs.size(), 3u) << "the prefix's keys, not t10";
  EXPECT_EQ(all->kvs[2].key, "t1/c");
  auto limited = c->range("t1/", EtcdClient::prefixEnd("t1/"), 2);
  ASSERT_TRUE(limited.ok());
  EXPECT_EQ(limited->kvs.size(), 2u);
  EXPECT_TRUE(limited->more);
  auto gone = c->deleteRange("t1/", EtcdClient::prefixEnd("t1/"));
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(*gone, 3);
  EXPECT_TRUE(c->range("t1/a")->kvs.empty());
  EXPECT_EQ(EtcdClient::prefixEnd("a\xff"), "b");
}

TEST_F(EtcdClientTest, ATransactionAppliesOnlyWhenItsComparesHold) {
  auto c = client();
  ASSERT_TRUE(c);
  // Create only if absent: version 0.
  Compare absent = Compare::version("t2/x", Compare::Result::kEqual, 0);
  auto first = c->txn({absent}, {TxnOp::put("t2/x", "one"), TxnOp::put("t2/y", "also")}, {TxnOp::get("t2/x")});
  ASSERT_TRUE(first.ok()) << first.status().toString();
  EXPECT_TRUE(first->succeeded);
  auto second = c->txn({absent}, {TxnOp::put("t2/x", "two")}, {TxnOp::get("t2/x")});
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->succeeded);
  ASSERT_EQ(second->ranges.size(), 1u);
  EXPECT_EQ(second->ranges[0].kvs.at(0).value, "one") << "the failure branch's read";
  // Compare-and-swap on the modification revision.
  int64_t mod = second->ranges[0].kvs[0].mod_revision;
  Compare same = Compare::modRevision("t2/x", Compare::Result::kEqual, mod);
  EXPECT_TRUE(c->txn({same}, {TxnOp::put("t2/x", "three")})->succeeded);
  EXPECT_FALSE(c->txn({same}, {TxnOp::put("t2/x", "four")})->succeeded) << "the revision moved";
  EXPECT_TRUE(c->txn({Compare::valueIs("t2/x", "three")}, {TxnOp::del("t2/", EtcdClient::prefixEnd("t2/"))})->succeeded);
  EXPECT_TRUE(c->range("t2/", EtcdClient::prefixEnd("t2/"))->kvs.empty());
}

TEST_F(EtcdClientTest, KeysUnderALeaseGoWhenItIsRevoked) {
  auto c = client();
  ASSERT_TRUE(c);
  auto lease = c->leaseGrant(30);
  ASSERT_TRUE(lease.ok()) << lease.status().toString();
  ASSERT_TRUE(c->put("t3/node", "here", *lease).ok());
  EXPECT_EQ(c->range("t3/node")->kvs.at(0).lease, *lease);
  EXPECT_TRUE(c->leaseKeepAlive(*lease).ok());
  ASSERT_TRUE(c->leaseRevoke(*lease).ok());
  EXPECT_TRUE(c->range("t3/node")->kvs.empty());
  EXPECT_EQ(c->leaseKeepAlive(*lease).code(), Code::kNotFound);
}

TEST_F(EtcdClientTest, AWatchSeesChangesFromARevisionAndSaysWhenHistoryWasCompacted) {
  auto c = client();
  ASSERT_TRUE(c);
  auto start = c->put("t4/a", "1");
  ASSERT_TRUE(start.ok());
  ASSERT_TRUE(c->put("t4/b", "2").ok());
  ASSERT_TRUE(c->deleteRange("t4/a").ok());
  // From the first put: all three, in order; the callback then ends it.
  std::vector<WatchEvent> seen;
  int64_t last = 0;
  Status s = c->watch("t4/", EtcdClient::prefixEnd("t4/"), *start, [&](const std::vector<WatchEvent>& evs, int64_t rev) {
    seen.insert(seen.end(), evs.begin(), evs.end());
    last = rev;
    return seen.size() < 3;
  });
  EXPECT_TRUE(s.ok()) << s.toString();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].kv.key, "t4/a");
  EXPECT_FALSE(seen[0].deleted);
  EXPECT_EQ(seen[1].kv.value, "2");
  EXPECT_TRUE(seen[2].deleted);
  EXPECT_EQ(seen[2].kv.key, "t4/a");
  EXPECT_GE(last, *start + 2);
  // A live watch hears a change made after it started, and stops on request.
  std::atomic<bool> stop{false};
  std::atomic<int> live{0};
  std::thread watcher([&] {
    Status w = c->watch("t4/", EtcdClient::prefixEnd("t4/"), 0, [&](const std::vector<WatchEvent>& evs, int64_t) {
      live += static_cast<int>(evs.size());
      return true;
    }, &stop);
    EXPECT_TRUE(w.ok()) << w.toString();
  });
  ASSERT_TRUE(testing_util::waitFor([&] {
    (void)c->put("t4/live", "x");
    return live.load() > 0;
  }));
  stop = true;
  watcher.join();
  // Compacted history: the watch says so, so the caller resyncs.
  auto now = c->put("t4/c", "3");
  ASSERT_TRUE(now.ok());
  cli::HttpClient http(cluster_->endpoint(0), "");
  auto compact = http.send("POST", "/v3/kv/compaction", "{\"revision\":\"" + std::to_string(*now) + "\"}");
  ASSERT_TRUE(compact.ok());
  ASSERT_EQ(compact->status, 200) << compact->body;
  Status old = c->watch("t4/", EtcdClient::prefixEnd("t4/"), *start, [](const auto&, int64_t) { return true; });
  EXPECT_EQ(old.code(), Code::kFailedPrecondition) << old.toString();
  EXPECT_NE(old.message().find("compacted"), std::string::npos) << old.toString();
}

TEST(EtcdClientFailoverTest, CallsGoToAMemberThatAnswersWhenOneIsDown) {
  TempDir tmp;
  EtcdCluster cluster(tmp, 3);
  EtcdOptions o;
  o.endpoints = cluster.endpoints();
  auto c = EtcdClient::connect(o);
  ASSERT_TRUE(c.ok()) << c.status().toString();
  ASSERT_TRUE((*c)->put("f/x", "1").ok());
  cluster.stop(0, SIGKILL);
  auto put = (*c)->put("f/x", "2");
  ASSERT_TRUE(put.ok()) << put.status().toString();
  EXPECT_EQ((*c)->range("f/x")->kvs.at(0).value, "2");
  // Nobody at all: a clear error naming the endpoints tried.
  EtcdOptions nobody;
  nobody.endpoints = {"http://127.0.0.1:1"};
  nobody.timeout = std::chrono::milliseconds(500);
  auto none = EtcdClient::connect(nobody);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), Code::kUnavailable);
  EXPECT_NE(none.status().message().find("127.0.0.1:1"), std::string::npos) << none.status().message();
  EtcdOptions bad;
  bad.endpoints = {"127.0.0.1:2379"};
  EXPECT_EQ(EtcdClient::connect(bad).status().code(), Code::kInvalidArgument);
}

TEST(EtcdClientAuthTest, AUserAndPasswordSignInAndAWrongPasswordIsRefused) {
  TempDir tmp;
  EtcdCluster cluster(tmp, 1);
  auto ctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"/usr/bin/etcdctl", "--endpoints", cluster.endpoint(0)});
    return testing_util::runProcess(args, {{"ETCDCTL_API", "3"}}, tmp.path());
  };
  ASSERT_EQ(ctl({"user", "add", "root:rootpw"}).exit_code, 0);
  ASSERT_EQ(ctl({"user", "add", "nubo:s3cret"}).exit_code, 0);
  ASSERT_EQ(ctl({"role", "add", "nubo"}).exit_code, 0);
  ASSERT_EQ(ctl({"role", "grant-permission", "nubo", "--prefix=true", "readwrite", "/nubo/"}).exit_code, 0);
  ASSERT_EQ(ctl({"user", "grant-role", "nubo", "nubo"}).exit_code, 0);
  auto enabled = ctl({"auth", "enable"});
  ASSERT_EQ(enabled.exit_code, 0) << enabled.err;
  EtcdOptions o;
  o.endpoints = cluster.endpoints();
  o.user = "nubo";
  o.password = "s3cret";
  auto c = EtcdClient::connect(o);
  ASSERT_TRUE(c.ok()) << c.status().toString();
  EXPECT_TRUE((*c)->put("/nubo/x", "1").ok());
  auto outside = (*c)->put("/other/x", "1");
  EXPECT_EQ(outside.status().code(), Code::kPermissionDenied) << outside.status().toString();
  o.password = "wrong";
  auto refused = EtcdClient::connect(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("authentication failed"), std::string::npos) << refused.status().toString();
  o.user.clear();
  auto anonymous = EtcdClient::connect(o);  // (the cluster's status needs no user)
  ASSERT_TRUE(anonymous.ok());
  auto put = (*anonymous)->put("/nubo/x", "2");
  EXPECT_FALSE(put.ok()) << "no user: refused once auth is on";
}

}  // namespace
}  // namespace nubo::store::etcd
