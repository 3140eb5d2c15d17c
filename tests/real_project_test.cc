// What a new user's existing project meets on its first deploy: how nubo
// tells a function from a site, and what a site never serves.
#include <gtest/gtest.h>

#include <filesystem>

#include "integration_util.h"

namespace nubo::testing_util {
namespace {

class RealProjectTest : public SharedServerTest {
 protected:
  ProcResult deployFolder(const std::string& name, const std::map<std::string, std::string>& files) {
    std::string dir = tmp_->sub("apps/" + name);
    for (const auto& [path, content] : files) writeFile(dir + "/" + path, content);
    return server_->nubo({"deploy", dir, "--app", name});
  }
};

// A manifest naming a JavaScript entry but no runtime was deployed as a
// static site: GET /src/server.js returned the source.
TEST_F(RealProjectTest, AnEntryOnlyManifestRunsAsAFunctionAndItsSourceIsNotServed) {
  auto r = deployFolder("entryonly", {{"nubo.json", R"({"entry": "src/server.js"})"},
                                      {"src/server.js", "module.exports = (req, res) => res.end('function ' + req.url)"}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(server_->get("/entryonly/src/server.js").body, "function /src/server.js");
  EXPECT_EQ(server_->get("/entryonly/nubo.json").body, "function /nubo.json");
}

// package.json is read whole by the server: a huge one is refused, not read.
TEST_F(RealProjectTest, AHugePackageJsonIsRefused) {
  std::string huge = R"({"name": "big", "description": ")" + std::string(2 << 20, 'x') + R"("})";
  auto r = deployFolder("bigpkg", {{"package.json", huge}, {"app.js", "x"}});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("nubo reads a package.json of up to 1 MiB"), std::string::npos) << r.err;
}

// An entry that is a command line is a server on $PORT.
TEST_F(RealProjectTest, AnEntryCommandRunsAsAServer) {
  auto r = deployFolder("entrycmd", {{"nubo.json", R"({"entry": "node server.js"})"},
                                     {"server.js", R"(require('http').createServer((q, s) => s.end('server ' + q.url))
                                                        .listen(Number(process.env.PORT), '127.0.0.1'))"}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(server_->get("/entrycmd/server.js").body, "server /server.js");
}

// A site never serves its manifest or environment files.
TEST_F(RealProjectTest, ASiteNeverServesItsManifestOrEnvFiles) {
  auto r = deployFolder("site", {{"index.html", "home"},
                                 {"nubo.json", R"({"runtime": "static"})"},
                                 {".env", "SECRET=1"},
                                 {"sub/.env.local", "SECRET=2"},
                                 {"sub/page.html", "page"}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(server_->get("/site/").body, "home");
  EXPECT_EQ(server_->get("/site/sub/page.html").body, "page");
  for (const char* hidden : {"/site/nubo.json", "/site/.env", "/site/sub/.env.local"}) {
    auto got = server_->get(hidden);
    EXPECT_EQ(got.status, 404) << hidden;
    EXPECT_EQ(got.body.find("SECRET"), std::string::npos) << hidden;
  }
}

// A folder with no index file whose package.json starts a server was
// published as files, its source included.
TEST_F(RealProjectTest, AServerWithoutARuntimeIsRefusedNamingTheFix) {
  auto r = deployFolder("koaish", {{"package.json", R"({"name": "koaish", "scripts": {"start": "node app.js"}})"},
                                   {"app.js", "require('http').createServer().listen(3000)"}});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("looks like a server"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(R"({"runtime": "exec", "entry": "npm start"})"), std::string::npos) << r.err;
  EXPECT_EQ(server_->get("/koaish/app.js").status, 404) << "nothing went live";
}

// `vite: not found`: the static builder installed nothing before running
// build.command. A local tool with a bin stands in for vite.
TEST_F(RealProjectTest, AStaticBuildHasItsDevDependencies) {
  std::map<std::string, std::string> files = {
      {"nubo.json", R"({"runtime": "static", "build": {"command": "npm run build", "output": "dist"}})"},
      {"package.json", R"({"name": "site", "version": "1.0.0", "scripts": {"build": "sitegen"},
                           "devDependencies": {"sitegen": "file:vendor/sitegen"}})"},
      {"vendor/sitegen/package.json", R"({"name": "sitegen", "version": "1.0.0", "bin": {"sitegen": "cli.js"}})"},
      {"vendor/sitegen/cli.js", "#!/usr/bin/env node\nconst fs = require('fs');\n"
                                "fs.mkdirSync('dist', { recursive: true });\n"
                                "fs.writeFileSync('dist/index.html', 'generated');\n"},
  };
  files["package-lock.json"] = lockFileFor(*tmp_, files);
  auto r = deployFolder("vitelike", files);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("npm ci"), std::string::npos) << r.out;
  EXPECT_EQ(server_->get("/vitelike/").body, "generated");
}

// `Cannot find module`: an exec server's dependencies were not installed.
TEST_F(RealProjectTest, AnExecServerWithDependenciesIsBuilt) {
  std::map<std::string, std::string> files = {
      {"nubo.json", R"({"runtime": "exec", "entry": "node server.js"})"},
      {"package.json", R"({"name": "srv", "version": "1.0.0", "dependencies": {"greet": "file:vendor/greet"}})"},
      {"vendor/greet/package.json", R"({"name": "greet", "version": "1.0.0", "main": "index.js"})"},
      {"vendor/greet/index.js", "module.exports = (n) => `hello ${n}`;\n"},
      {"server.js", R"(const greet = require('greet');
        require('http').createServer((q, s) => s.end(greet('exec'))).listen(Number(process.env.PORT), '127.0.0.1'))"},
  };
  files["package-lock.json"] = lockFileFor(*tmp_, files);
  auto r = deployFolder("execdeps", files);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(server_->get("/execdeps/").body, "hello exec");
}

const char* kEchoForwardedJs = R"(module.exports = (req, res) => {
  const h = req.headers;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ for: h['x-forwarded-for'], proto: h['x-forwarded-proto'], host: h['x-forwarded-host'],
                           prefix: h['x-forwarded-prefix'] || '', method: req.method }));
})";

