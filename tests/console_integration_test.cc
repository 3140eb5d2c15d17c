// The web console's session against the real server: signing in keeps the
// token in an HttpOnly, SameSite=Strict cookie; a change made with it needs
// the console's header and its own origin; the gateway never hands the
// cookie to a function.
#include "integration_util.h"

namespace nubo::testing_util {
namespace {

class ConsoleSessionTest : public SharedServerTest {
 protected:
  // A request with only the console's cookie (no Authorization header).
  cli::HttpResponse withCookie(std::string_view method, const std::string& path, const std::string& cookie,
                               std::vector<std::string> headers = {}, std::string_view body = {}) {
    cli::HttpClient c(server_->controlUrl(), "");
    headers.push_back("Cookie: " + cookie);
    auto r = c.send(method, path, body, headers);
    EXPECT_TRUE(r.ok()) << r.status().toString();
    return r.ok() ? *r : cli::HttpResponse{};
  }
  std::string signIn(const std::string& token) {
    cli::HttpClient c(server_->controlUrl(), "");
    auto r = c.send("POST", "/v1/session", Json{{"token", token}}.dump(), {"X-Nubo-Console: 1"});
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r->status, 200) << r->body;
    std::string set = r->header("set-cookie");
    EXPECT_NE(set.find("HttpOnly"), std::string::npos) << set;
    EXPECT_NE(set.find("SameSite=Strict"), std::string::npos) << set;
    return set.substr(0, set.find(';'));
  }
};

TEST_F(ConsoleSessionTest, SigningInKeepsTheTokenInAnHttpOnlyCookieThatReadsButChangesOnlyWithTheHeader) {
  deployApp("consoled", {{"index.html", "hi"}});
  cli::HttpClient anon(server_->controlUrl(), "");
  auto bad = anon.send("POST", "/v1/session", Json{{"token", "nope"}}.dump(), {"X-Nubo-Console: 1"});
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->status, 401);
  EXPECT_EQ(bad->header("set-cookie"), "");
  // Signing in needs the console's header too: another site's form cannot
  // sign a browser in with a token of its choosing.
  auto forged_in = anon.send("POST", "/v1/session", Json{{"token", server_->token()}}.dump());
  ASSERT_TRUE(forged_in.ok());
  EXPECT_EQ(forged_in->status, 403) << forged_in->body;
  EXPECT_EQ(forged_in->header("set-cookie"), "");
  std::string cookie = signIn(server_->token());
  EXPECT_EQ(cookie, "nubo_console=" + server_->token());
  EXPECT_EQ(withCookie("GET", "/v1/apps", cookie).status, 200);
  EXPECT_EQ(withCookie("GET", "/v1/whoami", cookie).status, 200);
  // A change without the header (what a form on another site could send) is refused.
  ProcResult set = server_->nubo({"env", "set", "consoled", "K=v"});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  auto forged = withCookie("DELETE", "/v1/apps/consoled/env/K", cookie);
  EXPECT_EQ(forged.status, 403) << forged.body;
  EXPECT_NE(forged.body.find("X-Nubo-Console"), std::string::npos) << forged.body;
  // With it, from another origin: refused too.
  auto elsewhere =
      withCookie("DELETE", "/v1/apps/consoled/env/K", cookie, {"X-Nubo-Console: 1", "Origin: http://evil.example"});
  EXPECT_EQ(elsewhere.status, 403) << elsewhere.body;
  // From the console itself: done.
  std::string host = server_->controlUrl().substr(std::string("http://").size());
  auto ok = withCookie("DELETE", "/v1/apps/consoled/env/K", cookie, {"X-Nubo-Console: 1", "Origin: http://" + host});
  EXPECT_EQ(ok.status, 200) << ok.body;
  // A bad cookie is refused like a bad token.
  EXPECT_EQ(withCookie("GET", "/v1/apps", "nubo_console=forged").status, 401);
  // Signing out clears the cookie.
  cli::HttpClient c(server_->controlUrl(), "");
  auto out = c.send("DELETE", "/v1/session");
  ASSERT_TRUE(out.ok());
  EXPECT_NE(out->header("set-cookie").find("Max-Age=0"), std::string::npos);
}

TEST_F(ConsoleSessionTest, AViewerSessionCannotChangeAnything) {
  ProcResult made = server_->nubo({"tokens", "create", "console-viewer", "--role", "viewer"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  std::string token = made.out.substr(0, made.out.find('\n'));
  std::string cookie = signIn(token);
  auto r = withCookie("POST", "/v1/tokens", cookie, {"X-Nubo-Console: 1"}, R"({"name":"x","role":"admin"})");
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_NE(r.body.find("viewer"), std::string::npos) << r.body;
}

TEST_F(ConsoleSessionTest, TheGatewayNeverHandsTheSessionCookieToAFunction) {
  deployApp("cookies", {{"index.js", R"(export default { fetch(req) {
      return new Response(req.headers.get('cookie') ?? '(none)');
    } })"}});
  auto both = server_->get("/cookies/", {"Cookie: theme=dark; nubo_console=SECRET-TOKEN; lang=en"});
  EXPECT_EQ(both.body, "theme=dark; lang=en");
  auto only = server_->get("/cookies/", {"Cookie: nubo_console=SECRET-TOKEN"});
  EXPECT_EQ(only.body, "(none)");
  auto other = server_->get("/cookies/", {"Cookie: a=1"});
  EXPECT_EQ(other.body, "a=1");
}

TEST_F(ConsoleSessionTest, AFunctionCannotSetTheSessionCookie) {
  // Cookies ignore ports: one a function set on this host would reach the
  // control port, signing the console in with the function's token.
  deployApp("fixer", {{"index.js", R"(export default { fetch() {
      const h = new Headers();
      h.append('set-cookie', 'nubo_console=ATTACKER; Path=/');
      h.append('set-cookie', 'theme=dark; Path=/');
      return new Response('ok', { headers: h });
    } })"}});
  auto r = server_->get("/fixer/");
  EXPECT_EQ(r.status, 200);
  std::string cookies;
  for (const auto& [name, value] : r.headers) {
    if (name == "set-cookie") cookies += value + "\n";
  }
  EXPECT_EQ(cookies.find("nubo_console"), std::string::npos) << cookies;
  EXPECT_NE(cookies.find("theme=dark"), std::string::npos) << cookies;
}

}  // namespace
}  // namespace nubo::testing_util
