// Running nubo for a team, against a real `nubo serve` through the CLI:
// tokens with roles and app scopes, revoking and expiry, the audit log.
#include <gtest/gtest.h>

#include "cron/loopback_fire.h"
#include "integration_util.h"

namespace nubo::testing_util {
namespace {

class TeamTest : public SharedServerTest {
 protected:
  // `nubo tokens create ... --json` as the admin; returns the token.
  std::string createToken(std::vector<std::string> args) {
    args.insert(args.begin(), {"tokens", "create"});
    args.push_back("--json");
    ProcResult r = server_->nubo(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto j = parseJson(r.out, "tokens create");
    EXPECT_TRUE(j.ok()) << r.out;
    return j.ok() ? (*j)["token"].get<std::string>() : "";
  }
  ProcResult as(const std::string& token, const std::vector<std::string>& args) {
    return server_->nubo(args, {{"NUBO_TOKEN", token}});
  }
  std::string appDir(const std::string& name, const std::string& body) {
    std::string dir = tmp_->sub("apps/" + name + "-" + std::to_string(++dirs_));
    writeFile(dir + "/index.html", body);
    return dir;
  }
  int dirs_ = 0;
};

TEST_F(TeamTest, AViewerReadsButCannotDeploy) {
  deployApp("team-seen", {{"index.html", "v1"}});
  std::string viewer = createToken({"watcher", "--role", "viewer"});
  ProcResult d = as(viewer, {"deploy", appDir("team-seen", "v2"), "--app", "team-seen"});
  EXPECT_EQ(d.exit_code, 4) << d.out << d.err;  // permission denied
  EXPECT_NE(d.err.find("viewer"), std::string::npos) << d.err;
  EXPECT_EQ(server_->get("/team-seen/").body, "v1");
  ProcResult ls = as(viewer, {"deployments", "ls", "team-seen", "--json"});
  EXPECT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_EQ(as(viewer, {"logs", "team-seen", "-n", "5"}).exit_code, 0);
  EXPECT_EQ(as(viewer, {"ps", "--json"}).exit_code, 0);
  ProcResult rm = as(viewer, {"apps", "rm", "team-seen"});
  EXPECT_EQ(rm.exit_code, 4) << rm.err;
  ProcResult mint = as(viewer, {"tokens", "create", "sneaky", "--role", "admin"});
  EXPECT_EQ(mint.exit_code, 4) << "a viewer cannot mint itself an admin token: " << mint.err;
}

TEST_F(TeamTest, AScopedTokenSeesAndChangesOnlyItsApps) {
  deployApp("team-theirs", {{"index.html", "theirs"}});
  std::string ci = createToken({"ci-mine", "--role", "deployer", "--app", "team-mine"});
  ProcResult mine = as(ci, {"deploy", appDir("team-mine", "mine"), "--app", "team-mine"});
  ASSERT_EQ(mine.exit_code, 0) << mine.err;
  EXPECT_EQ(server_->get("/team-mine/").body, "mine");

  ProcResult apps = as(ci, {"apps", "ls", "--json"});
  ASSERT_EQ(apps.exit_code, 0) << apps.err;
  EXPECT_NE(apps.out.find("team-mine"), std::string::npos);
  EXPECT_EQ(apps.out.find("team-theirs"), std::string::npos) << "another app is not even listed: " << apps.out;

  ProcResult theirs = as(ci, {"deploy", appDir("team-theirs", "taken"), "--app", "team-theirs"});
  EXPECT_EQ(theirs.exit_code, 4) << theirs.err;
  EXPECT_NE(theirs.err.find("team-theirs"), std::string::npos) << theirs.err;
  EXPECT_EQ(server_->get("/team-theirs/").body, "theirs");
  EXPECT_EQ(as(ci, {"deployments", "ls", "team-theirs"}).exit_code, 4);
  EXPECT_EQ(as(ci, {"rollback", "team-theirs"}).exit_code, 4);
  EXPECT_EQ(as(ci, {"audit", "team-theirs"}).exit_code, 4);
  ProcResult fresh = as(ci, {"deploy", appDir("team-new", "new"), "--app", "team-new"});
  EXPECT_EQ(fresh.exit_code, 4) << "a scoped token creates no apps: " << fresh.err;

  // An unscoped deployer may create apps.
  std::string any = createToken({"ci-any", "--role", "deployer"});
  EXPECT_EQ(as(any, {"deploy", appDir("team-new", "new"), "--app", "team-new"}).exit_code, 0);
}

TEST_F(TeamTest, RevokedAndExpiredTokensAreRefused) {
  std::string gone = createToken({"short-lived", "--role", "viewer"});
  EXPECT_EQ(as(gone, {"apps", "ls"}).exit_code, 0);
  ProcResult revoke = server_->nubo({"tokens", "revoke", "short-lived"});
  ASSERT_EQ(revoke.exit_code, 0) << revoke.err;
  ProcResult after = as(gone, {"apps", "ls"});
  EXPECT_EQ(after.exit_code, 3) << after.err;  // unauthenticated
  EXPECT_NE(after.err.find("revoked"), std::string::npos) << after.err;

  std::string brief = createToken({"brief", "--role", "viewer", "--expires", "1s"});
  ProcResult expired;
  ASSERT_TRUE(waitFor([&] {
    expired = as(brief, {"apps", "ls"});
    return expired.exit_code != 0;
  }, std::chrono::seconds(5)));
  EXPECT_EQ(expired.exit_code, 3);
  EXPECT_NE(expired.err.find("brief expired"), std::string::npos) << expired.err;

  // The last admin token cannot be revoked: nobody could make another.
  ProcResult last = server_->nubo({"tokens", "revoke", "admin"});
  EXPECT_NE(last.exit_code, 0);
  EXPECT_NE(last.err.find("last admin token"), std::string::npos) << last.err;
}

TEST_F(TeamTest, TokensAreShownOnceAndStoredOnlyAsHashes) {
  std::string token = createToken({"hashed", "--role", "deployer", "--app", "team-a", "--app", "team-b",
                                   "--expires", "30d"});
  ASSERT_FALSE(token.empty());
  ProcResult ls = server_->nubo({"tokens", "ls", "--json"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_EQ(ls.out.find(token), std::string::npos);
  auto list = parseJson(ls.out, "tokens ls");
  ASSERT_TRUE(list.ok());
  bool found = false;
  for (const auto& t : *list) {
    if (t["name"] != "hashed") continue;
    found = true;
    EXPECT_EQ(t["role"], "deployer");
    EXPECT_EQ(t["apps"], Json::array({"team-a", "team-b"}));
    EXPECT_FALSE(t["expires_ms"].is_null());
  }
  EXPECT_TRUE(found) << ls.out;
  std::string db = slurp(server_->dataDir() + "/meta.db") + slurp(server_->dataDir() + "/meta.db-wal");
  EXPECT_EQ(db.find(token), std::string::npos) << "the token itself is never stored";
  EXPECT_NE(server_->nubo({"tokens", "create", "hashed", "--role", "viewer"}).exit_code, 0) << "names are unique";
  ProcResult bad = server_->nubo({"tokens", "create", "Bad Name", "--role", "viewer"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("token name"), std::string::npos) << bad.err;
}

TEST_F(TeamTest, TheAuditLogRecordsWhoMovedAnAliasAndFromWhere) {
  Json first = deployApp("team-audited", {{"index.html", "one"}});
  std::string ci = createToken({"ci-audit", "--role", "deployer", "--app", "team-audited"});
  ProcResult second = as(ci, {"deploy", appDir("team-audited", "two"), "--app", "team-audited", "--json"});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  ProcResult back = as(ci, {"rollback", "team-audited"});
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(server_->get("/team-audited/").body, "one");

  ProcResult audit = server_->nubo({"audit", "team-audited", "--json"});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  auto entries = parseJson(audit.out, "audit");
  ASSERT_TRUE(entries.ok()) << audit.out;
  ASSERT_GE(entries->size(), 3u) << audit.out;
  const Json& rollback = (*entries)[0];
  EXPECT_EQ(rollback["action"], "rollback");
  EXPECT_EQ(rollback["actor"], "ci-audit");
  EXPECT_EQ(rollback["target"], "production");
  EXPECT_EQ(rollback["detail"]["deployment"], first["deployment"]);
  EXPECT_EQ(rollback["source"], "127.0.0.1");
  EXPECT_GT(rollback["at_ms"].get<int64_t>(), 0);
  EXPECT_EQ((*entries)[1]["action"], "deploy");
  EXPECT_EQ((*entries)[1]["actor"], "ci-audit");
  EXPECT_EQ((*entries).back()["actor"], "admin");

  // Token changes are recorded too (as the admin's), and a scoped token
  // sees only its app's entries.
  ProcResult all = server_->nubo({"audit", "--json", "-n", "1000"});
  EXPECT_NE(all.out.find("\"token.create\""), std::string::npos);
  ProcResult scoped = as(ci, {"audit", "--json"});
  ASSERT_EQ(scoped.exit_code, 0) << scoped.err;
  EXPECT_EQ(scoped.out.find("token.create"), std::string::npos) << scoped.out;
  EXPECT_NE(scoped.out.find("team-audited"), std::string::npos);
}

TEST_F(TeamTest, BoundDomainsServeTheirAppsAndExactBeatsWildcard) {
  deployApp("dom-shop", {{"index.html", "shop"}});
  deployApp("dom-blog", {{"index.html", "blog"}});
  auto host = [&](const std::string& h) { return server_->get("/", {"Host: " + h}); };
  ASSERT_EQ(server_->nubo({"domains", "add", "Shop.Example.COM", "--app", "dom-shop"}).exit_code, 0);
  ProcResult wild = server_->nubo({"domains", "add", "*.example.com", "--app", "dom-blog", "--json"});
  ASSERT_EQ(wild.exit_code, 0) << wild.err;
  EXPECT_EQ(host("shop.example.com").body, "shop");
  EXPECT_EQ(host("SHOP.example.com:8443").body, "shop") << "case and port do not matter";
  EXPECT_EQ(host("news.example.com").body, "blog") << "the wildcard";
  EXPECT_EQ(host("a.news.example.com").status, 404) << "one label only";

  ProcResult taken = server_->nubo({"domains", "add", "shop.example.com", "--app", "dom-blog"});
  EXPECT_EQ(taken.exit_code, 6) << taken.err;  // conflict
  EXPECT_NE(taken.err.find("dom-shop"), std::string::npos) << "names the app it is bound to: " << taken.err;
  EXPECT_EQ(host("shop.example.com").body, "shop");

  ProcResult bad = server_->nubo({"domains", "add", "10.0.0.1", "--app", "dom-shop"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("IP address"), std::string::npos) << bad.err;
  ProcResult base = server_->nubo({"domains", "add", "dom-blog.localhost", "--app", "dom-shop"});
  EXPECT_EQ(base.exit_code, 2) << "a host under the base domain would take another app's URL: " << base.err;
  EXPECT_EQ(server_->get("/", {"Host: dom-blog.localhost"}).body, "blog");

  ProcResult ls = server_->nubo({"domains", "ls", "--json"});
  EXPECT_NE(ls.out.find("\"shop.example.com\""), std::string::npos) << ls.out;
  std::string viewer = createToken({"dom-viewer", "--role", "viewer", "--app", "dom-blog"});
  ProcResult scoped = as(viewer, {"domains", "ls", "--json"});
  ASSERT_EQ(scoped.exit_code, 0) << scoped.err;
  EXPECT_EQ(scoped.out.find("shop.example.com"), std::string::npos) << scoped.out;
  EXPECT_NE(scoped.out.find("*.example.com"), std::string::npos) << scoped.out;
  EXPECT_EQ(as(viewer, {"domains", "rm", "*.example.com"}).exit_code, 4);

  ASSERT_EQ(server_->nubo({"domains", "rm", "shop.example.com"}).exit_code, 0);
  EXPECT_EQ(host("shop.example.com").body, "blog") << "now the wildcard's";
  ProcResult audit = server_->nubo({"audit", "dom-shop", "--json"});
  EXPECT_NE(audit.out.find("domain.remove"), std::string::npos) << audit.out;
}

std::string headerOf(const cli::HttpResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

TEST_F(TeamTest, ASplitSendsTrafficByWeightAndACookieKeepsAClient) {
  Json one = deployApp("split-app", {{"index.html", "one"}});
  ProcResult two_run = server_->nubo({"deploy", appDir("split-app", "two"), "--app", "split-app", "--no-promote",
                                      "--json"});
  ASSERT_EQ(two_run.exit_code, 0) << two_run.err;
  std::string d1 = one["deployment"], d2 = (*parseJson(two_run.out, "deploy"))["deployment"];
  ProcResult set = server_->nubo({"alias", "set", "split-app", "production", d1 + "=90", d2 + "=10"});
  ASSERT_EQ(set.exit_code, 0) << set.err;

  int ones = 0, twos = 0;
  constexpr int kRequests = 2000;
  for (int i = 0; i < kRequests; ++i) {
    auto r = server_->get("/split-app/");
    ASSERT_EQ(r.status, 200);
    std::string served = headerOf(r, "x-nubo-deployment");
    if (r.body == "one") {
      ++ones;
      EXPECT_EQ(served, d1);
    } else {
      ++twos;
      EXPECT_EQ(served, d2);
    }
    if (i == 0) {
      EXPECT_NE(headerOf(r, "set-cookie").find("HttpOnly"), std::string::npos);
    }
  }
  double share = 100.0 * ones / kRequests;
  EXPECT_NEAR(share, 90.0, 3.0) << ones << " of " << kRequests << " to the 90% deployment";

  // A client that sends the cookie back stays on one deployment.
  for (int client = 0; client < 5; ++client) {
    auto first = server_->get("/split-app/");
    std::string cookie = headerOf(first, "set-cookie");
    cookie = cookie.substr(0, cookie.find(';'));
    ASSERT_FALSE(cookie.empty());
    for (int i = 0; i < 100; ++i) {
      auto r = server_->get("/split-app/", {"Cookie: other=1; " + cookie});
      ASSERT_EQ(r.body, first.body) << "request " << i << " of client " << client;
      EXPECT_EQ(headerOf(r, "set-cookie"), "") << "nothing new to keep";
    }
  }
  // A cookie naming a deployment outside the split is ignored; a pin picks one.
  EXPECT_EQ(server_->get("/split-app/", {"Cookie: nubo-split-production--split-app=dforged000000"}).status, 200);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(server_->get("/split-app/", {"X-Nubo-Pin: " + d2}).body, "two");

  ProcResult ls = server_->nubo({"alias", "ls", "split-app", "--json"});
  EXPECT_NE(ls.out.find("\"weight\": 10"), std::string::npos) << ls.out;

  // A canary: 10% to a third deployment, the rest keeping its proportions.
  ProcResult three_run = server_->nubo({"deploy", appDir("split-app", "three"), "--app", "split-app",
                                        "--no-promote", "--json"});
  ASSERT_EQ(three_run.exit_code, 0) << three_run.err;
  std::string d3 = (*parseJson(three_run.out, "deploy"))["deployment"];
  ProcResult canary = server_->nubo({"promote", "split-app", d3, "--percent", "10"});
  ASSERT_EQ(canary.exit_code, 0) << canary.err;
  EXPECT_NE(canary.out.find(d1 + " (81%)"), std::string::npos) << canary.out;
  EXPECT_NE(canary.out.find(d2 + " (9%)"), std::string::npos) << canary.out;
  EXPECT_NE(canary.out.find(d3 + " (10%)"), std::string::npos) << canary.out;
  // Rollback restores the split before it exactly.
  ProcResult back = server_->nubo({"rollback", "split-app"});
  ASSERT_EQ(back.exit_code, 0) << back.err;
  auto aliases = parseJson(server_->nubo({"alias", "ls", "split-app", "--json"}).out, "aliases");
  ASSERT_TRUE(aliases.ok());
  EXPECT_EQ((*aliases)[0]["split"], Json::parse("[{\"deployment\":\"" + d1 + "\",\"weight\":90},"
                                                "{\"deployment\":\"" + d2 + "\",\"weight\":10}]"));
  // 100%: the split ends and no cookie is set.
  ASSERT_EQ(server_->nubo({"promote", "split-app", d2}).exit_code, 0);
  auto r = server_->get("/split-app/");
  EXPECT_EQ(r.body, "two");
  EXPECT_EQ(headerOf(r, "set-cookie"), "");
  ProcResult bad = server_->nubo({"alias", "set", "split-app", "production", d1 + "=90", d2 + "=20"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("sum to 110"), std::string::npos) << bad.err;
}

TEST_F(TeamTest, CronSchedulesAreListedAndOnlyTheServerMaySendXNuboCron) {
  std::string dir = tmp_->sub("apps/cron-app");
  writeFile(dir + "/nubo.json", R"({"cron": [{"schedule": "*/5 * * * *", "path": "/tasks/sweep"},
                                              {"schedule": "@daily", "path": "/tasks/report"}]})");
  writeFile(dir + "/index.js", R"(export default {
  fetch(request) { return new Response('cron:' + (request.headers.get('x-nubo-cron') || 'none') +
                                       ' key:' + (request.headers.get('x-nubo-cron-key') || 'none')); }
})");
  Json d = server_->deploy(dir, {"--app", "cron-app"});
  ProcResult ls = server_->nubo({"cron", "ls", "cron-app", "--json"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  auto list = parseJson(ls.out, "cron ls");
  ASSERT_TRUE(list.ok()) << ls.out;
  ASSERT_EQ(list->size(), 2u) << ls.out;
  EXPECT_EQ((*list)[0]["schedule"], "*/5 * * * *");
  EXPECT_EQ((*list)[0]["deployment"], d["deployment"]);
  int64_t next = (*list)[0]["next_ms"].get<int64_t>();
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_GT(next, now - 1000);
  EXPECT_LE(next, now + 5 * 60'000);
  EXPECT_EQ(next % (5 * 60'000), 0);
  EXPECT_TRUE((*list)[0]["last_run"].is_null());
  ProcResult table = server_->nubo({"cron", "ls", "cron-app"});
  EXPECT_NE(table.out.find("/tasks/report"), std::string::npos) << table.out;

  // A client cannot make a request look like the server's cron.
  auto forged = server_->get("/cron-app/tasks/sweep", {"X-Nubo-Cron: */5 * * * *", "X-Nubo-Cron-Key: guess"});
  EXPECT_EQ(forged.body, "cron:none key:none");
  // The server's way of firing, with a key that is not the server's: the
  // request is served, without X-Nubo-Cron.
  std::atomic<bool> cancel{false};
  cron::CronRun run{"cron-app", d["deployment"], "*/5 * * * *", "/tasks/sweep", 0};
  cron::CronResult r = cron::loopbackFire(server_->dataUrl(), "not-the-key", 10)(run, cancel);
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.request_id.size(), 16u);
  // A manifest with a bad schedule is refused naming it.
  writeFile(dir + "/nubo.json", R"({"cron": [{"schedule": "*/5 * * *", "path": "/x"}]})");
  ProcResult bad = server_->nubo({"deploy", dir, "--app", "cron-app"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("five fields"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace nubo::testing_util