int portOf(const std::string& url) { return std::stoi(url.substr(url.rfind(':') + 1)); }

// Requests reach a function as through a proper proxy: where they came
// from is the gateway's word, not the client's.
TEST_F(RealProjectTest, FunctionsGetForwardedHeadersAndClientsCannotForgeThem) {
  ASSERT_EQ(deployFolder("fwd", {{"index.js", kEchoForwardedJs}}).exit_code, 0);
  std::string host = "127.0.0.1:" + std::to_string(portOf(server_->dataUrl()));
  auto byPath = parseJson(server_->get("/fwd/x", {"X-Forwarded-For: 6.6.6.6", "X-Forwarded-Proto: https",
                                                  "X-Forwarded-Host: evil.example", "X-Forwarded-Prefix: /evil"}).body,
                          "fwd");
  ASSERT_TRUE(byPath.ok());
  EXPECT_EQ((*byPath)["for"], "127.0.0.1");
  EXPECT_EQ((*byPath)["proto"], "http");
  EXPECT_EQ((*byPath)["host"], host);
  EXPECT_EQ((*byPath)["prefix"], "/fwd");
  auto byHost = parseJson(server_->get("/x", {"Host: fwd.localhost"}).body, "fwd");
  ASSERT_TRUE(byHost.ok());
  EXPECT_EQ((*byHost)["host"], "fwd.localhost");
  EXPECT_EQ((*byHost)["prefix"], "") << "reached by host: no prefix";
}

