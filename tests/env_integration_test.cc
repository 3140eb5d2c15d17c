// Env vars and encrypted secrets against a real `nubo serve`: snapshotted per
// deployment, served to functions, never shown, stored, built with or
// logged in the clear; redeployed without a build; surviving key rotation.
#include <gtest/gtest.h>

#include "integration_util.h"

namespace nubo::testing_util {
namespace {

constexpr const char* kSecret = "s3cr3t-Pa55word-0xC0FFEE";

class EnvTest : public testing::Test {
 protected:
  void SetUp() override {
    ::mkdir(tmp_.sub("keys").c_str(), 0700);
    server_ = std::make_unique<NuboServer>(tmp_, std::vector<std::string>{"--secret-key-file", tmp_.sub("keys/s.key")});
    app_ = tmp_.sub("envapp");
    writeFile(app_ + "/nubo.json", R"({"env": {"GREETING": "from the manifest"}})");
    writeFile(app_ + "/index.js", R"(export default {
  fetch(request, env) {
    console.log('connecting with ' + process.env.DB_PASS);
    return new Response(`${process.env.GREETING}|${process.env.DB_PASS}|${env.DB_PASS}`);
  }
})");
  }
  std::string served() { return server_->get("/envapp/").body; }
  Json deploymentOf(const ProcResult& r) {
    auto j = parseJson(r.out, "output");
    EXPECT_TRUE(j.ok()) << r.out << r.err;
    return j.ok() ? *j : Json::object();
  }

