// End to end: the real `nubo serve` and `nubo deploy` on loopback.
#include <gtest/gtest.h>

#include "common/sha256.h"
#include "integration_util.h"

namespace nubo::testing_util {
namespace {

class DeployTest : public testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<NuboServer>(tmp_);
    site_ = tmp_.sub("site");
    writeFile(site_ + "/index.html", "<h1>home v1</h1>\n");
    writeFile(site_ + "/about/index.html", "<h1>about</h1>\n");
    writeFile(site_ + "/css/site.css", "body { color: red }\n");
    writeFile(site_ + "/data/numbers.txt", "0123456789abcdefghij");
    writeFile(site_ + "/nubo.json", R"({"name": "shop", "runtime": "static"})");
  }

  TempDir tmp_;
  std::unique_ptr<NuboServer> server_;
  std::string site_;
};

TEST_F(DeployTest, DeployedSiteServesByPathAndByHost) {
  Json d = server_->deploy(site_);
  EXPECT_EQ(d["app"], "shop");
  EXPECT_EQ(d["state"], "READY");
  EXPECT_EQ(d["files"], 5);
  EXPECT_EQ(d["uploaded_files"], 5);
  std::string id = d["deployment"];
  EXPECT_NE(d["url"].get<std::string>().find(id + "--shop.localhost"), std::string::npos);
  EXPECT_NE(d["production_url"].get<std::string>().find("://shop.localhost:"), std::string::npos);

  auto r = server_->get("/shop/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "<h1>home v1</h1>\n");
  EXPECT_EQ(r.header("content-type"), "text/html; charset=utf-8");
  EXPECT_EQ(r.header("x-nubo-deployment"), id);

  r = server_->get("/css/site.css", {"Host: shop.localhost"});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "body { color: red }\n");
  EXPECT_EQ(r.header("content-type"), "text/css; charset=utf-8");

  r = server_->get("/about/", {"Host: production--shop.localhost"});
  EXPECT_EQ(r.body, "<h1>about</h1>\n");
  r = server_->get("/", {"Host: " + id + "--shop.localhost"});
  EXPECT_EQ(r.body, "<h1>home v1</h1>\n");
  EXPECT_NE(r.header("cache-control").find("immutable"), std::string::npos);

  // Directory without its slash redirects, so relative links work.
  r = server_->get("/shop/about");
  EXPECT_EQ(r.status, 308);
  EXPECT_EQ(r.header("location"), "/shop/about/");
  r = server_->get("/shop");
  EXPECT_EQ(r.status, 308);
  EXPECT_EQ(r.header("location"), "/shop/");

  // HEAD: headers with the length, no body.
  r = server_->get("/shop/css/site.css", {}, "HEAD");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-length"), "20");
  EXPECT_EQ(r.body, "");
}

TEST_F(DeployTest, UnknownThingsAre404WithAMessage) {
  server_->deploy(site_);
  auto r = server_->get("/shop/missing.html");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("/missing.html"), std::string::npos) << r.body;
  r = server_->get("/nope/");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("app \"nope\" not found"), std::string::npos) << r.body;
  r = server_->get("/", {"Host: staging--shop.localhost"});
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("no alias \"staging\""), std::string::npos) << r.body;
  r = server_->get("/shop/", {}, "POST");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.header("allow"), "GET, HEAD");
  EXPECT_EQ(server_->get("/_nubo/healthz").status, 200);
}

TEST_F(DeployTest, EtagAndIfNoneMatchGive304) {
  server_->deploy(site_);
  auto r = server_->get("/shop/css/site.css");
  std::string etag = r.header("etag");
  EXPECT_EQ(etag, "\"" + sha256Hex("body { color: red }\n") + "\"");
  r = server_->get("/shop/css/site.css", {"If-None-Match: " + etag});
  EXPECT_EQ(r.status, 304);
  EXPECT_EQ(r.body, "");
  r = server_->get("/shop/css/site.css", {"If-None-Match: \"other\""});
  EXPECT_EQ(r.status, 200);
}