// Behind a front proxy named in --trust-proxy, its word is kept and extended.
TEST(RealProjectTrustTest, ATrustedProxysForwardedHeadersAreKept) {
  TempDir tmp;
  NuboServer server(tmp, {"--trust-proxy", "127.0.0.1"});
  std::string dir = tmp.sub("fwd");
  writeFile(dir + "/index.js", kEchoForwardedJs);
  ASSERT_EQ(server.nubo({"deploy", dir, "--app", "fwd"}).exit_code, 0);
  auto got = parseJson(server.get("/fwd/", {"X-Forwarded-For: 203.0.113.9", "X-Forwarded-Proto: https",
                                            "X-Forwarded-Host: shop.example"}).body, "fwd");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((*got)["for"], "203.0.113.9, 127.0.0.1");
  EXPECT_EQ((*got)["proto"], "https");
  EXPECT_EQ((*got)["host"], "shop.example");
  auto bad = server.nubo({"serve", "--trust-proxy", "proxy.example"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("is not an IP address"), std::string::npos) << bad.err;
}

// HEAD answers with the GET's headers, its length included, and no body.
TEST_F(RealProjectTest, HeadToAFunctionHasTheGetsLengthAndNoBody) {
  ASSERT_EQ(deployFolder("headapp", {{"index.js", "module.exports = (req, res) => res.end('twelve bytes')"}}).exit_code, 0);
  auto get = server_->get("/headapp/");
  ASSERT_EQ(get.body, "twelve bytes");
  auto head = server_->get("/headapp/", {}, "HEAD");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("content-length"), "12");
  EXPECT_EQ(head.body, "");
}

