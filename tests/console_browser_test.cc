// The web console in a real browser: each test runs one scenario of
// console/test/console.test.mjs (Debian's chromium, driven by
// puppeteer-core) against the real server this suite starts and fills:
// an app with two READY deployments (the first in production), an app with
// traffic (some of it 5xx, one line with a needle), an app to redeploy, and
// a viewer token.
#include "integration_util.h"

namespace nubo::testing_util {
namespace {

class ConsoleBrowserTest : public SharedServerTest {
 protected:
  static void SetUpTestSuite() {
    SharedServerTest::SetUpTestSuite();
    auto deploy = [](const std::string& app, const std::string& body, std::vector<std::string> extra) {
      std::string dir = tmp_->sub("apps/" + app + std::to_string(extra.size()));
      writeFile(dir + "/index.js", body);
      extra.insert(extra.begin(), {"--app", app});
      return server_->deploy(dir, extra)["deployment"].get<std::string>();
    };
    d1_ = deploy("shop", "export default { fetch() { return new Response('one'); } }", {});
    d2_ = deploy("shop", "export default { fetch() { return new Response('two'); } }", {"--no-promote"});
    rebuilt_ = deploy("rebuilt", "export default { fetch() { return new Response('again'); } }", {});
    deploy("busy", R"(export default { fetch(req) {
        const p = new URL(req.url).pathname;
        if (p === '/needle') console.log('found the NEEDLE here');
        else console.log('served ' + p);
        return new Response('x', { status: p === '/fail' ? 503 : 200 });
      } })",
           {});
    for (int i = 0; i < 20; ++i) server_->get("/busy/");
    for (int i = 0; i < 3; ++i) server_->get("/busy/fail");
    server_->get("/busy/needle");
    ProcResult viewer = server_->nubo({"tokens", "create", "browser-viewer", "--role", "viewer"});
    ASSERT_EQ(viewer.exit_code, 0) << viewer.err;
    viewer_ = viewer.out.substr(0, viewer.out.find('\n'));
  }

  // Runs a scenario; its output on failure.
  void scenario(const std::string& name, std::map<std::string, std::string> extra = {}) {
    std::map<std::string, std::string> env = {
        {"CONTROL_URL", server_->controlUrl()}, {"DATA_URL", server_->dataUrl()}, {"ADMIN_TOKEN", server_->token()},
        {"VIEWER_TOKEN", viewer_}, {"APP", "shop"}, {"D1", d1_}, {"D2", d2_}, {"BUSY_APP", "busy"},
        {"REBUILD_APP", "rebuilt"}, {"REBUILD_D", rebuilt_}};
    if (const char* dir = std::getenv("NUBO_SCREENSHOTS")) env["SCREENSHOTS"] = dir;
    env.merge(extra);
    ProcResult r = runProcess({"/usr/bin/timeout", "180", "/usr/bin/env", "node",
                               std::string(NUBO_SOURCE_DIR) + "/console/test/console.test.mjs", name},
                              env, tmp_->path());
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    last_out_ = r.out;
  }

  static inline std::string d1_, d2_, rebuilt_, viewer_;
  std::string last_out_;
};

TEST_F(ConsoleBrowserTest, SignsInWithAnHttpOnlyCookieAndListsTheApps) { scenario("signs-in-and-lists-apps"); }

TEST_F(ConsoleBrowserTest, PromoteAndRollbackFromTheConsoleMoveProductionOverHttp) {
  scenario("promotes-and-rolls-back");
}

TEST_F(ConsoleBrowserTest, ABuildLogStreamsInUntilReady) { scenario("streams-a-build-log"); }

TEST_F(ConsoleBrowserTest, LogsFilterByStatusAndText) { scenario("filters-logs"); }

TEST_F(ConsoleBrowserTest, TheTrafficChartsHaveData) { scenario("charts-traffic"); }

TEST_F(ConsoleBrowserTest, AViewerCannotPromote) { scenario("viewer-cannot-change"); }

TEST_F(ConsoleBrowserTest, ABadTokenShowsTheApisMessage) { scenario("shows-a-bad-token"); }

TEST_F(ConsoleBrowserTest, ThePagesFitAPhone) { scenario("phone-width"); }

}  // namespace
}  // namespace nubo::testing_util