TEST_F(DeployTest, SingleRangesGive206AndBadOnes416) {
  server_->deploy(site_);
  auto r = server_->get("/shop/data/numbers.txt", {"Range: bytes=2-5"});
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, "2345");
  EXPECT_EQ(r.header("content-range"), "bytes 2-5/20");
  r = server_->get("/shop/data/numbers.txt", {"Range: bytes=-3"});
  EXPECT_EQ(r.body, "hij");
  r = server_->get("/shop/data/numbers.txt", {"Range: bytes=15-"});
  EXPECT_EQ(r.body, "fghij");
  r = server_->get("/shop/data/numbers.txt", {"Range: bytes=50-60"});
  EXPECT_EQ(r.status, 416);
  EXPECT_EQ(r.header("content-range"), "bytes */20");
  r = server_->get("/shop/data/numbers.txt", {"Range: bytes=0-1,5-6"});
  EXPECT_EQ(r.status, 200);  // several ranges: the whole file
  r = server_->get("/shop/data/numbers.txt", {"Range: bytes=0-1", "If-Range: \"stale\""});
  EXPECT_EQ(r.status, 200);
}

TEST_F(DeployTest, BigFilesStreamFromDiskWithRanges) {
  std::string big(3 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>('a' + (i / 4096) % 26);
  writeFile(site_ + "/big.bin", big);
  server_->deploy(site_);
  auto r = server_->get("/shop/big.bin");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), big.size());
  EXPECT_TRUE(r.body == big);
  r = server_->get("/shop/big.bin", {"Range: bytes=4096-8195"});
  EXPECT_EQ(r.status, 206);
  EXPECT_TRUE(r.body == big.substr(4096, 4100));
}

TEST_F(DeployTest, RedeployUploadsOnlyTheChangedFileAndOldUrlsKeepServing) {
  Json first = server_->deploy(site_);
  Json same = server_->deploy(site_);
  EXPECT_EQ(same["uploaded_files"], 0);
  EXPECT_EQ(same["uploaded_bytes"], 0);

  writeFile(site_ + "/index.html", "<h1>home v2</h1>\n");
  Json second = server_->deploy(site_);
  EXPECT_EQ(second["uploaded_files"], 1);
  EXPECT_EQ(second["files"], 5);
  EXPECT_NE(first["deployment"], second["deployment"]);

  EXPECT_EQ(server_->get("/shop/").body, "<h1>home v2</h1>\n");
  std::string old_host = "Host: " + first["deployment"].get<std::string>() + "--shop.localhost";
  EXPECT_EQ(server_->get("/", {old_host}).body, "<h1>home v1</h1>\n");
  std::string old_path = "/" + first["deployment"].get<std::string>() + "--shop/";
  EXPECT_EQ(server_->get(old_path).body, "<h1>home v1</h1>\n");
}

