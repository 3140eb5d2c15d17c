// What a new user's existing project meets on its first deploy: how nubo
// tells a function from a site, and what a site never serves.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace nubo::testing_util
