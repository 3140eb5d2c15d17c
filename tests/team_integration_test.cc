// Running nubo for a team, against a real `nubo serve` through the CLI:
// tokens with roles and app scopes, revoking and expiry, the audit log.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace nubo::testing_util