TEST_F(DeployTest, PromoteAndRollbackFlipProduction) {
  std::string a = server_->deploy(site_)["deployment"];
  writeFile(site_ + "/index.html", "<h1>home v2</h1>\n");
  std::string b = server_->deploy(site_, {"--no-promote"})["deployment"];
  EXPECT_EQ(server_->get("/shop/").body, "<h1>home v1</h1>\n");  // not promoted

  ProcResult r = server_->nubo({"promote", "shop", b});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server_->get("/shop/").body, "<h1>home v2</h1>\n");

  r = server_->nubo({"rollback", "shop"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(a), std::string::npos) << r.out;
  EXPECT_EQ(server_->get("/shop/").body, "<h1>home v1</h1>\n");

  r = server_->nubo({"rollback", "shop"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("no earlier deployment"), std::string::npos) << r.err;

  r = server_->nubo({"alias", "set", "shop", "staging", b});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server_->get("/", {"Host: staging--shop.localhost"}).body, "<h1>home v2</h1>\n");
  r = server_->nubo({"alias", "ls", "shop", "--json"});
  auto aliases = parseJson(r.out, "aliases");
  ASSERT_TRUE(aliases.ok()) << r.out;
  EXPECT_EQ(aliases->size(), 2u);

  r = server_->nubo({"deployments", "ls", "shop"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find(a), std::string::npos);
  EXPECT_NE(r.out.find(b), std::string::npos);

  r = server_->nubo({"promote", "shop", "dnotarealid00"});
  EXPECT_EQ(r.exit_code, exitCodeFor(Code::kNotFound));
  EXPECT_NE(r.err.find("dnotarealid00"), std::string::npos);
}

TEST_F(DeployTest, AppsCanBeListedAndRemoved) {
  server_->deploy(site_);
  ProcResult r = server_->nubo({"apps", "ls"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("shop"), std::string::npos);
  r = server_->nubo({"apps", "rm", "shop"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server_->get("/shop/").status, 404);
  r = server_->nubo({"apps", "rm", "shop"});
  EXPECT_EQ(r.exit_code, exitCodeFor(Code::kNotFound));
}

TEST_F(DeployTest, BadTokenIs401) {
  ProcResult r = server_->nubo({"deploy", site_}, {{"NUBO_TOKEN", "nubo_wrong"}});
  EXPECT_EQ(r.exit_code, exitCodeFor(Code::kUnauthenticated));
  EXPECT_NE(r.err.find("invalid token"), std::string::npos) << r.err;
  auto h = server_->control("GET", "/v1/apps", {}, "nubo_wrong");
  EXPECT_EQ(h.status, 401);
  EXPECT_NE(h.body.find("\"code\":\"unauthenticated\""), std::string::npos) << h.body;
  cli::HttpClient anon(server_->controlUrl(), "");
  EXPECT_EQ(anon.send("GET", "/v1/apps")->status, 401);
}

TEST_F(DeployTest, BlobWithWrongHashIs400AndNotStored) {
  std::string h = sha256Hex("real");
  auto r = server_->control("PUT", "/v1/blobs/" + h, "fake");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("nothing was stored"), std::string::npos) << r.body;
  EXPECT_EQ(server_->control("HEAD", "/v1/blobs/" + h).status, 404);
  r = server_->control("PUT", "/v1/blobs/" + h, "real");
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(server_->control("HEAD", "/v1/blobs/" + h).status, 200);
}

TEST_F(DeployTest, TraversalNamesAreRejected) {
  // A tree naming "..": refused, naming the entry.
  std::string file = sha256Hex("x");
  server_->control("PUT", "/v1/blobs/" + file, "x");
  for (std::string name : {"..", "a/b", "."}) {
    std::string tree = "nubo-tree 1\nfile " + file + " 1\t" + name + "\n";
    auto r = server_->control("PUT", "/v1/trees/" + sha256Hex(tree), tree);
    EXPECT_EQ(r.status, 400) << name << ": " << r.body;
  }
  // A tree whose children were never uploaded: 409, and not stored.
  std::string orphan = "nubo-tree 1\nfile " + sha256Hex("never sent") + " 10\ta.txt\n";
  auto r = server_->control("PUT", "/v1/trees/" + sha256Hex(orphan), orphan);
  EXPECT_EQ(r.status, 409) << r.body;
  // A deployment whose root is not uploaded.
  r = server_->control("POST", "/v1/apps/shop/deployments", R"({"root":")" + sha256Hex(orphan) + R"("})");
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(r.body.find("not uploaded"), std::string::npos) << r.body;
  // URL paths with ".." never escape the deployment.
  server_->deploy(site_);
  EXPECT_EQ(server_->get("/shop/../shop/index.html").status, 400);
  EXPECT_EQ(server_->get("/shop/css/%2e%2e/%2e%2e/nubo.json").status, 400);
  // A symlink in the folder: the CLI names it.
  std::filesystem::create_symlink("/etc/passwd", site_ + "/passwd");
  ProcResult p = server_->nubo({"deploy", site_});
  EXPECT_NE(p.exit_code, 0);
  EXPECT_NE(p.err.find("\"passwd\" is a symbolic link"), std::string::npos) << p.err;
}

TEST_F(DeployTest, BadManifestListsEveryProblem) {
  writeFile(site_ + "/nubo.json", R"({"name": "shop", "runtime": "php", "limits": {"memory_mb": 0}, "extra": 1})");
  ProcResult r = server_->nubo({"deploy", site_});
  EXPECT_EQ(r.exit_code, exitCodeFor(Code::kInvalidArgument));
  EXPECT_NE(r.err.find("runtime:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("limits.memory_mb:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("extra:"), std::string::npos) << r.err;
  // The server checks too, whatever the client.
  auto h = server_->control("POST", "/v1/apps/shop/deployments",
                            R"({"root":")" + std::string(64, 'a') + R"(","manifest":{"runtime":"php"}})");
  EXPECT_EQ(h.status, 400);
  EXPECT_NE(h.body.find("runtime"), std::string::npos);
  h = server_->control("POST", "/v1/apps/Bad_Name/deployments", "{}");
  EXPECT_EQ(h.status, 400);
}

TEST_F(DeployTest, NuboignoreAndDotDirsAreLeftOut) {
  writeFile(site_ + "/.nuboignore", "# build leftovers\n*.log\n/secret/\n!keep.log\n");
  writeFile(site_ + "/debug.log", "noise");
  writeFile(site_ + "/keep.log", "kept");
  writeFile(site_ + "/secret/key.pem", "KEY");
  writeFile(site_ + "/.git/HEAD", "ref: refs/heads/main");
  Json d = server_->deploy(site_);
  EXPECT_EQ(d["files"], 7);  // 5 + .nuboignore + keep.log
  EXPECT_EQ(server_->get("/shop/keep.log").status, 200);
  EXPECT_EQ(server_->get("/shop/debug.log").status, 404);
  EXPECT_EQ(server_->get("/shop/secret/key.pem").status, 404);
  EXPECT_EQ(server_->get("/shop/.git/HEAD").status, 404);
}

TEST_F(DeployTest, GatewayLimitsAnswer4xx) {
  auto r = server_->get("/shop/", {"X-Big: " + std::string(20000, 'a')});
  EXPECT_EQ(r.status, 431);
  NuboServer small(tmp_, {"--max-body-mb", "1"}, "small-data");
  cli::HttpClient c(small.dataUrl(), "");
  // Just over the limit (a larger body takes longer to send than a loaded
  // machine's server waits, lingering, for it before closing).
  auto big = c.send("POST", "/shop/", std::string((1 << 20) + (64 << 10), 'b'));
  ASSERT_TRUE(big.ok()) << big.status().toString();
  EXPECT_EQ(big->status, 413);
  EXPECT_NE(big->body.find("too large"), std::string::npos);
  EXPECT_EQ(small.get("/_nubo/healthz").status, 200);  // still fine
}

TEST_F(DeployTest, SecondServerOnTheSameDataDirRefuses) {
  ProcResult r = runProcess({NUBO_BINARY, "serve", "--data", server_->dataDir(), "--listen", "127.0.0.1:0",
                             "--control", "127.0.0.1:0"},
                            {{"XDG_CONFIG_HOME", tmp_.sub("config")}}, tmp_.path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("already using the data dir"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(std::to_string(server_->pid())), std::string::npos) << r.err;
}

TEST_F(DeployTest, FirstStartWritesTokenAndClientConfig) {
  struct stat st {};
  ASSERT_EQ(::stat((server_->dataDir() + "/admin.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto cfg = parseJson(slurp(tmp_.sub("config/nubo/config.json")), "config");
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ((*cfg)["server"], server_->controlUrl());
  EXPECT_EQ((*cfg)["token"], server_->token());
  // The CLI works with only the config file.
  ProcResult r = runProcess({NUBO_BINARY, "apps", "ls"}, {{"XDG_CONFIG_HOME", tmp_.sub("config")}}, tmp_.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // Only the token's hash is stored.
  EXPECT_EQ(slurp(server_->dataDir() + "/meta.db").find(server_->token()), std::string::npos);
}

TEST_F(DeployTest, SigtermFinishesAndExitsZero) {
  server_->deploy(site_);
  EXPECT_EQ(server_->stop(SIGTERM), 0);
  EXPECT_NE(server_->log().find("nubo stopped"), std::string::npos);
}

TEST_F(DeployTest, LoginSavesConfigAfterCheckingTheToken) {
  std::map<std::string, std::string> env = {{"XDG_CONFIG_HOME", tmp_.sub("other-config")}};
  ProcResult bad = runProcess({NUBO_BINARY, "login", "--server", server_->controlUrl(), "--token", "nubo_bad"}, env,
                              tmp_.path());
  EXPECT_NE(bad.exit_code, 0);
  ProcResult ok = runProcess({NUBO_BINARY, "login", "--server", server_->controlUrl(), "--token", server_->token()},
                             env, tmp_.path());
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  ProcResult ls = runProcess({NUBO_BINARY, "apps", "ls"}, env, tmp_.path());
  EXPECT_EQ(ls.exit_code, 0) << ls.err;
}

TEST_F(DeployTest, UnreachableServerSaysSo) {
  ProcResult r = server_->nubo({"apps", "ls"}, {{"NUBO_SERVER", "http://127.0.0.1:1"}});
  EXPECT_EQ(r.exit_code, exitCodeFor(Code::kUnavailable));
  EXPECT_NE(r.err.find("cannot reach the nubo server"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace nubo::testing_util
