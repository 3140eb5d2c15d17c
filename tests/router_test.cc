#include "gateway/router.h"

#include <gtest/gtest.h>

#include "common/ids.h"
#include "gateway/deployment_spec.h"
#include "store/sqlite/sqlite_metadata_store.h"
#include "test_util.h"

namespace nubo::gateway {
namespace {

class RouterTest : public testing::Test {
 protected:
  void SetUp() override {
    store_ = std::move(store::SqliteMetadataStore::open(dir_.sub("m.db"), clock_)).value();
    router_ = std::make_unique<Router>(*store_, "localhost");
  }

  std::string deploy(const std::string& app, const std::string& promote = "production",
                     store::DeploymentState state = store::DeploymentState::kReady) {
    store::Deployment d;
    d.id = newDeploymentId();
    d.app = app;
    d.root_tree = std::string(64, 'a');
    d.manifest_json = "{}";
    d.runtime = "static";
    d.state = state;
    EXPECT_TRUE(store_->createDeployment(d, promote, "t").ok());
    return d.id;
  }

  std::string resolvedId(std::string_view host, std::string_view path) {
    auto r = router_->resolve(host, path);
    if (!r.ok()) return "error: " + r.status().message();
    if (r->kind == Resolved::Kind::kRedirect) return "redirect: " + r->location;
    return r->deployment->id;
  }

  testing_util::TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<store::SqliteMetadataStore> store_;
  std::unique_ptr<Router> router_;
};

TEST_F(RouterTest, ResolvesEveryUrlForm) {
  std::string a = deploy("shop");
  std::string b = deploy("shop", "staging");
  ASSERT_TRUE(router_->start().ok());
  EXPECT_EQ(resolvedId("shop.localhost", "/"), a);
  EXPECT_EQ(resolvedId("production--shop.localhost", "/x"), a);
  EXPECT_EQ(resolvedId("staging--shop.localhost", "/"), b);
  EXPECT_EQ(resolvedId(b + "--shop.localhost", "/"), b);
  EXPECT_EQ(resolvedId("127.0.0.1", "/shop/index.html"), a);
  EXPECT_EQ(resolvedId("127.0.0.1", "/staging--shop/"), b);
  EXPECT_EQ(resolvedId("localhost", "/" + b + "--shop/a/b"), b);
  EXPECT_EQ(resolvedId("127.0.0.1", "/shop"), "redirect: /shop/");

  auto r = router_->resolve("127.0.0.1", "/shop/css/a.css");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->path, "/css/a.css");
  EXPECT_FALSE(r->immutable);
  r = router_->resolve(b + "--shop.localhost", "/");
  EXPECT_TRUE(r->immutable);
}

TEST_F(RouterTest, BoundDomainsComeFirstAndExactBeatsWildcard) {
  std::string shop = deploy("shop");
  std::string shop_preview = deploy("shop", "preview");
  std::string blog = deploy("blog");
  std::string other = deploy("other");
  ASSERT_TRUE(router_->start().ok());
  auto bind = [&](const std::string& host, const std::string& app, const std::string& alias = "production") {
    ASSERT_TRUE(store_->putDomain({host, app, alias, 0, "t"}).ok()) << host;
  };
  bind("shop.example.com", "shop");
  bind("*.example.com", "blog");
  bind("preview.shop.test", "shop", "preview");
  bind("xn--bcher-kva.example.com", "other");
  // Seen at once (a store change), with no restart.
  EXPECT_EQ(resolvedId("shop.example.com", "/a"), shop);
  EXPECT_EQ(resolvedId("shop.example.com.", "/a"), shop) << "a trailing dot is the same host";
  EXPECT_EQ(resolvedId("anything.example.com", "/"), blog) << "the wildcard";
  EXPECT_EQ(resolvedId("a.b.example.com", "/").substr(0, 6), "error:") << "one label only";
  EXPECT_EQ(resolvedId("example.com", "/").substr(0, 6), "error:");
  EXPECT_EQ(resolvedId("preview.shop.test", "/"), shop_preview) << "the binding's alias";
  EXPECT_EQ(resolvedId("production--preview.shop.test", "/"), shop) << "an alias named in the host";
  EXPECT_EQ(resolvedId("preview--shop.example.com", "/"), shop_preview);
  EXPECT_EQ(resolvedId(shop + "--shop.example.com", "/"), shop);
  EXPECT_EQ(resolvedId("preview--x.example.com", "/").substr(0, 6), "error:") << "blog has no preview alias";
  EXPECT_EQ(resolvedId("xn--bcher-kva.example.com", "/"), other) << "punycode labels name no alias";
  auto r = router_->resolve("shop.example.com", "/css/a.css");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->path, "/css/a.css") << "the whole path is the site's";
  // The base domain still routes by app name.
  EXPECT_EQ(resolvedId("blog.localhost", "/"), blog);

  ASSERT_TRUE(store_->deleteDomain("shop.example.com").ok());
  EXPECT_EQ(resolvedId("shop.example.com", "/"), blog) << "now only the wildcard matches";
  ASSERT_TRUE(store_->deleteApp("blog").ok());
  EXPECT_EQ(resolvedId("anything.example.com", "/").substr(0, 6), "error:") << "the app took its domains";
  EXPECT_EQ(store_->listDomains("blog")->size(), 0u);
}