// A local `npm install` left node_modules with .bin links, which the CLI
// refused; and its files were uploaded only for the build to throw away.
TEST_F(RealProjectTest, AnInstalledNodeModulesIsLeftBehind) {
  std::map<std::string, std::string> files = {
      {"package.json", R"({"name": "app", "version": "1.0.0", "dependencies": {"greet": "file:vendor/greet"}})"},
      {"vendor/greet/package.json", R"({"name": "greet", "version": "1.0.0", "main": "index.js"})"},
      {"vendor/greet/index.js", "module.exports = (n) => `hello ${n}`;\n"},
      {"index.js", "const greet = require('greet');\nmodule.exports = (req, res) => res.end(greet('clean'));\n"},
  };
  files["package-lock.json"] = lockFileFor(*tmp_, files);
  std::string dir = tmp_->sub("apps/installed");
  for (const auto& [path, content] : files) writeFile(dir + "/" + path, content);
  for (int i = 0; i < 50; ++i) writeFile(dir + "/node_modules/junk/f" + std::to_string(i) + ".js", "x");
  std::filesystem::create_directories(dir + "/node_modules/.bin");
  std::filesystem::create_symlink("/usr/bin/env", dir + "/node_modules/.bin/outside");
  auto said = server_->nubo({"deploy", dir, "--app", "installed"});
  ASSERT_EQ(said.exit_code, 0) << said.out << said.err;
  EXPECT_NE((said.out + said.err).find("Skipping node_modules/"), std::string::npos) << said.out << said.err;
  auto r = server_->nubo({"deploy", dir, "--app", "installed", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto j = parseJson(r.out, "deploy");
  ASSERT_TRUE(j.ok()) << r.out;
  EXPECT_EQ((*j)["files"], 5) << "package.json, lock, index.js and greet's two files";
  EXPECT_EQ(server_->get("/installed/").body, "hello clean");
}

// A link to a file inside the folder is deployed as a copy of it.
TEST_F(RealProjectTest, ALinkInsideTheFolderIsACopyOfItsTarget) {
  std::string dir = tmp_->sub("apps/linked");
  writeFile(dir + "/index.html", "home");
  writeFile(dir + "/pages/about.html", "about us");
  std::filesystem::create_symlink("pages/about.html", dir + "/about.html");
  auto r = server_->nubo({"deploy", dir, "--app", "linked"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(server_->get("/linked/about.html").body, "about us");
}

// Hono's and most current TypeScript templates say "type": "module": the
// bundle was CommonJS in a .js file, which Node then loaded as ESM
// ("module is not defined in ES module scope").
TEST_F(RealProjectTest, TypeScriptInAnEsModulePackageRunsAndTracesToTheTsLine) {
  std::map<std::string, std::string> files = {
      {"package.json", R"({"name": "honoish", "version": "1.0.0", "type": "module",
                           "dependencies": {"greet": "file:vendor/greet"}})"},
      {"vendor/greet/package.json", R"({"name": "greet", "version": "1.0.0", "main": "index.js"})"},
      {"vendor/greet/index.js", "const path = require('path');\n"
                                "module.exports = (n) => `hello ${n} from ${path.basename('/x/y')}`;\n"},
      {"index.ts", R"(import greet from 'greet';
type Out = { msg: string };
export default {
  async fetch(request: Request): Promise<Response> {
    if (new URL(request.url).searchParams.has('boom')) {
      throw new Error('typed module failure');
    }
    const out: Out = { msg: greet('esm ts') };
    return Response.json(out);
  },
};
)"}};
  files["package-lock.json"] = lockFileFor(*tmp_, files);
  auto r = deployFolder("honoish", files);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(server_->get("/honoish/").body, R"({"msg":"hello esm ts from y"})");
  EXPECT_EQ(server_->get("/honoish/?boom").status, 500);
  EXPECT_TRUE(waitFor([&] { return server_->nubo({"logs", "honoish"}).out.find("index.ts:6:") != std::string::npos; }))
      << server_->nubo({"logs", "honoish"}).out;
}

// A single-page app's client-side routes and deep links get its page; a
// missing asset stays a 404.
TEST_F(RealProjectTest, ASinglePageAppFallsBackToItsPage) {
  auto r = deployFolder("spa", {{"nubo.json", R"({"runtime": "static", "static": {"fallback": "index.html"}})"},
                                {"index.html", "the app"},
                                {"assets/app.js", "js"}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  for (const char* route : {"/spa/about", "/spa/users/42/edit"}) {
    auto got = server_->get(route);
    EXPECT_EQ(got.status, 200) << route;
    EXPECT_EQ(got.body, "the app") << route;
  }
  EXPECT_EQ(server_->get("/spa/assets/app.js").body, "js");
  EXPECT_EQ(server_->get("/spa/x.js").status, 404);
  EXPECT_EQ(server_->get("/spa/assets/missing.css").status, 404);
  auto bad = deployFolder("spabad", {{"nubo.json", R"({"runtime": "static", "static": {"fallback": "../x.html"}})"},
                                     {"index.html", "x"}});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("static.fallback: must be a file of the site"), std::string::npos) << bad.err;
}

// Koa's idiom, an entry that only calls listen(3000), failed with an
// unexplained 503 (EACCES on 0.0.0.0:3000 in the log).
TEST_F(RealProjectTest, AnEntryThatOnlyCallsListenServes) {
  auto r = deployFolder("listener", {{"app.js", R"(const http = require('http');
const server = http.createServer((req, res) => res.end('served by my own server ' + req.url));
server.listen(3000, () => console.log('listening at ' + JSON.stringify(server.address())));
)"}, {"nubo.json", R"({"entry": "app.js"})"}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(server_->get("/listener/hi").body, "served by my own server /hi");
  EXPECT_TRUE(waitFor([&] { return server_->nubo({"logs", "listener"}).out.find("listening at") != std::string::npos; }));
  // Exporting nothing and starting nothing still names what is expected.
  // A server that is not HTTP cannot be captured: the error names its port and the fix.
  auto tcp = deployFolder("tcponly", {{"index.js", "require('net').createServer((s) => s.end('x')).listen(3000);"}});
  EXPECT_NE(tcp.exit_code, 0);
  EXPECT_NE(tcp.err.find("index.js listens on port 3000 with a server that does not take HTTP requests"),
            std::string::npos) << tcp.err;
  EXPECT_NE(tcp.err.find(R"({"runtime": "exec", "entry": "node index.js"})"), std::string::npos) << tcp.err;
  auto nothing = deployFolder("nothing", {{"index.js", "const x = 1;"}});
  EXPECT_NE(nothing.exit_code, 0);
  EXPECT_NE(nothing.err.find("or start an HTTP server (app.listen(PORT))"), std::string::npos) << nothing.err;
}

// The common cases of a site's headers and redirects, validated.
TEST_F(RealProjectTest, ASiteSetsItsHeadersAndRedirects) {
  auto r = deployFolder("rules", {{"nubo.json", R"({"runtime": "static", "static": {
      "headers": {"/assets/*": {"Cache-Control": "public, max-age=31536000"}, "/": {"X-Frame-Options": "DENY"}},
      "redirects": [{"from": "/old", "to": "/new.html"}, {"from": "/docs", "to": "https://docs.example", "status": 302}]}})"},
                                  {"index.html", "home"}, {"new.html", "new"}, {"assets/a.css", "css"}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto css = server_->get("/rules/assets/a.css");
  EXPECT_EQ(css.body, "css");
  EXPECT_EQ(css.header("cache-control"), "public, max-age=31536000");
  EXPECT_EQ(server_->get("/rules/").header("x-frame-options"), "DENY");
  EXPECT_EQ(server_->get("/rules/new.html").header("x-frame-options"), "") << "only the exact path";
  auto old = server_->get("/rules/old");
  EXPECT_EQ(old.status, 308);
  EXPECT_EQ(old.header("location"), "/rules/new.html") << "inside the app under path routing";
  EXPECT_EQ(server_->get("/old", {"Host: rules.localhost"}).header("location"), "/new.html");
  auto docs = server_->get("/rules/docs");
  EXPECT_EQ(docs.status, 302);
  EXPECT_EQ(docs.header("location"), "https://docs.example");
  auto bad = deployFolder("rulesbad", {{"nubo.json", R"({"runtime": "static", "static": {
      "headers": {"assets": {"Bad Name": "x"}, "/x": {"Content-Length": "0", "Transfer-Encoding": "chunked"}},
      "redirects": [{"from": "/a", "to": "//evil.example", "status": 200}]}})"},
                                       {"index.html", "x"}});
  EXPECT_EQ(bad.exit_code, 2);
  for (const char* field : {"static.headers.assets:", "static.headers.assets.Bad Name:", "static.redirects[0].to:",
                            "static.redirects[0].status:", "static.headers./x.Content-Length: is set by the server",
                            "static.headers./x.Transfer-Encoding:"}) {
    EXPECT_NE(bad.err.find(field), std::string::npos) << field << " in " << bad.err;
  }
}

// A deploy whose code threw at load reported READY, production moved to
// it, and every request got 500.
TEST_F(RealProjectTest, CodeThatCannotStartIsFailedAndProductionIsUntouched) {
  ASSERT_EQ(deployFolder("loadfail", {{"index.js", "module.exports = (req, res) => res.end('v1')"}}).exit_code, 0);
  auto thrown = deployFolder("loadfail", {{"index.js", "const x = 1;\nthrow new Error('boom at load');\n"}});
  EXPECT_NE(thrown.exit_code, 0) << thrown.out;
  EXPECT_NE(thrown.err.find("is FAILED: it failed to start: the code failed to load: Error: boom at load"),
            std::string::npos) << thrown.err;
  EXPECT_NE(thrown.err.find("index.js:2"), std::string::npos) << "the stack's first lines: " << thrown.err;
  EXPECT_NE(thrown.err.find("production is unchanged"), std::string::npos) << thrown.err;
  EXPECT_EQ(server_->get("/loadfail/").body, "v1");
  auto list = parseJson(server_->control("GET", "/v1/apps/loadfail/deployments").body, "list");
  ASSERT_TRUE(list.ok());
  const Json& failed = (*list)["deployments"][0];
  EXPECT_EQ(failed["state"], "FAILED");
  EXPECT_NE(failed["error"].get<std::string>().find("boom at load"), std::string::npos) << failed;
  // Its URL serves nothing; the check is in its build log, what it printed in the app's log.
  std::string id = failed["id"];
  EXPECT_EQ(server_->get("/" + id + "--loadfail/").status, 404);
  EXPECT_NE(server_->nubo({"build-logs", id}).out.find("boom at load"), std::string::npos);
  // Nothing callable exported, and a redeploy of the failed one: FAILED as well.
  auto nothing = deployFolder("loadfail", {{"index.js", "module.exports = 42;\n"}});
  EXPECT_NE(nothing.exit_code, 0);
  EXPECT_NE(nothing.err.find("must export default { fetch(request, env, ctx) } or a (req, res) function"),
            std::string::npos) << nothing.err;
  auto again = server_->nubo({"redeploy", id});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("boom at load"), std::string::npos) << again.err;
  EXPECT_EQ(server_->get("/loadfail/").body, "v1");
}

TEST_F(RealProjectTest, AHealthPathMustAnswerBeforeTheDeploymentGoesLive) {
  std::string healthy = "module.exports = (req, res) => { res.statusCode = req.url === '/healthz' ? 204 : 200; "
                        "res.end(req.url === '/healthz' ? '' : 'live'); };";
  auto ok = deployFolder("health", {{"nubo.json", R"({"entry": "server.js", "health": {"path": "/healthz"}})"},
                                    {"server.js", healthy}});
  ASSERT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_EQ(server_->get("/health/").body, "live");
  auto sick = deployFolder("health", {{"server.js", "module.exports = (req, res) => { res.statusCode = "
                                                    "req.url === '/healthz' ? 500 : 200; res.end('database down\\u001b[2J'); };"}});
  EXPECT_NE(sick.exit_code, 0);
  EXPECT_NE(sick.err.find("health.path /healthz answered 500 (2xx or 3xx is healthy): database down"),
            std::string::npos) << sick.err;
  EXPECT_EQ(sick.err.find('\x1b'), std::string::npos) << "a terminal escape from the function is not printed";
  EXPECT_EQ(server_->get("/health/").body, "live");
  auto stuck = deployFolder("health", {{"nubo.json", R"({"entry": "server.js", "health": {"path": "/healthz"},
                                                         "limits": {"timeout_ms": 300}})"},
                                       {"server.js", "module.exports = (req, res) => {};"}});
  EXPECT_NE(stuck.exit_code, 0);
  EXPECT_NE(stuck.err.find("health.path /healthz did not answer within limits.timeout_ms (300 ms)"),
            std::string::npos) << stuck.err;
  EXPECT_EQ(server_->get("/health/").body, "live");
}

// Built code is checked the same way, and so is a server run by exec.
TEST_F(RealProjectTest, BuiltCodeAndExecServersAreStartedBeforeTheyGoLive) {
  ASSERT_EQ(deployFolder("builtfail", {{"index.ts", "export default { fetch: () => new Response('v1') };"}}).exit_code,
            0);
  auto built = deployFolder("builtfail", {{"index.ts", "const n: number = 1;\nif (n) throw new Error('typed boom');\n"
                                                       "export default { fetch: () => new Response('v2') };"}});
  EXPECT_NE(built.exit_code, 0);
  EXPECT_NE(built.err.find("typed boom"), std::string::npos) << built.err;
  EXPECT_NE(built.err.find("index.ts:2"), std::string::npos) << "source-mapped: " << built.err;
  EXPECT_EQ(server_->get("/builtfail/").body, "v1");
  auto exec = deployFolder("execfail", {{"nubo.json", R"({"entry": "node server.js"})"},
                                        {"server.js", "console.error('no config'); process.exit(3);"}});
  EXPECT_NE(exec.exit_code, 0);
  EXPECT_NE(exec.err.find("is FAILED: it failed to start"), std::string::npos) << exec.err;
}

// A one-line change to an app with dependencies ran npm ci again (seconds);
// with the dependencies' inputs unchanged, the last build's node_modules is
// reused. A change to a local package installs again.
TEST_F(RealProjectTest, UnchangedDependenciesAreNotInstalledAgain) {
  std::map<std::string, std::string> files = {
      {"package.json", R"({"name": "expressish", "version": "1.0.0", "main": "server.js",
                           "dependencies": {"greet": "file:vendor/greet"}})"},
      {"vendor/greet/package.json", R"({"name": "greet", "version": "1.0.0", "main": "index.js"})"},
      {"vendor/greet/index.js", "module.exports = (n) => `hello ${n}`;\n"},
      {"nubo.json", R"({"entry": "server.js"})"},
      {"server.js", "const greet = require('greet');\nmodule.exports = (req, res) => res.end(greet('v1'));\n"}};
  files["package-lock.json"] = lockFileFor(*tmp_, files);
  auto buildLog = [&](const std::string& app) {
    auto list = parseJson(server_->control("GET", "/v1/apps/" + app + "/deployments").body, "list");
    return server_->nubo({"build-logs", (*list)["deployments"][0]["id"]}).out;
  };
  ASSERT_EQ(deployFolder("reuser", files).exit_code, 0);
  EXPECT_EQ(server_->get("/reuser/").body, "hello v1");
  EXPECT_NE(buildLog("reuser").find("npm ci"), std::string::npos);

  auto changed = deployFolder("reuser", {{"server.js", "const greet = require('greet');\n"
                                                       "module.exports = (req, res) => res.end(greet('v2'));\n"}});
  ASSERT_EQ(changed.exit_code, 0) << changed.err;
  EXPECT_EQ(server_->get("/reuser/").body, "hello v2");
  std::string log = buildLog("reuser");
  EXPECT_NE(log.find("its node_modules is reused, no build runs"), std::string::npos) << log;
  EXPECT_EQ(log.find("npm ci"), std::string::npos) << log;

  // The local package changed: installed again, and its new code runs.
  auto dep = deployFolder("reuser", {{"vendor/greet/index.js", "module.exports = (n) => `hi ${n}`;\n"}});
  ASSERT_EQ(dep.exit_code, 0) << dep.err;
  EXPECT_EQ(server_->get("/reuser/").body, "hi v2");
  EXPECT_NE(buildLog("reuser").find("npm ci"), std::string::npos);

  // Never from another app with the same dependencies.
  ASSERT_EQ(deployFolder("reuser2", files).exit_code, 0);
  EXPECT_NE(buildLog("reuser2").find("npm ci"), std::string::npos);
  // Nor when the project's own install scripts run.
  std::string pkg = R"({"name": "scripted", "version": "1.0.0", "scripts": {"postinstall": "node -e 1"},
                        "dependencies": {"greet": "file:vendor/greet"}})";
  files["package.json"] = pkg;
  files["package-lock.json"] = lockFileFor(*tmp_, files);
  ASSERT_EQ(deployFolder("scripted", files).exit_code, 0);
  files["server.js"] += "// changed\n";
  ASSERT_EQ(deployFolder("scripted", files).exit_code, 0);
  EXPECT_NE(buildLog("scripted").find("npm ci"), std::string::npos);
  // Nor when a package it installs has them.
  files["package.json"] = R"({"name": "depscripted", "version": "1.0.0", "dependencies": {"greet": "file:vendor/greet"}})";
  files["vendor/greet/package.json"] = R"({"name": "greet", "version": "1.0.0", "main": "index.js",
                                           "scripts": {"install": "node -e 1"}})";
  files["package-lock.json"] = lockFileFor(*tmp_, files);
  ASSERT_NE(files["package-lock.json"].find("hasInstallScript"), std::string::npos) << files["package-lock.json"];
  ASSERT_EQ(deployFolder("depscripted", files).exit_code, 0);
  files["server.js"] += "// changed again\n";
  ASSERT_EQ(deployFolder("depscripted", files).exit_code, 0);
  EXPECT_NE(buildLog("depscripted").find("npm ci"), std::string::npos);
}

}  // namespace
}  // namespace nubo::testing_util