  TempDir tmp_;
  std::unique_ptr<NuboServer> server_;
  std::string app_;
};

TEST_F(EnvTest, SecretsAreServedSnapshottedAndNeverShown) {
  Json first = server_->deploy(app_, {"--app", "envapp"});
  EXPECT_EQ(served(), "from the manifest|undefined|undefined");

  // Setting env never changes a running deployment...
  ProcResult plain = server_->nubo({"env", "set", "envapp", "GREETING=from the app"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(served(), "from the manifest|undefined|undefined");
  // ...a redeploy with it does, without a build.
  ProcResult secret = server_->nubo({"env", "set", "envapp", std::string("DB_PASS=") + kSecret, "--secret",
                                     "--redeploy", "--json"});
  ASSERT_EQ(secret.exit_code, 0) << secret.err;
  Json redeployed = deploymentOf(secret);
  EXPECT_EQ(redeployed["state"], "READY") << secret.out;
  EXPECT_EQ(redeployed["redeployed_from"], first["deployment"]);
  EXPECT_EQ(served(), std::string("from the app|") + kSecret + "|" + kSecret);
  EXPECT_EQ(secret.out.find(kSecret), std::string::npos);

  // Never shown: not by the API, not in the store, not in the logs.
  ProcResult ls = server_->nubo({"env", "ls", "envapp", "--json"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_EQ(ls.out.find(kSecret), std::string::npos);
  EXPECT_NE(ls.out.find("\"DB_PASS\""), std::string::npos);
  EXPECT_NE(ls.out.find("from the app"), std::string::npos) << "plain values are shown";
  for (const std::string& path : {"/v1/deployments/" + redeployed["id"].get<std::string>(),
                                  std::string("/v1/apps/envapp/deployments"), std::string("/v1/audit"),
                                  std::string("/v1/apps/envapp/env")}) {
    auto r = server_->control("GET", path);
    EXPECT_EQ(r.status, 200) << path;
    EXPECT_EQ(r.body.find(kSecret), std::string::npos) << path;
  }
  std::string db = slurp(server_->dataDir() + "/meta.db") + slurp(server_->dataDir() + "/meta.db-wal");
  EXPECT_EQ(db.find(kSecret), std::string::npos) << "stored only sealed";
  EXPECT_NE(db.find("nubo-secret-v1:"), std::string::npos);
  ProcResult logs;
  ASSERT_TRUE(waitFor([&] {
    logs = server_->nubo({"logs", "envapp"});
    return logs.out.find("connecting with") != std::string::npos;
  }));
  EXPECT_EQ(logs.out.find(kSecret), std::string::npos) << logs.out;
  EXPECT_NE(logs.out.find("connecting with [secret]"), std::string::npos) << logs.out;

  // Rollback serves the deployment before, with its env.
  ASSERT_EQ(server_->nubo({"rollback", "envapp"}).exit_code, 0);
  EXPECT_EQ(served(), "from the manifest|undefined|undefined");
  ASSERT_EQ(server_->nubo({"promote", "envapp", redeployed["id"]}).exit_code, 0);

  // An alias's own value wins for deployments to that alias.
  ASSERT_EQ(server_->nubo({"env", "set", "envapp", "GREETING=preview", "--alias", "preview"}).exit_code, 0);
  server_->deploy(app_, {"--app", "envapp", "--alias", "preview"});
  EXPECT_EQ(server_->get("/preview--envapp/").body, std::string("preview|") + kSecret + "|" + kSecret);
  EXPECT_EQ(served(), std::string("from the app|") + kSecret + "|" + kSecret);

  // Rotating the key re-encrypts everything; the secret still serves.
  std::string key_before = slurp(tmp_.sub("keys/s.key"));
  ASSERT_EQ(server_->stop(), 0);
  server_ = std::make_unique<NuboServer>(
      tmp_, std::vector<std::string>{"--secret-key-file", tmp_.sub("keys/s.key"), "--rotate-secret-key"});
  EXPECT_NE(slurp(tmp_.sub("keys/s.key")), key_before);
  EXPECT_EQ(server_->log().find("error"), std::string::npos) << server_->log();
  EXPECT_EQ(served(), std::string("from the app|") + kSecret + "|" + kSecret);
  db = slurp(server_->dataDir() + "/meta.db") + slurp(server_->dataDir() + "/meta.db-wal");
  EXPECT_EQ(db.find(kSecret), std::string::npos);

  // A rotation cut off after the next key was written (the state a crash
  // leaves): the next start finishes it, and the secret still serves.
  ASSERT_EQ(server_->stop(), 0);
  std::string next_key(32, '\x5a');
  ASSERT_TRUE(writeFileAtomic(tmp_.sub("keys/s.key.next"), next_key, 0600).ok());
  server_ = std::make_unique<NuboServer>(tmp_, std::vector<std::string>{"--secret-key-file", tmp_.sub("keys/s.key")});
  EXPECT_EQ(slurp(tmp_.sub("keys/s.key")), next_key);
  EXPECT_FALSE(std::filesystem::exists(tmp_.sub("keys/s.key.next")));
  EXPECT_EQ(served(), std::string("from the app|") + kSecret + "|" + kSecret);
}

TEST_F(EnvTest, BadEnvInputIsRefusedByName) {
  server_->deploy(app_, {"--app", "envapp"});
  ProcResult bad = server_->nubo({"env", "set", "envapp", "1BAD=x"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("1BAD"), std::string::npos) << bad.err;
  ProcResult reserved = server_->nubo({"env", "set", "envapp", "NUBO_FD=4"});
  EXPECT_EQ(reserved.exit_code, 2);
  EXPECT_NE(reserved.err.find("reserved"), std::string::npos) << reserved.err;
  ProcResult big = server_->nubo({"env", "set", "envapp", "BIG=" + std::string(40000, 'x')});
  EXPECT_EQ(big.exit_code, 2);
  EXPECT_NE(big.err.find("32 KiB"), std::string::npos) << big.err;
  // Each deployment copies its env: an app's env is bounded in all.
  std::vector<std::string> five = {"env", "set", "envapp"};
  for (int i = 0; i < 5; ++i) five.push_back("BULK_" + std::to_string(i) + "=" + std::string(30000, 'x'));
  ProcResult bulk = server_->nubo(five);
  EXPECT_EQ(bulk.exit_code, 7) << bulk.err;  // resource exhausted
  EXPECT_NE(bulk.err.find("128 KiB"), std::string::npos) << bulk.err;
  EXPECT_EQ(server_->nubo({"env", "ls", "envapp", "--json"}).out.find("BULK_"), std::string::npos)
      << "nothing of it was set";
  ProcResult none = server_->nubo({"env", "set", "no-such-app", "A=1"});
  EXPECT_EQ(none.exit_code, 5) << none.err;
  ProcResult rm = server_->nubo({"env", "rm", "envapp", "NOT_SET"});
  EXPECT_EQ(rm.exit_code, 5) << rm.err;
  std::string viewer;
  {
    ProcResult t = server_->nubo({"tokens", "create", "env-viewer", "--role", "viewer", "--json"});
    viewer = (*parseJson(t.out, "token"))["token"];
  }
  ProcResult denied = server_->nubo({"env", "set", "envapp", "A=1"}, {{"NUBO_TOKEN", viewer}});
  EXPECT_EQ(denied.exit_code, 4) << denied.err;
}

TEST_F(EnvTest, BuildsNeverSeeTheAppsEnvOrSecrets) {
  std::string dir = tmp_.sub("envbuild");
  writeFile(dir + "/nubo.json", R"({"runtime": "static",
      "build": {"command": "mkdir -p out && env > out/env.txt", "output": "out"}})");
  server_->deploy(dir, {"--app", "envbuild"});
  ASSERT_EQ(server_->nubo({"env", "set", "envbuild", std::string("BUILD_SECRET=") + kSecret, "--secret"}).exit_code, 0);
  ASSERT_EQ(server_->nubo({"env", "set", "envbuild", "PLAIN_VALUE=visible-to-functions"}).exit_code, 0);
  server_->deploy(dir, {"--app", "envbuild"});
  std::string env = server_->get("/envbuild/env.txt").body;
  EXPECT_NE(env.find("PATH="), std::string::npos) << env;
  EXPECT_EQ(env.find(kSecret), std::string::npos) << env;
  EXPECT_EQ(env.find("BUILD_SECRET"), std::string::npos) << env;
  EXPECT_EQ(env.find("visible-to-functions"), std::string::npos) << env;
}

}  // namespace
}  // namespace nubo::testing_util