TEST(DeploymentSpecTest, SecretsOpenIntoTheEnvAndATamperedOneIsAClearError) {
  auto box = SecretBox::fromKeys(std::string(32, 'z'));
  store::Deployment d;
  d.id = "dspec000000000";
  d.app = "shop";
  d.runtime = "node";
  d.manifest_json = R"({"runtime": "node", "entry": "index.js", "env": {"A": "manifest", "B": "manifest"}})";
  d.env = {{"B", "app", false}, {"KEY", box->seal("hunter2-value", "shop", "KEY"), true}};
  auto spec = deploymentSpec(d, &*box);
  ASSERT_TRUE(spec.ok()) << spec.status().toString();
  EXPECT_EQ(spec->env["A"], "manifest");
  EXPECT_EQ(spec->env["B"], "app") << "the app's env over the manifest's";
  EXPECT_EQ(spec->env["KEY"], "hunter2-value");
  ASSERT_TRUE(spec->redact);
  EXPECT_EQ(*spec->redact, std::vector<std::string>{"hunter2-value"});

  // One byte of the ciphertext changed (a character in the middle: the
  // last ones also carry padding).
  std::string& sealed = d.env[1].value;
  size_t mid = sealed.size() / 2;
  sealed[mid] = sealed[mid] == 'A' ? 'B' : 'A';
  auto tampered = deploymentSpec(d, &*box);
  ASSERT_FALSE(tampered.ok());
  EXPECT_NE(tampered.status().message().find("secret KEY of app shop does not decrypt"), std::string::npos)
      << tampered.status().message();
  EXPECT_FALSE(deploymentSpec(d, nullptr).ok()) << "no key, no secrets";
}

TEST_F(RouterTest, UnknownThingsAreNotFoundWithAReason) {
  std::string a = deploy("shop");
  deploy("draft", "");
  ASSERT_TRUE(router_->start().ok());
  EXPECT_NE(resolvedId("nope.localhost", "/").find("app \"nope\" not found"), std::string::npos);
  EXPECT_NE(resolvedId("beta--shop.localhost", "/").find("no alias \"beta\""), std::string::npos);
  EXPECT_NE(resolvedId("dzzzzzzzzzzzz--shop.localhost", "/").find("not found"), std::string::npos);
  EXPECT_NE(resolvedId("draft.localhost", "/").find("no production deployment"), std::string::npos);
  EXPECT_NE(resolvedId("127.0.0.1", "/").find("no app named"), std::string::npos);
  // A deployment id of another app does not leak across apps.
  deploy("blog");
  EXPECT_NE(resolvedId(a + "--blog.localhost", "/").find("not found"), std::string::npos);
  // Deeper subdomains are not apps: they fall back to the path.
  EXPECT_EQ(resolvedId("x.shop.localhost", "/shop/"), a);
}

TEST_F(RouterTest, FollowsStoreChangesImmediately) {
  ASSERT_TRUE(router_->start().ok());
  EXPECT_NE(resolvedId("shop.localhost", "/").find("not found"), std::string::npos);
  std::string a = deploy("shop");
  EXPECT_EQ(resolvedId("shop.localhost", "/"), a);
  std::string b = deploy("shop");
  EXPECT_EQ(resolvedId("shop.localhost", "/"), b);
  ASSERT_TRUE(store_->rollbackAlias("shop", "production", "t").ok());
  EXPECT_EQ(resolvedId("shop.localhost", "/"), a);
  ASSERT_TRUE(store_->deleteApp("shop").ok());
  EXPECT_NE(resolvedId("shop.localhost", "/").find("not found"), std::string::npos);
}

// Changes the router's store did not see (written by another process)
// reach the table when the store says to resync.
TEST_F(RouterTest, AResyncReloadsWhatWasMissed) {
  ASSERT_TRUE(router_->start().ok());
  std::string first = deploy("shop");
  EXPECT_EQ(resolvedId("shop.localhost", "/"), first);
  auto other = store::SqliteMetadataStore::open(dir_.sub("m.db"), clock_);
  ASSERT_TRUE(other.ok());
  store::Deployment d;
  d.id = newDeploymentId();
  d.app = "blog";
  d.root_tree = std::string(64, 'b');
  d.manifest_json = "{}";
  d.runtime = "static";
  d.state = store::DeploymentState::kReady;
  ASSERT_TRUE((*other)->createDeployment(d, "production", "t").ok());
  EXPECT_EQ(resolvedId("blog.localhost", "/").rfind("error", 0), 0u) << "not seen yet";
  store_->announceResync();
  EXPECT_EQ(resolvedId("blog.localhost", "/"), d.id);
  EXPECT_EQ(resolvedId("shop.localhost", "/"), first);
}

TEST_F(RouterTest, OnlyReadyDeploymentsAreRouted) {
  ASSERT_TRUE(router_->start().ok());
  std::string id = deploy("shop", "", store::DeploymentState::kBuilding);
  EXPECT_NE(resolvedId(id + "--shop.localhost", "/").find("not ready"), std::string::npos);
  ASSERT_TRUE(store_->setDeploymentState(id, store::DeploymentState::kReady).ok());
  EXPECT_EQ(resolvedId(id + "--shop.localhost", "/"), id);
}

TEST_F(RouterTest, HonoursTheBaseDomain) {
  Router custom(*store_, "apps.example.com");
  std::string a = deploy("shop");
  ASSERT_TRUE(custom.start().ok());
  auto r = custom.resolve("shop.apps.example.com", "/");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->deployment->id, a);
  EXPECT_FALSE(custom.resolve("shop.localhost", "/").ok());
}

}  // namespace
}  // namespace nubo::gateway
